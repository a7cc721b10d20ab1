//! A small, fault-injecting fake ACP agent (Agent Client Protocol v1: newline-delimited JSON-RPC 2.0 on
//! stdin/stdout) for the bridge's tests. Built by `cargo test` as `target/<profile>/examples/fake_acp_agent`.
//!
//! The behaviour of a `session/prompt` is chosen by the first word of the prompt's first text block:
//!
//! | first word        | behaviour                                                                            |
//! |-------------------|--------------------------------------------------------------------------------------|
//! | (anything else)   | `write:` files + `tool_call`, chunks "Hello", " world", `end_turn`, 5 ms later " (late)" |
//! | `permission`      | `tool_call` pending, `session/request_permission`, chunk `permission:<id>:<kind>`, `end_turn` |
//! | `crash`           | `write:` files, one chunk "crashing", exit code 1 without a response                |
//! | `garbage`         | a non-JSON line, a non-JSON-RPC line, a response to unknown id 987654, then default |
//! | `slow`            | `write:` files, chunk "tick <i>" every 100 ms until `session/cancel` → `cancelled`   |
//! | `autherror`       | JSON-RPC error -32000 "Authentication required"                                      |
//! | `flood <N>`       | writes its `write:` files, N chunks "x" as fast as possible, then `end_turn`          |
//! | `paced <N> <rate>` | N chunks `t=<unix ns>` at `rate` per second, then `end_turn`                        |
//! | `sleep <ms>`      | writes its `write:` files silently, waits, then `end_turn` (ignores `session/cancel`) |
//!
//! A token `write:<path>=<content>` anywhere in the text (content runs to the next whitespace) writes that
//! file relative to the process's cwd, creating parent directories.
//!
//! If `FAKE_ACP_RECORD` names a file, one line `{"start":{"env":{..},"cwd":..,"args":[..],"pid":n}}` is
//! appended at start and one line `{"received":<message>}` for every message read (before it is handled;
//! a line that is not JSON is recorded as `{"invalid":"<line>"}`).
//!
//! Other requests: `initialize` → protocol version 1, no capabilities; `session/new` → `fake-session-<pid>-<n>`
//! (unique across processes, like the real adapter's UUIDs)
//! (n from 1); `session/prompt` on a session this process did not create → error -32602 "Session not found: <id>";
//! any other method → error -32601. `session/cancel` (a notification) cancels the running turns of its session.
//! In `permission` mode the answer is followed by a `tool_call_update` for `call-1` with status `completed`
//! (allow_*) or `failed`, and the stop reason is `cancelled` if `session/cancel` arrived during the turn.
//!
//! On stdin EOF the agent treats any outstanding or later permission request as cancelled, waits until no
//! prompt is running any more (a `slow` turn runs on until its 120 s limit), and exits with code 0.
//! If stdout is closed, it exits with code 0 at its next write. `crash` exits with code 1.

