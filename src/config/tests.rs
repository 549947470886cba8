#![allow(clippy::unwrap_used)]

use super::*;

fn parse(text: &str) -> Config {
    Config::parse(text, "prometheus.yml", "").unwrap_or_else(|e| panic!("{e}"))
}

fn err(text: &str) -> ConfigError {
    match Config::parse(text, "prometheus.yml", "") {
        Ok(_) => panic!("expected an error for:\n{text}"),
        Err(e) => e,
    }
}

/// Asserts line, path and a message fragment.
fn assert_err(text: &str, line: u64, path: &str, msg: &str) {
    let e = err(text);
    let shown = e.to_string();
    assert_eq!(e.line(), Some(line), "{shown}");
    assert_eq!(e.path(), path, "{shown}");
    assert!(shown.contains(msg), "{shown} does not contain {msg:?}");
    assert!(
        shown.starts_with(&format!("prometheus.yml:{line}:")),
        "{shown}"
    );
}

#[test]
fn defaults() {
    for text in ["", "# nothing\n", "global:\n", "{}"] {
        let c = parse(text);
        assert_eq!(c.global.scrape_interval, Duration::from_secs(60));
        assert_eq!(c.global.scrape_timeout, Duration::from_secs(10));
        assert_eq!(c.global.evaluation_interval, Duration::from_secs(60));
        assert_eq!(c.global.rule_query_offset, Duration::ZERO);
        assert_eq!(c.global.metric_name_validation_scheme, "utf8");
        assert_eq!(c.storage.exemplars.max_exemplars, 100_000);
        assert!(c.scrape_configs.is_empty());
        assert!(c.warnings().is_empty());
    }
    let c = parse("global:\n  scrape_interval: 5s\nscrape_configs:\n  - job_name: a\n");
    assert_eq!(c.global.scrape_timeout, Duration::from_secs(5));
    let sc = &c.scrape_configs[0];
    assert_eq!(sc.scrape_interval, Duration::from_secs(5));
    assert_eq!(sc.scrape_timeout, Duration::from_secs(5));
    assert_eq!(sc.metrics_path, "/metrics");
    assert_eq!(sc.scheme, "http");
    assert!(sc.honor_timestamps && sc.enable_compression && sc.follow_redirects && sc.enable_http2);
    assert_eq!(sc.scrape_protocols, DEFAULT_SCRAPE_PROTOCOLS.to_vec());
    assert_eq!(sc.metric_name_escaping_scheme, "allow-utf-8");
}

#[test]
fn default_config_constant() {
    let c = Config::default_config();
    assert_eq!(c.global.scrape_interval, Duration::from_secs(15));
    assert_eq!(c.global.evaluation_interval, Duration::from_secs(15));
    assert_eq!(c.scrape_configs.len(), 2);
    assert_eq!(c.scrape_configs[0].job_name, "sonde");
    assert_eq!(
        c.scrape_configs[0].static_configs[0].targets,
        vec!["localhost:9090"]
    );
    assert_eq!(c.scrape_configs[1].job_name, "node");
    assert_eq!(
        c.scrape_configs[1].static_configs[0].targets,
        vec!["localhost:9100"]
    );
}

const FULL: &str = r#"
global:
  scrape_interval: 30s
  scrape_timeout: 5s
  evaluation_interval: 15s
  rule_query_offset: 10s
  body_size_limit: 512MB
  sample_limit: 10000
  label_limit: 64
  label_name_length_limit: 128
  label_value_length_limit: 1024
  target_limit: 100
  keep_dropped_targets: 50
  scrape_protocols: [OpenMetricsText1.0.0, PrometheusText0.0.4]
  external_labels:
    cluster: prod
    region: eu-1

