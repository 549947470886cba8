//! The `prometheus.yml` model, its loading and validation, and the web
//! config (`--web.config.file`).
//!
//! Errors name the file, line, column and field path, e.g.
//! `prometheus.yml:12:5: scrape_configs[1].scrape_timout: unknown field ...`.
//! Deserialization errors take their location from the YAML parser;
//! validation errors found afterwards are located through a second,
//! location-carrying parse of the same text (see [`location`]).

pub mod alerting;
pub mod duration;
pub mod http;
pub(crate) mod location;
pub mod relabel;
pub mod scrape;
pub mod web;

#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::{Path as FsPath, PathBuf};

use serde::de::IgnoredAny;
use serde::{Deserialize, Deserializer, Serialize};

pub use alerting::{AlertingConfig, AlertmanagerConfig, TelegramConfig};
pub use duration::{ByteSize, Duration, DurationError};
pub use http::{Authorization, BasicAuth, HttpClientConfig, Secret, TlsConfig, TlsVersion};
pub use relabel::{RelabelAction, RelabelConfig, RelabelRegex};
pub use scrape::{
    ConsulSdConfig, FileSdConfig, ScrapeConfig, ScrapeProtocol, StaticConfig,
    DEFAULT_SCRAPE_PROTOCOLS,
};
pub use web::{ClientAuthType, HttpServerConfig, TlsServerConfig, WebConfig};

use location::{LocTree, Path, Pos};

/// The configuration used when no `--config.file` is given.
pub const DEFAULT_CONFIG: &str = "\
# sonde default configuration
global:
  scrape_interval: 15s
  evaluation_interval: 15s

