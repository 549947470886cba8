//! Inverted index: postings (label name/value -> series ids), the symbol
//! table, and the block index file (FORMAT.md "Index file").
//!
//! The head keeps postings in memory ([`MemPostings`], ids are series refs);
//! a block keeps them in its `index` file ([`IndexReader`], ids are positions
//! in the block's label-sorted series table). Both answer matchers through
//! the same algorithm, [`select`].

use crate::encoding::{put_uvarint, put_varint, Decbuf};
use crate::error::{Error, Result};
use crate::io::mmap::Mmap;
use crate::labels::{Label, Labels, MatchType, Matcher};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Something that can list label values and postings.
pub(crate) trait PostingsSource {
    /// All values of `name` (any order).
    fn values(&self, name: &str) -> Result<Vec<String>>;
    /// Sorted ids of series with `name="value"`.
    fn postings(&self, name: &str, value: &str) -> Result<Vec<u64>>;
    /// Sorted ids of every series.
    fn all(&self) -> Result<Vec<u64>>;
}

fn intersect(a: &[u64], b: &[u64]) -> Vec<u64> {
    let (mut i, mut j, mut out) = (0, 0, Vec::new());
    while i < a.len() && j < b.len() {
        match a[i].cmp(&b[j]) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => {
                out.push(a[i]);
                i += 1;
                j += 1;
            }
        }
    }
    out
}

fn subtract(a: &[u64], b: &[u64]) -> Vec<u64> {
    let mut j = 0;
    a.iter()
        .copied()
        .filter(|x| {
            while j < b.len() && b[j] < *x {
                j += 1;
            }
            !(j < b.len() && b[j] == *x)
        })
        .collect()
}

fn union_where(
    src: &impl PostingsSource,
    name: &str,
    pred: impl Fn(&str) -> bool,
) -> Result<Vec<u64>> {
    let mut out = Vec::new();
    let mut lists = 0;
    for v in src.values(name)? {
        if pred(&v) {
            out.extend(src.postings(name, &v)?);
            lists += 1;
        }
    }
    if lists > 1 {
        out.sort_unstable();
        out.dedup();
    }
    Ok(out)
}

/// Sorted ids of the series matching every matcher (Prometheus semantics:
/// an absent label matches as ""). With no matchers, every series.
pub(crate) fn select(src: &impl PostingsSource, matchers: &[Matcher]) -> Result<Vec<u64>> {
    let mut acc: Option<Vec<u64>> = None;
    // Positive matchers (not matching "") narrow the set directly.
    for m in matchers.iter().filter(|m| !m.matches_empty()) {
        let p = if m.kind == MatchType::Equal {
            src.postings(&m.name, &m.value)?
        } else {
            union_where(src, &m.name, |v| m.matches(v))?
        };
        acc = Some(match acc {
            None => p,
            Some(a) => intersect(&a, &p),
        });
        if acc.as_ref().is_some_and(|a| a.is_empty()) {
            return Ok(Vec::new());
        }
    }
    // Matchers that match "" remove the series whose value does not match.
    for m in matchers.iter().filter(|m| m.matches_empty()) {
        let excluded = union_where(src, &m.name, |v| !m.matches(v))?;
        let base = match acc.take() {
            Some(a) => a,
            None => src.all()?,
        };
        acc = Some(if excluded.is_empty() {
            base
        } else {
            subtract(&base, &excluded)
        });
    }
    match acc {
        Some(a) => Ok(a),
        None => src.all(),
    }
}

/// The head's in-memory postings. Ids are series refs.
#[derive(Default)]
pub(crate) struct MemPostings {
    by_name: HashMap<Arc<str>, HashMap<Arc<str>, Vec<u64>>>,
    all: Vec<u64>,
}

fn insert_sorted(v: &mut Vec<u64>, id: u64) {
    match v.last() {
        Some(&last) if last >= id => {
            if let Err(pos) = v.binary_search(&id) {
                v.insert(pos, id);
            }
        }
        _ => v.push(id),
    }
}