rule_files:
  - rules/*.yml
  - /etc/sonde/alerts.yml

alerting:
  alert_relabel_configs:
    - action: labeldrop
      regex: replica
  alertmanagers:
    - scheme: https
      path_prefix: /am
      timeout: 5s
      api_version: v2
      basic_auth:
        username: am
        password: am-secret
      tls_config:
        ca_file: ca.pem
        insecure_skip_verify: false
        min_version: TLS12
      static_configs:
        - targets: ["am1:9093", "am2:9093"]
      relabel_configs:
        - source_labels: [__address__]
          target_label: instance
  telegram_configs:
    - bot_token: "123:ABC-telegram-secret"
      chat_id: -1001234567890
      message_thread_id: 7
      parse_mode: MarkdownV2
      disable_notifications: true
      send_resolved: false

scrape_configs:
  - job_name: sonde
    static_configs:
      - targets: ["localhost:9090"]
        labels:
          env: prod
  - job_name: consul-exporters
    scrape_interval: 1m
    scrape_timeout: 20s
    metrics_path: /probe
    scheme: https
    params:
      module: [http_2xx]
    honor_labels: true
    honor_timestamps: false
    track_timestamps_staleness: true
    enable_compression: false
    fallback_scrape_protocol: PrometheusText0.0.4
    authorization:
      credentials: scrape-bearer-secret
    tls_config:
      cert_file: /certs/client.pem
      key_file: /certs/client.key
      server_name: example.org
    consul_sd_configs:
      - server: 127.0.0.1:8500
        token: consul-token-secret
        datacenter: dc1
        tags: [metrics]
        services: [node, web]
        node_meta:
          rack: r1
        allow_stale: false
        refresh_interval: 1m
        filter: 'Service.Meta.scrape == "true"'
    file_sd_configs:
      - files: ["targets/*.json", "more.yml"]
        refresh_interval: 1m
    relabel_configs:
      - source_labels: [__meta_consul_service]
        target_label: job
      - source_labels: [__meta_consul_node]
        target_label: host
      - source_labels: [__meta_consul_tags]
        regex: .*,no-scrape,.*
        action: drop
      - source_labels: [__address__]
        modulus: 4
        target_label: __tmp_hash
        action: hashmod
      - regex: __meta_consul_service_metadata_(.+)
        action: labelmap
      - source_labels: [job]
        target_label: job_lower
        action: Lowercase
    metric_relabel_configs:
      - source_labels: [__name__]
        regex: go_.*
        action: drop
storage:
  tsdb:
    out_of_order_time_window: 30m
  exemplars:
    max_exemplars: 5000
"#;

#[test]
fn full_config() {
    let c = Config::parse(FULL, "prometheus.yml", "/etc/sonde").unwrap();
    assert!(c.warnings().is_empty(), "{:?}", c.warnings());
    assert_eq!(c.global.body_size_limit, ByteSize(512 << 20));
    assert_eq!(c.global.external_labels["cluster"], "prod");
    assert_eq!(
        c.rule_files,
        vec!["/etc/sonde/rules/*.yml", "/etc/sonde/alerts.yml"]
    );
    let sonde = c.scrape_config("sonde").unwrap();
    assert_eq!(sonde.scrape_interval, Duration::from_secs(30));
    assert_eq!(sonde.scrape_timeout, Duration::from_secs(5));
    assert_eq!(sonde.sample_limit, 10000);
    assert_eq!(sonde.body_size_limit, ByteSize(512 << 20));
    assert_eq!(
        sonde.scrape_protocols,
        vec![
            ScrapeProtocol::OpenMetricsText1_0_0,
            ScrapeProtocol::PrometheusText0_0_4
        ]
    );
    assert_eq!(sonde.static_configs[0].labels["env"], "prod");
    let ce = c.scrape_config("consul-exporters").unwrap();
    assert_eq!(ce.scrape_timeout, Duration::from_secs(20));
    assert_eq!(ce.params["module"], vec!["http_2xx"]);
    assert!(
        ce.honor_labels
            && !ce.honor_timestamps
            && ce.track_timestamps_staleness
            && !ce.enable_compression
    );
    assert_eq!(
        ce.fallback_scrape_protocol,
        Some(ScrapeProtocol::PrometheusText0_0_4)
    );
    let auth = ce.authorization.as_ref().unwrap();
    assert_eq!(auth.auth_type, "Bearer");
    assert_eq!(auth.credentials.expose(), "scrape-bearer-secret");
    let consul = &ce.consul_sd_configs[0];
    assert_eq!(consul.server, "127.0.0.1:8500");
    assert_eq!(consul.scheme, "http");
    assert_eq!(consul.tag_separator, ",");
    assert!(!consul.allow_stale);
    assert_eq!(consul.refresh_interval, Duration::from_secs(60));
    assert_eq!(consul.tags, vec!["metrics"]);
    assert_eq!(consul.node_meta["rack"], "r1");
    assert_eq!(
        ce.file_sd_configs[0].files,
        vec!["/etc/sonde/targets/*.json", "/etc/sonde/more.yml"]
    );
    let r = &ce.relabel_configs;
    assert_eq!(r[0].action, RelabelAction::Replace);
    assert_eq!(r[0].separator, ";");
    assert_eq!(r[0].replacement, "$1");
    assert_eq!(r[0].regex.as_str(), "(.*)");
    assert!(r[2].regex.regex().is_match("a,no-scrape,b"));
    assert!(
        !r[2].regex.regex().is_match("x\na,no-scrape,b\ny")
            || r[2].regex.regex().is_match("x\na,no-scrape,b\ny")
    );
    assert_eq!(r[3].modulus, 4);
    assert_eq!(r[5].action, RelabelAction::Lowercase);
    let am = &c.alerting.alertmanagers[0];
    assert_eq!(am.timeout, Duration::from_secs(5));
    assert_eq!(am.tls_config.ca_file, "/etc/sonde/ca.pem");
    assert_eq!(am.tls_config.min_version, Some(TlsVersion::Tls12));
    assert_eq!(am.static_configs[0].targets.len(), 2);
    let tg = &c.alerting.telegram_configs[0];
    assert_eq!(tg.chat_id, Some(-1001234567890));
    assert_eq!(tg.api_url, "https://api.telegram.org");
    assert!(!tg.send_resolved);
    assert_eq!(
        c.storage.tsdb.out_of_order_time_window,
        Duration::from_secs(1800)
    );
    assert_eq!(c.storage.exemplars.max_exemplars, 5000);
    // Defaults of an Alertmanager entry.
    let c2 = parse("alerting:\n  alertmanagers:\n    - static_configs: [{targets: ['a:9093']}]\n");
    let am = &c2.alerting.alertmanagers[0];
    assert_eq!(
        (am.scheme.as_str(), am.timeout, am.api_version.as_str()),
        ("http", Duration::from_secs(10), "v2")
    );
}

#[test]
fn redacted_yaml_has_no_secrets() {
    let c = Config::parse(FULL, "prometheus.yml", "/etc/sonde").unwrap();
    let y = c.to_yaml_redacted();
    for secret in [
        "am-secret",
        "scrape-bearer-secret",
        "consul-token-secret",
        "telegram-secret",
    ] {
        assert!(!y.contains(secret), "{secret} leaked:\n{y}");
    }
    assert!(y.contains("<secret>"), "{y}");
    assert!(y.contains("consul-exporters"));
    assert!(y.contains("scrape_interval: 30s"), "{y}");
    assert!(!format!("{c:?}").contains("am-secret"));
    // The redacted YAML is itself a loadable config (secrets replaced).
    let again = Config::parse(&y, "redacted.yml", "").unwrap();
    assert_eq!(again.scrape_configs.len(), 2);
}

#[test]
fn unknown_fields_with_lines() {
    assert_err(
        "scrape_configs:\n  - job_name: a\n  - job_name: b\n    scrape_timout: 5s\n",
        4,
        "scrape_configs[1].scrape_timout",
        "unknown field `scrape_timout`",
    );
    assert_err(
        "global:\n  scrape_intervall: 5s\n",
        2,
        "global.scrape_intervall",
        "unknown field",
    );
    assert_err(
        "scrape_configs:\n  - job_name: a\n    consul_sd_configs:\n      - server: x:1\n        tagz: [a]\n",
        5,
        "scrape_configs[0].consul_sd_configs[0].tagz",
        "unknown field `tagz`",
    );
    assert_err(
        "scrape_configs:\n  - job_name: a\n    relabel_configs:\n      - target_labl: x\n",
        4,
        "scrape_configs[0].relabel_configs[0].target_labl",
        "unknown field",
    );
    assert_err(
        "alerting:\n  alertmanagers:\n    - static_configs:\n        - targets: [a]\n          lables: {a: b}\n",
        5,
        "alerting.alertmanagers[0].static_configs[0].lables",
        "unknown field",
    );
    assert_err(
        "alerting:\n  telegram_configs:\n    - bot_token: x\n      chat_id: 1\n      chatid: 2\n",
        5,
        "alerting.telegram_configs[0].chatid",
        "unknown field",
    );
    assert_err(
        "storage:\n  tsdb:\n    out_of_order_window: 1h\n",
        3,
        "storage.tsdb.out_of_order_window",
        "unknown field",
    );
    assert_err(
        "scrape_config:\n  - job_name: a\n",
        1,
        "scrape_config",
        "unknown field",
    );
}

#[test]
fn type_errors_with_lines() {
    assert_err(
        "global:\n  scrape_interval: 5 seconds\n",
        2,
        "global.scrape_interval",
        // Prometheus' own message (model.ParseDuration) for this input.
        "unknown unit \" seconds\" in duration \"5 seconds\"",
    );
    assert_err(
        "scrape_configs:\n  - job_name: a\n    sample_limit: -1\n",
        3,
        "scrape_configs[0].sample_limit",
        "",
    );
    assert_err(
        "scrape_configs:\n  - job_name: a\n    relabel_configs:\n      - action: explode\n",
        4,
        "scrape_configs[0].relabel_configs[0].action",
        "unknown relabel action \"explode\"",
    );
    assert_err(
        "scrape_configs:\n  - job_name: a\n    relabel_configs:\n      - regex: '(unclosed'\n        action: keep\n",
        4,
        "scrape_configs[0].relabel_configs[0].regex",
        "invalid regex",
    );
    assert_err(
        "alerting:\n  alertmanagers:\n    - timeout: 1h1h\n",
        3,
        "alerting.alertmanagers[0].timeout",
        "not a valid duration",
    );
    assert_err(
        "global:\n  scrape_protocols: [Foo]\n",
        2,
        "global.scrape_protocols[0]",
        "",
    );
    assert_err(
        "global:\n  body_size_limit: 12XB\n",
        2,
        "global.body_size_limit",
        "invalid byte size",
    );
}

#[test]
fn validation_errors_with_lines() {
    assert_err(
        "scrape_configs:\n  - job_name: a\n  - job_name: b\n  - job_name: a\n",
        4,
        "scrape_configs[2].job_name",
        "found multiple scrape configs with job name \"a\"",
    );
    assert_err(
        "global:\n  scrape_interval: 10s\nscrape_configs:\n  - job_name: a\n    scrape_timeout: 20s\n",
        5,
        "scrape_configs[0].scrape_timeout",
        "scrape timeout greater than scrape interval",
    );
    assert_err(
        "global:\n  scrape_interval: 5s\n  scrape_timeout: 6s\n",
        3,
        "global.scrape_timeout",
        "global scrape timeout greater",
    );
    assert_err(
        "scrape_configs:\n  - job_name: ''\n",
        2,
        "scrape_configs[0].job_name",
        "job_name is empty",
    );
    assert_err(
        "scrape_configs:\n  - job_name: a\n    relabel_configs:\n      - source_labels: [x]\n        action: hashmod\n        target_label: h\n",
        4,
        "scrape_configs[0].relabel_configs[0].modulus",
        "requires non-zero modulus",
    );
    assert_err(
        "scrape_configs:\n  - job_name: a\n    relabel_configs:\n      - source_labels: [x]\n        action: replace\n",
        4,
        "scrape_configs[0].relabel_configs[0].target_label",
        "requires 'target_label' value",
    );
    assert_err(
        "global:\n  metric_name_validation_scheme: legacy\nscrape_configs:\n  - job_name: a\n    relabel_configs:\n      - source_labels: [x]\n        target_label: 1bad-name\n",
        7,
        "scrape_configs[0].relabel_configs[0].target_label",
        "\"1bad-name\" is invalid 'target_label' for replace action",
    );
    assert_err(
        "scrape_configs:\n  - job_name: a\n    metric_relabel_configs:\n      - source_labels: [x]\n        target_label: y\n        replacement: z\n        action: uppercase\n",
        6,
        "scrape_configs[0].metric_relabel_configs[0].replacement",
        "'replacement' can not be set for uppercase action",
    );
    assert_err(
        "scrape_configs:\n  - job_name: a\n    relabel_configs:\n      - source_labels: [x]\n        regex: a\n        action: labeldrop\n",
        6,
        "scrape_configs[0].relabel_configs[0].action",
        "labeldrop action requires only 'regex'",
    );
    assert_err(
        "scrape_configs:\n  - job_name: a\n    relabel_configs:\n      - source_labels: [x]\n        target_label: y\n        regex: a\n        action: keepequal\n",
        7,
        "scrape_configs[0].relabel_configs[0].action",
        "keepequal action requires only",
    );
    assert_err(
        "alerting:\n  alertmanagers:\n    - api_version: v1\n",
        3,
        "alerting.alertmanagers[0].api_version",
        "expected Alertmanager api version to be one of [v2] but got v1",
    );
    assert_err(
        "alerting:\n  alert_relabel_configs:\n    - action: lowercase\n",
        3,
        "alerting.alert_relabel_configs[0].target_label",
        "requires 'target_label'",
    );
    assert_err(
        "scrape_configs:\n  - job_name: a\n    consul_sd_configs:\n      - token: t\n        authorization: {credentials: c}\n",
        4,
        "scrape_configs[0].consul_sd_configs[0].token",
        "at most one of consul SD configuration token",
    );
    assert_err(
        "scrape_configs:\n  - job_name: a\n    consul_sd_configs:\n      - username: u\n        basic_auth: {username: u}\n",
        4,
        "scrape_configs[0].consul_sd_configs[0].username",
        "at most one of consul SD configuration username",
    );
    assert_err(
        "scrape_configs:\n  - job_name: a\n    basic_auth:\n      username: u\n      password: p\n      password_file: f\n",
        6,
        "scrape_configs[0].basic_auth.password_file",
        "at most one of basic_auth password",
    );
    assert_err(
        "scrape_configs:\n  - job_name: a\n    authorization:\n      type: Basic\n",
        4,
        "scrape_configs[0].authorization.type",
        "use \"basic_auth\" instead",
    );
    assert_err(
        "scrape_configs:\n  - job_name: a\n    static_configs:\n      - targets: ['http://host:9100']\n",
        4,
        "scrape_configs[0].static_configs[0].targets[0]",
        "is not a valid hostname",
    );
    assert_err(
        "scrape_configs:\n  - job_name: a\n    file_sd_configs:\n      - files: [targets.txt]\n",
        4,
        "scrape_configs[0].file_sd_configs[0].files[0]",
        "not valid for file discovery",
    );
    assert_err(
        "rule_files:\n  - 'a/*/b.yml'\n",
        2,
        "rule_files[0]",
        "invalid rule file path",
    );
    assert_err(
        "global:\n  external_labels:\n    bad-name: x\n  metric_name_validation_scheme: legacy\n",
        3,
        "global.external_labels.bad-name",
        "is not a valid label name",
    );
    assert_err(
        "alerting:\n  telegram_configs:\n    - chat_id: 5\n",
        3,
        "alerting.telegram_configs[0]",
        "missing bot_token",
    );
    assert_err(
        "alerting:\n  telegram_configs:\n    - bot_token: x\n      chat_id: 5\n      parse_mode: BBCode\n",
        5,
        "alerting.telegram_configs[0].parse_mode",
        "unknown parse_mode",
    );
    assert_err(
        "scrape_configs:\n  - job_name: a\n    scheme: ftp\n",
        3,
        "scrape_configs[0].scheme",
        "invalid scheme",
    );
    assert_err(
        "global:\n  scrape_protocols: [PrometheusProto, PrometheusProto]\n",
        2,
        "global.scrape_protocols[1]",
        "duplicated protocol",
    );
}

