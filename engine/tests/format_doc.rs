//! `engine/FORMAT.md` keeps up with the code: every magic, version and mode
//! constant of an on-disk format is named in it, and every section a source
//! file cites exists.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

use std::path::{Path, PathBuf};

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

fn sources() -> Vec<(PathBuf, String)> {
    let mut files = Vec::new();
    rust_files(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
        &mut files,
    );
    files.sort();
    files
        .into_iter()
        .map(|p| {
            let s = std::fs::read_to_string(&p).unwrap();
            (p, s)
        })
        .collect()
}

fn format_doc() -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("FORMAT.md")).unwrap()
}

/// Constants that name a byte of a format: magics, versions, modes, flags.
fn is_format_constant(name: &str) -> bool {
    name.contains("MAGIC")
        || name.contains("VERSION")
        || ["VAL_", "MODE_", "TS_", "EL_", "PRED_", "KIND_", "FLAG_"]
            .iter()
            .any(|p| name.starts_with(p))
}

#[test]
fn every_format_constant_is_named_in_format_md() {
    let doc = format_doc();
    let word = |w: &str| {
        regex::Regex::new(&format!(r"\b{}\b", regex::escape(w)))
            .unwrap()
            .is_match(&doc)
    };
    let decl =
        regex::Regex::new(r"(?m)^\s*(?:pub(?:\([a-z]+\))? )?const ([A-Z][A-Z0-9_]*)\s*:").unwrap();
    let mut missing = Vec::new();
    let mut seen = 0;
    for (path, src) in sources() {
        for c in decl.captures_iter(&src) {
            let name = &c[1];
            if is_format_constant(name) {
                seen += 1;
                if !word(name) {
                    missing.push(format!("{} ({})", name, path.display()));
                }
            }
        }
    }
    assert!(
        seen >= 25,
        "only {seen} format constants found: is the scan broken?"
    );
    assert!(missing.is_empty(), "not in FORMAT.md: {missing:#?}");
}

#[test]
fn every_cited_format_md_section_exists() {
    let doc = format_doc();
    let headings: Vec<&str> = doc.lines().filter(|l| l.starts_with('#')).collect();
    let cite = regex::Regex::new(r#"FORMAT\.md ((?:"[^"]+"(?:, )?)+)"#).unwrap();
    let quoted = regex::Regex::new(r#""([^"]+)""#).unwrap();
    let mut bad = Vec::new();
    let mut seen = 0;
    for (path, src) in sources() {
        for c in cite.captures_iter(&src) {
            for q in quoted.captures_iter(&c[1]) {
                seen += 1;
                let section = &q[1];
                if !headings.iter().any(|h| h.contains(section)) {
                    bad.push(format!("\"{section}\" cited in {}", path.display()));
                }
            }
        }
    }
    assert!(
        seen >= 10,
        "only {seen} citations found: is the scan broken?"
    );
    assert!(bad.is_empty(), "FORMAT.md has no such section: {bad:#?}");
}
