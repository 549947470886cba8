//! The querier: series selected by matchers over a time range, merged across
//! the head and the blocks, sorted by labels and deduplicated, with samples
//! streamed chunk by chunk (never a whole series at once).
//!
//! Overlaps (a head chunk that straddles a block boundary, out-of-order
//! samples, overlapping blocks) are merged by timestamp; where two sources
//! hold the same timestamp the first one seen wins.

use crate::block::{is_deleted, Block, Interval};
use crate::chunk::{self, Encoding};
use crate::error::Result;
use crate::head::Head;
use crate::labels::{Labels, Matcher};
use std::sync::Arc;

/// Where a chunk's bytes are.
#[derive(Clone)]
enum ChunkData {
    /// Head chunk bytes (Gorilla).
    Mem(Arc<[u8]>),
    /// A block chunk reference.
    Block(Arc<Block>, u64),
    /// Loose samples (the head's out-of-order buffer).
    Samples(Arc<[(i64, f64)]>),
}

#[derive(Clone)]
struct ChunkRef {
    data: ChunkData,
    min_t: i64,
    max_t: i64,
    deleted: Arc<[Interval]>,
}

impl ChunkRef {
    fn decode(&self, ts: &mut Vec<i64>, vs: &mut Vec<f64>) -> Result<()> {
        let t0 = ts.len();
        match &self.data {
            ChunkData::Mem(b) => chunk::decode(Encoding::Xor, b, ts, vs)?,
            ChunkData::Block(b, r) => b.read_chunk(*r, ts, vs)?,
            ChunkData::Samples(s) => {
                for &(t, v) in s.iter() {
                    ts.push(t);
                    vs.push(v);
                }
            }
        }
        if !self.deleted.is_empty() {
            let mut w = t0;
            for r in t0..ts.len() {
                if !is_deleted(&self.deleted, ts[r]) {
                    ts[w] = ts[r];
                    vs[w] = vs[r];
                    w += 1;
                }
            }
            ts.truncate(w);
            vs.truncate(w);
        }
        Ok(())
    }
}

/// One selected series.
#[derive(Clone)]
pub struct Series {
    /// Its labels.
    pub labels: Labels,
    chunks: Vec<ChunkRef>,
    min_t: i64,
    max_t: i64,
}

impl std::fmt::Debug for Series {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Series({}, {} chunks)", self.labels, self.chunks.len())
    }
}

impl Series {
    /// A streaming iterator over the series' samples in `[min_t, max_t]` of the query.
    pub fn iter(&self) -> SampleIter {
        SampleIter {
            chunks: self.chunks.clone(),
            next: 0,
            min_t: self.min_t,
            max_t: self.max_t,
            ts: Vec::new(),
            vs: Vec::new(),
            pairs: Vec::new(),
        }
    }

    /// Appends all the series' samples in `[min_t, max_t]` of the query to
    /// `ts`/`vs`, decoding each chunk straight into them (no batch copies;
    /// reuse the vectors across series to avoid reallocations).
    pub fn read_into(&self, ts: &mut Vec<i64>, vs: &mut Vec<f64>) -> Result<()> {
        let mut pairs = Vec::new();
        let mut first = 0;
        while first < self.chunks.len() {
            let end = group_end(&self.chunks, first);
            let g0 = ts.len();
            decode_group(&self.chunks[first..end], ts, vs, &mut pairs)?;
            first = end;
            // Only the first and last groups can reach outside the range.
            let lo = g0 + ts[g0..].partition_point(|&t| t < self.min_t);
            let hi = (g0 + ts[g0..].partition_point(|&t| t <= self.max_t)).max(lo);
            if lo > g0 {
                ts.copy_within(lo..hi, g0);
                vs.copy_within(lo..hi, g0);
            }
            ts.truncate(g0 + (hi - lo));
            vs.truncate(g0 + (hi - lo));
        }
        Ok(())
    }

    /// Number of chunks the samples come from (for limits and stats).
    pub fn chunk_count(&self) -> usize {
        self.chunks.len()
    }
}

/// Streams a series' samples in batches (one decoded chunk, or one merged group of overlapping chunks, at a time).
pub struct SampleIter {
    chunks: Vec<ChunkRef>,
    next: usize,
    min_t: i64,
    max_t: i64,
    ts: Vec<i64>,
    vs: Vec<f64>,
    pairs: Vec<(i64, f64)>,
}

