//! Immutable blocks: a directory named by a ULID holding `meta.json`,
//! `chunks/NNNNNN` segment files, an `index` and optionally `tombstones`
//! (FORMAT.md "Block directory", "Chunk files", "Tombstones").
//!
//! A block is written into `<ulid>.tmp`, every file fsynced, then renamed to
//! `<ulid>` and the parent directory fsynced: a crash leaves either no block
//! or a complete one (leftover `.tmp` dirs are removed at open). Readers map
//! the files with memmap2 and verify checksums before serving anything.

use crate::chunk::{self, Encoding};
use crate::encoding::{put_uvarint, put_varint, Decbuf};
use crate::error::{Error, Result};
use crate::index::{self, ChunkMeta, IndexReader, IndexWriter, PostingsSource};
use crate::io::{self, mmap::Mmap};
use crate::labels::{Labels, Matcher};
use parking_lot::RwLock;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Magic at the start of a chunk segment file (FORMAT.md "Chunk files").
pub const CHUNKS_MAGIC: [u8; 4] = *b"SNCK";
/// Chunk file format version written (FORMAT.md "Chunk files"): 2 since
/// cold chunks use value modes 3 and 4, so a build that only knows version 1
/// refuses the file instead of failing to decode its chunks.
pub const CHUNKS_VERSION: u8 = 2;
/// Oldest chunk file version still read.
pub const CHUNKS_VERSION_MIN: u8 = 1;
/// A chunk segment file is closed once it passes this size (FORMAT.md "Chunk files").
pub const CHUNK_SEGMENT_SIZE: u64 = 512 << 20;
/// Most samples in one block chunk: bigger chunks compress better, smaller ones decode less for short ranges.
pub const MAX_BLOCK_CHUNK_SAMPLES: usize = 8192;
/// Magic at the start of a tombstones file (FORMAT.md "Tombstones").
pub const TOMBSTONES_MAGIC: [u8; 4] = *b"SNTB";
/// Tombstones file format version.
pub const TOMBSTONES_VERSION: u8 = 1;
/// meta.json format version (FORMAT.md "meta.json").
pub const META_VERSION: u32 = 1;

/// An inclusive deleted time interval.
pub type Interval = (i64, i64);

/// `meta.json`: what a block covers and where it came from.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BlockMeta {
    /// The block's ULID (also its directory name).
    pub ulid: String,
    /// First timestamp covered (inclusive).
    pub min_time: i64,
    /// End of the covered range (exclusive).
    pub max_time: i64,
    /// Counts.
    pub stats: BlockStats,
    /// Lineage.
    pub compaction: Compaction,
    /// Format version of meta.json.
    pub version: u32,
}

/// Counts of a block.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct BlockStats {
    /// Samples.
    pub num_samples: u64,
    /// Series.
    pub num_series: u64,
    /// Chunks.
    pub num_chunks: u64,
}

/// Compaction lineage of a block.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Compaction {
    /// 1 for a block cut from the head, +1 per compaction.
    pub level: u32,
    /// ULIDs of the level-1 blocks whose data this block holds.
    pub sources: Vec<String>,
    /// ULIDs of the blocks merged into this one (deleted after it is in place).
    #[serde(default)]
    pub parents: Vec<String>,
}

/// Writes a new block. Series must be added in label order.
pub(crate) struct BlockWriter {
    parent: PathBuf,
    tmp: PathBuf,
    ulid: String,
    min_t: i64,
    max_t: i64,
    seg: u32,
    seg_off: u64,
    chunk_file: Option<BufWriter<io::fs::SeqFile>>,
    index: IndexWriter,
    stats: BlockStats,
    scratch: Vec<u8>,
    zstd_level: i32,
}

