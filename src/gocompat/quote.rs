//! Go's `strconv.Quote`, `QuoteToASCII`, `QuoteRune` and `Unquote`.

use std::fmt::Write as _;

/// Approximates Go's `unicode.IsPrint` (letters, marks, numbers, punctuation,
/// symbols and ASCII space).
pub fn is_print(c: char) -> bool {
    let u = c as u32;
    if c == ' ' {
        return true;
    }
    if c.is_control() || c.is_whitespace() {
        return false;
    }
    !matches!(u,
        0xAD | 0x600..=0x605 | 0x61C | 0x6DD | 0x70F | 0x180E | 0x200B..=0x200F | 0x202A..=0x202E
        | 0x2060..=0x206F | 0xD800..=0xF8FF | 0xFDD0..=0xFDEF | 0xFEFF | 0xFFF9..=0xFFFB | 0xFFFE | 0xFFFF
        | 0xE0001 | 0xE0020..=0xE007F | 0xF0000..)
}

fn quote_with(s: &str, quote: char, ascii_only: bool) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push(quote);
    for c in s.chars() {
        if c == quote || c == '\\' {
            out.push('\\');
            out.push(c);
            continue;
        }
        let printable = if ascii_only {
            c.is_ascii() && is_print(c)
        } else {
            is_print(c)
        };
        if printable {
            out.push(c);
            continue;
        }
        match c {
            '\x07' => out.push_str("\\a"),
            '\x08' => out.push_str("\\b"),
            '\x0c' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\x0b' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c if (c as u32) < 0x10000 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => {
                let _ = write!(out, "\\U{:08x}", c as u32);
            }
        }
    }
    out.push(quote);
    out
}

/// Go's `strconv.Quote`.
pub fn quote(s: &str) -> String {
    quote_with(s, '"', false)
}

/// Go's `strconv.QuoteToASCII`.
pub fn quote_ascii(s: &str) -> String {
    quote_with(s, '"', true)
}

/// Go's `strconv.QuoteRune` (`QuoteRuneToASCII` when `ascii_only`).
pub fn quote_rune(c: char, ascii_only: bool) -> String {
    quote_with(&c.to_string(), '\'', ascii_only)
}

/// Go's `strconv.CanBackquote`.
pub fn can_backquote(s: &str) -> bool {
    s.chars()
        .all(|c| c != '`' && c != '\u{FEFF}' && (c == '\t' || !c.is_control()))
}

/// Go's `strconv.Unquote` for `"…"`, `` `…` `` and `'…'`.
pub fn unquote(s: &str) -> Result<String, String> {
    let err = || "invalid syntax".to_string();
    let q = s.chars().next().ok_or_else(err)?;
    if !matches!(q, '"' | '`' | '\'') || s.len() < 2 || !s.ends_with(q) {
        return Err(err());
    }
    let inner = &s[1..s.len() - 1];
    match q {
        '`' => {
            if inner.contains('`') {
                return Err(err());
            }
            Ok(inner.replace('\r', ""))
        }
        '"' | '\'' => {
            let mut bytes: Vec<u8> = Vec::new();
            let mut rest = inner;
            let mut count = 0;
            while !rest.is_empty() {
                if rest.starts_with(q) && q == '"' {
                    return Err(err());
                }
                if rest.starts_with('\n') {
                    return Err(err());
                }
                let (piece, tail) = unquote_piece(rest, q).map_err(|_| err())?;
                bytes.extend_from_slice(&piece);
                rest = tail;
                count += 1;
            }
            if q == '\'' && count != 1 {
                return Err(err());
            }
            Ok(String::from_utf8_lossy(&bytes).into_owned())
        }
        _ => Err(err()),
    }
}

/// One (possibly escaped) character of a quoted literal, as UTF-8 bytes
/// (`\x`/octal escapes give single bytes).
fn unquote_piece(s: &str, quote: char) -> Result<(Vec<u8>, &str), ()> {
    let mut chars = s.chars();
    let c = chars.next().ok_or(())?;
    if c != '\\' {
        if c == quote && quote == '\'' {
            return Err(());
        }
        let mut b = [0u8; 4];
        return Ok((c.encode_utf8(&mut b).as_bytes().to_vec(), chars.as_str()));
    }
    let e = chars.next().ok_or(())?;
    let rest = chars.as_str();
    let simple = |ch: char| {
        let mut b = [0u8; 4];
        ch.encode_utf8(&mut b).as_bytes().to_vec()
    };
    Ok(match e {
        'a' => (vec![7], rest),
        'b' => (vec![8], rest),
        'f' => (vec![12], rest),
        'n' => (vec![b'\n'], rest),
        'r' => (vec![b'\r'], rest),
        't' => (vec![b'\t'], rest),
        'v' => (vec![11], rest),
        '\\' => (vec![b'\\'], rest),
        '\'' | '"' => {
            if e != quote {
                return Err(());
            }
            (vec![e as u8], rest)
        }
        'x' | 'u' | 'U' => {
            let n = match e {
                'x' => 2,
                'u' => 4,
                _ => 8,
            };
            let hex = rest.get(..n).ok_or(())?;
            let v = u32::from_str_radix(hex, 16).map_err(|_| ())?;
            if !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(());
            }
            if e == 'x' {
                if quote == '\'' {
                    (simple(char::from_u32(v).ok_or(())?), &rest[n..])
                } else {
                    (vec![v as u8], &rest[n..])
                }
            } else {
                (simple(char::from_u32(v).ok_or(())?), &rest[n..])
            }
        }
        '0'..='7' => {
            let oct = s.get(1..4).ok_or(())?;
            if !oct.bytes().all(|b| (b'0'..=b'7').contains(&b)) {
                return Err(());
            }
            let v = u32::from_str_radix(oct, 8).map_err(|_| ())?;
            if v > 255 {
                return Err(());
            }
            (vec![v as u8], &s[4..])
        }
        _ => return Err(()),
    })
}

/// Go's `strconv.UnquoteChar` on the body of a character constant: the
/// character and the rest, or `None` for a bad escape.
pub fn unquote_char(s: &str, quote: char) -> Option<(char, &str)> {
    let (bytes, tail) = unquote_piece(s, quote).ok()?;
    let st = String::from_utf8(bytes).ok()?;
    let c = st.chars().next()?;
    Some((c, tail))
}
