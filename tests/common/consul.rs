//! A Consul HTTP API double for tests: a loopback HTTP server with an
//! in-memory catalog, serving what Prometheus' and VictoriaMetrics' Consul
//! discoveries call, with real blocking queries.
//!
//! Endpoints (GET only):
//!
//! * `/v1/agent/self` — `{"Config": {"Datacenter": ..., ...}, "Member": ..., "Meta": ...}`;
//! * `/v1/catalog/services` — `{"name": ["tag", ...]}` (tags of all
//!   instances, deduplicated and sorted); `node-meta` filters;
//! * `/v1/catalog/service/<name>` — flat `ServiceNode` entries (`ServiceID`,
//!   `ServiceName`, `ServiceTags`, `ServiceAddress`, `ServicePort`, ...);
//!   `tag` and `node-meta` filters;
//! * `/v1/health/service/<name>` — `[{"Node": {...}, "Service": {...}, "Checks": [...]}]`;
//!   `tag` (repeatable, all required), `node-meta`, `passing` filters;
//! * `/v1/catalog/datacenters`, `/v1/status/leader`.
//!
//! Service names and tags match case-insensitively, as in Consul. JSON field
//! names and order follow Consul 1.15 (OSS; `Namespace`/`Partition` appear
//! only when [`ConsulOptions`] sets them, as Enterprise does). `filter`,
//! `ns`, `partition`, `near` and `cached` are accepted and ignored (see
//! [`ConsulDouble::requests`] to assert what a client sent). `dc` must be
//! the double's datacenter (else 500 `No path to datacenter`).
//!
//! Blocking queries: every reply carries `X-Consul-Index`. The catalog list
//! has its own index (bumped when instances or nodes are registered or
//! removed); each service name has its own (bumped when one of its
//! instances, their checks or their nodes change; an unknown name reports the
//! catalog index). With `index=N` (N > 0) a request waits until its index
//! exceeds N or until `wait` (Go duration, default 5m, capped at 10m; no
//! jitter) runs out, then answers with the current state and index.
//!
//! Simplifications: new instances start `passing` (a real TTL check starts
//! `critical`); automatically created nodes have agent-like tagged addresses
//! (`lan`, `wan`, and `lan_ipv4`/`wan_ipv4` or `_ipv6`) and empty metadata;
//! the `consul` service of the server itself is listed only with
//! [`ConsulOptions::register_consul_service`].
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::response::Response;
use axum::Router;
use parking_lot::Mutex;
use serde::Serialize;

/// Longest blocking wait Consul accepts (`max_query_time`).
const MAX_WAIT: Duration = Duration::from_secs(600);
/// Wait used when `index` is given without `wait` (`default_query_time`).
const DEFAULT_WAIT: Duration = Duration::from_secs(300);

/// Settings of a [`ConsulDouble`].
#[derive(Debug, Clone)]
pub struct ConsulOptions {
    /// Datacenter reported by `/v1/agent/self` and in every node (`dc1`).
    pub datacenter: String,
    /// Node name of the agent itself (`consul-server`).
    pub node_name: String,
    /// Version reported by `/v1/agent/self` (`1.15.4`).
    pub version: String,
    /// Register the agent's node and its `consul` service (port 8300), as a
    /// real server does. Off by default to keep catalogs small.
    pub register_consul_service: bool,
    /// Enterprise: `Namespace` of every service and check.
    pub namespace: Option<String>,
    /// Enterprise: `Partition` of every node, service and check.
    pub partition: Option<String>,
}

impl Default for ConsulOptions {
    fn default() -> Self {
        ConsulOptions {
            datacenter: "dc1".to_string(),
            node_name: "consul-server".to_string(),
            version: "1.15.4".to_string(),
            register_consul_service: false,
            namespace: None,
            partition: None,
        }
    }
}

/// One request received by the double.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedRequest {
    /// HTTP method.
    pub method: String,
    /// Path as sent (still percent-encoded).
    pub path: String,
    /// Raw query string (without `?`).
    pub raw_query: String,
    /// Decoded query parameters in order (`stale` without `=` gives `("stale", "")`).
    pub query: Vec<(String, String)>,
    /// Headers, names in lower case.
    pub headers: Vec<(String, String)>,
}

impl RecordedRequest {
    /// The first value of query parameter `name`.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// All values of query parameter `name`, in order.
    pub fn params(&self, name: &str) -> Vec<&str> {
        self.query
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// Whether query parameter `name` is present (with or without a value).
    pub fn has_param(&self, name: &str) -> bool {
        self.query.iter().any(|(k, _)| k == name)
    }

    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.as_str())
    }
}

