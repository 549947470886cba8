//! The scrape manager: one pool per `scrape_configs` job. A pool runs its
//! service discoveries, turns their target groups into targets with
//! `relabel_configs` (at most every 5 s, as Prometheus' discovery manager
//! sends updates), and keeps one scrape loop per target: new targets start
//! a loop, vanished ones stop theirs with Prometheus' end-of-run staleness
//! (delayed about two intervals, so a target that comes back keeps its
//! series; at server shutdown, at once).

use super::scrape_loop::{LoopConfig, ScrapeCounters, ScrapeLoop, StopMode};
use super::target::Target;
use crate::config::{Config, ScrapeConfig};
use crate::discovery::{DiscoveryStats, LabelSet, TargetGroup};
use crate::http_client::HttpClient;
use crate::storage::Storage;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

/// Smallest spacing of target updates (Prometheus' discovery manager: 5 s).
const UPDATE_EVERY: Duration = Duration::from_secs(5);

struct Running {
    target: Arc<Target>,
    stop: watch::Sender<Option<StopMode>>,
    handle: JoinHandle<()>,
}

/// What a pool shows the API.
#[derive(Default)]
struct PoolView {
    active: Vec<Arc<Target>>,
    dropped: Vec<LabelSet>,
}

struct Pool {
    cfg: Arc<ScrapeConfig>,
    cfg_text: String,
    view: Arc<Mutex<PoolView>>,
    stop: watch::Sender<Option<StopMode>>,
    task: JoinHandle<()>,
}

/// All scrape pools.
pub struct ScrapeManager {
    storage: Arc<Storage>,
    pools: Mutex<HashMap<String, Pool>>,
    /// Pools of jobs a reload removed or changed, while their loops drain.
    retired: Mutex<Vec<Pool>>,
    /// Scrape counters for `/metrics`.
    pub counters: Arc<ScrapeCounters>,
    /// Discovery counters for `/metrics`.
    pub discovery: Arc<DiscoveryStats>,
    jitter_seed: u64,
}

/// One active target as `/api/v1/targets` shows it.
pub struct TargetInfo {
    /// The target.
    pub target: Arc<Target>,
    /// Its job.
    pub pool: String,
}

impl ScrapeManager {
    /// A manager with no pools.
    pub fn new(storage: Arc<Storage>, external_labels_hash: u64) -> ScrapeManager {
        let host = std::fs::read_to_string("/etc/hostname").unwrap_or_default();
        let seed = xxhash_rust::xxh3::xxh3_64(host.trim().as_bytes()) ^ external_labels_hash;
        ScrapeManager {
            storage,
            pools: Mutex::new(HashMap::new()),
            retired: Mutex::new(Vec::new()),
            counters: Arc::new(ScrapeCounters::default()),
            discovery: Arc::new(DiscoveryStats::default()),
            jitter_seed: seed,
        }
    }

    /// Applies a (re)loaded configuration: unchanged jobs keep running,
    /// changed ones restart, removed ones stop; the old loops end with
    /// delayed end-of-run staleness.
    pub fn apply(&self, cfg: &Config) {
        let mut pools = self.pools.lock();
        let mut wanted: HashMap<String, Arc<ScrapeConfig>> = HashMap::new();
        for sc in &cfg.scrape_configs {
            wanted.insert(sc.job_name.clone(), Arc::new(sc.clone()));
        }
        let names: Vec<String> = pools.keys().cloned().collect();
        for name in names {
            let keep = wanted.get(&name).is_some_and(|sc| {
                pools
                    .get(&name)
                    .is_some_and(|p| p.cfg_text == config_text(sc))
            });
            if !keep {
                if let Some(p) = pools.remove(&name) {
                    let _ = p.stop.send(Some(StopMode::Retire));
                    // Kept (with its stop sender) until it has drained, so
                    // that shutdown can end it.
                    let mut retired = self.retired.lock();
                    retired.retain(|r| !r.task.is_finished());
                    retired.push(p);
                }
            }
        }
        for (name, sc) in wanted {
            if pools.contains_key(&name) {
                continue;
            }
            match self.start_pool(sc.clone()) {
                Ok(p) => {
                    pools.insert(name, p);
                }
                Err(e) => tracing::error!(job = %name, error = %e, "cannot start scrape pool"),
            }
        }
    }

