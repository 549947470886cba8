//! The relabeling engine (`relabel_configs`, `metric_relabel_configs`,
//! `alert_relabel_configs`) and the construction of scrape targets from
//! discovered label sets.
//!
//! Semantics follow Prometheus' `model/relabel/relabel.go` (2.45 and later,
//! unchanged in 3.x) and `scrape/target.go` (`PopulateLabels`, 3.x):
//!
//! * [`process`] applies rules in order; a `keep`/`drop`/`keepequal`/`dropequal`
//!   rule can drop the set, which stops processing.
//! * The rule input is the values of `source_labels` (a missing label counts
//!   as `""`) joined with `separator`. Regexes are fully anchored
//!   ([`RelabelRegex`](crate::config::RelabelRegex) compiles `^(?s:<regex>)$`).
//! * Templates (`replacement`, a `replace` rule's `target_label`, a `labelmap`
//!   rule's `replacement`) expand as Go's `regexp.Expand`: `$1`, `${1}`,
//!   `$name`, `${name}`, `$$` for a literal `$`. A name is the longest run of
//!   letters, digits and `_`, so `$1foo` is the (missing) group `1foo` and
//!   expands to nothing (write `${1}foo`); a group number with a leading zero
//!   (`$01`) is a name too. A missing or non-participating group expands to
//!   `""`. A malformed reference (`$`, `${`, `${x-y}`) is copied literally.
//! * Setting a label to `""` removes it.
//!
//! The label set type is [`Labels`], a `Vec<(String, String)>` sorted by
//! name. It serves both target relabeling (small sets, rare) and metric
//! relabeling (per new series of a scrape): lookups are binary searches,
//! updates reuse the vector, and a rule that reads one source label borrows
//! its value instead of copying it.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::LazyLock;

use md5::{Digest, Md5};
use regex::{Captures, Regex};

use crate::config::location::Path;
use crate::config::relabel::{RelabelAction, RelabelConfig};
use crate::config::{is_valid_label_name, Duration, NameValidationScheme, ScrapeConfig};
use crate::gocompat::duration::parse_model_duration;
use crate::gocompat::quote::quote;

/// `__address__`: the `host:port` a target is scraped at.
pub const ADDRESS_LABEL: &str = "__address__";
/// `__scheme__`: `http` or `https`.
pub const SCHEME_LABEL: &str = "__scheme__";
/// `__metrics_path__`: the path of the scrape URL.
pub const METRICS_PATH_LABEL: &str = "__metrics_path__";
/// `__scrape_interval__`: the target's scrape interval as a Prometheus duration.
pub const SCRAPE_INTERVAL_LABEL: &str = "__scrape_interval__";
/// `__scrape_timeout__`: the target's scrape timeout as a Prometheus duration.
pub const SCRAPE_TIMEOUT_LABEL: &str = "__scrape_timeout__";
/// Prefix of labels that set URL parameters of the scrape (`__param_<name>`).
pub const PARAM_LABEL_PREFIX: &str = "__param_";
/// Prefix of discovery metadata labels, removed after target relabeling.
pub const META_LABEL_PREFIX: &str = "__meta_";
/// Prefix of reserved labels, which never reach stored series.
pub const RESERVED_LABEL_PREFIX: &str = "__";
/// `job`: defaults to the scrape config's `job_name`.
pub const JOB_LABEL: &str = "job";
/// `instance`: defaults to `__address__`.
pub const INSTANCE_LABEL: &str = "instance";

// ---------------------------------------------------------------------------
// Labels
// ---------------------------------------------------------------------------

/// A label set being relabeled: `(name, value)` pairs **sorted by name**
/// (byte order, as `String`'s `Ord`), names unique.
///
/// [`process`] sorts an unsorted input first (a stable sort; duplicate names
/// are left for the caller to reject). An empty value means the same as an
/// absent label when read; rules never create empty values (setting `""`
/// removes the label), but input entries with empty values are kept, as
/// Prometheus keeps them: drop them before storing.
///
/// Names are not validated: a `labelmap` rule may produce any name, even an
/// empty one, exactly as Prometheus does; whoever stores the result checks
/// the names (Prometheus fails the scrape with "invalid metric name or label
/// names").
pub type Labels = Vec<(String, String)>;

pub(crate) fn find(labels: &[(String, String)], name: &str) -> Result<usize, usize> {
    labels.binary_search_by(|(n, _)| n.as_str().cmp(name))
}

/// The value of `name` in a sorted label set, `""` when absent (Prometheus'
/// `labels.Builder.Get`).
pub fn label_value<'a>(labels: &'a [(String, String)], name: &str) -> &'a str {
    find(labels, name).map_or("", |i| labels[i].1.as_str())
}

/// Sets `name` to `value` in a sorted label set; an empty value removes the
/// label (Prometheus' `labels.Builder.Set`).
pub fn set_label(labels: &mut Labels, name: &str, value: &str) {
    match find(labels, name) {
        Ok(i) if value.is_empty() => {
            labels.remove(i);
        }
        Ok(i) => {
            let v = &mut labels[i].1;
            v.clear();
            v.push_str(value);
        }
        Err(_) if value.is_empty() => {}
        Err(i) => labels.insert(i, (name.to_string(), value.to_string())),
    }
}

/// [`set_label`] with owned strings.
fn set_label_owned(labels: &mut Labels, name: String, value: String) {
    match find(labels, &name) {
        Ok(i) if value.is_empty() => {
            labels.remove(i);
        }
        Ok(i) => labels[i].1 = value,
        Err(_) if value.is_empty() => {}
        Err(i) => labels.insert(i, (name, value)),
    }
}

/// Removes `name` from a sorted label set, returning its value.
pub fn del_label(labels: &mut Labels, name: &str) -> Option<String> {
    find(labels, name).ok().map(|i| labels.remove(i).1)
}

/// A sorted label set from a map; empty values are skipped.
pub fn labels_from_map(m: &BTreeMap<String, String>) -> Labels {
    m.iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(n, v)| (n.clone(), v.clone()))
        .collect()
}

// ---------------------------------------------------------------------------
// Processing
// ---------------------------------------------------------------------------

/// Applies `cfgs` in order to `labels` (see [`Labels`]). Returns false when a
/// rule drops the set; `labels` is then cleared. Label names produced by
/// templates are checked with the UTF-8 scheme (any non-empty name), sonde's
/// and Prometheus 3's default; use [`process_with_scheme`] for `legacy`.
///
/// Never panics, whatever the configs (also ones that failed validation: a
/// `hashmod` rule with modulus 0 does nothing).
pub fn process(labels: &mut Labels, cfgs: &[RelabelConfig]) -> bool {
    process_with_scheme(labels, cfgs, NameValidationScheme::Utf8)
}

/// [`process`] with an explicit name validation scheme: the scheme the rules
/// were validated with (the scrape config's
/// [`name_validation_scheme`](ScrapeConfig::name_validation_scheme), or the
/// global one for alert relabeling). It decides whether a `replace` rule's
/// expanded `target_label` is a valid name; an invalid one leaves the set
/// unchanged.
pub fn process_with_scheme(
    labels: &mut Labels,
    cfgs: &[RelabelConfig],
    scheme: NameValidationScheme,
) -> bool {
    if cfgs.is_empty() {
        return true;
    }
    if !labels.windows(2).all(|w| w[0].0 <= w[1].0) {
        labels.sort_by(|a, b| a.0.cmp(&b.0));
    }
    for cfg in cfgs {
        if !relabel(labels, cfg, scheme) {
            labels.clear();
            return false;
        }
    }
    true
}

/// A change decided while the rule input still borrows the labels.
enum Edit<'c> {
    None,
    Set(Cow<'c, str>, String),
}