#[derive(Debug, Clone)]
struct NodeRec {
    id: String,
    name: String,
    address: String,
    tagged_addresses: BTreeMap<String, String>,
    meta: BTreeMap<String, String>,
    serf_status: String,
    maintenance: bool,
    create_index: u64,
    modify_index: u64,
}

#[derive(Debug, Clone)]
struct ServiceRec {
    node: String,
    id: String,
    name: String,
    address: String,
    port: u16,
    tags: Vec<String>,
    meta: BTreeMap<String, String>,
    status: String,
    maintenance: bool,
    create_index: u64,
    modify_index: u64,
    check_modify_index: u64,
}

/// The in-memory catalog.
#[derive(Debug)]
struct Catalog {
    opts: ConsulOptions,
    index: u64,
    catalog_index: u64,
    service_index: BTreeMap<String, u64>,
    nodes: BTreeMap<String, NodeRec>,
    services: Vec<ServiceRec>,
    failure: Option<(u16, String)>,
    token: Option<String>,
    next_node_id: u64,
}

impl Catalog {
    fn bump(&mut self) -> u64 {
        self.index += 1;
        self.index
    }

    fn touch_service(&mut self, name: &str, idx: u64) {
        self.service_index.insert(name.to_lowercase(), idx);
    }

    fn touch_node_services(&mut self, node: &str, idx: u64) {
        let names: Vec<String> = self
            .services
            .iter()
            .filter(|s| s.node == node)
            .map(|s| s.name.clone())
            .collect();
        for n in names {
            self.touch_service(&n, idx);
        }
    }

    fn service_index_of(&self, name: &str) -> u64 {
        self.service_index
            .get(&name.to_lowercase())
            .copied()
            .unwrap_or(self.catalog_index)
    }

    fn ensure_node(&mut self, name: &str, address: &str, idx: u64) {
        match self.nodes.get_mut(name) {
            Some(n) => {
                if n.address != address {
                    n.address = address.to_string();
                    n.tagged_addresses = agent_tagged_addresses(address);
                    n.modify_index = idx;
                    self.touch_node_services(name, idx);
                }
            }
            None => {
                self.next_node_id += 1;
                let id = format!(
                    "{:08x}-0000-4000-8000-{:012x}",
                    self.next_node_id, self.next_node_id
                );
                self.nodes.insert(
                    name.to_string(),
                    NodeRec {
                        id,
                        name: name.to_string(),
                        address: address.to_string(),
                        tagged_addresses: agent_tagged_addresses(address),
                        meta: BTreeMap::new(),
                        serf_status: "passing".to_string(),
                        maintenance: false,
                        create_index: idx,
                        modify_index: idx,
                    },
                );
            }
        }
    }
}

fn agent_tagged_addresses(address: &str) -> BTreeMap<String, String> {
    let family = if address.contains(':') {
        "ipv6"
    } else {
        "ipv4"
    };
    let mut m = BTreeMap::new();
    for k in [
        "lan".to_string(),
        "wan".to_string(),
        format!("lan_{family}"),
        format!("wan_{family}"),
    ] {
        m.insert(k, address.to_string());
    }
    m
}

struct Shared {
    catalog: Mutex<Catalog>,
    /// Carries the global index; every change sends, waking blocked queries.
    changed: tokio::sync::watch::Sender<u64>,
    requests: Mutex<Vec<RecordedRequest>>,
    blocked: AtomicUsize,
}

impl Shared {
    fn mutate<R>(&self, f: impl FnOnce(&mut Catalog) -> R) -> R {
        let (r, idx) = {
            let mut c = self.catalog.lock();
            let r = f(&mut c);
            (r, c.index)
        };
        self.changed.send_replace(idx);
        r
    }
}

