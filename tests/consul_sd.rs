//! The Consul discovery against the Consul double.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "common/consul.rs"]
mod consul;

use std::sync::Arc;
use std::time::{Duration, Instant};

use consul::ConsulDouble;
use sonde::config::ConsulSdConfig;
use sonde::discovery::consul::{run_with, ConsulStats, Timing};
use sonde::discovery::TargetGroup;
use tokio::sync::watch;

const FAST: Timing = Timing {
    watch_timeout: Duration::from_secs(2),
    retry_interval: Duration::from_millis(300),
};

fn config(double: &ConsulDouble, extra: &str) -> ConsulSdConfig {
    let yaml = format!(
        "server: '{}'\nrefresh_interval: 50ms\n{extra}",
        double.addr()
    );
    serde_saphyr::from_str(&yaml).unwrap()
}

struct Running {
    rx: watch::Receiver<Vec<TargetGroup>>,
    stats: Arc<ConsulStats>,
    task: tokio::task::JoinHandle<()>,
}

fn start(cfg: ConsulSdConfig) -> Running {
    let (tx, rx) = watch::channel(Vec::new());
    let stats = Arc::new(ConsulStats::new());
    let task = tokio::spawn(run_with(cfg, tx, stats.clone(), FAST));
    Running { rx, stats, task }
}

impl Running {
    /// Waits until the published groups satisfy `pred`.
    async fn until(
        &mut self,
        what: &str,
        pred: impl Fn(&[TargetGroup]) -> bool,
    ) -> Vec<TargetGroup> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
        loop {
            {
                let cur = self.rx.borrow_and_update();
                if pred(&cur) {
                    return cur.clone();
                }
            }
            if tokio::time::timeout_at(deadline, self.rx.changed())
                .await
                .is_err()
            {
                panic!(
                    "timed out waiting for {what}; have {:#?}",
                    *self.rx.borrow()
                );
            }
        }
    }
}

fn group<'a>(gs: &'a [TargetGroup], source: &str) -> Option<&'a TargetGroup> {
    gs.iter().find(|g| g.source == source)
}

fn ids(g: Option<&TargetGroup>) -> Vec<String> {
    g.map(|g| {
        g.targets
            .iter()
            .map(|t| t["__meta_consul_service_id"].clone())
            .collect()
    })
    .unwrap_or_default()
}

