//! `relabel_configs`, `metric_relabel_configs` and `alert_relabel_configs`.

use std::fmt;

use serde::de::{self, Deserializer};
use serde::{Deserialize, Serialize, Serializer};

use super::duration::scalar_string;
use super::location::Path;
use super::{is_valid_label_name, NameValidationScheme, VErr};

/// A relabeling action.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum RelabelAction {
    /// Set `target_label` to the expanded `replacement` when the regex matches.
    #[default]
    Replace,
    /// Drop unless the regex matches.
    Keep,
    /// Drop if the regex matches.
    Drop,
    /// Drop unless the input equals the value of `target_label`.
    KeepEqual,
    /// Drop if the input equals the value of `target_label`.
    DropEqual,
    /// Set `target_label` to a hash of the input modulo `modulus`.
    HashMod,
    /// Copy labels whose names match to new names.
    LabelMap,
    /// Remove labels whose names match.
    LabelDrop,
    /// Remove labels whose names do not match.
    LabelKeep,
    /// Set `target_label` to the lower-cased input.
    Lowercase,
    /// Set `target_label` to the upper-cased input.
    Uppercase,
}

impl RelabelAction {
    /// The configuration name of the action.
    pub fn as_str(&self) -> &'static str {
        match self {
            RelabelAction::Replace => "replace",
            RelabelAction::Keep => "keep",
            RelabelAction::Drop => "drop",
            RelabelAction::KeepEqual => "keepequal",
            RelabelAction::DropEqual => "dropequal",
            RelabelAction::HashMod => "hashmod",
            RelabelAction::LabelMap => "labelmap",
            RelabelAction::LabelDrop => "labeldrop",
            RelabelAction::LabelKeep => "labelkeep",
            RelabelAction::Lowercase => "lowercase",
            RelabelAction::Uppercase => "uppercase",
        }
    }

    /// Parses an action name, case-insensitively as Prometheus does.
    pub fn parse(s: &str) -> Result<Self, String> {
        Ok(match s.to_ascii_lowercase().as_str() {
            "replace" => RelabelAction::Replace,
            "keep" => RelabelAction::Keep,
            "drop" => RelabelAction::Drop,
            "keepequal" => RelabelAction::KeepEqual,
            "dropequal" => RelabelAction::DropEqual,
            "hashmod" => RelabelAction::HashMod,
            "labelmap" => RelabelAction::LabelMap,
            "labeldrop" => RelabelAction::LabelDrop,
            "labelkeep" => RelabelAction::LabelKeep,
            "lowercase" => RelabelAction::Lowercase,
            "uppercase" => RelabelAction::Uppercase,
            _ => return Err(format!("unknown relabel action {s:?}")),
        })
    }
}

impl fmt::Display for RelabelAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for RelabelAction {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for RelabelAction {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = scalar_string(d)?;
        RelabelAction::parse(&s).map_err(de::Error::custom)
    }
}

/// A relabel regex: the configured text and its compiled, fully anchored
/// form `^(?s:<regex>)$`.
#[derive(Debug, Clone)]
pub struct RelabelRegex {
    source: String,
    compiled: regex::Regex,
}

/// The default relabel regex text.
pub const DEFAULT_RELABEL_REGEX: &str = "(.*)";

impl RelabelRegex {
    /// Compiles `source` anchored at both ends.
    pub fn new(source: &str) -> Result<Self, regex::Error> {
        let compiled = regex::Regex::new(&format!("^(?s:{source})$"))?;
        Ok(RelabelRegex {
            source: source.to_string(),
            compiled,
        })
    }

    /// The regex as written in the configuration.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// The compiled, anchored regex.
    pub fn regex(&self) -> &regex::Regex {
        &self.compiled
    }
}

impl Default for RelabelRegex {
    fn default() -> Self {
        RelabelRegex {
            source: DEFAULT_RELABEL_REGEX.to_string(),
            compiled: regex::Regex::new("^(?s:(.*))$").unwrap_or_else(|_| unreachable!()),
        }
    }
}

impl PartialEq for RelabelRegex {
    fn eq(&self, other: &Self) -> bool {
        self.source == other.source
    }
}

impl Serialize for RelabelRegex {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.source)
    }
}

impl<'de> Deserialize<'de> for RelabelRegex {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = scalar_string(d)?;
        RelabelRegex::new(&s).map_err(|e| de::Error::custom(format!("invalid regex {s:?}: {e}")))
    }
}

/// One relabeling rule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RelabelConfig {
    /// Labels whose values are joined to form the input.
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "super::nullable"
    )]
    pub source_labels: Vec<String>,
    /// Separator between source label values (default `;`).
    #[serde(default = "default_separator")]
    pub separator: String,
    /// Label written by replace, hashmod, lowercase, uppercase; compared by
    /// keepequal/dropequal.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub target_label: String,
    /// Regex, default `(.*)`.
    #[serde(default)]
    pub regex: RelabelRegex,
    /// Modulus for hashmod.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub modulus: u64,
    /// Replacement, default `$1`.
    #[serde(default = "default_replacement")]
    pub replacement: String,
    /// Action, default `replace`.
    #[serde(default)]
    pub action: RelabelAction,
}

