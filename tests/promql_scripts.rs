//! Runs Prometheus' own PromQL test scripts (the `promqltest` format of
//! `promql/promqltest/testdata/*.test`) against sonde's PromQL engine.
//!
//! The scripts are copied into the repository, byte for byte with their
//! Apache-2.0 `LICENSE` and `NOTICE`, in `tests/promql/scripts`
//! (`PROMQL_TESTS_DIR` overrides it); its `README.md` says where each set
//! comes from and describes the language.
//! [`SETS`] lists the folders and files that run. Evals that we cannot pass
//! yet are listed in `tests/promql/known_failures.txt`; the test fails when
//! any other eval (or load) fails, and when a listed one passes.
//!
//! Environment:
//! - `PROMQL_TEST_FILTER=<substring>`: run only files whose `<set>/<file>` contains it.
//! - `PROMQL_TEST_VERBOSE=1`: also print the known failures with their current reason.
//!
//! Like the upstream runner (v2.53.5 and v2.55.1), every instant eval that
//! is not ordered runs again as a range query from `t-1m` to `t+1m` (step
//! 1m), and the point at `t` must match the same expectation. Upstream's
//! step-invariance check (adding `@ <t>` to every selector and evaluating at
//! other times) is not done: it needs a PromQL printer.
#![allow(clippy::unwrap_used)]

use regex::Regex;
use sonde::promql::value::{is_stale, stale_nan};
use sonde::promql::{Engine, EngineOptions, QueryError, QueryResult, RangeSeries, Sample, Value};
use sonde_engine::db::{Db, Options};
use sonde_engine::labels::Labels;
use sonde_engine::wal::SyncMode;
use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;
use std::sync::{LazyLock, Once};
use std::time::Duration;

/// One folder of scripts and which of its files run.
struct ScriptSet {
    /// Folder below the scripts directory; also the prefix of the names in `known_failures.txt`.
    name: &'static str,
    /// Files that run, in this order.
    files: &'static [&'static str],
    /// Files deliberately not run, with the reason (printed).
    skipped: &'static [(&'static str, &'static str)],
    /// Check annotations as the v2.55 runner does: an `eval_warn` needs at
    /// least one warning and every other eval must return none. The v2.53
    /// runner does not look at them.
    check_warnings: bool,
}

/// The script sets and files that run (extend here).
const SETS: &[ScriptSet] = &[
    ScriptSet {
        name: "upstream-v2.53.5",
        files: &[
            "aggregators.test",
            "at_modifier.test",
            "collision.test",
            "functions.test",
            "histograms.test",
            "literals.test",
            "operators.test",
            "selectors.test",
            "staleness.test",
            "subquery.test",
            "trig_functions.test",
        ],
        skipped: &[(
            "native_histograms.test",
            "native histograms are out of scope",
        )],
        check_warnings: false,
    },
    ScriptSet {
        name: "upstream-v2.55.1",
        files: &[
            "aggregators.test",
            "at_modifier.test",
            "collision.test",
            "functions.test",
            "limit.test",
            "literals.test",
            "operators.test",
            "range_queries.test",
            "selectors.test",
            "staleness.test",
            "subquery.test",
            "trig_functions.test",
        ],
        skipped: &[
            (
                "histograms.test",
                "needs load_with_nhcb and native histogram functions",
            ),
            (
                "name_label_dropping.test",
                "delayed __name__ removal is newer than 2.42",
            ),
            (
                "native_histograms.test",
                "native histograms are out of scope",
            ),
        ],
        check_warnings: true,
    },
];

/// Where the scripts are unless `PROMQL_TESTS_DIR` says otherwise.
const DEFAULT_SCRIPTS_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/promql/scripts");

/// Relative tolerance of value comparisons (upstream's `defaultEpsilon`).
const EPSILON: f64 = 1e-6;

/// Longest failure reason printed (characters).
const MAX_REASON: usize = 300;

/// Longest query text printed in a FAIL line (characters).
const MAX_QUERY: usize = 160;

/// The engine settings the scripts assume (upstream's test engine, with a
/// much larger sample limit than its 10 000).
fn engine_options() -> EngineOptions {
    EngineOptions {
        lookback_delta_ms: 5 * 60_000,
        max_samples: 50_000_000,
        max_memory_bytes: 1 << 30,
        timeout: Duration::from_secs(60),
        default_subquery_step_ms: 60_000,
    }
}

/// Storage settings: nothing is ever too old or too far out of order, no background work.
fn db_options() -> Options {
    Options {
        block_range_ms: 1_000 * 86_400_000,
        ooo_window_ms: i64::MAX / 4,
        background: false,
        wal_sync: SyncMode::Os,
        retention_ms: None,
        ..Options::default()
    }
}

// ---------------------------------------------------------------------------
// Script model and parser.

/// A value sequence: one entry per position, `None` where there is no sample.
type Values = Vec<Option<f64>>;

/// A parsed `name{labels} values...` line.
struct SeriesLine {
    /// The label set, `__name__` included.
    labels: Labels,
    /// The expanded values.
    values: Values,
}

/// When an eval evaluates (milliseconds since the epoch).
#[derive(Clone, Copy)]
enum EvalTime {
    /// `eval instant at <t>`.
    Instant(i64),
    /// `eval range from <start> to <end> step <step>`.
    Range {
        /// First step.
        start: i64,
        /// Last possible step.
        end: i64,
        /// Step width.
        step: i64,
    },
}

/// What an eval's body expects.
enum Expected {
    /// A single number line.
    Scalar(f64),
    /// Series lines (none: an empty result).
    Series(Vec<ExpSeries>),
}

/// One expected series.
struct ExpSeries {
    /// Its exact label set.
    labels: Labels,
    /// Its values (one for instant evals).
    values: Values,
    /// 1-based position in the body (for ordered evals).
    pos: usize,
}

/// A parsed `eval` command.
struct EvalCmd {
    /// The PromQL expression.
    expr: String,
    /// When it evaluates.
    time: EvalTime,
    /// `eval_fail`: the query must fail.
    fail: bool,
    /// `eval_warn`: the query must return a warning.
    warn: bool,
    /// `eval_ordered`: the result must come in the listed order.
    ordered: bool,
    /// `expected_fail_message`: the exact error text.
    fail_message: Option<String>,
    /// `expected_fail_regexp`: a pattern the error text must match.
    fail_regexp: Option<Regex>,
    /// The expected result.
    expected: Expected,
}

/// A parsed `load` command.
struct LoadCmd {
    /// Time between two positions, in milliseconds.
    gap_ms: i64,
    /// The series (a later line for the same labels replaces an earlier one, as upstream).
    series: Vec<SeriesLine>,
    /// Parts of the command that could not be parsed or are unsupported.
    problems: Vec<String>,
}

