//! `scrape_configs` and the supported service discoveries (static, file,
//! consul).

use std::collections::BTreeMap;
use std::path::Path as FsPath;

use serde::{Deserialize, Serialize};

use super::duration::{ByteSize, Duration};
use super::http::{with_http_client, Secret};
use super::location::Path;
use super::relabel::RelabelConfig;
use super::{default_true, is_valid_label_name, join_dir, nullable, NameValidationScheme, VErr};

/// A scrape protocol offered in the `Accept` header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ScrapeProtocol {
    /// Prometheus protobuf.
    PrometheusProto,
    /// Prometheus text 0.0.4.
    #[serde(rename = "PrometheusText0.0.4")]
    PrometheusText0_0_4,
    /// Prometheus text 1.0.0.
    #[serde(rename = "PrometheusText1.0.0")]
    PrometheusText1_0_0,
    /// OpenMetrics 0.0.1.
    #[serde(rename = "OpenMetricsText0.0.1")]
    OpenMetricsText0_0_1,
    /// OpenMetrics 1.0.0.
    #[serde(rename = "OpenMetricsText1.0.0")]
    OpenMetricsText1_0_0,
}

impl ScrapeProtocol {
    /// The media type with parameters sent for this protocol.
    pub fn header(&self) -> &'static str {
        match self {
            ScrapeProtocol::PrometheusProto => "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited",
            ScrapeProtocol::PrometheusText0_0_4 => "text/plain;version=0.0.4",
            ScrapeProtocol::PrometheusText1_0_0 => "text/plain;version=1.0.0",
            ScrapeProtocol::OpenMetricsText0_0_1 => "application/openmetrics-text;version=0.0.1",
            ScrapeProtocol::OpenMetricsText1_0_0 => "application/openmetrics-text;version=1.0.0",
        }
    }
}

/// Prometheus' default scrape protocols, most preferred first.
pub const DEFAULT_SCRAPE_PROTOCOLS: [ScrapeProtocol; 4] = [
    ScrapeProtocol::OpenMetricsText1_0_0,
    ScrapeProtocol::OpenMetricsText0_0_1,
    ScrapeProtocol::PrometheusText1_0_0,
    ScrapeProtocol::PrometheusText0_0_4,
];

pub(crate) fn validate_protocols(list: &[ScrapeProtocol], p: &Path) -> Result<(), VErr> {
    for (i, proto) in list.iter().enumerate() {
        if list[..i].contains(proto) {
            return Err(VErr::new(
                p.idx(i),
                format!("duplicated protocol in scrape_protocols, got {proto:?}"),
            ));
        }
    }
    Ok(())
}

/// A `static_configs` entry.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StaticConfig {
    /// `host:port` targets.
    #[serde(default, deserialize_with = "nullable")]
    pub targets: Vec<String>,
    /// Labels attached to every target.
    #[serde(
        default,
        skip_serializing_if = "BTreeMap::is_empty",
        deserialize_with = "nullable"
    )]
    pub labels: BTreeMap<String, String>,
}

/// A `file_sd_configs` entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileSdConfig {
    /// File globs (`*.json`, `*.yml`, `*.yaml`), resolved against the config
    /// file's directory.
    #[serde(default, deserialize_with = "nullable")]
    pub files: Vec<String>,
    /// Re-read interval (default 5m).
    #[serde(default = "default_file_refresh")]
    pub refresh_interval: Duration,
}

fn default_file_refresh() -> Duration {
    Duration::from_secs(300)
}

fn valid_file_sd_path(s: &str) -> bool {
    // ^[^*]*(\*[^/]*)?\.(json|yml|yaml|JSON|YML|YAML)$
    let lower_ok = [".json", ".yml", ".yaml", ".JSON", ".YML", ".YAML"]
        .iter()
        .any(|e| s.ends_with(e));
    if !lower_ok {
        return false;
    }
    match s.find('*') {
        None => true,
        Some(i) => !s[i + 1..].contains('*') && !s[i + 1..].contains('/'),
    }
}

