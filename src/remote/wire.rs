//! Minimal zero-copy protobuf wire reader used by the remote-write walkers.
//!
//! Every read is bounds-checked and fails with a [`WireErr`] (converted into
//! [`RemoteError::BadProtobuf`]) carrying the absolute byte offset (within the
//! decompressed body) of the offending item. `WireErr` is one word so that the
//! hot-path `Result`s are returned in registers.

use super::RemoteError;

/// Reasons a [`WireErr`] can carry (indexed by its low 4 bits).
const REASONS: [&str; 9] = [
    "malformed protobuf",
    "truncated varint",
    "varint overflows 64 bits",
    "invalid field number",
    "length-delimited field runs past end of message",
    "truncated fixed64",
    "truncated fixed32",
    "wrong wire type for known field",
    "invalid or unbalanced group wire type",
];

/// A compact protobuf error: `offset << 4 | reason index`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct WireErr(u64);

impl From<WireErr> for RemoteError {
    #[cold]
    fn from(e: WireErr) -> Self {
        RemoteError::BadProtobuf {
            offset: usize::try_from(e.0 >> 4).unwrap_or(usize::MAX),
            reason: REASONS
                .get((e.0 & 15) as usize)
                .copied()
                .unwrap_or(REASONS[0]),
        }
    }
}

/// Wire type: varint.
pub(crate) const WT_VARINT: u8 = 0;
/// Wire type: 64-bit fixed.
pub(crate) const WT_I64: u8 = 1;
/// Wire type: length-delimited.
pub(crate) const WT_LEN: u8 = 2;
/// Wire type: start group (deprecated).
const WT_SGROUP: u8 = 3;
/// Wire type: end group (deprecated).
const WT_EGROUP: u8 = 4;
/// Wire type: 32-bit fixed.
const WT_I32: u8 = 5;

/// Largest legal protobuf field number.
const MAX_FIELD: u64 = (1 << 29) - 1;

/// A cursor over one protobuf message (or packed field) body.
#[derive(Clone, Copy)]
pub(crate) struct Pb<'a> {
    buf: &'a [u8],
    pos: usize,
    /// Absolute offset of `buf[0]` in the outermost buffer, for error messages.
    base: usize,
}

impl<'a> Pb<'a> {
    /// A reader over the whole of `buf`, which starts at absolute offset `base`.
    #[inline]
    pub(crate) fn new(buf: &'a [u8], base: usize) -> Self {
        Pb { buf, pos: 0, base }
    }

    /// True when every byte has been consumed.
    #[inline]
    pub(crate) fn at_end(&self) -> bool {
        self.pos >= self.buf.len()
    }

    /// Absolute offset of the cursor.
    #[inline]
    pub(crate) fn offset(&self) -> usize {
        self.base + self.pos
    }

    #[cold]
    fn err(&self, at: usize, reason: &'static str) -> WireErr {
        let code = REASONS.iter().position(|r| *r == reason).unwrap_or(0) as u64;
        WireErr(((self.base + at) as u64) << 4 | code)
    }

    /// Builds a "wrong wire type" error for a known field whose key ended at the cursor.
    #[cold]
    pub(crate) fn wrong_type(&self, field: u32) -> WireErr {
        let _ = field;
        self.err(self.pos, "wrong wire type for known field")
    }

    /// Reads a base-128 varint (at most 10 bytes, the 10th at most 1).
    #[inline]
    pub(crate) fn varint(&mut self) -> Result<u64, WireErr> {
        if let Some(&b) = self.buf.get(self.pos) {
            if b < 0x80 {
                self.pos += 1;
                return Ok(u64::from(b));
            }
        }
        self.varint_slow()
    }

