// Copyright 2023 Greptime Team
//
// Licensed under the Apache License, Version 2.0 (the "License");
// you may not use this file except in compliance with the License.
// You may obtain a copy of the License at
//
//     http://www.apache.org/licenses/LICENSE-2.0
//
// Unless required by applicable law or agreed to in writing, software
// distributed under the License is distributed on an "AS IS" BASIS,
// WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
// See the License for the specific language governing permissions and
// limitations under the License.

use crate::parser::lex::LexemeType;
use crate::parser::token::{Token, TokenId};
use lrlex::DefaultLexerTypes;
use lrpar::{Lexeme, NonStreamingLexer, Span};

/// caller MUST pay attention to the index out of bounds issue
pub(crate) fn span_to_string(
    lexer: &dyn NonStreamingLexer<DefaultLexerTypes<TokenId>>,
    span: Span,
) -> String {
    lexer.span_str(span).to_string()
}

pub(crate) fn lexeme_to_string(
    lexer: &dyn NonStreamingLexer<DefaultLexerTypes<TokenId>>,
    lexeme: &Result<LexemeType, LexemeType>,
) -> Result<String, String> {
    lexeme
        .map(|l| span_to_string(lexer, l.span()))
        .map_err(|_| "ParseError".into())
}

pub(crate) fn lexeme_to_token(
    lexer: &dyn NonStreamingLexer<DefaultLexerTypes<TokenId>>,
    lexeme: Result<LexemeType, LexemeType>,
) -> Result<Token, String> {
    lexeme
        .map(|l| Token::new(l.tok_id(), span_to_string(lexer, l.span())))
        .map_err(|_| "ParseError".into())
}

/// sonde: an error message that carries the byte offset where it is, as
/// `"\0<offset>\0<message>"` (the crate's errors are plain strings; sonde's
/// front end turns the offset into Prometheus' `<line>:<column>:`).
pub fn located(pos: usize, msg: impl std::fmt::Display) -> String {
    format!("\u{0}{pos}\u{0}{msg}")
}

/// sonde: splits a [`located`] message into its offset and text.
pub fn split_located(msg: &str) -> Option<(usize, &str)> {
    let rest = msg.strip_prefix('\u{0}')?;
    let (pos, text) = rest.split_once('\u{0}')?;
    Some((pos.parse().ok()?, text))
}

/// sonde: marks a check error with the part of its node it is about
/// (`"\x01<part>\x01<message>"`): `a<i>` is argument `i` of a call or
/// aggregation body, `op`/`lhs`/`rhs` the parts of a binary expression.
pub(crate) fn about(part: &str, msg: impl std::fmt::Display) -> String {
    format!("\u{1}{part}\u{1}{msg}")
}

fn split_about(msg: &str) -> Option<(&str, &str)> {
    msg.strip_prefix('\u{1}')?.split_once('\u{1}')
}

/// sonde: gives an error of the node `text` (which starts at byte `start`)
/// its offset, as Prometheus places it: at the argument or part it is about,
/// else at the node. An error that already has one (from an inner node) is
/// kept as it is.
pub(crate) fn locate<T>(res: Result<T, String>, start: usize, text: &str) -> Result<T, String> {
    res.map_err(|m| {
        if split_located(&m).is_some() {
            return m;
        }
        match split_about(&m) {
            Some((part, msg)) => {
                let at = part
                    .strip_prefix('a')
                    .and_then(|i| i.parse().ok())
                    .and_then(|i| arg_offset(text, i))
                    .unwrap_or(0);
                located(start + at, msg)
            }
            None => located(start, m),
        }
    })
}

/// sonde: a binary expression's check errors, placed at the operator
/// (`op_start`), the left side (the node's start) or the right side (the
/// first token after the operator and its modifiers in `after_op`, which
/// starts at `op_end`).
pub(crate) fn locate_binary<T>(
    res: Result<T, String>,
    node_start: usize,
    op_start: usize,
    op_end: usize,
    after_op: &str,
) -> Result<T, String> {
    res.map_err(|m| {
        if split_located(&m).is_some() {
            return m;
        }
        match split_about(&m) {
            Some(("op", msg)) => located(op_start, msg),
            Some(("rhs", msg)) => located(op_end + rhs_offset(after_op), msg),
            Some((_, msg)) => located(node_start, msg),
            None => located(node_start, m),
        }
    })
}

/// Bytes of whitespace and `#` comments at the start of `b`.
fn blank_len(b: &[u8]) -> usize {
    let mut i = 0;
    while i < b.len() {
        if b[i].is_ascii_whitespace() {
            i += 1;
        } else if b[i] == b'#' {
            while i < b.len() && b[i] != b'\n' {
                i += 1;
            }
        } else {
            break;
        }
    }
    i
}

