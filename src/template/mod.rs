//! Go `text/template` for alerting-rule, recording-rule and notification
//! templates, with Prometheus' and Alertmanager's function sets.
//!
//! This is a from-scratch implementation of the language as Go's
//! `text/template` (Go 1.22/1.23 semantics) defines it. No existing Rust crate
//! was used: the one maintained candidate (`gtmpl`) takes plain `fn`
//! pointers as template functions (so `query`, `externalURL` and
//! `pathPrefix` could not see per-expansion state), lexes on a spawned thread,
//! has no `$x = value` assignment, no `break`/`continue`, no `html`/`js`, its
//! own value type and error texts that differ from Go's.
//!
//! # Language
//!
//! Text and actions `{{ }}` with the trim markers `{{- ` and ` -}}`, comments
//! `{{/* */}}`, the dot, fields and map keys (`.Labels.instance`), method calls
//! on the few types that have them (`(toTime 1).Format "2006"`), variables
//! (`$x := …`, `$x = …`, `$`), pipelines, parenthesised pipelines, function
//! calls, `if`/`else if`/`else`, `range` (lists, maps in key order, integers,
//! `$i, $v :=`, `else`, `break`, `continue`), `with`/`else with`,
//! `define`/`template`/`block`, and the literals of Go templates (strings with
//! escapes, raw strings, characters, numbers in all Go bases, `true`, `false`,
//! `nil`). Unknown functions and undefined variables are parse errors, as in Go.
//!
//! Functions: Go's builtins (`and or not len index slice print printf println
//! html js urlquery eq ne lt le gt ge call`) plus, for [`Dialect::Prometheus`],
//! Prometheus' `template/template.go` set (`query first label value strvalue
//! args reReplaceAll safeHtml match title toUpper toLower graphLink tableLink
//! sortByLabel stripPort stripDomain humanize humanize1024 humanizeDuration
//! humanizePercentage humanizeTimestamp toTime pathPrefix externalURL
//! parseDuration`) or, for [`Dialect::Alertmanager`], Alertmanager's
//! (`toUpper toLower title trimSpace join match safeHtml safeUrl urlUnescape
//! reReplaceAll stringSlice date tz since humanizeDuration toJson`).
//!
//! `printf`/`print`/`println` and the printing of values follow Go's `fmt`
//! (verbs `%v %s %d %f %e %g %x %X %o %b %c %q %U %t %T %%`, flags `+ - # 0
//! space`, width, precision, `*`, `[n]`, and the `%!d(string=x)` /
//! `%!d(MISSING)` / `%!(EXTRA …)` error forms); floats print as Go prints them
//! (`1.234567e+06`, `+Inf`, `NaN`).
//!
//! # Data
//!
//! The dot is a [`Value`]; [`From<&serde_json::Value>`] maps JSON objects to
//! `map[string]interface{}`, arrays to `[]interface{}`, integers to `int`,
//! other numbers to `float64`. [`Value::str_map`] builds a `map[string]string`
//! (a missing key gives `""` under `missingkey=zero`, where an
//! `interface{}`-valued map gives `<no value>`), [`Value::kv`] Alertmanager's
//! `template.KV` (with `SortedPairs`, `Names`, `Values`, `Remove`, `String`).
//!
//! # Errors
//!
//! Parse errors read `template: <name>:<line>: <message>` and execution errors
//! `template: <name>:<line>:<col>: executing "<name>" at <<node>>: <message>`,
//! with Go's messages (`error calling humanize: strconv.ParseFloat: parsing
//! "one": invalid syntax`, `function "foo" not defined`, …).
//!
//! # Limits
//!
//! Parsing stops at 100 nested control structures/parentheses (`max expression
//! depth exceeded`); execution stops when template calls, control structures
//! and pipelines nest 300 deep (`exceeded maximum template depth (300)`; Go
//! counts template calls only, up to 100 000, which would overflow a thread's
//! stack here — at the limit an unoptimised build uses about 0.8 MiB of
//! stack). Like Go, there is no bound on loop iterations or output size.
//!
//! # Known gaps
//!
//! Complex numbers, hexadecimal floating-point literals and `%x` on floats are
//! not supported; `\x`/octal string escapes that form invalid UTF-8 become
//! U+FFFD; regular expressions use the `regex` crate (RE2 syntax as in Go, with
//! `\d \w \s \b` rewritten to Go's ASCII meaning; `\Q…\E` unsupported); times
//! are UTC only (`tz` knows only `UTC`/`Local`); `title` approximates Unicode
//! word breaking; pointers nested inside printed values print as `&{…}` where
//! Go prints an address.
//!
//! # Layout
//!
//! This file holds the values and the public API; `lex` (text into items),
//! `ast` (trees and how Go prints them), `parse` (items into trees, Go
//! literals), `exec` (running a tree), `funcs` (builtins and the Prometheus
//! and Alertmanager sets), `gofmt` (Go's `fmt` verbs, float formatting and
//! quoting), `time` (Go's dates, durations and layouts), `tests`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Arc;