fn is_zero(v: &u64) -> bool {
    *v == 0
}

fn default_separator() -> String {
    ";".to_string()
}

fn default_replacement() -> String {
    "$1".to_string()
}

impl Default for RelabelConfig {
    fn default() -> Self {
        RelabelConfig {
            source_labels: Vec::new(),
            separator: default_separator(),
            target_label: String::new(),
            regex: RelabelRegex::default(),
            modulus: 0,
            replacement: default_replacement(),
            action: RelabelAction::Replace,
        }
    }
}

/// `^(?s:(?:[a-zA-Z_]|\$(?:\{\w+\}|\w+))+\w*)+$`: a legacy label name that
/// may contain `$var` references.
fn valid_legacy_with_vars(s: &str) -> bool {
    let b = s.as_bytes();
    if b.is_empty() {
        return false;
    }
    let word = |c: u8| c.is_ascii_alphanumeric() || c == b'_';
    let mut i = 0;
    let mut first = true;
    while i < b.len() {
        if b[i] == b'$' {
            i += 1;
            if i < b.len() && b[i] == b'{' {
                let start = i + 1;
                let mut j = start;
                while j < b.len() && word(b[j]) {
                    j += 1;
                }
                if j == start || j >= b.len() || b[j] != b'}' {
                    return false;
                }
                i = j + 1;
            } else {
                let start = i;
                while i < b.len() && word(b[i]) {
                    i += 1;
                }
                if i == start {
                    return false;
                }
            }
        } else if (first && !(b[i].is_ascii_alphabetic() || b[i] == b'_')) || !word(b[i]) {
            return false;
        } else {
            i += 1;
        }
        first = false;
    }
    true
}

fn has_var(s: &str) -> bool {
    // Prometheus' relabelTargetLegacy / varInRegexTemplate: a `$` reference.
    s.contains('$')
}

impl RelabelConfig {
    /// Prometheus' per-action validation (`model/relabel.Config.Validate`).
    pub(crate) fn validate(&self, p: &Path, scheme: NameValidationScheme) -> Result<(), VErr> {
        let a = self.action;
        let tl = p.key("target_label");
        use RelabelAction::*;
        for (i, l) in self.source_labels.iter().enumerate() {
            if !is_valid_label_name(l, scheme) {
                return Err(VErr::new(
                    p.key("source_labels").idx(i),
                    format!("{l:?} is not a valid label name"),
                ));
            }
        }
        if a == HashMod && self.modulus == 0 {
            return Err(VErr::new(
                p.key("modulus"),
                "relabel configuration for hashmod requires non-zero modulus",
            ));
        }
        if matches!(
            a,
            Replace | HashMod | Lowercase | Uppercase | KeepEqual | DropEqual
        ) && self.target_label.is_empty()
        {
            return Err(VErr::new(
                tl,
                format!("relabel configuration for {a} action requires 'target_label' value"),
            ));
        }
        let with_vars_ok = |v: &str| match scheme {
            NameValidationScheme::Legacy => valid_legacy_with_vars(v),
            NameValidationScheme::Utf8 => is_valid_label_name(v, scheme),
        };
        if a == Replace {
            let ok = if has_var(&self.target_label) {
                with_vars_ok(&self.target_label)
            } else {
                is_valid_label_name(&self.target_label, scheme)
            };
            if !ok {
                return Err(VErr::new(
                    tl,
                    format!(
                        "{:?} is invalid 'target_label' for {a} action",
                        self.target_label
                    ),
                ));
            }
        }
        if matches!(a, Lowercase | Uppercase | KeepEqual | DropEqual | HashMod)
            && !is_valid_label_name(&self.target_label, scheme)
        {
            return Err(VErr::new(
                tl,
                format!(
                    "{:?} is invalid 'target_label' for {a} action",
                    self.target_label
                ),
            ));
        }
        if matches!(a, Lowercase | Uppercase | KeepEqual | DropEqual) && self.replacement != "$1" {
            return Err(VErr::new(
                p.key("replacement"),
                format!("'replacement' can not be set for {a} action"),
            ));
        }
        if a == LabelMap && !with_vars_ok(&self.replacement) {
            return Err(VErr::new(
                p.key("replacement"),
                format!(
                    "{:?} is invalid 'replacement' for {a} action",
                    self.replacement
                ),
            ));
        }
        if matches!(a, KeepEqual | DropEqual)
            && (self.regex.as_str() != DEFAULT_RELABEL_REGEX
                || self.modulus != 0
                || self.separator != ";"
                || self.replacement != "$1")
        {
            return Err(VErr::new(p.key("action"), format!("{a} action requires only 'source_labels' and `target_label`, and no other fields")));
        }
        if matches!(a, LabelDrop | LabelKeep)
            && (!self.source_labels.is_empty()
                || !self.target_label.is_empty()
                || self.modulus != 0
                || self.separator != ";"
                || self.replacement != "$1")
        {
            return Err(VErr::new(
                p.key("action"),
                format!("{a} action requires only 'regex', and no other fields"),
            ));
        }
        Ok(())
    }
}