fn relabel(labels: &mut Labels, cfg: &RelabelConfig, scheme: NameValidationScheme) -> bool {
    let re = cfg.regex.regex();
    match cfg.action {
        RelabelAction::LabelMap => {
            label_map(labels, re, &cfg.replacement);
            return true;
        }
        RelabelAction::LabelDrop => {
            labels.retain(|(n, _)| !re.is_match(n));
            return true;
        }
        RelabelAction::LabelKeep => {
            labels.retain(|(n, _)| re.is_match(n));
            return true;
        }
        _ => {}
    }
    let edit = {
        let val = source_value(labels, cfg);
        let target = || Cow::Borrowed(cfg.target_label.as_str());
        match cfg.action {
            RelabelAction::Drop => {
                if re.is_match(&val) {
                    return false;
                }
                Edit::None
            }
            RelabelAction::Keep => {
                if !re.is_match(&val) {
                    return false;
                }
                Edit::None
            }
            RelabelAction::DropEqual => {
                if label_value(labels, &cfg.target_label) == val {
                    return false;
                }
                Edit::None
            }
            RelabelAction::KeepEqual => {
                if label_value(labels, &cfg.target_label) != val {
                    return false;
                }
                Edit::None
            }
            RelabelAction::Replace => replace(&val, cfg, scheme),
            RelabelAction::Lowercase => Edit::Set(target(), go_to_lower(&val)),
            RelabelAction::Uppercase => Edit::Set(target(), go_to_upper(&val)),
            RelabelAction::HashMod => match hash_mod(&val, cfg.modulus) {
                Some(m) => Edit::Set(target(), m.to_string()),
                None => Edit::None,
            },
            RelabelAction::LabelMap | RelabelAction::LabelDrop | RelabelAction::LabelKeep => {
                Edit::None
            }
        }
    };
    if let Edit::Set(name, value) = edit {
        match find(labels, &name) {
            Ok(i) if value.is_empty() => {
                labels.remove(i);
            }
            Ok(i) => labels[i].1 = value,
            Err(_) if value.is_empty() => {}
            Err(i) => labels.insert(i, (name.into_owned(), value)),
        }
    }
    true
}

/// The source label values joined with the separator; borrowed when there
/// is at most one source label.
fn source_value<'l>(labels: &'l [(String, String)], cfg: &RelabelConfig) -> Cow<'l, str> {
    match cfg.source_labels.as_slice() {
        [] => Cow::Borrowed(""),
        [one] => Cow::Borrowed(label_value(labels, one)),
        many => {
            let mut s = String::new();
            for (i, n) in many.iter().enumerate() {
                if i > 0 {
                    s.push_str(&cfg.separator);
                }
                s.push_str(label_value(labels, n));
            }
            Cow::Owned(s)
        }
    }
}

/// `replace`: on a match, the expanded target gets the expanded replacement
/// (an empty one deletes it); an invalid expanded target changes nothing.
fn replace<'c>(val: &str, cfg: &'c RelabelConfig, scheme: NameValidationScheme) -> Edit<'c> {
    let re = cfg.regex.regex();
    let templated = cfg.target_label.contains('$') || cfg.replacement.contains('$');
    let (target, value): (Cow<'c, str>, String) = if !templated {
        // Literal target and replacement: only whether the regex matches
        // matters (this also covers Prometheus' "empty input, default regex"
        // fast path, which gives the same result).
        if !re.is_match(val) {
            return Edit::None;
        }
        (
            Cow::Borrowed(cfg.target_label.as_str()),
            cfg.replacement.clone(),
        )
    } else {
        let Some(caps) = re.captures(val) else {
            return Edit::None;
        };
        let target = if cfg.target_label.contains('$') {
            let mut t = String::new();
            expand(&cfg.target_label, &caps, &mut t);
            Cow::Owned(t)
        } else {
            Cow::Borrowed(cfg.target_label.as_str())
        };
        let mut value = String::new();
        expand(&cfg.replacement, &caps, &mut value);
        (target, value)
    };
    if !is_valid_label_name(&target, scheme) {
        return Edit::None;
    }
    Edit::Set(target, value)
}

/// `labelmap`: every label whose name matches is copied to the name the
/// replacement expands to. Iterates over a snapshot of the set in name order,
/// so later copies win when two names map to the same one.
fn label_map(labels: &mut Labels, re: &Regex, replacement: &str) {
    let templated = replacement.contains('$');
    let mut adds: Vec<(String, String)> = Vec::new();
    for (name, value) in labels.iter() {
        if templated {
            if let Some(caps) = re.captures(name) {
                let mut new_name = String::new();
                expand(replacement, &caps, &mut new_name);
                adds.push((new_name, value.clone()));
            }
        } else if re.is_match(name) {
            adds.push((replacement.to_string(), value.clone()));
        }
    }
    for (n, v) in adds {
        set_label_owned(labels, n, v);
    }
}

/// `hashmod`: the big-endian u64 of bytes 8..16 of the MD5 of `val`, modulo
/// `modulus`; `None` for a zero modulus.
fn hash_mod(val: &str, modulus: u64) -> Option<u64> {
    let digest = Md5::digest(val.as_bytes());
    let mut low = [0u8; 8];
    low.copy_from_slice(&digest[8..16]);
    u64::from_be_bytes(low).checked_rem(modulus)
}

// ---------------------------------------------------------------------------
// Go regexp template expansion
// ---------------------------------------------------------------------------

/// Unicode letters and decimal digits: what Go's `unicode.IsLetter` and
/// `unicode.IsDigit` accept in a template name (for non-ASCII characters).
static GO_WORD: LazyLock<Option<Regex>> = LazyLock::new(|| Regex::new(r"^[\p{L}\p{Nd}]$").ok());

fn is_go_name_char(c: char) -> bool {
    if c.is_ascii() {
        return c.is_ascii_alphanumeric() || c == '_';
    }
    let mut buf = [0u8; 4];
    match GO_WORD.as_ref() {
        Some(re) => re.is_match(c.encode_utf8(&mut buf)),
        None => c.is_alphanumeric(),
    }
}

/// A parsed `$` reference: the group name (digits for numbered groups), its
/// number when it is one, and the bytes of template it used after the `$`.
struct GroupRef<'t> {
    name: &'t str,
    num: Option<usize>,
    len: usize,
}

/// Go's `regexp.extract`: parses `name` or `{name}` at the start of `s`.
fn extract(s: &str) -> Option<GroupRef<'_>> {
    let brace = s.starts_with('{');
    let body = if brace { &s[1..] } else { s };
    let end = body
        .char_indices()
        .find(|&(_, c)| !is_go_name_char(c))
        .map_or(body.len(), |(i, _)| i);
    if end == 0 {
        return None;
    }
    let name = &body[..end];
    let mut len = end;
    if brace {
        if !body[end..].starts_with('}') {
            return None;
        }
        len += 2;
    }
    let mut num: Option<usize> = Some(0);
    for b in name.bytes() {
        num = match num {
            Some(n) if b.is_ascii_digit() && n < 100_000_000 => {
                Some(n * 10 + usize::from(b - b'0'))
            }
            _ => None,
        };
        if num.is_none() {
            break;
        }
    }
    if name.len() > 1 && name.starts_with('0') {
        num = None;
    }
    Some(GroupRef { name, num, len })
}

/// Appends `template` to `out` with `$` references replaced by the groups of
/// `caps`, as Go's `Regexp.ExpandString` does.
fn expand(template: &str, caps: &Captures<'_>, out: &mut String) {
    let mut rest = template;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        rest = &rest[i + 1..];
        if let Some(r) = rest.strip_prefix('$') {
            out.push('$');
            rest = r;
            continue;
        }
        let Some(g) = extract(rest) else {
            out.push('$');
            continue;
        };
        let m = match g.num {
            Some(n) => caps.get(n),
            None => caps.name(g.name),
        };
        if let Some(m) = m {
            out.push_str(m.as_str());
        }
        rest = &rest[g.len..];
    }
    out.push_str(rest);
}

// ---------------------------------------------------------------------------
// Go case mapping
// ---------------------------------------------------------------------------

/// Go's `strings.ToLower`: per-character simple case mapping (no
/// context-dependent or multi-character mappings).
fn go_to_lower(s: &str) -> String {
    if s.is_ascii() {
        return s.to_ascii_lowercase();
    }
    s.chars()
        .map(|c| {
            let mut it = c.to_lowercase();
            match (it.next(), it.next()) {
                (Some(l), None) => l,
                // The only multi-character lower mapping: U+0130 (İ), whose
                // simple mapping is `i`.
                _ if c == '\u{130}' => 'i',
                _ => c,
            }
        })
        .collect()
}