scrape_configs:
  - job_name: sonde
    static_configs:
      - targets: [\"localhost:9090\"]
  - job_name: node
    static_configs:
      - targets: [\"localhost:9100\"]
";

/// A configuration error: an unreadable file, or an invalid document with
/// its location.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{file}: {source}")]
    Io {
        /// File name.
        file: String,
        /// Underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The document is invalid.
    #[error("{}", fmt_invalid(file, *line, *column, path, message))]
    Invalid {
        /// File name.
        file: String,
        /// Line (1-based) when known.
        line: Option<u64>,
        /// Column (1-based) when known.
        column: Option<u64>,
        /// Field path such as `scrape_configs[1].scrape_timeout` (may be empty).
        path: String,
        /// What is wrong.
        message: String,
    },
}

fn fmt_invalid(
    file: &str,
    line: Option<u64>,
    column: Option<u64>,
    path: &str,
    message: &str,
) -> String {
    let mut s = file.to_string();
    if let Some(l) = line {
        s.push_str(&format!(":{l}"));
        if let Some(c) = column {
            s.push_str(&format!(":{c}"));
        }
    }
    s.push_str(": ");
    if !path.is_empty() {
        s.push_str(path);
        s.push_str(": ");
    }
    s.push_str(message);
    s
}

impl ConfigError {
    /// The file the error is about.
    pub fn file(&self) -> &str {
        match self {
            ConfigError::Io { file, .. } | ConfigError::Invalid { file, .. } => file,
        }
    }

    /// Line of the error, when known.
    pub fn line(&self) -> Option<u64> {
        match self {
            ConfigError::Invalid { line, .. } => *line,
            ConfigError::Io { .. } => None,
        }
    }

    /// Column of the error, when known.
    pub fn column(&self) -> Option<u64> {
        match self {
            ConfigError::Invalid { column, .. } => *column,
            ConfigError::Io { .. } => None,
        }
    }

    /// Field path of the error (empty for I/O errors and the document root).
    pub fn path(&self) -> &str {
        match self {
            ConfigError::Invalid { path, .. } => path,
            ConfigError::Io { .. } => "",
        }
    }

    /// The message without location.
    pub fn message(&self) -> String {
        match self {
            ConfigError::Invalid { message, .. } => message.clone(),
            ConfigError::Io { source, .. } => source.to_string(),
        }
    }
}

/// A validation error before it is located.
#[derive(Debug, Clone)]
pub(crate) struct VErr {
    pub(crate) path: Path,
    pub(crate) msg: String,
}

impl VErr {
    pub(crate) fn new(path: Path, msg: impl Into<String>) -> Self {
        VErr {
            path,
            msg: msg.into(),
        }
    }

    pub(crate) fn locate(self, file: &str, tree: &LocTree) -> ConfigError {
        let pos = tree.pos(&self.path);
        ConfigError::Invalid {
            file: file.to_string(),
            line: pos.map(|p| p.line),
            column: pos.map(|p| p.column),
            path: self.path.to_string(),
            message: self.msg,
        }
    }
}

/// Turns a YAML deserialization error into a located [`ConfigError`].
pub(crate) fn de_error(e: &serde_saphyr::Error, file: &str, tree: &LocTree) -> ConfigError {
    let mut msg = e.without_snippet().to_string();
    if let Some(i) = msg.rfind(" at line ") {
        if msg[i..].contains(", column ") {
            msg.truncate(i);
        }
    }
    let loc = e.location().filter(|l| l.line() > 0);
    let pos = loc.map(|l| Pos {
        line: l.line(),
        column: l.column(),
    });
    let unknown = msg
        .strip_prefix("unknown field `")
        .and_then(|r| r.split('`').next())
        .map(str::to_string);
    let path = match pos {
        Some(p) => tree
            .path_at(p, unknown.as_deref(), msg.starts_with("missing field"))
            .to_string(),
        None => String::new(),
    };
    ConfigError::Invalid {
        file: file.to_string(),
        line: pos.map(|p| p.line),
        column: pos.map(|p| p.column),
        path,
        message: msg,
    }
}

/// Metric and label name validation scheme.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum NameValidationScheme {
    /// Any non-empty UTF-8 name (Prometheus 3 default).
    #[default]
    Utf8,
    /// `[a-zA-Z_][a-zA-Z0-9_]*`.
    Legacy,
}

impl NameValidationScheme {
    /// `legacy` → [`NameValidationScheme::Legacy`], anything else UTF-8.
    pub fn from_config(s: &str) -> Self {
        if s == "legacy" {
            NameValidationScheme::Legacy
        } else {
            NameValidationScheme::Utf8
        }
    }
}

/// Whether `name` is a valid label name under `scheme`.
pub fn is_valid_label_name(name: &str, scheme: NameValidationScheme) -> bool {
    match scheme {
        NameValidationScheme::Utf8 => !name.is_empty(),
        NameValidationScheme::Legacy => {
            let b = name.as_bytes();
            !b.is_empty()
                && (b[0].is_ascii_alphabetic() || b[0] == b'_')
                && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'_')
        }
    }
}

/// Deserializes `null` as the type's default.
pub(crate) fn nullable<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

pub(crate) fn default_true() -> bool {
    true
}

/// Resolves a relative path against `dir` (Prometheus' `JoinDir`).
pub(crate) fn join_dir(s: &mut String, dir: &FsPath) {
    if s.is_empty() || FsPath::new(s.as_str()).is_absolute() {
        return;
    }
    if dir.as_os_str().is_empty() || dir == FsPath::new(".") {
        return;
    }
    *s = dir.join(s.as_str()).to_string_lossy().into_owned();
}

