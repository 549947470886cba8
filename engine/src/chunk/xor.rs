//! Gorilla XOR chunks, bit compatible with Prometheus' `tsdb/chunkenc/xor.go`.
//!
//! Layout: a 16-bit big-endian sample count; the first timestamp as a zigzag
//! varint and the first value as 64 raw bits; the second timestamp as an
//! unsigned varint delta; then, per sample, the timestamp delta-of-delta in
//! buckets (`0`, `10`+14 bits, `110`+17 bits, `1110`+20 bits, `1111`+64 bits)
//! followed by the value XORed with the previous one (`0` when equal, `10` +
//! meaningful bits when they fit in the previous leading/trailing-zero window,
//! `11` + 5 bits leading zeros + 6 bits length + meaningful bits otherwise).

use super::bits::{get_uvarint, get_varint, put_uvarint, put_varint, BitReader, BitWriter};
use crate::error::{Error, Result};

/// Most samples an XOR chunk can hold (the count is 16 bits).
pub const MAX_XOR_SAMPLES: usize = u16::MAX as usize;

const FILE: &str = "chunk";

/// Appendable Gorilla chunk used by the in-memory head.
///
/// Fields in the order an append touches them (`repr(C)`): the head keeps
/// thousands of these and appends one sample to each in turn.
#[derive(Clone, Debug)]
#[repr(C)]
pub struct XorAppender {
    t: i64,
    v: u64,
    t_delta: i64,
    n: usize,
    leading: u8,
    trailing: u8,
    w: BitWriter,
    min_t: i64,
}

impl Default for XorAppender {
    fn default() -> Self {
        Self::new()
    }
}

/// Checks a timestamp the encoders accept (i64::MIN/MAX are reserved as sentinels).
#[inline]
pub(crate) fn check_t(t: i64) -> Result<()> {
    if t == i64::MIN || t == i64::MAX {
        Err(Error::OutOfBounds { t_ms: t })
    } else {
        Ok(())
    }
}

/// True when `x` fits the signed `nbits`-bit bucket (Prometheus' `bitRange`).
#[inline]
fn bit_range(x: i64, nbits: u32) -> bool {
    -((1i64 << (nbits - 1)) - 1) <= x && x <= 1i64 << (nbits - 1)
}

impl XorAppender {
    /// An empty chunk.
    pub fn new() -> Self {
        Self::with_capacity(32)
    }

    /// An empty chunk whose buffer starts with room for `bytes` bytes (the
    /// head sizes a series' next chunk from its previous one).
    pub fn with_capacity(bytes: usize) -> Self {
        let mut buf = Vec::with_capacity(bytes.max(8));
        buf.extend_from_slice(&[0, 0]);
        XorAppender {
            w: BitWriter::from_vec(buf),
            n: 0,
            t: 0,
            min_t: 0,
            t_delta: 0,
            v: 0,
            leading: 0xff,
            trailing: 0,
        }
    }

    /// Appends a sample. The caller guarantees `t` is greater than the previous
    /// timestamp; `Err(OutOfBounds)` if it is not, if the delta does not fit the
    /// encoding, or for `i64::MIN`/`i64::MAX`. On error the chunk is unchanged.
    pub fn append(&mut self, t: i64, v: f64) -> Result<()> {
        check_t(t)?;
        if self.n >= MAX_XOR_SAMPLES {
            return Err(Error::LimitExceeded {
                what: "xor chunk samples",
                limit: MAX_XOR_SAMPLES as u64,
            });
        }
        let vbits = v.to_bits();
        match self.n {
            0 => {
                let mut tmp = Vec::with_capacity(10);
                put_varint(&mut tmp, t);
                self.w.write_aligned(&tmp);
                self.w.write_aligned(&vbits.to_be_bytes());
                self.min_t = t;
            }
            1 => {
                let delta = match t.checked_sub(self.t) {
                    Some(d) if d > 0 => d,
                    _ => return Err(Error::OutOfBounds { t_ms: t }),
                };
                let mut tmp = Vec::with_capacity(10);
                put_uvarint(&mut tmp, delta as u64);
                self.w.write_aligned(&tmp);
                self.write_value(vbits);
                self.t_delta = delta;
            }
            _ => {
                let delta = match t.checked_sub(self.t) {
                    Some(d) if d > 0 => d,
                    _ => return Err(Error::OutOfBounds { t_ms: t }),
                };
                // Both deltas are positive, so this cannot overflow.
                let dod = delta - self.t_delta;
                if dod == 0 {
                    self.w.write_bit(false);
                } else if bit_range(dod, 14) {
                    self.w.write_bits(0b10 << 14 | (dod as u64 & 0x3fff), 16);
                } else if bit_range(dod, 17) {
                    self.w.write_bits(0b110 << 17 | (dod as u64 & 0x1ffff), 20);
                } else if bit_range(dod, 20) {
                    self.w.write_bits(0b1110 << 20 | (dod as u64 & 0xfffff), 24);
                } else {
                    self.w.write_bits(0b1111, 4);
                    self.w.write_bits(dod as u64, 64);
                }
                self.write_value(vbits);
                self.t_delta = delta;
            }
        }
        self.t = t;
        self.v = vbits;
        // The count goes into the header when the bytes are copied out: not
        // touching the buffer's start (and, most of the time, its end) for
        // every sample saves the head cache misses.
        self.n += 1;
        Ok(())
    }

