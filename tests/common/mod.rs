//! Shared helpers for the integration tests: start the real `sonde` binary
//! (or another server) on a free loopback port with a temporary data
//! directory, wait until it is ready, and stop it when the handle drops.
#![allow(dead_code, clippy::unwrap_used)]

pub mod consul;
pub mod diff;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A free TCP port on 127.0.0.1.
pub fn free_port() -> u16 {
    sonde_harness::free_port().unwrap()
}

/// A running server process, killed on drop.
pub struct Server {
    pub child: Option<Child>,
    pub port: u16,
    pub dir: PathBuf,
    pub log: PathBuf,
}

impl Server {
    /// Base URL.
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// Sends SIGKILL and waits.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Sends SIGTERM and waits (bounded) for a clean exit.
    pub fn terminate(&mut self) -> bool {
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &c.id().to_string()])
                .status();
            let deadline = Instant::now() + Duration::from_secs(30);
            while Instant::now() < deadline {
                if let Ok(Some(st)) = c.try_wait() {
                    return st.success();
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
        false
    }

    /// The server's log so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Starts sonde with `args` on a free port over data directory `dir`; waits for `/-/ready`.
pub fn start_sonde(dir: &Path, args: &[&str]) -> Server {
    std::fs::create_dir_all(dir).unwrap();
    let port = free_port();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_sonde"));
    // Without a config of the test's own, one that scrapes nothing (the
    // embedded default scrapes localhost:9090 and :9100).
    if !args.iter().any(|a| a.starts_with("--config.file")) {
        let cfg = dir.join("sonde-empty.yml");
        std::fs::write(&cfg, "global:\n  scrape_interval: 15s\n").unwrap();
        cmd.arg(format!("--config.file={}", cfg.display()));
    }
    cmd.arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.join("data").display()
        ))
        .args(args);
    spawn_ready(cmd, "sonde", port, dir)
}

/// Spawns `cmd` (stderr to `dir/<name>-<port>.log`) and waits for `/-/ready`.
/// Spawns `cmd` and waits until `ready_path` answers 200.
pub fn spawn_waiting(cmd: Command, name: &str, port: u16, dir: &Path, ready_path: &str) -> Server {
    let s = spawn_logged(cmd, name, port, dir);
    wait_ready(&s.url(ready_path), Duration::from_secs(60), &s);
    s
}

/// Spawns `cmd` with stderr to `dir/<name>-<port>.log`, without waiting.
pub fn spawn_logged(mut cmd: Command, name: &str, port: u16, dir: &Path) -> Server {
    let log = dir.join(format!("{name}-{port}.log"));
    let child = cmd
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    Server {
        child: Some(child),
        port,
        dir: dir.to_path_buf(),
        log,
    }
}

/// Starts Debian's node exporter on a free port (installed by scripts/test.sh).
pub fn start_node_exporter(dir: &Path) -> Server {
    start_node_exporter_on(dir, free_port())
}

/// Starts Debian's node exporter on `port`.
pub fn start_node_exporter_on(dir: &Path, port: u16) -> Server {
    let bin = Path::new("/usr/bin/prometheus-node-exporter");
    assert!(bin.exists(), "node exporter is not installed: run scripts/test.sh (apt-get install -y prometheus-node-exporter)");
    let mut cmd = Command::new(bin);
    cmd.arg(format!("--web.listen-address=127.0.0.1:{port}"))
        // Collectors whose series come and go between scrapes (or read the
        // system journal) make two servers' views differ; the rest is plenty.
        .arg("--no-collector.systemd")
        .arg("--no-collector.ntp")
        .arg("--no-collector.arp")
        .arg("--no-collector.netclass")
        .arg("--no-collector.mdadm")
        .arg("--no-collector.hwmon")
        .arg("--no-collector.thermal_zone")
        .arg("--no-collector.textfile");
    spawn_waiting(cmd, "node-exporter", port, dir, "/metrics")
}

/// Starts Debian's blackbox exporter on a free port with a config that has an `http_2xx` module.
pub fn start_blackbox_exporter(dir: &Path) -> Server {
    let bin = Path::new("/usr/bin/prometheus-blackbox-exporter");
    assert!(bin.exists(), "blackbox exporter is not installed: run scripts/test.sh (apt-get install -y prometheus-blackbox-exporter)");
    let port = free_port();
    let cfg = dir.join("blackbox.yml");
    std::fs::write(
        &cfg,
        "modules:\n  http_2xx:\n    prober: http\n    timeout: 5s\n",
    )
    .unwrap();
    let mut cmd = Command::new(bin);
    cmd.arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .arg(format!("--config.file={}", cfg.display()));
    spawn_waiting(cmd, "blackbox-exporter", port, dir, "/metrics")
}