impl MemPostings {
    /// Adds a series.
    pub(crate) fn add(&mut self, id: u64, labels: &Labels) {
        for l in labels.iter() {
            let values = self.by_name.entry(l.name.clone()).or_default();
            insert_sorted(values.entry(l.value.clone()).or_default(), id);
        }
        insert_sorted(&mut self.all, id);
    }

    /// Removes series (by id) whose labels are given.
    pub(crate) fn remove(&mut self, gone: &[(u64, Labels)]) {
        let ids: std::collections::HashSet<u64> = gone.iter().map(|(id, _)| *id).collect();
        for (_, labels) in gone {
            for l in labels.iter() {
                if let Some(values) = self.by_name.get_mut(&l.name) {
                    if let Some(list) = values.get_mut(&l.value) {
                        list.retain(|id| !ids.contains(id));
                        if list.is_empty() {
                            values.remove(&l.value);
                        }
                    }
                    if values.is_empty() {
                        self.by_name.remove(&l.name);
                    }
                }
            }
        }
        self.all.retain(|id| !ids.contains(id));
    }

    /// Label names present.
    pub(crate) fn names(&self) -> Vec<String> {
        self.by_name.keys().map(|k| k.to_string()).collect()
    }

    /// (name, value, number of series) for every pair; for cardinality stats.
    pub(crate) fn pair_counts(&self) -> Vec<(String, String, usize)> {
        let mut out = Vec::new();
        for (n, values) in &self.by_name {
            for (v, list) in values {
                out.push((n.to_string(), v.to_string(), list.len()));
            }
        }
        out
    }
}

impl PostingsSource for MemPostings {
    fn values(&self, name: &str) -> Result<Vec<String>> {
        Ok(self
            .by_name
            .get(name)
            .map(|m| m.keys().map(|v| v.to_string()).collect())
            .unwrap_or_default())
    }
    fn postings(&self, name: &str, value: &str) -> Result<Vec<u64>> {
        Ok(self
            .by_name
            .get(name)
            .and_then(|m| m.get(value))
            .cloned()
            .unwrap_or_default())
    }
    fn all(&self) -> Result<Vec<u64>> {
        Ok(self.all.clone())
    }
}

// ---------------------------------------------------------------------------
// Block index file.

/// Magic number at the start and end of an index file (FORMAT.md "Index file").
pub const INDEX_MAGIC: [u8; 4] = *b"SNIX";
/// Index file format version (FORMAT.md "Index file").
pub const INDEX_VERSION: u8 = 1;
/// Size of the fixed footer: TOC (11 × u64) + CRC32 + magic.
const FOOTER_LEN: usize = TOC_LEN + 4 + 4;
const TOC_LEN: usize = 11 * 8;
/// The series section is addressed with u32 offsets (about 50 M series per block).
const MAX_SERIES_SECTION: usize = u32::MAX as usize;
/// Index files larger than this are refused (the offsets table must fit the address space anyway).
const MAX_SERIES: u64 = 1 << 32;

/// The table of contents at the end of an index file (little-endian u64s).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, bytemuck::Pod, bytemuck::Zeroable)]
struct Toc {
    symbols_off: u64,
    symbols_len: u64,
    series_off: u64,
    series_len: u64,
    offsets_off: u64,
    series_count: u64,
    postings_off: u64,
    postings_len: u64,
    table_off: u64,
    table_len: u64,
    /// Base for chunk times: the block's min time (an i64 stored as u64).
    base_t: u64,
}

#[cfg(target_endian = "big")]
compile_error!(
    "the index format's fixed-width tables are little-endian; big-endian hosts are not supported"
);

/// Where a chunk of a series lives and what it covers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChunkMeta {
    /// First sample timestamp.
    pub min_t: i64,
    /// Last sample timestamp (inclusive).
    pub max_t: i64,
    /// Reference into the block's chunk files: segment number << 32 | offset.
    pub chunk_ref: u64,
    /// Number of samples.
    pub num_samples: u32,
}

/// Writes an index file. Series must be added in label order.
pub(crate) struct IndexWriter {
    series: Vec<(Labels, Vec<ChunkMeta>)>,
    base_t: i64,
}