use serde_json::{Map, Value, json};
use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::hash::{BuildHasher, Hasher};
use std::io::{self, BufRead, BufWriter, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Give up waiting for `session/cancel` in `slow` mode after this long.
const SLOW_LIMIT: Duration = Duration::from_secs(120);
/// Interval between the chunks of `slow` mode.
const SLOW_TICK: Duration = Duration::from_millis(100);
/// Delay between the response of a default turn and its late chunk.
const LATE_DELAY: Duration = Duration::from_millis(5);

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A per-turn cancellation flag that can be waited on.
struct Cancel {
    flag: Mutex<bool>,
    cv: Condvar,
}

impl Cancel {
    fn new() -> Self {
        Cancel {
            flag: Mutex::new(false),
            cv: Condvar::new(),
        }
    }

    fn set(&self) {
        *lock(&self.flag) = true;
        self.cv.notify_all();
    }

    fn is_set(&self) -> bool {
        *lock(&self.flag)
    }

    /// Waits up to `dur`; true if the turn was cancelled.
    fn wait(&self, dur: Duration) -> bool {
        let guard = lock(&self.flag);
        let (guard, _) = self
            .cv
            .wait_timeout_while(guard, dur, |c| !*c)
            .unwrap_or_else(|e| e.into_inner());
        *guard
    }
}

struct Turn {
    session: String,
    cancel: Arc<Cancel>,
}

struct Agent {
    out: Mutex<BufWriter<io::Stdout>>,
    record: Option<Mutex<File>>,
    sessions: Mutex<Vec<String>>,
    next_session: AtomicU64,
    next_request: AtomicU64,
    next_turn: AtomicU64,
    /// Our outstanding requests to the client, by id; `None` once stdin has reached EOF.
    pending: Mutex<Option<HashMap<u64, mpsc::Sender<Value>>>>,
    /// Running prompts, by turn number.
    turns: Mutex<HashMap<u64, Turn>>,
    turns_cv: Condvar,
}

impl Agent {
    fn write_lines(&self, lines: &[&str]) {
        let mut out = lock(&self.out);
        let res = lines
            .iter()
            .try_for_each(|l| out.write_all(l.as_bytes()))
            .and_then(|_| out.flush());
        if res.is_err() {
            // The client closed our stdout: nobody is listening any more.
            std::process::exit(0);
        }
    }

    fn send(&self, msg: &Value) {
        let mut line = msg.to_string();
        line.push('\n');
        self.write_lines(&[&line]);
    }

    fn respond(&self, id: &Value, result: Value) {
        self.send(&json!({"jsonrpc": "2.0", "id": id, "result": result}));
    }

    fn respond_error(&self, id: &Value, code: i64, message: &str) {
        self.send(&json!({"jsonrpc": "2.0", "id": id, "error": {"code": code, "message": message}}));
    }

    fn update(&self, session: &str, update: Value) {
        self.send(&json!({
            "jsonrpc": "2.0",
            "method": "session/update",
            "params": {"sessionId": session, "update": update},
        }));
    }

    fn chunk(&self, session: &str, text: &str) {
        self.update(
            session,
            json!({"sessionUpdate": "agent_message_chunk", "content": {"type": "text", "text": text}}),
        );
    }

    fn record(&self, entry: Value) {
        if let Some(file) = &self.record {
            let mut line = entry.to_string();
            line.push('\n');
            if let Err(e) = lock(file).write_all(line.as_bytes()) {
                eprintln!("fake_acp_agent: cannot write the record file: {e}");
            }
        }
    }

    /// Sends a request to the client and waits for its response (`Err` if stdin reached EOF first).
    fn request(&self, method: &str, params: Value) -> Result<Value, ()> {
        let id = self.next_request.fetch_add(1, Ordering::SeqCst);
        let (tx, rx) = mpsc::channel();
        match lock(&self.pending).as_mut() {
            Some(pending) => {
                pending.insert(id, tx);
            }
            None => drop(tx), // after EOF: nobody can answer, so `recv` fails at once
        }
        self.send(&json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}));
        rx.recv().map_err(|_| ())
    }
}