/// Expands `$VAR` and `${VAR}` like Go's `os.Expand` (used by Prometheus for
/// `external_labels`): `$$` is a literal `$`, unknown variables expand to
/// the empty string.
pub fn expand_env(s: &str, lookup: impl Fn(&str) -> Option<String>) -> String {
    let special = |c: u8| b"*#$@!?-0123456789".contains(&c);
    let alnum = |c: u8| c.is_ascii_alphanumeric() || c == b'_';
    let b = s.as_bytes();
    let mut out = String::with_capacity(s.len());
    let mut i = 0; // start of pending literal text
    let mut j = 0;
    while j < b.len() {
        if b[j] == b'$' && j + 1 < b.len() {
            out.push_str(&s[i..j]);
            let rest = &b[j + 1..];
            let (name, w): (&str, usize) = if rest[0] == b'{' {
                if rest.len() > 2 && special(rest[1]) && rest[2] == b'}' {
                    (&s[j + 2..j + 3], 3)
                } else {
                    match rest.iter().skip(1).position(|c| *c == b'}') {
                        Some(0) => ("", 2),
                        Some(k) => (&s[j + 2..j + 2 + k], k + 2),
                        None => ("", 1),
                    }
                }
            } else if special(rest[0]) {
                (&s[j + 1..j + 2], 1)
            } else {
                let n = rest.iter().take_while(|c| alnum(**c)).count();
                (&s[j + 1..j + 1 + n], n)
            };
            if name.is_empty() && w == 0 {
                out.push('$');
            } else if !name.is_empty() {
                if name == "$" {
                    out.push('$');
                } else {
                    out.push_str(&lookup(name).unwrap_or_default());
                }
            }
            j += w;
            i = j + 1;
        }
        j += 1;
    }
    if i < s.len() {
        out.push_str(&s[i..]);
    }
    out
}

/// The `global` section. After parsing every field holds its effective value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GlobalConfig {
    /// Default scrape interval (1m).
    #[serde(default)]
    pub scrape_interval: Duration,
    /// Default scrape timeout (10s, at most the interval).
    #[serde(default)]
    pub scrape_timeout: Duration,
    /// Default scrape protocols; empty = Prometheus' defaults.
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "scrape::nullable_protocols"
    )]
    pub scrape_protocols: Vec<ScrapeProtocol>,
    /// Default rule evaluation interval (1m).
    #[serde(default)]
    pub evaluation_interval: Duration,
    /// Default rule query offset (0s).
    #[serde(default)]
    pub rule_query_offset: Duration,
    /// PromQL query log file.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub query_log_file: String,
    /// Scrape failure log file.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub scrape_failure_log_file: String,
    /// Labels added to alerts and remote data, `${VAR}`-expanded.
    #[serde(
        default,
        skip_serializing_if = "BTreeMap::is_empty",
        deserialize_with = "nullable"
    )]
    pub external_labels: BTreeMap<String, String>,
    /// Default body size limit, 0 = none.
    #[serde(default, skip_serializing_if = "is_zero_size")]
    pub body_size_limit: ByteSize,
    /// Default sample limit, 0 = none.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub sample_limit: u64,
    /// Default target limit, 0 = none.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub target_limit: u64,
    /// Default label limit, 0 = none.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub label_limit: u64,
    /// Default label name length limit, 0 = none.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub label_name_length_limit: u64,
    /// Default label value length limit, 0 = none.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub label_value_length_limit: u64,
    /// Default number of dropped targets kept, 0 = all.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub keep_dropped_targets: u64,
    /// `utf8` (default) or `legacy`.
    #[serde(default)]
    pub metric_name_validation_scheme: String,
    /// `allow-utf-8` (default with utf8), `underscores`, `dots`, `values`.
    #[serde(default)]
    pub metric_name_escaping_scheme: String,
    /// Scrape native histograms by default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scrape_native_histograms: Option<bool>,
    /// Convert classic histograms to NHCB by default.
    #[serde(default)]
    pub convert_classic_histograms_to_nhcb: bool,
    /// Keep classic histograms alongside native ones by default.
    #[serde(default)]
    pub always_scrape_classic_histograms: bool,
    /// Extra scrape report metrics by default.
    #[serde(default)]
    pub extra_scrape_metrics: bool,
}

