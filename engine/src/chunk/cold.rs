//! Cold chunks: the compact encoding for immutable on-disk blocks.
//!
//! ```text
//! chunk  := uvarint(n) [flags:u8 payload]          (nothing follows when n == 0)
//! flags  := bit 0 set: payload = uvarint(raw_len) zstd_frame(body)
//!           bit 0 clear: payload = body            (other bits must be zero)
//! body   := ts_col val_col
//! ts_col := 0 varint(t0) [uvarint(delta)]          regular: t_i = t0 + i*delta
//!         | 1 varint(t0) [uvarint(d1) varint(dod)*(n-2)]
//! val_col:= 0 u64le(bits)                          every value has these bits
//!         | 1 scale:u8 kind:u8 uvarint(n_exc) (uvarint(index_gap) u64le(bits))*n_exc
//!             varint(m0) [varint(m1-m0) stream(n-2)]
//!                 value_i = m_i / 10^scale; exception entries replace the
//!                 value at their index with raw bits.
//!                 kind bit 0: stream holds deltas-of-deltas (else deltas);
//!                 bit 2: elements are stored as u64 (all >= 0), else zigzag;
//!                 bit 3: a uvarint gcd follows the exceptions and every
//!                 element is multiplied by it;
//!                 bit 1: stream = width:u8 then `width` byte planes (least
//!                 significant first), else one uvarint per element
//!         | 2 8*n bytes: x_i = bits_i ^ bits_{i-1}, stored as 8 byte planes,
//!             most significant byte plane first
//!         | 3 scale:u8 uvarint(n_exc) (uvarint(index_gap) u64le(bits))*n_exc seq
//!                 value_i = m_i / 10^scale (m = the sequence), exceptions as in 1
//!         | 4 seq                                   value_i = f64::from_bits(m_i)
//! seq    := pred:u8 varint(m0) [varint(m1-m0)] [elems(n-2)]
//!             elems gives residuals x_i (i >= 2); with d_i = m_i - m_{i-1}
//!             (all arithmetic wrapping i64) the low nibble of pred selects:
//!             0: m_i = m_{i-1} + x_i
//!             1: d_i = d_{i-1} + x_i
//!             2: d_i = floor(mean(last h deltas)) + x_i, h = min(i-1, K)
//!             3: m_i = floor(mean(last h values)) + x_i, h = min(i, K)
//!             K = 2^(pred >> 4) <= 16; means are exact (i128 sums).
//! elems  := flags:u8 [bitmap] [uvarint(g)] varint(base) (k:u8 w:u8 planes lo | uvarints)
//!             (nothing after the flags/bitmap when no element is stored)
//!             flags bit 0: a bitmap of ceil(c0/8) bytes (bit i%8 of byte i/8,
//!             LSB first) marks the nonzero elements; only those are stored,
//!             the others are 0. bit 1: g present (else g = 1). bit 2: each
//!             stored u is a uvarint (else the planes form).
//!             element = base + u*g; u = (hi << k) | lo, hi is stored as w byte
//!             planes (least significant first, one byte per element each)
//!             and lo as k-bit fields packed LSB first (ceil(c*k/8) bytes).
//! ```
//!
//! The encoder (modes 3, 4 and 0; modes 1 and 2 are only decoded, for chunks
//! written by older versions) estimates the compressed size of each predictor
//! and layout from byte histograms (order-0 entropy + huffman table cost) and
//! builds and compresses only the cheapest. Decimal mantissas try predictors
//! 0, 1, 2 (K=8) and 3 (K=4); float bits (full-precision gauges: the residual
//! of the mean of the last 4..16 bit patterns is about the noise width in
//! ulps) try 0 and 3 (K=4, 8, 16). `base` is the minimum element, so
//! counters store `increment - min increment`; `k` is chosen so that the
//! high part is about one byte of skewed symbols that huffman codes well and
//! the (nearly uniform) low bits are stored raw. zstd compresses the body
//! as one frame, ending a block at each section (timestamps, bitmap, each
//! plane, low bits) so each gets its own huffman table.
//!
//! The encoder only picks the decimal form for a value after checking that the
//! decoder's formula gives back the exact same bits, so every float (NaN
//! payloads including Prometheus' staleness marker, ±Inf, -0.0, subnormals)
//! round-trips bit for bit. The zstd-compressed form is used only when it is
//! smaller; the decoded size is recorded and bounded by the sample count before
//! anything is decompressed.

use std::cell::RefCell;

use super::bits::{
    get_uvarint, get_varint, put_uvarint, put_varint, unzigzag, uvarint_len, zigzag,
};
use super::xor::check_t;
use crate::error::{Error, Result};

/// Most samples a cold chunk may hold (bounds the decoder's allocations).
pub const MAX_COLD_SAMPLES: usize = 1 << 17;

/// zstd level used for cold chunks. The columns are already decorrelated, so
/// zstd mostly entropy-codes byte planes: level 1 is within 1% of level 19 in
/// size and several times faster (levels 2..9 are larger than level 1 here).
pub const ZSTD_LEVEL: i32 = 1;

const FILE: &str = "chunk";
const FLAG_ZSTD: u8 = 1;
const TS_REGULAR: u8 = 0;
const TS_DOD: u8 = 1;
const VAL_CONST: u8 = 0;
const VAL_DECIMAL: u8 = 1;
const VAL_PLANES: u8 = 2;
const VAL_DEC_SEQ: u8 = 3;
const VAL_BITS_SEQ: u8 = 4;
const KIND_DOD: u8 = 1;
const KIND_PLANES: u8 = 2;
const KIND_UNSIGNED: u8 = 4;
const KIND_GCD: u8 = 8;
/// Largest decimal scale tried.
const MAX_SCALE: usize = 15;
/// Mantissas stay within the exactly representable integer range of f64.
const MAX_MANTISSA: f64 = 9_007_199_254_740_992.0; // 2^53

const POW10: [f64; MAX_SCALE + 1] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
];

/// Upper bound of the decoded body size for `n` samples.
fn max_raw_len(n: usize) -> usize {
    // ts: 10 bytes/sample; values: at most 10 (varint) + 18 (exception) bytes/sample.
    64 + n.saturating_mul(40)
}

fn corrupt(off: usize, reason: &str) -> Error {
    Error::corruption(FILE, off as u64, reason)
}

/// The decoder's formula for decimal values.
#[inline(always)]
fn dec_value(m: i64, scale: usize) -> f64 {
    match scale {
        0 => m as f64,
        s => (m as f64) / POW10.get(s).copied().unwrap_or(1.0),
    }
}

/// The mantissa for `v` at `scale` if the decoder gives back exactly `v`.
#[inline]
fn mantissa_at(v: f64, scale: usize) -> Option<i64> {
    let p = POW10.get(scale).copied()?;
    let m = (v * p).round();
    if m.is_nan() || m.abs() > MAX_MANTISSA {
        return None;
    }
    let m = m as i64;
    (dec_value(m, scale).to_bits() == v.to_bits()).then_some(m)
}

/// Smallest scale at which `v` is representable.
fn min_scale(v: f64) -> Option<usize> {
    if !v.is_finite() {
        return None;
    }
    (0..=MAX_SCALE).find(|&s| mantissa_at(v, s).is_some())
}

