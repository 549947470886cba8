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

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Arc;

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
struct Limits {
    max_depth: usize,
    max_steps: Option<u64>,
    max_output: Option<usize>,
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
    missing_key: MissingKey,
    limits: Limits,
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
                go_quote(name),
                go_quote(&self.name)
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

/// Fuzz entry point (cargo-fuzz target `template`): the input (lossy UTF-8) is
/// parsed in both dialects and executed against a small fixed data value with
/// tight step/output limits. Must never panic.
#[doc(hidden)]
pub fn fuzz_template(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let mut labels = BTreeMap::new();
    labels.insert("instance".to_string(), "host.example.com:9100".to_string());
    labels.insert("job".to_string(), "node".to_string());
    let ext = BTreeMap::from([("cluster".to_string(), "eu1".to_string())]);
    let alert = alert_template_data(&labels, &ext, "http://prom.example/", 1234.5);
    let json = serde_json::json!({
        "a": [1, 2.5, "x", null, {"b": true}],
        "m": {"k": "v", "n": -3},
        "s": "str",
    });
    let query = |q: &str| -> Result<Samples, String> {
        if q.len().is_multiple_of(3) {
            return Err("query failed".into());
        }
        Ok(vec![
            (
                BTreeMap::from([("__name__".to_string(), q.to_string())]),
                1.5,
            ),
            (
                BTreeMap::from([("instance".to_string(), "b".to_string())]),
                -2.0,
            ),
        ])
    };
    let env = Env {
        query: Some(&query),
        external_url: "http://prom.example/prefix".into(),
        path_prefix: "/prefix".into(),
    };
    let limits = Limits {
        max_depth: 100,
        max_steps: Some(20_000),
        max_output: Some(1 << 16),
    };
    for dialect in [Dialect::Prometheus, Dialect::Alertmanager] {
        if let Ok(mut t) = Template::parse_dialect("fuzz", &text, dialect) {
            t.limits = limits;
            for mk in [MissingKey::Zero, MissingKey::Invalid, MissingKey::Error] {
                t.missing_key = mk;
                let _ = t.execute_value(&alert, &env);
                let _ = t.execute(&json, &env);
            }
        }
    }
    let full = format!("{ALERT_TEMPLATE_PREAMBLE}{text}");
    if let Ok(mut t) = Template::parse("__alert_fuzz", &full) {
        t.limits = limits;
        let _ = t.execute_value(&alert, &env);
    }
}

// ===========================================================================
// Lexer
// ===========================================================================

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum It {
    Error,
    Bool,
    Char,
    CharConstant,
    Complex,
    Assign,
    Declare,
    Eof,
    Field,
    Identifier,
    LeftDelim,
    LeftParen,
    Number,
    Pipe,
    RawString,
    RightDelim,
    RightParen,
    Space,
    String,
    Text,
    Variable,
    // Keywords.
    Block,
    Break,
    Continue,
    Dot,
    Define,
    Else,
    End,
    If,
    Nil,
    Range,
    Template,
    With,
}

impl It {
    fn is_keyword(self) -> bool {
        matches!(
            self,
            It::Block
                | It::Break
                | It::Continue
                | It::Dot
                | It::Define
                | It::Else
                | It::End
                | It::If
                | It::Nil
                | It::Range
                | It::Template
                | It::With
        )
    }
}

fn keyword(word: &str) -> Option<It> {
    Some(match word {
        "block" => It::Block,
        "break" => It::Break,
        "continue" => It::Continue,
        "define" => It::Define,
        "else" => It::Else,
        "end" => It::End,
        "if" => It::If,
        "range" => It::Range,
        "nil" => It::Nil,
        "template" => It::Template,
        "with" => It::With,
        _ => return None,
    })
}

#[derive(Clone, Debug)]
struct Item {
    typ: It,
    pos: usize,
    val: String,
    line: usize,
}

/// Go's `item.String()`, used in "unexpected …" parse errors.
fn item_desc(it: &Item) -> String {
    match it.typ {
        It::Eof => "EOF".into(),
        It::Error => it.val.clone(),
        t if t.is_keyword() => format!("<{}>", it.val),
        _ if it.val.chars().count() > 10 => {
            let s: String = it.val.chars().take(10).collect();
            format!("{}...", go_quote(&s))
        }
        _ => go_quote(&it.val),
    }
}

fn is_space_byte(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

fn is_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\r' | '\n')
}

fn is_alnum(c: char) -> bool {
    c == '_' || c.is_alphanumeric()
}

fn has_left_trim_marker(s: &[u8]) -> bool {
    s.len() >= 2 && s[0] == b'-' && is_space_byte(s[1])
}

fn has_right_trim_marker(s: &[u8]) -> bool {
    s.len() >= 2 && is_space_byte(s[0]) && s[1] == b'-'
}

fn right_trim_length(s: &str) -> usize {
    s.len() - s.trim_end_matches(is_space).len()
}

fn left_trim_length(s: &str) -> usize {
    s.len() - s.trim_start_matches(is_space).len()
}

#[derive(Clone, Copy)]
enum St {
    Text,
    LeftDelim,
    Comment,
    RightDelim,
    Inside,
    Space,
    Identifier,
    Field,
    Variable,
    Char,
    Number,
    Quote,
    RawQuote,
    Done,
}

struct Lexer<'a> {
    input: &'a str,
    pos: usize,
    start: usize,
    width: usize,
    paren_depth: usize,
    items: Vec<Item>,
    line_cache: (usize, usize),
}

fn lex(input: &str) -> Vec<Item> {
    let mut l = Lexer {
        input,
        pos: 0,
        start: 0,
        width: 0,
        paren_depth: 0,
        items: Vec::new(),
        line_cache: (0, 1),
    };
    let mut st = St::Text;
    loop {
        st = match st {
            St::Text => l.lex_text(),
            St::LeftDelim => l.lex_left_delim(),
            St::Comment => l.lex_comment(),
            St::RightDelim => l.lex_right_delim(),
            St::Inside => l.lex_inside_action(),
            St::Space => l.lex_space(),
            St::Identifier => l.lex_identifier(),
            St::Field => l.lex_field_or_variable(It::Field),
            St::Variable => l.lex_field_or_variable(It::Variable),
            St::Char => l.lex_quoted('\'', "unterminated character constant", It::CharConstant),
            St::Number => l.lex_number(),
            St::Quote => l.lex_quoted('"', "unterminated quoted string", It::String),
            St::RawQuote => l.lex_raw_quote(),
            St::Done => break,
        }
    }
    l.items
}

impl Lexer<'_> {
    fn rest(&self) -> &[u8] {
        &self.input.as_bytes()[self.pos.min(self.input.len())..]
    }

    fn line_at(&mut self, pos: usize) -> usize {
        let (cpos, cline) = self.line_cache;
        let line = if pos >= cpos {
            cline
                + self.input.as_bytes()[cpos..pos]
                    .iter()
                    .filter(|&&b| b == b'\n')
                    .count()
        } else {
            1 + self.input.as_bytes()[..pos]
                .iter()
                .filter(|&&b| b == b'\n')
                .count()
        };
        self.line_cache = (pos, line);
        line
    }

    fn next(&mut self) -> Option<char> {
        match self.input.get(self.pos..).and_then(|s| s.chars().next()) {
            Some(c) => {
                self.width = c.len_utf8();
                self.pos += self.width;
                Some(c)
            }
            None => {
                self.width = 0;
                None
            }
        }
    }

    fn backup(&mut self) {
        self.pos -= self.width;
        self.width = 0;
    }

    fn peek(&self) -> Option<char> {
        self.input.get(self.pos..).and_then(|s| s.chars().next())
    }

    fn push(&mut self, typ: It, pos: usize, val: String) {
        let line = self.line_at(pos);
        self.items.push(Item {
            typ,
            pos,
            val,
            line,
        });
    }

    fn emit(&mut self, typ: It) {
        let val = self.input[self.start..self.pos].to_string();
        self.push(typ, self.start, val);
        self.start = self.pos;
    }

    fn ignore(&mut self) {
        self.start = self.pos;
    }

    fn errorf(&mut self, msg: String) -> St {
        self.push(It::Error, self.start, msg);
        St::Done
    }

    fn at_right_delim(&self) -> (bool, bool) {
        let r = self.rest();
        if has_right_trim_marker(r) && r[2..].starts_with(b"}}") {
            return (true, true);
        }
        (r.starts_with(b"}}"), false)
    }

    fn at_terminator(&self) -> bool {
        match self.peek() {
            None => true,
            Some(c) if is_space(c) => true,
            Some('.' | ',' | '|' | ':' | ')' | '(') => true,
            Some(_) => self.rest().starts_with(b"}}"),
        }
    }

    fn lex_text(&mut self) -> St {
        match self.input[self.pos..].find("{{") {
            Some(x) => {
                if x > 0 {
                    self.pos += x;
                    let mut trim = 0;
                    if has_left_trim_marker(&self.input.as_bytes()[self.pos + 2..]) {
                        trim = right_trim_length(&self.input[self.start..self.pos]);
                    }
                    self.pos -= trim;
                    if self.pos > self.start {
                        self.emit(It::Text);
                    }
                    self.pos += trim;
                    self.ignore();
                }
                St::LeftDelim
            }
            None => {
                self.pos = self.input.len();
                if self.pos > self.start {
                    self.emit(It::Text);
                }
                self.emit(It::Eof);
                St::Done
            }
        }
    }

    fn lex_left_delim(&mut self) -> St {
        self.pos += 2;
        let trim = has_left_trim_marker(self.rest());
        let after = if trim { 2 } else { 0 };
        if self.input.as_bytes()[self.pos + after..].starts_with(b"/*") {
            self.pos += after;
            self.ignore();
            return St::Comment;
        }
        self.push(It::LeftDelim, self.start, "{{".into());
        self.pos += after;
        self.ignore();
        self.paren_depth = 0;
        St::Inside
    }

    fn lex_comment(&mut self) -> St {
        self.pos += 2;
        match self.input[self.pos..].find("*/") {
            None => return self.errorf("unclosed comment".into()),
            Some(x) => self.pos += x + 2,
        }
        let (delim, trim) = self.at_right_delim();
        if !delim {
            return self.errorf("comment ends before closing delimiter".into());
        }
        if trim {
            self.pos += 2;
        }
        self.pos += 2;
        if trim {
            self.pos += left_trim_length(&self.input[self.pos..]);
        }
        self.ignore();
        St::Text
    }

    fn lex_right_delim(&mut self) -> St {
        let (_, trim) = self.at_right_delim();
        if trim {
            self.pos += 2;
            self.ignore();
        }
        self.pos += 2;
        self.emit(It::RightDelim);
        if trim {
            self.pos += left_trim_length(&self.input[self.pos..]);
            self.ignore();
        }
        St::Text
    }

    fn lex_inside_action(&mut self) -> St {
        let (delim, _) = self.at_right_delim();
        if delim {
            if self.paren_depth == 0 {
                return St::RightDelim;
            }
            return self.errorf("unclosed left paren".into());
        }
        let Some(r) = self.next() else {
            return self.errorf("unclosed action".into());
        };
        match r {
            c if is_space(c) => {
                self.backup();
                St::Space
            }
            '=' => {
                self.emit(It::Assign);
                St::Inside
            }
            ':' => {
                if self.next() != Some('=') {
                    return self.errorf("expected :=".into());
                }
                self.emit(It::Declare);
                St::Inside
            }
            '|' => {
                self.emit(It::Pipe);
                St::Inside
            }
            '"' => St::Quote,
            '`' => St::RawQuote,
            '$' => St::Variable,
            '\'' => St::Char,
            '.' if self.pos < self.input.len()
                && !self.input.as_bytes()[self.pos].is_ascii_digit() =>
            {
                St::Field
            }
            '.' | '+' | '-' | '0'..='9' => {
                self.backup();
                St::Number
            }
            c if is_alnum(c) => {
                self.backup();
                St::Identifier
            }
            '(' => {
                self.emit(It::LeftParen);
                self.paren_depth += 1;
                St::Inside
            }
            ')' => {
                self.emit(It::RightParen);
                if self.paren_depth == 0 {
                    return self.errorf("unexpected right paren".into());
                }
                self.paren_depth -= 1;
                St::Inside
            }
            c if c.is_ascii() && !c.is_ascii_control() => {
                self.emit(It::Char);
                St::Inside
            }
            c => self.errorf(format!(
                "unrecognized character in action: {}",
                fmt_unicode_sharp(c)
            )),
        }
    }

    fn lex_space(&mut self) -> St {
        let mut n = 0;
        while let Some(c) = self.peek() {
            if !is_space(c) {
                break;
            }
            self.next();
            n += 1;
        }
        let b = self.input.as_bytes();
        if has_right_trim_marker(&b[self.pos - 1..]) && b[self.pos + 1..].starts_with(b"}}") {
            self.pos -= 1;
            if n == 1 {
                return St::RightDelim;
            }
        }
        self.emit(It::Space);
        St::Inside
    }

    fn lex_identifier(&mut self) -> St {
        loop {
            match self.next() {
                Some(c) if is_alnum(c) => {}
                Some(_) => {
                    self.backup();
                    break;
                }
                None => break,
            }
        }
        if !self.at_terminator() {
            let c = self.peek().unwrap_or('\u{fffd}');
            return self.errorf(format!("bad character {}", fmt_unicode_sharp(c)));
        }
        let word = &self.input[self.start..self.pos];
        let typ = match keyword(word) {
            Some(k) => k,
            None if word == "true" || word == "false" => It::Bool,
            None => It::Identifier,
        };
        self.emit(typ);
        St::Inside
    }

    fn lex_field_or_variable(&mut self, typ: It) -> St {
        if self.at_terminator() {
            self.emit(if typ == It::Variable {
                It::Variable
            } else {
                It::Dot
            });
            return St::Inside;
        }
        loop {
            match self.next() {
                Some(c) if is_alnum(c) => {}
                Some(_) => {
                    self.backup();
                    break;
                }
                None => break,
            }
        }
        if !self.at_terminator() {
            let c = self.peek().unwrap_or('\u{fffd}');
            return self.errorf(format!("bad character {}", fmt_unicode_sharp(c)));
        }
        self.emit(typ);
        St::Inside
    }

    fn lex_quoted(&mut self, quote: char, err: &str, typ: It) -> St {
        loop {
            match self.next() {
                Some('\\') => match self.next() {
                    Some(c) if c != '\n' => {}
                    _ => return self.errorf(err.into()),
                },
                None | Some('\n') => return self.errorf(err.into()),
                Some(c) if c == quote => break,
                Some(_) => {}
            }
        }
        self.emit(typ);
        St::Inside
    }

    fn lex_raw_quote(&mut self) -> St {
        loop {
            match self.next() {
                None => return self.errorf("unterminated raw quoted string".into()),
                Some('`') => break,
                Some(_) => {}
            }
        }
        self.emit(It::RawString);
        St::Inside
    }

    fn accept(&mut self, valid: &str) -> bool {
        match self.next() {
            Some(c) if valid.contains(c) => true,
            Some(_) => {
                self.backup();
                false
            }
            None => false,
        }
    }

    fn accept_run(&mut self, valid: &str) {
        while self.accept(valid) {}
    }

    fn scan_number(&mut self) -> bool {
        self.accept("+-");
        let mut digits = "0123456789_";
        if self.accept("0") {
            if self.accept("xX") {
                digits = "0123456789abcdefABCDEF_";
            } else if self.accept("oO") {
                digits = "01234567_";
            } else if self.accept("bB") {
                digits = "01_";
            }
        }
        self.accept_run(digits);
        if self.accept(".") {
            self.accept_run(digits);
        }
        if digits.len() == 11 && self.accept("eE") {
            self.accept("+-");
            self.accept_run("0123456789_");
        }
        if digits.len() == 23 && self.accept("pP") {
            self.accept("+-");
            self.accept_run("0123456789_");
        }
        self.accept("i");
        if self.peek().is_some_and(is_alnum) {
            self.next();
            return false;
        }
        true
    }

    fn lex_number(&mut self) -> St {
        if !self.scan_number() {
            let s = go_quote(&self.input[self.start..self.pos]);
            return self.errorf(format!("bad number syntax: {s}"));
        }
        if matches!(self.peek(), Some('+' | '-')) {
            if !self.scan_number() || !self.input[..self.pos].ends_with('i') {
                let s = go_quote(&self.input[self.start..self.pos]);
                return self.errorf(format!("bad number syntax: {s}"));
            }
            self.emit(It::Complex);
        } else {
            self.emit(It::Number);
        }
        St::Inside
    }
}

// ===========================================================================
// Parse tree
// ===========================================================================

#[derive(Debug)]
enum Node {
    Text {
        text: String,
    },
    Action {
        pos: usize,
        pipe: Pipe,
    },
    If(Box<Control>),
    Range(Box<Control>),
    With(Box<Control>),
    Template {
        pos: usize,
        name: String,
        pipe: Option<Pipe>,
    },
    Break {
        pos: usize,
    },
    Continue {
        pos: usize,
    },
    // Only while parsing.
    End,
    Else,
}

#[derive(Debug)]
struct Control {
    pipe: Pipe,
    list: Vec<Node>,
    else_list: Option<Vec<Node>>,
}

#[derive(Debug)]
struct Pipe {
    pos: usize,
    is_assign: bool,
    decl: Vec<String>,
    cmds: Vec<Command>,
}

#[derive(Debug)]
struct Command {
    pos: usize,
    args: Vec<Operand>,
}

#[derive(Debug, Clone, Copy)]
enum Num {
    Int(i64),
    Float(f64),
    Overflow,
    Complex,
}

#[derive(Debug)]
enum Operand {
    Ident {
        pos: usize,
        name: String,
    },
    Dot {
        pos: usize,
    },
    Nil {
        pos: usize,
    },
    Var {
        pos: usize,
        name: String,
        fields: Vec<String>,
    },
    Field {
        pos: usize,
        fields: Vec<String>,
    },
    Chain {
        pos: usize,
        node: Box<Operand>,
        fields: Vec<String>,
    },
    Bool {
        pos: usize,
        val: bool,
    },
    Number {
        pos: usize,
        text: String,
        num: Num,
    },
    Str {
        pos: usize,
        quoted: String,
        val: String,
    },
    Pipe(Box<Pipe>),
}

impl Operand {
    fn pos(&self) -> usize {
        match self {
            Operand::Ident { pos, .. }
            | Operand::Dot { pos }
            | Operand::Nil { pos }
            | Operand::Var { pos, .. }
            | Operand::Field { pos, .. }
            | Operand::Chain { pos, .. }
            | Operand::Bool { pos, .. }
            | Operand::Number { pos, .. }
            | Operand::Str { pos, .. } => *pos,
            Operand::Pipe(p) => p.pos,
        }
    }
}

fn pipe_string(p: &Pipe) -> String {
    let mut s = String::new();
    if !p.decl.is_empty() {
        s.push_str(&p.decl.join(", "));
        s.push_str(if p.is_assign { " = " } else { " := " });
    }
    let cmds: Vec<String> = p.cmds.iter().map(command_string).collect();
    s.push_str(&cmds.join(" | "));
    s
}

fn command_string(c: &Command) -> String {
    let args: Vec<String> = c
        .args
        .iter()
        .map(|a| match a {
            Operand::Pipe(p) => format!("({})", pipe_string(p)),
            a => operand_string(a),
        })
        .collect();
    args.join(" ")
}

fn operand_string(o: &Operand) -> String {
    match o {
        Operand::Ident { name, .. } => name.clone(),
        Operand::Dot { .. } => ".".into(),
        Operand::Nil { .. } => "nil".into(),
        Operand::Var { name, fields, .. } => {
            let mut s = name.clone();
            for f in fields {
                s.push('.');
                s.push_str(f);
            }
            s
        }
        Operand::Field { fields, .. } => fields.iter().map(|f| format!(".{f}")).collect(),
        Operand::Chain { node, fields, .. } => {
            let mut s = match node.as_ref() {
                Operand::Pipe(p) => format!("({})", pipe_string(p)),
                n => operand_string(n),
            };
            for f in fields {
                s.push('.');
                s.push_str(f);
            }
            s
        }
        Operand::Bool { val, .. } => val.to_string(),
        Operand::Number { text, .. } => text.clone(),
        Operand::Str { quoted, .. } => quoted.clone(),
        Operand::Pipe(p) => pipe_string(p),
    }
}

fn list_string(l: &[Node]) -> String {
    l.iter().map(node_string).collect()
}

fn node_string(n: &Node) -> String {
    match n {
        Node::Text { text } => text.clone(),
        Node::Action { pipe, .. } => format!("{{{{{}}}}}", pipe_string(pipe)),
        Node::If(c) | Node::Range(c) | Node::With(c) => {
            let kw = match n {
                Node::If(_) => "if",
                Node::Range(_) => "range",
                _ => "with",
            };
            let mut s = format!(
                "{{{{{kw} {}}}}}{}",
                pipe_string(&c.pipe),
                list_string(&c.list)
            );
            if let Some(e) = &c.else_list {
                s.push_str("{{else}}");
                s.push_str(&list_string(e));
            }
            s.push_str("{{end}}");
            s
        }
        Node::Template { name, pipe, .. } => match pipe {
            None => format!("{{{{template {}}}}}", go_quote(name)),
            Some(p) => format!("{{{{template {} {}}}}}", go_quote(name), pipe_string(p)),
        },
        Node::Break { .. } => "{{break}}".into(),
        Node::Continue { .. } => "{{continue}}".into(),
        Node::End => "{{end}}".into(),
        Node::Else => "{{else}}".into(),
    }
}

fn is_empty_tree(list: &[Node]) -> bool {
    list.iter().all(|n| matches!(n, Node::Text { text } if text.trim_matches(|c: char| c.is_ascii_whitespace()).is_empty()))
}

// ===========================================================================
// Parser
// ===========================================================================

type PResult<T> = Result<T, String>;

struct Parser<'a> {
    items: Vec<Item>,
    idx: usize,
    max_read: usize,
    parse_name: &'a str,
    vars: Vec<String>,
    range_depth: usize,
    action_line: usize,
    depth: usize,
    dialect: Dialect,
    trees: Vec<(String, Vec<Node>)>,
}

/// Parses `text` into its trees: definitions in order, then the top-level one.
fn parse_text(name: &str, text: &str, dialect: Dialect) -> PResult<Vec<(String, Vec<Node>)>> {
    let mut p = Parser {
        items: lex(text),
        idx: 0,
        max_read: 0,
        parse_name: name,
        vars: vec!["$".into()],
        range_depth: 0,
        action_line: 0,
        depth: 0,
        dialect,
        trees: Vec::new(),
    };
    let root = p.parse_top()?;
    p.add_tree(name.to_string(), root)?;
    Ok(p.trees)
}