/// A running Consul double on `127.0.0.1:<random port>`. Dropping it stops
/// the server thread (pending blocking queries are cut off).
pub struct ConsulDouble {
    addr: SocketAddr,
    shared: Arc<Shared>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl ConsulDouble {
    /// Starts a double with [`ConsulOptions::default`] (datacenter `dc1`,
    /// empty catalog).
    pub fn start() -> Self {
        Self::start_with(ConsulOptions::default())
    }

    /// Starts a double with `opts`.
    pub fn start_with(opts: ConsulOptions) -> Self {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind consul double");
        listener
            .set_nonblocking(true)
            .expect("nonblocking listener");
        let addr = listener.local_addr().expect("local addr");
        let register_consul = opts.register_consul_service;
        let agent_node = opts.node_name.clone();
        let mut catalog = Catalog {
            opts,
            index: 1,
            catalog_index: 1,
            service_index: BTreeMap::new(),
            nodes: BTreeMap::new(),
            services: Vec::new(),
            failure: None,
            token: None,
            next_node_id: 0,
        };
        if register_consul {
            catalog.ensure_node(&agent_node, "127.0.0.1", 1);
            catalog.services.push(ServiceRec {
                node: agent_node,
                id: "consul".to_string(),
                name: "consul".to_string(),
                address: String::new(),
                port: 8300,
                tags: Vec::new(),
                meta: BTreeMap::new(),
                status: "passing".to_string(),
                maintenance: false,
                create_index: 1,
                modify_index: 1,
                check_modify_index: 1,
            });
            catalog.touch_service("consul", 1);
        }
        let (changed, _) = tokio::sync::watch::channel(1);
        let shared = Arc::new(Shared {
            catalog: Mutex::new(catalog),
            changed,
            requests: Mutex::new(Vec::new()),
            blocked: AtomicUsize::new(0),
        });
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let state = shared.clone();
        let thread = std::thread::Builder::new()
            .name("consul-double".to_string())
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("consul double runtime");
                rt.block_on(async move {
                    let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
                    let app = Router::new().fallback(handle).with_state(state);
                    tokio::select! {
                        r = axum::serve(listener, app) => r.expect("consul double serve"),
                        _ = stop_rx => {}
                    }
                });
                rt.shutdown_timeout(Duration::from_secs(1));
            })
            .expect("spawn consul double");
        ConsulDouble {
            addr,
            shared,
            stop: Some(stop_tx),
            thread: Some(thread),
        }
    }

    /// The listening address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The datacenter name.
    pub fn datacenter(&self) -> String {
        self.shared.catalog.lock().opts.datacenter.clone()
    }

    /// The current global index (the highest index any endpoint reports).
    pub fn index(&self) -> u64 {
        self.shared.catalog.lock().index
    }

    /// Registers (or replaces) node `node` with `address`, tagged addresses
    /// and metadata. Services on it are updated.
    pub fn register_node(
        &self,
        node: &str,
        address: &str,
        tagged_addresses: &[(&str, &str)],
        meta: &[(&str, &str)],
    ) {
        self.shared.mutate(|c| {
            let idx = c.bump();
            c.ensure_node(node, address, idx);
            let n = c.nodes.get_mut(node).expect("node just ensured");
            n.address = address.to_string();
            n.tagged_addresses = to_map(tagged_addresses);
            n.meta = to_map(meta);
            n.modify_index = idx;
            c.touch_node_services(node, idx);
            c.catalog_index = idx;
        });
    }

    /// Registers (or updates) service instance `service_id` of
    /// `service_name` on node `node` (created with `address` if new; its
    /// address is updated otherwise). `service_address` may be empty (the
    /// node address is used). The instance starts `passing`.
    #[allow(clippy::too_many_arguments)]
    pub fn register(
        &self,
        node: &str,
        address: &str,
        service_id: &str,
        service_name: &str,
        service_address: &str,
        port: u16,
        tags: &[&str],
        meta: &[(&str, &str)],
    ) {
        self.shared.mutate(|c| {
            let idx = c.bump();
            c.ensure_node(node, address, idx);
            let rec = ServiceRec {
                node: node.to_string(),
                id: service_id.to_string(),
                name: service_name.to_string(),
                address: service_address.to_string(),
                port,
                tags: tags.iter().map(|t| t.to_string()).collect(),
                meta: to_map(meta),
                status: "passing".to_string(),
                maintenance: false,
                create_index: idx,
                modify_index: idx,
                check_modify_index: idx,
            };
            match c
                .services
                .iter_mut()
                .find(|s| s.node == node && s.id == service_id)
            {
                Some(s) => {
                    let old_name = std::mem::replace(&mut s.name, rec.name.clone());
                    s.address = rec.address;
                    s.port = rec.port;
                    s.tags = rec.tags;
                    s.meta = rec.meta;
                    s.modify_index = idx;
                    c.touch_service(&old_name, idx);
                }
                None => c.services.push(rec),
            }
            c.touch_service(service_name, idx);
            c.catalog_index = idx;
        });
    }

    /// Removes every instance with ID `service_id`; false if there was none.
    pub fn deregister(&self, service_id: &str) -> bool {
        self.shared.mutate(|c| {
            let gone: Vec<String> = c
                .services
                .iter()
                .filter(|s| s.id == service_id)
                .map(|s| s.name.clone())
                .collect();
            if gone.is_empty() {
                return false;
            }
            let idx = c.bump();
            c.services.retain(|s| s.id != service_id);
            for n in gone {
                c.touch_service(&n, idx);
            }
            c.catalog_index = idx;
            true
        })
    }

    /// Removes node `node` and its services; false if unknown.
    pub fn deregister_node(&self, node: &str) -> bool {
        self.shared.mutate(|c| {
            if !c.nodes.contains_key(node) {
                return false;
            }
            let idx = c.bump();
            c.touch_node_services(node, idx);
            c.services.retain(|s| s.node != node);
            c.nodes.remove(node);
            c.catalog_index = idx;
            true
        })
    }

    /// Sets the status (`passing`, `warning`, `critical`, or anything else)
    /// of the service check of every instance with ID `service_id`.
    pub fn set_health(&self, service_id: &str, status: &str) {
        self.shared.mutate(|c| {
            let idx = c.bump();
            let mut names = Vec::new();
            for s in c.services.iter_mut().filter(|s| s.id == service_id) {
                s.status = status.to_string();
                s.check_modify_index = idx;
                names.push(s.name.clone());
            }
            for n in names {
                c.touch_service(&n, idx);
            }
        });
    }

    /// Puts instances `service_id` in (or out of) maintenance: a critical
    /// `_service_maintenance:<id>` check.
    pub fn set_maintenance(&self, service_id: &str, on: bool) {
        self.shared.mutate(|c| {
            let idx = c.bump();
            let mut names = Vec::new();
            for s in c.services.iter_mut().filter(|s| s.id == service_id) {
                s.maintenance = on;
                s.check_modify_index = idx;
                names.push(s.name.clone());
            }
            for n in names {
                c.touch_service(&n, idx);
            }
        });
    }

    /// Sets the status of node `node`'s `serfHealth` check.
    pub fn set_node_health(&self, node: &str, status: &str) {
        self.shared.mutate(|c| {
            let idx = c.bump();
            if let Some(n) = c.nodes.get_mut(node) {
                n.serf_status = status.to_string();
            }
            c.touch_node_services(node, idx);
        });
    }

    /// Puts node `node` in (or out of) maintenance (`_node_maintenance`).
    pub fn set_node_maintenance(&self, node: &str, on: bool) {
        self.shared.mutate(|c| {
            let idx = c.bump();
            if let Some(n) = c.nodes.get_mut(node) {
                n.maintenance = on;
            }
            c.touch_node_services(node, idx);
        });
    }

    /// Forces every index (global, catalog, per service) to `index`, e.g.
    /// lower than before to mimic a restored snapshot. Blocked queries
    /// whose index is now above the current one keep waiting until their
    /// `wait` ends, then get the lower index.
    pub fn set_index(&self, index: u64) {
        self.shared.mutate(|c| {
            c.index = index;
            c.catalog_index = index;
            for v in c.service_index.values_mut() {
                *v = index;
            }
        });
    }

    /// Makes every endpoint answer `status` with `body` (`None` restores
    /// normal service). Blocked queries wake up and get the failure too.
    pub fn set_failure(&self, failure: Option<(u16, &str)>) {
        self.shared
            .mutate(|c| c.failure = failure.map(|(s, b)| (s, b.to_string())));
    }

    /// Requires ACL token `token` (`X-Consul-Token`, `?token=` or
    /// `Authorization: Bearer`); others get 403 `ACL not found`.
    pub fn require_token(&self, token: Option<&str>) {
        self.shared.catalog.lock().token = token.map(str::to_string);
    }

    /// Every request received so far, in order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.shared.requests.lock().clone()
    }

    /// The received requests whose path starts with `prefix`.
    pub fn requests_to(&self, prefix: &str) -> Vec<RecordedRequest> {
        self.shared
            .requests
            .lock()
            .iter()
            .filter(|r| r.path.starts_with(prefix))
            .cloned()
            .collect()
    }

    /// Forgets the recorded requests.
    pub fn clear_requests(&self) {
        self.shared.requests.lock().clear();
    }

    /// Requests currently parked in a blocking wait.
    pub fn blocked_queries(&self) -> usize {
        self.shared.blocked.load(Ordering::SeqCst)
    }

    /// Waits (polling) until at least `n` requests are parked in a blocking
    /// wait; false on timeout.
    pub fn wait_for_blocked(&self, n: usize, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if self.blocked_queries() >= n {
                return true;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        self.blocked_queries() >= n
    }
}

