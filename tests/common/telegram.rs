//! A Telegram Bot API double for tests: a loopback HTTP server answering
//! `sendMessage` as the real API does, recording every request.
//!
//! * `POST /bot<token>/sendMessage` with a JSON (or form) body. The token
//!   must be the double's ([`TelegramDouble::token`]), else 401
//!   `Unauthorized`; a missing `chat_id` is 400 `Bad Request: chat not
//!   found`; an empty text 400 `Bad Request: message text is empty`.
//! * The text is parsed as the `parse_mode` says, strictly enough to catch
//!   what the real API rejects with 400 `Bad Request: can't parse
//!   entities: ...`: with `HTML`, only Telegram's tags, properly nested,
//!   and only `&lt;`, `&gt;`, `&amp;`, `&quot;` and numeric entities, a bare
//!   `<` or `&` being an error; with `MarkdownV2`, every reserved character
//!   outside an entity must be escaped and every entity closed; `Markdown`
//!   (legacy) needs closed `*`, `_`, `` ` ``, `[..](..)`. The visible text
//!   (tags and escapes removed, entities decoded) longer than 4096 UTF-16
//!   code units is 400 `Bad Request: message is too long`.
//! * Success is `{"ok":true,"result":{"message_id":N,"date":..,"chat":{..},"text":<visible>}}`.
//! * [`TelegramDouble::fail_next`] makes the next requests fail: 429 with
//!   `parameters.retry_after`, 500, or any other error.
//!
//! Other methods answer 404 `{"ok":false,"error_code":404,"description":"Not Found"}`.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use axum::body::{to_bytes, Body};
use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::response::Response;
use axum::Router;
use parking_lot::Mutex;
use serde_json::{json, Value};

/// A failure to answer instead of handling a request.
#[derive(Debug, Clone, PartialEq)]
pub enum Failure {
    /// 429 `Too Many Requests: retry after N` with `parameters.retry_after`.
    TooManyRequests {
        /// Seconds.
        retry_after: u64,
    },
    /// 500 `Internal Server Error`.
    ServerError,
    /// Any status and description (`ok:false`, `error_code` = status).
    Other {
        /// HTTP status and `error_code`.
        status: u16,
        /// `description`.
        description: String,
    },
    /// 400 with `parameters.migrate_to_chat_id`.
    Migrate {
        /// The supergroup's id.
        to_chat_id: i64,
    },
}

/// One request to `sendMessage`, whatever the answer.
#[derive(Debug, Clone)]
pub struct Received {
    /// When it arrived.
    pub at: Instant,
    /// Token from the path.
    pub token: String,
    /// The body as JSON (a form body is turned into string fields).
    pub body: Value,
    /// Status answered.
    pub status: u16,
    /// Description answered on failure.
    pub error: Option<String>,
}

/// One message accepted by the double.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    /// `chat_id` (a number, or a string such as `@channel` as sent).
    pub chat_id: Value,
    /// `message_thread_id`, if sent.
    pub message_thread_id: Option<i64>,
    /// The raw `text`.
    pub text: String,
    /// The text as shown to users (markup removed).
    pub visible: String,
    /// `parse_mode` (empty when absent).
    pub parse_mode: String,
    /// `disable_notification`.
    pub disable_notification: bool,
    /// `link_preview_options.is_disabled` (or legacy `disable_web_page_preview`).
    pub link_preview_disabled: bool,
}

struct Shared {
    token: String,
    requests: Mutex<Vec<Received>>,
    messages: Mutex<Vec<Message>>,
    failures: Mutex<VecDeque<Failure>>,
    delay: Mutex<Duration>,
}

