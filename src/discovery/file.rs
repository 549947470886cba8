//! `file_sd_configs`: target groups from JSON or YAML files matched by
//! globs, re-read when a file changes (polled every second) and at every
//! `refresh_interval`. A file that cannot be read or parsed keeps its last
//! good groups; the error is logged and counted.

use super::{LabelSet, TargetGroup};
use crate::config::scrape::FileSdConfig;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

/// Counters for `/metrics` (`prometheus_sd_file_*`).
#[derive(Debug, Default)]
pub struct FileSdStats {
    /// Files that failed to read or parse.
    pub read_errors: AtomicU64,
    /// Scans of the globs.
    pub scans: AtomicU64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawGroup {
    #[serde(default)]
    targets: Vec<String>,
    #[serde(default)]
    labels: BTreeMap<String, String>,
}

/// Parses one file's content into groups (`source` = `path:index`).
pub fn parse_file(path: &Path, content: &str) -> Result<Vec<TargetGroup>, String> {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or("")
        .to_ascii_lowercase();
    let raw: Vec<RawGroup> = match ext.as_str() {
        "json" => serde_json::from_str(content).map_err(|e| format!("{}: {e}", path.display()))?,
        "yml" | "yaml" => {
            serde_saphyr::from_str(content).map_err(|e| format!("{}: {e}", path.display()))?
        }
        _ => return Err(format!("{}: unknown file extension", path.display())),
    };
    let mut out = Vec::with_capacity(raw.len());
    for (i, g) in raw.into_iter().enumerate() {
        for n in g.labels.keys() {
            if !crate::config::is_valid_label_name(n, crate::config::NameValidationScheme::Legacy) {
                return Err(format!("{}: invalid label name {n:?}", path.display()));
            }
        }
        let mut labels = g.labels;
        labels.insert("__meta_filepath".into(), path.display().to_string());
        out.push(TargetGroup {
            source: format!("{}:{i}", path.display()),
            targets: g
                .targets
                .into_iter()
                .map(|t| LabelSet::from([("__address__".to_string(), t)]))
                .collect(),
            labels,
        });
    }
    Ok(out)
}

fn expand(patterns: &[String]) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for p in patterns {
        match glob::glob(p) {
            Ok(paths) => out.extend(paths.flatten()),
            Err(e) => tracing::warn!(pattern = %p, error = %e, "invalid file_sd pattern"),
        }
    }
    out.sort();
    out.dedup();
    out
}

/// Runs until the receiver is dropped, publishing all files' groups.
pub async fn run(
    cfg: FileSdConfig,
    tx: tokio::sync::watch::Sender<Vec<TargetGroup>>,
    stats: Arc<FileSdStats>,
) {
    let refresh = if cfg.refresh_interval.is_zero() {
        Duration::from_secs(300)
    } else {
        cfg.refresh_interval.into()
    };
    let mut known: BTreeMap<PathBuf, (Option<SystemTime>, Vec<TargetGroup>)> = BTreeMap::new();
    let mut last_full = Instant::now();
    let mut first = true;
    loop {
        let full = first || last_full.elapsed() >= refresh;
        if full {
            last_full = Instant::now();
        }
        stats.scans.fetch_add(1, Ordering::Relaxed);
        let paths = expand(&cfg.files);
        let mut changed = first;
        // Files that disappeared.
        let before = known.len();
        known.retain(|p, _| paths.contains(p));
        changed |= known.len() != before;
        for p in paths {
            let mtime = std::fs::metadata(&p).and_then(|m| m.modified()).ok();
            if !full && known.get(&p).is_some_and(|(m, _)| *m == mtime) {
                continue;
            }
            match std::fs::read_to_string(&p)
                .map_err(|e| format!("{}: {e}", p.display()))
                .and_then(|c| parse_file(&p, &c))
            {
                Ok(groups) => {
                    let entry = known.entry(p).or_insert((None, Vec::new()));
                    changed |= entry.1 != groups;
                    *entry = (mtime, groups);
                }
                Err(e) => {
                    stats.read_errors.fetch_add(1, Ordering::Relaxed);
                    tracing::error!(error = %e, "file_sd: keeping the last good targets of this file");
                    // Remember the mtime so a broken file is not re-read every second.
                    if let Some(entry) = known.get_mut(&p) {
                        entry.0 = mtime;
                    } else {
                        known.insert(p, (mtime, Vec::new()));
                    }
                }
            }
        }
        if changed {
            let all: Vec<TargetGroup> = known.values().flat_map(|(_, g)| g.clone()).collect();
            if tx.send(all).is_err() {
                return;
            }
        }
        first = false;
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            _ = tx.closed() => return,
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn json_and_yaml() {
        let g = parse_file(
            Path::new("/x/t.json"),
            r#"[{"targets":["a:1","b:2"],"labels":{"env":"prod"}}]"#,
        )
        .unwrap();
        assert_eq!(g.len(), 1);
        assert_eq!(g[0].targets.len(), 2);
        assert_eq!(g[0].labels["env"], "prod");
        assert_eq!(g[0].labels["__meta_filepath"], "/x/t.json");
        let g = parse_file(
            Path::new("/x/t.yml"),
            "- targets: [\"c:3\"]\n  labels:\n    team: db\n",
        )
        .unwrap();
        assert_eq!(g[0].targets[0]["__address__"], "c:3");
        assert!(parse_file(Path::new("/x/t.json"), "[{\"targets\": 1}]").is_err());
        assert!(parse_file(Path::new("/x/t.json"), r#"[{"labels":{"bad-name":"x"}}]"#).is_err());
    }
}