/// Go's `strings.ToUpper`: per-character simple case mapping. Rust's full
/// mapping differs only where it yields several characters (`ß` → `SS`);
/// those characters keep their simple mapping, listed here.
fn go_to_upper(s: &str) -> String {
    if s.is_ascii() {
        return s.to_ascii_uppercase();
    }
    s.chars()
        .map(|c| {
            let mut it = c.to_uppercase();
            match (it.next(), it.next()) {
                (Some(u), None) => u,
                _ => simple_upper_of_special(c),
            }
        })
        .collect()
}

/// Simple uppercase mapping (UnicodeData.txt) of the characters whose full
/// mapping (SpecialCasing.txt) has several characters. Only some Greek
/// letters with ypogegrammeni have one; the others (ß, ŉ, ǰ, ligatures, ...)
/// map to themselves.
fn simple_upper_of_special(c: char) -> char {
    let u = c as u32;
    let mapped = match u {
        0x1F80..=0x1F87 | 0x1F90..=0x1F97 | 0x1FA0..=0x1FA7 => u + 8,
        0x1FB3 => 0x1FBC,
        0x1FC3 => 0x1FCC,
        0x1FF3 => 0x1FFC,
        _ => u,
    };
    char::from_u32(mapped).unwrap_or(c)
}

// ---------------------------------------------------------------------------
// Target labels (scrape/target.go)
// ---------------------------------------------------------------------------

/// What target population needs from a scrape config. Build it with
/// [`TargetParams::from_scrape_config`] (or `From<&ScrapeConfig>`) and
/// adjust the compatibility switch if needed.
#[derive(Debug, Clone, Copy)]
pub struct TargetParams<'a> {
    /// `job_name`: the default `job` label.
    pub job_name: &'a str,
    /// Default `__scrape_interval__`.
    pub scrape_interval: Duration,
    /// Default `__scrape_timeout__`.
    pub scrape_timeout: Duration,
    /// Default `__metrics_path__`.
    pub metrics_path: &'a str,
    /// Default `__scheme__`.
    pub scheme: &'a str,
    /// `params`: the first value of each becomes `__param_<name>`; all are
    /// sent in the scrape URL.
    pub params: &'a BTreeMap<String, Vec<String>>,
    /// `relabel_configs`.
    pub relabel_configs: &'a [RelabelConfig],
    /// Name validation scheme for the relabel rules.
    pub name_validation_scheme: NameValidationScheme,
    /// Prometheus 2.x target semantics instead of 3.x: an `__address__`
    /// without a port gets `:80` (http) or `:443` (https) appended, and the
    /// config's `params` override discovered `__param_<name>` labels instead
    /// of only filling in missing ones.
    pub prometheus_2x: bool,
}

impl<'a> TargetParams<'a> {
    /// The parameters of a parsed scrape config. sonde follows Prometheus 2.x
    /// (the version its users migrate from): default ports are added.
    pub fn from_scrape_config(sc: &'a ScrapeConfig) -> Self {
        TargetParams {
            job_name: &sc.job_name,
            scrape_interval: sc.scrape_interval,
            scrape_timeout: sc.scrape_timeout,
            metrics_path: &sc.metrics_path,
            scheme: &sc.scheme,
            params: &sc.params,
            relabel_configs: &sc.relabel_configs,
            name_validation_scheme: sc.name_validation_scheme(),
            prometheus_2x: true,
        }
    }
}

impl<'a> From<&'a ScrapeConfig> for TargetParams<'a> {
    fn from(sc: &'a ScrapeConfig) -> Self {
        TargetParams::from_scrape_config(sc)
    }
}

/// A target that survived relabeling and validation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PopulatedTarget {
    /// The labels attached to its series and shown as `labels` in the targets
    /// API: the relabeled set without reserved `__*` labels, sorted
    /// (Prometheus' `Target.Labels`).
    pub labels: Labels,
    /// The whole relabeled set, `__meta_*` removed: also `__address__`,
    /// `__scheme__`, `__metrics_path__`, `__param_*`, `__scrape_interval__`,
    /// `__scrape_timeout__`, `__tmp*`, ... (Prometheus' internal target labels).
    pub internal_labels: Labels,
    /// The labels before relabeling (`discoveredLabels` in the targets API).
    pub discovered: BTreeMap<String, String>,
    /// The scrape URL ([`scrape_url`]).
    pub url: String,
    /// Scrape interval, from `__scrape_interval__`.
    pub interval: std::time::Duration,
    /// Scrape timeout, from `__scrape_timeout__`.
    pub timeout: std::time::Duration,
}

/// Prometheus' `PopulateDiscoveredLabels` for a scrape config (Prometheus 3
/// semantics); see [`populate_discovered_labels_with`]. This is what the
/// targets API shows as `discoveredLabels`, also for dropped targets.
pub fn populate_discovered_labels(
    target: &BTreeMap<String, String>,
    group_labels: &BTreeMap<String, String>,
    sc: &ScrapeConfig,
) -> BTreeMap<String, String> {
    discovered(target, group_labels, &TargetParams::from_scrape_config(sc))
        .into_iter()
        .collect()
}

/// Prometheus' `PopulateDiscoveredLabels`: the target's labels over the
/// group's (a label the target has, even with an empty value, hides the
/// group's), then defaults for labels that are missing or empty: `job`,
/// `__scrape_interval__`, `__scrape_timeout__`, `__metrics_path__`,
/// `__scheme__` and `__param_<name>` (first value of each `params` entry).
pub fn populate_discovered_labels_with(
    target: &BTreeMap<String, String>,
    group_labels: &BTreeMap<String, String>,
    job: &TargetParams<'_>,
) -> BTreeMap<String, String> {
    discovered(target, group_labels, job).into_iter().collect()
}

fn discovered(
    target: &BTreeMap<String, String>,
    group_labels: &BTreeMap<String, String>,
    job: &TargetParams<'_>,
) -> Labels {
    let mut lb = labels_from_map(target);
    for (k, v) in group_labels {
        if !target.contains_key(k) {
            set_label(&mut lb, k, v);
        }
    }
    let interval = job.scrape_interval.to_string();
    let timeout = job.scrape_timeout.to_string();
    for (name, value) in [
        (JOB_LABEL, job.job_name),
        (SCRAPE_INTERVAL_LABEL, interval.as_str()),
        (SCRAPE_TIMEOUT_LABEL, timeout.as_str()),
        (METRICS_PATH_LABEL, job.metrics_path),
        (SCHEME_LABEL, job.scheme),
    ] {
        if label_value(&lb, name).is_empty() {
            set_label(&mut lb, name, value);
        }
    }
    for (k, v) in job.params {
        if let Some(first) = v.first() {
            let name = format!("{PARAM_LABEL_PREFIX}{k}");
            if job.prometheus_2x || label_value(&lb, &name).is_empty() {
                set_label(&mut lb, &name, first);
            }
        }
    }
    lb
}

/// Prometheus' `PopulateLabels` for a scrape config (Prometheus 3
/// semantics); see [`populate_target_labels_with`].
pub fn populate_target_labels(
    target: &BTreeMap<String, String>,
    group_labels: &BTreeMap<String, String>,
    sc: &ScrapeConfig,
) -> Result<Option<PopulatedTarget>, String> {
    populate_target_labels_with(target, group_labels, &TargetParams::from_scrape_config(sc))
}

