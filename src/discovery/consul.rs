//! Consul service discovery (`consul_sd_configs`), following Prometheus'
//! `discovery/consul/consul.go` (3.x, which adds `filter`/`health_filter`
//! to the 2.x behaviour).
//!
//! # Protocol
//!
//! 1. Without a configured `datacenter`, `GET /v1/agent/self` and take
//!    `Config.Datacenter` (retried every 15 s until it works).
//! 2. When `services` is empty, or `tags` or `filter` is set, watch the
//!    catalog: blocking `GET /v1/catalog/services`. A watcher is started for
//!    each listed service whose name is wanted (`services`, empty = all) and
//!    whose catalog tags include every configured tag. A watcher stops only
//!    when its service disappears from the catalog response; its group then
//!    becomes empty (see "Published state"). Otherwise the named services
//!    are watched directly and the catalog is never read.
//! 3. Per service: blocking `GET /v1/health/service/<name>` with one `tag`
//!    parameter per configured tag and `filter=<health_filter>`: all
//!    instances, whatever their health.
//!
//! Every query carries `dc` (only when configured, as the Consul Go client
//! does), `ns`, `partition`, `stale` (when `allow_stale`), `node-meta=k:v`
//! for each `node_meta` entry, `index=<last X-Consul-Index>` (after the
//! first call) and `wait=120000ms`; the ACL token goes in `X-Consul-Token`.
//!
//! # Blocking queries
//!
//! An unchanged `X-Consul-Index` means the wait expired without news: nothing
//! is published. Following Consul's implementation notes (and VictoriaMetrics),
//! an index that goes backwards is reset to 0 for the next call, and an index
//! below 1 is raised to 1; a response without the header is treated as news
//! and the next call does not block (Prometheus would stall in both cases).
//! Successive calls of one watch start at least `refresh_interval` apart
//! (a ticker, as in Prometheus: a call that took longer than the interval is
//! followed at once by the next one). After a failed call the watch sleeps
//! 15 s and keeps its last targets; failures increment
//! [`ConsulStats::rpc_failures`].
//!
//! # Published state
//!
//! [`run`] publishes the whole state through a `watch` channel: one
//! [`TargetGroup`] per service that has reported at least once, sorted by
//! service name, `source` = service name. The group labels are
//! `__meta_consul_service` and `__meta_consul_dc`. A service that left the
//! catalog keeps an *empty* group (as Prometheus' discovery manager keeps the
//! `{Source: name}` group it is sent), so consumers that diff the full state
//! see its targets go away. Nothing is sent when the state did not change,
//! except that the first catalog answer is always published.
//!
//! # Labels
//!
//! See [`service_group`]. Labels whose value is empty (no service address,
//! no namespace or partition outside Consul Enterprise, empty metadata
//! values) are left out: Prometheus attaches them, but its label builder
//! drops empty values before relabelling and in the targets API, so the
//! result is the same.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use serde::{Deserialize, Deserializer};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use super::{LabelSet, TargetGroup};
use crate::config::scrape::ConsulSdConfig;
use crate::config::HttpClientConfig;

/// Longest wait of a blocking query (`wait=120000ms`; Prometheus' `watchTimeout`).
pub const WATCH_TIMEOUT: Duration = Duration::from_secs(120);
/// Pause after a failed Consul call (Prometheus' `retryInterval`).
pub const RETRY_INTERVAL: Duration = Duration::from_secs(15);
/// Extra time a request may take beyond its `wait` (Consul adds up to
/// wait/16 of jitter); Prometheus' client timeout is `watchTimeout + 15s`.
const REQUEST_SLACK: Duration = Duration::from_secs(15);
/// Window of the RPC duration quantiles (a Prometheus summary's `MaxAge`).
const QUANTILE_WINDOW: Duration = Duration::from_secs(600);
/// Most observations kept for the quantiles of one call kind.
const QUANTILE_SAMPLES: usize = 4096;

/// `__address__`.
pub const ADDRESS_LABEL: &str = "__address__";
/// Node address.
pub const NODE_ADDRESS_LABEL: &str = "__meta_consul_address";
/// Node name.
pub const NODE_LABEL: &str = "__meta_consul_node";
/// Prefix of the node metadata labels.
pub const NODE_META_PREFIX: &str = "__meta_consul_metadata_";
/// Prefix of the service metadata labels.
pub const SERVICE_META_PREFIX: &str = "__meta_consul_service_metadata_";
/// Service tags, joined with and wrapped in the tag separator.
pub const TAGS_LABEL: &str = "__meta_consul_tags";
/// Service name (a group label).
pub const SERVICE_LABEL: &str = "__meta_consul_service";
/// Aggregated health of the instance.
pub const HEALTH_LABEL: &str = "__meta_consul_health";
/// Service address (may be empty, then absent).
pub const SERVICE_ADDRESS_LABEL: &str = "__meta_consul_service_address";
/// Service port.
pub const SERVICE_PORT_LABEL: &str = "__meta_consul_service_port";
/// Datacenter (a group label).
pub const DATACENTER_LABEL: &str = "__meta_consul_dc";
/// Namespace (Consul Enterprise).
pub const NAMESPACE_LABEL: &str = "__meta_consul_namespace";
/// Admin partition (Consul Enterprise).
pub const PARTITION_LABEL: &str = "__meta_consul_partition";
/// Prefix of the node tagged address labels (`lan`, `wan`, ...).
pub const TAGGED_ADDRESS_PREFIX: &str = "__meta_consul_tagged_address_";
/// Service instance ID.
pub const SERVICE_ID_LABEL: &str = "__meta_consul_service_id";

// ---------------------------------------------------------------------------
// Self-monitoring

/// Counters of the Consul discoveries, for `/metrics`. Share one value
/// between all `consul_sd_configs` (Prometheus registers one set of metrics
/// per discovery mechanism):
///
/// * `prometheus_sd_consul_rpc_failures_total` = [`ConsulStats::rpc_failures`]
/// * `prometheus_sd_consul_rpc_duration_seconds{endpoint="catalog",call="services"}`
///   = [`ConsulStats::services_rpc`]
/// * `prometheus_sd_consul_rpc_duration_seconds{endpoint="catalog",call="service"}`
///   = [`ConsulStats::service_rpc`] (Prometheus labels the health call this way too)
///
/// The duration metric is a summary with quantiles 0.5, 0.9 and 0.99.
#[derive(Debug, Default)]
pub struct ConsulStats {
    rpc_failures: AtomicU64,
    services_rpc: RpcDurations,
    service_rpc: RpcDurations,
}

impl ConsulStats {
    /// Fresh counters.
    pub fn new() -> Self {
        Self::default()
    }

    /// Failed Consul calls (agent, catalog and health), including responses
    /// that were not 200 or could not be decoded.
    pub fn rpc_failures(&self) -> u64 {
        self.rpc_failures.load(Ordering::Relaxed)
    }

    /// Durations of the catalog calls (`/v1/catalog/services`).
    pub fn services_rpc(&self) -> &RpcDurations {
        &self.services_rpc
    }

