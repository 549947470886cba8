//! The functions: Go's builtins, Prometheus' and Alertmanager's sets, and their helpers.

use super::*;

pub(super) fn arg_str(v: &Value) -> &str {
    match v {
        Value::Str(s) => s,
        _ => "",
    }
}

pub(super) fn sample_value(labels: BTreeMap<String, String>, value: f64) -> Value {
    Value::structure(
        T_SAMPLE,
        vec![
            ("Labels".into(), Value::str_map(labels)),
            ("Value".into(), Value::Float(value)),
        ],
    )
}

pub(super) fn sample_labels(v: &Value) -> Result<&BTreeMap<String, String>, String> {
    match v.field("Labels") {
        Some(Value::StrMap(m)) => Ok(&m.map),
        _ => Err("runtime error: invalid memory address or nil pointer dereference".into()),
    }
}

pub(super) fn list_items(v: &Value) -> &[Value] {
    match v {
        Value::List(l) => &l.items,
        _ => &[],
    }
}

impl State<'_, '_> {
    /// Compiles `pat`, caching per execution (templates often match inside
    /// `range`).
    pub(super) fn regex(&mut self, pat: &str) -> Result<regex::Regex, String> {
        if let Some(r) = self.regexes.get(pat) {
            return r.clone();
        }
        let r = go_regex(pat);
        if self.regexes.len() < 64 {
            self.regexes.insert(pat.to_string(), r.clone());
        }
        r
    }

    pub(super) fn call_func(&mut self, name: &str, a: Vec<Value>) -> Result<Value, String> {
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
                format_float(convert_to_float(&a[0])? * 100.0, 'g', 4)
            )),
            "humanizeTimestamp" => {
                let v = convert_to_float(&a[0])?;
                if v.is_nan() || v.is_infinite() {
                    Value::from(format_float(v, 'g', 4))
                } else {
                    Value::from(time_string(float_to_time(v)?))
                }
            }
            "toTime" => Value::Time(float_to_time(convert_to_float(&a[0])?)?),
            "pathPrefix" => Value::str(&self.env.path_prefix),
            "externalURL" => Value::str(&self.env.external_url),
            "parseDuration" => Value::Float(parse_model_duration(s0)? as f64 / 1e9),
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
            _ => return Err(format!("{} is not a defined function", quote(name))),
        })
    }
}