mod ast;
mod exec;
mod funcs;
mod gofmt;
mod lex;
mod parse;
#[cfg(test)]
mod tests;
mod time;

use ast::*;
use exec::*;
use funcs::*;
use gofmt::*;
use lex::*;
use parse::*;
use time::*;

use crate::gocompat::duration::{format_duration, parse_model_duration};
use crate::gocompat::quote::{
    can_backquote, is_print, quote, quote_ascii, quote_rune, unquote, unquote_char,
};
use crate::gocompat::strconv::{format_float, parse_float, parse_int, FloatError};

// ===========================================================================
// Values
// ===========================================================================

/// A value of the template data model: what Go templates see through
/// `interface{}`.
#[derive(Clone, Debug, Default)]
pub enum Value {
    /// Go's `nil` (also a missing value: printed as `<no value>` by an action).
    #[default]
    Nil,
    /// `bool`.
    Bool(bool),
    /// `int`.
    Int(i64),
    /// `uint64` (JSON integers above `i64::MAX`).
    Uint(u64),
    /// `float64`.
    Float(f64),
    /// `string`.
    Str(Arc<str>),
    /// A slice; its Go type name decides which functions and methods accept it.
    List(Arc<List>),
    /// `map[string]interface{}`.
    Map(Arc<BTreeMap<String, Value>>),
    /// `map[string]string` or Alertmanager's `template.KV`.
    StrMap(Arc<StrMap>),
    /// A struct (or pointer to struct) with named fields.
    Struct(Arc<Struct>),
    /// `time.Time` (always UTC).
    Time(Time),
    /// `time.Duration` in nanoseconds.
    Duration(i64),
}

/// A typed slice.
#[derive(Clone, Debug)]
pub struct List {
    /// Go type name, e.g. `[]interface {}`, `[]string`,
    /// `template.queryResult`, `template.Alerts`, `template.Pairs`.
    pub type_name: String,
    /// The elements.
    pub items: Vec<Value>,
}

/// A map of strings to strings.
#[derive(Clone, Debug)]
pub struct StrMap {
    /// `true` for Alertmanager's `template.KV` (prints as `a=b, c=d` and has
    /// methods), `false` for a plain `map[string]string`.
    pub kv: bool,
    /// The entries.
    pub map: BTreeMap<String, String>,
}

/// A struct value.
#[derive(Clone, Debug)]
pub struct Struct {
    /// Go type name; a leading `*` marks a pointer (printed as `&{…}`).
    pub type_name: String,
    /// Fields in declaration order.
    pub fields: Vec<(String, Value)>,
}

/// A point in time, UTC.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Time {
    /// Seconds since the Unix epoch.
    pub secs: i64,
    /// Nanoseconds within the second (`0..1_000_000_000`).
    pub nanos: u32,
}

const T_ANY_LIST: &str = "[]interface {}";
const T_STR_LIST: &str = "[]string";
const T_QUERY_RESULT: &str = "template.queryResult";
const T_SAMPLE: &str = "*template.sample";
const T_ALERTS: &str = "template.Alerts";
const T_ALERT_LIST: &str = "[]template.Alert";
const T_PAIRS: &str = "template.Pairs";
const T_PAIR: &str = "template.Pair";
const T_ALERT_DATA: &str = "struct { Labels map[string]string; ExternalLabels map[string]string; ExternalURL string; Value interface {} }";

impl Value {
    /// A string value.
    pub fn str(s: &str) -> Value {
        Value::Str(Arc::from(s))
    }

