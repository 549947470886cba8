//! Go's and Prometheus' durations: `model.ParseDuration` (`1y2w3d4h5m6s7ms`,
//! used by prometheus.yml, flags, PromQL-adjacent API parameters and
//! templates), the HTTP API's `parseDuration` (float seconds or that syntax)
//! and Go's `time.Duration.String()`.

use std::fmt::Write as _;

use super::quote::quote;
use super::strconv::parse_float;

/// Nanoseconds per second.
const NS_PER_S: u64 = 1_000_000_000;

/// Prometheus' `model.ParseDuration` (prometheus/common), in nanoseconds,
/// with its error messages.
pub fn parse_model_duration(s: &str) -> Result<u64, String> {
    match s {
        "0" => return Ok(0),
        "" => return Err("empty duration string".to_string()),
        _ => {}
    }
    let bad = || format!("not a valid duration string: {}", quote(s));
    let mut rest = s;
    let mut dur: u64 = 0;
    let mut last_pos = 0;
    while !rest.is_empty() {
        if !rest.as_bytes()[0].is_ascii_digit() {
            return Err(bad());
        }
        let i = rest.bytes().take_while(u8::is_ascii_digit).count();
        let v: u64 = rest[..i].parse().map_err(|_| bad())?;
        rest = &rest[i..];
        let j = rest.bytes().take_while(|b| !b.is_ascii_digit()).count();
        if j == 0 {
            return Err(bad());
        }
        let unit = &rest[..j];
        rest = &rest[j..];
        let (pos, mult) = match unit {
            "ms" => (7, 1_000_000),
            "s" => (6, NS_PER_S),
            "m" => (5, 60 * NS_PER_S),
            "h" => (4, 3_600 * NS_PER_S),
            "d" => (3, 86_400 * NS_PER_S),
            "w" => (2, 7 * 86_400 * NS_PER_S),
            "y" => (1, 365 * 86_400 * NS_PER_S),
            _ => {
                return Err(format!(
                    "unknown unit {} in duration {}",
                    quote(unit),
                    quote(s)
                ))
            }
        };
        if pos <= last_pos {
            return Err(bad());
        }
        last_pos = pos;
        if v > (1u64 << 63) / mult {
            return Err("duration out of range".to_string());
        }
        dur += v * mult;
        if dur > (1u64 << 63) - 1 {
            return Err("duration out of range".to_string());
        }
    }
    Ok(dur)
}

/// The HTTP API's `parseDuration` (web/api/v1): float seconds (negative
/// allowed, the caller decides what that means; truncated toward zero to
/// nanoseconds as Go's conversion does) or [`parse_model_duration`]'s syntax.
/// Returns nanoseconds (Go's `time.Duration`).
pub fn parse_api_duration(s: &str) -> Result<i64, String> {
    if let Ok(f) = parse_float(s.as_bytes()) {
        let ns = f * 1e9;
        if ns > i64::MAX as f64 || ns < i64::MIN as f64 {
            return Err(format!(
                "cannot parse {} to a valid duration. It overflows int64",
                quote(s)
            ));
        }
        if ns.is_nan() {
            // Go converts NaN to math.MinInt64 (amd64): a negative duration.
            return Ok(i64::MIN);
        }
        return Ok(ns as i64);
    }
    parse_model_duration(s)
        .ok()
        .and_then(|ns| i64::try_from(ns).ok())
        .ok_or_else(|| format!("cannot parse {} to a valid duration", quote(s)))
}

/// Go's `Duration.String()`.
pub fn format_duration(d: i64) -> String {
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn durations_parse_as_prometheus() {
        assert_eq!(parse_api_duration("15").unwrap(), 15_000_000_000);
        assert_eq!(parse_api_duration("0.5").unwrap(), 500_000_000);
        assert_eq!(parse_api_duration("1e-4").unwrap(), 100_000);
        assert_eq!(parse_api_duration("-1").unwrap(), -1_000_000_000);
        assert_eq!(parse_api_duration("0").unwrap(), 0);
        assert_eq!(parse_api_duration("1m").unwrap(), 60_000_000_000);
        assert_eq!(parse_api_duration("1h30m").unwrap(), 5_400_000_000_000);
        assert_eq!(parse_api_duration("10ms").unwrap(), 10_000_000);
        assert_eq!(
            parse_api_duration("abc").unwrap_err(),
            "cannot parse \"abc\" to a valid duration"
        );
        assert_eq!(
            parse_api_duration("").unwrap_err(),
            "cannot parse \"\" to a valid duration"
        );
        assert_eq!(
            parse_api_duration("1e10").unwrap_err(),
            "cannot parse \"1e10\" to a valid duration. It overflows int64"
        );
        assert!(parse_api_duration("-1m").is_err());
        assert!(parse_api_duration("NaN").unwrap() < 0);
        assert_eq!(parse_api_duration("1e3").unwrap(), 1_000_000_000_000);
        // Out of Go's float range: not a float, so not a duration either.
        assert_eq!(
            parse_api_duration("1e400").unwrap_err(),
            "cannot parse \"1e400\" to a valid duration"
        );
        assert!(parse_api_duration("1e300").is_err());
    }

    #[test]
    fn model_durations_with_prometheus_messages() {
        assert_eq!(
            parse_model_duration("1y2w3d4h5m6s7ms").unwrap(),
            33_019_506_007_000_000
        );
        assert_eq!(
            parse_model_duration("1s1m").unwrap_err(),
            "not a valid duration string: \"1s1m\""
        );
        assert_eq!(
            parse_model_duration("5µs").unwrap_err(),
            "unknown unit \"µs\" in duration \"5µs\""
        );
        assert_eq!(
            parse_model_duration("").unwrap_err(),
            "empty duration string"
        );
        assert_eq!(
            parse_model_duration("300y").unwrap_err(),
            "duration out of range"
        );
        assert_eq!(format_duration(90_000_000_000), "1m30s");
        assert_eq!(format_duration(-1_500), "-1.5µs");
    }
}
