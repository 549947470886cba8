//! The Telegram notifier against the Telegram Bot API double, driving the
//! `Notifier` directly (no server).
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "common/telegram.rs"]
mod telegram;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use sonde::config::Config;
use sonde::notify::telegram::TelegramTiming;
use sonde::notify::{Alert, Notifier, NotifierOptions};
use telegram::{Failure, Message, TelegramDouble};

/// Fast pacing and backoff; 1 s retry_after is still obeyed.
fn timing() -> TelegramTiming {
    TelegramTiming {
        min_interval: Some(Duration::from_millis(20)),
        initial_backoff: Duration::from_millis(200),
        tick: Duration::from_millis(100),
        ..TelegramTiming::default()
    }
}

fn notifier_with(t: TelegramTiming) -> Arc<Notifier> {
    Notifier::new(NotifierOptions {
        telegram: t,
        external_url: "http://sonde.example:9090".into(),
        ..NotifierOptions::default()
    })
}

/// A config with one Telegram receiver pointing at `double`, plus `extra`
/// lines of that receiver (indented by 6).
fn config(double: &TelegramDouble, extra: &str) -> Config {
    let yaml = format!(
        "global:\n  external_labels:\n    cluster: eu1\nalerting:\n  telegram_configs:\n    - bot_token: '{}'\n      chat_id: 42\n      api_url: '{}'\n{extra}",
        double.token(),
        double.url()
    );
    Config::parse(&yaml, "test.yml", ".").unwrap_or_else(|e| panic!("{e}\n{yaml}"))
}

fn setup(double: &TelegramDouble, extra: &str) -> Arc<Notifier> {
    let n = notifier_with(timing());
    let cfg = config(double, extra);
    n.apply_config(&cfg.alerting, &cfg.global.external_labels);
    n
}

fn alert(name: &str, instance: &str, resolved: bool) -> Alert {
    let starts = SystemTime::UNIX_EPOCH + Duration::from_secs(1_718_006_400);
    Alert {
        labels: BTreeMap::from([
            ("alertname".to_string(), name.to_string()),
            ("instance".to_string(), instance.to_string()),
            ("severity".to_string(), "critical".to_string()),
        ]),
        annotations: BTreeMap::from([
            ("summary".to_string(), format!("{instance} is down")),
            (
                "description".to_string(),
                format!("{instance} has been down for 5 minutes"),
            ),
        ]),
        starts_at: starts,
        ends_at: resolved.then(SystemTime::now),
        generator_url: "http://sonde.example:9090/graph?g0.expr=up+%3D%3D+0&g0.tab=1".into(),
        resolved,
        rule: format!("node/{name}"),
        value: 0.0,
    }
}

