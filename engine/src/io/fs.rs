//! The engine's one door to the file system for everything that changes it:
//! create, write, truncate, fsync, rename, link, remove. Reads go straight
//! to `std::fs` (and [`super::mmap`]); they change nothing a crash could lose.
//!
//! In production every function here is the `std` call it wraps plus one
//! relaxed atomic load. Tests can register a [`FaultFs`] for a directory:
//! every operation below that directory then passes through it, and it can
//!
//! * fail operations with an errno from the n-th one on (a full disk that
//!   stays full until [`FaultFs::clear`]; ENOSPC at every write site in turn),
//! * simulate **power loss**: at a cut, it freezes a model of what the disk
//!   would hold if the power went out right then — every write, create,
//!   rename and remove not covered by a completed fsync of the file (for
//!   data) or of its directory (for names) is dropped, and the last
//!   unsynced writes of a file may survive in part (a torn write) — and
//!   fails every later operation with EIO, as a dead disk would.
//!   [`FaultFs::materialize`] writes that model out as a directory a fresh
//!   [`crate::Db::open`] can be pointed at.
//!
//! The model is the one POSIX promises and ext4/xfs keep: `fsync(file)` makes
//! its data durable, not its name; `fsync(dir)` makes the names in it durable,
//! not the files' data.

use std::collections::HashMap;
use std::ffi::OsString;
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::{FileExt, MetadataExt};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

type IoResult<T> = std::io::Result<T>;

static ACTIVE: AtomicBool = AtomicBool::new(false);

fn registry() -> &'static parking_lot::RwLock<Vec<Arc<FaultFs>>> {
    static R: OnceLock<parking_lot::RwLock<Vec<Arc<FaultFs>>>> = OnceLock::new();
    R.get_or_init(Default::default)
}

/// The fault layer responsible for `path`, if a test registered one.
fn layer_for(path: &Path) -> Option<Arc<FaultFs>> {
    if !ACTIVE.load(Ordering::Relaxed) {
        return None;
    }
    registry()
        .read()
        .iter()
        .find(|f| path.starts_with(&f.root))
        .cloned()
}

/// What an operation is, for the fault layer's log and model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Create,
    CreateDir,
    Write,
    SetLen,
    SyncFile,
    SyncDir,
    Rename,
    Link,
    Remove,
}

/// Runs `f` unless the layer for `path` fails this operation.
fn guarded<T>(path: &Path, op: Op, f: impl FnOnce() -> IoResult<T>) -> IoResult<T> {
    match layer_for(path) {
        None => f(),
        Some(l) => {
            l.before(op, path)?;
            f()
        }
    }
}

/// `File::create`: creates or truncates `path` for writing.
pub fn create(path: &Path) -> IoResult<File> {
    match layer_for(path) {
        None => File::create(path),
        Some(l) => {
            l.before(Op::Create, path)?;
            let existed = path.exists();
            let f = File::create(path)?;
            l.after_create(&f, existed);
            Ok(f)
        }
    }
}

/// Creates `path`, which must not exist, for reading and writing.
pub fn create_new(path: &Path) -> IoResult<File> {
    let open = || {
        OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(path)
    };
    match layer_for(path) {
        None => open(),
        Some(l) => {
            l.before(Op::Create, path)?;
            let f = open()?;
            l.after_create(&f, false);
            Ok(f)
        }
    }
}

/// Opens an existing file for writing (to truncate it).
pub fn open_write(path: &Path) -> IoResult<File> {
    OpenOptions::new().write(true).open(path)
}

/// `std::fs::create_dir`.
pub fn create_dir(path: &Path) -> IoResult<()> {
    match layer_for(path) {
        None => std::fs::create_dir(path),
        Some(l) => {
            l.before(Op::CreateDir, path)?;
            std::fs::create_dir(path)?;
            l.after_new_name(path);
            Ok(())
        }
    }
}