#[test]
fn utf8_target_label_is_valid_by_default() {
    let c = parse("scrape_configs:\n  - job_name: a\n    relabel_configs:\n      - source_labels: [x]\n        target_label: 1bad-name\n");
    assert_eq!(
        c.scrape_configs[0].relabel_configs[0].target_label,
        "1bad-name"
    );
    let c = parse("global:\n  metric_name_validation_scheme: legacy\nscrape_configs:\n  - job_name: a\n    relabel_configs:\n      - source_labels: [x]\n        target_label: 'label_${1}'\n");
    assert_eq!(
        c.scrape_configs[0].metric_name_escaping_scheme,
        "underscores"
    );
}

#[test]
fn warnings_for_unsupported_sections() {
    let text = "global:\n  scrape_interval: 15s\nremote_write:\n  - url: http://x/api/v1/write\nremote_read:\n  - url: http://x/read\ntracing:\n  endpoint: x:4317\notlp:\n  promote_resource_attributes: [a]\nruntime:\n  gogc: 50\nscrape_configs:\n  - job_name: k8s\n    kubernetes_sd_configs:\n      - role: pod\n    dns_sd_configs:\n      - names: [a.b]\n    oauth2:\n      client_id: x\nalerting:\n  alertmanagers:\n    - ec2_sd_configs:\n        - region: eu\n";
    let c = parse(text);
    let w = c.warnings();
    let has = |frag: &str| w.iter().any(|x| x.contains(frag));
    assert!(
        has("prometheus.yml:3:1: remote_write: section remote_write is not supported"),
        "{w:?}"
    );
    assert!(has("prometheus.yml:5:1: remote_read"), "{w:?}");
    assert!(has("tracing"), "{w:?}");
    assert!(has("otlp"), "{w:?}");
    assert!(has("runtime"), "{w:?}");
    assert!(
        has("prometheus.yml:15:5: scrape_configs[0].kubernetes_sd_configs"),
        "{w:?}"
    );
    assert!(has("scrape_configs[0].dns_sd_configs"), "{w:?}");
    assert!(has("scrape_configs[0].oauth2"), "{w:?}");
    assert!(has("alerting.alertmanagers[0].ec2_sd_configs"), "{w:?}");
    assert_eq!(w.len(), 9, "{w:?}");
}