impl IndexWriter {
    /// A writer whose chunk times are stored relative to `base_t` (the block's min time).
    pub(crate) fn new(base_t: i64) -> Self {
        IndexWriter {
            series: Vec::new(),
            base_t,
        }
    }

    pub(crate) fn add_series(&mut self, labels: Labels, chunks: Vec<ChunkMeta>) -> Result<()> {
        if let Some((last, _)) = self.series.last() {
            if last.cmp_labels(&labels) != std::cmp::Ordering::Less {
                return Err(Error::InvalidLabels(format!(
                    "index series out of order: {labels} after {last}"
                )));
            }
        }
        self.series.push((labels, chunks));
        Ok(())
    }

    pub(crate) fn series_count(&self) -> usize {
        self.series.len()
    }

    /// Serialises the whole index.
    pub(crate) fn finish(self) -> Result<Vec<u8>> {
        let mut syms: Vec<&str> = Vec::new();
        for (l, _) in &self.series {
            for lab in l.iter() {
                syms.push(&lab.name);
                syms.push(&lab.value);
            }
        }
        syms.sort_unstable();
        syms.dedup();
        let sym_idx: HashMap<&str, u64> = syms
            .iter()
            .enumerate()
            .map(|(i, s)| (*s, i as u64))
            .collect();

        let mut out = Vec::with_capacity(1 << 16);
        out.extend_from_slice(&INDEX_MAGIC);
        out.extend_from_slice(&[INDEX_VERSION, 0, 0, 0]);
        let mut toc = Toc {
            base_t: self.base_t as u64,
            ..Toc::default()
        };

        let section = |out: &mut Vec<u8>, data: &[u8]| -> (u64, u64) {
            let off = out.len() as u64;
            out.extend_from_slice(data);
            out.extend_from_slice(&crc32fast::hash(data).to_le_bytes());
            (off, data.len() as u64)
        };

        let mut buf = Vec::new();
        put_uvarint(&mut buf, syms.len() as u64);
        for s in &syms {
            crate::encoding::put_bytes(&mut buf, s.as_bytes());
        }
        (toc.symbols_off, toc.symbols_len) = section(&mut out, &buf);

        buf.clear();
        let mut offsets: Vec<u32> = Vec::with_capacity(self.series.len());
        let mut postings: HashMap<(u64, u64), Vec<u32>> = HashMap::new();
        for (i, (labels, chunks)) in self.series.iter().enumerate() {
            if buf.len() > MAX_SERIES_SECTION {
                return Err(Error::LimitExceeded {
                    what: "index series section bytes",
                    limit: MAX_SERIES_SECTION as u64,
                });
            }
            offsets.push(buf.len() as u32);
            put_uvarint(&mut buf, labels.len() as u64);
            for l in labels.iter() {
                let (n, v) = (sym_idx[l.name.as_ref()], sym_idx[l.value.as_ref()]);
                put_uvarint(&mut buf, n);
                put_uvarint(&mut buf, v);
                postings.entry((n, v)).or_default().push(i as u32);
            }
            put_uvarint(&mut buf, chunks.len() as u64);
            let mut prev_max = self.base_t;
            for c in chunks {
                put_varint(&mut buf, c.min_t.wrapping_sub(prev_max));
                put_uvarint(&mut buf, c.max_t.wrapping_sub(c.min_t) as u64);
                put_uvarint(&mut buf, c.chunk_ref);
                put_uvarint(&mut buf, u64::from(c.num_samples));
                prev_max = c.max_t;
            }
        }
        (toc.series_off, toc.series_len) = section(&mut out, &buf);

        // The offsets table is read in place as &[u32]: align it to 4 bytes.
        while out.len() % 4 != 0 {
            out.push(0);
        }
        let table: &[u8] = bytemuck::cast_slice(&offsets);
        toc.offsets_off = out.len() as u64;
        toc.series_count = offsets.len() as u64;
        out.extend_from_slice(table);
        out.extend_from_slice(&crc32fast::hash(table).to_le_bytes());

        let mut keys: Vec<(u64, u64)> = postings.keys().copied().collect();
        keys.sort_unstable();
        buf.clear();
        let mut tbl = Vec::new();
        put_uvarint(&mut tbl, keys.len() as u64);
        for k in &keys {
            let list = &postings[k];
            put_uvarint(&mut tbl, k.0);
            put_uvarint(&mut tbl, k.1);
            put_uvarint(&mut tbl, buf.len() as u64);
            put_uvarint(&mut buf, list.len() as u64);
            let mut prev = 0u32;
            for &id in list {
                put_uvarint(&mut buf, u64::from(id - prev));
                prev = id;
            }
        }
        (toc.postings_off, toc.postings_len) = section(&mut out, &buf);
        (toc.table_off, toc.table_len) = section(&mut out, &tbl);

        let tb = bytemuck::bytes_of(&toc);
        out.extend_from_slice(tb);
        out.extend_from_slice(&crc32fast::hash(tb).to_le_bytes());
        out.extend_from_slice(&INDEX_MAGIC);
        Ok(out)
    }
}