/// `std::fs::create_dir_all`.
pub fn create_dir_all(path: &Path) -> IoResult<()> {
    match layer_for(path) {
        None => std::fs::create_dir_all(path),
        Some(l) => {
            // One operation per directory that does not exist yet.
            let mut missing = Vec::new();
            let mut p = path;
            while !p.exists() {
                missing.push(p.to_path_buf());
                match p.parent() {
                    Some(parent) => p = parent,
                    None => break,
                }
            }
            for d in missing.iter().rev() {
                if d.starts_with(&l.root) {
                    l.before(Op::CreateDir, d)?;
                }
                match std::fs::create_dir(d) {
                    Ok(()) => l.after_new_name(d),
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                    Err(e) => return Err(e),
                }
            }
            Ok(())
        }
    }
}

/// Writes all of `buf` at `off` (`pwrite(2)`, repeated on short writes).
pub fn write_all_at(file: &File, path: &Path, buf: &[u8], off: u64) -> IoResult<()> {
    match layer_for(path) {
        None => file.write_all_at(buf, off),
        Some(l) => {
            if let Err(e) = l.before(Op::Write, path) {
                // A full disk may take part of a write before refusing the rest.
                if l.short_writes() && e.raw_os_error() == Some(libc::ENOSPC) && buf.len() > 1 {
                    let half = &buf[..buf.len() / 2];
                    file.write_all_at(half, off)?;
                    l.record_write(file, off, half);
                }
                return Err(e);
            }
            file.write_all_at(buf, off)?;
            l.record_write(file, off, buf);
            Ok(())
        }
    }
}

/// `File::set_len`.
pub fn set_len(file: &File, path: &Path, len: u64) -> IoResult<()> {
    match layer_for(path) {
        None => file.set_len(len),
        Some(l) => {
            l.before(Op::SetLen, path)?;
            file.set_len(len)?;
            l.record_set_len(file, len);
            Ok(())
        }
    }
}

/// `fsync(2)` of a file: its data and size become durable (not its name).
pub fn sync_file(file: &File, path: &Path) -> IoResult<()> {
    match layer_for(path) {
        None => file.sync_all(),
        Some(l) => {
            let n = l.before(Op::SyncFile, path)?;
            file.sync_all()?;
            l.after_sync_file(file, path, n);
            Ok(())
        }
    }
}

/// `fsync(2)` of a directory: the names in it become durable.
pub fn sync_dir(dir: &Path) -> IoResult<()> {
    let f = File::open(dir)?;
    match layer_for(dir) {
        None => f.sync_all(),
        Some(l) => {
            l.before(Op::SyncDir, dir)?;
            f.sync_all()?;
            l.after_sync_dir(dir);
            Ok(())
        }
    }
}

/// `std::fs::rename`.
pub fn rename(from: &Path, to: &Path) -> IoResult<()> {
    guarded(from, Op::Rename, || std::fs::rename(from, to))
}

/// `std::fs::hard_link`.
pub fn hard_link(from: &Path, to: &Path) -> IoResult<()> {
    guarded(to, Op::Link, || std::fs::hard_link(from, to))
}

/// `std::fs::remove_file`.
pub fn remove_file(path: &Path) -> IoResult<()> {
    guarded(path, Op::Remove, || std::fs::remove_file(path))
}

/// `std::fs::remove_dir_all`.
pub fn remove_dir_all(path: &Path) -> IoResult<()> {
    guarded(path, Op::Remove, || std::fs::remove_dir_all(path))
}

/// A file being written sequentially through the layer (wrap it in a
/// `BufWriter`); every `write` is one operation.
#[derive(Debug)]
pub struct SeqFile {
    file: File,
    path: PathBuf,
    off: u64,
}

impl SeqFile {
    /// Creates (truncating) `path` for sequential writing.
    pub fn create(path: &Path) -> IoResult<SeqFile> {
        Ok(SeqFile {
            file: create(path)?,
            path: path.to_path_buf(),
            off: 0,
        })
    }