    /// A `map[string]interface{}`.
    pub fn map(m: BTreeMap<String, Value>) -> Value {
        Value::Map(Arc::new(m))
    }

    /// A `map[string]string` (Prometheus' label maps).
    pub fn str_map(m: BTreeMap<String, String>) -> Value {
        Value::StrMap(Arc::new(StrMap { kv: false, map: m }))
    }

    /// Alertmanager's `template.KV`.
    pub fn kv(m: BTreeMap<String, String>) -> Value {
        Value::StrMap(Arc::new(StrMap { kv: true, map: m }))
    }

    /// A `[]interface {}`.
    pub fn list(items: Vec<Value>) -> Value {
        Value::typed_list(T_ANY_LIST, items)
    }

    /// A slice with the given Go type name (`template.Alerts` gets the
    /// `Firing`/`Resolved` methods, `template.Pairs` `Names`/`Values`/`String`).
    pub fn typed_list(type_name: &str, items: Vec<Value>) -> Value {
        Value::List(Arc::new(List {
            type_name: type_name.to_string(),
            items,
        }))
    }

    /// A struct with the given Go type name and fields in declaration order.
    pub fn structure(type_name: &str, fields: Vec<(String, Value)>) -> Value {
        Value::Struct(Arc::new(Struct {
            type_name: type_name.to_string(),
            fields,
        }))
    }

    /// A `time.Time` from Unix seconds and nanoseconds.
    pub fn time(secs: i64, nanos: u32) -> Value {
        Value::Time(Time {
            secs: secs + i64::from(nanos / 1_000_000_000),
            nanos: nanos % 1_000_000_000,
        })
    }

    /// Go's type name of the value, as `%T` prints it.
    pub fn type_name(&self) -> String {
        match self {
            Value::Nil => "<nil>".into(),
            Value::Bool(_) => "bool".into(),
            Value::Int(_) => "int".into(),
            Value::Uint(_) => "uint64".into(),
            Value::Float(_) => "float64".into(),
            Value::Str(_) => "string".into(),
            Value::List(l) => l.type_name.clone(),
            Value::Map(_) => "map[string]interface {}".into(),
            Value::StrMap(m) => {
                if m.kv {
                    "template.KV".into()
                } else {
                    "map[string]string".into()
                }
            }
            Value::Struct(s) => s.type_name.clone(),
            Value::Time(_) => "time.Time".into(),
            Value::Duration(_) => "time.Duration".into(),
        }
    }

    fn is_nil(&self) -> bool {
        matches!(self, Value::Nil)
    }

    fn field(&self, name: &str) -> Option<&Value> {
        match self {
            Value::Struct(s) => s.fields.iter().find(|(n, _)| n == name).map(|(_, v)| v),
            _ => None,
        }
    }
}

impl From<&serde_json::Value> for Value {
    fn from(v: &serde_json::Value) -> Value {
        match v {
            serde_json::Value::Null => Value::Nil,
            serde_json::Value::Bool(b) => Value::Bool(*b),
            serde_json::Value::Number(n) => {
                if let Some(i) = n.as_i64() {
                    Value::Int(i)
                } else if let Some(u) = n.as_u64() {
                    Value::Uint(u)
                } else {
                    Value::Float(n.as_f64().unwrap_or(f64::NAN))
                }
            }
            serde_json::Value::String(s) => Value::str(s),
            serde_json::Value::Array(a) => Value::list(a.iter().map(Value::from).collect()),
            serde_json::Value::Object(o) => {
                Value::map(o.iter().map(|(k, v)| (k.clone(), Value::from(v))).collect())
            }
        }
    }
}

impl From<&str> for Value {
    fn from(s: &str) -> Value {
        Value::str(s)
    }
}

impl From<String> for Value {
    fn from(s: String) -> Value {
        Value::Str(Arc::from(s))
    }
}

impl From<f64> for Value {
    fn from(f: f64) -> Value {
        Value::Float(f)
    }
}

impl From<i64> for Value {
    fn from(i: i64) -> Value {
        Value::Int(i)
    }
}

impl From<bool> for Value {
    fn from(b: bool) -> Value {
        Value::Bool(b)
    }
}