/// Prometheus' `PopulateLabels`: builds the discovered labels (see
/// [`populate_discovered_labels_with`]), applies `relabel_configs`, then
/// checks the result. `Ok(None)`: relabeling dropped the target (get its
/// discovered labels from [`populate_discovered_labels`]). Errors (the
/// target is neither active nor dropped; Prometheus logs them as
/// `instance <i> in group <group>: <error>`):
///
/// * `no address`: `__address__` missing or empty after relabeling;
/// * `"<addr>" is not a valid hostname`: the address contains `/`;
/// * `error parsing scrape interval: <why>`, `scrape interval cannot be 0`,
///   and the same for the timeout, from the `__scrape_interval__` and
///   `__scrape_timeout__` labels;
/// * `scrape timeout cannot be greater than scrape interval ("<t>" > "<i>")`;
/// * with [`TargetParams::prometheus_2x`], `invalid scheme: "<scheme>"`.
///
/// On success `__meta_*` labels are removed and `instance` defaults to
/// `__address__`.
pub fn populate_target_labels_with(
    target: &BTreeMap<String, String>,
    group_labels: &BTreeMap<String, String>,
    job: &TargetParams<'_>,
) -> Result<Option<PopulatedTarget>, String> {
    let discovered = discovered(target, group_labels, job);
    let mut lb = discovered.clone();
    if !process_with_scheme(&mut lb, job.relabel_configs, job.name_validation_scheme) {
        return Ok(None);
    }
    let mut addr = label_value(&lb, ADDRESS_LABEL).to_string();
    if addr.is_empty() {
        return Err("no address".to_string());
    }
    if job.prometheus_2x && needs_port(&addr) {
        match label_value(&lb, SCHEME_LABEL) {
            "http" | "" => addr.push_str(":80"),
            "https" => addr.push_str(":443"),
            // Prometheus 2.x names the configured scheme here.
            _ => return Err(format!("invalid scheme: {}", quote(job.scheme))),
        }
        set_label(&mut lb, ADDRESS_LABEL, &addr);
    }
    if addr.contains('/') {
        return Err(format!("{} is not a valid hostname", quote(&addr)));
    }
    let interval = label_value(&lb, SCRAPE_INTERVAL_LABEL);
    let interval_ns = parse_model_duration(interval)
        .map_err(|e| format!("error parsing scrape interval: {e}"))?;
    if interval_ns == 0 {
        return Err("scrape interval cannot be 0".to_string());
    }
    let timeout = label_value(&lb, SCRAPE_TIMEOUT_LABEL);
    let timeout_ns =
        parse_model_duration(timeout).map_err(|e| format!("error parsing scrape timeout: {e}"))?;
    if timeout_ns == 0 {
        return Err("scrape timeout cannot be 0".to_string());
    }
    if timeout_ns > interval_ns {
        return Err(format!(
            "scrape timeout cannot be greater than scrape interval ({} > {})",
            quote(timeout),
            quote(interval)
        ));
    }
    lb.retain(|(n, _)| !n.starts_with(META_LABEL_PREFIX));
    if label_value(&lb, INSTANCE_LABEL).is_empty() {
        set_label(&mut lb, INSTANCE_LABEL, &addr);
    }
    Ok(Some(PopulatedTarget {
        labels: without_reserved(&lb),
        url: scrape_url(&lb, job.params),
        interval: std::time::Duration::from_nanos(interval_ns),
        timeout: std::time::Duration::from_nanos(timeout_ns),
        internal_labels: lb,
        discovered: discovered.into_iter().collect(),
    }))
}

/// The labels a target attaches to its series and shows as `labels` in the
/// targets API: all but the reserved `__*` ones (Prometheus' `Target.Labels`).
pub fn without_reserved(labels: &[(String, String)]) -> Labels {
    labels
        .iter()
        .filter(|(n, _)| !n.starts_with(RESERVED_LABEL_PREFIX))
        .cloned()
        .collect()
}

/// The scrape URL of a target (Prometheus' `Target.URL().String()`) from its
/// internal labels: `<__scheme__>://<__address__><__metrics_path__>?<params>`.
/// The query holds the scrape config's `params`, where each `__param_<name>`
/// label replaces the first value of `<name>` (or adds it), sorted by name
/// and encoded as Go's `url.Values.Encode`; host and path are escaped as Go's
/// `url.URL.String` does.
pub fn scrape_url(labels: &[(String, String)], params: &BTreeMap<String, Vec<String>>) -> String {
    let mut q: BTreeMap<&str, Vec<&str>> = params
        .iter()
        .map(|(k, v)| (k.as_str(), v.iter().map(String::as_str).collect()))
        .collect();
    for (n, v) in labels {
        if let Some(k) = n.strip_prefix(PARAM_LABEL_PREFIX) {
            let vals = q.entry(k).or_default();
            match vals.first_mut() {
                Some(first) => *first = v,
                None => vals.push(v),
            }
        }
    }
    let mut query = String::new();
    for (k, vals) in &q {
        for v in vals {
            if !query.is_empty() {
                query.push('&');
            }
            go_escape(k, Escape::Query, &mut query);
            query.push('=');
            go_escape(v, Escape::Query, &mut query);
        }
    }
    let scheme = label_value(labels, SCHEME_LABEL);
    let host = label_value(labels, ADDRESS_LABEL);
    let path = label_value(labels, METRICS_PATH_LABEL);
    let mut out = String::new();
    if !scheme.is_empty() {
        out.push_str(scheme);
        out.push(':');
    }
    if !scheme.is_empty() || !host.is_empty() {
        if !host.is_empty() || !path.is_empty() {
            out.push_str("//");
        }
        go_escape(host, Escape::Host, &mut out);
    }
    let mut esc_path = String::new();
    if path == "*" {
        esc_path.push('*');
    } else {
        go_escape(path, Escape::Path, &mut esc_path);
    }
    if !esc_path.is_empty() && !esc_path.starts_with('/') && !host.is_empty() {
        out.push('/');
    }
    if out.is_empty() {
        let first = esc_path.split('/').next().unwrap_or("");
        if first.contains(':') {
            out.push_str("./");
        }
    }
    out.push_str(&esc_path);
    if !query.is_empty() {
        out.push('?');
        out.push_str(&query);
    }
    out
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Escape {
    Host,
    Path,
    Query,
}

/// Go's `net/url` `shouldEscape`.
fn go_should_escape(c: u8, mode: Escape) -> bool {
    if c.is_ascii_alphanumeric() {
        return false;
    }
    if mode == Escape::Host
        && matches!(
            c,
            b'!' | b'$'
                | b'&'
                | b'\''
                | b'('
                | b')'
                | b'*'
                | b'+'
                | b','
                | b';'
                | b'='
                | b':'
                | b'['
                | b']'
                | b'<'
                | b'>'
                | b'"'
        )
    {
        return false;
    }
    match c {
        b'-' | b'_' | b'.' | b'~' => false,
        b'$' | b'&' | b'+' | b',' | b'/' | b':' | b';' | b'=' | b'?' | b'@' => match mode {
            Escape::Path => c == b'?',
            Escape::Query => true,
            // Reached only for '/', '?' and '@' (the others returned above).
            Escape::Host => true,
        },
        _ => true,
    }
}

/// Go's `net/url` `escape` (a space in a query component becomes `+`).
fn go_escape(s: &str, mode: Escape, out: &mut String) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for &c in s.as_bytes() {
        if c == b' ' && mode == Escape::Query {
            out.push('+');
        } else if go_should_escape(c, mode) {
            out.push('%');
            out.push(char::from(HEX[usize::from(c >> 4)]));
            out.push(char::from(HEX[usize::from(c & 15)]));
        } else {
            out.push(char::from(c));
        }
    }
}

/// Go's `net.SplitHostPort`, reduced to success or failure.
fn split_host_port(hp: &str) -> Option<(&str, &str)> {
    let i = hp.rfind(':')?;
    let (host, j, k) = if hp.starts_with('[') {
        let end = hp.find(']')?;
        if end + 1 != i {
            // Missing port, `]` not followed by the last colon, or too many colons.
            return None;
        }
        (&hp[1..end], 1, end + 1)
    } else {
        let host = &hp[..i];
        if host.contains(':') {
            return None;
        }
        (host, 0, 0)
    };
    if hp[j..].contains('[') || hp[k..].contains(']') {
        return None;
    }
    Some((host, &hp[i + 1..]))
}

/// Prometheus 2.x `addPort`: the address has no port, and adding one makes
/// it valid.
fn needs_port(addr: &str) -> bool {
    split_host_port(addr).is_none() && split_host_port(&format!("{addr}:1234")).is_some()
}

// ---------------------------------------------------------------------------
// Parsing helper and fuzzing
// ---------------------------------------------------------------------------

