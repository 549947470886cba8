//! Everything that touches the file system's durability guarantees: fsync of
//! files and directories, durable renames, the data-directory lock and
//! (in [`mmap`]) memory-mapped reads of immutable files.
//!
//! Keeping these in one module makes the ordering rules reviewable in one
//! place: data is written, the file is fsynced, then it is renamed into place
//! and the parent directory is fsynced, so that a crash at any point leaves
//! either the old state or the new one.

pub mod fs;
pub mod mmap;

use crate::error::{Error, Result};
use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};

/// fsyncs a directory so that entries created, renamed or removed in it are durable.
pub fn sync_dir(dir: &Path) -> Result<()> {
    fs::sync_dir(dir).map_err(|e| Error::io("fsync dir", dir, e))
}

/// fsyncs a file's data and metadata.
pub fn sync_file(file: &File, path: &Path) -> Result<()> {
    fs::sync_file(file, path).map_err(|e| Error::io("fsync", path, e))
}

/// Writes `data` to `path` atomically: a `.tmp` sibling is written and fsynced,
/// renamed over `path`, and the parent directory fsynced.
pub fn write_atomic(path: &Path, data: &[u8]) -> Result<()> {
    let tmp = tmp_sibling(path);
    let write = || -> Result<()> {
        let f = fs::create(&tmp).map_err(|e| Error::io("create", &tmp, e))?;
        fs::write_all_at(&f, &tmp, data, 0).map_err(|e| Error::io("write", &tmp, e))?;
        sync_file(&f, &tmp)?;
        rename_durable(&tmp, path)
    };
    write().inspect_err(|_| {
        // No half-written sibling stays behind (gone already if the rename happened).
        let _ = fs::remove_file(&tmp);
    })
}

/// Renames `from` to `to` and fsyncs the parent directory (of `to`, and of `from` if different).
pub fn rename_durable(from: &Path, to: &Path) -> Result<()> {
    fs::rename(from, to).map_err(|e| Error::io("rename", from, e))?;
    if let Some(parent) = to.parent() {
        sync_dir(parent)?;
    }
    if let (Some(a), Some(b)) = (from.parent(), to.parent()) {
        if a != b {
            sync_dir(a)?;
        }
    }
    Ok(())
}

/// `path` with `.tmp` appended to its file name.
pub fn tmp_sibling(path: &Path) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(".tmp");
    PathBuf::from(s)
}

/// Creates a directory and all its parents, then fsyncs its parent.
pub fn create_dir_durable(dir: &Path) -> Result<()> {
    fs::create_dir_all(dir).map_err(|e| Error::io("create dir", dir, e))?;
    if let Some(parent) = dir.parent() {
        if !parent.as_os_str().is_empty() {
            sync_dir(parent)?;
        }
    }
    Ok(())
}

/// Total size in bytes of the regular files below `dir` (recursively).
pub fn dir_size(dir: &Path) -> Result<u64> {
    let mut total = 0;
    let rd = match std::fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(Error::io("read dir", dir, e)),
    };
    for entry in rd {
        let entry = entry.map_err(|e| Error::io("read dir", dir, e))?;
        let ft = entry
            .file_type()
            .map_err(|e| Error::io("stat", entry.path(), e))?;
        if ft.is_dir() {
            total += dir_size(&entry.path())?;
        } else if ft.is_file() {
            total += entry
                .metadata()
                .map_err(|e| Error::io("stat", entry.path(), e))?
                .len();
        }
    }
    Ok(total)
}

/// An exclusive lock on the data directory, held for the life of the value.
///
/// Uses `flock(2)` on `<dir>/lock`, so a lock left by a dead process is
/// released by the kernel and never blocks a restart.
#[derive(Debug)]
pub struct DirLock {
    _file: File,
}

impl DirLock {
    /// Takes the lock or fails with [`Error::Locked`].
    pub fn acquire(dir: &Path) -> Result<DirLock> {
        let path = dir.join("lock");
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| Error::io("open lock file", &path, e))?;
        match file.try_lock() {
            Ok(()) => Ok(DirLock { _file: file }),
            Err(std::fs::TryLockError::WouldBlock) => Err(Error::Locked {
                path: dir.to_path_buf(),
            }),
            Err(std::fs::TryLockError::Error(e)) => Err(Error::io("lock", &path, e)),
        }
    }
}