impl Drop for ConsulDouble {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn to_map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

// ---------------------------------------------------------------------------
// JSON shapes (field order as Consul's Go structs)

#[derive(Serialize)]
struct Empty {}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct Weights {
    passing: u32,
    warning: u32,
}

const WEIGHTS: Weights = Weights {
    passing: 1,
    warning: 1,
};

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct Proxy {
    mode: &'static str,
    mesh_gateway: Empty,
    expose: Empty,
}

fn proxy() -> Proxy {
    Proxy {
        mode: "",
        mesh_gateway: Empty {},
        expose: Empty {},
    }
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct ServiceAddress {
    address: String,
    port: u16,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct NodeJson<'a> {
    #[serde(rename = "ID")]
    id: &'a str,
    node: &'a str,
    address: &'a str,
    datacenter: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    partition: Option<&'a str>,
    tagged_addresses: &'a BTreeMap<String, String>,
    meta: &'a BTreeMap<String, String>,
    create_index: u64,
    modify_index: u64,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct NodeServiceJson<'a> {
    #[serde(rename = "ID")]
    id: &'a str,
    service: &'a str,
    tags: &'a [String],
    address: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    tagged_addresses: Option<BTreeMap<String, ServiceAddress>>,
    meta: &'a BTreeMap<String, String>,
    #[serde(skip_serializing_if = "is_zero")]
    port: u16,
    weights: Weights,
    enable_tag_override: bool,
    proxy: Proxy,
    connect: Empty,
    #[serde(skip_serializing_if = "Option::is_none")]
    partition: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    namespace: Option<&'a str>,
    peer_name: &'static str,
    create_index: u64,
    modify_index: u64,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct CheckJson<'a> {
    node: &'a str,
    #[serde(rename = "CheckID")]
    check_id: String,
    name: String,
    status: &'a str,
    notes: &'a str,
    output: &'a str,
    #[serde(rename = "ServiceID")]
    service_id: &'a str,
    service_name: &'a str,
    service_tags: &'a [String],
    #[serde(rename = "Type")]
    kind: &'a str,
    interval: &'a str,
    timeout: &'a str,
    exposed_port: u16,
    definition: Empty,
    #[serde(skip_serializing_if = "Option::is_none")]
    partition: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    namespace: Option<&'a str>,
    create_index: u64,
    modify_index: u64,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct HealthEntryJson<'a> {
    node: NodeJson<'a>,
    service: NodeServiceJson<'a>,
    checks: Vec<CheckJson<'a>>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct CatalogServiceJson<'a> {
    #[serde(rename = "ID")]
    id: &'a str,
    node: &'a str,
    address: &'a str,
    datacenter: &'a str,
    tagged_addresses: &'a BTreeMap<String, String>,
    node_meta: &'a BTreeMap<String, String>,
    service_kind: &'static str,
    #[serde(rename = "ServiceID")]
    service_id: &'a str,
    service_name: &'a str,
    service_tags: &'a [String],
    service_address: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    service_tagged_addresses: Option<BTreeMap<String, ServiceAddress>>,
    service_weights: Weights,
    service_meta: &'a BTreeMap<String, String>,
    service_port: u16,
    service_socket_path: &'static str,
    service_enable_tag_override: bool,
    service_proxy: Proxy,
    service_connect: Empty,
    #[serde(skip_serializing_if = "Option::is_none")]
    partition: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    namespace: Option<&'a str>,
    create_index: u64,
    modify_index: u64,
}

fn is_zero(p: &u16) -> bool {
    *p == 0
}

/// What the agent adds for a service registered with an address.
fn service_tagged_addresses(s: &ServiceRec) -> Option<BTreeMap<String, ServiceAddress>> {
    if s.address.is_empty() {
        return None;
    }
    let family = if s.address.contains(':') {
        "ipv6"
    } else {
        "ipv4"
    };
    let mut m = BTreeMap::new();
    for k in [format!("lan_{family}"), format!("wan_{family}")] {
        m.insert(
            k,
            ServiceAddress {
                address: s.address.clone(),
                port: s.port,
            },
        );
    }
    Some(m)
}

fn node_json<'a>(c: &'a Catalog, n: &'a NodeRec) -> NodeJson<'a> {
    NodeJson {
        id: &n.id,
        node: &n.name,
        address: &n.address,
        datacenter: &c.opts.datacenter,
        partition: c.opts.partition.as_deref(),
        tagged_addresses: &n.tagged_addresses,
        meta: &n.meta,
        create_index: n.create_index,
        modify_index: n.modify_index,
    }
}

fn checks_json<'a>(c: &'a Catalog, n: &'a NodeRec, s: &'a ServiceRec) -> Vec<CheckJson<'a>> {
    let check = |check_id: String,
                 name: String,
                 status: &'a str,
                 notes: &'a str,
                 output: &'a str,
                 service: Option<&'a ServiceRec>,
                 kind: &'a str,
                 modify: u64| CheckJson {
        node: &n.name,
        check_id,
        name,
        status,
        notes,
        output,
        service_id: service.map_or("", |s| s.id.as_str()),
        service_name: service.map_or("", |s| s.name.as_str()),
        service_tags: service.map_or(&[], |s| s.tags.as_slice()),
        kind,
        interval: "",
        timeout: "",
        exposed_port: 0,
        definition: Empty {},
        partition: c.opts.partition.as_deref(),
        namespace: service.and(c.opts.namespace.as_deref()),
        create_index: n.create_index.min(modify),
        modify_index: modify,
    };
    let mut v = Vec::new();
    if n.maintenance {
        v.push(check(
            "_node_maintenance".to_string(),
            "Node Maintenance Mode".to_string(),
            "critical",
            "",
            "",
            None,
            "maintenance",
            n.modify_index,
        ));
    }
    v.push(check(
        "serfHealth".to_string(),
        "Serf Health Status".to_string(),
        &n.serf_status,
        "",
        "Agent alive and reachable",
        None,
        "",
        n.modify_index,
    ));
    v.push(check(
        format!("service:{}", s.id),
        format!("Service '{}' check", s.name),
        &s.status,
        "",
        "",
        Some(s),
        "ttl",
        s.check_modify_index,
    ));
    if s.maintenance {
        v.push(check(
            format!("_service_maintenance:{}", s.id),
            "Service Maintenance Mode".to_string(),
            "critical",
            "",
            "",
            Some(s),
            "maintenance",
            s.check_modify_index,
        ));
    }
    v
}

// ---------------------------------------------------------------------------
// HTTP

/// Decoded query parameters.
struct Params(Vec<(String, String)>);

impl Params {
    fn get(&self, k: &str) -> Option<&str> {
        self.0.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str())
    }