impl BlockWriter {
    /// Starts a block covering `[min_t, max_t)` in `parent`. Blocks cut from
    /// the head use the fast zstd level; merged blocks, written once and kept
    /// for weeks, use [`chunk::ZSTD_LEVEL_COLDEST`].
    pub(crate) fn create(
        parent: &Path,
        min_t: i64,
        max_t: i64,
        merged: bool,
    ) -> Result<BlockWriter> {
        let ulid = ulid::Ulid::new().to_string();
        let tmp = parent.join(format!("{ulid}.tmp"));
        if let Err(e) = io::fs::create_dir_all(&tmp.join("chunks")) {
            // The block directory may exist without its `chunks`.
            let _ = io::fs::remove_dir_all(&tmp);
            return Err(Error::io("create block dir", &tmp, e));
        }
        let mut w = BlockWriter {
            parent: parent.to_path_buf(),
            tmp,
            ulid,
            min_t,
            max_t,
            seg: 0,
            seg_off: 0,
            chunk_file: None,
            index: IndexWriter::new(min_t),
            stats: BlockStats::default(),
            scratch: Vec::new(),
            zstd_level: if merged {
                chunk::ZSTD_LEVEL_COLDEST
            } else {
                chunk::cold::ZSTD_LEVEL
            },
        };
        w.next_segment()?;
        Ok(w)
    }

    fn seg_path(&self, seg: u32) -> PathBuf {
        self.tmp.join("chunks").join(format!("{seg:06}"))
    }

    fn close_segment(&mut self) -> Result<()> {
        if let Some(f) = self.chunk_file.take() {
            let path = self.seg_path(self.seg);
            let f = f
                .into_inner()
                .map_err(|e| Error::io("flush chunk file", &path, e.into_error()))?;
            io::sync_file(f.file(), &path)?;
        }
        Ok(())
    }

    fn next_segment(&mut self) -> Result<()> {
        self.close_segment()?;
        self.seg += 1;
        let path = self.seg_path(self.seg);
        let f =
            io::fs::SeqFile::create(&path).map_err(|e| Error::io("create chunk file", &path, e))?;
        let mut f = BufWriter::with_capacity(1 << 20, f);
        f.write_all(&CHUNKS_MAGIC)
            .map_err(|e| Error::io("write chunk file", &path, e))?;
        f.write_all(&[CHUNKS_VERSION, 0, 0, 0])
            .map_err(|e| Error::io("write chunk file", &path, e))?;
        self.seg_off = 8;
        self.chunk_file = Some(f);
        Ok(())
    }

    fn write_chunk(&mut self, enc: Encoding, data: &[u8]) -> Result<u64> {
        if self.seg_off > CHUNK_SEGMENT_SIZE {
            self.next_segment()?;
        }
        self.scratch.clear();
        put_uvarint(&mut self.scratch, data.len() as u64);
        let mut crc = crc32fast::Hasher::new();
        crc.update(&[enc as u8]);
        crc.update(data);
        let r = (u64::from(self.seg) << 32) | self.seg_off;
        let path = self.seg_path(self.seg);
        let f = self
            .chunk_file
            .as_mut()
            .ok_or_else(|| Error::corruption(&path, 0, "chunk file closed"))?;
        let res = (|| {
            f.write_all(&self.scratch)?;
            f.write_all(&[enc as u8])?;
            f.write_all(data)?;
            f.write_all(&crc.finalize().to_le_bytes())
        })();
        res.map_err(|e| Error::io("write chunk file", &path, e))?;
        self.seg_off += (self.scratch.len() + 1 + data.len() + 4) as u64;
        Ok(r)
    }

    /// Adds a series with its samples (sorted by time, within the block range).
    pub(crate) fn add_series(&mut self, labels: &Labels, ts: &[i64], vs: &[f64]) -> Result<()> {
        if ts.is_empty() {
            return Ok(());
        }
        let mut metas = Vec::with_capacity(ts.len().div_ceil(MAX_BLOCK_CHUNK_SAMPLES));
        for (cts, cvs) in ts
            .chunks(MAX_BLOCK_CHUNK_SAMPLES)
            .zip(vs.chunks(MAX_BLOCK_CHUNK_SAMPLES))
        {
            let data = chunk::encode_cold_level(cts, cvs, self.zstd_level)?;
            let chunk_ref = self.write_chunk(Encoding::Cold, &data)?;
            metas.push(ChunkMeta {
                min_t: cts[0],
                max_t: cts[cts.len() - 1],
                chunk_ref,
                num_samples: cts.len() as u32,
            });
        }
        self.stats.num_samples += ts.len() as u64;
        self.stats.num_chunks += metas.len() as u64;
        self.stats.num_series += 1;
        self.index.add_series(labels.clone(), metas)
    }

