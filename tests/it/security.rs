//! The public port: every protected route refuses strangers the same way, request heads and bodies are bounded
//! in size and time, and event subscribers are capped and can never hold anyone else up.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::api::{openapi, operations};
use crate::helper::{Auth, Daemon, EventStream, Options, TOKEN, fake_agent, wait_for};

/// A concrete path for a templated one (`/session/{id}/prompt` → `/session/x/prompt`).
fn concrete(path: &str) -> String {
    path.split('/')
        .map(|segment| if segment.starts_with('{') { "x" } else { segment })
        .collect::<Vec<_>>()
        .join("/")
}

/// The status, content type and JSON body of an answer, which must forbid MIME sniffing like every answer does.
async fn status_and_body(response: reqwest::Response) -> (u16, String, Value) {
    assert_eq!(
        response.headers().get("x-content-type-options").map(|v| v.as_bytes()),
        Some(&b"nosniff"[..]),
        "{}",
        response.url()
    );
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (status, content_type, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn every_protected_route_refuses_a_missing_or_wrong_token_alike_and_is_503_until_provisioned() {
    let daemon = Daemon::start().await;
    let document = openapi(&daemon).await;
    let routes = operations(&document);
    assert!(routes.iter().filter(|(_, _, protected)| *protected).count() >= 14);
    let mut off_by_one = TOKEN.to_owned();
    off_by_one.pop();
    off_by_one.push('X');
    for (method, path, protected) in &routes {
        let url = daemon.url(&concrete(path));
        if !protected {
            let response = daemon
                .client
                .request(method.parse().unwrap(), &url)
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 200, "{method} {path} is public");
            assert_eq!(response.headers()["x-content-type-options"], "nosniff");
            continue;
        }
        let mut bodies = Vec::new();
        for token in [None, Some(off_by_one.as_str()), Some("entirely-wrong")] {
            let mut request = daemon.client.request(method.parse().unwrap(), &url);
            if let Some(token) = token {
                request = request.bearer_auth(token);
            }
            let (status, content_type, body) = status_and_body(request.send().await.unwrap()).await;
            assert_eq!(status, 401, "{method} {path} with {token:?}");
            assert_eq!(content_type, "application/problem+json");
            bodies.push(body);
        }
        assert_eq!(
            bodies[1], bodies[2],
            "{method} {path}: a near miss looks like any wrong token"
        );
        assert_eq!(bodies[0]["status"], 401);
    }

    let home = tempfile::tempdir().unwrap();
    let unprovisioned = Daemon::start_with(Options {
        auth: Auth::TokenFile(home.path().join("no/token")),
        ..Options::default()
    })
    .await;
    for (method, path, protected) in routes.iter().filter(|(_, _, protected)| *protected) {
        let request = unprovisioned
            .client
            .request(method.parse().unwrap(), unprovisioned.url(&concrete(path)))
            .bearer_auth(TOKEN);
        let (status, content_type, body) = status_and_body(request.send().await.unwrap()).await;
        assert_eq!(
            status, 503,
            "{method} {path} before provisioning (protected: {protected})"
        );
        assert_eq!(content_type, "application/problem+json");
        assert!(body["type"].as_str().unwrap().ends_with("/not-provisioned"), "{body}");
    }
}

/// Sends raw bytes and returns what the server answered until it closed the connection (or `within` passed).
async fn raw_exchange(daemon: &Daemon, request: &[u8], within: Duration) -> (String, Duration, bool) {
    let addr = daemon.base.trim_start_matches("http://");
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let started = Instant::now();
    stream.write_all(request).await.unwrap();
    let mut answer = Vec::new();
    let closed = matches!(
        tokio::time::timeout(within, stream.read_to_end(&mut answer)).await,
        Ok(Ok(_)) | Ok(Err(_))
    );
    (String::from_utf8_lossy(&answer).into_owned(), started.elapsed(), closed)
}

#[tokio::test]
async fn oversized_request_heads_are_431() {
    let daemon = Daemon::start().await;
    let big = format!(
        "GET /health HTTP/1.1\r\nhost: x\r\nx-filler: {}\r\n\r\n",
        "a".repeat(40 * 1024)
    );
    let (answer, _, closed) = raw_exchange(&daemon, big.as_bytes(), Duration::from_secs(5)).await;
    assert!(answer.starts_with("HTTP/1.1 431"), "{answer:.80}");
    assert!(closed);

    let many: String = (0..100).map(|i| format!("x-h{i}: v\r\n")).collect();
    let request = format!("GET /health HTTP/1.1\r\nhost: x\r\n{many}\r\n");
    let (answer, _, _) = raw_exchange(&daemon, request.as_bytes(), Duration::from_secs(5)).await;
    assert!(answer.starts_with("HTTP/1.1 431"), "{answer:.80}");

    // Within the limits, the same request is served.
    let request = "GET /health HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n";
    let (answer, _, _) = raw_exchange(&daemon, request.as_bytes(), Duration::from_secs(5)).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer:.80}");
}

