//! Bit- and varint-level helpers shared by the chunk encodings.
//!
//! [`BitWriter`] keeps its output as a byte vector plus up to 63 pending bits,
//! and copies out a valid prefix of the stream at any moment (the head
//! exposes an appending chunk while it grows). [`BitReader`] is a
//! 64-bit buffered reader that refills up to 7 bytes at a time; every read is
//! bounds checked and returns `None` past the end of the data instead of
//! panicking.

/// Appends bits, most significant first, to a byte vector.
///
/// The last up to 63 bits wait in a word inside the writer and go to the
/// vector 8 bytes at a time: a head appends one sample at a time to each of
/// thousands of open chunks, and touching a chunk's buffer for every sample
/// costs a cache miss each time. [`BitWriter::copy_to`] gives the bytes
/// written so far, the last one zero-padded: a valid prefix of the stream.
#[derive(Clone, Debug, Default)]
#[repr(C)]
pub struct BitWriter {
    /// Pending bits, left aligned; the bits below `pending` are zero.
    acc: u64,
    /// Number of pending bits (0..=63).
    pending: u32,
    /// Whole bytes written so far.
    buf: Vec<u8>,
}

impl BitWriter {
    /// A writer that appends to `buf` (its bytes come first in the output).
    pub fn from_vec(buf: Vec<u8>) -> Self {
        BitWriter {
            buf,
            acc: 0,
            pending: 0,
        }
    }

    /// Number of output bytes so far (the last one possibly partial).
    pub fn byte_len(&self) -> usize {
        self.buf.len() + self.pending.div_ceil(8) as usize
    }

    /// Appends the bytes written so far to `out`; the last byte is zero-padded.
    pub fn copy_to(&self, out: &mut Vec<u8>) {
        out.reserve(self.byte_len());
        out.extend_from_slice(&self.buf);
        out.extend_from_slice(&self.acc.to_be_bytes()[..self.pending.div_ceil(8) as usize]);
    }

    /// Consumes the writer, returning the bytes (the last one zero-padded).
    pub fn into_vec(mut self) -> Vec<u8> {
        let tail = self.pending.div_ceil(8) as usize;
        self.buf.extend_from_slice(&self.acc.to_be_bytes()[..tail]);
        self.buf
    }

    /// Total number of bits written, including the bytes given to `from_vec`.
    pub fn bit_len(&self) -> usize {
        self.buf.len() * 8 + self.pending as usize
    }

    /// Moves a full word of bits to the vector, growing it by half rather
    /// than doubling: a head holds one open chunk per series, so slack adds up.
    #[inline]
    fn flush_word(&mut self, word: u64) {
        if self.buf.capacity() - self.buf.len() < 8 {
            self.buf.reserve_exact((self.buf.len() / 2).max(32));
        }
        self.buf.extend_from_slice(&word.to_be_bytes());
    }

    /// Appends a single bit.
    #[inline]
    pub fn write_bit(&mut self, bit: bool) {
        self.write_bits(u64::from(bit), 1);
    }

    /// Appends the low `n` bits of `v` (`n <= 64`), most significant first.
    #[inline]
    pub fn write_bits(&mut self, v: u64, n: u32) {
        debug_assert!(n <= 64);
        if n == 0 {
            return;
        }
        let v = if n >= 64 { v } else { v & ((1u64 << n) - 1) };
        // 1..=64 bits of room.
        let room = 64 - self.pending;
        if n < room {
            self.acc |= v << (room - n);
            self.pending += n;
        } else {
            // The word fills up: its last `room` bits are the top of `v`,
            // the other `rest` (0..=63) bits of `v` start the next one.
            let rest = n - room;
            let word = self.acc | (v >> rest);
            self.flush_word(word);
            self.acc = if rest == 0 { 0 } else { v << (64 - rest) };
            self.pending = rest;
        }
    }

    /// Appends whole bytes.
    pub fn write_aligned(&mut self, bytes: &[u8]) {
        if self.pending == 0 {
            self.buf.extend_from_slice(bytes);
        } else {
            for &b in bytes {
                self.write_bits(u64::from(b), 8);
            }
        }
    }
}

/// Reads bits, most significant first, from a byte slice.
#[derive(Clone, Debug)]
pub struct BitReader<'a> {
    data: &'a [u8],
    /// Next byte of `data` to load into `buf`.
    pos: usize,
    /// Unread bits, left aligned; bits below `count` are zero.
    buf: u64,
    /// Number of valid bits in `buf`.
    count: u32,
}

impl<'a> BitReader<'a> {
    /// A reader positioned at the first bit of `data`.
    pub fn new(data: &'a [u8]) -> Self {
        BitReader {
            data,
            pos: 0,
            buf: 0,
            count: 0,
        }
    }

    /// Approximate byte offset of the next unread bit (for error messages).
    pub fn byte_offset(&self) -> usize {
        self.pos.saturating_sub((self.count / 8) as usize)
    }

    #[inline]
    fn refill(&mut self) {
        if let Some(word) = self.data.get(self.pos..).and_then(|s| s.first_chunk::<8>()) {
            let w = u64::from_be_bytes(*word);
            // count < 56 here: load as many whole bytes as fit.
            self.buf |= w >> self.count;
            self.pos += ((63 - self.count) >> 3) as usize;
            self.count |= 56;
        } else {
            while self.count <= 56 {
                let Some(&b) = self.data.get(self.pos) else {
                    break;
                };
                self.buf |= u64::from(b) << (56 - self.count);
                self.pos += 1;
                self.count += 8;
            }
        }
    }

