//! Write-ahead log: durable, checksummed, append-only storage of opaque record
//! payloads, with crash repair, checkpoints and group-committed fsyncs.
//!
//! The bytes — directory layout, segment header, record frame, checkpoints,
//! `corrupt-*/` — are specified in `engine/FORMAT.md` ("WAL", "Segment
//! file", "Record payloads"); the constants here are named there. A record
//! never spans segments; a batch given to one [`Wal::log`] call is framed
//! into one buffer and written with one `pwrite(2)` into one segment.
//!
//! # Repair at open
//!
//! Files are replayed in order: the newest complete checkpoint, then the
//! segments after it. The first bad frame ends the replay. A torn tail in
//! the newest segment is truncated away; anything else is *corruption*: the
//! bytes from the bad offset on, and every later file, are moved aside into
//! `corrupt-<millis>/`, never deleted, so replay always yields a prefix of
//! what was logged (FORMAT.md "Repair at open" has the exact rules).
//!
//! A segment whose header has the right magic but an unknown version makes
//! [`Wal::open`] fail with [`Error::UnsupportedVersion`] (a newer format is
//! not corruption and must not be moved aside by an older build).

use crate::error::{Error, Result};
use crate::io::fs::{self, SeqFile};
use crate::io::{create_dir_durable, dir_size, rename_durable, sync_dir, sync_file};
use parking_lot::{Condvar, Mutex};
use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Segment magic: "SWAL".
const WAL_MAGIC: [u8; 4] = *b"SWAL";
/// Current segment format version.
const WAL_VERSION: u32 = 1;
/// Bytes of the segment header.
const HEADER_LEN: usize = 8;
/// Bytes of a record frame before the payload.
const FRAME_LEN: usize = 8;
/// Largest payload accepted by [`Wal::log`] and by the decoder.
pub const MAX_RECORD_LEN: usize = 1 << 30;
/// How many payload bytes the "is there valid data after the bad frame" scan
/// may checksum before it gives up and assumes there is (the safe answer).
const RESCAN_BUDGET: usize = 64 << 20;
/// Name of the single file inside a checkpoint directory.
const CHECKPOINT_FILE: &str = "00000000";

/// When the WAL fsyncs appended records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncMode {
    /// Every [`Wal::log`] returns only after an fsync covering its records
    /// (shared between concurrent callers: group commit).
    Always,
    /// A background thread fsyncs at least this often when there were writes.
    Interval(Duration),
    /// fsync only on rotate, checkpoint and close; the OS flushes otherwise.
    Os,
}

/// Configuration of a [`Wal`].
#[derive(Debug, Clone)]
pub struct WalOptions {
    /// Size at which a segment is closed and the next one started (default 128 MiB).
    pub segment_size: u64,
    /// fsync policy (default `Interval(1s)`).
    pub sync: SyncMode,
}

impl Default for WalOptions {
    fn default() -> Self {
        WalOptions {
            segment_size: 128 << 20,
            sync: SyncMode::Interval(Duration::from_secs(1)),
        }
    }
}

/// What [`Wal::open`] found and repaired.
#[derive(Debug, Clone, Default)]
pub struct ReplayReport {
    /// Records passed to the callback (checkpoint records included).
    pub records: u64,
    /// Segment files read (checkpoint files not counted).
    pub segments: u64,
    /// A torn tail that was truncated: the segment and the length it was truncated to.
    pub torn_tail: Option<(PathBuf, u64)>,
    /// Corruption that stopped the replay, if any.
    pub corruption: Option<Corruption>,
    /// Wall time of the replay and repair.
    pub elapsed: Duration,
}

/// Corruption found at open; the data from that point on was moved aside.
#[derive(Debug, Clone)]
pub struct Corruption {
    /// The file holding the first bad byte.
    pub file: PathBuf,
    /// Offset of the first bad frame in `file`.
    pub offset: u64,
    /// What was wrong.
    pub reason: String,
    /// The `corrupt-<millis>` directory the rest of the log was moved into.
    pub moved_to: PathBuf,
}

/// Failures the write path can be told to simulate (tests only).
#[doc(hidden)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Every segment write fails with ENOSPC before writing anything.
    WriteEnospc,
    /// Every segment write writes half of its bytes, then fails with ENOSPC.
    ShortWrite,
    /// Every segment fsync fails with EIO.
    FsyncEio,
}

impl Fault {
    fn to_u8(f: Option<Fault>) -> u8 {
        match f {
            None => 0,
            Some(Fault::WriteEnospc) => 1,
            Some(Fault::ShortWrite) => 2,
            Some(Fault::FsyncEio) => 3,
        }
    }
    fn from_u8(v: u8) -> Option<Fault> {
        match v {
            1 => Some(Fault::WriteEnospc),
            2 => Some(Fault::ShortWrite),
            3 => Some(Fault::FsyncEio),
            _ => None,
        }
    }
}

/// An open segment file.
#[derive(Debug)]
struct Segment {
    file: File,
    path: PathBuf,
    idx: u64,
}

/// State behind the writer mutex.
#[derive(Debug)]
struct Writer {
    /// The segment appends go to; `None` until one could be created (a full
    /// disk at open) or after a failed fsync sealed the last one: the next
    /// write creates segment `next_idx` first.
    seg: Option<Arc<Segment>>,
    /// Index of the segment to create when `seg` is `None`.
    next_idx: u64,
    /// End of the valid data in `seg`; the next write goes here.
    offset: u64,
    /// A failed write may have left bytes after `offset` that could not be truncated yet.
    dirty_tail: bool,
    /// Bytes written since open, over all segments; the group-commit sequence.
    written: u64,
    /// Reused framing buffer.
    buf: Vec<u8>,
    closed: bool,
}