impl SampleIter {
    /// The next batch of samples in time order, or `None` at the end.
    pub fn next_batch(&mut self) -> Result<Option<(&[i64], &[f64])>> {
        loop {
            if self.next >= self.chunks.len() {
                return Ok(None);
            }
            let end = group_end(&self.chunks, self.next);
            self.ts.clear();
            self.vs.clear();
            decode_group(
                &self.chunks[self.next..end],
                &mut self.ts,
                &mut self.vs,
                &mut self.pairs,
            )?;
            self.next = end;
            let lo = self.ts.partition_point(|&t| t < self.min_t);
            let hi = self.ts.partition_point(|&t| t <= self.max_t);
            if lo < hi {
                return Ok(Some((&self.ts[lo..hi], &self.vs[lo..hi])));
            }
        }
    }

    /// Collects everything left (tests and small reads).
    pub fn collect_all(mut self) -> Result<Vec<(i64, f64)>> {
        let mut out = Vec::new();
        while let Some((ts, vs)) = self.next_batch()? {
            out.extend(ts.iter().copied().zip(vs.iter().copied()));
        }
        Ok(out)
    }
}

/// The end of the group of chunks starting at `first`: chunks whose time
/// ranges overlap (transitively) are decoded and merged together.
fn group_end(chunks: &[ChunkRef], first: usize) -> usize {
    let mut end = first + 1;
    let mut group_max = chunks[first].max_t;
    while end < chunks.len() && chunks[end].min_t <= group_max {
        group_max = group_max.max(chunks[end].max_t);
        end += 1;
    }
    end
}

/// Appends the samples of one group of chunks to `ts`/`vs` in time order;
/// a single chunk is decoded in place, overlapping ones are merged (for equal
/// timestamps the earlier source, by chunk order, wins).
fn decode_group(
    group: &[ChunkRef],
    ts: &mut Vec<i64>,
    vs: &mut Vec<f64>,
    pairs: &mut Vec<(i64, f64)>,
) -> Result<()> {
    if let [one] = group {
        return one.decode(ts, vs);
    }
    pairs.clear();
    let (mut cts, mut cvs) = (Vec::new(), Vec::new());
    for c in group {
        cts.clear();
        cvs.clear();
        c.decode(&mut cts, &mut cvs)?;
        pairs.extend(cts.iter().copied().zip(cvs.iter().copied()));
    }
    pairs.sort_by_key(|p| p.0);
    pairs.dedup_by_key(|p| p.0);
    ts.extend(pairs.iter().map(|p| p.0));
    vs.extend(pairs.iter().map(|p| p.1));
    Ok(())
}

/// A read view over `[min_t, max_t]` (inclusive) of the head and the blocks
/// that existed when it was made. Blocks stay readable while a querier holds
/// them, even if compaction or retention removes them meanwhile.
pub struct Querier {
    head: Arc<Head>,
    blocks: Vec<Arc<Block>>,
    min_t: i64,
    max_t: i64,
}

impl Querier {
    pub(crate) fn new(head: Arc<Head>, blocks: Vec<Arc<Block>>, min_t: i64, max_t: i64) -> Querier {
        let blocks = blocks
            .into_iter()
            .filter(|b| b.meta().max_time > min_t && b.meta().min_time <= max_t)
            .collect();
        Querier {
            head,
            blocks,
            min_t,
            max_t,
        }
    }

    fn head_overlaps(&self) -> bool {
        let (hmin, hmax) = (self.head.min_t(), self.head.max_t());
        hmin <= hmax && hmax >= self.min_t && hmin <= self.max_t
    }

