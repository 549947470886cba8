//! Retention: which blocks to delete by age and by total size.
//!
//! Age is measured back from the newest data in the store (head or blocks),
//! as Prometheus does, never from the wall clock: backfilled history is not
//! dropped on arrival, and a store that stops receiving data keeps it.
//! Only whole blocks are deleted, oldest first; the WAL and the head are
//! never deleted to make room (their size is bounded by the head window).

use crate::block::Block;
use std::sync::Arc;

/// ULIDs of the blocks to delete.
///
/// - time: a block is deleted once it lies wholly before `newest - retention_ms`;
/// - size: walking from the newest block back, once the running total of block
///   sizes exceeds `retention_bytes`, that block and every older one go.
pub(crate) fn expired(
    blocks: &[Arc<Block>],
    newest: i64,
    retention_ms: Option<i64>,
    retention_bytes: Option<u64>,
) -> Vec<String> {
    let mut sorted: Vec<&Arc<Block>> = blocks.iter().collect();
    sorted.sort_by_key(|b| std::cmp::Reverse(b.meta().max_time));
    let mut out = Vec::new();
    let mut total = 0u64;
    for b in sorted {
        let m = b.meta();
        total += b.size();
        let too_old = retention_ms.is_some_and(|r| m.max_time <= newest.saturating_sub(r));
        let too_big = retention_bytes.is_some_and(|lim| total > lim);
        if too_old || too_big {
            out.push(m.ulid.clone());
        }
    }
    out
}