/// Group-commit state.
#[derive(Debug, Default)]
struct SyncState {
    /// All bytes with sequence <= `synced` are durable, except those in a
    /// `failed` range.
    synced: u64,
    /// An fsync is running; waiters re-check `synced` when it ends.
    in_flight: bool,
    /// Byte ranges `(lo, hi]` whose fsync failed (newest last, a few kept):
    /// a commit in one is never acknowledged.
    failed: Vec<(u64, u64, String)>,
}

impl SyncState {
    fn failure_for(&self, target: u64) -> Option<&str> {
        self.failed
            .iter()
            .find(|(lo, hi, _)| *lo < target && target <= *hi)
            .map(|(_, _, m)| m.as_str())
    }
}

#[derive(Debug)]
struct Inner {
    dir: PathBuf,
    opts: WalOptions,
    writer: Mutex<Writer>,
    sync: Mutex<SyncState>,
    sync_cv: Condvar,
    /// Index of the newest segment whose fsync failed (`u64::MAX`: none).
    /// Never written to again: the writer moves on to a fresh segment.
    sealed: AtomicU64,
    /// fsyncs that failed since open.
    fsync_failures: AtomicU64,
    fault: AtomicU8,
    fsyncs: AtomicU64,
    fsync_latency: crate::latency::LatencyHistogram,
    stop: Mutex<bool>,
    stop_cv: Condvar,
    checkpoint_lock: Mutex<()>,
}

/// The write-ahead log. `Send + Sync`; all methods take `&self`.
#[derive(Debug)]
pub struct Wal {
    inner: Arc<Inner>,
    syncer: Mutex<Option<JoinHandle<()>>>,
}

fn segment_name(idx: u64) -> String {
    format!("{idx:08}")
}

fn checkpoint_name(idx: u64) -> String {
    format!("checkpoint.{idx:08}")
}

/// Parses an 8-or-more-digit decimal name.
fn parse_index(s: &str) -> Option<u64> {
    if s.len() >= 8 && s.bytes().all(|b| b.is_ascii_digit()) {
        s.parse().ok()
    } else {
        None
    }
}

fn os_err(code: i32) -> std::io::Error {
    std::io::Error::from_raw_os_error(code)
}

fn invalid_input(msg: String) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidInput, msg)
}

/// Appends the frame of `payload` to `buf`.
fn frame_into(buf: &mut Vec<u8>, payload: &[u8]) {
    let len = (payload.len() as u32).to_le_bytes();
    let mut h = crc32fast::Hasher::new();
    h.update(&len);
    h.update(payload);
    buf.extend_from_slice(&len);
    buf.extend_from_slice(&h.finalize().to_le_bytes());
    buf.extend_from_slice(payload);
}

fn header_bytes() -> [u8; HEADER_LEN] {
    let v = WAL_VERSION.to_le_bytes();
    [
        WAL_MAGIC[0],
        WAL_MAGIC[1],
        WAL_MAGIC[2],
        WAL_MAGIC[3],
        v[0],
        v[1],
        v[2],
        v[3],
    ]
}

/// Outcome of scanning one file.
#[derive(Debug)]
enum Scan {
    /// Every byte belongs to a valid frame.
    Clean,
    /// The frame at `offset` is bad.
    Bad { offset: u64, reason: &'static str },
    /// The header names a format version this build does not read.
    Version(u32),
}

/// Checks the frame at the start of `rest`; returns the payload length when valid.
fn check_frame(rest: &[u8]) -> std::result::Result<usize, &'static str> {
    if rest.len() < FRAME_LEN {
        return Err("partial record header");
    }
    let len_bytes = [rest[0], rest[1], rest[2], rest[3]];
    let len = u32::from_le_bytes(len_bytes) as usize;
    let crc = u32::from_le_bytes([rest[4], rest[5], rest[6], rest[7]]);
    if len > MAX_RECORD_LEN {
        return Err("record length too large");
    }
    let Some(payload) = rest.get(FRAME_LEN..FRAME_LEN + len) else {
        return Err("partial record");
    };
    let mut h = crc32fast::Hasher::new();
    h.update(&len_bytes);
    h.update(payload);
    if h.finalize() != crc {
        return Err("checksum mismatch");
    }
    Ok(len)
}