    /// Durations of the per-service calls (`/v1/health/service/<name>`).
    pub fn service_rpc(&self) -> &RpcDurations {
        &self.service_rpc
    }

    fn failed(&self) {
        self.rpc_failures.fetch_add(1, Ordering::Relaxed);
    }
}

/// Durations of one kind of Consul call: count, sum, and quantiles over the
/// last 10 minutes (the data of a Prometheus summary).
#[derive(Debug, Default)]
pub struct RpcDurations {
    count: AtomicU64,
    sum_nanos: AtomicU64,
    recent: Mutex<VecDeque<(Instant, f64)>>,
}

impl RpcDurations {
    /// Records one call.
    pub fn observe(&self, d: Duration) {
        self.count.fetch_add(1, Ordering::Relaxed);
        let nanos = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        self.sum_nanos.fetch_add(nanos, Ordering::Relaxed);
        let now = Instant::now();
        let mut recent = self.recent.lock();
        prune(&mut recent, now);
        if recent.len() >= QUANTILE_SAMPLES {
            recent.pop_front();
        }
        recent.push_back((now, d.as_secs_f64()));
    }

    /// Calls observed so far (`_count`).
    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    /// Total seconds (`_sum`).
    pub fn sum_seconds(&self) -> f64 {
        self.sum_nanos.load(Ordering::Relaxed) as f64 / 1e9
    }

    /// The `q` quantile (0..=1) of the calls of the last 10 minutes; NaN
    /// when there were none, as a Prometheus summary reports it.
    pub fn quantile(&self, q: f64) -> f64 {
        let mut values: Vec<f64> = {
            let mut recent = self.recent.lock();
            prune(&mut recent, Instant::now());
            recent.iter().map(|&(_, v)| v).collect()
        };
        if values.is_empty() {
            return f64::NAN;
        }
        values.sort_by(f64::total_cmp);
        let n = values.len();
        let rank = ((q.clamp(0.0, 1.0) * n as f64).ceil() as usize).clamp(1, n);
        values[rank - 1]
    }
}

fn prune(recent: &mut VecDeque<(Instant, f64)>, now: Instant) {
    while let Some(&(t, _)) = recent.front() {
        if now.duration_since(t) > QUANTILE_WINDOW {
            recent.pop_front();
        } else {
            break;
        }
    }
}

// ---------------------------------------------------------------------------
// Consul JSON

/// One entry of `GET /v1/health/service/<name>`: an instance with its node
/// and the checks of both. Only the fields discovery reads are decoded;
/// `null` decodes as empty, as in Go.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct ServiceEntry {
    /// The node the instance runs on.
    #[serde(rename = "Node", deserialize_with = "nullable")]
    pub node: Node,
    /// The service instance.
    #[serde(rename = "Service", deserialize_with = "nullable")]
    pub service: Service,
    /// Node and service checks.
    #[serde(rename = "Checks", deserialize_with = "nullable")]
    pub checks: Vec<Check>,
}

/// A Consul node (`Node` of a health entry).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct Node {
    /// Node name.
    #[serde(rename = "Node", deserialize_with = "nullable")]
    pub node: String,
    /// Node address.
    #[serde(rename = "Address", deserialize_with = "nullable")]
    pub address: String,
    /// Datacenter of the node.
    #[serde(rename = "Datacenter", deserialize_with = "nullable")]
    pub datacenter: String,
    /// Tagged addresses (`lan`, `lan_ipv4`, `wan`, ...).
    #[serde(rename = "TaggedAddresses", deserialize_with = "string_map")]
    pub tagged_addresses: BTreeMap<String, String>,
    /// Node metadata.
    #[serde(rename = "Meta", deserialize_with = "string_map")]
    pub meta: BTreeMap<String, String>,
}

/// A service instance (`Service` of a health entry).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct Service {
    /// Instance ID.
    #[serde(rename = "ID", deserialize_with = "nullable")]
    pub id: String,
    /// Service name.
    #[serde(rename = "Service", deserialize_with = "nullable")]
    pub service: String,
    /// Tags.
    #[serde(rename = "Tags", deserialize_with = "nullable")]
    pub tags: Vec<String>,
    /// Service address; empty means the node address.
    #[serde(rename = "Address", deserialize_with = "nullable")]
    pub address: String,
    /// Port (Consul omits it when 0).
    #[serde(rename = "Port", deserialize_with = "nullable")]
    pub port: i64,
    /// Service metadata.
    #[serde(rename = "Meta", deserialize_with = "string_map")]
    pub meta: BTreeMap<String, String>,
    /// Namespace (Consul Enterprise).
    #[serde(rename = "Namespace", deserialize_with = "nullable")]
    pub namespace: String,
    /// Admin partition (Consul Enterprise).
    #[serde(rename = "Partition", deserialize_with = "nullable")]
    pub partition: String,
}

/// A health check of a health entry.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct Check {
    /// Check ID (`serfHealth`, `service:<id>`, `_node_maintenance`, ...).
    #[serde(rename = "CheckID", deserialize_with = "nullable")]
    pub check_id: String,
    /// `passing`, `warning` or `critical`.
    #[serde(rename = "Status", deserialize_with = "nullable")]
    pub status: String,
}

fn nullable<'de, D: Deserializer<'de>, T: Deserialize<'de> + Default>(d: D) -> Result<T, D::Error> {
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

fn string_map<'de, D: Deserializer<'de>>(d: D) -> Result<BTreeMap<String, String>, D::Error> {
    let m = Option::<BTreeMap<String, Option<String>>>::deserialize(d)?.unwrap_or_default();
    Ok(m.into_iter()
        .map(|(k, v)| (k, v.unwrap_or_default()))
        .collect())
}

/// Decodes the body of `GET /v1/health/service/<name>` (`null` = no entries).
pub fn parse_service_entries(body: &[u8]) -> Result<Vec<ServiceEntry>, serde_json::Error> {
    Ok(serde_json::from_slice::<Option<Vec<ServiceEntry>>>(body)?.unwrap_or_default())
}

/// Decodes the body of `GET /v1/catalog/services`: service name → tags.
pub fn parse_catalog_services(
    body: &[u8],
) -> Result<BTreeMap<String, Vec<String>>, serde_json::Error> {
    let m = serde_json::from_slice::<Option<BTreeMap<String, Option<Vec<String>>>>>(body)?
        .unwrap_or_default();
    Ok(m.into_iter()
        .map(|(k, v)| (k, v.unwrap_or_default()))
        .collect())
}

// ---------------------------------------------------------------------------
// Pure parts: selection, labels

/// Whether a catalog service is watched: its name is in `services` (or
/// `services` is empty) and its tags include every entry of `tags`.
/// Names are compared exactly, as Prometheus does (VictoriaMetrics ignores
/// case).
pub fn should_watch(
    name: &str,
    service_tags: &[String],
    services: &[String],
    tags: &[String],
) -> bool {
    (services.is_empty() || services.iter().any(|s| s == name))
        && tags.iter().all(|t| service_tags.contains(t))
}