impl Parser<'_> {
    fn item(&self, i: usize) -> &Item {
        // The lexer always ends with an EOF or error item.
        let last = self.items.len().saturating_sub(1);
        &self.items[i.min(last)]
    }

    fn next(&mut self) -> Item {
        let it = self.item(self.idx).clone();
        self.max_read = self
            .max_read
            .max(self.idx.min(self.items.len().saturating_sub(1)));
        self.idx += 1;
        it
    }

    fn backup(&mut self) {
        self.idx -= 1;
    }

    fn peek(&mut self) -> Item {
        let it = self.next();
        self.backup();
        it
    }

    fn next_non_space(&mut self) -> Item {
        loop {
            let t = self.next();
            if t.typ != It::Space {
                return t;
            }
        }
    }

    fn peek_non_space(&mut self) -> Item {
        let t = self.next_non_space();
        self.backup();
        t
    }

    fn errorf(&self, msg: impl std::fmt::Display) -> String {
        let line = self.item(self.max_read).line;
        format!("template: {}:{}: {}", self.parse_name, line, msg)
    }

    fn unexpected(&self, tok: &Item, context: &str) -> String {
        if tok.typ == It::Error {
            let mut extra = String::new();
            if self.action_line != 0 && self.action_line != tok.line {
                extra = format!(
                    " in action started at {}:{}",
                    self.parse_name, self.action_line
                );
                if tok.val.ends_with(" action") {
                    extra = extra[" in action".len()..].to_string();
                }
            }
            return self.errorf(format!("{}{}", tok.val, extra));
        }
        self.errorf(format!("unexpected {} in {}", item_desc(tok), context))
    }

    fn expect(&mut self, typ: It, context: &str) -> PResult<Item> {
        let t = self.next_non_space();
        if t.typ != typ {
            return Err(self.unexpected(&t, context));
        }
        Ok(t)
    }

    fn enter(&mut self) -> PResult<()> {
        self.depth += 1;
        if self.depth > MAX_PARSE_DEPTH {
            return Err(self.errorf("max expression depth exceeded"));
        }
        Ok(())
    }

    fn add_tree(&mut self, name: String, root: Vec<Node>) -> PResult<()> {
        if let Some(i) = self.trees.iter().position(|(n, _)| *n == name) {
            if is_empty_tree(&self.trees[i].1) {
                self.trees[i].1 = root;
            } else if !is_empty_tree(&root) {
                return Err(self.errorf(format!(
                    "template: multiple definition of template {}",
                    go_quote(&name)
                )));
            }
            return Ok(());
        }
        self.trees.push((name, root));
        Ok(())
    }

    fn parse_top(&mut self) -> PResult<Vec<Node>> {
        let mut root = Vec::new();
        while self.peek().typ != It::Eof {
            if self.peek().typ == It::LeftDelim {
                let save = self.idx;
                self.next();
                if self.next_non_space().typ == It::Define {
                    self.parse_definition()?;
                    continue;
                }
                self.idx = save;
            }
            match self.text_or_action()? {
                n @ (Node::End | Node::Else) => {
                    return Err(self.errorf(format!("unexpected {}", node_string(&n))));
                }
                n => root.push(n),
            }
        }
        Ok(root)
    }

    fn new_tree_scope(&mut self) -> (Vec<String>, usize) {
        let vars = std::mem::replace(&mut self.vars, vec!["$".into()]);
        let rd = std::mem::replace(&mut self.range_depth, 0);
        (vars, rd)
    }

    fn parse_definition(&mut self) -> PResult<()> {
        const CTX: &str = "define clause";
        let t = self.next_non_space();
        if t.typ != It::String && t.typ != It::RawString {
            return Err(self.unexpected(&t, CTX));
        }
        let name = go_unquote(&t.val).map_err(|e| self.errorf(e))?;
        self.expect(It::RightDelim, CTX)?;
        let saved = self.new_tree_scope();
        let (list, end) = self.item_list()?;
        if !matches!(end, Node::End) {
            return Err(self.errorf(format!("unexpected {} in {}", node_string(&end), CTX)));
        }
        (self.vars, self.range_depth) = saved;
        self.add_tree(name, list)
    }

    fn item_list(&mut self) -> PResult<(Vec<Node>, Node)> {
        let mut list = Vec::new();
        while self.peek_non_space().typ != It::Eof {
            match self.text_or_action()? {
                n @ (Node::End | Node::Else) => return Ok((list, n)),
                n => list.push(n),
            }
        }
        Err(self.errorf("unexpected EOF"))
    }

    fn text_or_action(&mut self) -> PResult<Node> {
        let t = self.next_non_space();
        match t.typ {
            It::Text => Ok(Node::Text { text: t.val }),
            It::LeftDelim => {
                self.action_line = t.line;
                let r = self.action();
                self.action_line = 0;
                r
            }
            _ => Err(self.unexpected(&t, "input")),
        }
    }

    fn action(&mut self) -> PResult<Node> {
        let t = self.next_non_space();
        match t.typ {
            It::Block => return self.block_control(),
            It::Break | It::Continue => {
                let word = if t.typ == It::Break {
                    "break"
                } else {
                    "continue"
                };
                let n = self.next_non_space();
                if n.typ != It::RightDelim {
                    return Err(self.unexpected(&n, &format!("{{{{{word}}}}}")));
                }
                if self.range_depth == 0 {
                    return Err(self.errorf(format!("{{{{{word}}}}} outside {{{{range}}}}")));
                }
                return Ok(if t.typ == It::Break {
                    Node::Break { pos: t.pos }
                } else {
                    Node::Continue { pos: t.pos }
                });
            }
            It::Else => {
                let p = self.peek_non_space();
                if p.typ == It::If || p.typ == It::With {
                    return Ok(Node::Else);
                }
                self.expect(It::RightDelim, "else")?;
                return Ok(Node::Else);
            }
            It::End => {
                self.expect(It::RightDelim, "end")?;
                return Ok(Node::End);
            }
            It::If => return Ok(Node::If(Box::new(self.parse_control("if")?))),
            It::Range => return Ok(Node::Range(Box::new(self.parse_control("range")?))),
            It::With => return Ok(Node::With(Box::new(self.parse_control("with")?))),
            It::Template => return self.template_control(),
            _ => {}
        }
        self.backup();
        let pos = self.peek().pos;
        let pipe = self.pipeline("command", It::RightDelim)?;
        Ok(Node::Action { pos, pipe })
    }

    fn parse_control(&mut self, context: &str) -> PResult<Control> {
        self.enter()?;
        let nvars = self.vars.len();
        let pipe = self.pipeline(context, It::RightDelim)?;
        if context == "range" {
            self.range_depth += 1;
        }
        let (list, next) = self.item_list()?;
        if context == "range" {
            self.range_depth -= 1;
        }
        let else_list = match next {
            Node::Else => {
                if context == "if" && self.peek().typ == It::If {
                    self.next();
                    Some(vec![Node::If(Box::new(self.parse_control("if")?))])
                } else if context == "with" && self.peek().typ == It::With {
                    self.next();
                    Some(vec![Node::With(Box::new(self.parse_control("with")?))])
                } else {
                    let (l, n2) = self.item_list()?;
                    if !matches!(n2, Node::End) {
                        return Err(
                            self.errorf(format!("expected end; found {}", node_string(&n2)))
                        );
                    }
                    Some(l)
                }
            }
            _ => None,
        };
        self.vars.truncate(nvars);
        self.depth -= 1;
        Ok(Control {
            pipe,
            list,
            else_list,
        })
    }

    fn parse_template_name(&mut self, t: &Item, context: &str) -> PResult<String> {
        match t.typ {
            It::String | It::RawString => go_unquote(&t.val).map_err(|e| self.errorf(e)),
            _ => Err(self.unexpected(t, context)),
        }
    }

    fn block_control(&mut self) -> PResult<Node> {
        const CTX: &str = "block clause";
        let t = self.next_non_space();
        let name = self.parse_template_name(&t, CTX)?;
        let pipe = self.pipeline(CTX, It::RightDelim)?;
        let saved = self.new_tree_scope();
        let (list, end) = self.item_list()?;
        if !matches!(end, Node::End) {
            return Err(self.errorf(format!("unexpected {} in {}", node_string(&end), CTX)));
        }
        (self.vars, self.range_depth) = saved;
        self.add_tree(name.clone(), list)?;
        Ok(Node::Template {
            pos: t.pos,
            name,
            pipe: Some(pipe),
        })
    }

    fn template_control(&mut self) -> PResult<Node> {
        const CTX: &str = "template clause";
        let t = self.next_non_space();
        let name = self.parse_template_name(&t, CTX)?;
        let pipe = if self.next_non_space().typ != It::RightDelim {
            self.backup();
            Some(self.pipeline(CTX, It::RightDelim)?)
        } else {
            None
        };
        Ok(Node::Template {
            pos: t.pos,
            name,
            pipe,
        })
    }

    fn pipeline(&mut self, context: &str, end: It) -> PResult<Pipe> {
        let pos = self.peek_non_space().pos;
        let mut pipe = Pipe {
            pos,
            is_assign: false,
            decl: Vec::new(),
            cmds: Vec::new(),
        };
        loop {
            let v = self.peek_non_space();
            if v.typ != It::Variable {
                break;
            }
            let v_idx = self.idx;
            self.next();
            let next = self.peek_non_space();
            if next.typ == It::Assign || next.typ == It::Declare {
                pipe.is_assign = next.typ == It::Assign;
                self.next_non_space();
                pipe.decl.push(v.val.clone());
                self.vars.push(v.val);
                break;
            } else if next.typ == It::Char && next.val == "," {
                self.next_non_space();
                pipe.decl.push(v.val.clone());
                self.vars.push(v.val);
                if context == "range" && pipe.decl.len() < 2 {
                    match self.peek_non_space().typ {
                        It::Variable | It::RightDelim | It::RightParen => continue,
                        _ => return Err(self.errorf("range can only initialize variables")),
                    }
                }
                return Err(self.errorf(format!("too many declarations in {context}")));
            } else {
                self.idx = v_idx;
                break;
            }
        }
        loop {
            let t = self.next_non_space();
            if t.typ == end {
                self.check_pipeline(&pipe, context)?;
                return Ok(pipe);
            }
            match t.typ {
                It::Bool
                | It::CharConstant
                | It::Complex
                | It::Dot
                | It::Field
                | It::Identifier
                | It::Number
                | It::Nil
                | It::RawString
                | It::String
                | It::Variable
                | It::LeftParen => {
                    self.backup();
                    let c = self.command()?;
                    pipe.cmds.push(c);
                }
                _ => return Err(self.unexpected(&t, context)),
            }
        }
    }

    fn check_pipeline(&self, pipe: &Pipe, context: &str) -> PResult<()> {
        if pipe.cmds.is_empty() {
            return Err(self.errorf(format!("missing value for {context}")));
        }
        for (i, c) in pipe.cmds.iter().enumerate().skip(1) {
            if matches!(
                c.args.first(),
                Some(
                    Operand::Bool { .. }
                        | Operand::Dot { .. }
                        | Operand::Nil { .. }
                        | Operand::Number { .. }
                        | Operand::Str { .. }
                )
            ) {
                return Err(self.errorf(format!(
                    "non executable command in pipeline stage {}",
                    i + 1
                )));
            }
        }
        Ok(())
    }

    fn command(&mut self) -> PResult<Command> {
        let pos = self.peek_non_space().pos;
        let mut args = Vec::new();
        loop {
            self.peek_non_space();
            if let Some(op) = self.operand()? {
                args.push(op);
            }
            let t = self.next();
            match t.typ {
                It::Space => continue,
                It::RightDelim | It::RightParen => self.backup(),
                It::Pipe => {}
                _ => return Err(self.unexpected(&t, "operand")),
            }
            break;
        }
        if args.is_empty() {
            return Err(self.errorf("empty command"));
        }
        Ok(Command { pos, args })
    }

    fn operand(&mut self) -> PResult<Option<Operand>> {
        let Some(node) = self.term()? else {
            return Ok(None);
        };
        if self.peek().typ != It::Field {
            return Ok(Some(node));
        }
        let pos = self.peek().pos;
        let mut fields = Vec::new();
        while self.peek().typ == It::Field {
            let f = self.next();
            fields.push(f.val[1..].to_string());
        }
        Ok(Some(match node {
            Operand::Field { fields: mut f0, .. } => {
                f0.extend(fields);
                Operand::Field { pos, fields: f0 }
            }
            Operand::Var {
                name,
                fields: mut f0,
                ..
            } => {
                f0.extend(fields);
                Operand::Var {
                    pos,
                    name,
                    fields: f0,
                }
            }
            n @ (Operand::Bool { .. }
            | Operand::Str { .. }
            | Operand::Number { .. }
            | Operand::Nil { .. }
            | Operand::Dot { .. }) => {
                return Err(self.errorf(format!(
                    "unexpected . after term {}",
                    go_quote(&operand_string(&n))
                )));
            }
            n => Operand::Chain {
                pos,
                node: Box::new(n),
                fields,
            },
        }))
    }

    fn term(&mut self) -> PResult<Option<Operand>> {
        let t = self.next_non_space();
        let pos = t.pos;
        Ok(Some(match t.typ {
            It::Identifier => {
                if func_sig(self.dialect, &t.val).is_none() {
                    return Err(self.errorf(format!("function {} not defined", go_quote(&t.val))));
                }
                Operand::Ident { pos, name: t.val }
            }
            It::Dot => Operand::Dot { pos },
            It::Nil => Operand::Nil { pos },
            It::Variable => {
                if !self.vars.contains(&t.val) {
                    return Err(self.errorf(format!("undefined variable {}", go_quote(&t.val))));
                }
                Operand::Var {
                    pos,
                    name: t.val,
                    fields: Vec::new(),
                }
            }
            It::Field => Operand::Field {
                pos,
                fields: vec![t.val[1..].to_string()],
            },
            It::Bool => Operand::Bool {
                pos,
                val: t.val == "true",
            },
            It::CharConstant | It::Complex | It::Number => {
                let num = parse_number_literal(&t.val, t.typ).map_err(|e| self.errorf(e))?;
                Operand::Number {
                    pos,
                    text: t.val,
                    num,
                }
            }
            It::LeftParen => {
                self.enter()?;
                let p = self.pipeline("parenthesized pipeline", It::RightParen)?;
                self.depth -= 1;
                Operand::Pipe(Box::new(p))
            }
            It::String | It::RawString => {
                let val = go_unquote(&t.val).map_err(|e| self.errorf(e))?;
                Operand::Str {
                    pos,
                    quoted: t.val,
                    val,
                }
            }
            _ => {
                self.backup();
                return Ok(None);
            }
        }))
    }
}

/// Classifies a number literal as Go's `parse.NumberNode` + `idealConstant`.
fn parse_number_literal(text: &str, typ: It) -> Result<Num, String> {
    if typ == It::CharConstant {
        let inner = &text[1..];
        let (c, tail) = go_unquote_char(inner, '\'').map_err(|_| "invalid syntax".to_string())?;
        if tail != "'" {
            return Err(format!("malformed character constant: {text}"));
        }
        return Ok(Num::Int(c as i64));
    }
    if typ == It::Complex || text.ends_with('i') {
        return Ok(Num::Complex);
    }
    if let Some(i) = go_parse_int(text) {
        if let Ok(v) = i64::try_from(i) {
            return Ok(Num::Int(v));
        }
        if u64::try_from(i).is_ok() {
            return Ok(Num::Overflow);
        }
    }
    let is_hex_int = text.len() > 2
        && (text.starts_with("0x") || text.starts_with("0X"))
        && !text.contains(['p', 'P']);
    if let Ok(f) = go_parse_float(text) {
        if !text.contains(['.', 'e', 'E', 'p', 'P']) || is_hex_int {
            return Err(format!("integer overflow: {}", go_quote(text)));
        }
        return Ok(Num::Float(f));
    }
    Err(format!("illegal number syntax: {}", go_quote(text)))
}

/// Go's `strconv.ParseInt(s, 0, 64)` syntax, without the range check.
fn go_parse_int(s: &str) -> Option<i128> {
    let (neg, body) = match s.as_bytes().first()? {
        b'+' => (false, &s[1..]),
        b'-' => (true, &s[1..]),
        _ => (false, s),
    };
    let lower = body.to_ascii_lowercase();
    let (base, digits, prefixed) = if let Some(d) = lower.strip_prefix("0x") {
        (16, d, true)
    } else if let Some(d) = lower.strip_prefix("0o") {
        (8, d, true)
    } else if let Some(d) = lower.strip_prefix("0b") {
        (2, d, true)
    } else if lower.len() > 1 && lower.starts_with('0') {
        (8, &lower[1..], true)
    } else {
        (10, lower.as_str(), false)
    };
    if digits.is_empty() {
        return None;
    }
    // Underscores only between digits, or right after a base prefix.
    let b = digits.as_bytes();
    for (i, &c) in b.iter().enumerate() {
        if c == b'_' {
            let prev_ok = if i == 0 { prefixed } else { b[i - 1] != b'_' };
            if !prev_ok || i + 1 == b.len() || b[i + 1] == b'_' {
                return None;
            }
        }
    }
    let mut v: i128 = 0;
    let mut any = false;
    for c in digits.chars() {
        if c == '_' {
            continue;
        }
        let d = c.to_digit(base)?;
        v = v
            .checked_mul(i128::from(base))?
            .checked_add(i128::from(d))?;
        if v > i128::from(u64::MAX) * 2 {
            return Some(v); // out of range either way
        }
        any = true;
    }
    if !any {
        return None;
    }
    Some(if neg { -v } else { v })
}

/// Go's `strconv.ParseFloat(s, 64)` (decimal forms, `inf`, `nan`).
fn go_parse_float(s: &str) -> Result<f64, &'static str> {
    let body = s.strip_prefix(['+', '-']).unwrap_or(s);
    let lower = body.to_ascii_lowercase();
    let special = matches!(lower.as_str(), "inf" | "infinity" | "nan");
    if !special
        && (body.is_empty()
            || !body
                .bytes()
                .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'E' | b'+' | b'-'))
            || !body.bytes().any(|b| b.is_ascii_digit()))
    {
        return Err("invalid syntax");
    }
    if special && lower == "nan" && body.len() != s.len() {
        return Err("invalid syntax");
    }
    match s.parse::<f64>() {
        Ok(f) if f.is_infinite() && !special => Err("value out of range"),
        Ok(f) => Ok(f),
        Err(_) => Err("invalid syntax"),
    }
}

fn parse_float_err(s: &str, e: &str) -> String {
    format!("strconv.ParseFloat: parsing {}: {}", go_quote(s), e)
}

/// Go's `strconv.Unquote` for `"…"`, `` `…` `` and `'…'`.
fn go_unquote(s: &str) -> Result<String, String> {
    let err = || "invalid syntax".to_string();
    let q = s.chars().next().ok_or_else(err)?;
    if s.len() < 2 || !s.ends_with(q) {
        return Err(err());
    }
    let inner = &s[1..s.len() - 1];
    match q {
        '`' => {
            if inner.contains('`') {
                return Err(err());
            }
            Ok(inner.replace('\r', ""))
        }
        '"' | '\'' => {
            let mut bytes: Vec<u8> = Vec::new();
            let mut rest = inner;
            let mut count = 0;
            while !rest.is_empty() {
                if rest.starts_with(q) && q == '"' {
                    return Err(err());
                }
                if rest.starts_with('\n') {
                    return Err(err());
                }
                let (piece, tail) = go_unquote_piece(rest, q).map_err(|_| err())?;
                bytes.extend_from_slice(&piece);
                rest = tail;
                count += 1;
            }
            if q == '\'' && count != 1 {
                return Err(err());
            }
            Ok(String::from_utf8_lossy(&bytes).into_owned())
        }
        _ => Err(err()),
    }
}

/// One (possibly escaped) character of a quoted literal, as UTF-8 bytes
/// (`\x`/octal escapes give single bytes).
fn go_unquote_piece(s: &str, quote: char) -> Result<(Vec<u8>, &str), ()> {
    let mut chars = s.chars();
    let c = chars.next().ok_or(())?;
    if c != '\\' {
        if c == quote && quote == '\'' {
            return Err(());
        }
        let mut b = [0u8; 4];
        return Ok((c.encode_utf8(&mut b).as_bytes().to_vec(), chars.as_str()));
    }
    let e = chars.next().ok_or(())?;
    let rest = chars.as_str();
    let simple = |ch: char| {
        let mut b = [0u8; 4];
        ch.encode_utf8(&mut b).as_bytes().to_vec()
    };
    Ok(match e {
        'a' => (vec![7], rest),
        'b' => (vec![8], rest),
        'f' => (vec![12], rest),
        'n' => (vec![b'\n'], rest),
        'r' => (vec![b'\r'], rest),
        't' => (vec![b'\t'], rest),
        'v' => (vec![11], rest),
        '\\' => (vec![b'\\'], rest),
        '\'' | '"' => {
            if e != quote {
                return Err(());
            }
            (vec![e as u8], rest)
        }
        'x' | 'u' | 'U' => {
            let n = match e {
                'x' => 2,
                'u' => 4,
                _ => 8,
            };
            let hex = rest.get(..n).ok_or(())?;
            let v = u32::from_str_radix(hex, 16).map_err(|_| ())?;
            if !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(());
            }
            if e == 'x' {
                if quote == '\'' {
                    (simple(char::from_u32(v).ok_or(())?), &rest[n..])
                } else {
                    (vec![v as u8], &rest[n..])
                }
            } else {
                (simple(char::from_u32(v).ok_or(())?), &rest[n..])
            }
        }
        '0'..='7' => {
            let oct = s.get(1..4).ok_or(())?;
            if !oct.bytes().all(|b| (b'0'..=b'7').contains(&b)) {
                return Err(());
            }
            let v = u32::from_str_radix(oct, 8).map_err(|_| ())?;
            if v > 255 {
                return Err(());
            }
            (vec![v as u8], &s[4..])
        }
        _ => return Err(()),
    })
}

/// Go's `strconv.UnquoteChar` on the body of a character constant.
fn go_unquote_char(s: &str, quote: char) -> Result<(char, &str), ()> {
    let (bytes, tail) = go_unquote_piece(s, quote)?;
    let st = String::from_utf8(bytes).map_err(|_| ())?;
    let c = st.chars().next().ok_or(())?;
    Ok((c, tail))
}

// ===========================================================================
// Execution
// ===========================================================================

/// A value plus whether it is held in an `interface{}` (a map or slice
/// element); that changes the type named in field errors and makes a nil a
/// "nil interface" rather than "no value".
#[derive(Clone, Debug)]
struct Val {
    v: Value,
    boxed: bool,
}

impl Val {
    fn new(v: Value) -> Val {
        Val { v, boxed: false }
    }