    fn all(&self, k: &str) -> Vec<&str> {
        self.0
            .iter()
            .filter(|(n, _)| n == k)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    fn has(&self, k: &str) -> bool {
        self.0.iter().any(|(n, _)| n == k)
    }
}

fn text(status: u16, body: &str) -> Response {
    Response::builder()
        .status(StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR))
        .header(header::CONTENT_TYPE, "text/plain; charset=utf-8")
        .body(Body::from(body.to_string()))
        .expect("response")
}

fn json(value: &impl Serialize, index: Option<u64>, params: &Params) -> Response {
    let mut b = Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "application/json");
    if let Some(i) = index {
        let consistency = if params.has("consistent") {
            "consistent"
        } else if params.has("stale") {
            "stale"
        } else {
            "leader"
        };
        b = b
            .header("X-Consul-Index", i.to_string())
            .header("X-Consul-Knownleader", "true")
            .header("X-Consul-Lastcontact", "0")
            .header("X-Consul-Effective-Consistency", consistency);
    }
    b.body(Body::from(serde_json::to_vec(value).expect("json")))
        .expect("response")
}

fn percent_decode(s: &str) -> String {
    let hex = |b: u8| char::from(b).to_digit(16);
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Go's `time.ParseDuration` (units ns, us, µs, ms, s, m, h; fractions).
fn parse_go_duration(s: &str) -> Option<Duration> {
    if s == "0" {
        return Some(Duration::ZERO);
    }
    let mut rest = s;
    let mut total = 0f64;
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        if num_len == 0 {
            return None;
        }
        let n: f64 = rest[..num_len].parse().ok()?;
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let nanos = match &rest[..unit_len] {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return None,
        };
        rest = &rest[unit_len..];
        total += n * nanos;
    }
    Some(Duration::from_nanos(total as u64))
}

