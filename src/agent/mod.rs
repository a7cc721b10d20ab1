//! The ACP bridge: spawns the Claude Code ACP adapter on the user's own plan (OAuth) or a shared API key,
//! creates sessions and runs prompt turns, one at a time, streaming each turn's events.
//!
//! [`Agent`] is the cheap handle; the agent process itself lives in [`process`], the JSON-RPC transport
//! in [`rpc`], a turn in [`turn`].

pub mod error;
pub mod permission;
pub mod process;
pub mod rpc;
pub mod turn;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use tokio_util::task::TaskTracker;

use crate::components::{ComponentStatus, Components, LastExit, State};
use crate::credentials::CredentialsStore;
use crate::credentials::document::parse_write_body;
use crate::events::{EventBus, now_ms};
use crate::history::AppHistory;
use crate::secret::Secret;
use crate::supervisor::logs::LogRing;
pub use error::AgentError;
use permission::PermissionPolicy;
use process::{AgentProcess, AuthMode};
use rpc::{CallError, Connection};
use turn::{Turn, TurnEvent};

const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(60);

#[derive(Debug, Clone)]
pub struct AgentConfig {
    pub command: String,
    pub args: Vec<String>,
    pub env_pass: Vec<String>,
    pub permission_policy: PermissionPolicy,
    /// The Playwright MCP command line, when Chromium is enabled.
    pub playwright_mcp: Option<String>,
    pub system_prompt_file: Option<PathBuf>,
    pub display: u32,
    pub app_dir: PathBuf,
    pub claude_config_dir: PathBuf,
    pub stop_grace: Duration,
    /// A turn whose agent sends nothing for this long is cancelled (`None`: never).
    pub idle_timeout: Option<Duration>,
}

/// A `POST /session` request.
#[derive(Debug, Default)]
pub struct SessionRequest {
    pub api_key: Option<Secret>,
    /// The credentials JSON (as sent: a string or an object).
    pub oauth_token: Option<Value>,
    pub system_prompt: Option<String>,
    pub model: Option<String>,
    pub mcp_servers: Vec<Value>,
}

#[derive(Debug)]
pub struct SessionCreated {
    pub session_id: String,
    pub auth: &'static str,
    /// `written` or `kept-newer` when `oauthToken` was sent.
    pub credentials: Option<&'static str>,
}

/// What `/status` shows about the agent.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AgentStatus {
    pub auth_mode: Option<&'static str>,
    pub sessions: Vec<String>,
    pub current_turn: Option<TurnInfo>,
}

#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TurnInfo {
    pub turn_id: String,
    pub session_id: String,
    pub started_ms: u64,
}

#[derive(Clone)]
pub struct Agent {
    shared: Arc<Shared>,
}

struct Shared {
    config: AgentConfig,
    credentials: CredentialsStore,
    events: EventBus,
    components: Components,
    logs: Arc<LogRing>,
    history: AppHistory,
    shutting_down: std::sync::atomic::AtomicBool,
    /// Serializes spawning, restarting and session creation.
    lifecycle: tokio::sync::Mutex<Option<AgentProcess>>,
    state: Mutex<Registry>,
    turns: TaskTracker,
}

#[derive(Default)]
struct Registry {
    generation: u64,
    /// Session id → the generation of the agent process it lives in.
    sessions: HashMap<String, u64>,
    current_turn: Option<(TurnInfo, Connection)>,
    /// Whether the process of `generation` is running.
    live: bool,
    /// Whether an agent process was ever started (later starts count as restarts).
    started_once: bool,
    auth_mode: Option<&'static str>,
    status: Option<ComponentStatus>,
}

impl Agent {
    pub fn new(
        config: AgentConfig,
        credentials: CredentialsStore,
        events: EventBus,
        components: Components,
        history: AppHistory,
    ) -> Self {
        let agent = Self {
            shared: Arc::new(Shared {
                config,
                credentials,
                events,
                components,
                logs: LogRing::new("agent", &[]),
                history,
                shutting_down: std::sync::atomic::AtomicBool::new(false),
                lifecycle: tokio::sync::Mutex::new(None),
                state: Mutex::new(Registry::default()),
                turns: TaskTracker::new(),
            }),
        };
        agent.set_state(State::Idle, None, None);
        agent
    }

    pub fn logs(&self) -> &Arc<LogRing> {
        &self.shared.logs
    }