    fn type_name(&self) -> String {
        if self.boxed {
            "interface {}".into()
        } else {
            self.v.type_name()
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Flow {
    Normal,
    Break,
    Continue,
}

#[derive(Clone, Copy)]
enum At<'t> {
    Node(&'t Node),
    Pipe(&'t Pipe),
    Cmd(&'t Command),
    Op(&'t Operand),
}

fn at_pos(at: At<'_>) -> usize {
    match at {
        At::Node(n) => match n {
            Node::Action { pos, .. }
            | Node::Template { pos, .. }
            | Node::Break { pos }
            | Node::Continue { pos } => *pos,
            Node::If(c) | Node::Range(c) | Node::With(c) => c.pipe.pos,
            _ => 0,
        },
        At::Pipe(p) => p.pos,
        At::Cmd(c) => c.pos,
        At::Op(o) => o.pos(),
    }
}

fn at_string(at: At<'_>) -> String {
    match at {
        At::Node(n) => node_string(n),
        At::Pipe(p) => pipe_string(p),
        At::Cmd(c) => command_string(c),
        At::Op(o) => operand_string(o),
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum PT {
    Any,
    Refl,
    Str,
    QueryResult,
    Sample,
    StrSlice,
    TimeT,
}

impl PT {
    fn name(self) -> &'static str {
        match self {
            PT::Any => "interface {}",
            PT::Refl => "reflect.Value",
            PT::Str => "string",
            PT::QueryResult => T_QUERY_RESULT,
            PT::Sample => T_SAMPLE,
            PT::StrSlice => T_STR_LIST,
            PT::TimeT => "time.Time",
        }
    }

    fn can_be_nil(self) -> bool {
        !matches!(self, PT::Str | PT::TimeT)
    }

    fn accepts(self, v: &Value) -> bool {
        match self {
            PT::Any | PT::Refl => true,
            PT::Str => matches!(v, Value::Str(_)),
            PT::QueryResult => matches!(v, Value::List(l) if l.type_name == T_QUERY_RESULT),
            PT::Sample => matches!(v, Value::Struct(s) if s.type_name == T_SAMPLE),
            PT::StrSlice => {
                matches!(v, Value::List(l) if l.type_name == T_STR_LIST || l.items.iter().all(|i| matches!(i, Value::Str(_))))
            }
            PT::TimeT => matches!(v, Value::Time(_)),
        }
    }
}

#[derive(Clone, Copy)]
struct Sig {
    fixed: &'static [PT],
    variadic: Option<PT>,
}

const fn sig(fixed: &'static [PT]) -> Sig {
    Sig {
        fixed,
        variadic: None,
    }
}

const fn vsig(fixed: &'static [PT], v: PT) -> Sig {
    Sig {
        fixed,
        variadic: Some(v),
    }
}

fn builtin_sig(name: &str) -> Option<Sig> {
    use PT::*;
    Some(match name {
        "and" | "or" | "index" | "slice" | "call" | "eq" => vsig(&[Refl], Refl),
        "not" | "len" => sig(&[Refl]),
        "print" | "println" | "html" | "js" | "urlquery" => vsig(&[], Any),
        "printf" => vsig(&[Str], Any),
        "ne" | "lt" | "le" | "gt" | "ge" => sig(&[Refl, Refl]),
        _ => return None,
    })
}

fn prometheus_sig(name: &str) -> Option<Sig> {
    use PT::*;
    Some(match name {
        "query" | "safeHtml" | "title" | "toUpper" | "toLower" | "graphLink" | "tableLink"
        | "stripPort" | "stripDomain" | "parseDuration" => sig(&[Str]),
        "first" => sig(&[QueryResult]),
        "label" => sig(&[Str, Sample]),
        "value" | "strvalue" => sig(&[Sample]),
        "args" => vsig(&[], Any),
        "reReplaceAll" => sig(&[Str, Str, Str]),
        "match" => sig(&[Str, Str]),
        "sortByLabel" => sig(&[Str, QueryResult]),
        "humanize" | "humanize1024" | "humanizeDuration" | "humanizePercentage"
        | "humanizeTimestamp" | "toTime" => sig(&[Any]),
        "pathPrefix" | "externalURL" => sig(&[]),
        _ => return None,
    })
}

fn alertmanager_sig(name: &str) -> Option<Sig> {
    use PT::*;
    Some(match name {
        "toUpper" | "toLower" | "title" | "trimSpace" | "safeHtml" | "safeUrl" | "urlUnescape" => {
            sig(&[Str])
        }
        "join" => sig(&[Str, StrSlice]),
        "match" => sig(&[Str, Str]),
        "reReplaceAll" => sig(&[Str, Str, Str]),
        "stringSlice" => vsig(&[], Str),
        "date" | "tz" => sig(&[Str, TimeT]),
        "since" => sig(&[TimeT]),
        "humanizeDuration" | "toJson" => sig(&[Any]),
        _ => return None,
    })
}

fn func_sig(dialect: Dialect, name: &str) -> Option<Sig> {
    builtin_sig(name).or_else(|| match dialect {
        Dialect::Prometheus => prometheus_sig(name),
        Dialect::Alertmanager => alertmanager_sig(name),
    })
}

fn method_sig(v: &Value, name: &str) -> Option<Sig> {
    match v {
        Value::Time(_) => match name {
            "Format" => Some(sig(&[PT::Str])),
            "Unix" | "UnixMilli" | "UnixMicro" | "UnixNano" | "UTC" | "Local" | "String"
            | "Year" | "Month" | "Day" | "Hour" | "Minute" | "Second" | "Nanosecond"
            | "YearDay" | "Weekday" | "IsZero" => Some(sig(&[])),
            _ => None,
        },
        Value::Duration(_) => match name {
            "Seconds" | "Minutes" | "Hours" | "Milliseconds" | "Microseconds" | "Nanoseconds"
            | "String" => Some(sig(&[])),
            _ => None,
        },
        Value::StrMap(m) if m.kv => match name {
            "SortedPairs" | "Names" | "Values" | "String" => Some(sig(&[])),
            "Remove" => Some(sig(&[PT::StrSlice])),
            _ => None,
        },
        Value::List(l) if l.type_name == T_PAIRS => match name {
            "Names" | "Values" | "String" => Some(sig(&[])),
            _ => None,
        },
        Value::List(l) if l.type_name == T_ALERTS => match name {
            "Firing" | "Resolved" => Some(sig(&[])),
            _ => None,
        },
        _ => None,
    }
}

enum Callee<'a> {
    Func,
    Method(&'a Value),
}

type EResult<T> = Result<T, String>;

struct State<'t, 'e> {
    set: &'t Template,
    tree: &'t Tree,
    env: &'t Env<'e>,
    vars: Vec<(&'t str, Val)>,
    node: Option<At<'t>>,
    out: String,
    depth: usize,
    steps: u64,
    regexes: std::collections::HashMap<String, Result<regex::Regex, String>>,
}

impl<'t> State<'t, '_> {
    fn at(&mut self, at: At<'t>) {
        self.node = Some(at);
    }

    fn errorf(&self, msg: impl std::fmt::Display) -> String {
        let name = go_quote(&self.tree.name);
        match self.node {
            None => format!("template: {}: {}", self.tree.name, msg),
            Some(at) => {
                let pos = at_pos(at);
                let text = self.tree.text.get(..pos).unwrap_or(&self.tree.text);
                let col = match text.rfind('\n') {
                    None => pos,
                    Some(i) => pos - (i + 1),
                };
                let line = 1 + text.matches('\n').count();
                format!(
                    "template: {}:{}:{}: executing {} at <{}>: {}",
                    self.tree.parse_name,
                    line,
                    col,
                    name,
                    at_string(at),
                    msg
                )
            }
        }
    }

    /// Enters a nested template call, control structure or pipeline.
    fn enter(&mut self) -> EResult<()> {
        let max = self.set.limits.max_depth;
        if self.depth >= max {
            return Err(self.errorf(format!("exceeded maximum template depth ({max})")));
        }
        self.depth += 1;
        Ok(())
    }

    fn step(&mut self) -> EResult<()> {
        self.steps += 1;
        if let Some(max) = self.set.limits.max_steps {
            if self.steps > max {
                return Err(self.errorf("execution step limit exceeded"));
            }
        }
        Ok(())
    }

    fn check_size(&self, len: usize) -> EResult<()> {
        if let Some(max) = self.set.limits.max_output {
            if len > max {
                return Err(self.errorf("output limit exceeded"));
            }
        }
        Ok(())
    }

    fn write(&mut self, s: &str) -> EResult<()> {
        self.out.push_str(s);
        self.check_size(self.out.len())
    }

    fn walk_list(&mut self, dot: &Val, list: &'t [Node]) -> EResult<Flow> {
        for n in list {
            let f = self.walk(dot, n)?;
            if f != Flow::Normal {
                return Ok(f);
            }
        }
        Ok(Flow::Normal)
    }

    fn walk(&mut self, dot: &Val, node: &'t Node) -> EResult<Flow> {
        self.at(At::Node(node));
        self.step()?;
        match node {
            Node::Action { pipe, .. } => {
                let val = self.eval_pipeline(dot, pipe)?;
                if pipe.decl.is_empty() {
                    self.at(At::Node(node));
                    let s = if val.v.is_nil() {
                        "<no value>".to_string()
                    } else {
                        let mut s = String::new();
                        print_arg(&mut s, &val.v, 'v', &Fl::default(), 0, true);
                        s
                    };
                    self.write(&s)?;
                }
                Ok(Flow::Normal)
            }
            Node::Break { .. } => Ok(Flow::Break),
            Node::Continue { .. } => Ok(Flow::Continue),
            Node::If(c) => self.walk_if_or_with(false, dot, c),
            Node::With(c) => self.walk_if_or_with(true, dot, c),
            Node::Range(c) => self.walk_range(dot, node, c),
            Node::Template { name, pipe, .. } => self.walk_template(dot, node, name, pipe.as_ref()),
            Node::Text { text } => {
                self.write(text)?;
                Ok(Flow::Normal)
            }
            Node::End | Node::Else => Ok(Flow::Normal),
        }
    }

    fn walk_if_or_with(&mut self, with: bool, dot: &Val, c: &'t Control) -> EResult<Flow> {
        self.enter()?;
        let mark = self.vars.len();
        let val = self.eval_pipeline(dot, &c.pipe)?;
        let r = if truth(&val.v) {
            if with {
                self.walk_list(&val, &c.list)
            } else {
                self.walk_list(dot, &c.list)
            }
        } else if let Some(e) = &c.else_list {
            self.walk_list(dot, e)
        } else {
            Ok(Flow::Normal)
        };
        self.vars.truncate(mark);
        self.depth -= 1;
        r
    }

    fn walk_range(&mut self, dot: &Val, node: &'t Node, c: &'t Control) -> EResult<Flow> {
        self.enter()?;
        let r = self.walk_range_inner(dot, node, c);
        self.depth -= 1;
        r
    }

    fn walk_range_inner(&mut self, dot: &Val, node: &'t Node, c: &'t Control) -> EResult<Flow> {
        let mark = self.vars.len();
        let val = self.eval_pipeline(dot, &c.pipe)?;
        let mut iterated = false;
        let mut elems: Vec<(Value, Val)> = Vec::new();
        match &val.v {
            Value::List(l) => {
                let boxed = l.type_name == T_ANY_LIST;
                for (i, e) in l.items.iter().enumerate() {
                    elems.push((
                        Value::Int(i as i64),
                        Val {
                            v: e.clone(),
                            boxed,
                        },
                    ));
                }
            }
            Value::Map(m) => {
                for (k, v) in m.iter() {
                    elems.push((
                        Value::str(k),
                        Val {
                            v: v.clone(),
                            boxed: true,
                        },
                    ));
                }
            }
            Value::StrMap(m) => {
                for (k, v) in m.map.iter() {
                    elems.push((Value::str(k), Val::new(Value::str(v))));
                }
            }
            Value::Int(_) | Value::Uint(_) => {
                if c.pipe.decl.len() > 1 {
                    let mut s = String::new();
                    print_arg(&mut s, &val.v, 'v', &Fl::default(), 0, true);
                    return Err(self.errorf(format!(
                        "can't use {s} to iterate over more than one variable"
                    )));
                }
                let n = match val.v {
                    Value::Int(i) => i.max(0) as u64,
                    Value::Uint(u) => u,
                    _ => 0,
                };
                // Lazily: a large count must not allocate.
                let mut i = 0u64;
                while i < n {
                    iterated = true;
                    let v = if matches!(val.v, Value::Int(_)) {
                        Value::Int(i as i64)
                    } else {
                        Value::Uint(i)
                    };
                    if self.range_iteration(c, v.clone(), Val::new(v))? == Flow::Break {
                        break;
                    }
                    i += 1;
                }
            }
            Value::Nil => {}
            other => {
                let mut s = String::new();
                print_arg(&mut s, other, 'v', &Fl::default(), 0, true);
                self.at(At::Node(node));
                return Err(self.errorf(format!("range can't iterate over {s}")));
            }
        }
        for (k, e) in elems {
            iterated = true;
            if self.range_iteration(c, k, e)? == Flow::Break {
                break;
            }
        }
        let r = if !iterated {
            match &c.else_list {
                Some(e) => self.walk_list(dot, e),
                None => Ok(Flow::Normal),
            }
        } else {
            Ok(Flow::Normal)
        };
        self.vars.truncate(mark);
        r.map(|_| Flow::Normal)
    }

    fn range_iteration(&mut self, c: &'t Control, index: Value, elem: Val) -> EResult<Flow> {
        self.step()?;
        let decl = &c.pipe.decl;
        if !decl.is_empty() {
            if c.pipe.is_assign {
                if decl.len() > 1 {
                    self.set_var(&decl[0], Val::new(index.clone()))?;
                } else {
                    self.set_var(&decl[0], elem.clone())?;
                }
            } else {
                self.set_top_var(1, elem.clone());
            }
        }
        if decl.len() > 1 {
            if c.pipe.is_assign {
                self.set_var(&decl[1], elem.clone())?;
            } else {
                self.set_top_var(2, Val::new(index));
            }
        }
        let mark = self.vars.len();
        let f = self.walk_list(&elem, &c.list);
        self.vars.truncate(mark);
        f
    }

    fn walk_template(
        &mut self,
        dot: &Val,
        node: &'t Node,
        name: &str,
        pipe: Option<&'t Pipe>,
    ) -> EResult<Flow> {
        self.at(At::Node(node));
        let Some(tree) = self.set.trees.get(name) else {
            return Err(self.errorf(format!("template {} not defined", go_quote(name))));
        };
        self.enter()?;
        let new_dot = match pipe {
            Some(p) => self.eval_pipeline(dot, p)?,
            None => Val::new(Value::Nil),
        };
        let saved_tree = std::mem::replace(&mut self.tree, tree);
        let saved_vars = std::mem::replace(&mut self.vars, vec![("$", new_dot.clone())]);
        let saved_node = self.node;
        let r = self.walk_list(&new_dot, &tree.root);
        self.depth -= 1;
        self.tree = saved_tree;
        self.vars = saved_vars;
        self.node = saved_node;
        r.map(|_| Flow::Normal)
    }

    fn set_var(&mut self, name: &str, v: Val) -> EResult<()> {
        for i in (0..self.vars.len()).rev() {
            if self.vars[i].0 == name {
                self.vars[i].1 = v;
                return Ok(());
            }
        }
        Err(self.errorf(format!("undefined variable: {name}")))
    }

    fn set_top_var(&mut self, n: usize, v: Val) {
        let len = self.vars.len();
        if n <= len {
            self.vars[len - n].1 = v;
        }
    }

    fn var_value(&self, name: &str) -> EResult<Val> {
        for (n, v) in self.vars.iter().rev() {
            if *n == name {
                return Ok(v.clone());
            }
        }
        Err(self.errorf(format!("undefined variable: {name}")))
    }

    fn eval_pipeline(&mut self, dot: &Val, pipe: &'t Pipe) -> EResult<Val> {
        self.enter()?;
        let r = self.eval_pipeline_inner(dot, pipe);
        self.depth -= 1;
        r
    }

    fn eval_pipeline_inner(&mut self, dot: &Val, pipe: &'t Pipe) -> EResult<Val> {
        self.at(At::Pipe(pipe));
        let mut value: Option<Val> = None;
        for cmd in &pipe.cmds {
            let v = self.eval_command(dot, cmd, value.take())?;
            // Dig into interface{}: the result is the value itself.
            value = Some(Val::new(v.v));
        }
        let value = value.unwrap_or_else(|| Val::new(Value::Nil));
        if let Some(v) = &value.v.as_str_len() {
            self.check_size(*v)?;
        }
        for name in &pipe.decl {
            if pipe.is_assign {
                self.set_var(name, value.clone())?;
            } else {
                self.vars.push((name.as_str(), value.clone()));
            }
        }
        Ok(value)
    }

    fn not_a_function(&self, args: &'t [Operand], fin: &Option<Val>) -> EResult<()> {
        if args.len() > 1 || fin.is_some() {
            return Err(self.errorf(format!(
                "can't give argument to non-function {}",
                operand_string(&args[0])
            )));
        }
        Ok(())
    }

    fn eval_command(&mut self, dot: &Val, cmd: &'t Command, fin: Option<Val>) -> EResult<Val> {
        self.step()?;
        let first = &cmd.args[0];
        match first {
            Operand::Field { .. } => return self.eval_field_node(dot, first, &cmd.args, fin),
            Operand::Chain { .. } => return self.eval_chain_node(dot, first, &cmd.args, fin),
            Operand::Ident { .. } => {
                return self.eval_function(dot, first, At::Cmd(cmd), &cmd.args, fin)
            }
            Operand::Pipe(p) => {
                self.not_a_function(&cmd.args, &fin)?;
                return self.eval_pipeline(dot, p);
            }
            Operand::Var { .. } => return self.eval_variable_node(dot, first, &cmd.args, fin),
            _ => {}
        }
        self.at(At::Op(first));
        self.not_a_function(&cmd.args, &fin)?;
        match first {
            Operand::Bool { val, .. } => Ok(Val::new(Value::Bool(*val))),
            Operand::Dot { .. } => Ok(dot.clone()),
            Operand::Nil { .. } => Err(self.errorf("nil is not a command")),
            Operand::Number { .. } => self.ideal_constant(first).map(Val::new),
            Operand::Str { val, .. } => Ok(Val::new(Value::str(val))),
            _ => Err(self.errorf(format!(
                "can't evaluate command {}",
                go_quote(&operand_string(first))
            ))),
        }
    }

    fn ideal_constant(&self, n: &Operand) -> EResult<Value> {
        let Operand::Number { text, num, .. } = n else {
            return Ok(Value::Nil);
        };
        match num {
            Num::Int(i) => Ok(Value::Int(*i)),
            Num::Float(f) => Ok(Value::Float(*f)),
            Num::Overflow => Err(self.errorf(format!("{text} overflows int"))),
            Num::Complex => Err(self.errorf(format!("complex constant {text} is not supported"))),
        }
    }

    fn eval_field_node(
        &mut self,
        dot: &Val,
        field: &'t Operand,
        args: &'t [Operand],
        fin: Option<Val>,
    ) -> EResult<Val> {
        self.at(At::Op(field));
        let Operand::Field { fields, .. } = field else {
            return Ok(Val::new(Value::Nil));
        };
        self.eval_field_chain(dot, dot.clone(), field, fields, args, fin)
    }

    fn eval_chain_node(
        &mut self,
        dot: &Val,
        chain: &'t Operand,
        args: &'t [Operand],
        fin: Option<Val>,
    ) -> EResult<Val> {
        self.at(At::Op(chain));
        let Operand::Chain { node, fields, .. } = chain else {
            return Ok(Val::new(Value::Nil));
        };
        if matches!(node.as_ref(), Operand::Nil { .. }) {
            return Err(self.errorf(format!(
                "indirection through explicit nil in {}",
                operand_string(chain)
            )));
        }
        let recv = self.eval_arg_untyped(dot, node)?;
        self.eval_field_chain(dot, recv, chain, fields, args, fin)
    }

    fn eval_variable_node(
        &mut self,
        dot: &Val,
        var: &'t Operand,
        args: &'t [Operand],
        fin: Option<Val>,
    ) -> EResult<Val> {
        self.at(At::Op(var));
        let Operand::Var { name, fields, .. } = var else {
            return Ok(Val::new(Value::Nil));
        };
        let value = self.var_value(name)?;
        if fields.is_empty() {
            if !args.is_empty() {
                self.not_a_function(args, &fin)?;
            }
            return Ok(value);
        }
        self.eval_field_chain(dot, value, var, fields, args, fin)
    }

    fn eval_field_chain(
        &mut self,
        dot: &Val,
        receiver: Val,
        node: &'t Operand,
        idents: &[String],
        args: &'t [Operand],
        fin: Option<Val>,
    ) -> EResult<Val> {
        let n = idents.len();
        let mut r = receiver;
        for id in &idents[..n - 1] {
            r = self.eval_field(dot, id, node, &[], None, r)?;
        }
        self.eval_field(dot, &idents[n - 1], node, args, fin, r)
    }

    fn eval_field(
        &mut self,
        dot: &Val,
        name: &str,
        node: &'t Operand,
        args: &'t [Operand],
        fin: Option<Val>,
        receiver: Val,
    ) -> EResult<Val> {
        if receiver.v.is_nil() {
            if !receiver.boxed {
                if self.set.missing_key == MissingKey::Error {
                    return Err(
                        self.errorf(format!("nil data; no entry for key {}", go_quote(name)))
                    );
                }
                return Ok(Val::new(Value::Nil));
            }
            return Err(self.errorf(format!("nil pointer evaluating interface {{}}.{name}")));
        }
        if let Some(sig) = method_sig(&receiver.v, name) {
            return self.eval_call(
                dot,
                Callee::Method(&receiver.v),
                sig,
                At::Op(node),
                name,
                args,
                fin,
            );
        }
        let has_args = args.len() > 1 || fin.is_some();
        match &receiver.v {
            Value::Struct(s) => {
                if let Some((_, f)) = s.fields.iter().find(|(n, _)| n == name) {
                    if has_args {
                        return Err(self.errorf(format!(
                            "{name} has arguments but cannot be invoked as function"
                        )));
                    }
                    return Ok(Val::new(f.clone()));
                }
            }
            Value::Map(m) => {
                if has_args {
                    return Err(self.errorf(format!("{name} is not a method but has arguments")));
                }
                return match m.get(name) {
                    Some(v) => Ok(Val {
                        v: v.clone(),
                        boxed: true,
                    }),
                    None => match self.set.missing_key {
                        MissingKey::Invalid => Ok(Val::new(Value::Nil)),
                        MissingKey::Zero => Ok(Val {
                            v: Value::Nil,
                            boxed: true,
                        }),
                        MissingKey::Error => {
                            Err(self.errorf(format!("map has no entry for key {}", go_quote(name))))
                        }
                    },
                };
            }
            Value::StrMap(m) => {
                if has_args {
                    return Err(self.errorf(format!("{name} is not a method but has arguments")));
                }
                return match m.map.get(name) {
                    Some(v) => Ok(Val::new(Value::str(v))),
                    None => match self.set.missing_key {
                        MissingKey::Invalid => Ok(Val::new(Value::Nil)),
                        MissingKey::Zero => Ok(Val::new(Value::str(""))),
                        MissingKey::Error => {
                            Err(self.errorf(format!("map has no entry for key {}", go_quote(name))))
                        }
                    },
                };
            }
            _ => {}
        }
        Err(self.errorf(format!(
            "can't evaluate field {} in type {}",
            name,
            receiver.type_name()
        )))
    }

    fn eval_function(
        &mut self,
        dot: &Val,
        ident: &'t Operand,
        node: At<'t>,
        args: &'t [Operand],
        fin: Option<Val>,
    ) -> EResult<Val> {
        self.at(At::Op(ident));
        let Operand::Ident { name, .. } = ident else {
            return Ok(Val::new(Value::Nil));
        };
        let Some(sig) = func_sig(self.set.dialect, name) else {
            return Err(self.errorf(format!("{} is not a defined function", go_quote(name))));
        };
        self.eval_call(dot, Callee::Func, sig, node, name, args, fin)
    }

    #[allow(clippy::too_many_arguments)]
    fn eval_call(
        &mut self,
        dot: &Val,
        callee: Callee<'_>,
        sig: Sig,
        node: At<'t>,
        name: &str,
        args: &'t [Operand],
        fin: Option<Val>,
    ) -> EResult<Val> {
        let args = if args.is_empty() { args } else { &args[1..] };
        let num_in = args.len() + usize::from(fin.is_some());
        let nfixed = sig.fixed.len();
        if sig.variadic.is_some() {
            if num_in < nfixed {
                return Err(self.errorf(format!(
                    "wrong number of args for {name}: want at least {nfixed} got {}",
                    args.len()
                )));
            }
        } else if num_in != nfixed {
            return Err(self.errorf(format!(
                "wrong number of args for {name}: want {nfixed} got {num_in}"
            )));
        }
        let builtin = matches!(callee, Callee::Func);
        if builtin && (name == "and" || name == "or") {
            let mut v = Value::Nil;
            for a in args {
                v = self.eval_arg(dot, PT::Refl, a)?;
                if truth(&v) == (name == "or") {
                    return Ok(Val::new(v));
                }
            }
            if let Some(f) = fin {
                v = self.validate_type(f, PT::Refl)?;
            }
            return Ok(Val::new(v));
        }
        let mut argv = Vec::with_capacity(num_in);
        let mut i = 0;
        while i < nfixed && i < args.len() {
            argv.push(self.eval_arg(dot, sig.fixed[i], &args[i])?);
            i += 1;
        }
        if let Some(vt) = sig.variadic {
            while i < args.len() {
                argv.push(self.eval_arg(dot, vt, &args[i])?);
                i += 1;
            }
        }
        if let Some(f) = fin {
            let t = match sig.variadic {
                Some(vt) if num_in > nfixed => vt,
                _ => sig.fixed[num_in - 1],
            };
            argv.push(self.validate_type(f, t)?);
        }
        let r = match callee {
            Callee::Func => self.call_func(name, argv),
            Callee::Method(recv) => call_method(recv, name, &argv),
        };
        match r {
            Ok(v) => {
                if let Some(n) = v.as_str_len() {
                    self.check_size(n)?;
                }
                Ok(Val::new(v))
            }
            Err(e) => {
                self.at(node);
                Err(self.errorf(format!("error calling {name}: {e}")))
            }
        }
    }

    fn eval_arg_untyped(&mut self, dot: &Val, n: &'t Operand) -> EResult<Val> {
        self.at(At::Op(n));
        match n {
            Operand::Dot { .. } => Ok(dot.clone()),
            Operand::Field { .. } => self.eval_field_node(dot, n, std::slice::from_ref(n), None),
            Operand::Var { .. } => self.eval_variable_node(dot, n, &[], None),
            Operand::Pipe(p) => self.eval_pipeline(dot, p),
            Operand::Ident { .. } => self.eval_function(dot, n, At::Op(n), &[], None),
            Operand::Chain { .. } => self.eval_chain_node(dot, n, &[], None),
            Operand::Nil { .. } => Ok(Val::new(Value::Nil)),
            Operand::Bool { val, .. } => Ok(Val::new(Value::Bool(*val))),
            Operand::Number { .. } => self.ideal_constant(n).map(Val::new),
            Operand::Str { val, .. } => Ok(Val::new(Value::str(val))),
        }
    }

    fn eval_arg(&mut self, dot: &Val, pt: PT, n: &'t Operand) -> EResult<Value> {
        self.at(At::Op(n));
        let v = match n {
            Operand::Dot { .. } => dot.clone(),
            Operand::Nil { .. } => {
                if pt.can_be_nil() {
                    return Ok(Value::Nil);
                }
                return Err(self.errorf(format!("cannot assign nil to {}", pt.name())));
            }
            Operand::Field { .. } => self.eval_field_node(dot, n, std::slice::from_ref(n), None)?,
            Operand::Var { .. } => self.eval_variable_node(dot, n, &[], None)?,
            Operand::Pipe(p) => self.eval_pipeline(dot, p)?,
            Operand::Ident { .. } => self.eval_function(dot, n, At::Op(n), &[], None)?,
            Operand::Chain { .. } => self.eval_chain_node(dot, n, &[], None)?,
            Operand::Bool { val, .. } => {
                return match pt {
                    PT::Any | PT::Refl => Ok(Value::Bool(*val)),
                    PT::Str => Err(self.errorf(format!("expected string; found {val}"))),
                    _ => {
                        Err(self
                            .errorf(format!("can't handle {val} for arg of type {}", pt.name())))
                    }
                }
            }
            Operand::Number { .. } => {
                return match pt {
                    PT::Any | PT::Refl => self.ideal_constant(n),
                    PT::Str => {
                        Err(self.errorf(format!("expected string; found {}", operand_string(n))))
                    }
                    _ => Err(self.errorf(format!(
                        "can't handle {} for arg of type {}",
                        operand_string(n),
                        pt.name()
                    ))),
                }
            }
            Operand::Str { val, .. } => {
                return match pt {
                    PT::Any | PT::Refl | PT::Str => Ok(Value::str(val)),
                    _ => Err(self.errorf(format!(
                        "can't handle {} for arg of type {}",
                        operand_string(n),
                        pt.name()
                    ))),
                }
            }
        };
        self.validate_type(v, pt)
    }

    fn validate_type(&self, v: Val, pt: PT) -> EResult<Value> {
        if v.v.is_nil() {
            if !v.boxed || matches!(pt, PT::Any | PT::Refl) {
                if pt.can_be_nil() {
                    return Ok(Value::Nil);
                }
                return Err(self.errorf(format!("invalid value; expected {}", pt.name())));
            }
            // A nil held in an interface{} is not assignable to a concrete
            // parameter type.
            return Err(self.errorf(format!(
                "wrong type for value; expected {}; got interface {{}}",
                pt.name()
            )));
        }
        if pt.accepts(&v.v) {
            return Ok(v.v);
        }
        Err(self.errorf(format!(
            "wrong type for value; expected {}; got {}",
            pt.name(),
            v.v.type_name()
        )))
    }
}

impl Value {
    fn as_str_len(&self) -> Option<usize> {
        match self {
            Value::Str(s) => Some(s.len()),
            _ => None,
        }
    }
}

/// Go's `isTrue`.
fn truth(v: &Value) -> bool {
    match v {
        Value::Nil => false,
        Value::Bool(b) => *b,
        Value::Int(i) => *i != 0,
        Value::Uint(u) => *u != 0,
        Value::Float(f) => *f != 0.0,
        Value::Str(s) => !s.is_empty(),
        Value::List(l) => !l.items.is_empty(),
        Value::Map(m) => !m.is_empty(),
        Value::StrMap(m) => !m.map.is_empty(),
        Value::Struct(_) | Value::Time(_) => true,
        Value::Duration(d) => *d != 0,
    }
}

// ===========================================================================
// Functions
// ===========================================================================

fn arg_str(v: &Value) -> &str {
    match v {
        Value::Str(s) => s,
        _ => "",
    }
}

fn sample_value(labels: BTreeMap<String, String>, value: f64) -> Value {
    Value::structure(
        T_SAMPLE,
        vec![
            ("Labels".into(), Value::str_map(labels)),
            ("Value".into(), Value::Float(value)),
        ],
    )
}

fn sample_labels(v: &Value) -> Result<&BTreeMap<String, String>, String> {
    match v.field("Labels") {
        Some(Value::StrMap(m)) => Ok(&m.map),
        _ => Err("runtime error: invalid memory address or nil pointer dereference".into()),
    }
}

fn list_items(v: &Value) -> &[Value] {
    match v {
        Value::List(l) => &l.items,
        _ => &[],
    }
}

impl State<'_, '_> {
    /// Compiles `pat`, caching per execution (templates often match inside
    /// `range`).
    fn regex(&mut self, pat: &str) -> Result<regex::Regex, String> {
        if let Some(r) = self.regexes.get(pat) {
            return r.clone();
        }
        let r = go_regex(pat);
        if self.regexes.len() < 64 {
            self.regexes.insert(pat.to_string(), r.clone());
        }
        r
    }

    fn call_func(&mut self, name: &str, a: Vec<Value>) -> Result<Value, String> {
        let dialect = self.set.dialect;
        let s0 = a.first().map(arg_str).unwrap_or("");
        Ok(match name {
            // --- text/template builtins
            "not" => Value::Bool(!truth(&a[0])),
            "len" => Value::Int(match &a[0] {
                Value::Str(s) => s.len() as i64,
                Value::List(l) => l.items.len() as i64,
                Value::Map(m) => m.len() as i64,
                Value::StrMap(m) => m.map.len() as i64,
                Value::Nil => return Err("len of nil pointer".into()),
                v => return Err(format!("len of type {}", v.type_name())),
            }),
            "index" => index_value(&a[0], &a[1..])?,
            "slice" => slice_value(&a[0], &a[1..])?,
            "call" => {
                return Err(match &a[0] {
                    Value::Nil => "call of nil".into(),
                    v => format!("non-function of type {}", v.type_name()),
                })
            }
            "print" => Value::from(sprint(&a)),
            "println" => Value::from(sprintln(&a)),
            "printf" => Value::from(sprintf(s0, &a[1..])),
            "html" => Value::from(html_escape(&eval_args(&a))),
            "js" => Value::from(js_escape(&eval_args(&a))),
            "urlquery" => Value::from(query_escape(&eval_args(&a))),
            "eq" => Value::Bool(go_eq(&a[0], &a[1..])?),
            "ne" => Value::Bool(!go_eq(&a[0], &a[1..2])?),
            "lt" => Value::Bool(go_lt(&a[0], &a[1])?),
            "le" => Value::Bool(go_lt(&a[0], &a[1])? || go_eq(&a[0], &a[1..2])?),
            "gt" => Value::Bool(!(go_lt(&a[0], &a[1])? || go_eq(&a[0], &a[1..2])?)),
            "ge" => Value::Bool(!go_lt(&a[0], &a[1])?),
            // --- shared by both dialects
            "toUpper" => Value::from(s0.chars().map(simple_upper).collect::<String>()),
            "toLower" => Value::from(s0.chars().map(simple_lower).collect::<String>()),
            "title" => Value::from(title_case(s0, dialect == Dialect::Alertmanager)),
            "match" => Value::Bool(self.regex(s0)?.is_match(arg_str(&a[1]))),
            "reReplaceAll" => {
                let re = self
                    .regex(s0)
                    .map_err(|e| format!("regexp: Compile({}): {}", regexp_quote(s0), e))?;
                Value::from(re.replace_all(arg_str(&a[2]), arg_str(&a[1])).into_owned())
            }
            "safeHtml" | "safeUrl" => a[0].clone(),
            "humanizeDuration" => Value::from(humanize_duration(convert_to_float(&a[0])?)),
            // --- Prometheus
            "query" => {
                let Some(q) = self.env.query else {
                    return Err("no query function available".into());
                };
                let samples = q(s0)?;
                Value::typed_list(
                    T_QUERY_RESULT,
                    samples
                        .into_iter()
                        .map(|(l, v)| sample_value(l, v))
                        .collect(),
                )
            }
            "first" => match list_items(&a[0]).first() {
                Some(v) => v.clone(),
                None => return Err("first() called on vector with no elements".into()),
            },
            "label" => Value::from(sample_labels(&a[1])?.get(s0).cloned().unwrap_or_default()),
            "value" => {
                sample_labels(&a[0])?;
                a[0].field("Value").cloned().unwrap_or_default()
            }
            "strvalue" => Value::from(
                sample_labels(&a[0])?
                    .get("__value__")
                    .cloned()
                    .unwrap_or_default(),
            ),
            "args" => Value::map(
                a.iter()
                    .enumerate()
                    .map(|(i, v)| (format!("arg{i}"), v.clone()))
                    .collect(),
            ),
            "graphLink" => Value::from(format!("/graph?g0.expr={}&g0.tab=0", query_escape(s0))),
            "tableLink" => Value::from(format!("/graph?g0.expr={}&g0.tab=1", query_escape(s0))),
            "sortByLabel" => {
                let mut items = list_items(&a[1]).to_vec();
                let key = |v: &Value| -> String {
                    sample_labels(v)
                        .ok()
                        .and_then(|m| m.get(s0).cloned())
                        .unwrap_or_default()
                };
                items.sort_by_key(key);
                Value::typed_list(T_QUERY_RESULT, items)
            }
            "stripPort" => Value::from(match split_host_port(s0) {
                Ok((h, _)) => h,
                Err(()) => s0.to_string(),
            }),
            "stripDomain" => Value::from(strip_domain(s0)),
            "humanize" => Value::from(humanize(convert_to_float(&a[0])?)),
            "humanize1024" => Value::from(humanize1024(convert_to_float(&a[0])?)),
            "humanizePercentage" => Value::from(format!(
                "{}%",
                go_ftoa(convert_to_float(&a[0])? * 100.0, 'g', 4)
            )),
            "humanizeTimestamp" => {
                let v = convert_to_float(&a[0])?;
                if v.is_nan() || v.is_infinite() {
                    Value::from(go_ftoa(v, 'g', 4))
                } else {
                    Value::from(time_string(float_to_time(v)?))
                }
            }
            "toTime" => Value::Time(float_to_time(convert_to_float(&a[0])?)?),
            "pathPrefix" => Value::str(&self.env.path_prefix),
            "externalURL" => Value::str(&self.env.external_url),
            "parseDuration" => Value::Float(parse_prom_duration(s0)? as f64 / 1e9),
            // --- Alertmanager
            "trimSpace" => Value::str(s0.trim()),
            "join" => {
                let parts: Vec<&str> = list_items(&a[1]).iter().map(arg_str).collect();
                Value::from(parts.join(s0))
            }
            "urlUnescape" => Value::from(query_unescape(s0)?),
            "stringSlice" => Value::typed_list(T_STR_LIST, a),
            "date" => match &a[1] {
                Value::Time(t) => Value::from(go_time_format(*t, s0)),
                _ => Value::Nil,
            },
            "tz" => match s0 {
                "" | "UTC" | "Local" => a[1].clone(),
                _ => return Err(format!("unknown time zone {s0}")),
            },
            "since" => match &a[0] {
                Value::Time(t) => {
                    let now = now_time();
                    let d = (i128::from(now.secs) - i128::from(t.secs)) * 1_000_000_000
                        + i128::from(now.nanos)
                        - i128::from(t.nanos);
                    Value::Duration(d.clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64)
                }
                _ => Value::Nil,
            },
            "toJson" => {
                let mut s = String::new();
                json_encode(&mut s, &a[0])?;
                Value::from(s)
            }
            _ => return Err(format!("{} is not a defined function", go_quote(name))),
        })
    }
}

fn call_method(recv: &Value, name: &str, a: &[Value]) -> Result<Value, String> {
    match recv {
        Value::Time(t) => {
            let p = time_parts(*t);
            let ns = i128::from(t.secs) * 1_000_000_000 + i128::from(t.nanos);
            let clamp = |x: i128| x.clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64;
            Ok(match name {
                "Format" => Value::from(go_time_format(*t, a.first().map(arg_str).unwrap_or(""))),
                "Unix" => Value::Int(t.secs),
                "UnixMilli" => Value::Int(clamp(ns / 1_000_000)),
                "UnixMicro" => Value::Int(clamp(ns / 1_000)),
                "UnixNano" => Value::Int(clamp(ns)),
                "UTC" | "Local" => recv.clone(),
                "String" => Value::from(time_string(*t)),
                "Year" => Value::Int(p.year),
                "Month" => Value::str(MONTHS[(p.month - 1) as usize]),
                "Day" => Value::Int(i64::from(p.day)),
                "Hour" => Value::Int(i64::from(p.hour)),
                "Minute" => Value::Int(i64::from(p.min)),
                "Second" => Value::Int(i64::from(p.sec)),
                "Nanosecond" => Value::Int(i64::from(t.nanos)),
                "YearDay" => Value::Int(i64::from(p.yday)),
                "Weekday" => Value::str(DAYS[p.wday as usize]),
                "IsZero" => Value::Bool(t.secs == ZERO_TIME_SECS && t.nanos == 0),
                _ => Value::Nil,
            })
        }
        Value::Duration(d) => Ok(match name {
            "Seconds" => Value::Float(*d as f64 / 1e9),
            "Minutes" => Value::Float(*d as f64 / 6e10),
            "Hours" => Value::Float(*d as f64 / 3.6e12),
            "Milliseconds" => Value::Int(d / 1_000_000),
            "Microseconds" => Value::Int(d / 1_000),
            "Nanoseconds" => Value::Int(*d),
            "String" => Value::from(duration_string(*d)),
            _ => Value::Nil,
        }),
        Value::StrMap(m) => Ok(match name {
            "SortedPairs" => pairs_value(&m.map),
            "Names" => Value::typed_list(
                T_STR_LIST,
                kv_sorted(&m.map)
                    .into_iter()
                    .map(|(k, _)| Value::str(k))
                    .collect(),
            ),
            "Values" => Value::typed_list(
                T_STR_LIST,
                kv_sorted(&m.map)
                    .into_iter()
                    .map(|(_, v)| Value::str(v))
                    .collect(),
            ),
            "String" => Value::from(kv_string(&m.map)),
            "Remove" => {
                let drop: Vec<&str> = a
                    .first()
                    .map(list_items)
                    .unwrap_or(&[])
                    .iter()
                    .map(arg_str)
                    .collect();
                Value::kv(
                    m.map
                        .iter()
                        .filter(|(k, _)| !drop.contains(&k.as_str()))
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect(),
                )
            }
            _ => Value::Nil,
        }),
        Value::List(l) => {
            Ok(match name {
                "Names" | "Values" => {
                    let field = if name == "Names" { "Name" } else { "Value" };
                    Value::typed_list(
                        T_STR_LIST,
                        l.items
                            .iter()
                            .map(|p| p.field(field).cloned().unwrap_or_default())
                            .collect(),
                    )
                }
                "String" => Value::from(pairs_string(&l.items)),
                "Firing" | "Resolved" => {
                    let want = if name == "Firing" {
                        "firing"
                    } else {
                        "resolved"
                    };
                    Value::typed_list(
                    T_ALERT_LIST,
                    l.items.iter().filter(|x| matches!(x.field("Status"), Some(Value::Str(s)) if &**s == want)).cloned().collect(),
                )
                }
                _ => Value::Nil,
            })
        }
        _ => Ok(Value::Nil),
    }
}

/// Alertmanager's `KV.SortedPairs` order: `alertname` first, then by name.
fn kv_sorted(m: &BTreeMap<String, String>) -> Vec<(&str, &str)> {
    let mut v: Vec<(&str, &str)> = Vec::with_capacity(m.len());
    if let Some(a) = m.get("alertname") {
        v.push(("alertname", a));
    }
    v.extend(
        m.iter()
            .filter(|(k, _)| k.as_str() != "alertname")
            .map(|(k, v)| (k.as_str(), v.as_str())),
    );
    v
}

fn pairs_value(m: &BTreeMap<String, String>) -> Value {
    Value::typed_list(
        T_PAIRS,
        kv_sorted(m)
            .into_iter()
            .map(|(k, v)| {
                Value::structure(
                    T_PAIR,
                    vec![
                        ("Name".into(), Value::str(k)),
                        ("Value".into(), Value::str(v)),
                    ],
                )
            })
            .collect(),
    )
}

fn kv_string(m: &BTreeMap<String, String>) -> String {
    kv_sorted(m)
        .into_iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn pairs_string(items: &[Value]) -> String {
    items
        .iter()
        .map(|p| {
            format!(
                "{}={}",
                p.field("Name").map(arg_str).unwrap_or(""),
                p.field("Value").map(arg_str).unwrap_or("")
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Prometheus' `convertToFloat`.
fn convert_to_float(v: &Value) -> Result<f64, String> {
    match v {
        Value::Float(f) => Ok(*f),
        Value::Str(s) => go_parse_float(s).map_err(|e| parse_float_err(s, e)),
        Value::Int(i) => Ok(*i as f64),
        Value::Uint(u) => Ok(*u as f64),
        Value::Duration(d) => Ok(*d as f64 / 1e9),
        v => Err(format!("can't convert {} to float", v.type_name())),
    }
}

fn humanize(mut v: f64) -> String {
    if v == 0.0 || v.is_nan() || v.is_infinite() {
        return go_ftoa(v, 'g', 4);
    }
    let mut prefix = "";
    if v.abs() >= 1.0 {
        for p in ["k", "M", "G", "T", "P", "E", "Z", "Y"] {
            if v.abs() < 1000.0 {
                break;
            }
            prefix = p;
            v /= 1000.0;
        }
    } else {
        for p in ["m", "u", "n", "p", "f", "a", "z", "y"] {
            if v.abs() >= 1.0 {
                break;
            }
            prefix = p;
            v *= 1000.0;
        }
    }
    format!("{}{}", go_ftoa(v, 'g', 4), prefix)
}

fn humanize1024(mut v: f64) -> String {
    if v.abs() <= 1.0 || v.is_nan() || v.is_infinite() {
        return go_ftoa(v, 'g', 4);
    }
    let mut prefix = "";
    for p in ["ki", "Mi", "Gi", "Ti", "Pi", "Ei", "Zi", "Yi"] {
        if v.abs() < 1024.0 {
            break;
        }
        prefix = p;
        v /= 1024.0;
    }
    format!("{}{}", go_ftoa(v, 'g', 4), prefix)
}

fn humanize_duration(mut v: f64) -> String {
    if v.is_nan() || v.is_infinite() {
        return go_ftoa(v, 'g', 4);
    }
    if v == 0.0 {
        return format!("{}s", go_ftoa(v, 'g', 4));
    }
    if v.abs() >= 1.0 {
        let mut sign = "";
        if v < 0.0 {
            sign = "-";
            v = -v;
        }
        let d = v as i64;
        let (seconds, minutes, hours, days) = (d % 60, (d / 60) % 60, (d / 3600) % 24, d / 86400);
        if days != 0 {
            return format!("{sign}{days}d {hours}h {minutes}m {seconds}s");
        }
        if hours != 0 {
            return format!("{sign}{hours}h {minutes}m {seconds}s");
        }
        if minutes != 0 {
            return format!("{sign}{minutes}m {seconds}s");
        }
        return format!("{sign}{}s", go_ftoa(v, 'g', 4));
    }
    let mut prefix = "";
    for p in ["m", "u", "n", "p", "f", "a", "z", "y"] {
        if v.abs() >= 1.0 {
            break;
        }
        prefix = p;
        v *= 1000.0;
    }
    format!("{}{}s", go_ftoa(v, 'g', 4), prefix)
}

/// Prometheus' `floatToTime`: millisecond precision, like `model.Time`.
fn float_to_time(v: f64) -> Result<Time, String> {
    if v.is_nan() || v.is_infinite() {
        return Err("value is NaN or Inf".into());
    }
    let ts = v * 1e9;
    if !(-9.223_372_036_854_776e18..=9.223_372_036_854_776e18).contains(&ts) {
        let mut s = String::new();
        print_arg(&mut s, &Value::Float(v), 'v', &Fl::default(), 0, true);
        return Err(format!(
            "{s} cannot be represented as a nanoseconds timestamp since it overflows int64"
        ));
    }
    let ms = (ts as i64) / 1_000_000;
    Ok(Time {
        secs: ms.div_euclid(1000),
        nanos: (ms.rem_euclid(1000) * 1_000_000) as u32,
    })
}

/// `model.ParseDuration` (Prometheus duration syntax), in nanoseconds.
fn parse_prom_duration(s: &str) -> Result<i64, String> {
    match s {
        "0" => return Ok(0),
        "" => return Err("empty duration string".into()),
        _ => {}
    }
    let invalid = || format!("not a valid duration string: {}", go_quote(s));
    let units: [(&str, u64); 7] = [
        ("y", 365 * 24 * 3600 * 1_000_000_000),
        ("w", 7 * 24 * 3600 * 1_000_000_000),
        ("d", 24 * 3600 * 1_000_000_000),
        ("h", 3600 * 1_000_000_000),
        ("m", 60 * 1_000_000_000),
        ("s", 1_000_000_000),
        ("ms", 1_000_000),
    ];
    let b = s.as_bytes();
    let mut i = 0;
    let mut last_unit = 0;
    let mut dur: u64 = 0;
    while i < b.len() {
        if !b[i].is_ascii_digit() {
            return Err(invalid());
        }
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        let v: u64 = s[start..i].parse().map_err(|_| invalid())?;
        let ustart = i;
        while i < b.len() && !b[i].is_ascii_digit() {
            i += 1;
        }
        if ustart == i {
            return Err(invalid());
        }
        let u = &s[ustart..i];
        let Some(pos) = units.iter().position(|(n, _)| *n == u) else {
            return Err(format!(
                "unknown unit {} in duration {}",
                go_quote(u),
                go_quote(s)
            ));
        };
        if pos < last_unit {
            return Err(invalid());
        }
        last_unit = pos + 1;
        let mult = units[pos].1;
        if v > (1u64 << 63) / mult {
            return Err("duration out of range".into());
        }
        dur += v * mult;
        if dur > (1u64 << 63) - 1 {
            return Err("duration out of range".into());
        }
    }
    Ok(dur as i64)
}

/// Go's `net.SplitHostPort`.
fn split_host_port(hp: &str) -> Result<(String, String), ()> {
    let i = hp.rfind(':').ok_or(())?;
    let (host, j, k);
    if hp.starts_with('[') {
        let end = hp.find(']').ok_or(())?;
        if end + 1 == hp.len() || end + 1 != i {
            return Err(());
        }
        host = &hp[1..end];
        j = 1;
        k = end + 1;
    } else {
        host = &hp[..i];
        if host.contains(':') {
            return Err(());
        }
        j = 0;
        k = 0;
    }
    if hp[j..].contains('[') || hp[k..].contains(']') {
        return Err(());
    }
    Ok((host.to_string(), hp[i + 1..].to_string()))
}

fn strip_domain(hp: &str) -> String {
    let (host, port) = split_host_port(hp).unwrap_or_else(|()| (hp.to_string(), String::new()));
    if host.parse::<std::net::IpAddr>().is_ok() {
        return hp.to_string();
    }
    let host = host.split('.').next().unwrap_or("");
    if port.is_empty() {
        host.to_string()
    } else if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// `strings.Title` / `cases.Title`: upper-cases the first letter of each
/// word (`lower_rest` also lower-cases the rest, as Alertmanager's `title`).
fn title_case(s: &str, lower_rest: bool) -> String {
    let chars: Vec<char> = s.chars().collect();
    let is_word = |i: usize| -> bool {
        let c = chars[i];
        if c.is_alphanumeric() || c == '_' {
            return true;
        }
        // Mid-word punctuation joins letters/digits on both sides.
        matches!(c, '\'' | '.' | ':' | '\u{2019}' | '\u{b7}')
            && i > 0
            && i + 1 < chars.len()
            && chars[i - 1].is_alphanumeric()
            && chars[i + 1].is_alphanumeric()
    };
    let mut out = String::with_capacity(s.len());
    let mut in_word = false;
    for (i, &c) in chars.iter().enumerate() {
        if is_word(i) {
            if !in_word {
                out.push(simple_upper(c));
            } else if lower_rest {
                out.push(simple_lower(c));
            } else {
                out.push(c);
            }
            in_word = true;
        } else {
            out.push(c);
            in_word = false;
        }
    }
    out
}

fn simple_upper(c: char) -> char {
    let mut it = c.to_uppercase();
    match (it.next(), it.next()) {
        (Some(u), None) => u,
        _ => c,
    }
}

fn simple_lower(c: char) -> char {
    let mut it = c.to_lowercase();
    match (it.next(), it.next()) {
        (Some(u), None) => u,
        _ => c,
    }
}

/// Compiles a Go (RE2) regular expression with the `regex` crate, giving
/// `\d \w \s \b` Go's ASCII meaning.
fn go_regex(pat: &str) -> Result<regex::Regex, String> {
    let mut out = String::with_capacity(pat.len() + 8);
    let mut chars = pat.chars().peekable();
    let mut in_class = false;
    let mut class_start = false;
    while let Some(c) = chars.next() {
        let at_class_start = class_start;
        class_start = false;
        match c {
            '\\' => {
                let Some(e) = chars.next() else {
                    out.push('\\');
                    break;
                };
                let rep = match (e, in_class) {
                    ('d', false) => "[0-9]",
                    ('D', false) => "[^0-9]",
                    ('w', false) => "[0-9A-Za-z_]",
                    ('W', false) => "[^0-9A-Za-z_]",
                    ('s', false) => "[\\t\\n\\f\\r ]",
                    ('S', false) => "[^\\t\\n\\f\\r ]",
                    ('d', true) => "0-9",
                    ('D', true) => "[^0-9]",
                    ('w', true) => "0-9A-Za-z_",
                    ('W', true) => "[^0-9A-Za-z_]",
                    ('s', true) => "\\t\\n\\f\\r ",
                    ('S', true) => "[^\\t\\n\\f\\r ]",
                    ('b', false) => "(?-u:\\b)",
                    ('B', false) => "(?-u:\\B)",
                    _ => {
                        out.push('\\');
                        out.push(e);
                        continue;
                    }
                };
                out.push_str(rep);
            }
            '[' if !in_class => {
                in_class = true;
                out.push('[');
                if chars.peek() == Some(&'^') {
                    chars.next();
                    out.push('^');
                }
                class_start = true;
            }
            '[' if in_class && chars.peek() == Some(&':') => {
                out.push('[');
                for d in chars.by_ref() {
                    out.push(d);
                    if d == ']' {
                        break;
                    }
                }
            }
            '[' if in_class => out.push_str("\\["),
            ']' if in_class && !at_class_start => {
                in_class = false;
                out.push(']');
            }
            ']' if in_class => out.push_str("\\]"),
            c => out.push(c),
        }
    }
    regex::RegexBuilder::new(&out)
        .size_limit(1 << 22)
        .build()
        .map_err(|e| {
            let msg = e.to_string();
            let last = msg
                .lines()
                .rev()
                .find(|l| !l.trim().is_empty())
                .unwrap_or("")
                .trim();
            let last = last.strip_prefix("error: ").unwrap_or(last);
            format!("error parsing regexp: {}: {}", last, regexp_quote(pat))
        })
}

fn regexp_quote(s: &str) -> String {
    if can_backquote(s) {
        format!("`{s}`")
    } else {
        go_quote(s)
    }
}

fn index_value(item: &Value, idx: &[Value]) -> Result<Value, String> {
    if item.is_nil() {
        return Err("index of untyped nil".into());
    }
    let mut item = item.clone();
    for i in idx {
        item = match &item {
            Value::List(_) | Value::Str(_) => {
                let len = match &item {
                    Value::List(l) => l.items.len(),
                    Value::Str(s) => s.len(),
                    _ => 0,
                };
                let x = index_arg(i, len)?;
                if x == len {
                    return Err(format!("index out of range: {x}"));
                }
                match &item {
                    Value::List(l) => l.items[x].clone(),
                    Value::Str(s) => Value::Uint(u64::from(s.as_bytes()[x])),
                    _ => Value::Nil,
                }
            }
            Value::Map(m) => match i {
                Value::Str(k) => m.get(&**k).cloned().unwrap_or_default(),
                Value::Nil => return Err("value is nil; should be of type string".into()),
                v => {
                    return Err(format!(
                        "value has type {}; should be string",
                        v.type_name()
                    ))
                }
            },
            Value::StrMap(m) => match i {
                Value::Str(k) => Value::str(m.map.get(&**k).map(String::as_str).unwrap_or("")),
                Value::Nil => return Err("value is nil; should be of type string".into()),
                v => {
                    return Err(format!(
                        "value has type {}; should be string",
                        v.type_name()
                    ))
                }
            },
            Value::Nil => return Err("index of nil pointer".into()),
            v => return Err(format!("can't index item of type {}", v.type_name())),
        };
    }
    Ok(item)
}

fn index_arg(i: &Value, cap: usize) -> Result<usize, String> {
    let x: i128 = match i {
        Value::Int(x) => i128::from(*x),
        Value::Uint(x) => i128::from(*x),
        Value::Duration(x) => i128::from(*x),
        Value::Nil => return Err("cannot index slice/array with nil".into()),
        v => {
            return Err(format!(
                "cannot index slice/array with type {}",
                v.type_name()
            ))
        }
    };
    if x < 0 || x > cap as i128 {
        return Err(format!("index out of range: {x}"));
    }
    Ok(x as usize)
}

fn slice_value(item: &Value, idx: &[Value]) -> Result<Value, String> {
    if item.is_nil() {
        return Err("slice of untyped nil".into());
    }
    if idx.len() > 3 {
        return Err(format!("too many slice indexes: {}", idx.len()));
    }
    let len = match item {
        Value::Str(s) => {
            if idx.len() == 3 {
                return Err("cannot 3-index slice a string".into());
            }
            s.len()
        }
        Value::List(l) => l.items.len(),
        v => return Err(format!("can't slice item of type {}", v.type_name())),
    };
    let mut x = [0, len, len];
    for (n, i) in idx.iter().enumerate() {
        x[n] = index_arg(i, len)?;
    }
    if x[0] > x[1] {
        return Err(format!("invalid slice index: {} > {}", x[0], x[1]));
    }
    if idx.len() == 3 && x[1] > x[2] {
        return Err(format!("invalid slice index: {} > {}", x[1], x[2]));
    }
    Ok(match item {
        Value::Str(s) => {
            Value::from(String::from_utf8_lossy(&s.as_bytes()[x[0]..x[1]]).into_owned())
        }
        Value::List(l) => Value::typed_list(&l.type_name, l.items[x[0]..x[1]].to_vec()),
        _ => Value::Nil,
    })
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Bool,
    Int,
    Uint,
    Float,
    Str,
    Other,
}

fn basic_kind(v: &Value) -> Kind {
    match v {
        Value::Bool(_) => Kind::Bool,
        Value::Int(_) | Value::Duration(_) => Kind::Int,
        Value::Uint(_) => Kind::Uint,
        Value::Float(_) => Kind::Float,
        Value::Str(_) => Kind::Str,
        _ => Kind::Other,
    }
}

fn as_i64(v: &Value) -> i64 {
    match v {
        Value::Int(i) | Value::Duration(i) => *i,
        _ => 0,
    }
}

fn as_u64(v: &Value) -> u64 {
    match v {
        Value::Uint(u) => *u,
        _ => 0,
    }
}

const ERR_BAD_COMPARISON_TYPE: &str = "invalid type for comparison";
const ERR_BAD_COMPARISON: &str = "incompatible types for comparison";

fn go_eq(a1: &Value, rest: &[Value]) -> Result<bool, String> {
    if rest.is_empty() {
        return Err("missing argument for comparison".into());
    }
    let k1 = basic_kind(a1);
    for a in rest {
        let k2 = basic_kind(a);
        let truth = if k1 != k2 {
            match (k1, k2) {
                (Kind::Int, Kind::Uint) => as_i64(a1) >= 0 && as_i64(a1) as u64 == as_u64(a),
                (Kind::Uint, Kind::Int) => as_i64(a) >= 0 && as_u64(a1) == as_i64(a) as u64,
                _ => {
                    if !a1.is_nil() && !a.is_nil() {
                        return Err(ERR_BAD_COMPARISON.into());
                    }
                    false
                }
            }
        } else {
            match (a1, a) {
                (Value::Bool(x), Value::Bool(y)) => x == y,
                (Value::Float(x), Value::Float(y)) => x == y,
                (Value::Str(x), Value::Str(y)) => x == y,
                (Value::Uint(x), Value::Uint(y)) => x == y,
                _ if k1 == Kind::Int => as_i64(a1) == as_i64(a),
                (Value::Nil, Value::Nil) => true,
                (Value::Nil, _) | (_, Value::Nil) => false,
                (Value::Time(x), Value::Time(y)) => x == y,
                (Value::Struct(x), Value::Struct(y)) if x.type_name.starts_with('*') => {
                    Arc::ptr_eq(x, y)
                }
                _ => {
                    let mut s = String::new();
                    print_arg(&mut s, a, 'v', &Fl::default(), 0, false);
                    return Err(format!("non-comparable type {}: {}", s, a.type_name()));
                }
            }
        };
        if truth {
            return Ok(true);
        }
    }
    Ok(false)
}

fn go_lt(a1: &Value, a2: &Value) -> Result<bool, String> {
    let k1 = basic_kind(a1);
    let k2 = basic_kind(a2);
    if k1 == Kind::Other || k2 == Kind::Other {
        return Err(ERR_BAD_COMPARISON_TYPE.into());
    }
    if k1 != k2 {
        return match (k1, k2) {
            (Kind::Int, Kind::Uint) => Ok(as_i64(a1) < 0 || (as_i64(a1) as u64) < as_u64(a2)),
            (Kind::Uint, Kind::Int) => Ok(as_i64(a2) >= 0 && as_u64(a1) < as_i64(a2) as u64),
            _ => Err(ERR_BAD_COMPARISON.into()),
        };
    }
    Ok(match (a1, a2) {
        (Value::Bool(_), _) => return Err(ERR_BAD_COMPARISON_TYPE.into()),
        (Value::Float(x), Value::Float(y)) => x < y,
        (Value::Str(x), Value::Str(y)) => x < y,
        (Value::Uint(x), Value::Uint(y)) => x < y,
        _ => as_i64(a1) < as_i64(a2),
    })
}

/// text/template's `evalArgs`: a single string as is, else `fmt.Sprint` with
/// nils shown as `<no value>`.
fn eval_args(a: &[Value]) -> String {
    if let [Value::Str(s)] = a {
        return s.to_string();
    }
    let mapped: Vec<Value> = a
        .iter()
        .map(|v| {
            if v.is_nil() {
                Value::str("<no value>")
            } else {
                v.clone()
            }
        })
        .collect();
    sprint(&mapped)
}

fn html_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '"' => out.push_str("&#34;"),
            '\'' => out.push_str("&#39;"),
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\0' => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

fn js_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\'' => out.push_str("\\'"),
            '"' => out.push_str("\\\""),
            '<' => out.push_str("\\u003C"),
            '>' => out.push_str("\\u003E"),
            '&' => out.push_str("\\u0026"),
            '=' => out.push_str("\\u003D"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04X}", c as u32);
            }
            c if (c as u32) < 0x80 || is_print(c) => out.push(c),
            c => {
                let _ = write!(out, "\\u{:04X}", c as u32);
            }
        }
    }
    out
}

/// Go's `url.QueryEscape`.
fn query_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            b => {
                let _ = write!(out, "%{b:02X}");
            }
        }
    }
    out
}

/// Go's `url.QueryUnescape`.
fn query_unescape(s: &str) -> Result<String, String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' => {
                let hex = s
                    .get(i + 1..i + 3)
                    .filter(|h| h.bytes().all(|c| c.is_ascii_hexdigit()));
                let Some(h) = hex else {
                    let bad: String = s[i..].chars().take(3).collect();
                    return Err(format!("invalid URL escape {}", go_quote(&bad)));
                };
                out.push(u8::from_str_radix(h, 16).map_err(|e| e.to_string())?);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    Ok(String::from_utf8_lossy(&out).into_owned())
}

fn now_time() -> Time {
    match std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
        Ok(d) => Time {
            secs: d.as_secs() as i64,
            nanos: d.subsec_nanos(),
        },
        Err(_) => Time { secs: 0, nanos: 0 },
    }
}

/// `encoding/json.Marshal` of a value (as Alertmanager's `toJson`).
fn json_encode(out: &mut String, v: &Value) -> Result<(), String> {
    match v {
        Value::Nil => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Int(i) | Value::Duration(i) => {
            let _ = write!(out, "{i}");
        }
        Value::Uint(u) => {
            let _ = write!(out, "{u}");
        }
        Value::Float(f) => {
            if f.is_nan() || f.is_infinite() {
                return Err(format!("json: unsupported value: {}", go_ftoa(*f, 'g', -1)));
            }
            let a = f.abs();
            if a != 0.0 && !(1e-6..1e21).contains(&a) {
                let s = go_ftoa(*f, 'e', -1);
                // Clean up e-09 to e-9.
                let s = match s.find("e-0") {
                    Some(p) => format!("{}e-{}", &s[..p], &s[p + 3..]),
                    None => s,
                };
                out.push_str(&s);
            } else {
                out.push_str(&go_ftoa(*f, 'f', -1));
            }
        }
        Value::Str(s) => json_string(out, s),
        Value::List(l) => {
            out.push('[');
            for (i, x) in l.items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                json_encode(out, x)?;
            }
            out.push(']');
        }
        Value::Map(m) => {
            out.push('{');
            for (i, (k, x)) in m.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                json_string(out, k);
                out.push(':');
                json_encode(out, x)?;
            }
            out.push('}');
        }
        Value::StrMap(m) => {
            out.push('{');
            for (i, (k, x)) in m.map.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                json_string(out, k);
                out.push(':');
                json_string(out, x);
            }
            out.push('}');
        }
        Value::Struct(s) => {
            out.push('{');
            for (i, (k, x)) in s.fields.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                json_string(out, k);
                out.push(':');
                json_encode(out, x)?;
            }
            out.push('}');
        }
        Value::Time(t) => {
            out.push('"');
            out.push_str(&go_time_format(*t, "2006-01-02T15:04:05.999999999Z07:00"));
            out.push('"');
        }
    }
    Ok(())
}