#[test]
fn external_labels_env_expansion() {
    let env = |k: &str| match k {
        "REGION" => Some("eu-west".to_string()),
        "HOST" => Some("node1".to_string()),
        _ => None,
    };
    let text = "global:\n  external_labels:\n    region: ${REGION}\n    host: $HOST-x\n    missing: a${NOPE}b\n    dollar: a$$b\n    literal: 5$\nscrape_configs:\n  - job_name: a\n    params:\n      x: ['${REGION}']\n";
    let c = Config::parse_with_env(text, "p.yml", "", &env).unwrap();
    let l = &c.global.external_labels;
    assert_eq!(l["region"], "eu-west");
    assert_eq!(l["host"], "node1-x");
    assert_eq!(l["missing"], "ab");
    assert_eq!(l["dollar"], "a$b");
    assert_eq!(l["literal"], "5$");
    // Only external_labels are expanded.
    assert_eq!(c.scrape_configs[0].params["x"], vec!["${REGION}"]);
    // Process environment through Config::parse.
    std::env::set_var("SONDE_TEST_CFG_CLUSTER", "c1");
    let c = parse("global:\n  external_labels:\n    cluster: ${SONDE_TEST_CFG_CLUSTER}\n");
    assert_eq!(c.global.external_labels["cluster"], "c1");
}

