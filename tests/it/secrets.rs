//! No secret leaves the daemon except through `POST /credentials/read`: after a realistic session against the
//! fake agent, every log line, every `/events` event, every turn stream, every error body and the bodies of
//! `/health`, `/status`, `/history` and the agent's logs are searched for every token, key and bearer used.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::StreamExt;
use serde_json::{Value, json};

use crate::helper::{Daemon, Options, cli_document, fake_agent, rewrite_in_place, wait_for};

const WAIT: Duration = Duration::from_secs(20);
const WRONG_BEARER: &str = "wrong-bearer-LEAKCHECK-5d1e";

/// A token unique to this test, so that a hit cannot be a coincidence.
fn secret(kind: &str, n: u32) -> String {
    format!("sk-ant-{kind}-LEAKCHECK-{n}-{}", "x".repeat(8))
}

/// Talks to the daemon and keeps every response body it gets, with a label.
struct Session {
    daemon: Daemon,
    seen: Mutex<Vec<(String, u16, String)>>,
    secrets: Mutex<Vec<String>>,
    _dir: tempfile::TempDir,
}

impl Session {
    fn remember(&self, secret: &str) -> String {
        self.secrets.lock().unwrap().push(secret.to_owned());
        secret.to_owned()
    }

    /// Sends a request and records its answer (read to the end, so a turn stream is read whole).
    async fn send(&self, method: &str, path: &str, bearer: Option<&str>, body: Option<Vec<u8>>) -> (u16, String) {
        let mut request = self
            .daemon
            .client
            .request(method.parse().unwrap(), self.daemon.url(path));
        if let Some(bearer) = bearer {
            request = request.bearer_auth(bearer);
        }
        if let Some(body) = body {
            request = request.header("content-type", "application/json").body(body);
        }
        let response = tokio::time::timeout(WAIT, request.send())
            .await
            .expect("an answer in time")
            .expect("request");
        let status = response.status().as_u16();
        let text = tokio::time::timeout(WAIT, response.text())
            .await
            .expect("the whole body in time")
            .expect("body");
        self.seen
            .lock()
            .unwrap()
            .push((format!("{method} {path}"), status, text.clone()));
        (status, text)
    }