    /// The file, for fsync.
    pub fn file(&self) -> &File {
        &self.file
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Write for SeqFile {
    fn write(&mut self, buf: &[u8]) -> IoResult<usize> {
        write_all_at(&self.file, &self.path, buf, self.off)?;
        self.off += buf.len() as u64;
        Ok(buf.len())
    }

    fn flush(&mut self) -> IoResult<()> {
        Ok(())
    }
}

/// How a [`FaultFs`] fails operations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultPlan {
    /// Nothing fails; operations are only counted (and modelled).
    None,
    /// Operation number `n` (1-based, counted since the plan was set) and
    /// every later one fail with `errno` until [`FaultFs::clear`].
    FailFrom {
        /// First failing operation.
        n: u64,
        /// The error.
        errno: i32,
    },
    /// Only operation number `n` fails with `errno`.
    FailOnce {
        /// The failing operation.
        n: u64,
        /// The error.
        errno: i32,
    },
    /// Power loss at operation `n`: the durable state is frozen just before
    /// it, and it and every later operation fail with EIO.
    PowerCut {
        /// The operation the power goes out at.
        n: u64,
    },
}

/// A change of a file's bytes not yet covered by an fsync.
#[derive(Debug, Clone)]
enum Pending {
    Write { off: u64, data: Vec<u8> },
    SetLen(u64),
}

#[derive(Debug, Default)]
struct Model {
    /// Inode number -> model id (a new id whenever a name gets a new inode).
    ids: HashMap<u64, u64>,
    next_id: u64,
    /// Durable bytes of each file.
    content: HashMap<u64, Vec<u8>>,
    /// Writes since the file's last fsync, in order.
    pending: HashMap<u64, Vec<Pending>>,
    /// Durable entries of each directory: name -> (id, is_dir).
    dirs: HashMap<u64, Vec<(OsString, u64, bool)>>,
    root: u64,
}

impl Model {
    fn id_of_ino(&mut self, ino: u64) -> u64 {
        if let Some(&id) = self.ids.get(&ino) {
            return id;
        }
        self.fresh(ino)
    }

    fn fresh(&mut self, ino: u64) -> u64 {
        self.next_id += 1;
        self.ids.insert(ino, self.next_id);
        self.next_id
    }

    /// Records `dir`'s current entries as durable, and (with `deep`) those
    /// of every directory and file below it.
    fn snapshot_dir(&mut self, dir: &Path, deep: bool) -> IoResult<u64> {
        let id = self.id_of_ino(std::fs::metadata(dir)?.ino());
        let mut entries = Vec::new();
        for e in std::fs::read_dir(dir)? {
            let e = e?;
            let md = e.metadata()?;
            let cid = self.id_of_ino(md.ino());
            entries.push((e.file_name(), cid, md.is_dir()));
            if deep {
                if md.is_dir() {
                    self.snapshot_dir(&e.path(), true)?;
                } else if md.is_file() {
                    self.content.insert(cid, std::fs::read(e.path())?);
                }
            }
        }
        self.dirs.insert(id, entries);
        Ok(id)
    }
}

#[derive(Debug)]
struct State {
    plan: FaultPlan,
    /// Operations seen since the plan was set.
    ops: u64,
    /// Operations failed since the plan was set.
    failed: u64,
    short_writes: bool,
    /// Set at a power cut: nothing changes the model any more.
    frozen: bool,
    /// File fsyncs that completed: the operation number they started at, and the file.
    synced: Vec<(u64, PathBuf)>,
    model: Model,
    /// Operations in order, for a failing test to print.
    log: Vec<String>,
}

/// A fault-injecting, power-loss-modelling layer over the directory tree at
/// `root` (tests only; see the module docs).
#[derive(Debug)]
pub struct FaultFs {
    root: PathBuf,
    state: parking_lot::Mutex<State>,
}

fn eio() -> std::io::Error {
    std::io::Error::from_raw_os_error(libc::EIO)
}

impl FaultFs {
    /// Registers a layer for everything below `root` (which must exist).
    /// What is there now counts as durable. The registry holds the layer
    /// until [`FaultFs::unregister`].
    pub fn register(root: &Path) -> IoResult<Arc<FaultFs>> {
        let root = root.canonicalize()?;
        let mut model = Model::default();
        model.root = model.snapshot_dir(&root, true)?;
        let l = Arc::new(FaultFs {
            root,
            state: parking_lot::Mutex::new(State {
                plan: FaultPlan::None,
                ops: 0,
                failed: 0,
                short_writes: false,
                frozen: false,
                synced: Vec::new(),
                model,
                log: Vec::new(),
            }),
        });
        let mut r = registry().write();
        r.retain(|o| !o.root.starts_with(&l.root) && !l.root.starts_with(&o.root));
        r.push(Arc::clone(&l));
        ACTIVE.store(true, Ordering::Relaxed);
        Ok(l)
    }

