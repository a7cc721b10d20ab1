//! End to end, offline: the daemon runs the real Claude Code ACP adapter (`image/tools`), whose bundled CLI
//! talks to the fake Anthropic API and, through the TLS-intercepting proxy, to the fake OAuth token endpoint.

use std::path::PathBuf;
use std::time::Duration;

use serde_json::{Value, json};

use crate::fake_anthropic::{FakeAnthropic, FakeAnthropicOptions, credentials_json};
use crate::helper::{Daemon, EventStream, Options, SseEvent};

const TURN: Duration = Duration::from_secs(90);

fn adapter() -> PathBuf {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("image/tools/node_modules/.bin/claude-agent-acp");
    assert!(path.exists(), "run `npm ci` in image/tools first (scripts/test does)");
    path
}

struct EndToEnd {
    daemon: Daemon,
    fake: FakeAnthropic,
    app: PathBuf,
    _dir: tempfile::TempDir,
}

async fn end_to_end(options: FakeAnthropicOptions, app: Option<PathBuf>, dir: tempfile::TempDir) -> EndToEnd {
    let fake = FakeAnthropic::start(options).await;
    let app = app.unwrap_or_else(|| dir.path().join("app"));
    std::fs::create_dir_all(&app).unwrap();
    let env = fake.agent_env();
    let pass: Vec<&str> = env.iter().map(|(k, _)| k.as_str()).collect();
    let args = vec![
        "--agent-command".to_owned(),
        adapter().display().to_string(),
        "--agent-env-pass".to_owned(),
        pass.join(","),
    ];
    let daemon = Daemon::start_with(Options {
        app_dir: Some(app.clone()),
        args,
        env,
        ..Options::default()
    })
    .await;
    // Without ~/.claude.json the adapter can refuse sessions.
    let home = daemon.config_dir.parent().unwrap().to_path_buf();
    std::fs::write(home.join(".claude.json"), "{}").unwrap();
    EndToEnd {
        daemon,
        fake,
        app,
        _dir: dir,
    }
}

impl EndToEnd {
    async fn session(&self, body: Value) -> String {
        let response = self.daemon.post("/session", &body).await;
        let status = response.status().as_u16();
        let body: Value = response.json().await.unwrap();
        assert_eq!(status, 200, "{body}");
        body["sessionId"].as_str().unwrap().to_owned()
    }

    async fn turn(&self, session: &str, text: &str) -> Vec<SseEvent> {
        let response = self
            .daemon
            .post(&format!("/session/{session}/prompt"), &json!({"prompt": text}))
            .await;
        assert_eq!(response.status(), 200);
        let mut stream = EventStream::from_response(response);
        let mut events = Vec::new();
        while let Some(event) = stream.next(TURN).await {
            let last = event.event == "done" || event.event == "error";
            events.push(event);
            if last {
                break;
            }
        }
        events
    }
}

/// The next event named `name`; every event read on the way is kept in `published`.
async fn next_kept(events: &mut EventStream, name: &str, published: &mut Vec<SseEvent>) -> SseEvent {
    loop {
        let event = events
            .next(Duration::from_secs(10))
            .await
            .unwrap_or_else(|| panic!("no `{name}` event within 10 s"));
        published.push(event.clone());
        if event.event == name {
            return event;
        }
    }
}

