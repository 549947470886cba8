//! Label sets, series hashing, validation of names and values, and label matchers.
//!
//! A series is identified by its sorted label set. As in Prometheus a label
//! with an empty value is the same as an absent label, so empty values are
//! dropped on construction. Names may be any non-empty UTF-8 (Prometheus 3
//! allows this and 2.x accepted it over remote write: `http.status` is a
//! real-world name); duplicate names are an error.

use crate::error::{Error, Result};
use std::fmt;
use std::sync::Arc;

/// The label that holds the metric name.
pub const METRIC_NAME: &str = "__name__";

/// One label: a name and a non-empty value.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Label {
    /// Label name.
    pub name: Arc<str>,
    /// Label value.
    pub value: Arc<str>,
}

/// A sorted label set without duplicate names or empty values.
#[derive(Clone, Default, PartialEq, Eq, Hash)]
pub struct Labels(Box<[Label]>);

impl Labels {
    /// Builds a label set from pairs in any order. Empty values are dropped;
    /// empty or duplicate names are an error.
    pub fn new<N: AsRef<str>, V: AsRef<str>>(
        pairs: impl IntoIterator<Item = (N, V)>,
    ) -> Result<Labels> {
        let v: Vec<Label> = pairs
            .into_iter()
            .filter(|(_, val)| !val.as_ref().is_empty())
            .map(|(n, val)| Label {
                name: Arc::from(n.as_ref()),
                value: Arc::from(val.as_ref()),
            })
            .collect();
        Self::from_vec(v)
    }

    /// Builds a label set from already-made labels (sorted here; validated).
    pub fn from_vec(mut v: Vec<Label>) -> Result<Labels> {
        v.retain(|l| !l.value.is_empty());
        v.sort_by(|a, b| a.name.cmp(&b.name));
        for (i, l) in v.iter().enumerate() {
            if l.name.is_empty() {
                return Err(Error::InvalidLabels("empty label name".into()));
            }
            if i > 0 && v[i - 1].name == l.name {
                return Err(Error::InvalidLabels(format!(
                    "duplicate label name {:?}",
                    l.name
                )));
            }
        }
        Ok(Labels(v.into_boxed_slice()))
    }

    /// Builds from labels known to be sorted, unique and non-empty (from our own files);
    /// checks that cheaply and reports a violation as an error.
    pub fn from_sorted(v: Vec<Label>) -> Result<Labels> {
        for (i, l) in v.iter().enumerate() {
            if l.name.is_empty() || l.value.is_empty() || (i > 0 && v[i - 1].name >= l.name) {
                return Err(Error::InvalidLabels(
                    "labels not sorted, unique and non-empty".into(),
                ));
            }
        }
        Ok(Labels(v.into_boxed_slice()))
    }

    /// The labels in name order.
    pub fn iter(&self) -> std::slice::Iter<'_, Label> {
        self.0.iter()
    }

    /// Number of labels.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True when there are no labels.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The value of `name`, if present.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .binary_search_by(|l| l.name.as_ref().cmp(name))
            .ok()
            .map(|i| self.0[i].value.as_ref())
    }

    /// A stable 64-bit hash of the label set (xxh3 over names and values with separators).
    pub fn hash64(&self) -> u64 {
        let mut h = xxhash_rust::xxh3::Xxh3::new();
        for l in &self.0 {
            h.update(l.name.as_bytes());
            h.update(&[0xff]);
            h.update(l.value.as_bytes());
            h.update(&[0xff]);
        }
        h.digest()
    }

    /// Compares two label sets the way Prometheus sorts series: label by label, name then value.
    pub fn cmp_labels(&self, other: &Labels) -> std::cmp::Ordering {
        for (a, b) in self.0.iter().zip(other.0.iter()) {
            let c = a.name.cmp(&b.name).then_with(|| a.value.cmp(&b.value));
            if c != std::cmp::Ordering::Equal {
                return c;
            }
        }
        self.0.len().cmp(&other.0.len())
    }

    /// The labels for which `keep` is true (still sorted and valid).
    pub fn filter(&self, mut keep: impl FnMut(&Label) -> bool) -> Labels {
        Labels(self.0.iter().filter(|l| keep(l)).cloned().collect())
    }

    /// This set with `name` set to `value`, or removed when `value` is empty.
    /// `name` must not be empty (an empty name leaves the set unchanged).
    pub fn with(&self, name: &str, value: &str) -> Labels {
        if name.is_empty() {
            return self.clone();
        }
        let mut v: Vec<Label> = Vec::with_capacity(self.0.len() + 1);
        let mut placed = false;
        for l in self.0.iter() {
            if !placed && l.name.as_ref() >= name {
                placed = true;
                if !value.is_empty() {
                    v.push(Label {
                        name: Arc::from(name),
                        value: Arc::from(value),
                    });
                }
                if l.name.as_ref() == name {
                    continue;
                }
            }
            v.push(l.clone());
        }
        if !placed && !value.is_empty() {
            v.push(Label {
                name: Arc::from(name),
                value: Arc::from(value),
            });
        }
        Labels(v.into_boxed_slice())
    }

    /// The labels as a vector (consumes the set).
    pub fn into_vec(self) -> Vec<Label> {
        self.0.into_vec()
    }
}