    async fn call(&self, method: &str, path: &str, body: Value) -> (u16, Value) {
        let token = self.daemon.token.clone();
        let (status, text) = self
            .send(method, path, Some(&token), Some(body.to_string().into_bytes()))
            .await;
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    async fn get(&self, path: &str) -> (u16, String) {
        let token = self.daemon.token.clone();
        self.send("GET", path, Some(&token), None).await
    }

    /// Runs a turn to its end; the raw stream.
    async fn turn(&self, session: &str, prompt: &str) -> String {
        let (status, stream) = self
            .send(
                "POST",
                &format!("/session/{session}/prompt"),
                Some(&self.daemon.token.clone()),
                Some(json!({ "prompt": prompt }).to_string().into_bytes()),
            )
            .await;
        assert_eq!(status, 200, "{stream}");
        assert!(stream.contains("event: done"), "{stream}");
        stream
    }

    fn credentials(&self, access: &str, refresh: &str, expires_at: u64) -> Value {
        json!({"accessToken": self.remember(access), "refreshToken": self.remember(refresh),
               "expiresAt": expires_at, "scopes": ["user:inference", "user:profile"]})
    }
}

/// Collects the raw text of one `/events` stream for as long as the test runs.
fn collect_events(daemon: &Daemon) -> (Arc<Mutex<String>>, tokio::task::JoinHandle<()>) {
    let text = Arc::new(Mutex::new(String::new()));
    let sink = text.clone();
    let request = daemon.client.get(daemon.url("/events")).bearer_auth(&daemon.token);
    let task = tokio::spawn(async move {
        let response = request.send().await.expect("GET /events");
        assert_eq!(response.status(), 200);
        let mut body = response.bytes_stream();
        while let Some(Ok(chunk)) = body.next().await {
            sink.lock().unwrap().push_str(&String::from_utf8_lossy(&chunk));
        }
    });
    (text, task)
}

#[tokio::test]
async fn no_token_key_or_bearer_appears_in_logs_events_or_any_body_after_a_realistic_session() {
    let dir = tempfile::tempdir().unwrap();
    let app = dir.path().join("app");
    std::fs::create_dir_all(&app).unwrap();
    let daemon = Daemon::start_with(Options {
        app_dir: Some(app),
        args: vec!["--agent-command".into(), fake_agent().display().to_string()],
        ..Options::default()
    })
    .await;
    let s = Session {
        daemon,
        seen: Mutex::default(),
        secrets: Mutex::default(),
        _dir: dir,
    };
    let bearer = s.remember(&s.daemon.token.clone());
    s.remember(WRONG_BEARER);
    let (events, collector) = collect_events(&s.daemon);
    wait_for("the event subscriber", WAIT, || async {
        let (_, status) = s.get("/status").await;
        let status: Value = serde_json::from_str(&status).ok()?;
        (status["eventSubscribers"] == 1).then_some(())
    })
    .await;

    // An OAuth session with the user's credentials JSON, and a few turns.
    let first = cli_document(
        &s.remember(&secret("oat01", 0)),
        &s.remember(&secret("ort01", 0)),
        1_900_000_000_000,
    );
    let (status, body) = s
        .call("POST", "/session", json!({"oauthToken": first.to_string()}))
        .await;
    assert_eq!((status, body["credentials"].as_str()), (200, Some("written")), "{body}");
    let session = body["sessionId"].as_str().unwrap().to_owned();
    s.turn(&session, "hello").await;
    s.turn(&session, "write:src/App.txt=one").await;
    s.turn(&session, "permission write:src/Allowed.txt=yes").await;

    // The CLI rotates in place; the control plane writes, once newer and once stale.
    let file = s.daemon.credentials_file();
    let rotated = cli_document(
        &s.remember(&secret("oat01", 1)),
        &s.remember(&secret("ort01", 1)),
        1_900_000_001_000,
    );
    rewrite_in_place(&file, rotated.to_string().as_bytes());
    let newer = s.credentials(&secret("oat01", 2), &secret("ort01", 2), 1_900_000_002_000);
    let (status, body) = s.call("POST", "/credentials/write", newer).await;
    assert_eq!(status, 200, "{body}");
    let stale = s.credentials(&secret("oat01", 3), &secret("ort01", 3), 1_800_000_000_000);
    let (status, body) = s.call("POST", "/credentials/write", stale).await;
    assert_eq!(status, 409, "{body}");
    s.turn(&session, "hello again").await;

    // Failing requests, each carrying secrets.
    let mut invalid = s.credentials(&secret("oat01", 4), &secret("ort01", 4), 0);
    invalid["expiresAt"] = json!("whenever");
    assert_eq!(s.call("POST", "/credentials/write", invalid).await.0, 400);
    let truncated = format!(
        r#"{{"accessToken":"{}","refreshToken":"{}"#,
        secret("oat01", 5),
        secret("ort01", 5)
    );
    s.remember(&secret("oat01", 5));
    s.remember(&secret("ort01", 5));
    let token = s.daemon.token.clone();
    let (status, _) = s
        .send("POST", "/credentials/write", Some(&token), Some(truncated.into_bytes()))
        .await;
    assert_eq!(status, 400);
    let no_refresh = json!({"oauthToken": {"claudeAiOauth": {"accessToken": s.remember(&secret("oat01", 6))}}});
    assert_eq!(s.call("POST", "/session", no_refresh).await.0, 400);
    let bad_key = s.remember(&secret("api03", 7));
    let (status, _) = s
        .call("POST", "/session", json!({ "apiKey": format!("{bad_key}\u{0}end") }))
        .await;
    assert_eq!(status, 400);
    for (method, path) in [("POST", "/credentials/read"), ("GET", "/status"), ("GET", "/events")] {
        let (status, _) = s.send(method, path, Some(WRONG_BEARER), None).await;
        assert_eq!(status, 401, "{method} {path}");
    }
    assert_eq!(
        s.call("POST", "/session/no-such-session/prompt", json!({"prompt": "hi"}))
            .await
            .0,
        404
    );
    assert_eq!(
        s.call("POST", "/session/no-such-session/cancel", json!({})).await.0,
        404
    );

    // An API-key session (the agent restarts with the key in its environment), then OAuth again.
    let key = s.remember(&secret("api03", 8));
    let (status, body) = s.call("POST", "/session", json!({ "apiKey": key })).await;
    assert_eq!((status, body["auth"].as_str()), (200, Some("apiKey")), "{body}");
    let keyed = body["sessionId"].as_str().unwrap().to_owned();
    s.turn(&keyed, "hello with a key").await;
    let again = cli_document(
        &s.remember(&secret("oat01", 9)),
        &s.remember(&secret("ort01", 9)),
        1_900_000_009_000,
    );
    let (status, body) = s.call("POST", "/session", json!({ "oauthToken": again })).await;
    assert_eq!((status, body["credentials"].as_str()), (200, Some("written")), "{body}");
    let session = body["sessionId"].as_str().unwrap().to_owned();
    s.turn(&session, "last turn").await;

    // A last rotation marks the end of the event stream.
    let last = cli_document(
        &s.remember(&secret("oat01", 10)),
        &s.remember(&secret("ort01", 10)),
        1_900_000_010_000,
    );
    rewrite_in_place(&file, last.to_string().as_bytes());
    wait_for("the last rotation on /events", WAIT, || {
        let seen = events.lock().unwrap().contains(r#""expiresAt":1900000010000"#);
        async move { seen.then_some(()) }
    })
    .await;
    collector.abort();
    for path in ["/status", "/history", "/components/agent/logs"] {
        assert_eq!(s.get(path).await.0, 200, "{path}");
    }
    let (status, health) = s.send("GET", "/health", None, None).await;
    assert_eq!(status, 200, "{health}");

    // The one place tokens may appear: the answer of /credentials/read (which shows the search works).
    let (status, read) = s.call("POST", "/credentials/read", json!({})).await;
    assert_eq!(status, 200);
    assert_eq!(read["accessToken"], secret("oat01", 10));
    let mut places: Vec<(String, String)> = vec![
        ("the daemon's log".to_owned(), s.daemon.logs()),
        ("/events".to_owned(), events.lock().unwrap().clone()),
    ];
    for (what, status, body) in s.seen.lock().unwrap().iter() {
        if what != "POST /credentials/read" || *status != 200 {
            places.push((format!("{what} ({status})"), body.clone()));
        }
    }
    let events = &places[1].1;
    for kind in [
        "credentials.written",
        "credentials.rotated",
        "turn.update",
        "turn.permission",
        "turn.finished",
    ] {
        assert!(
            events.contains(&format!("event: {kind}")),
            "{kind} was published during the run"
        );
    }
    assert!(places[0].1.contains("credentials written") && places[0].1.contains("rotated"));
    let secrets = s.secrets.lock().unwrap().clone();
    assert!(secrets.contains(&bearer) && secrets.len() > 20);
    let mut leaks = Vec::new();
    for (place, text) in &places {
        for secret in &secrets {
            if text.contains(secret.as_str()) {
                leaks.push(format!("{secret} in {place}"));
            }
        }
    }
    assert!(leaks.is_empty(), "secrets leaked: {leaks:#?}");
    println!(
        "secrets: {} secrets searched for in {} daemon log lines, {} events and {} response bodies: none found",
        secrets.len(),
        places[0].1.lines().count(),
        events.matches("\nevent: ").count() + usize::from(events.starts_with("event: ")),
        places.len() - 2
    );
}