/// Parses `index`/`wait`; `Err` is the message of a 400 answer.
fn blocking_params(p: &Params) -> Result<(u64, Duration), &'static str> {
    let index = match p.get("index") {
        None | Some("") => 0,
        Some(s) => s.parse::<u64>().map_err(|_| "Invalid index")?,
    };
    let wait = match p.get("wait") {
        None | Some("") => DEFAULT_WAIT,
        Some(s) => parse_go_duration(s).ok_or("Invalid wait time")?,
    };
    Ok((index, wait.min(MAX_WAIT)))
}

/// Decrements the blocked-query count when a wait ends or is cancelled.
struct BlockedGuard<'a>(&'a AtomicUsize);

impl Drop for BlockedGuard<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Waits until `index_of(catalog) > min`, a failure is set, or `wait` ends
/// (returns at once when `min` is 0). Then answers the failure, if any.
async fn block(
    shared: &Shared,
    min: u64,
    wait: Duration,
    index_of: impl Fn(&Catalog) -> u64,
) -> Result<(), Response> {
    let failure = |c: &Catalog| c.failure.as_ref().map(|(s, b)| text(*s, b));
    if min > 0 {
        let mut rx = shared.changed.subscribe();
        let deadline = tokio::time::Instant::now() + wait;
        shared.blocked.fetch_add(1, Ordering::SeqCst);
        let _guard = BlockedGuard(&shared.blocked);
        loop {
            {
                let c = shared.catalog.lock();
                if index_of(&c) > min || c.failure.is_some() {
                    break;
                }
            }
            match tokio::time::timeout_at(deadline, rx.changed()).await {
                Ok(Ok(())) => continue,
                _ => break,
            }
        }
    }
    match failure(&shared.catalog.lock()) {
        Some(r) => Err(r),
        None => Ok(()),
    }
}

