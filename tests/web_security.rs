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