/// Reads one segment-format file of `len` bytes from `r`, calling `f` with
/// each valid payload in order. Streams: besides `f`'s own work, memory is one
/// record (`payload`, reused), never more than the bytes that are left, so a
/// hostile length costs nothing. `path` names the file in I/O errors.
fn scan<R: Read, F: FnMut(&[u8]) -> Result<()>>(
    mut r: R,
    len: u64,
    path: &Path,
    payload: &mut Vec<u8>,
    mut f: F,
) -> Result<Scan> {
    let read = |r: &mut R, buf: &mut [u8]| {
        r.read_exact(buf)
            .map_err(|e| Error::io("read wal file", path, e))
    };
    if len == 0 {
        return Ok(Scan::Clean);
    }
    if len < HEADER_LEN as u64 {
        return Ok(Scan::Bad {
            offset: 0,
            reason: "partial segment header",
        });
    }
    let mut header = [0u8; HEADER_LEN];
    read(&mut r, &mut header)?;
    if header[0..4] != WAL_MAGIC {
        return Ok(Scan::Bad {
            offset: 0,
            reason: "bad segment magic",
        });
    }
    let version = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
    if version != WAL_VERSION {
        return Ok(Scan::Version(version));
    }
    let mut off = HEADER_LEN as u64;
    while off < len {
        let bad = |reason| {
            Ok(Scan::Bad {
                offset: off,
                reason,
            })
        };
        if len - off < FRAME_LEN as u64 {
            return bad("partial record header");
        }
        let mut frame = [0u8; FRAME_LEN];
        read(&mut r, &mut frame)?;
        let len_bytes = [frame[0], frame[1], frame[2], frame[3]];
        let n = u32::from_le_bytes(len_bytes) as usize;
        let crc = u32::from_le_bytes([frame[4], frame[5], frame[6], frame[7]]);
        if n > MAX_RECORD_LEN {
            return bad("record length too large");
        }
        if (n as u64) > len - off - FRAME_LEN as u64 {
            return bad("partial record");
        }
        payload.clear();
        payload.resize(n, 0);
        read(&mut r, payload)?;
        let mut h = crc32fast::Hasher::new();
        h.update(&len_bytes);
        h.update(payload);
        if h.finalize() != crc {
            return bad("checksum mismatch");
        }
        f(payload)?;
        off += (FRAME_LEN + n) as u64;
    }
    Ok(Scan::Clean)
}

/// True when a valid frame may start somewhere after the bad frame at file
/// offset `bad`, given the file's bytes from `bad` on (so the damage is not
/// a torn tail). Gives the safe answer `true` when the scan gets too costly.
fn valid_frame_after(tail: &[u8], bad: usize) -> bool {
    let mut budget = RESCAN_BUDGET;
    let start = 1.max(HEADER_LEN.saturating_sub(bad));
    let end = tail.len().saturating_sub(FRAME_LEN - 1);
    for o in start..end {
        let rest = &tail[o..];
        let len = u32::from_le_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
        if len > MAX_RECORD_LEN || len > rest.len() - FRAME_LEN {
            continue;
        }
        if len > budget {
            return true;
        }
        budget -= len;
        if check_frame(rest).is_ok() {
            return true;
        }
    }
    false
}

/// Most bytes after a bad frame that are read to tell a torn tail from
/// corruption; a longer rest is taken as corruption (the safe answer: it is
/// moved aside, not truncated away).
const MAX_TAIL_READ: u64 = RESCAN_BUDGET as u64 + (1 << 20);

/// The bytes of `path` from `offset` on, or `None` when there are more than [`MAX_TAIL_READ`].
fn read_tail(path: &Path, offset: u64) -> Result<Option<Vec<u8>>> {
    use std::io::{Seek, SeekFrom};
    let mut f = File::open(path).map_err(|e| Error::io("open wal file", path, e))?;
    let len = f
        .metadata()
        .map_err(|e| Error::io("stat wal file", path, e))?
        .len();
    let rest = len.saturating_sub(offset);
    if rest > MAX_TAIL_READ {
        return Ok(None);
    }
    f.seek(SeekFrom::Start(offset))
        .map_err(|e| Error::io("read wal file", path, e))?;
    let mut buf = Vec::with_capacity(rest as usize);
    f.read_to_end(&mut buf)
        .map_err(|e| Error::io("read wal file", path, e))?;
    Ok(Some(buf))
}

/// Decodes the framed records of one segment file's bytes (header included).
///
/// Meant for fuzzing and tools: arbitrary input gives `Ok` or `Err`, never a
/// panic, and allocates at most about the input's size.
pub fn decode_segment(data: &[u8]) -> Result<Vec<Vec<u8>>> {
    let mut out = Vec::new();
    let mut payload = Vec::new();
    let path = Path::new("<segment>");
    match scan(data, data.len() as u64, path, &mut payload, |p| {
        out.push(p.to_vec());
        Ok(())
    })? {
        Scan::Clean => Ok(out),
        Scan::Bad { offset, reason } => Err(Error::corruption("<segment>", offset, reason)),
        Scan::Version(found) => Err(Error::UnsupportedVersion {
            file: PathBuf::from("<segment>"),
            found,
        }),
    }
}

/// One file replayed at open.
#[derive(Debug)]
struct ReplayFile {
    path: PathBuf,
    /// Name used when moved into a corrupt directory.
    corrupt_name: String,
    /// `Some(idx)` for segments, `None` for checkpoint files.
    segment: Option<u64>,
}

/// What is in the WAL directory.
#[derive(Debug, Default)]
struct Listing {
    segments: Vec<u64>,
    checkpoints: Vec<u64>,
}