/// Polls the double without blocking the runtime.
async fn wait_messages(d: &TelegramDouble, n: usize, limit: Duration) -> Vec<Message> {
    let deadline = Instant::now() + limit;
    loop {
        let m = d.messages();
        if m.len() >= n || Instant::now() >= deadline {
            return m;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn metric(n: &Notifier, name: &str) -> u64 {
    let mut out = String::new();
    n.write_metrics(&mut out);
    out.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("{name} not in\n{out}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn firing_then_resolved() {
    let d = TelegramDouble::start();
    let n = setup(&d, "");
    n.send(vec![alert("HostDown", "10.0.0.5:9100", false)]);
    let m = wait_messages(&d, 1, Duration::from_secs(10)).await;
    assert_eq!(m.len(), 1, "{m:?}");
    let msg = &m[0];
    assert_eq!(msg.chat_id, serde_json::json!(42));
    assert_eq!(msg.parse_mode, "HTML");
    assert!(msg.link_preview_disabled);
    assert!(!msg.disable_notification);
    assert_eq!(msg.message_thread_id, None);
    assert!(
        msg.visible.starts_with("🔥 FIRING: HostDown\n"),
        "{}",
        msg.visible
    );
    assert!(
        msg.visible.contains("Summary: 10.0.0.5:9100 is down"),
        "{}",
        msg.visible
    );
    assert!(msg
        .visible
        .contains("Description: 10.0.0.5:9100 has been down for 5 minutes"));
    assert!(
        msg.visible.contains("  • instance: 10.0.0.5:9100"),
        "{}",
        msg.visible
    );
    // External labels are added by the notifier.
    assert!(msg.visible.contains("  • cluster: eu1"), "{}", msg.visible);
    assert!(msg.visible.contains("Started: 2024-06-10 08:00:00 UTC"));
    assert!(msg
        .text
        .contains("<a href=\"http://sonde.example:9090/graph?g0.expr=up+%3D%3D+0&amp;g0.tab=1\">Source</a>"), "{}", msg.text);

    // The rule side re-sends firing alerts: no new message.
    n.send(vec![alert("HostDown", "10.0.0.5:9100", false)]);
    assert!(n.flush(Duration::from_secs(5)).await);
    assert_eq!(d.messages().len(), 1);

    n.send(vec![alert("HostDown", "10.0.0.5:9100", true)]);
    let m = wait_messages(&d, 2, Duration::from_secs(10)).await;
    assert_eq!(m.len(), 2);
    assert!(
        m[1].visible.starts_with("✅ RESOLVED: HostDown\n"),
        "{}",
        m[1].visible
    );
    assert!(m[1].visible.contains("Resolved: "), "{}", m[1].visible);
    // Resolutions are re-sent for 15 minutes: no new message.
    n.send(vec![alert("HostDown", "10.0.0.5:9100", true)]);
    assert!(n.flush(Duration::from_secs(5)).await);
    assert_eq!(d.messages().len(), 2);
    assert_eq!(metric(&n, "sonde_telegram_messages_sent_total"), 2);
    assert_eq!(metric(&n, "sonde_telegram_messages_failed_total"), 0);
    // The token never shows in the requests' bodies.
    assert!(d
        .requests()
        .iter()
        .all(|r| !r.body.to_string().contains(d.token())));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_message_per_rule_and_batch() {
    let d = TelegramDouble::start();
    let n = setup(&d, "");
    n.send(vec![
        alert("HostDown", "a:9100", false),
        alert("HostDown", "b:9100", false),
        alert("DiskFull", "a:9100", false),
    ]);
    assert!(n.flush(Duration::from_secs(10)).await);
    let m = d.messages();
    assert_eq!(m.len(), 2, "{m:?}");
    let host = m
        .iter()
        .find(|x| x.visible.contains("HostDown"))
        .expect("HostDown message");
    assert!(
        host.visible.starts_with("🔥 FIRING: HostDown (2 alerts)"),
        "{}",
        host.visible
    );
    assert!(host.visible.contains("a:9100 is down") && host.visible.contains("b:9100 is down"));
    // A new alert of a rule already firing: one message with it alone.
    n.send(vec![
        alert("HostDown", "a:9100", false),
        alert("HostDown", "b:9100", false),
        alert("HostDown", "c:9100", false),
    ]);
    assert!(n.flush(Duration::from_secs(10)).await);
    let m = d.messages();
    assert_eq!(m.len(), 3);
    assert!(m[2].visible.contains("c:9100 is down"));
    assert!(!m[2].visible.contains("a:9100 is down"));
    assert!(m[2]
        .visible
        .contains("2 more alerts of this rule are still firing."));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn too_many_requests_honours_retry_after() {
    let d = TelegramDouble::start();
    let n = setup(&d, "");
    d.fail_next(1, Failure::TooManyRequests { retry_after: 1 });
    n.send(vec![alert("HostDown", "a:9100", false)]);
    let m = wait_messages(&d, 1, Duration::from_secs(10)).await;
    assert_eq!(m.len(), 1);
    let r = d.requests();
    assert_eq!(r.len(), 2);
    assert_eq!(r[0].status, 429);
    assert_eq!(r[1].status, 200);
    let gap = r[1].at.duration_since(r[0].at);
    assert!(gap >= Duration::from_secs(1), "retried after {gap:?}");
    assert_eq!(metric(&n, "sonde_telegram_retries_total"), 1);
    assert_eq!(metric(&n, "sonde_telegram_messages_sent_total"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_errors_are_retried_with_backoff() {
    let d = TelegramDouble::start();
    let n = setup(&d, "");
    d.fail_next(2, Failure::ServerError);
    n.send(vec![alert("HostDown", "a:9100", false)]);
    let m = wait_messages(&d, 1, Duration::from_secs(10)).await;
    assert_eq!(m.len(), 1);
    let r = d.requests();
    assert_eq!(
        r.iter().map(|x| x.status).collect::<Vec<_>>(),
        [500, 500, 200]
    );
    // 200 ms, then 400 ms.
    assert!(r[1].at.duration_since(r[0].at) >= Duration::from_millis(200));
    assert!(r[2].at.duration_since(r[1].at) >= Duration::from_millis(400));
    assert_eq!(metric(&n, "sonde_telegram_retries_total"), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gives_up_after_max_attempts_and_goes_on() {
    let d = TelegramDouble::start();
    let n = notifier_with(TelegramTiming {
        max_attempts: 3,
        initial_backoff: Duration::from_millis(50),
        ..timing()
    });
    let cfg = config(&d, "");
    n.apply_config(&cfg.alerting, &cfg.global.external_labels);
    d.fail_next(3, Failure::ServerError);
    n.send(vec![alert("HostDown", "a:9100", false)]);
    assert!(n.flush(Duration::from_secs(10)).await);
    assert_eq!(d.requests().len(), 3);
    assert!(d.messages().is_empty());
    assert_eq!(metric(&n, "sonde_telegram_messages_failed_total"), 1);
    assert_eq!(metric(&n, "sonde_telegram_retries_total"), 2);
    // The next notification goes through.
    n.send(vec![alert("DiskFull", "a:9100", false)]);
    assert_eq!(wait_messages(&d, 1, Duration::from_secs(10)).await.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_errors_are_not_retried() {
    let d = TelegramDouble::start();
    let n = setup(&d, "");
    d.fail_next(
        1,
        Failure::Other {
            status: 400,
            description: "Bad Request: chat not found".into(),
        },
    );
    n.send(vec![alert("HostDown", "a:9100", false)]);
    assert!(n.flush(Duration::from_secs(10)).await);
    assert_eq!(d.requests().len(), 1);
    assert_eq!(metric(&n, "sonde_telegram_messages_failed_total"), 1);
    assert_eq!(metric(&n, "sonde_telegram_retries_total"), 0);

    // A wrong token (401) is not retried either.
    let n2 = notifier_with(timing());
    let cfg = Config::parse(
        &format!(
            "alerting:\n  telegram_configs:\n    - bot_token: 'wrong'\n      chat_id: 42\n      api_url: '{}'\n",
            d.url()
        ),
        "t.yml",
        ".",
    )
    .unwrap();
    n2.apply_config(&cfg.alerting, &BTreeMap::new());
    n2.send(vec![alert("HostDown", "a:9100", false)]);
    assert!(n2.flush(Duration::from_secs(10)).await);
    let r = d.requests();
    assert_eq!(r.len(), 2);
    assert_eq!(r[1].status, 401);
    assert_eq!(metric(&n2, "sonde_telegram_messages_failed_total"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_messages_are_split() {
    let d = TelegramDouble::start();
    let n = setup(&d, "");
    let mut a = alert("HostDown", "a:9100", false);
    // 5000 characters, with characters HTML must escape.
    let words: Vec<String> = (0..626).map(|i| format!("<w{i:03}&>")).collect();
    let description = words.join(" ");
    assert!(description.len() >= 5000);
    a.annotations.insert("description".into(), description);
    n.send(vec![a]);
    assert!(n.flush(Duration::from_secs(10)).await);
    let m = d.messages();
    // The double rejects bad HTML and texts over 4096 characters.
    assert_eq!(
        m.len(),
        2,
        "{:?}",
        d.requests().iter().map(|r| &r.error).collect::<Vec<_>>()
    );
    for x in &m {
        assert!(x.visible.encode_utf16().count() <= 4096);
    }
    assert!(m[0].visible.starts_with("🔥 FIRING: HostDown"));
    let all: String = m
        .iter()
        .map(|x| x.visible.as_str())
        .collect::<Vec<_>>()
        .join(" ");
    for w in &words {
        assert!(all.contains(w.as_str()), "{w} missing");
    }
    assert!(m[1].visible.contains("Source"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn markdown_v2_escaping() {
    let d = TelegramDouble::start();
    let n = setup(&d, "      parse_mode: MarkdownV2\n");
    let mut a = alert("Disk_Full.v2", "host-1.example.com:9100", false);
    a.labels.insert("path".into(), "/var/(log)!".into());
    a.annotations.insert(
        "summary".into(),
        "usage > 95.5% [*critical*] ~ #1 + a=b | {x} `y` \\ _z_".into(),
    );
    n.send(vec![a.clone()]);
    let m = wait_messages(&d, 1, Duration::from_secs(10)).await;
    assert_eq!(
        m.len(),
        1,
        "{:?}",
        d.requests().iter().map(|r| &r.error).collect::<Vec<_>>()
    );
    let v = &m[0].visible;
    assert_eq!(m[0].parse_mode, "MarkdownV2");
    assert!(v.starts_with("🔥 FIRING: Disk_Full.v2\n"), "{v}");
    assert!(
        v.contains("Summary: usage > 95.5% [*critical*] ~ #1 + a=b | {x} `y` \\ _z_"),
        "{v}"
    );
    assert!(v.contains("path: /var/(log)!"), "{v}");
    assert!(v.contains("instance: host-1.example.com:9100"), "{v}");
    assert!(m[0]
        .text
        .contains("[Source](http://sonde.example:9090/graph?g0.expr=up+%3D%3D+0&g0.tab=1)"));

    // Legacy Markdown and HTML with the same values.
    for (mode, check) in [("Markdown", "Summary: usage"), ("HTML", "Summary: usage")] {
        let d2 = TelegramDouble::start();
        let n2 = setup(&d2, &format!("      parse_mode: {mode}\n"));
        n2.send(vec![a.clone()]);
        let m = wait_messages(&d2, 1, Duration::from_secs(10)).await;
        assert_eq!(
            m.len(),
            1,
            "{mode}: {:?}",
            d2.requests().iter().map(|r| &r.error).collect::<Vec<_>>()
        );
        assert!(m[0].visible.contains(check), "{mode}: {}", m[0].visible);
        assert!(
            m[0].visible.contains("[*critical*]"),
            "{mode}: {}",
            m[0].visible
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeat_interval_resends_still_firing() {
    let d = TelegramDouble::start();
    let n = setup(&d, "      repeat_interval: 1s\n");
    let t0 = Instant::now();
    n.send(vec![alert("HostDown", "a:9100", false)]);
    assert_eq!(wait_messages(&d, 1, Duration::from_secs(5)).await.len(), 1);
    // Re-sends within the interval are quiet.
    n.send(vec![alert("HostDown", "a:9100", false)]);
    tokio::time::sleep(Duration::from_millis(300)).await;
    n.send(vec![alert("HostDown", "a:9100", false)]);
    let m = wait_messages(&d, 2, Duration::from_secs(5)).await;
    assert_eq!(m.len(), 2);
    let first = d.requests()[0].at;
    let gap = d.requests()[1].at.duration_since(first);
    // The interval runs from when the first message was queued, a little
    // before the double received it.
    assert!(gap >= Duration::from_millis(900), "{gap:?}");
    assert!(t0.elapsed() < Duration::from_secs(8));
    assert!(
        m[1].visible.starts_with("🔥 FIRING: HostDown"),
        "{}",
        m[1].visible
    );
    assert!(m[1].visible.contains("a:9100 is down"));
    // Resolved: repeats stop.
    n.send(vec![alert("HostDown", "a:9100", true)]);
    let m = wait_messages(&d, 3, Duration::from_secs(5)).await;
    assert!(m[2].visible.starts_with("✅ RESOLVED"), "{}", m[2].visible);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(d.messages().len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_thread_silent_plain_and_no_resolved() {
    let d = TelegramDouble::start();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("token"), format!("{}\n", d.token())).unwrap();
    std::fs::write(dir.path().join("chat"), "-1001234\n").unwrap();
    let yaml = format!(
        "alerting:\n  telegram_configs:\n    - bot_token_file: token\n      chat_id_file: chat\n      api_url: '{}/'\n      message_thread_id: 7\n      disable_notifications: true\n      parse_mode: ''\n      send_resolved: false\n",
        d.url()
    );
    let cfg = Config::parse(&yaml, "t.yml", dir.path()).unwrap();
    let n = notifier_with(timing());
    n.apply_config(&cfg.alerting, &cfg.global.external_labels);
    n.send(vec![alert("HostDown", "a<b>&c", false)]);
    let m = wait_messages(&d, 1, Duration::from_secs(5)).await;
    assert_eq!(m.len(), 1);
    assert_eq!(m[0].chat_id, serde_json::json!(-1001234));
    assert_eq!(m[0].message_thread_id, Some(7));
    assert!(m[0].disable_notification);
    assert_eq!(m[0].parse_mode, "");
    assert!(
        m[0].text.contains("Summary: a<b>&c is down"),
        "{}",
        m[0].text
    );
    assert!(m[0]
        .text
        .contains("Source: http://sonde.example:9090/graph"));
    n.send(vec![alert("HostDown", "a<b>&c", true)]);
    assert!(n.flush(Duration::from_secs(5)).await);
    assert_eq!(d.messages().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn follows_supergroup_migration() {
    let d = TelegramDouble::start();
    let n = setup(&d, "");
    d.fail_next(
        1,
        Failure::Migrate {
            to_chat_id: -100_777,
        },
    );
    n.send(vec![alert("HostDown", "a:9100", false)]);
    let m = wait_messages(&d, 1, Duration::from_secs(5)).await;
    assert_eq!(m.len(), 1);
    assert_eq!(m[0].chat_id, serde_json::json!(-100_777));
    n.send(vec![alert("DiskFull", "a:9100", false)]);
    let m = wait_messages(&d, 2, Duration::from_secs(5)).await;
    assert_eq!(m[1].chat_id, serde_json::json!(-100_777));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_never_blocks_and_reload_keeps_state() {
    let d = TelegramDouble::start();
    d.set_delay(Duration::from_millis(500));
    let n = setup(&d, "");
    let t = Instant::now();
    for i in 0..200 {
        n.send(vec![alert("HostDown", &format!("h{i}:9100"), false)]);
    }
    assert!(
        t.elapsed() < Duration::from_millis(500),
        "{:?}",
        t.elapsed()
    );
    assert!(!wait_messages(&d, 1, Duration::from_secs(5))
        .await
        .is_empty());
    d.set_delay(Duration::ZERO);
    assert!(n.flush(Duration::from_secs(30)).await);
    assert_eq!(d.messages().len(), 200);
    // Reloading the same configuration keeps what was notified.
    let cfg = config(&d, "");
    n.apply_config(&cfg.alerting, &cfg.global.external_labels);
    n.send(vec![alert("HostDown", "h0:9100", false)]);
    assert!(n.flush(Duration::from_secs(5)).await);
    assert_eq!(d.messages().len(), 200);
    // A changed one starts afresh.
    let cfg = config(&d, "      disable_notifications: true\n");
    n.apply_config(&cfg.alerting, &cfg.global.external_labels);
    n.send(vec![alert("HostDown", "h0:9100", false)]);
    assert_eq!(
        wait_messages(&d, 201, Duration::from_secs(5)).await.len(),
        201
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn custom_message_templates() {
    let d = TelegramDouble::start();
    let n = setup(
        &d,
        "      message: '{{ .Status | toUpper }}: {{ .CommonLabels.alertname }} ({{ len .Alerts }})'\n      parse_mode: ''\n",
    );
    n.send(vec![alert("HostDown", "a:9100", false)]);
    n.send(vec![alert("HostDown", "a:9100", true)]);
    let m = wait_messages(&d, 2, Duration::from_secs(5)).await;
    assert_eq!(m[0].text, "FIRING: HostDown (1)");
    assert_eq!(m[1].text, "RESOLVED: HostDown (1)");

    // Alertmanager's default Telegram message, in HTML: values are escaped
    // as html/template does, so Telegram accepts them.
    let d = TelegramDouble::start();
    let n = setup(
        &d,
        "      message: '<b>{{ .Status }}</b> {{ template \"telegram.default.message\" . }}'\n",
    );
    let mut a = alert("HostDown", "a:9100", false);
    a.annotations
        .insert("description".into(), "load <5 & \"rising\"".into());
    n.send(vec![a]);
    let m = wait_messages(&d, 1, Duration::from_secs(5)).await;
    assert_eq!(
        m.len(),
        1,
        "{:?}",
        d.requests().iter().map(|r| &r.error).collect::<Vec<_>>()
    );
    assert!(
        m[0].visible
            .starts_with("firing \n\nAlerts Firing:\nLabels:\n - alertname = HostDown\n"),
        "{:?}",
        m[0].visible
    );
    assert!(
        m[0].visible
            .contains(" - description = load <5 & \"rising\"\n"),
        "{:?}",
        m[0].visible
    );

    // A template that does not parse: the default message goes out.
    let d = TelegramDouble::start();
    let n = setup(&d, "      message: '{{ .Status '\n");
    n.send(vec![alert("HostDown", "a:9100", false)]);
    let m = wait_messages(&d, 1, Duration::from_secs(5)).await;
    assert!(
        m[0].visible.starts_with("🔥 FIRING: HostDown"),
        "{}",
        m[0].visible
    );
}

#[test]
fn double_rejects_what_telegram_rejects() {
    use telegram::{parse_html, parse_markdown, parse_markdown_v2};
    assert_eq!(
        parse_html("<b>a &amp; b</b> &lt;x&gt;").unwrap(),
        "a & b <x>"
    );
    assert!(parse_html("a < b").is_err());
    assert!(parse_html("a & b").is_err());
    assert!(parse_html("<b>open").is_err());
    assert!(parse_html("<b><i>x</b></i>").is_err());
    assert!(parse_html("<script>x</script>").is_err());
    assert_eq!(
        parse_markdown_v2("*a\\.b* [l](http://x/\\)) \\\\").unwrap(),
        "a.b l \\"
    );
    assert!(parse_markdown_v2("a.b").is_err());
    assert!(parse_markdown_v2("*open").is_err());
    assert!(parse_markdown_v2("x - y").is_err());
    assert_eq!(parse_markdown("*a* \\_b [l](http://x)").unwrap(), "a _b l");
    assert!(parse_markdown("*open").is_err());
    // Over the limit after parsing.
    let d = TelegramDouble::start();
    let client = reqwest::blocking::Client::new();
    let url = format!("{}/bot{}/sendMessage", d.url(), d.token());
    let r = client
        .post(&url)
        .json(&serde_json::json!({"chat_id": 1, "text": "x".repeat(4097)}))
        .send()
        .unwrap();
    assert_eq!(r.status(), 400);
    let r = client
        .post(&url)
        .json(&serde_json::json!({"chat_id": 1, "text": format!("<b>{}</b>", "x".repeat(4096)), "parse_mode": "HTML"}))
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: serde_json::Value = r.json().unwrap();
    assert_eq!(v["ok"], true);
}

#[test]
fn split_parts_parse_as_telegram_parses_them() {
    use sonde::notify::telegram::{escape, split_message, visible_length, ParseMode};
    use telegram::{parse_html, parse_markdown, parse_markdown_v2};
    let alphabet: Vec<char> = "ab c\n_*[]()~`>#+-=|{}.!\\<&;é🔥".chars().collect();
    let mut seed: u64 = 42;
    let mut next = |n: usize| {
        seed = seed
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        ((seed >> 33) as usize) % n
    };
    for _ in 0..300 {
        let words: Vec<String> = (0..1 + next(12))
            .map(|_| {
                (0..1 + next(15))
                    .map(|_| alphabet[next(alphabet.len())])
                    .collect()
            })
            .collect();
        for (mode, parse) in [
            (
                ParseMode::Html,
                parse_html as fn(&str) -> Result<String, String>,
            ),
            (ParseMode::MarkdownV2, parse_markdown_v2),
            (ParseMode::Markdown, parse_markdown),
        ] {
            let (b0, b1, l0, l1) = match mode {
                ParseMode::Html => ("<b>", "</b>", "<a href=\"http://x/?a=1&amp;b=2\">", "</a>"),
                ParseMode::MarkdownV2 => ("*", "*", "[", "](http://x/?a=1&b=\\)2)"),
                _ => ("*", "*", "[", "](http://x/?a=1&b=2)"),
            };
            let mut text = String::new();
            for (i, w) in words.iter().enumerate() {
                let e = escape(w, mode);
                match i % 3 {
                    // Legacy Markdown cannot escape inside entities.
                    0 if mode != ParseMode::Markdown => text.push_str(&format!("{b0}{e}{b1}")),
                    1 => text.push_str(&format!("{l0}link{l1}")),
                    _ => text.push_str(&e),
                }
                text.push(if next(3) == 0 { '\n' } else { ' ' });
            }
            parse(&text).unwrap_or_else(|e| panic!("{mode:?} input {text:?}: {e}"));
            let limit = 24 + next(30);
            for p in split_message(&text, mode, limit) {
                let v =
                    parse(&p).unwrap_or_else(|e| panic!("{mode:?} part {p:?} of {text:?}: {e}"));
                assert!(v.encode_utf16().count() <= limit, "{p:?}");
                assert_eq!(
                    visible_length(&p, mode),
                    v.encode_utf16().count(),
                    "{mode:?} {p:?}"
                );
            }
        }
    }
}
