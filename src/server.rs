//! The process: configuration, storage lifecycle, HTTP listener, signals.
//!
//! Start-up order: load and validate the configuration (a bad file stops
//! start-up with its file and line), bind the listener (so `/-/healthy`
//! answers at once and `/-/ready` says 503 while the WAL replays), open the
//! storage, then serve. SIGHUP and `POST /-/reload` reload the
//! configuration, keeping the old one when the new one is invalid. SIGTERM,
//! SIGINT and `POST /-/quit` stop accepting requests, let running ones
//! finish, and close the storage (which checkpoints the head).

use crate::cli::{Flags, WalSync};
use crate::config::{self, Config};
use crate::metrics::Metrics;
use crate::state::{load_config, AppState};
use crate::storage::{Storage, DEFAULT_MAX_EXEMPLARS};
use anyhow::Context;
use parking_lot::{Mutex, RwLock};
use sonde_engine::{Options, SyncMode};
use std::sync::atomic::Ordering;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime};
use tokio::sync::Notify;

pub use crate::http_client::USER_AGENT;

/// `--web.external-url`, or `http://<hostname>:<port>/` as Prometheus defaults it.
pub fn external_url(flags: &Flags) -> String {
    if let Some(u) = &flags.external_url {
        return u.trim_end_matches('/').to_string();
    }
    let host = std::fs::read_to_string("/etc/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "localhost".into());
    let port = flags
        .listen_address
        .rsplit(':')
        .next()
        .unwrap_or("9090")
        .to_string();
    format!("http://{host}:{port}")
}

fn duration_flag(name: &str, v: &str) -> anyhow::Result<Duration> {
    config::Duration::parse(v)
        .map(|d| d.as_std())
        .map_err(|e| anyhow::anyhow!("invalid --{name} {v:?}: {e}"))
}

/// Engine options from the flags and configuration.
pub fn engine_options(flags: &Flags, cfg: &Config) -> anyhow::Result<Options> {
    let retention = duration_flag("storage.tsdb.retention.time", &flags.retention_time)?;
    let retention_bytes = match &flags.retention_size {
        Some(s) => Some(
            config::ByteSize::parse(s)
                .map_err(|e| anyhow::anyhow!("invalid --storage.tsdb.retention.size {s:?}: {e}"))?
                .bytes(),
        ),
        None => None,
    };
    let block = duration_flag("storage.tsdb.min-block-duration", &flags.min_block_duration)?;
    if block.as_millis() == 0 {
        anyhow::bail!("--storage.tsdb.min-block-duration must be positive");
    }
    let max_block = match &flags.max_block_duration {
        Some(s) => Some(duration_flag("storage.tsdb.max-block-duration", s)?.as_millis() as i64),
        None => None,
    };
    let ooo = cfg.storage.tsdb.out_of_order_time_window.as_millis() as i64;
    let max_future = duration_flag("storage.tsdb.max-future-time", &flags.max_future_time)?;
    let stable = duration_flag(
        "storage.tsdb.retention.clock-stable-time",
        &flags.clock_stable_time,
    )?;
    let min_free = config::ByteSize::parse(&flags.min_free_space)
        .map_err(|e| {
            anyhow::anyhow!(
                "invalid --storage.tsdb.min-free-space {:?}: {e}",
                flags.min_free_space
            )
        })?
        .bytes();
    Ok(Options {
        min_free_bytes: min_free,
        max_head_series: flags.max_head_series,
        max_future_ms: i64::try_from(max_future.as_millis()).unwrap_or(i64::MAX),
        clock_stable_ms: i64::try_from(stable.as_millis()).unwrap_or(i64::MAX),
        ooo_window_ms: ooo,
        block_range_ms: block.as_millis() as i64,
        max_block_duration_ms: max_block,
        retention_ms: if retention.is_zero() {
            None
        } else {
            Some(retention.as_millis() as i64)
        },
        retention_bytes: retention_bytes.filter(|&b| b > 0),
        wal_sync: match flags.wal_sync {
            WalSync::Always => SyncMode::Always,
            WalSync::Interval => SyncMode::Interval(Duration::from_secs(1)),
            WalSync::Os => SyncMode::Os,
        },
        ..Options::default()
    })
}

/// PromQL engine options from the `--query.*` flags; the default subquery
/// step is the global evaluation interval, as in Prometheus.
pub fn query_engine_options(
    flags: &Flags,
    cfg: &Config,
) -> anyhow::Result<crate::promql::EngineOptions> {
    let defaults = crate::promql::EngineOptions::default();
    let lookback = duration_flag("query.lookback-delta", &flags.query_lookback_delta)?;
    let timeout = duration_flag("query.timeout", &flags.query_timeout)?;
    Ok(crate::promql::EngineOptions {
        // Prometheus: a zero lookback delta means the default (5m).
        lookback_delta_ms: match i64::try_from(lookback.as_millis()) {
            Ok(0) | Err(_) => defaults.lookback_delta_ms,
            Ok(ms) => ms,
        },
        max_samples: usize::try_from(flags.query_max_samples).unwrap_or(usize::MAX),
        max_memory_bytes: match config::ByteSize::parse(&flags.query_max_memory)
            .map_err(|e| {
                anyhow::anyhow!(
                    "invalid --query.max-memory-per-query {:?}: {e}",
                    flags.query_max_memory
                )
            })?
            .bytes()
        {
            0 => usize::MAX,
            b => usize::try_from(b).unwrap_or(usize::MAX),
        },
        timeout,
        default_subquery_step_ms: i64::try_from(cfg.global.evaluation_interval.as_millis())
            .unwrap_or(defaults.default_subquery_step_ms),
    })
}

/// Stack size of every runtime thread (async workers and the blocking pool,
/// where queries, rules and large decodes run). Sized for the deepest tree
/// `--query.max-nesting-depth` admits: evaluation recurses once per level.
/// Only the pages a thread touches are committed, so this costs address
/// space, not memory.
pub const THREAD_STACK_BYTES: usize = 64 << 20;

/// Runs the server until it is asked to stop.
pub async fn run(flags: Flags) -> anyhow::Result<()> {
    crate::promql::parse::set_shape_limits(flags.query_max_depth, flags.query_max_tokens);
    let cfg = load_config(&flags).context("loading configuration")?;
    let opts = engine_options(&flags, &cfg)?;
    let engine = Arc::new(crate::promql::Engine::new(query_engine_options(
        &flags, &cfg,
    )?));
    let query_slots = Arc::new(tokio::sync::Semaphore::new(
        flags
            .query_max_concurrency
            .clamp(1, tokio::sync::Semaphore::MAX_PERMITS),
    ));
    let decode_budget_kib = u32::try_from(
        config::ByteSize::parse(&flags.remote_decode_memory)
            .map_err(|e| {
                anyhow::anyhow!(
                    "invalid --web.remote-decode-memory {:?}: {e}",
                    flags.remote_decode_memory
                )
            })?
            .bytes()
            / 1024,
    )
    .unwrap_or(u32::MAX)
    .clamp(
        (crate::ingest::remote_write::MAX_DECODED_BODY / 1024 + 1) as u32,
        u32::try_from(tokio::sync::Semaphore::MAX_PERMITS).unwrap_or(u32::MAX),
    );
    let listener = tokio::net::TcpListener::bind(&flags.listen_address)
        .await
        .with_context(|| format!("listening on {}", flags.listen_address))?;
    tracing::info!(address = %flags.listen_address, "listening");
    let state = Arc::new(AppState {
        flags: flags.clone(),
        config: RwLock::new(Arc::new(cfg)),
        storage: OnceLock::new(),
        metrics: Metrics::default(),
        started: SystemTime::now(),
        last_reload: Mutex::new((true, SystemTime::now())),
        shutdown: Notify::new(),
        replay: OnceLock::new(),
        engine,
        query_slots,
        decode_budget: Arc::new(tokio::sync::Semaphore::new(decode_budget_kib as usize)),
        decode_budget_kib,
        scrape: OnceLock::new(),
        notifier: OnceLock::new(),
        rules: OnceLock::new(),
    });
    state
        .metrics
        .config_last_reload_successful
        .store(1, Ordering::Relaxed);

    let mut app = crate::api::router(state.clone());
    let mut tls = None;
    let mut http2 = true;
    if let Some(path) = &flags.web_config_file {
        let web = config::WebConfig::load(path).map_err(|e| anyhow::anyhow!("{e}"))?;
        http2 = web.http_server_config.http2;
        let mut headers = Vec::new();
        for (k, v) in &web.http_server_config.headers {
            let name = axum::http::HeaderName::from_bytes(k.as_bytes())
                .with_context(|| format!("{}: header name {k:?}", path.display()))?;
            let value = axum::http::HeaderValue::from_str(v)
                .with_context(|| format!("{}: value of header {k:?}", path.display()))?;
            headers.push((name, value));
        }
        if !headers.is_empty() {
            let headers = Arc::new(headers);
            app = app.layer(axum::middleware::map_response(
                move |mut r: axum::response::Response| {
                    let headers = headers.clone();
                    async move {
                        for (k, v) in headers.iter() {
                            r.headers_mut().insert(k.clone(), v.clone());
                        }
                        r
                    }
                },
            ));
        }
        for w in web.warnings() {
            tracing::warn!("web config: {w}");
        }
        if let Some(t) = &web.tls_server_config {
            use config::ClientAuthType as C;
            let settings = crate::web::TlsSettings {
                cert_file: t.cert_file.clone().into(),
                key_file: t.key_file.clone().into(),
                client_ca_file: (!t.client_ca_file.is_empty())
                    .then(|| t.client_ca_file.clone().into()),
                client_auth: match t.client_auth_type {
                    C::NoClientCert => crate::web::ClientAuth::None,
                    C::RequestClientCert | C::VerifyClientCertIfGiven => {
                        crate::web::ClientAuth::Optional
                    }
                    C::RequireAnyClientCert | C::RequireAndVerifyClientCert => {
                        crate::web::ClientAuth::Required
                    }
                },
                tls13_only: matches!(t.min_version, config::TlsVersion::Tls13),
                tls12_only: matches!(t.max_version, Some(config::TlsVersion::Tls12)),
                cipher_suites: t.cipher_suites.clone(),
                prefer_server_cipher_suites: t.prefer_server_cipher_suites,
                curve_preferences: t.curve_preferences.clone(),
                http2: web.http_server_config.http2,
            };
            if !t.client_allowed_sans.is_empty() {
                anyhow::bail!(
                    "{}: tls_server_config.client_allowed_sans is not supported by sonde; remove it, or give client_ca_file a CA that signs only the allowed clients",
                    path.display()
                );
            }
            if matches!(
                t.max_version,
                Some(config::TlsVersion::Tls10 | config::TlsVersion::Tls11)
            ) {
                anyhow::bail!(
                    "{}: tls_server_config.max_version below TLS12 is not supported by sonde's TLS library (rustls speaks TLS 1.2 and 1.3)",
                    path.display()
                );
            }
            if !t.cert_file.is_empty() {
                tls = Some(
                    crate::web::tls_config(&settings)
                        .with_context(|| format!("TLS settings in {}", path.display()))?,
                );
            }
        }
        let auth = crate::web::BasicAuth::new(path.clone(), |p| {
            let w = config::WebConfig::load(p).map_err(|e| anyhow::anyhow!("{e}"))?;
            Ok(w.basic_auth_users
                .iter()
                .map(|(u, h)| (u.clone(), h.expose().to_string()))
                .collect())
        })?;
        app = app.layer(axum::middleware::from_fn_with_state(
            Arc::new(auth),
            crate::web::require_auth,
        ));
    }
    let st = state.clone();
    let serve_opts = crate::serve::ServeOptions {
        max_connections: flags.web_max_connections,
        read_timeout: duration_flag("web.read-timeout", &flags.web_read_timeout)?,
        tls,
        http2,
    };
    let server = tokio::spawn(async move {
        let st2 = st.clone();
        let stop = async move { st2.shutdown.notified().await };
        crate::serve::serve(listener, app, serve_opts, st, stop).await;
        Ok::<(), std::io::Error>(())
    });

    signals(state.clone());
    // Open the storage (WAL replay) while the listener already answers /-/healthy.
    let dir = flags.storage_path.clone();
    let db = tokio::task::spawn_blocking(move || sonde_engine::Db::open(&dir, opts))
        .await
        .context("storage task")?
        .with_context(|| format!("opening storage in {}", flags.storage_path.display()))?;
    let _ = state.replay.set(db.open_report().clone());
    let _ = state
        .storage
        .set(Arc::new(Storage::new(db, DEFAULT_MAX_EXEMPLARS)));
    tracing::info!("storage ready; server is ready to receive requests");
    let storage = state.storage.get().cloned();
    if let Some(storage) = storage {
        let cfg = state.config.read().clone();
        let manager = Arc::new(crate::scrape::ScrapeManager::new(
            storage.clone(),
            xxhash_rust::xxh3::xxh3_64(format!("{:?}", cfg.global.external_labels).as_bytes()),
        ));
        manager.apply(&cfg);
        let notifier = crate::notify::Notifier::new(crate::notify::NotifierOptions {
            external_url: external_url(&flags),
            discovery: manager.discovery.clone(),
            ..Default::default()
        });
        notifier.apply_config(&cfg.alerting, &cfg.global.external_labels);
        let rules = Arc::new(crate::rules::RuleManager::new(
            storage.clone(),
            state.engine.clone(),
            notifier.clone(),
            crate::rules::RuleOptions {
                outage_tolerance: duration_flag(
                    "rules.alert.for-outage-tolerance",
                    &flags.rules_for_outage_tolerance,
                )?,
                grace_period: duration_flag(
                    "rules.alert.for-grace-period",
                    &flags.rules_for_grace_period,
                )?,
                resend_delay: duration_flag("rules.alert.resend-delay", &flags.rules_resend_delay)?,
                external_url: external_url(&flags),
            },
        ));
        let files = cfg
            .resolve_rule_files()
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        rules
            .apply(
                &files,
                cfg.global.evaluation_interval.as_std(),
                &cfg.global.external_labels,
            )
            .map_err(|e| anyhow::anyhow!("loading rules: {e}"))?;
        let _ = state.scrape.set(manager);
        let _ = state.notifier.set(notifier);
        let _ = state.rules.set(rules);
    }

    let served = server.await.context("server task")?;
    if let Err(e) = served {
        tracing::error!(error = %e, "HTTP server failed");
    }
    if let Some(r) = state.rules.get() {
        r.shutdown();
    }
    if let Some(m) = state.scrape.get() {
        tracing::info!("stopping scrapes (writing staleness markers)");
        m.shutdown().await;
    }
    if let Some(n) = state.notifier.get() {
        n.flush(Duration::from_secs(10)).await;
    }
    tracing::info!("shutting down storage");
    if let Some(s) = state.storage.get() {
        let db = s.db.clone();
        tokio::task::spawn_blocking(move || db.close())
            .await
            .context("closing storage")??;
    }
    tracing::info!("bye");
    Ok(())
}

/// SIGHUP reloads; SIGTERM and SIGINT stop.
fn signals(state: Arc<AppState>) {
    use tokio::signal::unix::{signal, SignalKind};
    let st = state.clone();
    tokio::spawn(async move {
        let Ok(mut hup) = signal(SignalKind::hangup()) else {
            return;
        };
        while hup.recv().await.is_some() {
            let _ = st.reload();
        }
    });
    tokio::spawn(async move {
        let (Ok(mut term), Ok(mut int)) = (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) else {
            return;
        };
        tokio::select! {
            _ = term.recv() => tracing::info!("received SIGTERM, exiting gracefully"),
            _ = int.recv() => tracing::info!("received SIGINT, exiting gracefully"),
        }
        state.shutdown.notify_waiters();
        state.shutdown.notify_one();
    });
}