fn list_dir(dir: &Path) -> Result<Listing> {
    let mut l = Listing::default();
    let rd = std::fs::read_dir(dir).map_err(|e| Error::io("read wal dir", dir, e))?;
    for entry in rd {
        let entry = entry.map_err(|e| Error::io("read wal dir", dir, e))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let ft = entry
            .file_type()
            .map_err(|e| Error::io("stat", entry.path(), e))?;
        if ft.is_file() {
            if let Some(idx) = parse_index(name) {
                l.segments.push(idx);
            }
        } else if ft.is_dir() {
            if let Some(rest) = name.strip_prefix("checkpoint.") {
                if rest.ends_with(".tmp") {
                    let p = entry.path();
                    tracing::warn!(path = %p.display(), "removing incomplete WAL checkpoint");
                    fs::remove_dir_all(&p)
                        .map_err(|e| Error::io("remove checkpoint tmp", &p, e))?;
                    sync_dir(dir)?;
                } else if let Some(idx) = parse_index(rest) {
                    l.checkpoints.push(idx);
                }
            }
        }
    }
    l.segments.sort_unstable();
    l.checkpoints.sort_unstable();
    Ok(l)
}

/// Files (segment-format) inside a checkpoint directory, in order.
fn checkpoint_files(cp_dir: &Path) -> Result<Vec<(u64, PathBuf)>> {
    let mut v = Vec::new();
    let rd = std::fs::read_dir(cp_dir).map_err(|e| Error::io("read checkpoint dir", cp_dir, e))?;
    for entry in rd {
        let entry = entry.map_err(|e| Error::io("read checkpoint dir", cp_dir, e))?;
        if let Some(idx) = entry.file_name().to_str().and_then(parse_index) {
            v.push((idx, entry.path()));
        }
    }
    v.sort_unstable();
    Ok(v)
}

/// Opens a WAL file for [`scan`]: a buffered reader and the file's length.
fn open_for_scan(path: &Path) -> Result<(std::io::BufReader<File>, u64)> {
    let f = File::open(path).map_err(|e| Error::io("open wal file", path, e))?;
    let len = f
        .metadata()
        .map_err(|e| Error::io("stat wal file", path, e))?
        .len();
    Ok((std::io::BufReader::with_capacity(1 << 20, f), len))
}

fn truncate_durable(path: &Path, len: u64) -> Result<()> {
    let f = fs::open_write(path).map_err(|e| Error::io("open for truncate", path, e))?;
    fs::set_len(&f, path, len).map_err(|e| Error::io("truncate", path, e))?;
    sync_file(&f, path)
}

fn create_corrupt_dir(dir: &Path) -> Result<PathBuf> {
    let millis = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0);
    let mut n = 0u32;
    loop {
        let name = if n == 0 {
            format!("corrupt-{millis}")
        } else {
            format!("corrupt-{millis}-{n}")
        };
        let p = dir.join(name);
        match fs::create_dir(&p) {
            Ok(()) => {
                sync_dir(dir)?;
                return Ok(p);
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && n < 1000 => n += 1,
            Err(e) => return Err(Error::io("create corrupt dir", &p, e)),
        }
    }
}

/// Moves the bad part of `files[i]` and all later files into a new corrupt
/// directory; returns that directory. With `offset` past the header, the bytes
/// from `offset` on are copied there and the file is truncated to `offset`;
/// otherwise the whole file is moved.
fn move_aside(dir: &Path, files: &[ReplayFile], i: usize, offset: u64) -> Result<PathBuf> {
    use std::io::{Seek, SeekFrom};
    let cdir = create_corrupt_dir(dir)?;
    let bad = &files[i];
    let len = std::fs::metadata(&bad.path)
        .map_err(|e| Error::io("stat wal file", &bad.path, e))?
        .len();
    let first_moved = if offset >= HEADER_LEN as u64 && offset <= len {
        let tail_path = cdir.join(format!("{}.from-{offset}", bad.corrupt_name));
        {
            // Copied in pieces: the rest of a file can be large.
            let mut src =
                File::open(&bad.path).map_err(|e| Error::io("open wal file", &bad.path, e))?;
            src.seek(SeekFrom::Start(offset))
                .map_err(|e| Error::io("read wal file", &bad.path, e))?;
            let out = SeqFile::create(&tail_path)
                .map_err(|e| Error::io("create corrupt tail", &tail_path, e))?;
            let mut out = std::io::BufWriter::with_capacity(1 << 20, out);
            std::io::copy(&mut src, &mut out)
                .map_err(|e| Error::io("write corrupt tail", &tail_path, e))?;
            let out = out
                .into_inner()
                .map_err(|e| Error::io("write corrupt tail", &tail_path, e.into_error()))?;
            sync_file(out.file(), &tail_path)?;
        }
        sync_dir(&cdir)?;
        truncate_durable(&bad.path, offset)?;
        i + 1
    } else {
        i
    };
    for later in &files[first_moved..] {
        rename_durable(&later.path, &cdir.join(&later.corrupt_name))?;
    }
    Ok(cdir)
}

fn create_segment(dir: &Path, idx: u64, fault: Option<Fault>) -> Result<Segment> {
    let path = dir.join(segment_name(idx));
    let file = fs::create_new(&path).map_err(|e| Error::io("create wal segment", &path, e))?;
    let header = if matches!(fault, Some(Fault::WriteEnospc | Fault::ShortWrite)) {
        Err(os_err(libc::ENOSPC))
    } else {
        fs::write_all_at(&file, &path, &header_bytes(), 0)
    };
    let res = header
        .map_err(|e| Error::io("write wal segment header", &path, e))
        .and_then(|()| sync_file(&file, &path))
        .and_then(|()| sync_dir(dir));
    if let Err(e) = res {
        drop(file);
        let _ = fs::remove_file(&path);
        return Err(e);
    }
    Ok(Segment { file, path, idx })
}

