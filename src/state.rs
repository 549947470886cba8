//! The running server's shared state: flags, the current configuration,
//! storage once it is open, the scrape, rule and notification managers, and
//! the configuration reload that updates them all. HTTP handlers (`api`,
//! `web`, `serve`) and start-up (`server`) both use it; neither imports the
//! other for it.

use crate::cli::Flags;
use crate::config::{self, Config};
use crate::metrics::Metrics;
use crate::storage::Storage;
use parking_lot::{Mutex, RwLock};
use std::sync::atomic::Ordering;
use std::sync::{Arc, OnceLock};
use std::time::SystemTime;
use tokio::sync::Notify;

/// Storage is not open yet: the WAL is still replaying (HTTP 503).
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("storage is starting up (WAL replay in progress)")]
pub struct StorageStarting;

/// Shared state of the running server.
pub struct AppState {
    /// Command-line flags.
    pub flags: Flags,
    /// The current configuration.
    pub config: RwLock<Arc<Config>>,
    pub(crate) storage: OnceLock<Arc<Storage>>,
    /// Self-instrumentation.
    pub metrics: Metrics,
    /// Process start.
    pub started: SystemTime,
    /// Outcome and time of the last configuration (re)load.
    pub last_reload: Mutex<(bool, SystemTime)>,
    /// Signalled to stop the server.
    pub shutdown: Notify,
    /// The WAL replay report once storage is open.
    pub replay: OnceLock<sonde_engine::OpenReport>,
    /// The PromQL engine, configured by the `--query.*` flags.
    pub engine: Arc<crate::promql::Engine>,
    /// `--query.max-concurrency` query slots; further queries wait for one.
    pub query_slots: Arc<tokio::sync::Semaphore>,
    /// `--web.remote-decode-memory`, in KiB permits: what large remote-write
    /// and remote-read bodies may take decoded at once.
    pub decode_budget: Arc<tokio::sync::Semaphore>,
    /// The budget's size in KiB.
    pub decode_budget_kib: u32,
    /// The scrape manager, once storage is open.
    pub(crate) scrape: OnceLock<Arc<crate::scrape::ScrapeManager>>,
    /// Alert notifications (Alertmanager, Telegram).
    pub(crate) notifier: OnceLock<Arc<crate::notify::Notifier>>,
    /// Recording and alerting rules.
    pub(crate) rules: OnceLock<Arc<crate::rules::RuleManager>>,
}

impl AppState {
    /// The storage, or `unavailable` while the WAL replays.
    pub fn storage(&self) -> Result<&Arc<Storage>, StorageStarting> {
        self.storage.get().ok_or(StorageStarting)
    }

    /// The scrape manager (absent while storage opens).
    pub fn scrape(&self) -> Option<&Arc<crate::scrape::ScrapeManager>> {
        self.scrape.get()
    }

    /// The rule manager (absent while storage opens).
    pub fn rules(&self) -> Option<&Arc<crate::rules::RuleManager>> {
        self.rules.get()
    }

    /// The notifier (absent while storage opens).
    pub fn notifier(&self) -> Option<&Arc<crate::notify::Notifier>> {
        self.notifier.get()
    }

    /// Whether storage is open.
    pub fn is_ready(&self) -> bool {
        self.storage.get().is_some()
    }

    /// Reloads the configuration file; on error the old configuration stays.
    pub fn reload(&self) -> Result<(), String> {
        let res = load_config(&self.flags).map_err(|e| format!("{e:#}"));
        let now = SystemTime::now();
        match res {
            Ok(c) => {
                let c = Arc::new(c);
                // Rules first: a bad rule file fails the whole reload.
                if let Some(r) = self.rules.get() {
                    let applied =
                        c.resolve_rule_files()
                            .map_err(|e| e.to_string())
                            .and_then(|files| {
                                r.apply(
                                    &files,
                                    c.global.evaluation_interval.as_std(),
                                    &c.global.external_labels,
                                )
                            });
                    if let Err(e) = applied {
                        self.last_reload.lock().0 = false;
                        self.metrics
                            .config_last_reload_successful
                            .store(0, Ordering::Relaxed);
                        tracing::error!(error = %e, "loading rules failed; keeping the previous configuration and rules");
                        return Err(e);
                    }
                }
                if let Some(m) = self.scrape.get() {
                    m.apply(&c);
                }
                if let Some(n) = self.notifier.get() {
                    n.apply_config(&c.alerting, &c.global.external_labels);
                }
                *self.config.write() = c;
                *self.last_reload.lock() = (true, now);
                self.metrics
                    .config_last_reload_successful
                    .store(1, Ordering::Relaxed);
                let secs = now
                    .duration_since(SystemTime::UNIX_EPOCH)
                    .map(|d| d.as_secs())
                    .unwrap_or(0);
                self.metrics
                    .config_last_reload_success_timestamp
                    .store(secs, Ordering::Relaxed);
                tracing::info!("configuration reloaded");
                Ok(())
            }
            Err(e) => {
                self.last_reload.lock().0 = false;
                self.metrics
                    .config_last_reload_successful
                    .store(0, Ordering::Relaxed);
                tracing::error!(error = %e, "configuration reload failed; keeping the previous configuration");
                Err(e)
            }
        }
    }
}

/// Loads the configuration named by the flags, or the embedded default.
pub fn load_config(flags: &Flags) -> anyhow::Result<Config> {
    let c = match &flags.config_file {
        Some(p) => Config::load(p)?,
        None => Config::parse(
            config::DEFAULT_CONFIG,
            "<embedded default>",
            std::path::Path::new("."),
        )?,
    };
    for w in c.warnings() {
        tracing::warn!("configuration: {w}");
    }
    Ok(c)
}