    pub fn status(&self) -> AgentStatus {
        let registry = self.registry();
        let generation = registry.generation;
        let mut sessions: Vec<String> = registry
            .sessions
            .iter()
            .filter(|(_, g)| registry.live && **g == generation)
            .map(|(id, _)| id.clone())
            .collect();
        sessions.sort();
        AgentStatus {
            auth_mode: registry.auth_mode,
            sessions,
            current_turn: registry.current_turn.as_ref().map(|(info, _)| info.clone()),
        }
    }

    pub fn turn_running(&self) -> bool {
        self.registry().current_turn.is_some()
    }

    fn registry(&self) -> std::sync::MutexGuard<'_, Registry> {
        self.shared.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Publishes the agent's component status (`idle`, `starting`, `ready`, `busy`, `failed`).
    fn set_state(&self, state: State, pid: Option<u32>, reason: Option<String>) {
        let mut registry = self.registry();
        let previous = registry.status.clone().unwrap_or_else(|| ComponentStatus {
            state: State::Idle,
            ..ComponentStatus::disabled()
        });
        let mut status = ComponentStatus {
            state,
            pid,
            reason,
            ..previous.clone()
        };
        if previous.state != state || registry.status.is_none() {
            status.since_ms = Some(now_ms());
        }
        registry.status = Some(status.clone());
        drop(registry);
        self.shared.components.set("agent", status);
        if previous.state != state {
            self.shared.events.publish(
                "component",
                json!({"name": "agent", "state": state, "restarts": previous.restarts}),
            );
        }
    }

    fn record_exit(&self, exit: Option<std::process::ExitStatus>) {
        use std::os::unix::process::ExitStatusExt;
        let mut registry = self.registry();
        if let Some(status) = registry.status.as_mut() {
            status.last_exit = Some(LastExit {
                code: exit.and_then(|e| e.code()),
                signal: exit.and_then(|e| e.signal()),
                at_ms: now_ms(),
            });
        }
    }

    /// Stops the running agent process, if any; its sessions are gone afterwards. The generation moves on
    /// first, so that the exit is not mistaken for a crash.
    async fn stop_process(&self, lifecycle: &mut Option<AgentProcess>) {
        {
            let mut registry = self.registry();
            registry.generation += 1;
            registry.live = false;
        }
        if let Some(old) = lifecycle.take() {
            let was_running = old.is_alive();
            let exit = old.stop(self.shared.config.stop_grace).await;
            if was_running {
                self.record_exit(exit);
            }
        }
    }

    /// `POST /components/agent/restart`: stops the agent (a hung turn ends and its work is committed);
    /// the next session starts a fresh one.
    pub async fn stop(&self) {
        self.stop_because("stopped on request").await;
    }

    /// Stops the agent process; `/health` shows `why`, and that the next session starts a fresh one.
    pub async fn stop_because(&self, why: &str) {
        let mut lifecycle = self.shared.lifecycle.lock().await;
        if lifecycle.is_some() {
            tracing::info!(why, "agent stopped");
            self.stop_process(&mut lifecycle).await;
            self.set_state(State::Idle, None, Some(format!("{why}; the next session starts it")));
        }
    }

    /// Chooses the auth mode for a new session (writing `oauthToken` to the credentials file when sent).
    async fn resolve_auth(&self, request: &SessionRequest) -> Result<(AuthMode, Option<&'static str>), AgentError> {
        let oauth = request.oauth_token.as_ref().filter(|v| match v {
            Value::Null => false,
            Value::String(s) => !s.trim().is_empty(),
            Value::Object(map) => !map.is_empty(),
            _ => true,
        });
        if let Some(token) = oauth {
            let document = match token {
                Value::String(text) => serde_json::from_str::<Value>(text).map_err(|_| AgentError::Invalid {
                    field: "oauthToken".into(),
                    message: "`oauthToken` must be the credentials JSON (a string holding JSON, or an object)".into(),
                })?,
                Value::Object(_) => token.clone(),
                _ => {
                    return Err(AgentError::Invalid {
                        field: "oauthToken".into(),
                        message: "`oauthToken` must be a string or an object".into(),
                    });
                }
            };
            let mut write = parse_write_body(document).map_err(|error| AgentError::Invalid {
                field: format!("oauthToken.{}", error.field).replace("oauthToken.body", "oauthToken"),
                message: error.message,
            })?;
            write.force = false;
            let outcome = match self.shared.credentials.write(write).await {
                Ok(_) => "written",
                Err(crate::credentials::CredentialsError::Stale { .. }) => "kept-newer",
                Err(error) => return Err(error.into()),
            };
            return Ok((AuthMode::OAuth, Some(outcome)));
        }
        if let Some(key) = request.api_key.as_ref().filter(|k| !k.expose().trim().is_empty()) {
            // The key goes into the agent's environment, which cannot hold a NUL byte: refuse it here rather than
            // fail the spawn (a 503, and an agent left `failed`). No real key has control characters.
            if key.expose().trim().chars().any(char::is_control) {
                return Err(AgentError::Invalid {
                    field: "apiKey".into(),
                    message: "`apiKey` must not contain control characters".into(),
                });
            }
            return Ok((AuthMode::ApiKey(Secret::new(key.expose().trim())), None));
        }
        match self.shared.credentials.read().await {
            Ok(_) => Ok((AuthMode::OAuth, None)),
            Err(_) => Err(AgentError::NoCredentials),
        }
    }