impl Inner {
    fn fault(&self) -> Option<Fault> {
        Fault::from_u8(self.fault.load(Ordering::Relaxed))
    }

    /// The writer's segment, created first when there is none (see
    /// [`Writer::seg`]); a segment sealed by a failed fsync is left behind.
    fn segment(&self, w: &mut Writer) -> Result<Arc<Segment>> {
        if let Some(s) = &w.seg {
            if self.sealed.load(Ordering::Acquire) != s.idx {
                return Ok(Arc::clone(s));
            }
            tracing::warn!(segment = %s.path.display(), "WAL segment sealed after a failed fsync; continuing on a new segment");
            w.next_idx = s.idx + 1;
            w.seg = None;
            w.dirty_tail = false;
        }
        let s = Arc::new(create_segment(&self.dir, w.next_idx, self.fault())?);
        w.next_idx = s.idx + 1;
        w.seg = Some(Arc::clone(&s));
        w.offset = HEADER_LEN as u64;
        w.dirty_tail = false;
        Ok(s)
    }

    /// fsyncs a segment. A failure seals it: the kernel may have dropped its
    /// dirty pages, so it is never trusted or written again.
    fn fsync(&self, seg: &Segment) -> Result<()> {
        self.fsyncs.fetch_add(1, Ordering::Relaxed);
        let started = std::time::Instant::now();
        let res = if self.fault() == Some(Fault::FsyncEio) {
            Err(Error::io("fsync", &seg.path, os_err(libc::EIO)))
        } else {
            sync_file(&seg.file, &seg.path)
        };
        self.fsync_latency.observe(started.elapsed());
        if let Err(e) = &res {
            tracing::error!(error = %e, segment = %seg.path.display(), "WAL fsync failed: the commits it held fail, the segment is sealed, and appends continue on a new segment");
            self.fsync_failures.fetch_add(1, Ordering::Relaxed);
            self.sealed.store(seg.idx, Ordering::Release);
        }
        res
    }

    /// Returns once every byte with sequence <= `target` is durable,
    /// sharing fsyncs with concurrent callers.
    fn sync_upto(&self, target: u64) -> Result<()> {
        let mut st = self.sync.lock();
        loop {
            if let Some(m) = st.failure_for(target) {
                return Err(Error::FsyncFailed(m.to_string()));
            }
            if st.synced >= target {
                return Ok(());
            }
            if !st.in_flight {
                break;
            }
            self.sync_cv.wait(&mut st);
        }
        st.in_flight = true;
        drop(st);
        let (seg, upto) = {
            let w = self.writer.lock();
            (w.seg.clone(), w.written)
        };
        // Everything before `upto` is in `seg` or in an earlier segment that
        // rotate() fsynced before switching away from it (or that a failed
        // fsync sealed: its range is in `failed`).
        let res = match &seg {
            Some(seg) => self.fsync(seg),
            None => Ok(()),
        };
        let mut st = self.sync.lock();
        st.in_flight = false;
        match &res {
            Ok(()) => st.synced = st.synced.max(upto),
            Err(e) => {
                let lo = st.synced;
                st.failed.push((lo, upto, e.to_string()));
                if st.failed.len() > 16 {
                    st.failed.remove(0);
                }
                // Later data lives in later segments; `synced` moves past
                // the failed range, which `failure_for` keeps refusing.
                st.synced = st.synced.max(upto);
            }
        }
        self.sync_cv.notify_all();
        match res {
            Ok(()) => Ok(()),
            Err(e) => Err(Error::FsyncFailed(e.to_string())),
        }
    }

    fn mark_synced(&self, upto: u64) {
        let mut st = self.sync.lock();
        st.synced = st.synced.max(upto);
        self.sync_cv.notify_all();
    }

    /// One `pwrite(2)` of `buf` at `off` (more only if the kernel writes short).
    fn pwrite(&self, seg: &Segment, buf: &[u8], off: u64) -> Result<()> {
        match self.fault() {
            Some(Fault::WriteEnospc) => {
                return Err(Error::io(
                    "write wal segment",
                    &seg.path,
                    os_err(libc::ENOSPC),
                ))
            }
            Some(Fault::ShortWrite) => {
                let half = &buf[..buf.len() / 2];
                fs::write_all_at(&seg.file, &seg.path, half, off)
                    .map_err(|e| Error::io("write wal segment", &seg.path, e))?;
                return Err(Error::io(
                    "write wal segment",
                    &seg.path,
                    os_err(libc::ENOSPC),
                ));
            }
            _ => {}
        }
        fs::write_all_at(&seg.file, &seg.path, buf, off)
            .map_err(|e| Error::io("write wal segment", &seg.path, e))
    }

    fn fix_dirty_tail(&self, w: &mut Writer) -> Result<()> {
        if let (true, Some(seg)) = (w.dirty_tail, &w.seg) {
            fs::set_len(&seg.file, &seg.path, w.offset)
                .map_err(|e| Error::io("truncate wal segment", &seg.path, e))?;
        }
        w.dirty_tail = false;
        Ok(())
    }

    /// fsyncs and closes the current segment, starts the next. Returns the closed index.
    fn rotate_locked(&self, w: &mut Writer) -> Result<u64> {
        self.fix_dirty_tail(w)?;
        let old = self.segment(w)?;
        self.fsync(&old)?;
        self.mark_synced(w.written);
        w.seg = None;
        w.next_idx = old.idx + 1;
        // Best effort: on a full disk the next write creates it.
        if let Err(e) = self.segment(w) {
            tracing::debug!(error = %e, "next WAL segment not created yet");
        }
        Ok(old.idx)
    }