fn is_zero(v: &u64) -> bool {
    *v == 0
}
fn is_zero_size(v: &ByteSize) -> bool {
    v.0 == 0
}

impl Default for GlobalConfig {
    fn default() -> Self {
        GlobalConfig {
            scrape_interval: Duration::from_secs(60),
            scrape_timeout: Duration::from_secs(10),
            scrape_protocols: Vec::new(),
            evaluation_interval: Duration::from_secs(60),
            rule_query_offset: Duration::ZERO,
            query_log_file: String::new(),
            scrape_failure_log_file: String::new(),
            external_labels: BTreeMap::new(),
            body_size_limit: ByteSize(0),
            sample_limit: 0,
            target_limit: 0,
            label_limit: 0,
            label_name_length_limit: 0,
            label_value_length_limit: 0,
            keep_dropped_targets: 0,
            metric_name_validation_scheme: "utf8".to_string(),
            metric_name_escaping_scheme: "allow-utf-8".to_string(),
            scrape_native_histograms: Some(false),
            convert_classic_histograms_to_nhcb: false,
            always_scrape_classic_histograms: false,
            extra_scrape_metrics: false,
        }
    }
}

impl GlobalConfig {
    /// The effective name validation scheme.
    pub fn name_validation_scheme(&self) -> NameValidationScheme {
        NameValidationScheme::from_config(&self.metric_name_validation_scheme)
    }

    fn normalize(
        &mut self,
        p: &Path,
        dir: &FsPath,
        env: &dyn Fn(&str) -> Option<String>,
        w: &mut Vec<(String, Path)>,
    ) -> Result<(), VErr> {
        match self.metric_name_validation_scheme.as_str() {
            "utf8" | "legacy" => {}
            "" => self.metric_name_validation_scheme = "utf8".to_string(),
            other => {
                w.push((
                    format!("unknown metric_name_validation_scheme {other:?}, using \"utf8\""),
                    p.key("metric_name_validation_scheme"),
                ));
                self.metric_name_validation_scheme = "utf8".to_string();
            }
        }
        let scheme = self.name_validation_scheme();
        let mut expanded = BTreeMap::new();
        for (k, v) in &self.external_labels {
            if !is_valid_label_name(k, scheme) {
                return Err(VErr::new(
                    p.key("external_labels").key(k),
                    format!("{k:?} is not a valid label name"),
                ));
            }
            expanded.insert(k.clone(), expand_env(v, env));
        }
        self.external_labels = expanded;
        if self.scrape_interval.is_zero() {
            self.scrape_interval = Duration::from_secs(60);
        }
        if self.scrape_timeout > self.scrape_interval {
            return Err(VErr::new(
                p.key("scrape_timeout"),
                "global scrape timeout greater than scrape interval",
            ));
        }
        if self.scrape_timeout.is_zero() {
            self.scrape_timeout = Duration::from_secs(10).min(self.scrape_interval);
        }
        if self.evaluation_interval.is_zero() {
            self.evaluation_interval = Duration::from_secs(60);
        }
        if self.scrape_native_histograms.is_none() {
            self.scrape_native_histograms = Some(false);
        }
        scrape::validate_protocols(&self.scrape_protocols, &p.key("scrape_protocols"))?;
        match self.metric_name_escaping_scheme.as_str() {
            "" => {
                self.metric_name_escaping_scheme = if scheme == NameValidationScheme::Legacy {
                    "underscores".to_string()
                } else {
                    "allow-utf-8".to_string()
                }
            }
            "allow-utf-8" | "underscores" | "dots" | "values" => {}
            other => {
                return Err(VErr::new(p.key("metric_name_escaping_scheme"), format!("unknown global name escaping method specified, must be one of 'allow-utf-8', 'underscores', 'dots', or 'values', got {other:?}")));
            }
        }
        join_dir(&mut self.query_log_file, dir);
        join_dir(&mut self.scrape_failure_log_file, dir);
        Ok(())
    }
}