    #[inline]
    fn write_value(&mut self, vbits: u64) {
        let delta = vbits ^ self.v;
        if delta == 0 {
            self.w.write_bit(false);
            return;
        }
        let mut leading = delta.leading_zeros() as u8;
        let trailing = delta.trailing_zeros() as u8;
        if leading >= 32 {
            leading = 31;
        }
        if self.leading != 0xff && leading >= self.leading && trailing >= self.trailing {
            let sig = 64 - u32::from(self.leading) - u32::from(self.trailing);
            self.w.write_bits(0b10, 2);
            self.w.write_bits(delta >> self.trailing, sig);
            return;
        }
        self.leading = leading;
        self.trailing = trailing;
        let sig = 64 - u32::from(leading) - u32::from(trailing);
        // 6 bits of length: 64 is stored as 0.
        self.w.write_bits(
            0b11 << 11 | u64::from(leading) << 6 | u64::from(sig & 63),
            13,
        );
        self.w.write_bits(delta >> trailing, sig);
    }

    /// Number of samples in the chunk.
    pub fn len(&self) -> usize {
        self.n
    }

    /// True when no sample has been appended.
    pub fn is_empty(&self) -> bool {
        self.n == 0
    }

    /// A complete decodable chunk of the samples so far.
    pub fn to_vec(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.w.copy_to(&mut out);
        put_count(&mut out, self.n);
        out
    }

    /// Length in bytes of [`XorAppender::to_vec`]'s chunk.
    pub fn encoded_len(&self) -> usize {
        self.w.byte_len()
    }

    /// Consumes the appender, returning the chunk.
    pub fn into_vec(self) -> Vec<u8> {
        let n = self.n;
        let mut out = self.w.into_vec();
        put_count(&mut out, n);
        out
    }

    /// Timestamp of the first sample (0 when empty).
    pub fn min_t(&self) -> i64 {
        self.min_t
    }

    /// Timestamp of the last sample (0 when empty).
    pub fn max_t(&self) -> i64 {
        self.t
    }
}

/// Writes the sample count into a chunk's 16-bit header.
fn put_count(chunk: &mut [u8], n: usize) {
    if let [h0, h1, ..] = chunk {
        [*h0, *h1] = (n as u16).to_be_bytes();
    }
}

/// One-shot XOR encoder; `ts` must be strictly increasing and as long as `vs`.
pub fn encode_xor(ts: &[i64], vs: &[f64]) -> Result<Vec<u8>> {
    if ts.len() != vs.len() {
        return Err(Error::corruption(
            FILE,
            0,
            "timestamp and value counts differ",
        ));
    }
    let mut a = XorAppender::new();
    for (&t, &v) in ts.iter().zip(vs) {
        a.append(t, v)?;
    }
    Ok(a.into_vec())
}

/// Sample count of an XOR chunk.
pub fn num_samples_xor(data: &[u8]) -> Result<usize> {
    match data {
        [hi, lo, ..] => Ok(usize::from(u16::from_be_bytes([*hi, *lo]))),
        _ => Err(Error::corruption(
            FILE,
            0,
            "xor chunk shorter than its header",
        )),
    }
}

fn truncated(off: usize) -> Error {
    Error::corruption(FILE, off as u64, "xor chunk truncated")
}

/// Decodes an XOR chunk, appending to `ts`/`vs`. On error nothing is appended.
pub fn decode_xor(data: &[u8], ts: &mut Vec<i64>, vs: &mut Vec<f64>) -> Result<()> {
    let n = num_samples_xor(data)?;
    if n == 0 {
        return Ok(());
    }
    // Every sample after the second takes at least two bits.
    if n > data.len().saturating_mul(4).saturating_add(2) {
        return Err(Error::corruption(
            FILE,
            0,
            "xor sample count larger than the chunk can hold",
        ));
    }
    let (t0_len, vs0) = (ts.len(), vs.len());
    let res = decode_xor_inner(data, n, ts, vs);
    if res.is_err() {
        ts.truncate(t0_len);
        vs.truncate(vs0);
    }
    res
}

