//! `--web.config.file` with TLS and a bcrypt user: plain HTTP is refused, a
//! wrong password gets 401, the right one 200; admin endpoints answer only
//! with `--web.enable-admin-api`.
#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod common;

use common::*;
use std::process::Command;
use std::time::Duration;

fn self_signed(dir: &std::path::Path) -> bool {
    Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=127.0.0.1",
        ])
        .args(["-addext", "subjectAltName=IP:127.0.0.1"])
        .arg("-keyout")
        .arg(dir.join("key.pem"))
        .arg("-out")
        .arg(dir.join("cert.pem"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

#[test]
fn tls_and_basic_auth() {
    let dir = tempfile::tempdir().unwrap();
    assert!(
        self_signed(dir.path()),
        "openssl must be installed (scripts/test.sh installs it)"
    );
    let hash = bcrypt::hash("s3cret", 4).unwrap();
    let web = dir.path().join("web.yml");
    std::fs::write(&web, format!("tls_server_config:\n  cert_file: cert.pem\n  key_file: key.pem\nbasic_auth_users:\n  alice: '{hash}'\n")).unwrap();

    let port = free_port();
    let log = dir.path().join("sonde.log");
    let child = Command::new(env!("CARGO_BIN_EXE_sonde"))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.path().join("data").display()
        ))
        .arg(format!("--web.config.file={}", web.display()))
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let mut server = Server {
        child: Some(child),
        port,
        dir: dir.path().to_path_buf(),
        log,
    };
    // The test checks the server's TLS; the client does not verify the self-signed certificate.
    let https = reqwest::blocking::Client::builder()
        .danger_accept_invalid_certs(true)
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let url = |p: &str| format!("https://127.0.0.1:{port}{p}");
    // Wait until the TLS listener answers (401 without credentials means it is up).
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(r) = https
            .get(url("/-/ready"))
            .basic_auth("alice", Some("s3cret"))
            .send()
        {
            if r.status() == 200 {
                break;
            }
        }
        assert!(
            std::time::Instant::now() < deadline,
            "not ready; log:\n{}",
            server.log_text()
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    // Plain HTTP on the TLS port gets no HTTP answer.
    let plain = client()
        .get(format!("http://127.0.0.1:{port}/-/ready"))
        .send();
    assert!(
        plain.is_err() || !plain.unwrap().status().is_success(),
        "plain HTTP must be refused"
    );

    let r = https.get(url("/api/v1/labels")).send().unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(r.headers().get("www-authenticate").unwrap(), "Basic");
    let r = https
        .get(url("/api/v1/labels"))
        .basic_auth("alice", Some("wrong"))
        .send()
        .unwrap();
    assert_eq!(r.status(), 401, "wrong password");
    let r = https
        .get(url("/api/v1/labels"))
        .basic_auth("mallory", Some("s3cret"))
        .send()
        .unwrap();
    assert_eq!(r.status(), 401, "unknown user");
    for _ in 0..2 {
        // The second request is answered from the success cache.
        let r = https
            .get(url("/api/v1/labels"))
            .basic_auth("alice", Some("s3cret"))
            .send()
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    let r = https
        .get(url("/api/v1/labels"))
        .basic_auth("alice", Some("s3cret!"))
        .send()
        .unwrap();
    assert_eq!(r.status(), 401, "a wrong password never hits the cache");

    // Admin endpoints are off without --web.enable-admin-api.
    let r = https
        .post(url("/api/v1/admin/tsdb/snapshot"))
        .basic_auth("alice", Some("s3cret"))
        .send()
        .unwrap();
    assert!(
        r.status() == 500 || r.status() == 404 || r.status() == 403,
        "{}",
        r.status()
    );
    let body: serde_json::Value = r.json().unwrap();
    assert_eq!(body["status"], "error");
    assert!(
        server.terminate(),
        "clean shutdown; log:\n{}",
        server.log_text()
    );
}

#[test]
fn plaintext_password_in_web_config_refuses_to_start() {
    let dir = tempfile::tempdir().unwrap();
    let web = dir.path().join("web.yml");
    std::fs::write(&web, "basic_auth_users:\n  alice: hunter2\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_sonde"))
        .arg(format!("--web.listen-address=127.0.0.1:{}", free_port()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.path().join("data").display()
        ))
        .arg(format!("--web.config.file={}", web.display()))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("alice"), "names the user: {err}");
}

/// Starts sonde with `web` as its web config file (plain HTTP unless it has TLS).
fn start_with_web_config(dir: &std::path::Path, web: &str) -> Server {
    std::fs::write(dir.join("web.yml"), web).unwrap();
    std::fs::write(dir.join("empty.yml"), "global:\n  scrape_interval: 15s\n").unwrap();
    let port = free_port();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_sonde"));
    cmd.arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .arg(format!("--config.file={}", dir.join("empty.yml").display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.join("data").display()
        ))
        .arg(format!(
            "--web.config.file={}",
            dir.join("web.yml").display()
        ));
    let s = spawn_logged(cmd, "sonde", port, dir);
    // TLS or auth may be on: wait for the listener, then for the storage.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(std::time::Instant::now() < deadline, "{}", s.log_text());
        std::thread::sleep(Duration::from_millis(50));
    }
    while !s.log_text().contains("server is ready") {
        assert!(std::time::Instant::now() < deadline, "{}", s.log_text());
        std::thread::sleep(Duration::from_millis(50));
    }
    s
}

