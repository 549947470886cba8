//! Tests of the Consul HTTP API double in `tests/common/consul.rs`: the
//! shapes it serves and its blocking queries.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "common/consul.rs"]
mod consul;

use std::time::{Duration, Instant};

use consul::{ConsulDouble, ConsulOptions};
use serde_json::Value;

/// GET `url`; returns (status, X-Consul-Index, JSON body or Null).
fn get(url: &str) -> (u16, Option<u64>, Value) {
    let client = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap();
    let resp = client.get(url).send().unwrap();
    let status = resp.status().as_u16();
    let index = resp
        .headers()
        .get("X-Consul-Index")
        .map(|v| v.to_str().unwrap().parse().unwrap());
    let body = resp.text().unwrap();
    (
        status,
        index,
        serde_json::from_str(&body).unwrap_or(Value::Null),
    )
}

fn web(c: &ConsulDouble) {
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
}

#[test]
fn agent_self_reports_the_datacenter() {
    let c = ConsulDouble::start_with(ConsulOptions {
        datacenter: "east".to_string(),
        ..ConsulOptions::default()
    });
    let (status, index, body) = get(&format!("{}/v1/agent/self", c.url()));
    assert_eq!(status, 200);
    assert_eq!(index, None);
    assert_eq!(body["Config"]["Datacenter"], "east");
    assert_eq!(c.datacenter(), "east");
}

#[test]
fn catalog_and_health_shapes() {
    let c = ConsulDouble::start();
    web(&c);
    c.register(
        "node-2",
        "10.0.0.2",
        "web-2",
        "web",
        "192.168.1.2",
        9090,
        &[],
        &[],
    );
    c.register("node-2", "10.0.0.2", "db-1", "db", "", 5432, &["prod"], &[]);

    let (status, index, body) = get(&format!("{}/v1/catalog/services", c.url()));
    assert_eq!(status, 200);
    assert!(index.unwrap() >= 1);
    assert_eq!(
        body,
        serde_json::json!({"db": ["prod"], "web": ["metrics", "prod"]})
    );

    let (_, _, body) = get(&format!("{}/v1/health/service/web", c.url()));
    let entries = body.as_array().unwrap();
    assert_eq!(entries.len(), 2);
    let e = &entries[0];
    assert_eq!(e["Node"]["Node"], "node-1");
    assert_eq!(e["Node"]["Address"], "10.0.0.1");
    assert_eq!(e["Node"]["Datacenter"], "dc1");
    assert_eq!(e["Node"]["TaggedAddresses"]["lan"], "10.0.0.1");
    assert_eq!(e["Node"]["TaggedAddresses"]["wan_ipv4"], "10.0.0.1");
    assert!(e["Node"]["Meta"].as_object().unwrap().is_empty());
    assert_eq!(e["Service"]["ID"], "web-1");
    assert_eq!(e["Service"]["Service"], "web");
    assert_eq!(e["Service"]["Tags"], serde_json::json!(["prod", "metrics"]));
    assert_eq!(e["Service"]["Address"], "");
    assert_eq!(e["Service"]["Port"], 8080);
    assert_eq!(e["Service"]["Meta"]["version"], "1.2");
    assert!(e["Service"].get("Namespace").is_none());
    let checks = e["Checks"].as_array().unwrap();
    assert_eq!(checks.len(), 2);
    assert_eq!(checks[0]["CheckID"], "serfHealth");
    assert_eq!(checks[0]["Status"], "passing");
    assert_eq!(checks[1]["CheckID"], "service:web-1");
    assert_eq!(checks[1]["ServiceID"], "web-1");
    assert_eq!(checks[1]["ServiceName"], "web");
    assert_eq!(entries[1]["Service"]["Address"], "192.168.1.2");
    assert_eq!(
        entries[1]["Service"]["TaggedAddresses"]["lan_ipv4"]["Address"],
        "192.168.1.2"
    );

    let (_, _, body) = get(&format!("{}/v1/catalog/service/web", c.url()));
    let e = &body.as_array().unwrap()[0];
    assert_eq!(e["Node"], "node-1");
    assert_eq!(e["Address"], "10.0.0.1");
    assert_eq!(e["Datacenter"], "dc1");
    assert_eq!(e["ServiceID"], "web-1");
    assert_eq!(e["ServiceName"], "web");
    assert_eq!(e["ServiceTags"], serde_json::json!(["prod", "metrics"]));
    assert_eq!(e["ServiceAddress"], "");
    assert_eq!(e["ServicePort"], 8080);
    assert_eq!(e["ServiceMeta"]["version"], "1.2");
    assert!(e["NodeMeta"].is_object());
}

