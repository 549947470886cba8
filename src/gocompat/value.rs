//! Sample values and label values as Prometheus writes them in its JSON API,
//! text exposition and OpenMetrics output.

use super::strconv::format_float;

/// A sample value as Prometheus renders it: `NaN`, `+Inf`, `-Inf`, plain
/// shortest decimal for `1e-6 <= |v| < 1e21` (and zero), otherwise Go's
/// exponent form (`1e-07`, `2.5e+21`).
pub fn format_value(v: f64) -> String {
    let mut out = Vec::with_capacity(24);
    write_value(&mut out, v);
    String::from_utf8(out).unwrap_or_default()
}

/// [`format_value`] appended to `out` (the hot path of big query answers:
/// no allocation, and ryu's shortest digits for the usual magnitudes).
pub fn write_value(out: &mut Vec<u8>, v: f64) {
    if v.is_nan() {
        out.extend_from_slice(b"NaN");
        return;
    }
    if v.is_infinite() {
        out.extend_from_slice(if v > 0.0 { b"+Inf" } else { b"-Inf" });
        return;
    }
    let a = v.abs();
    if a != 0.0 && !(1e-6..1e21).contains(&a) {
        // Rust: "2.5e21" / "1e-7"; Go: "2.5e+21" / "1e-07".
        let s = format!("{v:e}");
        let (mant, exp) = s.split_once('e').unwrap_or((&s, "0"));
        let (sign, digits) = match exp.strip_prefix('-') {
            Some(d) => ('-', d),
            None => ('+', exp),
        };
        out.extend_from_slice(format!("{mant}e{sign}{digits:0>2}").as_bytes());
        return;
    }
    write_plain(out, v);
}

/// A finite value in Go's `strconv.FormatFloat(v, 'f', -1, 64)` form: shortest
/// digits, never an exponent. ryu's digits round ties to even, as Go's do, and
/// it writes plain decimals for 1e-5 <= |v| < 1e16 (integers with a ".0");
/// elsewhere Rust's plain form is used (its ties may differ in the last digit).
pub fn write_plain(out: &mut Vec<u8>, v: f64) {
    let mut buf = ryu::Buffer::new();
    let s = buf.format_finite(v).as_bytes();
    if s.contains(&b'e') {
        out.extend_from_slice(format!("{v}").as_bytes());
    } else {
        out.extend_from_slice(s.strip_suffix(b".0").unwrap_or(s));
    }
}

/// Escapes `\`, `"` and newlines in a label value (text format 0.0.4).
pub fn escape_label_value(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

/// Prometheus' `labels.FormatOpenMetricsFloat`: Go's shortest `'g'` form with `.0`
/// appended when it has neither `.` nor `e`; `+Inf`, `-Inf`, `NaN`.
pub fn format_openmetrics_float(f: f64) -> String {
    if f == 0.0 {
        return "0.0".into();
    }
    let mut s = format_float(f, 'g', -1);
    if !f.is_finite() || s.contains(['.', 'e']) {
        return s;
    }
    s.push_str(".0");
    s
}