    /// `POST /session`: picks the auth mode, (re)starts the agent if needed, runs `session/new`.
    pub async fn create_session(&self, request: SessionRequest) -> Result<SessionCreated, AgentError> {
        let (mode, credentials) = self.resolve_auth(&request).await?;
        let mut lifecycle = self.shared.lifecycle.lock().await;
        if self.shutting_down() {
            return Err(AgentError::ShuttingDown);
        }
        let reusable = lifecycle.as_ref().is_some_and(|p| p.is_alive() && p.mode == mode);
        if !reusable {
            if lifecycle.as_ref().is_some_and(AgentProcess::is_alive) && self.turn_running() {
                return Err(AgentError::TurnInProgress);
            }
            let restarted = self.registry().started_once;
            if let Some(old) = lifecycle.as_ref() {
                tracing::info!(
                    pid = old.pid,
                    from = old.mode.name(),
                    to = mode.name(),
                    "restarting the agent"
                );
            }
            self.stop_process(&mut lifecycle).await;
            let generation = self.registry().generation;
            *lifecycle = Some(self.start_process(mode.clone(), generation, restarted).await?);
        }
        let Some(process) = lifecycle.as_ref() else {
            return Err(AgentError::ShuttingDown);
        };
        let connection = process.connection.clone();
        let generation = process.generation;

        let mut meta = serde_json::Map::new();
        if let Some(prompt) = self.system_prompt(request.system_prompt.as_deref()).await {
            meta.insert("systemPrompt".into(), json!({"append": prompt}));
        }
        if let Some(model) = request.model.as_deref().filter(|m| !m.trim().is_empty()) {
            meta.insert("claudeCode".into(), json!({"options": {"model": model}}));
        }
        let mut servers = Vec::new();
        if let Some(command) = &self.shared.config.playwright_mcp {
            servers.push(playwright_server(command));
        }
        servers.extend(request.mcp_servers);
        let params = json!({
            "cwd": self.shared.config.app_dir,
            "mcpServers": servers,
            "_meta": meta,
        });
        let result = call(&connection, "session/new", params).await?;
        let Some(session_id) = result["sessionId"].as_str().map(str::to_owned) else {
            return Err(AgentError::Handshake {
                method: "session/new",
                error: rpc::RpcError {
                    code: 0,
                    message: "no sessionId in the answer".into(),
                },
            });
        };
        let mut registry = self.registry();
        registry.sessions.insert(session_id.clone(), generation);
        registry.auth_mode = Some(mode.name());
        drop(registry);
        tracing::info!(session = %session_id, auth = mode.name(), "session created");
        Ok(SessionCreated {
            session_id,
            auth: mode.name(),
            credentials,
        })
    }

    async fn start_process(
        &self,
        mode: AuthMode,
        generation: u64,
        restarted: bool,
    ) -> Result<AgentProcess, AgentError> {
        if restarted {
            if let Some(status) = self.registry().status.as_mut() {
                status.restarts += 1;
            }
        }
        self.set_state(State::Starting, None, None);
        let config = &self.shared.config;
        let process = AgentProcess::spawn(config, mode, generation, &self.shared.logs).map_err(|source| {
            self.set_state(
                State::Failed,
                None,
                Some(format!("cannot start `{}`: {source}", config.command)),
            );
            AgentError::Spawn {
                program: config.command.clone(),
                source,
            }
        })?;
        let initialize = json!({
            "protocolVersion": 1,
            "clientCapabilities": {"fs": {"readTextFile": false, "writeTextFile": false}, "terminal": false},
            "clientInfo": {"name": "acp-bridge", "version": env!("CARGO_PKG_VERSION")},
        });
        if let Err(error) = call(&process.connection, "initialize", initialize).await {
            self.set_state(State::Failed, None, Some(error.to_string()));
            process.stop(config.stop_grace).await;
            return Err(error);
        }
        tracing::info!(pid = process.pid, auth = process.mode.name(), restarted, "agent ready");
        {
            let mut registry = self.registry();
            registry.live = true;
            registry.started_once = true;
        }
        self.set_state(State::Ready, Some(process.pid), None);
        self.watch_exit(&process);
        Ok(process)
    }