/// One command of a script.
enum Command {
    /// `clear`: start again with an empty database.
    Clear,
    /// `load <interval>`.
    Load(LoadCmd),
    /// `eval...`.
    Eval(EvalCmd),
    /// A command that could not be parsed: it counts as failed.
    Broken {
        /// Why.
        reason: String,
        /// Whether it was an eval (counted with the evals).
        is_eval: bool,
    },
}

/// A command with the 1-based number of its first line and that line's text.
struct Located {
    /// Line number (the name of an eval upstream).
    line: usize,
    /// The command line itself.
    text: String,
    /// The command.
    cmd: Command,
}

/// Splits a script into trimmed lines; comment lines become empty lines.
fn script_lines(text: &str) -> Vec<&str> {
    text.split('\n')
        .map(|l| {
            let l = l.trim();
            if l.starts_with('#') {
                ""
            } else {
                l
            }
        })
        .collect()
}

/// Index of the first empty line after line index `i` (or the number of lines).
fn body_end(lines: &[&str], i: usize) -> usize {
    let mut j = i + 1;
    while j < lines.len() && !lines[j].is_empty() {
        j += 1;
    }
    j
}

/// A broken command.
fn broken(reason: impl Into<String>, is_eval: bool) -> Command {
    Command::Broken {
        reason: reason.into(),
        is_eval,
    }
}

/// Parses a whole script. Unlike upstream, a command that does not parse
/// does not stop the file: it becomes a [`Command::Broken`].
fn parse_script(text: &str) -> Vec<Located> {
    let lines = script_lines(text);
    let mut out = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let l = lines[i];
        if l.is_empty() {
            i += 1;
            continue;
        }
        let word = l
            .split([' ', '\t'])
            .next()
            .unwrap_or("")
            .to_ascii_lowercase();
        let (cmd, next) = if word == "clear" {
            (Command::Clear, i + 1)
        } else if word.starts_with("load") {
            parse_load(&lines, i)
        } else if word.starts_with("eval") {
            parse_eval(&lines, i)
        } else {
            (
                broken(format!("invalid command {l:?}"), false),
                body_end(&lines, i),
            )
        };
        out.push(Located {
            line: i + 1,
            text: l.to_string(),
            cmd,
        });
        i = next;
    }
    out
}

/// `load <interval>` (or `load_with_nhcb <interval>`) and its body.
static LOAD_RE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^load(?:_(with_nhcb))?\s+(.+?)$").unwrap());
/// `eval[_fail|_warn|_ordered] instant at <time> <expr>` (upstream's pattern).
static INSTANT_RE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^eval(?:_(fail|warn|ordered))?\s+instant\s+(?:at\s+(.+?))?\s+(.+)$").unwrap()
});
/// `eval[_fail|_warn] range from <t> to <t> step <d> <expr>` (upstream's pattern).
static RANGE_RE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^eval(?:_(fail|warn))?\s+range\s+from\s+(.+)\s+to\s+(.+)\s+step\s+(.+?)\s+(.+)$")
        .unwrap()
});
/// Calls of the functions that make the range-mode re-run meaningless.
static RANGE_FUNCS_RE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"\b(?:start|end|range|step)\s*\(").unwrap());

/// Parses a `load` command starting at line index `i`; returns it and the index after its body.
fn parse_load(lines: &[&str], i: usize) -> (Command, usize) {
    let end = body_end(lines, i);
    let Some(c) = LOAD_RE.captures(lines[i]) else {
        return (
            broken("invalid load command (load <step:duration>)", false),
            end,
        );
    };
    let gap_ms = match parse_duration(&c[2]) {
        Ok(d) => d,
        Err(e) => return (broken(format!("invalid step {:?}: {e}", &c[2]), false), end),
    };
    let mut problems = Vec::new();
    if c.get(1).is_some() {
        problems.push(
            "load_with_nhcb: converting classic histograms into native histograms is not supported \
             (the float series were loaded as written)"
                .to_string(),
        );
    }
    let mut series: Vec<SeriesLine> = Vec::new();
    let mut index: HashMap<Labels, usize> = HashMap::new();
    for (j, line) in lines.iter().enumerate().take(end).skip(i + 1) {
        match parse_series_line(line) {
            Ok(s) => match index.get(&s.labels) {
                Some(&k) => series[k] = s,
                None => {
                    index.insert(s.labels.clone(), series.len());
                    series.push(s);
                }
            },
            Err(e) => problems.push(format!("line {}: {e}", j + 1)),
        }
    }
    (
        Command::Load(LoadCmd {
            gap_ms,
            series,
            problems,
        }),
        end,
    )
}

/// Parses an `eval` command starting at line index `i`, as upstream's
/// `parseEval`; returns it and the index of the next line to look at.
fn parse_eval(lines: &[&str], i: usize) -> (Command, usize) {
    let end = body_end(lines, i);
    let line = lines[i];
    let (modifier, expr, time) = if let Some(c) = INSTANT_RE.captures(line) {
        let at = c.get(2).map_or("", |m| m.as_str());
        let t = match parse_duration(at) {
            Ok(t) => t,
            Err(e) => return (broken(format!("invalid time {at:?}: {e}"), true), end),
        };
        (
            c.get(1).map(|m| m.as_str().to_string()),
            c[3].to_string(),
            EvalTime::Instant(t),
        )
    } else if let Some(c) = RANGE_RE.captures(line) {
        let mut ts = [0i64; 3];
        for (k, t) in ts.iter_mut().enumerate() {
            *t = match parse_duration(&c[k + 2]) {
                Ok(t) => t,
                Err(e) => {
                    return (
                        broken(format!("invalid time {:?}: {e}", &c[k + 2]), true),
                        end,
                    )
                }
            };
        }
        let [start, stop, step] = ts;
        if stop < start {
            return (broken("end timestamp before start timestamp", true), end);
        }
        (
            c.get(1).map(|m| m.as_str().to_string()),
            c[5].to_string(),
            EvalTime::Range {
                start,
                end: stop,
                step,
            },
        )
    } else {
        return (
            broken(
                "invalid eval command: want 'eval[_fail|_warn|_ordered] instant at <time> <query>' \
                 or 'eval[_fail|_warn] range from <t> to <t> step <d> <query>'",
                true,
            ),
            end,
        );
    };
    let is_instant = matches!(time, EvalTime::Instant(_));
    let mut ev = EvalCmd {
        expr,
        time,
        fail: modifier.as_deref() == Some("fail"),
        warn: modifier.as_deref() == Some("warn"),
        ordered: modifier.as_deref() == Some("ordered"),
        fail_message: None,
        fail_regexp: None,
        expected: Expected::Series(Vec::new()),
    };
    let mut series = Vec::new();
    let mut problems: Vec<String> = Vec::new();
    let mut j = i + 1;
    let mut pos = 0;
    // As upstream: a number line, `expected_fail_message` or
    // `expected_fail_regexp` ends the body; any later line is read as a command.
    while j < lines.len() && !lines[j].is_empty() {
        let l = lines[j];
        j += 1;
        pos += 1;
        if ev.fail {
            if let Some(rest) = l.strip_prefix("expected_fail_message") {
                ev.fail_message = Some(rest.trim().to_string());
                break;
            }
            if let Some(rest) = l.strip_prefix("expected_fail_regexp") {
                match Regex::new(rest.trim()) {
                    Ok(re) => ev.fail_regexp = Some(re),
                    Err(e) => problems.push(format!("line {j}: invalid expected_fail_regexp: {e}")),
                }
                break;
            }
        }
        if let Some(f) = go_parse_number(l) {
            ev.expected = Expected::Scalar(f);
            break;
        }
        match parse_series_line(l) {
            Err(e) => problems.push(format!("line {j}: {e}")),
            Ok(s) if is_instant && s.values.len() > 1 => problems.push(format!(
                "line {j}: expecting multiple values in instant evaluation not allowed"
            )),
            Ok(s) if is_instant && s.values.first().copied().flatten().is_none() => {
                problems.push(format!("line {j}: an instant expectation needs one value"))
            }
            Ok(s) => series.push(ExpSeries {
                labels: s.labels,
                values: s.values,
                pos,
            }),
        }
    }
    if !problems.is_empty() {
        return (broken(problems.join("; "), true), j);
    }
    if !matches!(ev.expected, Expected::Scalar(_)) {
        ev.expected = Expected::Series(series);
    }
    (Command::Eval(ev), j)
}