#[test]
fn filters_by_tag_node_meta_passing_and_dc() {
    let c = ConsulDouble::start();
    web(&c);
    c.register(
        "node-2",
        "10.0.0.2",
        "web-2",
        "web",
        "",
        8080,
        &["prod"],
        &[],
    );
    c.register_node(
        "node-2",
        "10.0.0.2",
        &[("lan", "10.0.0.2")],
        &[("rack", "r2")],
    );
    c.set_health("web-2", "critical");
    let u = c.url();

    let ids = |body: &Value| -> Vec<String> {
        body.as_array()
            .unwrap()
            .iter()
            .map(|e| e["Service"]["ID"].as_str().unwrap().to_string())
            .collect()
    };
    let (_, _, b) = get(&format!("{u}/v1/health/service/web?tag=prod&tag=metrics"));
    assert_eq!(ids(&b), ["web-1"]);
    let (_, _, b) = get(&format!("{u}/v1/health/service/web?tag=PROD"));
    assert_eq!(ids(&b), ["web-1", "web-2"]);
    let (_, _, b) = get(&format!("{u}/v1/health/service/web?node-meta=rack%3Ar2"));
    assert_eq!(ids(&b), ["web-2"]);
    assert_eq!(b[0]["Node"]["Meta"]["rack"], "r2");
    assert_eq!(b[0]["Checks"][1]["Status"], "critical");
    let (_, _, b) = get(&format!("{u}/v1/health/service/web?passing=1"));
    assert_eq!(ids(&b), ["web-1"]);
    let (_, _, b) = get(&format!("{u}/v1/health/service/web?stale&dc=dc1&filter=x"));
    assert_eq!(ids(&b), ["web-1", "web-2"]);
    let (_, _, b) = get(&format!("{u}/v1/catalog/services?node-meta=rack:r2"));
    assert_eq!(b, serde_json::json!({"web": ["prod"]}));

    let (status, _, _) = get(&format!("{u}/v1/health/service/web?dc=other"));
    assert_eq!(status, 500);
    let (status, _, b) = get(&format!("{u}/v1/health/service/nothing"));
    assert_eq!(status, 200);
    assert_eq!(b, serde_json::json!([]));
}

#[test]
fn blocking_query_waits_for_a_register() {
    let c = ConsulDouble::start();
    let (_, index, body) = get(&format!("{}/v1/catalog/services", c.url()));
    assert_eq!(body, serde_json::json!({}));
    let index = index.unwrap();

    let url = format!("{}/v1/catalog/services?index={index}&wait=30s", c.url());
    let waiter = std::thread::spawn(move || {
        let t0 = Instant::now();
        let r = get(&url);
        (r, t0.elapsed())
    });
    assert!(c.wait_for_blocked(1, Duration::from_secs(10)));
    std::thread::sleep(Duration::from_millis(200));
    assert!(!waiter.is_finished(), "the query must block until a change");
    web(&c);
    let ((status, new_index, body), elapsed) = waiter.join().unwrap();
    assert_eq!(status, 200);
    assert!(new_index.unwrap() > index);
    assert_eq!(body, serde_json::json!({"web": ["metrics", "prod"]}));
    assert!(elapsed < Duration::from_secs(10), "{elapsed:?}");
    assert_eq!(c.blocked_queries(), 0);
}

#[test]
fn blocking_query_times_out_with_the_same_index() {
    let c = ConsulDouble::start();
    web(&c);
    let (_, index, _) = get(&format!("{}/v1/health/service/web", c.url()));
    let index = index.unwrap();
    let t0 = Instant::now();
    let (status, again, _) = get(&format!(
        "{}/v1/health/service/web?index={index}&wait=300ms",
        c.url()
    ));
    let elapsed = t0.elapsed();
    assert_eq!(status, 200);
    assert_eq!(again, Some(index));
    assert!(elapsed >= Duration::from_millis(300), "{elapsed:?}");
    assert!(elapsed < Duration::from_secs(5), "{elapsed:?}");
}

#[test]
fn health_changes_wake_the_service_but_not_the_catalog() {
    let c = ConsulDouble::start();
    web(&c);
    let (_, cat_index, _) = get(&format!("{}/v1/catalog/services", c.url()));
    let (_, svc_index, _) = get(&format!("{}/v1/health/service/web", c.url()));
    let (cat_index, svc_index) = (cat_index.unwrap(), svc_index.unwrap());

    let url = format!(
        "{}/v1/health/service/web?index={svc_index}&wait=30s",
        c.url()
    );
    let waiter = std::thread::spawn(move || get(&url));
    assert!(c.wait_for_blocked(1, Duration::from_secs(10)));
    c.set_health("web-1", "critical");
    let (_, new_index, body) = waiter.join().unwrap();
    assert!(new_index.unwrap() > svc_index);
    assert_eq!(body[0]["Checks"][1]["Status"], "critical");

    // The catalog index did not move: a blocking catalog query times out.
    let (_, same, _) = get(&format!(
        "{}/v1/catalog/services?index={cat_index}&wait=200ms",
        c.url()
    ));
    assert_eq!(same, Some(cat_index));

    c.set_maintenance("web-1", true);
    let (_, _, body) = get(&format!("{}/v1/health/service/web", c.url()));
    let checks = body[0]["Checks"].as_array().unwrap();
    assert_eq!(
        checks.last().unwrap()["CheckID"],
        "_service_maintenance:web-1"
    );
}