fn json_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '<' | '>' | '&' | '\u{2028}' | '\u{2029}' => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

// ===========================================================================
// fmt: Go's printing of values
// ===========================================================================

#[derive(Clone, Copy, Default)]
struct Fl {
    plus: bool,
    minus: bool,
    sharp: bool,
    space: bool,
    zero: bool,
    wid: Option<usize>,
    prec: Option<usize>,
    sharp_v: bool,
    plus_v: bool,
}

fn write_padding(out: &mut String, n: usize, zero: bool) {
    let c = if zero { '0' } else { ' ' };
    out.extend(std::iter::repeat_n(c, n));
}

fn pad_with(out: &mut String, s: &str, f: &Fl, zero: bool) {
    let Some(w) = f.wid.filter(|w| *w > 0) else {
        out.push_str(s);
        return;
    };
    let n = w.saturating_sub(s.chars().count());
    if !f.minus {
        write_padding(out, n, zero && !f.minus);
        out.push_str(s);
    } else {
        out.push_str(s);
        write_padding(out, n, false);
    }
}

fn pad(out: &mut String, s: &str, f: &Fl) {
    pad_with(out, s, f, f.zero);
}

/// The `String()` of types that have one (checked for %v %s %q %x %X).
fn stringer(v: &Value) -> Option<String> {
    match v {
        Value::Time(t) => Some(time_string(*t)),
        Value::Duration(d) => Some(duration_string(*d)),
        Value::StrMap(m) if m.kv => Some(kv_string(&m.map)),
        Value::List(l) if l.type_name == T_PAIRS => Some(pairs_string(&l.items)),
        _ => None,
    }
}