    /// Removes the layer: operations below its root go straight to the OS again.
    pub fn unregister(&self) {
        let mut r = registry().write();
        r.retain(|o| o.root != self.root);
        if r.is_empty() {
            ACTIVE.store(false, Ordering::Relaxed);
        }
    }

    /// The (canonical) directory this layer covers.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Sets how operations fail from now on and restarts the count.
    pub fn set_plan(&self, plan: FaultPlan) {
        let mut s = self.state.lock();
        s.plan = plan;
        s.ops = 0;
        s.failed = 0;
    }

    /// Makes a write refused with ENOSPC write half its bytes first.
    pub fn set_short_writes(&self, on: bool) {
        self.state.lock().short_writes = on;
    }

    /// Stops failing operations (a full disk got space again). A power cut stays.
    pub fn clear(&self) {
        let mut s = self.state.lock();
        if !s.frozen {
            s.plan = FaultPlan::None;
        }
    }

    /// Operations seen since the plan was set.
    pub fn ops(&self) -> u64 {
        self.state.lock().ops
    }

    /// Operations failed since the plan was set.
    pub fn failed(&self) -> u64 {
        self.state.lock().failed
    }

    /// The operation number of the newest file fsync that completed (before
    /// any power cut) on a path `which` accepts: every write that finished
    /// before that operation started is durable.
    pub fn last_completed_sync(&self, which: impl Fn(&Path) -> bool) -> Option<u64> {
        let s = self.state.lock();
        s.synced
            .iter()
            .filter(|(_, p)| which(p))
            .map(|(n, _)| *n)
            .max()
    }

    /// Whether a power cut happened.
    pub fn cut(&self) -> bool {
        self.state.lock().frozen
    }

    /// The last `n` operations, one per line.
    pub fn recent_ops(&self, n: usize) -> String {
        let s = self.state.lock();
        let from = s.log.len().saturating_sub(n);
        s.log[from..].join("\n")
    }

    /// The `k` operations before operation `n`, one per line.
    pub fn ops_before(&self, n: u64, k: usize) -> String {
        let s = self.state.lock();
        let end = (n.saturating_sub(1) as usize).min(s.log.len());
        s.log[end.saturating_sub(k)..end].join("\n")
    }

    fn short_writes(&self) -> bool {
        self.state.lock().short_writes
    }

    /// Counts an operation and fails it if the plan says so; returns its number.
    fn before(&self, op: Op, path: &Path) -> IoResult<u64> {
        let mut s = self.state.lock();
        s.ops += 1;
        let n = s.ops;
        let fail = match s.plan {
            FaultPlan::None => None,
            FaultPlan::FailFrom { n: at, errno } => (n >= at).then_some(errno),
            FaultPlan::FailOnce { n: at, errno } => (n == at).then_some(errno),
            FaultPlan::PowerCut { n: at } => {
                if n >= at {
                    s.frozen = true;
                    Some(libc::EIO)
                } else {
                    None
                }
            }
        };
        // Removing never needs space; a full disk refuses what allocates.
        let fail = fail.filter(|&e| !(e == libc::ENOSPC && matches!(op, Op::Remove | Op::SyncDir)));
        if s.log.len() < 100_000 {
            let line = format!(
                "{n} {op:?} {}{}",
                path.display(),
                if fail.is_some() { " FAILED" } else { "" }
            );
            s.log.push(line);
        }
        match fail {
            Some(errno) => {
                s.failed += 1;
                Err(if errno == libc::EIO {
                    eio()
                } else {
                    std::io::Error::from_raw_os_error(errno)
                })
            }
            None => Ok(n),
        }
    }

    fn after_create(&self, f: &File, existed: bool) {
        let mut s = self.state.lock();
        if s.frozen {
            return;
        }
        let Ok(md) = f.metadata() else { return };
        let id = if existed {
            s.model.id_of_ino(md.ino())
        } else {
            s.model.fresh(md.ino())
        };
        if existed {
            s.model
                .pending
                .entry(id)
                .or_default()
                .push(Pending::SetLen(0));
        }
    }

