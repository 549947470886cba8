//! Payloads of WAL records (FORMAT.md "Record payloads"). The WAL frames
//! and checksums opaque payloads; this module gives them meaning.
//!
//! Every payload starts with a one-byte type:
//! - `1` series: `count`, then per series `ref`, `nlabels`, (`name`, `value`) strings;
//! - `2` samples: `count`, first sample `ref` (uvarint), `t` (varint), `v` (8 bytes LE
//!   raw IEEE-754 bits), each next one `ref` delta and `t` delta from the first (varints)
//!   and the 8 value bytes;
//! - `3` tombstones: `count`, then `ref`, `min_t`, `max_t` (inclusive interval);
//! - `4` chunks (checkpoints): `count`, then per chunk `ref`, `encoding` (u8),
//!   and the chunk bytes as a length-prefixed string;
//! - `5` compressed: `codec` (u8, 1 = zstd), `raw_len`, then the compressed
//!   bytes of one inner record (never itself compressed).
//!
//! All integers are LEB128 varints unless said otherwise. Values keep their
//! exact bits, so staleness markers and NaN payloads survive replay.

use crate::encoding::{put_bytes, put_uvarint, put_varint, Decbuf};
use crate::error::Result;
use crate::labels::{Label, Labels};
use std::sync::Arc;

/// Record type byte of a series record.
pub const TYPE_SERIES: u8 = 1;
/// Record type byte of a samples record.
pub const TYPE_SAMPLES: u8 = 2;
/// Record type byte of a tombstones record.
pub const TYPE_TOMBSTONES: u8 = 3;
/// Record type byte of a chunks record (checkpoints).
pub const TYPE_CHUNKS: u8 = 4;
/// Record type byte of a compressed record.
pub const TYPE_COMPRESSED: u8 = 5;
/// Codec byte of a zstd-compressed record.
pub const CODEC_ZSTD: u8 = 1;
/// Smaller records are never compressed. Sample records are mostly float
/// bits that zstd shrinks by a third at best, and for the small batches of a
/// scrape (a few KiB) a compression costs a cold context's cache misses,
/// measured at ~7% of the whole scrape path; pushed batches are larger.
pub const COMPRESS_MIN_LEN: usize = 16 << 10;
/// Largest inner record a compressed record may declare (bounds the allocation before decompressing).
pub const MAX_RECORD_LEN: usize = 1 << 30;

/// A series definition: the WAL-local reference and its labels.
#[derive(Debug, Clone, PartialEq)]
pub struct SeriesRecord {
    /// Series reference used by later sample records.
    pub sref: u64,
    /// The series' labels.
    pub labels: Labels,
}

/// One sample of a samples record.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RefSample {
    /// Series reference.
    pub sref: u64,
    /// Timestamp in ms.
    pub t: i64,
    /// Value (exact bits).
    pub v: f64,
}

/// A deletion: samples of `sref` in `[min_t, max_t]` are gone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tombstone {
    /// Series reference.
    pub sref: u64,
    /// First deleted timestamp.
    pub min_t: i64,
    /// Last deleted timestamp (inclusive).
    pub max_t: i64,
}

/// A decoded record.
#[derive(Debug, Clone, PartialEq)]
pub enum Record {
    /// Series definitions.
    Series(Vec<SeriesRecord>),
    /// Samples.
    Samples(Vec<RefSample>),
    /// Deletions.
    Tombstones(Vec<Tombstone>),
    /// Head chunks (checkpoints).
    Chunks(Vec<RefChunk>),
}

/// Appends a series record for `series` to `buf`.
pub fn encode_series<'a>(
    buf: &mut Vec<u8>,
    series: impl ExactSizeIterator<Item = (u64, &'a Labels)>,
) {
    buf.push(TYPE_SERIES);
    put_uvarint(buf, series.len() as u64);
    for (sref, labels) in series {
        put_uvarint(buf, sref);
        put_uvarint(buf, labels.len() as u64);
        for l in labels.iter() {
            put_bytes(buf, l.name.as_bytes());
            put_bytes(buf, l.value.as_bytes());
        }
    }
}

/// Appends a samples record to `buf`.
pub fn encode_samples(buf: &mut Vec<u8>, samples: &[RefSample]) {
    buf.push(TYPE_SAMPLES);
    put_uvarint(buf, samples.len() as u64);
    let Some(first) = samples.first() else { return };
    for (i, s) in samples.iter().enumerate() {
        if i == 0 {
            put_uvarint(buf, s.sref);
            put_varint(buf, s.t);
        } else {
            put_varint(buf, s.sref.wrapping_sub(first.sref) as i64);
            put_varint(buf, s.t.wrapping_sub(first.t));
        }
        buf.extend_from_slice(&s.v.to_bits().to_le_bytes());
    }
}