    /// Series matching all matchers with samples in range, sorted by labels.
    pub fn select(&self, matchers: &[Matcher]) -> Result<Vec<Series>> {
        let (min_t, max_t) = (self.min_t, self.max_t);
        let overlaps = |a: i64, b: i64| b >= min_t && a <= max_t;
        let mut all: Vec<Series> = Vec::new();
        for b in &self.blocks {
            for id in b.select_ids(matchers)? {
                let (labels, metas) = b.index().series(id)?;
                let deleted: Arc<[Interval]> = b.tombstones_for(id).into();
                let chunks: Vec<ChunkRef> = metas
                    .iter()
                    .filter(|m| overlaps(m.min_t, m.max_t))
                    .map(|m| ChunkRef {
                        data: ChunkData::Block(b.clone(), m.chunk_ref),
                        min_t: m.min_t,
                        max_t: m.max_t,
                        deleted: deleted.clone(),
                    })
                    .collect();
                if !chunks.is_empty() {
                    all.push(Series {
                        labels,
                        chunks,
                        min_t,
                        max_t,
                    });
                }
            }
        }
        if self.head_overlaps() {
            for s in self.head.select(matchers)? {
                let d = s.data.lock();
                let deleted: Arc<[Interval]> = d.deleted.clone().into();
                let mut chunks: Vec<ChunkRef> = d
                    .chunks
                    .iter()
                    .filter(|c| overlaps(c.min_t, c.max_t))
                    .map(|c| ChunkRef {
                        data: ChunkData::Mem(c.data.clone()),
                        min_t: c.min_t,
                        max_t: c.max_t,
                        deleted: deleted.clone(),
                    })
                    .collect();
                if !d.open.is_empty() && overlaps(d.open.min_t(), d.open.max_t()) {
                    chunks.push(ChunkRef {
                        data: ChunkData::Mem(Arc::from(d.open.to_vec())),
                        min_t: d.open.min_t(),
                        max_t: d.open.max_t(),
                        deleted: deleted.clone(),
                    });
                }
                let ooo: Vec<(i64, f64)> =
                    d.ooo.range(min_t..=max_t).map(|(&t, &v)| (t, v)).collect();
                drop(d);
                if let (Some(&(a, _)), Some(&(b, _))) = (ooo.first(), ooo.last()) {
                    chunks.push(ChunkRef {
                        data: ChunkData::Samples(ooo.into()),
                        min_t: a,
                        max_t: b,
                        deleted,
                    });
                }
                if !chunks.is_empty() {
                    all.push(Series {
                        labels: s.labels.clone(),
                        chunks,
                        min_t,
                        max_t,
                    });
                }
            }
        }
        all.sort_by(|a, b| a.labels.cmp_labels(&b.labels));
        let mut out: Vec<Series> = Vec::with_capacity(all.len());
        for s in all {
            match out.last_mut() {
                Some(last) if last.labels == s.labels => last.chunks.extend(s.chunks),
                _ => out.push(s),
            }
        }
        for s in &mut out {
            s.chunks.sort_by_key(|c| c.min_t);
        }
        Ok(out)
    }

    /// The label sets of matching series, sorted and unique, from the index
    /// alone (no chunk is touched; as in Prometheus a series may be listed
    /// without a sample inside the range, when its block or head overlaps it).
    pub fn select_labels(&self, matchers: &[Matcher]) -> Result<Vec<Labels>> {
        let mut all: Vec<Labels> = Vec::new();
        for b in &self.blocks {
            for id in b.select_ids(matchers)? {
                all.push(b.index().series(id)?.0);
            }
        }
        if self.head_overlaps() {
            all.extend(
                self.head
                    .select(matchers)?
                    .into_iter()
                    .map(|s| s.labels.clone()),
            );
        }
        all.sort_unstable_by(|a, b| a.cmp_labels(b));
        all.dedup();
        Ok(all)
    }

    /// Label names, sorted; with matchers, only those of matching series.
    pub fn label_names(&self, matchers: &[Matcher]) -> Result<Vec<String>> {
        let mut names: Vec<String> = Vec::new();
        if matchers.is_empty() {
            for b in &self.blocks {
                names.extend(b.index().label_names()?);
            }
            if self.head_overlaps() {
                names.extend(self.head.label_names());
            }
        } else {
            for s in self.select(matchers)? {
                names.extend(s.labels.iter().map(|l| l.name.to_string()));
            }
        }
        names.sort();
        names.dedup();
        Ok(names)
    }

    /// Values of label `name`, sorted; with matchers, only those of matching series.
    pub fn label_values(&self, name: &str, matchers: &[Matcher]) -> Result<Vec<String>> {
        let mut values: Vec<String> = Vec::new();
        if matchers.is_empty() {
            for b in &self.blocks {
                values.extend(b.label_values(name)?);
            }
            if self.head_overlaps() {
                values.extend(self.head.label_values(name)?);
            }
        } else {
            for s in self.select(matchers)? {
                if let Some(v) = s.labels.get(name) {
                    values.push(v.to_string());
                }
            }
        }
        values.sort();
        values.dedup();
        Ok(values)
    }
}
