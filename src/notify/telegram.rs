//! Notifications straight to Telegram (`alerting.telegram_configs`, a sonde
//! extension whose fields are named as in Alertmanager's `telegram_config`).
//!
//! # What is sent
//!
//! Each notifier follows the alerts [`super::Notifier::send`] hands it,
//! grouped by rule (one Alertmanager group per rule), and sends:
//!
//! * one **FIRING** message per rule and call of `send` listing the alerts
//!   of that rule that started firing (an alert that fires again after a
//!   resolution, or with a new `starts_at`, counts as new); the repeated
//!   sends of a still-firing alert by the rule side are not messages;
//! * one **RESOLVED** message per rule and call listing the alerts that
//!   resolved, if `send_resolved` (default true) — only for alerts whose
//!   firing was notified; a firing alert whose `ends_at` passes without a
//!   re-send is resolved too (Alertmanager does the same);
//! * a **repeat** of the FIRING message listing every alert of the rule
//!   still firing, `repeat_interval` (default 4h, 0 = never) after the last
//!   FIRING message of that rule.
//!
//! # Default message
//!
//! With the default `parse_mode: HTML` (MarkdownV2, Markdown and plain text
//! are rendered alike, with their own markup):
//!
//! ```text
//! 🔥 <b>FIRING</b>: <b>HostDown</b> (2 alerts)
//!
//! <b>Summary:</b> 10.0.0.5:9100 is down
//! <b>Description:</b> node/10.0.0.5:9100 has been down for 5 minutes
//! <b>runbook_url:</b> https://wiki/HostDown
//! <b>Labels:</b>
//!   • instance: 10.0.0.5:9100
//!   • job: node
//! <b>Started:</b> 2024-06-10 08:00:00 UTC
//! <a href="http://sonde:9090/graph?g0.expr=...">Source</a>
//!
//! ...the next alert...
//! ```
//!
//! A resolution starts with `✅ <b>RESOLVED</b>: ...` and adds
//! `<b>Resolved:</b> <time>`. At most [`MAX_LISTED_ALERTS`] alerts are
//! described, the others counted (`…and 5 more alerts.`); a new-firing
//! message ends with how many other alerts of the rule still fire. Label
//! and annotation values are escaped for the parse mode (HTML: `&`, `<`,
//! `>`; MarkdownV2: the 18 special characters and `\`; Markdown: `_`, `*`,
//! `` ` ``, `[`). `alertname` is in the title and not repeated in the
//! labels. Alertmanager's default (`Alerts Firing:` / `Alerts Resolved:`
//! lists) is available as a custom template, see below.
//!
//! A custom `message` is a Go template (Alertmanager's functions, see
//! [`crate::template`]) over Alertmanager's notification data
//! (`*template.Data`: `Receiver` (`telegram/<index>`), `Status`, `Alerts`
//! with `.Firing`/`.Resolved` and per alert `Status`, `Labels`,
//! `Annotations`, `StartsAt`, `EndsAt`, `GeneratorURL`, `Fingerprint`;
//! `GroupLabels` (`alertname`), `CommonLabels`, `CommonAnnotations`,
//! `ExternalURL`), with Alertmanager's default templates available
//! ([`ALERTMANAGER_TEMPLATES`]: `{{ template "telegram.default.message" . }}`
//! gives Alertmanager's message). As in Alertmanager, with `parse_mode:
//! HTML` the data's strings are HTML-escaped (as `html/template` prints
//! them) and the template's own text is sent as written; with the other
//! modes nothing is escaped. A template that does not parse is logged once,
//! one that fails to execute at each message; the default message is then
//! sent, so that a template mistake never silences an alert. A template
//! that renders only blanks sends nothing (logged).
//!
//! # Delivery
//!
//! `POST <api_url>/bot<token>/sendMessage` with JSON `{chat_id, text,
//! parse_mode, message_thread_id, disable_notification,
//! link_preview_options: {is_disabled: true}}`. Texts longer than 4096
//! UTF-16 code units after entity parsing (Telegram's limit: markup does
//! not count, an entity or escape sequence counts as one character) are
//! split into several messages, preferably at line breaks, never inside a
//! tag, an HTML entity, an escape sequence or a Markdown link; formatting
//! still open at a cut is closed and reopened in the next part.
//!
//! Messages of one notifier go out one at a time, in order, at most one per
//! second (every 3 s for group chats, whose limit is 20 per minute). Network
//! errors, timeouts, 5xx and 429 are retried with exponential backoff (1 s,
//! 2 s, 4 s, ... up to 30 s, 5 attempts in all); a 429's
//! `parameters.retry_after` is waited instead. A group upgraded to a
//! supergroup (`parameters.migrate_to_chat_id`) is followed, with a warning
//! to update `chat_id`. Other errors are not retried. Every failure is
//! logged (never with the token) and counted. The bot token and chat id
//! files are read for every message, so they can be rotated.

use std::collections::{BTreeMap, VecDeque};
use std::fmt::Write as _;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::{Alert, NotifierStats};
use crate::config::TelegramConfig;
use crate::http_client::HttpClient;
use crate::template::{Dialect, Env, Template, Value as TValue};

/// Telegram's limit on a message's text: characters after entity parsing,
/// counted in UTF-16 code units as Telegram does (see [`visible_length`]).
pub const MAX_MESSAGE_LEN: usize = 4096;

/// Most alerts described in one notification; the rest are counted (an
/// alert storm must not become dozens of messages, Telegram allows 20 a
/// minute in a group).
pub const MAX_LISTED_ALERTS: usize = 20;

/// How long a resolved alert is remembered (the rule side re-sends resolved
/// alerts for 15 minutes; those re-sends must not become messages).
const RESOLVED_RETENTION: Duration = Duration::from_secs(3600);

/// Most messages waiting in one notifier's outbox; the oldest are dropped.
const OUTBOX_CAPACITY: usize = 1000;

/// Most `send` batches waiting for the grouping task; the oldest are dropped.
const INBOX_CAPACITY: usize = 10_000;

/// Retries and pacing of Telegram messages.
#[derive(Debug, Clone)]
pub struct TelegramTiming {
    /// Attempts per message, the first included (5).
    pub max_attempts: u32,
    /// First backoff after a failure (1 s); doubles after each retry.
    pub initial_backoff: Duration,
    /// Longest backoff (30 s).
    pub max_backoff: Duration,
    /// Longest `retry_after` obeyed (5 min); longer ones are shortened.
    pub max_retry_after: Duration,
    /// Smallest spacing of messages to one chat; `None` = 1 s for private
    /// chats and 3 s for groups (negative chat ids).
    pub min_interval: Option<Duration>,
    /// Timeout of one request (15 s).
    pub request_timeout: Duration,
    /// How often repeats and expired alerts are checked (1 s).
    pub tick: Duration,
}

impl Default for TelegramTiming {
    fn default() -> Self {
        TelegramTiming {
            max_attempts: 5,
            initial_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(30),
            max_retry_after: Duration::from_secs(300),
            min_interval: None,
            request_timeout: Duration::from_secs(15),
            tick: Duration::from_secs(1),
        }
    }
}

// ---------------------------------------------------------------------------
// Parse modes and escaping

/// Telegram's `parse_mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParseMode {
    /// `HTML` (the default).
    Html,
    /// `MarkdownV2`.
    MarkdownV2,
    /// `Markdown` (legacy).
    Markdown,
    /// No parse mode: plain text.
    Plain,
}

impl ParseMode {
    /// From the configuration value (`HTML`, `MarkdownV2`, `Markdown`, empty).
    pub fn from_config(s: &str) -> ParseMode {
        match s {
            "HTML" => ParseMode::Html,
            "MarkdownV2" => ParseMode::MarkdownV2,
            "Markdown" => ParseMode::Markdown,
            _ => ParseMode::Plain,
        }
    }

    /// The `parse_mode` value sent to the API (`None` for plain text).
    pub fn api_name(self) -> Option<&'static str> {
        match self {
            ParseMode::Html => Some("HTML"),
            ParseMode::MarkdownV2 => Some("MarkdownV2"),
            ParseMode::Markdown => Some("Markdown"),
            ParseMode::Plain => None,
        }
    }
}