fn main() {
    let record = std::env::var_os("FAKE_ACP_RECORD")
        .filter(|p| !p.is_empty())
        .map(|path| {
            let file = OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)
                .unwrap_or_else(|e| panic!("fake_acp_agent: cannot open {}: {e}", PathBuf::from(&path).display()));
            Mutex::new(file)
        });
    let agent: &'static Agent = Box::leak(Box::new(Agent {
        out: Mutex::new(BufWriter::with_capacity(1 << 16, io::stdout())),
        record,
        sessions: Mutex::new(Vec::new()),
        next_session: AtomicU64::new(1),
        next_request: AtomicU64::new(1),
        next_turn: AtomicU64::new(1),
        pending: Mutex::new(Some(HashMap::new())),
        turns: Mutex::new(HashMap::new()),
        turns_cv: Condvar::new(),
    }));

    let env: Map<String, Value> = std::env::vars_os()
        .map(|(k, v)| {
            (
                k.to_string_lossy().into_owned(),
                Value::String(v.to_string_lossy().into_owned()),
            )
        })
        .collect();
    let cwd = std::env::current_dir()
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_default();
    let args: Vec<String> = std::env::args_os().map(|a| a.to_string_lossy().into_owned()).collect();
    agent.record(json!({"start": {"env": env, "cwd": cwd, "args": args, "pid": std::process::id()}}));

    let stdin = io::stdin();
    let mut input = stdin.lock();
    let mut buf = Vec::new();
    loop {
        buf.clear();
        match input.read_until(b'\n', &mut buf) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) => {
                eprintln!("fake_acp_agent: reading stdin: {e}");
                break;
            }
        }
        let line = String::from_utf8_lossy(&buf);
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        match serde_json::from_str::<Value>(line) {
            Ok(msg) => {
                agent.record(json!({"received": msg}));
                handle(agent, msg);
            }
            Err(e) => {
                agent.record(json!({"invalid": line}));
                eprintln!("fake_acp_agent: not JSON ({e}): {line}");
                agent.respond_error(&Value::Null, -32700, "Parse error");
            }
        }
    }

    // EOF: nobody can answer our requests any more; let the running prompts finish, then leave.
    lock(&agent.pending).take();
    let mut turns = lock(&agent.turns);
    while !turns.is_empty() {
        turns = agent.turns_cv.wait(turns).unwrap_or_else(|e| e.into_inner());
    }
    drop(turns);
    let _ = lock(&agent.out).flush();
    std::process::exit(0);
}

fn handle(agent: &'static Agent, msg: Value) {
    let method = msg.get("method").and_then(Value::as_str);
    let id = msg.get("id").filter(|id| !id.is_null()).cloned();
    match (method, id) {
        (Some(method), Some(id)) => handle_request(agent, method, id, &msg),
        (Some("session/cancel"), None) => {
            let session = msg
                .pointer("/params/sessionId")
                .and_then(Value::as_str)
                .unwrap_or_default();
            for turn in lock(&agent.turns).values().filter(|t| t.session == session) {
                turn.cancel.set();
            }
        }
        (Some(_), None) => {} // other notifications are ignored
        (None, Some(id)) => {
            let sender = id.as_u64().and_then(|n| lock(&agent.pending).as_mut()?.remove(&n));
            match sender {
                Some(tx) => {
                    let _ = tx.send(msg);
                }
                None => eprintln!("fake_acp_agent: response to unknown id {id}"),
            }
        }
        (None, None) => {
            eprintln!("fake_acp_agent: not a JSON-RPC message: {msg}");
            agent.respond_error(&Value::Null, -32600, "Invalid Request");
        }
    }
}

fn handle_request(agent: &'static Agent, method: &str, id: Value, msg: &Value) {
    match method {
        "initialize" => agent.respond(
            &id,
            json!({
                "protocolVersion": 1,
                "agentCapabilities": {
                    "loadSession": false,
                    "promptCapabilities": {"image": false, "audio": false, "embeddedContext": false},
                },
                "authMethods": [],
            }),
        ),
        "session/new" => {
            let n = agent.next_session.fetch_add(1, Ordering::SeqCst);
            let session = format!("fake-session-{}-{n}", std::process::id());
            lock(&agent.sessions).push(session.clone());
            agent.respond(&id, json!({"sessionId": session}));
        }
        "session/prompt" => {
            let Some(session) = msg.pointer("/params/sessionId").and_then(Value::as_str) else {
                return agent.respond_error(&id, -32602, "Invalid params: sessionId is missing");
            };
            let Some(blocks) = msg.pointer("/params/prompt").and_then(Value::as_array) else {
                return agent.respond_error(&id, -32602, "Invalid params: prompt is missing");
            };
            if !lock(&agent.sessions).iter().any(|s| s == session) {
                return agent.respond_error(&id, -32602, &format!("Session not found: {session}"));
            }
            let text = blocks
                .iter()
                .find(|b| b.get("type").and_then(Value::as_str) == Some("text"))
                .and_then(|b| b.get("text"))
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned();
            // Register the turn before reading the next line, so a following session/cancel finds it.
            let cancel = Arc::new(Cancel::new());
            let turn = agent.next_turn.fetch_add(1, Ordering::SeqCst);
            let session = session.to_owned();
            lock(&agent.turns).insert(
                turn,
                Turn {
                    session: session.clone(),
                    cancel: cancel.clone(),
                },
            );
            thread::spawn(move || {
                run_prompt(agent, &id, &session, &text, &cancel);
                lock(&agent.turns).remove(&turn);
                agent.turns_cv.notify_all();
            });
        }
        _ => agent.respond_error(&id, -32601, &format!("Method not found: {method}")),
    }
}

