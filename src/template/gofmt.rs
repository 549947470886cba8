//! Go's `fmt` verbs as templates print values, on `crate::gocompat`'s
//! number formatting and quoting.

use super::*;

#[derive(Clone, Copy, Default)]
pub(super) struct Fl {
    pub(super) plus: bool,
    pub(super) minus: bool,
    pub(super) sharp: bool,
    pub(super) space: bool,
    pub(super) zero: bool,
    pub(super) wid: Option<usize>,
    pub(super) prec: Option<usize>,
    pub(super) sharp_v: bool,
    pub(super) plus_v: bool,
}

pub(super) fn write_padding(out: &mut String, n: usize, zero: bool) {
    let c = if zero { '0' } else { ' ' };
    out.extend(std::iter::repeat_n(c, n));
}

pub(super) fn pad_with(out: &mut String, s: &str, f: &Fl, zero: bool) {
    let Some(w) = f.wid.filter(|w| *w > 0) else {
        out.push_str(s);
        return;
    };
    let n = w.saturating_sub(s.chars().count());
    if !f.minus {
        write_padding(out, n, zero && !f.minus);
        out.push_str(s);
    } else {
        out.push_str(s);
        write_padding(out, n, false);
    }
}

pub(super) fn pad(out: &mut String, s: &str, f: &Fl) {
    pad_with(out, s, f, f.zero);
}

/// The `String()` of types that have one (checked for %v %s %q %x %X).
pub(super) fn stringer(v: &Value) -> Option<String> {
    match v {
        Value::Time(t) => Some(time_string(*t)),
        Value::Duration(d) => Some(format_duration(*d)),
        Value::StrMap(m) if m.kv => Some(kv_string(&m.map)),
        Value::List(l) if l.type_name == T_PAIRS => Some(pairs_string(&l.items)),
        _ => None,
    }
}

pub(super) fn bad_verb(out: &mut String, v: &Value, verb: char, f: &Fl) {
    out.push_str("%!");
    out.push(verb);
    out.push('(');
    if v.is_nil() {
        out.push_str("<nil>");
    } else {
        out.push_str(&v.type_name());
        out.push('=');
        print_arg(out, v, 'v', f, 0, false);
    }
    out.push(')');
}

/// Go's `printArg`/`printValue`: `depth` > 0 inside containers; `indirected`
/// when the template engine already dereferenced a pointer.
pub(super) fn print_arg(
    out: &mut String,
    v: &Value,
    verb: char,
    f: &Fl,
    depth: usize,
    indirected: bool,
) {
    if verb == 'T' {
        pad(out, &v.type_name(), f);
        return;
    }
    if matches!(verb, 'v' | 's' | 'x' | 'X' | 'q') {
        if let Some(s) = stringer(v) {
            fmt_string(out, &s, verb, f);
            return;
        }
    }
    match v {
        Value::Nil => {
            if verb == 'v' {
                pad(out, "<nil>", f);
            } else {
                bad_verb(out, v, verb, f);
            }
        }
        Value::Bool(b) => {
            if verb == 't' || verb == 'v' {
                pad(out, if *b { "true" } else { "false" }, f);
            } else {
                bad_verb(out, v, verb, f);
            }
        }
        Value::Int(i) | Value::Duration(i) => {
            fmt_integer(out, v, i.unsigned_abs(), *i < 0, verb, f)
        }
        Value::Uint(u) => fmt_integer(out, v, *u, false, verb, f),
        Value::Float(x) => fmt_float(out, v, *x, verb, f),
        Value::Str(s) => fmt_string(out, s, verb, f),
        Value::List(l) => {
            out.push('[');
            for (i, e) in l.items.iter().enumerate() {
                if i > 0 {
                    out.push(' ');
                }
                print_arg(out, e, verb, f, depth + 1, false);
            }
            out.push(']');
        }
        Value::Map(m) => {
            out.push_str("map[");
            for (i, (k, e)) in m.iter().enumerate() {
                if i > 0 {
                    out.push(' ');
                }
                fmt_string(out, k, verb, f);
                out.push(':');
                print_arg(out, e, verb, f, depth + 1, false);
            }
            out.push(']');
        }
        Value::StrMap(m) => {
            out.push_str("map[");
            for (i, (k, e)) in m.map.iter().enumerate() {
                if i > 0 {
                    out.push(' ');
                }
                fmt_string(out, k, verb, f);
                out.push(':');
                fmt_string(out, e, verb, f);
            }
            out.push(']');
        }
        Value::Struct(s) => {
            if s.type_name.starts_with('*') && !(depth == 0 && indirected) {
                out.push('&');
            }
            out.push('{');
            for (i, (name, e)) in s.fields.iter().enumerate() {
                if i > 0 {
                    out.push(' ');
                }
                if f.plus_v {
                    out.push_str(name);
                    out.push(':');
                }
                print_arg(out, e, verb, f, depth + 1, false);
            }
            out.push('}');
        }
        Value::Time(_) => bad_verb(out, v, verb, f),
    }
}