/// Parses a Prometheus duration (`1h30m`, `0`, `100ms`) into milliseconds.
fn parse_duration(s: &str) -> Result<i64, String> {
    let ns = sonde::gocompat::duration::parse_model_duration(s)?;
    i64::try_from(ns / 1_000_000).map_err(|_| format!("duration out of range: {s:?}"))
}

/// Go's `strconv.ParseInt(s, 0, 64)`, then `strconv.ParseFloat(s, 64)`: how
/// upstream reads numbers (so `010` is octal, as there).
fn go_parse_number(s: &str) -> Option<f64> {
    sonde::gocompat::strconv::parse_int(s)
        .and_then(|i| i64::try_from(i).ok())
        .map(|i| i as f64)
        .or_else(|| sonde::gocompat::strconv::parse_float(s.as_bytes()).ok())
}

/// Parses `name{label="value", ...} values...` (as `parser.ParseSeriesDesc`).
fn parse_series_line(line: &str) -> Result<SeriesLine, String> {
    let (labels, rest) = parse_metric(line)?;
    let values = parse_values(rest)?;
    Ok(SeriesLine { labels, values })
}

/// Whether `c` may start a metric name.
fn is_name_start(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_' || c == ':'
}

/// Whether `c` may continue a metric name.
fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == ':'
}

/// Parses the `name{labels}` part of a series line; returns the labels and the rest of the line.
fn parse_metric(s: &str) -> Result<(Labels, &str), String> {
    let mut i = s.find(|c: char| !is_name_char(c)).unwrap_or(s.len());
    let mut name = None;
    if i > 0 {
        if !s.starts_with(is_name_start) {
            return Err(format!("invalid metric name in {s:?}"));
        }
        name = Some(s[..i].to_string());
    }
    let mut pairs: Vec<(String, String)> = Vec::new();
    let rest = &s[i..];
    if rest.starts_with('{') && !rest.starts_with("{{") {
        i += 1;
        loop {
            i = skip_blanks(s, i);
            let c = s[i..].chars().next().ok_or("unterminated label set")?;
            if c == '}' {
                i += 1;
                break;
            }
            let (label, quoted) = if matches!(c, '"' | '\'' | '`') {
                let (v, next) = parse_string(s, i)?;
                i = next;
                (v, true)
            } else {
                let n = s[i..]
                    .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .unwrap_or(s.len() - i);
                if n == 0 || s[i..].starts_with(|c: char| c.is_ascii_digit()) {
                    return Err(format!("expected a label name at {:?}", &s[i..]));
                }
                i += n;
                (s[i - n..i].to_string(), false)
            };
            i = skip_blanks(s, i);
            if s[i..].starts_with('=') && !s[i..].starts_with("==") {
                i = skip_blanks(s, i + 1);
                if !s[i..].starts_with(['"', '\'', '`']) {
                    return Err(format!("expected a quoted label value at {:?}", &s[i..]));
                }
                let (v, next) = parse_string(s, i)?;
                i = next;
                pairs.push((label, v));
            } else if quoted {
                // `{"metric.name", ...}`: a quoted metric name (UTF-8 syntax).
                name = Some(label);
            } else {
                return Err(format!("expected \"=\" after label {label:?}"));
            }
            i = skip_blanks(s, i);
            match s[i..].chars().next() {
                Some(',') => i += 1,
                Some('}') => {
                    i += 1;
                    break;
                }
                _ => return Err(format!("expected \",\" or \"}}\" at {:?}", &s[i..])),
            }
        }
    } else if name.is_none() {
        return Err(format!("expected a metric name or \"{{\" at {s:?}"));
    }
    let rest = &s[i..];
    if !rest.is_empty() && !rest.starts_with([' ', '\t']) {
        return Err(format!("unexpected {rest:?} after the series labels"));
    }
    if let Some(n) = name {
        pairs.retain(|(k, _)| k != "__name__");
        pairs.push(("__name__".to_string(), n));
    }
    let labels = Labels::new(pairs).map_err(|e| e.to_string())?;
    Ok((labels, rest))
}

/// Index of the first non-blank character at or after `i`.
fn skip_blanks(s: &str, i: usize) -> usize {
    s[i..]
        .find(|c: char| c != ' ' && c != '\t')
        .map_or(s.len(), |k| i + k)
}