/// A running double; stops when dropped.
pub struct TelegramDouble {
    addr: SocketAddr,
    shared: Arc<Shared>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl TelegramDouble {
    /// Starts a double accepting the token `123456:TEST-token`.
    pub fn start() -> Self {
        Self::start_with_token("123456:TEST-token")
    }

    /// Starts a double accepting `token`.
    pub fn start_with_token(token: &str) -> Self {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind telegram double");
        listener.set_nonblocking(true).expect("nonblocking");
        let addr = listener.local_addr().expect("local addr");
        let shared = Arc::new(Shared {
            token: token.to_string(),
            requests: Mutex::new(Vec::new()),
            messages: Mutex::new(Vec::new()),
            failures: Mutex::new(VecDeque::new()),
            delay: Mutex::new(Duration::ZERO),
        });
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let state = shared.clone();
        let thread = std::thread::Builder::new()
            .name("telegram-double".to_string())
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("telegram double runtime");
                rt.block_on(async move {
                    let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
                    let app = Router::new().fallback(handle).with_state(state);
                    tokio::select! {
                        r = axum::serve(listener, app) => r.expect("telegram double serve"),
                        _ = stop_rx => {}
                    }
                });
                rt.shutdown_timeout(Duration::from_secs(1));
            })
            .expect("spawn telegram double");
        TelegramDouble {
            addr,
            shared,
            stop: Some(stop_tx),
            thread: Some(thread),
        }
    }

    /// The `api_url` to configure (`http://127.0.0.1:<port>`).
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The accepted token.
    pub fn token(&self) -> &str {
        &self.shared.token
    }

    /// Makes the next `k` requests fail with `f` (queued after earlier ones).
    pub fn fail_next(&self, k: usize, f: Failure) {
        let mut q = self.shared.failures.lock();
        for _ in 0..k {
            q.push_back(f.clone());
        }
    }

    /// Delays every answer by `d` (a slow API).
    pub fn set_delay(&self, d: Duration) {
        *self.shared.delay.lock() = d;
    }

    /// Every `sendMessage` request so far.
    pub fn requests(&self) -> Vec<Received> {
        self.shared.requests.lock().clone()
    }

    /// Accepted messages so far.
    pub fn messages(&self) -> Vec<Message> {
        self.shared.messages.lock().clone()
    }

    /// Waits until at least `n` messages were accepted (or `limit` passes)
    /// and returns all of them.
    pub fn wait_messages(&self, n: usize, limit: Duration) -> Vec<Message> {
        let deadline = Instant::now() + limit;
        loop {
            let m = self.messages();
            if m.len() >= n || Instant::now() >= deadline {
                return m;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for TelegramDouble {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn answer(status: u16, body: Value) -> Response {
    Response::builder()
        .status(StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR))
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body.to_string()))
        .expect("response")
}

fn error(status: u16, description: &str, parameters: Option<Value>) -> (u16, Value) {
    let mut v = json!({"ok": false, "error_code": status, "description": description});
    if let Some(p) = parameters {
        v["parameters"] = p;
    }
    (status, v)
}

async fn handle(State(shared): State<Arc<Shared>>, req: Request) -> Response {
    let path = req.uri().path().to_string();
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let body = to_bytes(req.into_body(), 1 << 20).await.unwrap_or_default();
    let delay = *shared.delay.lock();
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let Some((token, method)) = path
        .strip_prefix("/bot")
        .and_then(|rest| rest.split_once('/'))
    else {
        let (s, v) = error(404, "Not Found", None);
        return answer(s, v);
    };
    if method != "sendMessage" {
        let (s, v) = error(404, "Not Found", None);
        return answer(s, v);
    }
    let json_body: Value = if content_type.starts_with("application/x-www-form-urlencoded") {
        Value::Object(
            form_urlencoded::parse(&body)
                .map(|(k, v)| (k.into_owned(), Value::String(v.into_owned())))
                .collect(),
        )
    } else {
        serde_json::from_slice(&body).unwrap_or(Value::Null)
    };
    let failure = shared.failures.lock().pop_front();
    let (status, value) = match failure {
        Some(Failure::TooManyRequests { retry_after }) => error(
            429,
            &format!("Too Many Requests: retry after {retry_after}"),
            Some(json!({"retry_after": retry_after})),
        ),
        Some(Failure::ServerError) => error(500, "Internal Server Error", None),
        Some(Failure::Other {
            status,
            description,
        }) => error(status, &description, None),
        Some(Failure::Migrate { to_chat_id }) => error(
            400,
            "Bad Request: group chat was upgraded to a supergroup chat",
            Some(json!({"migrate_to_chat_id": to_chat_id})),
        ),
        None if token != shared.token => error(401, "Unauthorized", None),
        None => send_message(&shared, &json_body),
    };
    shared.requests.lock().push(Received {
        at: Instant::now(),
        token: token.to_string(),
        body: json_body,
        status,
        error: value
            .get("description")
            .and_then(Value::as_str)
            .map(str::to_string),
    });
    answer(status, value)
}

fn as_bool(v: Option<&Value>) -> bool {
    match v {
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) => s == "true",
        _ => false,
    }
}

