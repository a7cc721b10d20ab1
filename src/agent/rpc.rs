//! Newline-delimited JSON-RPC 2.0 over the agent's stdin/stdout — the ACP transport.
//!
//! A writer task owns stdin; a reader task owns stdout and routes what arrives: responses to the
//! waiting request, `session/update` notifications and agent requests (`session/request_permission`)
//! to the current turn. Lines that are not JSON-RPC, and responses to unknown ids, are logged and dropped.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader, BufWriter};
use tokio::process::{ChildStdin, ChildStdout};
use tokio::sync::{mpsc, oneshot};

/// Longest line accepted from the agent (a screenshot in a tool result can be large).
const MAX_LINE: usize = 64 * 1024 * 1024;

/// A JSON-RPC error object from the agent.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{message} (code {code})")]
pub struct RpcError {
    pub code: i64,
    pub message: String,
}

#[derive(Debug, thiserror::Error)]
pub enum CallError {
    #[error("the agent answered with an error: {0}")]
    Rpc(RpcError),
    #[error("the agent process is gone")]
    Gone,
}

/// What the agent sends that is not a response.
#[derive(Debug)]
pub enum Inbound {
    /// `session/update`: the raw params (`{sessionId, update}`).
    Update(Value),
    /// A request from the agent, to be answered with [`Connection::respond`].
    Request { id: Value, method: String, params: Value },
    /// The agent's stdout closed.
    Closed,
}

/// Where inbound messages for the running turn go. Bounded: when the turn falls behind, the reader stops
/// reading and the agent waits on its full pipe, so a flood of updates costs bounded memory.
pub type Route = Arc<Mutex<Option<mpsc::Sender<Inbound>>>>;

/// Capacity of a turn's inbound channel.
pub const ROUTE_BUFFER: usize = 256;

#[derive(Clone)]
pub struct Connection {
    inner: Arc<Inner>,
}

struct Inner {
    outgoing: mpsc::UnboundedSender<Vec<u8>>,
    pending: Mutex<HashMap<u64, oneshot::Sender<Result<Value, RpcError>>>>,
    next_id: AtomicU64,
    alive: AtomicBool,
    route: Route,
}

impl Connection {
    /// Starts the reader and writer tasks over the child's pipes.
    pub fn start(stdin: ChildStdin, stdout: ChildStdout) -> Self {
        let (outgoing, rx) = mpsc::unbounded_channel();
        let inner = Arc::new(Inner {
            outgoing,
            pending: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(1),
            alive: AtomicBool::new(true),
            route: Arc::new(Mutex::new(None)),
        });
        tokio::spawn(write_loop(stdin, rx));
        tokio::spawn(read_loop(stdout, inner.clone()));
        Self { inner }
    }

    pub fn is_alive(&self) -> bool {
        self.inner.alive.load(Ordering::Acquire)
    }

    /// Sends a request and waits for its response.
    pub async fn request(&self, method: &str, params: Value) -> Result<Value, CallError> {
        let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        self.inner
            .pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id, tx);
        if !self.is_alive() {
            self.inner.pending.lock().unwrap_or_else(|e| e.into_inner()).remove(&id);
            return Err(CallError::Gone);
        }
        self.send(json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}));
        match rx.await {
            Ok(Ok(result)) => Ok(result),
            Ok(Err(error)) => Err(CallError::Rpc(error)),
            Err(_) => Err(CallError::Gone),
        }
    }

    pub fn notify(&self, method: &str, params: Value) {
        self.send(json!({"jsonrpc": "2.0", "method": method, "params": params}));
    }

    /// Answers a request the agent sent.
    pub fn respond(&self, id: Value, result: Value) {
        self.send(json!({"jsonrpc": "2.0", "id": id, "result": result}));
    }

    pub fn respond_error(&self, id: Value, code: i64, message: &str) {
        self.send(json!({"jsonrpc": "2.0", "id": id, "error": {"code": code, "message": message}}));
    }

    /// Sends this turn's inbound messages to `sink` until [`Connection::clear_route`].
    pub fn route_to(&self, sink: mpsc::Sender<Inbound>) {
        *self.inner.route.lock().unwrap_or_else(|e| e.into_inner()) = Some(sink);
    }

    pub fn clear_route(&self) {
        self.inner.route.lock().unwrap_or_else(|e| e.into_inner()).take();
    }

    fn send(&self, message: Value) {
        let mut line = message.to_string().into_bytes();
        line.push(b'\n');
        let _ = self.inner.outgoing.send(line);
    }
}