/// Parses a PromQL string literal (`"..."` and `'...'` with Go escapes,
/// `` `...` `` raw) starting at byte `start`; returns it and the index after it.
fn parse_string(s: &str, start: usize) -> Result<(String, usize), String> {
    let q = s[start..].chars().next().ok_or("expected a string")?;
    let body = start + q.len_utf8();
    let mut out = String::new();
    let mut it = s[body..].char_indices();
    while let Some((k, c)) = it.next() {
        if c == q {
            return Ok((out, body + k + c.len_utf8()));
        }
        if c == '\\' && q != '`' {
            let (_, e) = it.next().ok_or("unterminated string")?;
            let mut fixed = |n: usize, radix: u32| -> Result<u32, String> {
                let digits: String = it.by_ref().take(n).map(|(_, c)| c).collect();
                if digits.chars().count() != n {
                    return Err("unterminated escape sequence".to_string());
                }
                u32::from_str_radix(&digits, radix)
                    .map_err(|_| format!("invalid escape \\{e}{digits}"))
            };
            let ch = match e {
                'a' => '\x07',
                'b' => '\x08',
                'f' => '\x0c',
                'n' => '\n',
                'r' => '\r',
                't' => '\t',
                'v' => '\x0b',
                '\\' | '\'' | '"' => e,
                'x' => char::from_u32(fixed(2, 16)?).ok_or("invalid \\x escape")?,
                'u' => char::from_u32(fixed(4, 16)?).ok_or("invalid \\u escape")?,
                'U' => char::from_u32(fixed(8, 16)?).ok_or("invalid \\U escape")?,
                '0'..='7' => {
                    let rest = fixed(2, 8)?;
                    char::from_u32(e.to_digit(8).unwrap_or(0) * 64 + rest)
                        .ok_or("invalid octal escape")?
                }
                other => return Err(format!("unknown escape sequence \\{other}")),
            };
            out.push(ch);
        } else if c == '\n' && q != '`' {
            return Err("newline in string".into());
        } else {
            out.push(c);
        }
    }
    Err("unterminated string".into())
}

/// A token of a value sequence (the lexer's series-description mode).
#[derive(Debug, Clone, PartialEq)]
enum Tok {
    /// Blanks between items.
    Space,
    /// `+`
    Add,
    /// `-`
    Sub,
    /// `x`
    Times,
    /// `_`
    Blank,
    /// A number (no hex: `0x3` is "0 repeated").
    Num(String),
    /// A word: `stale`, `Inf`, `NaN`.
    Word(String),
}

/// Splits a value sequence into tokens like upstream's `lexValueSequence`.
fn lex_values(s: &str) -> Result<Vec<Tok>, String> {
    let cs: Vec<char> = s.chars().collect();
    let digit_at = |i: usize| cs.get(i).is_some_and(|c| c.is_ascii_digit());
    let mut out = Vec::new();
    let mut i = 0;
    while i < cs.len() {
        let c = cs[i];
        if c == '{' && cs.get(i + 1) == Some(&'{') {
            return Err("native histogram values ({{...}}) are not supported".into());
        }
        if matches!(c, ' ' | '\t' | '\r' | '\n') {
            while i < cs.len() && matches!(cs[i], ' ' | '\t' | '\r' | '\n') {
                i += 1;
            }
            out.push(Tok::Space);
            continue;
        }
        let tok = match c {
            '+' => Tok::Add,
            '-' => Tok::Sub,
            'x' => Tok::Times,
            '_' => Tok::Blank,
            _ if c.is_ascii_digit() || (c == '.' && digit_at(i + 1)) => {
                let st = i;
                while digit_at(i) {
                    i += 1;
                }
                if cs.get(i) == Some(&'.') {
                    i += 1;
                    while digit_at(i) {
                        i += 1;
                    }
                }
                if matches!(cs.get(i), Some('e' | 'E')) {
                    i += 1;
                    if matches!(cs.get(i), Some('+' | '-')) {
                        i += 1;
                    }
                    while digit_at(i) {
                        i += 1;
                    }
                }
                let text: String = cs[st..i].iter().collect();
                if let Some(&n) = cs.get(i) {
                    if n != 'x' && (n.is_ascii_alphanumeric() || n == '_') {
                        return Err(format!("bad number syntax: {text:?} followed by {n:?}"));
                    }
                }
                out.push(Tok::Num(text));
                continue;
            }
            _ if c.is_ascii_alphabetic() => {
                let st = i;
                while i < cs.len()
                    && (cs[i].is_ascii_alphanumeric() || cs[i] == '_' || cs[i] == ':')
                {
                    i += 1;
                }
                out.push(Tok::Word(cs[st..i].iter().collect()));
                continue;
            }
            _ => return Err(format!("unexpected character in series values: {c:?}")),
        };
        out.push(tok);
        i += 1;
    }
    Ok(out)
}

/// Expands a value sequence (everything after the series labels) as upstream's grammar:
/// `N`, `a+bxn`, `a-bxn`, `axn` (n+1 samples), `_`, `_xn` (n positions), `stale`.
fn parse_values(s: &str) -> Result<Values, String> {
    let toks = lex_values(s)?;
    let mut out = Vec::new();
    let mut p = 0;
    while p < toks.len() {
        if toks[p] != Tok::Space {
            return Err(format!("expected a space before value {:?}", toks[p]));
        }
        p += 1;
        if p == toks.len() {
            break;
        }
        if toks[p] == Tok::Blank {
            p += 1;
            if toks.get(p) == Some(&Tok::Times) {
                let n = repetitions(toks.get(p + 1))?;
                p += 2;
                out.extend(std::iter::repeat_n(None, n));
            } else {
                out.push(None);
            }
            continue;
        }
        let a = series_value(&toks, &mut p)?;
        match toks.get(p) {
            Some(Tok::Times) => {
                let n = repetitions(toks.get(p + 1))?;
                p += 2;
                out.extend(std::iter::repeat_n(Some(a), n + 1));
            }
            Some(Tok::Add | Tok::Sub) => {
                let b = signed_number(&toks, &mut p)?;
                if toks.get(p) != Some(&Tok::Times) {
                    return Err("expected \"x<n>\" after \"a+b\"".into());
                }
                let n = repetitions(toks.get(p + 1))?;
                p += 2;
                // Accumulated like upstream (`a += b`), so floats come out bit for bit the same.
                let mut v = a;
                for _ in 0..=n {
                    out.push(Some(v));
                    v += b;
                }
            }
            _ => out.push(Some(a)),
        }
    }
    Ok(out)
}

/// The repetition count after `x`: a plain decimal integer.
fn repetitions(t: Option<&Tok>) -> Result<usize, String> {
    match t {
        Some(Tok::Num(n)) if n.bytes().all(|b| b.is_ascii_digit()) => n
            .parse()
            .map_err(|e| format!("invalid repetition in series values: {e}")),
        other => Err(format!("invalid repetition in series values: {other:?}")),
    }
}

/// A number token (or `Inf`/`NaN` word) as a value.
fn number(t: Option<&Tok>) -> Result<f64, String> {
    match t {
        Some(Tok::Num(n)) => {
            go_parse_number(n).ok_or_else(|| format!("error parsing number {n:?}"))
        }
        Some(Tok::Word(w)) if w.eq_ignore_ascii_case("inf") => Ok(f64::INFINITY),
        Some(Tok::Word(w)) if w.eq_ignore_ascii_case("nan") => Ok(f64::NAN),
        other => Err(format!("expected a number, got {other:?}")),
    }
}

/// `+N` or `-N`; advances `p`.
fn signed_number(toks: &[Tok], p: &mut usize) -> Result<f64, String> {
    let sign = match toks.get(*p) {
        Some(Tok::Add) => 1.0,
        Some(Tok::Sub) => -1.0,
        other => return Err(format!("expected a sign, got {other:?}")),
    };
    let v = number(toks.get(*p + 1))?;
    *p += 2;
    Ok(sign * v)
}