fn send_message(shared: &Shared, body: &Value) -> (u16, Value) {
    let chat_id = match body.get("chat_id") {
        Some(v @ Value::Number(_)) => v.clone(),
        Some(Value::String(s)) if !s.is_empty() => match s.parse::<i64>() {
            Ok(n) => json!(n),
            Err(_) => json!(s),
        },
        _ => return error(400, "Bad Request: chat not found", None),
    };
    let text = body.get("text").and_then(Value::as_str).unwrap_or("");
    if text.trim().is_empty() {
        return error(400, "Bad Request: message text is empty", None);
    }
    let parse_mode = body
        .get("parse_mode")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let visible = match parse_mode.as_str() {
        "" => Ok(text.to_string()),
        "HTML" => parse_html(text),
        "MarkdownV2" => parse_markdown_v2(text),
        "Markdown" => parse_markdown(text),
        other => {
            return error(
                400,
                &format!("Bad Request: unsupported parse_mode {other}"),
                None,
            )
        }
    };
    let visible = match visible {
        Ok(v) => v,
        Err(e) => {
            return error(
                400,
                &format!("Bad Request: can't parse entities: {e}"),
                None,
            )
        }
    };
    if visible.trim().is_empty() {
        return error(400, "Bad Request: message text is empty", None);
    }
    if visible.encode_utf16().count() > 4096 {
        return error(400, "Bad Request: message is too long", None);
    }
    let link_preview_disabled = as_bool(
        body.get("link_preview_options")
            .and_then(|o| o.get("is_disabled")),
    ) || as_bool(body.get("disable_web_page_preview"));
    let msg = Message {
        chat_id: chat_id.clone(),
        message_thread_id: body.get("message_thread_id").and_then(|v| {
            v.as_i64()
                .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
        }),
        text: text.to_string(),
        visible: visible.clone(),
        parse_mode,
        disable_notification: as_bool(body.get("disable_notification")),
        link_preview_disabled,
    };
    let mut messages = shared.messages.lock();
    messages.push(msg);
    let id = messages.len();
    (
        200,
        json!({"ok": true, "result": {
            "message_id": id,
            "date": std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0),
            "chat": {"id": chat_id, "type": "private"},
            "text": visible,
        }}),
    )
}

const HTML_TAGS: &[&str] = &[
    "b",
    "strong",
    "i",
    "em",
    "u",
    "ins",
    "s",
    "strike",
    "del",
    "span",
    "tg-spoiler",
    "a",
    "code",
    "pre",
    "blockquote",
    "tg-emoji",
];

/// Telegram's HTML: returns the visible text.
pub fn parse_html(s: &str) -> Result<String, String> {
    let mut out = String::new();
    let mut stack: Vec<String> = Vec::new();
    let mut i = 0;
    while i < s.len() {
        let rest = &s[i..];
        if rest.starts_with('<') {
            let end = rest
                .find('>')
                .ok_or_else(|| format!("Unclosed start tag at byte offset {i}"))?;
            let inner = &rest[1..end];
            if let Some(name) = inner.strip_prefix('/') {
                let name = name.trim().to_ascii_lowercase();
                match stack.pop() {
                    Some(open) if open == name => {}
                    _ => {
                        return Err(format!(
                            "Can't find end tag corresponding to start tag \"{name}\""
                        ))
                    }
                }
            } else {
                let name: String = inner
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '-')
                    .collect::<String>()
                    .to_ascii_lowercase();
                if !HTML_TAGS.contains(&name.as_str()) {
                    return Err(format!(
                        "Unsupported start tag \"{name}\" at byte offset {i}"
                    ));
                }
                stack.push(name);
            }
            i += end + 1;
            continue;
        }
        if rest.starts_with('&') {
            let end = rest
                .char_indices()
                .take(12)
                .find(|(_, c)| *c == ';')
                .map(|(j, _)| j)
                .ok_or_else(|| format!("Unsupported entity at byte offset {i}"))?;
            let ent = &rest[1..end];
            let c = match ent {
                "lt" => '<',
                "gt" => '>',
                "amp" => '&',
                "quot" => '"',
                e if e.starts_with("#x") => u32::from_str_radix(&e[2..], 16)
                    .ok()
                    .and_then(char::from_u32)
                    .ok_or_else(|| format!("Unsupported entity at byte offset {i}"))?,
                e if e.starts_with('#') => e[1..]
                    .parse::<u32>()
                    .ok()
                    .and_then(char::from_u32)
                    .ok_or_else(|| format!("Unsupported entity at byte offset {i}"))?,
                _ => return Err(format!("Unsupported entity at byte offset {i}")),
            };
            out.push(c);
            i += end + 1;
            continue;
        }
        // A bare '>' is accepted, as by Telegram.
        let c = rest.chars().next().unwrap();
        out.push(c);
        i += c.len_utf8();
    }
    if let Some(open) = stack.pop() {
        return Err(format!(
            "Can't find end tag corresponding to start tag \"{open}\""
        ));
    }
    Ok(out)
}

const MDV2_RESERVED: &str = "_*[]()~`>#+-=|{}.!";