fn tags_match(have: &[String], want: &[&str]) -> bool {
    want.iter()
        .all(|w| have.iter().any(|h| h.eq_ignore_ascii_case(w)))
}

fn node_meta_match(n: &NodeRec, filters: &[&str]) -> bool {
    filters.iter().all(|f| {
        let (k, v) = f.split_once(':').unwrap_or((f, ""));
        n.meta.get(k).is_some_and(|x| x == v)
    })
}

fn is_passing(n: &NodeRec, s: &ServiceRec) -> bool {
    !n.maintenance && !s.maintenance && n.serf_status == "passing" && s.status == "passing"
}

/// Instances of `name` (case-insensitive) passing the query's filters,
/// ordered by node then ID.
fn instances<'a>(
    c: &'a Catalog,
    name: &str,
    p: &Params,
    health: bool,
) -> Vec<(&'a NodeRec, &'a ServiceRec)> {
    let tags = p.all("tag");
    let node_meta = p.all("node-meta");
    let passing = health && p.get("passing").is_some_and(|v| v != "false" && v != "0");
    let mut v: Vec<_> = c
        .services
        .iter()
        .filter(|s| s.name.eq_ignore_ascii_case(name))
        .filter(|s| tags_match(&s.tags, &tags))
        .filter_map(|s| c.nodes.get(&s.node).map(|n| (n, s)))
        .filter(|(n, _)| node_meta_match(n, &node_meta))
        .filter(|(n, s)| !passing || is_passing(n, s))
        .collect();
    v.sort_by(|a, b| (&a.1.node, &a.1.id).cmp(&(&b.1.node, &b.1.id)));
    v
}