/// `storage.tsdb`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TsdbConfig {
    /// How far back out-of-order samples are accepted (0 = disabled).
    #[serde(default)]
    pub out_of_order_time_window: Duration,
    /// Retention settings (overriding the command-line flags).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention: Option<TsdbRetentionConfig>,
}

/// `storage.tsdb.retention`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TsdbRetentionConfig {
    /// Retention time.
    #[serde(default, skip_serializing_if = "Duration::is_zero")]
    pub time: Duration,
    /// Retention size.
    #[serde(default, skip_serializing_if = "is_zero_size")]
    pub size: ByteSize,
}

/// `storage.exemplars`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExemplarsConfig {
    /// Size of the exemplar ring buffer (default 100000; ≤ 0 disables).
    #[serde(default = "default_max_exemplars")]
    pub max_exemplars: i64,
}

fn default_max_exemplars() -> i64 {
    100_000
}

impl Default for ExemplarsConfig {
    fn default() -> Self {
        ExemplarsConfig {
            max_exemplars: default_max_exemplars(),
        }
    }
}

/// The `storage` section.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StorageConfig {
    /// TSDB settings.
    #[serde(default, deserialize_with = "nullable")]
    pub tsdb: TsdbConfig,
    /// Exemplar storage settings.
    #[serde(default, deserialize_with = "nullable")]
    pub exemplars: ExemplarsConfig,
}

/// The contents of a `scrape_config_files` file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ScrapeConfigsFile {
    #[serde(default, deserialize_with = "nullable")]
    scrape_configs: Vec<ScrapeConfig>,
}

/// The `prometheus.yml` model. Build it with [`Config::load`] or
/// [`Config::parse`]; afterwards defaults from `global` are applied to each
/// scrape config and relative paths are resolved against the config file's
/// directory.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Global defaults.
    #[serde(default, deserialize_with = "nullable")]
    pub global: GlobalConfig,
    /// Alerting.
    #[serde(default, deserialize_with = "nullable")]
    pub alerting: AlertingConfig,
    /// Rule file globs (resolved against the config directory).
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "nullable"
    )]
    pub rule_files: Vec<String>,
    /// Globs of files holding more `scrape_configs`.
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "nullable"
    )]
    pub scrape_config_files: Vec<String>,
    /// Scrape configs, including those loaded from `scrape_config_files`.
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "nullable"
    )]
    pub scrape_configs: Vec<ScrapeConfig>,
    /// Storage settings.
    #[serde(default, deserialize_with = "nullable")]
    pub storage: StorageConfig,
    #[serde(default, skip_serializing)]
    runtime: Option<IgnoredAny>,
    #[serde(default, skip_serializing)]
    tracing: Option<IgnoredAny>,
    #[serde(default, skip_serializing)]
    remote_write: Option<IgnoredAny>,
    #[serde(default, skip_serializing)]
    remote_read: Option<IgnoredAny>,
    #[serde(default, skip_serializing)]
    otlp: Option<IgnoredAny>,
    #[serde(skip)]
    warnings: Vec<String>,
    #[serde(skip)]
    base_dir: PathBuf,
}

fn rule_path_ok(s: &str) -> bool {
    // ^[^*]*(\*[^/]*)?$
    match s.find('*') {
        None => true,
        Some(i) => !s[i + 1..].contains('*') && !s[i + 1..].contains('/'),
    }
}

fn read_file(path: &FsPath) -> Result<String, ConfigError> {
    std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
        file: path.display().to_string(),
        source,
    })
}

fn parse_yaml<T: for<'de> Deserialize<'de>>(
    text: &str,
    file: &str,
    tree: &LocTree,
) -> Result<T, ConfigError> {
    let text = if tree.is_null() { "{}" } else { text };
    serde_saphyr::from_str::<T>(text).map_err(|e| de_error(&e, file, tree))
}