/// Characters MarkdownV2 requires escaping outside entities, `\` included.
const MDV2_SPECIAL: &str = "_*[]()~`>#+-=|{}.!\\";

/// Escapes text so that the parse mode shows it literally.
pub fn escape(s: &str, mode: ParseMode) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match mode {
            ParseMode::Html => match c {
                '&' => out.push_str("&amp;"),
                '<' => out.push_str("&lt;"),
                '>' => out.push_str("&gt;"),
                c => out.push(c),
            },
            ParseMode::MarkdownV2 => {
                if MDV2_SPECIAL.contains(c) {
                    out.push('\\');
                }
                out.push(c);
            }
            ParseMode::Markdown => {
                if matches!(c, '_' | '*' | '`' | '[') {
                    out.push('\\');
                }
                out.push(c);
            }
            ParseMode::Plain => out.push(c),
        }
    }
    out
}

/// Bold text (escaped here).
fn bold(s: &str, mode: ParseMode) -> String {
    match mode {
        ParseMode::Html => format!("<b>{}</b>", escape(s, mode)),
        ParseMode::MarkdownV2 => format!("*{}*", escape(s, mode)),
        // Legacy Markdown cannot escape inside an entity.
        ParseMode::Markdown if s.contains(['*', '_', '`', '[']) => escape(s, mode),
        ParseMode::Markdown => format!("*{s}*"),
        ParseMode::Plain => s.to_string(),
    }
}

/// Italic text (escaped here).
fn italic(s: &str, mode: ParseMode) -> String {
    match mode {
        ParseMode::Html => format!("<i>{}</i>", escape(s, mode)),
        ParseMode::MarkdownV2 => format!("_{}_", escape(s, mode)),
        ParseMode::Markdown if s.contains(['*', '_', '`', '[']) => escape(s, mode),
        ParseMode::Markdown => format!("_{s}_"),
        ParseMode::Plain => s.to_string(),
    }
}

/// A link with text `text` (escaped here).
fn link(text: &str, url: &str, mode: ParseMode) -> String {
    match mode {
        ParseMode::Html => {
            let href = escape(url, mode).replace('"', "&quot;");
            format!("<a href=\"{href}\">{}</a>", escape(text, mode))
        }
        ParseMode::MarkdownV2 => {
            let mut u = String::with_capacity(url.len());
            for c in url.chars() {
                if c == ')' || c == '\\' {
                    u.push('\\');
                }
                u.push(c);
            }
            format!("[{}]({u})", escape(text, mode))
        }
        ParseMode::Markdown if !url.contains(')') => format!("[{text}]({url})"),
        ParseMode::Markdown | ParseMode::Plain => {
            format!("{}: {}", escape(text, mode), escape(url, mode))
        }
    }
}

// ---------------------------------------------------------------------------
// Splitting

/// How a token of a formatted text affects splitting.
#[derive(Debug, Clone, PartialEq)]
enum Effect {
    /// Ordinary character(s).
    Text,
    /// A line break (preferred cut).
    Newline,
    /// A space (second choice).
    Space,
    /// Opens an entity that must be closed (`close`) at a cut and reopened
    /// (`reopen`) after it; `breakable` = false forbids cuts inside.
    Open {
        key: String,
        reopen: String,
        close: String,
        breakable: bool,
    },
    /// Closes the innermost open entity `key`.
    Close { key: String },
    /// Opens `key` unless it is open, else closes it (Markdown markers).
    Toggle {
        key: String,
        reopen: String,
        close: String,
    },
}

#[derive(Debug, Clone)]
struct Token<'a> {
    raw: &'a str,
    effect: Effect,
}

#[derive(Debug, Clone, PartialEq)]
struct OpenEntity {
    key: String,
    reopen: String,
    close: String,
    breakable: bool,
}

fn apply(stack: &mut Vec<OpenEntity>, e: &Effect) {
    match e {
        Effect::Open {
            key,
            reopen,
            close,
            breakable,
        } => stack.push(OpenEntity {
            key: key.clone(),
            reopen: reopen.clone(),
            close: close.clone(),
            breakable: *breakable,
        }),
        Effect::Close { key } => {
            if let Some(i) = stack.iter().rposition(|o| o.key == *key) {
                stack.truncate(i);
            }
        }
        Effect::Toggle { key, reopen, close } => {
            if let Some(i) = stack.iter().rposition(|o| o.key == *key) {
                stack.truncate(i);
            } else {
                stack.push(OpenEntity {
                    key: key.clone(),
                    reopen: reopen.clone(),
                    close: close.clone(),
                    breakable: true,
                });
            }
        }
        _ => {}
    }
}

fn simple_token(s: &str, start: usize, c: char) -> Token<'_> {
    let raw = &s[start..start + c.len_utf8()];
    let effect = match c {
        '\n' => Effect::Newline,
        ' ' => Effect::Space,
        _ => Effect::Text,
    };
    Token { raw, effect }
}

fn tokenize_html(s: &str) -> Vec<Token<'_>> {
    let mut out = Vec::new();
    let b = s.as_bytes();
    let mut i = 0;
    while i < s.len() {
        let rest = &s[i..];
        if b[i] == b'<' {
            if let Some(end) = rest.find('>') {
                let raw = &rest[..=end];
                let inner = &raw[1..raw.len() - 1];
                let (closing, inner) = match inner.strip_prefix('/') {
                    Some(x) => (true, x),
                    None => (false, inner),
                };
                let name: String = inner
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '-')
                    .collect::<String>()
                    .to_ascii_lowercase();
                let effect = if name.is_empty() || inner.ends_with('/') {
                    Effect::Text
                } else if closing {
                    Effect::Close { key: name }
                } else {
                    Effect::Open {
                        close: format!("</{name}>"),
                        key: name,
                        reopen: raw.to_string(),
                        breakable: true,
                    }
                };
                out.push(Token { raw, effect });
                i += raw.len();
                continue;
            }
        }
        if b[i] == b'&' {
            let n = rest
                .char_indices()
                .skip(1)
                .take(10)
                .find(|(_, c)| !(c.is_ascii_alphanumeric() || *c == '#'));
            if let Some((j, ';')) = n {
                if j > 1 {
                    out.push(Token {
                        raw: &rest[..=j],
                        effect: Effect::Text,
                    });
                    i += j + 1;
                    continue;
                }
            }
        }
        let c = rest.chars().next().unwrap_or(' ');
        out.push(simple_token(s, i, c));
        i += c.len_utf8();
    }
    out
}

fn toggle(key: &str) -> Effect {
    Effect::Toggle {
        key: key.to_string(),
        reopen: key.to_string(),
        close: key.to_string(),
    }
}

