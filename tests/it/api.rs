use serde_json::{Value, json};

use crate::helper::{Auth, Daemon, Options, cli_document};

pub(crate) async fn openapi(daemon: &Daemon) -> Value {
    let response = daemon.get_public("/openapi.json").await;
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

pub(crate) fn operations(document: &Value) -> Vec<(String, String, bool)> {
    let mut found = Vec::new();
    for (path, item) in document["paths"].as_object().expect("paths") {
        for (method, operation) in item.as_object().unwrap() {
            let protected = operation.get("security").is_some();
            found.push((method.to_uppercase(), path.clone(), protected));
        }
    }
    found
}

#[tokio::test]
async fn openapi_document_is_3_1_and_lists_every_endpoint() {
    let daemon = Daemon::start().await;
    let document = openapi(&daemon).await;
    assert!(document["openapi"].as_str().unwrap().starts_with("3.1"));
    assert_eq!(document["info"]["version"], env!("CARGO_PKG_VERSION"));
    let mut listed: Vec<(String, String)> = operations(&document).into_iter().map(|(m, p, _)| (m, p)).collect();
    listed.sort();
    let expected = [
        ("GET", "/events"),
        ("GET", "/health"),
        ("GET", "/openapi.json"),
        ("GET", "/status"),
        ("GET", "/components/{name}/logs"),
        ("POST", "/components/{name}/restart"),
        ("GET", "/preview/screenshot"),
        ("POST", "/session"),
        ("GET", "/history"),
        ("POST", "/history/undo"),
        ("POST", "/history/redo"),
        ("POST", "/history/checkout"),
        ("POST", "/session/{id}/prompt"),
        ("POST", "/session/{id}/cancel"),
        ("POST", "/credentials/read"),
        ("POST", "/credentials/write"),
    ];
    let mut expected: Vec<(String, String)> = expected.iter().map(|(m, p)| (m.to_string(), p.to_string())).collect();
    expected.sort();
    assert_eq!(listed, expected);
}

/// The write body's `scopes` must contain `user:inference` anywhere: the schema says so with `contains` (which utoipa
/// cannot express and the document adds), and the API agrees on both sides of it.
#[tokio::test]
async fn the_write_schema_states_the_required_scope_and_the_api_agrees() {
    let daemon = Daemon::start().await;
    let document = openapi(&daemon).await;
    let scopes = &document["components"]["schemas"]["CredentialsFields"]["properties"]["scopes"];
    assert_eq!(scopes["contains"], json!({"const": "user:inference"}), "{scopes}");

    let body = |scopes: Value| json!({"accessToken": "a", "refreshToken": "r", "expiresAt": 5, "scopes": scopes});
    let (status, problem) = daemon.write_credentials(&body(json!(["user:profile"]))).await;
    assert_eq!(status, 400, "{problem}");
    assert_eq!(problem["field"], "scopes", "{problem}");
    let (status, written) = daemon
        .write_credentials(&body(json!(["user:profile", "user:inference"])))
        .await;
    assert_eq!(status, 200, "{written}");
}

/// docs/api.md, "Caching": what may be stored by a cache, and what must not.
#[tokio::test]
async fn cache_control_is_as_documented() {
    let daemon = Daemon::start().await;
    let cache_control = |response: &reqwest::Response| {
        response
            .headers()
            .get("cache-control")
            .map(|v| v.to_str().unwrap().to_owned())
    };
    let written = daemon
        .post("/credentials/write", &cli_document("a1", "r1", 5_000))
        .await;
    assert_eq!(written.status(), 200);
    for (what, response) in [
        ("write", written),
        ("openapi", daemon.get_public("/openapi.json").await),
        ("undo", daemon.post("/history/undo", &json!({})).await),
        ("health", daemon.get_public("/health").await),
        ("status", daemon.get("/status").await),
        ("read", daemon.post("/credentials/read", &json!({})).await),
        ("history", daemon.get("/history").await),
        ("logs", daemon.get("/components/xvfb/logs").await),
        ("screenshot", daemon.get("/preview/screenshot").await),
        ("a problem", daemon.get("/nope").await),
    ] {
        assert_eq!(cache_control(&response).as_deref(), Some("no-store"), "{what}");
    }
    let events = daemon.get("/events").await;
    assert_eq!(cache_control(&events).as_deref(), Some("no-cache"), "events");
}

#[tokio::test]
async fn every_documented_route_exists_and_protected_ones_demand_the_token() {
    let daemon = Daemon::start().await;
    let document = openapi(&daemon).await;
    for (method, path, protected) in operations(&document) {
        let request = daemon.client.request(method.parse().unwrap(), daemon.url(&path));
        let status = request.send().await.unwrap().status().as_u16();
        if protected {
            assert_eq!(status, 401, "{method} {path} without a token");
        } else {
            assert_eq!(status, 200, "{method} {path} is public");
        }
    }
    // The other way round: a route missing from the document does not exist.
    let response = daemon.client.get(daemon.url("/nope")).send().await.unwrap();
    assert_eq!(response.status(), 404);
    assert_eq!(response.headers()["content-type"], "application/problem+json");
    let response = daemon.client.delete(daemon.url("/health")).send().await.unwrap();
    assert_eq!(response.status(), 405);
    assert_eq!(response.headers()["content-type"], "application/problem+json");
}

#[tokio::test]
async fn health_shape_and_cache_control() {
    let daemon = Daemon::start_with(Options {
        auth: Auth::None,
        ..Options::default()
    })
    .await;
    let response = daemon.get_public("/health").await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["cache-control"], "no-store");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["status"], "ok");
    assert_eq!(body["version"], env!("CARGO_PKG_VERSION"));
    assert!(body["uptimeMs"].is_u64());
    for name in ["xvfb", "chromium", "vite"] {
        assert_eq!(body["components"][name]["state"], "disabled", "{name}");
        assert_eq!(body["components"][name]["restarts"], 0);
    }
    assert_eq!(
        body["components"]["agent"]["state"], "idle",
        "the agent starts with the first session"
    );
    assert_eq!(body["credentials"]["present"], false);

    let status: Value = daemon
        .client
        .get(daemon.url("/status"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        status["paths"]["credentialsFile"],
        daemon.credentials_file().display().to_string()
    );
    assert_eq!(status["auth"]["mode"], "disabled");
    assert!(status["pid"].as_u64().unwrap() == daemon.pid() as u64);
}