/// One value: `stale`, a number or a signed number; advances `p`.
fn series_value(toks: &[Tok], p: &mut usize) -> Result<f64, String> {
    match toks.get(*p) {
        Some(Tok::Add | Tok::Sub) => signed_number(toks, p),
        Some(Tok::Word(w)) if w == "stale" => {
            *p += 1;
            Ok(stale_nan())
        }
        t => {
            let v = number(t).map_err(|_| format!("expected a number or \"stale\", got {t:?}"))?;
            *p += 1;
            Ok(v)
        }
    }
}

// ---------------------------------------------------------------------------
// Storage.

/// A fresh database in its own temporary directory.
struct Store {
    /// The database; declared first so it is dropped (closed) before the directory goes.
    db: Db,
    /// Its directory, removed on drop.
    _dir: tempfile::TempDir,
}

impl Store {
    /// Opens an empty database.
    fn open() -> Store {
        let dir = tempfile::Builder::new()
            .prefix("sonde-promql-scripts-")
            .tempdir()
            .unwrap();
        let db = Db::open(dir.path(), db_options())
            .unwrap_or_else(|e| panic!("opening a database in {}: {e}", dir.path().display()));
        Store { db, _dir: dir }
    }
}

impl Drop for Store {
    fn drop(&mut self) {
        if let Err(e) = self.db.close() {
            eprintln!("closing the test database: {e}");
        }
    }
}

/// Appends a `load` command's samples in one batch, like upstream.
fn run_load(db: &Db, load: &LoadCmd) -> Result<(), String> {
    let mut problems = load.problems.clone();
    let mut app = db.appender();
    for s in &load.series {
        let mut t = 0i64;
        for v in &s.values {
            if let Some(v) = *v {
                if let Err(e) = app.append(&s.labels, t, v) {
                    problems.push(format!("{} at {t}ms: {e}", s.labels));
                }
            }
            t += load.gap_ms;
        }
    }
    if let Err(e) = app.commit() {
        problems.push(format!("commit: {e}"));
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("; "))
    }
}

// ---------------------------------------------------------------------------
// Evaluation and comparison.

/// Upstream's `almost.Equal` (v2.55): identical, both NaN, or within the
/// relative tolerance; a stale marker equals only a stale marker.
fn almost_equal(a: f64, b: f64) -> bool {
    if is_stale(a) || is_stale(b) {
        return is_stale(a) && is_stale(b);
    }
    if a.is_nan() && b.is_nan() {
        return true;
    }
    if a == b {
        return true;
    }
    let abs_sum = a.abs() + b.abs();
    let diff = (a - b).abs();
    if a == 0.0 || b == 0.0 || abs_sum < f64::MIN_POSITIVE {
        return diff < EPSILON * f64::MIN_POSITIVE;
    }
    diff / abs_sum.min(f64::MAX) < EPSILON
}

/// A value as the scripts write it.
fn fmt_value(v: f64) -> String {
    if is_stale(v) {
        "stale".into()
    } else if v.is_nan() {
        "NaN".into()
    } else if v == f64::INFINITY {
        "+Inf".into()
    } else if v == f64::NEG_INFINITY {
        "-Inf".into()
    } else {
        format!("{v}")
    }
}

/// A vector for messages.
fn render_vector(v: &[Sample]) -> String {
    let items: Vec<String> = v
        .iter()
        .map(|s| format!("{} {}", s.labels, fmt_value(s.v)))
        .collect();
    format!("[{}]", items.join(", "))
}

/// A matrix for messages.
fn render_matrix(m: &[RangeSeries]) -> String {
    let items: Vec<String> = m
        .iter()
        .map(|s| {
            let pts: Vec<String> = s
                .points
                .iter()
                .map(|(t, v)| format!("{v}@{t}", v = fmt_value(*v)))
                .collect();
            format!("{} [{}]", s.labels, pts.join(" "))
        })
        .collect();
    format!("[{}]", items.join(", "))
}

/// Any result for messages.
fn render_value(v: &Value) -> String {
    match v {
        Value::Scalar { v, .. } => format!("scalar {}", fmt_value(*v)),
        Value::String { s, .. } => format!("string {s:?}"),
        Value::Vector(s) => format!("vector {}", render_vector(s)),
        Value::Matrix(m) => format!("matrix {}", render_matrix(m)),
    }
}

/// The expected series of an eval, or an error when it expects a scalar.
fn expected_series<'a>(
    exp: &'a Expected,
    got: &dyn Fn() -> String,
) -> Result<&'a [ExpSeries], String> {
    match exp {
        Expected::Scalar(e) => Err(format!("expected scalar {}, got {}", fmt_value(*e), got())),
        Expected::Series(s) => Ok(s),
    }
}

/// Compares an instant vector (upstream `compareResult`, vector case).
fn compare_vector(got: &[Sample], exp: &Expected, ordered: bool) -> Result<(), String> {
    let series = expected_series(exp, &|| format!("vector {}", render_vector(got)))?;
    let by_labels: HashMap<&Labels, &ExpSeries> = series.iter().map(|s| (&s.labels, s)).collect();
    let mut seen = HashSet::new();
    for (i, s) in got.iter().enumerate() {
        let Some(e) = by_labels.get(&s.labels) else {
            return Err(format!(
                "unexpected series {} {}; got {}",
                s.labels,
                fmt_value(s.v),
                render_vector(got)
            ));
        };
        if ordered && e.pos != i + 1 {
            return Err(format!(
                "expected {} at position {} but it was at {}; got {}",
                s.labels,
                e.pos,
                i + 1,
                render_vector(got)
            ));
        }
        let want = e.values[0].unwrap_or(0.0);
        if !almost_equal(want, s.v) {
            return Err(format!(
                "{}: expected {}, got {}",
                s.labels,
                fmt_value(want),
                fmt_value(s.v)
            ));
        }
        seen.insert(&s.labels);
    }
    for e in series {
        if !seen.contains(&e.labels) {
            return Err(format!(
                "expected series {} {} not found; got {}",
                e.labels,
                fmt_value(e.values[0].unwrap_or(0.0)),
                render_vector(got)
            ));
        }
    }
    Ok(())
}

/// Compares a scalar result.
fn compare_scalar(got: f64, exp: &Expected) -> Result<(), String> {
    match exp {
        Expected::Scalar(e) if almost_equal(*e, got) => Ok(()),
        Expected::Scalar(e) => Err(format!(
            "expected scalar {}, got {}",
            fmt_value(*e),
            fmt_value(got)
        )),
        Expected::Series(s) => Err(format!(
            "expected {} series, got scalar {}",
            s.len(),
            fmt_value(got)
        )),
    }
}