impl Config {
    /// Reads and validates a configuration file. Relative paths inside it
    /// are resolved against its directory.
    pub fn load(path: impl AsRef<FsPath>) -> Result<Config, ConfigError> {
        let path = path.as_ref();
        let text = read_file(path)?;
        let dir = path.parent().unwrap_or(FsPath::new(""));
        Config::parse(&text, &path.display().to_string(), dir)
    }

    /// Parses and validates configuration text. `file_name` is used in error
    /// messages; `base_dir` resolves relative paths. `${VAR}` in
    /// `external_labels` is expanded from the process environment.
    pub fn parse(
        text: &str,
        file_name: &str,
        base_dir: impl AsRef<FsPath>,
    ) -> Result<Config, ConfigError> {
        Config::parse_with_env(text, file_name, base_dir, &|k| std::env::var(k).ok())
    }

    /// Like [`Config::parse`] with an explicit environment lookup.
    pub fn parse_with_env(
        text: &str,
        file_name: &str,
        base_dir: impl AsRef<FsPath>,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        let dir = base_dir.as_ref();
        let tree = LocTree::parse(text);
        let mut cfg: Config = parse_yaml(text, file_name, &tree)?;
        cfg.base_dir = dir.to_path_buf();
        let mut w: Vec<(String, Path)> = Vec::new();
        cfg.validate(dir, env, &mut w)
            .map_err(|e| e.locate(file_name, &tree))?;
        cfg.warnings = w
            .into_iter()
            .map(|(msg, path)| locate_warning(file_name, &tree, &path, &msg))
            .collect();
        cfg.load_scrape_config_files()?;
        Ok(cfg)
    }

    /// The built-in [`DEFAULT_CONFIG`], parsed.
    pub fn default_config() -> Config {
        Config::parse(DEFAULT_CONFIG, "<default config>", "")
            .unwrap_or_else(|e| panic!("DEFAULT_CONFIG is invalid: {e}"))
    }

    fn validate(
        &mut self,
        dir: &FsPath,
        env: &dyn Fn(&str) -> Option<String>,
        w: &mut Vec<(String, Path)>,
    ) -> Result<(), VErr> {
        let root = Path::root();
        for (name, present) in [
            ("runtime", self.runtime.is_some()),
            ("tracing", self.tracing.is_some()),
            ("remote_write", self.remote_write.is_some()),
            ("remote_read", self.remote_read.is_some()),
            ("otlp", self.otlp.is_some()),
        ] {
            if present {
                w.push((
                    format!("section {name} is not supported by sonde and is ignored"),
                    root.key(name),
                ));
            }
        }
        self.global.normalize(&root.key("global"), dir, env, w)?;
        for (i, rf) in self.rule_files.iter_mut().enumerate() {
            if !rule_path_ok(rf) {
                return Err(VErr::new(
                    root.key("rule_files").idx(i),
                    format!("invalid rule file path {rf:?}"),
                ));
            }
            join_dir(rf, dir);
        }
        for (i, sf) in self.scrape_config_files.iter_mut().enumerate() {
            if !rule_path_ok(sf) {
                return Err(VErr::new(
                    root.key("scrape_config_files").idx(i),
                    format!("invalid scrape config file path {sf:?}"),
                ));
            }
            join_dir(sf, dir);
        }
        let mut jobs: HashMap<String, usize> = HashMap::new();
        for (i, sc) in self.scrape_configs.iter_mut().enumerate() {
            let p = root.key("scrape_configs").idx(i);
            sc.validate(&p, &self.global, dir, w)?;
            if jobs.insert(sc.job_name.clone(), i).is_some() {
                return Err(VErr::new(
                    p.key("job_name"),
                    format!(
                        "found multiple scrape configs with job name {:?}",
                        sc.job_name
                    ),
                ));
            }
        }
        self.alerting.validate(
            &root.key("alerting"),
            self.global.name_validation_scheme(),
            dir,
            w,
        )?;
        Ok(())
    }

