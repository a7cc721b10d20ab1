//! The ACP bridge against the fake ACP agent (`examples/fake_acp_agent.rs`): fast and fault-injecting.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Value, json};

use crate::helper::{Daemon, EventStream, Options, SseEvent, cli_document, fake_agent, wait_for};

const TURN: Duration = Duration::from_secs(20);

struct Bridge {
    daemon: Daemon,
    record: PathBuf,
    app: PathBuf,
    _dir: tempfile::TempDir,
}

async fn start_bridge(extra: &[&str]) -> Bridge {
    bridge_with(extra, false).await
}

/// With `supervise`, the components are not all disabled: the test's flags decide.
async fn bridge_with(extra: &[&str], supervise: bool) -> Bridge {
    let dir = tempfile::tempdir().unwrap();
    let record = dir.path().join("record.jsonl");
    let app = dir.path().join("app");
    std::fs::create_dir_all(&app).unwrap();
    let mut args: Vec<String> = vec![
        "--agent-command".into(),
        fake_agent().display().to_string(),
        "--agent-env-pass".into(),
        "FAKE_ACP_RECORD,ANTHROPIC_BASE_URL".into(),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    let env = vec![
        ("FAKE_ACP_RECORD".to_owned(), record.display().to_string()),
        ("ANTHROPIC_BASE_URL".to_owned(), "http://127.0.0.1:9".to_owned()),
        ("NOT_FOR_THE_AGENT".to_owned(), "leaky".to_owned()),
    ];
    let options = Options {
        app_dir: Some(app.clone()),
        args,
        env,
        supervise,
        ..Options::default()
    };
    Bridge {
        daemon: Daemon::start_with(options).await,
        record,
        app,
        _dir: dir,
    }
}

impl Bridge {
    async fn session(&self, body: Value) -> (u16, Value) {
        let response = self.daemon.post("/session", &body).await;
        let status = response.status().as_u16();
        (status, response.json().await.unwrap())
    }

    async fn api_key_session(&self) -> String {
        let (status, body) = self.session(json!({"apiKey": "sk-ant-api03-test-key"})).await;
        assert_eq!(status, 200, "{body}");
        body["sessionId"].as_str().unwrap().to_owned()
    }

    async fn prompt(&self, session: &str, text: &str) -> reqwest::Response {
        self.daemon
            .post(&format!("/session/{session}/prompt"), &json!({"prompt": text}))
            .await
    }

    /// Runs a turn to its end; every event of the stream, in order.
    async fn turn(&self, session: &str, text: &str) -> Vec<SseEvent> {
        let response = self.prompt(session, text).await;
        assert_eq!(response.status(), 200);
        assert!(
            response.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/event-stream")
        );
        let mut stream = EventStream::from_response(response);
        let mut events = Vec::new();
        while let Some(event) = stream.next(TURN).await {
            let last = event.event == "done" || event.event == "error";
            events.push(event);
            if last {
                break;
            }
        }
        assert!(
            stream.ended(Duration::from_secs(5)).await,
            "the stream ends after the final event"
        );
        events
    }

    /// Every `start` record the fake agent wrote (one per spawned process).
    fn starts(&self) -> Vec<Value> {
        self.records()
            .into_iter()
            .filter_map(|r| r.get("start").cloned())
            .collect()
    }

    fn received(&self, method: &str) -> Vec<Value> {
        self.records()
            .into_iter()
            .filter_map(|r| r.get("received").cloned())
            .filter(|m| m["method"] == method)
            .collect()
    }

    fn records(&self) -> Vec<Value> {
        std::fs::read_to_string(&self.record)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    async fn agent_state(&self) -> Value {
        let status: Value = self.daemon.get("/status").await.json().await.unwrap();
        status["components"]["agent"].clone()
    }
}

fn texts(events: &[SseEvent]) -> Vec<String> {
    events
        .iter()
        .filter(|e| e.event == "update" && e.data["sessionUpdate"] == "agent_message_chunk")
        .map(|e| e.data["content"]["text"].as_str().unwrap_or_default().to_owned())
        .collect()
}

#[tokio::test]
async fn a_turn_streams_updates_verbatim_then_exactly_one_done_including_late_updates() {
    let bridge = start_bridge(&[]).await;
    let session = bridge.api_key_session().await;
    let events = bridge.turn(&session, "build it write:src/hello.txt=hi").await;
    assert_eq!(
        texts(&events),
        ["Hello", " world", " (late)"],
        "the late chunk still belongs to the turn"
    );
    let done = events.last().unwrap();
    assert_eq!(done.event, "done");
    assert_eq!(done.data["stopReason"], "end_turn");
    assert_eq!(
        done.data["commit"]["filesChanged"],
        json!(["src/hello.txt"]),
        "the turn was committed"
    );
    assert_eq!(done.data["credentialsRotated"], false);
    assert_eq!(
        events
            .iter()
            .filter(|e| e.event == "done" || e.event == "error")
            .count(),
        1
    );
    let ids: Vec<u64> = events.iter().map(|e| e.id.expect("every event has an id")).collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");
    let tool_call = events
        .iter()
        .find(|e| e.data["sessionUpdate"] == "tool_call")
        .expect("the tool_call update");
    assert!(
        tool_call.data.get("toolCallId").is_some(),
        "updates are the ACP update object itself: {}",
        tool_call.data
    );
    assert_eq!(
        std::fs::read_to_string(bridge.app.join("src/hello.txt")).unwrap(),
        "hi",
        "the agent ran in the app dir"
    );
}

#[tokio::test]
async fn the_agent_environment_is_built_never_inherited() {
    let bridge = start_bridge(&[]).await;
    std::fs::create_dir_all(&bridge.daemon.config_dir).unwrap();
    let document = cli_document("sk-ant-oat01-env-access", "sk-ant-ort01-env-refresh", 4_000_000_000_000);
    let (status, body) = bridge.session(json!({"oauthToken": document.to_string()})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["auth"], "oauth");
    assert_eq!(body["credentials"], "written");
    let start = &bridge.starts()[0];
    let env = start["env"].as_object().unwrap();
    assert_eq!(env["IS_SANDBOX"], "1");
    assert_eq!(env["CLAUDE_CONFIG_DIR"], bridge.daemon.config_dir.display().to_string());
    assert!(env["ANTHROPIC_BETAS"].as_str().unwrap().contains("oauth-2025-04-20"));
    assert_eq!(
        env["ANTHROPIC_BASE_URL"], "http://127.0.0.1:9",
        "listed variables pass through"
    );
    for absent in [
        "ANTHROPIC_API_KEY",
        "ANTHROPIC_AUTH_TOKEN",
        "CLAUDE_CODE_OAUTH_TOKEN",
        "NOT_FOR_THE_AGENT",
    ] {
        assert!(!env.contains_key(absent), "{absent} must not reach the agent");
    }
    let everything = start.to_string();
    assert!(
        !everything.contains(&bridge.daemon.token),
        "the daemon's bearer token never reaches the agent"
    );
    assert!(
        !everything.contains("sk-ant-oat01-env-access"),
        "the CLI reads the tokens from the file, not the env"
    );
    assert_eq!(start["cwd"], bridge.app.display().to_string());
    let on_disk: Value = serde_json::from_slice(&std::fs::read(bridge.daemon.credentials_file()).unwrap()).unwrap();
    assert_eq!(on_disk["claudeAiOauth"]["accessToken"], "sk-ant-oat01-env-access");
    assert!(!bridge.daemon.logs().contains("sk-ant-oat01-env-access"));
}

#[tokio::test]
async fn api_key_mode_then_oauth_mode_restarts_the_agent_and_the_old_session_is_gone() {
    let bridge = start_bridge(&[]).await;
    let mut events = bridge.daemon.events(None).await;
    let first = bridge.api_key_session().await;
    let env = bridge.starts()[0]["env"].clone();
    assert_eq!(env["ANTHROPIC_API_KEY"], "sk-ant-api03-test-key");
    assert!(env.get("ANTHROPIC_BETAS").is_none());
    let second = bridge.api_key_session().await;
    assert_eq!(bridge.starts().len(), 1, "same mode, same key: the agent is reused");
    assert_ne!(first, second);

    let document = cli_document("sk-ant-oat01-a", "sk-ant-ort01-r", 4_000_000_000_000);
    let (status, body) = bridge
        .session(json!({"oauthToken": document, "apiKey": "ignored"}))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["auth"], "oauth", "a non-empty oauthToken wins over apiKey");
    let starts = bridge.starts();
    assert_eq!(starts.len(), 2, "switching mode restarts the agent");
    assert_ne!(starts[0]["pid"], starts[1]["pid"]);
    let mut states = Vec::new();
    while let Some(event) = events.next(Duration::from_millis(300)).await {
        if event.event == "component" {
            states.push(event.data["state"].as_str().unwrap().to_owned());
        }
    }
    assert_eq!(
        states,
        ["starting", "ready", "starting", "ready"],
        "a planned restart is not a failure"
    );
    assert_eq!(
        bridge.agent_state().await["restarts"],
        1,
        "one new process after the first"
    );
    let old = bridge.prompt(&first, "hello").await;
    assert_eq!(old.status(), 410);
    let body: Value = old.json().await.unwrap();
    assert!(body["type"].as_str().unwrap().ends_with("/session-gone"));
}

#[tokio::test]
async fn a_changed_api_key_restarts_the_agent() {
    let bridge = start_bridge(&[]).await;
    bridge.api_key_session().await;
    let (status, _) = bridge.session(json!({"apiKey": "sk-ant-api03-other-key"})).await;
    assert_eq!(status, 200);
    let starts = bridge.starts();
    assert_eq!(starts.len(), 2);
    assert_eq!(starts[1]["env"]["ANTHROPIC_API_KEY"], "sk-ant-api03-other-key");
}

#[tokio::test]
async fn session_auth_choice_and_its_errors() {
    let bridge = start_bridge(&[]).await;
    let (status, body) = bridge.session(json!({})).await;
    assert_eq!(status, 400);
    assert!(body["type"].as_str().unwrap().ends_with("/no-credentials"), "{body}");
    let (status, body) = bridge.session(json!({"oauthToken": "not json", "apiKey": "k"})).await;
    assert_eq!(status, 400);
    assert_eq!(body["field"], "oauthToken");
    let (status, body) = bridge
        .session(json!({"oauthToken": {"claudeAiOauth": {"accessToken": "a"}}}))
        .await;
    assert_eq!(status, 400);
    assert_eq!(body["field"], "oauthToken.claudeAiOauth.refreshToken");

    // A usable credentials file is enough on its own.
    std::fs::create_dir_all(&bridge.daemon.config_dir).unwrap();
    std::fs::write(
        bridge.daemon.credentials_file(),
        cli_document("a", "r", 9_000).to_string(),
    )
    .unwrap();
    let (status, body) = bridge.session(json!({"apiKey": ""})).await;
    assert_eq!((status, body["auth"].as_str()), (200, Some("oauth")), "{body}");
    assert!(body.get("credentials").is_none());

    // Older tokens than the file's: the file wins, quietly.
    let older = cli_document("older-a", "older-r", 8_000);
    let (status, body) = bridge.session(json!({"oauthToken": older})).await;
    assert_eq!(status, 200);
    assert_eq!(body["credentials"], "kept-newer");
    let on_disk: Value = serde_json::from_slice(&std::fs::read(bridge.daemon.credentials_file()).unwrap()).unwrap();
    assert_eq!(on_disk["claudeAiOauth"]["accessToken"], "a");
}

#[tokio::test]
async fn session_new_carries_cwd_system_prompt_model_and_mcp_servers() {
    let dir = tempfile::tempdir().unwrap();
    let prompt_file = dir.path().join("system-prompt.md");
    std::fs::write(&prompt_file, "You build apps in /app.\n").unwrap();
    let bridge = bridge_with(
        &[
            "--system-prompt-file",
            prompt_file.to_str().unwrap(),
            "--no-xvfb",
            "--no-vite",
            // Chromium enabled (it need not run for this test) means Playwright MCP is attached.
            "--chromium-bin",
            "/bin/false",
            "--playwright-mcp-command",
            "playwright-mcp --cdp-endpoint http://127.0.0.1:4444",
        ],
        true,
    )
    .await;
    let extra_server = json!({"name": "docs", "command": "/usr/bin/docs-mcp", "args": [], "env": []});
    let body =
        json!({"apiKey": "k", "systemPrompt": "Use blue.", "model": "claude-test-1", "mcpServers": [extra_server]});
    let (status, created) = bridge.session(body).await;
    assert_eq!(status, 200, "{created}");
    let new = &bridge.received("session/new")[0]["params"];
    assert_eq!(new["cwd"], bridge.app.display().to_string());
    assert_eq!(
        new["_meta"]["systemPrompt"]["append"],
        "You build apps in /app.\n\nUse blue."
    );
    assert_eq!(new["_meta"]["claudeCode"]["options"]["model"], "claude-test-1");
    let servers = new["mcpServers"].as_array().unwrap();
    assert_eq!(servers[0]["name"], "playwright");
    assert_eq!(servers[0]["args"], json!(["--cdp-endpoint", "http://127.0.0.1:4444"]));
    assert_eq!(servers[1], extra_server);
    let initialize = &bridge.received("initialize")[0]["params"];
    assert_eq!(initialize["protocolVersion"], 1);
}

#[tokio::test]
async fn permission_requests_are_answered_with_an_offered_option_chosen_by_kind() {
    let bridge = start_bridge(&[]).await;
    let session = bridge.api_key_session().await;
    let events = bridge.turn(&session, "permission write:allowed.txt=yes").await;
    let permission = events
        .iter()
        .find(|e| e.event == "permission")
        .expect("a permission event");
    let options = permission.data["options"].as_array().unwrap();
    let always = options.iter().find(|o| o["kind"] == "allow_always").unwrap();
    assert_eq!(permission.data["selected"], always["optionId"]);
    assert_eq!(permission.data["toolCall"]["toolCallId"], "call-1");
    let answer = format!("permission:{}:allow_always", always["optionId"].as_str().unwrap());
    assert!(
        texts(&events).contains(&answer),
        "the agent got that very option back: {:?}",
        texts(&events)
    );
    assert!(bridge.app.join("allowed.txt").exists());

    let rejecting = start_bridge(&["--permission-policy", "reject"]).await;
    let session = rejecting.api_key_session().await;
    let events = rejecting.turn(&session, "permission write:denied.txt=no").await;
    let permission = events.iter().find(|e| e.event == "permission").unwrap();
    let reject = permission.data["options"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["kind"] == "reject_once")
        .unwrap()
        .clone();
    assert_eq!(permission.data["selected"], reject["optionId"]);
    assert!(!rejecting.app.join("denied.txt").exists());
}

#[tokio::test]
async fn one_turn_at_a_time_unknown_sessions_are_404_and_cancel_ends_the_turn_cancelled() {
    let bridge = start_bridge(&[]).await;
    let session = bridge.api_key_session().await;
    let response = bridge.prompt(&session, "slow").await;
    assert_eq!(response.status(), 200);
    let turn_id = response.headers()["x-turn-id"].to_str().unwrap().to_owned();
    let mut stream = EventStream::from_response(response);
    stream.next_named("update", TURN).await;
    assert_eq!(bridge.agent_state().await["state"], "busy");

    let second = bridge.prompt(&session, "hello").await;
    assert_eq!(second.status(), 409);
    let body: Value = second.json().await.unwrap();
    assert!(body["type"].as_str().unwrap().ends_with("/turn-in-progress"));
    assert_eq!(bridge.prompt("no-such-session", "hello").await.status(), 404);
    let empty = bridge.prompt(&session, " ").await;
    assert_eq!(empty.status(), 400);
    assert_eq!(empty.json::<Value>().await.unwrap()["field"], "prompt");
    let status: Value = bridge.daemon.get("/status").await.json().await.unwrap();
    assert_eq!(status["agent"]["currentTurn"]["sessionId"], session.as_str());
    assert_eq!(
        status["agent"]["currentTurn"]["turnId"],
        turn_id.as_str(),
        "X-Turn-Id names the turn"
    );

    let cancel = bridge
        .daemon
        .post(&format!("/session/{session}/cancel"), &json!({}))
        .await;
    assert_eq!(cancel.status(), 202);
    let done = stream.next_named("done", TURN).await;
    assert_eq!(done.data["stopReason"], "cancelled");
    assert_eq!(bridge.received("session/cancel").len(), 1);
    let again = bridge
        .daemon
        .post(&format!("/session/{session}/cancel"), &json!({}))
        .await;
    assert_eq!(again.status(), 409, "nothing left to cancel");
    assert_eq!(bridge.agent_state().await["state"], "ready");
}

#[tokio::test]
async fn a_client_that_disconnects_does_not_cancel_the_turn() {
    let bridge = start_bridge(&[]).await;
    let session = bridge.api_key_session().await;
    let mut events = bridge.daemon.events(None).await;
    let response = bridge.prompt(&session, "sleep 300").await;
    assert_eq!(response.status(), 200);
    drop(response);
    let finished = events.next_named("turn.finished", TURN).await;
    assert_eq!(finished.data["stopReason"], "end_turn");
    assert_eq!(finished.data["sessionId"], session.as_str());
    assert!(bridge.received("session/cancel").is_empty());
}

#[tokio::test]
async fn wait_false_answers_202_and_the_turn_is_on_events() {
    let bridge = start_bridge(&[]).await;
    let session = bridge.api_key_session().await;
    let mut events = bridge.daemon.events(None).await;
    let response = bridge
        .daemon
        .client
        .post(bridge.daemon.url(&format!("/session/{session}/prompt?wait=false")))
        .bearer_auth(&bridge.daemon.token)
        .json(&json!({"prompt": [{"type": "text", "text": "hello"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202);
    let turn_id = response.json::<Value>().await.unwrap()["turnId"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut kinds = Vec::new();
    loop {
        let event = events.next(TURN).await.expect("turn events");
        if !event.event.starts_with("turn.") {
            continue;
        }
        assert_eq!(event.data["turnId"], turn_id.as_str());
        assert_eq!(event.data["sessionId"], session.as_str());
        kinds.push(event.event.clone());
        if event.event == "turn.finished" {
            assert_eq!(event.data["stopReason"], "end_turn");
            break;
        }
    }
    assert_eq!(kinds.first().map(String::as_str), Some("turn.started"));
    assert_eq!(kinds.iter().filter(|k| *k == "turn.update").count(), 3);
}

#[tokio::test]
async fn an_agent_crash_mid_turn_is_an_error_event_and_the_next_session_respawns_it() {
    let bridge = start_bridge(&[]).await;
    let session = bridge.api_key_session().await;
    let events = bridge.turn(&session, "crash write:partial.txt=1").await;
    let error = events.last().unwrap();
    assert_eq!(error.event, "error");
    assert!(
        error.data["type"].as_str().unwrap().ends_with("/agent-crashed"),
        "{}",
        error.data
    );
    assert_eq!(error.data["status"], 502);
    let agent = wait_for("the agent to be reported failed", TURN, || async {
        let agent = bridge.agent_state().await;
        (agent["state"] == "failed").then_some(agent)
    })
    .await;
    assert!(agent["reason"].as_str().unwrap().contains("exited"));
    assert_eq!(agent["lastExit"]["code"], 1, "the fake agent's crash exit code");
    assert_eq!(
        bridge.daemon.get("/status").await.json::<Value>().await.unwrap()["agent"]["sessions"],
        json!([])
    );
    let health = bridge.daemon.get_public("/health").await;
    assert_eq!(health.status(), 503, "a crashed agent shows on /health");

    let gone = bridge.prompt(&session, "hello").await;
    assert_eq!(gone.status(), 410);
    let fresh = bridge.api_key_session().await;
    assert_eq!(bridge.starts().len(), 2, "respawned");
    let agent = bridge.agent_state().await;
    assert_eq!(
        (agent["restarts"].as_u64(), agent["lastExit"]["code"].as_i64()),
        (Some(1), Some(1)),
        "{agent}"
    );
    let events = bridge.turn(&fresh, "hello").await;
    assert_eq!(events.last().unwrap().event, "done");
}

#[tokio::test]
async fn garbage_from_the_agent_is_logged_and_ignored() {
    let bridge = start_bridge(&[]).await;
    let session = bridge.api_key_session().await;
    let events = bridge.turn(&session, "garbage").await;
    assert_eq!(events.last().unwrap().event, "done");
    assert_eq!(texts(&events), ["Hello", " world", " (late)"]);
    let logged = Duration::from_secs(5);
    bridge.daemon.wait_for_log("not a JSON object", logged).await;
    bridge.daemon.wait_for_log("unknown request id", logged).await;
}

#[tokio::test]
async fn an_acp_error_response_becomes_an_error_event_naming_it() {
    let bridge = start_bridge(&[]).await;
    let session = bridge.api_key_session().await;
    let events = bridge.turn(&session, "autherror").await;
    let error = events.last().unwrap();
    assert_eq!(error.event, "error");
    assert!(error.data["type"].as_str().unwrap().ends_with("/agent-error"));
    let detail = error.data["detail"].as_str().unwrap();
    assert!(
        detail.contains("Authentication required") && detail.contains("-32000"),
        "{detail}"
    );
    assert_eq!(bridge.agent_state().await["state"], "ready", "the agent itself is fine");
}

#[tokio::test]
async fn agent_states_go_idle_starting_ready_busy_and_idle_never_degrades_health() {
    let bridge = start_bridge(&[]).await;
    let health: Value = bridge.daemon.get_public("/health").await.json().await.unwrap();
    assert_eq!(health["components"]["agent"]["state"], "idle");
    assert_eq!(health["status"], "ok");
    let mut events = bridge.daemon.events(None).await;
    let session = bridge.api_key_session().await;
    bridge.turn(&session, "hello").await;
    let mut states = Vec::new();
    while let Some(event) = events.next(Duration::from_millis(300)).await {
        if event.event == "component" && event.data["name"] == "agent" {
            states.push(event.data["state"].as_str().unwrap().to_owned());
        }
    }
    assert_eq!(states, ["starting", "ready", "busy", "ready"]);
    let status: Value = bridge.daemon.get("/status").await.json().await.unwrap();
    assert_eq!(status["agent"]["authMode"], "apiKey");
    assert_eq!(status["agent"]["sessions"], json!([session]));
    assert!(status["components"]["agent"]["pid"].as_u64().is_some());
    assert!(!status.to_string().contains("sk-ant-api03-test-key"));
}

#[tokio::test]
async fn sigterm_during_a_turn_stops_the_agent_and_exits_0() {
    let mut bridge = start_bridge(&[]).await;
    let session = bridge.api_key_session().await;
    let response = bridge.prompt(&session, "slow").await;
    let mut stream = EventStream::from_response(response);
    stream.next_named("update", TURN).await;
    let pid = bridge.starts()[0]["pid"].as_u64().unwrap();
    bridge.daemon.sigterm();
    let status = bridge.daemon.wait_exit(Duration::from_secs(20)).await;
    assert_eq!(status.code(), Some(0));
    assert!(
        !Path::new(&format!("/proc/{pid}")).exists(),
        "the agent process is gone"
    );
}

#[tokio::test]
async fn restarting_the_agent_component_ends_a_hung_turn_and_the_next_session_starts_a_fresh_agent() {
    let bridge = start_bridge(&[]).await;
    let session = bridge.api_key_session().await;
    // `sleep` ignores session/cancel: a hung turn.
    let response = bridge.prompt(&session, "sleep 600000").await;
    let mut stream = EventStream::from_response(response);
    let restart = bridge.daemon.post("/components/agent/restart", &json!({})).await;
    assert_eq!(restart.status(), 202);
    let error = stream.next_named("error", TURN).await;
    assert!(error.data["type"].as_str().unwrap().ends_with("/agent-crashed"));
    assert_eq!(bridge.agent_state().await["state"], "idle");
    assert_eq!(bridge.prompt(&session, "hello").await.status(), 410);
    bridge.api_key_session().await;
    assert_eq!(bridge.starts().len(), 2);
}

#[tokio::test]
async fn a_silent_agent_is_cut_by_the_idle_limit_but_a_talkative_one_never_is() {
    let bridge = start_bridge(&["--agent-idle-timeout", "1"]).await;
    let session = bridge.api_key_session().await;

    // Talks every 100 ms: the turn outlives the idle limit many times over, until cancelled.
    let response = bridge.prompt(&session, "slow").await;
    let mut stream = EventStream::from_response(response);
    let started = std::time::Instant::now();
    while started.elapsed() < Duration::from_secs(3) {
        assert_eq!(stream.next(TURN).await.expect("still streaming").event, "update");
    }
    let cancel = bridge
        .daemon
        .post(&format!("/session/{session}/cancel"), &json!({}))
        .await;
    assert_eq!(cancel.status(), 202);
    assert_eq!(stream.next_named("done", TURN).await.data["stopReason"], "cancelled");

    // Silent, and deaf to session/cancel: cancelled after 1 s, stopped 1 s later; its work is committed.
    let mut events = bridge.daemon.events(None).await;
    let response = bridge.prompt(&session, "sleep 600000 write:src/idle.txt=i").await;
    let mut stream = EventStream::from_response(response);
    let error = stream.next_named("error", TURN).await;
    assert!(
        error.data["type"].as_str().unwrap().ends_with("/agent-idle"),
        "{}",
        error.data
    );
    assert_eq!(error.data["status"], 504);
    assert!(error.data["detail"].as_str().unwrap().contains("--agent-idle-timeout"));
    let failed = events.next_named("turn.failed", TURN).await;
    assert_eq!(failed.data["commit"]["filesChanged"], json!(["src/idle.txt"]));
    assert!(
        failed.data["commit"]["message"]
            .as_str()
            .unwrap()
            .contains("Stop-Reason: idle"),
        "{}",
        failed.data
    );
    let cancels = bridge.received("session/cancel");
    assert_eq!(cancels.len(), 2, "one cancel by the client, one for idling");
    assert_eq!(bridge.agent_state().await["state"], "idle");
    bridge
        .daemon
        .wait_for_log("silent too long", Duration::from_secs(5))
        .await;
    // The daemon goes on: a new session, a new turn.
    let session = bridge.api_key_session().await;
    let events = bridge.turn(&session, "hello").await;
    assert_eq!(events.last().unwrap().event, "done");
}

#[tokio::test]
async fn pass_through_never_carries_the_daemons_own_settings() {
    let bridge = start_bridge(&[
        "--agent-env-pass",
        "FAKE_ACP_RECORD,ACP_BRIDGE_TOKEN,IS_SANDBOX,DISPLAY",
    ])
    .await;
    bridge.api_key_session().await;
    let env = bridge.starts()[0]["env"].clone();
    assert!(env.get("ACP_BRIDGE_TOKEN").is_none());
    assert_eq!(env["IS_SANDBOX"], "1");
    assert!(!env.to_string().contains(&bridge.daemon.token));
}