#[tokio::test]
async fn oauth_turn_on_the_real_adapter_writes_a_file_answers_permission_and_rotates_tokens() {
    let dir = tempfile::tempdir().unwrap();
    let app = dir.path().join("app");
    let target = app.join("src/Hello.tsx");
    let options = FakeAnthropicOptions {
        token_expires_in: 60,
        write_file: Some((target.clone(), "export const Hello = () => <h1>Hi</h1>;\n".to_owned())),
        ..FakeAnthropicOptions::default()
    };
    let e2e = end_to_end(options, Some(app), dir).await;
    let mut events = e2e.daemon.events(None).await;

    // Already expired: the CLI must refresh (a real, single-use rotation) before its first request.
    let document = credentials_json("sk-ant-oat01-initial-access", "sk-ant-ort01-initial-refresh", 1_000);
    let session = e2e
        .session(json!({"oauthToken": document.to_string(), "systemPrompt": "Always answer in haiku (marker-7Q)."}))
        .await;
    let turn = e2e.turn(&session, "Create the Hello component").await;
    let done = turn.last().unwrap();
    assert_eq!(
        done.event,
        "done",
        "{:?}",
        turn.iter().map(|e| (&e.event, &e.data)).collect::<Vec<_>>()
    );
    assert_eq!(done.data["stopReason"], "end_turn");
    assert_eq!(done.data["credentialsRotated"], true);
    assert!(turn.iter().any(|e| e.event == "update"), "updates streamed");
    let permission = turn
        .iter()
        .find(|e| e.event == "permission")
        .expect("the Write tool asked for permission");
    let offered: Vec<&Value> = permission.data["options"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| &o["optionId"])
        .collect();
    assert!(
        offered.contains(&&permission.data["selected"]),
        "an offered option was chosen"
    );
    assert_eq!(
        std::fs::read_to_string(&target).unwrap(),
        "export const Hello = () => <h1>Hi</h1>;\n"
    );

    let requests = e2e.fake.requests();
    let messages: Vec<_> = requests.iter().filter(|r| r.is_messages()).collect();
    assert!(!messages.is_empty());
    let issued = e2e.fake.issued_tokens();
    assert!(
        !issued.is_empty(),
        "the CLI refreshed through the intercepted token endpoint"
    );
    for request in &messages {
        let authorization = request.header("authorization").expect("Bearer auth");
        assert!(
            issued
                .iter()
                .any(|(access, _)| authorization == format!("Bearer {access}")),
            "{authorization}"
        );
        assert!(
            request
                .header("anthropic-beta")
                .unwrap_or_default()
                .contains("oauth-2025-04-20")
        );
        assert!(request.header("x-api-key").is_none());
    }
    assert!(
        messages
            .iter()
            .any(|r| r.body["system"].to_string().contains("marker-7Q")),
        "the system prompt arrived"
    );

    // Every event of the run is kept, for the leak check below.
    let mut published = Vec::new();
    let rotated = next_kept(&mut events, "credentials.rotated", &mut published).await;
    assert!(rotated.data["expiresAt"].as_u64().unwrap() > 1_000);
    if !published.iter().any(|e| e.event == "turn.finished") {
        next_kept(&mut events, "turn.finished", &mut published).await;
    }
    let (last_access, last_refresh) = issued.last().unwrap().clone();
    let read: Value = e2e
        .daemon
        .post("/credentials/read", &json!({}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(read["accessToken"], last_access.as_str());
    assert_eq!(read["refreshToken"], last_refresh.as_str());

    // No token, nor the bearer token, in the logs, the events, /health, /status or an error body.
    let daemon = &e2e.daemon;
    let mut places = vec![("the daemon's logs".to_owned(), daemon.logs())];
    for event in &published {
        places.push((format!("the {} event", event.event), event.data.to_string()));
    }
    let health = daemon.get_public("/health").await;
    places.push(("/health".to_owned(), health.text().await.unwrap()));
    let status = daemon.get("/status").await;
    places.push(("/status".to_owned(), status.text().await.unwrap()));
    let stale = daemon.post("/credentials/write", &document).await;
    assert_eq!(
        stale.status(),
        409,
        "the initial tokens are older than the rotated ones"
    );
    places.push(("a stale write".to_owned(), stale.text().await.unwrap()));
    let mut invalid = document.clone();
    invalid["claudeAiOauth"]["expiresAt"] = json!("whenever");
    let invalid = daemon.post("/credentials/write", &invalid).await;
    assert_eq!(invalid.status(), 400);
    places.push(("an invalid write".to_owned(), invalid.text().await.unwrap()));
    let unknown = daemon
        .post("/session/no-such-session/prompt", &json!({"prompt": "hi"}))
        .await;
    assert_eq!(unknown.status(), 404);
    places.push(("an unknown session".to_owned(), unknown.text().await.unwrap()));
    let wrong = daemon
        .client
        .post(daemon.url("/credentials/read"))
        .bearer_auth("wrong-bearer")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
    places.push(("a wrong bearer token".to_owned(), wrong.text().await.unwrap()));
    assert!(
        published.iter().any(|e| e.event == "turn.update"),
        "the turn was on /events"
    );
    for secret in [
        "sk-ant-oat01-initial-access",
        "sk-ant-ort01-initial-refresh",
        &last_access,
        &last_refresh,
        &daemon.token,
    ] {
        for (place, text) in &places {
            assert!(!text.contains(secret), "a secret leaked into {place}");
        }
    }
}

#[tokio::test]
async fn api_key_turn_on_the_real_adapter_sends_x_api_key() {
    let dir = tempfile::tempdir().unwrap();
    let e2e = end_to_end(FakeAnthropicOptions::default(), None, dir).await;
    let session = e2e.session(json!({"apiKey": "sk-ant-api03-e2e-key"})).await;
    let turn = e2e.turn(&session, "Say hello").await;
    assert_eq!(turn.last().unwrap().event, "done");
    let messages: Vec<_> = e2e.fake.requests().into_iter().filter(|r| r.is_messages()).collect();
    assert!(!messages.is_empty());
    for request in messages {
        assert_eq!(request.header("x-api-key"), Some("sk-ant-api03-e2e-key"));
        assert!(request.header("authorization").is_none());
        assert!(
            !request
                .header("anthropic-beta")
                .unwrap_or_default()
                .contains("oauth-2025-04-20")
        );
    }
    assert!(e2e.fake.issued_tokens().is_empty());
    assert!(!e2e.app.join("src").exists());
    assert!(!e2e.daemon.logs().contains("sk-ant-api03-e2e-key"));
}