async fn handle(State(shared): State<Arc<Shared>>, req: Request) -> Response {
    let (parts, _body) = req.into_parts();
    let path = parts.uri.path().to_string();
    let raw_query = parts.uri.query().unwrap_or("").to_string();
    let params = Params(
        form_urlencoded::parse(raw_query.as_bytes())
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect(),
    );
    let headers: Vec<(String, String)> = parts
        .headers
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_string(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    shared.requests.lock().push(RecordedRequest {
        method: parts.method.to_string(),
        path: path.clone(),
        raw_query: raw_query.clone(),
        query: params.0.clone(),
        headers,
    });

    if parts.method != Method::GET {
        return text(405, "method not allowed");
    }
    {
        let c = shared.catalog.lock();
        if let Some((status, body)) = &c.failure {
            return text(*status, body);
        }
        if let Some(want) = &c.token {
            let header = |n: &str| {
                parts
                    .headers
                    .get(n)
                    .and_then(|v: &HeaderValue| v.to_str().ok())
            };
            let bearer = header("authorization").and_then(|a| a.strip_prefix("Bearer "));
            let given = header("x-consul-token").or(params.get("token")).or(bearer);
            if given != Some(want.as_str()) {
                return text(403, "ACL not found");
            }
        }
        if let Some(dc) = params.get("dc") {
            if !dc.is_empty() && !dc.eq_ignore_ascii_case(&c.opts.datacenter) {
                return text(500, "No path to datacenter");
            }
        }
    }

    match path.as_str() {
        "/v1/agent/self" => agent_self(&shared, &params),
        "/v1/catalog/datacenters" => {
            let dc = shared.catalog.lock().opts.datacenter.clone();
            json(&[dc], None, &params)
        }
        "/v1/status/leader" => json(&"127.0.0.1:8300", None, &params),
        "/v1/catalog/services" => {
            let (min, wait) = match blocking_params(&params) {
                Ok(x) => x,
                Err(msg) => return text(400, msg),
            };
            if let Err(r) = block(&shared, min, wait, |c| c.catalog_index).await {
                return r;
            }
            let c = shared.catalog.lock();
            let node_meta = params.all("node-meta");
            let mut out: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
            for s in &c.services {
                let Some(n) = c.nodes.get(&s.node) else {
                    continue;
                };
                if !node_meta_match(n, &node_meta) {
                    continue;
                }
                let tags = out.entry(s.name.as_str()).or_default();
                tags.extend(s.tags.iter().map(String::as_str));
            }
            json(&out, Some(c.catalog_index), &params)
        }
        p => {
            if let Some(name) = p.strip_prefix("/v1/health/service/") {
                let name = percent_decode(name);
                let (min, wait) = match blocking_params(&params) {
                    Ok(x) => x,
                    Err(msg) => return text(400, msg),
                };
                if let Err(r) = block(&shared, min, wait, |c| c.service_index_of(&name)).await {
                    return r;
                }
                let c = shared.catalog.lock();
                let entries: Vec<HealthEntryJson> = instances(&c, &name, &params, true)
                    .into_iter()
                    .map(|(n, s)| HealthEntryJson {
                        node: node_json(&c, n),
                        service: NodeServiceJson {
                            id: &s.id,
                            service: &s.name,
                            tags: &s.tags,
                            address: &s.address,
                            tagged_addresses: service_tagged_addresses(s),
                            meta: &s.meta,
                            port: s.port,
                            weights: WEIGHTS,
                            enable_tag_override: false,
                            proxy: proxy(),
                            connect: Empty {},
                            partition: c.opts.partition.as_deref(),
                            namespace: c.opts.namespace.as_deref(),
                            peer_name: "",
                            create_index: s.create_index,
                            modify_index: s.modify_index,
                        },
                        checks: checks_json(&c, n, s),
                    })
                    .collect();
                json(&entries, Some(c.service_index_of(&name)), &params)
            } else if let Some(name) = p.strip_prefix("/v1/catalog/service/") {
                let name = percent_decode(name);
                let (min, wait) = match blocking_params(&params) {
                    Ok(x) => x,
                    Err(msg) => return text(400, msg),
                };
                if let Err(r) = block(&shared, min, wait, |c| c.service_index_of(&name)).await {
                    return r;
                }
                let c = shared.catalog.lock();
                let entries: Vec<CatalogServiceJson> = instances(&c, &name, &params, false)
                    .into_iter()
                    .map(|(n, s)| CatalogServiceJson {
                        id: &n.id,
                        node: &n.name,
                        address: &n.address,
                        datacenter: &c.opts.datacenter,
                        tagged_addresses: &n.tagged_addresses,
                        node_meta: &n.meta,
                        service_kind: "",
                        service_id: &s.id,
                        service_name: &s.name,
                        service_tags: &s.tags,
                        service_address: &s.address,
                        service_tagged_addresses: service_tagged_addresses(s),
                        service_weights: WEIGHTS,
                        service_meta: &s.meta,
                        service_port: s.port,
                        service_socket_path: "",
                        service_enable_tag_override: false,
                        service_proxy: proxy(),
                        service_connect: Empty {},
                        partition: c.opts.partition.as_deref(),
                        namespace: c.opts.namespace.as_deref(),
                        create_index: s.create_index,
                        modify_index: s.modify_index,
                    })
                    .collect();
                json(&entries, Some(c.service_index_of(&name)), &params)
            } else {
                text(404, "404 page not found")
            }
        }
    }
}

fn agent_self(shared: &Shared, params: &Params) -> Response {
    let c = shared.catalog.lock();
    let o = &c.opts;
    let mut config = serde_json::json!({
        "Datacenter": o.datacenter,
        "PrimaryDatacenter": o.datacenter,
        "NodeName": o.node_name,
        "NodeID": "00000000-0000-4000-8000-000000000000",
        "Revision": "double",
        "Server": true,
        "Version": o.version,
        "BuildDate": "2023-01-01T00:00:00Z",
    });
    if let Some(p) = &o.partition {
        config["Partition"] = serde_json::Value::String(p.clone());
    }
    let body = serde_json::json!({
        "Config": config,
        "DebugConfig": {},
        "Coord": {"Vec": [0, 0, 0, 0, 0, 0, 0, 0], "Error": 1.5, "Adjustment": 0, "Height": 0.00001},
        "Member": {
            "Name": o.node_name,
            "Addr": "127.0.0.1",
            "Port": 8301,
            "Tags": {"dc": o.datacenter, "role": "consul", "build": format!("{}:double", o.version)},
            "Status": 1,
            "ProtocolMin": 1, "ProtocolMax": 5, "ProtocolCur": 2,
            "DelegateMin": 2, "DelegateMax": 5, "DelegateCur": 4
        },
        "Stats": {},
        "Meta": {"consul-network-segment": ""},
    });
    json(&body, None, params)
}