    fn varint_slow(&mut self) -> Result<u64, WireErr> {
        let start = self.pos;
        let mut v = 0u64;
        for i in 0..10u32 {
            let Some(&b) = self.buf.get(self.pos) else {
                return Err(self.err(start, "truncated varint"));
            };
            self.pos += 1;
            if i == 9 && b > 1 {
                return Err(self.err(start, "varint overflows 64 bits"));
            }
            v |= u64::from(b & 0x7f) << (7 * i);
            if b < 0x80 {
                return Ok(v);
            }
        }
        Err(self.err(start, "varint overflows 64 bits"))
    }

    /// Reads a field key, returning `(field number, wire type)`.
    #[inline]
    pub(crate) fn key(&mut self) -> Result<(u32, u8), WireErr> {
        let start = self.pos;
        let k = self.varint()?;
        let field = k >> 3;
        if field == 0 || field > MAX_FIELD {
            return Err(self.err(start, "invalid field number"));
        }
        // `field <= MAX_FIELD` so the cast is lossless.
        Ok((field as u32, (k & 7) as u8))
    }

    /// Reads a length-delimited payload.
    #[inline]
    pub(crate) fn bytes(&mut self) -> Result<&'a [u8], WireErr> {
        let start = self.pos;
        let len = self.varint()?;
        let rest = self.buf.len() - self.pos;
        if len > rest as u64 {
            return Err(self.err(start, "length-delimited field runs past end of message"));
        }
        let len = len as usize;
        let s = &self.buf[self.pos..self.pos + len];
        self.pos += len;
        Ok(s)
    }

    /// Reads a length-delimited payload, returning its absolute `(start, end)`.
    #[inline]
    pub(crate) fn range(&mut self) -> Result<(usize, usize), WireErr> {
        let s = self.bytes()?;
        let end = self.base + self.pos;
        Ok((end - s.len(), end))
    }

    /// Reads a length-delimited payload as a nested reader.
    #[inline]
    pub(crate) fn sub(&mut self) -> Result<Pb<'a>, WireErr> {
        let s = self.bytes()?;
        Ok(Pb::new(s, self.base + self.pos - s.len()))
    }

    /// Reads a little-endian fixed 64-bit value.
    #[inline]
    pub(crate) fn fixed64(&mut self) -> Result<u64, WireErr> {
        match self.buf.get(self.pos..self.pos + 8) {
            Some(s) => {
                let mut a = [0u8; 8];
                a.copy_from_slice(s);
                self.pos += 8;
                Ok(u64::from_le_bytes(a))
            }
            None => Err(self.err(self.pos, "truncated fixed64")),
        }
    }

    fn advance(&mut self, n: usize, reason: &'static str) -> Result<(), WireErr> {
        if self.buf.len() - self.pos < n {
            return Err(self.err(self.pos, reason));
        }
        self.pos += n;
        Ok(())
    }

    /// Skips the value of an unknown field with the given wire type.
    pub(crate) fn skip(&mut self, field: u32, wt: u8) -> Result<(), WireErr> {
        match wt {
            WT_VARINT => self.varint().map(|_| ()),
            WT_I64 => self.advance(8, "truncated fixed64"),
            WT_LEN => self.bytes().map(|_| ()),
            WT_I32 => self.advance(4, "truncated fixed32"),
            WT_SGROUP => self.skip_group(field),
            WT_EGROUP => Err(self.err(self.pos, "invalid or unbalanced group wire type")),
            _ => Err(self.err(self.pos, "invalid or unbalanced group wire type")),
        }
    }

    /// Skips a (deprecated) group, iteratively, until its matching end-group.
    fn skip_group(&mut self, field: u32) -> Result<(), WireErr> {
        let mut depth = 0usize;
        loop {
            if self.at_end() {
                return Err(self.err(self.pos, "invalid or unbalanced group wire type"));
            }
            let (f, wt) = self.key()?;
            match wt {
                WT_SGROUP => depth += 1,
                WT_EGROUP => {
                    if depth == 0 {
                        return if f == field {
                            Ok(())
                        } else {
                            Err(self.err(self.pos, "invalid or unbalanced group wire type"))
                        };
                    }
                    depth -= 1;
                }
                _ => self.skip(f, wt)?,
            }
        }
    }
}