/// Tokenizes MarkdownV2 (`v2`) or legacy Markdown.
fn tokenize_markdown(s: &str, v2: bool) -> Vec<Token<'_>> {
    let mut out = Vec::new();
    let mut i = 0;
    // Inside `code` or ```pre```: the closing marker.
    let mut code: Option<&'static str> = None;
    // Inside the text of a link (`[` seen, `](url)` not yet).
    let mut link_open = false;
    while i < s.len() {
        let rest = &s[i..];
        let c = rest.chars().next().unwrap_or(' ');
        // Escapes: `\x` (legacy Markdown: only `_*`[`, outside code).
        if c == '\\' && (v2 || code.is_none()) {
            let next = rest[1..].chars().next();
            if let Some(n) = next.filter(|n| v2 || matches!(n, '_' | '*' | '`' | '[')) {
                let len = 1 + n.len_utf8();
                out.push(Token {
                    raw: &rest[..len],
                    effect: Effect::Text,
                });
                i += len;
                continue;
            }
        }
        if let Some(marker) = code {
            if rest.starts_with(marker) {
                out.push(Token {
                    raw: &rest[..marker.len()],
                    effect: Effect::Close {
                        key: marker.to_string(),
                    },
                });
                i += marker.len();
                code = None;
            } else {
                out.push(simple_token(s, i, c));
                i += c.len_utf8();
            }
            continue;
        }
        if let Some(after) = rest.strip_prefix("```") {
            // The language runs to the end of the line.
            let lang_end = after.find('\n').map_or(rest.len(), |p| p + 3);
            let raw = &rest[..lang_end];
            out.push(Token {
                raw,
                effect: Effect::Open {
                    key: "```".into(),
                    reopen: format!("{raw}\n"),
                    close: "```".into(),
                    breakable: true,
                },
            });
            code = Some("```");
            i += raw.len();
            continue;
        }
        if c == '`' {
            out.push(Token {
                raw: &rest[..1],
                effect: Effect::Open {
                    key: "`".into(),
                    reopen: "`".into(),
                    close: "`".into(),
                    breakable: true,
                },
            });
            code = Some("`");
            i += 1;
            continue;
        }
        if c == '[' && !link_open {
            link_open = true;
            out.push(Token {
                raw: &rest[..1],
                effect: Effect::Open {
                    key: "[".into(),
                    reopen: String::new(),
                    close: String::new(),
                    breakable: false,
                },
            });
            i += 1;
            continue;
        }
        if link_open && rest.starts_with("](") {
            // The URL runs to the first unescaped `)`.
            let mut end = None;
            let mut esc = false;
            for (j, ch) in rest.char_indices().skip(2) {
                if esc {
                    esc = false;
                } else if ch == '\\' && v2 {
                    esc = true;
                } else if ch == ')' {
                    end = Some(j);
                    break;
                }
            }
            if let Some(j) = end {
                link_open = false;
                out.push(Token {
                    raw: &rest[..=j],
                    effect: Effect::Close { key: "[".into() },
                });
                i += j + 1;
                continue;
            }
        }
        if v2 {
            if let Some(m) = ["||", "__"].into_iter().find(|m| rest.starts_with(m)) {
                out.push(Token {
                    raw: &rest[..2],
                    effect: toggle(m),
                });
                i += 2;
                continue;
            }
        }
        let marker = match c {
            '*' | '_' => true,
            '~' => v2,
            _ => false,
        };
        if marker {
            out.push(Token {
                raw: &rest[..1],
                effect: toggle(&rest[..1]),
            });
            i += 1;
            continue;
        }
        out.push(simple_token(s, i, c));
        i += c.len_utf8();
    }
    out
}

fn tokenize(s: &str, mode: ParseMode) -> Vec<Token<'_>> {
    match mode {
        ParseMode::Html => tokenize_html(s),
        ParseMode::MarkdownV2 => tokenize_markdown(s, true),
        ParseMode::Markdown => tokenize_markdown(s, false),
        ParseMode::Plain => s
            .char_indices()
            .map(|(i, c)| simple_token(s, i, c))
            .collect(),
    }
}

fn utf16_len(s: &str) -> usize {
    s.encode_utf16().count()
}

/// Length of a token once Telegram has parsed the markup: markup counts
/// nothing, an HTML entity or an escape sequence one character.
fn visible_len(t: &Token<'_>, mode: ParseMode) -> usize {
    match t.effect {
        Effect::Open { .. } | Effect::Close { .. } | Effect::Toggle { .. } => 0,
        Effect::Newline | Effect::Space => 1,
        Effect::Text => {
            let escaped = t.raw.len() > 1
                && match mode {
                    ParseMode::Html => t.raw.starts_with('&'),
                    ParseMode::MarkdownV2 | ParseMode::Markdown => t.raw.starts_with('\\'),
                    ParseMode::Plain => false,
                };
            if escaped && mode == ParseMode::Html {
                1
            } else if escaped {
                utf16_len(t.raw) - 1
            } else {
                utf16_len(t.raw)
            }
        }
    }
}

/// The length of a formatted text after Telegram parses it (UTF-16 code
/// units), the measure of [`MAX_MESSAGE_LEN`].
pub fn visible_length(text: &str, mode: ParseMode) -> usize {
    tokenize(text, mode)
        .iter()
        .map(|t| visible_len(t, mode))
        .sum()
}

/// A possible cut: before token `at`, with these entities open, after
/// `len` visible code units of the part.
#[derive(Clone)]
struct Cut {
    at: usize,
    stack: Vec<OpenEntity>,
    len: usize,
}

/// Splits a formatted text into parts of at most `limit` UTF-16 code units
/// once parsed ([`visible_length`]; see the module documentation). Leading
/// and trailing line breaks of the parts are removed and empty parts
/// dropped.
pub fn split_message(text: &str, mode: ParseMode, limit: usize) -> Vec<String> {
    let text = text.trim_matches('\n');
    if text.trim().is_empty() {
        return Vec::new();
    }
    let tokens = tokenize(text, mode);
    let lens: Vec<usize> = tokens.iter().map(|t| visible_len(t, mode)).collect();
    if lens.iter().sum::<usize>() <= limit {
        return vec![text.to_string()];
    }
    let n = tokens.len();
    let mut parts = Vec::new();
    let mut i = 0;
    let mut stack: Vec<OpenEntity> = Vec::new();
    while i < n {
        if !parts.is_empty() {
            while i < n && matches!(tokens[i].effect, Effect::Newline | Effect::Space) {
                i += 1;
            }
            if i >= n {
                break;
            }
        }
        let prefix: String = stack.iter().map(|o| o.reopen.as_str()).collect();
        let mut len = 0;
        let mut st = stack.clone();
        // Best cuts by kind: line break, space, anywhere.
        let mut best: [Option<Cut>; 3] = [None, None, None];
        let mut j = i;
        let end = loop {
            if j == n {
                break Cut {
                    at: n,
                    stack: st,
                    len,
                };
            }
            let t = &tokens[j];
            // Not right before a closing marker (it would leave an empty
            // entity in the next part).
            let closes = match &t.effect {
                Effect::Close { key } | Effect::Toggle { key, .. } => {
                    st.iter().any(|o| o.key == *key)
                }
                _ => false,
            };
            if j > i && !closes && st.iter().all(|o| o.breakable) {
                let kind = match t.effect {
                    Effect::Newline => 0,
                    Effect::Space => 1,
                    _ => 2,
                };
                best[kind] = Some(Cut {
                    at: j,
                    stack: st.clone(),
                    len,
                });
            }
            let mut next = st.clone();
            apply(&mut next, &t.effect);
            let next_len = len + lens[j];
            if j > i && next_len > limit {
                // A break in the second half of the part, else a space
                // there, else the latest possible cut.
                let half = limit / 2;
                let pick = best[0]
                    .clone()
                    .filter(|c| c.len >= half)
                    .or_else(|| best[1].clone().filter(|c| c.len >= half))
                    .or_else(|| best.iter().flatten().max_by_key(|c| c.at).cloned());
                break pick.unwrap_or(Cut {
                    at: j,
                    stack: st,
                    len,
                });
            }
            st = next;
            len = next_len;
            j += 1;
        };
        let mut last = end.at;
        while last > i && matches!(tokens[last - 1].effect, Effect::Newline | Effect::Space) {
            last -= 1;
        }
        let mut part = prefix;
        for t in &tokens[i..last] {
            part.push_str(t.raw);
        }
        for o in end.stack.iter().rev() {
            part.push_str(&o.close);
        }
        if !part.trim().is_empty() {
            parts.push(part);
        }
        i = end.at;
        stack = end.stack;
    }
    parts
}

// ---------------------------------------------------------------------------
// Grouping

/// Kind of a notification.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Alerts firing.
    Firing,
    /// Alerts resolved.
    Resolved,
}

impl Status {
    fn as_str(self) -> &'static str {
        match self {
            Status::Firing => "firing",
            Status::Resolved => "resolved",
        }
    }
}

/// One message-worth of alerts of one rule.
#[derive(Debug, Clone, PartialEq)]
pub struct Notification {
    /// Firing or resolved.
    pub status: Status,
    /// The rule (the group key).
    pub rule: String,
    /// The alerts, sorted by labels.
    pub alerts: Vec<Alert>,
    /// Other alerts of the rule still firing, not listed (new-firing
    /// messages only).
    pub others_firing: usize,
}