fn bad_verb(out: &mut String, v: &Value, verb: char, f: &Fl) {
    out.push_str("%!");
    out.push(verb);
    out.push('(');
    if v.is_nil() {
        out.push_str("<nil>");
    } else {
        out.push_str(&v.type_name());
        out.push('=');
        print_arg(out, v, 'v', f, 0, false);
    }
    out.push(')');
}

/// Go's `printArg`/`printValue`: `depth` > 0 inside containers; `indirected`
/// when the template engine already dereferenced a pointer.
fn print_arg(out: &mut String, v: &Value, verb: char, f: &Fl, depth: usize, indirected: bool) {
    if verb == 'T' {
        pad(out, &v.type_name(), f);
        return;
    }
    if matches!(verb, 'v' | 's' | 'x' | 'X' | 'q') {
        if let Some(s) = stringer(v) {
            fmt_string(out, &s, verb, f);
            return;
        }
    }
    match v {
        Value::Nil => {
            if verb == 'v' {
                pad(out, "<nil>", f);
            } else {
                bad_verb(out, v, verb, f);
            }
        }
        Value::Bool(b) => {
            if verb == 't' || verb == 'v' {
                pad(out, if *b { "true" } else { "false" }, f);
            } else {
                bad_verb(out, v, verb, f);
            }
        }
        Value::Int(i) | Value::Duration(i) => {
            fmt_integer(out, v, i.unsigned_abs(), *i < 0, verb, f)
        }
        Value::Uint(u) => fmt_integer(out, v, *u, false, verb, f),
        Value::Float(x) => fmt_float(out, v, *x, verb, f),
        Value::Str(s) => fmt_string(out, s, verb, f),
        Value::List(l) => {
            out.push('[');
            for (i, e) in l.items.iter().enumerate() {
                if i > 0 {
                    out.push(' ');
                }
                print_arg(out, e, verb, f, depth + 1, false);
            }
            out.push(']');
        }
        Value::Map(m) => {
            out.push_str("map[");
            for (i, (k, e)) in m.iter().enumerate() {
                if i > 0 {
                    out.push(' ');
                }
                fmt_string(out, k, verb, f);
                out.push(':');
                print_arg(out, e, verb, f, depth + 1, false);
            }
            out.push(']');
        }
        Value::StrMap(m) => {
            out.push_str("map[");
            for (i, (k, e)) in m.map.iter().enumerate() {
                if i > 0 {
                    out.push(' ');
                }
                fmt_string(out, k, verb, f);
                out.push(':');
                fmt_string(out, e, verb, f);
            }
            out.push(']');
        }
        Value::Struct(s) => {
            if s.type_name.starts_with('*') && !(depth == 0 && indirected) {
                out.push('&');
            }
            out.push('{');
            for (i, (name, e)) in s.fields.iter().enumerate() {
                if i > 0 {
                    out.push(' ');
                }
                if f.plus_v {
                    out.push_str(name);
                    out.push(':');
                }
                print_arg(out, e, verb, f, depth + 1, false);
            }
            out.push('}');
        }
        Value::Time(_) => bad_verb(out, v, verb, f),
    }
}

fn fmt_integer(out: &mut String, v: &Value, u: u64, neg: bool, verb: char, f: &Fl) {
    match verb {
        'v' | 'd' => fmt_int_base(out, u, neg, 10, false, verb, f),
        'b' => fmt_int_base(out, u, neg, 2, false, verb, f),
        'o' | 'O' => fmt_int_base(out, u, neg, 8, false, verb, f),
        'x' => fmt_int_base(out, u, neg, 16, false, verb, f),
        'X' => fmt_int_base(out, u, neg, 16, true, verb, f),
        'c' => {
            let c = if neg {
                '\u{FFFD}'
            } else {
                u32::try_from(u)
                    .ok()
                    .and_then(char::from_u32)
                    .unwrap_or('\u{FFFD}')
            };
            pad(out, &c.to_string(), f);
        }
        'q' => {
            let c = if neg {
                '\u{FFFD}'
            } else {
                u32::try_from(u)
                    .ok()
                    .and_then(char::from_u32)
                    .unwrap_or('\u{FFFD}')
            };
            pad(out, &quote_rune(c, f.plus), f);
        }
        'U' => {
            let prec = f.prec.filter(|p| *p > 4).unwrap_or(4);
            let u = if neg { u.wrapping_neg() } else { u };
            let hex = format!("{u:X}");
            let mut s = format!("U+{}{hex}", "0".repeat(prec.saturating_sub(hex.len())));
            if f.sharp {
                if let Some(c) = u32::try_from(u)
                    .ok()
                    .and_then(char::from_u32)
                    .filter(|c| is_print(*c))
                {
                    let _ = write!(s, " '{c}'");
                }
            }
            pad_with(out, &s, f, false);
        }
        _ => bad_verb(out, v, verb, f),
    }
}

fn fmt_int_base(
    out: &mut String,
    mut u: u64,
    neg: bool,
    base: u64,
    upper: bool,
    verb: char,
    f: &Fl,
) {
    let mut prec = 0usize;
    if let Some(p) = f.prec {
        prec = p;
        if p == 0 && u == 0 {
            write_padding(out, f.wid.unwrap_or(0), false);
            return;
        }
    } else if f.zero && !f.minus && f.wid.is_some() {
        prec = f.wid.unwrap_or(0);
        if neg || f.plus || f.space {
            prec = prec.saturating_sub(1);
        }
    }
    let digits: &[u8] = if upper {
        b"0123456789ABCDEFX"
    } else {
        b"0123456789abcdefx"
    };
    let mut buf: Vec<u8> = Vec::new();
    loop {
        buf.push(digits[(u % base) as usize]);
        u /= base;
        if u == 0 {
            break;
        }
    }
    while buf.len() < prec {
        buf.push(b'0');
    }
    if f.sharp {
        match base {
            2 => buf.extend_from_slice(b"b0"),
            8 if buf.last() != Some(&b'0') => buf.push(b'0'),
            16 => {
                buf.push(digits[16]);
                buf.push(b'0');
            }
            _ => {}
        }
    }
    if verb == 'O' {
        buf.extend_from_slice(b"o0");
    }
    if neg {
        buf.push(b'-');
    } else if f.plus {
        buf.push(b'+');
    } else if f.space {
        buf.push(b' ');
    }
    buf.reverse();
    pad_with(out, &String::from_utf8_lossy(&buf), f, false);
}

fn fmt_float(out: &mut String, v: &Value, x: f64, verb: char, f: &Fl) {
    let (fc, default_prec) = match verb {
        'v' => ('g', -1),
        'g' | 'G' => (verb, -1),
        'f' | 'F' => ('f', 6),
        'e' | 'E' => (verb, 6),
        _ => {
            bad_verb(out, v, verb, f);
            return;
        }
    };
    let prec = f.prec.map(|p| p as i32).unwrap_or(default_prec);
    let mut num = go_ftoa(x, fc, prec);
    if !num.starts_with(['-', '+']) {
        num.insert(0, '+');
    }
    if f.space && num.starts_with('+') && !f.plus {
        num.replace_range(0..1, " ");
    }
    if num[1..].starts_with(['I', 'N']) {
        if num[1..].starts_with('N') && !f.space && !f.plus {
            num.remove(0);
        }
        pad_with(out, &num, f, false);
        return;
    }
    if f.plus || !num.starts_with('+') {
        if f.zero && !f.minus {
            if let Some(w) = f.wid.filter(|w| *w > num.len()) {
                out.push_str(&num[..1]);
                write_padding(out, w - num.len(), true);
                out.push_str(&num[1..]);
                return;
            }
        }
        pad(out, &num, f);
        return;
    }
    pad(out, &num[1..], f);
}

fn fmt_string(out: &mut String, s: &str, verb: char, f: &Fl) {
    let truncate = |s: &str| -> String {
        match f.prec {
            Some(p) => s.chars().take(p).collect(),
            None => s.to_string(),
        }
    };
    match verb {
        'v' if f.sharp_v => pad(out, &go_quote(&truncate(s)), f),
        'v' | 's' => pad(out, &truncate(s), f),
        'x' | 'X' => {
            let digits: &[u8] = if verb == 'X' {
                b"0123456789ABCDEFX"
            } else {
                b"0123456789abcdefx"
            };
            let b = s.as_bytes();
            let len = f.prec.map_or(b.len(), |p| p.min(b.len()));
            let mut width = 2 * len;
            if width == 0 {
                if let Some(w) = f.wid {
                    write_padding(out, w, f.zero);
                }
                return;
            }
            if f.space {
                if f.sharp {
                    width *= 2;
                }
                width += len - 1;
            } else if f.sharp {
                width += 2;
            }
            let w = f.wid.unwrap_or(0);
            if w > width && !f.minus {
                write_padding(out, w - width, f.zero);
            }
            if f.sharp {
                out.push('0');
                out.push(digits[16] as char);
            }
            for (i, c) in b[..len].iter().enumerate() {
                if f.space && i > 0 {
                    out.push(' ');
                    if f.sharp {
                        out.push('0');
                        out.push(digits[16] as char);
                    }
                }
                out.push(digits[(c >> 4) as usize] as char);
                out.push(digits[(c & 15) as usize] as char);
            }
            if w > width && f.minus {
                write_padding(out, w - width, false);
            }
        }
        'q' => {
            let s = truncate(s);
            let q = if f.sharp && can_backquote(&s) {
                format!("`{s}`")
            } else if f.plus {
                go_quote_ascii(&s)
            } else {
                go_quote(&s)
            };
            pad(out, &q, f);
        }
        _ => bad_verb(out, &Value::str(s), verb, f),
    }
}

/// `fmt.Sprint`: spaces between operands when neither side is a string.
fn sprint(a: &[Value]) -> String {
    let mut out = String::new();
    let mut prev_string = false;
    for (i, v) in a.iter().enumerate() {
        let is_string = matches!(v, Value::Str(_));
        if i > 0 && !is_string && !prev_string {
            out.push(' ');
        }
        print_arg(&mut out, v, 'v', &Fl::default(), 0, false);
        prev_string = is_string;
    }
    out
}

/// `fmt.Sprintln`.
fn sprintln(a: &[Value]) -> String {
    let mut out = String::new();
    for (i, v) in a.iter().enumerate() {
        if i > 0 {
            out.push(' ');
        }
        print_arg(&mut out, v, 'v', &Fl::default(), 0, false);
    }
    out.push('\n');
    out
}

fn too_large(x: i64) -> bool {
    !(-1_000_000..=1_000_000).contains(&x)
}

fn parse_num(b: &[u8], start: usize) -> (Option<usize>, usize) {
    let mut i = start;
    let mut num: i64 = 0;
    let mut any = false;
    while i < b.len() && b[i].is_ascii_digit() {
        if too_large(num) {
            return (None, b.len());
        }
        num = num * 10 + i64::from(b[i] - b'0');
        any = true;
        i += 1;
    }
    (if any { Some(num as usize) } else { None }, i)
}

fn int_from_arg(a: &[Value], arg_num: usize) -> (Option<i64>, usize) {
    if arg_num >= a.len() {
        return (None, arg_num);
    }
    let n = match &a[arg_num] {
        Value::Int(i) | Value::Duration(i) => Some(*i),
        Value::Uint(u) => i64::try_from(*u).ok(),
        _ => None,
    };
    (n.filter(|n| !too_large(*n)), arg_num + 1)
}

/// `fmt.Sprintf`.
fn sprintf(format: &str, a: &[Value]) -> String {
    let b = format.as_bytes();
    let end = b.len();
    let mut out = String::new();
    let mut arg_num = 0usize;
    let mut reordered = false;
    let mut i = 0;
    // Parses an explicit argument index "[n]" at i.
    let arg_number =
        |arg_num: usize, i: usize, reordered: &mut bool, good: &mut bool| -> (usize, usize, bool) {
            if i >= end || b[i] != b'[' {
                return (arg_num, i, false);
            }
            *reordered = true;
            let mut j = i + 1;
            while j < end && b[j] != b']' {
                j += 1;
            }
            if j >= end || end - i < 3 {
                *good = false;
                return (arg_num, i + 1, false);
            }
            let (n, ni) = parse_num(b, i + 1);
            match n {
                Some(n) if ni == j && n >= 1 && n - 1 < a.len() => (n - 1, j + 1, true),
                Some(_) if ni == j => {
                    *good = false;
                    (arg_num, j + 1, true)
                }
                _ => {
                    *good = false;
                    (arg_num, j + 1, false)
                }
            }
        };
    while i < end {
        let mut good = true;
        let lasti = i;
        while i < end && b[i] != b'%' {
            i += 1;
        }
        if i > lasti {
            out.push_str(&format[lasti..i]);
        }
        if i >= end {
            break;
        }
        i += 1;
        let mut f = Fl::default();
        while i < end {
            match b[i] {
                b'#' => f.sharp = true,
                b'0' => f.zero = true,
                b'+' => f.plus = true,
                b'-' => f.minus = true,
                b' ' => f.space = true,
                _ => break,
            }
            i += 1;
        }
        let (an, ni, mut after_index) = arg_number(arg_num, i, &mut reordered, &mut good);
        arg_num = an;
        i = ni;
        if i < end && b[i] == b'*' {
            i += 1;
            let (w, an) = int_from_arg(a, arg_num);
            arg_num = an;
            match w {
                None => out.push_str("%!(BADWIDTH)"),
                Some(w) if w < 0 => {
                    f.wid = Some(w.unsigned_abs() as usize);
                    f.minus = true;
                    f.zero = false;
                }
                Some(w) => f.wid = Some(w as usize),
            }
            after_index = false;
        } else {
            let (w, ni) = parse_num(b, i);
            f.wid = w;
            i = ni;
            if after_index && f.wid.is_some() {
                good = false;
            }
        }
        if i + 1 < end && b[i] == b'.' {
            i += 1;
            if after_index {
                good = false;
            }
            let (an, ni, ai) = arg_number(arg_num, i, &mut reordered, &mut good);
            arg_num = an;
            i = ni;
            after_index = ai;
            if i < end && b[i] == b'*' {
                i += 1;
                let (p, an) = int_from_arg(a, arg_num);
                arg_num = an;
                match p {
                    None => out.push_str("%!(BADPREC)"),
                    Some(p) if p < 0 => f.prec = None,
                    Some(p) => f.prec = Some(p as usize),
                }
                after_index = false;
            } else {
                let (p, ni) = parse_num(b, i);
                f.prec = Some(p.unwrap_or(0));
                i = ni;
            }
        }
        if !after_index {
            let (an, ni, _) = arg_number(arg_num, i, &mut reordered, &mut good);
            arg_num = an;
            i = ni;
        }
        if i >= end {
            out.push_str("%!(NOVERB)");
            break;
        }
        let Some(verb) = format[i..].chars().next() else {
            break;
        };
        i += verb.len_utf8();
        if verb == '%' {
            out.push('%');
        } else if !good {
            let _ = write!(out, "%!{verb}(BADINDEX)");
        } else if arg_num >= a.len() {
            let _ = write!(out, "%!{verb}(MISSING)");
        } else {
            if verb == 'v' {
                f.sharp_v = f.sharp;
                f.sharp = false;
                f.plus_v = f.plus;
                f.plus = false;
            }
            print_arg(&mut out, &a[arg_num], verb, &f, 0, false);
            arg_num += 1;
        }
    }
    if !reordered && arg_num < a.len() {
        out.push_str("%!(EXTRA ");
        for (k, v) in a[arg_num..].iter().enumerate() {
            if k > 0 {
                out.push_str(", ");
            }
            if v.is_nil() {
                out.push_str("<nil>");
            } else {
                out.push_str(&v.type_name());
                out.push('=');
                print_arg(&mut out, v, 'v', &Fl::default(), 0, false);
            }
        }
        out.push(')');
    }
    out
}

// ---------------------------------------------------------------------------
// Float formatting (strconv.FormatFloat)
// ---------------------------------------------------------------------------

