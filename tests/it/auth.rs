use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use serde_json::Value;

use crate::helper::{Auth, Daemon, Options, TOKEN, wait_for};

async fn problem(response: reqwest::Response) -> (u16, Option<String>, String, Value) {
    let status = response.status().as_u16();
    let www = response
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_owned());
    let content_type = response.headers()["content-type"].to_str().unwrap().to_owned();
    (status, www, content_type, response.json().await.unwrap())
}

fn write_token(path: &std::path::Path, token: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    // Written the way a careful provisioner does: private from the first byte, then renamed into place.
    let temp = path.with_extension("tmp");
    std::fs::write(&temp, token).unwrap();
    std::fs::set_permissions(&temp, std::fs::Permissions::from_mode(0o600)).unwrap();
    std::fs::rename(&temp, path).unwrap();
}

#[tokio::test]
async fn missing_token_is_401_with_www_authenticate() {
    let daemon = Daemon::start().await;
    let response = daemon
        .client
        .post(daemon.url("/credentials/read"))
        .send()
        .await
        .unwrap();
    let (status, www, content_type, body) = problem(response).await;
    assert_eq!(status, 401);
    assert_eq!(www.as_deref(), Some("Bearer"));
    assert_eq!(content_type, "application/problem+json");
    assert!(body["type"].as_str().unwrap().ends_with("/unauthorized"));
}

#[tokio::test]
async fn wrong_token_is_401_whether_off_by_one_byte_or_entirely() {
    let daemon = Daemon::start().await;
    let mut off_by_one = TOKEN.to_owned();
    off_by_one.pop();
    off_by_one.push('X');
    let mut bodies = Vec::new();
    for token in [off_by_one.as_str(), "completely-different", "", "Basic abc"] {
        let response = daemon
            .client
            .get(daemon.url("/status"))
            .header("authorization", format!("Bearer {token}"))
            .send()
            .await
            .unwrap();
        let (status, www, _, body) = problem(response).await;
        assert_eq!(status, 401, "token {token:?}");
        assert_eq!(www.as_deref(), Some("Bearer"));
        bodies.push(body);
    }
    assert!(
        bodies.windows(2).all(|w| w[0] == w[1]),
        "every rejection must look the same: {bodies:?}"
    );
    let ok = daemon
        .client
        .get(daemon.url("/status"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
}

#[tokio::test]
async fn health_and_openapi_need_no_token() {
    let daemon = Daemon::start().await;
    for path in ["/health", "/openapi.json"] {
        let response = daemon.client.get(daemon.url(path)).send().await.unwrap();
        assert_eq!(response.status(), 200, "{path}");
    }
}

#[tokio::test]
async fn without_a_token_file_protected_endpoints_are_503_not_provisioned() {
    let home = tempfile::tempdir().unwrap();
    let token_file = home.path().join("run/acp-bridge/token");
    let daemon = Daemon::start_with(Options {
        auth: Auth::TokenFile(token_file),
        ..Options::default()
    })
    .await;
    for (method, path) in [
        ("POST", "/credentials/read"),
        ("POST", "/credentials/write"),
        ("GET", "/status"),
        ("GET", "/events"),
    ] {
        let request = daemon
            .client
            .request(method.parse().unwrap(), daemon.url(path))
            .bearer_auth(TOKEN);
        let (status, _, content_type, body) = problem(request.send().await.unwrap()).await;
        assert_eq!(status, 503, "{method} {path}");
        assert_eq!(content_type, "application/problem+json");
        assert!(body["type"].as_str().unwrap().ends_with("/not-provisioned"), "{body}");
    }
    assert_eq!(daemon.get_public("/health").await.status(), 200);
}

#[tokio::test]
async fn token_file_appearing_later_provisions_the_daemon_without_restart() {
    let home = tempfile::tempdir().unwrap();
    // Not even the directory exists at start, as on a freshly snapshotted VM.
    let token_file = home.path().join("run/acp-bridge/token");
    let daemon = Daemon::start_with(Options {
        auth: Auth::TokenFile(token_file.clone()),
        ..Options::default()
    })
    .await;
    assert_eq!(daemon.get("/status").await.status(), 503);

    write_token(&token_file, "first-token-value\n");
    let client = daemon.client.clone();
    let url = daemon.url("/status");
    wait_for("the token file to be picked up", Duration::from_secs(5), || {
        let request = client.get(&url).bearer_auth("first-token-value");
        async move { (request.send().await.ok()?.status() == 200).then_some(()) }
    })
    .await;
    let wrong = daemon
        .client
        .get(daemon.url("/status"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
    assert!(!daemon.logs().contains("first-token-value"));
}

#[tokio::test]
async fn token_file_changed_replaces_the_old_token() {
    let home = tempfile::tempdir().unwrap();
    let token_file = home.path().join("token");
    write_token(&token_file, "old-token-value");
    let daemon = Daemon::start_with(Options {
        auth: Auth::TokenFile(token_file.clone()),
        ..Options::default()
    })
    .await;
    let status_with = |token: &'static str| {
        let request = daemon.client.get(daemon.url("/status")).bearer_auth(token);
        async move { request.send().await.unwrap().status().as_u16() }
    };
    assert_eq!(status_with("old-token-value").await, 200);

    // Rewritten in place this time (same inode), the way `echo new > token` would.
    std::fs::write(&token_file, "new-token-value").unwrap();
    let client = daemon.client.clone();
    let url = daemon.url("/status");
    wait_for("the new token to be accepted", Duration::from_secs(5), || {
        let request = client.get(&url).bearer_auth("new-token-value");
        async move { (request.send().await.ok()?.status() == 200).then_some(()) }
    })
    .await;
    assert_eq!(status_with("old-token-value").await, 401);
    let logs = daemon.logs();
    assert!(!logs.contains("old-token-value") && !logs.contains("new-token-value"));
}

#[tokio::test]
async fn token_file_readable_by_others_is_refused_with_a_clear_log() {
    let home = tempfile::tempdir().unwrap();
    let token_file = home.path().join("token");
    std::fs::write(&token_file, "shared-token-value").unwrap();
    std::fs::set_permissions(&token_file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let daemon = Daemon::start_with(Options {
        auth: Auth::TokenFile(token_file.clone()),
        ..Options::default()
    })
    .await;
    let response = daemon
        .client
        .get(daemon.url("/status"))
        .bearer_auth("shared-token-value")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 503);
    daemon
        .wait_for_log("readable or writable by other users", Duration::from_secs(5))
        .await;

    std::fs::set_permissions(&token_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let client = daemon.client.clone();
    let url = daemon.url("/status");
    wait_for("the fixed token file to be accepted", Duration::from_secs(5), || {
        let request = client.get(&url).bearer_auth("shared-token-value");
        async move { (request.send().await.ok()?.status() == 200).then_some(()) }
    })
    .await;
}

#[tokio::test]
async fn insecure_no_auth_opens_everything_and_warns() {
    let daemon = Daemon::start_with(Options {
        auth: Auth::None,
        ..Options::default()
    })
    .await;
    let response = daemon.client.get(daemon.url("/status")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    daemon.wait_for_log("insecure-no-auth", Duration::from_secs(5)).await;
}