    /// Reads one bit.
    #[inline]
    pub fn read_bit(&mut self) -> Option<bool> {
        if self.count == 0 {
            self.refill();
            if self.count == 0 {
                return None;
            }
        }
        let bit = self.buf >> 63 != 0;
        self.buf <<= 1;
        self.count -= 1;
        Some(bit)
    }

    /// Returns up to the next 56 bits without consuming them, left aligned,
    /// together with how many of them are valid.
    #[inline]
    pub fn peek(&mut self) -> (u64, u32) {
        if self.count < 56 {
            self.refill();
        }
        (self.buf, self.count)
    }

    /// Consumes `n` bits previously seen with [`BitReader::peek`] (`n <= count`).
    #[inline]
    pub fn consume(&mut self, n: u32) {
        debug_assert!(n <= self.count && n < 64);
        self.buf = self.buf.checked_shl(n).unwrap_or(0);
        self.count = self.count.saturating_sub(n);
    }

    /// Reads `n <= 64` bits as an unsigned integer.
    #[inline]
    pub fn read_bits(&mut self, n: u32) -> Option<u64> {
        if n <= 56 {
            if self.count < n {
                self.refill();
                if self.count < n {
                    return None;
                }
            }
            if n == 0 {
                return Some(0);
            }
            let v = self.buf >> (64 - n);
            self.buf <<= n;
            self.count -= n;
            Some(v)
        } else if n <= 64 {
            let hi = self.read_bits(n - 32)?;
            let lo = self.read_bits(32)?;
            Some(hi << 32 | lo)
        } else {
            None
        }
    }
}

/// Appends `v` as an unsigned LEB128 varint.
#[inline]
pub fn put_uvarint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Appends `v` as a zigzag signed varint (Go's `binary.PutVarint`).
#[inline]
pub fn put_varint(out: &mut Vec<u8>, v: i64) {
    put_uvarint(out, zigzag(v));
}

/// Zigzag-encodes a signed integer.
#[inline]
pub fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

/// Inverse of [`zigzag`].
#[inline]
pub fn unzigzag(u: u64) -> i64 {
    ((u >> 1) as i64) ^ -((u & 1) as i64)
}

/// Number of bytes [`put_uvarint`] uses for `v`.
#[inline]
pub fn uvarint_len(v: u64) -> usize {
    // 1 + floor(bits/7), with 0 taking one byte.
    let bits = 64 - (v | 1).leading_zeros() as usize;
    bits.div_ceil(7)
}

/// Reads an unsigned varint at `*pos`, advancing it. `None` if truncated or
/// longer than 10 bytes / overflowing 64 bits.
#[inline]
pub fn get_uvarint(data: &[u8], pos: &mut usize) -> Option<u64> {
    let &b0 = data.get(*pos)?;
    if b0 < 0x80 {
        *pos += 1;
        return Some(u64::from(b0));
    }
    let mut v = u64::from(b0 & 0x7f);
    let mut shift = 7u32;
    let mut i = *pos + 1;
    loop {
        let &b = data.get(i)?;
        i += 1;
        if shift == 63 && b > 1 {
            return None;
        }
        v |= u64::from(b & 0x7f) << shift;
        if b < 0x80 {
            *pos = i;
            return Some(v);
        }
        shift += 7;
        if shift > 63 {
            return None;
        }
    }
}

/// Reads a zigzag signed varint at `*pos`, advancing it.
#[inline]
pub fn get_varint(data: &[u8], pos: &mut usize) -> Option<i64> {
    get_uvarint(data, pos).map(unzigzag)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn bits_round_trip(items in proptest::collection::vec((any::<u64>(), 0u32..=64), 0..200)) {
            let mut w = BitWriter::default();
            let mut total = 0usize;
            for &(v, n) in &items {
                w.write_bits(v, n);
                total += n as usize;
                prop_assert_eq!(w.bit_len(), total);
            }
            let mut copy = Vec::new();
            w.copy_to(&mut copy);
            prop_assert_eq!(copy.len(), w.byte_len());
            let bytes = w.into_vec();
            prop_assert_eq!(&copy, &bytes);
            prop_assert_eq!(bytes.len(), total.div_ceil(8));
            let mut r = BitReader::new(&bytes);
            for &(v, n) in &items {
                let mask = if n == 64 { u64::MAX } else { (1u64 << n) - 1 };
                prop_assert_eq!(r.read_bits(n), Some(v & mask));
            }
        }

        #[test]
        fn varint_round_trip(v in any::<i64>(), u in any::<u64>()) {
            let mut out = Vec::new();
            put_varint(&mut out, v);
            put_uvarint(&mut out, u);
            let mut pos = 0;
            prop_assert_eq!(get_varint(&out, &mut pos), Some(v));
            prop_assert_eq!(uvarint_len(u), out.len() - pos);
            prop_assert_eq!(get_uvarint(&out, &mut pos), Some(u));
            prop_assert_eq!(pos, out.len());
        }

        #[test]
        fn varint_garbage_no_panic(data in proptest::collection::vec(any::<u8>(), 0..16)) {
            let mut pos = 0;
            let _ = get_uvarint(&data, &mut pos);
            prop_assert!(pos <= data.len());
        }
    }

    #[test]
    fn bit_reader_eof() {
        let mut r = BitReader::new(&[0xAB]);
        assert_eq!(r.read_bits(4), Some(0xA));
        assert_eq!(r.read_bit(), Some(true));
        assert_eq!(r.read_bits(3), Some(0b011));
        assert_eq!(r.read_bit(), None);
        assert_eq!(r.read_bits(64), None);
    }
}