/// Reads a block's index file through a memory map. Every section's CRC is
/// verified at open, so later reads only guard against logic errors.
pub struct IndexReader {
    path: PathBuf,
    map: Mmap,
    toc: Toc,
    /// (offset, len) of each symbol in the map, in sorted order.
    symbols: Vec<(u32, u32)>,
    /// (name symbol, value symbol, postings offset), sorted.
    table: Vec<(u32, u32, u64)>,
}

impl std::fmt::Debug for IndexReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "IndexReader({})", self.path.display())
    }
}

fn section<'a>(path: &Path, data: &'a [u8], off: u64, len: u64, name: &str) -> Result<&'a [u8]> {
    let end = off.checked_add(len).and_then(|e| e.checked_add(4));
    let Some(end) = end.filter(|&e| e <= data.len() as u64) else {
        return Err(Error::corruption(
            path,
            off,
            format!("{name} section out of bounds"),
        ));
    };
    let (off, end) = (off as usize, end as usize);
    let body = &data[off..end - 4];
    let mut c = [0u8; 4];
    c.copy_from_slice(&data[end - 4..end]);
    let expected = u32::from_le_bytes(c);
    let actual = crc32fast::hash(body);
    if expected != actual {
        return Err(Error::ChecksumMismatch {
            file: path.to_path_buf(),
            offset: off as u64,
            expected,
            actual,
        });
    }
    Ok(body)
}

impl IndexReader {
    /// Opens and verifies an index file.
    pub fn open(path: &Path) -> Result<IndexReader> {
        let map = Mmap::open(path)?;
        Self::from_map(path, map)
    }

