//! Chunk encodings.
//!
//! * [`Encoding::Xor`]: Prometheus-compatible Gorilla chunks, appended to by the
//!   in-memory head ([`XorAppender`]) and decoded with a 64-bit buffered bit reader.
//! * [`Encoding::Cold`]: the compact encoding of immutable on-disk blocks:
//!   delta-of-delta timestamps, decimal mantissas (with exceptions) or XOR byte
//!   planes for values, then zstd. See [`cold`] for the layout.
//!
//! Both decoders reject arbitrary bytes with [`crate::error::Error::Corruption`] (file name
//! `"chunk"`) and never panic or allocate more than their sample-count bound.

pub mod bits;
pub mod cold;
pub mod xor;

pub use cold::{
    decode_cold, encode_cold, encode_cold_level, num_samples_cold, MAX_COLD_SAMPLES,
    ZSTD_LEVEL_COLDEST,
};
pub use xor::{decode_xor, encode_xor, num_samples_xor, XorAppender, MAX_XOR_SAMPLES};

use crate::error::Result;

/// Chunk encodings, stored as one byte before each chunk on disk.
#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Encoding {
    /// Gorilla XOR chunk (head and freshly cut chunks).
    Xor = 1,
    /// Compact chunk for immutable blocks.
    Cold = 2,
}

impl Encoding {
    /// The encoding stored as `b`, if any.
    pub fn from_u8(b: u8) -> Option<Encoding> {
        match b {
            1 => Some(Encoding::Xor),
            2 => Some(Encoding::Cold),
            _ => None,
        }
    }
}

/// Decodes a whole chunk, appending to `ts`/`vs`. Arbitrary bytes give `Err`,
/// never a panic or unbounded allocation; on error nothing is appended.
pub fn decode(enc: Encoding, data: &[u8], ts: &mut Vec<i64>, vs: &mut Vec<f64>) -> Result<()> {
    match enc {
        Encoding::Xor => decode_xor(data, ts, vs),
        Encoding::Cold => decode_cold(data, ts, vs),
    }
}

/// Sample count from the header without decoding.
pub fn num_samples(enc: Encoding, data: &[u8]) -> Result<usize> {
    match enc {
        Encoding::Xor => num_samples_xor(data),
        Encoding::Cold => num_samples_cold(data),
    }
}

