//! The lexer: template text into items (Go's `text/template/parse/lex.go`).

use super::*;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) enum It {
    Error,
    Bool,
    Char,
    CharConstant,
    Complex,
    Assign,
    Declare,
    Eof,
    Field,
    Identifier,
    LeftDelim,
    LeftParen,
    Number,
    Pipe,
    RawString,
    RightDelim,
    RightParen,
    Space,
    String,
    Text,
    Variable,
    // Keywords.
    Block,
    Break,
    Continue,
    Dot,
    Define,
    Else,
    End,
    If,
    Nil,
    Range,
    Template,
    With,
}

impl It {
    pub(super) fn is_keyword(self) -> bool {
        matches!(
            self,
            It::Block
                | It::Break
                | It::Continue
                | It::Dot
                | It::Define
                | It::Else
                | It::End
                | It::If
                | It::Nil
                | It::Range
                | It::Template
                | It::With
        )
    }
}

pub(super) fn keyword(word: &str) -> Option<It> {
    Some(match word {
        "block" => It::Block,
        "break" => It::Break,
        "continue" => It::Continue,
        "define" => It::Define,
        "else" => It::Else,
        "end" => It::End,
        "if" => It::If,
        "range" => It::Range,
        "nil" => It::Nil,
        "template" => It::Template,
        "with" => It::With,
        _ => return None,
    })
}

#[derive(Clone, Debug)]
pub(super) struct Item {
    pub(super) typ: It,
    pub(super) pos: usize,
    pub(super) val: String,
    pub(super) line: usize,
}

/// Go's `item.String()`, used in "unexpected …" parse errors.
pub(super) fn item_desc(it: &Item) -> String {
    match it.typ {
        It::Eof => "EOF".into(),
        It::Error => it.val.clone(),
        t if t.is_keyword() => format!("<{}>", it.val),
        _ if it.val.chars().count() > 10 => {
            let s: String = it.val.chars().take(10).collect();
            format!("{}...", quote(&s))
        }
        _ => quote(&it.val),
    }
}

pub(super) fn is_space_byte(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

pub(super) fn is_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\r' | '\n')
}

pub(super) fn is_alnum(c: char) -> bool {
    c == '_' || c.is_alphanumeric()
}

pub(super) fn has_left_trim_marker(s: &[u8]) -> bool {
    s.len() >= 2 && s[0] == b'-' && is_space_byte(s[1])
}

pub(super) fn has_right_trim_marker(s: &[u8]) -> bool {
    s.len() >= 2 && is_space_byte(s[0]) && s[1] == b'-'
}

pub(super) fn right_trim_length(s: &str) -> usize {
    s.len() - s.trim_end_matches(is_space).len()
}

pub(super) fn left_trim_length(s: &str) -> usize {
    s.len() - s.trim_start_matches(is_space).len()
}

#[derive(Clone, Copy)]
pub(super) enum St {
    Text,
    LeftDelim,
    Comment,
    RightDelim,
    Inside,
    Space,
    Identifier,
    Field,
    Variable,
    Char,
    Number,
    Quote,
    RawQuote,
    Done,
}

pub(super) struct Lexer<'a> {
    pub(super) input: &'a str,
    pub(super) pos: usize,
    pub(super) start: usize,
    pub(super) width: usize,
    pub(super) paren_depth: usize,
    pub(super) items: Vec<Item>,
    pub(super) line_cache: (usize, usize),
}

pub(super) fn lex(input: &str) -> Vec<Item> {
    let mut l = Lexer {
        input,
        pos: 0,
        start: 0,
        width: 0,
        paren_depth: 0,
        items: Vec::new(),
        line_cache: (0, 1),
    };
    let mut st = St::Text;
    loop {
        st = match st {
            St::Text => l.lex_text(),
            St::LeftDelim => l.lex_left_delim(),
            St::Comment => l.lex_comment(),
            St::RightDelim => l.lex_right_delim(),
            St::Inside => l.lex_inside_action(),
            St::Space => l.lex_space(),
            St::Identifier => l.lex_identifier(),
            St::Field => l.lex_field_or_variable(It::Field),
            St::Variable => l.lex_field_or_variable(It::Variable),
            St::Char => l.lex_quoted('\'', "unterminated character constant", It::CharConstant),
            St::Number => l.lex_number(),
            St::Quote => l.lex_quoted('"', "unterminated quoted string", It::String),
            St::RawQuote => l.lex_raw_quote(),
            St::Done => break,
        }
    }
    l.items
}

