//! The `alerting` section: Alertmanagers, alert relabeling and the sonde
//! Telegram notifier extension.

use std::path::Path as FsPath;

use serde::{Deserialize, Serialize};

use super::duration::Duration;
use super::http::Secret;
use super::location::Path;
use super::relabel::RelabelConfig;
use super::scrape::with_sd;
use super::{default_true, join_dir, nullable, NameValidationScheme, VErr};

/// The `alerting` section.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertingConfig {
    /// Relabeling applied to every alert before it is sent.
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "nullable"
    )]
    pub alert_relabel_configs: Vec<RelabelConfig>,
    /// Alertmanagers to send alerts to.
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "nullable"
    )]
    pub alertmanagers: Vec<AlertmanagerConfig>,
    /// Built-in Telegram notifiers (sonde extension).
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "nullable"
    )]
    pub telegram_configs: Vec<TelegramConfig>,
}

with_sd! {
    /// One `alerting.alertmanagers` entry.
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct AlertmanagerConfig {
        /// `http` (default) or `https`.
        #[serde(default = "default_http")]
        pub scheme: String,
        /// Path prefix of the Alertmanager API.
        #[serde(default, skip_serializing_if = "String::is_empty")]
        pub path_prefix: String,
        /// Per-request timeout (default 10s).
        #[serde(default = "default_timeout")]
        pub timeout: Duration,
        /// API version; only `v2` is supported.
        #[serde(default = "default_api_version")]
        pub api_version: String,
        /// Relabeling of discovered Alertmanager targets.
        #[serde(default, skip_serializing_if = "Vec::is_empty", deserialize_with = "nullable")]
        pub relabel_configs: Vec<RelabelConfig>,
        /// Relabeling of alerts sent to this Alertmanager.
        #[serde(default, skip_serializing_if = "Vec::is_empty", deserialize_with = "nullable")]
        pub alert_relabel_configs: Vec<RelabelConfig>,
    }
}

fn default_http() -> String {
    "http".to_string()
}
fn default_timeout() -> Duration {
    Duration::from_secs(10)
}
fn default_api_version() -> String {
    "v2".to_string()
}

/// A Telegram notifier (Alertmanager `telegram_config` field names).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TelegramConfig {
    /// Bot token.
    #[serde(default, skip_serializing_if = "Secret::is_empty")]
    pub bot_token: Secret,
    /// File holding the bot token.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub bot_token_file: String,
    /// Chat id (negative for groups).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chat_id: Option<i64>,
    /// File holding the chat id.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub chat_id_file: String,
    /// Forum topic id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_thread_id: Option<i64>,
    /// Bot API base URL (default `https://api.telegram.org`).
    #[serde(default = "default_api_url")]
    pub api_url: String,
    /// `HTML` (default), `MarkdownV2`, `Markdown` or empty.
    #[serde(default = "default_parse_mode")]
    pub parse_mode: String,
    /// Message template; `None` = the default message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Send silently.
    #[serde(default)]
    pub disable_notifications: bool,
    /// Notify about resolved alerts (default true).
    #[serde(default = "default_true")]
    pub send_resolved: bool,
    /// How long to wait before repeating the notification for alerts that
    /// are still firing (Alertmanager's `route.repeat_interval`, default
    /// 4h; 0 = never repeat).
    #[serde(default = "default_repeat_interval")]
    pub repeat_interval: Duration,
}

fn default_repeat_interval() -> Duration {
    Duration::from_secs(4 * 3600)
}

fn default_api_url() -> String {
    "https://api.telegram.org".to_string()
}
fn default_parse_mode() -> String {
    "HTML".to_string()
}

impl TelegramConfig {
    fn validate(&mut self, p: &Path, dir: &FsPath) -> Result<(), VErr> {
        match (self.bot_token.is_empty(), self.bot_token_file.is_empty()) {
            (true, true) => {
                return Err(VErr::new(
                    p.clone(),
                    "missing bot_token or bot_token_file on telegram_config",
                ))
            }
            (false, false) => {
                return Err(VErr::new(
                    p.key("bot_token_file"),
                    "at most one of bot_token & bot_token_file must be configured",
                ))
            }
            _ => {}
        }
        match (self.chat_id.is_none(), self.chat_id_file.is_empty()) {
            (true, true) => {
                return Err(VErr::new(
                    p.clone(),
                    "missing chat_id or chat_id_file on telegram_config",
                ))
            }
            (false, false) => {
                return Err(VErr::new(
                    p.key("chat_id_file"),
                    "at most one of chat_id & chat_id_file must be configured",
                ))
            }
            _ => {}
        }
        if self.chat_id == Some(0) {
            return Err(VErr::new(p.key("chat_id"), "chat_id must not be 0"));
        }
        if !matches!(
            self.parse_mode.as_str(),
            "" | "HTML" | "MarkdownV2" | "Markdown"
        ) {
            return Err(VErr::new(p.key("parse_mode"), format!("unknown parse_mode {:?} on telegram_config, must be HTML, MarkdownV2, Markdown or empty", self.parse_mode)));
        }
        if !(self.api_url.starts_with("http://") || self.api_url.starts_with("https://")) {
            return Err(VErr::new(
                p.key("api_url"),
                format!("invalid api_url {:?}", self.api_url),
            ));
        }
        join_dir(&mut self.bot_token_file, dir);
        join_dir(&mut self.chat_id_file, dir);
        Ok(())
    }
}

impl AlertmanagerConfig {
    fn validate(
        &mut self,
        p: &Path,
        scheme: NameValidationScheme,
        dir: &FsPath,
        w: &mut Vec<(String, Path)>,
    ) -> Result<(), VErr> {
        if self.api_version != "v2" {
            return Err(VErr::new(
                p.key("api_version"),
                format!(
                    "expected Alertmanager api version to be one of [v2] but got {}",
                    self.api_version
                ),
            ));
        }
        if self.scheme != "http" && self.scheme != "https" {
            return Err(VErr::new(
                p.key("scheme"),
                format!("invalid scheme {:?}, must be http or https", self.scheme),
            ));
        }
        for (i, r) in self.relabel_configs.iter().enumerate() {
            r.validate(&p.key("relabel_configs").idx(i), scheme)?;
        }
        for (i, r) in self.alert_relabel_configs.iter().enumerate() {
            r.validate(&p.key("alert_relabel_configs").idx(i), scheme)?;
        }
        let has_relabel = !self.relabel_configs.is_empty();
        self.validate_sd(p, dir, scheme, has_relabel, w)?;
        self.validate_http(p, dir, w)
    }
}

impl AlertingConfig {
    pub(crate) fn validate(
        &mut self,
        p: &Path,
        scheme: NameValidationScheme,
        dir: &FsPath,
        w: &mut Vec<(String, Path)>,
    ) -> Result<(), VErr> {
        for (i, r) in self.alert_relabel_configs.iter().enumerate() {
            r.validate(&p.key("alert_relabel_configs").idx(i), scheme)?;
        }
        for (i, am) in self.alertmanagers.iter_mut().enumerate() {
            am.validate(&p.key("alertmanagers").idx(i), scheme, dir, w)?;
        }
        for (i, t) in self.telegram_configs.iter_mut().enumerate() {
            t.validate(&p.key("telegram_configs").idx(i), dir)?;
        }
        Ok(())
    }
}