async fn with_short_timeouts() -> Daemon {
    Daemon::start_with(Options {
        args: vec!["--head-timeout".into(), "1".into(), "--body-timeout".into(), "1".into()],
        ..Options::default()
    })
    .await
}

#[tokio::test]
async fn a_client_that_never_finishes_its_request_head_is_dropped() {
    let daemon = with_short_timeouts().await;
    let partial = b"POST /credentials/read HTTP/1.1\r\nhost: x\r\nauthorization: Bea";
    let (answer, took, closed) = raw_exchange(&daemon, partial, Duration::from_secs(10)).await;
    assert!(closed, "still connected after 10 s");
    assert!(
        took >= Duration::from_millis(900),
        "dropped after the head timeout, not before: {took:?}"
    );
    assert!(!answer.contains("200"), "{answer}");

    // An idle keep-alive connection is closed the same way; a busy daemon keeps serving others meanwhile.
    let addr = daemon.base.trim_start_matches("http://");
    let mut idle = TcpStream::connect(addr).await.unwrap();
    assert_eq!(daemon.get_public("/health").await.status(), 200);
    let mut buffer = [0u8; 16];
    let read = tokio::time::timeout(Duration::from_secs(10), idle.read(&mut buffer)).await;
    assert!(
        matches!(read, Ok(Ok(0)) | Ok(Err(_))),
        "idle connection closed: {read:?}"
    );
}

#[tokio::test]
async fn a_body_that_never_arrives_is_408_and_nothing_is_written() {
    let daemon = with_short_timeouts().await;
    let head = format!(
        "POST /credentials/write HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {TOKEN}\r\n\
         content-type: application/json\r\ncontent-length: 500\r\n\r\n{{\"accessToken\": \"sk-ant-oat01-"
    );
    let (answer, took, _) = raw_exchange(&daemon, head.as_bytes(), Duration::from_secs(10)).await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(
        answer.contains("application/problem+json") && answer.contains("/request-timeout"),
        "{answer}"
    );
    assert!(!answer.contains("sk-ant"), "the partial body is not echoed");
    assert!(took >= Duration::from_millis(900), "{took:?}");
    assert!(!daemon.credentials_file().exists(), "nothing was written");
}

/// Reads from `stream` until a whole response head has arrived; `None` if none did within `within`.
async fn response_head(stream: &mut TcpStream, within: Duration) -> Option<String> {
    let mut answer = Vec::new();
    let deadline = tokio::time::Instant::now() + within;
    while !answer.windows(4).any(|w| w == b"\r\n\r\n") {
        let mut chunk = [0u8; 4096];
        match tokio::time::timeout_at(deadline, stream.read(&mut chunk)).await {
            Ok(Ok(n)) if n > 0 => answer.extend_from_slice(&chunk[..n]),
            _ => return None,
        }
    }
    Some(String::from_utf8_lossy(&answer).into_owned())
}

#[tokio::test]
async fn past_the_connection_limit_new_connections_wait_until_one_closes() {
    let daemon = Daemon::start_with(Options {
        args: vec!["--max-connections".into(), "2".into()],
        ..Options::default()
    })
    .await;
    let addr = daemon.base.trim_start_matches("http://").to_owned();
    let request = b"GET /health HTTP/1.1\r\nhost: x\r\n\r\n";
    let mut open = Vec::new();
    for _ in 0..2 {
        let mut stream = TcpStream::connect(&addr).await.unwrap();
        stream.write_all(request).await.unwrap();
        let head = response_head(&mut stream, Duration::from_secs(5)).await;
        assert!(head.unwrap_or_default().starts_with("HTTP/1.1 200"));
        open.push(stream); // kept alive, holding its slot
    }

    // The third connection is queued by the kernel, not served.
    let mut third = TcpStream::connect(&addr).await.unwrap();
    third.write_all(request).await.unwrap();
    assert_eq!(
        response_head(&mut third, Duration::from_secs(1)).await,
        None,
        "served past the limit"
    );
    daemon
        .wait_for_log("connection limit reached", Duration::from_secs(5))
        .await;

    // One closes: the queued connection is served at once.
    drop(open.pop());
    let head = response_head(&mut third, Duration::from_secs(5)).await;
    assert!(
        head.as_deref().unwrap_or_default().starts_with("HTTP/1.1 200"),
        "{head:?}"
    );
}