    fn start_pool(&self, sc: Arc<ScrapeConfig>) -> Result<Pool, String> {
        let client = HttpClient::new(&sc.http_client(), crate::http_client::USER_AGENT)?;
        let loop_cfg = Arc::new(LoopConfig {
            honor_labels: sc.honor_labels,
            honor_timestamps: sc.honor_timestamps,
            track_timestamps_staleness: sc.track_timestamps_staleness,
            body_size_limit: sc.body_size_limit.0,
            sample_limit: sc.sample_limit,
            label_limit: sc.label_limit,
            label_name_length_limit: sc.label_name_length_limit,
            label_value_length_limit: sc.label_value_length_limit,
            metric_relabel: sc.metric_relabel_configs.clone(),
            name_scheme: sc.name_validation_scheme(),
        });
        let providers = crate::discovery::spawn(
            &sc.static_configs,
            &sc.file_sd_configs,
            &sc.consul_sd_configs,
            &self.discovery,
        );
        let view = Arc::new(Mutex::new(PoolView::default()));
        let (stop_tx, stop_rx) = watch::channel(None);
        let ctx = PoolCtx {
            sc: sc.clone(),
            loop_cfg,
            client,
            storage: self.storage.clone(),
            counters: self.counters.clone(),
            jitter_seed: self.jitter_seed,
            view: view.clone(),
        };
        let task = tokio::spawn(pool_task(
            ctx,
            providers.count,
            providers.updates,
            stop_rx,
            providers.tasks,
        ));
        Ok(Pool {
            cfg_text: config_text(&sc),
            cfg: sc,
            view,
            stop: stop_tx,
            task,
        })
    }

    /// Stops every pool, writing staleness markers, and waits for the loops.
    pub async fn shutdown(&self) {
        let mut pools: Vec<Pool> = self.pools.lock().drain().map(|(_, p)| p).collect();
        pools.append(&mut self.retired.lock());
        for p in &pools {
            let _ = p.stop.send(Some(StopMode::Stale));
        }
        for p in pools {
            let _ = tokio::time::timeout(Duration::from_secs(10), p.task).await;
        }
    }

    /// Scrape and discovery metrics in the Prometheus text format.
    pub fn write_metrics(&self, out: &mut String) {
        use std::fmt::Write as _;
        use std::sync::atomic::Ordering::Relaxed;
        let c = &self.counters;
        let _ = writeln!(out, "# HELP sonde_scrapes_total Scrapes done.\n# TYPE sonde_scrapes_total counter\nsonde_scrapes_total {}", c.scrapes.load(Relaxed));
        let _ = writeln!(out, "# HELP sonde_scrape_failures_total Scrapes that failed (up=0).\n# TYPE sonde_scrape_failures_total counter\nsonde_scrape_failures_total {}", c.failures.load(Relaxed));
        let _ = writeln!(out, "# HELP sonde_scrape_samples_total Scraped samples stored.\n# TYPE sonde_scrape_samples_total counter\nsonde_scrape_samples_total {}", c.samples.load(Relaxed));
        let _ = writeln!(out, "# HELP sonde_scrape_samples_rejected_total Scraped samples the storage refused (out of order, duplicate, too old).\n# TYPE sonde_scrape_samples_rejected_total counter\nsonde_scrape_samples_rejected_total {}", c.rejected.load(Relaxed));
        let f = &self.discovery.file;
        let _ = writeln!(out, "# HELP prometheus_sd_file_read_errors_total The number of File-SD read errors.\n# TYPE prometheus_sd_file_read_errors_total counter\nprometheus_sd_file_read_errors_total {}", f.read_errors.load(Relaxed));
        let _ = writeln!(out, "# HELP prometheus_sd_file_scans_total File-SD scans.\n# TYPE prometheus_sd_file_scans_total counter\nprometheus_sd_file_scans_total {}", f.scans.load(Relaxed));
        let _ = writeln!(out, "# HELP prometheus_sd_consul_rpc_failures_total The number of Consul RPC call failures.\n# TYPE prometheus_sd_consul_rpc_failures_total counter\nprometheus_sd_consul_rpc_failures_total {}", self.discovery.consul.rpc_failures());
        let (active, _) = self.targets();
        let _ = writeln!(out, "# HELP prometheus_sd_discovered_targets Current number of active targets.\n# TYPE prometheus_sd_discovered_targets gauge\nprometheus_sd_discovered_targets {}", active.len());
    }