/// Appends a tombstones record to `buf`.
pub fn encode_tombstones(buf: &mut Vec<u8>, ts: &[Tombstone]) {
    buf.push(TYPE_TOMBSTONES);
    put_uvarint(buf, ts.len() as u64);
    for t in ts {
        put_uvarint(buf, t.sref);
        put_varint(buf, t.min_t);
        put_varint(buf, t.max_t);
    }
}

/// A head chunk carried by a checkpoint.
#[derive(Debug, Clone, PartialEq)]
pub struct RefChunk {
    /// Series reference.
    pub sref: u64,
    /// Chunk encoding byte.
    pub encoding: u8,
    /// Encoded chunk.
    pub data: Vec<u8>,
}

/// Appends a chunks record.
pub fn encode_chunks<'a>(
    buf: &mut Vec<u8>,
    chunks: impl ExactSizeIterator<Item = (u64, u8, &'a [u8])>,
) {
    buf.push(TYPE_CHUNKS);
    put_uvarint(buf, chunks.len() as u64);
    for (sref, enc, data) in chunks {
        put_uvarint(buf, sref);
        buf.push(enc);
        put_bytes(buf, data);
    }
}

/// zstd's fast mode: about half the CPU of level 1 on sample records (which
/// are mostly incompressible float bits) for a few percent more bytes.
const ZSTD_LEVEL: i32 = -3;

/// Compresses `payload` into a compressed record when that pays; otherwise returns `None`.
pub fn compress(payload: &[u8]) -> Option<Vec<u8>> {
    if payload.len() < COMPRESS_MIN_LEN {
        return None;
    }
    thread_local! {
        // A zstd context per thread: creating one per record showed in profiles.
        static COMPRESSOR: std::cell::RefCell<Option<zstd::bulk::Compressor<'static>>> = const { std::cell::RefCell::new(None) };
    }
    let z = COMPRESSOR.with(|c| {
        let mut c = c.try_borrow_mut().ok()?;
        if c.is_none() {
            *c = zstd::bulk::Compressor::new(ZSTD_LEVEL).ok();
        }
        c.as_mut()?.compress(payload).ok()
    })?;
    if z.len() + 12 >= payload.len() {
        return None;
    }
    let mut out = Vec::with_capacity(z.len() + 12);
    out.push(TYPE_COMPRESSED);
    out.push(CODEC_ZSTD);
    put_uvarint(&mut out, payload.len() as u64);
    out.extend_from_slice(&z);
    Some(out)
}

/// If `payload` is a compressed record, its decompressed inner record (into `scratch`); else `payload`.
pub fn decompress<'a>(payload: &'a [u8], scratch: &'a mut Vec<u8>) -> Result<&'a [u8]> {
    if payload.first() != Some(&TYPE_COMPRESSED) {
        return Ok(payload);
    }
    let mut d = Decbuf::new(payload, "wal record", 0);
    d.u8()?;
    let codec = d.u8()?;
    if codec != CODEC_ZSTD {
        return Err(d.err(format!("unknown compression codec {codec}")));
    }
    // Our records compress at most a few times over; the bound keeps a forged
    // length from making us allocate more than a small multiple of the input.
    let limit = (payload.len() as u64)
        .saturating_mul(64)
        .saturating_add(4096)
        .min(MAX_RECORD_LEN as u64);
    let raw_len = d.uvarint_max(limit)?;
    let body = d.bytes(d.remaining())?;
    *scratch = zstd::bulk::decompress(body, raw_len)
        .map_err(|e| d.err(format!("decompress record: {e}")))?;
    if scratch.len() != raw_len {
        return Err(d.err(format!(
            "decompressed {} bytes, record declares {raw_len}",
            scratch.len()
        )));
    }
    if scratch.first() == Some(&TYPE_COMPRESSED) {
        return Err(d.err("nested compressed record"));
    }
    Ok(scratch)
}

/// Decodes a samples record straight into a callback (the replay hot path: no allocation).
pub fn for_each_sample(d: &mut Decbuf<'_>, mut f: impl FnMut(RefSample)) -> Result<()> {
    // Every sample takes at least 10 bytes, which bounds the claimed count.
    let n = d.uvarint_max(d.remaining() as u64 / 10)?;
    let mut first = RefSample {
        sref: 0,
        t: 0,
        v: 0.0,
    };
    for i in 0..n {
        let s = if i == 0 {
            let sref = d.uvarint()?;
            let t = d.varint()?;
            RefSample { sref, t, v: 0.0 }
        } else {
            let dr = d.varint()?;
            let dt = d.varint()?;
            RefSample {
                sref: first.sref.wrapping_add(dr as u64),
                t: first.t.wrapping_add(dt),
                v: 0.0,
            }
        };
        let v = f64::from_bits(d.le_u64()?);
        let s = RefSample { v, ..s };
        if i == 0 {
            first = s;
        }
        f(s);
    }
    Ok(())
}