/// Consul's `HealthChecks.AggregatedStatus`: `maintenance` if a maintenance
/// check is present, else the worst of `critical`, `warning`, `passing`
/// (`passing` when there are no checks); empty when a check has any other
/// status.
pub fn aggregated_status(checks: &[Check]) -> &'static str {
    let (mut warning, mut critical, mut maintenance) = (false, false, false);
    for c in checks {
        if c.check_id == "_node_maintenance" || c.check_id.starts_with("_service_maintenance:") {
            maintenance = true;
            continue;
        }
        match c.status.as_str() {
            "passing" => {}
            "warning" => warning = true,
            "critical" => critical = true,
            _ => return "",
        }
    }
    if maintenance {
        "maintenance"
    } else if critical {
        "critical"
    } else if warning {
        "warning"
    } else {
        "passing"
    }
}

/// Prometheus' `strutil.SanitizeLabelName`: every character outside
/// `[a-zA-Z0-9_]` becomes `_` (one per character, not per byte).
pub fn sanitize_label_name(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// Go's `net.JoinHostPort`: brackets around hosts that contain a colon.
pub fn join_host_port(host: &str, port: i64) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// The target group of one watched service, built from its health entries
/// as Prometheus does:
///
/// * group labels: `__meta_consul_service` (= `service`, the watched name)
///   and `__meta_consul_dc` (= `datacenter`, configured or the agent's);
/// * per instance: `__address__` (`<Service.Address>:<Service.Port>`, or the
///   node address when the service address is empty),
///   `__meta_consul_address`, `__meta_consul_node`,
///   `__meta_consul_namespace`, `__meta_consul_partition`,
///   `__meta_consul_tags` (`<sep>tag1<sep>tag2<sep>`, `<sep><sep>` without
///   tags), `__meta_consul_service_address`, `__meta_consul_service_port`,
///   `__meta_consul_service_id`, `__meta_consul_health`,
///   `__meta_consul_metadata_<key>` (node meta),
///   `__meta_consul_service_metadata_<key>` and
///   `__meta_consul_tagged_address_<key>` (node tagged addresses), keys
///   sanitised with [`sanitize_label_name`].
///
/// Labels with an empty value are omitted (see the module docs). Targets
/// keep Consul's order.
pub fn service_group(
    service: &str,
    datacenter: &str,
    tag_separator: &str,
    entries: &[ServiceEntry],
) -> TargetGroup {
    let mut labels = LabelSet::new();
    put(&mut labels, SERVICE_LABEL, service.to_string());
    put(&mut labels, DATACENTER_LABEL, datacenter.to_string());
    let targets = entries
        .iter()
        .map(|e| entry_labels(e, tag_separator))
        .collect();
    TargetGroup {
        source: service.to_string(),
        targets,
        labels,
    }
}

fn entry_labels(e: &ServiceEntry, sep: &str) -> LabelSet {
    let (node, svc) = (&e.node, &e.service);
    let host = if svc.address.is_empty() {
        &node.address
    } else {
        &svc.address
    };
    let mut tags = String::from(sep);
    tags.push_str(&svc.tags.join(sep));
    tags.push_str(sep);

    let mut l = LabelSet::new();
    put(&mut l, ADDRESS_LABEL, join_host_port(host, svc.port));
    put(&mut l, NODE_ADDRESS_LABEL, node.address.clone());
    put(&mut l, NODE_LABEL, node.node.clone());
    put(&mut l, NAMESPACE_LABEL, svc.namespace.clone());
    put(&mut l, PARTITION_LABEL, svc.partition.clone());
    put(&mut l, TAGS_LABEL, tags);
    put(&mut l, SERVICE_ADDRESS_LABEL, svc.address.clone());
    put(&mut l, SERVICE_PORT_LABEL, svc.port.to_string());
    put(&mut l, SERVICE_ID_LABEL, svc.id.clone());
    put(
        &mut l,
        HEALTH_LABEL,
        aggregated_status(&e.checks).to_string(),
    );
    for (prefix, map) in [
        (NODE_META_PREFIX, &node.meta),
        (SERVICE_META_PREFIX, &svc.meta),
        (TAGGED_ADDRESS_PREFIX, &node.tagged_addresses),
    ] {
        for (k, v) in map {
            let name = format!("{prefix}{}", sanitize_label_name(k));
            if v.is_empty() {
                // An empty value still replaces one set by a colliding key.
                l.remove(&name);
            } else {
                l.insert(name, v.clone());
            }
        }
    }
    l
}

fn put(l: &mut LabelSet, name: &str, value: String) {
    if !value.is_empty() {
        l.insert(name.to_string(), value);
    }
}

/// The index to send with the next blocking query after a response carrying
/// `returned` (`None`: no `X-Consul-Index` header), or `None` when the
/// response brings nothing new (same index: the wait expired).
///
/// Follows Consul's implementation notes: an index below 1 becomes 1, an
/// index lower than the last one resets to 0 (the next call returns at once).
pub fn next_index(last: u64, returned: Option<u64>) -> Option<u64> {
    let Some(r) = returned else {
        return Some(0);
    };
    let next = if r < 1 {
        1
    } else if r < last {
        0
    } else {
        r
    };
    (next != last).then_some(next)
}

// ---------------------------------------------------------------------------
// HTTP client

/// Errors of one Consul call.
#[derive(Debug, thiserror::Error)]
enum CallError {
    #[error("{}", error_chain(.0))]
    Http(#[from] reqwest::Error),
    #[error("unexpected response code: {status} ({body})")]
    Status { status: u16, body: String },
    #[error("decode response: {0}")]
    Decode(#[from] serde_json::Error),
    #[error("{0}")]
    Credentials(String),
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(src) = cur {
        let _ = write!(s, ": {src}");
        cur = src.source();
    }
    s
}

/// How requests authenticate (besides `X-Consul-Token`). Files are read on
/// every request, as Prometheus does, so rotated secrets are picked up.
#[derive(Debug, Clone)]
enum Credentials {
    None,
    Basic {
        username: String,
        username_file: String,
        password: String,
        password_file: String,
    },
    Header {
        kind: String,
        credentials: String,
        credentials_file: String,
    },
}

fn read_secret_file(path: &str) -> Result<String, CallError> {
    std::fs::read_to_string(path)
        .map(|s| s.trim().to_string())
        .map_err(|e| CallError::Credentials(format!("read {path}: {e}")))
}

impl Credentials {
    fn header(&self) -> Result<Option<String>, CallError> {
        use base64::Engine as _;
        match self {
            Credentials::None => Ok(None),
            Credentials::Basic {
                username,
                username_file,
                password,
                password_file,
            } => {
                let user = if username_file.is_empty() {
                    username.clone()
                } else {
                    read_secret_file(username_file)?
                };
                let pass = if password_file.is_empty() {
                    password.clone()
                } else {
                    read_secret_file(password_file)?
                };
                let raw = format!("{user}:{pass}");
                Ok(Some(format!(
                    "Basic {}",
                    base64::engine::general_purpose::STANDARD.encode(raw)
                )))
            }
            Credentials::Header {
                kind,
                credentials,
                credentials_file,
            } => {
                let c = if credentials_file.is_empty() {
                    credentials.clone()
                } else {
                    read_secret_file(credentials_file)?
                };
                Ok(Some(format!("{kind} {c}")))
            }
        }
    }
}

/// Builds the HTTP client of a Consul discovery from the common HTTP client
/// options: TLS (CA, client certificate, `insecure_skip_verify`, versions),
/// proxies and redirects. `server_name` is not supported (reqwest cannot
/// override the verified name) and is ignored with a warning.
pub(crate) fn build_http_client(
    h: &HttpClientConfig,
    timeout: Duration,
) -> Result<reqwest::Client, String> {
    use reqwest::tls::Version;

    let mut b = reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(Duration::from_secs(30))
        .pool_idle_timeout(2 * WATCH_TIMEOUT)
        .user_agent(concat!("sonde/", env!("CARGO_PKG_VERSION")));
    if !h.follow_redirects {
        b = b.redirect(reqwest::redirect::Policy::none());
    }

    let tls = &h.tls_config;
    let read = |what: &str, path: &str| {
        std::fs::read(path).map_err(|e| format!("unable to read {what} {path}: {e}"))
    };
    let ca = if !tls.ca.is_empty() {
        Some(tls.ca.as_bytes().to_vec())
    } else if !tls.ca_file.is_empty() {
        Some(read("CA cert", &tls.ca_file)?)
    } else {
        None
    };
    if let Some(pem) = ca {
        let certs = reqwest::Certificate::from_pem_bundle(&pem)
            .map_err(|e| format!("unable to use specified CA cert: {e}"))?;
        if certs.is_empty() {
            return Err("unable to use specified CA cert: no certificate found".to_string());
        }
        // Like Go's RootCAs: the configured CAs replace the system ones.
        b = b.tls_built_in_root_certs(false);
        for c in certs {
            b = b.add_root_certificate(c);
        }
    }
    let cert = if !tls.cert.is_empty() {
        Some(tls.cert.as_bytes().to_vec())
    } else if !tls.cert_file.is_empty() {
        Some(read("client cert file", &tls.cert_file)?)
    } else {
        None
    };
    let key = if !tls.key.is_empty() {
        Some(tls.key.expose().as_bytes().to_vec())
    } else if !tls.key_file.is_empty() {
        Some(read("client key file", &tls.key_file)?)
    } else {
        None
    };
    if let (Some(mut pem), Some(key)) = (cert, key) {
        pem.push(b'\n');
        pem.extend_from_slice(&key);
        let id = reqwest::Identity::from_pem(&pem)
            .map_err(|e| format!("unable to use specified client cert and key: {e}"))?;
        b = b.identity(id);
    }
    if tls.insecure_skip_verify {
        b = b.danger_accept_invalid_certs(true);
    }
    let version = |v: crate::config::TlsVersion| match v {
        crate::config::TlsVersion::Tls10 => Version::TLS_1_0,
        crate::config::TlsVersion::Tls11 => Version::TLS_1_1,
        crate::config::TlsVersion::Tls12 => Version::TLS_1_2,
        crate::config::TlsVersion::Tls13 => Version::TLS_1_3,
    };
    if let Some(v) = tls.min_version {
        b = b.min_tls_version(version(v));
    }
    if let Some(v) = tls.max_version {
        b = b.max_tls_version(version(v));
    }
    if !tls.server_name.is_empty() {
        tracing::warn!(
            server_name = %tls.server_name,
            "consul sd: tls_config.server_name is not supported and is ignored"
        );
    }

    if let Some(url) = h.proxy_url.as_deref().filter(|u| !u.is_empty()) {
        let mut p = reqwest::Proxy::all(url).map_err(|e| format!("invalid proxy_url: {e}"))?;
        if let Some(np) = h.no_proxy.as_deref() {
            p = p.no_proxy(reqwest::NoProxy::from_string(np));
        }
        b = b.no_proxy().proxy(p);
    } else if !h.proxy_from_environment {
        b = b.no_proxy();
    }
    b.build().map_err(|e| error_chain(&e))
}

/// A Consul API client with the options of one `consul_sd_configs` entry.
#[derive(Debug)]
struct ConsulClient {
    http: reqwest::Client,
    /// `scheme://host[:port][/prefix]`, without a trailing path.
    base: String,
    token: String,
    credentials: Credentials,
    datacenter: String,
    namespace: String,
    partition: String,
    allow_stale: bool,
    node_meta: Vec<(String, String)>,
    tags: Vec<String>,
    filter: String,
    health_filter: String,
    watch_timeout: Duration,
}

/// A decoded response with its `X-Consul-Index`.
struct Indexed<T> {
    value: T,
    index: Option<u64>,
}

/// Splits `server` the way the Consul Go client does: an `http://` or
/// `https://` prefix sets the scheme (`http://` never downgrades a
/// configured `https`), and a path after the host replaces `path_prefix`.
fn base_url(server: &str, scheme: &str, path_prefix: &str) -> Result<String, String> {
    let mut scheme = scheme.to_string();
    let mut address = server.to_string();
    let mut prefix = path_prefix.to_string();
    if let Some((proto, rest)) = server.split_once("://") {
        match proto {
            "http" => {}
            "https" => scheme = "https".to_string(),
            "unix" => return Err("unix socket addresses are not supported".to_string()),
            other => return Err(format!("unknown protocol scheme: {other}")),
        }
        address = rest.to_string();
        if let Some((host, path)) = rest.split_once('/') {
            address = host.to_string();
            prefix = format!("/{path}");
        }
    }
    if !prefix.is_empty() && !prefix.starts_with('/') {
        prefix.insert(0, '/');
    }
    Ok(format!("{scheme}://{address}{}", escape_path(&prefix)))
}

/// Go's `url.PathEscape` flavour used for URL paths (`encodePath`).
fn escape_path(p: &str) -> String {
    let mut out = String::with_capacity(p.len());
    for b in p.bytes() {
        let keep = b.is_ascii_alphanumeric()
            || matches!(
                b,
                b'-' | b'_'
                    | b'.'
                    | b'~'
                    | b'$'
                    | b'&'
                    | b'+'
                    | b','
                    | b'/'
                    | b':'
                    | b';'
                    | b'='
                    | b'@'
            );
        if keep {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// Go's `url.QueryEscape`.
fn escape_query(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else if b == b' ' {
            out.push('+');
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// Go's `durToMsec`: whole milliseconds, at least 1 for a positive wait.
fn wait_param(d: Duration) -> String {
    let ms = d.as_millis();
    let ms = if ms == 0 && !d.is_zero() { 1 } else { ms };
    format!("{ms}ms")
}

impl ConsulClient {
    fn new(cfg: &ConsulSdConfig, timing: Timing) -> Result<Self, String> {
        let h = cfg.http_client();
        let http = build_http_client(&h, timing.watch_timeout + REQUEST_SLACK)?;
        let credentials = if let Some(ba) = &h.basic_auth {
            Credentials::Basic {
                username: ba.username.clone(),
                username_file: ba.username_file.clone(),
                password: ba.password.expose().to_string(),
                password_file: ba.password_file.clone(),
            }
        } else if !cfg.username.is_empty() || !cfg.password.is_empty() {
            Credentials::Basic {
                username: cfg.username.clone(),
                username_file: String::new(),
                password: cfg.password.expose().to_string(),
                password_file: String::new(),
            }
        } else if let Some(a) = &h.authorization {
            Credentials::Header {
                kind: if a.auth_type.is_empty() {
                    "Bearer".to_string()
                } else {
                    a.auth_type.clone()
                },
                credentials: a.credentials.expose().to_string(),
                credentials_file: a.credentials_file.clone(),
            }
        } else {
            Credentials::None
        };
        Ok(ConsulClient {
            http,
            base: base_url(&cfg.server, &cfg.scheme, &cfg.path_prefix)?,
            token: cfg.token.expose().to_string(),
            credentials,
            datacenter: cfg.datacenter.clone(),
            namespace: cfg.namespace.clone(),
            partition: cfg.partition.clone(),
            allow_stale: cfg.allow_stale,
            node_meta: cfg
                .node_meta
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            tags: cfg.tags.clone(),
            filter: cfg.filter.clone(),
            health_filter: cfg.health_filter.clone(),
            watch_timeout: timing.watch_timeout,
        })
    }

    /// Parameters every request carries (the Go client's `newRequest`).
    fn base_params(&self) -> Vec<(&'static str, String)> {
        let mut p = Vec::new();
        if !self.datacenter.is_empty() {
            p.push(("dc", self.datacenter.clone()));
        }
        if !self.namespace.is_empty() {
            p.push(("ns", self.namespace.clone()));
        }
        if !self.partition.is_empty() {
            p.push(("partition", self.partition.clone()));
        }
        p
    }

    /// Parameters of a blocking read (the Go client's `setQueryOptions`).
    fn query_params(&self, index: u64, filter: &str) -> Vec<(&'static str, String)> {
        let mut p = self.base_params();
        if self.allow_stale {
            p.push(("stale", String::new()));
        }
        if index != 0 {
            p.push(("index", index.to_string()));
        }
        p.push(("wait", wait_param(self.watch_timeout)));
        if !filter.is_empty() {
            p.push(("filter", filter.to_string()));
        }
        for (k, v) in &self.node_meta {
            p.push(("node-meta", format!("{k}:{v}")));
        }
        p
    }

    fn url(&self, path: &str, mut params: Vec<(&'static str, String)>) -> String {
        // Go's url.Values.Encode: keys sorted, values of one key in order.
        params.sort_by(|a, b| a.0.cmp(b.0));
        let mut url = format!("{}{}", self.base, escape_path(path));
        for (i, (k, v)) in params.iter().enumerate() {
            url.push(if i == 0 { '?' } else { '&' });
            url.push_str(&escape_query(k));
            url.push('=');
            url.push_str(&escape_query(v));
        }
        url
    }

    async fn get(&self, url: String) -> Result<(bytes::Bytes, Option<u64>), CallError> {
        let mut req = self.http.get(url);
        if !self.token.is_empty() {
            req = req.header("X-Consul-Token", &self.token);
        }
        if let Some(auth) = self.credentials.header()? {
            req = req.header(reqwest::header::AUTHORIZATION, auth);
        }
        let resp = req.send().await?;
        let status = resp.status();
        let index = resp
            .headers()
            .get("X-Consul-Index")
            .and_then(|v| v.to_str().ok())
            .and_then(|s| s.trim().parse::<u64>().ok());
        let body = resp.bytes().await?;
        if status != reqwest::StatusCode::OK {
            return Err(CallError::Status {
                status: status.as_u16(),
                body: String::from_utf8_lossy(&body).trim().to_string(),
            });
        }
        Ok((body, index))
    }

    /// `Config.Datacenter` of `GET /v1/agent/self`. The outer error is a
    /// failed call, the inner one a missing or non-string datacenter.
    async fn agent_datacenter(&self) -> Result<Result<String, String>, CallError> {
        let (body, _) = self
            .get(self.url("/v1/agent/self", self.base_params()))
            .await?;
        let v: serde_json::Value = serde_json::from_slice(&body)?;
        let dc = &v["Config"]["Datacenter"];
        Ok(match dc.as_str() {
            Some(s) => Ok(s.to_string()),
            None => Err(format!("invalid value '{dc}' for Config.Datacenter")),
        })
    }

    async fn catalog_services(
        &self,
        index: u64,
    ) -> Result<Indexed<BTreeMap<String, Vec<String>>>, CallError> {
        let url = self.url(
            "/v1/catalog/services",
            self.query_params(index, &self.filter),
        );
        let (body, index) = self.get(url).await?;
        Ok(Indexed {
            value: parse_catalog_services(&body)?,
            index,
        })
    }

    async fn health_service(
        &self,
        name: &str,
        index: u64,
    ) -> Result<Indexed<Vec<ServiceEntry>>, CallError> {
        let mut params = self.query_params(index, &self.health_filter);
        for t in &self.tags {
            params.push(("tag", t.clone()));
        }
        let url = self.url(&format!("/v1/health/service/{name}"), params);
        let (body, index) = self.get(url).await?;
        Ok(Indexed {
            value: parse_service_entries(&body)?,
            index,
        })
    }
}

// ---------------------------------------------------------------------------
// The discovery loop

/// Timing of a discovery; [`Timing::default`] is Prometheus' (2 m watches,
/// 15 s after errors). Tests shorten it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    /// `wait` of the blocking queries.
    pub watch_timeout: Duration,
    /// Pause after a failed call.
    pub retry_interval: Duration,
}

impl Default for Timing {
    fn default() -> Self {
        Timing {
            watch_timeout: WATCH_TIMEOUT,
            retry_interval: RETRY_INTERVAL,
        }
    }
}

/// Runs the Consul discovery of `cfg` until every receiver of `tx` is
/// dropped, publishing the full list of target groups (see the module docs)
/// whenever it changes. Failures are logged, counted in `stats` and retried;
/// a client that cannot be built (unreadable CA file, bad proxy URL) is
/// logged once and the task idles until the receivers are gone.
pub async fn run(
    cfg: ConsulSdConfig,
    tx: watch::Sender<Vec<TargetGroup>>,
    stats: Arc<ConsulStats>,
) {
    run_with(cfg, tx, stats, Timing::default()).await;
}

/// [`run`] with explicit [`Timing`].
pub async fn run_with(
    cfg: ConsulSdConfig,
    tx: watch::Sender<Vec<TargetGroup>>,
    stats: Arc<ConsulStats>,
    timing: Timing,
) {
    tokio::select! {
        _ = tx.closed() => {}
        _ = discover(&cfg, &tx, stats, timing) => {}
    }
}

/// Aborts its task when dropped, so that dropping the discovery stops every
/// watcher (and cancels its in-flight request).
struct TaskGuard(JoinHandle<()>);

impl Drop for TaskGuard {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// What watchers tell the discovery loop.
enum Update {
    /// A new catalog index: every service name with its tags.
    Catalog(BTreeMap<String, Vec<String>>),
    /// A new group from the watcher of generation `generation`.
    Group { generation: u64, group: TargetGroup },
}

/// What every watcher needs.
#[derive(Clone)]
struct WatchContext {
    client: Arc<ConsulClient>,
    stats: Arc<ConsulStats>,
    datacenter: Arc<str>,
    tag_separator: Arc<str>,
    refresh: Duration,
    timing: Timing,
    updates: mpsc::UnboundedSender<Update>,
}

/// The ticker between successive calls of one watch: Go's `time.Ticker`
/// (first tick one period after the start; missed ticks collapse into one).
struct Throttle(Option<tokio::time::Interval>);

impl Throttle {
    fn new(period: Duration) -> Self {
        if period.is_zero() {
            return Throttle(None);
        }
        let mut i = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
        i.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        Throttle(Some(i))
    }

    async fn tick(&mut self) {
        if let Some(i) = &mut self.0 {
            i.tick().await;
        }
    }
}

async fn discover(
    cfg: &ConsulSdConfig,
    tx: &watch::Sender<Vec<TargetGroup>>,
    stats: Arc<ConsulStats>,
    timing: Timing,
) {
    let client = match ConsulClient::new(cfg, timing) {
        Ok(c) => Arc::new(c),
        Err(e) => {
            tracing::error!(server = %cfg.server, error = %e, "consul sd: cannot create client");
            return std::future::pending().await;
        }
    };

    let datacenter = if cfg.datacenter.is_empty() {
        agent_datacenter(&client, &stats, timing).await
    } else {
        cfg.datacenter.clone()
    };

    let (updates, mut rx) = mpsc::unbounded_channel();
    let ctx = WatchContext {
        client,
        stats,
        datacenter: datacenter.into(),
        tag_separator: cfg.tag_separator.as_str().into(),
        refresh: cfg.refresh_interval.as_std(),
        timing,
        updates,
    };

    let mut state = State::default();
    let _catalog = if cfg.services.is_empty() || !cfg.tags.is_empty() || !cfg.filter.is_empty() {
        Some(TaskGuard(tokio::spawn(watch_catalog(ctx.clone()))))
    } else {
        for name in &cfg.services {
            state.start(&ctx, name);
        }
        None
    };

    let mut published = false;
    while let Some(update) = rx.recv().await {
        let force = match update {
            Update::Catalog(services) => {
                for (name, tags) in &services {
                    if should_watch(name, tags, &cfg.services, &cfg.tags) {
                        state.start(&ctx, name);
                    }
                }
                let gone: Vec<String> = state
                    .watchers
                    .keys()
                    .filter(|n| !services.contains_key(*n))
                    .cloned()
                    .collect();
                for name in gone {
                    state.stop(&name);
                }
                !published
            }
            Update::Group { generation, group } => {
                if state
                    .watchers
                    .get(&group.source)
                    .is_some_and(|w| w.generation == generation)
                {
                    state.groups.insert(group.source.clone(), group);
                }
                false
            }
        };
        let groups: Vec<TargetGroup> = state.groups.values().cloned().collect();
        tx.send_if_modified(|cur| {
            if force || *cur != groups {
                *cur = groups;
                true
            } else {
                false
            }
        });
        published = true;
    }
}

/// Loops until the agent tells its datacenter (Prometheus' `initialize`).
async fn agent_datacenter(client: &ConsulClient, stats: &ConsulStats, timing: Timing) -> String {
    loop {
        match client.agent_datacenter().await {
            Ok(Ok(dc)) => return dc,
            Ok(Err(e)) => {
                tracing::error!(error = %e, "consul sd: error retrieving datacenter name");
            }
            Err(e) => {
                tracing::error!(error = %e, "consul sd: error retrieving datacenter name");
                stats.failed();
            }
        }
        tokio::time::sleep(timing.retry_interval).await;
    }
}

/// Watchers and groups of one discovery.
#[derive(Default)]
struct State {
    watchers: HashMap<String, Watcher>,
    groups: BTreeMap<String, TargetGroup>,
    next_generation: u64,
}

struct Watcher {
    generation: u64,
    _task: TaskGuard,
}

impl State {
    /// Starts watching `name` unless it is watched already.
    fn start(&mut self, ctx: &WatchContext, name: &str) {
        if self.watchers.contains_key(name) {
            return;
        }
        self.next_generation += 1;
        let generation = self.next_generation;
        let task = tokio::spawn(watch_service(ctx.clone(), name.to_string(), generation));
        self.watchers.insert(
            name.to_string(),
            Watcher {
                generation,
                _task: TaskGuard(task),
            },
        );
    }

    /// Stops watching `name` and empties its group (Prometheus sends
    /// `{Source: name}`).
    fn stop(&mut self, name: &str) {
        self.watchers.remove(name);
        self.groups.insert(
            name.to_string(),
            TargetGroup {
                source: name.to_string(),
                ..TargetGroup::default()
            },
        );
    }
}

async fn watch_catalog(ctx: WatchContext) {
    let mut throttle = Throttle::new(ctx.refresh);
    let mut index = 0;
    loop {
        tracing::debug!(tags = ?ctx.client.tags, filter = %ctx.client.filter, "consul sd: watching services");
        let t0 = Instant::now();
        let res = ctx.client.catalog_services(index).await;
        ctx.stats.services_rpc.observe(t0.elapsed());
        match res {
            Err(e) => {
                tracing::error!(error = %e, "consul sd: error refreshing service list");
                ctx.stats.failed();
                tokio::time::sleep(ctx.timing.retry_interval).await;
            }
            Ok(r) => {
                if let Some(next) = next_index(index, r.index) {
                    index = next;
                    if ctx.updates.send(Update::Catalog(r.value)).is_err() {
                        return;
                    }
                }
            }
        }
        throttle.tick().await;
    }
}

async fn watch_service(ctx: WatchContext, name: String, generation: u64) {
    let mut throttle = Throttle::new(ctx.refresh);
    let mut index = 0;
    loop {
        tracing::debug!(service = %name, "consul sd: watching service");
        let t0 = Instant::now();
        let res = ctx.client.health_service(&name, index).await;
        ctx.stats.service_rpc.observe(t0.elapsed());
        match res {
            Err(e) => {
                tracing::error!(service = %name, error = %e, "consul sd: error refreshing service");
                ctx.stats.failed();
                tokio::time::sleep(ctx.timing.retry_interval).await;
            }
            Ok(r) => {
                if let Some(next) = next_index(index, r.index) {
                    index = next;
                    let group = service_group(&name, &ctx.datacenter, &ctx.tag_separator, &r.value);
                    if ctx
                        .updates
                        .send(Update::Group { generation, group })
                        .is_err()
                    {
                        return;
                    }
                }
            }
        }
        throttle.tick().await;
    }
}

// ---------------------------------------------------------------------------

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> LabelSet {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    const HEALTH_JSON: &str = r#"[
      {
        "Node": {
          "ID": "40e4a748-2192-161a-0510-9bf59fe950b5",
          "Node": "foobar",
          "Address": "10.1.10.12",
          "Datacenter": "dc1",
          "TaggedAddresses": {"lan": "10.1.10.12", "wan": "10.1.10.12"},
          "Meta": {"instance_type": "t2.medium", "rack-id": "r1"},
          "CreateIndex": 5, "ModifyIndex": 6
        },
        "Service": {
          "ID": "redis",
          "Service": "redis",
          "Tags": ["primary", "v1"],
          "Address": "",
          "TaggedAddresses": {"lan": {"address": "10.1.10.12", "port": 8000}},
          "Meta": {"redis_version": "4.0", "empty": ""},
          "Port": 8000,
          "Weights": {"Passing": 10, "Warning": 1},
          "EnableTagOverride": false,
          "Proxy": {"Mode": "", "MeshGateway": {}, "Expose": {}},
          "Connect": {},
          "PeerName": "",
          "CreateIndex": 7, "ModifyIndex": 7
        },
        "Checks": [
          {"Node": "foobar", "CheckID": "service:redis", "Name": "Service 'redis' check",
           "Status": "passing", "Notes": "", "Output": "", "ServiceID": "redis",
           "ServiceName": "redis", "ServiceTags": ["primary"], "Type": "ttl",
           "ExposedPort": 0, "Definition": {}, "CreateIndex": 7, "ModifyIndex": 7},
          {"Node": "foobar", "CheckID": "serfHealth", "Name": "Serf Health Status",
           "Status": "warning", "ServiceID": "", "ServiceName": "", "ServiceTags": []}
        ]
      },
      {
        "Node": {"Node": "v6", "Address": "2001:db8::1", "Datacenter": "dc1",
                 "TaggedAddresses": null, "Meta": null},
        "Service": {"ID": "redis-2", "Service": "redis", "Tags": null,
                    "Address": "fd00::2", "Meta": null, "Port": 6379,
                    "Namespace": "team-a", "Partition": "part-1"},
        "Checks": null
      }
    ]"#;

    #[test]
    fn builds_prometheus_labels_from_health_entries() {
        let entries = parse_service_entries(HEALTH_JSON.as_bytes()).unwrap();
        let g = service_group("redis", "dc1", ",", &entries);
        assert_eq!(g.source, "redis");
        assert_eq!(
            g.labels,
            labels(&[
                ("__meta_consul_dc", "dc1"),
                ("__meta_consul_service", "redis")
            ])
        );
        assert_eq!(g.targets.len(), 2);
        assert_eq!(
            g.targets[0],
            labels(&[
                ("__address__", "10.1.10.12:8000"),
                ("__meta_consul_address", "10.1.10.12"),
                ("__meta_consul_health", "warning"),
                ("__meta_consul_metadata_instance_type", "t2.medium"),
                ("__meta_consul_metadata_rack_id", "r1"),
                ("__meta_consul_node", "foobar"),
                ("__meta_consul_service_id", "redis"),
                ("__meta_consul_service_metadata_redis_version", "4.0"),
                ("__meta_consul_service_port", "8000"),
                ("__meta_consul_tagged_address_lan", "10.1.10.12"),
                ("__meta_consul_tagged_address_wan", "10.1.10.12"),
                ("__meta_consul_tags", ",primary,v1,"),
            ])
        );
        assert_eq!(
            g.targets[1],
            labels(&[
                ("__address__", "[fd00::2]:6379"),
                ("__meta_consul_address", "2001:db8::1"),
                ("__meta_consul_health", "passing"),
                ("__meta_consul_namespace", "team-a"),
                ("__meta_consul_node", "v6"),
                ("__meta_consul_partition", "part-1"),
                ("__meta_consul_service_address", "fd00::2"),
                ("__meta_consul_service_id", "redis-2"),
                ("__meta_consul_service_port", "6379"),
                ("__meta_consul_tags", ",,"),
            ])
        );
    }

    #[test]
    fn tag_separator_wraps_the_joined_tags() {
        let e = ServiceEntry {
            service: Service {
                tags: vec!["a".into(), "b".into()],
                port: 1,
                ..Service::default()
            },
            ..ServiceEntry::default()
        };
        let g = service_group("s", "dc", "|", &[e]);
        assert_eq!(g.targets[0]["__meta_consul_tags"], "|a|b|");
        assert_eq!(g.targets[0]["__address__"], ":1");
    }

    #[test]
    fn aggregated_status_matches_consul() {
        let c = |id: &str, st: &str| Check {
            check_id: id.into(),
            status: st.into(),
        };
        assert_eq!(aggregated_status(&[]), "passing");
        assert_eq!(aggregated_status(&[c("a", "passing")]), "passing");
        assert_eq!(
            aggregated_status(&[c("a", "passing"), c("b", "warning")]),
            "warning"
        );
        assert_eq!(
            aggregated_status(&[c("a", "critical"), c("b", "warning")]),
            "critical"
        );
        assert_eq!(
            aggregated_status(&[c("a", "critical"), c("_node_maintenance", "critical")]),
            "maintenance"
        );
        assert_eq!(
            aggregated_status(&[
                c("_service_maintenance:web-1", "critical"),
                c("a", "passing")
            ]),
            "maintenance"
        );
        assert_eq!(
            aggregated_status(&[c("a", "passing"), c("b", "unknown")]),
            ""
        );
        // Maintenance checks are skipped before the status is looked at.
        assert_eq!(
            aggregated_status(&[c("_node_maintenance", "bogus")]),
            "maintenance"
        );
    }

    #[test]
    fn sanitizes_label_names_per_character() {
        assert_eq!(sanitize_label_name("rack-id.v2"), "rack_id_v2");
        assert_eq!(sanitize_label_name("héllo"), "h_llo");
        assert_eq!(sanitize_label_name("9lives"), "9lives");
        assert_eq!(sanitize_label_name("a b/c"), "a_b_c");
    }

    #[test]
    fn joins_ipv6_hosts_in_brackets() {
        assert_eq!(join_host_port("10.0.0.1", 80), "10.0.0.1:80");
        assert_eq!(join_host_port("::1", 80), "[::1]:80");
        assert_eq!(join_host_port("host", 0), "host:0");
    }

    #[test]
    fn selects_services_by_name_and_all_tags() {
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert!(should_watch("web", &s(&["a"]), &[], &[]));
        assert!(should_watch("web", &s(&["a"]), &s(&["web", "db"]), &[]));
        assert!(!should_watch("Web", &s(&["a"]), &s(&["web"]), &[]));
        assert!(should_watch(
            "web",
            &s(&["a", "b", "c"]),
            &[],
            &s(&["a", "c"])
        ));
        assert!(!should_watch("web", &s(&["a"]), &[], &s(&["a", "c"])));
        assert!(!should_watch("web", &[], &s(&["web"]), &s(&["a"])));
    }

    #[test]
    fn index_handling_follows_consul_advice() {
        // First answer.
        assert_eq!(next_index(0, Some(12)), Some(12));
        // Wait expired.
        assert_eq!(next_index(12, Some(12)), None);
        // News.
        assert_eq!(next_index(12, Some(15)), Some(15));
        // Backwards: reset to 0.
        assert_eq!(next_index(15, Some(3)), Some(0));
        assert_eq!(next_index(0, Some(3)), Some(3));
        // Zero: raised to 1.
        assert_eq!(next_index(0, Some(0)), Some(1));
        assert_eq!(next_index(1, Some(0)), None);
        // No header: news, and the next call does not block.
        assert_eq!(next_index(7, None), Some(0));
    }

    #[test]
    fn null_bodies_decode_as_empty() {
        assert!(parse_service_entries(b"null").unwrap().is_empty());
        assert!(parse_service_entries(b"[]").unwrap().is_empty());
        let c = parse_catalog_services(br#"{"consul": [], "web": ["a", "b"], "x": null}"#).unwrap();
        assert_eq!(c["web"], vec!["a".to_string(), "b".to_string()]);
        assert!(c["x"].is_empty());
        assert!(parse_catalog_services(b"null").unwrap().is_empty());
        assert!(parse_service_entries(b"{").is_err());
    }

    #[test]
    fn metadata_null_values_and_collisions() {
        let body = br#"[{"Node": {"Node": "n", "Address": "1.2.3.4",
            "Meta": {"a-b": "dash", "a_b": "underscore", "z": null}},
            "Service": {"ID": "s", "Port": 1}}]"#;
        let e = parse_service_entries(body).unwrap();
        let g = service_group("s", "dc1", ",", &e);
        // Keys are visited in sorted order, so the last one wins deterministically.
        assert_eq!(g.targets[0]["__meta_consul_metadata_a_b"], "underscore");
        assert!(!g.targets[0].contains_key("__meta_consul_metadata_z"));
    }

    #[test]
    fn base_url_splits_scheme_and_prefix_like_the_go_client() {
        assert_eq!(
            base_url("localhost:8500", "http", "").unwrap(),
            "http://localhost:8500"
        );
        assert_eq!(
            base_url("consul:8500", "https", "consul").unwrap(),
            "https://consul:8500/consul"
        );
        assert_eq!(
            base_url("https://consul:8501/proxy/x", "http", "/ignored").unwrap(),
            "https://consul:8501/proxy/x"
        );
        assert_eq!(
            base_url("http://consul:8500", "https", "").unwrap(),
            "https://consul:8500"
        );
        assert!(base_url("ftp://consul", "http", "").is_err());
    }

    #[test]
    fn escapes_like_go() {
        assert_eq!(
            escape_path("/v1/health/service/my svc?x"),
            "/v1/health/service/my%20svc%3Fx"
        );
        assert_eq!(escape_path("/a:b@c=d+e"), "/a:b@c=d+e");
        assert_eq!(
            escape_query("Service.Tags contains \"a\""),
            "Service.Tags+contains+%22a%22"
        );
        assert_eq!(escape_query("k:v~*"), "k%3Av~%2A");
        assert_eq!(wait_param(WATCH_TIMEOUT), "120000ms");
        assert_eq!(wait_param(Duration::from_micros(10)), "1ms");
    }

    fn test_config(yaml: &str) -> ConsulSdConfig {
        serde_saphyr::from_str(yaml).unwrap()
    }

    #[test]
    fn request_urls_carry_the_query_options() {
        let cfg = test_config(
            "server: 'localhost:8500'\ndatacenter: dc2\nnamespace: ns1\ntags: [a, 'b c']\n\
             node_meta: {rack: r1, az: z}\nfilter: 'Service.Port == 80'\nhealth_filter: 'Checks.Status == \"passing\"'\n",
        );
        let c = ConsulClient::new(&cfg, Timing::default()).unwrap();
        assert_eq!(
            c.url("/v1/catalog/services", c.query_params(42, &c.filter)),
            "http://localhost:8500/v1/catalog/services?dc=dc2&filter=Service.Port+%3D%3D+80\
             &index=42&node-meta=az%3Az&node-meta=rack%3Ar1&ns=ns1&stale=&wait=120000ms"
        );
        let mut p = c.query_params(0, &c.health_filter);
        for t in &c.tags {
            p.push(("tag", t.clone()));
        }
        assert_eq!(
            c.url("/v1/health/service/web", p),
            "http://localhost:8500/v1/health/service/web?dc=dc2\
             &filter=Checks.Status+%3D%3D+%22passing%22&node-meta=az%3Az&node-meta=rack%3Ar1\
             &ns=ns1&stale=&tag=a&tag=b+c&wait=120000ms"
        );
        let cfg = test_config("allow_stale: false\n");
        let c = ConsulClient::new(&cfg, Timing::default()).unwrap();
        assert_eq!(
            c.url("/v1/catalog/services", c.query_params(0, "")),
            "http://localhost:8500/v1/catalog/services?wait=120000ms"
        );
    }

    #[test]
    fn credentials_headers() {
        use base64::Engine as _;
        let dir = tempfile::tempdir().unwrap();
        let pw = dir.path().join("pw");
        std::fs::write(&pw, "s3cret\n").unwrap();
        let cfg = test_config(&format!(
            "basic_auth: {{username: u, password_file: '{}'}}\n",
            pw.display()
        ));
        let c = ConsulClient::new(&cfg, Timing::default()).unwrap();
        let want = base64::engine::general_purpose::STANDARD.encode("u:s3cret");
        assert_eq!(
            c.credentials.header().unwrap(),
            Some(format!("Basic {want}"))
        );

        let cfg = test_config("username: old\npassword: pw\n");
        let c = ConsulClient::new(&cfg, Timing::default()).unwrap();
        let want = base64::engine::general_purpose::STANDARD.encode("old:pw");
        assert_eq!(
            c.credentials.header().unwrap(),
            Some(format!("Basic {want}"))
        );

        let cfg = test_config("authorization: {credentials: tok}\n");
        let c = ConsulClient::new(&cfg, Timing::default()).unwrap();
        assert_eq!(
            c.credentials.header().unwrap(),
            Some("Bearer tok".to_string())
        );

        let cfg = test_config("token: abc\n");
        let c = ConsulClient::new(&cfg, Timing::default()).unwrap();
        assert_eq!(c.token, "abc");
        assert!(c.credentials.header().unwrap().is_none());
    }

    #[test]
    fn rpc_durations_summary() {
        let d = RpcDurations::default();
        assert!(d.quantile(0.5).is_nan());
        for ms in [10u64, 20, 30, 40] {
            d.observe(Duration::from_millis(ms));
        }
        assert_eq!(d.count(), 4);
        assert!((d.sum_seconds() - 0.1).abs() < 1e-9);
        assert_eq!(d.quantile(0.5), 0.02);
        assert_eq!(d.quantile(0.99), 0.04);
    }
}