/// The HTTP version curl gets when it speaks HTTP/2 without upgrade.
fn http_version(s: &Server) -> String {
    let out = Command::new("curl")
        .args(["-s", "-o", "/dev/null", "-w", "%{http_version}"])
        .args(["--max-time", "5", "--http2-prior-knowledge"])
        .arg(s.url("/-/healthy"))
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).to_string()
}

/// Every option of the web config file is honoured or refused at start.
#[test]
fn web_config_options_are_honoured_or_refused() {
    let dir = tempfile::tempdir().unwrap();
    assert!(self_signed(dir.path()), "openssl must be installed");
    // Refused at start, naming the option.
    for (web, named) in [
        ("tls_server_config:\n  cert_file: cert.pem\n  key_file: key.pem\n  cipher_suites: [TLS_RSA_WITH_AES_128_CBC_SHA]\n", "cipher_suites"),
        ("tls_server_config:\n  cert_file: cert.pem\n  key_file: key.pem\n  curve_preferences: [CurveP521]\n", "curve_preferences"),
        ("tls_server_config:\n  cert_file: cert.pem\n  key_file: key.pem\n  client_allowed_sans: [a.example]\n", "client_allowed_sans"),
        ("tls_server_config:\n  cert_file: cert.pem\n  key_file: key.pem\n  min_version: TLS10\n  max_version: TLS11\n", "max_version"),
    ] {
        std::fs::write(dir.path().join("web.yml"), web).unwrap();
        let out = Command::new(env!("CARGO_BIN_EXE_sonde"))
            .arg(format!("--web.listen-address=127.0.0.1:{}", free_port()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!(
                "--web.config.file={}",
                dir.path().join("web.yml").display()
            ))
            .output()
            .unwrap();
        assert!(!out.status.success(), "{named}: started");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(named), "{named}: {err}");
    }

    // max_version TLS12, suites and curves honoured: TLS 1.3 is refused.
    let s = start_with_web_config(
        dir.path(),
        "tls_server_config:\n  cert_file: cert.pem\n  key_file: key.pem\n  max_version: TLS12\n  cipher_suites: [TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384]\n  curve_preferences: [CurveP384]\n  prefer_server_cipher_suites: true\n",
    );
    let handshake = |args: &[&str]| -> String {
        let out = Command::new("openssl")
            .args(["s_client", "-connect", &format!("127.0.0.1:{}", s.port)])
            .args(args)
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr)
    };
    let t12 = handshake(&["-tls1_2"]);
    assert!(t12.contains("ECDHE-RSA-AES256-GCM-SHA384"), "{t12}");
    let other = handshake(&["-tls1_2", "-cipher", "ECDHE-RSA-AES128-GCM-SHA256"]);
    assert!(!other.contains("Cipher is ECDHE-RSA-AES128"), "{other}");
    let p256 = handshake(&["-tls1_2", "-curves", "prime256v1"]);
    assert!(!p256.contains("Cipher is ECDHE"), "{p256}");
    let t13 = handshake(&["-tls1_3"]);
    assert!(!t13.contains("TLSv1.3"), "TLS 1.3 offered: {t13}");
    drop(s);

    // Response headers set; HTTP/2 off.
    let dir = tempfile::tempdir().unwrap();
    let s = start_with_web_config(
        dir.path(),
        "http_server_config:\n  http2: false\n  headers:\n    X-Frame-Options: deny\n    Strict-Transport-Security: max-age=31536000\n",
    );
    let r = client().get(s.url("/-/healthy")).send().unwrap();
    assert_eq!(r.headers().get("x-frame-options").unwrap(), "deny");
    assert_eq!(
        r.headers().get("strict-transport-security").unwrap(),
        "max-age=31536000"
    );
    assert_ne!(http_version(&s), "2", "HTTP/2 served with http2: false");
    drop(s);
    let dir = tempfile::tempdir().unwrap();
    let s = start_with_web_config(dir.path(), "http_server_config:\n  http2: true\n");
    assert_eq!(http_version(&s), "2");
}

/// An unknown user costs the bcrypt work of a wrong password (no user-name
/// oracle), and basic auth covers the write endpoints.
#[test]
fn unknown_users_cost_a_bcrypt_and_writes_need_auth() {
    let dir = tempfile::tempdir().unwrap();
    let hash = bcrypt::hash("s3cret", 8).unwrap();
    let s = start_with_web_config(
        dir.path(),
        &format!("basic_auth_users:\n  alice: '{hash}'\n"),
    );
    let time = |user: &str| {
        let started = std::time::Instant::now();
        let r = client()
            .get(s.url("/api/v1/labels"))
            .basic_auth(user, Some("wrong"))
            .send()
            .unwrap();
        assert_eq!(r.status(), 401);
        started.elapsed()
    };
    let _ = time("alice");
    let wrong: Duration = (0..3).map(|_| time("alice")).min().unwrap();
    let unknown: Duration = (0..3).map(|_| time("mallory")).min().unwrap();
    assert!(
        unknown * 2 >= wrong,
        "unknown user {unknown:?} vs wrong password {wrong:?}"
    );
    for path in [
        "/api/v1/write",
        "/api/v2/write",
        "/write",
        "/api/v1/read",
        "/api/v1/admin/tsdb/snapshot",
    ] {
        let r = client().post(s.url(path)).body("x").send().unwrap();
        assert_eq!(r.status(), 401, "{path} without credentials");
    }
}
