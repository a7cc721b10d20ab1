//! Starting the real `acp-bridge` binary on a free port with a temp HOME, and talking to it.

use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::StreamExt;
use serde_json::Value;
use tokio::time::Instant;

pub const TOKEN: &str = "test-bearer-token-0123456789abcdef";

/// Polls `check` until it returns `Some`, or panics after `timeout` naming `what`.
pub async fn wait_for<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

pub enum Auth {
    Token,
    TokenFile(PathBuf),
    None,
}

pub struct Options {
    pub auth: Auth,
    pub config_dir: Option<PathBuf>,
    pub app_dir: Option<PathBuf>,
    pub env: Vec<(String, String)>,
    /// Extra flags for `acp-bridge serve`.
    pub args: Vec<String>,
    /// Run the supervised components (off by default: most tests are about the core).
    pub supervise: bool,
    /// `--log-level` (debug by default; the benchmarks run at info, as in production).
    pub log_level: &'static str,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            auth: Auth::Token,
            config_dir: None,
            app_dir: None,
            env: Vec::new(),
            args: Vec::new(),
            supervise: false,
            log_level: "debug",
        }
    }
}

pub struct Daemon {
    child: Child,
    pub base: String,
    _home: tempfile::TempDir,
    pub config_dir: PathBuf,
    logs: Arc<Mutex<Vec<String>>>,
    /// Set once the daemon's stderr reached end of file: every line it wrote is in `logs`.
    logs_ended: Arc<std::sync::atomic::AtomicBool>,
    pub client: reqwest::Client,
    pub token: String,
}

impl Daemon {
    pub async fn start() -> Daemon {
        Self::start_with(Options::default()).await
    }