    /// Marks the agent failed when its process dies on its own.
    fn watch_exit(&self, process: &AgentProcess) {
        let agent = self.clone();
        let generation = process.generation;
        let (mut exited, status) = process.exited();
        tokio::spawn(async move {
            let _ = exited.wait_for(|gone| *gone).await;
            let current = agent.registry().generation;
            if current == generation && !agent.shutting_down() {
                agent.registry().live = false;
                let exit = *status.lock().unwrap_or_else(|e| e.into_inner());
                agent.record_exit(exit);
                agent.set_state(
                    State::Failed,
                    None,
                    Some("the agent process exited; the next session respawns it".into()),
                );
            }
        });
    }

    async fn system_prompt(&self, extra: Option<&str>) -> Option<String> {
        let mut parts = Vec::new();
        if let Some(path) = &self.shared.config.system_prompt_file {
            match tokio::fs::read_to_string(path).await {
                Ok(text) if !text.trim().is_empty() => parts.push(text.trim().to_owned()),
                Ok(_) => {}
                Err(error) => tracing::warn!(path = %path.display(), %error, "cannot read the system prompt file"),
            }
        }
        if let Some(extra) = extra.filter(|e| !e.trim().is_empty()) {
            parts.push(extra.trim().to_owned());
        }
        (!parts.is_empty()).then(|| parts.join("\n\n"))
    }

    /// Starts a turn. With a receiver, the caller streams the turn's events; the turn runs on its own either way.
    pub async fn prompt(&self, session_id: &str, prompt: Value) -> Result<(TurnInfo, turn::Receiver), AgentError> {
        let prompt = match prompt {
            Value::String(text) if !text.trim().is_empty() => json!([{"type": "text", "text": text}]),
            Value::Array(blocks) if !blocks.is_empty() && blocks.iter().all(Value::is_object) => Value::Array(blocks),
            _ => {
                return Err(AgentError::Invalid {
                    field: "prompt".into(),
                    message: "`prompt` must be a non-empty string or a non-empty array of ACP content blocks".into(),
                });
            }
        };
        let lifecycle = self.shared.lifecycle.lock().await;
        let generation = self.registry().sessions.get(session_id).copied();
        let Some(generation) = generation else {
            return Err(AgentError::UnknownSession {
                id: session_id.to_owned(),
            });
        };
        let connection = match lifecycle.as_ref() {
            Some(process) if process.generation == generation && process.is_alive() => process.connection.clone(),
            _ => {
                return Err(AgentError::SessionGone {
                    id: session_id.to_owned(),
                });
            }
        };
        drop(lifecycle);
        let info = TurnInfo {
            turn_id: new_turn_id(),
            session_id: session_id.to_owned(),
            started_ms: now_ms(),
        };
        {
            let mut registry = self.registry();
            if registry.current_turn.is_some() {
                return Err(AgentError::TurnInProgress);
            }
            registry.current_turn = Some((info.clone(), connection.clone()));
        }
        // Turns and history moves never interleave: the turn holds the gate until its commit is written.
        // If this request is dropped while waiting (the client went away), the registration is undone.
        let registration = Registration {
            agent: self,
            armed: true,
        };
        let gate = self.shared.history.enter_turn().await;
        registration.disarm();
        let (sender, receiver) = tokio::sync::mpsc::channel::<TurnEvent>(turn::CLIENT_BUFFER);
        let turn = Turn {
            gate,
            agent: self.clone(),
            connection,
            info: info.clone(),
            prompt,
            policy: self.shared.config.permission_policy,
            stream: Some(sender),
        };
        let pid = self.registry().status.as_ref().and_then(|s| s.pid);
        self.set_state(State::Busy, pid, None);
        self.shared.turns.spawn(turn.run());
        Ok((info, receiver))
    }