fn decode_xor_inner(data: &[u8], n: usize, ts: &mut Vec<i64>, vs: &mut Vec<f64>) -> Result<()> {
    ts.reserve(n);
    vs.reserve(n);
    let mut pos = 2usize;
    let mut t = get_varint(data, &mut pos).ok_or_else(|| truncated(pos))?;
    let v0 = data
        .get(pos..)
        .and_then(|s| s.first_chunk::<8>())
        .ok_or_else(|| truncated(pos))?;
    let mut v = u64::from_be_bytes(*v0);
    pos += 8;
    ts.push(t);
    vs.push(f64::from_bits(v));
    if n == 1 {
        return Ok(());
    }
    let mut delta = get_uvarint(data, &mut pos).ok_or_else(|| truncated(pos))? as i64;
    let rest = data.get(pos..).unwrap_or(&[]);
    let mut r = BitReader::new(rest);
    let err = |r: &BitReader<'_>| truncated(pos + r.byte_offset());
    let mut leading: u32 = 0;
    let mut trailing: u32 = 0;
    for i in 1..n {
        if i > 1 {
            // Delta-of-delta bucket: count leading ones of the next (up to) 4 bits.
            let (bits, avail) = r.peek();
            let ones = (!bits).leading_zeros().min(4);
            let prefix = (ones + 1).min(4);
            if avail < prefix {
                return Err(err(&r));
            }
            r.consume(prefix);
            let dod = match ones {
                0 => 0,
                1..=3 => {
                    let sz = [0u32, 14, 17, 20].get(ones as usize).copied().unwrap_or(20);
                    let raw = r.read_bits(sz).ok_or_else(|| err(&r))? as i64;
                    if raw > 1i64 << (sz - 1) {
                        raw - (1i64 << sz)
                    } else {
                        raw
                    }
                }
                _ => r.read_bits(64).ok_or_else(|| err(&r))? as i64,
            };
            delta = delta.wrapping_add(dod);
        }
        t = t.wrapping_add(delta);
        // Value.
        let (bits, avail) = r.peek();
        if avail == 0 {
            return Err(err(&r));
        }
        if bits >> 63 == 0 {
            r.consume(1);
        } else {
            if avail < 2 {
                return Err(err(&r));
            }
            if bits >> 62 == 0b11 {
                if avail < 13 {
                    return Err(err(&r));
                }
                leading = ((bits >> 57) & 31) as u32;
                let mut sig = ((bits >> 51) & 63) as u32;
                if sig == 0 {
                    sig = 64;
                }
                r.consume(13);
                if leading + sig > 64 {
                    return Err(Error::corruption(
                        FILE,
                        (pos + r.byte_offset()) as u64,
                        "xor value window wider than 64 bits",
                    ));
                }
                trailing = 64 - leading - sig;
            } else {
                r.consume(2);
            }
            let sig = 64 - leading - trailing;
            let x = r.read_bits(sig).ok_or_else(|| err(&r))?;
            v ^= x.checked_shl(trailing).unwrap_or(0);
        }
        ts.push(t);
        vs.push(f64::from_bits(v));
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn round_trip(ts: &[i64], vs: &[f64]) {
        let enc = encode_xor(ts, vs).expect("encode");
        assert_eq!(num_samples_xor(&enc).expect("count"), ts.len());
        let (mut dt, mut dv) = (Vec::new(), Vec::new());
        decode_xor(&enc, &mut dt, &mut dv).expect("decode");
        assert_eq!(dt, ts);
        let a: Vec<u64> = vs.iter().map(|v| v.to_bits()).collect();
        let b: Vec<u64> = dv.iter().map(|v| v.to_bits()).collect();
        assert_eq!(a, b);
    }

    #[test]
    fn simple() {
        round_trip(&[], &[]);
        round_trip(&[5], &[1.5]);
        round_trip(
            &[1000, 16000, 31000, 46001, 61000],
            &[1.0, 1.0, 2.5, f64::NAN, -0.0],
        );
    }

    #[test]
    fn appender_bytes_always_decodable() {
        let mut a = XorAppender::new();
        let mut want_t = Vec::new();
        for i in 0..300i64 {
            let t = i * 15_000 + (i * 7 % 3);
            a.append(t, (i as f64).sin()).expect("append");
            want_t.push(t);
            let (mut dt, mut dv) = (Vec::new(), Vec::new());
            decode_xor(&a.to_vec(), &mut dt, &mut dv).expect("decode");
            assert_eq!(dt, want_t);
            assert_eq!(a.len(), want_t.len());
        }
        assert_eq!(a.min_t(), 0);
        assert_eq!(a.max_t(), 299 * 15_000 + (299 * 7 % 3));
    }

    #[test]
    fn extremes() {
        let mut a = XorAppender::new();
        assert!(matches!(
            a.append(i64::MIN, 1.0),
            Err(Error::OutOfBounds { .. })
        ));
        a.append(i64::MIN + 1, 1.0).expect("first");
        assert!(matches!(
            a.append(i64::MAX - 1, 1.0),
            Err(Error::OutOfBounds { .. })
        ));
        a.append(-1, 2.0).expect("second");
        a.append(i64::MAX - 1, 3.0).expect("third");
        assert_eq!(a.len(), 3);
        let (mut dt, mut dv) = (Vec::new(), Vec::new());
        decode_xor(&a.to_vec(), &mut dt, &mut dv).expect("decode");
        assert_eq!(dt, vec![i64::MIN + 1, -1, i64::MAX - 1]);
        // Not increasing.
        assert!(a.append(i64::MAX - 1, 3.0).is_err());
        assert!(encode_xor(&[2, 1], &[0.0, 0.0]).is_err());
    }
}
