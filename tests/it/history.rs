//! Every turn is a commit in the app folder; undo, redo and checkout move the app between commits.

use std::path::PathBuf;
use std::time::Duration;

use serde_json::{Value, json};

use crate::helper::{Daemon, EventStream, Options, SseEvent, fake_agent, git};

const TURN: Duration = Duration::from_secs(20);

struct App {
    daemon: Daemon,
    dir: PathBuf,
    session: String,
    _root: tempfile::TempDir,
}

async fn app_with(files: &[(&str, &str)]) -> App {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("app");
    for (path, content) in files {
        let path = dir.join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, content).unwrap();
    }
    std::fs::create_dir_all(&dir).unwrap();
    let args = vec!["--agent-command".to_owned(), fake_agent().display().to_string()];
    let daemon = Daemon::start_with(Options {
        app_dir: Some(dir.clone()),
        args,
        ..Options::default()
    })
    .await;
    let response = daemon.post("/session", &json!({"apiKey": "k"})).await;
    assert_eq!(response.status(), 200);
    let session = response.json::<Value>().await.unwrap()["sessionId"]
        .as_str()
        .unwrap()
        .to_owned();
    App {
        daemon,
        dir,
        session,
        _root: root,
    }
}

impl App {
    async fn turn(&self, text: &str) -> SseEvent {
        let response = self
            .daemon
            .post(&format!("/session/{}/prompt", self.session), &json!({"prompt": text}))
            .await;
        assert_eq!(response.status(), 200);
        EventStream::from_response(response)
            .final_event(TURN)
            .await
            .expect("the turn ends")
    }

    async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        let response = self.daemon.post(path, &body).await;
        let status = response.status().as_u16();
        (status, response.json().await.unwrap())
    }

    async fn history(&self) -> Value {
        let response = self.daemon.get("/history").await;
        assert_eq!(response.status(), 200);
        response.json().await.unwrap()
    }

    fn read(&self, path: &str) -> Option<String> {
        std::fs::read_to_string(self.dir.join(path)).ok()
    }
}

#[tokio::test]
async fn first_start_initialises_the_app_as_a_repository_on_main() {
    let app = app_with(&[("index.html", "<h1>app</h1>"), ("node_modules/dep/index.js", "x")]).await;
    assert_eq!(git(&app.dir, &["rev-parse", "--abbrev-ref", "HEAD"]), "main");
    assert_eq!(git(&app.dir, &["log", "--format=%s"]), "Initial app");
    assert_eq!(
        git(&app.dir, &["ls-files"]),
        "index.html",
        "node_modules is never committed"
    );
    let exclude = std::fs::read_to_string(app.dir.join(".git/info/exclude")).unwrap();
    for pattern in ["node_modules/", "dist/", ".playwright-mcp/", "*.log"] {
        assert!(exclude.lines().any(|l| l.trim() == pattern), "{pattern} excluded");
    }
    let history = app.history().await;
    assert_eq!(history["branch"], "main");
    assert_eq!(history["dirty"], false);
    assert_eq!(history["commits"].as_array().unwrap().len(), 1);
    assert_eq!(history["redo"], json!([]));
    let health: Value = app.daemon.get_public("/health").await.json().await.unwrap();
    assert_eq!(health["repo"]["head"], history["head"]);
}

#[tokio::test]
async fn a_turn_becomes_one_commit_with_trailers_and_done_carries_it() {
    let app = app_with(&[("index.html", "old")]).await;
    let mut events = app.daemon.events(None).await;
    let done = app
        .turn("Add the header\nmore detail write:src/Header.tsx=header write:index.html=new")
        .await;
    assert_eq!(done.event, "done");
    let commit = &done.data["commit"];
    let sha = commit["sha"].as_str().expect("a commit");
    assert_eq!(sha, git(&app.dir, &["rev-parse", "HEAD"]));
    assert_eq!(commit["parent"], git(&app.dir, &["rev-parse", "HEAD~1"]));
    assert_eq!(commit["filesChanged"], json!(["index.html", "src/Header.tsx"]));
    let message = git(&app.dir, &["log", "-1", "--format=%B"]);
    let expected_trailers = format!("Session: {}\nTurn: ", app.session);
    assert!(message.starts_with("Add the header\n\n"), "{message}");
    assert!(
        message.contains(&expected_trailers) && message.contains("Stop-Reason: end_turn"),
        "{message}"
    );
    assert_eq!(commit["message"].as_str().unwrap().trim(), message.trim());
    let finished = events.next_named("turn.finished", TURN).await;
    assert_eq!(finished.data["commit"]["sha"], sha);
    assert_eq!(git(&app.dir, &["status", "--porcelain"]), "", "everything is committed");
}