pub(super) fn fmt_integer(out: &mut String, v: &Value, u: u64, neg: bool, verb: char, f: &Fl) {
    match verb {
        'v' | 'd' => fmt_int_base(out, u, neg, 10, false, verb, f),
        'b' => fmt_int_base(out, u, neg, 2, false, verb, f),
        'o' | 'O' => fmt_int_base(out, u, neg, 8, false, verb, f),
        'x' => fmt_int_base(out, u, neg, 16, false, verb, f),
        'X' => fmt_int_base(out, u, neg, 16, true, verb, f),
        'c' => {
            let c = if neg {
                '\u{FFFD}'
            } else {
                u32::try_from(u)
                    .ok()
                    .and_then(char::from_u32)
                    .unwrap_or('\u{FFFD}')
            };
            pad(out, &c.to_string(), f);
        }
        'q' => {
            let c = if neg {
                '\u{FFFD}'
            } else {
                u32::try_from(u)
                    .ok()
                    .and_then(char::from_u32)
                    .unwrap_or('\u{FFFD}')
            };
            pad(out, &quote_rune(c, f.plus), f);
        }
        'U' => {
            let prec = f.prec.filter(|p| *p > 4).unwrap_or(4);
            let u = if neg { u.wrapping_neg() } else { u };
            let hex = format!("{u:X}");
            let mut s = format!("U+{}{hex}", "0".repeat(prec.saturating_sub(hex.len())));
            if f.sharp {
                if let Some(c) = u32::try_from(u)
                    .ok()
                    .and_then(char::from_u32)
                    .filter(|c| is_print(*c))
                {
                    let _ = write!(s, " '{c}'");
                }
            }
            pad_with(out, &s, f, false);
        }
        _ => bad_verb(out, v, verb, f),
    }
}

pub(super) fn fmt_int_base(
    out: &mut String,
    mut u: u64,
    neg: bool,
    base: u64,
    upper: bool,
    verb: char,
    f: &Fl,
) {
    let mut prec = 0usize;
    if let Some(p) = f.prec {
        prec = p;
        if p == 0 && u == 0 {
            write_padding(out, f.wid.unwrap_or(0), false);
            return;
        }
    } else if f.zero && !f.minus && f.wid.is_some() {
        prec = f.wid.unwrap_or(0);
        if neg || f.plus || f.space {
            prec = prec.saturating_sub(1);
        }
    }
    let digits: &[u8] = if upper {
        b"0123456789ABCDEFX"
    } else {
        b"0123456789abcdefx"
    };
    let mut buf: Vec<u8> = Vec::new();
    loop {
        buf.push(digits[(u % base) as usize]);
        u /= base;
        if u == 0 {
            break;
        }
    }
    while buf.len() < prec {
        buf.push(b'0');
    }
    if f.sharp {
        match base {
            2 => buf.extend_from_slice(b"b0"),
            8 if buf.last() != Some(&b'0') => buf.push(b'0'),
            16 => {
                buf.push(digits[16]);
                buf.push(b'0');
            }
            _ => {}
        }
    }
    if verb == 'O' {
        buf.extend_from_slice(b"o0");
    }
    if neg {
        buf.push(b'-');
    } else if f.plus {
        buf.push(b'+');
    } else if f.space {
        buf.push(b' ');
    }
    buf.reverse();
    pad_with(out, &String::from_utf8_lossy(&buf), f, false);
}

pub(super) fn fmt_float(out: &mut String, v: &Value, x: f64, verb: char, f: &Fl) {
    let (fc, default_prec) = match verb {
        'v' => ('g', -1),
        'g' | 'G' => (verb, -1),
        'f' | 'F' => ('f', 6),
        'e' | 'E' => (verb, 6),
        _ => {
            bad_verb(out, v, verb, f);
            return;
        }
    };
    let prec = f.prec.map(|p| p as i32).unwrap_or(default_prec);
    let mut num = format_float(x, fc, prec);
    if !num.starts_with(['-', '+']) {
        num.insert(0, '+');
    }
    if f.space && num.starts_with('+') && !f.plus {
        num.replace_range(0..1, " ");
    }
    if num[1..].starts_with(['I', 'N']) {
        if num[1..].starts_with('N') && !f.space && !f.plus {
            num.remove(0);
        }
        pad_with(out, &num, f, false);
        return;
    }
    if f.plus || !num.starts_with('+') {
        if f.zero && !f.minus {
            if let Some(w) = f.wid.filter(|w| *w > num.len()) {
                out.push_str(&num[..1]);
                write_padding(out, w - num.len(), true);
                out.push_str(&num[1..]);
                return;
            }
        }
        pad(out, &num, f);
        return;
    }
    pad(out, &num[1..], f);
}