// ===========================================================================
// Public API
// ===========================================================================

/// Which function set templates may call (unknown names are parse errors).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Dialect {
    /// Prometheus' alerting/recording rule templates (`template/template.go`).
    #[default]
    Prometheus,
    /// Alertmanager's notification templates (`template/template.go`
    /// `DefaultFuncs`).
    Alertmanager,
}

/// Go's `missingkey` option: what a missing map key evaluates to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum MissingKey {
    /// `missingkey=default`/`invalid`: no value (`<no value>` when printed).
    Invalid,
    /// `missingkey=zero`: the map's zero value (`""` for `map[string]string`,
    /// nil for `map[string]interface{}`). Prometheus and Alertmanager use this.
    #[default]
    Zero,
    /// `missingkey=error`: execution stops with `map has no entry for key`.
    Error,
}

/// The callback behind the `query` template function: runs a PromQL instant
/// query (at the caller's evaluation time) and returns its samples.
pub type QueryFn<'a> = dyn Fn(&str) -> Result<Samples, String> + 'a;

/// Samples returned by a [`QueryFn`]: label sets and values.
pub type Samples = Vec<(BTreeMap<String, String>, f64)>;

/// Per-expansion environment of the Prometheus functions.
#[derive(Default)]
pub struct Env<'a> {
    /// Runs `query "…"`; `None` makes `query` fail.
    pub query: Option<&'a QueryFn<'a>>,
    /// What `externalURL` returns (the external URL, as `url.URL.String()`).
    pub external_url: String,
    /// What `pathPrefix` returns (the external URL's path).
    pub path_prefix: String,
}

/// Execution bounds (the fuzz target uses tight ones).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Limits {
    pub(crate) max_depth: usize,
    pub(crate) max_steps: Option<u64>,
    pub(crate) max_output: Option<usize>,
}

const DEFAULT_LIMITS: Limits = Limits {
    max_depth: 300,
    max_steps: None,
    max_output: None,
};

const MAX_PARSE_DEPTH: usize = 100;

struct Tree {
    name: String,
    parse_name: String,
    text: Arc<str>,
    root: Vec<Node>,
}

/// A parsed set of templates: the top-level one plus every `define`/`block`.
pub struct Template {
    name: String,
    trees: BTreeMap<String, Arc<Tree>>,
    dialect: Dialect,
    pub(crate) missing_key: MissingKey,
    pub(crate) limits: Limits,
}

impl std::fmt::Debug for Template {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Template")
            .field("name", &self.name)
            .field("templates", &self.trees.keys().collect::<Vec<_>>())
            .field("dialect", &self.dialect)
            .field("missing_key", &self.missing_key)
            .finish()
    }
}

impl Template {
    /// Parses `text` as the template `name` with Prometheus' functions and
    /// `missingkey=zero` (as Prometheus' expander). Errors read like Go's:
    /// `template: <name>:<line>: <msg>`.
    pub fn parse(name: &str, text: &str) -> Result<Template, String> {
        Template::parse_dialect(name, text, Dialect::Prometheus)
    }

    /// Parses `text` as the template `name` with the function set of
    /// `dialect` and `missingkey=zero`.
    pub fn parse_dialect(name: &str, text: &str, dialect: Dialect) -> Result<Template, String> {
        let mut t = Template {
            name: name.to_string(),
            trees: BTreeMap::new(),
            dialect,
            missing_key: MissingKey::Zero,
            limits: DEFAULT_LIMITS,
        };
        t.add(name, text)?;
        Ok(t)
    }

    /// Parses more text into this set under the name `name`, like Go's
    /// `t.New(name).Parse(text)`: its definitions join the set (a non-empty
    /// definition replaces an earlier one of the same name).
    pub fn add(&mut self, name: &str, text: &str) -> Result<(), String> {
        let text: Arc<str> = Arc::from(text);
        let trees = parse_text(name, &text, self.dialect)?;
        for (tname, root) in trees {
            let empty = is_empty_tree(&root);
            if let Some(old) = self.trees.get(&tname) {
                if empty && !old.root.is_empty() {
                    continue;
                }
            }
            self.trees.insert(
                tname.clone(),
                Arc::new(Tree {
                    name: tname,
                    parse_name: name.to_string(),
                    text: text.clone(),
                    root,
                }),
            );
        }
        Ok(())
    }