/// Telegram's MarkdownV2: returns the visible text.
pub fn parse_markdown_v2(s: &str) -> Result<String, String> {
    let mut out = String::new();
    let mut open: Vec<&'static str> = Vec::new();
    let mut chars = s.char_indices().peekable();
    let mut line_start = true;
    // Inside link text: after the closing ']' a '(' url ')' must follow.
    let mut link_depth = 0usize;
    while let Some((i, c)) = chars.next() {
        let rest = &s[i..];
        let was_line_start = line_start;
        line_start = c == '\n';
        if c == '\\' {
            match chars.next() {
                Some((_, n)) if (n as u32) >= 1 && (n as u32) <= 126 => out.push(n),
                _ => return Err(format!("Character '\\' is reserved at byte offset {i}")),
            }
            continue;
        }
        if rest.starts_with("```") {
            // Pre block: until the next ```, only \` and \\ escapes.
            let body_start = i + 3;
            let close = s[body_start..]
                .find("```")
                .ok_or_else(|| format!("Can't find end of Pre entity at byte offset {i}"))?;
            let body = &s[body_start..body_start + close];
            let body = match body.find('\n') {
                Some(p) => &body[p + 1..],
                None => body,
            };
            out.push_str(&body.replace("\\`", "`").replace("\\\\", "\\"));
            let skip_to = body_start + close + 3;
            while chars.peek().is_some_and(|(j, _)| *j < skip_to) {
                chars.next();
            }
            continue;
        }
        if c == '`' {
            let close = s[i + 1..]
                .find('`')
                .ok_or_else(|| format!("Can't find end of Code entity at byte offset {i}"))?;
            out.push_str(&s[i + 1..i + 1 + close].replace("\\\\", "\\"));
            let skip_to = i + 1 + close + 1;
            while chars.peek().is_some_and(|(j, _)| *j < skip_to) {
                chars.next();
            }
            continue;
        }
        let marker: Option<&'static str> = if rest.starts_with("||") {
            Some("||")
        } else if rest.starts_with("__") {
            Some("__")
        } else {
            match c {
                '*' => Some("*"),
                '_' => Some("_"),
                '~' => Some("~"),
                _ => None,
            }
        };
        if let Some(m) = marker {
            if m.len() == 2 {
                chars.next();
            }
            if let Some(p) = open.iter().rposition(|o| *o == m) {
                if p != open.len() - 1 {
                    return Err(format!("Can't find end of entity at byte offset {i}"));
                }
                open.pop();
            } else {
                open.push(m);
            }
            continue;
        }
        if c == '[' {
            link_depth += 1;
            continue;
        }
        if c == ']' && link_depth > 0 {
            link_depth -= 1;
            if chars.peek().map(|(_, n)| *n) != Some('(') {
                return Err(format!("Character ']' is reserved at byte offset {i}"));
            }
            chars.next();
            // URL: until an unescaped ')'.
            let mut closed = false;
            while let Some((_, u)) = chars.next() {
                if u == '\\' {
                    chars.next();
                } else if u == ')' {
                    closed = true;
                    break;
                }
            }
            if !closed {
                return Err(format!("Can't find end of a URL at byte offset {i}"));
            }
            continue;
        }
        if c == '>' && was_line_start {
            // Block quotation.
            continue;
        }
        if MDV2_RESERVED.contains(c) {
            return Err(format!(
                "Character '{c}' is reserved and must be escaped with the preceding '\\'"
            ));
        }
        out.push(c);
    }
    if !open.is_empty() || link_depth > 0 {
        return Err("Can't find end of the entity".to_string());
    }
    Ok(out)
}

/// Telegram's legacy Markdown: returns the visible text.
pub fn parse_markdown(s: &str) -> Result<String, String> {
    let mut out = String::new();
    let mut open: Option<char> = None;
    let mut chars = s.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        let rest = &s[i..];
        if c == '\\' && open.is_none() {
            match chars.peek() {
                Some((_, n)) if matches!(n, '_' | '*' | '`' | '[') => {
                    out.push(*n);
                    chars.next();
                    continue;
                }
                _ => {}
            }
        }
        if rest.starts_with("```") && open.is_none() {
            let close = s[i + 3..].find("```").ok_or_else(|| {
                format!("Can't find end of the entity starting at byte offset {i}")
            })?;
            out.push_str(&s[i + 3..i + 3 + close]);
            let skip_to = i + 3 + close + 3;
            while chars.peek().is_some_and(|(j, _)| *j < skip_to) {
                chars.next();
            }
            continue;
        }
        match (open, c) {
            (None, '*' | '_' | '`') => open = Some(c),
            (Some(o), c) if o == c => open = None,
            (None, '[') => {
                let close = s[i..].find("](").ok_or_else(|| {
                    format!("Can't find end of the entity starting at byte offset {i}")
                })?;
                let url_end = s[i + close..].find(')').ok_or_else(|| {
                    format!("Can't find end of the entity starting at byte offset {i}")
                })?;
                out.push_str(&s[i + 1..i + close]);
                let skip_to = i + close + url_end + 1;
                while chars.peek().is_some_and(|(j, _)| *j < skip_to) {
                    chars.next();
                }
            }
            _ => out.push(c),
        }
    }
    if let Some(o) = open {
        return Err(format!("Can't find end of the entity '{o}'"));
    }
    Ok(out)
}