/// Decimal digits (no trailing zeros) and decimal-point position of `a >= 0`:
/// shortest round-trip digits when `n` is `None`, else `n` significant digits
/// rounded half-to-even on the exact binary value (as Go).
fn float_digits(a: f64, n: Option<usize>) -> (Vec<u8>, i32) {
    if a == 0.0 {
        return (Vec::new(), 0);
    }
    let s = match n {
        None => format!("{a:e}"),
        // An f64 has at most 767 significant decimal digits; more are zeros
        // (and `format!` precisions stop at 65535).
        Some(n) => format!("{:.*e}", n.clamp(1, 800) - 1, a),
    };
    let (mant, exp) = s.split_once('e').unwrap_or((&s, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let mut d: Vec<u8> = mant.bytes().filter(u8::is_ascii_digit).collect();
    while d.last() == Some(&b'0') {
        d.pop();
    }
    if d.is_empty() {
        return (Vec::new(), 0);
    }
    (d, exp + 1)
}

/// Go's `strconv.FormatFloat(v, fmt, prec, 64)` for `e E f g G`.
fn go_ftoa(v: f64, fmt: char, prec: i32) -> String {
    if v.is_nan() {
        return "NaN".into();
    }
    if v.is_infinite() {
        return if v > 0.0 {
            "+Inf".into()
        } else {
            "-Inf".into()
        };
    }
    let neg = v.is_sign_negative();
    let a = v.abs();
    let shortest = prec < 0;
    if fmt == 'f' && !shortest {
        // An f64 has at most 1074 fractional digits; the rest are zeros (and
        // `format!` precisions stop at 65535).
        let p = prec as usize;
        let mut s = format!("{:.*}", p.min(1100), a);
        s.extend(std::iter::repeat_n('0', p.saturating_sub(1100)));
        return if neg { format!("-{s}") } else { s };
    }
    let (d, dp) = if shortest {
        float_digits(a, None)
    } else {
        match fmt {
            'e' | 'E' => float_digits(a, Some(prec as usize + 1)),
            _ => float_digits(a, Some(if prec == 0 { 1 } else { prec as usize })),
        }
    };
    let nd = d.len() as i32;
    let mut prec = prec;
    if shortest {
        prec = match fmt {
            'e' | 'E' => (nd - 1).max(0),
            'f' => (nd - dp).max(0),
            _ => nd,
        };
    }
    match fmt {
        'e' | 'E' => fmt_e(neg, &d, dp, prec, fmt),
        'f' => fmt_f(neg, &d, dp, prec),
        _ => {
            let mut eprec = prec;
            if eprec > nd && nd >= dp {
                eprec = nd;
            }
            if shortest {
                eprec = 6;
            }
            let exp = dp - 1;
            if exp < -4 || exp >= eprec {
                if prec > nd {
                    prec = nd;
                }
                return fmt_e(neg, &d, dp, prec - 1, if fmt == 'G' { 'E' } else { 'e' });
            }
            if prec > dp {
                prec = nd;
            }
            fmt_f(neg, &d, dp, (prec - dp).max(0))
        }
    }
}

fn fmt_e(neg: bool, d: &[u8], dp: i32, prec: i32, fmt: char) -> String {
    let mut s = String::new();
    if neg {
        s.push('-');
    }
    s.push(d.first().map_or('0', |c| *c as char));
    if prec > 0 {
        s.push('.');
        let m = (d.len() as i32).min(prec + 1);
        let mut i = 1;
        while i < m {
            s.push(d[i as usize] as char);
            i += 1;
        }
        while i <= prec {
            s.push('0');
            i += 1;
        }
    }
    s.push(fmt);
    let mut exp = dp - 1;
    if d.is_empty() {
        exp = 0;
    }
    if exp < 0 {
        s.push('-');
        exp = -exp;
    } else {
        s.push('+');
    }
    if exp < 10 {
        s.push('0');
    }
    let _ = write!(s, "{exp}");
    s
}

fn fmt_f(neg: bool, d: &[u8], dp: i32, prec: i32) -> String {
    let mut s = String::new();
    if neg {
        s.push('-');
    }
    if dp > 0 {
        let m = (d.len() as i32).min(dp);
        for c in &d[..m as usize] {
            s.push(*c as char);
        }
        for _ in m..dp {
            s.push('0');
        }
    } else {
        s.push('0');
    }
    if prec > 0 {
        s.push('.');
        for i in 1..=prec {
            let j = dp + i - 1;
            s.push(if j >= 0 && j < d.len() as i32 {
                d[j as usize] as char
            } else {
                '0'
            });
        }
    }
    s
}

// ---------------------------------------------------------------------------
// Quoting
// ---------------------------------------------------------------------------

/// Approximates Go's `unicode.IsPrint` (letters, marks, numbers, punctuation,
/// symbols and ASCII space).
fn is_print(c: char) -> bool {
    let u = c as u32;
    if c == ' ' {
        return true;
    }
    if c.is_control() || c.is_whitespace() {
        return false;
    }
    !matches!(u,
        0xAD | 0x600..=0x605 | 0x61C | 0x6DD | 0x70F | 0x180E | 0x200B..=0x200F | 0x202A..=0x202E
        | 0x2060..=0x206F | 0xD800..=0xF8FF | 0xFDD0..=0xFDEF | 0xFEFF | 0xFFF9..=0xFFFB | 0xFFFE | 0xFFFF
        | 0xE0001 | 0xE0020..=0xE007F | 0xF0000..)
}

fn quote_with(s: &str, quote: char, ascii_only: bool) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push(quote);
    for c in s.chars() {
        if c == quote || c == '\\' {
            out.push('\\');
            out.push(c);
            continue;
        }
        let printable = if ascii_only {
            c.is_ascii() && is_print(c)
        } else {
            is_print(c)
        };
        if printable {
            out.push(c);
            continue;
        }
        match c {
            '\x07' => out.push_str("\\a"),
            '\x08' => out.push_str("\\b"),
            '\x0c' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\x0b' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c if (c as u32) < 0x10000 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => {
                let _ = write!(out, "\\U{:08x}", c as u32);
            }
        }
    }
    out.push(quote);
    out
}

/// Go's `strconv.Quote`.
fn go_quote(s: &str) -> String {
    quote_with(s, '"', false)
}

fn go_quote_ascii(s: &str) -> String {
    quote_with(s, '"', true)
}

fn quote_rune(c: char, ascii_only: bool) -> String {
    quote_with(&c.to_string(), '\'', ascii_only)
}

fn can_backquote(s: &str) -> bool {
    s.chars()
        .all(|c| c != '`' && c != '\u{FEFF}' && (c == '\t' || !c.is_control()))
}

/// `%#U`-style description of a character for lexer errors.
fn fmt_unicode_sharp(c: char) -> String {
    if is_print(c) {
        format!("U+{:04X} '{}'", c as u32, c)
    } else {
        format!("U+{:04X}", c as u32)
    }
}

// ===========================================================================
// Time
// ===========================================================================

const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];
const DAYS: [&str; 7] = [
    "Sunday",
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
];
/// Go's zero `time.Time` (January 1, year 1, 00:00:00 UTC) in Unix seconds.
const ZERO_TIME_SECS: i64 = -62_135_596_800;

struct TimeParts {
    year: i64,
    month: u32,
    day: u32,
    hour: u32,
    min: u32,
    sec: u32,
    yday: u32,
    wday: u32,
}

fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (i64::from(m) + 9) % 12;
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

fn time_parts(t: Time) -> TimeParts {
    let days = t.secs.div_euclid(86_400);
    let sod = t.secs.rem_euclid(86_400) as u32;
    let (year, month, day) = civil_from_days(days);
    TimeParts {
        year,
        month,
        day,
        hour: sod / 3600,
        min: sod / 60 % 60,
        sec: sod % 60,
        yday: (days - days_from_civil(year, 1, 1) + 1) as u32,
        wday: (days + 4).rem_euclid(7) as u32,
    }
}

/// Go's `Time.String()` for a UTC time.
fn time_string(t: Time) -> String {
    go_time_format(t, "2006-01-02 15:04:05.999999999 -0700 MST")
}

