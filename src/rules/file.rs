//! Prometheus rule files: parsing and validation with errors that name the
//! file, line, group and rule, as promtool prints them:
//! `rules.yml: 12:15: group "api", rule 2, "HighErrorRate": could not parse expression: 1:4: parse error: unexpected end of input`.

use crate::config::duration::Duration;
use crate::config::location::{LocTree, Path};
use promql_parser::parser::Expr;
use serde::Deserialize;
use std::collections::BTreeMap;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    groups: Vec<RawGroup>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawGroup {
    #[serde(default)]
    name: String,
    #[serde(default)]
    interval: Option<Duration>,
    #[serde(default)]
    query_offset: Option<Duration>,
    #[serde(default)]
    limit: u64,
    #[serde(default)]
    rules: Vec<RawRule>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    #[serde(default)]
    record: Option<String>,
    #[serde(default)]
    alert: Option<String>,
    #[serde(default)]
    expr: Option<ExprText>,
    #[serde(default, rename = "for")]
    for_: Option<Duration>,
    #[serde(default)]
    keep_firing_for: Option<Duration>,
    #[serde(default)]
    labels: BTreeMap<String, String>,
    #[serde(default)]
    annotations: BTreeMap<String, String>,
}

/// `expr` may be written as a number in YAML (`expr: 1`).
#[derive(Debug)]
struct ExprText(String);

impl<'de> Deserialize<'de> for ExprText {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        crate::config::duration::scalar_string(d).map(ExprText)
    }
}

/// A recording or alerting rule.
#[derive(Debug, Clone)]
pub struct RuleDef {
    /// `record` name or `alert` name.
    pub name: String,
    /// True for an alerting rule.
    pub alerting: bool,
    /// The expression as written.
    pub expr_text: String,
    /// The parsed expression.
    pub expr: Expr,
    /// `for` (alerting).
    pub hold: std::time::Duration,
    /// `keep_firing_for` (alerting).
    pub keep_firing_for: std::time::Duration,
    /// Labels to add (templates for alerting rules).
    pub labels: BTreeMap<String, String>,
    /// Annotations (alerting; templates).
    pub annotations: BTreeMap<String, String>,
}

/// A rule group.
#[derive(Debug, Clone)]
pub struct GroupDef {
    /// Group name.
    pub name: String,
    /// The file it comes from.
    pub file: String,
    /// Evaluation interval, if the group sets one.
    pub interval: Option<std::time::Duration>,
    /// Evaluation time offset into the past.
    pub query_offset: Option<std::time::Duration>,
    /// Most series (recording) or alerts (alerting) a rule may produce; 0 = no limit.
    pub limit: u64,
    /// Its rules, in order.
    pub rules: Vec<RuleDef>,
}