impl Lexer<'_> {
    pub(super) fn rest(&self) -> &[u8] {
        &self.input.as_bytes()[self.pos.min(self.input.len())..]
    }

    pub(super) fn line_at(&mut self, pos: usize) -> usize {
        let (cpos, cline) = self.line_cache;
        let line = if pos >= cpos {
            cline
                + self.input.as_bytes()[cpos..pos]
                    .iter()
                    .filter(|&&b| b == b'\n')
                    .count()
        } else {
            1 + self.input.as_bytes()[..pos]
                .iter()
                .filter(|&&b| b == b'\n')
                .count()
        };
        self.line_cache = (pos, line);
        line
    }

    pub(super) fn next(&mut self) -> Option<char> {
        match self.input.get(self.pos..).and_then(|s| s.chars().next()) {
            Some(c) => {
                self.width = c.len_utf8();
                self.pos += self.width;
                Some(c)
            }
            None => {
                self.width = 0;
                None
            }
        }
    }

    pub(super) fn backup(&mut self) {
        self.pos -= self.width;
        self.width = 0;
    }

    pub(super) fn peek(&self) -> Option<char> {
        self.input.get(self.pos..).and_then(|s| s.chars().next())
    }

    pub(super) fn push(&mut self, typ: It, pos: usize, val: String) {
        let line = self.line_at(pos);
        self.items.push(Item {
            typ,
            pos,
            val,
            line,
        });
    }

    pub(super) fn emit(&mut self, typ: It) {
        let val = self.input[self.start..self.pos].to_string();
        self.push(typ, self.start, val);
        self.start = self.pos;
    }

    pub(super) fn ignore(&mut self) {
        self.start = self.pos;
    }

    pub(super) fn errorf(&mut self, msg: String) -> St {
        self.push(It::Error, self.start, msg);
        St::Done
    }

    pub(super) fn at_right_delim(&self) -> (bool, bool) {
        let r = self.rest();
        if has_right_trim_marker(r) && r[2..].starts_with(b"}}") {
            return (true, true);
        }
        (r.starts_with(b"}}"), false)
    }

    pub(super) fn at_terminator(&self) -> bool {
        match self.peek() {
            None => true,
            Some(c) if is_space(c) => true,
            Some('.' | ',' | '|' | ':' | ')' | '(') => true,
            Some(_) => self.rest().starts_with(b"}}"),
        }
    }

    pub(super) fn lex_text(&mut self) -> St {
        match self.input[self.pos..].find("{{") {
            Some(x) => {
                if x > 0 {
                    self.pos += x;
                    let mut trim = 0;
                    if has_left_trim_marker(&self.input.as_bytes()[self.pos + 2..]) {
                        trim = right_trim_length(&self.input[self.start..self.pos]);
                    }
                    self.pos -= trim;
                    if self.pos > self.start {
                        self.emit(It::Text);
                    }
                    self.pos += trim;
                    self.ignore();
                }
                St::LeftDelim
            }
            None => {
                self.pos = self.input.len();
                if self.pos > self.start {
                    self.emit(It::Text);
                }
                self.emit(It::Eof);
                St::Done
            }
        }
    }

    pub(super) fn lex_left_delim(&mut self) -> St {
        self.pos += 2;
        let trim = has_left_trim_marker(self.rest());
        let after = if trim { 2 } else { 0 };
        if self.input.as_bytes()[self.pos + after..].starts_with(b"/*") {
            self.pos += after;
            self.ignore();
            return St::Comment;
        }
        self.push(It::LeftDelim, self.start, "{{".into());
        self.pos += after;
        self.ignore();
        self.paren_depth = 0;
        St::Inside
    }

    pub(super) fn lex_comment(&mut self) -> St {
        self.pos += 2;
        match self.input[self.pos..].find("*/") {
            None => return self.errorf("unclosed comment".into()),
            Some(x) => self.pos += x + 2,
        }
        let (delim, trim) = self.at_right_delim();
        if !delim {
            return self.errorf("comment ends before closing delimiter".into());
        }
        if trim {
            self.pos += 2;
        }
        self.pos += 2;
        if trim {
            self.pos += left_trim_length(&self.input[self.pos..]);
        }
        self.ignore();
        St::Text
    }

    pub(super) fn lex_right_delim(&mut self) -> St {
        let (_, trim) = self.at_right_delim();
        if trim {
            self.pos += 2;
            self.ignore();
        }
        self.pos += 2;
        self.emit(It::RightDelim);
        if trim {
            self.pos += left_trim_length(&self.input[self.pos..]);
            self.ignore();
        }
        St::Text
    }

    pub(super) fn lex_inside_action(&mut self) -> St {
        let (delim, _) = self.at_right_delim();
        if delim {
            if self.paren_depth == 0 {
                return St::RightDelim;
            }
            return self.errorf("unclosed left paren".into());
        }
        let Some(r) = self.next() else {
            return self.errorf("unclosed action".into());
        };
        match r {
            c if is_space(c) => {
                self.backup();
                St::Space
            }
            '=' => {
                self.emit(It::Assign);
                St::Inside
            }
            ':' => {
                if self.next() != Some('=') {
                    return self.errorf("expected :=".into());
                }
                self.emit(It::Declare);
                St::Inside
            }
            '|' => {
                self.emit(It::Pipe);
                St::Inside
            }
            '"' => St::Quote,
            '`' => St::RawQuote,
            '$' => St::Variable,
            '\'' => St::Char,
            '.' if self.pos < self.input.len()
                && !self.input.as_bytes()[self.pos].is_ascii_digit() =>
            {
                St::Field
            }
            '.' | '+' | '-' | '0'..='9' => {
                self.backup();
                St::Number
            }
            c if is_alnum(c) => {
                self.backup();
                St::Identifier
            }
            '(' => {
                self.emit(It::LeftParen);
                self.paren_depth += 1;
                St::Inside
            }
            ')' => {
                self.emit(It::RightParen);
                if self.paren_depth == 0 {
                    return self.errorf("unexpected right paren".into());
                }
                self.paren_depth -= 1;
                St::Inside
            }
            c if c.is_ascii() && !c.is_ascii_control() => {
                self.emit(It::Char);
                St::Inside
            }
            c => self.errorf(format!(
                "unrecognized character in action: {}",
                fmt_unicode_sharp(c)
            )),
        }
    }

    pub(super) fn lex_space(&mut self) -> St {
        let mut n = 0;
        while let Some(c) = self.peek() {
            if !is_space(c) {
                break;
            }
            self.next();
            n += 1;
        }
        let b = self.input.as_bytes();
        if has_right_trim_marker(&b[self.pos - 1..]) && b[self.pos + 1..].starts_with(b"}}") {
            self.pos -= 1;
            if n == 1 {
                return St::RightDelim;
            }
        }
        self.emit(It::Space);
        St::Inside
    }

    pub(super) fn lex_identifier(&mut self) -> St {
        loop {
            match self.next() {
                Some(c) if is_alnum(c) => {}
                Some(_) => {
                    self.backup();
                    break;
                }
                None => break,
            }
        }
        if !self.at_terminator() {
            let c = self.peek().unwrap_or('\u{fffd}');
            return self.errorf(format!("bad character {}", fmt_unicode_sharp(c)));
        }
        let word = &self.input[self.start..self.pos];
        let typ = match keyword(word) {
            Some(k) => k,
            None if word == "true" || word == "false" => It::Bool,
            None => It::Identifier,
        };
        self.emit(typ);
        St::Inside
    }

    pub(super) fn lex_field_or_variable(&mut self, typ: It) -> St {
        if self.at_terminator() {
            self.emit(if typ == It::Variable {
                It::Variable
            } else {
                It::Dot
            });
            return St::Inside;
        }
        loop {
            match self.next() {
                Some(c) if is_alnum(c) => {}
                Some(_) => {
                    self.backup();
                    break;
                }
                None => break,
            }
        }
        if !self.at_terminator() {
            let c = self.peek().unwrap_or('\u{fffd}');
            return self.errorf(format!("bad character {}", fmt_unicode_sharp(c)));
        }
        self.emit(typ);
        St::Inside
    }

    pub(super) fn lex_quoted(&mut self, quote: char, err: &str, typ: It) -> St {
        loop {
            match self.next() {
                Some('\\') => match self.next() {
                    Some(c) if c != '\n' => {}
                    _ => return self.errorf(err.into()),
                },
                None | Some('\n') => return self.errorf(err.into()),
                Some(c) if c == quote => break,
                Some(_) => {}
            }
        }
        self.emit(typ);
        St::Inside
    }

    pub(super) fn lex_raw_quote(&mut self) -> St {
        loop {
            match self.next() {
                None => return self.errorf("unterminated raw quoted string".into()),
                Some('`') => break,
                Some(_) => {}
            }
        }
        self.emit(It::RawString);
        St::Inside
    }

    pub(super) fn accept(&mut self, valid: &str) -> bool {
        match self.next() {
            Some(c) if valid.contains(c) => true,
            Some(_) => {
                self.backup();
                false
            }
            None => false,
        }
    }

    pub(super) fn accept_run(&mut self, valid: &str) {
        while self.accept(valid) {}
    }

    pub(super) fn scan_number(&mut self) -> bool {
        self.accept("+-");
        let mut digits = "0123456789_";
        if self.accept("0") {
            if self.accept("xX") {
                digits = "0123456789abcdefABCDEF_";
            } else if self.accept("oO") {
                digits = "01234567_";
            } else if self.accept("bB") {
                digits = "01_";
            }
        }
        self.accept_run(digits);
        if self.accept(".") {
            self.accept_run(digits);
        }
        if digits.len() == 11 && self.accept("eE") {
            self.accept("+-");
            self.accept_run("0123456789_");
        }
        if digits.len() == 23 && self.accept("pP") {
            self.accept("+-");
            self.accept_run("0123456789_");
        }
        self.accept("i");
        if self.peek().is_some_and(is_alnum) {
            self.next();
            return false;
        }
        true
    }

    pub(super) fn lex_number(&mut self) -> St {
        if !self.scan_number() {
            let s = quote(&self.input[self.start..self.pos]);
            return self.errorf(format!("bad number syntax: {s}"));
        }
        if matches!(self.peek(), Some('+' | '-')) {
            if !self.scan_number() || !self.input[..self.pos].ends_with('i') {
                let s = quote(&self.input[self.start..self.pos]);
                return self.errorf(format!("bad number syntax: {s}"));
            }
            self.emit(It::Complex);
        } else {
            self.emit(It::Number);
        }
        St::Inside
    }
}
