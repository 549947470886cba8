//! Byte classes and scanning shared by both formats: names, quoted strings, escapes.

use super::*;

/// Reads a label name at `i` of a validated series text: a legacy name or a quoted
/// one (unescaped). Returns the name and the index after it.
pub(super) fn read_label_name(s: &str, i: usize) -> Option<(Cow<'_, str>, usize)> {
    let b = s.as_bytes();
    if b.get(i) == Some(&b'"') {
        let (qs, qe) = quoted_span(b, i)?;
        Some((unescape(s.get(qs..qe)?, true), qe + 1))
    } else {
        let e = scan_class(b, i, LABEL_CONT);
        if e == i {
            return None;
        }
        Some((Cow::Borrowed(s.get(i..e)?), e))
    }
}

/// The span inside a (validated) quoted string starting at `b[i] == '"'`:
/// `(first byte inside, index of the closing quote)`.
pub(super) fn quoted_span(b: &[u8], i: usize) -> Option<(usize, usize)> {
    if b.get(i) != Some(&b'"') {
        return None;
    }
    let mut j = i + 1;
    loop {
        match b.get(j)? {
            b'"' => return Some((i + 1, j)),
            b'\\' => j += 2,
            _ => j += 1,
        }
    }
}

pub(super) fn skip_blanks(b: &[u8], mut i: usize) -> usize {
    while matches!(b.get(i), Some(b' ' | b'\t')) {
        i += 1;
    }
    i
}

// Character classes (bit flags) for the name grammars.
pub(super) const METRIC_START: u8 = 1;
pub(super) const METRIC_CONT: u8 = 2;
pub(super) const LABEL_START: u8 = 4;
pub(super) const LABEL_CONT: u8 = 8;
/// Ends a quoted string scan run: `"`, `\\`, `\n`, NUL.
pub(super) const QUOTE_STOP: u8 = 16;
/// Ends a text-format value token: `{`, space, tab, `\n`, NUL.
pub(super) const TEXT_VALUE_STOP: u8 = 32;
/// Ends an OpenMetrics token: space, `\n`, NUL.
pub(super) const OM_TOKEN_STOP: u8 = 64;

pub(super) static CLASS: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut c = 0;
    while c < 256 {
        let b = c as u8;
        let alpha = b.is_ascii_alphabetic() || b == b'_';
        let digit = b.is_ascii_digit();
        let mut f = 0;
        if alpha || b == b':' {
            f |= METRIC_START | METRIC_CONT;
        }
        if digit {
            f |= METRIC_CONT | LABEL_CONT;
        }
        if alpha {
            f |= LABEL_START | LABEL_CONT;
        }
        if matches!(b, b'"' | b'\\' | b'\n' | 0) {
            f |= QUOTE_STOP;
        }
        if matches!(b, b'{' | b' ' | b'\t' | b'\n' | 0) {
            f |= TEXT_VALUE_STOP;
        }
        if matches!(b, b' ' | b'\n' | 0) {
            f |= OM_TOKEN_STOP;
        }
        t[c] = f;
        c += 1;
    }
    t
};

#[inline]
pub(super) fn has_class(c: u8, class: u8) -> bool {
    CLASS[c as usize] & class != 0
}

/// Index of the first byte at or after `i` that is not in `class`.
#[inline]
pub(super) fn scan_class(b: &[u8], i: usize, class: u8) -> usize {
    match b.get(i..) {
        Some(rest) => {
            i + rest
                .iter()
                .position(|&c| !has_class(c, class))
                .unwrap_or(rest.len())
        }
        None => i,
    }
}

/// Index of the first byte at or after `i` that is in `class` (or the end).
#[inline]
pub(super) fn scan_until(b: &[u8], i: usize, class: u8) -> usize {
    match b.get(i..) {
        Some(rest) => {
            i + rest
                .iter()
                .position(|&c| has_class(c, class))
                .unwrap_or(rest.len())
        }
        None => i,
    }
}

/// Position of the first `needle` in `hay`, eight bytes at a time (this is what
/// finds the end of `HELP` lines and comments).
pub(super) fn find_byte(hay: &[u8], needle: u8) -> Option<usize> {
    const LO: u64 = 0x0101_0101_0101_0101;
    const HI: u64 = 0x8080_8080_8080_8080;
    let pattern = LO.wrapping_mul(u64::from(needle));
    let mut chunks = hay.chunks_exact(8);
    let mut off = 0;
    for chunk in &mut chunks {
        if let Some(bytes) = chunk.first_chunk::<8>() {
            let w = u64::from_le_bytes(*bytes) ^ pattern;
            // The lowest flagged byte is always a real match.
            let zero = w.wrapping_sub(LO) & !w & HI;
            if zero != 0 {
                return Some(off + (zero.trailing_zeros() / 8) as usize);
            }
        }
        off += 8;
    }
    chunks
        .remainder()
        .iter()
        .position(|&c| c == needle)
        .map(|p| off + p)
}

/// Resolves `\\`, `\n` and (if `quotes`) `\"`; any other backslash stays as written,
/// as Go's `strings.Replacer` in Prometheus does.
pub(super) fn unescape(s: &str, quotes: bool) -> Cow<'_, str> {
    if !s.contains('\\') {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.clone().next() {
            Some('\\') => out.push('\\'),
            Some('n') => out.push('\n'),
            Some('"') if quotes => out.push('"'),
            _ => {
                out.push('\\');
                continue;
            }
        }
        chars.next();
    }
    Cow::Owned(out)
}