impl FileSdConfig {
    fn validate(&mut self, p: &Path, dir: &FsPath) -> Result<(), VErr> {
        if self.files.is_empty() {
            return Err(VErr::new(
                p.key("files"),
                "file service discovery config must contain at least one path name",
            ));
        }
        for (i, f) in self.files.iter_mut().enumerate() {
            if !valid_file_sd_path(f) {
                return Err(VErr::new(
                    p.key("files").idx(i),
                    format!("path name {f:?} is not valid for file discovery"),
                ));
            }
            join_dir(f, dir);
        }
        Ok(())
    }
}

with_http_client! {
    /// A `consul_sd_configs` entry.
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct ConsulSdConfig {
        /// Consul address (default `localhost:8500`).
        #[serde(default = "default_consul_server")]
        pub server: String,
        /// Prefix of the Consul API path.
        #[serde(default, skip_serializing_if = "String::is_empty")]
        pub path_prefix: String,
        /// ACL token (`X-Consul-Token`).
        #[serde(default, skip_serializing_if = "Secret::is_empty")]
        pub token: Secret,
        /// Datacenter; empty = the agent's.
        #[serde(default, skip_serializing_if = "String::is_empty")]
        pub datacenter: String,
        /// Namespace (Consul Enterprise).
        #[serde(default, skip_serializing_if = "String::is_empty")]
        pub namespace: String,
        /// Admin partition (Consul Enterprise).
        #[serde(default, skip_serializing_if = "String::is_empty")]
        pub partition: String,
        /// `http` (default) or `https`.
        #[serde(default = "default_http")]
        pub scheme: String,
        /// Deprecated user name; prefer `basic_auth`.
        #[serde(default, skip_serializing_if = "String::is_empty")]
        pub username: String,
        /// Deprecated password; prefer `basic_auth`.
        #[serde(default, skip_serializing_if = "Secret::is_empty")]
        pub password: Secret,
        /// Services to watch; empty = all.
        #[serde(default, skip_serializing_if = "Vec::is_empty", deserialize_with = "nullable")]
        pub services: Vec<String>,
        /// Tags an instance must all carry.
        #[serde(default, skip_serializing_if = "Vec::is_empty", deserialize_with = "nullable")]
        pub tags: Vec<String>,
        /// Node metadata filter.
        #[serde(default, skip_serializing_if = "BTreeMap::is_empty", deserialize_with = "nullable")]
        pub node_meta: BTreeMap<String, String>,
        /// Separator used to join tags in `__meta_consul_tags` (default `,`).
        #[serde(default = "default_tag_separator")]
        pub tag_separator: String,
        /// Allow stale reads (default true).
        #[serde(default = "default_true")]
        pub allow_stale: bool,
        /// Minimum interval between watches (default 30s).
        #[serde(default = "default_consul_refresh")]
        pub refresh_interval: Duration,
        /// Catalog API filter expression.
        #[serde(default, skip_serializing_if = "String::is_empty")]
        pub filter: String,
        /// Health API filter expression.
        #[serde(default, skip_serializing_if = "String::is_empty")]
        pub health_filter: String,
    }
}

fn default_consul_server() -> String {
    "localhost:8500".to_string()
}
fn default_http() -> String {
    "http".to_string()
}
fn default_tag_separator() -> String {
    ",".to_string()
}
fn default_consul_refresh() -> Duration {
    Duration::from_secs(30)
}

