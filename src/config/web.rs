//! The web config file (`--web.config.file`, Prometheus exporter-toolkit
//! format): server TLS, HTTP server options and basic-auth users.

use std::collections::BTreeMap;
use std::path::{Path as FsPath, PathBuf};

use serde::{Deserialize, Serialize};

use super::http::{Secret, TlsVersion};
use super::location::{LocTree, Path};
use super::{de_error, join_dir, nullable, ConfigError, VErr};

/// Client certificate policy.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum ClientAuthType {
    /// No client certificate is requested (default).
    #[default]
    NoClientCert,
    /// A client certificate is requested but not required or verified.
    RequestClientCert,
    /// A client certificate is required but not verified.
    #[serde(alias = "RequireClientCert")]
    RequireAnyClientCert,
    /// A client certificate, if given, is verified against the client CA.
    VerifyClientCertIfGiven,
    /// A client certificate is required and verified against the client CA.
    RequireAndVerifyClientCert,
}

/// `tls_server_config`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsServerConfig {
    /// Server certificate file (resolved against the web config's directory).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub cert_file: String,
    /// Server key file.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub key_file: String,
    /// Client certificate policy.
    #[serde(default)]
    pub client_auth_type: ClientAuthType,
    /// CA file for verifying client certificates.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub client_ca_file: String,
    /// Minimum TLS version (default TLS12).
    #[serde(default = "default_min_version")]
    pub min_version: TlsVersion,
    /// Maximum TLS version (default: newest).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_version: Option<TlsVersion>,
    /// Allowed cipher suites (Go names), empty = library defaults.
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "nullable"
    )]
    pub cipher_suites: Vec<String>,
    /// Prefer the server's cipher suite order.
    #[serde(default)]
    pub prefer_server_cipher_suites: bool,
    /// Key exchange curves (`CurveP256`, `CurveP384`, `CurveP521`, `X25519`).
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "nullable"
    )]
    pub curve_preferences: Vec<String>,
    /// Allowed client certificate SANs.
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "nullable"
    )]
    pub client_allowed_sans: Vec<String>,
}

fn default_min_version() -> TlsVersion {
    TlsVersion::Tls12
}

impl TlsServerConfig {
    /// Whether TLS is enabled (a certificate is configured).
    pub fn enabled(&self) -> bool {
        !self.cert_file.is_empty()
    }
}

/// `http_server_config`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpServerConfig {
    /// Enable HTTP/2 (default true).
    #[serde(default = "super::default_true")]
    pub http2: bool,
    /// Extra response headers.
    #[serde(
        default,
        skip_serializing_if = "BTreeMap::is_empty",
        deserialize_with = "nullable"
    )]
    pub headers: BTreeMap<String, String>,
}

impl Default for HttpServerConfig {
    fn default() -> Self {
        HttpServerConfig {
            http2: true,
            headers: BTreeMap::new(),
        }
    }
}

/// The web config file.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebConfig {
    /// Server TLS; `None` = plain HTTP.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_server_config: Option<TlsServerConfig>,
    /// HTTP server options.
    #[serde(default, deserialize_with = "nullable")]
    pub http_server_config: HttpServerConfig,
    /// User name → bcrypt hash.
    #[serde(
        default,
        skip_serializing_if = "BTreeMap::is_empty",
        deserialize_with = "nullable"
    )]
    pub basic_auth_users: BTreeMap<String, Secret>,
    #[serde(skip)]
    warnings: Vec<String>,
}

const ALLOWED_HEADERS: [&str; 5] = [
    "Strict-Transport-Security",
    "X-Content-Type-Options",
    "X-Frame-Options",
    "X-XSS-Protection",
    "Content-Security-Policy",
];

const CURVES: [&str; 5] = [
    "CurveP256",
    "CurveP384",
    "CurveP521",
    "X25519",
    "X25519MLKEM768",
];

/// Parses a bcrypt hash `$2a$`/`$2b$`/`$2y$` + two-digit cost + `$` + 53
/// characters of `[./A-Za-z0-9]`, returning the cost.
pub fn bcrypt_cost(hash: &str) -> Option<u32> {
    let b = hash.as_bytes();
    if b.len() != 60
        || &b[0..2] != b"$2"
        || !matches!(b[2], b'a' | b'b' | b'y')
        || b[3] != b'$'
        || b[6] != b'$'
    {
        return None;
    }
    if !b[4].is_ascii_digit() || !b[5].is_ascii_digit() {
        return None;
    }
    if !b[7..]
        .iter()
        .all(|c| c.is_ascii_alphanumeric() || *c == b'.' || *c == b'/')
    {
        return None;
    }
    let cost = u32::from(b[4] - b'0') * 10 + u32::from(b[5] - b'0');
    (4..=31).contains(&cost).then_some(cost)
}