fn labels(pairs: &[(&str, &str)]) -> std::collections::BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discovers_all_services_with_prometheus_labels() {
    let c = ConsulDouble::start();
    c.register_node(
        "node-1",
        "10.0.0.1",
        &[("lan", "10.0.0.1"), ("wan", "1.2.3.4")],
        &[("rack-id", "r1")],
    );
    c.register(
        "node-1",
        "10.0.0.1",
        "web-1",
        "web",
        "",
        8080,
        &["prod", "metrics"],
        &[("version", "1.2")],
    );
    c.register(
        "node-2",
        "10.0.0.2",
        "web-2",
        "web",
        "192.168.0.2",
        9090,
        &[],
        &[],
    );
    c.register("node-2", "10.0.0.2", "db-1", "db", "", 5432, &[], &[]);
    let mut r = start(config(&c, ""));

    let gs = r
        .until("two services", |g| {
            ids(group(g, "web")).len() == 2 && ids(group(g, "db")).len() == 1
        })
        .await;
    assert_eq!(
        gs.iter().map(|g| g.source.as_str()).collect::<Vec<_>>(),
        ["db", "web"]
    );
    let web = group(&gs, "web").unwrap();
    assert_eq!(
        web.labels,
        labels(&[
            ("__meta_consul_dc", "dc1"),
            ("__meta_consul_service", "web")
        ])
    );
    assert_eq!(
        web.targets[0],
        labels(&[
            ("__address__", "10.0.0.1:8080"),
            ("__meta_consul_address", "10.0.0.1"),
            ("__meta_consul_health", "passing"),
            ("__meta_consul_metadata_rack_id", "r1"),
            ("__meta_consul_node", "node-1"),
            ("__meta_consul_service_id", "web-1"),
            ("__meta_consul_service_metadata_version", "1.2"),
            ("__meta_consul_service_port", "8080"),
            ("__meta_consul_tagged_address_lan", "10.0.0.1"),
            ("__meta_consul_tagged_address_wan", "1.2.3.4"),
            ("__meta_consul_tags", ",prod,metrics,"),
        ])
    );
    assert_eq!(web.targets[1]["__address__"], "192.168.0.2:9090");
    assert_eq!(
        web.targets[1]["__meta_consul_service_address"],
        "192.168.0.2"
    );
    assert_eq!(web.targets[1]["__meta_consul_tags"], ",,");
    assert_eq!(
        web.targets[1]["__meta_consul_tagged_address_lan_ipv4"],
        "10.0.0.2"
    );

    // Health changes reach the labels.
    c.set_health("web-2", "critical");
    r.until("critical web-2", |g| {
        group(g, "web").is_some_and(|w| {
            w.targets
                .iter()
                .any(|t| t["__meta_consul_health"] == "critical")
        })
    })
    .await;
    c.set_maintenance("web-2", true);
    r.until("maintenance web-2", |g| {
        group(g, "web").is_some_and(|w| {
            w.targets
                .iter()
                .any(|t| t["__meta_consul_health"] == "maintenance")
        })
    })
    .await;

    // A removed service leaves an empty group; a new one appears.
    assert!(c.deregister("db-1"));
    // (The db watcher may first report no instances; the catalog watch then
    // stops it and leaves Prometheus' `{Source: "db"}` group.)
    let cleared = TargetGroup {
        source: "db".into(),
        ..TargetGroup::default()
    };
    r.until("db cleared", |g| group(g, "db") == Some(&cleared))
        .await;
    c.register("node-3", "10.0.0.3", "cache-1", "cache", "", 6379, &[], &[]);
    r.until("cache", |g| ids(group(g, "cache")) == ["cache-1"])
        .await;
    // And the removed one can come back.
    c.register("node-2", "10.0.0.2", "db-2", "db", "", 5432, &[], &[]);
    r.until("db back", |g| ids(group(g, "db")) == ["db-2"])
        .await;

    // Requests: agent/self once, then blocking queries with the last index.
    assert_eq!(c.requests_to("/v1/agent/self").len(), 1);
    let health = c.requests_to("/v1/health/service/web");
    assert_eq!(health[0].param("index"), None);
    assert!(health
        .iter()
        .skip(1)
        .all(|q| q.param("index").is_some_and(|i| i != "0")));
    assert!(health
        .iter()
        .all(|q| q.param("wait") == Some("2000ms") && q.has_param("stale")));
    assert!(health.iter().all(|q| !q.has_param("dc")));
    assert_eq!(r.stats.rpc_failures(), 0);
    assert!(r.stats.services_rpc().count() >= 1);
    assert!(r.stats.service_rpc().count() >= 3);
    r.task.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn named_services_skip_the_catalog_and_tags_filter() {
    let c = ConsulDouble::start();
    c.register("n1", "10.0.0.1", "web-1", "web", "", 80, &["prod"], &[]);
    c.register("n2", "10.0.0.2", "web-2", "web", "", 80, &["dev"], &[]);
    c.register("n2", "10.0.0.2", "db-1", "db", "", 5432, &["prod"], &[]);

    // services only: no catalog, configured dc sent, both web instances.
    let mut r = start(config(
        &c,
        "datacenter: dc1\nservices: [web]\nallow_stale: false\n",
    ));
    r.until("web", |g| ids(group(g, "web")).len() == 2).await;
    assert!(c.requests_to("/v1/catalog").is_empty());
    assert!(c.requests_to("/v1/agent/self").is_empty());
    let q = &c.requests_to("/v1/health/service/web")[0];
    assert_eq!(q.param("dc"), Some("dc1"));
    assert!(!q.has_param("stale"));
    drop(r);

    // tags: catalog watch; only services with the tag; instances filtered by tag.
    c.clear_requests();
    let mut r = start(config(&c, "tags: [prod]\nnode_meta: {}\ntoken: t0k\n"));
    let gs = r
        .until("prod", |g| {
            ids(group(g, "web")) == ["web-1"] && ids(group(g, "db")) == ["db-1"]
        })
        .await;
    assert_eq!(gs.len(), 2);
    let q = c.requests_to("/v1/health/service/web");
    assert_eq!(q[0].params("tag"), ["prod"]);
    assert_eq!(q[0].header("x-consul-token"), Some("t0k"));
    assert_eq!(
        c.requests_to("/v1/catalog/services")[0].header("x-consul-token"),
        Some("t0k")
    );

    // The service loses the tag: still watched (Prometheus only drops services
    // that leave the catalog), but no instance matches any more.
    c.register("n1", "10.0.0.1", "web-1", "web", "", 80, &["old"], &[]);
    r.until("web emptied", |g| {
        group(g, "web").is_some_and(|w| w.targets.is_empty())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keeps_targets_while_consul_fails_and_recovers() {
    let c = ConsulDouble::start();
    c.register("n1", "10.0.0.1", "web-1", "web", "", 80, &[], &[]);
    let mut r = start(config(&c, ""));
    r.until("web", |g| ids(group(g, "web")) == ["web-1"]).await;

    assert!(c.wait_for_blocked(2, Duration::from_secs(5)));
    // Parked queries wake up with the failure.
    c.set_failure(Some((500, "No cluster leader")));
    let t0 = Instant::now();
    while r.stats.rpc_failures() < 4 && t0.elapsed() < Duration::from_secs(10) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        r.stats.rpc_failures() >= 4,
        "failures: {}",
        r.stats.rpc_failures()
    );
    c.register("n1", "10.0.0.1", "web-2", "web", "", 81, &[], &[]);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        ids(group(&r.rx.borrow(), "web")).len(),
        1,
        "last known targets are kept"
    );

    c.set_failure(None);
    r.until("recovered", |g| ids(group(g, "web")).len() == 2)
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn index_going_backwards_restarts_the_watch() {
    let c = ConsulDouble::start();
    for i in 0..5 {
        c.register(
            "n1",
            "10.0.0.1",
            &format!("web-{i}"),
            "web",
            "",
            80,
            &[],
            &[],
        );
    }
    let mut r = start(config(&c, ""));
    r.until("web", |g| ids(group(g, "web")).len() == 5).await;
    assert!(c.wait_for_blocked(2, Duration::from_secs(5)));
    c.clear_requests();
    c.set_index(2);
    // Parked queries (index > 2) end at their 2 s wait with index 2; the
    // watchers must then reset to 0 and block again on 2.
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_secs(10)
        && !c
            .requests_to("/v1/health/service/web")
            .iter()
            .any(|q| q.param("index") == Some("2"))
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let reqs = c.requests_to("/v1/health/service/web");
    assert!(
        reqs.iter().any(|q| q.param("index").is_none()),
        "a reset query without index: {reqs:#?}"
    );
    assert!(reqs.iter().any(|q| q.param("index") == Some("2")));
    c.register("n1", "10.0.0.1", "web-new", "web", "", 80, &[], &[]);
    r.until("web-new", |g| {
        ids(group(g, "web")).contains(&"web-new".to_string())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refresh_interval_throttles_watches() {
    let c = ConsulDouble::start();
    c.register("n1", "10.0.0.1", "web-1", "web", "", 80, &[], &[]);
    let cfg: ConsulSdConfig = serde_saphyr::from_str(&format!(
        "server: '{}'\nservices: [web]\nrefresh_interval: 1s\n",
        c.addr()
    ))
    .unwrap();
    let mut r = start(cfg);
    r.until("web", |g| ids(group(g, "web")) == ["web-1"]).await;
    // Many changes within ~2.5 s: at most one call per second.
    let t0 = Instant::now();
    let mut n = 0;
    while t0.elapsed() < Duration::from_millis(2500) {
        n += 1;
        c.set_health("web-1", if n % 2 == 0 { "passing" } else { "warning" });
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let calls = c.requests_to("/v1/health/service/web").len();
    assert!((2..=5).contains(&calls), "calls: {calls}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stops_when_the_receiver_is_dropped() {
    let c = ConsulDouble::start();
    c.register("n1", "10.0.0.1", "web-1", "web", "", 80, &[], &[]);
    let mut r = start(config(&c, ""));
    r.until("web", |g| ids(group(g, "web")) == ["web-1"]).await;
    assert!(c.wait_for_blocked(2, Duration::from_secs(5)));
    let Running { rx, task, .. } = r;
    drop(rx);
    tokio::time::timeout(Duration::from_secs(2), task)
        .await
        .expect("run ends")
        .unwrap();
    // The watchers' parked requests were cancelled too.
    let t0 = Instant::now();
    while c.blocked_queries() > 0 && t0.elapsed() < Duration::from_secs(5) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(c.blocked_queries(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waits_for_the_agent_datacenter() {
    let c = ConsulDouble::start();
    c.register("n1", "10.0.0.1", "web-1", "web", "", 80, &[], &[]);
    c.set_failure(Some((500, "agent down")));
    let mut r = start(config(&c, ""));
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(r.stats.rpc_failures() >= 1);
    assert!(c.requests_to("/v1/catalog").is_empty());
    c.set_failure(None);
    let gs = r.until("web", |g| ids(group(g, "web")) == ["web-1"]).await;
    assert_eq!(group(&gs, "web").unwrap().labels["__meta_consul_dc"], "dc1");
}