impl ConsulSdConfig {
    fn validate(
        &mut self,
        p: &Path,
        dir: &FsPath,
        w: &mut Vec<(String, Path)>,
    ) -> Result<(), VErr> {
        if self.server.trim().is_empty() {
            return Err(VErr::new(
                p.key("server"),
                "consul SD configuration requires a server address",
            ));
        }
        if !self.token.is_empty() && (self.authorization.is_some() || self.oauth2.is_some()) {
            return Err(VErr::new(p.key("token"), "at most one of consul SD configuration token, authorization or oauth2 can be configured"));
        }
        if (!self.username.is_empty() || !self.password.is_empty())
            && (self.basic_auth.is_some() || self.authorization.is_some() || self.oauth2.is_some())
        {
            return Err(VErr::new(p.key("username"), "at most one of consul SD configuration username and password, basic auth, authorization or oauth2 can be configured"));
        }
        if self.scheme != "http" && self.scheme != "https" {
            return Err(VErr::new(
                p.key("scheme"),
                format!("invalid scheme {:?}, must be http or https", self.scheme),
            ));
        }
        self.validate_http(p, dir, w)
    }
}

/// Declares the service-discovery fields of a scrape or Alertmanager config:
/// the supported ones and, as ignored fields, every other Prometheus SD.
macro_rules! with_sd {
    ($(#[$m:meta])* pub struct $name:ident { $($body:tt)* }) => {
        $crate::config::scrape::with_sd!(@gen [$(#[$m])*] $name [$($body)*]
            azure_sd_configs, digitalocean_sd_configs, docker_sd_configs,
            dockerswarm_sd_configs, dns_sd_configs, ec2_sd_configs, eureka_sd_configs,
            gce_sd_configs, hetzner_sd_configs, http_sd_configs, ionos_sd_configs,
            kubernetes_sd_configs, kuma_sd_configs, lightsail_sd_configs, linode_sd_configs,
            marathon_sd_configs, nerve_sd_configs, nomad_sd_configs, openstack_sd_configs,
            ovhcloud_sd_configs, puppetdb_sd_configs, scaleway_sd_configs,
            serverset_sd_configs, stackit_sd_configs, triton_sd_configs, uyuni_sd_configs,
            vultr_sd_configs);
    };
    (@gen [$(#[$m:meta])*] $name:ident [$($body:tt)*] $($sd:ident),*) => {
        $crate::config::http::with_http_client! {
            $(#[$m])*
            pub struct $name {
                $($body)*
                /// Static targets.
                #[serde(default, skip_serializing_if = "Vec::is_empty", deserialize_with = "crate::config::nullable")]
                pub static_configs: Vec<$crate::config::scrape::StaticConfig>,
                /// File-based discovery.
                #[serde(default, skip_serializing_if = "Vec::is_empty", deserialize_with = "crate::config::nullable")]
                pub file_sd_configs: Vec<$crate::config::scrape::FileSdConfig>,
                /// Consul discovery.
                #[serde(default, skip_serializing_if = "Vec::is_empty", deserialize_with = "crate::config::nullable")]
                pub consul_sd_configs: Vec<$crate::config::scrape::ConsulSdConfig>,
                $(
                    #[serde(default, skip_serializing)]
                    pub(crate) $sd: Option<serde::de::IgnoredAny>,
                )*
            }
        }

        impl $name {
            /// Names of the configured service discoveries that sonde ignores.
            pub(crate) fn unsupported_sd(&self) -> Vec<&'static str> {
                let mut v = Vec::new();
                $( if self.$sd.is_some() { v.push(stringify!($sd)); } )*
                v
            }

            /// Validates the discovery sections and resolves their paths.
            pub(crate) fn validate_sd(
                &mut self,
                p: &$crate::config::location::Path,
                dir: &std::path::Path,
                scheme: $crate::config::NameValidationScheme,
                has_relabel: bool,
                w: &mut Vec<(String, $crate::config::location::Path)>,
            ) -> Result<(), $crate::config::VErr> {
                $crate::config::scrape::validate_static(&self.static_configs, &p.key("static_configs"), scheme, has_relabel)?;
                for (i, f) in self.file_sd_configs.iter_mut().enumerate() {
                    f.validate_pub(&p.key("file_sd_configs").idx(i), dir)?;
                }
                for (i, c) in self.consul_sd_configs.iter_mut().enumerate() {
                    c.validate_pub(&p.key("consul_sd_configs").idx(i), dir, w)?;
                }
                for name in self.unsupported_sd() {
                    w.push((format!("{name} is not supported by sonde and is ignored"), p.key(name)));
                }
                Ok(())
            }
        }
    };
}

pub(crate) use with_sd;

impl FileSdConfig {
    pub(crate) fn validate_pub(&mut self, p: &Path, dir: &FsPath) -> Result<(), VErr> {
        self.validate(p, dir)
    }
}

impl ConsulSdConfig {
    pub(crate) fn validate_pub(
        &mut self,
        p: &Path,
        dir: &FsPath,
        w: &mut Vec<(String, Path)>,
    ) -> Result<(), VErr> {
        self.validate(p, dir, w)
    }
}

pub(crate) fn validate_static(
    list: &[StaticConfig],
    p: &Path,
    scheme: NameValidationScheme,
    has_relabel: bool,
) -> Result<(), VErr> {
    for (i, sc) in list.iter().enumerate() {
        let ip = p.idx(i);
        for (j, t) in sc.targets.iter().enumerate() {
            if !has_relabel && (t.contains('/') || t.is_empty()) {
                return Err(VErr::new(
                    ip.key("targets").idx(j),
                    format!("{t:?} is not a valid hostname"),
                ));
            }
        }
        for k in sc.labels.keys() {
            if !is_valid_label_name(k, scheme) {
                return Err(VErr::new(
                    ip.key("labels").key(k),
                    format!("{k:?} is not a valid label name"),
                ));
            }
        }
    }
    Ok(())
}

with_sd! {
    /// One `scrape_configs` entry. After [`super::Config::parse`], the
    /// interval, timeout, limits, protocols and name schemes are filled in
    /// from `global`.
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct ScrapeConfig {
        /// Job name; the default `job` label.
        #[serde(default)]
        pub job_name: String,
        /// Keep scraped labels on conflict.
        #[serde(default)]
        pub honor_labels: bool,
        /// Use scraped timestamps (default true).
        #[serde(default = "default_true")]
        pub honor_timestamps: bool,
        /// Track staleness of scraped timestamps.
        #[serde(default)]
        pub track_timestamps_staleness: bool,
        /// URL query parameters.
        #[serde(default, skip_serializing_if = "BTreeMap::is_empty", deserialize_with = "nullable")]
        pub params: BTreeMap<String, Vec<String>>,
        /// Scrape interval (default: global).
        #[serde(default)]
        pub scrape_interval: Duration,
        /// Scrape timeout (default: min(global timeout, interval)).
        #[serde(default)]
        pub scrape_timeout: Duration,
        /// Protocols to negotiate (default: global, else Prometheus' defaults).
        #[serde(default, deserialize_with = "nullable_protocols")]
        pub scrape_protocols: Vec<ScrapeProtocol>,
        /// Protocol used when the Content-Type is missing or unknown.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub fallback_scrape_protocol: Option<ScrapeProtocol>,
        /// Scrape native histograms (default: global).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub scrape_native_histograms: Option<bool>,
        /// Also keep classic histograms (default: global).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub always_scrape_classic_histograms: Option<bool>,
        /// Convert classic histograms to NHCB (default: global).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub convert_classic_histograms_to_nhcb: Option<bool>,
        /// Extra scrape report metrics (default: global).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub extra_scrape_metrics: Option<bool>,
        /// File to log scrape failures to.
        #[serde(default, skip_serializing_if = "String::is_empty")]
        pub scrape_failure_log_file: String,
        /// Metrics path (default `/metrics`).
        #[serde(default = "default_metrics_path")]
        pub metrics_path: String,
        /// `http` (default) or `https`.
        #[serde(default = "default_http")]
        pub scheme: String,
        /// Request gzip (default true).
        #[serde(default = "default_true")]
        pub enable_compression: bool,
        /// Uncompressed body size limit, 0 = none.
        #[serde(default, skip_serializing_if = "is_zero_size")]
        pub body_size_limit: ByteSize,
        /// Sample limit, 0 = none.
        #[serde(default, skip_serializing_if = "is_zero")]
        pub sample_limit: u64,
        /// Target limit, 0 = none.
        #[serde(default, skip_serializing_if = "is_zero")]
        pub target_limit: u64,
        /// Label count limit, 0 = none.
        #[serde(default, skip_serializing_if = "is_zero")]
        pub label_limit: u64,
        /// Label name length limit, 0 = none.
        #[serde(default, skip_serializing_if = "is_zero")]
        pub label_name_length_limit: u64,
        /// Label value length limit, 0 = none.
        #[serde(default, skip_serializing_if = "is_zero")]
        pub label_value_length_limit: u64,
        /// Native histogram bucket limit, 0 = none.
        #[serde(default, skip_serializing_if = "is_zero")]
        pub native_histogram_bucket_limit: u64,
        /// Native histogram minimum bucket growth factor.
        #[serde(default, skip_serializing_if = "is_zero_f")]
        pub native_histogram_min_bucket_factor: f64,
        /// Dropped targets kept for the targets API, 0 = all.
        #[serde(default, skip_serializing_if = "is_zero")]
        pub keep_dropped_targets: u64,
        /// `utf8` or `legacy` (default: global).
        #[serde(default, skip_serializing_if = "String::is_empty")]
        pub metric_name_validation_scheme: String,
        /// `allow-utf-8`, `underscores`, `dots` or `values` (default from the
        /// validation scheme).
        #[serde(default, skip_serializing_if = "String::is_empty")]
        pub metric_name_escaping_scheme: String,
        /// Target relabeling.
        #[serde(default, skip_serializing_if = "Vec::is_empty", deserialize_with = "nullable")]
        pub relabel_configs: Vec<RelabelConfig>,
        /// Metric relabeling.
        #[serde(default, skip_serializing_if = "Vec::is_empty", deserialize_with = "nullable")]
        pub metric_relabel_configs: Vec<RelabelConfig>,
    }
}

fn default_metrics_path() -> String {
    "/metrics".to_string()
}
fn is_zero(v: &u64) -> bool {
    *v == 0
}
fn is_zero_f(v: &f64) -> bool {
    *v == 0.0
}
fn is_zero_size(v: &ByteSize) -> bool {
    v.0 == 0
}

/// `scrape_protocols`: null means unset; an explicit empty list is an error.
pub(crate) fn nullable_protocols<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Vec<ScrapeProtocol>, D::Error> {
    let v: Option<Vec<ScrapeProtocol>> = Option::deserialize(d)?;
    match v {
        Some(v) if v.is_empty() => {
            Err(serde::de::Error::custom("scrape_protocols cannot be empty"))
        }
        v => Ok(v.unwrap_or_default()),
    }
}

impl ScrapeConfig {
    /// The effective name validation scheme (after parsing).
    pub fn name_validation_scheme(&self) -> NameValidationScheme {
        NameValidationScheme::from_config(&self.metric_name_validation_scheme)
    }

    pub(crate) fn validate(
        &mut self,
        p: &Path,
        g: &super::GlobalConfig,
        dir: &FsPath,
        w: &mut Vec<(String, Path)>,
    ) -> Result<(), VErr> {
        if self.job_name.is_empty() {
            return Err(VErr::new(p.key("job_name"), "job_name is empty"));
        }
        if self.scrape_interval.is_zero() {
            self.scrape_interval = g.scrape_interval;
        }
        if self.scrape_timeout > self.scrape_interval {
            return Err(VErr::new(
                p.key("scrape_timeout"),
                format!(
                    "scrape timeout greater than scrape interval for scrape config with job name {:?}",
                    self.job_name
                ),
            ));
        }
        if self.scrape_timeout.is_zero() {
            self.scrape_timeout = g.scrape_timeout.min(self.scrape_interval);
        }
        if self.body_size_limit.0 == 0 {
            self.body_size_limit = g.body_size_limit;
        }
        for (mine, global) in [
            (&mut self.sample_limit, g.sample_limit),
            (&mut self.target_limit, g.target_limit),
            (&mut self.label_limit, g.label_limit),
            (&mut self.label_name_length_limit, g.label_name_length_limit),
            (
                &mut self.label_value_length_limit,
                g.label_value_length_limit,
            ),
            (&mut self.keep_dropped_targets, g.keep_dropped_targets),
        ] {
            if *mine == 0 {
                *mine = global;
            }
        }
        if self.scrape_failure_log_file.is_empty() {
            self.scrape_failure_log_file = g.scrape_failure_log_file.clone();
        } else {
            join_dir(&mut self.scrape_failure_log_file, dir);
        }
        self.scrape_native_histograms = self
            .scrape_native_histograms
            .or(Some(g.scrape_native_histograms.unwrap_or(false)));
        self.extra_scrape_metrics = self.extra_scrape_metrics.or(Some(g.extra_scrape_metrics));
        self.convert_classic_histograms_to_nhcb = self
            .convert_classic_histograms_to_nhcb
            .or(Some(g.convert_classic_histograms_to_nhcb));
        self.always_scrape_classic_histograms = self
            .always_scrape_classic_histograms
            .or(Some(g.always_scrape_classic_histograms));
        if self.scrape_protocols.is_empty() {
            self.scrape_protocols = if !g.scrape_protocols.is_empty() {
                g.scrape_protocols.clone()
            } else if self.scrape_native_histograms == Some(true) {
                let mut v = vec![ScrapeProtocol::PrometheusProto];
                v.extend(DEFAULT_SCRAPE_PROTOCOLS);
                v
            } else {
                DEFAULT_SCRAPE_PROTOCOLS.to_vec()
            };
        }
        validate_protocols(&self.scrape_protocols, &p.key("scrape_protocols"))?;
        if self.scheme != "http" && self.scheme != "https" {
            return Err(VErr::new(
                p.key("scheme"),
                format!("invalid scheme {:?}, must be http or https", self.scheme),
            ));
        }
        let local_unset = self.metric_name_validation_scheme.is_empty();
        match self.metric_name_validation_scheme.as_str() {
            "" => self.metric_name_validation_scheme = g.metric_name_validation_scheme.clone(),
            "utf8" | "legacy" => {}
            other => {
                return Err(VErr::new(p.key("metric_name_validation_scheme"), format!("unknown scrape config name validation method specified, must be either '', 'legacy' or 'utf8', got {other}")));
            }
        }
        if self.metric_name_escaping_scheme.is_empty() {
            self.metric_name_escaping_scheme = if local_unset {
                g.metric_name_escaping_scheme.clone()
            } else if self.metric_name_validation_scheme == "legacy" {
                "underscores".to_string()
            } else {
                "allow-utf-8".to_string()
            };
        }
        match self.metric_name_escaping_scheme.as_str() {
            "allow-utf-8" => {
                if self.metric_name_validation_scheme != "utf8" {
                    return Err(VErr::new(
                        p.key("metric_name_escaping_scheme"),
                        "utf8 metric names requested but validation scheme is not set to UTF8",
                    ));
                }
            }
            "underscores" | "dots" | "values" => {}
            other => {
                return Err(VErr::new(p.key("metric_name_escaping_scheme"), format!("unknown scrape config name escaping method specified, must be one of 'allow-utf-8', 'underscores', 'dots', or 'values', got {other:?}")));
            }
        }
        let scheme = self.name_validation_scheme();
        for (i, r) in self.relabel_configs.iter().enumerate() {
            r.validate(&p.key("relabel_configs").idx(i), scheme)?;
        }
        for (i, r) in self.metric_relabel_configs.iter().enumerate() {
            r.validate(&p.key("metric_relabel_configs").idx(i), scheme)?;
        }
        let has_relabel = !self.relabel_configs.is_empty();
        self.validate_sd(p, dir, scheme, has_relabel, w)?;
        self.validate_http(p, dir, w)
    }
}