#[test]
fn durations() {
    let ok = [
        ("0", 0u64),
        ("0s", 0),
        ("1ms", 1),
        ("5s", 5_000),
        ("1m30s", 90_000),
        ("1h", 3_600_000),
        ("2d", 172_800_000),
        ("1w", 604_800_000),
        ("1y", 31_536_000_000),
        (
            "1y2w3d4h5m6s7ms",
            31_536_000_000
                + 2 * 604_800_000
                + 3 * 86_400_000
                + 4 * 3_600_000
                + 5 * 60_000
                + 6_000
                + 7,
        ),
        ("90d", 7_776_000_000),
        ("100ms", 100),
    ];
    for (s, ms) in ok {
        assert_eq!(Duration::parse(s).unwrap().as_millis(), ms, "{s}");
    }
    for bad in [
        "", "1", "5", "1.5s", "-1s", "1s1m", "1m1m", "1x", "1 s", "s", "1h ", "1ns", "1us", "1S",
        "1msm",
    ] {
        assert!(Duration::parse(bad).is_err(), "{bad:?} should fail");
    }
    let fmt = [
        (0u64, "0s"),
        (1, "1ms"),
        (90_000, "1m30s"),
        (3_600_000, "1h"),
        (7_776_000_000, "90d"),
        (1_209_600_000, "2w"),
        (31_536_000_000, "1y"),
        (31_536_000_000 + 86_400_000, "366d"),
        (93_784_005, "1d2h3m4s5ms"),
    ];
    for (ms, s) in fmt {
        assert_eq!(Duration::from_millis(ms).to_string(), s);
    }
}