    pub async fn start_with(options: Options) -> Daemon {
        let home = tempfile::tempdir().expect("temp home");
        let config_dir = options.config_dir.unwrap_or_else(|| home.path().join(".claude"));
        let mut command = Command::new(env!("CARGO_BIN_EXE_acp-bridge"));
        command
            .env_clear()
            .env("HOME", home.path())
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .args([
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--log-format",
                "json",
                "--log-level",
                options.log_level,
            ])
            .arg("--claude-config-dir")
            .arg(&config_dir)
            .args(["--app-dir"])
            .arg(options.app_dir.clone().unwrap_or_else(|| home.path().join("app")))
            .args(&options.args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        match &options.auth {
            Auth::Token => {
                command.args(["--token", TOKEN]);
            }
            Auth::TokenFile(path) => {
                command.arg("--token-file").arg(path);
            }
            Auth::None => {
                command.arg("--insecure-no-auth");
            }
        }
        if !options.supervise {
            command.args(["--no-xvfb", "--no-chromium", "--no-vite"]);
        }
        for (key, value) in &options.env {
            command.env(key, value);
        }
        let mut child = command.spawn().expect("spawn acp-bridge");
        let logs = Arc::new(Mutex::new(Vec::new()));
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        let stderr = child.stderr.take().unwrap();
        let sink = logs.clone();
        let logs_ended = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let ended = logs_ended.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Ok(entry) = serde_json::from_str::<Value>(&line) {
                    if entry["message"] == "listening" {
                        let _ = addr_tx.send(entry["addr"].as_str().unwrap_or_default().to_owned());
                    }
                }
                sink.lock().unwrap().push(line);
            }
            ended.store(true, std::sync::atomic::Ordering::Release);
        });
        let addr = tokio::task::spawn_blocking(move || addr_rx.recv_timeout(Duration::from_secs(20)))
            .await
            .unwrap()
            .unwrap_or_else(|_| panic!("daemon did not log its address; logs: {:?}", logs.lock().unwrap()));
        Daemon {
            child,
            base: format!("http://{addr}"),
            _home: home,
            config_dir,
            logs,
            logs_ended,
            client: reqwest::Client::builder().pool_max_idle_per_host(64).build().unwrap(),
            token: TOKEN.to_owned(),
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn credentials_file(&self) -> PathBuf {
        self.config_dir.join(".credentials.json")
    }

    pub fn logs(&self) -> String {
        self.logs.lock().unwrap().join("\n")
    }

    /// Waits until a log line contains `needle`: the log is read on another thread, so a line the daemon wrote
    /// before answering a request may not have been read yet when the answer arrives.
    pub async fn wait_for_log(&self, needle: &str, timeout: Duration) {
        let what = format!("a log line containing {needle:?}");
        wait_for(&what, timeout, || async { self.logs().contains(needle).then_some(()) }).await
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// A GET without the bearer token (for the public endpoints).
    pub async fn get_public(&self, path: &str) -> reqwest::Response {
        self.client.get(self.url(path)).send().await.expect("GET")
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client
            .get(self.url(path))
            .bearer_auth(&self.token)
            .send()
            .await
            .expect("GET")
    }

    pub async fn post(&self, path: &str, body: &Value) -> reqwest::Response {
        self.client
            .post(self.url(path))
            .bearer_auth(&self.token)
            .json(body)
            .send()
            .await
            .expect("POST")
    }

    pub async fn read_credentials(&self) -> (u16, Value) {
        let response = self
            .client
            .post(self.url("/credentials/read"))
            .bearer_auth(&self.token)
            .send()
            .await
            .expect("read");
        let status = response.status().as_u16();
        (status, response.json().await.expect("JSON body"))
    }

    pub async fn write_credentials(&self, body: &Value) -> (u16, Value) {
        let response = self.post("/credentials/write", body).await;
        let status = response.status().as_u16();
        (status, response.json().await.expect("JSON body"))
    }

    pub async fn events(&self, last_event_id: Option<u64>) -> EventStream {
        let mut request = self.client.get(self.url("/events")).bearer_auth(&self.token);
        if let Some(id) = last_event_id {
            request = request.header("Last-Event-ID", id.to_string());
        }
        let response = request.send().await.expect("GET /events");
        assert_eq!(response.status(), 200);
        assert!(
            response.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/event-stream")
        );
        EventStream {
            body: Box::pin(response.bytes_stream()),
            buffer: String::new(),
        }
    }

    pub fn sigterm(&self) {
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        )
        .expect("SIGTERM");
    }

    /// Waits for the process to exit, panicking after `timeout`.
    pub async fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                // Let the reader catch up with what the daemon wrote before it exited, so that checks on `logs()`
                // after the exit see all of it. A child that kept the pipe open would keep it from ending.
                let drained = Instant::now() + Duration::from_secs(5);
                while !self.logs_ended.load(std::sync::atomic::Ordering::Acquire) && Instant::now() < drained {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                return status;
            }
            assert!(Instant::now() < deadline, "daemon still running after {timeout:?}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

impl Drop for Daemon {
    /// SIGTERM first, so the daemon stops its own children (the agent's group, the components); SIGKILL after 10 s.
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
            let deadline = std::time::Instant::now() + Duration::from_secs(10);
            while std::time::Instant::now() < deadline {
                if let Ok(Some(_)) = self.child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(5));
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[derive(Debug, Clone)]
pub struct SseEvent {
    pub id: Option<u64>,
    pub event: String,
    pub data: Value,
}

pub struct EventStream {
    body: std::pin::Pin<Box<dyn futures_util::Stream<Item = reqwest::Result<axum::body::Bytes>> + Send>>,
    buffer: String,
}

impl EventStream {
    /// Reads Server-Sent Events from any response.
    pub fn from_response(response: reqwest::Response) -> Self {
        EventStream {
            body: Box::pin(response.bytes_stream()),
            buffer: String::new(),
        }
    }

    /// The next event (comments skipped), or `None` when the stream ends or `timeout` passes.
    pub async fn next(&mut self, timeout: Duration) -> Option<SseEvent> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let frame: String = self.buffer.drain(..end + 2).collect();
                if let Some(event) = parse_frame(&frame) {
                    return Some(event);
                }
                continue;
            }
            match tokio::time::timeout_at(deadline, self.body.next()).await {
                Ok(Some(Ok(chunk))) => self.buffer.push_str(&String::from_utf8_lossy(&chunk)),
                _ => return None,
            }
        }
    }

    /// A prompt stream's final event (`done` or `error`), skipping the rest; `None` if the stream ends first or
    /// `timeout` passes between two events.
    pub async fn final_event(&mut self, timeout: Duration) -> Option<SseEvent> {
        loop {
            let event = self.next(timeout).await?;
            if event.event == "done" || event.event == "error" {
                return Some(event);
            }
        }
    }

    /// The next event named `name`, skipping others.
    pub async fn next_named(&mut self, name: &str, timeout: Duration) -> SseEvent {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let event = self
                .next(left)
                .await
                .unwrap_or_else(|| panic!("no `{name}` event within {timeout:?}"));
            if event.event == name {
                return event;
            }
        }
    }

    /// True when the server closed the stream within `timeout`.
    pub async fn ended(&mut self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            match tokio::time::timeout_at(deadline, self.body.next()).await {
                Ok(None) | Ok(Some(Err(_))) => return true,
                Ok(Some(Ok(_))) => continue,
                Err(_) => return false,
            }
        }
    }
}

fn parse_frame(frame: &str) -> Option<SseEvent> {
    let (mut id, mut event, mut data) = (None, String::from("message"), String::new());
    let mut any = false;
    for line in frame.lines() {
        if let Some(v) = line.strip_prefix("id:") {
            id = v.trim().parse().ok();
            any = true;
        } else if let Some(v) = line.strip_prefix("event:") {
            event = v.trim().to_owned();
            any = true;
        } else if let Some(v) = line.strip_prefix("data:") {
            data.push_str(v.trim_start());
            any = true;
        }
    }
    any.then(|| SseEvent {
        id,
        event,
        data: serde_json::from_str(&data).unwrap_or(Value::Null),
    })
}