    /// Number of series added so far.
    pub(crate) fn series_count(&self) -> usize {
        self.index.series_count()
    }

    /// Writes the index and meta.json, fsyncs and renames the block into place.
    pub(crate) fn finish(
        mut self,
        level: u32,
        sources: Vec<String>,
        parents: Vec<String>,
    ) -> Result<BlockMeta> {
        self.close_segment()?;
        let index = std::mem::replace(&mut self.index, IndexWriter::new(self.min_t));
        let ipath = self.tmp.join("index");
        write_synced(&ipath, &index.finish()?)?;
        let sources = if sources.is_empty() {
            vec![self.ulid.clone()]
        } else {
            sources
        };
        let meta = BlockMeta {
            ulid: self.ulid.clone(),
            min_time: self.min_t,
            max_time: self.max_t,
            stats: std::mem::take(&mut self.stats),
            compaction: Compaction {
                level,
                sources,
                parents,
            },
            version: META_VERSION,
        };
        let json = serde_json::to_vec_pretty(&meta)
            .map_err(|e| Error::corruption(&self.tmp, 0, e.to_string()))?;
        write_synced(&self.tmp.join("meta.json"), &json)?;
        io::sync_dir(&self.tmp.join("chunks"))?;
        io::sync_dir(&self.tmp)?;
        let dst = self.parent.join(&self.ulid);
        io::rename_durable(&self.tmp, &dst)?;
        Ok(meta)
    }
}

impl Drop for BlockWriter {
    fn drop(&mut self) {
        // An unfinished block leaves nothing behind (finish() renamed it otherwise).
        if self.tmp.exists() {
            let _ = io::fs::remove_dir_all(&self.tmp);
        }
    }
}

fn write_synced(path: &Path, data: &[u8]) -> Result<()> {
    let f = io::fs::create(path).map_err(|e| Error::io("create", path, e))?;
    io::fs::write_all_at(&f, path, data, 0).map_err(|e| Error::io("write", path, e))?;
    io::sync_file(&f, path)
}

/// An open, verified block.
pub struct Block {
    dir: PathBuf,
    meta: BlockMeta,
    index: IndexReader,
    chunks: Vec<Mmap>,
    tombstones: RwLock<HashMap<u64, Vec<Interval>>>,
    size: u64,
}

impl std::fmt::Debug for Block {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Block({})", self.dir.display())
    }
}

/// Parses and checks a block's `meta.json` (version, time range).
pub fn parse_meta(mpath: &Path, raw: &[u8]) -> Result<BlockMeta> {
    let meta: BlockMeta = serde_json::from_slice(raw)
        .map_err(|e| Error::corruption(mpath, e.column() as u64, e.to_string()))?;
    if meta.version != META_VERSION {
        return Err(Error::UnsupportedVersion {
            file: mpath.to_path_buf(),
            found: meta.version,
        });
    }
    if meta.max_time < meta.min_time {
        return Err(Error::corruption(mpath, 0, "maxTime before minTime"));
    }
    Ok(meta)
}

impl Block {
    /// Opens a block directory, checking meta.json, the index checksums and the chunk file headers.
    pub fn open(dir: &Path) -> Result<Block> {
        let mpath = dir.join("meta.json");
        let raw = std::fs::read(&mpath).map_err(|e| Error::io("read", &mpath, e))?;
        let meta = parse_meta(&mpath, &raw)?;
        if dir.file_name().and_then(|n| n.to_str()) != Some(meta.ulid.as_str()) {
            return Err(Error::corruption(
                &mpath,
                0,
                "ulid does not match the directory name",
            ));
        }
        let index = IndexReader::open(&dir.join("index"))?;
        let mut chunks = Vec::new();
        let cdir = dir.join("chunks");
        for seg in 1.. {
            let p = cdir.join(format!("{seg:06}"));
            if !p.exists() {
                break;
            }
            let m = Mmap::open(&p)?;
            let b = m.as_slice();
            if b.len() < 8 || b[0..4] != CHUNKS_MAGIC {
                return Err(Error::corruption(&p, 0, "bad chunk file header"));
            }
            if !(CHUNKS_VERSION_MIN..=CHUNKS_VERSION).contains(&b[4]) {
                return Err(Error::UnsupportedVersion {
                    file: p,
                    found: u32::from(b[4]),
                });
            }
            chunks.push(m);
        }
        if chunks.is_empty() {
            return Err(Error::corruption(&cdir, 0, "block has no chunk files"));
        }
        let tombstones = read_tombstones(&dir.join("tombstones"))?;
        let size = io::dir_size(dir)?;
        Ok(Block {
            dir: dir.to_path_buf(),
            meta,
            index,
            chunks,
            tombstones: RwLock::new(tombstones),
            size,
        })
    }

