//! Request parameters: merged from the query string and a form-encoded body,
//! repeated keys kept in order, and the value formats of Prometheus' API
//! (timestamps, durations, limits, series selectors).

use super::ApiError;
use sonde_engine::Matcher;

/// Prometheus' textual "min time" and "max time" (RFC 3339 renderings of its
/// MinTime/MaxTime), which clients send to mean "unbounded".
const MIN_TIME_TEXT: &str = "-292273086-05-16T16:47:06Z";
const MAX_TIME_TEXT: &str = "292277025-08-18T07:12:54.999999999Z";

/// Parameters of one request.
#[derive(Debug, Default, Clone)]
pub struct Params {
    query: Vec<(String, String)>,
    body: Vec<(String, String)>,
}

impl Params {
    /// From the raw query string and (for form-encoded POSTs) the body.
    pub fn new(query: Option<&str>, body: Option<&[u8]>) -> Params {
        let parse = |b: &[u8]| {
            form_urlencoded::parse(b)
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect()
        };
        Params {
            query: query.map(|q| parse(q.as_bytes())).unwrap_or_default(),
            body: body.map(parse).unwrap_or_default(),
        }
    }

    /// A single-valued parameter: the body's value wins over the URL's (as Go's `FormValue`).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.body
            .iter()
            .chain(self.query.iter())
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Every value of a repeated parameter, URL values first, then the body's.
    pub fn all(&self, name: &str) -> Vec<&str> {
        self.query
            .iter()
            .chain(self.body.iter())
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// A timestamp parameter in ms, or `default` when absent.
    pub fn time(&self, name: &str, default: i64) -> Result<i64, ApiError> {
        match self.get(name) {
            None | Some("") => Ok(default),
            Some(s) => parse_time(s)
                .map_err(|e| ApiError::bad_data(format!("invalid parameter \"{name}\": {e}"))),
        }
    }

    /// `start` and `end` (defaulting to the beginning and end of time), with end >= start.
    pub fn range(&self) -> Result<(i64, i64), ApiError> {
        let (start, end) = (
            self.time("start", MIN_TIME_MS)?,
            self.time("end", MAX_TIME_MS)?,
        );
        if end < start {
            return Err(ApiError::bad_data(
                "end timestamp must not be before start time",
            ));
        }
        Ok((start, end))
    }

    /// A non-negative integer limit (0 = unlimited).
    pub fn limit(&self) -> Result<usize, ApiError> {
        match self.get("limit") {
            None | Some("") => Ok(0),
            Some(s) => s.parse::<usize>().map_err(|_| {
                ApiError::bad_data(format!(
                    "invalid parameter \"limit\": cannot parse \"{s}\" to a valid limit"
                ))
            }),
        }
    }

    /// The `match[]` selectors, each a list of engine matchers.
    pub fn matchers(&self) -> Result<Vec<Vec<Matcher>>, ApiError> {
        self.all("match[]")
            .into_iter()
            .map(parse_selector)
            .collect()
    }
}

/// Parses a timestamp: float unix seconds first, then RFC 3339; rounded to milliseconds.
pub fn parse_time(s: &str) -> Result<i64, String> {
    if let Ok(f) = s.parse::<f64>() {
        if !f.is_finite() {
            return Err(format!("cannot parse {s:?} to a valid timestamp"));
        }
        let ms = (f * 1000.0).round();
        if ms >= i64::MAX as f64 || ms <= i64::MIN as f64 {
            return Err(format!("cannot parse {s:?} to a valid timestamp"));
        }
        return Ok(ms as i64);
    }
    if s == MIN_TIME_TEXT {
        return Ok(MIN_TIME_MS);
    }
    if s == MAX_TIME_TEXT {
        return Ok(MAX_TIME_MS);
    }
    chrono::DateTime::parse_from_rfc3339(s)
        .map(|t| t.timestamp_millis())
        .map_err(|_| format!("cannot parse {s:?} to a valid timestamp"))
}

/// The earliest time a range parameter may mean (Prometheus' MinTime in ms).
pub const MIN_TIME_MS: i64 = (i64::MIN / 1000 + 62_135_596_801) * 1000;
/// The latest time (Prometheus' MaxTime in ms).
pub const MAX_TIME_MS: i64 = (i64::MAX / 1000 - 62_135_596_801) * 1000 + 999;

/// Parses one `match[]` series selector into engine matchers, requiring at
/// least one matcher that does not match the empty string.
pub fn parse_selector(s: &str) -> Result<Vec<Matcher>, ApiError> {
    let out = parse_selector_allow_empty(s)
        .map_err(|e| ApiError::bad_data(format!("invalid parameter \"match[]\": {e}")))?;
    if out.iter().all(|m| m.matches_empty()) {
        return Err(ApiError::bad_data(
            "match[] must contain at least one non-empty matcher",
        ));
    }
    Ok(out)
}

/// A selector whose matchers may all match the empty string (`match_target={job="x"}` or `{}`).
pub fn parse_selector_allow_empty(s: &str) -> Result<Vec<Matcher>, String> {
    let expr = crate::promql::parse::parse(s).map_err(|e| e.to_string())?;
    let promql_parser::parser::Expr::VectorSelector(vs) = expr else {
        return Err(format!("{s:?} is not a series selector"));
    };
    crate::promql::eval::to_matchers(&vs).map_err(|e| e.to_string())
}

/// Decodes a label name from a URL path: plain, or `U__`-escaped (`__` → `_`, `_<hex>_` → that code point).
pub fn unescape_label_name(s: &str) -> Result<String, ApiError> {
    let Some(rest) = s.strip_prefix("U__") else {
        return Ok(s.to_string());
    };
    let mut out = String::new();
    let mut it = rest.chars().peekable();
    while let Some(c) = it.next() {
        if c != '_' {
            out.push(c);
            continue;
        }
        if it.peek() == Some(&'_') {
            it.next();
            out.push('_');
            continue;
        }
        let mut hex = String::new();
        loop {
            match it.next() {
                Some('_') => break,
                Some(h) if h.is_ascii_hexdigit() => hex.push(h),
                _ => return Err(ApiError::bad_data(format!("invalid label name {s:?}"))),
            }
        }
        let cp = u32::from_str_radix(&hex, 16)
            .ok()
            .and_then(char::from_u32)
            .ok_or_else(|| ApiError::bad_data(format!("invalid label name {s:?}")))?;
        out.push(cp);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times() {
        assert_eq!(parse_time("1718000000").unwrap(), 1_718_000_000_000);
        assert_eq!(
            parse_time("1718000000.123456789").unwrap(),
            1_718_000_000_123
        );
        assert_eq!(parse_time("1.7e9").unwrap(), 1_700_000_000_000);
        assert_eq!(
            parse_time("2024-06-10T08:00:00.5Z").unwrap(),
            1_718_006_400_500
        );
        assert_eq!(
            parse_time("2024-06-10T10:00:00+02:00").unwrap(),
            1_718_006_400_000
        );
        assert_eq!(parse_time(MIN_TIME_TEXT).unwrap(), MIN_TIME_MS);
        assert_eq!(parse_time(MAX_TIME_TEXT).unwrap(), MAX_TIME_MS);
        for bad in ["abc", "NaN", "1e400", "Inf", ""] {
            assert!(parse_time(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn params_merge_query_and_body_in_order() {
        let p = Params::new(Some("match[]=a&x=1"), Some(b"match[]=b&x=2"));
        assert_eq!(p.all("match[]"), vec!["a", "b"]);
        assert_eq!(p.get("x"), Some("2"));
    }

    #[test]
    fn selectors() {
        let m = parse_selector("up{job=~\"a|b\"}").unwrap();
        assert_eq!(m.len(), 2);
        assert!(parse_selector("{a=\"\"}").is_err());
        assert!(parse_selector("{__name__=~\".*\"}").is_err());
        assert!(parse_selector("sum(up)").is_err());
        assert!(parse_selector("{\"http.status\"=\"200\"}").is_ok());
    }

    #[test]
    fn escaped_label_names() {
        assert_eq!(unescape_label_name("job").unwrap(), "job");
        assert_eq!(
            unescape_label_name("U__http_2e_status").unwrap(),
            "http.status"
        );
        assert_eq!(unescape_label_name("U__a__b").unwrap(), "a_b");
        assert!(unescape_label_name("U__a_zz_").is_err());
    }
}