    /// `POST /session/{id}/cancel`: asks the agent to stop the running turn.
    pub fn cancel(&self, session_id: &str) -> Result<(), AgentError> {
        let registry = self.registry();
        let Some(generation) = registry.sessions.get(session_id).copied() else {
            return Err(AgentError::UnknownSession {
                id: session_id.to_owned(),
            });
        };
        if generation != registry.generation || !registry.live {
            return Err(AgentError::SessionGone {
                id: session_id.to_owned(),
            });
        }
        match &registry.current_turn {
            Some((info, connection)) if info.session_id == session_id => {
                connection.notify("session/cancel", json!({"sessionId": session_id}));
                tracing::info!(session = session_id, turn = %info.turn_id, "turn cancel requested");
                Ok(())
            }
            _ => Err(AgentError::NoTurn {
                id: session_id.to_owned(),
            }),
        }
    }

    /// Called by the turn when it is over.
    fn finish_turn(&self, crashed: bool) {
        let pid = {
            let mut registry = self.registry();
            registry.current_turn = None;
            registry.status.as_ref().and_then(|s| s.pid)
        };
        // A crash is reported by the exit watcher (which can tell it from a stop on request or for shutdown).
        if !crashed && !self.shutting_down() {
            self.set_state(State::Ready, pid, None);
        }
    }

    pub fn events(&self) -> &EventBus {
        &self.shared.events
    }

    pub fn credentials(&self) -> &CredentialsStore {
        &self.shared.credentials
    }

    pub fn history(&self) -> &AppHistory {
        &self.shared.history
    }

    pub fn idle_timeout(&self) -> Option<Duration> {
        self.shared.config.idle_timeout
    }

    pub fn shutting_down(&self) -> bool {
        self.shared.shutting_down.load(std::sync::atomic::Ordering::Acquire)
    }

    /// On daemon shutdown: cancels a running turn and gives it a moment to end on its own (its work is
    /// committed either way), then stops the agent and waits (bounded) for the turn to wrap up.
    pub async fn shutdown(&self, grace: Duration) {
        self.shared
            .shutting_down
            .store(true, std::sync::atomic::Ordering::Release);
        let running = self
            .registry()
            .current_turn
            .as_ref()
            .map(|(info, connection)| (info.clone(), connection.clone()));
        self.shared.turns.close();
        if let Some((info, connection)) = running {
            tracing::info!(turn = %info.turn_id, "cancelling the running turn for shutdown");
            connection.notify("session/cancel", json!({"sessionId": info.session_id}));
            let _ = tokio::time::timeout(grace.min(Duration::from_secs(5)), self.shared.turns.wait()).await;
        }
        let mut lifecycle = self.shared.lifecycle.lock().await;
        if lifecycle.is_some() {
            self.stop_process(&mut lifecycle).await;
            self.set_state(State::Stopped, None, None);
        }
        drop(lifecycle);
        let _ = tokio::time::timeout(grace, self.shared.turns.wait()).await;
    }
}

/// Undoes a turn's registration unless the turn was actually started.
struct Registration<'a> {
    agent: &'a Agent,
    armed: bool,
}

impl Registration<'_> {
    fn disarm(mut self) {
        self.armed = false;
    }
}

impl Drop for Registration<'_> {
    fn drop(&mut self) {
        if self.armed {
            self.agent.registry().current_turn = None;
        }
    }
}

/// A request during the handshake, bounded in time.
async fn call(connection: &Connection, method: &'static str, params: Value) -> Result<Value, AgentError> {
    match tokio::time::timeout(HANDSHAKE_TIMEOUT, connection.request(method, params)).await {
        Ok(Ok(result)) => Ok(result),
        Ok(Err(CallError::Rpc(error))) => Err(AgentError::Handshake { method, error }),
        Ok(Err(CallError::Gone)) => Err(AgentError::Exited { method }),
        Err(_) => Err(AgentError::Timeout { method }),
    }
}

/// The ACP stdio MCP server for a command line; the program is resolved on PATH so the agent need not.
fn playwright_server(command_line: &str) -> Value {
    let mut words = command_line.split_whitespace().map(str::to_owned);
    let program = words.next().unwrap_or_default();
    let args: Vec<String> = words.collect();
    json!({"name": "playwright", "command": resolve_on_path(&program), "args": args, "env": []})
}

fn resolve_on_path(program: &str) -> String {
    if program.contains('/') {
        return program.to_owned();
    }
    std::env::var_os("PATH")
        .and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|dir| dir.join(program))
                .find(|path| path.is_file())
        })
        .map(|path| path.display().to_string())
        .unwrap_or_else(|| program.to_owned())
}

fn new_turn_id() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u64(now_ms());
    format!("turn-{:016x}", hasher.finish())
}
