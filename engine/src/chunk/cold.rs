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
//! ```
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

/// zstd level used for cold chunks.
pub const ZSTD_LEVEL: i32 = 19;

const FILE: &str = "chunk";
const FLAG_ZSTD: u8 = 1;
const TS_REGULAR: u8 = 0;
const TS_DOD: u8 = 1;
const VAL_CONST: u8 = 0;
const VAL_DECIMAL: u8 = 1;
const VAL_PLANES: u8 = 2;
const KIND_DELTA: u8 = 0;
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
    static ZSTD_C: RefCell<Option<zstd::bulk::Compressor<'static>>> = const { RefCell::new(None) };
    static ZSTD_D: RefCell<Option<zstd::bulk::Decompressor<'static>>> = const { RefCell::new(None) };
    static SCRATCH: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

fn zstd_compress(raw: &[u8]) -> Option<Vec<u8>> {
    ZSTD_C.with(|c| {
        let mut c = c.try_borrow_mut().ok()?;
        if c.is_none() {
            *c = zstd::bulk::Compressor::new(ZSTD_LEVEL).ok();
        }
        c.as_mut()?.compress(raw).ok()
    })
}

thread_local! {
    static ZSTD_CS: RefCell<Option<zstd::zstd_safe::CCtx<'static>>> = const { RefCell::new(None) };
}