/// Upstream's `assertMatrixSorted`.
fn check_sorted(m: &[RangeSeries]) -> Result<(), String> {
    for w in m.windows(2) {
        if w[0].labels > w[1].labels {
            return Err(format!(
                "matrix not sorted by labels: {} comes before {}",
                w[0].labels, w[1].labels
            ));
        }
    }
    Ok(())
}

/// Compares a matrix: expected value `i` belongs to `start + i*step`, which
/// must not pass `end` (upstream `compareResult`, matrix case).
fn compare_matrix(
    got: &[RangeSeries],
    exp: &Expected,
    start: i64,
    end: i64,
    step: i64,
) -> Result<(), String> {
    let series = expected_series(exp, &|| format!("matrix {}", render_matrix(got)))?;
    check_sorted(got)?;
    let by_labels: HashMap<&Labels, &ExpSeries> = series.iter().map(|s| (&s.labels, s)).collect();
    let mut seen = HashSet::new();
    for s in got {
        let Some(e) = by_labels.get(&s.labels) else {
            return Err(format!(
                "unexpected series {}; got {}",
                s.labels,
                render_matrix(got)
            ));
        };
        let mut want = Vec::new();
        for (i, v) in e.values.iter().enumerate() {
            let t = start + i as i64 * step;
            if t > end {
                return Err(format!(
                    "expected {} points for {}, but the query range cannot return this many",
                    e.values.len(),
                    e.labels
                ));
            }
            if let Some(v) = *v {
                want.push((t, v));
            }
        }
        if want.len() != s.points.len() {
            return Err(format!(
                "expected {} points for {}, got {}",
                want.len(),
                s.labels,
                render_matrix(std::slice::from_ref(s))
            ));
        }
        for ((wt, wv), (gt, gv)) in want.iter().zip(&s.points) {
            if wt != gt {
                return Err(format!(
                    "{}: expected a point at t={wt}, got t={gt}; got {}",
                    s.labels,
                    render_matrix(std::slice::from_ref(s))
                ));
            }
            if !almost_equal(*gv, *wv) {
                return Err(format!(
                    "{} at t={wt}: expected {}, got {}",
                    s.labels,
                    fmt_value(*wv),
                    fmt_value(*gv)
                ));
            }
        }
        seen.insert(&s.labels);
    }
    for e in series {
        if !seen.contains(&e.labels) {
            return Err(format!(
                "expected series {} not found; got {}",
                e.labels,
                render_matrix(got)
            ));
        }
    }
    Ok(())
}

/// Checks the error text against `expected_fail_message` / `expected_fail_regexp`.
fn check_fail_message(ev: &EvalCmd, e: &QueryError) -> Result<(), String> {
    let msg = e.to_string();
    if let Some(want) = &ev.fail_message {
        if *want != msg {
            return Err(format!("expected error {want:?}, got {msg:?}"));
        }
    }
    if let Some(re) = &ev.fail_regexp {
        if !re.is_match(&msg) {
            return Err(format!(
                "expected an error matching {:?}, got {msg:?}",
                re.as_str()
            ));
        }
    }
    Ok(())
}

/// Applies `eval_fail`: `Ok(None)` when the query failed as expected.
fn check_outcome(
    ev: &EvalCmd,
    res: Result<QueryResult, QueryError>,
) -> Result<Option<QueryResult>, String> {
    match res {
        Err(e) if ev.fail => check_fail_message(ev, &e).map(|()| None),
        Err(e) => Err(format!("error: {e}")),
        Ok(r) if ev.fail => Err(format!("expected an error, got {}", render_value(&r.value))),
        Ok(r) => Ok(Some(r)),
    }
}

/// The v2.55 runner's annotation check (warnings only; `PromQL info: ...` is an info).
fn check_annotations(ev: &EvalCmd, r: &QueryResult, enabled: bool) -> Result<(), String> {
    if !enabled {
        return Ok(());
    }
    let warnings: Vec<&String> = r
        .warnings
        .iter()
        .filter(|w| !w.starts_with("PromQL info"))
        .collect();
    if ev.warn && warnings.is_empty() {
        return Err("expected warnings, got none".into());
    }
    if !ev.warn && !warnings.is_empty() {
        return Err(format!("unexpected warnings: {warnings:?}"));
    }
    Ok(())
}

/// Runs one eval as upstream's `execEval`.
fn run_eval(engine: &Engine, db: &Db, ev: &EvalCmd, check_warnings: bool) -> Result<(), String> {
    match ev.time {
        EvalTime::Range { start, end, step } => {
            let res = engine.range_query(db, &ev.expr, start, end, step);
            let Some(r) = check_outcome(ev, res)? else {
                return Ok(());
            };
            check_annotations(ev, &r, check_warnings)?;
            match &r.value {
                Value::Matrix(m) => compare_matrix(m, &ev.expected, start, end, step),
                other => Err(format!("range query returned {}", render_value(other))),
            }
        }
        EvalTime::Instant(t) => {
            let res = engine.instant_query(db, &ev.expr, t);
            let Some(r) = check_outcome(ev, res)? else {
                return Ok(());
            };
            check_annotations(ev, &r, check_warnings)?;
            match &r.value {
                Value::Scalar { v, .. } => compare_scalar(*v, &ev.expected)?,
                Value::Vector(v) => compare_vector(v, &ev.expected, ev.ordered)?,
                // As upstream's runner: compared as a matrix whose range ends
                // before it starts, so only an empty expectation can match.
                Value::Matrix(m) => compare_matrix(m, &ev.expected, t, i64::MIN, 0)
                    .map_err(|e| format!("instant query returned a range vector: {e}"))?,
                Value::String { s, .. } => {
                    return Err(format!(
                        "got string {s:?}; the 2.x runner cannot compare strings"
                    ))
                }
            }
            if RANGE_FUNCS_RE.is_match(&ev.expr) {
                return Ok(());
            }
            // Range mode: the point at `t` of a range query must match too.
            let rr = engine
                .range_query(db, &ev.expr, t - 60_000, t + 60_000, 60_000)
                .map_err(|e| format!("range mode: error: {e}"))?;
            if ev.ordered {
                return Ok(());
            }
            let Value::Matrix(m) = &rr.value else {
                return Err(format!("range mode: returned {}", render_value(&rr.value)));
            };
            check_sorted(m).map_err(|e| format!("range mode: {e}"))?;
            let at_t: Vec<Sample> = m
                .iter()
                .filter_map(|s| {
                    s.points.iter().find(|p| p.0 == t).map(|p| Sample {
                        labels: s.labels.clone(),
                        t_ms: t,
                        v: p.1,
                    })
                })
                .collect();
            let cmp = if matches!(r.value, Value::Scalar { .. }) {
                match at_t.first() {
                    Some(s) => compare_scalar(s.v, &ev.expected),
                    None => Err(format!("no point at t={t}; got {}", render_matrix(m))),
                }
            } else {
                compare_vector(&at_t, &ev.expected, false)
            };
            cmp.map_err(|e| format!("range mode: {e}"))
        }
    }
}

