//! The parser front end: `promql-parser` (vendored, patched: see its
//! SONDE.md) does the grammar and knows Prometheus 2.x's `holt_winters`;
//! this module bounds a query's shape before parsing and gives errors
//! Prometheus' form (`1:4: parse error: ...`).

use super::value::QueryError;
use promql_parser::parser::Expr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

/// An upper bound on the depth of the syntax tree `q` parses into, and its
/// number of tokens, from one pass over its bytes (strings and comments
/// skipped). The depth counts every parenthesis or call level plus, at each
/// level, every operator on it: a chain `1+1+…+1` of n terms parses into a
/// tree n deep. Matcher lists (`{…}`) and ranges (`[…]`) add one level.
pub fn shape(q: &str) -> (usize, usize) {
    // Per open bracket: (operators on this level, deepest child, kind).
    let mut stack: Vec<(usize, usize, u8)> = vec![(0, 0, b'(')];
    let b = q.as_bytes();
    let (mut i, mut tokens) = (0usize, 0usize);
    let close = |stack: &mut Vec<(usize, usize, u8)>| {
        if stack.len() > 1 {
            if let Some((ops, child, _)) = stack.pop() {
                if let Some(top) = stack.last_mut() {
                    top.1 = top.1.max(ops + child + 1);
                }
            }
        }
    };
    while i < b.len() {
        let c = b[i];
        match c {
            b' ' | b'\t' | b'\n' | b'\r' => {
                i += 1;
                continue;
            }
            b'#' => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
                continue;
            }
            b'"' | b'\'' | b'`' => {
                i += 1;
                while i < b.len() && b[i] != c {
                    if b[i] == b'\\' && c != b'`' {
                        i += 1;
                    }
                    i += 1;
                }
                i += 1;
            }
            b'(' | b'[' | b'{' => {
                stack.push((0, 0, c));
                i += 1;
            }
            b')' | b']' | b'}' => {
                close(&mut stack);
                i += 1;
            }
            b'a'..=b'z' | b'A'..=b'Z' | b'_' | b':' | b'0'..=b'9' | b'.' => {
                let start = i;
                while i < b.len()
                    && (b[i].is_ascii_alphanumeric() || matches!(b[i], b'_' | b':' | b'.'))
                {
                    // An exponent's sign belongs to its number.
                    if matches!(b[i], b'e' | b'E')
                        && b[start].is_ascii_digit()
                        && matches!(b.get(i + 1), Some(b'+' | b'-'))
                    {
                        i += 1;
                    }
                    i += 1;
                }
                let word = &b[start..i];
                let top = stack.last().map_or(b'(', |t| t.2);
                if top == b'('
                    && (word.eq_ignore_ascii_case(b"and")
                        || word.eq_ignore_ascii_case(b"or")
                        || word.eq_ignore_ascii_case(b"unless")
                        || word.eq_ignore_ascii_case(b"atan2"))
                {
                    if let Some(t) = stack.last_mut() {
                        t.0 += 1;
                    }
                }
            }
            _ => {
                // Operators (one token for `==`, `!=`, `<=`, `>=`, `=~`, `!~`).
                if matches!(b.get(i + 1), Some(b'=' | b'~'))
                    && matches!(c, b'=' | b'!' | b'<' | b'>')
                {
                    i += 1;
                }
                i += 1;
                if let Some(t) = stack.last_mut() {
                    if t.2 == b'('
                        && matches!(
                            c,
                            b'+' | b'-' | b'*' | b'/' | b'%' | b'^' | b'=' | b'!' | b'<' | b'>'
                        )
                    {
                        t.0 += 1;
                    }
                }
            }
        }
        tokens += 1;
    }
    while stack.len() > 1 {
        close(&mut stack);
    }
    let depth = stack.first().map_or(0, |(ops, child, _)| ops + child + 1);
    (depth, tokens)
}

