//! Go's `strconv`: `FormatFloat`, `ParseFloat` (as Prometheus' parsers
//! accept it) and `ParseInt`'s syntax.

use std::fmt::Write as _;

/// Prometheus' canonical NaN (`value.NormalNaN`); the stale marker is `...0002`.
pub const NORMAL_NAN_BITS: u64 = 0x7ff8_0000_0000_0001;

/// Why [`parse_float`] refused a number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FloatError {
    /// `p`, `P` or `_`: Go would accept some of these (hex floats, digit
    /// separators); Prometheus refuses them.
    Unsupported,
    /// Not a number in Go's decimal syntax (Go's "invalid syntax").
    Syntax,
    /// A finite number too large for an f64 (Go's "value out of range").
    Range,
}

/// Go's `strconv.ParseFloat(s, 64)` restricted as Prometheus restricts it.
/// Inlined: it is the scrape parsers' per-sample hot path.
#[inline]
pub fn parse_float(s: &[u8]) -> Result<f64, FloatError> {
    // `p`, `P` and `_` are outside the grammar below, so they can only make it
    // fail; Prometheus reports them specially.
    parse_decimal_or_special(s).map_err(|e| {
        if e == FloatError::Syntax && s.iter().any(|&c| matches!(c, b'p' | b'P' | b'_')) {
            FloatError::Unsupported
        } else {
            e
        }
    })
}

/// [`parse_float`] before it names `p`, `P` and `_` apart.
#[inline]
fn parse_decimal_or_special(s: &[u8]) -> Result<f64, FloatError> {
    let (neg, digits) = match s.first() {
        Some(b'-') => (true, s.get(1..).unwrap_or(&[])),
        Some(b'+') => (false, s.get(1..).unwrap_or(&[])),
        _ => (false, s),
    };
    match digits.first() {
        Some(b'i' | b'I') => {
            if digits.eq_ignore_ascii_case(b"inf") || digits.eq_ignore_ascii_case(b"infinity") {
                return Ok(if neg {
                    f64::NEG_INFINITY
                } else {
                    f64::INFINITY
                });
            }
            return Err(FloatError::Syntax);
        }
        // Go takes no sign before NaN.
        Some(b'n' | b'N') if digits.len() == s.len() => {
            if digits.eq_ignore_ascii_case(b"nan") {
                return Ok(f64::from_bits(NORMAL_NAN_BITS));
            }
            return Err(FloatError::Syntax);
        }
        _ => {}
    }
    // Decimal: digits [. digits] [e [sign] digits], at least one mantissa digit.
    let mut i = 0;
    let mut mant: u64 = 0;
    let mut sig = 0u32; // significant digits taken into `mant`
    let mut dropped = false; // a non-zero digit did not fit into `mant`
    let mut frac_digits = 0i64; // digits after '.' taken into `mant`
    let mut saw_digit = false;
    let mut saw_dot = false;
    while let Some(&c) = digits.get(i) {
        if c.is_ascii_digit() {
            saw_digit = true;
            if sig < 19 {
                if mant != 0 || c != b'0' {
                    sig += 1;
                }
                mant = mant * 10 + u64::from(c - b'0');
                if saw_dot {
                    frac_digits += 1;
                }
            } else {
                dropped |= c != b'0';
                if !saw_dot {
                    frac_digits -= 1;
                }
            }
        } else if c == b'.' && !saw_dot {
            saw_dot = true;
        } else {
            break;
        }
        i += 1;
    }
    if !saw_digit {
        return Err(FloatError::Syntax);
    }
    let mut exp: i64 = 0;
    if let Some(b'e' | b'E') = digits.get(i) {
        i += 1;
        let eneg = match digits.get(i) {
            Some(b'-') => {
                i += 1;
                true
            }
            Some(b'+') => {
                i += 1;
                false
            }
            _ => false,
        };
        let start = i;
        while let Some(&c) = digits.get(i) {
            if !c.is_ascii_digit() {
                break;
            }
            if exp < 100_000 {
                exp = exp * 10 + i64::from(c - b'0');
            }
            i += 1;
        }
        if i == start {
            return Err(FloatError::Syntax);
        }
        if eneg {
            exp = -exp;
        }
    }
    if i != digits.len() {
        return Err(FloatError::Syntax);
    }
    let e10 = exp - frac_digits;
    let v = if mant == 0 && !dropped {
        0.0
    } else if !dropped && mant < (1 << 53) && (-22..=22).contains(&e10) {
        // Clinger's fast path: both operands are exact, so one IEEE operation
        // rounds correctly.
        let p = POW10
            .get(e10.unsigned_abs() as usize)
            .copied()
            .unwrap_or(1.0);
        if e10 < 0 {
            mant as f64 / p
        } else {
            mant as f64 * p
        }
    } else {
        // The grammar above is a subset of what Rust's parser accepts.
        let text = std::str::from_utf8(digits).map_err(|_| FloatError::Syntax)?;
        text.parse::<f64>().map_err(|_| FloatError::Syntax)?
    };
    if v.is_infinite() {
        return Err(FloatError::Range);
    }
    Ok(if neg { -v } else { v })
}

