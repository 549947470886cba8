//! Number and time formatting exactly as Prometheus' JSON API writes them
//! (`util/jsonutil/marshal.go`): sample values as strings in Go's shortest
//! form, timestamps as unix seconds with millisecond precision.

pub use crate::gocompat::{format_value, write_plain, write_value};

/// A millisecond timestamp as unix seconds: integer part, then `.` and exactly
/// three digits only when the milliseconds are not zero.
pub fn format_timestamp(t_ms: i64) -> String {
    let mut out = Vec::with_capacity(24);
    write_timestamp(&mut out, t_ms);
    String::from_utf8(out).unwrap_or_default()
}

/// [`format_timestamp`] appended to `out`.
pub fn write_timestamp(out: &mut Vec<u8>, t_ms: i64) {
    if t_ms < 0 {
        out.push(b'-');
    }
    let a = t_ms.unsigned_abs();
    let (secs, frac) = (a / 1000, a % 1000);
    let mut buf = itoa::Buffer::new();
    out.extend_from_slice(buf.format(secs).as_bytes());
    if frac != 0 {
        out.extend_from_slice(&[
            b'.',
            b'0' + (frac / 100) as u8,
            b'0' + (frac / 10 % 10) as u8,
            b'0' + (frac % 10) as u8,
        ]);
    }
}

/// A time as Prometheus' API writes `lastScrape`/`activeAt`: RFC 3339 UTC,
/// or Go's zero time when there is none.
pub fn rfc3339_or_zero(t: Option<std::time::SystemTime>) -> String {
    match t {
        Some(t) => chrono::DateTime::<chrono::Utc>::from(t)
            .to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true),
        None => "0001-01-01T00:00:00Z".to_string(),
    }
}

/// A timestamp as a JSON number token (for `[<ts>, "<value>"]` pairs).
pub fn timestamp_json(t_ms: i64) -> serde_json::Value {
    // The formatted text is a valid JSON number; keep it verbatim.
    serde_json::from_str(&format_timestamp(t_ms)).unwrap_or(serde_json::Value::Null)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// What any correct rendering must satisfy: it reads back as `v`, has no
    /// more significant digits than Rust's shortest form (which may pick the
    /// other digit of a tie: Go, like ryu, rounds those to even), and uses
    /// Go's exponent form exactly outside `[1e-6, 1e21)`.
    fn check(v: f64) -> std::result::Result<(), String> {
        let got = format_value(v);
        if v.is_nan() || v.is_infinite() {
            let want = if v.is_nan() {
                "NaN"
            } else if v > 0.0 {
                "+Inf"
            } else {
                "-Inf"
            };
            return if got == want { Ok(()) } else { Err(got) };
        }
        let back: f64 = got.parse().map_err(|_| got.clone())?;
        if back.to_bits() != v.to_bits() && !(v == 0.0 && back == 0.0) {
            return Err(format!("{got} reads back as {back:e}"));
        }
        let digits = |s: &str| {
            let m = s.split(['e', 'E']).next().unwrap_or("");
            let d: String = m.chars().filter(|c| c.is_ascii_digit()).collect();
            d.trim_start_matches('0').trim_end_matches('0').len()
        };
        if digits(&got) > digits(&format!("{v:e}")) {
            return Err(format!("{got} is not the shortest form of {v:e}"));
        }
        let a = v.abs();
        let exp_form = a != 0.0 && !(1e-6..1e21).contains(&a);
        let has_exp = got.contains('e');
        if exp_form != has_exp || (has_exp && !got.contains("e+") && !got.contains("e-")) {
            return Err(format!("{got}: wrong form for {v:e}"));
        }
        Ok(())
    }

    proptest! {
        #[test]
        fn fast_value_format_is_shortest_and_exact(bits in any::<u64>(), small in -1e7f64..1e7, int in -(1i64 << 53)..(1i64 << 53)) {
            for v in [f64::from_bits(bits), small, int as f64, small / 1e9, small * 1e12] {
                prop_assert!(check(v).is_ok(), "{:?}", check(v));
            }
        }
    }

    #[test]
    fn ties_round_to_even_as_go() {
        // Prometheus 2.42 answers `-153453691269713.125` with this (checked by
        // hand); Rust's `Display` gives ...713.13.
        let tie = f64::from_bits(14042630556634466852); // -153453691269713.125 exactly
        assert_eq!(format_value(tie), "-153453691269713.12");
        assert_eq!(format_value(1e15 + 0.5), "1000000000000000.5");
        assert_eq!(format_value(1e21), "1e+21");
        assert_eq!(format_value(1.5e-7), "1.5e-07");
        assert_eq!(format_value(-0.0), "-0");
    }

    #[test]
    fn fast_value_format_at_the_edges() {
        for v in [
            0.0,
            -0.0,
            1e-6,
            9.999e-6,
            1e-5,
            1e15,
            1e16,
            9.999e15,
            1.5e16,
            1e20,
            9.99e20,
            1e21,
            5e-324,
            f64::MAX,
            f64::MIN_POSITIVE,
            0.1 + 0.2,
        ] {
            assert_eq!(check(v), Ok(()), "{v:e}");
            assert_eq!(check(-v), Ok(()), "{v:e}");
        }
        assert_eq!(format_timestamp(-1500), "-1.500");
        assert_eq!(format_timestamp(1_700_000_000_007), "1700000000.007");
        assert_eq!(format_timestamp(0), "0");
    }

    #[test]
    fn values_like_prometheus() {
        let cases: &[(f64, &str)] = &[
            (0.0, "0"),
            (-0.0, "-0"),
            (1.0, "1"),
            (0.1, "0.1"),
            (1.5e-6, "0.0000015"),
            (1e-7, "1e-07"),
            (2.5e21, "2.5e+21"),
            (1e21, "1e+21"),
            (123456789012345680000.0, "123456789012345680000"),
            (-1.25e-300, "-1.25e-300"),
            (f64::NAN, "NaN"),
            (f64::INFINITY, "+Inf"),
            (f64::NEG_INFINITY, "-Inf"),
            (1.7976931348623157e308, "1.7976931348623157e+308"),
        ];
        for (v, want) in cases {
            assert_eq!(format_value(*v), *want, "{v:?}");
        }
    }

    #[test]
    fn timestamps_like_prometheus() {
        assert_eq!(format_timestamp(1_718_000_000_000), "1718000000");
        assert_eq!(format_timestamp(1_718_000_000_005), "1718000000.005");
        assert_eq!(format_timestamp(1_718_000_000_050), "1718000000.050");
        assert_eq!(format_timestamp(1_718_000_000_781), "1718000000.781");
        assert_eq!(format_timestamp(-1_500), "-1.500");
        assert_eq!(timestamp_json(1_500).to_string(), "1.5");
    }
}
