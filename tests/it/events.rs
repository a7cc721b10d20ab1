use std::time::Duration;

use serde_json::json;

use crate::helper::{Daemon, Options, cli_document, rewrite_in_place, wait_for};

const WAIT: Duration = Duration::from_secs(3);

#[tokio::test]
async fn rotation_in_place_is_a_credentials_rotated_event_replayable_with_last_event_id() {
    let daemon = Daemon::start().await;
    let mut events = daemon.events(None).await;
    let (status, _) = daemon
        .write_credentials(
            &json!({"accessToken": "a1", "refreshToken": "r1", "expiresAt": 1_000, "scopes": ["user:inference"]}),
        )
        .await;
    assert_eq!(status, 200);
    let written = events.next_named("credentials.written", WAIT).await;
    assert_eq!(written.data["expiresAt"], 1_000);
    assert_eq!(written.data["type"], "credentials.written");

    rewrite_in_place(
        &daemon.credentials_file(),
        cli_document("a2", "r2", 2_000).to_string().as_bytes(),
    );
    let rotated = events.next_named("credentials.rotated", WAIT).await;
    assert_eq!(rotated.data["expiresAt"], 2_000);
    assert_eq!(rotated.data["previousExpiresAt"], 1_000);
    let rotated_id = rotated.id.expect("events carry ids");
    assert!(rotated_id > written.id.unwrap());

    // The daemon's own write must not also be reported as a rotation.
    let next = events.next(Duration::from_millis(300)).await;
    assert!(next.is_none(), "unexpected event after the rotation: {next:?}");

    // A client that saw only the written event reconnects and gets the rotation it missed.
    let mut resumed = daemon.events(written.id).await;
    let replayed = resumed.next(WAIT).await.expect("replayed event");
    assert_eq!(replayed.event, "credentials.rotated");
    assert_eq!(replayed.id, Some(rotated_id));
    assert_eq!(replayed.data, rotated.data);
}

#[tokio::test]
async fn last_event_id_as_query_parameter_also_resumes() {
    let daemon = Daemon::start().await;
    let mut events = daemon.events(None).await;
    daemon
        .write_credentials(
            &json!({"accessToken": "a", "refreshToken": "r", "expiresAt": 1, "scopes": ["user:inference"]}),
        )
        .await;
    let first = events.next_named("credentials.written", WAIT).await;
    daemon
        .write_credentials(
            &json!({"accessToken": "b", "refreshToken": "s", "expiresAt": 2, "scopes": ["user:inference"]}),
        )
        .await;
    let second = events.next_named("credentials.written", WAIT).await;

    let response = daemon
        .client
        .get(daemon.url(&format!("/events?lastEventId={}", first.id.unwrap())))
        .bearer_auth(&daemon.token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let mut body = response.bytes_stream();
    let mut text = String::new();
    while !text.contains("\n\n") {
        let chunk = tokio::time::timeout(WAIT, futures_util::StreamExt::next(&mut body))
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        text.push_str(&String::from_utf8_lossy(&chunk));
    }
    assert!(text.contains(&format!("id: {}", second.id.unwrap())), "{text}");
}

#[tokio::test]
async fn removing_the_file_or_blanking_its_tokens_is_credentials_cleared() {
    let daemon = Daemon::start().await;
    let mut events = daemon.events(None).await;
    std::fs::create_dir_all(&daemon.config_dir).unwrap();
    std::fs::write(daemon.credentials_file(), cli_document("a", "r", 10).to_string()).unwrap();
    // The file appearing (written by someone else) is a rotation from nothing.
    let appeared = events.next_named("credentials.rotated", WAIT).await;
    assert_eq!(appeared.data["expiresAt"], 10);
    assert!(appeared.data["previousExpiresAt"].is_null());

    // A failed refresh can blank the tokens in place.
    rewrite_in_place(
        &daemon.credentials_file(),
        cli_document("", "", 10).to_string().as_bytes(),
    );
    let cleared = events.next_named("credentials.cleared", WAIT).await;
    assert_eq!(cleared.data["reason"], "tokens-empty");
    let health: serde_json::Value = daemon.get_public("/health").await.json().await.unwrap();
    assert_eq!(health["credentials"], json!({"present": false, "expiresAt": null}));

    rewrite_in_place(
        &daemon.credentials_file(),
        cli_document("a2", "r2", 20).to_string().as_bytes(),
    );
    events.next_named("credentials.rotated", WAIT).await;
    std::fs::remove_file(daemon.credentials_file()).unwrap();
    let cleared = events.next_named("credentials.cleared", WAIT).await;
    assert_eq!(cleared.data["reason"], "removed");
    assert_eq!(cleared.data["previousExpiresAt"], 20);
}

#[tokio::test]
async fn rotation_is_seen_when_the_config_dir_is_created_after_start() {
    let home = tempfile::tempdir().unwrap();
    let config_dir = home.path().join("late/.claude");
    let daemon = Daemon::start_with(Options {
        config_dir: Some(config_dir.clone()),
        ..Options::default()
    })
    .await;
    let mut events = daemon.events(None).await;
    std::fs::create_dir_all(&config_dir).unwrap();
    rewrite_in_place(
        &config_dir.join(".credentials.json"),
        cli_document("a", "r", 33).to_string().as_bytes(),
    );
    let rotated = events.next_named("credentials.rotated", WAIT).await;
    assert_eq!(rotated.data["expiresAt"], 33);
}

#[tokio::test]
async fn health_reports_credentials_presence_and_expiry_without_secrets() {
    let daemon = Daemon::start().await;
    std::fs::create_dir_all(&daemon.config_dir).unwrap();
    rewrite_in_place(
        &daemon.credentials_file(),
        cli_document("health-access", "health-refresh", 4_242)
            .to_string()
            .as_bytes(),
    );
    let client = daemon.client.clone();
    let url = daemon.url("/health");
    let health = wait_for("health to show the credentials", WAIT, || {
        let request = client.get(&url);
        async move {
            let body: serde_json::Value = request.send().await.ok()?.json().await.ok()?;
            (body["credentials"]["present"] == true).then_some(body)
        }
    })
    .await;
    assert_eq!(health["credentials"]["expiresAt"], 4_242);
    assert!(!health.to_string().contains("health-access"));
    assert!(
        !health.to_string().contains(&daemon.config_dir.display().to_string()),
        "no paths in /health"
    );
}