/// Go's `Duration.String()`.
fn duration_string(d: i64) -> String {
    if d == 0 {
        return "0s".into();
    }
    let neg = d < 0;
    let mut u = d.unsigned_abs();
    let mut s = String::new();
    let frac = |u: u64, prec: u32| -> (String, u64) {
        let p = 10u64.pow(prec);
        let f = u % p;
        let mut digits = format!("{:0width$}", f, width = prec as usize);
        while digits.ends_with('0') {
            digits.pop();
        }
        (
            if digits.is_empty() {
                String::new()
            } else {
                format!(".{digits}")
            },
            u / p,
        )
    };
    if u < 1_000_000_000 {
        let (unit, prec) = if u < 1_000 {
            ("ns", 0)
        } else if u < 1_000_000 {
            ("µs", 3)
        } else {
            ("ms", 6)
        };
        let (f, whole) = frac(u, prec);
        let _ = write!(s, "{whole}{f}{unit}");
    } else {
        let (f, secs) = frac(u, 9);
        u = secs;
        let sec_part = format!("{}{}s", u % 60, f);
        u /= 60;
        if u > 0 {
            let min_part = format!("{}m", u % 60);
            u /= 60;
            if u > 0 {
                let _ = write!(s, "{u}h");
            }
            s.push_str(&min_part);
        }
        s.push_str(&sec_part);
    }
    if neg {
        s.insert(0, '-');
    }
    s
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Std {
    LongMonth,
    Month,
    NumMonth,
    ZeroMonth,
    LongWeekDay,
    WeekDay,
    Day,
    UnderDay,
    ZeroDay,
    UnderYearDay,
    ZeroYearDay,
    Hour,
    Hour12,
    ZeroHour12,
    Minute,
    ZeroMinute,
    Second,
    ZeroSecond,
    LongYear,
    Year,
    PM,
    Pm,
    TZ,
    Iso(&'static str),
    Num(&'static str),
    Frac(bool, usize, char),
}

/// Go's `nextStdChunk`: (prefix length, chunk, chunk length).
fn next_std_chunk(layout: &str) -> Option<(usize, Std, usize)> {
    let b = layout.as_bytes();
    let starts = |i: usize, p: &str| layout[i..].starts_with(p);
    let lower_at = |i: usize| b.get(i).is_some_and(u8::is_ascii_lowercase);
    for i in 0..b.len() {
        match b[i] {
            b'J' if starts(i, "Jan") => {
                if starts(i, "January") {
                    return Some((i, Std::LongMonth, 7));
                }
                if !lower_at(i + 3) {
                    return Some((i, Std::Month, 3));
                }
            }
            b'M' => {
                if starts(i, "Mon") {
                    if starts(i, "Monday") {
                        return Some((i, Std::LongWeekDay, 6));
                    }
                    if !lower_at(i + 3) {
                        return Some((i, Std::WeekDay, 3));
                    }
                }
                if starts(i, "MST") {
                    return Some((i, Std::TZ, 3));
                }
            }
            b'0' => {
                if let Some(&c) = b.get(i + 1) {
                    let std = match c {
                        b'1' => Some(Std::ZeroMonth),
                        b'2' => Some(Std::ZeroDay),
                        b'3' => Some(Std::ZeroHour12),
                        b'4' => Some(Std::ZeroMinute),
                        b'5' => Some(Std::ZeroSecond),
                        b'6' => Some(Std::Year),
                        _ => None,
                    };
                    if let Some(s) = std {
                        return Some((i, s, 2));
                    }
                }
                if starts(i, "002") {
                    return Some((i, Std::ZeroYearDay, 3));
                }
            }
            b'1' => {
                if b.get(i + 1) == Some(&b'5') {
                    return Some((i, Std::Hour, 2));
                }
                return Some((i, Std::NumMonth, 1));
            }
            b'2' => {
                if starts(i, "2006") {
                    return Some((i, Std::LongYear, 4));
                }
                return Some((i, Std::Day, 1));
            }
            b'_' => {
                if b.get(i + 1) == Some(&b'2') {
                    if starts(i + 1, "2006") {
                        return Some((i + 1, Std::LongYear, 4));
                    }
                    return Some((i, Std::UnderDay, 2));
                }
                if starts(i, "__2") {
                    return Some((i, Std::UnderYearDay, 3));
                }
            }
            b'3' => return Some((i, Std::Hour12, 1)),
            b'4' => return Some((i, Std::Minute, 1)),
            b'5' => return Some((i, Std::Second, 1)),
            b'P' if b.get(i + 1) == Some(&b'M') => return Some((i, Std::PM, 2)),
            b'p' if b.get(i + 1) == Some(&b'm') => return Some((i, Std::Pm, 2)),
            b'-' | b'Z' => {
                let z = b[i] == b'Z';
                for p in ["070000", "07:00:00", "0700", "07:00", "07"] {
                    if starts(i + 1, p) {
                        let std = if z { Std::Iso(p) } else { Std::Num(p) };
                        return Some((i, std, p.len() + 1));
                    }
                }
            }
            b'.' | b',' => {
                if let Some(&ch) = b.get(i + 1).filter(|c| **c == b'0' || **c == b'9') {
                    let mut j = i + 1;
                    while j < b.len() && b[j] == ch {
                        j += 1;
                    }
                    if !b.get(j).is_some_and(u8::is_ascii_digit) {
                        return Some((i, Std::Frac(ch == b'9', j - i - 1, b[i] as char), j - i));
                    }
                }
            }
            _ => {}
        }
    }
    None
}

/// Go's `Time.Format` for a UTC time.
fn go_time_format(t: Time, layout: &str) -> String {
    let p = time_parts(t);
    let mut out = String::new();
    let mut rest = layout;
    while let Some((pre, std, len)) = next_std_chunk(rest) {
        out.push_str(&rest[..pre]);
        rest = &rest[pre + len..];
        let hour12 = if p.hour.is_multiple_of(12) {
            12
        } else {
            p.hour % 12
        };
        let _ = match std {
            Std::LongMonth => write!(out, "{}", MONTHS[(p.month - 1) as usize]),
            Std::Month => write!(out, "{}", &MONTHS[(p.month - 1) as usize][..3]),
            Std::NumMonth => write!(out, "{}", p.month),
            Std::ZeroMonth => write!(out, "{:02}", p.month),
            Std::LongWeekDay => write!(out, "{}", DAYS[p.wday as usize]),
            Std::WeekDay => write!(out, "{}", &DAYS[p.wday as usize][..3]),
            Std::Day => write!(out, "{}", p.day),
            Std::UnderDay => write!(out, "{:>2}", p.day),
            Std::ZeroDay => write!(out, "{:02}", p.day),
            Std::UnderYearDay => write!(out, "{:>3}", p.yday),
            Std::ZeroYearDay => write!(out, "{:03}", p.yday),
            Std::Hour => write!(out, "{:02}", p.hour),
            Std::Hour12 => write!(out, "{hour12}"),
            Std::ZeroHour12 => write!(out, "{hour12:02}"),
            Std::Minute => write!(out, "{}", p.min),
            Std::ZeroMinute => write!(out, "{:02}", p.min),
            Std::Second => write!(out, "{}", p.sec),
            Std::ZeroSecond => write!(out, "{:02}", p.sec),
            Std::LongYear => {
                if p.year < 0 {
                    write!(out, "-{:04}", -p.year)
                } else {
                    write!(out, "{:04}", p.year)
                }
            }
            Std::Year => write!(out, "{:02}", p.year.rem_euclid(100)),
            Std::PM => write!(out, "{}", if p.hour >= 12 { "PM" } else { "AM" }),
            Std::Pm => write!(out, "{}", if p.hour >= 12 { "pm" } else { "am" }),
            Std::TZ => write!(out, "UTC"),
            Std::Iso(_) => write!(out, "Z"),
            Std::Num(f) => write!(
                out,
                "{}",
                match f {
                    "070000" => "+000000",
                    "07:00:00" => "+00:00:00",
                    "0700" => "+0000",
                    "07:00" => "+00:00",
                    _ => "+00",
                }
            ),
            Std::Frac(trim, n, sep) => {
                let digits = format!("{:09}", t.nanos);
                let mut d = &digits[..n.min(9)];
                if trim {
                    d = d.trim_end_matches('0');
                }
                if !d.is_empty() {
                    out.push(sep);
                    out.push_str(d);
                }
                Ok(())
            }
        };
    }
    out.push_str(rest);
    out
}

// ===========================================================================
// Tests
// ===========================================================================

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    fn run(text: &str, data: serde_json::Value) -> Result<String, String> {
        let t = Template::parse("test", text)?;
        t.execute(&data, &Env::default())
    }

    fn ok(text: &str, data: serde_json::Value) -> String {
        match run(text, data) {
            Ok(s) => s,
            Err(e) => panic!("{text:?}: unexpected error {e}"),
        }
    }

    fn data() -> serde_json::Value {
        json!({
            "s": "str",
            "a": [1, 2, 3],
            "b": [1, 2, 3, 4],
            "m": {"k": "v", "n": -3},
            "empty": [],
            "f": 1.5,
            "t": true,
            "nested": {"x": {"y": "deep"}},
            "null": null,
        })
    }

    #[test]
    fn language() {
        let cases: &[(&str, &str)] = &[
            ("plain text", "plain text"),
            ("{{ 1 }}", "1"),
            ("{{1.5}}|{{1e3}}|{{0x1F}}|{{'a'}}|{{-7}}|{{1_000}}|{{0o17}}|{{0b101}}", "1.5|1000|31|97|-7|1000|15|5"),
            (r#"{{"a\tb\u00e9\x41\101"}}"#, "a\tbéAA"),
            ("{{`raw\\n`}}", "raw\\n"),
            ("{{true}} {{false}}", "true false"),
            // Whitespace trimming.
            ("a  {{- 1 -}}  b", "a1b"),
            ("a \n\t{{- 1}} b", "a1 b"),
            ("a {{1 -}} \n\t b", "a 1b"),
            ("a {{- /* comment */ -}} b", "ab"),
            ("a{{/* c */}}b", "ab"),
            ("x {{-3}}", "x -3"),
            ("{{3 -}}\n y", "3y"),
            ("{{- 3 -}}", "3"),
            ("{{ 3 -}}", "3"),
            ("<{{- \"x\" -}}\n\n>", "<x>"),
            // Conditionals.
            ("{{if true}}T{{else}}F{{end}}", "T"),
            ("{{if 0}}T{{else if 1}}E{{else}}F{{end}}", "E"),
            ("{{if 0}}T{{else if 0}}E{{else}}F{{end}}", "F"),
            ("{{if .t}}{{if .s}}[{{.s}}]{{end}}{{end}}", "[str]"),
            ("{{if .empty}}y{{else}}n{{end}}{{if .m}}y{{end}}{{if .null}}y{{else}}n{{end}}", "nyn"),
            ("{{if \"\"}}y{{else}}n{{end}}{{if 0.0}}y{{else}}n{{end}}{{if .missing}}y{{else}}n{{end}}", "nnn"),
            ("{{with .s}}{{.}}{{end}}", "str"),
            ("{{with .missing}}x{{else}}none{{end}}", "none"),
            ("{{with $x := .s}}{{$x}}{{.}}{{end}}", "strstr"),
            ("{{with .missing}}a{{else with .s}}{{.}}{{end}}", "str"),
            // Range.
            ("{{range .a}}{{.}},{{end}}", "1,2,3,"),
            ("{{range $i, $e := .a}}{{$i}}={{$e}} {{end}}", "0=1 1=2 2=3 "),
            ("{{range $e := .a}}{{$e}}{{end}}", "123"),
            ("{{range $k, $v := .m}}{{$k}}:{{$v}};{{end}}", "k:v;n:-3;"),
            ("{{range .m}}{{.}};{{end}}", "v;-3;"),
            ("{{range .empty}}x{{else}}empty{{end}}", "empty"),
            ("{{range .missing}}x{{else}}none{{end}}", "none"),
            ("{{range 3}}{{.}}{{end}}", "012"),
            ("{{range .b}}{{if eq . 2}}{{continue}}{{end}}{{if eq . 4}}{{break}}{{end}}{{.}}{{end}}", "13"),
            ("{{range .a}}{{range .}}{{end}}{{end}}", ""),
            ("{{range .a}}{{$.s}}{{end}}", "strstrstr"),
            // Variables.
            ("{{$x := 1}}{{$x = 2}}{{$x}}", "2"),
            ("{{$x := 1}}{{if true}}{{$x := 2}}{{$x}}{{end}}{{$x}}", "21"),
            ("{{$x := 1}}{{if true}}{{$x = 2}}{{end}}{{$x}}", "2"),
            ("{{$s := 0}}{{range .a}}{{$s = .}}{{end}}{{$s}}", "3"),
            ("{{$}}", "map[a:[1 2 3] b:[1 2 3 4] empty:[] f:1.5 m:map[k:v n:-3] nested:map[x:map[y:deep]] null:<nil> s:str t:true]"),
            ("{{$.nested.x.y}} {{.nested.x.y}}", "deep deep"),
            ("{{$m := .m}}{{$m.k}}", "v"),
            // Pipelines and parentheses.
            (r#"{{"abc" | printf "%s-%s" "x"}}"#, "x-abc"),
            ("{{.s | len}}", "3"),
            (r#"{{ (index .nested "x").y }}"#, "deep"),
            (r#"{{ len (print "ab" "cd") | printf "%03d" }}"#, "004"),
            // Templates.
            (r#"{{define "T"}}[{{.}}]{{end}}{{template "T" "x"}}{{template "T" .s}}"#, "[x][str]"),
            (r#"{{define "T"}}[{{.}}]{{end}}{{template "T"}}"#, "[<no value>]"),
            (r#"{{block "B" .s}}<{{.}}>{{end}}"#, "<str>"),
            (r#"{{define "T"}}{{$}}{{end}}{{template "T" 5}}"#, "5"),
            (r#"{{define "list"}}{{range .}}({{.}}){{end}}{{end}}{{template "list" .a}}"#, "(1)(2)(3)"),
            ("\n{{define \"T\"}}x{{end}}\n", "\n\n"),
            // Builtins.
            (r#"{{and 1 0 2}} {{and 1 2}} {{or 0 "" "x"}} {{or 0 ""}} {{not 0}} {{not "a"}}"#, "0 2 x  true false"),
            ("{{and .missing .missing.x}}", "<no value>"),
            (r#"{{eq 1 1}} {{eq "a" "b" "a"}} {{ne 1 2}} {{lt 1 2}} {{le 2 2}} {{gt "b" "a"}} {{ge 1.5 2.5}}"#, "true true true true true true false"),
            ("{{eq .missing 1}} {{eq .s .s}} {{eq .null nil}}", "false true true"),
            (r#"{{index .a 1}} {{index .m "k"}} {{index .nested "x" "y"}} {{index .m "zz"}}|"#, "2 v deep <no value>|"),
            (r#"{{slice "abcdef" 1 3}} {{slice .a 1}} {{slice .a}} {{slice "abc" 1 1}}|"#, "bc [2 3] [1 2 3] |"),
            ("{{len .a}} {{len .m}} {{len .s}} {{len \"héllo\"}}", "3 2 3 6"),
            (r#"{{print 1 2 "a" 3 "b" "c"}}"#, "1 2a3bc"),
            (r#"{{println 1 "a" 2}}"#, "1 a 2\n"),
            (r#"{{html "<a href='x'>&\"" }}"#, "&lt;a href=&#39;x&#39;&gt;&amp;&#34;"),
            (r#"{{js "a'b\"<>&=\\ é\n"}}"#, r#"a\'b\"\u003C\u003E\u0026\u003D\\ é\u000A"#),
            (r#"{{urlquery "a b&c=d/é~"}}"#, "a+b%26c%3Dd%2F%C3%A9~"),
            ("{{html .missing}}", "&lt;no value&gt;"),
            ("{{print .missing}} {{printf \"%v\" .missing}}", "<nil> <nil>"),
            // Printing of values.
            ("{{.a}} {{.m}} {{.f}} {{.t}} {{.null}} {{.missing}}", "[1 2 3] map[k:v n:-3] 1.5 true <no value> <no value>"),
            ("{{0.1}} {{1e6}} {{123456.0}} {{1e-5}} {{0.0001}} {{-0.0}} {{1e21}}", "0.1 1e+06 123456 1e-05 0.0001 -0 1e+21"),
        ];
        for (text, want) in cases {
            assert_eq!(ok(text, data()), *want, "template {text:?}");
        }
    }

    #[test]
    fn printf_matches_go() {
        let cases: &[(&str, &str)] = &[
            (r#"{{printf "%.2f" 3.14159}}"#, "3.14"),
            (r#"{{printf "%5.1f|" 3.14159}}"#, "  3.1|"),
            (r#"{{printf "%-5d|" 42}}"#, "42   |"),
            (r#"{{printf "%05d" -42}}"#, "-0042"),
            (
                r#"{{printf "%x %X %o %b %O" 255 255 8 5 8}}"#,
                "ff FF 10 101 0o10",
            ),
            (r#"{{printf "%#x %#o %#b" 255 8 5}}"#, "0xff 010 0b101"),
            (r#"{{printf "%q" "a\"b\n"}}"#, r#""a\"b\n""#),
            (r#"{{printf "%#q" "ab"}}"#, "`ab`"),
            (r#"{{printf "%v %v" 1.0 1e21}}"#, "1 1e+21"),
            (r#"{{printf "%g" 1234567.0}}"#, "1.234567e+06"),
            (r#"{{printf "%g %g" 100000.0 0.00001}}"#, "100000 1e-05"),
            (r#"{{printf "%e" 1234.5678}}"#, "1.234568e+03"),
            (r#"{{printf "%.3e" 0.0}}"#, "0.000e+00"),
            (r#"{{printf "%.4g" 0.0001234}}"#, "0.0001234"),
            (r#"{{printf "%.4g" 0.00001234}}"#, "1.234e-05"),
            (
                r#"{{printf "%.4g %.4g %.4g" 100.0 12345.0 1.5}}"#,
                "100 1.234e+04 1.5",
            ),
            (r#"{{printf "%.3g" 1235.0}}"#, "1.24e+03"),
            (r#"{{printf "%s" 5}}"#, "%!s(int=5)"),
            (r#"{{printf "%d" "x"}}"#, "%!d(string=x)"),
            (r#"{{printf "%d"}}"#, "%!d(MISSING)"),
            (r#"{{printf "%d" 1 2}}"#, "1%!(EXTRA int=2)"),
            (
                r#"{{printf "%d %s" 1 2 "x" 4.5}}"#,
                "1 %!s(int=2)%!(EXTRA string=x, float64=4.5)",
            ),
            (r#"{{printf "%f" 5}}"#, "%!f(int=5)"),
            (r#"{{printf "%z" 5}}"#, "%!z(int=5)"),
            (r#"{{printf "%d" true}}"#, "%!d(bool=true)"),
            (r#"{{printf "%s" nil}}"#, "%!s(<nil>)"),
            (r#"{{printf "%6.2f%%" 12.3456}}"#, " 12.35%"),
            (r#"{{printf "%t" true}}"#, "true"),
            (
                r#"{{printf "%T %T %T %T %T" 1 1.5 "s" .a .m}}"#,
                "int float64 string []interface {} map[string]interface {}",
            ),
            (r#"{{printf "%c%c" 65 0x1F600}}"#, "A😀"),
            (r#"{{printf "%U %#U" 0x1F600 65}}"#, "U+1F600 U+0041 'A'"),
            (r#"{{printf "%q" 65}}"#, "'A'"),
            (
                r#"{{printf "%x %X % x %#x" "hi" "hi" "hi" "hi"}}"#,
                "6869 6869 68 69 0x6869",
            ),
            (
                r#"{{printf "%10.3s|%-4s|" "abcdef" "é"}}"#,
                "       abc|é   |",
            ),
            (r#"{{printf "%+d %+.1f % d" 5 2.0 7}}"#, "+5 +2.0  7"),
            (r#"{{printf "%*d|%-*d|" 5 42 4 1}}"#, "   42|1   |"),
            (r#"{{printf "%.*f" 1 3.14159}}"#, "3.1"),
            (
                r#"{{len (printf "%.100000f|%.100000e|%.100000g|%#.70000U" 0.1 0.1 0.1 65)}}"#,
                "270074",
            ),
            (r#"{{printf "%[2]d %[1]d" 1 2}}"#, "2 1"),
            (r#"{{printf "%[3]d" 1 2}}"#, "%!d(BADINDEX)"),
            (
                r#"{{printf "%v" .a}} {{printf "%v" .m}} {{printf "%d" .a}}"#,
                "[1 2 3] map[k:v n:-3] [1 2 3]",
            ),
            (
                r#"{{printf "%s" .a}}"#,
                "[%!s(int=1) %!s(int=2) %!s(int=3)]",
            ),
            (r#"{{printf "%v" nil}}"#, "<nil>"),
            (
                r#"{{printf "%.0f %.0f %.0f %.2f %.1f" 2.5 3.5 0.5 1.005 0.25}}"#,
                "2 4 0 1.00 0.2",
            ),
            (
                r#"{{printf "%08.3f|%-8.2f|%+08d" -3.14159 2.5 42}}"#,
                "-003.142|2.50    |+0000042",
            ),
            (
                r#"{{printf "%e %G %E" 1e-7 1e-10 123456.0}}"#,
                "1.000000e-07 1E-10 1.234560E+05",
            ),
            (r#"{{printf "%.0d|%.3d|%5.3d" 0 7 7}}"#, "|007|  007"),
            (r#"{{printf "%%|%5%|%"}}"#, "%|%|%!(NOVERB)"),
            (
                r#"{{printf "%.2f" .f}} {{printf "%v" .f}} {{printf "%5v|" .s}}"#,
                "1.50 1.5   str|",
            ),
            (
                r#"{{printf "%v|%s|%d" 1.5 "x" 3 | printf "%q"}}"#,
                r#""1.5|x|3""#,
            ),
        ];
        for (text, want) in cases {
            assert_eq!(ok(text, data()), *want, "template {text:?}");
        }
    }

    #[test]
    fn float_formatting_edge_cases() {
        let cases: &[(f64, char, i32, &str)] = &[
            (0.0, 'g', -1, "0"),
            (-0.0, 'g', -1, "-0"),
            (1.0, 'g', -1, "1"),
            (0.1 + 0.2, 'g', -1, "0.30000000000000004"),
            (1234567.0, 'g', -1, "1.234567e+06"),
            (123456789.0, 'g', -1, "1.23456789e+08"),
            (1e100, 'g', -1, "1e+100"),
            (5e-324, 'g', -1, "5e-324"),
            (1.7976931348623157e308, 'g', -1, "1.7976931348623157e+308"),
            (f64::INFINITY, 'g', 4, "+Inf"),
            (f64::NEG_INFINITY, 'f', 2, "-Inf"),
            (f64::NAN, 'e', 2, "NaN"),
            (1.235, 'g', 4, "1.235"),
            (12.345, 'g', 4, "12.35"),
            (0.0, 'g', 4, "0"),
            (123456.0, 'g', 4, "1.235e+05"),
            (1e21, 'f', -1, "1000000000000000000000"),
            (0.000001, 'e', -1, "1e-06"),
            (9.999, 'g', 3, "10"),
            (99999.0, 'g', 4, "1e+05"),
        ];
        for (v, f, p, want) in cases {
            assert_eq!(go_ftoa(*v, *f, *p), *want, "{v} {f} {p}");
        }
    }

    #[test]
    fn missing_keys() {
        // interface{} maps: "<no value>" (default and zero); nested access
        // through a missing key under missingkey=zero is a nil interface.
        assert_eq!(ok("{{.nope}}", data()), "<no value>");
        assert_eq!(
            run("{{.nope.deeper}}", data()).unwrap_err(),
            r#"template: test:1:7: executing "test" at <.nope.deeper>: nil pointer evaluating interface {}.deeper"#
        );
        let mut t = Template::parse("test", "{{.nope.deeper}}").unwrap();
        t.set_missing_key(MissingKey::Invalid);
        assert_eq!(t.execute(&data(), &Env::default()).unwrap(), "<no value>");
        t.set_missing_key(MissingKey::Error);
        assert_eq!(
            t.execute(&data(), &Env::default()).unwrap_err(),
            r#"template: test:1:7: executing "test" at <.nope.deeper>: map has no entry for key "nope""#
        );
        // map[string]string (Prometheus' $labels): missing key is "".
        let labels = BTreeMap::from([("instance".to_string(), "a:1".to_string())]);
        let d = Value::map(BTreeMap::from([(
            "Labels".to_string(),
            Value::str_map(labels.clone()),
        )]));
        let t = Template::parse(
            "test",
            "[{{.Labels.nope}}][{{index .Labels \"nope\"}}][{{.Labels.instance}}]",
        )
        .unwrap();
        assert_eq!(t.execute_value(&d, &Env::default()).unwrap(), "[][][a:1]");
        let mut t = Template::parse("test", "[{{.Labels.nope}}]").unwrap();
        t.set_missing_key(MissingKey::Invalid);
        assert_eq!(
            t.execute_value(&d, &Env::default()).unwrap(),
            "[<no value>]"
        );
        // Nil data: "<no value>", or an error under missingkey=error.
        assert_eq!(ok("{{ .Foo }}", serde_json::Value::Null), "<no value>");
        let mut t = Template::parse("test", "{{ .Foo }}").unwrap();
        t.set_missing_key(MissingKey::Error);
        assert_eq!(
            t.execute(&serde_json::Value::Null, &Env::default())
                .unwrap_err(),
            r#"template: test:1:3: executing "test" at <.Foo>: nil data; no entry for key "Foo""#
        );
    }

    #[test]
    fn parse_errors() {
        let cases: &[(&str, &str)] = &[
            (
                "{{foo 1}}",
                r#"template: test:1: function "foo" not defined"#,
            ),
            ("{{$x}}", r#"template: test:1: undefined variable "$x""#),
            ("{{", "template: test:1: unclosed action"),
            ("{{ .x ", "template: test:1: unclosed action"),
            (
                "{{ .x\n\n",
                "template: test:3: unclosed action started at test:1",
            ),
            ("{{end}}", "template: test:1: unexpected {{end}}"),
            ("{{else}}", "template: test:1: unexpected {{else}}"),
            ("{{if 1}}", "template: test:1: unexpected EOF"),
            (
                "{{range}}{{end}}",
                "template: test:1: missing value for range",
            ),
            ("{{if}}{{end}}", "template: test:1: missing value for if"),
            ("{{}}", "template: test:1: missing value for command"),
            (
                "{{1 | 2}}",
                "template: test:1: non executable command in pipeline stage 2",
            ),
            (
                "a\n{{.x | nonexist}}",
                r#"template: test:2: function "nonexist" not defined"#,
            ),
            ("{{break}}", "template: test:1: {{break}} outside {{range}}"),
            (
                "{{range .}}{{else}}{{continue}}{{end}}",
                "template: test:1: {{continue}} outside {{range}}",
            ),
            (
                r#"{{define "a"}}x{{end}}{{define "a"}}y{{end}}"#,
                r#"template: test:1: template: multiple definition of template "a""#,
            ),
            ("{{/* x", "template: test:1: unclosed comment"),
            (
                "{{/* x */ 1}}",
                "template: test:1: comment ends before closing delimiter",
            ),
            ("{{\"abc}}", "template: test:1: unterminated quoted string"),
            (
                "{{`abc}}",
                "template: test:1: unterminated raw quoted string",
            ),
            ("{{ 3x }}", r#"template: test:1: bad number syntax: "3x""#),
            (
                "{{ 1 ) }}",
                r#"template: test:1: unexpected ")" in command"#,
            ),
            ("{{ (1 }}", "template: test:1: unclosed left paren"),
            (
                "{{ .x @ }}",
                "template: test:1: unexpected \"@\" in operand",
            ),
            (
                "{{ \u{a0}}}",
                "template: test:1: unrecognized character in action: U+00A0",
            ),
            (
                "{{ .x.1 }}",
                "template: test:1: unexpected \".1\" in operand",
            ),
            (
                "{{ \"x\".y }}",
                r#"template: test:1: unexpected . after term "\"x\"""#,
            ),
            (
                "{{ $x := 1 }}{{ $x = }}",
                "template: test:1: missing value for command",
            ),
            (
                "{{ range $a, $b, $c := . }}{{end}}",
                "template: test:1: too many declarations in range",
            ),
            (
                "{{ with $a, $b := . }}{{end}}",
                "template: test:1: too many declarations in with",
            ),
            (
                "{{if 1}}{{else}}{{else}}{{end}}",
                "template: test:1: expected end; found {{else}}",
            ),
            (
                "{{template .x}}",
                r#"template: test:1: unexpected ".x" in template clause"#,
            ),
            (
                "{{define \"a\"}}{{else}}{{end}}",
                "template: test:1: unexpected {{else}} in define clause",
            ),
            ("{{ 08 }}", r#"template: test:1: integer overflow: "08""#),
            (
                "{{ 99999999999999999999 }}",
                r#"template: test:1: integer overflow: "99999999999999999999""#,
            ),
            ("{{ \"\\q\" }}", "template: test:1: invalid syntax"),
        ];
        for (text, want) in cases {
            match Template::parse("test", text) {
                Ok(_) => panic!("{text:?}: parsed, want error {want}"),
                Err(e) => assert_eq!(e, *want, "template {text:?}"),
            }
        }
        // Nesting is bounded.
        let deep = "{{".to_string() + &"(".repeat(200) + "1" + &")".repeat(200) + "}}";
        assert_eq!(
            Template::parse("t", &deep).unwrap_err(),
            "template: t:1: max expression depth exceeded"
        );
        let deep_if = "{{if 1}}".repeat(150) + &"{{end}}".repeat(150);
        assert_eq!(
            Template::parse("t", &deep_if).unwrap_err(),
            "template: t:1: max expression depth exceeded"
        );
        let ok_if = "{{if 1}}".repeat(90) + "x" + &"{{end}}".repeat(90);
        assert_eq!(
            Template::parse("t", &ok_if)
                .unwrap()
                .execute(&json!({}), &Env::default())
                .unwrap(),
            "x"
        );
    }

    #[test]
    fn exec_errors() {
        let cases: &[(&str, &str)] = &[
            (
                r#"{{template "nope"}}"#,
                r#"template: test:1:11: executing "test" at <{{template "nope"}}>: template "nope" not defined"#,
            ),
            (
                "{{ nil }}",
                r#"template: test:1:3: executing "test" at <nil>: nil is not a command"#,
            ),
            (
                "{{ .s.x }}",
                r#"template: test:1:5: executing "test" at <.s.x>: can't evaluate field x in type interface {}"#,
            ),
            (
                "{{ $x := .s }}{{ $x.y }}",
                r#"template: test:1:19: executing "test" at <$x.y>: can't evaluate field y in type string"#,
            ),
            (
                "{{ humanize 1 2 }}",
                r#"template: test:1:3: executing "test" at <humanize>: wrong number of args for humanize: want 1 got 2"#,
            ),
            (
                "{{ toUpper 1 }}",
                r#"template: test:1:11: executing "test" at <1>: expected string; found 1"#,
            ),
            (
                "{{ 5 | toUpper }}",
                r#"template: test:1:7: executing "test" at <toUpper>: wrong type for value; expected string; got int"#,
            ),
            (
                "{{ .missing | toUpper }}",
                r#"template: test:1:14: executing "test" at <toUpper>: invalid value; expected string"#,
            ),
            (
                "{{ eq 1.5 1 }}",
                r#"template: test:1:3: executing "test" at <eq 1.5 1>: error calling eq: incompatible types for comparison"#,
            ),
            (
                "{{ lt .a 1 }}",
                r#"template: test:1:3: executing "test" at <lt .a 1>: error calling lt: invalid type for comparison"#,
            ),
            (
                "{{ index .a 5 }}",
                r#"template: test:1:3: executing "test" at <index .a 5>: error calling index: index out of range: 5"#,
            ),
            (
                "{{ index 1 1 }}",
                r#"template: test:1:3: executing "test" at <index 1 1>: error calling index: can't index item of type int"#,
            ),
            (
                "{{ len 3 }}",
                r#"template: test:1:3: executing "test" at <len 3>: error calling len: len of type int"#,
            ),
            (
                "{{ slice .a 2 1 }}",
                r#"template: test:1:3: executing "test" at <slice .a 2 1>: error calling slice: invalid slice index: 2 > 1"#,
            ),
            (
                "{{ \"x\" 1 }}",
                r#"template: test:1:3: executing "test" at <"x">: can't give argument to non-function "x""#,
            ),
            (
                "{{ .s | .m }}",
                r#"template: test:1:8: executing "test" at <.m>: m is not a method but has arguments"#,
            ),
            (
                "{{ range .s }}{{end}}",
                r#"template: test:1:9: executing "test" at <{{range .s}}{{end}}>: range can't iterate over str"#,
            ),
            (
                "{{ 18446744073709551615 }}",
                r#"template: test:1:3: executing "test" at <18446744073709551615>: 18446744073709551615 overflows int"#,
            ),
            (
                r#"{{define "r"}}{{template "r" .}}{{end}}{{template "r" .}}"#,
                r#"template: test:1:25: executing "r" at <{{template "r" .}}>: exceeded maximum template depth (300)"#,
            ),
            (
                r#"{{define "x"}}{{.nope.x}}{{end}}{{template "x" .}}"#,
                r#"template: test:1:21: executing "x" at <.nope.x>: nil pointer evaluating interface {}.x"#,
            ),
            (
                "line1\n  {{ .s.x }}",
                r#"template: test:2:7: executing "test" at <.s.x>: can't evaluate field x in type interface {}"#,
            ),
            (
                "{{ $x := 1 }}{{ $x 2 }}",
                r#"template: test:1:16: executing "test" at <$x>: can't give argument to non-function $x"#,
            ),
        ];
        for (text, want) in cases {
            match run(text, data()) {
                Ok(s) => panic!("{text:?}: got {s:?}, want error {want}"),
                Err(e) => assert_eq!(e, *want, "template {text:?}"),
            }
        }
    }

    #[test]
    fn deep_recursion_does_not_overflow_a_small_stack() {
        // Template recursion and nested constructs up to the limits, on a
        // thread with tokio's default 2 MiB stack (an unoptimised build needs
        // about 0.8 MiB at the limit).
        let h = std::thread::Builder::new()
            .stack_size(2 << 20)
            .spawn(|| {
                let nest = "{{if 1}}{{with $}}{{range $}}".repeat(30) + "{{(((len $)))}}" + &"{{end}}{{end}}{{end}}".repeat(30);
                let text = format!(r#"{{{{define "r"}}}}{nest}{{{{template "r" $}}}}{{{{end}}}}{{{{template "r" .}}}}"#);
                let t = Template::parse("t", &text).unwrap();
                t.execute(&json!([1]), &Env::default())
            })
            .unwrap();
        let r = h.join().unwrap();
        assert!(r
            .unwrap_err()
            .contains("exceeded maximum template depth (300)"));
    }

    struct Prom {
        samples: Vec<(BTreeMap<String, String>, f64)>,
    }

    impl Prom {
        fn new() -> Prom {
            Prom {
                samples: Vec::new(),
            }
        }

        fn with(samples: &[(&[(&str, &str)], f64)]) -> Prom {
            Prom {
                samples: samples
                    .iter()
                    .map(|(l, v)| {
                        (
                            l.iter()
                                .map(|(k, v)| (k.to_string(), v.to_string()))
                                .collect(),
                            *v,
                        )
                    })
                    .collect(),
            }
        }

        fn expand(&self, text: &str, input: Value) -> Result<String, String> {
            let samples = self.samples.clone();
            let q = move |_: &str| -> Result<Samples, String> { Ok(samples.clone()) };
            let env = Env {
                query: Some(&q),
                external_url: "http://testhost:9090/path/prefix".into(),
                path_prefix: "/path/prefix".into(),
            };
            expand("test", text, &input, &env)
        }
    }

    fn floats(v: &[f64]) -> Value {
        Value::typed_list("[]float64", v.iter().map(|f| Value::Float(*f)).collect())
    }

    fn strs(v: &[&str]) -> Value {
        Value::typed_list("[]string", v.iter().map(|s| Value::str(s)).collect())
    }

    fn ints(v: &[i64]) -> Value {
        Value::typed_list("[]int64", v.iter().map(|i| Value::Int(*i)).collect())
    }

    fn uints(v: &[u64]) -> Value {
        Value::typed_list("[]uint64", v.iter().map(|i| Value::Uint(*i)).collect())
    }

    /// The cases of Prometheus' template/template_test.go (text mode).
    #[test]
    fn prometheus_template_test_cases() {
        let p = Prom::new();
        let nil = Value::Nil;
        let ok_cases: Vec<(&str, Value, &str)> = vec![
            ("plain text", nil.clone(), "plain text"),
            ("{{ 1 }}", nil.clone(), "1"),
            ("{{ \"<b>\" }}", nil.clone(), "<b>"),
            ("{{ \"<b>\" | safeHtml }}", nil.clone(), "<b>"),
            (r#"{{define "x"}}{{.arg0}} {{.arg1}}{{end}}{{template "x" (args 1 "2")}}"#, nil.clone(), "1 2"),
            ("{{ \"foo.example.com\" | stripPort }}", nil.clone(), "foo.example.com"),
            ("{{ \"foo.example.com:12345\" | stripPort }}", nil.clone(), "foo.example.com"),
            ("{{ \"192.0.2.1\" | stripPort }}", nil.clone(), "192.0.2.1"),
            ("{{ \"192.0.2.1:12345\" | stripPort }}", nil.clone(), "192.0.2.1"),
            ("{{ \"2001:0DB8::1\" | stripPort }}", nil.clone(), "2001:0DB8::1"),
            ("{{ \"[2001:0DB8::1]:12345\" | stripPort }}", nil.clone(), "2001:0DB8::1"),
            ("{{ \"[2001:0DB8::1]::12345\" | stripPort }}", nil.clone(), "[2001:0DB8::1]::12345"),
            ("{{ .Foo }}", nil.clone(), "<no value>"),
            (r#"{{ reReplaceAll "(a)b" "x$1" "ab" }}"#, nil.clone(), "xa"),
            ("{{ range . }}{{ humanize . }}:{{ end }}", floats(&[0.0, 1.0, 1234567.0, 0.12]), "0:1:1.235M:120m:"),
            ("{{ range . }}{{ humanize . }}:{{ end }}", strs(&["0.0", "1.0", "1234567.0", ".12"]), "0:1:1.235M:120m:"),
            ("{{ range . }}{{ humanize . }}:{{ end }}", ints(&[0, -1, 1, 1234567, i64::MAX]), "0:-1:1:1.235M:9.223E:"),
            ("{{ range . }}{{ humanize . }}:{{ end }}", uints(&[0, 1, 1234567, u64::MAX]), "0:1:1.235M:18.45E:"),
            ("{{ range . }}{{ humanize1024 . }}:{{ end }}", floats(&[0.0, 1.0, 1048576.0, 0.12]), "0:1:1Mi:0.12:"),
            ("{{ range . }}{{ humanize1024 . }}:{{ end }}", strs(&["0.0", "1.0", "1048576.0", ".12"]), "0:1:1Mi:0.12:"),
            ("{{ range . }}{{ humanize1024 . }}:{{ end }}", ints(&[0, -1, 1, 1234567, i64::MAX]), "0:-1:1:1.177Mi:8Ei:"),
            ("{{ range . }}{{ humanize1024 . }}:{{ end }}", uints(&[0, 1, 1234567, u64::MAX]), "0:1:1.177Mi:16Ei:"),
            (
                "{{ range . }}{{ humanizeDuration . }}:{{ end }}",
                floats(&[0.0, 1.0, 60.0, 3600.0, 86400.0, 86400.0 + 3600.0, -(86400.0 * 2.0 + 3600.0 * 3.0 + 60.0 * 4.0 + 5.0), 899.99]),
                "0s:1s:1m 0s:1h 0m 0s:1d 0h 0m 0s:1d 1h 0m 0s:-2d 3h 4m 5s:14m 59s:",
            ),
            ("{{ range . }}{{ humanizeDuration . }}:{{ end }}", strs(&["0", "1", "60", "3600", "86400"]), "0s:1s:1m 0s:1h 0m 0s:1d 0h 0m 0s:"),
            (
                "{{ range . }}{{ humanizeDuration . }}:{{ end }}",
                floats(&[0.1, 0.0001, 0.12345, 60.1, 60.5, 1.2345, 12.345]),
                "100ms:100us:123.5ms:1m 0s:1m 0s:1.234s:12.35s:",
            ),
            (
                "{{ range . }}{{ humanizeDuration . }}:{{ end }}",
                strs(&[".1", ".0001", ".12345", "60.1", "60.5", "1.2345", "12.345"]),
                "100ms:100us:123.5ms:1m 0s:1m 0s:1.234s:12.35s:",
            ),
            ("{{ range . }}{{ humanizeDuration . }}:{{ end }}", ints(&[0, -1, 1, 1234567]), "0s:-1s:1s:14d 6h 56m 7s:"),
            ("{{ range . }}{{ humanizeDuration . }}:{{ end }}", uints(&[0, 1, 1234567]), "0s:1s:14d 6h 56m 7s:"),
            (
                "{{ range . }}{{ humanize . }}:{{ humanize1024 . }}:{{ humanizeDuration . }}:{{humanizeTimestamp .}}:{{ end }}",
                floats(&[f64::INFINITY, f64::NEG_INFINITY, f64::NAN]),
                "+Inf:+Inf:+Inf:+Inf:-Inf:-Inf:-Inf:-Inf:NaN:NaN:NaN:NaN:",
            ),
            (
                "{{ range . }}{{ humanize . }}:{{ humanize1024 . }}:{{ humanizeDuration . }}:{{humanizeTimestamp .}}:{{ end }}",
                strs(&["+Inf", "-Inf", "NaN"]),
                "+Inf:+Inf:+Inf:+Inf:-Inf:-Inf:-Inf:-Inf:NaN:NaN:NaN:NaN:",
            ),
            (
                "{{ -0.22222 | humanizePercentage }}:{{ 0.0 | humanizePercentage }}:{{ 0.1234567 | humanizePercentage }}:{{ 1.23456 | humanizePercentage }}",
                nil.clone(),
                "-22.22%:0%:12.35%:123.5%",
            ),
            ("{{ range . }}{{ humanizePercentage . }}:{{ end }}", ints(&[0, -1, 1, 1234567, i64::MAX]), "0%:-100%:100%:1.235e+08%:9.223e+20%:"),
            ("{{ range . }}{{ humanizePercentage . }}:{{ end }}", uints(&[0, 1, 1234567, u64::MAX]), "0%:100%:1.235e+08%:1.845e+21%:"),
            (
                r#"{{ "-0.22222" | humanizePercentage }}:{{ "0.0" | humanizePercentage }}:{{ "0.1234567" | humanizePercentage }}:{{ "1.23456" | humanizePercentage }}"#,
                nil.clone(),
                "-22.22%:0%:12.35%:123.5%",
            ),
            (
                "{{ range . }}{{ humanizeTimestamp . }}:{{ end }}",
                ints(&[0, -1, 1, 1234567, 9223372036]),
                "1970-01-01 00:00:00 +0000 UTC:1969-12-31 23:59:59 +0000 UTC:1970-01-01 00:00:01 +0000 UTC:1970-01-15 06:56:07 +0000 UTC:2262-04-11 23:47:16 +0000 UTC:",
            ),
            (
                "{{ range . }}{{ humanizeTimestamp . }}:{{ end }}",
                uints(&[0, 1, 1234567, 9223372036]),
                "1970-01-01 00:00:00 +0000 UTC:1970-01-01 00:00:01 +0000 UTC:1970-01-15 06:56:07 +0000 UTC:2262-04-11 23:47:16 +0000 UTC:",
            ),
            ("{{ 1435065584.128 | humanizeTimestamp }}", nil.clone(), "2015-06-23 13:19:44.128 +0000 UTC"),
            (r#"{{ "1435065584.128" | humanizeTimestamp }}"#, nil.clone(), "2015-06-23 13:19:44.128 +0000 UTC"),
            (r#"{{ (1435065584.128 | toTime).Format "2006" }}"#, nil.clone(), "2015"),
            (r#"{{ ("1435065584.128" | toTime).Format "2006" }}"#, nil.clone(), "2015"),
            ("{{ \"aa bb CC\" | title }}", nil.clone(), "Aa Bb CC"),
            ("{{ \"aa bb CC\" | toUpper }}", nil.clone(), "AA BB CC"),
            ("{{ \"aA bB CC\" | toLower }}", nil.clone(), "aa bb cc"),
            ("{{ match \"a+\" \"aa\" }} {{ match \"a+\" \"b\" }}", nil.clone(), "true false"),
            ("{{ graphLink \"up\" }}", nil.clone(), "/graph?g0.expr=up&g0.tab=0"),
            ("{{ tableLink \"up\" }}", nil.clone(), "/graph?g0.expr=up&g0.tab=1"),
            ("{{ pathPrefix }}", nil.clone(), "/path/prefix"),
            ("{{ externalURL }}", nil.clone(), "http://testhost:9090/path/prefix"),
            ("{{ printf \"%0.2f\" (parseDuration \"1h2m10ms\") }}", nil.clone(), "3720.01"),
            ("{{ \"foo.example.com\" | stripDomain }}", nil.clone(), "foo"),
            ("{{ \"foo.example.com:12345\" | stripDomain }}", nil.clone(), "foo:12345"),
            ("{{ \"192.0.2.1\" | stripDomain }}", nil.clone(), "192.0.2.1"),
            ("{{ \"192.0.2.1:12345\" | stripDomain }}", nil.clone(), "192.0.2.1:12345"),
            ("{{ \"2001:0DB8::1\" | stripDomain }}", nil.clone(), "2001:0DB8::1"),
            ("{{ \"[2001:0DB8::1]:12345\" | stripDomain }}", nil.clone(), "[2001:0DB8::1]:12345"),
            ("{{ \"[2001:0DB8::1]::12345\" | stripDomain }}", nil.clone(), "[2001:0DB8::1]::12345"),
        ];
        for (text, input, want) in ok_cases {
            assert_eq!(p.expand(text, input).unwrap(), want, "template {text:?}");
        }

        let err_cases: Vec<(&str, Value, &str)> = vec![
            ("{{ \u{a0}}}", nil.clone(), "error parsing template test: template: test:1: unrecognized character in action: U+00A0"),
            ("{{", nil.clone(), "error parsing template test: template: test:1: unclosed action"),
            (
                "{{ query \"missing\" | first }}",
                nil.clone(),
                r#"error executing template test: template: test:1:21: executing "test" at <first>: error calling first: first() called on vector with no elements"#,
            ),
            (
                "{{ (query \"missing\").banana }}",
                nil.clone(),
                r#"error executing template test: template: test:1:10: executing "test" at <"missing">: can't evaluate field banana in type template.queryResult"#,
            ),
            (
                r#"{{ humanize "one" }}"#,
                nil.clone(),
                r#"error executing template test: template: test:1:3: executing "test" at <humanize "one">: error calling humanize: strconv.ParseFloat: parsing "one": invalid syntax"#,
            ),
            (
                r#"{{ humanize1024 "one" }}"#,
                nil.clone(),
                r#"error executing template test: template: test:1:3: executing "test" at <humanize1024 "one">: error calling humanize1024: strconv.ParseFloat: parsing "one": invalid syntax"#,
            ),
            (
                r#"{{ humanizeDuration "one" }}"#,
                nil.clone(),
                r#"error executing template test: template: test:1:3: executing "test" at <humanizeDuration "one">: error calling humanizeDuration: strconv.ParseFloat: parsing "one": invalid syntax"#,
            ),
            (
                r#"{{ "one" | humanizePercentage }}"#,
                nil.clone(),
                r#"error executing template test: template: test:1:11: executing "test" at <humanizePercentage>: error calling humanizePercentage: strconv.ParseFloat: parsing "one": invalid syntax"#,
            ),
            (
                "{{ range . }}{{ humanizeTimestamp . }}:{{ end }}",
                ints(&[i64::MIN, i64::MAX]),
                r#"error executing template test: template: test:1:16: executing "test" at <humanizeTimestamp .>: error calling humanizeTimestamp: -9.223372036854776e+18 cannot be represented as a nanoseconds timestamp since it overflows int64"#,
            ),
            (
                "{{ range . }}{{ humanizeTimestamp . }}:{{ end }}",
                uints(&[u64::MAX]),
                r#"error executing template test: template: test:1:16: executing "test" at <humanizeTimestamp .>: error calling humanizeTimestamp: 1.8446744073709552e+19 cannot be represented as a nanoseconds timestamp since it overflows int64"#,
            ),
            (
                r#"{{ humanize true }}"#,
                nil.clone(),
                r#"error executing template test: template: test:1:3: executing "test" at <humanize true>: error calling humanize: can't convert bool to float"#,
            ),
            (
                r#"{{ parseDuration "1x" }}"#,
                nil.clone(),
                r#"error executing template test: template: test:1:3: executing "test" at <parseDuration "1x">: error calling parseDuration: unknown unit "x" in duration "1x""#,
            ),
            (
                r#"{{ toTime "NaN" }}"#,
                nil.clone(),
                r#"error executing template test: template: test:1:3: executing "test" at <toTime "NaN">: error calling toTime: value is NaN or Inf"#,
            ),
        ];
        for (text, input, want) in err_cases {
            assert_eq!(
                p.expand(text, input).unwrap_err(),
                want,
                "template {text:?}"
            );
        }
    }

    #[test]
    fn prometheus_query_functions() {
        let one = Prom::with(&[(&[], 1.5)]);
        assert_eq!(
            one.expand("{{ query \"1.5\" | first | value }}", Value::Nil)
                .unwrap(),
            "1.5"
        );
        let p = Prom::with(&[(
            &[
                ("__name__", "metric"),
                ("instance", "a"),
                ("__value__", "sv"),
            ],
            11.0,
        )]);
        for (text, want) in [
            ("{{ query \"metric{instance='a'}\" | first | value }}", "11"),
            (
                "{{ query \"metric{instance='a'}\" | first | label \"instance\" }}",
                "a",
            ),
            ("{{ query \"metric\" | first | strvalue }}", "sv"),
            (
                "{{ query \"metric{instance='a'}\" | first | label \"foo\" }}",
                "",
            ),
            (
                "{{ $x := query \"metric\" | first }}{{ $x.Labels.foo }}",
                "",
            ),
            (
                "{{ with query \"metric\" }}{{ . | first | value | humanize }}{{ end }}",
                "11",
            ),
            ("{{ len (query \"metric\") }}", "1"),
            (
                "{{ first (query \"m\") }}",
                "{map[__name__:metric __value__:sv instance:a] 11}",
            ),
            (
                "{{ printf \"%v\" (query \"m\" | first) }}",
                "&{map[__name__:metric __value__:sv instance:a] 11}",
            ),
        ] {
            assert_eq!(
                p.expand(text, Value::Nil).unwrap(),
                want,
                "template {text:?}"
            );
        }
        let p = Prom::with(&[
            (&[("__name__", "metric"), ("instance", "b")], 21.0),
            (&[("__name__", "metric"), ("instance", "a")], 11.0),
        ]);
        assert_eq!(
            p.expand("{{ range query \"metric\" | sortByLabel \"instance\" }}{{.Labels.instance}}:{{.Value}}: {{end}}", Value::Nil)
                .unwrap(),
            "a:11: b:21: "
        );
        assert_eq!(
            p.expand(
                "{{ range $i, $s := query \"m\" }}{{ $i }}{{ label \"instance\" $s }}{{ end }}",
                Value::Nil
            )
            .unwrap(),
            "0b1a"
        );
        // Type checks as in Go.
        assert_eq!(
            p.expand("{{ first \"x\" }}", Value::Nil).unwrap_err(),
            r#"error executing template test: template: test:1:9: executing "test" at <"x">: can't handle "x" for arg of type template.queryResult"#
        );
        assert_eq!(
            p.expand("{{ (query \"m\" | first).Foo }}", Value::Nil)
                .unwrap_err(),
            r#"error executing template test: template: test:1:16: executing "test" at <first>: can't evaluate field Foo in type *template.sample"#
        );
        // Query errors and a missing query function.
        let q = |_: &str| -> Result<Samples, String> { Err("bad query".into()) };
        let env = Env {
            query: Some(&q),
            ..Env::default()
        };
        assert_eq!(
            expand("t", "{{ query \"x\" }}", &Value::Nil, &env).unwrap_err(),
            r#"error executing template t: template: t:1:3: executing "t" at <query "x">: error calling query: bad query"#
        );
        assert!(
            expand("t", "{{ query \"x\" }}", &Value::Nil, &Env::default())
                .unwrap_err()
                .contains("no query function")
        );
    }

    #[test]
    fn alert_templates() {
        let labels = BTreeMap::from([
            ("alertname".to_string(), "HighLoad".to_string()),
            ("instance".to_string(), "host.example.com:9100".to_string()),
        ]);
        let ext = BTreeMap::from([("cluster".to_string(), "eu1".to_string())]);
        let env = Env {
            external_url: "http://prom:9090".into(),
            ..Env::default()
        };
        let exp = |text: &str, value: f64| {
            expand_alert_template(
                "__alert_HighLoad",
                text,
                &labels,
                &ext,
                "http://prom:9090",
                value,
                &env,
            )
        };
        assert_eq!(
            exp("{{ $labels.instance }} is {{ $value }}", 1234567.0).unwrap(),
            "host.example.com:9100 is 1.234567e+06"
        );
        assert_eq!(exp("[{{ $labels.missing }}]", 1.0).unwrap(), "[]");
        assert_eq!(
            exp(
                "{{ $externalLabels.cluster }} {{ $externalURL }} {{ .ExternalURL }}",
                1.0
            )
            .unwrap(),
            "eu1 http://prom:9090 http://prom:9090"
        );
        assert_eq!(exp("{{ humanize $value }}", 1234567.0).unwrap(), "1.235M");
        assert_eq!(
            exp("{{ printf \"%.2f\" $value }}", 1234567.0).unwrap(),
            "1234567.00"
        );
        assert_eq!(
            exp("{{ $value }} {{ .Value }}", f64::NAN).unwrap(),
            "NaN NaN"
        );
        assert_eq!(exp("{{ $value }}", f64::INFINITY).unwrap(), "+Inf");
        assert_eq!(exp("{{ $value }}", 0.1).unwrap(), "0.1");
        assert_eq!(
            exp("{{ if gt $value 1.0 }}high{{ else }}low{{ end }}", 2.0).unwrap(),
            "high"
        );
        assert_eq!(
            exp("{{ .Labels.instance | stripPort | stripDomain }}", 0.0).unwrap(),
            "host"
        );
        assert_eq!(
            exp(
                "{{ range $k, $v := $labels }}{{ $k }}={{ $v }};{{ end }}",
                0.0
            )
            .unwrap(),
            "alertname=HighLoad;instance=host.example.com:9100;"
        );
        assert_eq!(
            exp("{{ $labels }}", 0.0).unwrap(),
            "map[alertname:HighLoad instance:host.example.com:9100]"
        );
        assert_eq!(
            exp("{{ $value | humanize | nope }}", 1.0).unwrap_err(),
            r#"error parsing template __alert_HighLoad: template: __alert_HighLoad:1: function "nope" not defined"#
        );
        let col = ALERT_TEMPLATE_PREAMBLE.len() + 3;
        assert_eq!(
            exp("{{ humanize \"x\" }}", 1.0).unwrap_err(),
            format!(
                r#"error executing template __alert_HighLoad: template: __alert_HighLoad:1:{col}: executing "__alert_HighLoad" at <humanize "x">: error calling humanize: strconv.ParseFloat: parsing "x": invalid syntax"#
            )
        );
        let col = ALERT_TEMPLATE_PREAMBLE.len() + 3;
        assert_eq!(
            exp("{{ gt $value 1 }}", 1.0).unwrap_err(),
            format!(
                r#"error executing template __alert_HighLoad: template: __alert_HighLoad:1:{col}: executing "__alert_HighLoad" at <gt $value 1>: error calling gt: incompatible types for comparison"#
            )
        );
        assert_eq!(
            exp("{{ .Foo }}", 1.0).unwrap_err(),
            format!(
                r#"error executing template __alert_HighLoad: template: __alert_HighLoad:1:{col}: executing "__alert_HighLoad" at <.Foo>: can't evaluate field Foo in type {T_ALERT_DATA}"#
            )
        );
        assert_eq!(
            exp("{{ .Labels.instance.x }}", 1.0).unwrap_err(),
            format!(
                r#"error executing template __alert_HighLoad: template: __alert_HighLoad:1:{}: executing "__alert_HighLoad" at <.Labels.instance.x>: can't evaluate field x in type string"#,
                col + 7
            )
        );
        // Multi-line annotations keep their layout; trimming works across lines.
        assert_eq!(
            exp("Instance {{ $labels.instance }}\n{{- if gt $value 10.0 }} is overloaded{{ end }}\nvalue: {{ $value | printf \"%.1f\" }}", 12.25).unwrap(),
            "Instance host.example.com:9100 is overloaded\nvalue: 12.2"
        );
    }

    #[test]
    fn alertmanager_dialect() {
        let alerts = Value::typed_list(
            "template.Alerts",
            vec![
                Value::structure(
                    "template.Alert",
                    vec![
                        ("Status".into(), Value::str("firing")),
                        (
                            "Labels".into(),
                            Value::kv(BTreeMap::from([
                                ("alertname".into(), "A".into()),
                                ("a".into(), "1".into()),
                            ])),
                        ),
                        ("StartsAt".into(), Value::time(1435065584, 128_000_000)),
                    ],
                ),
                Value::structure(
                    "template.Alert",
                    vec![
                        ("Status".into(), Value::str("resolved")),
                        (
                            "Labels".into(),
                            Value::kv(BTreeMap::from([("alertname".into(), "B".into())])),
                        ),
                        ("StartsAt".into(), Value::time(0, 0)),
                    ],
                ),
            ],
        );
        let common = Value::kv(BTreeMap::from([
            ("zone".into(), "z1".into()),
            ("alertname".into(), "A".into()),
            ("job".into(), "node".into()),
        ]));
        let d = Value::structure(
            "*template.Data",
            vec![
                ("Alerts".into(), alerts),
                ("CommonLabels".into(), common.clone()),
                (
                    "GroupLabels".into(),
                    Value::kv(BTreeMap::from([("job".into(), "node".into())])),
                ),
            ],
        );
        let run_am = |text: &str| -> Result<String, String> {
            let t = Template::parse_dialect("am", text, Dialect::Alertmanager)?;
            t.execute_value(&d, &Env::default())
        };
        for (text, want) in [
            ("{{ title \"aa bb CC o'neil\" }}", "Aa Bb Cc O'neil"),
            ("{{ .CommonLabels }}", "alertname=A, job=node, zone=z1"),
            ("{{ range .CommonLabels.SortedPairs }}{{ .Name }}:{{ .Value }} {{ end }}", "alertname:A job:node zone:z1 "),
            ("{{ .CommonLabels.Names }} {{ .CommonLabels.Values }}", "[alertname job zone] [A node z1]"),
            ("{{ .CommonLabels.Remove .GroupLabels.Names }}", "alertname=A, zone=z1"),
            ("{{ join \", \" .CommonLabels.Values }}", "A, node, z1"),
            ("{{ len .Alerts.Firing }}/{{ len .Alerts.Resolved }}", "1/1"),
            ("{{ range .Alerts.Firing }}{{ .Labels.alertname }} since {{ .StartsAt }}{{ end }}", "A since 2015-06-23 13:19:44.128 +0000 UTC"),
            ("{{ range .Alerts }}{{ .StartsAt.Format \"Jan _2 15:04:05.000\" }}|{{ end }}", "Jun 23 13:19:44.128|Jan  1 00:00:00.000|"),
            ("{{ range .Alerts }}{{ date \"2006-01-02T15:04:05Z07:00 Monday\" .StartsAt }}|{{ end }}", "2015-06-23T13:19:44Z Tuesday|1970-01-01T00:00:00Z Thursday|"),
            ("{{ .CommonLabels.missing }}|{{ .CommonLabels.job }}", "|node"),
            ("{{ toJson .CommonLabels }}", r#"{"alertname":"A","job":"node","zone":"z1"}"#),
            ("{{ toJson (stringSlice \"a<b\" \"c\") }}", r#"["a\u003cb","c"]"#),
            ("{{ trimSpace \"  x \\n\" }}|{{ urlUnescape \"a%20b+c\" }}", "x|a b c"),
            ("{{ humanizeDuration 3661 }}", "1h 1m 1s"),
            ("{{ reReplaceAll \"\\\\d+\" \"#\" \"a1b22\" }}", "a#b#"),
            ("{{ match \"^\\\\w+$\" \"héllo\" }} {{ match \"^\\\\w+$\" \"hello_1\" }}", "false true"),
            ("{{ (index .Alerts 0).StartsAt.Unix }}", "1435065584"),
        ] {
            assert_eq!(run_am(text).unwrap(), want, "template {text:?}");
        }
        assert_eq!(
            run_am("{{ humanize 1 }}").unwrap_err(),
            r#"template: am:1: function "humanize" not defined"#
        );
        assert_eq!(
            run_am("{{ reReplaceAll \"(\" \"\" \"\" }}").unwrap_err(),
            "template: am:1:3: executing \"am\" at <reReplaceAll \"(\" \"\" \"\">: error calling reReplaceAll: regexp: Compile(`(`): error parsing regexp: unclosed group: `(`"
        );
        assert!(Template::parse("p", "{{ join \",\" . }}")
            .unwrap_err()
            .contains(r#"function "join" not defined"#));
    }

    #[test]
    fn template_sets() {
        let mut t =
            Template::parse_dialect("main", r#"{{ template "x" . }}"#, Dialect::Alertmanager)
                .unwrap();
        t.add("lib.tmpl", r#"{{ define "x" }}lib:{{ .s }}{{ end }}"#)
            .unwrap();
        assert_eq!(t.execute(&data(), &Env::default()).unwrap(), "lib:str");
        // A later non-empty definition replaces an earlier one.
        t.add("override.tmpl", r#"{{ define "x" }}override{{ end }}"#)
            .unwrap();
        assert_eq!(t.execute(&data(), &Env::default()).unwrap(), "override");
        assert_eq!(
            t.execute_template("x", &Value::Nil, &Env::default())
                .unwrap(),
            "override"
        );
        assert_eq!(
            t.template_names(),
            vec!["lib.tmpl", "main", "override.tmpl", "x"]
        );
        assert_eq!(
            t.execute_template("nope", &Value::Nil, &Env::default())
                .unwrap_err(),
            r#"template: no template "nope" associated with template "main""#
        );
        // Errors inside a definition name the file that defined it.
        t.add("bad.tmpl", "\n{{ define \"y\" }}{{ .a.b }}{{ end }}")
            .unwrap();
        assert_eq!(
            t.execute_template("y", &Value::from(&data()), &Env::default())
                .unwrap_err(),
            r#"template: bad.tmpl:2:21: executing "y" at <.a.b>: can't evaluate field b in type interface {}"#
        );
    }

    #[test]
    fn time_and_duration_formatting() {
        let t = Time {
            secs: 1435065584,
            nanos: 128_000_000,
        };
        for (layout, want) in [
            (
                "2006-01-02 15:04:05.999999999 -0700 MST",
                "2015-06-23 13:19:44.128 +0000 UTC",
            ),
            (time_layout_rfc3339(), "2015-06-23T13:19:44Z"),
            ("Mon Jan _2 3:04:05 PM 06", "Tue Jun 23 1:19:44 PM 15"),
            (
                "Monday, January 2 002 __2 .000000 ,999 Z07:00 -07:00",
                "Tuesday, June 23 174 174 .128000 ,128 Z +00:00",
            ),
            ("_2006", "_2015"),
            ("Janu", "Janu"),
        ] {
            assert_eq!(go_time_format(t, layout), want, "{layout}");
        }
        assert_eq!(
            time_string(Time {
                secs: ZERO_TIME_SECS,
                nanos: 0
            }),
            "0001-01-01 00:00:00 +0000 UTC"
        );
        assert_eq!(
            time_string(Time {
                secs: -1,
                nanos: 500_000_000
            }),
            "1969-12-31 23:59:59.5 +0000 UTC"
        );
        for (d, want) in [
            (0, "0s"),
            (1, "1ns"),
            (1_500, "1.5µs"),
            (100_000_000, "100ms"),
            (1_500_000_000, "1.5s"),
            (3_661_000_000_000, "1h1m1s"),
            (-90_000_000_000, "-1m30s"),
            (3_600_000_000_000, "1h0m0s"),
        ] {
            assert_eq!(duration_string(d), want);
        }
        assert_eq!(
            parse_prom_duration("1y2w3d4h5m6s7ms").unwrap(),
            ((365 + 14 + 3) * 86400 + 4 * 3600 + 5 * 60 + 6) * 1_000_000_000 + 7_000_000
        );
        assert_eq!(
            parse_prom_duration("1m1h").unwrap_err(),
            r#"not a valid duration string: "1m1h""#
        );
        assert_eq!(
            parse_prom_duration("").unwrap_err(),
            "empty duration string"
        );
        assert_eq!(parse_prom_duration("0").unwrap(), 0);
    }

    fn time_layout_rfc3339() -> &'static str {
        "2006-01-02T15:04:05Z07:00"
    }

    #[test]
    fn helpers() {
        assert_eq!(
            go_quote("a\u{7}\u{1}é\u{200b}😀\\"),
            r#""a\a\x01é\u200b😀\\""#
        );
        assert_eq!(
            title_case("hello_world foo-bar x.y 1st", false),
            "Hello_world Foo-Bar X.y 1st"
        );
        assert_eq!(
            split_host_port("[::1]:80").unwrap(),
            ("::1".to_string(), "80".to_string())
        );
        assert!(split_host_port("a:b:c").is_err());
        assert_eq!(go_parse_float("1e400").unwrap_err(), "value out of range");
        assert_eq!(go_parse_float("0x10").unwrap_err(), "invalid syntax");
        assert_eq!(go_parse_float("-Inf").unwrap(), f64::NEG_INFINITY);
        assert_eq!(go_unquote(r#""\u00e9\t""#).unwrap(), "é\t");
        assert!(go_unquote(r#""\'""#).is_err());
        assert_eq!(go_unquote("'\\''").unwrap(), "'");
    }

    #[test]
    fn templates_and_values_are_send_and_sync() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<Template>();
        assert_send_sync::<Value>();
    }

    #[test]
    fn json_data_conversion() {
        let v = Value::from(
            &json!({"i": 1, "u": u64::MAX, "f": 1.0, "s": "x", "l": [null], "b": false}),
        );
        let t = Template::parse("t", "{{printf \"%T %T %T %T %T %T\" .i .u .f .s .l .b}}").unwrap();
        assert_eq!(
            t.execute_value(&v, &Env::default()).unwrap(),
            "int uint64 float64 string []interface {} bool"
        );
    }

    #[test]
    fn fuzz_inputs_do_not_panic() {
        let inputs: &[&str] = &[
            "",
            "{{",
            "}}",
            "{{-}}",
            "{{- -}}",
            "{{ - }}",
            "{{ .a.b.c.d }}",
            "{{range $i, $x := .}}{{$i}}{{$x}}{{end}}",
            "{{range 1000000000}}x{{end}}",
            "{{$x := \"ab\"}}{{range 100}}{{$x = printf \"%s%s\" $x $x}}{{end}}",
            "{{define \"a\"}}{{template \"a\" .}}{{template \"a\" .}}{{end}}{{template \"a\"}}",
            "{{printf \"%*d\" 1000000 1}}{{printf \"%.*f\" 999999 1.0}}",
            "{{printf \"%[0]d %[-1]d %[99]d %[x]d %[1\" 1}}",
            "{{printf \"%!\" }}{{printf \"%\"}}{{printf \"%-+# 0123.456v\" 1}}",
            "{{index . \"a\" 99}}{{slice \"héllo\" 1 2}}{{slice . 1}}",
            "{{reReplaceAll \"((((\" \"\" \"\"}}{{match \"[\" \"\"}}{{match \"a{100000}\" \"\"}}",
            "{{humanizeTimestamp 1e300}}{{toTime -1e300}}{{humanize \"1e400\"}}",
            "{{ 0x }}{{ 1e }}{{ .1.2 }}{{ '' }}{{ 'ab' }}{{ '\\x' }}{{ 1+2i }}",
            "{{ \"\\xff\\377\" }}{{ `\r` }}",
            "{{with $x, $y := .}}{{end}}",
            "{{ $ := 1 }}{{ $ }}",
            "{{ (nil).x }}{{ nil.x }}",
            "{{ call . }}{{ call nil }}",
            "{{ .Labels.SortedPairs }}{{ (toTime 0).Format \"2006-01-02 __2 002 .999 ,000 Z07 -070000\" }}",
            "{{ parseDuration \"99999999999999999999y\" }}{{ parseDuration \"300y\" }}",
            "{{ sortByLabel \"x\" (query \"abc\") }}{{ first nil }}{{ label \"x\" nil }}",
            "{{ urlUnescape \"%zz\" }}{{ tz \"Mars\" . }}{{ since . }}{{ date \"x\" . }}",
        ];
        for i in inputs {
            fuzz_template(i.as_bytes());
        }
        let deep = "{{".to_string() + &"(".repeat(5000) + "}}";
        fuzz_template(deep.as_bytes());
        let deep_if = "{{if 1}}".repeat(5000);
        fuzz_template(deep_if.as_bytes());
        fuzz_template(&[0xff, 0xfe, b'{', b'{', 0x80, b'}', b'}']);
        // Every prefix of a long template.
        let long = "a {{- if .t -}} {{ range $i, $v := .a }}{{ printf \"%05.1f\" $v }}{{ else }}none{{ end }}{{ end }} {{ template \"x\" . }}{{ define \"x\" }}{{ .s | html | js }}{{ end }}";
        for n in 0..long.len() {
            fuzz_template(&long.as_bytes()[..n]);
        }
    }
}