#[derive(Debug)]
struct Tracked {
    alert: Alert,
    /// When the resolution was seen (the alert is then kept for a while so
    /// that re-sent resolutions are ignored).
    resolved_at: Option<Instant>,
}

#[derive(Debug, Default)]
struct Group {
    alerts: BTreeMap<BTreeMap<String, String>, Tracked>,
    /// Last FIRING message of the group, while anything fires.
    last_firing: Option<Instant>,
}

impl Group {
    fn firing(&self) -> impl Iterator<Item = &Alert> {
        self.alerts
            .values()
            .filter(|t| t.resolved_at.is_none())
            .map(|t| &t.alert)
    }
}

/// The per-rule state of one Telegram notifier: which alerts were notified
/// and when (see the module documentation). Pure logic, driven by
/// [`GroupingState::ingest`] and [`GroupingState::tick`].
#[derive(Debug)]
pub struct GroupingState {
    send_resolved: bool,
    repeat_interval: Duration,
    groups: BTreeMap<String, Group>,
}

impl GroupingState {
    /// Empty state.
    pub fn new(send_resolved: bool, repeat_interval: Duration) -> Self {
        GroupingState {
            send_resolved,
            repeat_interval,
            groups: BTreeMap::new(),
        }
    }

    /// Takes one `send` batch; returns the notifications it causes.
    pub fn ingest(&mut self, batch: &[Alert], now: Instant) -> Vec<Notification> {
        let mut fired: BTreeMap<&str, Vec<Alert>> = BTreeMap::new();
        let mut resolved: BTreeMap<&str, Vec<Alert>> = BTreeMap::new();
        for a in batch {
            let g = self.groups.entry(a.rule.clone()).or_default();
            match g.alerts.get_mut(&a.labels) {
                Some(t) if t.resolved_at.is_none() => {
                    if a.resolved {
                        t.resolved_at = Some(now);
                        t.alert = a.clone();
                        resolved.entry(&a.rule).or_default().push(a.clone());
                    } else if t.alert.starts_at == a.starts_at {
                        t.alert = a.clone();
                    } else {
                        // A new episode whose resolution we did not see.
                        t.alert = a.clone();
                        fired.entry(&a.rule).or_default().push(a.clone());
                    }
                }
                _ if a.resolved => {}
                _ => {
                    g.alerts.insert(
                        a.labels.clone(),
                        Tracked {
                            alert: a.clone(),
                            resolved_at: None,
                        },
                    );
                    fired.entry(&a.rule).or_default().push(a.clone());
                }
            }
        }
        let mut out = Vec::new();
        for (rule, mut alerts) in fired {
            let Some(g) = self.groups.get_mut(rule) else {
                continue;
            };
            alerts.sort_by(|a, b| a.labels.cmp(&b.labels));
            alerts.dedup_by(|a, b| a.labels == b.labels);
            let others = g.firing().count().saturating_sub(alerts.len());
            g.last_firing = Some(now);
            out.push(Notification {
                status: Status::Firing,
                rule: rule.to_string(),
                alerts,
                others_firing: others,
            });
        }
        for (rule, mut alerts) in resolved {
            let Some(g) = self.groups.get_mut(rule) else {
                continue;
            };
            if g.firing().next().is_none() {
                g.last_firing = None;
            }
            if self.send_resolved {
                alerts.sort_by(|a, b| a.labels.cmp(&b.labels));
                alerts.dedup_by(|a, b| a.labels == b.labels);
                out.push(Notification {
                    status: Status::Resolved,
                    rule: rule.to_string(),
                    alerts,
                    others_firing: 0,
                });
            }
        }
        self.groups.retain(|_, g| !g.alerts.is_empty());
        out
    }

    /// Resolves firing alerts whose `ends_at` is before `wall`, repeats
    /// groups due for it and forgets old resolutions.
    pub fn tick(&mut self, now: Instant, wall: SystemTime) -> Vec<Notification> {
        let mut out = Vec::new();
        for (rule, g) in &mut self.groups {
            let mut expired = Vec::new();
            for t in g.alerts.values_mut() {
                if t.resolved_at.is_none() && t.alert.ends_at.is_some_and(|e| e < wall) {
                    t.resolved_at = Some(now);
                    t.alert.resolved = true;
                    expired.push(t.alert.clone());
                }
            }
            if !expired.is_empty() && self.send_resolved {
                out.push(Notification {
                    status: Status::Resolved,
                    rule: rule.clone(),
                    alerts: expired,
                    others_firing: 0,
                });
            }
            let firing: Vec<Alert> = g.firing().cloned().collect();
            if firing.is_empty() {
                g.last_firing = None;
            } else if !self.repeat_interval.is_zero()
                && g.last_firing
                    .is_none_or(|t| now.duration_since(t) >= self.repeat_interval)
            {
                g.last_firing = Some(now);
                out.push(Notification {
                    status: Status::Firing,
                    rule: rule.clone(),
                    alerts: firing,
                    others_firing: 0,
                });
            }
            g.alerts.retain(|_, t| {
                t.resolved_at
                    .is_none_or(|r| now.duration_since(r) < RESOLVED_RETENTION)
            });
        }
        self.groups.retain(|_, g| !g.alerts.is_empty());
        out
    }
}

// ---------------------------------------------------------------------------
// Messages

fn human_time(t: SystemTime) -> String {
    chrono::DateTime::<chrono::Utc>::from(t)
        .format("%Y-%m-%d %H:%M:%S UTC")
        .to_string()
}

/// The default message of a notification (see the module documentation).
pub fn default_message(n: &Notification, mode: ParseMode) -> String {
    let mut s = String::new();
    let name = n.alerts.first().map_or(n.rule.as_str(), |a| a.name());
    let (icon, word) = match n.status {
        Status::Firing => ("🔥", "FIRING"),
        Status::Resolved => ("✅", "RESOLVED"),
    };
    let _ = write!(
        s,
        "{icon} {}{} {}",
        bold(word, mode),
        escape(":", mode),
        bold(name, mode)
    );
    if n.alerts.len() > 1 {
        let _ = write!(
            s,
            " {}",
            escape(&format!("({} alerts)", n.alerts.len()), mode)
        );
    }
    s.push('\n');
    for a in n.alerts.iter().take(MAX_LISTED_ALERTS) {
        s.push('\n');
        for key in ["summary", "description"] {
            if let Some(v) = a.annotations.get(key).filter(|v| !v.is_empty()) {
                let title = if key == "summary" {
                    "Summary:"
                } else {
                    "Description:"
                };
                let _ = writeln!(s, "{} {}", bold(title, mode), escape(v, mode));
            }
        }
        for (k, v) in &a.annotations {
            if k != "summary" && k != "description" && !v.is_empty() {
                let _ = writeln!(s, "{} {}", bold(&format!("{k}:"), mode), escape(v, mode));
            }
        }
        let labels: Vec<(&String, &String)> =
            a.labels.iter().filter(|(k, _)| *k != "alertname").collect();
        if !labels.is_empty() {
            let _ = writeln!(s, "{}", bold("Labels:", mode));
            for (k, v) in labels {
                let _ = writeln!(s, "  • {}", escape(&format!("{k}: {v}"), mode));
            }
        }
        let _ = writeln!(
            s,
            "{} {}",
            bold("Started:", mode),
            escape(&human_time(a.starts_at), mode)
        );
        if n.status == Status::Resolved {
            if let Some(e) = a.ends_at {
                let _ = writeln!(
                    s,
                    "{} {}",
                    bold("Resolved:", mode),
                    escape(&human_time(e), mode)
                );
            }
        }
        if !a.generator_url.is_empty() {
            let _ = writeln!(s, "{}", link("Source", &a.generator_url, mode));
        }
    }
    if n.alerts.len() > MAX_LISTED_ALERTS {
        let more = n.alerts.len() - MAX_LISTED_ALERTS;
        let _ = writeln!(
            s,
            "\n{}",
            italic(
                &format!(
                    "…and {more} more alert{}.",
                    if more == 1 { "" } else { "s" }
                ),
                mode
            )
        );
    }
    if n.others_firing > 0 {
        let more = if n.others_firing == 1 {
            "1 more alert of this rule is still firing.".to_string()
        } else {
            format!(
                "{} more alerts of this rule are still firing.",
                n.others_firing
            )
        };
        let _ = writeln!(s, "\n{}", italic(&more, mode));
    }
    s
}