// ---------------------------------------------------------------------------
// Panics inside the engine.

thread_local! {
    /// Set while an eval runs: the panic hook then records instead of printing.
    static QUIET_PANICS: Cell<bool> = const { Cell::new(false) };
    /// Where the last quiet panic happened.
    static PANIC_LOCATION: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Installs (once) a panic hook that stays quiet for panics caught by [`guarded`].
fn install_panic_hook() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if QUIET_PANICS.with(Cell::get) {
                let loc = info
                    .location()
                    .map(|l| format!("{}:{}", l.file(), l.line()));
                PANIC_LOCATION.with(|p| *p.borrow_mut() = loc);
            } else {
                previous(info);
            }
        }));
    });
}

/// Runs `f`, turning a panic into a failure `panic: <message> at <location>`.
fn guarded(f: impl FnOnce() -> Result<(), String>) -> Result<(), String> {
    QUIET_PANICS.with(|q| q.set(true));
    PANIC_LOCATION.with(|p| *p.borrow_mut() = None);
    let r = catch_unwind(AssertUnwindSafe(f));
    QUIET_PANICS.with(|q| q.set(false));
    r.unwrap_or_else(|payload| {
        let msg = if let Some(s) = payload.downcast_ref::<&str>() {
            (*s).to_string()
        } else if let Some(s) = payload.downcast_ref::<String>() {
            s.clone()
        } else {
            "(non-string payload)".to_string()
        };
        let loc = PANIC_LOCATION
            .with(|p| p.borrow_mut().take())
            .map(|l| format!(" at {l}"))
            .unwrap_or_default();
        Err(format!("panic: {msg}{loc}"))
    })
}

// ---------------------------------------------------------------------------
// The runner.

/// What became of one eval, load or unparsable command.
struct Outcome {
    /// Its line number.
    line: usize,
    /// The query (evals) or the command line.
    what: String,
    /// Whether it counts as an eval.
    is_eval: bool,
    /// Passed, or why not.
    result: Result<(), String>,
}

/// Runs one script against a fresh database.
fn run_script(engine: &Engine, text: &str, check_warnings: bool) -> Vec<Outcome> {
    let mut store = Store::open();
    let mut out = Vec::new();
    for c in parse_script(text) {
        let (is_eval, what, result) = match &c.cmd {
            Command::Clear => {
                store = Store::open();
                continue;
            }
            Command::Load(l) => (false, c.text.clone(), guarded(|| run_load(&store.db, l))),
            Command::Eval(ev) => (
                true,
                ev.expr.clone(),
                guarded(|| run_eval(engine, &store.db, ev, check_warnings)),
            ),
            Command::Broken { reason, is_eval } => (*is_eval, c.text.clone(), Err(reason.clone())),
        };
        out.push(Outcome {
            line: c.line,
            what,
            is_eval,
            result,
        });
    }
    out
}

/// Shortens `s` to at most `max` characters.
fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(max).collect();
        t.push('…');
        t
    }
}

/// Path of the checked-in list of known failures.
fn known_failures_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/promql/known_failures.txt")
}

/// Reads `known_failures.txt`: `<set>/<file>:<line> <reason>` per line, `#` comments.
fn read_known_failures() -> BTreeMap<String, String> {
    let path = known_failures_path();
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    let key_re = Regex::new(r"^[^/\s]+/[^:\s]+:[0-9]+$").unwrap();
    let mut out = BTreeMap::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (key, reason) = line.split_once(char::is_whitespace).unwrap_or((line, ""));
        let at = format!("{}:{}", path.display(), n + 1);
        assert!(
            key_re.is_match(key),
            "{at}: malformed entry {line:?} (want `<set>/<file>:<line> <reason>`)"
        );
        assert!(!reason.trim().is_empty(), "{at}: entry {key} has no reason");
        let old = out.insert(key.to_string(), reason.trim().to_string());
        assert!(old.is_none(), "{at}: duplicate entry {key}");
    }
    out
}

/// Counts for one file or the whole run.
#[derive(Default)]
struct Tally {
    /// Evals that passed.
    passed: usize,
    /// Failures not in the known list.
    failed: usize,
    /// Failures in the known list.
    known: usize,
}