/// Compresses `raw` as one zstd frame, ending a block at each offset of
/// `splits` so that each section (timestamps, byte planes) gets its own
/// entropy tables.
fn zstd_compress_split(raw: &[u8], splits: &[usize]) -> Option<Vec<u8>> {
    use zstd::zstd_safe::{
        zstd_sys::ZSTD_EndDirective, CCtx, CParameter, InBuffer, OutBuffer, ResetDirective,
    };
    ZSTD_CS.with(|c| {
        let mut c = c.try_borrow_mut().ok()?;
        let cctx = c.get_or_insert_with(CCtx::create);
        cctx.reset(ResetDirective::SessionOnly).ok()?;
        cctx.set_parameter(CParameter::CompressionLevel(ZSTD_LEVEL))
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

    let mut best: Option<Vec<u8>> = None;
    for (val_col, splits) in value_candidates(vs) {
        let mut body = Vec::with_capacity(ts_col.len() + val_col.len());
        body.extend_from_slice(&ts_col);
        body.extend_from_slice(&val_col);
        let mut payload = Vec::with_capacity(body.len() + 1);
        payload.push(0u8);
        payload.extend_from_slice(&body);
        if body.len() >= 24 {
            let z = if splits.is_empty() {
                zstd_compress(&body)
            } else {
                let splits: Vec<usize> = std::iter::once(ts_col.len())
                    .chain(splits.iter().map(|&s| s + ts_col.len()))
                    .collect();
                zstd_compress_split(&body, &splits)
            };
            if let Some(z) = z {
                if z.len() + 1 + uvarint_len(body.len() as u64) < payload.len() {
                    payload.clear();
                    payload.push(FLAG_ZSTD);
                    put_uvarint(&mut payload, body.len() as u64);
                    payload.extend_from_slice(&z);
                }
            }
        }
        if best.as_ref().is_none_or(|b| payload.len() < b.len()) {
            best = Some(payload);
        }
    }
    out.extend_from_slice(&best.unwrap_or_default());
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

/// Candidate value columns; the caller keeps the smallest after compression.
fn value_candidates(vs: &[f64]) -> Vec<Column> {
    let Some(first) = vs.first() else {
        return vec![];
    };
    let b0 = first.to_bits();
    if vs.iter().all(|v| v.to_bits() == b0) {
        let mut c = vec![VAL_CONST];
        c.extend_from_slice(&b0.to_le_bytes());
        return vec![(c, vec![])];
    }
    let mut out = Vec::with_capacity(2);
    let dec = decimal_column(vs);
    let want_planes = match &dec {
        None => true,
        Some((_, scale, n_exc)) => *scale >= 6 || *n_exc > 0,
    };
    if let Some((cols, _, _)) = dec {
        out.extend(cols);
    }
    if want_planes {
        let col = planes_column(vs);
        let n = vs.len();
        out.push((col, (0..8).map(|p| 1 + p * n).collect()));
    }
    out
}

/// The decimal value column, its scale and exception count, or `None` when
/// too many values are not decimal.
fn decimal_column(vs: &[f64]) -> Option<(Vec<Column>, usize, usize)> {
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
    let mut cols = Vec::with_capacity(2);
    for planes in [false, true] {
        let mut col = Vec::with_capacity(n * 2 + 16);
        col.push(VAL_DECIMAL);
        col.push(best_scale as u8);
        let mut splits = Vec::new();
        encode_mantissas(&ms, &exc, planes, &mut col, &mut splits);
        cols.push((col, splits));
    }
    Some((cols, best_scale, exc.len()))
}

/// Maps stream element `x` to the unsigned integer that is stored.
#[inline]
fn to_stored(x: i64, unsigned: bool) -> u64 {
    if unsigned {
        x as u64
    } else {
        zigzag(x)
    }
}

fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

/// Divides a stream by the gcd of its elements: (stream, gcd, all >= 0, varint size).
fn prep_stream(mut xs: Vec<i64>) -> (Vec<i64>, u64, bool, usize) {
    let mut g = 0u64;
    for &x in &xs {
        g = gcd(g, x.unsigned_abs());
        if g == 1 {
            break;
        }
    }
    if g > 1 && g <= i64::MAX as u64 {
        for x in xs.iter_mut() {
            *x /= g as i64;
        }
    } else {
        g = 1;
    }
    let unsigned = xs.iter().all(|&x| x >= 0);
    let len = xs
        .iter()
        .map(|&x| uvarint_len(to_stored(x, unsigned)))
        .sum();
    (xs, g, unsigned, len)
}

/// Appends `kind`, the exceptions and the mantissa stream to `col`.
fn encode_mantissas(
    ms: &[i64],
    exc: &[(usize, u64)],
    planes: bool,
    col: &mut Vec<u8>,
    splits: &mut Vec<usize>,
) {
    // Stream elements from index 2 on: deltas and deltas-of-deltas.
    let mut deltas = Vec::with_capacity(ms.len());
    let mut dods = Vec::with_capacity(ms.len());
    let (mut pm, mut pd) = (0i64, 0i64);
    for (i, &m) in ms.iter().enumerate() {
        let d = m.wrapping_sub(pm);
        if i >= 2 {
            deltas.push(d);
            dods.push(d.wrapping_sub(pd));
        }
        pm = m;
        pd = d;
    }
    let (stream, g, unsigned, mut kind) = {
        let a = prep_stream(deltas);
        let b = prep_stream(dods);
        if b.3 < a.3 {
            (b.0, b.1, b.2, KIND_DOD)
        } else {
            (a.0, a.1, a.2, KIND_DELTA)
        }
    };
    if unsigned {
        kind |= KIND_UNSIGNED;
    }
    if planes {
        kind |= KIND_PLANES;
    }
    if g > 1 {
        kind |= KIND_GCD;
    }
    col.push(kind);
    put_uvarint(col, exc.len() as u64);
    let mut last = 0usize;
    for &(i, bits) in exc {
        put_uvarint(col, (i - last) as u64);
        col.extend_from_slice(&bits.to_le_bytes());
        last = i;
    }
    if g > 1 {
        put_uvarint(col, g);
    }
    if let Some(&m0) = ms.first() {
        put_varint(col, m0);
    }
    if let Some(&m1) = ms.get(1) {
        put_varint(col, m1.wrapping_sub(ms.first().copied().unwrap_or(0)));
    }
    if ms.len() <= 2 {
        return;
    }
    if planes {
        let max = stream
            .iter()
            .map(|&x| to_stored(x, unsigned))
            .max()
            .unwrap_or(0);
        let width = (64 - max.leading_zeros()).div_ceil(8);
        col.push(width as u8);
        for p in 0..width {
            splits.push(col.len());
            col.extend(
                stream
                    .iter()
                    .map(|&x| (to_stored(x, unsigned) >> (8 * p)) as u8),
            );
        }
    } else {
        for &x in &stream {
            put_uvarint(col, to_stored(x, unsigned));
        }
    }
}

fn planes_column(vs: &[f64]) -> Vec<u8> {
    let n = vs.len();
    let mut col = vec![0u8; 1 + 8 * n];
    if let Some(c) = col.first_mut() {
        *c = VAL_PLANES;
    }
    let body = col.get_mut(1..).unwrap_or(&mut []);
    let mut prev = 0u64;
    let mut xs = Vec::with_capacity(n);
    for v in vs {
        let b = v.to_bits();
        xs.push(b ^ prev);
        prev = b;
    }
    for (p, plane) in body.chunks_exact_mut(n.max(1)).enumerate() {
        let shift = 56 - 8 * p as u32;
        for (o, &x) in plane.iter_mut().zip(&xs) {
            *o = (x >> shift) as u8;
        }
    }
    col
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
    let end = pos;
    // Patch exceptions.
    let mut p = exc_start;
    let mut idx = 0usize;
    let out = vs.get_mut(start..).unwrap_or(&mut []);
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
    Ok(end)
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