    /// Writes one framed batch; on failure the segment is left ending at the
    /// last good batch (truncated back, or truncated before the next write).
    fn write_batch(&self, w: &mut Writer, buf: &[u8]) -> Result<()> {
        self.fix_dirty_tail(w)?;
        let len = buf.len() as u64;
        if w.seg.is_some()
            && w.offset > HEADER_LEN as u64
            && w.offset + len > self.opts.segment_size
        {
            self.rotate_locked(w)?;
        }
        let seg = self.segment(w)?;
        let off = w.offset;
        match self.pwrite(&seg, buf, off) {
            Ok(()) => {
                w.offset += len;
                w.written += len;
                Ok(())
            }
            Err(e) => {
                if fs::set_len(&seg.file, &seg.path, off).is_err() {
                    w.dirty_tail = true;
                }
                Err(e)
            }
        }
    }

    fn interval_loop(&self, every: Duration) {
        loop {
            {
                let mut stop = self.stop.lock();
                if *stop {
                    return;
                }
                self.stop_cv.wait_for(&mut stop, every);
                if *stop {
                    return;
                }
            }
            let target = self.writer.lock().written;
            if target > self.sync.lock().synced {
                if let Err(e) = self.sync_upto(target) {
                    tracing::warn!(error = %e, "WAL interval fsync failed");
                }
            }
        }
    }
}

impl Wal {
    /// Opens (creating if needed) the WAL in `dir`, repairs it, and calls `f`
    /// with every valid record payload in order: first the records of the
    /// newest complete checkpoint, then those of the segments after it. Then
    /// starts a new segment for appends.
    ///
    /// Torn tails are truncated and corruption is moved aside (see the module
    /// docs); both are reported, neither fails the open. An error from `f`
    /// aborts the open and is returned.
    pub fn open(
        dir: &Path,
        opts: WalOptions,
        mut f: impl FnMut(&[u8]) -> Result<()>,
    ) -> Result<(Wal, ReplayReport)> {
        let started = Instant::now();
        create_dir_durable(dir)?;
        let listing = list_dir(dir)?;
        let checkpoint = listing.checkpoints.last().copied();

        let mut files = Vec::new();
        if let Some(cp) = checkpoint {
            let cp_dir = dir.join(checkpoint_name(cp));
            for (i, path) in checkpoint_files(&cp_dir)? {
                files.push(ReplayFile {
                    path,
                    corrupt_name: format!("{}-{}", checkpoint_name(cp), segment_name(i)),
                    segment: None,
                });
            }
        }
        for &idx in listing
            .segments
            .iter()
            .filter(|&&s| checkpoint.is_none_or(|cp| s > cp))
        {
            files.push(ReplayFile {
                path: dir.join(segment_name(idx)),
                corrupt_name: segment_name(idx),
                segment: Some(idx),
            });
        }

        let mut report = ReplayReport::default();
        let mut payload = Vec::new();
        let mut prev_segment = checkpoint;
        let mut last_kept = checkpoint;
        let mut checkpoint_clean = true;
        for i in 0..files.len() {
            let file = &files[i];
            let is_last = i + 1 == files.len();
            // A missing segment index is corruption at offset 0 of the next one.
            let gap = match (prev_segment, file.segment) {
                (Some(p), Some(s)) if s != p + 1 => Some(p + 1),
                _ => None,
            };
            let outcome = if let Some(missing) = gap {
                tracing::error!(missing, "WAL segment missing");
                Scan::Bad {
                    offset: 0,
                    reason: "previous segment missing",
                }
            } else {
                let (reader, len) = open_for_scan(&file.path)?;
                let mut n = 0u64;
                let s = scan(reader, len, &file.path, &mut payload, |p| {
                    n += 1;
                    f(p)
                })?;
                report.records += n;
                s
            };
            if file.segment.is_some() {
                report.segments += 1;
                prev_segment = file.segment;
            }
            match outcome {
                Scan::Clean => {
                    if file.segment.is_some() {
                        last_kept = file.segment;
                    }
                }
                Scan::Version(found) => {
                    return Err(Error::UnsupportedVersion {
                        file: file.path.clone(),
                        found,
                    })
                }
                Scan::Bad { offset, reason } => {
                    let off = offset as usize;
                    let torn = is_last
                        && file.segment.is_some()
                        && gap.is_none()
                        && match read_tail(&file.path, offset)? {
                            Some(tail) => !valid_frame_after(&tail, off),
                            None => false,
                        };
                    if torn {
                        let keep = if off < HEADER_LEN { 0 } else { offset };
                        tracing::warn!(
                            file = %file.path.display(), offset, reason, dropped_bytes = std::fs::metadata(&file.path).map_or(0, |m| m.len()).saturating_sub(keep),
                            "WAL torn tail truncated"
                        );
                        truncate_durable(&file.path, keep)?;
                        report.torn_tail = Some((file.path.clone(), keep));
                        last_kept = file.segment;
                    } else {
                        let moved_to = move_aside(dir, &files, i, offset)?;
                        tracing::error!(
                            file = %file.path.display(), offset, reason, moved_to = %moved_to.display(),
                            "WAL corruption: replayed up to it, moved the rest aside"
                        );
                        if file.segment.is_none() {
                            checkpoint_clean = false;
                        } else if off >= HEADER_LEN {
                            // The file stays, truncated; otherwise it was moved whole.
                            last_kept = file.segment;
                        }
                        report.corruption = Some(Corruption {
                            file: file.path.clone(),
                            offset,
                            reason: reason.to_string(),
                            moved_to,
                        });
                    }
                    break;
                }
            }
        }
        drop(payload);

        // Segments and checkpoints superseded by a checkpoint that replayed cleanly.
        if let (Some(cp), true) = (checkpoint, checkpoint_clean) {
            let mut removed = false;
            for &s in listing.segments.iter().filter(|&&s| s <= cp) {
                let p = dir.join(segment_name(s));
                fs::remove_file(&p).map_err(|e| Error::io("remove old wal segment", &p, e))?;
                removed = true;
            }
            for &c in listing.checkpoints.iter().filter(|&&c| c < cp) {
                let p = dir.join(checkpoint_name(c));
                fs::remove_dir_all(&p).map_err(|e| Error::io("remove old checkpoint", &p, e))?;
                removed = true;
            }
            if removed {
                sync_dir(dir)?;
            }
        }

        let next = last_kept.map_or(0, |i| i + 1);
        // On a full disk the store still opens (and serves reads): the
        // first write that finds space creates the segment.
        let seg = match create_segment(dir, next, None) {
            Ok(s) => Some(Arc::new(s)),
            Err(e @ Error::DiskFull { .. }) => {
                tracing::warn!(error = %e, "no space for a new WAL segment; writes wait for space");
                None
            }
            Err(e) => return Err(e),
        };
        report.elapsed = started.elapsed();

        let inner = Arc::new(Inner {
            dir: dir.to_path_buf(),
            opts: opts.clone(),
            writer: Mutex::new(Writer {
                seg,
                next_idx: next,
                offset: HEADER_LEN as u64,
                dirty_tail: false,
                written: 0,
                buf: Vec::with_capacity(64 << 10),
                closed: false,
            }),
            sync: Mutex::new(SyncState::default()),
            sync_cv: Condvar::new(),
            sealed: AtomicU64::new(u64::MAX),
            fsync_failures: AtomicU64::new(0),
            fault: AtomicU8::new(0),
            fsyncs: AtomicU64::new(0),
            fsync_latency: crate::latency::LatencyHistogram::default(),
            stop: Mutex::new(false),
            stop_cv: Condvar::new(),
            checkpoint_lock: Mutex::new(()),
        });
        let syncer = match opts.sync {
            SyncMode::Interval(every) => {
                let inner = Arc::clone(&inner);
                let h = std::thread::Builder::new()
                    .name("wal-sync".into())
                    .spawn(move || inner.interval_loop(every.max(Duration::from_millis(1))))
                    .map_err(|e| Error::io("spawn wal sync thread", dir, e))?;
                Some(h)
            }
            _ => None,
        };
        Ok((
            Wal {
                inner,
                syncer: Mutex::new(syncer),
            },
            report,
        ))
    }