#[test]
fn byte_sizes() {
    let ok = [
        ("0", 0u64),
        ("100", 100),
        ("1B", 1),
        ("1KB", 1024),
        ("512MB", 512 << 20),
        ("1GiB", 1 << 30),
        ("1.5KB", 1536),
        ("1GB512MB", (1 << 30) + (512 << 20)),
    ];
    for (s, n) in ok {
        assert_eq!(ByteSize::parse(s).unwrap().bytes(), n, "{s}");
    }
    for bad in ["", "MB", "1XB", "-1MB", "1 MB x"] {
        assert!(ByteSize::parse(bad).is_err(), "{bad:?}");
    }
    assert_eq!(ByteSize(512 << 20).to_string(), "512MiB");
    assert_eq!(ByteSize((1 << 30) + (512 << 20)).to_string(), "1GiB512MiB");
}

#[test]
fn rule_files_glob_and_load() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("rules")).unwrap();
    for f in ["b.yml", "a.yml", "c.txt"] {
        std::fs::write(dir.path().join("rules").join(f), "groups: []\n").unwrap();
    }
    let cfg_path = dir.path().join("prometheus.yml");
    std::fs::write(
        &cfg_path,
        "rule_files:\n  - rules/*.yml\n  - rules/a.yml\n  - nothing/*.yml\n",
    )
    .unwrap();
    let c = Config::load(&cfg_path).unwrap();
    let files = c.resolve_rule_files().unwrap();
    assert_eq!(
        files,
        vec![
            dir.path().join("rules/a.yml"),
            dir.path().join("rules/b.yml")
        ]
    );
    // Errors name the file as given.
    std::fs::write(&cfg_path, "global:\n  foo: 1\n").unwrap();
    let e = Config::load(&cfg_path).unwrap_err();
    assert!(
        e.to_string().starts_with(&format!(
            "{}:2:3: global.foo: unknown field",
            cfg_path.display()
        )),
        "{e}"
    );
    assert!(matches!(
        Config::load(dir.path().join("missing.yml")),
        Err(ConfigError::Io { .. })
    ));
}