/// The `write:<path>=<content>` tokens of a prompt text.
fn write_tokens(text: &str) -> Vec<(&str, &str)> {
    text.split_whitespace()
        .filter_map(|tok| tok.strip_prefix("write:"))
        .filter_map(|spec| spec.split_once('='))
        .filter(|(path, _)| !path.is_empty())
        .collect()
}

fn write_file(path: &str, content: &str) {
    let path = PathBuf::from(path);
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        if let Err(e) = std::fs::create_dir_all(parent) {
            eprintln!("fake_acp_agent: cannot create {}: {e}", parent.display());
        }
    }
    if let Err(e) = std::fs::write(&path, content) {
        eprintln!("fake_acp_agent: cannot write {}: {e}", path.display());
    }
}

fn write_all_files(text: &str) {
    for (path, content) in write_tokens(text) {
        write_file(path, content);
    }
}

/// A short hex string that differs between runs and calls.
fn random_hex() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(COUNTER.fetch_add(1, Ordering::SeqCst));
    h.write_u128(nanos);
    h.write_u32(std::process::id());
    format!("{:08x}", h.finish() as u32)
}

fn end_turn(agent: &Agent, id: &Value) {
    agent.respond(id, json!({"stopReason": "end_turn"}));
}

fn run_prompt(agent: &Agent, id: &Value, session: &str, text: &str, cancel: &Cancel) {
    let mut words = text.split_whitespace();
    match words.next().unwrap_or_default() {
        "permission" => permission(agent, id, session, text, cancel),
        "crash" => {
            write_all_files(text);
            agent.chunk(session, "crashing");
            std::process::exit(1);
        }
        "garbage" => {
            agent.write_lines(&[
                "this line is not JSON\n",
                "{\"hello\":\"this is JSON but not JSON-RPC\"}\n",
                "{\"jsonrpc\":\"2.0\",\"id\":987654,\"result\":{}}\n",
            ]);
            default_turn(agent, id, session, text);
        }
        "slow" => {
            write_all_files(text);
            let deadline = Instant::now() + SLOW_LIMIT;
            let mut tick = 1u64;
            loop {
                if cancel.is_set() {
                    break agent.respond(id, json!({"stopReason": "cancelled"}));
                }
                agent.chunk(session, &format!("tick {tick}"));
                tick += 1;
                if cancel.wait(SLOW_TICK) {
                    break agent.respond(id, json!({"stopReason": "cancelled"}));
                }
                if Instant::now() >= deadline {
                    break end_turn(agent, id);
                }
            }
        }
        "autherror" => agent.respond_error(id, -32000, "Authentication required"),
        "flood" => {
            write_all_files(text);
            let n: u64 = words.next().and_then(|w| w.parse().ok()).unwrap_or(0);
            let mut line = json!({
                "jsonrpc": "2.0",
                "method": "session/update",
                "params": {
                    "sessionId": session,
                    "update": {"sessionUpdate": "agent_message_chunk", "content": {"type": "text", "text": "x"}},
                },
            })
            .to_string();
            line.push('\n');
            {
                let mut out = lock(&agent.out);
                let res = (0..n)
                    .try_for_each(|_| out.write_all(line.as_bytes()))
                    .and_then(|_| out.flush());
                if res.is_err() {
                    std::process::exit(0);
                }
            }
            end_turn(agent, id);
        }
        "paced" => {
            // `paced <N> <per second>`: N chunks at a steady rate, each stamped with the wall-clock time it was
            // written (`t=<unix nanoseconds>`), so a client can measure the latency the bridge adds.
            let n: u64 = words.next().and_then(|w| w.parse().ok()).unwrap_or(0);
            let rate: u64 = words.next().and_then(|w| w.parse().ok()).unwrap_or(1000).max(1);
            let interval = Duration::from_nanos(1_000_000_000 / rate);
            let start = Instant::now();
            for i in 0..n {
                let due = start + interval * i as u32;
                if let Some(wait) = due.checked_duration_since(Instant::now()) {
                    thread::sleep(wait);
                }
                let nanos = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .unwrap_or_default()
                    .as_nanos();
                agent.chunk(session, &format!("t={nanos}"));
            }
            end_turn(agent, id);
        }
        "sleep" => {
            write_all_files(text);
            let ms: u64 = words.next().and_then(|w| w.parse().ok()).unwrap_or(0);
            thread::sleep(Duration::from_millis(ms));
            end_turn(agent, id);
        }
        _ => default_turn(agent, id, session, text),
    }
}