    /// Sets the `missingkey` option.
    pub fn set_missing_key(&mut self, missing_key: MissingKey) {
        self.missing_key = missing_key;
    }

    /// The top-level template's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Names of all templates in the set (top-level and defined), sorted.
    pub fn template_names(&self) -> Vec<String> {
        self.trees.keys().cloned().collect()
    }

    /// Executes the top-level template with `data` (JSON) as the dot.
    pub fn execute(&self, data: &serde_json::Value, env: &Env<'_>) -> Result<String, String> {
        self.execute_value(&Value::from(data), env)
    }

    /// Executes the top-level template with `data` as the dot. Runtime errors
    /// read like Go's: `template: <name>:<line>:<col>: executing "<name>" at
    /// <<node>>: <msg>`.
    pub fn execute_value(&self, data: &Value, env: &Env<'_>) -> Result<String, String> {
        self.execute_template(&self.name, data, env)
    }

    /// Executes the template `name` of the set (Go's `ExecuteTemplate`).
    pub fn execute_template(
        &self,
        name: &str,
        data: &Value,
        env: &Env<'_>,
    ) -> Result<String, String> {
        let Some(tree) = self.trees.get(name) else {
            return Err(format!(
                "template: no template {} associated with template {}",
                quote(name),
                quote(&self.name)
            ));
        };
        let mut st = State {
            set: self,
            tree,
            env,
            vars: vec![("$", Val::new(data.clone()))],
            node: None,
            out: String::new(),
            depth: 0,
            steps: 0,
            regexes: std::collections::HashMap::new(),
        };
        let dot = Val::new(data.clone());
        st.walk_list(&dot, &tree.root)?;
        Ok(st.out)
    }
}

/// The data Prometheus gives alert templates (`template.AlertTemplateData`):
/// a struct with `Labels`, `ExternalLabels` (both `map[string]string`),
/// `ExternalURL` and `Value`.
pub fn alert_template_data(
    labels: &BTreeMap<String, String>,
    external_labels: &BTreeMap<String, String>,
    external_url: &str,
    value: f64,
) -> Value {
    Value::structure(
        T_ALERT_DATA,
        vec![
            ("Labels".into(), Value::str_map(labels.clone())),
            (
                "ExternalLabels".into(),
                Value::str_map(external_labels.clone()),
            ),
            ("ExternalURL".into(), Value::str(external_url)),
            ("Value".into(), Value::Float(value)),
        ],
    )
}

/// Prometheus' `Expander.Expand`: parses and executes `text` (Prometheus
/// functions, `missingkey=zero`). Errors are wrapped as Prometheus wraps them:
/// `error parsing template <name>: …` / `error executing template <name>: …`.
pub fn expand(name: &str, text: &str, data: &Value, env: &Env<'_>) -> Result<String, String> {
    let t =
        Template::parse(name, text).map_err(|e| format!("error parsing template {name}: {e}"))?;
    t.execute_value(data, env)
        .map_err(|e| format!("error executing template {name}: {e}"))
}

/// The preamble Prometheus' rule manager puts before every alert/recording
/// rule template (`rules/alerting.go`).
pub const ALERT_TEMPLATE_PREAMBLE: &str =
    "{{$labels := .Labels}}{{$externalLabels := .ExternalLabels}}{{$externalURL := .ExternalURL}}{{$value := .Value}}";

/// Expands an alerting (or recording) rule label/annotation template as
/// Prometheus does: [`ALERT_TEMPLATE_PREAMBLE`] + `text`, executed on
/// [`alert_template_data`]. Prometheus names the template `__alert_<rule>`
/// (`__record_<rule>` for recording rules) and, on error, uses
/// `<error expanding template: {err}>` as the result.
pub fn expand_alert_template(
    name: &str,
    text: &str,
    labels: &BTreeMap<String, String>,
    external_labels: &BTreeMap<String, String>,
    external_url: &str,
    value: f64,
    env: &Env<'_>,
) -> Result<String, String> {
    let full = format!("{ALERT_TEMPLATE_PREAMBLE}{text}");
    let data = alert_template_data(labels, external_labels, external_url, value);
    expand(name, &full, &data, env)
}