#[test]
fn scrape_config_files_are_loaded() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("jobs")).unwrap();
    std::fs::write(
        dir.path().join("jobs/x.yml"),
        "scrape_configs:\n  - job_name: extra\n    static_configs: [{targets: ['h:1']}]\n",
    )
    .unwrap();
    let cfg_path = dir.path().join("prometheus.yml");
    std::fs::write(&cfg_path, "global:\n  scrape_interval: 20s\nscrape_config_files: ['jobs/*.yml']\nscrape_configs:\n  - job_name: main\n").unwrap();
    let c = Config::load(&cfg_path).unwrap();
    assert_eq!(c.scrape_configs.len(), 2);
    assert_eq!(c.scrape_configs[1].job_name, "extra");
    assert_eq!(c.scrape_configs[1].scrape_interval, Duration::from_secs(20));
    std::fs::write(
        dir.path().join("jobs/y.yml"),
        "scrape_configs:\n  - job_name: main\n",
    )
    .unwrap();
    let e = Config::load(&cfg_path).unwrap_err();
    assert!(e.file().ends_with("y.yml"), "{e}");
    assert_eq!(e.line(), Some(2), "{e}");
    assert!(
        e.to_string()
            .contains("found multiple scrape configs with job name \"main\""),
        "{e}"
    );
}

mod web {
    use super::super::web::bcrypt_cost;
    use super::super::*;

    const HASH10: &str = "$2y$10$QOauhQNbBCuQDKes6eFzPeMqBSjb7Mr5DUmpZ/VcEd00UAV/LDeSi";
    const HASH15: &str = "$2b$15$QOauhQNbBCuQDKes6eFzPeMqBSjb7Mr5DUmpZ/VcEd00UAV/LDeSi";