#[tokio::test]
async fn event_subscribers_are_capped_with_a_clear_503_and_a_freed_slot_is_reusable() {
    let daemon = Daemon::start().await;
    let mut streams = Vec::new();
    for _ in 0..64 {
        streams.push(daemon.events(None).await);
    }
    let response = daemon.get("/events").await;
    let (status, content_type, body) = status_and_body(response).await;
    assert_eq!((status, content_type.as_str()), (503, "application/problem+json"));
    assert!(
        body["type"].as_str().unwrap().ends_with("/too-many-subscribers"),
        "{body}"
    );
    assert!(body["detail"].as_str().unwrap().contains("64"));
    streams.pop();
    wait_for("a freed subscriber slot", Duration::from_secs(5), || async {
        (daemon.get("/events").await.status() == 200).then_some(())
    })
    .await;
}

#[tokio::test]
async fn a_stalled_event_subscriber_holds_up_neither_the_turn_nor_other_subscribers_and_can_resume() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start_with(Options {
        app_dir: Some(dir.path().join("app")),
        args: vec!["--agent-command".into(), fake_agent().display().to_string()],
        log_level: "info",
        ..Options::default()
    })
    .await;
    // Connected, but never read: its socket buffers fill, then its place in the event buffer.
    let stalled = daemon.get("/events").await;
    assert_eq!(stalled.status(), 200);

    let session = daemon.post("/session", &json!({"apiKey": "sk-ant-api03-test"})).await;
    let session: Value = session.json().await.unwrap();
    let prompt = format!("/session/{}/prompt", session["sessionId"].as_str().unwrap());
    let response = daemon.post(&prompt, &json!({"prompt": "flood 60000"})).await;
    let mut turn = EventStream::from_response(response);
    let done = turn.next_named("done", Duration::from_secs(60)).await;
    assert_eq!(done.data["stopReason"], "end_turn", "the turn ran to its end");

    // Other subscribers get events at once.
    let mut reader = daemon.events(None).await;
    let document = crate::helper::cli_document("a1", "r1", 4_102_444_800_000);
    assert_eq!(daemon.write_credentials(&document).await.0, 200);
    let written = reader.next_named("credentials.written", Duration::from_secs(5)).await;

    // The stalled subscriber fell behind and was cut off: its stream ends without the newest events.
    let mut stalled = EventStream::from_response(stalled);
    let mut last_seen = None;
    while let Some(event) = stalled.next(Duration::from_secs(10)).await {
        assert_ne!(
            event.event, "credentials.written",
            "a subscriber that far behind is cut off"
        );
        last_seen = event.id.or(last_seen);
    }
    let last_seen = last_seen.expect("it got the first events before it fell behind");
    // It resumes where it stopped; what fell out of the ring is announced as a gap.
    let mut resumed = daemon.events(Some(last_seen)).await;
    let first = resumed.next(Duration::from_secs(5)).await.expect("a resumed stream");
    assert!(first.event == "events.gap" || first.id > Some(last_seen), "{first:?}");
    resumed.next_named("turn.finished", Duration::from_secs(10)).await;
    let again = resumed.next_named("credentials.written", Duration::from_secs(10)).await;
    assert_eq!(again.id, written.id);
}

#[tokio::test]
async fn a_prompt_client_that_stops_reading_is_cut_off_and_the_turn_still_ends_and_commits() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start_with(Options {
        app_dir: Some(dir.path().join("app")),
        // A client that never reads holds its connection open: shutdown closes it after the grace.
        args: vec![
            "--agent-command".into(),
            fake_agent().display().to_string(),
            "--shutdown-grace".into(),
            "1".into(),
        ],
        log_level: "info",
        ..Options::default()
    })
    .await;
    let session = daemon.post("/session", &json!({"apiKey": "sk-ant-api03-test"})).await;
    let session: Value = session.json().await.unwrap();
    let prompt = format!("/session/{}/prompt", session["sessionId"].as_str().unwrap());
    // Far more than the socket and the turn's buffer hold; the response is never read.
    let unread = daemon
        .post(&prompt, &json!({"prompt": "flood 60000 write:src/flood.txt=f"}))
        .await;
    assert_eq!(unread.status(), 200);
    let history = wait_for("the turn's commit", Duration::from_secs(60), || async {
        let history: Value = daemon.get("/history").await.json().await.ok()?;
        let newest = history["commits"].get(0)?.clone();
        newest["message"].as_str()?.contains("flood 60000").then_some(newest)
    })
    .await;
    assert_eq!(history["filesChanged"], json!(["src/flood.txt"]), "{history}");
    daemon.wait_for_log("stopped reading", Duration::from_secs(5)).await;
    drop(unread);
}