/// Runs the configured script sets and compares with the known failures.
#[test]
fn promql_test_scripts() {
    install_panic_hook();
    let dir = PathBuf::from(
        std::env::var("PROMQL_TESTS_DIR").unwrap_or_else(|_| DEFAULT_SCRIPTS_DIR.to_string()),
    );
    assert!(
        dir.is_dir(),
        "PromQL test scripts not found in {} (set PROMQL_TESTS_DIR)",
        dir.display()
    );
    let known = read_known_failures();
    let filter = std::env::var("PROMQL_TEST_FILTER")
        .ok()
        .filter(|f| !f.is_empty());
    let verbose = std::env::var("PROMQL_TEST_VERBOSE").is_ok_and(|v| !v.is_empty() && v != "0");
    let selected = |id: &str| filter.as_deref().is_none_or(|f| id.contains(f));
    let engine = Engine::new(engine_options());

    let mut total = Tally::default();
    let mut ran_files = HashSet::new();
    let mut failed_keys = HashSet::new();
    let mut fixed = Vec::new();
    let mut configured = HashSet::new();
    for set in SETS {
        // Files in the folder that the table neither runs nor skips.
        if let Ok(entries) = std::fs::read_dir(dir.join(set.name)) {
            let mut names: Vec<String> = entries
                .filter_map(|e| e.ok()?.file_name().into_string().ok())
                .filter(|n| n.ends_with(".test"))
                .collect();
            names.sort();
            for n in names {
                let listed =
                    set.files.contains(&n.as_str()) || set.skipped.iter().any(|(f, _)| *f == n);
                if !listed && selected(&format!("{}/{n}", set.name)) {
                    println!(
                        "{}/{n}: not listed in SETS (neither run nor skipped)",
                        set.name
                    );
                }
            }
        }
        for (file, why) in set.skipped {
            let id = format!("{}/{file}", set.name);
            if selected(&id) {
                println!("{id}: skipped ({why})");
            }
        }
        for file in set.files {
            let id = format!("{}/{file}", set.name);
            configured.insert(id.clone());
            if !selected(&id) {
                continue;
            }
            let path = dir.join(set.name).join(file);
            let text = std::fs::read_to_string(&path)
                .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
            let mut tally = Tally::default();
            for o in run_script(&engine, &text, set.check_warnings) {
                let key = format!("{id}:{}", o.line);
                let listed = known.contains_key(&key);
                match &o.result {
                    Ok(()) => {
                        if o.is_eval {
                            tally.passed += 1;
                        }
                        if listed {
                            println!(
                                "FIXED {key}: {}: passes but is listed in known_failures.txt; remove it from the list",
                                truncate(&o.what, MAX_QUERY)
                            );
                            fixed.push(key);
                        }
                    }
                    Err(reason) => {
                        failed_keys.insert(key.clone());
                        if listed {
                            tally.known += 1;
                            if verbose {
                                println!(
                                    "KNOWN {key}: {}: {}",
                                    truncate(&o.what, MAX_QUERY),
                                    truncate(reason, MAX_REASON)
                                );
                            }
                        } else {
                            tally.failed += 1;
                            println!(
                                "FAIL {key}: {}: {}",
                                truncate(&o.what, MAX_QUERY),
                                truncate(reason, MAX_REASON)
                            );
                        }
                    }
                }
            }
            println!(
                "{id}: {} passed, {} failed, {} known failures",
                tally.passed, tally.failed, tally.known
            );
            total.passed += tally.passed;
            total.failed += tally.failed;
            total.known += tally.known;
            ran_files.insert(id);
        }
    }

    // Entries that name no configured file, or no failing command of a file that ran.
    let mut stale = Vec::new();
    for key in known.keys() {
        let file = key.rsplit_once(':').map_or(key.as_str(), |(f, _)| f);
        if !configured.contains(file) {
            stale.push(format!("{key}: names a file that is not run"));
        } else if ran_files.contains(file) && !failed_keys.contains(key) && !fixed.contains(key) {
            stale.push(format!("{key}: no eval or load starts at this line"));
        }
    }
    for s in &stale {
        println!("STALE {s}; remove it from known_failures.txt");
    }

    println!(
        "known failures: {} (listed in {})",
        total.known,
        known_failures_path().display()
    );
    println!(
        "{} passed, {} failed",
        total.passed,
        total.failed + total.known
    );

    let mut problems = Vec::new();
    if total.failed > 0 {
        problems.push(format!(
            "{} evals failed that are not in known_failures.txt (see the FAIL lines)",
            total.failed
        ));
    }
    if !fixed.is_empty() {
        problems.push(format!(
            "{} listed evals now pass; remove them from known_failures.txt: {}",
            fixed.len(),
            fixed.join(", ")
        ));
    }
    if !stale.is_empty() {
        problems.push(format!(
            "{} entries of known_failures.txt match nothing; remove them: {}",
            stale.len(),
            stale.join(", ")
        ));
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// The script parser: value expansion, labels, numbers and durations.
#[test]
fn script_parsing() {
    let vals = |s: &str| parse_series_line(s).unwrap().values;
    assert_eq!(
        vals("m 0+10x3"),
        [Some(0.0), Some(10.0), Some(20.0), Some(30.0)]
    );
    assert_eq!(vals("m 5-2x2"), [Some(5.0), Some(3.0), Some(1.0)]);
    assert_eq!(vals("m 3x2"), [Some(3.0); 3]);
    assert_eq!(vals("m _x2"), [None, None]);
    assert_eq!(vals("m 1 _x2 2"), [Some(1.0), None, None, Some(2.0)]);
    assert_eq!(
        vals("m -2+4x3"),
        [Some(-2.0), Some(2.0), Some(6.0), Some(10.0)]
    );
    assert_eq!(
        vals("m .5 5. 1e+2 1.5E-3 -Inf +inf"),
        [
            Some(0.5),
            Some(5.0),
            Some(100.0),
            Some(0.0015),
            Some(f64::NEG_INFINITY),
            Some(f64::INFINITY)
        ]
    );
    let v = vals("m 1 _ stale NaN");
    assert_eq!(v.len(), 4);
    assert_eq!(v[..2], [Some(1.0), None]);
    assert!(is_stale(v[2].unwrap()));
    assert!(v[3].unwrap().is_nan() && !is_stale(v[3].unwrap()));
    assert_eq!(vals("m"), []);
    // `0x3` is "0 repeated", not hex; hex is not valid in series values.
    assert_eq!(vals("m 0x3"), [Some(0.0); 4]);
    assert!(parse_series_line("m 0x1F").is_err());
    assert!(parse_series_line("m {{schema:1 sum:2}}").is_err());
    assert!(parse_series_line("m Infx3").is_err());

    let labels = |s: &str| parse_series_line(s).unwrap().labels;
    let l = labels(r#"http_requests{job="api", instance="0", esc="a\"b\\c\n",} 1"#);
    assert_eq!(l.get("__name__"), Some("http_requests"));
    assert_eq!(l.get("job"), Some("api"));
    assert_eq!(l.get("instance"), Some("0"));
    assert_eq!(l.get("esc"), Some("a\"b\\c\n"));
    assert!(labels("{} 1").is_empty());
    assert_eq!(labels("{__name__=\"x\"} 1").get("__name__"), Some("x"));
    assert_eq!(labels("a:b:c 1").get("__name__"), Some("a:b:c"));
    assert_eq!(labels("m{a='x', b=`y\\z`}").get("b"), Some("y\\z"));

    assert_eq!(go_parse_number("12.34e6"), Some(12_340_000.0));
    assert_eq!(go_parse_number("0x1F"), Some(31.0));
    assert_eq!(go_parse_number("-Inf"), Some(f64::NEG_INFINITY));
    assert!(go_parse_number("NaN").unwrap().is_nan());
    assert_eq!(go_parse_number("{} 1"), None);

    assert_eq!(parse_duration("0"), Ok(0));
    assert_eq!(parse_duration("1h30m"), Ok(5_400_000));
    assert_eq!(parse_duration("5ms"), Ok(5));
    assert_eq!(parse_duration("1m40s"), Ok(100_000));
    assert!(parse_duration("10").is_err());
    assert!(parse_duration("").is_err());

    let cmds = parse_script(
        "# c\nload 5m\n  m{a=\"b\"} 1 2\n\neval instant at 5m m\n  m{a=\"b\"} 2\n\n\
         eval range from 0 to 10m step 5m m\n  m{a=\"b\"} 1 2 2\n\neval instant at 0 1\n  1\n",
    );
    assert_eq!(
        cmds.iter().map(|c| c.line).collect::<Vec<_>>(),
        [2, 5, 8, 11]
    );
    assert!(matches!(&cmds[0].cmd, Command::Load(l) if l.gap_ms == 300_000 && l.series.len() == 1));
    assert!(
        matches!(&cmds[1].cmd, Command::Eval(e) if matches!(e.time, EvalTime::Instant(300_000)))
    );
    assert!(matches!(&cmds[2].cmd,
        Command::Eval(e) if matches!(e.time, EvalTime::Range { start: 0, end: 600_000, step: 300_000 })));
    assert!(
        matches!(&cmds[3].cmd, Command::Eval(e) if matches!(e.expected, Expected::Scalar(v) if v == 1.0))
    );
}
