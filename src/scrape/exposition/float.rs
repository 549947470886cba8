//! Values: Go's `strconv.ParseFloat` as Prometheus' parsers accept it, and Go's `%g`.

/// Prometheus' canonical NaN (`value.NormalNaN`); the stale marker is `...0002`.
pub(super) const NORMAL_NAN_BITS: u64 = 0x7ff8_0000_0000_0001;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum FloatError {
    /// `p`, `P` or `_`: Go would accept some of these (hex floats, digit
    /// separators); Prometheus refuses them.
    Unsupported,
    Syntax,
    Range,
}

/// Go's `strconv.ParseFloat(s, 64)` restricted as Prometheus restricts it.
pub(super) fn parse_go_float(s: &[u8]) -> Result<f64, FloatError> {
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

#[inline]
pub(super) fn parse_decimal_or_special(s: &[u8]) -> Result<f64, FloatError> {
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

pub(super) const POW10: [f64; 23] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16,
    1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
];

/// Go's `strconv.FormatFloat(f, 'g', -1, 64)` (what Go clients expose): shortest
/// round-trip digits, exponent form when the decimal exponent is < -4 or >= 6
/// (`1e+06`, `123456`, `1.5e-05`, `0.0001`).
pub(super) fn go_format_g(f: f64) -> String {
    if f.is_nan() {
        return "NaN".into();
    }
    if f.is_infinite() {
        return if f > 0.0 {
            "+Inf".into()
        } else {
            "-Inf".into()
        };
    }
    if f == 0.0 {
        return if f.is_sign_negative() {
            "-0".into()
        } else {
            "0".into()
        };
    }
    // Rust's `{:e}` gives the same shortest digits: `1.2345e4`, `-5e-7`.
    let sci = format!("{f:e}");
    let (mant, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let (sign, mant) = match mant.strip_prefix('-') {
        Some(m) => ("-", m),
        None => ("", mant),
    };
    let digits: String = mant.chars().filter(|c| *c != '.').collect();
    let nd = digits.len() as i32;
    let mut out = String::with_capacity(24);
    out.push_str(sign);
    if !(-4..6).contains(&exp) {
        out.push_str(mant);
        out.push('e');
        out.push(if exp < 0 { '-' } else { '+' });
        let a = exp.unsigned_abs();
        if a < 10 {
            out.push('0');
        }
        out.push_str(&a.to_string());
        return out;
    }
    let dp = exp + 1; // digits before the decimal point
    if dp <= 0 {
        out.push_str("0.");
        for _ in 0..-dp {
            out.push('0');
        }
        out.push_str(&digits);
    } else if dp >= nd {
        out.push_str(&digits);
        for _ in 0..dp - nd {
            out.push('0');
        }
    } else {
        let (int, frac) = digits.split_at(dp as usize);
        out.push_str(int);
        out.push('.');
        out.push_str(frac);
    }
    out
}

/// Prometheus' `labels.FormatOpenMetricsFloat`: Go's shortest `'g'` form with `.0`
/// appended when it has neither `.` nor `e`; `+Inf`, `-Inf`, `NaN`.
pub fn format_openmetrics_float(f: f64) -> String {
    if f == 0.0 {
        return "0.0".into();
    }
    let mut s = go_format_g(f);
    if !f.is_finite() || s.contains(['.', 'e']) {
        return s;
    }
    s.push_str(".0");
    s
}
