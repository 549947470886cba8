//! Secrets and the common HTTP client options (`basic_auth`,
//! `authorization`, `tls_config`, proxies).

use std::fmt;
use std::path::Path as FsPath;

use serde::{Deserialize, Serialize, Serializer};

use super::location::Path;
use super::{join_dir, VErr};

/// A secret string. It serializes as `<secret>` (as Prometheus shows it in
/// `/api/v1/status/config`) and is hidden in `Debug` output.
#[derive(Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(s: impl Into<String>) -> Self {
        Secret(s.into())
    }

    /// The secret value itself.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Whether the secret is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<secret>")
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str("<secret>")
    }
}

/// `basic_auth` of an HTTP client.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BasicAuth {
    /// User name.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub username: String,
    /// File holding the user name.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub username_file: String,
    /// Password.
    #[serde(default, skip_serializing_if = "Secret::is_empty")]
    pub password: Secret,
    /// File holding the password.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub password_file: String,
}

/// `authorization` of an HTTP client (`Authorization: <type> <credentials>`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Authorization {
    /// Scheme, `Bearer` by default.
    #[serde(default = "default_bearer", rename = "type")]
    pub auth_type: String,
    /// Credentials.
    #[serde(default, skip_serializing_if = "Secret::is_empty")]
    pub credentials: Secret,
    /// File holding the credentials.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub credentials_file: String,
}

fn default_bearer() -> String {
    "Bearer".to_string()
}

/// A TLS protocol version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum TlsVersion {
    /// TLS 1.0.
    #[serde(rename = "TLS10")]
    Tls10,
    /// TLS 1.1.
    #[serde(rename = "TLS11")]
    Tls11,
    /// TLS 1.2.
    #[serde(rename = "TLS12")]
    Tls12,
    /// TLS 1.3.
    #[serde(rename = "TLS13")]
    Tls13,
}

/// Client-side `tls_config`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// Inline CA certificate (PEM).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub ca: String,
    /// CA certificate file.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub ca_file: String,
    /// Inline client certificate (PEM).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub cert: String,
    /// Client certificate file.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub cert_file: String,
    /// Inline client key (PEM).
    #[serde(default, skip_serializing_if = "Secret::is_empty")]
    pub key: Secret,
    /// Client key file.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub key_file: String,
    /// Server name for SNI and verification.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub server_name: String,
    /// Disable server certificate verification.
    #[serde(default)]
    pub insecure_skip_verify: bool,
    /// Minimum TLS version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_version: Option<TlsVersion>,
    /// Maximum TLS version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_version: Option<TlsVersion>,
}

impl TlsConfig {
    pub(crate) fn set_directory(&mut self, dir: &FsPath) {
        join_dir(&mut self.ca_file, dir);
        join_dir(&mut self.cert_file, dir);
        join_dir(&mut self.key_file, dir);
    }

    pub(crate) fn validate(&self, p: &Path) -> Result<(), VErr> {
        if !self.ca.is_empty() && !self.ca_file.is_empty() {
            return Err(VErr::new(
                p.key("ca_file"),
                "at most one of ca and ca_file must be configured",
            ));
        }
        if !self.cert.is_empty() && !self.cert_file.is_empty() {
            return Err(VErr::new(
                p.key("cert_file"),
                "at most one of cert and cert_file must be configured",
            ));
        }
        if !self.key.is_empty() && !self.key_file.is_empty() {
            return Err(VErr::new(
                p.key("key_file"),
                "at most one of key and key_file must be configured",
            ));
        }
        let has_cert = !self.cert.is_empty() || !self.cert_file.is_empty();
        let has_key = !self.key.is_empty() || !self.key_file.is_empty();
        if has_cert && !has_key {
            return Err(VErr::new(p.clone(), "exactly one of key or key_file must be configured when a client certificate is configured"));
        }
        if has_key && !has_cert {
            return Err(VErr::new(p.clone(), "exactly one of cert or cert_file must be configured when a client key is configured"));
        }
        if let (Some(min), Some(max)) = (self.min_version, self.max_version) {
            if min > max {
                return Err(VErr::new(p.key("min_version"), "tls_config.max_version must be greater than or equal to tls_config.min_version"));
            }
        }
        Ok(())
    }
}