    /// The block's metadata.
    pub fn meta(&self) -> &BlockMeta {
        &self.meta
    }

    /// The block directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Bytes on disk.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The index reader.
    pub fn index(&self) -> &IndexReader {
        &self.index
    }

    /// Whether any tombstones exist.
    pub fn has_tombstones(&self) -> bool {
        !self.tombstones.read().is_empty()
    }

    /// Deleted intervals of series `id`.
    pub fn tombstones_for(&self, id: u64) -> Vec<Interval> {
        self.tombstones.read().get(&id).cloned().unwrap_or_default()
    }

    /// The raw bytes of a chunk, CRC-verified. Errors name the block file and offset.
    pub fn chunk(&self, chunk_ref: u64) -> Result<(Encoding, &[u8])> {
        let seg = (chunk_ref >> 32) as usize;
        let off = (chunk_ref & 0xffff_ffff) as usize;
        let path = || self.dir.join("chunks").join(format!("{seg:06}"));
        let m = seg
            .checked_sub(1)
            .and_then(|i| self.chunks.get(i))
            .ok_or_else(|| Error::corruption(path(), off as u64, "chunk segment does not exist"))?;
        let b = m.as_slice();
        let rest = b.get(off..).ok_or_else(|| {
            Error::corruption(path(), off as u64, "chunk offset beyond end of file")
        })?;
        let mut d = Decbuf::new(rest, "chunk", off as u64);
        let len = d
            .uvarint_max(rest.len() as u64)
            .map_err(|_| Error::corruption(path(), off as u64, "bad chunk length"))?;
        let start = d.position();
        let body = rest.get(start..start + 1 + len).ok_or_else(|| {
            Error::corruption(path(), off as u64, "chunk extends beyond end of file")
        })?;
        let crc_b = rest.get(start + 1 + len..start + 5 + len).ok_or_else(|| {
            Error::corruption(path(), off as u64, "chunk checksum beyond end of file")
        })?;
        let expected = u32::from_le_bytes([crc_b[0], crc_b[1], crc_b[2], crc_b[3]]);
        let actual = crc32fast::hash(body);
        if expected != actual {
            return Err(Error::ChecksumMismatch {
                file: path(),
                offset: off as u64,
                expected,
                actual,
            });
        }
        let enc = Encoding::from_u8(body[0]).ok_or_else(|| {
            Error::corruption(
                path(),
                off as u64,
                format!("unknown chunk encoding {}", body[0]),
            )
        })?;
        Ok((enc, &body[1..]))
    }

    /// Decodes a chunk into `ts`/`vs` (appending). Errors name the block file and offset.
    pub fn read_chunk(&self, chunk_ref: u64, ts: &mut Vec<i64>, vs: &mut Vec<f64>) -> Result<()> {
        let (enc, data) = self.chunk(chunk_ref)?;
        chunk::decode(enc, data, ts, vs).map_err(|e| {
            let seg = chunk_ref >> 32;
            Error::corruption(
                self.dir.join("chunks").join(format!("{seg:06}")),
                chunk_ref & 0xffff_ffff,
                format!("decode chunk: {e}"),
            )
        })
    }

    /// Ids of the series matching the matchers, in label order.
    pub(crate) fn select_ids(&self, matchers: &[Matcher]) -> Result<Vec<u64>> {
        index::select(&self.index, matchers)
    }

    /// Label values of `name`.
    pub(crate) fn label_values(&self, name: &str) -> Result<Vec<String>> {
        self.index.values(name)
    }

