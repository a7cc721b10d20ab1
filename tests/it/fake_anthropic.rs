//! A fake Anthropic API and a TLS-intercepting CONNECT proxy, so the real Claude Code adapter runs offline.
//!
//! [`FakeAnthropic::start`] opens two listeners on 127.0.0.1:
//! - the fake API itself (plain HTTP, for `ANTHROPIC_BASE_URL`), and
//! - a proxy (for `HTTPS_PROXY`/`HTTP_PROXY`): `CONNECT host:port` is answered with 200, then TLS is terminated with
//!   a leaf certificate for `host` signed by a throwaway CA (trusted by the agent through `NODE_EXTRA_CA_CERTS`), and
//!   the decrypted requests are answered by the same fake. Plain absolute-form proxy requests are answered too.
//!
//! That is how the OAuth token endpoint (`https://platform.claude.com/v1/oauth/token`, not configurable by env) and
//! the profile endpoint (`https://api.anthropic.com/api/oauth/profile`) are reached offline.
//!
//! What the bundled Claude Code 2.1.83 needs in order to run offline against this fake (found by reading its `cli.js`
//! and by running it, see the tests at the bottom):
//! - the environment from [`FakeAnthropic::agent_env`];
//! - `HOME` pointing at a writable directory, and for OAuth a credentials file `$CLAUDE_CONFIG_DIR/.credentials.json`
//!   (default `~/.claude/.credentials.json`), see [`credentials_json`];
//! - `~/.claude.json` (in `HOME`, even when `CLAUDE_CONFIG_DIR` is set: the adapter checks `os.homedir()`) should
//!   exist (`{}` is enough): if `~/.claude.json.backup` exists without it, `session/new` fails with
//!   "Authentication required", in API-key mode too. The CLI's own global config is `$CLAUDE_CONFIG_DIR/.claude.json`
//!   when `CLAUDE_CONFIG_DIR` is set (else `~/.claude.json`); it creates that file itself on a fresh directory.
//!   The tests create both;
//! - `IS_SANDBOX=1` when running as root (otherwise `bypassPermissions` is hidden).
//!
//! Requests seen from the real CLI with [`FakeAnthropic::agent_env`] (OAuth, expired token, `token_expires_in: 60`,
//! one Write round trip): `GET raw.githubusercontent.com/…/security.json` (plugin blocklist, answered `{}`), then per
//! model request `POST platform.claude.com/v1/oauth/token`, `GET api.anthropic.com/api/oauth/profile`,
//! `POST 127.0.0.1/v1/messages`. Without the quiet variables it also calls `api.anthropic.com/api/claude_cli/bootstrap`,
//! `/api/claude_code_penguin_mode`, `/mcp-registry/v0/servers` and `/api/eval/sdk-…` (feature flags); `{}` satisfies
//! them all.

use std::collections::HashMap;
use std::convert::Infallible;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json, Router};
use serde_json::{Value, json};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::{JoinHandle, JoinSet};

/// Largest request body the fake reads; bigger bodies are recorded as `Null` and answered anyway.
const BODY_LIMIT: usize = 64 * 1024 * 1024;
/// Longest a proxy client may take to send its request head or finish the TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

pub struct FakeAnthropicOptions {
    /// seconds returned as `expires_in` by the OAuth token endpoint (short, e.g. 60, makes the CLI refresh on every
    /// request: it refreshes whenever the token expires within 5 minutes)
    pub token_expires_in: u64,
    /// When Some((absolute_path, content)): the first /v1/messages answer of a turn is a `tool_use` of the built-in
    /// `Write` tool with {"file_path": path, "content": content}; after the tool_result arrives, answer a final text.
    pub write_file: Option<(PathBuf, String)>,
    /// Text of ordinary final answers.
    pub reply_text: String,
}

impl Default for FakeAnthropicOptions {
    fn default() -> Self {
        Self {
            token_expires_in: 3600,
            write_file: None,
            reply_text: "Done.".to_owned(),
        }
    }
}

/// One request as the fake saw it (after TLS termination for proxied HTTPS requests).
#[derive(Debug, Clone)]
pub struct RecordedRequest {
    pub method: String,
    /// From the `Host` header without the port (e.g. `platform.claude.com`, `127.0.0.1`).
    pub host: String,
    /// Without the query string (the SDK calls `/v1/messages?beta=true`; this is `/v1/messages`).
    pub path: String,
    /// Names in lowercase, in the order received.
    pub headers: Vec<(String, String)>,
    /// The parsed JSON body, `Null` if the body is empty or not JSON.
    pub body: Value,
}

impl RecordedRequest {
    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers.iter().find(|(n, _)| *n == name).map(|(_, v)| v.as_str())
    }

    /// `POST /v1/messages` (not `count_tokens`), on whichever host.
    pub fn is_messages(&self) -> bool {
        self.method == "POST" && self.path == "/v1/messages"
    }

    /// `POST /v1/oauth/token`, on whichever host.
    pub fn is_token_refresh(&self) -> bool {
        self.method == "POST" && self.path == "/v1/oauth/token"
    }
}

