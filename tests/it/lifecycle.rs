use std::os::unix::net::UnixDatagram;
use std::time::Duration;

use serde_json::{Value, json};

use crate::helper::{Daemon, Options, TOKEN, cli_document, rewrite_in_place};

#[tokio::test]
async fn sigterm_exits_0_and_ends_open_event_streams() {
    let mut daemon = Daemon::start().await;
    let mut events = daemon.events(None).await;
    daemon.sigterm();
    assert!(
        events.ended(Duration::from_secs(5)).await,
        "the SSE stream must end on shutdown"
    );
    let status = daemon.wait_exit(Duration::from_secs(10)).await;
    assert_eq!(status.code(), Some(0), "{status:?}");
    assert!(daemon.logs().contains("stopped"));
}

/// The signal handlers are in place before the port is bound: a SIGTERM sent as soon as the daemon says it listens
/// stops it cleanly (exit 0, its shutdown logged) rather than killing it with the default action. Repeated, since the
/// window it guards against was a few microseconds wide.
#[tokio::test]
async fn sigterm_right_after_listening_still_shuts_down_cleanly() {
    for round in 0..20 {
        let mut daemon = Daemon::start().await;
        daemon.sigterm();
        let status = daemon.wait_exit(Duration::from_secs(10)).await;
        assert_eq!(status.code(), Some(0), "round {round}: {status:?}");
        assert!(daemon.logs().contains("\"stopped\""), "round {round}");
    }
}

#[tokio::test]
async fn version_flag_prints_the_crate_version() {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_acp-bridge"))
        .arg("--version")
        .output()
        .unwrap();
    assert!(output.status.success());
    assert_eq!(
        String::from_utf8_lossy(&output.stdout).trim(),
        format!("acp-bridge {}", env!("CARGO_PKG_VERSION"))
    );
}

#[tokio::test]
async fn two_daemons_run_side_by_side_on_port_zero() {
    let (a, b) = tokio::join!(Daemon::start(), Daemon::start());
    assert_ne!(a.base, b.base);
    for daemon in [&a, &b] {
        assert_eq!(daemon.get_public("/health").await.status(), 200);
    }
}

#[tokio::test]
async fn under_systemd_it_sends_ready_and_feeds_the_watchdog() {
    let dir = tempfile::tempdir().unwrap();
    let socket_path = dir.path().join("notify.sock");
    let socket = UnixDatagram::bind(&socket_path).unwrap();
    socket.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let env = vec![
        ("NOTIFY_SOCKET".to_owned(), socket_path.display().to_string()),
        ("WATCHDOG_USEC".to_owned(), "200000".to_owned()),
    ];
    let daemon = Daemon::start_with(Options {
        env,
        ..Options::default()
    })
    .await;
    let messages = tokio::task::spawn_blocking(move || {
        let mut seen = Vec::new();
        let mut buffer = [0u8; 256];
        while seen.iter().filter(|m: &&String| m.as_str() == "WATCHDOG=1").count() < 2 {
            let n = socket.recv(&mut buffer).expect("a notification within 10 s");
            seen.push(String::from_utf8_lossy(&buffer[..n]).into_owned());
        }
        seen
    })
    .await
    .unwrap();
    assert_eq!(messages[0], "READY=1", "{messages:?}");
    drop(daemon);
}

/// Runs a session touching every feature, then greps every log line and every body for every secret.
#[tokio::test]
async fn no_secret_appears_in_logs_health_status_events_or_errors() {
    let daemon = Daemon::start().await;
    let secrets = [
        "sk-ant-oat01-SECRET-ACCESS",
        "sk-ant-ort01-SECRET-REFRESH",
        "sk-ant-oat01-ROTATED",
        "sk-ant-ort01-ROTATED",
        TOKEN,
    ];
    let mut seen_bodies = Vec::new();
    let mut events = daemon.events(None).await;

    let good = json!({"accessToken": secrets[0], "refreshToken": secrets[1], "expiresAt": 5_000, "scopes": ["user:inference"]});
    let (_, body) = daemon.write_credentials(&good).await;
    seen_bodies.push(body.to_string());
    let stale = json!({"accessToken": secrets[0], "refreshToken": secrets[1], "expiresAt": 4_000, "scopes": ["user:inference"]});
    let (status, body) = daemon.write_credentials(&stale).await;
    assert_eq!(status, 409);
    seen_bodies.push(body.to_string());
    let invalid =
        json!({"accessToken": secrets[0], "refreshToken": 12, "expiresAt": 5_000, "scopes": ["user:inference"]});
    let (_, body) = daemon.write_credentials(&invalid).await;
    seen_bodies.push(body.to_string());
    let wrong_auth = daemon
        .client
        .get(daemon.url("/status"))
        .bearer_auth(format!("{TOKEN}x"))
        .send()
        .await
        .unwrap();
    seen_bodies.push(wrong_auth.text().await.unwrap());

    rewrite_in_place(
        &daemon.credentials_file(),
        cli_document(secrets[2], secrets[3], 6_000).to_string().as_bytes(),
    );
    events.next_named("credentials.rotated", Duration::from_secs(3)).await;
    std::fs::write(
        daemon.credentials_file(),
        format!(r#"{{"claudeAiOauth":{{"accessToken":"{}""#, secrets[2]),
    )
    .unwrap();
    let (status, body) = daemon.read_credentials().await;
    assert_eq!(status, 422);
    seen_bodies.push(body.to_string());
    std::fs::remove_file(daemon.credentials_file()).unwrap();
    events.next_named("credentials.cleared", Duration::from_secs(3)).await;

    for path in ["/health", "/status"] {
        seen_bodies.push(daemon.get(path).await.text().await.unwrap());
    }
    let mut streamed = Vec::new();
    let mut replay = daemon.events(Some(0)).await;
    while let Some(event) = replay.next(Duration::from_millis(300)).await {
        streamed.push(event.data.to_string());
    }
    assert!(
        streamed.len() >= 3,
        "the replay holds the session's events: {streamed:?}"
    );

    let everything = format!("{}\n{}\n{}", daemon.logs(), seen_bodies.join("\n"), streamed.join("\n"));
    for secret in secrets {
        assert!(!everything.contains(secret), "secret {secret:.12}… leaked");
    }
    let debug_lines = daemon
        .logs()
        .lines()
        .filter(|l| l.contains("DEBUG") || l.contains("INFO"))
        .count();
    assert!(debug_lines > 3, "the logs were really captured");
    let _: Vec<Value> = daemon
        .logs()
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON log line"))
        .collect();
}