fn valid_metric_name(s: &str) -> bool {
    let mut it = s.chars();
    match it.next() {
        Some(c) if c.is_ascii_alphabetic() || c == '_' || c == ':' => {}
        _ => return false,
    }
    it.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

use crate::promql::functions::valid_label_name;

/// Parses and validates one rule file's text; `file` names it in errors.
pub fn parse_rule_file(text: &str, file: &str) -> Result<Vec<GroupDef>, String> {
    let tree = LocTree::parse(text);
    let yaml = if tree.is_null() { "{}" } else { text };
    let raw: RawFile = serde_saphyr::from_str(yaml)
        .map_err(|e| crate::config::de_error(&e, file, &tree).to_string())?;
    let pos = |p: &Path| -> String {
        match tree.pos(p) {
            Some(x) => format!("{}:{}", x.line, x.column),
            None => "0:0".into(),
        }
    };
    let mut out: Vec<GroupDef> = Vec::with_capacity(raw.groups.len());
    for (gi, g) in raw.groups.into_iter().enumerate() {
        let gp = Path::root().key("groups").idx(gi);
        if g.name.is_empty() {
            return Err(format!("{file}: {}: groupname must not be empty", pos(&gp)));
        }
        if out.iter().any(|x| x.name == g.name) {
            return Err(format!(
                "{file}: {}: groupname: \"{}\" is repeated in the same file",
                pos(&gp.key("name")),
                g.name
            ));
        }
        let mut rules = Vec::with_capacity(g.rules.len());
        for (ri, r) in g.rules.into_iter().enumerate() {
            let rp = gp.key("rules").idx(ri);
            let rule_name = r
                .record
                .clone()
                .or_else(|| r.alert.clone())
                .unwrap_or_default();
            let err = |p: &Path, msg: String| -> String {
                format!(
                    "{file}: {}: group {:?}, rule {}, {:?}: {msg}",
                    pos(p),
                    g.name,
                    ri + 1,
                    rule_name
                )
            };
            let (alerting, name, name_key) = match (&r.record, &r.alert) {
                (Some(_), Some(_)) => {
                    return Err(err(
                        &rp,
                        "only one of 'record' and 'alert' must be set".into(),
                    ))
                }
                (None, None) => {
                    return Err(err(&rp, "one of 'record' or 'alert' must be set".into()))
                }
                (Some(n), None) => (false, n.clone(), "record"),
                (None, Some(n)) => (true, n.clone(), "alert"),
            };
            if name.is_empty() {
                return Err(err(
                    &rp.key(name_key),
                    format!("field '{name_key}' must be set in rule"),
                ));
            }
            let expr_text = r.expr.as_ref().map(|e| e.0.clone()).unwrap_or_default();
            if expr_text.trim().is_empty() {
                return Err(err(&rp, "field 'expr' must be set in rule".into()));
            }
            let expr = crate::promql::parse::parse(&expr_text)
                .map_err(|e| err(&rp.key("expr"), format!("could not parse expression: {e}")))?;
            if !alerting {
                if !valid_metric_name(&name) {
                    return Err(err(
                        &rp.key("record"),
                        format!("invalid recording rule name: {name}"),
                    ));
                }
                if !r.annotations.is_empty() {
                    return Err(err(
                        &rp.key("annotations"),
                        "invalid field 'annotations' in recording rule".into(),
                    ));
                }
                if r.for_.is_some() {
                    return Err(err(
                        &rp.key("for"),
                        "invalid field 'for' in recording rule".into(),
                    ));
                }
                if r.keep_firing_for.is_some() {
                    return Err(err(
                        &rp.key("keep_firing_for"),
                        "invalid field 'keep_firing_for' in recording rule".into(),
                    ));
                }
            }
            for (k, v) in &r.labels {
                if !valid_label_name(k) || k == "__name__" {
                    return Err(err(
                        &rp.key("labels").key(k),
                        format!("invalid label name: {k}"),
                    ));
                }
                if alerting {
                    crate::template::Template::parse(
                        &format!("__alert_{name}"),
                        &format!("{}{v}", crate::template::ALERT_TEMPLATE_PREAMBLE),
                    )
                    .map_err(|e| err(&rp.key("labels").key(k), format!("msg={e}")))?;
                }
            }
            for (k, v) in &r.annotations {
                if !valid_label_name(k) {
                    return Err(err(
                        &rp.key("annotations").key(k),
                        format!("invalid annotation name: {k}"),
                    ));
                }
                crate::template::Template::parse(
                    &format!("__alert_{name}"),
                    &format!("{}{v}", crate::template::ALERT_TEMPLATE_PREAMBLE),
                )
                .map_err(|e| err(&rp.key("annotations").key(k), format!("msg={e}")))?;
            }
            rules.push(RuleDef {
                name,
                alerting,
                expr_text,
                expr,
                hold: r.for_.map(Into::into).unwrap_or_default(),
                keep_firing_for: r.keep_firing_for.map(Into::into).unwrap_or_default(),
                labels: r.labels,
                annotations: r.annotations,
            });
        }
        out.push(GroupDef {
            name: g.name,
            file: file.to_string(),
            interval: g
                .interval
                .map(Into::into)
                .filter(|d: &std::time::Duration| !d.is_zero()),
            query_offset: g.query_offset.map(Into::into),
            limit: g.limit,
            rules,
        });
    }
    Ok(out)
}

/// Reads and parses a rule file.
pub fn load_rule_file(path: &std::path::Path) -> Result<Vec<GroupDef>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    parse_rule_file(&text, &path.display().to_string())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn parses_groups_and_rules() {
        let g = parse_rule_file(
            r#"
groups:
  - name: api
    interval: 30s
    rules:
      - record: job:requests:rate5m
        expr: sum by (job) (rate(requests_total[5m]))
        labels:
          team: web
      - alert: HighErrors
        expr: job:requests:rate5m > 10
        for: 5m
        keep_firing_for: 1m
        labels:
          severity: page
        annotations:
          summary: "{{ $labels.job }} is failing"
"#,
            "r.yml",
        )
        .unwrap();
        assert_eq!(g.len(), 1);
        assert_eq!(g[0].interval, Some(std::time::Duration::from_secs(30)));
        assert_eq!(g[0].rules.len(), 2);
        assert!(!g[0].rules[0].alerting);
        assert!(g[0].rules[1].alerting);
        assert_eq!(g[0].rules[1].hold, std::time::Duration::from_secs(300));
    }

    #[test]
    fn errors_name_file_line_group_and_rule() {
        let e = parse_rule_file(
            "groups:\n  - name: api\n    rules:\n      - alert: Bad\n        expr: 1 +\n",
            "r.yml",
        )
        .unwrap_err();
        assert_eq!(
            e,
            "r.yml: 5:9: group \"api\", rule 1, \"Bad\": could not parse expression: 1:4: parse error: unexpected end of input"
        );
        let e = parse_rule_file(
            "groups:\n  - name: api\n    rules:\n      - record: 'bad name'\n        expr: up\n",
            "r.yml",
        )
        .unwrap_err();
        assert!(e.contains("invalid recording rule name: bad name"), "{e}");
        assert!(e.starts_with("r.yml: 4:"), "{e}");
        let e = parse_rule_file("groups:\n  - name: a\n    rulez: []\n", "r.yml").unwrap_err();
        assert!(e.contains("rulez"), "{e}");
        assert!(e.starts_with("r.yml:3"), "{e}");
        let e = parse_rule_file(
            "groups:\n  - name: a\n    rules: []\n  - name: a\n    rules: []\n",
            "r.yml",
        )
        .unwrap_err();
        assert!(e.contains("repeated in the same file"), "{e}");
        let e = parse_rule_file(
            "groups:\n  - name: a\n    rules:\n      - record: x\n        expr: up\n        for: 1m\n",
            "r.yml",
        )
        .unwrap_err();
        assert!(e.contains("invalid field 'for' in recording rule"), "{e}");
        let e = parse_rule_file(
            "groups:\n  - name: a\n    rules:\n      - alert: A\n        expr: up\n        annotations:\n          x: '{{ .Foo '\n",
            "r.yml",
        )
        .unwrap_err();
        assert!(e.contains("r.yml: 7:"), "{e}");
    }
}