    fn from_map(path: &Path, map: Mmap) -> Result<IndexReader> {
        let data = map.as_slice();
        if data.len() < 8 + FOOTER_LEN {
            return Err(Error::corruption(path, 0, "index file too short"));
        }
        if data[0..4] != INDEX_MAGIC || data[data.len() - 4..] != INDEX_MAGIC {
            return Err(Error::corruption(path, 0, "bad index magic"));
        }
        if data[4] != INDEX_VERSION {
            return Err(Error::UnsupportedVersion {
                file: path.to_path_buf(),
                found: u32::from(data[4]),
            });
        }
        if data[5..8] != [0, 0, 0] {
            return Err(Error::corruption(
                path,
                5,
                "reserved header bytes are not zero",
            ));
        }
        let foot = data.len() - FOOTER_LEN;
        let tb = &data[foot..foot + TOC_LEN];
        let mut c = [0u8; 4];
        c.copy_from_slice(&data[foot + TOC_LEN..foot + TOC_LEN + 4]);
        let (expected, actual) = (u32::from_le_bytes(c), crc32fast::hash(tb));
        if expected != actual {
            return Err(Error::ChecksumMismatch {
                file: path.to_path_buf(),
                offset: foot as u64,
                expected,
                actual,
            });
        }
        let toc: Toc = bytemuck::pod_read_unaligned(tb);
        if toc.series_count > MAX_SERIES {
            return Err(Error::corruption(
                path,
                foot as u64,
                "series count out of range",
            ));
        }

        let sym = section(path, data, toc.symbols_off, toc.symbols_len, "symbols")?;
        let mut d = Decbuf::new(sym, "index symbols", toc.symbols_off);
        let n = d.uvarint_max(sym.len() as u64)?;
        let mut symbols = Vec::with_capacity(n);
        for _ in 0..n {
            let s = d.str()?;
            let off = toc.symbols_off as usize + d.position() - s.len();
            if let Some(&(po, pl)) = symbols.last() {
                let prev = &data[po as usize..(po + pl) as usize];
                if prev >= s.as_bytes() {
                    return Err(Error::corruption(path, off as u64, "symbols not sorted"));
                }
            }
            symbols.push((off as u32, s.len() as u32));
        }
        if data.len() > u32::MAX as usize && !symbols.is_empty() {
            return Err(Error::corruption(
                path,
                0,
                "index files over 4 GiB are not supported",
            ));
        }

        section(path, data, toc.series_off, toc.series_len, "series")?;
        // Alignment padding before the offsets table: not checksummed, so it must be zero.
        let pad_start = (toc.series_off + toc.series_len + 4) as usize;
        let pad = data
            .get(pad_start..toc.offsets_off as usize)
            .ok_or_else(|| {
                Error::corruption(
                    path,
                    pad_start as u64,
                    "series offsets table overlaps the series section",
                )
            })?;
        if pad.len() >= 4 || pad.iter().any(|&b| b != 0) {
            return Err(Error::corruption(
                path,
                pad_start as u64,
                "bad padding before the series offsets table",
            ));
        }
        let offsets_len = toc.series_count * 4;
        let offs = section(path, data, toc.offsets_off, offsets_len, "series offsets")?;
        if bytemuck::try_cast_slice::<u8, u32>(offs).is_err() {
            return Err(Error::corruption(
                path,
                toc.offsets_off,
                "series offsets table misaligned",
            ));
        }
        section(path, data, toc.postings_off, toc.postings_len, "postings")?;
        let tbl = section(path, data, toc.table_off, toc.table_len, "postings table")?;
        let mut d = Decbuf::new(tbl, "index postings table", toc.table_off);
        let n = d.uvarint_max(tbl.len() as u64)?;
        let mut table = Vec::with_capacity(n);
        // Entries name symbols: with an empty symbol table, any entry is
        // corrupt (and `len - 1` would underflow; found by the block_index
        // fuzz target, fuzz/regressions/block_index/crash-index-dd605f8f).
        let max_sym = (symbols.len() as u64).checked_sub(1);
        for _ in 0..n {
            let Some(max_sym) = max_sym else {
                return Err(d.err("postings table has entries but the symbol table is empty"));
            };
            let name = d.uvarint_max(max_sym)? as u32;
            let value = d.uvarint_max(max_sym)? as u32;
            let off = d.uvarint_max(toc.postings_len)? as u64;
            if let Some(&(pn, pv, _)) = table.last() {
                if (pn, pv) >= (name, value) {
                    return Err(d.err("postings table not sorted"));
                }
            }
            table.push((name, value, off));
        }
        Ok(IndexReader {
            path: path.to_path_buf(),
            map,
            toc,
            symbols,
            table,
        })
    }

    fn data(&self) -> &[u8] {
        self.map.as_slice()
    }

    fn symbol(&self, i: u64) -> Result<&str> {
        let &(o, l) = self
            .symbols
            .get(i as usize)
            .ok_or_else(|| self.err(0, format!("symbol {i} out of range")))?;
        let b = self
            .data()
            .get(o as usize..(o + l) as usize)
            .ok_or_else(|| self.err(u64::from(o), "symbol out of bounds"))?;
        // Validated as UTF-8 at open.
        std::str::from_utf8(b).map_err(|_| self.err(u64::from(o), "invalid utf-8"))
    }

    fn symbol_index(&self, s: &str) -> Option<u32> {
        self.symbols
            .binary_search_by(|&(o, l)| self.data()[o as usize..(o + l) as usize].cmp(s.as_bytes()))
            .ok()
            .map(|i| i as u32)
    }