/// Encodes with the given encoding.
pub fn encode(enc: Encoding, ts: &[i64], vs: &[f64]) -> Result<Vec<u8>> {
    match enc {
        Encoding::Xor => encode_xor(ts, vs),
        Encoding::Cold => encode_cold(ts, vs),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::error::Error;
    use proptest::prelude::*;

    const ENCS: [Encoding; 2] = [Encoding::Xor, Encoding::Cold];
    const STALE_NAN: u64 = 0x7ff0_0000_0000_0002;

    fn bits(vs: &[f64]) -> Vec<u64> {
        vs.iter().map(|v| v.to_bits()).collect()
    }

    /// Round-trips or fails cleanly with OutOfBounds.
    fn check(enc: Encoding, ts: &[i64], vs: &[f64]) -> std::result::Result<(), TestCaseError> {
        match encode(enc, ts, vs) {
            Ok(data) => {
                prop_assert_eq!(num_samples(enc, &data).expect("count"), ts.len());
                let (mut dt, mut dv) = (vec![7], vec![7.0]);
                decode(enc, &data, &mut dt, &mut dv).expect("decode");
                prop_assert_eq!(&dt[1..], ts);
                prop_assert_eq!(bits(&dv[1..]), bits(vs));
            }
            Err(Error::OutOfBounds { .. }) => {
                // Only legitimate for extreme timestamps / overflowing deltas.
                let extreme = ts.iter().any(|&t| t == i64::MIN || t == i64::MAX)
                    || ts.windows(2).any(|w| w[1].checked_sub(w[0]).is_none());
                prop_assert!(extreme, "spurious OutOfBounds for {:?}", ts);
            }
            Err(e) => prop_assert!(false, "unexpected error {e}"),
        }
        Ok(())
    }

    fn arb_ts() -> impl Strategy<Value = Vec<i64>> {
        let step = prop_oneof![
            4 => Just(15_000i64),
            2 => 14_998i64..15_003,
            2 => 1i64..100_000,
            1 => 1i64..i64::MAX / 4,
            1 => any::<i64>().prop_map(|x| (x as u64 >> 1) as i64 | 1),
        ];
        let start = prop_oneof![
            any::<i64>(),
            -1_000_000_000i64..2_000_000_000_000,
            Just(i64::MIN),
            Just(i64::MIN + 1),
            Just(i64::MAX - 10)
        ];
        (start, proptest::collection::vec(step, 0..300)).prop_map(|(s, steps)| {
            let mut out = vec![s];
            let mut t = s;
            for st in steps {
                match t.checked_add(st) {
                    Some(n) => {
                        out.push(n);
                        t = n;
                    }
                    None => break,
                }
            }
            out
        })
    }

    fn arb_value() -> impl Strategy<Value = f64> {
        prop_oneof![
            3 => any::<u64>().prop_map(f64::from_bits),
            3 => (-1_000_000i64..1_000_000, 0u32..4).prop_map(|(m, e)| m as f64 / 10f64.powi(e as i32)),
            1 => Just(f64::from_bits(STALE_NAN)),
            1 => prop_oneof![
                Just(f64::NAN), Just(f64::INFINITY), Just(f64::NEG_INFINITY), Just(-0.0), Just(0.0),
                Just(f64::MAX), Just(f64::MIN), Just(f64::MIN_POSITIVE), Just(5e-324), Just(1e300),
                Just(9_007_199_254_740_993.0), Just(0.1 + 0.2)
            ],
        ]
    }

    fn arb_series() -> impl Strategy<Value = (Vec<i64>, Vec<f64>)> {
        arb_ts().prop_flat_map(|ts| {
            let n = ts.len();
            let vals = prop_oneof![
                proptest::collection::vec(arb_value(), n),
                // Mostly-decimal series with a few specials.
                (
                    proptest::collection::vec(0i64..1000, n),
                    proptest::collection::vec(arb_value(), n),
                    0u32..3
                )
                    .prop_map(|(incs, sp, e)| {
                        let mut m = 0i64;
                        incs.iter()
                            .zip(sp)
                            .enumerate()
                            .map(|(i, (&inc, s))| {
                                m += inc;
                                if i % 37 == 5 {
                                    s
                                } else {
                                    m as f64 / 10f64.powi(e as i32)
                                }
                            })
                            .collect()
                    }),
            ];
            (Just(ts), vals)
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(400))]

        #[test]
        fn round_trip_both((ts, vs) in arb_series()) {
            for enc in ENCS {
                check(enc, &ts, &vs)?;
            }
        }

        #[test]
        fn appender_matches_encode_xor((ts, vs) in arb_series()) {
            let mut a = XorAppender::new();
            let mut ok = true;
            for (i, (&t, &v)) in ts.iter().zip(&vs).enumerate() {
                if a.append(t, v).is_err() { ok = false; break; }
                // Every prefix copied out is a whole chunk of exactly the
                // samples so far (pending bits and count included).
                let (mut dt, mut dv) = (Vec::new(), Vec::new());
                decode_xor(&a.to_vec(), &mut dt, &mut dv).expect("decode prefix");
                prop_assert_eq!(&dt[..], &ts[..=i]);
                prop_assert_eq!(a.to_vec().len(), a.encoded_len());
                let bits: Vec<u64> = dv.iter().map(|v| v.to_bits()).collect();
                let want: Vec<u64> = vs[..=i].iter().map(|v| v.to_bits()).collect();
                prop_assert_eq!(bits, want);
            }
            if ok {
                prop_assert_eq!(a.to_vec(), encode_xor(&ts, &vs).expect("encode"));
            }
        }

        #[test]
        fn garbage_never_panics(enc in 0u8..3, data in proptest::collection::vec(any::<u8>(), 0..200)) {
            let enc = if enc == 0 { Encoding::Xor } else { Encoding::Cold };
            let (mut t, mut v) = (Vec::new(), Vec::new());
            if decode(enc, &data, &mut t, &mut v).is_err() {
                prop_assert!(t.is_empty() && v.is_empty());
            } else {
                prop_assert_eq!(t.len(), v.len());
            }
            let _ = num_samples(enc, &data);
        }

        #[test]
        fn mutated_never_panics((ts, vs) in arb_series(), muts in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..6), cut in any::<usize>()) {
            for enc in ENCS {
                let Ok(mut data) = encode(enc, &ts, &vs) else { continue };
                let (mut t, mut v) = (Vec::new(), Vec::new());
                // Truncations.
                let c = cut % (data.len() + 1);
                let _ = decode(enc, &data[..c], &mut t, &mut v);
                prop_assert_eq!(t.len(), v.len());
                // Byte mutations.
                for &(i, b) in &muts {
                    let len = data.len();
                    data[i % len] ^= b | 1;
                }
                t.clear();
                v.clear();
                let _ = decode(enc, &data, &mut t, &mut v);
                prop_assert_eq!(t.len(), v.len());
                prop_assert!(t.len() <= MAX_COLD_SAMPLES);
            }
        }
    }

    #[test]
    fn special_values() {
        let specials = [
            f64::from_bits(STALE_NAN),
            f64::NAN,
            f64::from_bits(0xfff8_0000_0000_0001),
            f64::INFINITY,
            f64::NEG_INFINITY,
            -0.0,
            0.0,
            5e-324,
            f64::MIN_POSITIVE / 3.0,
            f64::MAX,
            f64::MIN,
            1.0,
            12345.67,
            0.1 + 0.2,
        ];
        let ts: Vec<i64> = (0..specials.len() as i64)
            .map(|i| 1_700_000_000_000 + i * 15_000)
            .collect();
        for enc in ENCS {
            check(enc, &ts, &specials).expect("round trip");
            // Specials sprinkled in a long decimal series (cold exceptions path).
            let n = 1000;
            let ts2: Vec<i64> = (0..n).map(|i| i * 15_000).collect();
            let mut vs2: Vec<f64> = (0..n).map(|i| (i * 7) as f64 / 100.0).collect();
            for (k, s) in specials.iter().enumerate() {
                vs2[k * 50 + 3] = *s;
            }
            check(enc, &ts2, &vs2).expect("round trip with exceptions");
            // All staleness markers.
            check(enc, &ts2, &vec![f64::from_bits(STALE_NAN); n as usize]).expect("stale");
        }
    }

    #[test]
    fn unsorted_timestamps_rejected() {
        for enc in ENCS {
            assert!(encode(enc, &[1, 1], &[0.0, 0.0]).is_err());
            assert!(encode(enc, &[2, 1], &[0.0, 0.0]).is_err());
            assert!(encode(enc, &[1], &[0.0, 0.0]).is_err());
        }
    }

    #[test]
    fn zstd_bomb_rejected() {
        // 10 samples claiming a 1 GiB decoded body.
        let mut data = Vec::new();
        bits::put_uvarint(&mut data, 10);
        data.push(1);
        bits::put_uvarint(&mut data, 1 << 30);
        data.extend_from_slice(&zstd::bulk::compress(&vec![0u8; 1 << 20], 1).expect("zstd"));
        let (mut t, mut v) = (Vec::new(), Vec::new());
        let err = decode(Encoding::Cold, &data, &mut t, &mut v).expect_err("bomb");
        assert!(matches!(err, Error::Corruption { .. }), "{err}");
        // A frame that decompresses to more than its recorded (allowed) size.
        let mut data = Vec::new();
        bits::put_uvarint(&mut data, 10);
        data.push(1);
        bits::put_uvarint(&mut data, 100);
        data.extend_from_slice(&zstd::bulk::compress(&vec![0u8; 1 << 20], 1).expect("zstd"));
        assert!(decode(Encoding::Cold, &data, &mut t, &mut v).is_err());
        // A sample count above the bound.
        let mut data = Vec::new();
        bits::put_uvarint(&mut data, u64::MAX);
        assert!(num_samples(Encoding::Cold, &data).is_err());
        assert!(t.is_empty() && v.is_empty());
    }

    #[test]
    fn encoding_byte() {
        assert_eq!(Encoding::from_u8(1), Some(Encoding::Xor));
        assert_eq!(Encoding::from_u8(2), Some(Encoding::Cold));
        assert_eq!(Encoding::from_u8(0), None);
        assert_eq!(Encoding::Cold as u8, 2);
    }
}
