//! `--web.config.file`: TLS (rustls) and basic auth with bcrypt hashes, as
//! Prometheus' exporter-toolkit does it.
//!
//! Basic auth: a bcrypt check costs tens of milliseconds, so successful
//! checks are cached — keyed by the exact (user, password, stored hash)
//! triple, so a wrong password can never hit the cache, and a changed hash
//! invalidates it. The users are re-read when the file changes.

use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use parking_lot::Mutex;
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

/// Client-certificate policy (`client_auth_type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClientAuth {
    /// `NoClientCert`
    None,
    /// `RequestClientCert` / `VerifyClientCertIfGiven`: verified when presented.
    Optional,
    /// `RequireAnyClientCert` / `RequireAndVerifyClientCert`.
    Required,
}

/// TLS settings of the listener.
#[derive(Clone, Debug)]
pub struct TlsSettings {
    /// PEM certificate chain.
    pub cert_file: PathBuf,
    /// PEM private key.
    pub key_file: PathBuf,
    /// PEM CA bundle for client certificates.
    pub client_ca_file: Option<PathBuf>,
    /// Client-certificate policy.
    pub client_auth: ClientAuth,
    /// Refuse TLS 1.2 (min_version: TLS13).
    pub tls13_only: bool,
    /// Refuse TLS 1.3 (max_version: TLS12).
    pub tls12_only: bool,
    /// TLS 1.2 cipher suites by Go name (empty: the library's); TLS 1.3
    /// suites are always on, as in Go.
    pub cipher_suites: Vec<String>,
    /// Choose the suite by the server's order, not the client's.
    pub prefer_server_cipher_suites: bool,
    /// Key-exchange groups by Go name, in order (empty: the library's).
    pub curve_preferences: Vec<String>,
    /// Offer HTTP/2 through ALPN (`http_server_config.http2`).
    pub http2: bool,
}

/// The provider restricted to the configured suites and curves; an entry
/// the TLS library does not offer is an error naming it and what it offers.
fn provider_for(t: &TlsSettings) -> anyhow::Result<rustls::crypto::CryptoProvider> {
    let mut p = rustls::crypto::ring::default_provider();
    if !t.cipher_suites.is_empty() {
        let available: Vec<String> = p
            .cipher_suites
            .iter()
            .filter(|s| s.version() == &rustls::version::TLS12)
            .map(|s| format!("{:?}", s.suite()))
            .collect();
        let mut keep = Vec::new();
        for name in &t.cipher_suites {
            // Go also knows the ChaCha20 suites without the _SHA256 suffix.
            let want = if name.ends_with("CHACHA20_POLY1305") {
                format!("{name}_SHA256")
            } else {
                name.clone()
            };
            if want.starts_with("TLS_AES_") || want.starts_with("TLS_CHACHA20_") {
                continue; // TLS 1.3: not configurable, as in Go.
            }
            match p
                .cipher_suites
                .iter()
                .find(|s| format!("{:?}", s.suite()) == want)
            {
                Some(s) => keep.push(*s),
                None => anyhow::bail!(
                    "tls_server_config.cipher_suites: {name:?} is not offered by sonde's TLS library (rustls); available: {}",
                    available.join(", ")
                ),
            }
        }
        let tls13: Vec<_> = p
            .cipher_suites
            .iter()
            .filter(|s| s.version() == &rustls::version::TLS13)
            .copied()
            .collect();
        keep.extend(tls13);
        p.cipher_suites = keep;
    }
    if !t.curve_preferences.is_empty() {
        let mut groups = Vec::new();
        for c in &t.curve_preferences {
            let name = match c.as_str() {
                "CurveP256" => "secp256r1",
                "CurveP384" => "secp384r1",
                "X25519" => "X25519",
                other => anyhow::bail!(
                    "tls_server_config.curve_preferences: {other:?} is not offered by sonde's TLS library (rustls); available: CurveP256, CurveP384, X25519"
                ),
            };
            if let Some(g) = p
                .kx_groups
                .iter()
                .find(|g| format!("{:?}", g.name()) == name)
            {
                groups.push(*g);
            }
        }
        p.kx_groups = groups;
    }
    Ok(p)
}

fn read_pem_certs(p: &Path) -> anyhow::Result<Vec<rustls::pki_types::CertificateDer<'static>>> {
    let data = std::fs::read(p).map_err(|e| anyhow::anyhow!("reading {}: {e}", p.display()))?;
    let certs: Result<Vec<_>, _> = rustls_pemfile::certs(&mut &data[..]).collect();
    let certs =
        certs.map_err(|e| anyhow::anyhow!("parsing certificates in {}: {e}", p.display()))?;
    if certs.is_empty() {
        anyhow::bail!("no certificate found in {}", p.display());
    }
    Ok(certs)
}