    fn err(&self, off: u64, reason: impl Into<String>) -> Error {
        Error::corruption(&self.path, off, reason)
    }

    /// Number of series in the block.
    pub fn series_count(&self) -> u64 {
        self.toc.series_count
    }

    /// Labels and chunk metas of series `id`.
    pub fn series(&self, id: u64) -> Result<(Labels, Vec<ChunkMeta>)> {
        if id >= self.toc.series_count {
            return Err(self.err(self.toc.offsets_off, format!("series {id} out of range")));
        }
        let offs = &self.data()[self.toc.offsets_off as usize
            ..(self.toc.offsets_off + self.toc.series_count * 4) as usize];
        let offs: &[u32] = bytemuck::try_cast_slice(offs)
            .map_err(|_| self.err(self.toc.offsets_off, "misaligned"))?;
        let rel = u64::from(offs[id as usize]);
        if rel >= self.toc.series_len {
            return Err(self.err(self.toc.offsets_off + id * 4, "series offset out of range"));
        }
        let start = (self.toc.series_off + rel) as usize;
        let end = (self.toc.series_off + self.toc.series_len) as usize;
        let mut d = Decbuf::new(&self.data()[start..end], "index series", start as u64);
        let nl = d.uvarint_max(d.remaining() as u64 / 2)?;
        let mut labels = Vec::with_capacity(nl);
        for _ in 0..nl {
            let n = self.symbol(d.uvarint()?)?;
            let v = self.symbol(d.uvarint()?)?;
            labels.push(Label {
                name: Arc::from(n),
                value: Arc::from(v),
            });
        }
        let labels =
            Labels::from_sorted(labels).map_err(|e| self.err(start as u64, e.to_string()))?;
        let nc = d.uvarint_max(d.remaining() as u64 / 4)?;
        let mut chunks = Vec::with_capacity(nc);
        let mut prev_max = self.toc.base_t as i64;
        for _ in 0..nc {
            let min_t = prev_max.wrapping_add(d.varint()?);
            let max_t = min_t.wrapping_add(d.uvarint()? as i64);
            let chunk_ref = d.uvarint()?;
            let num_samples = d.uvarint_max(u64::from(u32::MAX))? as u32;
            if max_t < min_t {
                return Err(d.err("chunk max time before min time"));
            }
            chunks.push(ChunkMeta {
                min_t,
                max_t,
                chunk_ref,
                num_samples,
            });
            prev_max = max_t;
        }
        Ok((labels, chunks))
    }

    /// Label names present in the block, sorted.
    pub fn label_names(&self) -> Result<Vec<String>> {
        let mut out: Vec<String> = Vec::new();
        for &(n, _, _) in &self.table {
            if out.last().map(|s| s.as_str()) != Some(self.symbol(u64::from(n))?) {
                out.push(self.symbol(u64::from(n))?.to_string());
            }
        }
        Ok(out)
    }

    fn table_range(&self, name: &str) -> &[(u32, u32, u64)] {
        let Some(n) = self.symbol_index(name) else {
            return &[];
        };
        let lo = self.table.partition_point(|e| e.0 < n);
        let hi = self.table.partition_point(|e| e.0 <= n);
        &self.table[lo..hi]
    }

    fn read_postings(&self, off: u64) -> Result<Vec<u64>> {
        let start = (self.toc.postings_off + off) as usize;
        let end = (self.toc.postings_off + self.toc.postings_len) as usize;
        let mut d = Decbuf::new(&self.data()[start..end], "index postings", start as u64);
        let n = d.uvarint_max(d.remaining() as u64)?;
        let mut out = Vec::with_capacity(n);
        let mut cur = 0u64;
        for i in 0..n {
            let delta = d.uvarint()?;
            if i > 0 && delta == 0 {
                return Err(d.err("postings not strictly increasing"));
            }
            cur = cur
                .checked_add(delta)
                .ok_or_else(|| d.err("postings overflow"))?;
            if cur >= self.toc.series_count {
                return Err(d.err("postings id out of range"));
            }
            out.push(cur);
        }
        Ok(out)
    }
}