/// Refuses a query whose tree could be deeper than `--query.max-nesting-depth`
/// or that has more tokens than `--query.max-expression-tokens`.
pub fn check_shape(q: &str) -> Result<(), QueryError> {
    let (max_depth, max_tokens) = shape_limits();
    // Short queries cannot exceed either limit: skip the pass.
    if q.len() < max_depth.min(max_tokens) {
        return Ok(());
    }
    let (depth, tokens) = shape(q);
    if tokens > max_tokens {
        REFUSED_SHAPE.fetch_add(1, Ordering::Relaxed);
        return Err(QueryError::Parse(format!(
            "1:1: parse error: the query has {tokens} tokens, more than the limit of {max_tokens} (--query.max-expression-tokens)"
        )));
    }
    if depth > max_depth {
        REFUSED_SHAPE.fetch_add(1, Ordering::Relaxed);
        return Err(QueryError::Parse(format!(
            "1:1: parse error: the query nests up to {depth} operators and brackets deep, more than the limit of {max_depth} (--query.max-nesting-depth)"
        )));
    }
    Ok(())
}

/// Default `--query.max-nesting-depth`.
pub const DEFAULT_MAX_DEPTH: usize = 1_000;
/// Default `--query.max-expression-tokens`.
pub const DEFAULT_MAX_TOKENS: usize = 50_000;

static MAX_DEPTH: AtomicUsize = AtomicUsize::new(DEFAULT_MAX_DEPTH);
static MAX_TOKENS: AtomicUsize = AtomicUsize::new(DEFAULT_MAX_TOKENS);
/// Queries refused by [`check_shape`] (for `/metrics`).
pub static REFUSED_SHAPE: AtomicU64 = AtomicU64::new(0);

/// Sets the shape limits every later [`parse`] enforces (from
/// `--query.max-nesting-depth` and `--query.max-expression-tokens`; 0 keeps
/// the default).
pub fn set_shape_limits(max_depth: usize, max_tokens: usize) {
    if max_depth > 0 {
        MAX_DEPTH.store(max_depth, Ordering::Relaxed);
    }
    if max_tokens > 0 {
        MAX_TOKENS.store(max_tokens, Ordering::Relaxed);
    }
}

/// The current shape limits (depth, tokens).
pub fn shape_limits() -> (usize, usize) {
    (
        MAX_DEPTH.load(Ordering::Relaxed),
        MAX_TOKENS.load(Ordering::Relaxed),
    )
}

/// Parses a PromQL expression.
///
/// Before the grammar sees the text, one linear pass bounds the depth of
/// the tree it could build and counts its tokens; a query over either limit
/// is refused with an error naming the limit. Every recursive walk after
/// this (the grammar's checks, evaluation, dropping the tree) is therefore
/// bounded by the depth limit, and the server's threads have stacks sized
/// for it (`server::THREAD_STACK_BYTES`).
pub fn parse(query: &str) -> Result<Expr, QueryError> {
    check_shape(query)?;
    promql_parser::parser::parse(query).map_err(|e| QueryError::Parse(position_error(query, &e)))
}

/// Prometheus' `<line>:<col>` of a byte offset: the line counts newlines
/// before it, the column is bytes since the last one, from 1.
fn line_col(query: &str, pos: usize) -> (usize, usize) {
    let pos = pos.min(query.len());
    let before = &query.as_bytes()[..pos];
    let line = before.iter().filter(|&&c| c == b'\n').count() + 1;
    let col = match before.iter().rposition(|&c| c == b'\n') {
        Some(nl) => pos - nl,
        None => pos + 1,
    };
    (line, col)
}

