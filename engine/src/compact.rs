//! Compaction: cutting the head into level-1 blocks, planning which adjacent
//! blocks to merge, and merging them (FORMAT.md "Block directory").
//!
//! Crash safety: a merged block is written to a `.tmp` directory and renamed
//! into place before its parents are deleted; its `meta.json` lists the
//! parents, so if the process dies after the rename but before the deletion,
//! the next open sees the parents are superseded and deletes them then.
//! Every source chunk is CRC-checked as it is read: a corrupt block is never
//! merged into a new one.

use crate::block::{is_deleted, Block, BlockMeta, BlockWriter};
use crate::chunk::{self, Encoding};
use crate::error::Result;
use crate::head::Head;
use crate::labels::Labels;
use std::path::Path;
use std::sync::Arc;

/// Block ranges to compact into: `base × 3^i` up to `max` (Prometheus uses the same progression).
pub(crate) fn ranges(base: i64, max: i64) -> Vec<i64> {
    let mut out = vec![base];
    let mut r = base;
    while r.saturating_mul(3) <= max {
        r *= 3;
        out.push(r);
    }
    out
}

/// Picks a group of blocks to merge: the first range (smallest first) with
/// two or more blocks inside one aligned window that is complete, i.e. data
/// newer than the window exists (`newest`), so later blocks will not join it.
/// Returns the indexes of the blocks (sorted by time) to merge and the window.
pub(crate) fn plan(
    metas: &[&BlockMeta],
    ranges: &[i64],
    newest: i64,
) -> Option<(Vec<usize>, i64, i64)> {
    for &r in ranges.iter().skip(1) {
        let mut groups: std::collections::BTreeMap<i64, Vec<usize>> =
            std::collections::BTreeMap::new();
        for (i, m) in metas.iter().enumerate() {
            let start = m.min_time.div_euclid(r) * r;
            if m.max_time <= start + r {
                groups.entry(start).or_default().push(i);
            }
        }
        for (start, idx) in groups {
            if idx.len() >= 2 && newest >= start + r {
                return Some((idx, start, start + r));
            }
        }
    }
    None
}

/// Writes the head's samples in `[min_t, max_t)` as a level-1 block. `None` when there are none.
pub(crate) fn write_head_block(
    parent: &Path,
    head: &Head,
    min_t: i64,
    max_t: i64,
) -> Result<Option<BlockMeta>> {
    let mut series = head.all_series();
    series.sort_by(|a, b| a.labels.cmp_labels(&b.labels));
    let mut w = BlockWriter::create(parent, min_t, max_t, false)?;
    let (mut ts, mut vs) = (Vec::new(), Vec::new());
    for s in &series {
        ts.clear();
        vs.clear();
        let d = s.data.lock();
        for c in d
            .chunks
            .iter()
            .filter(|c| c.max_t >= min_t && c.min_t < max_t)
        {
            chunk::decode(Encoding::Xor, &c.data, &mut ts, &mut vs)?;
        }
        if !d.open.is_empty() && d.open.max_t() >= min_t && d.open.min_t() < max_t {
            chunk::decode(Encoding::Xor, &d.open.to_vec(), &mut ts, &mut vs)?;
        }
        let mut merged = false;
        for (&t, &v) in d.ooo.range(min_t..max_t) {
            ts.push(t);
            vs.push(v);
            merged = true;
        }
        let deleted = d.deleted.clone();
        drop(d);
        finish_series(
            &mut w, &s.labels, &mut ts, &mut vs, min_t, max_t, &deleted, merged,
        )?;
    }
    if w.series_count() == 0 {
        return Ok(None);
    }
    Ok(Some(w.finish(1, Vec::new(), Vec::new())?))
}

/// Clips to `[min_t, max_t)`, sorts and dedups when sources were merged, drops deleted samples, adds the series.
#[allow(clippy::too_many_arguments)]
fn finish_series(
    w: &mut BlockWriter,
    labels: &Labels,
    ts: &mut Vec<i64>,
    vs: &mut Vec<f64>,
    min_t: i64,
    max_t: i64,
    deleted: &[(i64, i64)],
    merged: bool,
) -> Result<()> {
    if merged {
        let mut pairs: Vec<(i64, f64)> = ts.iter().copied().zip(vs.iter().copied()).collect();
        pairs.sort_by_key(|p| p.0);
        pairs.dedup_by_key(|p| p.0);
        ts.clear();
        vs.clear();
        for (t, v) in pairs {
            ts.push(t);
            vs.push(v);
        }
    }
    let mut k = 0;
    for i in 0..ts.len() {
        let t = ts[i];
        if t >= min_t && t < max_t && !is_deleted(deleted, t) {
            ts[k] = t;
            vs[k] = vs[i];
            k += 1;
        }
    }
    ts.truncate(k);
    vs.truncate(k);
    w.add_series(labels, ts, vs)
}

/// Merges blocks (and applies their tombstones) into one new block covering `[min_t, max_t)`.
/// With a single block this rewrites it (used to clean tombstones).
pub(crate) fn merge(
    parent: &Path,
    blocks: &[Arc<Block>],
    min_t: i64,
    max_t: i64,
) -> Result<Option<BlockMeta>> {
    let level = blocks
        .iter()
        .map(|b| b.meta().compaction.level)
        .max()
        .unwrap_or(0)
        + 1;
    let mut sources: Vec<String> = blocks
        .iter()
        .flat_map(|b| b.meta().compaction.sources.clone())
        .collect();
    sources.sort();
    sources.dedup();
    let parents: Vec<String> = blocks.iter().map(|b| b.meta().ulid.clone()).collect();

    let mut w = BlockWriter::create(parent, min_t, max_t, true)?;
    // One cursor per block over its label-sorted series.
    let mut cursors: Vec<(usize, u64, Option<Labels>)> = Vec::new();
    for (i, b) in blocks.iter().enumerate() {
        let first = if b.index().series_count() > 0 {
            Some(b.index().series(0)?.0)
        } else {
            None
        };
        cursors.push((i, 0, first));
    }
    let (mut ts, mut vs) = (Vec::new(), Vec::new());
    // Tombstones are applied per source block as its chunks are read.
    while let Some(min_labels) = cursors
        .iter()
        .filter_map(|c| c.2.as_ref())
        .min_by(|a, b| a.cmp_labels(b))
        .cloned()
    {
        ts.clear();
        vs.clear();
        let mut sources_here = 0;
        for c in cursors.iter_mut() {
            if c.2.as_ref() != Some(&min_labels) {
                continue;
            }
            let b = &blocks[c.0];
            let (_, metas) = b.index().series(c.1)?;
            let tomb = b.tombstones_for(c.1);
            let (mut bts, mut bvs) = (Vec::new(), Vec::new());
            for m in &metas {
                b.read_chunk(m.chunk_ref, &mut bts, &mut bvs)?;
            }
            for (t, v) in bts.into_iter().zip(bvs) {
                if !is_deleted(&tomb, t) {
                    ts.push(t);
                    vs.push(v);
                }
            }
            sources_here += 1;
            c.1 += 1;
            c.2 = if c.1 < b.index().series_count() {
                Some(b.index().series(c.1)?.0)
            } else {
                None
            };
        }
        finish_series(
            &mut w,
            &min_labels,
            &mut ts,
            &mut vs,
            min_t,
            max_t,
            &[],
            sources_here > 1,
        )?;
    }
    if w.series_count() == 0 {
        return Ok(None);
    }
    Ok(Some(w.finish(level, sources, parents)?))
}
