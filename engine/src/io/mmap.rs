//! Read-only memory maps of immutable files (block chunk files and indexes).
//!
//! Only files that are complete, fsynced and renamed into place are mapped;
//! the live WAL is never mapped. Truncation of a mapped file by another
//! process is out of scope: the data directory is held under an exclusive
//! lock ([`super::DirLock`]) and block files are never modified after rename.
#![allow(unsafe_code)]

use crate::error::{Error, Result};
use std::fs::File;
use std::path::Path;

/// A read-only mapping of a whole file. Empty files map to an empty slice.
#[derive(Debug)]
pub struct Mmap {
    map: Option<memmap2::Mmap>,
    /// Owned bytes, stored as u64 words so the 8-byte alignment of a map is kept.
    owned: Vec<u64>,
    len: usize,
}

impl Mmap {
    /// Maps `path` read-only.
    pub fn open(path: &Path) -> Result<Mmap> {
        let file = File::open(path).map_err(|e| Error::io("open", path, e))?;
        let len = file
            .metadata()
            .map_err(|e| Error::io("stat", path, e))?
            .len();
        if len == 0 {
            return Ok(Mmap {
                map: None,
                owned: Vec::new(),
                len: 0,
            });
        }
        // SAFETY: the mapping is read-only and the file is an immutable block
        // file: it was fully written, fsynced and renamed into place before it
        // is ever opened here, and nothing in this process writes to it again.
        // The data directory lock keeps other sonde processes away; changes by
        // unrelated processes are outside the documented contract.
        let map = unsafe { memmap2::Mmap::map(&file) }.map_err(|e| Error::io("mmap", path, e))?;
        Ok(Mmap {
            map: Some(map),
            owned: Vec::new(),
            len: 0,
        })
    }

    /// Wraps bytes already in memory (fuzzing, tests) behind the same interface.
    pub fn from_vec(bytes: Vec<u8>) -> Mmap {
        let mut owned = vec![0u64; bytes.len().div_ceil(8)];
        bytemuck::cast_slice_mut::<u64, u8>(&mut owned)[..bytes.len()].copy_from_slice(&bytes);
        Mmap {
            map: None,
            owned,
            len: bytes.len(),
        }
    }

    /// The mapped bytes.
    pub fn as_slice(&self) -> &[u8] {
        match &self.map {
            Some(m) => m,
            None => &bytemuck::cast_slice::<u64, u8>(&self.owned)[..self.len],
        }
    }
}
