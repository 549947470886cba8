//! Outgoing HTTP: one [`reqwest::Client`] per `HttpClientConfig` (scrapes,
//! Consul, Alertmanager), with Prometheus' options: TLS (CA, client
//! certificate, server name, `insecure_skip_verify`, minimum version),
//! proxy, redirects, and the `basic_auth`/`authorization` header.

use crate::config::http::{HttpClientConfig, TlsVersion};
use std::time::Duration;

/// `User-Agent` of outgoing requests (scrapes, discovery, notifications).
pub const USER_AGENT: &str = concat!("sonde/", env!("CARGO_PKG_VERSION"));

/// A configured client and the `Authorization` header it sends.
#[derive(Clone, Debug)]
pub struct HttpClient {
    /// The client (connection pool, TLS, proxy).
    pub client: reqwest::Client,
    /// `Authorization` header value, if any (read from files at build time).
    pub auth: Option<String>,
}

fn read_secret(inline: &str, file: &str) -> Result<String, String> {
    if !file.is_empty() {
        return std::fs::read_to_string(file)
            .map(|s| s.trim().to_string())
            .map_err(|e| format!("unable to read {file}: {e}"));
    }
    Ok(inline.to_string())
}

fn read_pem(inline: &str, file: &str, what: &str) -> Result<Option<Vec<u8>>, String> {
    if !file.is_empty() {
        return std::fs::read(file)
            .map(Some)
            .map_err(|e| format!("unable to read {what} {file}: {e}"));
    }
    Ok((!inline.is_empty()).then(|| inline.as_bytes().to_vec()))
}

impl HttpClient {
    /// Builds the client; fails on unreadable files or bad certificates.
    pub fn new(cfg: &HttpClientConfig, user_agent: &str) -> Result<HttpClient, String> {
        let mut b = reqwest::Client::builder()
            .use_rustls_tls()
            .user_agent(user_agent)
            .gzip(true)
            .pool_idle_timeout(Duration::from_secs(90))
            .redirect(if cfg.follow_redirects {
                reqwest::redirect::Policy::limited(10)
            } else {
                reqwest::redirect::Policy::none()
            });
        let tls = &cfg.tls_config;
        if let Some(ca) = read_pem(&tls.ca, &tls.ca_file, "CA file")? {
            for cert in reqwest::Certificate::from_pem_bundle(&ca)
                .map_err(|e| format!("invalid CA certificate: {e}"))?
            {
                b = b.add_root_certificate(cert);
            }
        }
        let cert = read_pem(&tls.cert, &tls.cert_file, "certificate file")?;
        let key = read_pem(tls.key.expose(), &tls.key_file, "key file")?;
        if let (Some(mut cert), Some(key)) = (cert, key) {
            cert.push(b'\n');
            cert.extend_from_slice(&key);
            b = b.identity(
                reqwest::Identity::from_pem(&cert)
                    .map_err(|e| format!("invalid client certificate or key: {e}"))?,
            );
        }
        if tls.insecure_skip_verify {
            b = b.danger_accept_invalid_certs(true);
        }
        if let Some(v) = tls.min_version {
            b = b.min_tls_version(match v {
                TlsVersion::Tls10 => reqwest::tls::Version::TLS_1_0,
                TlsVersion::Tls11 => reqwest::tls::Version::TLS_1_1,
                TlsVersion::Tls12 => reqwest::tls::Version::TLS_1_2,
                TlsVersion::Tls13 => reqwest::tls::Version::TLS_1_3,
            });
        }
        if !cfg.enable_http2 {
            b = b.http1_only();
        }
        if let Some(p) = &cfg.proxy_url {
            let mut proxy =
                reqwest::Proxy::all(p).map_err(|e| format!("invalid proxy_url: {e}"))?;
            if let Some(np) = &cfg.no_proxy {
                proxy = proxy.no_proxy(reqwest::NoProxy::from_string(np));
            }
            b = b.proxy(proxy);
        } else if !cfg.proxy_from_environment {
            b = b.no_proxy();
        }
        let auth = if let Some(ba) = &cfg.basic_auth {
            use base64::Engine as _;
            let user = read_secret(&ba.username, &ba.username_file)?;
            let pass = read_secret(ba.password.expose(), &ba.password_file)?;
            Some(format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"))
            ))
        } else if let Some(a) = &cfg.authorization {
            let cred = read_secret(a.credentials.expose(), &a.credentials_file)?;
            Some(format!("{} {cred}", a.auth_type))
        } else {
            None
        };
        let client = b.build().map_err(|e| format!("HTTP client: {e}"))?;
        Ok(HttpClient { client, auth })
    }

    /// A GET request with the configured authorization.
    pub fn get(&self, url: &str) -> reqwest::RequestBuilder {
        let r = self.client.get(url);
        match &self.auth {
            Some(a) => r.header(reqwest::header::AUTHORIZATION, a),
            None => r,
        }
    }

    /// A POST request with the configured authorization.
    pub fn post(&self, url: &str) -> reqwest::RequestBuilder {
        let r = self.client.post(url);
        match &self.auth {
            Some(a) => r.header(reqwest::header::AUTHORIZATION, a),
            None => r,
        }
    }
}