/// Alertmanager's default templates (from its `default.tmpl`) that a
/// Telegram `message` may call, e.g. Alertmanager's own default message
/// `{{ template "telegram.default.message" . }}`.
pub const ALERTMANAGER_TEMPLATES: &str = r#"{{ define "__text_alert_list" }}{{ range . }}Labels:
{{ range .Labels.SortedPairs }} - {{ .Name }} = {{ .Value }}
{{ end }}Annotations:
{{ range .Annotations.SortedPairs }} - {{ .Name }} = {{ .Value }}
{{ end }}Source: {{ .GeneratorURL }}
{{ end }}{{ end }}
{{ define "telegram.default.message" }}
{{ if gt (len .Alerts.Firing) 0 }}
Alerts Firing:
{{ template "__text_alert_list" .Alerts.Firing }}
{{ end }}
{{ if gt (len .Alerts.Resolved) 0 }}
Alerts Resolved:
{{ template "__text_alert_list" .Alerts.Resolved }}
{{ end }}
{{ end }}"#;

/// Name of the user's template in the set.
const MESSAGE_TEMPLATE: &str = "telegram_config.message";

/// Parses a `message` template (Alertmanager's functions and
/// [`ALERTMANAGER_TEMPLATES`] available).
pub fn compile_message(text: &str) -> Result<Template, String> {
    let mut t = Template::parse_dialect(
        "default.tmpl",
        ALERTMANAGER_TEMPLATES,
        Dialect::Alertmanager,
    )?;
    t.add(MESSAGE_TEMPLATE, text)?;
    Ok(t)
}

/// Escapes as Go's `html/template` does in text (Alertmanager renders
/// Telegram messages with it when `parse_mode` is `HTML`).
fn html_template_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&#34;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Labels (or annotations) shared by all alerts with the same value.
fn common(maps: &[&BTreeMap<String, String>]) -> BTreeMap<String, String> {
    let mut it = maps.iter();
    let mut c: BTreeMap<String, String> = it.next().map(|m| (*m).clone()).unwrap_or_default();
    for m in it {
        c.retain(|k, v| m.get(k) == Some(v));
    }
    c
}

fn time_value(t: Option<SystemTime>) -> TValue {
    // Go's zero time, 0001-01-01T00:00:00Z, for an unknown end.
    const GO_ZERO: i64 = -62_135_596_800;
    match t {
        None => TValue::time(GO_ZERO, 0),
        Some(t) => match t.duration_since(SystemTime::UNIX_EPOCH) {
            Ok(d) => TValue::time(
                i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
                d.subsec_nanos(),
            ),
            Err(e) => {
                let d = e.duration();
                let secs = -i64::try_from(d.as_secs()).unwrap_or(i64::MAX);
                match d.subsec_nanos() {
                    0 => TValue::time(secs, 0),
                    n => TValue::time(secs - 1, 1_000_000_000 - n),
                }
            }
        },
    }
}

/// Alertmanager's notification data (`*template.Data`) for a custom
/// template. With `parse_mode: HTML` the strings are escaped as
/// `html/template` would print them.
pub fn template_data(
    n: &Notification,
    receiver: &str,
    external_url: &str,
    mode: ParseMode,
) -> TValue {
    let esc = |s: &str| -> String {
        if mode == ParseMode::Html {
            html_template_escape(s)
        } else {
            s.to_string()
        }
    };
    let kv = |m: &BTreeMap<String, String>| -> TValue {
        TValue::kv(m.iter().map(|(k, v)| (k.clone(), esc(v))).collect())
    };
    let alerts: Vec<TValue> = n
        .alerts
        .iter()
        .map(|a| {
            let status = if a.resolved || n.status == Status::Resolved {
                "resolved"
            } else {
                "firing"
            };
            TValue::structure(
                "template.Alert",
                vec![
                    ("Status".into(), TValue::str(status)),
                    ("Labels".into(), kv(&a.labels)),
                    ("Annotations".into(), kv(&a.annotations)),
                    ("StartsAt".into(), time_value(Some(a.starts_at))),
                    ("EndsAt".into(), time_value(a.ends_at)),
                    ("GeneratorURL".into(), TValue::from(esc(&a.generator_url))),
                    ("Fingerprint".into(), TValue::from(a.fingerprint())),
                ],
            )
        })
        .collect();
    let labels: Vec<&BTreeMap<String, String>> = n.alerts.iter().map(|a| &a.labels).collect();
    let annotations: Vec<&BTreeMap<String, String>> =
        n.alerts.iter().map(|a| &a.annotations).collect();
    let mut group = BTreeMap::new();
    if let Some(name) = n.alerts.first().and_then(|a| a.labels.get("alertname")) {
        group.insert("alertname".to_string(), name.clone());
    }
    TValue::structure(
        "*template.Data",
        vec![
            ("Receiver".into(), TValue::from(esc(receiver))),
            ("Status".into(), TValue::str(n.status.as_str())),
            (
                "Alerts".into(),
                TValue::typed_list("template.Alerts", alerts),
            ),
            ("GroupLabels".into(), kv(&group)),
            ("CommonLabels".into(), kv(&common(&labels))),
            ("CommonAnnotations".into(), kv(&common(&annotations))),
            ("ExternalURL".into(), TValue::from(esc(external_url))),
        ],
    )
}

/// Renders a compiled `message` template for a notification.
pub fn render_message(
    t: &Template,
    n: &Notification,
    receiver: &str,
    external_url: &str,
    mode: ParseMode,
) -> Result<String, String> {
    let data = template_data(n, receiver, external_url, mode);
    let env = Env {
        external_url: external_url.to_string(),
        ..Env::default()
    };
    t.execute_template(MESSAGE_TEMPLATE, &data, &env)
}

// ---------------------------------------------------------------------------
// The notifier

struct Inbox {
    q: Mutex<VecDeque<Vec<Alert>>>,
    notify: Notify,
}

struct Outbox {
    q: Mutex<VecDeque<String>>,
    notify: Notify,
}

/// Work handed over and not finished: batches not grouped yet plus
/// messages not delivered or given up yet.
#[derive(Default)]
struct Pending(AtomicUsize);

impl Pending {
    fn add(&self, n: usize) {
        self.0.fetch_add(n, Ordering::SeqCst);
    }
    fn done(&self, n: usize) {
        let _ = self
            .0
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |v| {
                Some(v.saturating_sub(n))
            });
    }
}

