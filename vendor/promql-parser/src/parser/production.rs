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
) -> Result<String, ParseError> {
    lexeme
        .map(|l| span_to_string(lexer, l.span()))
        .map_err(|_| "ParseError".into())
}

pub(crate) fn lexeme_to_token(
    lexer: &dyn NonStreamingLexer<DefaultLexerTypes<TokenId>>,
    lexeme: Result<LexemeType, LexemeType>,
) -> Result<Token, ParseError> {
    lexeme
        .map(|l| Token::new(l.tok_id(), span_to_string(lexer, l.span())))
        .map_err(|_| "ParseError".into())
}

/// sonde: which part of its node a check error is about, so that it can be
/// placed where Prometheus places it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    /// Argument `i` of a call, or of an aggregation's body.
    Arg(usize),
    /// The operator of a binary expression.
    Op,
    /// The left-hand side of a binary expression.
    Lhs,
    /// The right-hand side of a binary expression.
    Rhs,
}

/// sonde: a lexer, syntax or check error, with the byte offset where it is
/// once known (upstream's errors are plain strings without a position).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    /// Byte offset in the input where Prometheus reports the error.
    pub pos: Option<usize>,
    /// The part of its node a check error is about, until it is placed.
    pub part: Option<Part>,
    /// The message, in Prometheus' words.
    pub message: String,
}

impl ParseError {
    /// An error at byte `pos`.
    pub fn at(pos: usize, message: impl std::fmt::Display) -> Self {
        ParseError {
            pos: Some(pos),
            part: None,
            message: message.to_string(),
        }
    }
}

impl std::fmt::Display for ParseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ParseError {}

impl From<String> for ParseError {
    fn from(message: String) -> Self {
        ParseError {
            pos: None,
            part: None,
            message,
        }
    }
}

impl From<&str> for ParseError {
    fn from(message: &str) -> Self {
        message.to_string().into()
    }
}

/// sonde: an error at byte `pos`.
pub(crate) fn located(pos: usize, msg: impl std::fmt::Display) -> ParseError {
    ParseError::at(pos, msg)
}

/// sonde: a check error about `part` of its node, placed by [`locate`] or
/// [`locate_binary`].
pub(crate) fn about(part: Part, msg: impl std::fmt::Display) -> ParseError {
    ParseError {
        pos: None,
        part: Some(part),
        message: msg.to_string(),
    }
}

/// sonde: gives an error of the node `text` (which starts at byte `start`)
/// its offset, as Prometheus places it: at the argument or part it is about,
/// else at the node. An error that already has one (from an inner node) is
/// kept as it is.
pub(crate) fn locate<T>(
    res: Result<T, ParseError>,
    start: usize,
    text: &str,
) -> Result<T, ParseError> {
    res.map_err(|mut e| {
        if e.pos.is_none() {
            let at = match e.part {
                Some(Part::Arg(i)) => arg_offset(text, i).unwrap_or(0),
                _ => 0,
            };
            e.pos = Some(start + at);
        }
        e
    })
}

/// sonde: a binary expression's check errors, placed at the operator
/// (`op_start`), the left side (the node's start) or the right side (the
/// first token after the operator and its modifiers in `after_op`, which
/// starts at `op_end`).
pub(crate) fn locate_binary<T>(
    res: Result<T, ParseError>,
    node_start: usize,
    op_start: usize,
    op_end: usize,
    after_op: &str,
) -> Result<T, ParseError> {
    res.map_err(|mut e| {
        if e.pos.is_none() {
            e.pos = Some(match e.part {
                Some(Part::Op) => op_start,
                Some(Part::Rhs) => op_end + rhs_offset(after_op),
                _ => node_start,
            });
        }
        e
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

    /// sonde: errors are typed and say where they are, as Prometheus places
    /// them: a syntax error at the unexpected token, a type error at the
    /// argument it is about, a binary expression's at its operator.
    #[test]
    fn errors_carry_their_position() {
        let at = |q: &str| crate::parser::parse(q).unwrap_err();
        let e = at("foo + ");
        assert_eq!(
            (e.pos, e.message.as_str()),
            (Some(6), "unexpected end of input")
        );
        let e = at("sum(x) + rate(y)");
        assert_eq!(e.pos, Some(14));
        assert_eq!(e.part, Some(Part::Arg(0)));
        assert_eq!(
            e.to_string(),
            "expected type range vector in call to function \"rate\", got instant vector"
        );
        let e = at("1 > 2");
        assert_eq!((e.pos, e.part), (Some(2), Some(Part::Op)));
        let e = at("x{a=~\"b\"} )");
        assert_eq!(e.pos, Some(11));
    }

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
