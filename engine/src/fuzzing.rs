//! Entry points for the cargo-fuzz targets in `fuzz/` (one per decoder of
//! untrusted bytes). The same functions replay the committed regression
//! inputs in `fuzz/regressions/<target>/` during an ordinary `cargo test`.
//! Each must return (Ok or Err) for any input: a panic is a bug.

use crate::chunk::{self, Encoding};

/// WAL segment framing and every record payload inside it.
pub fn wal_segment(data: &[u8]) {
    if let Ok(records) = crate::wal::decode_segment(data) {
        for r in records {
            let _ = crate::record::decode(&r);
        }
    }
    let _ = crate::record::decode(data);
}

/// Chunk decoding in every encoding, plus the sample-count header.
pub fn chunk_decode(data: &[u8]) {
    for enc in [Encoding::Xor, Encoding::Cold] {
        let (mut ts, mut vs) = (Vec::new(), Vec::new());
        let _ = chunk::num_samples(enc, data);
        let _ = chunk::decode(enc, data, &mut ts, &mut vs);
    }
}

/// Block index file reading (TOC, symbols, series, postings) and tombstones.
pub fn block_index(data: &[u8]) {
    let _ = crate::index::fuzz_index(data);
    let _ = crate::block::decode_tombstones(std::path::Path::new("fuzz-tombstones"), data);
}

/// A block's meta.json.
pub fn block_meta(data: &[u8]) {
    let _ = crate::block::parse_meta(std::path::Path::new("fuzz/meta.json"), data);
}

/// A fuzz entry point.
pub type Target = fn(&[u8]);

/// The fuzz targets by name, for the regression replay test.
pub const TARGETS: &[(&str, Target)] = &[
    ("wal_segment", wal_segment),
    ("chunk_decode", chunk_decode),
    ("block_index", block_index),
    ("block_meta", block_meta),
];
