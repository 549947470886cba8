//! Source locations for configuration values.
//!
//! The YAML text is deserialized twice: once into the typed model and once
//! into a [`Node`] tree whose keys and values carry their line and column.
//! Validation errors found after deserialization name a field [`Path`]; the
//! tree maps that path back to a line.

use std::fmt;

use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use serde_saphyr::Spanned;

/// One segment of a field path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seg {
    /// A mapping key.
    Key(String),
    /// A sequence index.
    Index(usize),
}

/// A field path such as `scrape_configs[1].scrape_timeout`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Path(pub Vec<Seg>);

impl Path {
    /// The empty (root) path.
    pub fn root() -> Self {
        Path(Vec::new())
    }

    /// This path extended by a mapping key.
    pub fn key(&self, k: &str) -> Self {
        let mut p = self.clone();
        p.0.push(Seg::Key(k.to_string()));
        p
    }

    /// This path extended by a sequence index.
    pub fn idx(&self, i: usize) -> Self {
        let mut p = self.clone();
        p.0.push(Seg::Index(i));
        p
    }
}

impl fmt::Display for Path {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, s) in self.0.iter().enumerate() {
            match s {
                Seg::Key(k) if i == 0 => write!(f, "{k}")?,
                Seg::Key(k) => write!(f, ".{k}")?,
                Seg::Index(n) => write!(f, "[{n}]")?,
            }
        }
        Ok(())
    }
}

/// A line/column position (1-based).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Pos {
    /// Line, 1-based.
    pub line: u64,
    /// Column, 1-based.
    pub column: u64,
}

fn pos_of<T>(s: &Spanned<T>) -> Pos {
    Pos {
        line: s.referenced.line(),
        column: s.referenced.column(),
    }
}

/// A YAML value with locations.
#[derive(Debug)]
pub(crate) enum Node {
    Map(Vec<(Spanned<String>, Spanned<Node>)>),
    Seq(Vec<Spanned<Node>>),
    Scalar(Option<String>),
}

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Node;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("any YAML value")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Node, E> {
                Ok(Node::Scalar(Some(v.to_string())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Node, E> {
                Ok(Node::Scalar(Some(v)))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Node, E> {
                Ok(Node::Scalar(Some(v.to_string())))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Node, E> {
                Ok(Node::Scalar(Some(v.to_string())))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Node, E> {
                Ok(Node::Scalar(Some(v.to_string())))
            }
            fn visit_i128<E: de::Error>(self, v: i128) -> Result<Node, E> {
                Ok(Node::Scalar(Some(v.to_string())))
            }
            fn visit_u128<E: de::Error>(self, v: u128) -> Result<Node, E> {
                Ok(Node::Scalar(Some(v.to_string())))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Node, E> {
                Ok(Node::Scalar(Some(v.to_string())))
            }
            fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Node, E> {
                Ok(Node::Scalar(Some(String::from_utf8_lossy(v).into_owned())))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Node, E> {
                Ok(Node::Scalar(None))
            }
            fn visit_none<E: de::Error>(self) -> Result<Node, E> {
                Ok(Node::Scalar(None))
            }
            fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Node, D::Error> {
                Node::deserialize(d)
            }
            fn visit_newtype_struct<D: Deserializer<'de>>(self, d: D) -> Result<Node, D::Error> {
                Node::deserialize(d)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut a: A) -> Result<Node, A::Error> {
                let mut v = Vec::new();
                while let Some(x) = a.next_element()? {
                    v.push(x);
                }
                Ok(Node::Seq(v))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<Node, A::Error> {
                let mut v = Vec::new();
                while let Some(entry) = a.next_entry::<Spanned<String>, Spanned<Node>>()? {
                    v.push(entry);
                }
                Ok(Node::Map(v))
            }
        }
        d.deserialize_any(V)
    }
}

/// Location index over a parsed YAML document.
#[derive(Debug)]
pub(crate) struct LocTree {
    root: Option<Spanned<Node>>,
}

impl LocTree {
    /// Builds the tree; a document that does not parse gives an empty tree.
    pub(crate) fn parse(text: &str) -> Self {
        LocTree {
            root: serde_saphyr::from_str::<Spanned<Node>>(text).ok(),
        }
    }

    /// Whether the document is empty or null.
    pub(crate) fn is_null(&self) -> bool {
        matches!(
            self.root.as_ref().map(|r| &r.value),
            None | Some(Node::Scalar(None))
        )
    }

    /// Position of `path`, or of its deepest existing ancestor.
    pub(crate) fn pos(&self, path: &Path) -> Option<Pos> {
        let mut cur = self.root.as_ref()?;
        let mut best = pos_of(cur);
        for seg in &path.0 {
            match (seg, &cur.value) {
                (Seg::Key(k), Node::Map(entries)) => {
                    match entries.iter().find(|(key, _)| &key.value == k) {
                        Some((key, val)) => {
                            best = pos_of(key);
                            cur = val;
                        }
                        None => return Some(best),
                    }
                }
                (Seg::Index(i), Node::Seq(items)) => match items.get(*i) {
                    Some(item) => {
                        best = pos_of(item);
                        cur = item;
                    }
                    None => return Some(best),
                },
                _ => return Some(best),
            }
        }
        Some(best)
    }

    /// The path of the node at (or last before) `pos`, used to name the field
    /// of a deserialization error. `unknown_key` prefers a key of that name.
    pub(crate) fn path_at(
        &self,
        pos: Pos,
        unknown_key: Option<&str>,
        prefer_container: bool,
    ) -> Path {
        let mut best: Option<(Pos, usize, Path)> = None;
        if let Some(root) = &self.root {
            walk(
                root,
                &Path::root(),
                pos,
                unknown_key,
                prefer_container,
                &mut best,
            );
        }
        best.map(|b| b.2).unwrap_or_default()
    }
}

fn consider(
    at: Pos,
    path: &Path,
    target: Pos,
    prefer_container: bool,
    best: &mut Option<(Pos, usize, Path)>,
) {
    if at > target {
        return;
    }
    let depth = path.0.len();
    let better = match best {
        None => true,
        Some((bp, bd, _)) => {
            at > *bp
                || (at == *bp
                    && if prefer_container {
                        depth < *bd
                    } else {
                        depth > *bd
                    })
        }
    };
    if better {
        *best = Some((at, depth, path.clone()));
    }
}

fn walk(
    node: &Spanned<Node>,
    path: &Path,
    target: Pos,
    unknown_key: Option<&str>,
    prefer_container: bool,
    best: &mut Option<(Pos, usize, Path)>,
) {
    consider(pos_of(node), path, target, prefer_container, best);
    match &node.value {
        Node::Map(entries) => {
            for (k, v) in entries {
                let p = path.key(&k.value);
                let kp = pos_of(k);
                if unknown_key == Some(k.value.as_str()) && kp == target {
                    *best = Some((kp, usize::MAX, p.clone()));
                    return;
                }
                consider(kp, &p, target, prefer_container, best);
                walk(v, &p, target, unknown_key, prefer_container, best);
                if matches!(best, Some((_, usize::MAX, _))) {
                    return;
                }
            }
        }
        Node::Seq(items) => {
            for (i, it) in items.iter().enumerate() {
                walk(
                    it,
                    &path.idx(i),
                    target,
                    unknown_key,
                    prefer_container,
                    best,
                );
                if matches!(best, Some((_, usize::MAX, _))) {
                    return;
                }
            }
        }
        Node::Scalar(_) => {}
    }
}