/// The common HTTP client options of a scrape config, an Alertmanager
/// config or a Consul SD config, gathered in one value.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HttpClientConfig {
    /// HTTP basic authentication.
    pub basic_auth: Option<BasicAuth>,
    /// `Authorization` header (legacy `bearer_token` is folded into this).
    pub authorization: Option<Authorization>,
    /// TLS options.
    pub tls_config: TlsConfig,
    /// Proxy URL.
    pub proxy_url: Option<String>,
    /// Hosts that bypass the proxy (comma separated).
    pub no_proxy: Option<String>,
    /// Use the proxy from the environment variables.
    pub proxy_from_environment: bool,
    /// Follow HTTP 3xx redirects.
    pub follow_redirects: bool,
    /// Enable HTTP/2.
    pub enable_http2: bool,
}

/// Adds the inline HTTP client options to a struct definition.
macro_rules! with_http_client {
    ($(#[$m:meta])* pub struct $name:ident { $($body:tt)* }) => {
        $(#[$m])*
        pub struct $name {
            $($body)*
            /// HTTP basic authentication.
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub basic_auth: Option<$crate::config::http::BasicAuth>,
            /// `Authorization` header.
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub authorization: Option<$crate::config::http::Authorization>,
            /// TLS options.
            #[serde(default, deserialize_with = "crate::config::nullable")]
            pub tls_config: $crate::config::http::TlsConfig,
            /// Proxy URL (its password is shown as `xxxxx`, as Prometheus does).
            #[serde(
                default,
                skip_serializing_if = "Option::is_none",
                serialize_with = "crate::config::http::serialize_redacted_url"
            )]
            pub proxy_url: Option<String>,
            /// Hosts that bypass the proxy.
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub no_proxy: Option<String>,
            /// Use the proxy from the environment.
            #[serde(default)]
            pub proxy_from_environment: bool,
            /// Follow redirects (default true).
            #[serde(default = "crate::config::default_true")]
            pub follow_redirects: bool,
            /// Enable HTTP/2 (default true).
            #[serde(default = "crate::config::default_true")]
            pub enable_http2: bool,
            #[serde(default, skip_serializing)]
            pub(crate) bearer_token: Option<$crate::config::http::Secret>,
            #[serde(default, skip_serializing)]
            pub(crate) bearer_token_file: Option<String>,
            #[serde(default, skip_serializing)]
            pub(crate) oauth2: Option<serde::de::IgnoredAny>,
            #[serde(default, skip_serializing)]
            pub(crate) proxy_connect_header: Option<serde::de::IgnoredAny>,
            #[serde(default, skip_serializing)]
            pub(crate) http_headers: Option<serde::de::IgnoredAny>,
        }

        impl $name {
            /// The HTTP client options of this section.
            pub fn http_client(&self) -> $crate::config::http::HttpClientConfig {
                $crate::config::http::HttpClientConfig {
                    basic_auth: self.basic_auth.clone(),
                    authorization: self.authorization.clone(),
                    tls_config: self.tls_config.clone(),
                    proxy_url: self.proxy_url.clone(),
                    no_proxy: self.no_proxy.clone(),
                    proxy_from_environment: self.proxy_from_environment,
                    follow_redirects: self.follow_redirects,
                    enable_http2: self.enable_http2,
                }
            }

            /// Validates the HTTP options, folds `bearer_token(_file)` into
            /// `authorization` and resolves relative file paths.
            pub(crate) fn validate_http(
                &mut self,
                p: &$crate::config::location::Path,
                dir: &std::path::Path,
                warnings: &mut Vec<(String, $crate::config::location::Path)>,
            ) -> Result<(), $crate::config::VErr> {
                $crate::config::http::validate_http_parts(
                    p,
                    dir,
                    warnings,
                    &mut self.basic_auth,
                    &mut self.authorization,
                    &mut self.tls_config,
                    self.bearer_token.take(),
                    self.bearer_token_file.take(),
                    self.oauth2.is_some(),
                    self.proxy_connect_header.is_some(),
                    self.http_headers.is_some(),
                )
            }
        }
    };
}

pub(crate) use with_http_client;