const POW10: [f64; 23] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16,
    1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
];

/// Decimal digits (no trailing zeros) and decimal-point position of `a >= 0`:
/// shortest round-trip digits when `n` is `None`, else `n` significant digits
/// rounded half-to-even on the exact binary value (as Go).
///
/// The shortest digits come from Ryū, which like Go picks the candidate
/// closest to the exact value and breaks ties to even: Rust's own shortest
/// `{:e}` does not (`-1344823564560774.25` is `…774.2` in Go, `…774.3` in Rust).
fn float_digits(a: f64, n: Option<usize>) -> (Vec<u8>, i32) {
    if a == 0.0 {
        return (Vec::new(), 0);
    }
    let Some(n) = n else {
        return shortest_digits(a);
    };
    // An f64 has at most 767 significant decimal digits; more are zeros (and
    // `format!` precisions stop at 65535).
    let s = format!("{:.*e}", n.clamp(1, 800) - 1, a);
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

/// Ryū's shortest digits of a finite `a > 0`, read from either of its forms
/// (`1344823564560774.2`, `0.0001`, `1.5e-7`, `1e21`).
fn shortest_digits(a: f64) -> (Vec<u8>, i32) {
    let mut buf = ryu::Buffer::new();
    let s = buf.format_finite(a);
    let (mant, exp) = match s.split_once('e') {
        Some((m, e)) => (m, e.parse::<i32>().unwrap_or(0)),
        None => (s, 0),
    };
    let (int, frac) = mant.split_once('.').unwrap_or((mant, ""));
    let mut d: Vec<u8> = int.bytes().chain(frac.bytes()).collect();
    let mut dp = int.len() as i32 + exp;
    let lead = d.iter().take_while(|&&c| c == b'0').count();
    d.drain(..lead);
    dp -= lead as i32;
    while d.last() == Some(&b'0') {
        d.pop();
    }
    if d.is_empty() {
        return (Vec::new(), 0);
    }
    (d, dp)
}

/// Go's `strconv.FormatFloat(v, fmt, prec, 64)` for `e E f g G`.
pub fn format_float(v: f64, fmt: char, prec: i32) -> String {
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

/// Go's `strconv.ParseInt(s, 0, 64)` syntax, without the range check.
pub fn parse_int(s: &str) -> Option<i128> {
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

#[cfg(test)]
mod tests {
    use super::*;

    /// What Prometheus 2.42 answers for -1344823564560774.25 (the exact
    /// value of this float, halfway between two shortest candidates): Go
    /// breaks the tie to even.
    #[test]
    fn shortest_ties_go_to_even() {
        let v = f64::from_bits(14_056_610_131_654_190_617);
        assert_eq!(format!("{v:.2}"), "-1344823564560774.25");
        assert_eq!(format_float(v, 'f', -1), "-1344823564560774.2");
        assert_eq!(format_float(1e21, 'f', -1), "1000000000000000000000");
        assert_eq!(format_float(1.5e-7, 'g', -1), "1.5e-07");
        assert_eq!(format_float(123456.0, 'g', -1), "123456");
        assert_eq!(format_float(1234567.0, 'g', -1), "1.234567e+06");
        assert_eq!(format_float(0.0001, 'g', -1), "0.0001");
        assert_eq!(format_float(-0.0, 'g', -1), "-0");
        assert_eq!(format_float(5e-324, 'e', -1), "5e-324");
        assert_eq!(format_float(0.1, 'f', 3), "0.100");
    }
}