/// Decodes any record (decompressing a compressed one).
pub fn decode(payload: &[u8]) -> Result<Record> {
    let mut scratch = Vec::new();
    let payload = decompress(payload, &mut scratch)?;
    let mut d = Decbuf::new(payload, "wal record", 0);
    match d.u8()? {
        TYPE_SERIES => {
            let n = d.uvarint_max(d.remaining() as u64 / 2)?;
            let mut out = Vec::with_capacity(n);
            for _ in 0..n {
                let sref = d.uvarint()?;
                let nl = d.uvarint_max(d.remaining() as u64 / 2)?;
                let mut v = Vec::with_capacity(nl);
                for _ in 0..nl {
                    let name = d.str()?;
                    let value = d.str()?;
                    v.push(Label {
                        name: Arc::from(name),
                        value: Arc::from(value),
                    });
                }
                let labels = Labels::from_vec(v).map_err(|e| d.err(e.to_string()))?;
                out.push(SeriesRecord { sref, labels });
            }
            Ok(Record::Series(out))
        }
        TYPE_SAMPLES => {
            let mut out = Vec::new();
            for_each_sample(&mut d, |s| out.push(s))?;
            Ok(Record::Samples(out))
        }
        TYPE_TOMBSTONES => {
            let n = d.uvarint_max(d.remaining() as u64 / 3)?;
            let mut out = Vec::with_capacity(n);
            for _ in 0..n {
                out.push(Tombstone {
                    sref: d.uvarint()?,
                    min_t: d.varint()?,
                    max_t: d.varint()?,
                });
            }
            Ok(Record::Tombstones(out))
        }
        TYPE_CHUNKS => {
            let n = d.uvarint_max(d.remaining() as u64 / 3)?;
            let mut out = Vec::with_capacity(n);
            for _ in 0..n {
                let sref = d.uvarint()?;
                let encoding = d.u8()?;
                let data = d.len_bytes()?.to_vec();
                out.push(RefChunk {
                    sref,
                    encoding,
                    data,
                });
            }
            Ok(Record::Chunks(out))
        }
        t => Err(d.err(format!("unknown record type {t}"))),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn samples_round_trip(s in proptest::collection::vec((any::<u64>(), any::<i64>(), any::<u64>()), 0..50)) {
            let samples: Vec<RefSample> = s.iter().map(|&(r, t, v)| RefSample { sref: r, t, v: f64::from_bits(v) }).collect();
            let mut buf = Vec::new();
            encode_samples(&mut buf, &samples);
            let Record::Samples(got) = decode(&buf).unwrap() else { panic!("wrong type") };
            prop_assert_eq!(got.len(), samples.len());
            for (a, b) in got.iter().zip(&samples) {
                prop_assert_eq!((a.sref, a.t, a.v.to_bits()), (b.sref, b.t, b.v.to_bits()));
            }
        }

        #[test]
        fn arbitrary_bytes_never_panic(b in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = decode(&b);
        }
    }

    #[test]
    fn compressed_records_round_trip_and_bad_ones_fail() {
        let samples: Vec<RefSample> = (0..2000)
            .map(|i| RefSample {
                sref: i % 7,
                t: 1000 + i as i64,
                v: (i % 13) as f64,
            })
            .collect();
        let mut buf = Vec::new();
        encode_samples(&mut buf, &samples);
        let z = compress(&buf).expect("compresses");
        assert!(z.len() < buf.len() / 2, "{} vs {}", z.len(), buf.len());
        let Record::Samples(got) = decode(&z).unwrap() else {
            panic!("wrong type")
        };
        assert_eq!(got, samples);
        let mut bad = z.clone();
        let last = bad.len() - 1;
        bad[last] ^= 0xff;
        assert!(decode(&bad).is_err());
        assert!(
            decode(&[TYPE_COMPRESSED, CODEC_ZSTD, 0xff, 0xff, 0xff, 0xff, 0x0f]).is_err(),
            "huge declared length refused"
        );
        let mut nested = vec![TYPE_COMPRESSED, CODEC_ZSTD];
        let inner = [TYPE_COMPRESSED; 600];
        let zi = zstd::bulk::compress(&inner, 1).unwrap();
        put_uvarint(&mut nested, inner.len() as u64);
        nested.extend_from_slice(&zi);
        assert!(decode(&nested).is_err());
    }

    #[test]
    fn series_and_tombstones_round_trip() {
        let l = Labels::new([("__name__", "up"), ("http.status", "200")]).unwrap();
        let mut buf = Vec::new();
        encode_series(&mut buf, [(7u64, &l)].into_iter());
        assert_eq!(
            decode(&buf).unwrap(),
            Record::Series(vec![SeriesRecord { sref: 7, labels: l }])
        );
        let ts = vec![Tombstone {
            sref: 1,
            min_t: -5,
            max_t: 10,
        }];
        buf.clear();
        encode_tombstones(&mut buf, &ts);
        assert_eq!(decode(&buf).unwrap(), Record::Tombstones(ts));
    }
}