    fn after_new_name(&self, path: &Path) {
        let mut s = self.state.lock();
        if s.frozen {
            return;
        }
        if let Ok(md) = std::fs::symlink_metadata(path) {
            s.model.fresh(md.ino());
        }
    }

    fn record_write(&self, f: &File, off: u64, data: &[u8]) {
        let mut s = self.state.lock();
        if s.frozen {
            return;
        }
        let Ok(md) = f.metadata() else { return };
        let id = s.model.id_of_ino(md.ino());
        s.model.pending.entry(id).or_default().push(Pending::Write {
            off,
            data: data.to_vec(),
        });
    }

    fn record_set_len(&self, f: &File, len: u64) {
        let mut s = self.state.lock();
        if s.frozen {
            return;
        }
        let Ok(md) = f.metadata() else { return };
        let id = s.model.id_of_ino(md.ino());
        s.model
            .pending
            .entry(id)
            .or_default()
            .push(Pending::SetLen(len));
    }

    fn after_sync_file(&self, f: &File, path: &Path, n: u64) {
        let mut s = self.state.lock();
        if s.frozen {
            return;
        }
        let Ok(md) = f.metadata() else { return };
        let id = s.model.id_of_ino(md.ino());
        // The file may be open write-only: read it through /proc.
        let mut data = Vec::new();
        let read = File::open(format!("/proc/self/fd/{}", f.as_raw_fd()))
            .and_then(|mut r| r.read_to_end(&mut data));
        if read.is_ok() {
            s.model.content.insert(id, data);
            s.model.pending.remove(&id);
            s.synced.push((n, path.to_path_buf()));
        }
    }

    fn after_sync_dir(&self, dir: &Path) {
        let mut s = self.state.lock();
        if s.frozen {
            return;
        }
        if let Err(e) = s.model.snapshot_dir(dir, false) {
            tracing::warn!(error = %e, dir = %dir.display(), "fault layer could not list a synced directory");
        }
    }

    /// Writes what the disk would hold after the power cut (or now, without
    /// one) into `dst`, which must not exist. `seed` picks how much of each
    /// file's unsynced writes survive: none, a prefix of them, or a prefix
    /// with the next write torn.
    pub fn materialize(&self, dst: &Path, seed: u64) -> IoResult<()> {
        let s = self.state.lock();
        let mut rng = seed | 1;
        let root = s.model.root;
        write_dir(&s.model, root, dst, &mut rng, 0)
    }
}

/// xorshift64: enough randomness for choosing tears, no dependency.
fn next_rand(x: &mut u64) -> u64 {
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    *x
}

fn write_dir(m: &Model, id: u64, dst: &Path, rng: &mut u64, depth: usize) -> IoResult<()> {
    std::fs::create_dir(dst)?;
    if depth > 64 {
        return Ok(());
    }
    let Some(entries) = m.dirs.get(&id) else {
        return Ok(());
    };
    for (name, cid, is_dir) in entries {
        let p = dst.join(name);
        if *is_dir {
            write_dir(m, *cid, &p, rng, depth + 1)?;
        } else {
            let mut data = m.content.get(cid).cloned().unwrap_or_default();
            if let Some(pending) = m.pending.get(cid) {
                // Keep the first k unsynced changes; maybe tear the next write.
                let k = (next_rand(rng) % (pending.len() as u64 + 1)) as usize;
                for (i, change) in pending.iter().enumerate().take(k + 1) {
                    match change {
                        Pending::SetLen(len) if i < k => data.resize(*len as usize, 0),
                        Pending::Write { off, data: w } => {
                            let take = if i < k {
                                w.len()
                            } else if next_rand(rng).is_multiple_of(2) {
                                (next_rand(rng) % (w.len() as u64 + 1)) as usize
                            } else {
                                0
                            };
                            let end = *off as usize + take;
                            if data.len() < end {
                                data.resize(end, 0);
                            }
                            data[*off as usize..end].copy_from_slice(&w[..take]);
                        }
                        Pending::SetLen(_) => {}
                    }
                }
            }
            let mut f = File::create(&p)?;
            f.write_all(&data)?;
        }
    }
    Ok(())
}