    /// Records deletions for matching series and persists the tombstones file atomically.
    pub(crate) fn delete(&self, matchers: &[Matcher], min_t: i64, max_t: i64) -> Result<usize> {
        if max_t < self.meta.min_time || min_t >= self.meta.max_time {
            return Ok(0);
        }
        let ids = self.select_ids(matchers)?;
        if ids.is_empty() {
            return Ok(0);
        }
        let mut t = self.tombstones.write();
        let mut next = t.clone();
        for &id in &ids {
            next.entry(id).or_default().push((min_t, max_t));
        }
        write_tombstones(&self.dir.join("tombstones"), &next)?;
        *t = next;
        Ok(ids.len())
    }

    /// Copies the block into `dst/<ulid>` using hard links (snapshots).
    pub(crate) fn link_into(&self, dst: &Path) -> Result<()> {
        let target = dst.join(&self.meta.ulid);
        io::fs::create_dir_all(&target.join("chunks"))
            .map_err(|e| Error::io("create snapshot dir", &target, e))?;
        for rel in ["meta.json", "index", "tombstones"] {
            let src = self.dir.join(rel);
            if src.exists() {
                io::fs::hard_link(&src, &target.join(rel))
                    .map_err(|e| Error::io("link", &src, e))?;
            }
        }
        for seg in 1..=self.chunks.len() {
            let src = self.dir.join("chunks").join(format!("{seg:06}"));
            io::fs::hard_link(&src, &target.join("chunks").join(format!("{seg:06}")))
                .map_err(|e| Error::io("link", &src, e))?;
        }
        Ok(())
    }
}

fn write_tombstones(path: &Path, t: &HashMap<u64, Vec<Interval>>) -> Result<()> {
    let mut buf = Vec::new();
    buf.extend_from_slice(&TOMBSTONES_MAGIC);
    buf.extend_from_slice(&[TOMBSTONES_VERSION, 0, 0, 0]);
    let mut keys: Vec<&u64> = t.keys().collect();
    keys.sort();
    let n: usize = t.values().map(|v| v.len()).sum();
    put_uvarint(&mut buf, n as u64);
    for k in keys {
        for &(a, b) in &t[k] {
            put_uvarint(&mut buf, *k);
            put_varint(&mut buf, a);
            put_varint(&mut buf, b);
        }
    }
    let crc = crc32fast::hash(&buf);
    buf.extend_from_slice(&crc.to_le_bytes());
    io::write_atomic(path, &buf)
}

/// Parses a tombstones file's bytes.
pub fn decode_tombstones(path: &Path, b: &[u8]) -> Result<HashMap<u64, Vec<Interval>>> {
    if b.len() < 12 || b[0..4] != TOMBSTONES_MAGIC {
        return Err(Error::corruption(path, 0, "bad tombstones header"));
    }
    if b[4] != TOMBSTONES_VERSION {
        return Err(Error::UnsupportedVersion {
            file: path.to_path_buf(),
            found: u32::from(b[4]),
        });
    }
    let body = &b[..b.len() - 4];
    let expected = u32::from_le_bytes([
        b[b.len() - 4],
        b[b.len() - 3],
        b[b.len() - 2],
        b[b.len() - 1],
    ]);
    let actual = crc32fast::hash(body);
    if expected != actual {
        return Err(Error::ChecksumMismatch {
            file: path.to_path_buf(),
            offset: 0,
            expected,
            actual,
        });
    }
    let mut d = Decbuf::new(&body[8..], "tombstones", 8);
    let n = d.uvarint_max(d.remaining() as u64 / 3)?;
    let mut out: HashMap<u64, Vec<Interval>> = HashMap::new();
    for _ in 0..n {
        let id = d.uvarint()?;
        let a = d.varint()?;
        let b = d.varint()?;
        out.entry(id).or_default().push((a, b));
    }
    Ok(out)
}

fn read_tombstones(path: &Path) -> Result<HashMap<u64, Vec<Interval>>> {
    match std::fs::read(path) {
        Ok(b) => decode_tombstones(path, &b),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(HashMap::new()),
        Err(e) => Err(Error::io("read", path, e)),
    }
}

/// Whether `t` falls in any deleted interval.
#[inline]
pub(crate) fn is_deleted(deleted: &[Interval], t: i64) -> bool {
    deleted.iter().any(|&(a, b)| t >= a && t <= b)
}

/// Shared handle type.
pub type BlockRef = Arc<Block>;