/// Parses a YAML list of relabel rules (the value of a `relabel_configs:`
/// key) with the configuration module's deserializer and validates each rule
/// as `Config::parse` does. Errors name the rule: `[1]: <message>`.
pub fn parse_relabel_configs(
    yaml: &str,
    scheme: NameValidationScheme,
) -> Result<Vec<RelabelConfig>, String> {
    let cfgs = deserialize_relabel_configs(yaml)?;
    for (i, c) in cfgs.iter().enumerate() {
        c.validate(&Path::root().idx(i), scheme)
            .map_err(|e| format!("[{i}]: {}", e.msg))?;
    }
    Ok(cfgs)
}

pub(crate) fn deserialize_relabel_configs(yaml: &str) -> Result<Vec<RelabelConfig>, String> {
    serde_saphyr::from_str::<Option<Vec<RelabelConfig>>>(yaml)
        .map(Option::unwrap_or_default)
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::config::Config;

    type Pairs<'a> = &'a [(&'a str, &'a str)];

    fn rules(yaml: &str) -> Vec<RelabelConfig> {
        parse_relabel_configs(yaml, NameValidationScheme::Utf8)
            .unwrap_or_else(|e| panic!("{e}\n{yaml}"))
    }

    fn ls(pairs: Pairs<'_>) -> Labels {
        let mut l: Labels = pairs
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect();
        l.sort();
        l
    }

    fn get<'a>(l: &'a [(String, String)], name: &str) -> Option<&'a str> {
        find(l, name).ok().map(|i| l[i].1.as_str())
    }

    fn map(pairs: Pairs<'_>) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect()
    }

    /// `want == None` means the set must be dropped.
    fn check_with(
        scheme: NameValidationScheme,
        name: &str,
        input: Pairs<'_>,
        yaml: &str,
        want: Option<Pairs<'_>>,
    ) {
        let cfgs = parse_relabel_configs(yaml, scheme).unwrap_or_else(|e| panic!("{name}: {e}"));
        let mut l = ls(input);
        let kept = process_with_scheme(&mut l, &cfgs, scheme);
        match want {
            None => {
                assert!(!kept, "{name}: expected drop, got {l:?}");
                assert!(l.is_empty(), "{name}: dropped set not cleared");
            }
            Some(w) => {
                assert!(kept, "{name}: unexpectedly dropped");
                assert_eq!(l, ls(w), "{name}");
            }
        }
    }

    fn check(name: &str, input: Pairs<'_>, yaml: &str, want: Option<Pairs<'_>>) {
        check_with(NameValidationScheme::Utf8, name, input, yaml, want);
    }

    /// One case of the data-driven corpus in `tests/testdata/relabel/`.
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct CorpusCase {
        name: String,
        #[serde(default)]
        scheme: Option<String>,
        input: BTreeMap<String, String>,
        rules: String,
        #[serde(default)]
        want: Option<BTreeMap<String, String>>,
        #[serde(default)]
        dropped: bool,
    }

    /// Every case of `tests/testdata/relabel/*.yaml`: input labels, a
    /// relabel_configs list, and the labels wanted after it (or a drop).
    #[test]
    fn corpus() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/testdata/relabel");
        let mut files: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
            .collect();
        files.sort();
        let mut ran = 0;
        for f in &files {
            let text = std::fs::read_to_string(f).unwrap();
            let cases: Vec<CorpusCase> =
                serde_saphyr::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
            for c in cases {
                let name = format!("{}: {}", f.display(), c.name);
                let scheme = match c.scheme.as_deref() {
                    None | Some("utf8") => NameValidationScheme::Utf8,
                    Some("legacy") => NameValidationScheme::Legacy,
                    Some(other) => panic!("{name}: unknown scheme {other:?}"),
                };
                assert!(
                    c.dropped != c.want.is_some(),
                    "{name}: give either `want:` or `dropped: true`"
                );
                let pairs = |m: &BTreeMap<String, String>| -> Vec<(String, String)> {
                    m.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
                };
                let input = pairs(&c.input);
                let input: Vec<(&str, &str)> = input
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.as_str()))
                    .collect();
                let want = c.want.as_ref().map(pairs);
                let want: Option<Vec<(&str, &str)>> = want
                    .as_ref()
                    .map(|w| w.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect());
                check_with(scheme, &name, &input, &c.rules, want.as_deref());
                ran += 1;
            }
        }
        assert!(
            files.len() >= 9 && ran >= 64,
            "the corpus shrank: {ran} cases in {} files",
            files.len()
        );
    }

    #[test]
    fn defaults_apply() {
        let cfgs = rules("- {target_label: x}");
        assert_eq!(cfgs[0].action, RelabelAction::Replace);
        assert_eq!(cfgs[0].separator, ";");
        assert_eq!(cfgs[0].regex.as_str(), "(.*)");
        assert_eq!(cfgs[0].replacement, "$1");
    }

    #[test]
    fn template_expansion_like_go() {
        let case = |replacement: &str, want: Option<&str>| {
            let yaml = format!(
                "- {{source_labels: [a], regex: '(?<word>x)(y)?(z)', target_label: out, replacement: '{replacement}'}}"
            );
            let mut l = ls(&[("a", "xz")]);
            assert!(process(&mut l, &rules(&yaml)));
            assert_eq!(get(&l, "out"), want, "replacement {replacement:?}");
        };
        case("$1", Some("x"));
        case("${1}", Some("x"));
        case("$1foo", None); // group "1foo": empty, so the label is not set
        case("${1}foo", Some("xfoo"));
        case("a$1foo", Some("a"));
        case("[$2]", Some("[]")); // non-participating group
        case("$3$1", Some("zx"));
        case("$word-${word}", Some("x-x"));
        case("$wordy", None); // no group named wordy
        case("$9", None);
        case("$01", None); // leading zero: a name, not group 1
        case("$0", Some("xz"));
        case("$$1", Some("$1"));
        case("cost $", Some("cost $"));
        case("${1", Some("${1"));
        case("${}", Some("${}"));
        case("${x-y}", Some("${x-y}"));
        case("$-1", Some("$-1"));
        case("$é", None); // Go: letters are Unicode letters
        case("${1}é", Some("xé"));
        case("$1é", None);
        case("$123456789012", None); // too large a number
    }

    #[test]
    fn case_actions() {
        // Go maps character by character with simple case mappings.
        assert_eq!(go_to_upper("straße"), "STRAßE");
        assert_eq!(go_to_upper("ǆ ﬁ ᾳ ᾀ ᾈ ŉ"), "Ǆ ﬁ ᾼ ᾈ ᾈ ŉ");
        assert_eq!(go_to_lower("İSTANBUL ΟΔΟΣ Ǆ"), "istanbul οδοσ ǆ");
        assert_eq!(go_to_upper("ſ ı µ"), "S I Μ");
        assert_eq!(go_to_lower("ABC"), "abc");
    }

    #[test]
    fn hashmod_values() {
        // Values from Prometheus' relabel_test.go.
        assert_eq!(hash_mod("baz", 1000), Some(976));
        assert_eq!(hash_mod("foo\nbar", 1000), Some(734));
        assert_eq!(hash_mod("x", 0), None);
        // md5("") = d41d8cd98f00b204e9800998ecf8427e; bytes 8..16 big-endian.
        assert_eq!(hash_mod("", u64::MAX), Some(0xe980_0998_ecf8_427e));
        check(
            "hashmod over two sources with a separator",
            &[("a", "foo"), ("b", "bar")],
            "- {source_labels: [a, b], separator: '', target_label: h, action: hashmod, modulus: 1000}",
            Some(&[("a", "foo"), ("b", "bar"), ("h", &hash_mod("foobar", 1000).unwrap().to_string())]),
        );
        // An invalid rule (modulus 0, rejected by validation) does nothing.
        let cfg = RelabelConfig {
            source_labels: vec!["a".into()],
            target_label: "h".into(),
            action: RelabelAction::HashMod,
            modulus: 0,
            ..RelabelConfig::default()
        };
        let mut l = ls(&[("a", "foo")]);
        assert!(process(&mut l, &[cfg]));
        assert_eq!(l, ls(&[("a", "foo")]));
    }

    #[test]
    fn consul_example_from_the_compatibility_contract() {
        let yaml = "\
- source_labels: [__meta_consul_service]
  target_label: job
- source_labels: [__meta_consul_node]
  target_label: host
- source_labels: [__meta_consul_tags]
  regex: .*,no-scrape,.*
  action: drop
";
        check(
            "kept",
            &[
                ("__meta_consul_service", "node-exporter"),
                ("__meta_consul_node", "host-a"),
                ("__meta_consul_tags", ",metrics,linux,"),
                ("job", "consul-exporters"),
            ],
            yaml,
            Some(&[
                ("__meta_consul_node", "host-a"),
                ("__meta_consul_service", "node-exporter"),
                ("__meta_consul_tags", ",metrics,linux,"),
                ("host", "host-a"),
                ("job", "node-exporter"),
            ]),
        );
        check(
            "dropped by tag",
            &[
                ("__meta_consul_service", "x"),
                ("__meta_consul_tags", ",metrics,no-scrape,"),
            ],
            yaml,
            None,
        );
    }

    #[test]
    fn kubernetes_benchmark_rules() {
        // The "kubernetes" rules of Prometheus' BenchmarkRelabel.
        let yaml = r#"
- {source_labels: [__meta_kubernetes_pod_container_port_name], regex: .*-metrics, action: keep}
- {source_labels: [__meta_kubernetes_pod_label_name], action: drop, regex: ""}
- {source_labels: [__meta_kubernetes_pod_phase], regex: Succeeded|Failed, action: drop}
- {source_labels: [__meta_kubernetes_pod_annotation_prometheus_io_scrape], regex: "false", action: drop}
- {source_labels: [__meta_kubernetes_pod_annotation_prometheus_io_scheme], target_label: __scheme__, regex: (https?), replacement: $1, action: replace}
- {source_labels: [__meta_kubernetes_pod_annotation_prometheus_io_path], target_label: __metrics_path__, regex: (.+), replacement: $1, action: replace}
- {source_labels: [__address__, __meta_kubernetes_pod_annotation_prometheus_io_port], target_label: __address__, regex: '(.+?)(\:\d+)?;(\d+)', replacement: '$1:$3', action: replace}
- {regex: __meta_kubernetes_pod_annotation_prometheus_io_param_(.+), replacement: __param_$1, action: labelmap}
- {source_labels: [__meta_kubernetes_namespace, __meta_kubernetes_pod_label_name], separator: /, target_label: job, replacement: $1, action: replace}
- {source_labels: [__meta_kubernetes_pod_name, __meta_kubernetes_pod_container_name, __meta_kubernetes_pod_container_port_name], separator: ':', target_label: instance, action: replace}
- {target_label: cluster, replacement: dev-us-central-0}
- {source_labels: [__address__], target_label: __tmp_hash, modulus: 3, action: hashmod}
- {regex: __tmp_hash, action: labeldrop}
"#;
        let input: Pairs<'_> = &[
            ("__address__", "10.132.183.40:80"),
            ("__meta_kubernetes_namespace", "loki-boltdb-shipper"),
            ("__meta_kubernetes_pod_container_name", "promtail"),
            ("__meta_kubernetes_pod_container_port_name", "http-metrics"),
            (
                "__meta_kubernetes_pod_label_name",
                "promtail-loki-boltdb-shipper",
            ),
            (
                "__meta_kubernetes_pod_name",
                "promtail-loki-boltdb-shipper-jgtr7",
            ),
            ("__meta_kubernetes_pod_phase", "Running"),
            ("job", "kubernetes-pods"),
        ];
        let mut l = ls(input);
        assert!(process(&mut l, &rules(yaml)));
        assert_eq!(
            get(&l, "job"),
            Some("loki-boltdb-shipper/promtail-loki-boltdb-shipper")
        );
        assert_eq!(
            get(&l, "instance"),
            Some("promtail-loki-boltdb-shipper-jgtr7:promtail:http-metrics")
        );
        assert_eq!(get(&l, "cluster"), Some("dev-us-central-0"));
        assert_eq!(get(&l, "__address__"), Some("10.132.183.40:80"));
        assert_eq!(get(&l, "__tmp_hash"), None);
    }

    #[test]
    fn label_helpers() {
        let mut l: Labels = Vec::new();
        set_label(&mut l, "b", "2");
        set_label(&mut l, "a", "1");
        set_label(&mut l, "c", "");
        assert_eq!(l, ls(&[("a", "1"), ("b", "2")]));
        set_label(&mut l, "b", "3");
        set_label(&mut l, "a", "");
        assert_eq!(l, ls(&[("b", "3")]));
        assert_eq!(del_label(&mut l, "b"), Some("3".to_string()));
        assert_eq!(del_label(&mut l, "b"), None);
        assert_eq!(label_value(&l, "zz"), "");
        assert_eq!(
            labels_from_map(&map(&[("x", ""), ("y", "1")])),
            ls(&[("y", "1")])
        );
    }

    #[test]
    fn process_sorts_and_keeps_input_empty_values() {
        // Unsorted input is sorted first.
        let mut l: Labels = vec![("b".into(), "2".into()), ("a".into(), "1".into())];
        assert!(process(
            &mut l,
            &rules("- {source_labels: [a, b], target_label: c}")
        ));
        assert_eq!(l, ls(&[("a", "1"), ("b", "2"), ("c", "1;2")]));
        // No rules: untouched.
        let mut l: Labels = vec![("b".into(), "2".into()), ("a".into(), "".into())];
        assert!(process(&mut l, &[]));
        assert_eq!(l[0].0, "b");
        // An empty input value reads as absent and stays (as in Prometheus).
        let mut l: Labels = vec![("a".into(), "".into()), ("b".into(), "2".into())];
        assert!(process(
            &mut l,
            &rules("- {source_labels: [a], regex: '', action: keep}")
        ));
        assert_eq!(l, vec![("a".into(), "".into()), ("b".into(), "2".into())]);
        // labelmap of an empty value deletes the target, as Builder.Set("") does.
        let mut l: Labels = vec![("m_x".into(), "".into()), ("x".into(), "old".into())];
        assert!(process(
            &mut l,
            &rules("- {regex: 'm_(.*)', action: labelmap}")
        ));
        assert_eq!(l, vec![("m_x".to_string(), String::new())]);
    }

    #[test]
    fn parse_errors_name_the_rule() {
        let e = parse_relabel_configs(
            "- {target_label: a}\n- {action: hashmod, target_label: h}",
            NameValidationScheme::Utf8,
        )
        .unwrap_err();
        assert_eq!(
            e,
            "[1]: relabel configuration for hashmod requires non-zero modulus"
        );
        assert!(parse_relabel_configs("- {regex: '('}", NameValidationScheme::Utf8).is_err());
        assert!(parse_relabel_configs("", NameValidationScheme::Utf8)
            .unwrap()
            .is_empty());
    }

    // ---- targets -----------------------------------------------------------

    fn job<'a>(
        params: &'a BTreeMap<String, Vec<String>>,
        relabel: &'a [RelabelConfig],
    ) -> TargetParams<'a> {
        TargetParams {
            job_name: "job",
            scrape_interval: Duration::from_secs(1),
            scrape_timeout: Duration::from_secs(1),
            metrics_path: "/metrics",
            scheme: "https",
            params,
            relabel_configs: relabel,
            name_validation_scheme: NameValidationScheme::Utf8,
            prometheus_2x: false,
        }
    }

    const DEFAULTS: Pairs<'static> = &[
        ("__scheme__", "https"),
        ("__metrics_path__", "/metrics"),
        ("job", "job"),
        ("__scrape_interval__", "1s"),
        ("__scrape_timeout__", "1s"),
    ];

    fn with_defaults(extra: Pairs<'_>) -> Labels {
        let mut l = ls(DEFAULTS);
        for (n, v) in extra {
            set_label(&mut l, n, v);
        }
        l
    }

    fn populate(input: Pairs<'_>, j: &TargetParams<'_>) -> Result<Option<PopulatedTarget>, String> {
        populate_target_labels_with(&map(input), &BTreeMap::new(), j)
    }

    fn active(input: Pairs<'_>, j: &TargetParams<'_>) -> PopulatedTarget {
        populate(input, j).unwrap().unwrap()
    }

    // Cases modelled on Prometheus' scrape/manager_test.go (TestPopulateLabels).
    #[test]
    fn populate_regular() {
        let p = BTreeMap::new();
        let input: Pairs<'_> = &[("__address__", "1.2.3.4:1000"), ("custom", "value")];
        let got = active(input, &job(&p, &[]));
        assert_eq!(
            got,
            PopulatedTarget {
                labels: ls(&[
                    ("custom", "value"),
                    ("instance", "1.2.3.4:1000"),
                    ("job", "job")
                ]),
                internal_labels: with_defaults(&[
                    ("__address__", "1.2.3.4:1000"),
                    ("instance", "1.2.3.4:1000"),
                    ("custom", "value")
                ]),
                discovered: with_defaults(input).into_iter().collect(),
                url: "https://1.2.3.4:1000/metrics".into(),
                interval: std::time::Duration::from_secs(1),
                timeout: std::time::Duration::from_secs(1),
            }
        );
    }

    #[test]
    fn populate_predefined_labels_win_and_no_default_port() {
        let p = BTreeMap::new();
        let input: Pairs<'_> = &[
            ("__address__", "1.2.3.4"),
            ("__scheme__", "http"),
            ("__metrics_path__", "/custom"),
            ("job", "custom-job"),
            ("__scrape_interval__", "2s"),
            ("__scrape_timeout__", "2s"),
        ];
        let got = active(input, &job(&p, &[]));
        let mut want = ls(input);
        set_label(&mut want, "instance", "1.2.3.4");
        assert_eq!(got.internal_labels, want);
        assert_eq!(got.discovered, map(input));
        assert_eq!(got.url, "http://1.2.3.4/custom");
        assert_eq!(got.interval, std::time::Duration::from_secs(2));

        // Prometheus 2.x added the scheme's default port.
        let mut j = job(&p, &[]);
        j.prometheus_2x = true;
        let got = active(input, &j);
        assert_eq!(get(&got.internal_labels, "__address__"), Some("1.2.3.4:80"));
        assert_eq!(get(&got.labels, "instance"), Some("1.2.3.4:80"));
        assert_eq!(got.discovered.get("__address__").unwrap(), "1.2.3.4");
        assert_eq!(got.url, "http://1.2.3.4:80/custom");
    }

    #[test]
    fn populate_ipv6_and_instance() {
        let p = BTreeMap::new();
        let input: Pairs<'_> = &[("__address__", "[::1]"), ("instance", "custom-instance")];
        let got = active(input, &job(&p, &[]));
        assert_eq!(got.internal_labels, with_defaults(input));
        let mut j = job(&p, &[]);
        j.prometheus_2x = true;
        let got = active(input, &j);
        assert_eq!(get(&got.internal_labels, "__address__"), Some("[::1]:443"));
        assert_eq!(get(&got.labels, "instance"), Some("custom-instance"));
    }

    #[test]
    fn populate_default_ports_are_kept() {
        let p = BTreeMap::new();
        for (addr, scheme) in [("1.2.3.4:80", "http"), ("1.2.3.4:443", "https")] {
            for v2 in [false, true] {
                let mut j = job(&p, &[]);
                j.scheme = scheme;
                j.prometheus_2x = v2;
                let got = active(&[("__address__", addr)], &j);
                assert_eq!(get(&got.internal_labels, "__address__"), Some(addr));
                assert_eq!(get(&got.labels, "instance"), Some(addr));
            }
        }
    }

    #[test]
    fn populate_errors() {
        let p = BTreeMap::new();
        let j = job(&p, &[]);
        let err = |input: Pairs<'_>| populate(input, &j).unwrap_err();
        assert_eq!(err(&[("custom", "value")]), "no address");
        assert_eq!(
            err(&[
                ("__address__", "1.2.3.4:1000"),
                ("__scrape_interval__", "2notseconds")
            ]),
            "error parsing scrape interval: unknown unit \"notseconds\" in duration \"2notseconds\""
        );
        assert_eq!(
            err(&[
                ("__address__", "1.2.3.4:1000"),
                ("__scrape_timeout__", "2notseconds")
            ]),
            "error parsing scrape timeout: unknown unit \"notseconds\" in duration \"2notseconds\""
        );
        assert_eq!(
            err(&[
                ("__address__", "1.2.3.4:1000"),
                ("__scrape_interval__", "0s")
            ]),
            "scrape interval cannot be 0"
        );
        assert_eq!(
            err(&[
                ("__address__", "1.2.3.4:1000"),
                ("__scrape_timeout__", "0s")
            ]),
            "scrape timeout cannot be 0"
        );
        assert_eq!(
            err(&[
                ("__address__", "1.2.3.4:1000"),
                ("__scrape_interval__", "1s"),
                ("__scrape_timeout__", "2s")
            ]),
            "scrape timeout cannot be greater than scrape interval (\"2s\" > \"1s\")"
        );
        assert_eq!(
            err(&[("__address__", "1.2.3.4:1000/metrics")]),
            "\"1.2.3.4:1000/metrics\" is not a valid hostname"
        );
        assert_eq!(
            err(&[
                ("__address__", "1.2.3.4:1000"),
                ("__scrape_interval__", "1m1h")
            ]),
            "error parsing scrape interval: not a valid duration string: \"1m1h\""
        );
        // Prometheus 2.x with default ports: an unknown scheme (the message
        // names the configured scheme, as Prometheus does).
        let mut j2 = job(&p, &[]);
        j2.prometheus_2x = true;
        assert_eq!(
            populate(&[("__address__", "host"), ("__scheme__", "ftp")], &j2).unwrap_err(),
            "invalid scheme: \"https\""
        );
    }

    #[test]
    fn populate_address_from_relabeling_and_drop() {
        let p = BTreeMap::new();
        let r = rules(
            "- {source_labels: [custom], regex: '(.*)', replacement: '${1}', target_label: __address__}",
        );
        let got = active(&[("custom", "host:1234")], &job(&p, &r));
        assert_eq!(
            got.internal_labels,
            with_defaults(&[
                ("__address__", "host:1234"),
                ("instance", "host:1234"),
                ("custom", "host:1234")
            ])
        );
        assert_eq!(
            got.discovered,
            with_defaults(&[("custom", "host:1234")])
                .into_iter()
                .collect()
        );
        let r = rules("- {source_labels: [custom], regex: nomatch, action: keep}");
        let input: Pairs<'_> = &[("__address__", "h:1"), ("custom", "x")];
        assert_eq!(populate(input, &job(&p, &r)), Ok(None));
        assert_eq!(
            populate_discovered_labels_with(&map(input), &BTreeMap::new(), &job(&p, &r)),
            with_defaults(input).into_iter().collect()
        );
        // Dropped targets are not checked: no address is fine.
        assert_eq!(populate(&[("custom", "x")], &job(&p, &r)), Ok(None));
        // Relabeling may remove the address.
        let r = rules("- {regex: __address__, action: labeldrop}");
        assert_eq!(
            populate(&[("__address__", "h:1")], &job(&p, &r)).unwrap_err(),
            "no address"
        );
    }

    #[test]
    fn populate_meta_removed_other_reserved_kept() {
        let p = BTreeMap::new();
        let r = rules("- {source_labels: [__meta_x], target_label: __tmp_y}");
        let got = active(
            &[("__address__", "h:1"), ("__meta_x", "m"), ("__foo", "f")],
            &job(&p, &r),
        );
        let internal = &got.internal_labels;
        assert_eq!(get(internal, "__meta_x"), None);
        assert_eq!(get(internal, "__tmp_y"), Some("m"));
        assert_eq!(get(internal, "__foo"), Some("f"));
        assert_eq!(got.discovered.get("__meta_x").unwrap(), "m");
        assert_eq!(got.labels, ls(&[("instance", "h:1"), ("job", "job")]));
        assert_eq!(without_reserved(internal), got.labels);
    }

    #[test]
    fn populate_params_and_group_labels() {
        let p: BTreeMap<String, Vec<String>> = [
            (
                "module".to_string(),
                vec!["http_2xx".to_string(), "second".to_string()],
            ),
            ("target".to_string(), vec!["cfg".to_string()]),
            ("none".to_string(), vec![]),
        ]
        .into_iter()
        .collect();
        let target = map(&[
            ("__address__", "h:1"),
            ("__param_target", "from-sd"),
            ("own", "t"),
            ("masked", ""),
        ]);
        let group = map(&[
            ("own", "g"),
            ("grp", "g"),
            ("masked", "g"),
            ("job", "from-group"),
        ]);
        let got = populate_target_labels_with(&target, &group, &job(&p, &[]))
            .unwrap()
            .unwrap();
        let d = &got.discovered;
        assert_eq!(d["__param_module"], "http_2xx");
        assert_eq!(d["__param_target"], "from-sd");
        assert_eq!(d.get("__param_none"), None);
        assert_eq!(d["own"], "t");
        assert_eq!(d["grp"], "g");
        assert_eq!(
            d.get("masked"),
            None,
            "a target's empty label hides the group's"
        );
        assert_eq!(d["job"], "from-group");
        assert_eq!(
            got.url,
            "https://h:1/metrics?module=http_2xx&module=second&target=from-sd"
        );
        // Prometheus 2.x: the config's params override discovered ones.
        let mut j = job(&p, &[]);
        j.prometheus_2x = true;
        let got = populate_target_labels_with(&target, &group, &j)
            .unwrap()
            .unwrap();
        assert_eq!(got.discovered["__param_target"], "cfg");
        assert_eq!(
            got.url,
            "https://h:1/metrics?module=http_2xx&module=second&target=cfg"
        );
    }

    #[test]
    fn populate_from_a_parsed_scrape_config() {
        let text = "\
global:
  scrape_interval: 30s
scrape_configs:
  - job_name: consul-exporters
    scrape_interval: 1m30s
    params:
      format: [prometheus]
    consul_sd_configs:
      - server: 127.0.0.1:8500
        tags: [metrics]
    relabel_configs:
      - source_labels: [__meta_consul_service]
        target_label: job
      - source_labels: [__meta_consul_node]
        target_label: host
      - source_labels: [__meta_consul_tags]
        regex: .*,no-scrape,.*
        action: drop
";
        let cfg = Config::parse(text, "prometheus.yml", "").unwrap();
        let sc = cfg.scrape_config("consul-exporters").unwrap();
        let target = map(&[
            ("__address__", "10.0.0.5:9100"),
            ("__meta_consul_service", "node-exporter"),
            ("__meta_consul_node", "host-a"),
            ("__meta_consul_tags", ",metrics,"),
        ]);
        let got = populate_target_labels(&target, &BTreeMap::new(), sc)
            .unwrap()
            .unwrap();
        assert_eq!(got.discovered["job"], "consul-exporters");
        assert_eq!(got.discovered["__scrape_interval__"], "1m30s");
        assert_eq!(got.discovered["__scrape_timeout__"], "10s");
        assert_eq!(got.discovered["__param_format"], "prometheus");
        assert_eq!(
            got.labels,
            ls(&[
                ("host", "host-a"),
                ("instance", "10.0.0.5:9100"),
                ("job", "node-exporter")
            ])
        );
        assert_eq!(got.url, "http://10.0.0.5:9100/metrics?format=prometheus");
        assert_eq!(got.interval, std::time::Duration::from_secs(90));
        assert_eq!(got.timeout, std::time::Duration::from_secs(10));

        let mut dropped = target.clone();
        dropped.insert("__meta_consul_tags".into(), ",metrics,no-scrape,".into());
        assert_eq!(
            populate_target_labels(&dropped, &BTreeMap::new(), sc),
            Ok(None)
        );
        let d = populate_discovered_labels(&dropped, &BTreeMap::new(), sc);
        assert_eq!(d["job"], "consul-exporters");
        assert_eq!(d["__meta_consul_tags"], ",metrics,no-scrape,");
    }

    #[test]
    fn scrape_url_like_go() {
        // Prometheus' scrape/target_test.go TestTargetURL.
        let params: BTreeMap<String, Vec<String>> = [
            (
                "abc".to_string(),
                vec!["foo".to_string(), "bar".to_string(), "baz".to_string()],
            ),
            ("xyz".to_string(), vec!["hoo".to_string()]),
        ]
        .into_iter()
        .collect();
        let l = ls(&[
            ("__address__", "example.com:1234"),
            ("__scheme__", "https"),
            ("__metrics_path__", "/metricz"),
            ("__param_abc", "overwrite"),
            ("__param_cde", "huu"),
        ]);
        assert_eq!(
            scrape_url(&l, &params),
            "https://example.com:1234/metricz?abc=overwrite&abc=bar&abc=baz&cde=huu&xyz=hoo"
        );
        let none = BTreeMap::new();
        let l = ls(&[
            ("__address__", "[::1]:9090"),
            ("__scheme__", "http"),
            ("__metrics_path__", "/a b/ü?x;y=$@"),
        ]);
        assert_eq!(
            scrape_url(&l, &none),
            "http://[::1]:9090/a%20b/%C3%BC%3Fx;y=$@"
        );
        let l = ls(&[
            ("__address__", "h:1"),
            ("__scheme__", "http"),
            ("__metrics_path__", "probe"),
            ("__param_q", "a b&c=d/é~"),
        ]);
        assert_eq!(
            scrape_url(&l, &none),
            "http://h:1/probe?q=a+b%26c%3Dd%2F%C3%A9~"
        );
        let l = ls(&[("__address__", "h:1"), ("__scheme__", "http")]);
        assert_eq!(scrape_url(&l, &none), "http://h:1");
    }

    #[test]
    fn go_helpers() {
        assert_eq!(parse_model_duration("0"), Ok(0));
        assert_eq!(parse_model_duration("1m30s"), Ok(90_000_000_000));
        assert_eq!(parse_model_duration("1s500ms"), Ok(1_500_000_000));
        assert_eq!(
            parse_model_duration(""),
            Err("empty duration string".into())
        );
        assert_eq!(
            parse_model_duration("1.5s"),
            Err("unknown unit \".\" in duration \"1.5s\"".into())
        );
        assert_eq!(
            parse_model_duration("s"),
            Err("not a valid duration string: \"s\"".into())
        );
        assert_eq!(
            parse_model_duration("5"),
            Err("not a valid duration string: \"5\"".into())
        );
        assert_eq!(
            parse_model_duration("1s1s"),
            Err("not a valid duration string: \"1s1s\"".into())
        );
        assert_eq!(
            parse_model_duration("300y"),
            Err("duration out of range".into())
        );
        assert_eq!(
            parse_model_duration("99999999999999999999s"),
            Err("not a valid duration string: \"99999999999999999999s\"".into())
        );
        assert_eq!(split_host_port("a:1"), Some(("a", "1")));
        assert_eq!(split_host_port("[::1]:1"), Some(("::1", "1")));
        assert_eq!(split_host_port("[::1]"), None);
        assert_eq!(split_host_port("::1"), None);
        assert_eq!(split_host_port("a"), None);
        assert_eq!(split_host_port("a:"), Some(("a", "")));
        assert!(needs_port("a") && needs_port("[::1]") && !needs_port("a:1") && !needs_port("::1"));
        assert_eq!(quote("a\"b\\c\n\u{1}é"), "\"a\\\"b\\\\c\\n\\x01é\"");
    }

    #[test]
    fn fuzz_inputs_do_not_panic() {
        let inputs: [&[u8]; 8] = [
            b"",
            b"\0\0",
            b"- {source_labels: [a], target_label: b}\0a=1\nb=2\n__address__=h:1\0g=3",
            b"- {action: hashmod, modulus: 0, target_label: h}\n- {target_label: ''}\n- {action: lowercase}\0a=A",
            b"- {regex: '(.*)', replacement: '$1$1', action: labelmap}\0=x\nab=c\n__address__=[::1]",
            b"- {regex: '(', action: drop}\0a=1",
            b"- {source_labels: [__address__], regex: '(.*)', target_label: __address__, replacement: '$1/x'}\0__address__=h",
            b"not yaml: [\0\xff\xfe=\xff\n__scrape_interval__=1s\n__address__=h",
        ];
        for i in inputs {
            crate::fuzzing::relabel(i);
        }
    }
}