    /// Appends `payloads` as one batch with one `pwrite(2)` of the framed
    /// bytes. Returns once the bytes are in the kernel; with
    /// [`SyncMode::Always`] also after an fsync covering them (group commit).
    ///
    /// On failure nothing of the batch is acknowledged and the segment still
    /// ends at the previous batch: [`Error::DiskFull`] can be retried once
    /// space is freed. A failed fsync fails the commits it covered with
    /// [`Error::FsyncFailed`]; later ones go to a fresh segment.
    pub fn log(&self, payloads: &[&[u8]]) -> Result<()> {
        if payloads.is_empty() {
            return Ok(());
        }
        let inner = &*self.inner;
        let target = {
            let mut w = inner.writer.lock();
            if w.closed {
                return Err(Error::Closed);
            }
            let mut buf = std::mem::take(&mut w.buf);
            buf.clear();
            for p in payloads {
                if p.len() > MAX_RECORD_LEN {
                    w.buf = buf;
                    return Err(Error::LimitExceeded {
                        what: "wal record bytes",
                        limit: MAX_RECORD_LEN as u64,
                    });
                }
                frame_into(&mut buf, p);
            }
            let res = inner.write_batch(&mut w, &buf);
            w.buf = buf;
            res?;
            w.written
        };
        if inner.opts.sync == SyncMode::Always {
            inner.sync_upto(target)?;
        }
        Ok(())
    }

    /// fsyncs everything logged so far (a no-op when it already is durable).
    pub fn sync(&self) -> Result<()> {
        let target = self.inner.writer.lock().written;
        self.inner.sync_upto(target)
    }

    /// Closes the current segment (fsynced) and opens the next; returns the
    /// index of the closed one.
    pub fn rotate(&self) -> Result<u64> {
        let mut w = self.inner.writer.lock();
        if w.closed {
            return Err(Error::Closed);
        }
        self.inner.rotate_locked(&mut w)
    }