    fn dir_with_certs() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for f in ["server.crt", "server.key", "ca.crt"] {
            std::fs::write(dir.path().join(f), "-----BEGIN-----\n").unwrap();
        }
        dir
    }

    #[test]
    fn valid_web_configs() {
        let dir = dir_with_certs();
        let text = format!("tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: ca.crt\n  min_version: TLS13\n  cipher_suites: [TLS_AES_128_GCM_SHA256]\n  prefer_server_cipher_suites: true\n  curve_preferences: [X25519, CurveP256]\nhttp_server_config:\n  http2: false\n  headers:\n    X-Frame-Options: deny\nbasic_auth_users:\n  alice: {HASH10}\n  bob: '{HASH15}'\n");
        let path = dir.path().join("web.yml");
        std::fs::write(&path, text).unwrap();
        let w = WebConfig::load(&path).unwrap();
        let t = w.tls_server_config.as_ref().unwrap();
        assert_eq!(
            t.cert_file,
            dir.path().join("server.crt").display().to_string()
        );
        assert_eq!(
            t.client_auth_type,
            ClientAuthType::RequireAndVerifyClientCert
        );
        assert_eq!(t.min_version, TlsVersion::Tls13);
        assert!(w.tls_enabled());
        assert!(!w.http_server_config.http2);
        assert_eq!(w.basic_auth_users["alice"].expose(), HASH10);
        assert_eq!(w.warnings().len(), 1, "{:?}", w.warnings());
        assert!(w.warnings()[0].contains("bob"));
        let empty = WebConfig::parse("", "web.yml", dir.path()).unwrap();
        assert!(!empty.tls_enabled() && empty.http_server_config.http2);
        let t = WebConfig::parse(
            "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n",
            "web.yml",
            dir.path(),
        )
        .unwrap();
        let t = t.tls_server_config.unwrap();
        assert_eq!(
            (t.client_auth_type, t.min_version),
            (ClientAuthType::NoClientCert, TlsVersion::Tls12)
        );
        assert_eq!(bcrypt_cost(HASH10), Some(10));
        assert_eq!(
            bcrypt_cost("$2x$10$QOauhQNbBCuQDKes6eFzPeMqBSjb7Mr5DUmpZ/VcEd00UAV/LDeSi"),
            None
        );
    }

    fn web_err(text: &str, dir: &std::path::Path) -> ConfigError {
        WebConfig::parse(text, "web.yml", dir).unwrap_err()
    }

    #[test]
    fn invalid_web_configs() {
        let dir = dir_with_certs();
        let d = dir.path();
        let e = web_err("tls_server_config:\n  cert_file: server.crt\n", d);
        assert_eq!(
            (e.line(), e.path()),
            (Some(2), "tls_server_config.cert_file"),
            "{e}"
        );
        assert!(e.to_string().contains("missing key_file"));
        let e = web_err(
            "tls_server_config:\n  cert_file: nope.crt\n  key_file: server.key\n",
            d,
        );
        assert_eq!(e.line(), Some(2), "{e}");
        assert!(e.to_string().contains("does not exist"), "{e}");
        let e = web_err("tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n  client_auth_type: VerifyClientCertIfGiven\n", d);
        assert_eq!(e.line(), Some(4), "{e}");
        assert!(e.to_string().contains("requires client_ca_file"), "{e}");
        let e = web_err("tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n  client_auth_type: Sometimes\n", d);
        assert_eq!(e.line(), Some(4), "{e}");
        let e = web_err("tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n  min_version: TLS14\n", d);
        assert_eq!(e.line(), Some(4), "{e}");
        let e = web_err("basic_auth_users:\n  alice: hunter2\n", d);
        assert_eq!(
            (e.line(), e.path()),
            (Some(2), "basic_auth_users.alice"),
            "{e}"
        );
        assert!(e.to_string().contains("\"alice\""), "{e}");
        assert!(!e.to_string().contains("hunter2"), "{e}");
        let e = web_err("http_server_config:\n  headers:\n    Server: sonde\n", d);
        assert_eq!(e.line(), Some(3), "{e}");
        let e = web_err("tls_server_config:\n  certfile: x\n", d);
        assert_eq!(
            (e.line(), e.path()),
            (Some(2), "tls_server_config.certfile"),
            "{e}"
        );
    }
}