pub struct FakeAnthropic {
    shared: Arc<Shared>,
    api_port: u16,
    proxy_port: u16,
    ca_file: PathBuf,
    _dir: tempfile::TempDir,
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for FakeAnthropic {
    fn drop(&mut self) {
        // Each accept loop owns a JoinSet of its connections: aborting the loop drops (aborts) them too.
        for task in &self.tasks {
            task.abort();
        }
    }
}

impl FakeAnthropic {
    pub async fn start(options: FakeAnthropicOptions) -> FakeAnthropic {
        let dir = tempfile::tempdir().expect("temp dir for the fake CA");
        let certs = Arc::new(Certs::new());
        let ca_file = dir.path().join("fake-anthropic-ca.pem");
        std::fs::write(&ca_file, &certs.ca_pem).expect("write the CA file");

        let shared = Arc::new(Shared {
            options,
            log: Mutex::default(),
            next_id: AtomicU64::new(1),
        });
        let router = Router::new().fallback(handle).with_state(shared.clone());

        let api = TcpListener::bind("127.0.0.1:0").await.expect("bind the fake API");
        let proxy = TcpListener::bind("127.0.0.1:0").await.expect("bind the proxy");
        let api_port = api.local_addr().unwrap().port();
        let proxy_port = proxy.local_addr().unwrap().port();

        let api_router = router.clone();
        let api_task = tokio::spawn(accept_loop(api, move |stream| serve_http(stream, api_router.clone())));
        let proxy_task = tokio::spawn(accept_loop(proxy, move |stream| {
            proxy_connection(stream, router.clone(), certs.clone())
        }));

        FakeAnthropic {
            shared,
            api_port,
            proxy_port,
            ca_file,
            _dir: dir,
            tasks: vec![api_task, proxy_task],
        }
    }

    /// http://127.0.0.1:<port> of the fake Messages API (for ANTHROPIC_BASE_URL)
    pub fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.api_port)
    }

    /// http://127.0.0.1:<port> of the CONNECT proxy (for HTTPS_PROXY); it terminates TLS for platform.claude.com and
    /// api.anthropic.com (and any other host) with certs from a throwaway CA, and answers those requests with the
    /// same fake.
    pub fn proxy_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.proxy_port)
    }

    /// PEM file of the throwaway CA (for NODE_EXTRA_CA_CERTS)
    pub fn ca_file(&self) -> &Path {
        &self.ca_file
    }

    /// The environment the agent needs to run offline against this fake. Add `HOME`, `PATH`, `IS_SANDBOX=1` (as
    /// root), `CLAUDE_CONFIG_DIR` if wanted, and either a credentials file or `ANTHROPIC_API_KEY`.
    ///
    /// - `ANTHROPIC_BASE_URL`: `/v1/messages` (and `count_tokens`) go straight to the fake.
    /// - `HTTPS_PROXY`/`https_proxy`, `HTTP_PROXY`/`http_proxy`: everything else (token endpoint, profile, any
    ///   start-up call to a built-in host) goes through the intercepting proxy. The lowercase names win in the CLI,
    ///   so both are set to override anything inherited.
    /// - `NO_PROXY`/`no_proxy=127.0.0.1,localhost`: the fake API itself is reached directly.
    /// - `NODE_EXTRA_CA_CERTS`: trust the throwaway CA (both Node and the CLI's own agent read it).
    /// - `CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1`: no quota probe, MCP registry, release notes, metrics…
    ///   (the CLI's "essential-traffic" mode); `DISABLE_TELEMETRY`, `DISABLE_ERROR_REPORTING`,
    ///   `DISABLE_AUTOUPDATER`: quiet and no self-update attempts. All four exist in the bundled `cli.js` 2.1.83.
    pub fn agent_env(&self) -> Vec<(String, String)> {
        let proxy = self.proxy_url();
        let no_proxy = "127.0.0.1,localhost".to_owned();
        [
            ("ANTHROPIC_BASE_URL", self.base_url()),
            ("HTTPS_PROXY", proxy.clone()),
            ("https_proxy", proxy.clone()),
            ("HTTP_PROXY", proxy.clone()),
            ("http_proxy", proxy),
            ("NO_PROXY", no_proxy.clone()),
            ("no_proxy", no_proxy),
            ("NODE_EXTRA_CA_CERTS", self.ca_file.display().to_string()),
            ("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1".to_owned()),
            ("DISABLE_TELEMETRY", "1".to_owned()),
            ("DISABLE_ERROR_REPORTING", "1".to_owned()),
            ("DISABLE_AUTOUPDATER", "1".to_owned()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect()
    }

    /// Every request received so far (through either listener), in order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.shared.log.lock().unwrap().requests.clone()
    }

    /// Every (access, refresh) token pair the token endpoint issued, in order (so tests can check the credentials
    /// file was rotated to the last one).
    pub fn issued_tokens(&self) -> Vec<(String, String)> {
        self.shared.log.lock().unwrap().issued.clone()
    }
}

/// A credentials file in the CLI's format (`.credentials.json`) holding the given tokens. `expires_at_ms` is epoch
/// milliseconds; the CLI refreshes when it is less than 5 minutes away.
pub fn credentials_json(access_token: &str, refresh_token: &str, expires_at_ms: i64) -> Value {
    json!({
        "claudeAiOauth": {
            "accessToken": access_token,
            "refreshToken": refresh_token,
            "expiresAt": expires_at_ms,
            "scopes": ["user:inference", "user:profile"],
            "subscriptionType": "max",
            "rateLimitTier": "default_claude_max_20x"
        }
    })
}

// ---------------------------------------------------------------------------------------------------------------
// The fake API

struct Shared {
    options: FakeAnthropicOptions,
    log: Mutex<Log>,
    next_id: AtomicU64,
}

#[derive(Default)]
struct Log {
    requests: Vec<RecordedRequest>,
    issued: Vec<(String, String)>,
}