/// Prometheus' `<line>:<col>: parse error: <msg>`. The (patched) parser
/// gives every error its byte offset; one without (never expected) is placed
/// at the end of the input when it is about the end, else at the start.
fn position_error(query: &str, e: &promql_parser::parser::ParseError) -> String {
    let msg = e.message.trim();
    let pos = match e.pos {
        Some(pos) => pos,
        None if msg.contains("unexpected end of input") || msg == "invalid promql query" => {
            query.len()
        }
        None => 0,
    };
    let msg = if msg == "invalid promql query" && query.trim().is_empty() {
        "no expression found in input"
    } else if msg == "invalid promql query" {
        "unexpected end of input"
    } else {
        msg
    };
    let (line, col) = line_col(query, pos);
    format!("{line}:{col}: parse error: {msg}")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `holt_winters` is a name of its own in the parser's function table
    /// (not a text rewrite): inside strings and as part of a longer name it
    /// stays what it is.
    #[test]
    fn holt_winters_is_accepted() {
        let Ok(Expr::Call(c)) = parse("holt_winters(x[5m], 0.5, 0.5)") else {
            panic!("holt_winters should parse as a call");
        };
        assert_eq!(c.func.name, "holt_winters");
        assert!(parse(r#"x{a="holt_winters("} + holt_winters (y[1m], .1, .1)"#).is_ok());
        assert_eq!(
            parse("my_holt_winters(x)").unwrap_err().to_string(),
            "1:1: parse error: unknown function with name \"my_holt_winters\""
        );
    }

    #[test]
    fn shape_bounds_the_tree() {
        assert_eq!(shape("1"), (1, 1));
        assert_eq!(shape("1+1+1").0, 3);
        assert_eq!(shape("sum(rate(x{a=\"(((\"}[5m])) / sum(y)").0, 5);
        assert_eq!(shape("((((1))))").0, 5);
        assert_eq!(shape("1e-3 - 2").0, 2);
        assert_eq!(shape("x{a=\"1\",b=\"2\",c!=\"3\"}").0, 2);
        // An unbalanced query is the grammar's to refuse; it still gets a bound.
        assert!(shape("((((((").0 >= 6);
        assert!(shape(")))").0 >= 1);
    }

    #[test]
    fn hostile_shapes_are_refused_fast() {
        let sum = vec!["1"; 100_000].join("+");
        let e = parse(&sum).unwrap_err().to_string();
        assert!(e.contains("--query.max-expression-tokens"), "{e}");
        let chain = vec!["1"; 3_000].join("+");
        let e = parse(&chain).unwrap_err().to_string();
        assert!(e.contains("--query.max-nesting-depth"), "{e}");
        let nest = format!("{}1{}", "(".repeat(100_000), ")".repeat(100_000));
        let e = parse(&nest).unwrap_err().to_string();
        assert!(e.contains("limit"), "{e}");
        let e = parse(&"-".repeat(5000)).unwrap_err().to_string();
        assert!(e.contains("--query.max-nesting-depth"), "{e}");
        // Within the limits, a deep query still parses (on this test's thread).
        let ok = vec!["1"; 200].join("+");
        assert!(parse(&ok).is_ok());
    }

    #[test]
    fn durations_out_of_range_are_errors_not_panics() {
        for q in [
            "x[222222222222222222222222222222222:2222222222222222222225m1000d01ms]",
            "x[99999999999999999999d]",
            "x[1e400]",
            "x[99999999999999999999999]",
            "x offset 99999999999999999999999",
            "rate(x[5m])[1e308:1e308]",
        ] {
            let _ = parse(q);
        }
        assert!(parse("x[1e400]").is_err());
    }

    #[test]
    fn errors_have_a_position() {
        let e = |q: &str| parse(q).unwrap_err().to_string();
        assert_eq!(e("1 +"), "1:4: parse error: unexpected end of input");
        assert_eq!(
            e("foo bar"),
            "1:5: parse error: unexpected identifier \"bar\""
        );
        assert_eq!(
            e("sum(x) by (a) )"),
            "1:16: parse error: unexpected right parenthesis ')'"
        );
        assert_eq!(e("x +\n  * 2"), "2:3: parse error: unexpected <op:*>");
    }

    /// Semantic errors in Prometheus 2.42's words and at its positions (each
    /// compared against its /api/v1/query; `tests/promql_compat.rs` keeps
    /// checking a longer list against the real thing).
    #[test]
    fn semantic_errors_read_and_sit_as_in_prometheus() {
        let e = |q: &str| parse(q).unwrap_err().to_string();
        for (q, want) in [
            ("abs(x, y)", "1:1: parse error: expected 1 argument(s) in call to \"abs\", got 2"),
            ("x and 1", "1:1: parse error: set operator \"and\" not allowed in binary scalar expression"),
            ("unknown_fn(x)", "1:1: parse error: unknown function with name \"unknown_fn\""),
            ("rate(x)", "1:6: parse error: expected type range vector in call to function \"rate\", got instant vector"),
            ("sum(x) + rate(y)", "1:15: parse error: expected type range vector in call to function \"rate\", got instant vector"),
            ("sum(\n rate(x)\n)", "2:7: parse error: expected type range vector in call to function \"rate\", got instant vector"),
            ("topk(x, y)", "1:6: parse error: expected type scalar in aggregation parameter, got instant vector"),
            ("count_values(1, x)", "1:14: parse error: expected type string in aggregation parameter, got scalar"),
            ("sum by (a) (x[5m])", "1:13: parse error: expected type instant vector in aggregation expression, got range vector"),
            ("label_replace(x, \"a\", \"b\", \"c\", 1)", "1:33: parse error: expected type string in call to function \"label_replace\", got scalar"),
            ("1 > 2", "1:3: parse error: comparisons between scalars must use BOOL modifier"),
            ("x == 1 + bool 2", "1:8: parse error: bool modifier can only be used on comparison operators"),
            ("x + on(a) group_left(a) y", "1:3: parse error: label \"a\" must not occur in ON and GROUP clause at once"),
            ("x + y[5m]", "1:5: parse error: binary expression must contain only scalar and instant vector types"),
            ("x[5m] + y", "1:1: parse error: binary expression must contain only scalar and instant vector types"),
            ("-x[5m]", "1:1: parse error: unary expression only allowed on expressions of type scalar or instant vector, got \"range vector\""),
            ("x{a=\"b\"}[5m][5m]", "1:13: parse error: ranges only allowed for vector selectors"),
            ("x{__name__=\"y\"}", "1:1: parse error: metric name must not be set twice: \"x\" or \"y\""),
            ("x offset", "1:9: parse error: unexpected end of input in offset, expected duration"),
            ("x +\n  * 2", "2:3: parse error: unexpected <op:*>"),
            ("sum(x) by (a) )", "1:16: parse error: unexpected right parenthesis ')'"),
            ("x]", "1:2: parse error: unexpected right bracket ']'"),
            ("\"abc", "1:1: parse error: unterminated quoted string"),
            ("x[5m", "1:5: parse error: unclosed left bracket"),
            ("sum()", "1:1: parse error: no arguments for aggregate expression provided"),
            ("+\"a\"", "1:1: parse error: unary expression only allowed on expressions of type scalar or instant vector, got \"string\""),
            ("x @ 1e30", "1:1: parse error: timestamp out of bounds for @ modifier: 1000000000000000019884624838656.000000"),
            ("x @ Inf", "1:1: parse error: timestamp out of bounds for @ modifier: +Inf"),
            ("x offset +5m", "1:10: parse error: unexpected <op:+> in offset, expected duration"),
            ("x @ end", "1:8: parse error: unexpected end of input in @, expected timestamp"),
            ("x @ foo()", "1:5: parse error: unexpected identifier \"foo\" in @, expected timestamp"),
            ("x offset -", "1:11: parse error: unexpected end of input in offset, expected duration"),
            // Comments inside label lists and argument lists are skipped.
            ("sum by (a # ) (y\n) (x[5m])", "2:4: parse error: expected type instant vector in aggregation expression, got range vector"),
            ("x + on(a # )\n) y[5m]", "2:3: parse error: binary expression must contain only scalar and instant vector types"),
            ("topk(\n # a, b\n x, y)", "3:2: parse error: expected type scalar in aggregation parameter, got instant vector"),
            // Renamed to the crate's name and back: names and positions as typed.
            ("holt_winters(x[5m], 0.5)", "1:1: parse error: expected 3 argument(s) in call to \"holt_winters\", got 2"),
            ("holt_winters(x[5m], 1, 1) + holt_winters(y, 1, 1)", "1:42: parse error: expected type range vector in call to function \"holt_winters\", got instant vector"),
            ("holt_winters(x[5m], 0.5, 0.5) + 1 +", "1:36: parse error: unexpected end of input"),
        ] {
            assert_eq!(e(q), want, "{q}");
        }
    }

    proptest::proptest! {
        /// Any text, PromQL-like or not (multi-byte characters included),
        /// parses or gives a positioned error; placing errors never panics.
        #[test]
        fn every_error_has_a_position(
            q in proptest::string::string_regex(
                r#"(rate|sum|topk|holt_winters|by|bool|on|offset|@|x|"é"|[ (),\[\]{}+*<>=5m:#\n]|é|\PC){0,24}"#
            ).unwrap()
        ) {
            if let Err(e) = parse(&q) {
                let e = e.to_string();
                let (pos, _) = e.split_once(": parse error: ").unwrap_or(("", ""));
                let ok = pos.split(':').count() == 2
                    && pos.split(':').all(|n| n.parse::<usize>().is_ok_and(|n| n > 0));
                proptest::prop_assert!(ok, "{q:?}: {e}");
            }
        }
    }
}