async fn write_loop(stdin: ChildStdin, mut rx: mpsc::UnboundedReceiver<Vec<u8>>) {
    let mut writer = BufWriter::new(stdin);
    while let Some(line) = rx.recv().await {
        if write_line(&mut writer, &line).await.is_err() {
            break;
        }
        // Batch whatever else is queued before flushing.
        while let Ok(line) = rx.try_recv() {
            if write_line(&mut writer, &line).await.is_err() {
                return;
            }
        }
        if writer.flush().await.is_err() {
            break;
        }
    }
}

async fn write_line(writer: &mut (impl AsyncWrite + Unpin), line: &[u8]) -> std::io::Result<()> {
    writer.write_all(line).await
}

async fn read_loop(stdout: ChildStdout, inner: Arc<Inner>) {
    let mut reader = BufReader::with_capacity(64 * 1024, stdout);
    let mut line = Vec::with_capacity(4096);
    loop {
        line.clear();
        match (&mut reader).take(MAX_LINE as u64).read_until(b'\n', &mut line).await {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
        if line.len() >= MAX_LINE && !line.ends_with(b"\n") {
            tracing::warn!(bytes = line.len(), "agent wrote an over-long line; dropping it");
            // Skip the rest of that line.
            let mut rest = Vec::new();
            if reader.read_until(b'\n', &mut rest).await.unwrap_or(0) == 0 {
                break;
            }
            continue;
        }
        if let Some((sink, inbound)) = dispatch(&inner, &line) {
            // Waits while the turn is behind; fails only once the turn stopped listening.
            let _ = sink.send(inbound).await;
        }
    }
    inner.alive.store(false, Ordering::Release);
    inner.pending.lock().unwrap_or_else(|e| e.into_inner()).clear();
    let route = inner.route.lock().unwrap_or_else(|e| e.into_inner()).clone();
    if let Some(route) = route {
        let _ = route.send(Inbound::Closed).await;
    }
    tracing::debug!("agent stdout closed");
}

/// One line from the agent, classified (see [`decode_line`]).
#[derive(Debug, Clone, PartialEq)]
pub enum Decoded {
    /// A blank line.
    Empty,
    /// Not JSON, or JSON that is not an object; `bytes` is the trimmed line's length.
    NotObject { bytes: usize },
    /// A request from the agent (it has a `method` and an `id`); `params` is null when absent.
    Request { id: Value, method: String, params: Value },
    /// A `session/update` notification: its params, null when absent.
    Update(Value),
    /// Any other notification.
    Notification { method: String },
    /// A response to one of our requests: its `error` if it has one, else its `result` (null when absent).
    Response { id: u64, outcome: Result<Value, RpcError> },
    /// A response whose id is not a non-negative integer (ours always are).
    BadResponseId,
    /// A JSON object that is neither a request, a notification nor a response.
    NotJsonRpc,
}

/// Classifies one line from the agent. Pure: the reader task of a [`Connection`] routes what it returns.
pub fn decode_line(line: &[u8]) -> Decoded {
    let trimmed = line.trim_ascii();
    if trimmed.is_empty() {
        return Decoded::Empty;
    }
    let Ok(Value::Object(mut message)) = serde_json::from_slice::<Value>(trimmed) else {
        return Decoded::NotObject { bytes: trimmed.len() };
    };
    let method = message.remove("method");
    let id = message.remove("id");
    match (method, id) {
        (Some(Value::String(method)), id) => {
            let params = message.remove("params").unwrap_or(Value::Null);
            match id {
                Some(id) => Decoded::Request { id, method, params },
                None if method == "session/update" => Decoded::Update(params),
                None => Decoded::Notification { method },
            }
        }
        (None, Some(id)) => {
            let Some(id) = id.as_u64() else {
                return Decoded::BadResponseId;
            };
            let outcome = match message.remove("error") {
                Some(error) => Err(RpcError {
                    code: error["code"].as_i64().unwrap_or(0),
                    message: error["message"].as_str().unwrap_or("unknown error").to_owned(),
                }),
                None => Ok(message.remove("result").unwrap_or(Value::Null)),
            };
            Decoded::Response { id, outcome }
        }
        _ => Decoded::NotJsonRpc,
    }
}

/// Handles one line from the agent; returns what is for the running turn, with where to send it.
fn dispatch(inner: &Inner, line: &[u8]) -> Option<(mpsc::Sender<Inbound>, Inbound)> {
    let inbound = match decode_line(line) {
        Decoded::Empty => return None,
        Decoded::NotObject { bytes } => {
            // Never log the content: it may carry anything the agent saw.
            tracing::warn!(bytes, "agent wrote a line that is not a JSON object; ignored");
            return None;
        }
        Decoded::Request { id, method, params } => Inbound::Request { id, method, params },
        Decoded::Update(params) => Inbound::Update(params),
        Decoded::Notification { method } => {
            tracing::debug!(%method, "agent notification ignored");
            return None;
        }
        Decoded::Response { id, outcome } => {
            let Some(waiter) = inner.pending.lock().unwrap_or_else(|e| e.into_inner()).remove(&id) else {
                tracing::warn!(id, "agent response to an unknown request id; ignored");
                return None;
            };
            let _ = waiter.send(outcome);
            return None;
        }
        Decoded::BadResponseId => {
            tracing::warn!("agent response with a non-numeric id; ignored");
            return None;
        }
        Decoded::NotJsonRpc => {
            tracing::warn!("agent wrote JSON that is not JSON-RPC; ignored");
            return None;
        }
    };
    let route = inner.route.lock().unwrap_or_else(|e| e.into_inner()).clone();
    match (route, inbound) {
        (Some(sink), inbound) => Some((sink, inbound)),
        (None, Inbound::Request { id, method, .. }) => {
            tracing::warn!(%method, "agent request outside a turn; answered with an error");
            let reply = json!({"jsonrpc": "2.0", "id": id, "error": {"code": -32601, "message": "no turn is running"}});
            let mut bytes = reply.to_string().into_bytes();
            bytes.push(b'\n');
            let _ = inner.outgoing.send(bytes);
            None
        }
        (None, _) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decode_line_tells_requests_updates_and_notifications_apart() {
        assert_eq!(decode_line(b"  \r\n"), Decoded::Empty);
        assert_eq!(
            decode_line(br#"{"jsonrpc":"2.0","id":"p1","method":"session/request_permission","params":{"a":1}}"#),
            Decoded::Request {
                id: json!("p1"),
                method: "session/request_permission".into(),
                params: json!({"a": 1}),
            }
        );
        assert_eq!(
            decode_line(b"{\"jsonrpc\":\"2.0\",\"method\":\"session/update\",\"params\":{\"sessionId\":\"s\"}}\n"),
            Decoded::Update(json!({"sessionId": "s"}))
        );
        assert_eq!(
            decode_line(br#"{"jsonrpc":"2.0","method":"x/ping"}"#),
            Decoded::Notification {
                method: "x/ping".into()
            }
        );
    }

    #[test]
    fn decode_line_reads_responses_and_rejects_what_is_not_json_rpc() {
        assert_eq!(
            decode_line(br#"{"jsonrpc":"2.0","id":3,"result":{"ok":true}}"#),
            Decoded::Response {
                id: 3,
                outcome: Ok(json!({"ok": true}))
            }
        );
        assert_eq!(
            decode_line(br#"{"jsonrpc":"2.0","id":4,"error":{"code":-32602,"message":"bad params"}}"#),
            Decoded::Response {
                id: 4,
                outcome: Err(RpcError {
                    code: -32602,
                    message: "bad params".into()
                }),
            }
        );
        assert_eq!(
            decode_line(br#"{"id":4,"error":7}"#),
            Decoded::Response {
                id: 4,
                outcome: Err(RpcError {
                    code: 0,
                    message: "unknown error".into()
                }),
            }
        );
        assert_eq!(decode_line(br#"{"id":-1,"result":null}"#), Decoded::BadResponseId);
        assert_eq!(decode_line(br#"{"id":"7","result":null}"#), Decoded::BadResponseId);
        assert_eq!(
            decode_line(br#"{"jsonrpc":"2.0","method":5,"id":1}"#),
            Decoded::NotJsonRpc
        );
        assert_eq!(decode_line(br#"{"result":1}"#), Decoded::NotJsonRpc);
        assert_eq!(decode_line(b"[1,2]"), Decoded::NotObject { bytes: 5 });
        assert_eq!(decode_line(b" {\"id\":1 \n"), Decoded::NotObject { bytes: 7 });
    }
}