impl PostingsSource for IndexReader {
    fn values(&self, name: &str) -> Result<Vec<String>> {
        self.table_range(name)
            .iter()
            .map(|&(_, v, _)| Ok(self.symbol(u64::from(v))?.to_string()))
            .collect()
    }
    fn postings(&self, name: &str, value: &str) -> Result<Vec<u64>> {
        let (Some(n), Some(v)) = (self.symbol_index(name), self.symbol_index(value)) else {
            return Ok(Vec::new());
        };
        match self.table.binary_search_by(|e| (e.0, e.1).cmp(&(n, v))) {
            Ok(i) => self.read_postings(self.table[i].2),
            Err(_) => Ok(Vec::new()),
        }
    }
    fn all(&self) -> Result<Vec<u64>> {
        Ok((0..self.toc.series_count).collect())
    }
}

/// Opens an index file's bytes for fuzzing: arbitrary bytes give an error, never a panic.
pub fn fuzz_index(data: &[u8]) -> Result<()> {
    let r = IndexReader::from_map(Path::new("fuzz-index"), Mmap::from_vec(data.to_vec()))?;
    for id in 0..r.series_count().min(1000) {
        let _ = r.series(id);
    }
    for name in r.label_names()? {
        for v in r.values(&name)? {
            let _ = r.postings(&name, &v);
        }
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn write_index(series: &[Labels]) -> (tempfile::TempDir, IndexReader) {
        let mut w = IndexWriter::new(0);
        let mut sorted = series.to_vec();
        sorted.sort();
        for (i, l) in sorted.iter().enumerate() {
            let c = ChunkMeta {
                min_t: i as i64 * 10,
                max_t: i as i64 * 10 + 5,
                chunk_ref: i as u64,
                num_samples: 3,
            };
            w.add_series(l.clone(), vec![c]).unwrap();
        }
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("index");
        std::fs::write(&p, w.finish().unwrap()).unwrap();
        let r = IndexReader::open(&p).unwrap();
        (dir, r)
    }

    #[test]
    fn index_round_trip_and_matchers() {
        let series: Vec<Labels> = (0..50)
            .map(|i| {
                Labels::new([
                    ("__name__", "m"),
                    ("i", &i.to_string()),
                    ("even", if i % 2 == 0 { "y" } else { "" }),
                ])
                .unwrap()
            })
            .collect();
        let (_d, r) = write_index(&series);
        assert_eq!(r.series_count(), 50);
        let mut sorted = series.clone();
        sorted.sort();
        for (i, l) in sorted.iter().enumerate() {
            let (got, chunks) = r.series(i as u64).unwrap();
            assert_eq!(&got, l);
            assert_eq!(chunks[0].chunk_ref, i as u64);
        }
        assert_eq!(select(&r, &[Matcher::eq("even", "y")]).unwrap().len(), 25);
        assert_eq!(select(&r, &[Matcher::eq("even", "")]).unwrap().len(), 25);
        let re = Matcher::new(MatchType::Regex, "i", "1.*").unwrap();
        assert_eq!(select(&r, &[re]).unwrap().len(), 11);
        let ne = Matcher::new(MatchType::NotEqual, "i", "3").unwrap();
        assert_eq!(select(&r, &[ne]).unwrap().len(), 49);
        assert_eq!(r.label_names().unwrap(), vec!["__name__", "even", "i"]);
    }

    #[test]
    fn flipped_bits_are_detected() {
        let series: Vec<Labels> = (0..20)
            .map(|i| Labels::new([("a", i.to_string())]).unwrap())
            .collect();
        let (d, _) = write_index(&series);
        let p = d.path().join("index");
        let orig = std::fs::read(&p).unwrap();
        for pos in (0..orig.len()).step_by(7) {
            let mut b = orig.clone();
            b[pos] ^= 0x10;
            std::fs::write(&p, &b).unwrap();
            assert!(IndexReader::open(&p).is_err(), "flip at {pos} not detected");
        }
    }
}