#[test]
fn deregister_and_index_reset() {
    let c = ConsulDouble::start();
    web(&c);
    let (_, before, _) = get(&format!("{}/v1/catalog/services", c.url()));
    let before = before.unwrap();
    assert!(c.deregister("web-1"));
    assert!(!c.deregister("web-1"));
    let (_, after, body) = get(&format!("{}/v1/catalog/services", c.url()));
    assert!(after.unwrap() > before);
    assert_eq!(body, serde_json::json!({}));
    let (_, _, body) = get(&format!("{}/v1/health/service/web", c.url()));
    assert_eq!(body, serde_json::json!([]));

    // Going backwards: a query parked above the new index ends at its wait
    // with the lower index.
    let high = c.index();
    c.set_index(2);
    let (_, idx, _) = get(&format!(
        "{}/v1/catalog/services?index={high}&wait=200ms",
        c.url()
    ));
    assert_eq!(idx, Some(2));
}

#[test]
fn token_failure_and_request_log() {
    let c = ConsulDouble::start();
    c.require_token(Some("s3cret"));
    let (status, _, _) = get(&format!("{}/v1/catalog/services", c.url()));
    assert_eq!(status, 403);
    let client = reqwest::blocking::Client::new();
    let ok = client
        .get(format!(
            "{}/v1/catalog/services?stale&node-meta=a%3Ab",
            c.url()
        ))
        .header("X-Consul-Token", "s3cret")
        .send()
        .unwrap();
    assert_eq!(ok.status().as_u16(), 200);
    let bearer = client
        .get(format!("{}/v1/catalog/services", c.url()))
        .bearer_auth("s3cret")
        .send()
        .unwrap();
    assert_eq!(bearer.status().as_u16(), 200);

    let reqs = c.requests_to("/v1/catalog/services");
    assert_eq!(reqs.len(), 3);
    assert!(reqs[1].has_param("stale"));
    assert_eq!(reqs[1].param("node-meta"), Some("a:b"));
    assert_eq!(reqs[1].header("x-consul-token"), Some("s3cret"));

    c.require_token(None);
    c.set_failure(Some((500, "No cluster leader")));
    let (status, _, _) = get(&format!("{}/v1/catalog/services", c.url()));
    assert_eq!(status, 500);
    c.set_failure(None);
    let (status, _, _) = get(&format!("{}/v1/catalog/services", c.url()));
    assert_eq!(status, 200);
}

#[test]
fn enterprise_fields_and_consul_service() {
    let c = ConsulDouble::start_with(ConsulOptions {
        register_consul_service: true,
        namespace: Some("team-a".to_string()),
        partition: Some("part-1".to_string()),
        ..ConsulOptions::default()
    });
    let (_, _, body) = get(&format!("{}/v1/catalog/services", c.url()));
    assert_eq!(body, serde_json::json!({"consul": []}));
    let (_, _, body) = get(&format!("{}/v1/health/service/consul", c.url()));
    assert_eq!(body[0]["Service"]["Port"], 8300);
    assert_eq!(body[0]["Service"]["Namespace"], "team-a");
    assert_eq!(body[0]["Service"]["Partition"], "part-1");
    assert_eq!(body[0]["Node"]["Partition"], "part-1");
}

#[test]
fn drop_stops_the_server_even_with_a_parked_query() {
    let c = ConsulDouble::start();
    let addr = c.addr();
    let (_, index, _) = get(&format!("{}/v1/catalog/services", c.url()));
    let url = format!(
        "{}/v1/catalog/services?index={}&wait=60s",
        c.url(),
        index.unwrap()
    );
    let waiter = std::thread::spawn(move || {
        reqwest::blocking::Client::new()
            .get(url)
            .send()
            .map(|r| r.status())
    });
    assert!(c.wait_for_blocked(1, Duration::from_secs(10)));
    let t0 = Instant::now();
    drop(c);
    assert!(t0.elapsed() < Duration::from_secs(5));
    // The parked request fails (connection closed) instead of hanging.
    assert!(waiter.join().unwrap().is_err());
    assert!(std::net::TcpStream::connect(addr).is_err());
}
