//! The parser front end: `promql-parser` does the grammar; this module
//! accepts Prometheus 2.x's `holt_winters` and gives errors Prometheus' form
//! (`1:4: parse error: ...`).

use super::value::QueryError;
use promql_parser::parser::Expr;

/// Parses a PromQL expression.
pub fn parse(query: &str) -> Result<Expr, QueryError> {
    let text = rename_holt_winters(query);
    promql_parser::parser::parse(&text).map_err(|e| QueryError::Parse(position_error(query, &e)))
}

/// `holt_winters(` → `double_exponential_smoothing(` outside string literals
/// (the crate knows only the Prometheus 3 name).
fn rename_holt_winters(q: &str) -> std::borrow::Cow<'_, str> {
    const OLD: &str = "holt_winters";
    if !q.contains(OLD) {
        return q.into();
    }
    let b = q.as_bytes();
    let mut out = String::with_capacity(q.len() + 32);
    let mut i = 0;
    let mut quote: Option<u8> = None;
    while i < b.len() {
        let c = b[i];
        if let Some(qc) = quote {
            if c == b'\\' && qc != b'`' && i + 1 < b.len() {
                // The backslash, then the escaped character (which may be multi-byte).
                out.push('\\');
                i += 1;
                let ch = q[i..].chars().next().unwrap_or(' ');
                out.push(ch);
                i += ch.len_utf8();
                continue;
            }
            if c == qc {
                quote = None;
            }
        } else if c == b'"' || c == b'\'' || c == b'`' {
            quote = Some(c);
        } else if c == b'#' {
            // A comment runs to the end of the line.
            let end = q[i..].find('\n').map(|k| i + k).unwrap_or(b.len());
            out.push_str(&q[i..end]);
            i = end;
            continue;
        } else if q[i..].starts_with(OLD)
            && (i == 0 || !is_ident(b[i - 1]))
            && !b.get(i + OLD.len()).is_some_and(|&c| is_ident(c))
            && q[i + OLD.len()..].trim_start().starts_with('(')
        {
            out.push_str("double_exponential_smoothing");
            i += OLD.len();
            continue;
        }
        let ch = q[i..].chars().next().unwrap_or(' ');
        out.push(ch);
        i += ch.len_utf8();
    }
    out.into()
}

fn is_ident(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_' || c == b':'
}

/// Prometheus' `<line>:<col>: parse error: <msg>`. Syntax errors come
/// positioned from the crate; its semantic errors (types, arguments) carry
/// no position: those about the end of the input get the end, others 1:1.
fn position_error(query: &str, msg: &str) -> String {
    let msg = msg.trim();
    // Syntax errors from the (patched) crate already carry their position.
    if msg.contains(": parse error: ") {
        return msg.to_string();
    }
    let (line, col) = if msg.contains("unexpected end of input") || msg == "invalid promql query" {
        let line = query.lines().count().max(1);
        let last = query.rsplit('\n').next().unwrap_or("");
        (line, last.chars().count() + 1)
    } else {
        (1, 1)
    };
    // The crate's type names, in Prometheus' words.
    let reworded = msg
        .replace("type matrix", "type range vector")
        .replace("got vector", "got instant vector")
        .replace("got matrix", "got range vector")
        .replace("type vector", "type instant vector");
    // A 2.x user wrote `holt_winters`: name it as they did.
    let reworded = if query.contains("holt_winters") {
        reworded.replace("\"double_exponential_smoothing\"", "\"holt_winters\"")
    } else {
        reworded
    };
    let msg = reworded.as_str();
    let msg = if msg == "invalid promql query" && query.trim().is_empty() {
        "no expression found in input".to_string()
    } else if msg == "invalid promql query" {
        "unexpected end of input".to_string()
    } else {
        msg.to_string()
    };
    format!("{line}:{col}: parse error: {msg}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holt_winters_is_accepted() {
        assert!(parse("holt_winters(x[5m], 0.5, 0.5)").is_ok());
        assert_eq!(
            rename_holt_winters(r#"x{a="holt_winters("} + holt_winters (y[1m], .1, .1)"#),
            r#"x{a="holt_winters("} + double_exponential_smoothing (y[1m], .1, .1)"#
        );
        assert_eq!(
            rename_holt_winters("my_holt_winters(x)"),
            "my_holt_winters(x)"
        );
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
            "1:15: parse error: unexpected right parenthesis ')'"
        );
        assert_eq!(e("x +\n  * 2"), "2:3: parse error: unexpected \"*\"");
    }

    /// Semantic errors in Prometheus 2.42's words (compared by hand against
    /// its /api/v1/query); their positions are still 1:1 where Prometheus
    /// points at the offending argument.
    #[test]
    fn semantic_errors_read_as_in_prometheus() {
        let e = |q: &str| parse(q).unwrap_err().to_string();
        assert_eq!(
            e("abs(x, y)"),
            "1:1: parse error: expected 1 argument(s) in call to \"abs\", got 2"
        );
        assert_eq!(
            e("x and 1"),
            "1:1: parse error: set operator \"and\" not allowed in binary scalar expression"
        );
        assert_eq!(
            e("unknown_fn(x)"),
            "1:1: parse error: unknown function with name \"unknown_fn\""
        );
        assert!(e("rate(x)").ends_with(
            "parse error: expected type range vector in call to function \"rate\", got instant vector"
        ));
        assert!(e("topk(x, y)").ends_with(
            "parse error: expected type scalar in aggregation parameter, got instant vector"
        ));
        assert!(e("count_values(1, x)")
            .ends_with("parse error: expected type string in aggregation parameter, got scalar"));
        assert!(e("holt_winters(x[5m], 0.5)")
            .ends_with("parse error: expected 3 argument(s) in call to \"holt_winters\", got 2"));
    }
}