/// Offset just past the `)` closing a label list opened at `b[i]` (`#`
/// comments inside skipped), or the end of `b`.
fn group_end(b: &[u8], mut i: usize) -> usize {
    while i < b.len() && b[i] != b')' {
        if b[i] == b'#' {
            while i < b.len() && b[i] != b'\n' {
                i += 1;
            }
        } else {
            i += 1;
        }
    }
    (i + 1).min(b.len())
}

/// Offset in `b` of the end of a word made of label-name characters at `i`.
fn word_end(b: &[u8], mut i: usize) -> usize {
    while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_' || b[i] == b':') {
        i += 1;
    }
    i
}

/// The ASCII word `b[i..w]` in lower case.
fn word(b: &[u8], i: usize, w: usize) -> Vec<u8> {
    b[i..w].to_ascii_lowercase()
}

/// Offset of the right-hand side in the text after a binary operator:
/// past `bool`, `on`/`ignoring (...)`, `group_left`/`group_right [(...)]`.
/// (Byte-wise throughout: no slicing of the text at non-boundaries.)
fn rhs_offset(s: &str) -> usize {
    let b = s.as_bytes();
    let mut i = blank_len(b);
    loop {
        let w = word_end(b, i);
        let kw = word(b, i, w);
        match kw.as_slice() {
            b"bool" | b"on" | b"ignoring" | b"group_left" | b"group_right" => {
                i = w + blank_len(&b[w..]);
                if kw != b"bool" && b.get(i) == Some(&b'(') {
                    i = group_end(b, i);
                    i += blank_len(&b[i..]);
                }
            }
            _ => return i,
        }
    }
}

/// Offset in a call or aggregation `text` of the start of argument `n` of
/// its parenthesised body (the group not after `by`/`without`).
fn arg_offset(text: &str, n: usize) -> Option<usize> {
    let b = text.as_bytes();
    let mut i = 0;
    let mut last_word = Vec::new();
    // Find the body's opening parenthesis.
    loop {
        i += blank_len(&b[i..]);
        let c = *b.get(i)?;
        if c == b'(' {
            if last_word == b"by" || last_word == b"without" {
                i = group_end(b, i);
                last_word.clear();
                continue;
            }
            break;
        }
        let w = word_end(b, i);
        if w == i {
            i += 1;
            last_word.clear();
        } else {
            last_word = word(b, i, w);
            i = w;
        }
    }
    // Walk the body, counting top-level commas.
    let mut arg = 0;
    let mut depth = 0usize;
    i += 1;
    let mut start = i + blank_len(b.get(i..).unwrap_or_default());
    while i < b.len() {
        match b[i] {
            b'"' | b'\'' | b'`' => {
                let q = b[i];
                i += 1;
                while i < b.len() && b[i] != q {
                    if b[i] == b'\\' && q != b'`' {
                        i += 1;
                    }
                    i += 1;
                }
            }
            b'#' => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
                continue;
            }
            b'(' | b'[' | b'{' => depth += 1,
            b')' | b']' | b'}' if depth == 0 => break,
            b')' | b']' | b'}' => depth -= 1,
            b',' if depth == 0 => {
                if arg == n {
                    break;
                }
                arg += 1;
                start = i + 1 + blank_len(&b[i + 1..]);
            }
            _ => {}
        }
        i += 1;
    }
    (arg == n).then_some(start)
}

// TODO: more test cases
#[cfg(test)]
mod tests {
    use super::*;
    use crate::parser::{lex, token};

    #[test]
    fn test_span_to_string() {
        let input = r#"prometheus_http_requests_total{code="200", job="prometheus"}"#;
        let span = Span::new(43, 43 + 3);
        let lexer = lex::lexer(input);
        assert!(lexer.is_ok());
        let span_str = span_to_string(&lexer.unwrap(), span);
        assert_eq!(span_str, "job");
    }

    #[test]
    fn test_lexeme_to_string() {
        let input = r#"prometheus_http_requests_total{code="200", job="prometheus"}"#;
        let lexeme = LexemeType::new(token::T_IDENTIFIER, 43, 3);
        let lexer = lex::lexer(input);
        assert!(lexer.is_ok());

        let lexeme_str = lexeme_to_string(&lexer.unwrap(), &Ok(lexeme));
        assert_eq!(lexeme_str, Ok(String::from("job")));
    }

    #[test]
    fn test_lexeme_to_token() {
        let input = r#"prometheus_http_requests_total{code="200", job="prometheus"}"#;
        let lexeme = LexemeType::new(token::T_IDENTIFIER, 43, 3);
        let lexer = lex::lexer(input);
        assert!(lexer.is_ok());
        let token = lexeme_to_token(&lexer.unwrap(), Ok(lexeme));
        assert_eq!(Ok(Token::new(token::T_IDENTIFIER, "job".into())), token);
    }
}