/// An instant query's result array (panics on an error answer).
pub fn query(s: &Server, q: &str) -> Vec<serde_json::Value> {
    let p = format!(
        "/api/v1/query?query={}",
        form_urlencoded::byte_serialize(q.as_bytes()).collect::<String>()
    );
    let (c, v) = get_json(s, &p);
    assert_eq!(c, 200, "{q}: {v}");
    v["data"]["result"].as_array().cloned().unwrap_or_default()
}

/// Polls `f` until it returns true or `limit` passes.
pub fn eventually(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    false
}

fn spawn_ready(mut cmd: Command, name: &str, port: u16, dir: &Path) -> Server {
    let log = dir.join(format!("{name}-{port}.log"));
    let child = cmd
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let s = Server {
        child: Some(child),
        port,
        dir: dir.to_path_buf(),
        log,
    };
    wait_ready(&s.url("/-/ready"), Duration::from_secs(60), &s);
    s
}

/// Polls `url` until it answers 200.
pub fn wait_ready(url: &str, limit: Duration, s: &Server) {
    let deadline = Instant::now() + limit;
    let client = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(2))
        .build()
        .unwrap();
    while Instant::now() < deadline {
        if let Ok(r) = client.get(url).send() {
            if r.status().is_success() {
                return;
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!(
        "server at {url} not ready within {limit:?}; log:\n{}",
        s.log_text()
    );
}

/// A blocking HTTP client with a timeout.
pub fn client() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

/// The server's `/metrics` text.
pub fn metrics_text(s: &Server) -> String {
    client()
        .get(s.url("/metrics"))
        .send()
        .unwrap()
        .text()
        .unwrap()
}

/// GETs a JSON API path and returns (status, body).
pub fn get_json(s: &Server, path: &str) -> (u16, serde_json::Value) {
    let r = client().get(s.url(path)).send().unwrap();
    let status = r.status().as_u16();
    let text = r.text().unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: not JSON ({e}): {text}")),
    )
}

/// A node_exporter-like workload as remote-write input: `series` series, `samples` scrapes at 15 s from `start_ms`.
pub fn workload(
    series: usize,
    samples: usize,
    start_ms: i64,
) -> Vec<sonde::remote::pb::SeriesInput> {
    use sonde_engine::workload::{Workload, WorkloadConfig};
    let mut w = Workload::new(WorkloadConfig {
        series,
        interval_ms: 15_000,
        start_ms,
        seed: 11,
    });
    let mut out: Vec<sonde::remote::pb::SeriesInput> =
        (0..series).map(|i| (w.labels(i), Vec::new())).collect();
    for _ in 0..samples {
        let (t, vs) = w.next_scrape();
        for (i, v) in vs.iter().enumerate() {
            out[i].1.push((t, *v));
        }
    }
    out
}

/// POSTs a remote-write 1.0 body (snappy-compressed) and returns (status, body text).
pub fn remote_write(base: &str, series: &[sonde::remote::pb::SeriesInput]) -> (u16, String) {
    let body = sonde::remote::compress_snappy(&sonde::remote::encode_write_v1(series));
    post_write(base, body)
}

/// POSTs a raw remote-write body.
pub fn post_write(base: &str, body: Vec<u8>) -> (u16, String) {
    let r = client()
        .post(format!("{base}/api/v1/write"))
        .header("Content-Type", "application/x-protobuf")
        .header("Content-Encoding", "snappy")
        .header("X-Prometheus-Remote-Write-Version", "0.1.0")
        .body(body)
        .send()
        .unwrap();
    (r.status().as_u16(), r.text().unwrap())
}

/// Starts Debian's Prometheus (2.42) with the given prometheus.yml content.
pub fn start_prometheus_with(dir: &Path, config: &str) -> Server {
    let bin = Path::new("/usr/bin/prometheus");
    assert!(bin.exists(), "Prometheus is not installed: run scripts/test.sh (it runs `apt-get install -y prometheus`)");
    let port = free_port();
    let cfg = dir.join("prometheus-custom.yml");
    std::fs::write(&cfg, config).unwrap();
    let mut cmd = Command::new(bin);
    cmd.arg(format!("--config.file={}", cfg.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.join("prom-data").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"));
    spawn_ready(cmd, "prometheus", port, dir)
}

/// Starts Debian's Prometheus (2.42) with the remote-write receiver on a free port.
/// Panics with the install command when it is missing: `scripts/test.sh` installs it.
pub fn start_prometheus(dir: &Path) -> Server {
    let bin = Path::new("/usr/bin/prometheus");
    assert!(bin.exists(), "Prometheus is not installed: run scripts/test.sh (it runs `apt-get install -y prometheus`)");
    let port = free_port();
    let cfg = dir.join("prometheus.yml");
    std::fs::write(&cfg, "global:\n  scrape_interval: 15s\n").unwrap();
    let mut cmd = Command::new(bin);
    cmd.arg(format!("--config.file={}", cfg.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.join("prom-data").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .arg("--web.enable-remote-write-receiver");
    spawn_ready(cmd, "prometheus", port, dir)
}