/// The target of the CONNECT a request arrived through, as a request extension.
#[derive(Clone)]
struct ConnectHost(String);

fn strip_port(authority: &str) -> &str {
    if let Some(rest) = authority.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    authority.split(':').next().unwrap_or(authority)
}

async fn handle(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let bytes = axum::body::to_bytes(body, BODY_LIMIT).await.unwrap_or_default();
    let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    let host = parts
        .headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(str::to_owned)
        .or_else(|| parts.uri.authority().map(|a| a.to_string()))
        .or_else(|| parts.extensions.get::<ConnectHost>().map(|c| c.0.clone()))
        .map(|a| strip_port(&a).to_owned())
        .unwrap_or_default();
    let recorded = RecordedRequest {
        method: parts.method.to_string(),
        host,
        path: parts.uri.path().to_owned(),
        headers: headers_vec(&parts.headers),
        body,
    };
    let response = answer(&shared, &parts.method, &recorded);
    shared.log.lock().unwrap().requests.push(recorded);
    response
}

fn headers_vec(headers: &HeaderMap) -> Vec<(String, String)> {
    headers
        .iter()
        .map(|(n, v)| {
            (
                n.as_str().to_owned(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect()
}

fn answer(shared: &Shared, method: &Method, request: &RecordedRequest) -> Response {
    match (method.as_str(), request.path.as_str()) {
        ("POST", "/v1/messages") => messages(shared, &request.body),
        ("POST", "/v1/messages/count_tokens") => Json(json!({"input_tokens": 42})).into_response(),
        ("GET", "/api/oauth/profile") => Json(profile()).into_response(),
        ("POST", "/v1/oauth/token") => token(shared),
        _ => Json(json!({})).into_response(),
    }
}

fn profile() -> Value {
    json!({
        "account": {
            "uuid": "00000000-0000-4000-8000-00000000000a",
            "email": "fake@example.com",
            "email_address": "fake@example.com",
            "full_name": "Fake User",
            "display_name": "Fake",
            "has_claude_max": true,
            "has_claude_pro": false,
            "created_at": "2025-01-01T00:00:00Z"
        },
        "organization": {
            "uuid": "00000000-0000-4000-8000-00000000000b",
            "name": "Fake Org",
            "organization_type": "claude_max",
            "billing_type": "stripe_subscription",
            "rate_limit_tier": "default_claude_max_20x",
            "has_extra_usage_enabled": false,
            "subscription_created_at": "2025-01-01T00:00:00Z"
        }
    })
}

/// The OAuth token endpoint: every call (refresh or code exchange) issues a fresh, unique pair. The presented refresh
/// token is not checked (a reused one is accepted too); tests assert the chain from [`FakeAnthropic::requests`].
fn token(shared: &Shared) -> Response {
    let n = shared.next_id.fetch_add(1, Ordering::Relaxed);
    let access = format!("sk-ant-oat01-fake-{n}");
    let refresh = format!("sk-ant-ort01-fake-{n}");
    shared
        .log
        .lock()
        .unwrap()
        .issued
        .push((access.clone(), refresh.clone()));
    Json(json!({
        "token_type": "Bearer",
        "access_token": access,
        "refresh_token": refresh,
        "expires_in": shared.options.token_expires_in,
        "scope": "user:inference user:profile",
        "account": {"uuid": "00000000-0000-4000-8000-00000000000a", "email_address": "fake@example.com"},
        "organization": {"uuid": "00000000-0000-4000-8000-00000000000b"}
    }))
    .into_response()
}

enum Block {
    Text(String),
    ToolUse { id: String, name: String, input: Value },
}

/// What to answer, decided from the request body alone (so concurrent side requests cannot confuse it).
fn plan(options: &FakeAnthropicOptions, body: &Value, n: u64) -> (Vec<Block>, &'static str) {
    if body["max_tokens"].as_u64() == Some(1) {
        return (vec![Block::Text("ok".to_owned())], "max_tokens");
    }
    let offers_write = body["tools"]
        .as_array()
        .is_some_and(|tools| tools.iter().any(|t| t["name"] == "Write"));
    let last_user = body["messages"]
        .as_array()
        .and_then(|m| m.iter().rev().find(|m| m["role"] == "user"));
    let answers_tool = last_user
        .and_then(|m| m["content"].as_array())
        .is_some_and(|c| c.iter().any(|b| b["type"] == "tool_result"));
    match &options.write_file {
        Some((path, content)) if offers_write && !answers_tool => (
            vec![
                Block::Text("I'll write the file.".to_owned()),
                Block::ToolUse {
                    id: format!("toolu_fake_{n}"),
                    name: "Write".to_owned(),
                    input: json!({"file_path": path, "content": content}),
                },
            ],
            "tool_use",
        ),
        _ => (vec![Block::Text(options.reply_text.clone())], "end_turn"),
    }
}

fn messages(shared: &Shared, body: &Value) -> Response {
    let n = shared.next_id.fetch_add(1, Ordering::Relaxed);
    let model = body["model"].as_str().unwrap_or("claude-sonnet-4-5").to_owned();
    let (blocks, stop_reason) = plan(&shared.options, body, n);
    let id = format!("msg_fake_{n}");
    let usage = json!({"input_tokens": 12, "output_tokens": 7, "cache_creation_input_tokens": 0,
                       "cache_read_input_tokens": 0});
    let headers = [
        ("request-id", format!("req_fake_{n}")),
        ("anthropic-ratelimit-unified-status", "allowed".into()),
    ];

    if body["stream"] != true {
        let content: Vec<Value> = blocks
            .iter()
            .map(|b| match b {
                Block::Text(text) => json!({"type": "text", "text": text}),
                Block::ToolUse { id, name, input } => {
                    json!({"type": "tool_use", "id": id, "name": name, "input": input})
                }
            })
            .collect();
        let message = json!({"id": id, "type": "message", "role": "assistant", "model": model, "content": content,
                             "stop_reason": stop_reason, "stop_sequence": null, "usage": usage});
        return (headers, Json(message)).into_response();
    }

    let mut events: Vec<(&str, Value)> = vec![(
        "message_start",
        json!({"type": "message_start", "message": {"id": id, "type": "message", "role": "assistant",
            "model": model, "content": [], "stop_reason": null, "stop_sequence": null,
            "usage": {"input_tokens": 12, "output_tokens": 1, "cache_creation_input_tokens": 0,
                      "cache_read_input_tokens": 0}}}),
    )];
    for (index, block) in blocks.iter().enumerate() {
        match block {
            Block::Text(text) => {
                events.push((
                    "content_block_start",
                    json!({"type": "content_block_start", "index": index,
                           "content_block": {"type": "text", "text": ""}}),
                ));
                let mid = text.char_indices().nth(text.chars().count() / 2).map_or(0, |(i, _)| i);
                for piece in [&text[..mid], &text[mid..]].into_iter().filter(|p| !p.is_empty()) {
                    events.push((
                        "content_block_delta",
                        json!({"type": "content_block_delta", "index": index,
                               "delta": {"type": "text_delta", "text": piece}}),
                    ));
                }
            }
            Block::ToolUse { id, name, input } => {
                events.push((
                    "content_block_start",
                    json!({"type": "content_block_start", "index": index,
                           "content_block": {"type": "tool_use", "id": id, "name": name, "input": {}}}),
                ));
                let json = input.to_string();
                let mid = json.char_indices().nth(json.chars().count() / 2).map_or(0, |(i, _)| i);
                for piece in [&json[..mid], &json[mid..]] {
                    events.push((
                        "content_block_delta",
                        json!({"type": "content_block_delta", "index": index,
                               "delta": {"type": "input_json_delta", "partial_json": piece}}),
                    ));
                }
            }
        }
        events.push((
            "content_block_stop",
            json!({"type": "content_block_stop", "index": index}),
        ));
    }
    events.push((
        "message_delta",
        json!({"type": "message_delta", "delta": {"stop_reason": stop_reason, "stop_sequence": null},
               "usage": usage}),
    ));
    events.push(("message_stop", json!({"type": "message_stop"})));

    let chunks: Vec<Result<Bytes, Infallible>> = events
        .into_iter()
        .map(|(name, data)| Ok(Bytes::from(format!("event: {name}\ndata: {data}\n\n"))))
        .collect();
    let mut response = Body::from_stream(futures_util::stream::iter(chunks)).into_response();
    *response.status_mut() = StatusCode::OK;
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        "text/event-stream; charset=utf-8".parse().unwrap(),
    );
    h.insert(header::CACHE_CONTROL, "no-cache".parse().unwrap());
    for (name, value) in headers {
        h.insert(name, value.parse().unwrap());
    }
    response
}

// ---------------------------------------------------------------------------------------------------------------
// Listeners, the CONNECT proxy and TLS

async fn accept_loop<F, Fut>(listener: TcpListener, serve: F)
where
    F: Fn(TcpStream) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let mut connections = JoinSet::new();
    loop {
        while connections.try_join_next().is_some() {}
        match listener.accept().await {
            Ok((stream, _)) => {
                connections.spawn(serve(stream));
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
        }
    }
}

async fn serve_http<S>(io: S, router: Router)
where
    S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let service = hyper_util::service::TowerToHyperService::new(router);
    let _ = hyper::server::conn::http1::Builder::new()
        .serve_connection(hyper_util::rt::TokioIo::new(io), service)
        .await;
}

/// Reads the request head without consuming it; returns its length.
async fn peek_head(stream: &TcpStream, buf: &mut [u8]) -> Option<usize> {
    loop {
        let n = stream.peek(buf).await.ok()?;
        if n == 0 {
            return None;
        }
        if let Some(pos) = buf[..n].windows(4).position(|w| w == b"\r\n\r\n") {
            return Some(pos + 4);
        }
        if n == buf.len() {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

async fn proxy_connection(mut stream: TcpStream, router: Router, certs: Arc<Certs>) {
    let mut buf = vec![0u8; 16 * 1024];
    let Ok(Some(head_len)) = tokio::time::timeout(HANDSHAKE_TIMEOUT, peek_head(&stream, &mut buf)).await else {
        return;
    };
    let head = String::from_utf8_lossy(&buf[..head_len]).into_owned();
    let mut request_line = head.lines().next().unwrap_or_default().split_whitespace();
    if request_line.next() != Some("CONNECT") {
        // An absolute-form request (`GET http://host/path`) for HTTP_PROXY: answer it in place.
        return serve_http(stream, router).await;
    }
    let target = request_line.next().unwrap_or_default();
    let host = strip_port(target).to_owned();
    if stream.read_exact(&mut buf[..head_len]).await.is_err()
        || stream
            .write_all(b"HTTP/1.1 200 Connection Established\r\n\r\n")
            .await
            .is_err()
    {
        return;
    }
    let acceptor = tokio_rustls::TlsAcceptor::from(certs.server_config(&host));
    let Ok(Ok(tls)) = tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await else {
        return;
    };
    serve_http(tls, router.layer(Extension(ConnectHost(host)))).await;
}

/// A throwaway CA and, per host, a rustls config with a leaf certificate it signed.
struct Certs {
    ca_pem: String,
    issuer: rcgen::Issuer<'static, rcgen::KeyPair>,
    configs: Mutex<HashMap<String, Arc<rustls::ServerConfig>>>,
}

impl Certs {
    fn new() -> Self {
        use rcgen::{BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, KeyPair, KeyUsagePurpose};
        let key = KeyPair::generate().expect("CA key");
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        let mut name = DistinguishedName::new();
        name.push(DnType::CommonName, "acp-bridge fake Anthropic test CA");
        params.distinguished_name = name;
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        params.not_before = rcgen::date_time_ymd(2020, 1, 1);
        params.not_after = rcgen::date_time_ymd(2045, 1, 1);
        let ca_pem = params.self_signed(&key).expect("self-sign the CA").pem();
        Certs {
            ca_pem,
            issuer: rcgen::Issuer::new(params, key),
            configs: Mutex::default(),
        }
    }

    fn server_config(&self, host: &str) -> Arc<rustls::ServerConfig> {
        let mut configs = self.configs.lock().unwrap();
        if let Some(config) = configs.get(host) {
            return config.clone();
        }
        use rcgen::{CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, KeyPair, KeyUsagePurpose};
        let key = KeyPair::generate().expect("leaf key");
        let host_name = if host.is_empty() { "localhost" } else { host };
        let mut params = CertificateParams::new(vec![host_name.to_owned()]).expect("leaf params");
        let mut name = DistinguishedName::new();
        name.push(DnType::CommonName, host_name);
        params.distinguished_name = name;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.use_authority_key_identifier_extension = true;
        params.not_before = rcgen::date_time_ymd(2020, 1, 1);
        params.not_after = rcgen::date_time_ymd(2045, 1, 1);
        let cert = params.signed_by(&key, &self.issuer).expect("sign the leaf");
        let key_der = rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into());
        let mut config =
            rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
                .with_safe_default_protocol_versions()
                .expect("TLS versions")
                .with_no_client_auth()
                .with_single_cert(vec![cert.der().clone()], key_der)
                .expect("leaf cert and key");
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        let config = Arc::new(config);
        configs.insert(host.to_owned(), config.clone());
        config
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Proof: the real adapter, offline, against the fake

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;
    use std::process::Stdio;
    use std::time::Instant;
    use tokio::io::{AsyncBufReadExt, BufReader};
    use tokio::process::{Child, ChildStdin, Command};
    use tokio::sync::mpsc;

    const STEP_TIMEOUT: Duration = Duration::from_secs(20);

    fn adapter_bin() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("image/tools/node_modules/.bin/claude-agent-acp")
    }

    fn now_ms() -> i64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as i64
    }

    /// A running adapter in its own process group, spoken to as a minimal ACP client.
    struct Agent {
        child: Child,
        stdin: ChildStdin,
        lines: mpsc::UnboundedReceiver<Value>,
        stderr: Arc<Mutex<String>>,
        next_id: u64,
        /// Every notification and agent->client request received, in order.
        received: Vec<Value>,
        permission_requests: usize,
    }

    impl Drop for Agent {
        fn drop(&mut self) {
            if let Some(pid) = self.child.id() {
                let _ = nix::sys::signal::killpg(nix::unistd::Pid::from_raw(pid as i32), nix::sys::signal::SIGKILL);
            }
        }
    }

    impl Agent {
        fn spawn(home: &Path, env: &[(String, String)]) -> Agent {
            let mut command = Command::new(adapter_bin());
            command
                .env_clear()
                .env("PATH", std::env::var("PATH").unwrap_or_default())
                .env("HOME", home)
                .env("IS_SANDBOX", "1")
                .envs(env.iter().map(|(k, v)| (k, v)))
                .current_dir(home)
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .process_group(0)
                .kill_on_drop(true);
            let mut child = command.spawn().expect("spawn claude-agent-acp");
            let stdin = child.stdin.take().unwrap();
            let stdout = child.stdout.take().unwrap();
            let stderr_pipe = child.stderr.take().unwrap();
            let (tx, lines) = mpsc::unbounded_channel();
            tokio::spawn(async move {
                let mut reader = BufReader::new(stdout).lines();
                while let Ok(Some(line)) = reader.next_line().await {
                    if let Ok(value) = serde_json::from_str::<Value>(&line) {
                        let _ = tx.send(value);
                    }
                }
            });
            let stderr = Arc::new(Mutex::new(String::new()));
            let sink = stderr.clone();
            tokio::spawn(async move {
                let mut reader = BufReader::new(stderr_pipe).lines();
                while let Ok(Some(line)) = reader.next_line().await {
                    let mut sink = sink.lock().unwrap();
                    if sink.len() < 64 * 1024 {
                        sink.push_str(&line);
                        sink.push('\n');
                    }
                }
            });
            Agent {
                child,
                stdin,
                lines,
                stderr,
                next_id: 1,
                received: Vec::new(),
                permission_requests: 0,
            }
        }

        fn stderr(&self) -> String {
            self.stderr.lock().unwrap().clone()
        }

        async fn send(&mut self, message: Value) {
            let mut line = message.to_string();
            line.push('\n');
            self.stdin.write_all(line.as_bytes()).await.expect("write to the agent");
            self.stdin.flush().await.unwrap();
        }

        /// Sends a request and serves the agent's requests until its response arrives; panics on error or timeout.
        async fn call(&mut self, method: &str, params: Value) -> Value {
            let id = self.next_id;
            self.next_id += 1;
            self.send(json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}))
                .await;
            let deadline = tokio::time::Instant::now() + STEP_TIMEOUT;
            loop {
                let message = match tokio::time::timeout_at(deadline, self.lines.recv()).await {
                    Ok(Some(message)) => message,
                    Ok(None) => panic!("the agent closed stdout during {method}; stderr:\n{}", self.stderr()),
                    Err(_) => panic!(
                        "no answer to {method} within {STEP_TIMEOUT:?}; stderr:\n{}",
                        self.stderr()
                    ),
                };
                if message.get("method").is_none() && message["id"] == id {
                    if let Some(error) = message.get("error") {
                        panic!("{method} failed: {error}; stderr:\n{}", self.stderr());
                    }
                    return message["result"].clone();
                }
                self.received.push(message.clone());
                if let (Some(method), Some(request_id)) = (message["method"].as_str(), message.get("id")) {
                    let reply = if method == "session/request_permission" {
                        self.permission_requests += 1;
                        let options = message["params"]["options"].as_array().cloned().unwrap_or_default();
                        let allow = options
                            .iter()
                            .find(|o| o["kind"] == "allow_once" || o["kind"] == "allow_always")
                            .unwrap_or_else(|| panic!("no allow option offered: {message}"));
                        json!({"jsonrpc": "2.0", "id": request_id,
                               "result": {"outcome": {"outcome": "selected", "optionId": allow["optionId"]}}})
                    } else {
                        json!({"jsonrpc": "2.0", "id": request_id,
                               "error": {"code": -32601, "message": format!("method not found: {method}")}})
                    };
                    self.send(reply).await;
                }
            }
        }

        /// initialize → session/new → session/prompt; returns the prompt's result.
        async fn run_turn(&mut self, cwd: &Path, text: &str) -> Value {
            let init = self
                .call(
                    "initialize",
                    json!({"protocolVersion": 1,
                           "clientCapabilities": {"fs": {"readTextFile": false, "writeTextFile": false},
                                                  "terminal": false}}),
                )
                .await;
            assert_eq!(init["protocolVersion"], 1, "{init}");
            let session = self.call("session/new", json!({"cwd": cwd, "mcpServers": []})).await;
            let session_id = session["sessionId"].as_str().expect("sessionId").to_owned();
            self.call(
                "session/prompt",
                json!({"sessionId": session_id, "prompt": [{"type": "text", "text": text}]}),
            )
            .await
        }

        /// Text of all `agent_message_chunk` updates so far.
        fn agent_text(&self) -> String {
            self.received
                .iter()
                .filter(|m| m["method"] == "session/update")
                .filter(|m| m["params"]["update"]["sessionUpdate"] == "agent_message_chunk")
                .filter_map(|m| m["params"]["update"]["content"]["text"].as_str())
                .collect()
        }
    }

    /// A temp HOME with `CLAUDE_CONFIG_DIR=<home>/.claude`, both `.claude.json` files, and a project directory.
    struct Home {
        dir: tempfile::TempDir,
    }

    impl Home {
        fn new() -> Home {
            let dir = tempfile::tempdir().unwrap();
            std::fs::create_dir_all(dir.path().join(".claude")).unwrap();
            std::fs::create_dir_all(dir.path().join("project")).unwrap();
            std::fs::write(dir.path().join(".claude.json"), "{}").unwrap();
            std::fs::write(dir.path().join(".claude/.claude.json"), "{}").unwrap();
            Home { dir }
        }
        fn path(&self) -> &Path {
            self.dir.path()
        }
        fn config_dir(&self) -> PathBuf {
            self.path().join(".claude")
        }
        fn project(&self) -> PathBuf {
            self.path().join("project")
        }
        fn credentials_file(&self) -> PathBuf {
            self.config_dir().join(".credentials.json")
        }
        fn env(&self, fake: &FakeAnthropic) -> Vec<(String, String)> {
            let mut env = fake.agent_env();
            env.push(("CLAUDE_CONFIG_DIR".into(), self.config_dir().display().to_string()));
            env
        }
    }

    /// The paths the real CLI did not take in the tests below (with quiet env it sends no quota probe and always
    /// streams), checked directly over HTTP, plus plain-HTTP proxying.
    #[tokio::test]
    async fn the_fake_answers_probes_non_streaming_requests_and_proxied_http() {
        let fake = FakeAnthropic::start(FakeAnthropicOptions {
            token_expires_in: 120,
            write_file: Some((PathBuf::from("/tmp/x.txt"), "x".into())),
            reply_text: "final".into(),
        })
        .await;
        let client = reqwest::Client::new();
        let post = |path: &str, body: Value| {
            let request = client.post(format!("{}{path}", fake.base_url())).json(&body).send();
            async move { request.await.unwrap().json::<Value>().await.unwrap() }
        };
        let with_write = |max_tokens: u64, messages: Value| {
            let tools = json!([{"name": "Write", "input_schema": {"type": "object"}}]);
            json!({"model": "m", "max_tokens": max_tokens, "tools": tools, "messages": messages})
        };

        let quota = json!([{"role": "user", "content": "quota"}]);
        let probe = post("/v1/messages?beta=true", with_write(1, quota)).await;
        assert_eq!(probe["content"][0]["text"], "ok", "{probe}");

        let go = json!([{"role": "user", "content": [{"type": "text", "text": "go"}]}]);
        let first = post("/v1/messages", with_write(100, go)).await;
        assert_eq!(first["stop_reason"], "tool_use", "{first}");
        let input = &first["content"][1]["input"];
        assert_eq!(*input, json!({"file_path": "/tmp/x.txt", "content": "x"}));

        let result = json!({"type": "tool_result", "tool_use_id": "t", "content": "ok"});
        let round_trip = json!([
            {"role": "user", "content": "go"},
            {"role": "assistant", "content": first["content"]},
            {"role": "user", "content": [result]}
        ]);
        let follow_up = post("/v1/messages", with_write(100, round_trip)).await;
        assert_eq!(follow_up["stop_reason"], "end_turn", "{follow_up}");
        assert_eq!(follow_up["content"][0]["text"], "final");

        // Without the Write tool (e.g. a title or summary side request) the answer is plain text.
        let title = json!({"model": "m", "max_tokens": 100, "messages": [{"role": "user", "content": "title?"}]});
        let side = post("/v1/messages", title).await;
        assert_eq!(side["content"][0]["text"], "final", "{side}");

        let count = post("/v1/messages/count_tokens", json!({"messages": []})).await;
        assert!(count["input_tokens"].as_u64().is_some(), "{count}");
        let token = post(
            "/v1/oauth/token",
            json!({"grant_type": "refresh_token", "refresh_token": "r"}),
        )
        .await;
        assert_eq!(token["expires_in"], 120);
        assert_eq!(token["scope"], "user:inference user:profile");
        assert_eq!(
            fake.issued_tokens(),
            vec![(
                token["access_token"].as_str().unwrap().to_owned(),
                token["refresh_token"].as_str().unwrap().to_owned()
            )]
        );

        // Plain HTTP through the proxy (absolute-form request) is answered by the same fake.
        let proxied = reqwest::Client::builder()
            .proxy(reqwest::Proxy::http(fake.proxy_url()).unwrap())
            .build()
            .unwrap();
        let profile: Value = proxied
            .get("http://api.anthropic.com/api/oauth/profile")
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(profile["organization"]["organization_type"], "claude_max", "{profile}");
        let other = proxied
            .post("http://example.invalid/anything")
            .body("not json")
            .send()
            .await
            .unwrap();
        assert_eq!(other.status(), 200);
        assert_eq!(other.json::<Value>().await.unwrap(), json!({}));

        let requests = fake.requests();
        let seen: Vec<(&str, &str, &str)> = requests
            .iter()
            .map(|r| (r.method.as_str(), r.host.as_str(), r.path.as_str()))
            .collect();
        assert_eq!(
            seen,
            vec![
                ("POST", "127.0.0.1", "/v1/messages"),
                ("POST", "127.0.0.1", "/v1/messages"),
                ("POST", "127.0.0.1", "/v1/messages"),
                ("POST", "127.0.0.1", "/v1/messages"),
                ("POST", "127.0.0.1", "/v1/messages/count_tokens"),
                ("POST", "127.0.0.1", "/v1/oauth/token"),
                ("GET", "api.anthropic.com", "/api/oauth/profile"),
                ("POST", "example.invalid", "/anything"),
            ]
        );
        assert_eq!(requests[0].header("Content-Type"), Some("application/json"));
        assert_eq!(requests[7].body, Value::Null);
    }

    #[tokio::test]
    async fn the_real_adapter_runs_a_file_writing_turn_against_the_fake_api() {
        let started = Instant::now();
        let home = Home::new();
        let target = home.project().join("hello.txt");
        let content = "Hello from the fake Anthropic API.\n".to_owned();
        let fake = FakeAnthropic::start(FakeAnthropicOptions {
            token_expires_in: 60,
            write_file: Some((target.clone(), content.clone())),
            reply_text: "The file is written.".into(),
        })
        .await;
        assert!(fake.proxy_url().starts_with("http://127.0.0.1:"));
        assert!(
            std::fs::read_to_string(fake.ca_file())
                .unwrap()
                .contains("BEGIN CERTIFICATE")
        );

        let mut credentials = credentials_json("sk-ant-oat01-initial", "sk-ant-ort01-initial", now_ms() - 60_000);
        credentials["someoneElsesKey"] = json!({"kept": true});
        std::fs::write(
            home.credentials_file(),
            serde_json::to_vec_pretty(&credentials).unwrap(),
        )
        .unwrap();

        let inode = std::fs::metadata(home.credentials_file()).unwrap().ino();

        let mut agent = Agent::spawn(home.path(), &home.env(&fake));
        let result = agent.run_turn(&home.project(), "Write hello.txt, please.").await;
        let elapsed = started.elapsed();

        let stderr = agent.stderr();
        assert_eq!(result["stopReason"], "end_turn", "{result}; stderr:\n{stderr}");
        assert_eq!(
            std::fs::read_to_string(&target).ok().as_deref(),
            Some(content.as_str()),
            "stderr:\n{stderr}"
        );
        assert!(agent.permission_requests >= 1, "the Write tool asked for permission");

        let requests = fake.requests();
        let issued = fake.issued_tokens();
        let summary: Vec<String> = requests
            .iter()
            .map(|r| format!("{} {}{}", r.method, r.host, r.path))
            .collect();
        assert!(
            !issued.is_empty(),
            "the expired token was refreshed; requests: {summary:#?}"
        );

        // The token endpoint was reached through the proxy, with the refresh token from the file, then each following
        // refresh presented the previously issued refresh token (a real rotation chain).
        let refreshes: Vec<&RecordedRequest> = requests.iter().filter(|r| r.is_token_refresh()).collect();
        assert_eq!(refreshes.len(), issued.len());
        let mut expected_refresh = "sk-ant-ort01-initial".to_owned();
        for (request, (_, new_refresh)) in refreshes.iter().zip(&issued) {
            assert_eq!(request.host, "platform.claude.com");
            assert_eq!(request.body["grant_type"], "refresh_token", "{}", request.body);
            assert_eq!(
                request.body["refresh_token"],
                expected_refresh.as_str(),
                "{}",
                request.body
            );
            assert_eq!(request.body["client_id"], "9d1c250a-e61b-44d9-88ed-5944d1962f5e");
            expected_refresh = new_refresh.clone();
        }

        // Messages: straight to the fake (ANTHROPIC_BASE_URL), with an issued bearer token and the OAuth beta.
        let messages: Vec<&RecordedRequest> = requests.iter().filter(|r| r.is_messages()).collect();
        assert!(messages.len() >= 2, "a tool_use round trip; requests: {summary:#?}");
        for request in &messages {
            assert_eq!(request.host, "127.0.0.1");
            let bearer = request
                .header("authorization")
                .and_then(|a| a.strip_prefix("Bearer "))
                .unwrap_or_default();
            assert!(
                issued.iter().any(|(access, _)| access == bearer),
                "bearer {bearer:?} was issued"
            );
            let beta = request.header("anthropic-beta").unwrap_or_default();
            assert!(
                beta.split(',').any(|b| b.trim() == "oauth-2025-04-20"),
                "anthropic-beta: {beta}"
            );
            assert_eq!(request.header("x-api-key"), None);
        }
        let last_user = |r: &RecordedRequest| r.body["messages"].as_array().and_then(|m| m.last()).cloned();
        assert!(
            messages
                .iter()
                .any(|r| last_user(r).is_some_and(|m| m.to_string().contains("\"tool_result\""))),
            "the tool_result came back"
        );

        // The credentials file was rewritten in place (same inode) with the newest pair, other keys kept.
        assert_eq!(
            std::fs::metadata(home.credentials_file()).unwrap().ino(),
            inode,
            "rewritten in place"
        );
        let (last_access, last_refresh) = issued.last().unwrap().clone();
        let file: Value = serde_json::from_slice(&std::fs::read(home.credentials_file()).unwrap()).unwrap();
        let oauth = &file["claudeAiOauth"];
        assert_eq!(oauth["accessToken"], last_access.as_str(), "{file}");
        assert_eq!(oauth["refreshToken"], last_refresh.as_str(), "{file}");
        assert!(oauth["expiresAt"].as_i64().unwrap() > now_ms(), "{file}");
        assert!(
            oauth["scopes"]
                .as_array()
                .unwrap()
                .iter()
                .any(|s| s == "user:inference"),
            "{file}"
        );
        assert_eq!(file["someoneElsesKey"], json!({"kept": true}), "{file}");

        eprintln!(
            "file-writing turn: {elapsed:?}, {} requests ({} messages, {} refreshes): {summary:?}",
            requests.len(),
            messages.len(),
            refreshes.len()
        );
    }

    #[tokio::test]
    async fn the_real_adapter_uses_an_api_key_against_the_fake_api() {
        let started = Instant::now();
        let home = Home::new();
        let fake = FakeAnthropic::start(FakeAnthropicOptions {
            reply_text: "Hello from the fake.".into(),
            ..FakeAnthropicOptions::default()
        })
        .await;
        let mut env = home.env(&fake);
        env.push(("ANTHROPIC_API_KEY".into(), "sk-ant-api03-fake-key".into()));

        let mut agent = Agent::spawn(home.path(), &env);
        let result = agent.run_turn(&home.project(), "Say hello.").await;
        let elapsed = started.elapsed();
        assert_eq!(
            result["stopReason"],
            "end_turn",
            "{result}; stderr:\n{}",
            agent.stderr()
        );

        let requests = fake.requests();
        let messages: Vec<&RecordedRequest> = requests.iter().filter(|r| r.is_messages()).collect();
        assert!(!messages.is_empty());
        for request in &messages {
            assert_eq!(request.header("x-api-key"), Some("sk-ant-api03-fake-key"));
            assert_eq!(request.header("authorization"), None);
            let beta = request.header("anthropic-beta").unwrap_or_default();
            assert!(!beta.contains("oauth-2025-04-20"), "anthropic-beta: {beta}");
        }
        assert!(fake.issued_tokens().is_empty());
        assert!(!requests.iter().any(RecordedRequest::is_token_refresh));
        // The final answer reaches the client as message chunks (they may trail the prompt's response a little).
        let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
        while !agent.agent_text().contains("Hello from the fake.") && tokio::time::Instant::now() < deadline {
            if let Ok(Some(message)) = tokio::time::timeout(Duration::from_millis(50), agent.lines.recv()).await {
                agent.received.push(message);
            }
        }
        assert!(
            agent.agent_text().contains("Hello from the fake."),
            "{:?}",
            agent.agent_text()
        );
        eprintln!("api-key turn: {elapsed:?}, {} requests", requests.len());
    }
}
