//! Varints and bounds-checked decoding shared by the index, tombstone and
//! WAL-record formats (FORMAT.md "Conventions").
//!
//! `uvarint` is LEB128 (as Go's `binary.PutUvarint`), `varint` is zigzag +
//! LEB128. [`Decbuf`] never panics: every read past the end, overlong varint
//! or bad UTF-8 is an error carrying the offset.

use crate::error::{Error, Result};

/// Appends a LEB128 unsigned varint.
#[inline]
pub fn put_uvarint(buf: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        buf.push((v as u8) | 0x80);
        v >>= 7;
    }
    buf.push(v as u8);
}

/// Appends a zigzag LEB128 signed varint.
#[inline]
pub fn put_varint(buf: &mut Vec<u8>, v: i64) {
    put_uvarint(buf, ((v << 1) ^ (v >> 63)) as u64)
}

/// Appends a uvarint length followed by the bytes.
pub fn put_bytes(buf: &mut Vec<u8>, b: &[u8]) {
    put_uvarint(buf, b.len() as u64);
    buf.extend_from_slice(b);
}

/// A cursor over bytes whose reads fail cleanly at the end.
#[derive(Clone, Debug)]
pub struct Decbuf<'a> {
    data: &'a [u8],
    pos: usize,
    /// Added to positions in errors (where this buffer starts in its file).
    base: u64,
    what: &'static str,
}

impl<'a> Decbuf<'a> {
    /// A decoder over `data`; `what` names the data in errors, `base` is its file offset.
    pub fn new(data: &'a [u8], what: &'static str, base: u64) -> Self {
        Decbuf {
            data,
            pos: 0,
            base,
            what,
        }
    }

    /// An error at the current position.
    pub fn err(&self, reason: impl Into<String>) -> Error {
        Error::corruption(self.what, self.base + self.pos as u64, reason)
    }

    /// Bytes left.
    pub fn remaining(&self) -> usize {
        self.data.len() - self.pos
    }

    /// Current offset within the buffer.
    pub fn position(&self) -> usize {
        self.pos
    }

    /// Reads one byte.
    pub fn u8(&mut self) -> Result<u8> {
        let b = *self
            .data
            .get(self.pos)
            .ok_or_else(|| self.err("unexpected end of data"))?;
        self.pos += 1;
        Ok(b)
    }

    /// Reads `n` bytes.
    pub fn bytes(&mut self, n: usize) -> Result<&'a [u8]> {
        if n > self.remaining() {
            return Err(self.err(format!("need {n} bytes, {} left", self.remaining())));
        }
        let s = &self.data[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    /// Reads a big-endian u32.
    pub fn be_u32(&mut self) -> Result<u32> {
        let b = self.bytes(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// Reads a little-endian u64.
    pub fn le_u64(&mut self) -> Result<u64> {
        let b = self.bytes(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_le_bytes(a))
    }

    /// Reads a LEB128 unsigned varint (at most 10 bytes).
    #[inline]
    pub fn uvarint(&mut self) -> Result<u64> {
        let mut v: u64 = 0;
        let mut shift = 0u32;
        loop {
            let b = self.u8()?;
            if shift == 63 && b > 1 {
                return Err(self.err("varint overflows 64 bits"));
            }
            v |= u64::from(b & 0x7f) << shift;
            if b < 0x80 {
                return Ok(v);
            }
            shift += 7;
            if shift > 63 {
                return Err(self.err("varint too long"));
            }
        }
    }

    /// Reads a zigzag varint.
    #[inline]
    pub fn varint(&mut self) -> Result<i64> {
        let u = self.uvarint()?;
        Ok(((u >> 1) as i64) ^ -((u & 1) as i64))
    }

    /// Reads a uvarint that must fit in usize and be at most `max`.
    pub fn uvarint_max(&mut self, max: u64) -> Result<usize> {
        let v = self.uvarint()?;
        if v > max {
            return Err(self.err(format!("value {v} exceeds limit {max}")));
        }
        usize::try_from(v).map_err(|_| self.err("value does not fit in memory"))
    }

    /// Reads a uvarint-length-prefixed byte string.
    pub fn len_bytes(&mut self) -> Result<&'a [u8]> {
        let n = self.uvarint_max(self.remaining() as u64)?;
        self.bytes(n)
    }

    /// Reads a uvarint-length-prefixed UTF-8 string.
    pub fn str(&mut self) -> Result<&'a str> {
        let at = self.pos;
        let b = self.len_bytes()?;
        std::str::from_utf8(b)
            .map_err(|_| Error::corruption(self.what, self.base + at as u64, "invalid utf-8"))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn varints_round_trip(u in any::<u64>(), i in any::<i64>()) {
            let mut b = Vec::new();
            put_uvarint(&mut b, u);
            put_varint(&mut b, i);
            let mut d = Decbuf::new(&b, "test", 0);
            prop_assert_eq!(d.uvarint().unwrap(), u);
            prop_assert_eq!(d.varint().unwrap(), i);
            prop_assert_eq!(d.remaining(), 0);
        }

        #[test]
        fn decoding_garbage_never_panics(b in proptest::collection::vec(any::<u8>(), 0..64)) {
            let mut d = Decbuf::new(&b, "test", 0);
            while d.remaining() > 0 {
                if d.uvarint().is_err() || d.str().is_err() { break; }
            }
        }
    }
}