fn default_turn(agent: &Agent, id: &Value, session: &str, text: &str) {
    for (i, (path, content)) in write_tokens(text).into_iter().enumerate() {
        write_file(path, content);
        agent.update(
            session,
            json!({
                "sessionUpdate": "tool_call",
                "toolCallId": format!("call-{}", i + 1),
                "title": format!("Write {path}"),
                "kind": "edit",
                "status": "completed",
            }),
        );
    }
    agent.chunk(session, "Hello");
    agent.chunk(session, " world");
    end_turn(agent, id);
    thread::sleep(LATE_DELAY);
    agent.chunk(session, " (late)");
}

fn permission(agent: &Agent, id: &Value, session: &str, text: &str, cancel: &Cancel) {
    let tool_call = json!({"toolCallId": "call-1", "title": "Write file", "kind": "edit"});
    let mut pending = tool_call.clone();
    pending["sessionUpdate"] = json!("tool_call");
    pending["status"] = json!("pending");
    agent.update(session, pending);

    let options = [
        (format!("allow-always-{}", random_hex()), "Always allow", "allow_always"),
        (format!("allow-once-{}", random_hex()), "Allow", "allow_once"),
        (format!("reject-once-{}", random_hex()), "Reject", "reject_once"),
    ];
    let params = json!({
        "sessionId": session,
        "toolCall": tool_call,
        "options": options
            .iter()
            .map(|(id, name, kind)| json!({"optionId": id, "name": name, "kind": kind}))
            .collect::<Vec<_>>(),
    });
    // A JSON-RPC error, a malformed result or EOF on stdin all count as "cancelled".
    let response = agent
        .request("session/request_permission", params)
        .unwrap_or(Value::Null);
    let selected = match response.pointer("/result/outcome/outcome").and_then(Value::as_str) {
        Some("selected") => response.pointer("/result/outcome/optionId").and_then(Value::as_str),
        _ => None,
    };
    let (chosen, kind) = match selected {
        Some(option) => {
            let kind = options
                .iter()
                .find(|(id, _, _)| id == option)
                .map_or("none", |(_, _, kind)| kind);
            (option, kind)
        }
        None => ("cancelled", "none"),
    };
    agent.chunk(session, &format!("permission:{chosen}:{kind}"));
    let allowed = kind.starts_with("allow_");
    if allowed {
        write_all_files(text);
    }
    agent.update(
        session,
        json!({
            "sessionUpdate": "tool_call_update",
            "toolCallId": "call-1",
            "status": if allowed { "completed" } else { "failed" },
        }),
    );
    let stop = if cancel.is_set() { "cancelled" } else { "end_turn" };
    agent.respond(id, json!({"stopReason": stop}));
}