#[tokio::test]
async fn a_turn_that_changes_nothing_commits_nothing() {
    let app = app_with(&[("index.html", "x")]).await;
    let before = git(&app.dir, &["rev-parse", "HEAD"]);
    let done = app.turn("just talk").await;
    assert_eq!(done.data["commit"], Value::Null);
    assert_eq!(git(&app.dir, &["rev-parse", "HEAD"]), before);
}

#[tokio::test]
async fn undo_redo_and_checkout_move_the_app_between_turn_commits() {
    let app = app_with(&[("index.html", "v0")]).await;
    let first = app.turn("one write:index.html=v1 write:a.txt=a").await.data["commit"]["sha"]
        .as_str()
        .unwrap()
        .to_owned();
    let second = app.turn("two write:index.html=v2 write:b.txt=b").await.data["commit"]["sha"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut events = app.daemon.events(None).await;

    let (status, body) = app.post("/history/undo", json!({})).await;
    assert_eq!((status, body["head"].as_str()), (200, Some(first.as_str())));
    assert_eq!(app.read("index.html").as_deref(), Some("v1"));
    assert_eq!(app.read("b.txt"), None, "files added later are removed");
    assert_eq!(git(&app.dir, &["status", "--porcelain"]), "");
    let moved = events.next_named("history", TURN).await;
    assert_eq!(moved.data["op"], "undo");
    assert_eq!(moved.data["head"], first.as_str());
    assert_eq!(app.history().await["redo"], json!([second]));

    let (status, body) = app.post("/history/redo", json!({})).await;
    assert_eq!((status, body["head"].as_str()), (200, Some(second.as_str())));
    assert_eq!(app.read("b.txt").as_deref(), Some("b"));
    let (status, body) = app.post("/history/redo", json!({})).await;
    assert_eq!(status, 409);
    assert!(body["type"].as_str().unwrap().ends_with("/nothing-to-redo"));

    let initial = git(&app.dir, &["rev-list", "--max-parents=0", "HEAD"]);
    let (status, body) = app.post("/history/checkout", json!({"sha": &initial[..8]})).await;
    assert_eq!((status, body["head"].as_str()), (200, Some(initial.as_str())));
    assert_eq!(app.read("index.html").as_deref(), Some("v0"));
    assert_eq!(app.read("a.txt"), None);
    let (status, body) = app.post("/history/undo", json!({})).await;
    assert_eq!(status, 409);
    assert!(body["type"].as_str().unwrap().ends_with("/nothing-to-undo"));
    let (status, _) = app.post("/history/checkout", json!({"sha": second})).await;
    assert_eq!(status, 200);
    assert_eq!(app.read("index.html").as_deref(), Some("v2"));
}

#[tokio::test]
async fn a_new_turn_after_undo_clears_redo_but_keeps_the_undone_commit() {
    let app = app_with(&[("index.html", "v0")]).await;
    app.turn("one write:a.txt=a").await;
    let undone = app.turn("two write:b.txt=b").await.data["commit"]["sha"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(app.post("/history/undo", json!({})).await.0, 200);
    app.turn("three write:c.txt=c").await;
    assert_eq!(app.history().await["redo"], json!([]));
    git(&app.dir, &["cat-file", "-e", &undone]);
    let (status, _) = app.post("/history/checkout", json!({"sha": undone})).await;
    assert_eq!(status, 200, "an undone commit is still part of the app's history");
}

#[tokio::test]
async fn a_dirty_edit_is_snapshotted_before_undo() {
    let app = app_with(&[("index.html", "v0")]).await;
    let first = app.turn("one write:a.txt=a").await.data["commit"]["sha"]
        .as_str()
        .unwrap()
        .to_owned();
    app.turn("two write:b.txt=b").await;
    std::fs::write(app.dir.join("a.txt"), "edited by hand").unwrap();
    let (status, body) = app.post("/history/undo", json!({})).await;
    assert_eq!(status, 200);
    assert_eq!(body["head"], first.as_str(), "undo still goes back one turn");
    let snapshot = git(&app.dir, &["log", "--all", "--format=%H %s"])
        .lines()
        .find(|l| l.ends_with("Snapshot before undo"))
        .map(|l| l.split(' ').next().unwrap().to_owned())
        .expect("the snapshot commit is reachable");
    assert_eq!(git(&app.dir, &["show", &format!("{snapshot}:a.txt")]), "edited by hand");
}

#[tokio::test]
async fn malformed_and_unknown_shas_are_400_and_404() {
    let app = app_with(&[("index.html", "x")]).await;
    let (status, body) = app.post("/history/checkout", json!({"sha": "xyz"})).await;
    assert_eq!(status, 400);
    assert_eq!(body["field"], "sha");
    let (status, body) = app
        .post(
            "/history/checkout",
            json!({"sha": "0123456789abcdef0123456789abcdef01234567"}),
        )
        .await;
    assert_eq!(status, 404);
    assert!(body["type"].as_str().unwrap().ends_with("/unknown-commit"));
    let blob = git(&app.dir, &["rev-parse", "HEAD:index.html"]);
    assert_eq!(
        app.post("/history/checkout", json!({"sha": blob})).await.0,
        404,
        "a blob is not a commit"
    );
    let (status, body) = app.post("/history/checkout", json!({})).await;
    assert_eq!((status, body["field"].as_str()), (400, Some("sha")));
}

#[tokio::test]
async fn history_operations_refuse_with_409_while_a_turn_runs() {
    let app = app_with(&[("index.html", "x")]).await;
    let response = app
        .daemon
        .post(&format!("/session/{}/prompt", app.session), &json!({"prompt": "slow"}))
        .await;
    let mut stream = EventStream::from_response(response);
    stream.next_named("update", TURN).await;
    for (method, path) in [
        ("GET", "/history"),
        ("POST", "/history/undo"),
        ("POST", "/history/redo"),
    ] {
        let request = app
            .daemon
            .client
            .request(method.parse().unwrap(), app.daemon.url(path))
            .bearer_auth(&app.daemon.token);
        let response = request.json(&json!({})).send().await.unwrap();
        assert_eq!(response.status(), 409, "{method} {path}");
        let body: Value = response.json().await.unwrap();
        assert!(body["type"].as_str().unwrap().ends_with("/turn-in-progress"));
    }
    let cancel = app
        .daemon
        .post(&format!("/session/{}/cancel", app.session), &json!({}))
        .await;
    assert_eq!(cancel.status(), 202);
    stream.next_named("done", TURN).await;
    assert_eq!(app.daemon.get("/history").await.status(), 200);
}

#[tokio::test]
async fn cancelled_and_crashed_turns_commit_their_work() {
    let app = app_with(&[("index.html", "x")]).await;
    let response = app
        .daemon
        .post(
            &format!("/session/{}/prompt", app.session),
            &json!({"prompt": "slow write:half.txt=1"}),
        )
        .await;
    let mut stream = EventStream::from_response(response);
    stream.next_named("update", TURN).await;
    let cancel = app
        .daemon
        .post(&format!("/session/{}/cancel", app.session), &json!({}))
        .await;
    assert_eq!(cancel.status(), 202);
    let done = stream.next_named("done", TURN).await;
    assert_eq!(done.data["stopReason"], "cancelled");
    assert_eq!(done.data["commit"]["filesChanged"], json!(["half.txt"]));
    assert!(git(&app.dir, &["log", "-1", "--format=%B"]).contains("Stop-Reason: cancelled"));

    let mut events = app.daemon.events(None).await;
    let error = app.turn("crash write:crashed.txt=1").await;
    assert_eq!(error.event, "error");
    let failed = events.next_named("turn.failed", TURN).await;
    assert_eq!(failed.data["commit"]["filesChanged"], json!(["crashed.txt"]));
    assert!(git(&app.dir, &["log", "-1", "--format=%B"]).contains("Stop-Reason: crashed"));
}

#[tokio::test]
async fn a_daemon_shutdown_mid_turn_commits_the_work_so_far() {
    let mut app = app_with(&[("index.html", "x")]).await;
    let response = app
        .daemon
        .post(
            &format!("/session/{}/prompt", app.session),
            &json!({"prompt": "slow write:wip.txt=1"}),
        )
        .await;
    let mut stream = EventStream::from_response(response);
    stream.next_named("update", TURN).await;
    app.daemon.sigterm();
    assert_eq!(app.daemon.wait_exit(Duration::from_secs(20)).await.code(), Some(0));
    let message = git(&app.dir, &["log", "-1", "--format=%B"]);
    assert!(message.contains("Stop-Reason: shutdown"), "{message}");
    assert_eq!(git(&app.dir, &["show", "HEAD:wip.txt"]), "1");
}