thread_local! {
    static ZSTD_D: RefCell<Option<zstd::bulk::Decompressor<'static>>> = const { RefCell::new(None) };
    static SCRATCH: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

thread_local! {
    static ZSTD_CS: RefCell<Option<zstd::zstd_safe::CCtx<'static>>> = const { RefCell::new(None) };
}

/// Compresses `raw` as one zstd frame, ending a block at each offset of
/// `splits` so that each section (timestamps, byte planes) gets its own
/// entropy tables.
fn zstd_compress_split(raw: &[u8], splits: &[usize], level: i32) -> Option<Vec<u8>> {
    use zstd::zstd_safe::{
        zstd_sys::ZSTD_EndDirective, CCtx, CParameter, InBuffer, OutBuffer, ResetDirective,
    };
    ZSTD_CS.with(|c| {
        let mut c = c.try_borrow_mut().ok()?;
        let cctx = c.get_or_insert_with(CCtx::create);
        cctx.reset(ResetDirective::SessionOnly).ok()?;
        cctx.set_parameter(CParameter::CompressionLevel(level))
            .ok()?;
        cctx.set_pledged_src_size(Some(raw.len() as u64)).ok()?;
        let mut out: Vec<u8> = Vec::with_capacity(
            zstd::zstd_safe::compress_bound(raw.len()) + 16 * (splits.len() + 2),
        );
        let mut start = 0usize;
        let ends = splits
            .iter()
            .copied()
            .filter(|&e| e > 0 && e < raw.len())
            .chain(std::iter::once(raw.len()));
        for end in ends {
            let last = end == raw.len();
            let seg = raw.get(start..end)?;
            let mut input = InBuffer::around(seg);
            let pos = out.len();
            let mut output = OutBuffer::around_pos(&mut out, pos);
            let op = if last {
                ZSTD_EndDirective::ZSTD_e_end
            } else {
                ZSTD_EndDirective::ZSTD_e_flush
            };
            let mut done = false;
            for _ in 0..16 {
                let rem = cctx.compress_stream2(&mut output, &mut input, op).ok()?;
                if rem == 0 && input.pos() == seg.len() {
                    done = true;
                    break;
                }
            }
            if !done {
                return None;
            }
            start = end;
        }
        Some(out)
    })
}

/// Encodes a cold chunk; `ts` must be strictly increasing and as long as `vs`.
pub fn encode_cold(ts: &[i64], vs: &[f64]) -> Result<Vec<u8>> {
    encode_cold_level(ts, vs, ZSTD_LEVEL)
}

/// zstd level for data that is rewritten rarely (merged blocks): about 0.6 %
/// smaller than [`ZSTD_LEVEL`] at half the encoding speed.
pub const ZSTD_LEVEL_COLDEST: i32 = 19;

/// [`encode_cold`] with an explicit zstd level (the format is the same).
pub fn encode_cold_level(ts: &[i64], vs: &[f64], level: i32) -> Result<Vec<u8>> {
    if ts.len() != vs.len() {
        return Err(corrupt(0, "timestamp and value counts differ"));
    }
    let n = ts.len();
    if n > MAX_COLD_SAMPLES {
        return Err(Error::LimitExceeded {
            what: "cold chunk samples",
            limit: MAX_COLD_SAMPLES as u64,
        });
    }
    let mut out = Vec::new();
    put_uvarint(&mut out, n as u64);
    if n == 0 {
        return Ok(out);
    }
    let mut ts_col = Vec::new();
    encode_ts(ts, &mut ts_col)?;

    let (val_col, splits) = value_column(vs);
    let mut body = Vec::with_capacity(ts_col.len() + val_col.len());
    body.extend_from_slice(&ts_col);
    body.extend_from_slice(&val_col);
    if body.len() >= 24 {
        let splits: Vec<usize> = std::iter::once(ts_col.len())
            .chain(splits.iter().map(|&s| s + ts_col.len()))
            .collect();
        if let Some(z) = zstd_compress_split(&body, &splits, level) {
            if z.len() + uvarint_len(body.len() as u64) < body.len() {
                out.push(FLAG_ZSTD);
                put_uvarint(&mut out, body.len() as u64);
                out.extend_from_slice(&z);
                return Ok(out);
            }
        }
    }
    out.push(0);
    out.extend_from_slice(&body);
    Ok(out)
}

fn encode_ts(ts: &[i64], out: &mut Vec<u8>) -> Result<()> {
    let Some((&t0, rest)) = ts.split_first() else {
        return Ok(());
    };
    check_t(t0)?;
    let mut deltas = Vec::with_capacity(rest.len());
    let mut prev = t0;
    for &t in rest {
        check_t(t)?;
        match t.checked_sub(prev) {
            Some(d) if d > 0 => deltas.push(d),
            _ => return Err(Error::OutOfBounds { t_ms: t }),
        }
        prev = t;
    }
    let regular = deltas.windows(2).all(|w| matches!(w, [a, b] if a == b));
    if regular {
        out.push(TS_REGULAR);
        put_varint(out, t0);
        if let Some(&d) = deltas.first() {
            put_uvarint(out, d as u64);
        }
    } else {
        out.push(TS_DOD);
        put_varint(out, t0);
        let mut pd = 0i64;
        for (i, &d) in deltas.iter().enumerate() {
            if i == 0 {
                put_uvarint(out, d as u64);
            } else {
                // Both positive: no overflow.
                put_varint(out, d - pd);
            }
            pd = d;
        }
    }
    Ok(())
}

/// A value column and the offsets in it where a zstd block should end.
type Column = (Vec<u8>, Vec<usize>);

/// Predictors tried for decimal mantissas and for raw float bits.
const DEC_PREDS: [u8; 4] = [
    PRED_PREV,
    PRED_DOD,
    PRED_DMEAN | (3 << 4),
    PRED_MEAN | (2 << 4),
];
const BITS_PREDS: [u8; 4] = [
    PRED_PREV,
    PRED_MEAN | (2 << 4),
    PRED_MEAN | (3 << 4),
    PRED_MEAN | (4 << 4),
];

/// The value column with the smallest estimated compressed size.
fn value_column(vs: &[f64]) -> Column {
    let Some(first) = vs.first() else {
        return (vec![], vec![]);
    };
    let b0 = first.to_bits();
    if vs.iter().all(|v| v.to_bits() == b0) {
        let mut c = vec![VAL_CONST];
        c.extend_from_slice(&b0.to_le_bytes());
        return (c, vec![]);
    }
    let mut best: Option<(f64, Column)> = None;
    let dec = decimal_mantissas(vs);
    let want_bits = match &dec {
        None => true,
        Some((scale, _, exc)) => *scale >= 6 || !exc.is_empty(),
    };
    if let Some((scale, ms, exc)) = dec {
        let mut col = Vec::with_capacity(vs.len() * 2 + 16);
        let mut splits = Vec::new();
        col.push(VAL_DEC_SEQ);
        col.push(scale as u8);
        put_uvarint(&mut col, exc.len() as u64);
        let mut last = 0usize;
        for &(i, bits) in &exc {
            put_uvarint(&mut col, (i - last) as u64);
            col.extend_from_slice(&bits.to_le_bytes());
            last = i;
        }
        let est = put_seq(&mut col, &mut splits, &ms, &DEC_PREDS);
        best = Some((est + 10.0 * exc.len() as f64, (col, splits)));
    }
    if want_bits {
        let bits: Vec<i64> = vs.iter().map(|v| v.to_bits() as i64).collect();
        let mut col = Vec::with_capacity(vs.len() * 8 + 16);
        let mut splits = Vec::new();
        col.push(VAL_BITS_SEQ);
        let est = put_seq(&mut col, &mut splits, &bits, &BITS_PREDS);
        if best.as_ref().is_none_or(|b| est < b.0) {
            best = Some((est, (col, splits)));
        }
    }
    best.map(|b| b.1).unwrap_or_default()
}

/// Decimal scale, mantissas and exceptions of `vs`, or `None` when too many
/// values are not decimal.
#[allow(clippy::type_complexity)]
fn decimal_mantissas(vs: &[f64]) -> Option<(usize, Vec<i64>, Vec<(usize, u64)>)> {
    let n = vs.len();
    // Histogram of the smallest scale of each value; index MAX_SCALE+1 = none.
    let mut hist = [0usize; MAX_SCALE + 2];
    let mut last_scale = 0usize;
    for &v in vs {
        // Fast path: most values share the previous value's scale, and a value
        // representable at a smaller scale is representable at a larger one.
        let s = if last_scale == 0 || mantissa_at(v, last_scale).is_none() {
            min_scale(v)
        } else {
            (0..last_scale)
                .find(|&s| mantissa_at(v, s).is_some())
                .or(Some(last_scale))
        };
        match s {
            Some(s) => {
                last_scale = s;
                if let Some(h) = hist.get_mut(s) {
                    *h += 1;
                }
            }
            None => {
                if let Some(h) = hist.last_mut() {
                    *h += 1;
                }
            }
        }
        if hist.last().is_some_and(|&h| h > n / 4) {
            return None;
        }
    }
    // Pick the scale minimizing a rough cost: ~10 bytes per exception and
    // ~0.42 bytes per extra decimal digit per value.
    let mut best_scale = 0usize;
    let mut best_cost = f64::INFINITY;
    let mut cum = 0usize;
    for (s, &h) in hist.iter().take(MAX_SCALE + 1).enumerate() {
        cum += h;
        let exc = n - cum;
        let cost = exc as f64 * 10.0 + n as f64 * s as f64 * 0.42;
        if cost < best_cost {
            best_cost = cost;
            best_scale = s;
        }
    }
    let mut ms = Vec::with_capacity(n);
    let mut exc: Vec<(usize, u64)> = Vec::new();
    let mut prev_m = 0i64;
    for (i, &v) in vs.iter().enumerate() {
        match mantissa_at(v, best_scale) {
            Some(m) => {
                ms.push(m);
                prev_m = m;
            }
            None => {
                exc.push((i, v.to_bits()));
                ms.push(prev_m);
                if exc.len() > n / 4 {
                    return None;
                }
            }
        }
    }
    Some((best_scale, ms, exc))
}

/// Sample count of a cold chunk.
pub fn num_samples_cold(data: &[u8]) -> Result<usize> {
    let mut pos = 0;
    let n = get_uvarint(data, &mut pos).ok_or_else(|| corrupt(0, "cold chunk header truncated"))?;
    if n > MAX_COLD_SAMPLES as u64 {
        return Err(corrupt(0, "cold chunk sample count too large"));
    }
    Ok(n as usize)
}

/// Decodes a cold chunk, appending to `ts`/`vs`. On error nothing is appended.
pub fn decode_cold(data: &[u8], ts: &mut Vec<i64>, vs: &mut Vec<f64>) -> Result<()> {
    let n = num_samples_cold(data)?;
    let mut pos = 0;
    let _ = get_uvarint(data, &mut pos);
    if n == 0 {
        return if pos == data.len() {
            Ok(())
        } else {
            Err(corrupt(pos, "bytes after empty cold chunk"))
        };
    }
    let &flags = data
        .get(pos)
        .ok_or_else(|| corrupt(pos, "cold chunk flags missing"))?;
    pos += 1;
    let (t_len, v_len) = (ts.len(), vs.len());
    let res = match flags {
        0 => decode_body(data.get(pos..).unwrap_or(&[]), pos, n, ts, vs),
        FLAG_ZSTD => {
            let raw_len = get_uvarint(data, &mut pos)
                .ok_or_else(|| corrupt(pos, "cold raw length truncated"))?;
            if raw_len > max_raw_len(n) as u64 {
                return Err(corrupt(
                    pos,
                    "cold chunk decoded size too large for its sample count",
                ));
            }
            let raw_len = raw_len as usize;
            let src = data.get(pos..).unwrap_or(&[]);
            SCRATCH.with(|s| match s.try_borrow_mut() {
                Ok(mut buf) => decompress_and_decode(src, raw_len, pos, n, &mut buf, ts, vs),
                Err(_) => decompress_and_decode(src, raw_len, pos, n, &mut Vec::new(), ts, vs),
            })
        }
        _ => Err(corrupt(pos - 1, "unknown cold chunk flags")),
    };
    if res.is_err() {
        ts.truncate(t_len);
        vs.truncate(v_len);
    }
    res
}

fn decompress_and_decode(
    src: &[u8],
    raw_len: usize,
    off: usize,
    n: usize,
    buf: &mut Vec<u8>,
    ts: &mut Vec<i64>,
    vs: &mut Vec<f64>,
) -> Result<()> {
    buf.clear();
    buf.reserve_exact(raw_len);
    let got = ZSTD_D.with(|d| {
        let mut d = d.try_borrow_mut().ok()?;
        if d.is_none() {
            *d = zstd::bulk::Decompressor::new().ok();
        }
        d.as_mut()?.decompress_to_buffer(src, buf).ok()
    });
    match got {
        Some(len) if len == raw_len && buf.len() == raw_len => decode_body(buf, off, n, ts, vs),
        _ => Err(corrupt(
            off,
            "cold chunk zstd payload invalid or of the wrong size",
        )),
    }
}

/// Decodes the (uncompressed) body; `off` is its offset in the chunk for errors.
fn decode_body(
    body: &[u8],
    off: usize,
    n: usize,
    ts: &mut Vec<i64>,
    vs: &mut Vec<f64>,
) -> Result<()> {
    let mut pos = 0usize;
    let err = |pos: usize, what: &str| corrupt(off + pos, what);
    ts.reserve(n);
    vs.reserve(n);
    // Timestamps.
    let &ts_mode = body
        .first()
        .ok_or_else(|| err(0, "cold timestamp column missing"))?;
    pos += 1;
    let t0 = get_varint(body, &mut pos).ok_or_else(|| err(pos, "cold t0 truncated"))?;
    match ts_mode {
        TS_REGULAR => {
            let d = if n > 1 {
                get_uvarint(body, &mut pos).ok_or_else(|| err(pos, "cold delta truncated"))? as i64
            } else {
                0
            };
            let mut t = t0;
            ts.extend((0..n).map(|_| {
                let cur = t;
                t = t.wrapping_add(d);
                cur
            }));
        }
        TS_DOD => {
            ts.push(t0);
            if n > 1 {
                let mut d = get_uvarint(body, &mut pos)
                    .ok_or_else(|| err(pos, "cold delta truncated"))?
                    as i64;
                let mut t = t0.wrapping_add(d);
                ts.push(t);
                for _ in 2..n {
                    let dod = get_varint(body, &mut pos)
                        .ok_or_else(|| err(pos, "cold timestamps truncated"))?;
                    d = d.wrapping_add(dod);
                    t = t.wrapping_add(d);
                    ts.push(t);
                }
            }
        }
        _ => return Err(err(0, "unknown cold timestamp mode")),
    }
    // Values.
    let &val_mode = body
        .get(pos)
        .ok_or_else(|| err(pos, "cold value column missing"))?;
    pos += 1;
    match val_mode {
        VAL_CONST => {
            let b = body
                .get(pos..)
                .and_then(|s| s.first_chunk::<8>())
                .ok_or_else(|| err(pos, "cold constant truncated"))?;
            pos += 8;
            vs.extend(std::iter::repeat_n(
                f64::from_bits(u64::from_le_bytes(*b)),
                n,
            ));
        }
        VAL_DECIMAL => pos = decode_decimal(body, pos, n, vs).map_err(|(p, what)| err(p, what))?,
        VAL_DEC_SEQ => pos = decode_dec_seq(body, pos, n, vs).map_err(|(p, what)| err(p, what))?,
        VAL_BITS_SEQ => {
            pos = get_seq(body, pos, n, |m| vs.push(f64::from_bits(m as u64)))
                .map_err(|(p, what)| err(p, what))?
        }
        VAL_PLANES => {
            let len = n * 8;
            let planes = body
                .get(pos..pos + len)
                .ok_or_else(|| err(pos, "cold value planes truncated"))?;
            pos += len;
            let start = vs.len();
            vs.resize(start + n, 0.0);
            let mut xs = vec![0u64; n];
            for (p, plane) in planes.chunks_exact(n).enumerate() {
                let shift = 56 - 8 * p as u32;
                for (x, &b) in xs.iter_mut().zip(plane) {
                    *x |= u64::from(b) << shift;
                }
            }
            let mut prev = 0u64;
            for (o, x) in vs.get_mut(start..).unwrap_or(&mut []).iter_mut().zip(&xs) {
                prev ^= x;
                *o = f64::from_bits(prev);
            }
        }
        _ => return Err(err(pos - 1, "unknown cold value mode")),
    }
    if pos != body.len() {
        return Err(err(pos, "trailing bytes in cold chunk"));
    }
    Ok(())
}

type DecErr = (usize, &'static str);

fn decode_decimal(
    body: &[u8],
    mut pos: usize,
    n: usize,
    vs: &mut Vec<f64>,
) -> std::result::Result<usize, DecErr> {
    let (&scale, &kind) = match body.get(pos..pos + 2) {
        Some([s, k]) => (s, k),
        _ => return Err((pos, "cold decimal header truncated")),
    };
    pos += 2;
    let scale = scale as usize;
    if scale > MAX_SCALE {
        return Err((pos - 2, "cold decimal scale out of range"));
    }
    if kind & !(KIND_DOD | KIND_PLANES | KIND_UNSIGNED | KIND_GCD) != 0 {
        return Err((pos - 1, "unknown cold mantissa kind"));
    }
    let n_exc = get_uvarint(body, &mut pos).ok_or((pos, "cold exception count truncated"))?;
    if n_exc > n as u64 {
        return Err((pos, "more exceptions than samples"));
    }
    let exc_start = pos;
    // Exceptions are applied after the mantissas; skip them for now.
    for _ in 0..n_exc {
        get_uvarint(body, &mut pos).ok_or((pos, "cold exception truncated"))?;
        pos += 8;
    }
    if pos > body.len() {
        return Err((exc_start, "cold exceptions truncated"));
    }
    let g = if kind & KIND_GCD != 0 {
        get_uvarint(body, &mut pos).ok_or((pos, "cold gcd truncated"))? as i64
    } else {
        1
    };
    let start = vs.len();
    let mut m = get_varint(body, &mut pos).ok_or((pos, "cold mantissas truncated"))?;
    vs.push(dec_value(m, scale));
    if n > 1 {
        let mut d = get_varint(body, &mut pos).ok_or((pos, "cold mantissas truncated"))?;
        m = m.wrapping_add(d);
        vs.push(dec_value(m, scale));
        let rest = n - 2;
        // Stored stream -> signed stream elements.
        let mut xs: Vec<i64> = Vec::with_capacity(rest);
        if rest > 0 {
            if kind & KIND_PLANES != 0 {
                let &width = body.get(pos).ok_or((pos, "cold plane width missing"))?;
                pos += 1;
                if width > 8 {
                    return Err((pos - 1, "cold plane width out of range"));
                }
                let len = rest * width as usize;
                let planes = body
                    .get(pos..pos + len)
                    .ok_or((pos, "cold mantissa planes truncated"))?;
                pos += len;
                let mut us = vec![0u64; rest];
                for (p, plane) in planes.chunks_exact(rest).enumerate() {
                    let shift = 8 * p as u32;
                    for (u, &b) in us.iter_mut().zip(plane) {
                        *u |= u64::from(b) << shift;
                    }
                }
                if kind & KIND_UNSIGNED != 0 {
                    xs.extend(us.iter().map(|&u| u as i64));
                } else {
                    xs.extend(us.iter().map(|&u| unzigzag(u)));
                }
            } else if kind & KIND_UNSIGNED != 0 {
                for _ in 0..rest {
                    xs.push(
                        read_uvarint_fast(body, &mut pos)
                            .ok_or((pos, "cold mantissas truncated"))?
                            as i64,
                    );
                }
            } else {
                for _ in 0..rest {
                    xs.push(unzigzag(
                        read_uvarint_fast(body, &mut pos)
                            .ok_or((pos, "cold mantissas truncated"))?,
                    ));
                }
            }
        }
        if g != 1 {
            for x in xs.iter_mut() {
                *x = x.wrapping_mul(g);
            }
        }
        let div = POW10.get(scale).copied().unwrap_or(1.0);
        match (kind & KIND_DOD != 0, scale == 0) {
            (false, true) => vs.extend(xs.iter().map(|&x| {
                m = m.wrapping_add(x);
                m as f64
            })),
            (false, false) => vs.extend(xs.iter().map(|&x| {
                m = m.wrapping_add(x);
                m as f64 / div
            })),
            (true, true) => vs.extend(xs.iter().map(|&x| {
                d = d.wrapping_add(x);
                m = m.wrapping_add(d);
                m as f64
            })),
            (true, false) => vs.extend(xs.iter().map(|&x| {
                d = d.wrapping_add(x);
                m = m.wrapping_add(d);
                m as f64 / div
            })),
        }
    }
    let out = vs.get_mut(start..).unwrap_or(&mut []);
    patch_exceptions(body, exc_start, n_exc, out)?;
    Ok(pos)
}

/// Overwrites `out` at the exception indexes listed from `p` on.
fn patch_exceptions(
    body: &[u8],
    mut p: usize,
    n_exc: u64,
    out: &mut [f64],
) -> std::result::Result<(), DecErr> {
    let mut idx = 0usize;
    for k in 0..n_exc {
        let gap = get_uvarint(body, &mut p).ok_or((p, "cold exception truncated"))?;
        if k > 0 && gap == 0 {
            return Err((p, "cold exception indexes not increasing"));
        }
        idx = idx
            .checked_add(usize::try_from(gap).unwrap_or(usize::MAX))
            .ok_or((p, "cold exception index overflow"))?;
        let bits = body
            .get(p..)
            .and_then(|s| s.first_chunk::<8>())
            .ok_or((p, "cold exception truncated"))?;
        p += 8;
        let slot = out
            .get_mut(idx)
            .ok_or((p, "cold exception index out of range"))?;
        *slot = f64::from_bits(u64::from_le_bytes(*bits));
    }
    Ok(())
}

/// Value mode 3: scale, exceptions, then a sequence of mantissas.
fn decode_dec_seq(
    body: &[u8],
    mut pos: usize,
    n: usize,
    vs: &mut Vec<f64>,
) -> std::result::Result<usize, DecErr> {
    let &scale = body
        .get(pos)
        .ok_or((pos, "cold decimal header truncated"))?;
    pos += 1;
    let scale = scale as usize;
    if scale > MAX_SCALE {
        return Err((pos - 1, "cold decimal scale out of range"));
    }
    let n_exc = get_uvarint(body, &mut pos).ok_or((pos, "cold exception count truncated"))?;
    if n_exc > n as u64 {
        return Err((pos, "more exceptions than samples"));
    }
    let exc_start = pos;
    for _ in 0..n_exc {
        get_uvarint(body, &mut pos).ok_or((pos, "cold exception truncated"))?;
        pos += 8;
    }
    if pos > body.len() {
        return Err((exc_start, "cold exceptions truncated"));
    }
    let start = vs.len();
    let div = POW10.get(scale).copied().unwrap_or(1.0);
    pos = if scale == 0 {
        get_seq(body, pos, n, |m| vs.push(m as f64))?
    } else {
        get_seq(body, pos, n, |m| vs.push(m as f64 / div))?
    };
    let out = vs.get_mut(start..).unwrap_or(&mut []);
    patch_exceptions(body, exc_start, n_exc, out)?;
    Ok(pos)
}

#[inline(always)]
fn read_uvarint_fast(data: &[u8], pos: &mut usize) -> Option<u64> {
    if let Some(&b) = data.get(*pos) {
        if b < 0x80 {
            *pos += 1;
            return Some(u64::from(b));
        }
    }
    get_uvarint(data, pos)
}

// ---------------------------------------------------------------------------
// Integer sequences (value modes 3 and 4).

/// Predictors of a sequence element (low nibble of the predictor byte; the
/// high nibble is log2 of the window `k` for the mean predictors).
const PRED_PREV: u8 = 0;
const PRED_DOD: u8 = 1;
const PRED_DMEAN: u8 = 2;
const PRED_MEAN: u8 = 3;
/// Largest log2 window of the mean predictors.
const MAX_LOG_WINDOW: u8 = 4;

const EL_SPARSE: u8 = 1;
const EL_GCD: u8 = 2;
const EL_VARINT: u8 = 4;

/// Rolling window of the last `k` (a power of two) integers and their sum.
struct Window {
    buf: [i64; 1 << MAX_LOG_WINDOW],
    len: usize,
    log_k: u32,
    head: usize,
    sum: i128,
}

impl Window {
    fn new(log_k: u8) -> Self {
        Window {
            buf: [0; 1 << MAX_LOG_WINDOW],
            len: 0,
            log_k: u32::from(log_k.min(MAX_LOG_WINDOW)),
            head: 0,
            sum: 0,
        }
    }

    /// Floor of the mean of the window (0 when empty).
    #[inline(always)]
    fn mean(&self) -> i64 {
        let k = 1usize << self.log_k;
        if self.len == k {
            (self.sum >> self.log_k) as i64
        } else if self.len == 0 {
            0
        } else {
            self.sum.div_euclid(self.len as i128) as i64
        }
    }

    #[inline(always)]
    fn is_full(&self) -> bool {
        self.len == 1usize << self.log_k
    }

    /// [`Window::mean`] of a full window.
    #[inline(always)]
    fn mean_full(&self) -> i64 {
        (self.sum >> self.log_k) as i64
    }

    /// [`Window::push`] into a full window.
    #[inline(always)]
    fn push_full(&mut self, x: i64) {
        let slot = self.head & ((1usize << self.log_k) - 1) & ((1 << MAX_LOG_WINDOW) - 1);
        self.sum += i128::from(x) - i128::from(self.buf[slot]);
        self.buf[slot] = x;
        self.head = self.head.wrapping_add(1);
    }

    #[inline(always)]
    fn push(&mut self, x: i64) {
        let mask = (1usize << self.log_k) - 1;
        let k = mask + 1;
        let slot = self.head & mask;
        if self.len == k {
            self.sum -= i128::from(self.buf.get(slot).copied().unwrap_or(0));
        } else {
            self.len += 1;
        }
        if let Some(s) = self.buf.get_mut(slot) {
            *s = x;
        }
        self.sum += i128::from(x);
        self.head = self.head.wrapping_add(1);
    }
}

/// Residuals `x_2..x_{n-1}` of `ms` under predictor byte `pred`.
fn residuals(ms: &[i64], pred: u8, out: &mut Vec<i64>) {
    out.clear();
    let (Some(&m0), Some(&m1)) = (ms.first(), ms.get(1)) else {
        return;
    };
    let rest = ms.get(2..).unwrap_or(&[]);
    let mut pm = m1;
    let mut pd = m1.wrapping_sub(m0);
    let mut w = Window::new(pred >> 4);
    match pred & 15 {
        PRED_DOD => out.extend(rest.iter().map(|&m| {
            let d = m.wrapping_sub(pm);
            let x = d.wrapping_sub(pd);
            pm = m;
            pd = d;
            x
        })),
        PRED_DMEAN => {
            w.push(pd);
            out.extend(rest.iter().map(|&m| {
                let d = m.wrapping_sub(pm);
                let x = d.wrapping_sub(w.mean());
                w.push(d);
                pm = m;
                x
            }))
        }
        PRED_MEAN => {
            w.push(m0);
            w.push(m1);
            out.extend(rest.iter().map(|&m| {
                let x = m.wrapping_sub(w.mean());
                w.push(m);
                x
            }))
        }
        _ => out.extend(rest.iter().map(|&m| {
            let d = m.wrapping_sub(pm);
            pm = m;
            d
        })),
    }
}

/// Inverse of [`residuals`]: calls `emit` with m_2..m_{n-1}.
#[inline(always)]
fn integrate(m0: i64, m1: i64, pred: u8, xs: &[i64], mut emit: impl FnMut(i64)) {
    let mut m = m1;
    let mut d = m1.wrapping_sub(m0);
    let mut w = Window::new(pred >> 4);
    match pred & 15 {
        PRED_DOD => xs.iter().for_each(|&x| {
            d = d.wrapping_add(x);
            m = m.wrapping_add(d);
            emit(m);
        }),
        // Once the window is full, the steady loop needs no length checks.
        PRED_DMEAN => {
            w.push(d);
            let mut i = 0;
            while i < xs.len() && !w.is_full() {
                let d = xs[i].wrapping_add(w.mean());
                w.push(d);
                m = m.wrapping_add(d);
                emit(m);
                i += 1;
            }
            xs[i..].iter().for_each(|&x| {
                let d = x.wrapping_add(w.mean_full());
                w.push_full(d);
                m = m.wrapping_add(d);
                emit(m);
            })
        }
        PRED_MEAN => {
            w.push(m0);
            w.push(m1);
            let mut i = 0;
            while i < xs.len() && !w.is_full() {
                let m = xs[i].wrapping_add(w.mean());
                w.push(m);
                emit(m);
                i += 1;
            }
            xs[i..].iter().for_each(|&x| {
                let m = x.wrapping_add(w.mean_full());
                w.push_full(m);
                emit(m);
            })
        }
        _ => xs.iter().for_each(|&x| {
            m = m.wrapping_add(x);
            emit(m);
        }),
    }
}

/// Estimated zstd (huffman) size in bytes of a byte plane with histogram `h`.
fn plane_cost(h: &[u32]) -> f64 {
    let n: u32 = h.iter().sum();
    if n == 0 {
        return 0.0;
    }
    let nf = f64::from(n);
    let mut bits = 0.0;
    let mut distinct = 0u32;
    let mut max_sym = 0usize;
    for (s, &c) in h.iter().enumerate() {
        if c > 0 {
            let cf = f64::from(c);
            bits += cf * (nf / cf).log2();
            distinct += 1;
            max_sym = s;
        }
    }
    if distinct <= 1 {
        return 4.0;
    }
    // A huffman code spends at least one bit per symbol; the table costs
    // about half a byte per symbol up to the largest.
    let huff = bits.max(nf) / 8.0 + 6.0 + max_sym as f64 * 0.45;
    huff.min(nf + 3.0)
}

/// How a list of integers is stored (see the format doc).
#[derive(Clone, Copy, Debug, Default)]
struct ValPlan {
    g: u64,
    base: i64,
    varint: bool,
    k: u32,
    w: u32,
    est: f64,
}

fn bit_len(u: u64) -> u32 {
    64 - u.leading_zeros()
}

/// Plans the storage of `ys` (non-empty): offset, gcd, low raw bits and
/// high byte planes (or varints), with an estimated compressed size.
fn plan_vals(ys: &[i64], us: &mut Vec<u64>) -> ValPlan {
    let base = ys.iter().copied().min().unwrap_or(0);
    us.clear();
    us.extend(ys.iter().map(|&y| y.wrapping_sub(base) as u64));
    let mut g = 0u64;
    for &u in us.iter() {
        g = gcd(g, u);
        if g == 1 {
            break;
        }
    }
    if g > 1 {
        us.iter_mut().for_each(|u| *u /= g);
    } else {
        g = 1;
    }
    let max = us.iter().copied().max().unwrap_or(0);
    let l = bit_len(max);
    let c = us.len() as f64;
    let hdr = 4.0 + uvarint_len(zigzag(base)) as f64 + if g > 1 { 4.0 } else { 0.0 };
    let mut best = ValPlan {
        g,
        base,
        varint: false,
        k: 0,
        w: 0,
        est: hdr,
    };
    if l == 0 {
        return best;
    }
    // Histogram of the top (up to) 9 bits.
    let s = l.saturating_sub(9);
    let mut hist = [0u32; 512];
    for &u in us.iter() {
        if let Some(h) = hist.get_mut((u >> s) as usize) {
            *h += 1;
        }
    }
    best.est = f64::INFINITY;
    let mut h1 = [0u32; 256];
    let mut h2 = [0u32; 256];
    // `cur` holds the histogram of u >> (s + j), halved in place for each j.
    let mut cur = hist;
    let mut bins = 512usize;
    for j in 0..=(l - s).min(6) {
        let k = s + j;
        let width = l - k;
        if j > 0 {
            bins /= 2;
            for b in 0..bins {
                let pair = cur.get(2 * b..2 * b + 2).map_or(0, |p| p.iter().sum());
                if let Some(c) = cur.get_mut(b) {
                    *c = pair;
                }
            }
        }
        if width == 0 {
            continue;
        }
        let mut est = c * f64::from(k) / 8.0;
        if width > 8 {
            h1.fill(0);
            h2.fill(0);
            for (b, &cnt) in cur.iter().take(bins).enumerate() {
                if let Some(h) = h1.get_mut(b & 255) {
                    *h += cnt;
                }
                if let Some(h) = h2.get_mut(b >> 8) {
                    *h += cnt;
                }
            }
            est += plane_cost(&h1) + plane_cost(&h2);
        } else {
            est += plane_cost(cur.get(..bins.min(256)).unwrap_or(&[]));
        }
        if est < best.est {
            best.k = k;
            best.w = width.div_ceil(8);
            best.est = est;
        }
    }
    // Whole byte planes for wider, skewed distributions.
    if l > 9 && l <= 16 {
        h1.fill(0);
        h2.fill(0);
        for &u in us.iter() {
            if let Some(h) = h1.get_mut((u & 255) as usize) {
                *h += 1;
            }
            if let Some(h) = h2.get_mut((u >> 8) as usize) {
                *h += 1;
            }
        }
        let est = plane_cost(&h1) + plane_cost(&h2);
        if est < best.est {
            best.k = 0;
            best.w = 2;
            best.est = est;
        }
    }
    if l > 16 {
        let vl: usize = us.iter().map(|&u| uvarint_len(u)).sum();
        // Varint bytes compress somewhat; only worth it for skewed data.
        let est = vl as f64 * 0.875 + 8.0;
        if est < best.est {
            best.varint = true;
            best.est = est;
        }
    }
    best.est += hdr;
    best
}

/// Appends the element list `xs` (see `elems` in the format doc).
fn put_elems(col: &mut Vec<u8>, splits: &mut Vec<usize>, xs: &[i64]) {
    let c0 = xs.len();
    let zeros = xs.iter().filter(|&&x| x == 0).count();
    let mut us = Vec::with_capacity(c0);
    let dense = plan_vals(xs, &mut us);
    let mut sparse = None;
    if zeros * 8 >= c0 && zeros < c0 {
        let ys: Vec<i64> = xs.iter().copied().filter(|&x| x != 0).collect();
        let p = f64::from(zeros as u32) / c0 as f64;
        let h = -(p * p.log2() + (1.0 - p) * (1.0 - p).log2());
        let bitmap = (h * c0 as f64 / 8.0).max(c0 as f64 / 64.0) + 8.0;
        let mut plan = plan_vals(&ys, &mut us);
        plan.est += bitmap;
        if plan.est < dense.est {
            sparse = Some((plan, ys));
        }
    }
    let (plan, ys) = match sparse {
        Some((plan, ys)) => {
            col.push(EL_SPARSE | flag_bits(&plan));
            splits.push(col.len());
            let start = col.len();
            col.resize(start + c0.div_ceil(8), 0);
            let bm = col.get_mut(start..).unwrap_or(&mut []);
            for (i, &x) in xs.iter().enumerate() {
                if x != 0 {
                    if let Some(b) = bm.get_mut(i / 8) {
                        *b |= 1 << (i % 8);
                    }
                }
            }
            (plan, ys)
        }
        None => {
            col.push(flag_bits(&dense));
            (dense, xs.to_vec())
        }
    };
    if ys.is_empty() {
        return;
    }
    if plan.g > 1 {
        put_uvarint(col, plan.g);
    }
    put_varint(col, plan.base);
    let g = plan.g.max(1);
    us.clear();
    us.extend(ys.iter().map(|&y| y.wrapping_sub(plan.base) as u64 / g));
    if plan.varint {
        splits.push(col.len());
        for &u in &us {
            put_uvarint(col, u);
        }
        return;
    }
    col.push(plan.k as u8);
    col.push(plan.w as u8);
    for p in 0..plan.w {
        splits.push(col.len());
        let shift = plan.k + 8 * p;
        col.extend(us.iter().map(|&u| u.checked_shr(shift).unwrap_or(0) as u8));
    }
    if plan.k > 0 {
        splits.push(col.len());
        let k = plan.k;
        let mask = u64::MAX >> (64 - k);
        let mut acc = 0u128;
        let mut nb = 0u32;
        for &u in &us {
            acc |= u128::from(u & mask) << nb;
            nb += k;
            while nb >= 8 {
                col.push(acc as u8);
                acc >>= 8;
                nb -= 8;
            }
        }
        if nb > 0 {
            col.push(acc as u8);
        }
    }
}

fn flag_bits(p: &ValPlan) -> u8 {
    (if p.g > 1 { EL_GCD } else { 0 }) | (if p.varint { EL_VARINT } else { 0 })
}

/// Reads `c0` elements into `xs` (cleared first).
fn get_elems(
    body: &[u8],
    mut pos: usize,
    c0: usize,
    xs: &mut Vec<i64>,
) -> std::result::Result<usize, DecErr> {
    xs.clear();
    let &flags = body.get(pos).ok_or((pos, "cold element flags missing"))?;
    pos += 1;
    if flags & !(EL_SPARSE | EL_GCD | EL_VARINT) != 0 {
        return Err((pos - 1, "unknown cold element flags"));
    }
    let mut bitmap: &[u8] = &[];
    let c = if flags & EL_SPARSE != 0 {
        bitmap = body
            .get(pos..pos + c0.div_ceil(8))
            .ok_or((pos, "cold element bitmap truncated"))?;
        pos += bitmap.len();
        (0..c0)
            .filter(|&i| bitmap.get(i / 8).is_some_and(|b| b >> (i % 8) & 1 != 0))
            .count()
    } else {
        c0
    };
    if c > 0 {
        let g = if flags & EL_GCD != 0 {
            get_uvarint(body, &mut pos).ok_or((pos, "cold gcd truncated"))?
        } else {
            1
        };
        let base = get_varint(body, &mut pos).ok_or((pos, "cold element base truncated"))?;
        // The raw elements go straight into `xs` (into a side vector only
        // when sparse), viewed as u64, and are turned into values in place.
        let sparse = flags & EL_SPARSE != 0;
        let mut side: Vec<i64> = Vec::new();
        let store: &mut Vec<i64> = if sparse { &mut side } else { &mut *xs };
        store.resize(c, 0);
        let us: &mut [u64] = bytemuck::cast_slice_mut(store.as_mut_slice());
        if flags & EL_VARINT != 0 {
            for u in us.iter_mut() {
                *u = read_uvarint_fast(body, &mut pos).ok_or((pos, "cold elements truncated"))?;
            }
        } else {
            let (k, w) = match body.get(pos..pos + 2) {
                Some(&[k, w]) => (u32::from(k), u32::from(w)),
                _ => return Err((pos, "cold element widths truncated")),
            };
            pos += 2;
            if k > 64 || w > 8 {
                return Err((pos - 2, "cold element widths out of range"));
            }
            let planes_len = c * w as usize;
            let planes = body
                .get(pos..pos + planes_len)
                .ok_or((pos, "cold element planes truncated"))?;
            pos += planes_len;
            let lo_len = (c * k as usize).div_ceil(8);
            let lo = body
                .get(pos..pos + lo_len)
                .ok_or((pos, "cold element low bits truncated"))?;
            pos += lo_len;
            for (p, plane) in planes.chunks_exact(c).enumerate() {
                let shift = 8 * p as u32;
                for (u, &b) in us.iter_mut().zip(plane) {
                    *u |= u64::from(b) << shift;
                }
            }
            if (1..=56).contains(&k) {
                // Element i's low bits are bits [i*k, i*k+k) of the
                // little-endian stream `lo`: one 8-byte load covers them.
                let mask = u64::MAX >> (64 - k);
                let k = k as usize;
                for (i, u) in us.iter_mut().enumerate() {
                    let bit = i * k;
                    let byte = bit >> 3;
                    let word = match lo.get(byte..byte + 8) {
                        Some(w) => u64::from_le_bytes(w.try_into().unwrap_or([0; 8])),
                        None => {
                            // The last few bytes (fewer than 8).
                            let mut w = [0u8; 8];
                            for (d, &b) in w.iter_mut().zip(lo.get(byte..).unwrap_or(&[])) {
                                *d = b;
                            }
                            u64::from_le_bytes(w)
                        }
                    };
                    *u = (*u << k) | ((word >> (bit & 7)) & mask);
                }
            } else if k > 0 {
                let mask = u64::MAX >> (64 - k);
                let mut acc = 0u128;
                let mut nb = 0u32;
                let mut bytes = lo.iter();
                for u in us.iter_mut() {
                    while nb < k {
                        acc |= u128::from(bytes.next().copied().unwrap_or(0)) << nb;
                        nb += 8;
                    }
                    *u = u.checked_shl(k).unwrap_or(0) | (acc as u64 & mask);
                    acc >>= k;
                    nb -= k;
                }
            }
        }
        let to_y = |u: u64| base.wrapping_add(u.wrapping_mul(g) as i64);
        if sparse {
            let mut it = side.iter();
            xs.extend((0..c0).map(|i| {
                if bitmap.get(i / 8).is_some_and(|b| b >> (i % 8) & 1 != 0) {
                    it.next().map_or(0, |&u| to_y(u as u64))
                } else {
                    0
                }
            }));
        } else if g == 1 {
            // (The common case, in a loop that vectorizes.)
            xs.iter_mut().for_each(|x| *x = base.wrapping_add(*x));
        } else {
            xs.iter_mut().for_each(|x| *x = to_y(*x as u64));
        }
    } else {
        xs.resize(c0, 0);
    }
    Ok(pos)
}

/// Appends `seq(ms)` with the cheapest of `preds` (estimated).
/// Writes a mantissa/bit-pattern column; `ms` is never empty (empty chunks have no columns).
fn put_seq(col: &mut Vec<u8>, splits: &mut Vec<usize>, ms: &[i64], preds: &[u8]) -> f64 {
    let mut xs = Vec::with_capacity(ms.len());
    let mut best = (f64::INFINITY, PRED_PREV);
    if ms.len() > 2 {
        let mut us = Vec::with_capacity(ms.len());
        for &p in preds {
            residuals(ms, p, &mut xs);
            let est = quick_est(&xs, &mut us);
            if est < best.0 {
                best = (est, p);
            }
        }
    }
    let pred = best.1;
    col.push(pred);
    let m0 = ms.first().copied().unwrap_or(0);
    put_varint(col, m0);
    if let Some(&m1) = ms.get(1) {
        put_varint(col, m1.wrapping_sub(m0));
    }
    if ms.len() > 2 {
        residuals(ms, pred, &mut xs);
        put_elems(col, splits, &xs);
    }
    best.0
}

/// Estimated size of an element list (the cheaper of dense and sparse).
fn quick_est(xs: &[i64], us: &mut Vec<u64>) -> f64 {
    let c0 = xs.len();
    let zeros = xs.iter().filter(|&&x| x == 0).count();
    let dense = plan_vals(xs, us).est;
    if zeros * 8 >= c0 && zeros < c0 {
        let ys: Vec<i64> = xs.iter().copied().filter(|&x| x != 0).collect();
        let p = zeros as f64 / c0 as f64;
        let h = -(p * p.log2() + (1.0 - p) * (1.0 - p).log2());
        let bitmap = (h * c0 as f64 / 8.0).max(c0 as f64 / 64.0) + 8.0;
        return dense.min(plan_vals(&ys, us).est + bitmap);
    }
    dense
}

/// Reads `seq` of `n` integers, calling `emit` for each.
fn get_seq(
    body: &[u8],
    mut pos: usize,
    n: usize,
    mut emit: impl FnMut(i64),
) -> std::result::Result<usize, DecErr> {
    let &pred = body.get(pos).ok_or((pos, "cold predictor missing"))?;
    pos += 1;
    if pred & 15 > PRED_MEAN || pred >> 4 > MAX_LOG_WINDOW {
        return Err((pos - 1, "unknown cold predictor"));
    }
    let m0 = get_varint(body, &mut pos).ok_or((pos, "cold sequence truncated"))?;
    emit(m0);
    if n < 2 {
        return Ok(pos);
    }
    let m1 = m0.wrapping_add(get_varint(body, &mut pos).ok_or((pos, "cold sequence truncated"))?);
    emit(m1);
    if n < 3 {
        return Ok(pos);
    }
    let mut xs = Vec::with_capacity(n - 2);
    pos = get_elems(body, pos, n - 2, &mut xs)?;
    integrate(m0, m1, pred, &xs, emit);
    Ok(pos)
}

fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Encodes `ms` with a forced predictor and decodes it back.
    fn seq_round_trip(ms: &[i64], pred: u8) -> Vec<i64> {
        let mut col = Vec::new();
        let mut splits = Vec::new();
        put_seq(&mut col, &mut splits, ms, &[pred]);
        assert!(splits.iter().all(|&s| s <= col.len()));
        let mut out = Vec::new();
        let end = get_seq(&col, 0, ms.len(), |m| out.push(m)).unwrap();
        assert_eq!(end, col.len());
        out
    }

    const ALL_PREDS: [u8; 8] = [
        PRED_PREV,
        PRED_DOD,
        PRED_DMEAN,
        PRED_DMEAN | (3 << 4),
        PRED_DMEAN | (4 << 4),
        PRED_MEAN | (1 << 4),
        PRED_MEAN | (2 << 4),
        PRED_MEAN | (4 << 4),
    ];

    fn arb_seq() -> impl Strategy<Value = Vec<i64>> {
        prop_oneof![
            proptest::collection::vec(any::<i64>(), 0..200),
            // Sparse changes (bitmap form), gcd and offsets.
            proptest::collection::vec((0u8..10, -50i64..50), 0..300).prop_map(|v| {
                let mut m = 1i64 << 40;
                v.iter()
                    .map(|&(p, s)| {
                        if p < 3 {
                            m = m.wrapping_add(s * 4096);
                        }
                        m
                    })
                    .collect()
            }),
            // Counters with wide increments (raw low bits + planes).
            proptest::collection::vec(0i64..1_000_000, 0..300).prop_map(|v| {
                let mut m = 0i64;
                v.iter()
                    .map(|&d| {
                        m = m.wrapping_add(d + 600_000);
                        m
                    })
                    .collect()
            }),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]

        #[test]
        fn seq_round_trips(ms in arb_seq()) {
            // Columns exist only for chunks with at least one sample.
            prop_assume!(!ms.is_empty());
            for pred in ALL_PREDS {
                prop_assert_eq!(seq_round_trip(&ms, pred), ms.clone());
            }
        }

        #[test]
        fn elems_round_trip(xs in proptest::collection::vec(prop_oneof![Just(0i64), any::<i64>(), -300i64..300], 1..300)) {
            let mut col = Vec::new();
            put_elems(&mut col, &mut Vec::new(), &xs);
            let mut out = Vec::new();
            prop_assert_eq!(get_elems(&col, 0, xs.len(), &mut out).unwrap(), col.len());
            prop_assert_eq!(out, xs);
        }
    }

    #[test]
    fn every_elems_form_round_trips() {
        let n = 2000;
        let forms: Vec<Vec<i64>> = vec![
            vec![0; n],
            (0..n as i64)
                .map(|i| if i % 10 == 0 { i * 512 } else { 0 })
                .collect(),
            (0..n as i64)
                .map(|i| (i * 7919) % 100_003 + 5_000_000)
                .collect(),
            (0..n as i64)
                .map(|i| (i * 7919) % 97 * 4096 - 200_000)
                .collect(),
            (0..n as i64)
                .map(|i| if i % 3 == 0 { 1 << (i % 62) } else { i % 5 })
                .collect(),
            (0..n as i64).map(|i| i64::MIN + (i * 31) % 7).collect(),
            vec![i64::MIN, i64::MAX, 0, -1, 1, i64::MAX, i64::MIN],
        ];
        let mut seen = 0u8;
        for xs in forms {
            let mut col = Vec::new();
            put_elems(&mut col, &mut Vec::new(), &xs);
            seen |= col.first().copied().unwrap_or(0);
            let mut out = Vec::new();
            assert_eq!(get_elems(&col, 0, xs.len(), &mut out).unwrap(), col.len());
            assert_eq!(out, xs);
            // Truncations never panic.
            for cut in 0..col.len() {
                let _ = get_elems(&col[..cut], 0, xs.len(), &mut out);
            }
        }
        assert_eq!(
            seen,
            EL_SPARSE | EL_GCD | EL_VARINT,
            "all element forms covered"
        );
    }

    #[test]
    fn workload_chunk_sizes_round_trip() {
        use crate::workload::{Workload, WorkloadConfig};
        let series = 40;
        let mut w = Workload::new(WorkloadConfig {
            series,
            interval_ms: 15_000,
            start_ms: 1_700_000_000_000,
            seed: 7,
        });
        let n = 4320;
        let mut ts = Vec::new();
        let mut cols = vec![Vec::new(); series];
        for _ in 0..n {
            let (t, vs) = w.next_scrape();
            ts.push(t);
            for (c, &v) in cols.iter_mut().zip(vs) {
                c.push(v);
            }
        }
        let mut modes = std::collections::BTreeSet::new();
        for size in [1, 2, 3, 480, 1440, 4320] {
            for c in &cols {
                let (t, v) = (&ts[..size], &c[..size]);
                let e = encode_cold(t, v).unwrap();
                let (mut dt, mut dv) = (Vec::new(), Vec::new());
                decode_cold(&e, &mut dt, &mut dv).unwrap();
                assert_eq!(dt, t);
                assert!(dv.iter().zip(v).all(|(a, b)| a.to_bits() == b.to_bits()));
                if size == 4320 {
                    let body = if e[2] == FLAG_ZSTD {
                        let mut p = 3;
                        let raw = get_uvarint(&e, &mut p).unwrap() as usize;
                        zstd::bulk::decompress(&e[p..], raw).unwrap()
                    } else {
                        e[3..].to_vec()
                    };
                    // ts column: mode, varint(t0), uvarint(15000).
                    let mut p = 1;
                    get_varint(&body, &mut p).unwrap();
                    get_uvarint(&body, &mut p).unwrap();
                    modes.insert(body[p]);
                }
            }
        }
        assert!(modes.contains(&VAL_CONST));
        assert!(modes.contains(&VAL_DEC_SEQ));
        assert!(modes.contains(&VAL_BITS_SEQ));
    }
}