pub(super) fn call_method(recv: &Value, name: &str, a: &[Value]) -> Result<Value, String> {
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
            "String" => Value::from(format_duration(*d)),
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
pub(super) fn kv_sorted(m: &BTreeMap<String, String>) -> Vec<(&str, &str)> {
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

pub(super) fn pairs_value(m: &BTreeMap<String, String>) -> Value {
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

pub(super) fn kv_string(m: &BTreeMap<String, String>) -> String {
    kv_sorted(m)
        .into_iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(", ")
}

pub(super) fn pairs_string(items: &[Value]) -> String {
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
pub(super) fn convert_to_float(v: &Value) -> Result<f64, String> {
    match v {
        Value::Float(f) => Ok(*f),
        Value::Str(s) => go_parse_float(s).map_err(|e| parse_float_err(s, e)),
        Value::Int(i) => Ok(*i as f64),
        Value::Uint(u) => Ok(*u as f64),
        Value::Duration(d) => Ok(*d as f64 / 1e9),
        v => Err(format!("can't convert {} to float", v.type_name())),
    }
}

pub(super) fn humanize(mut v: f64) -> String {
    if v == 0.0 || v.is_nan() || v.is_infinite() {
        return format_float(v, 'g', 4);
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
    format!("{}{}", format_float(v, 'g', 4), prefix)
}

pub(super) fn humanize1024(mut v: f64) -> String {
    if v.abs() <= 1.0 || v.is_nan() || v.is_infinite() {
        return format_float(v, 'g', 4);
    }
    let mut prefix = "";
    for p in ["ki", "Mi", "Gi", "Ti", "Pi", "Ei", "Zi", "Yi"] {
        if v.abs() < 1024.0 {
            break;
        }
        prefix = p;
        v /= 1024.0;
    }
    format!("{}{}", format_float(v, 'g', 4), prefix)
}

pub(super) fn humanize_duration(mut v: f64) -> String {
    if v.is_nan() || v.is_infinite() {
        return format_float(v, 'g', 4);
    }
    if v == 0.0 {
        return format!("{}s", format_float(v, 'g', 4));
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
        return format!("{sign}{}s", format_float(v, 'g', 4));
    }
    let mut prefix = "";
    for p in ["m", "u", "n", "p", "f", "a", "z", "y"] {
        if v.abs() >= 1.0 {
            break;
        }
        prefix = p;
        v *= 1000.0;
    }
    format!("{}{}s", format_float(v, 'g', 4), prefix)
}

/// Prometheus' `floatToTime`: millisecond precision, like `model.Time`.
pub(super) fn float_to_time(v: f64) -> Result<Time, String> {
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

/// Go's `net.SplitHostPort`.
pub(super) fn split_host_port(hp: &str) -> Result<(String, String), ()> {
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

pub(super) fn strip_domain(hp: &str) -> String {
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
pub(super) fn title_case(s: &str, lower_rest: bool) -> String {
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

pub(super) fn simple_upper(c: char) -> char {
    let mut it = c.to_uppercase();
    match (it.next(), it.next()) {
        (Some(u), None) => u,
        _ => c,
    }
}

pub(super) fn simple_lower(c: char) -> char {
    let mut it = c.to_lowercase();
    match (it.next(), it.next()) {
        (Some(u), None) => u,
        _ => c,
    }
}

/// Compiles a Go (RE2) regular expression with the `regex` crate, giving
/// `\d \w \s \b` Go's ASCII meaning.
pub(super) fn go_regex(pat: &str) -> Result<regex::Regex, String> {
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

pub(super) fn regexp_quote(s: &str) -> String {
    if can_backquote(s) {
        format!("`{s}`")
    } else {
        quote(s)
    }
}

pub(super) fn index_value(item: &Value, idx: &[Value]) -> Result<Value, String> {
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

pub(super) fn index_arg(i: &Value, cap: usize) -> Result<usize, String> {
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

pub(super) fn slice_value(item: &Value, idx: &[Value]) -> Result<Value, String> {
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
pub(super) enum Kind {
    Bool,
    Int,
    Uint,
    Float,
    Str,
    Other,
}

pub(super) fn basic_kind(v: &Value) -> Kind {
    match v {
        Value::Bool(_) => Kind::Bool,
        Value::Int(_) | Value::Duration(_) => Kind::Int,
        Value::Uint(_) => Kind::Uint,
        Value::Float(_) => Kind::Float,
        Value::Str(_) => Kind::Str,
        _ => Kind::Other,
    }
}

pub(super) fn as_i64(v: &Value) -> i64 {
    match v {
        Value::Int(i) | Value::Duration(i) => *i,
        _ => 0,
    }
}

pub(super) fn as_u64(v: &Value) -> u64 {
    match v {
        Value::Uint(u) => *u,
        _ => 0,
    }
}

pub(super) const ERR_BAD_COMPARISON_TYPE: &str = "invalid type for comparison";
pub(super) const ERR_BAD_COMPARISON: &str = "incompatible types for comparison";

pub(super) fn go_eq(a1: &Value, rest: &[Value]) -> Result<bool, String> {
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

pub(super) fn go_lt(a1: &Value, a2: &Value) -> Result<bool, String> {
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
pub(super) fn eval_args(a: &[Value]) -> String {
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

pub(super) fn html_escape(s: &str) -> String {
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

pub(super) fn js_escape(s: &str) -> String {
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
pub(super) fn query_escape(s: &str) -> String {
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
pub(super) fn query_unescape(s: &str) -> Result<String, String> {
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
                    return Err(format!("invalid URL escape {}", quote(&bad)));
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

pub(super) fn now_time() -> Time {
    match std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
        Ok(d) => Time {
            secs: d.as_secs() as i64,
            nanos: d.subsec_nanos(),
        },
        Err(_) => Time { secs: 0, nanos: 0 },
    }
}

/// `encoding/json.Marshal` of a value (as Alertmanager's `toJson`).
pub(super) fn json_encode(out: &mut String, v: &Value) -> Result<(), String> {
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
                return Err(format!(
                    "json: unsupported value: {}",
                    format_float(*f, 'g', -1)
                ));
            }
            let a = f.abs();
            if a != 0.0 && !(1e-6..1e21).contains(&a) {
                let s = format_float(*f, 'e', -1);
                // Clean up e-09 to e-9.
                let s = match s.find("e-0") {
                    Some(p) => format!("{}e-{}", &s[..p], &s[p + 3..]),
                    None => s,
                };
                out.push_str(&s);
            } else {
                out.push_str(&format_float(*f, 'f', -1));
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

pub(super) fn json_string(out: &mut String, s: &str) {
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