    /// Writes `checkpoint.<upto>` holding `payloads` (into a `.tmp` directory,
    /// fsynced, renamed, parent fsynced), then deletes segments `<= upto` and
    /// older checkpoints. `upto` must be a closed segment (below the current
    /// one) and newer than any existing checkpoint.
    pub fn checkpoint(&self, upto: u64, payloads: &mut dyn Iterator<Item = Vec<u8>>) -> Result<()> {
        let inner = &*self.inner;
        let _guard = inner.checkpoint_lock.lock();
        let dir = &inner.dir;
        let current = {
            let w = inner.writer.lock();
            if w.closed {
                return Err(Error::Closed);
            }
            w.seg.as_ref().map_or(w.next_idx, |s| s.idx)
        };
        if upto >= current {
            return Err(Error::io(
                "checkpoint",
                dir,
                invalid_input(format!(
                    "checkpoint {upto} must be below the current segment {current}"
                )),
            ));
        }
        let listing = list_dir(dir)?;
        if let Some(&newest) = listing.checkpoints.last() {
            if newest >= upto {
                return Err(Error::io(
                    "checkpoint",
                    dir,
                    invalid_input(format!(
                        "checkpoint {upto} is not newer than existing checkpoint {newest}"
                    )),
                ));
            }
        }
        let final_dir = dir.join(checkpoint_name(upto));
        let tmp_dir = dir.join(format!("{}.tmp", checkpoint_name(upto)));
        let write_tmp = || -> Result<()> {
            fs::create_dir(&tmp_dir)
                .map_err(|e| Error::io("create checkpoint dir", &tmp_dir, e))?;
            let path = tmp_dir.join(CHECKPOINT_FILE);
            let file =
                SeqFile::create(&path).map_err(|e| Error::io("create checkpoint", &path, e))?;
            let mut out = std::io::BufWriter::with_capacity(1 << 20, file);
            let mut frame = Vec::new();
            frame.extend_from_slice(&header_bytes());
            for p in payloads {
                if p.len() > MAX_RECORD_LEN {
                    return Err(Error::LimitExceeded {
                        what: "wal record bytes",
                        limit: MAX_RECORD_LEN as u64,
                    });
                }
                frame_into(&mut frame, &p);
                out.write_all(&frame)
                    .map_err(|e| Error::io("write checkpoint", &path, e))?;
                frame.clear();
            }
            out.write_all(&frame)
                .map_err(|e| Error::io("write checkpoint", &path, e))?;
            let file = out
                .into_inner()
                .map_err(|e| Error::io("write checkpoint", &path, e.into_error()))?;
            sync_file(file.file(), &path)?;
            sync_dir(&tmp_dir)
        };
        if let Err(e) = write_tmp().and_then(|()| rename_durable(&tmp_dir, &final_dir)) {
            // Nothing half-written stays (the rename may have happened
            // before a failed directory fsync: then there is nothing to remove).
            let _ = fs::remove_dir_all(&tmp_dir);
            return Err(e);
        }
        for &s in listing.segments.iter().filter(|&&s| s <= upto) {
            let p = dir.join(segment_name(s));
            fs::remove_file(&p).map_err(|e| Error::io("remove old wal segment", &p, e))?;
        }
        for &c in &listing.checkpoints {
            let p = dir.join(checkpoint_name(c));
            fs::remove_dir_all(&p).map_err(|e| Error::io("remove old checkpoint", &p, e))?;
        }
        sync_dir(dir)
    }

    /// Bytes used by the WAL directory (segments, checkpoints, moved-aside data).
    pub fn size_bytes(&self) -> Result<u64> {
        dir_size(&self.inner.dir)
    }

    /// The WAL directory.
    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    /// Stops the interval thread and fsyncs; later writes get [`Error::Closed`].
    /// Calling it again is a no-op. Fails with [`Error::FsyncFailed`] when
    /// the last fsync fails.
    pub fn close(&self) -> Result<()> {
        {
            let mut w = self.inner.writer.lock();
            if w.closed {
                return Ok(());
            }
            w.closed = true;
        }
        *self.inner.stop.lock() = true;
        self.inner.stop_cv.notify_all();
        if let Some(h) = self.syncer.lock().take() {
            if h.join().is_err() {
                tracing::error!("WAL sync thread panicked");
            }
        }
        self.sync()
    }

    /// Makes the write path simulate a failure (tests only).
    #[doc(hidden)]
    pub fn inject_fault(&self, fault: Option<Fault>) {
        self.inner
            .fault
            .store(Fault::to_u8(fault), Ordering::Relaxed);
    }

    /// Number of segment fsyncs that failed since open.
    pub fn fsync_failure_count(&self) -> u64 {
        self.inner.fsync_failures.load(Ordering::Relaxed)
    }

    /// The newest segment a failed fsync sealed, if any.
    pub fn sealed_segment(&self) -> Option<u64> {
        let k = self.inner.sealed.load(Ordering::Acquire);
        (k != u64::MAX).then_some(k)
    }

    /// Whether appends have a segment (false while a full disk keeps the
    /// next one from being created).
    pub fn has_segment(&self) -> bool {
        self.inner.writer.lock().seg.is_some()
    }

    /// Number of segment fsyncs issued since open.
    pub fn fsync_count(&self) -> u64 {
        self.inner.fsyncs.load(Ordering::Relaxed)
    }

    /// Latency of segment fsyncs since open.
    pub fn fsync_latency(&self) -> crate::latency::HistogramSnapshot {
        self.inner.fsync_latency.snapshot()
    }
}

impl Drop for Wal {
    fn drop(&mut self) {
        if let Err(e) = self.close() {
            tracing::warn!(error = %e, "closing WAL on drop failed");
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;