pub(super) fn fmt_string(out: &mut String, s: &str, verb: char, f: &Fl) {
    let truncate = |s: &str| -> String {
        match f.prec {
            Some(p) => s.chars().take(p).collect(),
            None => s.to_string(),
        }
    };
    match verb {
        'v' if f.sharp_v => pad(out, &quote(&truncate(s)), f),
        'v' | 's' => pad(out, &truncate(s), f),
        'x' | 'X' => {
            let digits: &[u8] = if verb == 'X' {
                b"0123456789ABCDEFX"
            } else {
                b"0123456789abcdefx"
            };
            let b = s.as_bytes();
            let len = f.prec.map_or(b.len(), |p| p.min(b.len()));
            let mut width = 2 * len;
            if width == 0 {
                if let Some(w) = f.wid {
                    write_padding(out, w, f.zero);
                }
                return;
            }
            if f.space {
                if f.sharp {
                    width *= 2;
                }
                width += len - 1;
            } else if f.sharp {
                width += 2;
            }
            let w = f.wid.unwrap_or(0);
            if w > width && !f.minus {
                write_padding(out, w - width, f.zero);
            }
            if f.sharp {
                out.push('0');
                out.push(digits[16] as char);
            }
            for (i, c) in b[..len].iter().enumerate() {
                if f.space && i > 0 {
                    out.push(' ');
                    if f.sharp {
                        out.push('0');
                        out.push(digits[16] as char);
                    }
                }
                out.push(digits[(c >> 4) as usize] as char);
                out.push(digits[(c & 15) as usize] as char);
            }
            if w > width && f.minus {
                write_padding(out, w - width, false);
            }
        }
        'q' => {
            let s = truncate(s);
            let q = if f.sharp && can_backquote(&s) {
                format!("`{s}`")
            } else if f.plus {
                quote_ascii(&s)
            } else {
                quote(&s)
            };
            pad(out, &q, f);
        }
        _ => bad_verb(out, &Value::str(s), verb, f),
    }
}

/// `fmt.Sprint`: spaces between operands when neither side is a string.
pub(super) fn sprint(a: &[Value]) -> String {
    let mut out = String::new();
    let mut prev_string = false;
    for (i, v) in a.iter().enumerate() {
        let is_string = matches!(v, Value::Str(_));
        if i > 0 && !is_string && !prev_string {
            out.push(' ');
        }
        print_arg(&mut out, v, 'v', &Fl::default(), 0, false);
        prev_string = is_string;
    }
    out
}

/// `fmt.Sprintln`.
pub(super) fn sprintln(a: &[Value]) -> String {
    let mut out = String::new();
    for (i, v) in a.iter().enumerate() {
        if i > 0 {
            out.push(' ');
        }
        print_arg(&mut out, v, 'v', &Fl::default(), 0, false);
    }
    out.push('\n');
    out
}

pub(super) fn too_large(x: i64) -> bool {
    !(-1_000_000..=1_000_000).contains(&x)
}

pub(super) fn parse_num(b: &[u8], start: usize) -> (Option<usize>, usize) {
    let mut i = start;
    let mut num: i64 = 0;
    let mut any = false;
    while i < b.len() && b[i].is_ascii_digit() {
        if too_large(num) {
            return (None, b.len());
        }
        num = num * 10 + i64::from(b[i] - b'0');
        any = true;
        i += 1;
    }
    (if any { Some(num as usize) } else { None }, i)
}

pub(super) fn int_from_arg(a: &[Value], arg_num: usize) -> (Option<i64>, usize) {
    if arg_num >= a.len() {
        return (None, arg_num);
    }
    let n = match &a[arg_num] {
        Value::Int(i) | Value::Duration(i) => Some(*i),
        Value::Uint(u) => i64::try_from(*u).ok(),
        _ => None,
    };
    (n.filter(|n| !too_large(*n)), arg_num + 1)
}