impl PartialOrd for Labels {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Labels {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.cmp_labels(other)
    }
}

impl fmt::Display for Labels {
    /// Renders `name{a="b", c="d"}` (the metric name outside the braces, as Prometheus prints series).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(n) = self.get(METRIC_NAME) {
            write!(f, "{n}")?;
        }
        write!(f, "{{")?;
        let mut first = true;
        for l in self.0.iter().filter(|l| l.name.as_ref() != METRIC_NAME) {
            if !first {
                write!(f, ", ")?;
            }
            first = false;
            write!(f, "{}={:?}", l.name, l.value.as_ref())?;
        }
        write!(f, "}}")
    }
}

impl fmt::Debug for Labels {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// How a matcher compares a label value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MatchType {
    /// `=`
    Equal,
    /// `!=`
    NotEqual,
    /// `=~` (fully anchored)
    Regex,
    /// `!~` (fully anchored)
    NotRegex,
}

/// A label matcher: `name op value`. An absent label matches as the empty string.
#[derive(Clone, Debug)]
pub struct Matcher {
    /// Label name.
    pub name: String,
    /// Comparison.
    pub kind: MatchType,
    /// The value or the regex source (unanchored, as written by the user).
    pub value: String,
    re: Option<regex::Regex>,
}

/// Upper bound on a compiled matcher regex, so a hostile pattern cannot eat memory.
const REGEX_SIZE_LIMIT: usize = 1 << 22;

impl Matcher {
    /// Builds a matcher; regexes are anchored at both ends as in Prometheus.
    pub fn new(
        kind: MatchType,
        name: impl Into<String>,
        value: impl Into<String>,
    ) -> Result<Matcher> {
        let name = name.into();
        let value = value.into();
        let re = match kind {
            MatchType::Regex | MatchType::NotRegex => Some(
                regex::RegexBuilder::new(&format!("^(?s:{value})$"))
                    .size_limit(REGEX_SIZE_LIMIT)
                    .build()
                    .map_err(|e| Error::InvalidMatcher(format!("{name}: {e}")))?,
            ),
            _ => None,
        };
        Ok(Matcher {
            name,
            kind,
            value,
            re,
        })
    }

    /// Shorthand for an `=` matcher.
    pub fn eq(name: impl Into<String>, value: impl Into<String>) -> Matcher {
        Matcher {
            name: name.into(),
            kind: MatchType::Equal,
            value: value.into(),
            re: None,
        }
    }

    /// Whether `value` (the empty string for an absent label) matches.
    pub fn matches(&self, value: &str) -> bool {
        match self.kind {
            MatchType::Equal => value == self.value,
            MatchType::NotEqual => value != self.value,
            MatchType::Regex => self.re.as_ref().is_some_and(|r| r.is_match(value)),
            MatchType::NotRegex => !self.re.as_ref().is_some_and(|r| r.is_match(value)),
        }
    }

    /// Whether the matcher selects series that lack the label.
    pub fn matches_empty(&self) -> bool {
        self.matches("")
    }

    /// Whether a label set satisfies the matcher.
    pub fn matches_labels(&self, labels: &Labels) -> bool {
        self.matches(labels.get(&self.name).unwrap_or(""))
    }
}

impl fmt::Display for Matcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let op = match self.kind {
            MatchType::Equal => "=",
            MatchType::NotEqual => "!=",
            MatchType::Regex => "=~",
            MatchType::NotRegex => "!~",
        };
        write!(f, "{}{}{:?}", self.name, op, self.value)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn sorts_drops_empty_values_and_rejects_duplicates() {
        let l = Labels::new([("b", "2"), ("a", "1"), ("c", "")]).unwrap();
        assert_eq!(l.len(), 2);
        assert_eq!(l.get("a"), Some("1"));
        assert_eq!(l.get("c"), None);
        assert!(Labels::new([("a", "1"), ("a", "2")]).is_err());
        assert!(Labels::new([("", "1")]).is_err());
        assert!(Labels::new([("http.status", "200")]).is_ok());
    }

    #[test]
    fn regex_matchers_are_fully_anchored() {
        let m = Matcher::new(MatchType::Regex, "a", "fo+").unwrap();
        assert!(m.matches("foo"));
        assert!(!m.matches("xfoo"));
        assert!(!m.matches("foox"));
        let m = Matcher::new(MatchType::Regex, "a", "a|b").unwrap();
        assert!(m.matches("a") && m.matches("b") && !m.matches("ab"));
        assert!(Matcher::new(MatchType::Regex, "a", "(").is_err());
        assert!(Matcher::new(MatchType::NotEqual, "a", "x")
            .unwrap()
            .matches_empty());
    }

    #[test]
    fn display_like_prometheus() {
        let l = Labels::new([("__name__", "up"), ("job", "node")]).unwrap();
        assert_eq!(l.to_string(), "up{job=\"node\"}");
    }
}