/// The CLI's credentials document.
pub fn cli_document(access: &str, refresh: &str, expires_at: u64) -> Value {
    serde_json::json!({"claudeAiOauth": {
        "accessToken": access, "refreshToken": refresh, "expiresAt": expires_at,
        "scopes": ["user:inference", "user:profile"], "subscriptionType": "max"
    }})
}

/// Rewrites `path` in place the way the Claude CLI does: same inode, truncate, write, then chmod 600.
pub fn rewrite_in_place(path: &Path, content: &[u8]) {
    use std::io::Write;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)
        .unwrap();
    file.write_all(content).unwrap();
    drop(file);
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
}

pub fn mode_of(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

static NEXT_DISPLAY: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub fn free_display() -> u32 {
    loop {
        let n = 200 + (std::process::id() % 300) * 2 + NEXT_DISPLAY.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if !Path::new(&format!("/tmp/.X{n}-lock")).exists() && !Path::new(&format!("/tmp/.X11-unix/X{n}")).exists() {
            return n;
        }
    }
}

/// A private copy of the app skeleton; `node_modules` is hard-linked (fast), so Vite's cache stays per copy.
pub fn app_copy(root: &Path) -> PathBuf {
    let skeleton = Path::new(env!("CARGO_MANIFEST_DIR")).join("image/app");
    assert!(
        skeleton.join("node_modules/vite/bin/vite.js").is_file(),
        "run `npm ci` in image/app first (scripts/test does)"
    );
    let app = root.join("app");
    std::fs::create_dir_all(&app).unwrap();
    for entry in std::fs::read_dir(&skeleton).unwrap() {
        let entry = entry.unwrap();
        if entry.file_name() == "node_modules" {
            continue;
        }
        let status = std::process::Command::new("cp")
            .arg("-a")
            .arg(entry.path())
            .arg(&app)
            .status()
            .unwrap();
        assert!(status.success());
    }
    let linked = std::process::Command::new("cp")
        .arg("-al")
        .arg(skeleton.join("node_modules"))
        .arg(&app)
        .status()
        .unwrap()
        .success();
    if !linked {
        let status = std::process::Command::new("cp")
            .arg("-a")
            .arg(skeleton.join("node_modules"))
            .arg(&app)
            .status()
            .unwrap();
        assert!(status.success());
    }
    app
}

/// Chromium is heavy on 2 cores: every test that runs it takes its turn.
pub static BROWSER: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(1);

/// The fake ACP agent (`examples/fake_acp_agent.rs`), built by `cargo test`.
pub fn fake_agent() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let path = exe.parent().unwrap().parent().unwrap().join("examples/fake_acp_agent");
    assert!(
        path.is_file(),
        "{} is built by `cargo test` (or `cargo build --example fake_acp_agent`)",
        path.display()
    );
    path
}

/// Runs `git -C dir args…`, asserts it succeeded, and returns its trimmed stdout.
pub fn git(dir: &Path, args: &[&str]) -> String {
    let output = Command::new("git").arg("-C").arg(dir).args(args).output().expect("git");
    assert!(
        output.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

/// True while `pid` runs (a zombie, dead but not yet reaped, does not count).
pub fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| !stat.contains(") Z "))
}

/// Pids of live processes started by the daemon with this pid (they carry `ACP_BRIDGE_PID=<pid>`).
pub fn processes_of(daemon_pid: u32) -> Vec<u32> {
    let mark = format!("ACP_BRIDGE_PID={daemon_pid}");
    live_pids_where("environ", |vars| vars.contains(&mark.as_bytes()))
}

/// Pids of live processes whose `/proc/<pid>/<file>` (`cmdline`, `environ`: NUL-separated, empty fields dropped)
/// satisfies `matches`.
pub fn live_pids_where(file: &str, matches: impl Fn(&[&[u8]]) -> bool) -> Vec<u32> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(raw) = std::fs::read(entry.path().join(file)) else {
            continue;
        };
        let fields: Vec<&[u8]> = raw.split(|b| *b == 0).filter(|f| !f.is_empty()).collect();
        if matches(&fields) && alive(pid) {
            found.push(pid);
        }
    }
    found
}

/// The flags that put a supervised stack on its own display and ports, stopping quickly.
pub fn stack_args(display: u32, cdp_port: u16, vite_port: u16) -> Vec<String> {
    vec![
        "--display".into(),
        format!(":{display}"),
        "--cdp-port".into(),
        cdp_port.to_string(),
        "--vite-port".into(),
        vite_port.to_string(),
        "--vite-host".into(),
        "127.0.0.1".into(),
        "--stop-grace".into(),
        "3".into(),
    ]
}