    /// Active targets by job, and dropped targets' discovered labels by job.
    pub fn targets(&self) -> (Vec<TargetInfo>, Vec<(String, LabelSet)>) {
        let pools = self.pools.lock();
        let mut names: Vec<&String> = pools.keys().collect();
        names.sort();
        let mut active = Vec::new();
        let mut dropped = Vec::new();
        for n in names {
            let p = &pools[n];
            let v = p.view.lock();
            for t in &v.active {
                active.push(TargetInfo {
                    target: t.clone(),
                    pool: p.cfg.job_name.clone(),
                });
            }
            for d in &v.dropped {
                dropped.push((p.cfg.job_name.clone(), d.clone()));
            }
        }
        (active, dropped)
    }
}

fn config_text(sc: &ScrapeConfig) -> String {
    format!("{sc:?}")
}

struct PoolCtx {
    sc: Arc<ScrapeConfig>,
    loop_cfg: Arc<LoopConfig>,
    client: HttpClient,
    storage: Arc<Storage>,
    counters: Arc<ScrapeCounters>,
    jitter_seed: u64,
    view: Arc<Mutex<PoolView>>,
}

async fn pool_task(
    ctx: PoolCtx,
    providers: usize,
    mut rx: mpsc::UnboundedReceiver<(usize, Vec<TargetGroup>)>,
    mut stop: watch::Receiver<Option<StopMode>>,
    provider_tasks: Vec<JoinHandle<()>>,
) {
    let mut state: Vec<Vec<TargetGroup>> = vec![Vec::new(); providers];
    let mut running: HashMap<u64, Running> = HashMap::new();
    // Loops of targets that left, until their end-of-run staleness is done.
    let mut draining: Vec<Running> = Vec::new();
    // With no providers there is nothing to wait for: one (empty) sync.
    let mut dirty = providers == 0;
    let mut last_sync: Option<tokio::time::Instant> = None;
    let mut rx_open = true;
    let mode = loop {
        let wait = match last_sync {
            Some(t) => (t + UPDATE_EVERY).saturating_duration_since(tokio::time::Instant::now()),
            None => Duration::ZERO,
        };
        tokio::select! {
            msg = rx.recv(), if rx_open => match msg {
                Some((i, groups)) => {
                    if i < state.len() {
                        state[i] = groups;
                    }
                    dirty = true;
                }
                None => rx_open = false,
            },
            _ = tokio::time::sleep(wait), if dirty => {
                sync(&ctx, &state, &mut running, &mut draining);
                dirty = false;
                last_sync = Some(tokio::time::Instant::now());
            }
            r = stop.changed() => {
                let m = if r.is_err() { Some(StopMode::Stale) } else { *stop.borrow() };
                if let Some(m) = m {
                    break m;
                }
            }
        }
    };
    for h in provider_tasks {
        h.abort();
    }
    let loops: Vec<Running> = running.drain().map(|(_, r)| r).collect();
    for r in &loops {
        let _ = r.stop.send(Some(mode));
    }
    if mode == StopMode::Stale {
        for r in &draining {
            let _ = r.stop.send(Some(StopMode::Stale));
        }
    }
    let (stops, handles): (Vec<_>, Vec<_>) = loops
        .into_iter()
        .chain(draining)
        .map(|r| (r.stop, r.handle))
        .unzip();
    let drained = async move {
        for h in handles {
            let _ = h.await;
        }
    };
    tokio::pin!(drained);
    if mode == StopMode::Retire {
        // The loops drain for up to ~2 intervals; a later stop (server
        // shutdown) makes them mark their series stale at once.
        tokio::select! {
            _ = &mut drained => return,
            _ = stop.changed() => {
                for s in &stops {
                    let _ = s.send(Some(StopMode::Stale));
                }
            }
        }
    }
    let _ = tokio::time::timeout(Duration::from_secs(10), &mut drained).await;
}