/// One running `telegram_configs` entry: a grouping task and a sending task.
pub(crate) struct TelegramNotifier {
    inbox: Arc<Inbox>,
    pending: Arc<Pending>,
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for TelegramNotifier {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

impl TelegramNotifier {
    /// Starts the tasks (inside a runtime).
    pub(crate) fn start(
        cfg: TelegramConfig,
        index: usize,
        timing: TelegramTiming,
        external_url: String,
        stats: Arc<NotifierStats>,
    ) -> Result<Self, String> {
        let http = crate::config::HttpClientConfig {
            follow_redirects: true,
            enable_http2: true,
            ..Default::default()
        };
        let client = HttpClient::new(&http, crate::http_client::USER_AGENT)?;
        let inbox = Arc::new(Inbox {
            q: Mutex::new(VecDeque::new()),
            notify: Notify::new(),
        });
        let outbox = Arc::new(Outbox {
            q: Mutex::new(VecDeque::new()),
            notify: Notify::new(),
        });
        let pending = Arc::new(Pending::default());
        let cfg = Arc::new(cfg);
        let grouping = tokio::spawn(group_task(GroupCtx {
            cfg: cfg.clone(),
            index,
            tick: timing.tick,
            external_url,
            inbox: inbox.clone(),
            outbox: outbox.clone(),
            pending: pending.clone(),
            stats: stats.clone(),
        }));
        let sending = tokio::spawn(send_task(SendCtx {
            cfg,
            index,
            timing,
            client,
            outbox,
            pending: pending.clone(),
            stats,
            migrated_chat: None,
            last_sent: None,
        }));
        Ok(TelegramNotifier {
            inbox,
            pending,
            tasks: vec![grouping, sending],
        })
    }

    /// Hands over one `send` batch.
    pub(crate) fn push(&self, alerts: Vec<Alert>) {
        self.pending.add(1);
        {
            let mut q = self.inbox.q.lock();
            if q.len() >= INBOX_CAPACITY {
                q.pop_front();
                self.pending.done(1);
                tracing::warn!("Telegram notifier backlog full, dropping the oldest alerts");
            }
            q.push_back(alerts);
        }
        self.inbox.notify.notify_one();
    }

    /// Whether everything handed over was delivered or given up.
    pub(crate) fn idle(&self) -> bool {
        self.pending.0.load(Ordering::SeqCst) == 0
    }
}

struct GroupCtx {
    cfg: Arc<TelegramConfig>,
    index: usize,
    tick: Duration,
    external_url: String,
    inbox: Arc<Inbox>,
    outbox: Arc<Outbox>,
    pending: Arc<Pending>,
    stats: Arc<NotifierStats>,
}

async fn group_task(ctx: GroupCtx) {
    let mode = ParseMode::from_config(&ctx.cfg.parse_mode);
    let mut state = GroupingState::new(ctx.cfg.send_resolved, ctx.cfg.repeat_interval.into());
    let mut tick = tokio::time::interval(ctx.tick.max(Duration::from_millis(10)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let receiver = format!("telegram/{}", ctx.index);
    // A template that does not parse is reported once; the default
    // message is used instead.
    let custom = ctx
        .cfg
        .message
        .as_deref()
        .and_then(|m| match compile_message(m) {
            Ok(t) => Some(t),
            Err(e) => {
                tracing::error!(
                    telegram = ctx.index,
                    error = %e,
                    "invalid Telegram message template, sending the default message instead"
                );
                None
            }
        });
    loop {
        tokio::select! {
            _ = ctx.inbox.notify.notified() => {}
            _ = tick.tick() => {}
        }
        let batches: Vec<Vec<Alert>> = ctx.inbox.q.lock().drain(..).collect();
        let now = Instant::now();
        let mut notes = Vec::new();
        for b in &batches {
            notes.extend(state.ingest(b, now));
        }
        notes.extend(state.tick(now, SystemTime::now()));
        for n in &notes {
            let text = match &custom {
                Some(t) => match render_message(t, n, &receiver, &ctx.external_url, mode) {
                    Ok(s) => s,
                    Err(e) => {
                        tracing::warn!(
                            telegram = ctx.index,
                            error = %e,
                            "cannot render the Telegram message template, sending the default message"
                        );
                        default_message(n, mode)
                    }
                },
                None => default_message(n, mode),
            };
            if text.trim().is_empty() {
                tracing::warn!(telegram = ctx.index, rule = %n.rule, "the Telegram message template rendered nothing; no message sent");
            }
            let parts = split_message(&text, mode, MAX_MESSAGE_LEN);
            ctx.pending.add(parts.len());
            let mut q = ctx.outbox.q.lock();
            for p in parts {
                if q.len() >= OUTBOX_CAPACITY {
                    q.pop_front();
                    ctx.pending.done(1);
                    ctx.stats.telegram_dropped.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(
                        telegram = ctx.index,
                        "Telegram outbox full, dropping the oldest message"
                    );
                }
                q.push_back(p);
            }
            drop(q);
            ctx.outbox.notify.notify_one();
        }
        ctx.pending.done(batches.len());
    }
}

struct SendCtx {
    cfg: Arc<TelegramConfig>,
    index: usize,
    timing: TelegramTiming,
    client: HttpClient,
    outbox: Arc<Outbox>,
    pending: Arc<Pending>,
    stats: Arc<NotifierStats>,
    /// Chat id after a group migration.
    migrated_chat: Option<i64>,
    last_sent: Option<Instant>,
}

async fn send_task(mut ctx: SendCtx) {
    loop {
        let next = ctx.outbox.q.lock().pop_front();
        match next {
            Some(text) => {
                let ok = deliver(&mut ctx, &text).await;
                let counter = if ok {
                    &ctx.stats.telegram_sent
                } else {
                    &ctx.stats.telegram_failed
                };
                counter.fetch_add(1, Ordering::Relaxed);
                ctx.pending.done(1);
            }
            None => ctx.outbox.notify.notified().await,
        }
    }
}

fn read_file(path: &str, what: &str) -> Result<String, String> {
    std::fs::read_to_string(path)
        .map(|s| s.trim().to_string())
        .map_err(|e| format!("cannot read {what} file {path}: {e}"))
}

#[derive(Serialize)]
struct SendMessage<'a> {
    chat_id: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    message_thread_id: Option<i64>,
    text: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    parse_mode: Option<&'static str>,
    disable_notification: bool,
    link_preview_options: LinkPreview,
}

#[derive(Serialize)]
struct LinkPreview {
    is_disabled: bool,
}

#[derive(Deserialize, Default)]
pub(crate) struct ApiResponse {
    #[serde(default)]
    pub(crate) ok: bool,
    #[serde(default)]
    pub(crate) error_code: Option<i64>,
    #[serde(default)]
    pub(crate) description: Option<String>,
    #[serde(default)]
    pub(crate) parameters: Option<ResponseParameters>,
}

#[derive(Deserialize, Default)]
pub(crate) struct ResponseParameters {
    #[serde(default)]
    pub(crate) retry_after: Option<u64>,
    #[serde(default)]
    pub(crate) migrate_to_chat_id: Option<i64>,
}

/// What one attempt came to.
enum Outcome {
    Delivered,
    /// Try again, after `after` if Telegram said so.
    Retry {
        after: Option<Duration>,
        reason: String,
    },
    /// The group became a supergroup with this id.
    Migrate(i64),
    /// Not worth retrying.
    Fail(String),
}

async fn attempt(ctx: &SendCtx, url: &str, body: &SendMessage<'_>) -> Outcome {
    let resp = ctx
        .client
        .client
        .post(url)
        .json(body)
        .timeout(ctx.timing.request_timeout)
        .send()
        .await;
    let resp = match resp {
        Ok(r) => r,
        // Without the URL: it holds the token.
        Err(e) => {
            return Outcome::Retry {
                after: None,
                reason: e.without_url().to_string(),
            }
        }
    };
    let status = resp.status();
    let bytes = match resp.bytes().await {
        Ok(b) => b,
        Err(e) => {
            return Outcome::Retry {
                after: None,
                reason: e.without_url().to_string(),
            }
        }
    };
    let parsed: Option<ApiResponse> = serde_json::from_slice(&bytes).ok();
    if status.is_success() && parsed.as_ref().is_none_or(|r| r.ok) {
        return Outcome::Delivered;
    }
    let r = parsed.unwrap_or_default();
    let code = r.error_code.unwrap_or(i64::from(status.as_u16()));
    let desc = r.description.unwrap_or_else(|| {
        String::from_utf8_lossy(&bytes)
            .trim()
            .chars()
            .take(200)
            .collect()
    });
    let params = r.parameters.unwrap_or_default();
    if let Some(id) = params.migrate_to_chat_id {
        return Outcome::Migrate(id);
    }
    let reason = format!("{code}: {desc}");
    if code == 429 {
        Outcome::Retry {
            after: params.retry_after.map(Duration::from_secs),
            reason,
        }
    } else if (500..600).contains(&code) || status.is_server_error() {
        Outcome::Retry {
            after: None,
            reason,
        }
    } else {
        Outcome::Fail(reason)
    }
}

/// Sends one message with retries; true when delivered.
async fn deliver(ctx: &mut SendCtx, text: &str) -> bool {
    let cfg = ctx.cfg.clone();
    let token = if cfg.bot_token_file.is_empty() {
        Ok(cfg.bot_token.expose().to_string())
    } else {
        read_file(&cfg.bot_token_file, "bot token")
    };
    let chat = match (ctx.migrated_chat, cfg.chat_id) {
        (Some(c), _) | (None, Some(c)) => Ok(c),
        (None, None) => read_file(&cfg.chat_id_file, "chat id").and_then(|s| {
            s.parse::<i64>()
                .map_err(|e| format!("invalid chat id in {}: {e}", cfg.chat_id_file))
        }),
    };
    let (token, mut chat) = match (token, chat) {
        (Ok(t), Ok(c)) => (t, c),
        (Err(e), _) | (_, Err(e)) => {
            tracing::error!(telegram = ctx.index, error = %e, "cannot send Telegram message");
            return false;
        }
    };
    let url = format!(
        "{}/bot{token}/sendMessage",
        cfg.api_url.trim_end_matches('/')
    );
    let mode = ParseMode::from_config(&cfg.parse_mode);
    let spacing = ctx.timing.min_interval.unwrap_or(if chat < 0 {
        Duration::from_secs(3)
    } else {
        Duration::from_secs(1)
    });
    let mut backoff = ctx.timing.initial_backoff;
    let mut attempts = 0u32;
    let mut migrations = 0;
    loop {
        if let Some(t) = ctx.last_sent {
            tokio::time::sleep_until(t + spacing).await;
        }
        attempts += 1;
        let body = SendMessage {
            chat_id: chat,
            message_thread_id: cfg.message_thread_id,
            text,
            parse_mode: mode.api_name(),
            disable_notification: cfg.disable_notifications,
            link_preview_options: LinkPreview { is_disabled: true },
        };
        let outcome = attempt(ctx, &url, &body).await;
        ctx.last_sent = Some(Instant::now());
        match outcome {
            Outcome::Delivered => return true,
            Outcome::Migrate(id) if migrations < 3 => {
                tracing::warn!(
                    telegram = ctx.index,
                    old_chat_id = chat,
                    new_chat_id = id,
                    "Telegram group was upgraded to a supergroup; update chat_id in the configuration"
                );
                migrations += 1;
                chat = id;
                ctx.migrated_chat = Some(id);
                attempts -= 1;
            }
            Outcome::Migrate(_) => {
                tracing::error!(
                    telegram = ctx.index,
                    "Telegram chat keeps migrating, giving up"
                );
                return false;
            }
            Outcome::Fail(reason) => {
                tracing::error!(
                    telegram = ctx.index,
                    error = %reason,
                    "Telegram refused the message; not retrying"
                );
                return false;
            }
            Outcome::Retry { after, reason } => {
                if attempts >= ctx.timing.max_attempts {
                    tracing::error!(
                        telegram = ctx.index,
                        attempts,
                        error = %reason,
                        "cannot send Telegram message, giving up"
                    );
                    return false;
                }
                let wait = match after {
                    Some(a) => a.min(ctx.timing.max_retry_after),
                    None => {
                        let w = backoff;
                        backoff = (backoff * 2).min(ctx.timing.max_backoff);
                        w
                    }
                };
                tracing::warn!(
                    telegram = ctx.index,
                    attempt = attempts,
                    retry_in = ?wait,
                    error = %reason,
                    "cannot send Telegram message, retrying"
                );
                ctx.stats.telegram_retries.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(wait).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alert(name: &str, inst: &str, resolved: bool) -> Alert {
        Alert {
            labels: BTreeMap::from([
                ("alertname".to_string(), name.to_string()),
                ("instance".to_string(), inst.to_string()),
            ]),
            annotations: BTreeMap::from([("summary".to_string(), format!("{inst} is down"))]),
            starts_at: SystemTime::UNIX_EPOCH + Duration::from_secs(1_718_006_400),
            ends_at: None,
            generator_url: "http://sonde/graph?g0.expr=up+%3D%3D+0".into(),
            resolved,
            rule: format!("g/{name}"),
            value: 0.0,
        }
    }

    #[test]
    fn escaping() {
        assert_eq!(escape("a<b>&c", ParseMode::Html), "a&lt;b&gt;&amp;c");
        assert_eq!(
            escape("_*[]()~`>#+-=|{}.!\\x", ParseMode::MarkdownV2),
            "\\_\\*\\[\\]\\(\\)\\~\\`\\>\\#\\+\\-\\=\\|\\{\\}\\.\\!\\\\x"
        );
        assert_eq!(
            escape("a_b*c`d[e]", ParseMode::Markdown),
            "a\\_b\\*c\\`d\\[e]"
        );
        assert_eq!(escape("<&>", ParseMode::Plain), "<&>");
    }

    #[test]
    fn split_short_and_plain() {
        assert_eq!(split_message("\nhi\n", ParseMode::Html, 10), ["hi"]);
        assert!(split_message("\n \n", ParseMode::Html, 10).is_empty());
        let parts = split_message("aaaa\nbbbb\ncccc", ParseMode::Plain, 10);
        assert_eq!(parts, ["aaaa\nbbbb", "cccc"]);
        let parts = split_message("abcdefghijkl", ParseMode::Plain, 5);
        assert_eq!(parts, ["abcde", "fghij", "kl"]);
    }

    #[test]
    fn split_html_keeps_tags_and_entities() {
        let text = format!("<b>{}</b>", "x &amp; y ".repeat(20));
        let parts = split_message(&text, ParseMode::Html, 50);
        assert!(parts.len() > 1);
        for p in &parts {
            assert!(visible_length(p, ParseMode::Html) <= 50, "{p}");
            assert!(p.starts_with("<b>") && p.ends_with("</b>"), "{p}");
            // No cut entity.
            let stripped = p.replace("&amp;", "");
            assert!(!stripped.contains('&'), "{p}");
        }
        let joined: String = parts
            .iter()
            .map(|p| p.trim_start_matches("<b>").trim_end_matches("</b>"))
            .collect::<Vec<_>>()
            .join(" ");
        assert_eq!(
            joined.split_whitespace().collect::<Vec<_>>(),
            text.trim_start_matches("<b>")
                .trim_end_matches("</b>")
                .split_whitespace()
                .collect::<Vec<_>>()
        );
        // Links are reopened with their attributes.
        let text = format!("<a href=\"u\">{}</a>", "w ".repeat(30));
        for p in split_message(&text, ParseMode::Html, 30) {
            assert!(
                p.starts_with("<a href=\"u\">") && p.ends_with("</a>"),
                "{p}"
            );
        }
    }

    #[test]
    fn split_markdown_v2_escapes_and_entities() {
        let text = format!("*bold* {}", "a\\.b ".repeat(30));
        let parts = split_message(&text, ParseMode::MarkdownV2, 40);
        assert!(parts.len() > 1);
        for p in &parts {
            assert!(visible_length(p, ParseMode::MarkdownV2) <= 40);
            assert!(!p.ends_with('\\'), "{p}");
        }
        let text = format!("*{}*", "bb ".repeat(30));
        for p in split_message(&text, ParseMode::MarkdownV2, 20) {
            assert!(p.starts_with('*') && p.ends_with('*') && p.len() > 2, "{p}");
        }
        // No cut inside a link.
        let text = format!("{} [a link text](http://x/y\\)z) tail", "x".repeat(10));
        for p in split_message(&text, ParseMode::MarkdownV2, 30) {
            assert_eq!(p.contains('['), p.contains("](http://x/y\\)z)"), "{p}");
        }
    }

    #[test]
    fn split_random_texts() {
        let alphabet: Vec<char> = "ab c\n_*[]()~`>#+-=|{}.!\\<&;é🔥".chars().collect();
        let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = |n: usize| {
            seed = seed
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            ((seed >> 33) as usize) % n
        };
        for round in 0..300 {
            let len = next(300);
            let raw: String = (0..len).map(|_| alphabet[next(alphabet.len())]).collect();
            for mode in [
                ParseMode::Html,
                ParseMode::MarkdownV2,
                ParseMode::Markdown,
                ParseMode::Plain,
            ] {
                // Arbitrary (possibly broken) markup: no panic.
                let _ = split_message(&raw, mode, 1 + next(40));
                // Escaped text with some formatting: bounded parts.
                let text = format!(
                    "{} {}\n{}",
                    bold("T", mode),
                    escape(&raw, mode),
                    italic("e", mode)
                );
                let limit = 10 + next(40);
                let parts = split_message(&text, mode, limit);
                for p in &parts {
                    assert!(
                        visible_length(p, mode) <= limit,
                        "round {round} {mode:?} limit {limit}: {p:?}"
                    );
                }
                if mode == ParseMode::Plain {
                    let joined: String = parts.concat().split_whitespace().collect();
                    let orig: String = text.split_whitespace().collect();
                    assert_eq!(joined, orig);
                }
            }
        }
    }

    #[test]
    fn split_counts_utf16() {
        let text = "🔥".repeat(10);
        let parts = split_message(&text, ParseMode::Plain, 8);
        assert_eq!(parts.len(), 3);
        assert!(parts.iter().all(|p| utf16_len(p) <= 8));
    }

    #[test]
    fn grouping_firing_resolved_repeat() {
        let mut st = GroupingState::new(true, Duration::from_secs(60));
        let t0 = Instant::now();
        let a = alert("HostDown", "a", false);
        let b = alert("HostDown", "b", false);
        let n = st.ingest(&[a.clone(), b.clone()], t0);
        assert_eq!(n.len(), 1);
        assert_eq!(n[0].status, Status::Firing);
        assert_eq!(n[0].alerts.len(), 2);
        // Re-sends are quiet.
        assert!(st
            .ingest(&[a.clone(), b.clone()], t0 + Duration::from_secs(10))
            .is_empty());
        assert!(st
            .tick(t0 + Duration::from_secs(30), SystemTime::now())
            .is_empty());
        // Repeat after the interval.
        let n = st.tick(t0 + Duration::from_secs(61), SystemTime::now());
        assert_eq!(n.len(), 1);
        assert_eq!(n[0].alerts.len(), 2);
        // One resolves.
        let n = st.ingest(
            &[alert("HostDown", "a", true), b.clone()],
            t0 + Duration::from_secs(70),
        );
        assert_eq!(n.len(), 1);
        assert_eq!(n[0].status, Status::Resolved);
        assert_eq!(n[0].alerts[0].labels["instance"], "a");
        // Re-sent resolution is quiet; unknown resolution too.
        let n = st.ingest(
            &[alert("HostDown", "a", true), alert("Other", "z", true)],
            t0 + Duration::from_secs(80),
        );
        assert!(n.is_empty());
        // Fires again: new.
        let n = st.ingest(std::slice::from_ref(&a), t0 + Duration::from_secs(90));
        assert_eq!(n.len(), 1);
        assert_eq!(n[0].others_firing, 1);
    }

    #[test]
    fn grouping_expires_by_ends_at() {
        let mut st = GroupingState::new(true, Duration::ZERO);
        let t0 = Instant::now();
        let mut a = alert("X", "a", false);
        a.ends_at = Some(SystemTime::now() - Duration::from_secs(1));
        assert_eq!(st.ingest(&[a], t0).len(), 1);
        let n = st.tick(t0, SystemTime::now());
        assert_eq!(n.len(), 1);
        assert_eq!(n[0].status, Status::Resolved);
        assert!(st.tick(t0, SystemTime::now()).is_empty());
    }

    #[test]
    fn no_resolved_when_disabled() {
        let mut st = GroupingState::new(false, Duration::ZERO);
        let t0 = Instant::now();
        assert_eq!(st.ingest(&[alert("X", "a", false)], t0).len(), 1);
        assert!(st.ingest(&[alert("X", "a", true)], t0).is_empty());
        // And it fires anew afterwards.
        assert_eq!(st.ingest(&[alert("X", "a", false)], t0).len(), 1);
    }

    #[test]
    fn default_messages() {
        let mut a = alert("Host<Down>", "a&b", false);
        a.annotations
            .insert("description".into(), "value > 1".into());
        let n = Notification {
            status: Status::Firing,
            rule: "g/x".into(),
            alerts: vec![a.clone()],
            others_firing: 2,
        };
        let html = default_message(&n, ParseMode::Html);
        assert!(
            html.starts_with("🔥 <b>FIRING</b>: <b>Host&lt;Down&gt;</b>\n"),
            "{html}"
        );
        assert!(html.contains("<b>Summary:</b> a&amp;b is down"), "{html}");
        assert!(html.contains("<b>Description:</b> value &gt; 1"), "{html}");
        assert!(html.contains("  • instance: a&amp;b"), "{html}");
        assert!(html.contains("<a href=\"http://sonde/graph?g0.expr=up+%3D%3D+0\">Source</a>"));
        assert!(html.contains("2 more alerts"));
        let md = default_message(&n, ParseMode::MarkdownV2);
        assert!(md.starts_with("🔥 *FIRING*: *Host<Down\\>*"), "{md}");
        assert!(md.contains("value \\> 1"), "{md}");
        assert!(md.contains("[Source](http://sonde/graph?g0.expr=up+%3D%3D+0)"));
        let plain = default_message(&n, ParseMode::Plain);
        assert!(plain.contains("Source: http://sonde/graph"), "{plain}");
        let r = Notification {
            status: Status::Resolved,
            alerts: vec![a],
            others_firing: 0,
            rule: "g/x".into(),
        };
        assert!(default_message(&r, ParseMode::Html).starts_with("✅ <b>RESOLVED</b>"));
        let many = Notification {
            status: Status::Firing,
            rule: "g/x".into(),
            alerts: (0..25)
                .map(|i| alert("X", &format!("h{i}"), false))
                .collect(),
            others_firing: 0,
        };
        let text = default_message(&many, ParseMode::MarkdownV2);
        assert!(
            text.starts_with("🔥 *FIRING*: *X* \\(25 alerts\\)"),
            "{text}"
        );
        assert!(text.contains("h19 is down") && !text.contains("h20 is down"));
        assert!(text.contains("_…and 5 more alerts\\._"), "{text}");
    }

    #[test]
    fn custom_templates() {
        let mut b = alert("X", "b", false);
        b.annotations
            .insert("description".into(), "x < y & \"z\"".into());
        let n = Notification {
            status: Status::Firing,
            rule: "g/x".into(),
            alerts: vec![alert("X", "a", false), b],
            others_firing: 0,
        };
        let run = |text: &str, mode: ParseMode| {
            let t = compile_message(text).unwrap_or_else(|e| panic!("{e}"));
            render_message(&t, &n, "telegram/0", "http://sonde", mode)
                .unwrap_or_else(|e| panic!("{e}"))
        };
        let p = ParseMode::Plain;
        assert_eq!(
            run(
                "{{ .Status }} {{ .GroupLabels.alertname }} {{ .Receiver }} {{ .ExternalURL }}",
                p
            ),
            "firing X telegram/0 http://sonde"
        );
        assert_eq!(run("{{ .CommonLabels }}", p), "alertname=X");
        assert_eq!(
            run("{{ len .Alerts.Firing }}/{{ len .Alerts.Resolved }}", p),
            "2/0"
        );
        assert_eq!(
            run("{{ range .Alerts }}{{ .Labels.instance }}@{{ .StartsAt.Unix }} {{ .EndsAt.IsZero }};{{ end }}", p)
                ,
            "a@1718006400 true;b@1718006400 true;"
        );
        assert_eq!(
            run("{{ (index .Alerts 1).Annotations.description }}", p),
            "x < y & \"z\""
        );
        assert_eq!(
            run(
                "<b>{{ (index .Alerts 1).Annotations.description }}</b>",
                ParseMode::Html
            ),
            "<b>x &lt; y &amp; &#34;z&#34;</b>"
        );
        // Alertmanager's own default message.
        let am = run("{{ template \"telegram.default.message\" . }}", p);
        assert!(am.contains("Alerts Firing:\nLabels:\n - alertname = X\n - instance = a\nAnnotations:\n - summary = a is down\nSource: http://sonde/graph?g0.expr=up+%3D%3D+0\n"), "{am:?}");
        assert!(!am.contains("Alerts Resolved:"));
        assert!(compile_message("{{ nope }}").is_err());
    }
}