#[allow(clippy::too_many_arguments)]
pub(crate) fn validate_http_parts(
    p: &Path,
    dir: &FsPath,
    warnings: &mut Vec<(String, Path)>,
    basic_auth: &mut Option<BasicAuth>,
    authorization: &mut Option<Authorization>,
    tls: &mut TlsConfig,
    bearer_token: Option<Secret>,
    bearer_token_file: Option<String>,
    oauth2: bool,
    proxy_connect_header: bool,
    http_headers: bool,
) -> Result<(), VErr> {
    let bearer_token = bearer_token.filter(|s| !s.is_empty());
    let bearer_token_file = bearer_token_file.filter(|s| !s.is_empty());
    if bearer_token.is_some() && bearer_token_file.is_some() {
        return Err(VErr::new(
            p.key("bearer_token_file"),
            "at most one of bearer_token & bearer_token_file must be configured",
        ));
    }
    let has_bearer = bearer_token.is_some() || bearer_token_file.is_some();
    if (basic_auth.is_some() as u8
        + authorization.is_some() as u8
        + oauth2 as u8
        + has_bearer as u8)
        > 1
    {
        return Err(VErr::new(p.clone(), "at most one of basic_auth, oauth2, bearer_token & bearer_token_file & authorization must be configured"));
    }
    if let Some(ba) = basic_auth {
        let bp = p.key("basic_auth");
        if !ba.username.is_empty() && !ba.username_file.is_empty() {
            return Err(VErr::new(
                bp.key("username_file"),
                "at most one of basic_auth username & username_file must be configured",
            ));
        }
        if !ba.password.is_empty() && !ba.password_file.is_empty() {
            return Err(VErr::new(
                bp.key("password_file"),
                "at most one of basic_auth password & password_file must be configured",
            ));
        }
        join_dir(&mut ba.username_file, dir);
        join_dir(&mut ba.password_file, dir);
    }
    if has_bearer {
        *authorization = Some(Authorization {
            auth_type: default_bearer(),
            credentials: bearer_token.unwrap_or_default(),
            credentials_file: bearer_token_file.unwrap_or_default(),
        });
    }
    if let Some(a) = authorization {
        let ap = p.key("authorization");
        if a.auth_type.is_empty() {
            a.auth_type = default_bearer();
        }
        if a.auth_type.eq_ignore_ascii_case("basic") {
            return Err(VErr::new(
                ap.key("type"),
                "authorization type cannot be set to \"basic\", use \"basic_auth\" instead",
            ));
        }
        if !a.credentials.is_empty() && !a.credentials_file.is_empty() {
            return Err(VErr::new(
                ap.key("credentials_file"),
                "at most one of authorization credentials & credentials_file must be configured",
            ));
        }
        join_dir(&mut a.credentials_file, dir);
    }
    tls.validate(&p.key("tls_config"))?;
    tls.set_directory(dir);
    for (on, name) in [
        (oauth2, "oauth2"),
        (proxy_connect_header, "proxy_connect_header"),
        (http_headers, "http_headers"),
    ] {
        if on {
            warnings.push((
                format!("{name} is not supported by sonde and is ignored"),
                p.key(name),
            ));
        }
    }
    Ok(())
}

/// A URL with its password replaced by `xxxxx` (Go's `url.Redacted`, which
/// Prometheus uses to show proxy URLs).
pub fn redact_url(u: &str) -> String {
    match url::Url::parse(u) {
        Ok(mut parsed) if parsed.password().is_some() => {
            let _ = parsed.set_password(Some("xxxxx"));
            parsed.to_string()
        }
        _ => u.to_string(),
    }
}

/// Serializes an optional URL through [`redact_url`].
pub fn serialize_redacted_url<S: serde::Serializer>(
    u: &Option<String>,
    s: S,
) -> Result<S::Ok, S::Error> {
    match u {
        Some(u) => s.serialize_str(&redact_url(u)),
        None => s.serialize_none(),
    }
}

#[cfg(test)]
mod redact_tests {
    #[test]
    fn proxy_passwords_are_redacted() {
        assert_eq!(
            super::redact_url("http://user:s3cret@proxy.example:3128/"),
            "http://user:xxxxx@proxy.example:3128/"
        );
        assert_eq!(
            super::redact_url("http://proxy.example:3128"),
            "http://proxy.example:3128"
        );
    }
}