/// Recomputes the targets and starts/stops loops to match.
fn sync(
    ctx: &PoolCtx,
    state: &[Vec<TargetGroup>],
    running: &mut HashMap<u64, Running>,
    draining: &mut Vec<Running>,
) {
    let sc = &ctx.sc;
    let mut wanted: HashMap<u64, Arc<Target>> = HashMap::new();
    let mut order: Vec<u64> = Vec::new();
    let mut dropped: Vec<LabelSet> = Vec::new();
    for groups in state {
        for g in groups {
            for t in &g.targets {
                match crate::relabel::populate_target_labels(t, &g.labels, sc) {
                    Ok(Some(pt)) => {
                        let target = Target::new(
                            sc.job_name.clone(),
                            pt.labels,
                            pt.discovered,
                            pt.url,
                            pt.interval,
                            pt.timeout,
                        );
                        let key = target.key();
                        if let std::collections::hash_map::Entry::Vacant(e) = wanted.entry(key) {
                            e.insert(Arc::new(target));
                            order.push(key);
                        }
                    }
                    Ok(None) => {
                        dropped.push(crate::relabel::populate_discovered_labels(t, &g.labels, sc));
                    }
                    Err(e) => {
                        tracing::warn!(job = %sc.job_name, error = %e, "dropping target");
                        let mut d: LabelSet = g.labels.clone();
                        d.extend(t.clone());
                        dropped.push(d);
                    }
                }
            }
        }
    }
    // Gone: the loops end with (delayed) end-of-run staleness.
    let gone: Vec<u64> = running
        .keys()
        .filter(|k| !wanted.contains_key(k))
        .copied()
        .collect();
    draining.retain(|r| !r.handle.is_finished());
    for k in gone {
        if let Some(r) = running.remove(&k) {
            let _ = r.stop.send(Some(StopMode::Retire));
            draining.push(r);
        }
    }
    let over_limit = sc.target_limit > 0 && wanted.len() as u64 > sc.target_limit;
    for k in &order {
        if running.contains_key(k) {
            continue;
        }
        let target = wanted[k].clone();
        let mut lp = ScrapeLoop::new(
            target.clone(),
            ctx.loop_cfg.clone(),
            ctx.client.clone(),
            ctx.storage.clone(),
            ctx.counters.clone(),
            ctx.jitter_seed,
        );
        if over_limit {
            lp.force_error(Some(format!(
                "target_limit exceeded (number of targets: {}, limit: {})",
                wanted.len(),
                sc.target_limit
            )));
        }
        let (stop_tx, stop_rx) = watch::channel(None);
        let handle = tokio::spawn(lp.run(stop_rx));
        running.insert(
            *k,
            Running {
                target,
                stop: stop_tx,
                handle,
            },
        );
    }
    let mut v = ctx.view.lock();
    v.active = order
        .iter()
        .filter_map(|k| running.get(k).map(|r| r.target.clone()))
        .collect();
    v.dropped = dropped;
}