    fn load_scrape_config_files(&mut self) -> Result<(), ConfigError> {
        let mut seen: HashMap<String, String> = self
            .scrape_configs
            .iter()
            .map(|s| (s.job_name.clone(), "main config file".to_string()))
            .collect();
        for pat in self.scrape_config_files.clone() {
            let files = glob_sorted(&pat).map_err(|message| ConfigError::Invalid {
                file: pat.clone(),
                line: None,
                column: None,
                path: "scrape_config_files".to_string(),
                message,
            })?;
            for f in files {
                let fname = f.display().to_string();
                let text = read_file(&f)?;
                let tree = LocTree::parse(&text);
                let parsed: ScrapeConfigsFile = parse_yaml(&text, &fname, &tree)?;
                let dir = f.parent().unwrap_or(FsPath::new("")).to_path_buf();
                let mut w = Vec::new();
                for (i, mut sc) in parsed.scrape_configs.into_iter().enumerate() {
                    let p = Path::root().key("scrape_configs").idx(i);
                    sc.validate(&p, &self.global, &dir, &mut w)
                        .map_err(|e| e.locate(&fname, &tree))?;
                    if let Some(first) = seen.get(&sc.job_name) {
                        return Err(VErr::new(p.key("job_name"), format!("found multiple scrape configs with job name {:?}, first found in {first}", sc.job_name)).locate(&fname, &tree));
                    }
                    seen.insert(sc.job_name.clone(), format!("{fname:?}"));
                    self.scrape_configs.push(sc);
                }
                self.warnings.extend(
                    w.into_iter()
                        .map(|(msg, path)| locate_warning(&fname, &tree, &path, &msg)),
                );
            }
        }
        Ok(())
    }

    /// Warnings about accepted but unsupported sections, each as
    /// `file:line:col: path: message`.
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// The directory relative paths were resolved against.
    pub fn base_dir(&self) -> &FsPath {
        &self.base_dir
    }

    /// The rule files matched by `rule_files`, sorted and deduplicated. A
    /// pattern that matches nothing is not an error.
    pub fn resolve_rule_files(&self) -> Result<Vec<PathBuf>, ConfigError> {
        let mut out = Vec::new();
        for pat in &self.rule_files {
            out.extend(glob_sorted(pat).map_err(|message| ConfigError::Invalid {
                file: pat.clone(),
                line: None,
                column: None,
                path: "rule_files".to_string(),
                message,
            })?);
        }
        out.sort();
        out.dedup();
        Ok(out)
    }

    /// The configuration as YAML with every secret shown as `<secret>`, for
    /// `/api/v1/status/config`.
    pub fn to_yaml_redacted(&self) -> String {
        serde_saphyr::to_string(self).unwrap_or_else(|e| format!("# error rendering config: {e}\n"))
    }

    /// The scrape config with the given job name.
    pub fn scrape_config(&self, job_name: &str) -> Option<&ScrapeConfig> {
        self.scrape_configs.iter().find(|s| s.job_name == job_name)
    }
}

fn locate_warning(file: &str, tree: &LocTree, path: &Path, msg: &str) -> String {
    let pos = tree.pos(path);
    fmt_invalid(
        file,
        pos.map(|p| p.line),
        pos.map(|p| p.column),
        &path.to_string(),
        msg,
    )
}

/// Expands a glob into the sorted list of existing paths it matches.
pub fn glob_sorted(pattern: &str) -> Result<Vec<PathBuf>, String> {
    let paths = glob::glob(pattern).map_err(|e| format!("invalid glob {pattern:?}: {e}"))?;
    let mut v: Vec<PathBuf> = paths.filter_map(Result::ok).collect();
    v.sort();
    Ok(v)
}

impl fmt::Display for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_yaml_redacted())
    }
}
