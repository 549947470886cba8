//! Dependencies between the server's modules point down only (ARCHITECTURE.md
//! "Module map"): HTTP and the application on top; then rules; then PromQL,
//! ingest, scraping and notification; then storage glue, discovery,
//! relabeling, templates and the wire codecs; config and the HTTP client
//! are leaves anyone may use, with Go compatibility below config. A module
//! may import only modules of a lower layer; inside the application, the HTTP
//! side and start-up meet in `state`. Test code is exempt.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

use std::path::{Path, PathBuf};

/// Top-level modules of `src/` and their layer (higher may import lower).
const LAYERS: &[(&str, u8)] = &[
    ("config", 1),
    ("gocompat", 0),
    ("http_client", 2),
    ("instrument", 2),
    ("storage", 2),
    ("relabel", 2),
    ("template", 2),
    ("remote", 2),
    ("influx", 2),
    ("discovery", 3),
    ("promql", 4),
    ("ingest", 4),
    ("scrape", 4),
    ("notify", 4),
    ("rules", 5),
    (APP[0], TOP),
    (APP[1], TOP),
    (APP[2], TOP),
    (APP[3], TOP),
    (APP[4], TOP),
    (APP[5], TOP),
    (APP[6], TOP),
    (APP[7], TOP),
    (APP[8], TOP),
];

/// The application on top, whose modules may use each other: HTTP
/// handlers, the web UI, the accept loop, start-up, flags, the /metrics page,
/// `sonde check`, the fuzz entry points.
const APP: [&str; 9] = [
    "api", "web", "serve", "server", "state", "cli", "metrics", "check", "fuzzing",
];
const TOP: u8 = 10;

/// Inside the application: the HTTP side and start-up share the running
/// state through `state`, not through each other, and `state` knows neither.
const APP_FORBIDDEN: &[(&str, &str)] = &[
    ("api", "server"),
    ("web", "server"),
    ("serve", "server"),
    ("state", "server"),
    ("state", "api"),
    ("state", "web"),
    ("state", "serve"),
];

fn layer(m: &str) -> Option<u8> {
    LAYERS.iter().find(|(n, _)| *n == m).map(|(_, l)| *l)
}

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

/// The module path of a file below `src/` (`src/a/b.rs` → `[a, b]`, `src/a/mod.rs` → `[a]`).
fn module_path(rel: &Path) -> Vec<String> {
    let mut parts: Vec<String> = rel
        .iter()
        .map(|c| c.to_string_lossy().trim_end_matches(".rs").to_string())
        .collect();
    if parts.last().is_some_and(|l| l == "mod") {
        parts.pop();
    }
    parts
}

/// Top-level modules a line of `file` (module path `m`) refers to.
fn referenced(re: &regex::Regex, line: &str, m: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    for c in re.captures_iter(line) {
        let prefix = &c[1];
        let name = c[2].to_string();
        if prefix == "crate::" {
            out.push(name);
            continue;
        }
        let k = prefix.matches("super::").count();
        // `super` from module a::b::c is a::b; reaching the crate root means
        // the next name is a top-level module.
        if k == m.len() {
            out.push(name);
        }
    }
    out
}

#[test]
fn modules_import_only_lower_layers() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    files.sort();
    let mut found: Vec<(String, String, String)> = Vec::new();
    let re = regex::Regex::new(r"\b((?:super::)+|crate::)([a-z_][a-z0-9_]*)").unwrap();
    for f in &files {
        let rel = f.strip_prefix(&src).unwrap();
        let m = module_path(rel);
        let Some(top) = m.first().cloned() else {
            continue;
        };
        if top == "main" || top == "lib" || m.last().is_some_and(|l| l == "tests") {
            continue;
        }
        let Some(own) = layer(&top) else {
            panic!(
                "src/{} is in no layer: add `{top}` to LAYERS",
                rel.display()
            );
        };
        let text = std::fs::read_to_string(f).unwrap();
        for (i, line) in text.lines().enumerate() {
            if line.starts_with("#[cfg(test)]") {
                break; // the file's test module
            }
            let code = line.trim_start();
            if code.starts_with("//") {
                continue;
            }
            for target in referenced(&re, line, &m) {
                if target == top {
                    continue;
                }
                let Some(theirs) = layer(&target) else {
                    continue;
                };
                let forbidden = APP_FORBIDDEN.contains(&(top.as_str(), target.as_str()));
                if theirs > own || (theirs == own && own != TOP) || forbidden {
                    found.push((
                        top.clone(),
                        target,
                        format!("src/{}:{}", rel.display(), i + 1),
                    ));
                }
            }
        }
    }
    assert!(
        found.is_empty(),
        "imports that point up or sideways (lower layers must not know higher ones):\n{}",
        found
            .iter()
            .map(|(a, b, at)| format!("  {a} -> {b} at {at}"))
            .collect::<Vec<_>>()
            .join("\n")
    );
}