impl WebConfig {
    /// Reads and validates a web config file; relative paths are resolved
    /// against its directory.
    pub fn load(path: impl AsRef<FsPath>) -> Result<WebConfig, ConfigError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
            file: path.display().to_string(),
            source,
        })?;
        let dir = path.parent().unwrap_or(FsPath::new(""));
        WebConfig::parse(&text, &path.display().to_string(), dir)
    }

    /// Parses and validates web config text.
    pub fn parse(
        text: &str,
        file_name: &str,
        base_dir: impl AsRef<FsPath>,
    ) -> Result<WebConfig, ConfigError> {
        let tree = LocTree::parse(text);
        let src = if tree.is_null() { "{}" } else { text };
        let mut cfg: WebConfig =
            serde_saphyr::from_str(src).map_err(|e| de_error(&e, file_name, &tree))?;
        let mut w = Vec::new();
        cfg.validate(base_dir.as_ref(), &mut w)
            .map_err(|e| e.locate(file_name, &tree))?;
        cfg.warnings = w
            .into_iter()
            .map(|(m, p)| super::locate_warning(file_name, &tree, &p, &m))
            .collect();
        Ok(cfg)
    }

    /// Warnings (e.g. bcrypt cost above 14).
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// Whether TLS is enabled.
    pub fn tls_enabled(&self) -> bool {
        self.tls_server_config
            .as_ref()
            .is_some_and(TlsServerConfig::enabled)
    }

    fn validate(&mut self, dir: &FsPath, w: &mut Vec<(String, Path)>) -> Result<(), VErr> {
        let root = Path::root();
        if let Some(t) = &mut self.tls_server_config {
            let p = root.key("tls_server_config");
            match (t.cert_file.is_empty(), t.key_file.is_empty()) {
                (false, true) => return Err(VErr::new(p.key("cert_file"), "missing key_file")),
                (true, false) => return Err(VErr::new(p.key("key_file"), "missing cert_file")),
                _ => {}
            }
            for (name, f) in [
                ("cert_file", &mut t.cert_file),
                ("key_file", &mut t.key_file),
                ("client_ca_file", &mut t.client_ca_file),
            ] {
                if f.is_empty() {
                    continue;
                }
                join_dir(f, dir);
                if !PathBuf::from(f.as_str()).is_file() {
                    return Err(VErr::new(
                        p.key(name),
                        format!("{name} {f:?} does not exist or is not a file"),
                    ));
                }
            }
            let verify = matches!(
                t.client_auth_type,
                ClientAuthType::VerifyClientCertIfGiven
                    | ClientAuthType::RequireAndVerifyClientCert
            );
            if verify && t.client_ca_file.is_empty() {
                return Err(VErr::new(
                    p.key("client_auth_type"),
                    format!(
                        "client_auth_type {:?} requires client_ca_file",
                        t.client_auth_type
                    ),
                ));
            }
            if !t.client_ca_file.is_empty() && t.client_auth_type == ClientAuthType::NoClientCert {
                return Err(VErr::new(
                    p.key("client_ca_file"),
                    "Client CA's have been configured without a Client Auth Policy",
                ));
            }
            if let Some(max) = t.max_version {
                if max < t.min_version {
                    return Err(VErr::new(
                        p.key("max_version"),
                        "max_version must be greater than or equal to min_version",
                    ));
                }
            }
            for (i, c) in t.curve_preferences.iter().enumerate() {
                if !CURVES.contains(&c.as_str()) {
                    return Err(VErr::new(
                        p.key("curve_preferences").idx(i),
                        format!("unknown curve {c:?}"),
                    ));
                }
            }
        }
        let hp = root.key("http_server_config").key("headers");
        for (k, v) in &self.http_server_config.headers {
            if !ALLOWED_HEADERS.iter().any(|h| h.eq_ignore_ascii_case(k)) {
                return Err(VErr::new(
                    hp.key(k),
                    format!("HTTP header {k:?} can not be configured"),
                ));
            }
            if k.eq_ignore_ascii_case("X-Content-Type-Options") && v != "nosniff" {
                return Err(VErr::new(
                    hp.key(k),
                    format!("invalid value for {k}. Expected: \"nosniff\""),
                ));
            }
            if k.eq_ignore_ascii_case("X-Frame-Options")
                && !(v.eq_ignore_ascii_case("deny") || v.eq_ignore_ascii_case("sameorigin"))
            {
                return Err(VErr::new(
                    hp.key(k),
                    format!("invalid value for {k}. Expected one of: [\"deny\" \"sameorigin\"]"),
                ));
            }
        }
        let up = root.key("basic_auth_users");
        for (user, hash) in &self.basic_auth_users {
            match bcrypt_cost(hash.expose()) {
                None => return Err(VErr::new(up.key(user), format!("password of user {user:?} is not a bcrypt hash ($2a$, $2b$ or $2y$); store bcrypt hashes, not plaintext passwords"))),
                Some(c) if c > 14 => w.push((format!("bcrypt cost {c} for user {user:?} is above 14; every login will be slow"), up.key(user))),
                Some(_) => {}
            }
        }
        Ok(())
    }
}