/// `fmt.Sprintf`.
pub(super) fn sprintf(format: &str, a: &[Value]) -> String {
    let b = format.as_bytes();
    let end = b.len();
    let mut out = String::new();
    let mut arg_num = 0usize;
    let mut reordered = false;
    let mut i = 0;
    // Parses an explicit argument index "[n]" at i.
    let arg_number =
        |arg_num: usize, i: usize, reordered: &mut bool, good: &mut bool| -> (usize, usize, bool) {
            if i >= end || b[i] != b'[' {
                return (arg_num, i, false);
            }
            *reordered = true;
            let mut j = i + 1;
            while j < end && b[j] != b']' {
                j += 1;
            }
            if j >= end || end - i < 3 {
                *good = false;
                return (arg_num, i + 1, false);
            }
            let (n, ni) = parse_num(b, i + 1);
            match n {
                Some(n) if ni == j && n >= 1 && n - 1 < a.len() => (n - 1, j + 1, true),
                Some(_) if ni == j => {
                    *good = false;
                    (arg_num, j + 1, true)
                }
                _ => {
                    *good = false;
                    (arg_num, j + 1, false)
                }
            }
        };
    while i < end {
        let mut good = true;
        let lasti = i;
        while i < end && b[i] != b'%' {
            i += 1;
        }
        if i > lasti {
            out.push_str(&format[lasti..i]);
        }
        if i >= end {
            break;
        }
        i += 1;
        let mut f = Fl::default();
        while i < end {
            match b[i] {
                b'#' => f.sharp = true,
                b'0' => f.zero = true,
                b'+' => f.plus = true,
                b'-' => f.minus = true,
                b' ' => f.space = true,
                _ => break,
            }
            i += 1;
        }
        let (an, ni, mut after_index) = arg_number(arg_num, i, &mut reordered, &mut good);
        arg_num = an;
        i = ni;
        if i < end && b[i] == b'*' {
            i += 1;
            let (w, an) = int_from_arg(a, arg_num);
            arg_num = an;
            match w {
                None => out.push_str("%!(BADWIDTH)"),
                Some(w) if w < 0 => {
                    f.wid = Some(w.unsigned_abs() as usize);
                    f.minus = true;
                    f.zero = false;
                }
                Some(w) => f.wid = Some(w as usize),
            }
            after_index = false;
        } else {
            let (w, ni) = parse_num(b, i);
            f.wid = w;
            i = ni;
            if after_index && f.wid.is_some() {
                good = false;
            }
        }
        if i + 1 < end && b[i] == b'.' {
            i += 1;
            if after_index {
                good = false;
            }
            let (an, ni, ai) = arg_number(arg_num, i, &mut reordered, &mut good);
            arg_num = an;
            i = ni;
            after_index = ai;
            if i < end && b[i] == b'*' {
                i += 1;
                let (p, an) = int_from_arg(a, arg_num);
                arg_num = an;
                match p {
                    None => out.push_str("%!(BADPREC)"),
                    Some(p) if p < 0 => f.prec = None,
                    Some(p) => f.prec = Some(p as usize),
                }
                after_index = false;
            } else {
                let (p, ni) = parse_num(b, i);
                f.prec = Some(p.unwrap_or(0));
                i = ni;
            }
        }
        if !after_index {
            let (an, ni, _) = arg_number(arg_num, i, &mut reordered, &mut good);
            arg_num = an;
            i = ni;
        }
        if i >= end {
            out.push_str("%!(NOVERB)");
            break;
        }
        let Some(verb) = format[i..].chars().next() else {
            break;
        };
        i += verb.len_utf8();
        if verb == '%' {
            out.push('%');
        } else if !good {
            let _ = write!(out, "%!{verb}(BADINDEX)");
        } else if arg_num >= a.len() {
            let _ = write!(out, "%!{verb}(MISSING)");
        } else {
            if verb == 'v' {
                f.sharp_v = f.sharp;
                f.sharp = false;
                f.plus_v = f.plus;
                f.plus = false;
            }
            print_arg(&mut out, &a[arg_num], verb, &f, 0, false);
            arg_num += 1;
        }
    }
    if !reordered && arg_num < a.len() {
        out.push_str("%!(EXTRA ");
        for (k, v) in a[arg_num..].iter().enumerate() {
            if k > 0 {
                out.push_str(", ");
            }
            if v.is_nil() {
                out.push_str("<nil>");
            } else {
                out.push_str(&v.type_name());
                out.push('=');
                print_arg(&mut out, v, 'v', &Fl::default(), 0, false);
            }
        }
        out.push(')');
    }
    out
}

/// `%#U`-style description of a character for lexer errors.
pub(super) fn fmt_unicode_sharp(c: char) -> String {
    if is_print(c) {
        format!("U+{:04X} '{}'", c as u32, c)
    } else {
        format!("U+{:04X}", c as u32)
    }
}