/// Builds the rustls server configuration.
pub fn tls_config(t: &TlsSettings) -> anyhow::Result<Arc<rustls::ServerConfig>> {
    let provider = Arc::new(provider_for(t)?);
    let certs = read_pem_certs(&t.cert_file)?;
    let key_data = std::fs::read(&t.key_file)
        .map_err(|e| anyhow::anyhow!("reading {}: {e}", t.key_file.display()))?;
    let key = rustls_pemfile::private_key(&mut &key_data[..])
        .map_err(|e| anyhow::anyhow!("parsing key in {}: {e}", t.key_file.display()))?
        .ok_or_else(|| anyhow::anyhow!("no private key found in {}", t.key_file.display()))?;
    let versions: &[&'static rustls::SupportedProtocolVersion] = if t.tls13_only {
        &[&rustls::version::TLS13]
    } else if t.tls12_only {
        &[&rustls::version::TLS12]
    } else {
        &[&rustls::version::TLS12, &rustls::version::TLS13]
    };
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(versions)?;
    let builder = match (&t.client_ca_file, t.client_auth) {
        (_, ClientAuth::None) | (None, _) => builder.with_no_client_auth(),
        (Some(ca), mode) => {
            let mut roots = rustls::RootCertStore::empty();
            for c in read_pem_certs(ca)? {
                roots.add(c)?;
            }
            let v = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots),
                provider,
            );
            let v = if mode == ClientAuth::Optional {
                v.allow_unauthenticated()
            } else {
                v
            };
            builder.with_client_cert_verifier(v.build()?)
        }
    };
    let mut cfg = builder.with_single_cert(certs, key)?;
    cfg.ignore_client_order = t.prefer_server_cipher_suites;
    cfg.alpn_protocols = if t.http2 {
        vec![b"h2".to_vec(), b"http/1.1".to_vec()]
    } else {
        vec![b"http/1.1".to_vec()]
    };
    Ok(Arc::new(cfg))
}

/// Reads the users from the web config file.
type LoadUsers = dyn Fn(&Path) -> anyhow::Result<HashMap<String, String>> + Send + Sync;

/// User name → bcrypt hash.
type Users = Arc<HashMap<String, String>>;

/// Basic-auth users, re-read when the web config file changes.
pub struct BasicAuth {
    path: PathBuf,
    state: Mutex<(Option<SystemTime>, Users)>,
    load: Box<LoadUsers>,
    cache: Mutex<HashSet<(String, String, String)>>,
    /// bcrypt runs at most this many at once (one per core): a flood of
    /// wrong passwords queues instead of taking every blocking thread.
    bcrypt_slots: Arc<tokio::sync::Semaphore>,
    /// Hashes of a password nobody has, by bcrypt cost: an unknown user is
    /// checked against one of these, so it costs what a wrong password does.
    decoys: Mutex<HashMap<u32, String>>,
}

impl BasicAuth {
    /// Users from `path` through `load` (which validates the file).
    pub fn new(
        path: PathBuf,
        load: impl Fn(&Path) -> anyhow::Result<HashMap<String, String>> + Send + Sync + 'static,
    ) -> anyhow::Result<BasicAuth> {
        let users = load(&path)?;
        let mtime = std::fs::metadata(&path).and_then(|m| m.modified()).ok();
        Ok(BasicAuth {
            path,
            state: Mutex::new((mtime, Arc::new(users))),
            load: Box::new(load),
            cache: Mutex::new(HashSet::new()),
            bcrypt_slots: Arc::new(tokio::sync::Semaphore::new(
                std::thread::available_parallelism().map_or(2, |n| n.get()),
            )),
            decoys: Mutex::new(HashMap::new()),
        })
    }

    fn users(&self) -> Arc<HashMap<String, String>> {
        let mtime = std::fs::metadata(&self.path)
            .and_then(|m| m.modified())
            .ok();
        let mut st = self.state.lock();
        if mtime != st.0 {
            match (self.load)(&self.path) {
                Ok(u) => {
                    *st = (mtime, Arc::new(u));
                    self.cache.lock().clear();
                }
                Err(e) => {
                    tracing::error!(error = %e, "reloading web config failed; keeping the previous users")
                }
            }
        }
        st.1.clone()
    }

    /// Checks credentials (blocking: bcrypt).
    pub fn check(&self, user: &str, password: &str) -> bool {
        let users = self.users();
        let Some(hash) = users.get(user) else {
            // The same bcrypt work as a wrong password of a known user (at
            // the highest cost configured), so timing tells no user names.
            let cost = users
                .values()
                .filter_map(|h| crate::config::web::bcrypt_cost(h))
                .max()
                .unwrap_or(bcrypt::DEFAULT_COST);
            let decoy = self
                .decoys
                .lock()
                .entry(cost)
                .or_insert_with(|| bcrypt::hash("sonde: no such user", cost).unwrap_or_default())
                .clone();
            let _ = bcrypt::verify(password, &decoy);
            return false;
        };
        let key = (user.to_string(), password.to_string(), hash.clone());
        if self.cache.lock().contains(&key) {
            return true;
        }
        let ok = bcrypt::verify(password, hash).unwrap_or(false);
        if ok {
            let mut c = self.cache.lock();
            if c.len() > 10_000 {
                c.clear();
            }
            c.insert(key);
        }
        ok
    }

    /// Whether any users are configured (no users: the API is open).
    pub fn enabled(&self) -> bool {
        !self.users().is_empty()
    }
}

/// Axum middleware enforcing basic auth.
pub async fn require_auth(
    State(auth): State<Arc<BasicAuth>>,
    req: Request,
    next: Next,
) -> Response {
    if !auth.enabled() {
        return next.run(req).await;
    }
    let creds = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|b| {
            base64::engine::general_purpose::STANDARD
                .decode(b.trim())
                .ok()
        })
        .and_then(|d| String::from_utf8(d).ok())
        .and_then(|s| {
            s.split_once(':')
                .map(|(u, p)| (u.to_string(), p.to_string()))
        });
    if let Some((user, pass)) = creds {
        let a = auth.clone();
        if let Ok(permit) = auth.bcrypt_slots.clone().acquire_owned().await {
            let ok = tokio::task::spawn_blocking(move || {
                let ok = a.check(&user, &pass);
                drop(permit);
                ok
            })
            .await
            .unwrap_or(false);
            if ok {
                return next.run(req).await;
            }
        }
    }
    (
        StatusCode::UNAUTHORIZED,
        [(header::WWW_AUTHENTICATE, "Basic")],
        "Unauthorized\n",
    )
        .into_response()
}
