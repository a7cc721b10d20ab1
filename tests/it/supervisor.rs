//! The supervised components, with the real Xvfb, Chromium and Vite (the app skeleton in `image/app`,
//! its `node_modules` installed by `scripts/test`).

use std::time::Duration;

use serde_json::Value;

use crate::helper::{
    BROWSER, Daemon, Options, alive, app_copy, free_display, free_port, processes_of, stack_args, wait_for,
};

const READY: Duration = Duration::from_secs(60);

struct Stack {
    daemon: Daemon,
    cdp_port: u16,
    vite_port: u16,
    _root: tempfile::TempDir,
}

/// Starts a daemon supervising the components, on free ports and its own display.
async fn stack(extra: &[&str], with_app: bool) -> Stack {
    let root = tempfile::tempdir().unwrap();
    let app_dir = if with_app {
        app_copy(root.path())
    } else {
        root.path().join("empty-app")
    };
    std::fs::create_dir_all(&app_dir).unwrap();
    let (cdp_port, vite_port) = (free_port(), free_port());
    let mut args = stack_args(free_display(), cdp_port, vite_port);
    args.extend(extra.iter().map(|s| s.to_string()));
    let options = Options {
        app_dir: Some(app_dir),
        args,
        supervise: true,
        ..Options::default()
    };
    Stack {
        daemon: Daemon::start_with(options).await,
        cdp_port,
        vite_port,
        _root: root,
    }
}

async fn status(daemon: &Daemon) -> Value {
    daemon.get("/status").await.json().await.unwrap()
}

async fn component(daemon: &Daemon, name: &str) -> Value {
    status(daemon).await["components"][name].clone()
}

async fn wait_state(daemon: &Daemon, name: &str, state: &str, within: Duration) -> Value {
    wait_for(&format!("{name} to be {state}"), within, || async {
        let c = component(daemon, name).await;
        (c["state"] == state).then_some(c)
    })
    .await
}

async fn wait_healthy(daemon: &Daemon) {
    let client = daemon.client.clone();
    let url = daemon.url("/health");
    wait_for("/health to answer 200", READY, || {
        let request = client.get(&url);
        async move { (request.send().await.ok()?.status() == 200).then_some(()) }
    })
    .await;
}

fn sigkill(pid: u64) {
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
}

#[tokio::test]
async fn all_three_become_ready_health_turns_200_and_component_events_are_sent() {
    let _turn = BROWSER.acquire().await.unwrap();
    let stack = stack(&[], true).await;
    let mut events = stack.daemon.events(Some(0)).await;
    wait_healthy(&stack.daemon).await;
    let status = status(&stack.daemon).await;
    for name in ["xvfb", "chromium", "vite"] {
        let c = &status["components"][name];
        assert_eq!(c["state"], "ready", "{name}: {c}");
        assert_eq!(c["restarts"], 0);
        assert!(alive(c["pid"].as_u64().unwrap() as u32), "{name} runs");
        assert!(c["sinceMs"].as_u64().is_some());
    }
    assert_eq!(status["components"]["agent"]["state"], "idle");
    let mut ready = Vec::new();
    while ready.len() < 3 {
        let event = events.next_named("component", Duration::from_secs(5)).await;
        if event.data["state"] == "ready" {
            ready.push(event.data["name"].as_str().unwrap().to_owned());
        }
    }
    ready.sort();
    assert_eq!(ready, ["chromium", "vite", "xvfb"]);

    // Chromium really opened the app: the page target's URL is the Vite server.
    let targets: Value = reqwest::get(format!("http://127.0.0.1:{}/json/list", stack.cdp_port))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let expected = format!("http://localhost:{}/", stack.vite_port);
    assert!(
        targets
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["url"] == expected.as_str()),
        "{targets}"
    );
}

#[tokio::test]
async fn screenshot_is_a_real_png_of_the_app() {
    let _turn = BROWSER.acquire().await.unwrap();
    let stack = stack(&[], true).await;
    wait_healthy(&stack.daemon).await;
    // The first paint can lag readiness; the app's gradient is what we are waiting to see.
    let (width, height, center) = wait_for("a screenshot showing the app", Duration::from_secs(20), || async {
        let response = stack.daemon.get("/preview/screenshot").await;
        // While Vite comes up Chromium may be reloading its page: a failed capture is retried until the deadline.
        if response.status() != 200 {
            return None;
        }
        assert_eq!(response.headers()["content-type"], "image/png");
        let bytes = response.bytes().await.unwrap();
        let decoder = png::Decoder::new(std::io::Cursor::new(bytes.to_vec()));
        let mut reader = decoder.read_info().expect("a valid PNG");
        let mut pixels = vec![0; reader.output_buffer_size()];
        let info = reader.next_frame(&mut pixels).unwrap();
        let channels = info.color_type.samples();
        let at = |x: u32, y: u32| {
            let i = ((y * info.width + x) as usize) * channels;
            (pixels[i], pixels[i + 1], pixels[i + 2])
        };
        let corner = at(20, 20);
        // Indigo-to-purple background: blue well above green.
        (corner.2 > 150 && corner.1 < 120).then_some((info.width, info.height, at(info.width / 2, info.height / 2)))
    })
    .await;
    assert!(width >= 1200 && height >= 700, "{width}x{height}");
    assert_ne!(center, (0, 0, 0));
}

#[tokio::test]
async fn screenshot_without_a_ready_browser_is_503() {
    let stack = stack(&["--no-xvfb", "--no-chromium", "--no-vite"], false).await;
    let response = stack.daemon.get("/preview/screenshot").await;
    assert_eq!(response.status(), 503);
    let body: Value = response.json().await.unwrap();
    assert!(body["type"].as_str().unwrap().ends_with("/browser-not-ready"));
}

#[tokio::test]
async fn sigkill_to_chromium_goes_to_backoff_then_ready_with_one_restart() {
    let _turn = BROWSER.acquire().await.unwrap();
    let stack = stack(&["--no-vite"], false).await;
    let before = wait_state(&stack.daemon, "chromium", "ready", READY).await;
    let mut events = stack.daemon.events(None).await;
    sigkill(before["pid"].as_u64().unwrap());
    let mut seen = Vec::new();
    while seen.last().map(String::as_str) != Some("ready") {
        let event = events.next_named("component", Duration::from_secs(20)).await;
        if event.data["name"] == "chromium" {
            seen.push(event.data["state"].as_str().unwrap().to_owned());
        }
    }
    assert_eq!(seen.first().map(String::as_str), Some("backoff"), "{seen:?}");
    let after = component(&stack.daemon, "chromium").await;
    assert_eq!(after["restarts"], 1);
    assert_ne!(after["pid"], before["pid"]);
    assert_eq!(after["lastExit"]["signal"], 9);
    assert_eq!(
        component(&stack.daemon, "xvfb").await["restarts"],
        0,
        "xvfb is left alone"
    );
}

#[tokio::test]
async fn sigkill_to_xvfb_brings_back_xvfb_and_then_chromium() {
    let _turn = BROWSER.acquire().await.unwrap();
    let stack = stack(&["--no-vite"], false).await;
    wait_state(&stack.daemon, "chromium", "ready", READY).await;
    let xvfb = component(&stack.daemon, "xvfb").await;
    let mut events = stack.daemon.events(None).await;
    sigkill(xvfb["pid"].as_u64().unwrap());
    let mut ready_order = Vec::new();
    while ready_order.len() < 2 {
        let event = events.next_named("component", Duration::from_secs(30)).await;
        if event.data["state"] == "ready" {
            ready_order.push(event.data["name"].as_str().unwrap().to_owned());
        }
    }
    assert_eq!(ready_order, ["xvfb", "chromium"]);
    assert_eq!(component(&stack.daemon, "xvfb").await["restarts"], 1);
    assert_eq!(component(&stack.daemon, "chromium").await["restarts"], 1);
    assert_eq!(stack.daemon.get_public("/health").await.status(), 200);
}

#[tokio::test]
async fn a_vite_that_exits_at_once_backs_off_instead_of_busy_looping() {
    let stack = stack(
        &[
            "--no-xvfb",
            "--no-chromium",
            "--vite-command",
            "node -e 'process.exit(3)'",
        ],
        true,
    )
    .await;
    let failed = wait_for("vite to have exited once", Duration::from_secs(10), || async {
        let c = component(&stack.daemon, "vite").await;
        (c["lastExit"]["code"] == 3).then_some(c)
    })
    .await;
    assert_eq!(failed["state"], "backoff", "{failed}");
    assert!(failed["reason"].as_str().unwrap().contains("code 3"));
    // Backoff doubles from 0.5 s: in 3 more seconds only a handful of attempts fit, not hundreds.
    let started = tokio::time::Instant::now();
    wait_for("three seconds to pass", Duration::from_secs(4), || async {
        (started.elapsed() >= Duration::from_secs(3)).then_some(())
    })
    .await;
    let restarts = component(&stack.daemon, "vite").await["restarts"].as_u64().unwrap();
    assert!((1..=5).contains(&restarts), "restarts {restarts}");
    assert_eq!(stack.daemon.get_public("/health").await.status(), 503);
}

#[tokio::test]
async fn a_component_that_never_becomes_ready_is_killed_at_its_deadline() {
    let stack = stack(
        &[
            "--no-xvfb",
            "--no-chromium",
            "--vite-command",
            "sleep 600",
            "--ready-timeout",
            "1",
        ],
        true,
    )
    .await;
    let starting = wait_state(&stack.daemon, "vite", "starting", Duration::from_secs(5)).await;
    let pid = starting["pid"].as_u64().expect("a pid while starting") as u32;
    let failed = wait_state(&stack.daemon, "vite", "backoff", Duration::from_secs(10)).await;
    assert!(
        failed["reason"].as_str().unwrap().contains("not ready within"),
        "{failed}"
    );
    assert_eq!(failed["lastExit"]["signal"], 15, "stopped with SIGTERM");
    assert!(!alive(pid), "the never-ready child is gone");
}

#[tokio::test]
async fn vite_without_node_modules_fails_with_a_clear_reason_and_does_not_loop() {
    let stack = stack(&["--no-xvfb", "--no-chromium"], false).await;
    let failed = wait_state(&stack.daemon, "vite", "failed", Duration::from_secs(5)).await;
    assert!(failed["reason"].as_str().unwrap().contains("node_modules"), "{failed}");
    let started = tokio::time::Instant::now();
    wait_for("a second to pass", Duration::from_secs(2), || async {
        (started.elapsed() >= Duration::from_secs(1)).then_some(())
    })
    .await;
    let later = component(&stack.daemon, "vite").await;
    assert_eq!(later["state"], "failed");
    assert_eq!(later["restarts"], 0);
    let health: Value = stack.daemon.get_public("/health").await.json().await.unwrap();
    assert_eq!(health["status"], "degraded");
}

#[tokio::test]
async fn a_taken_cdp_port_is_a_clear_failure_never_a_false_ready() {
    let _turn = BROWSER.acquire().await.unwrap();
    let port = free_port();
    // An impostor that even answers /json/version like a browser would.
    let impostor = tokio::net::TcpListener::bind(("127.0.0.1", port)).await.unwrap();
    let serve = tokio::spawn(async move {
        loop {
            let Ok((mut socket, _)) = impostor.accept().await else {
                break;
            };
            tokio::spawn(async move {
                use tokio::io::{AsyncReadExt, AsyncWriteExt};
                let mut buffer = [0u8; 1024];
                let _ = socket.read(&mut buffer).await;
                let body = r#"{"Browser":"Impostor","webSocketDebuggerUrl":"ws://127.0.0.1/devtools/browser/fake"}"#;
                let reply = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{body}", body.len());
                let _ = socket.write_all(reply.as_bytes()).await;
            });
        }
    });
    let root = tempfile::tempdir().unwrap();
    let args = vec![
        "--display".to_owned(),
        format!(":{}", free_display()),
        "--cdp-port".to_owned(),
        port.to_string(),
        "--no-vite".to_owned(),
    ];
    let daemon = Daemon::start_with(Options {
        app_dir: Some(root.path().into()),
        args,
        supervise: true,
        ..Options::default()
    })
    .await;
    let blocked = wait_for("chromium to report the taken port", Duration::from_secs(30), || async {
        let c = component(&daemon, "chromium").await;
        assert_ne!(c["state"], "ready", "an impostor on the port must never count as ready");
        c["reason"]
            .as_str()
            .is_some_and(|r| r.contains("already in use"))
            .then_some(c)
    })
    .await;
    assert_eq!(blocked["state"], "backoff");
    assert!(blocked["reason"].as_str().unwrap().contains(&port.to_string()));
    serve.abort();
}

#[tokio::test]
async fn logs_endpoint_returns_the_recent_lines_as_text() {
    let stack = stack(&["--no-xvfb", "--no-chromium"], true).await;
    wait_state(&stack.daemon, "vite", "ready", READY).await;
    let response = stack.daemon.get("/components/vite/logs?lines=50").await;
    assert_eq!(response.status(), 200);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    let text = response.text().await.unwrap();
    assert!(
        text.contains("VITE") && text.contains(&stack.vite_port.to_string()),
        "{text}"
    );
    let one = stack
        .daemon
        .get("/components/vite/logs?lines=1")
        .await
        .text()
        .await
        .unwrap();
    assert_eq!(one.lines().count(), 1);
    assert!(text.ends_with(&one), "lines=1 is the newest line");
    let bad = stack.daemon.get("/components/vite/logs?lines=lots").await;
    assert_eq!(bad.status(), 400);
    assert_eq!(bad.json::<Value>().await.unwrap()["field"], "lines");
}

#[tokio::test]
async fn restart_endpoint_restarts_one_component() {
    let stack = stack(&["--no-xvfb", "--no-chromium"], true).await;
    let before = wait_state(&stack.daemon, "vite", "ready", READY).await;
    let response = stack
        .daemon
        .client
        .post(stack.daemon.url("/components/vite/restart"))
        .bearer_auth(&stack.daemon.token);
    assert_eq!(response.send().await.unwrap().status(), 202);
    let after = wait_for("vite ready again with a new pid", READY, || async {
        let c = component(&stack.daemon, "vite").await;
        (c["state"] == "ready" && c["pid"] != before["pid"]).then_some(c)
    })
    .await;
    assert_eq!(after["restarts"], 1);
    assert!(!alive(before["pid"].as_u64().unwrap() as u32), "the old Vite is gone");
}

#[tokio::test]
async fn unknown_components_are_404_and_disabled_ones_409() {
    let stack = stack(&["--no-xvfb", "--no-chromium", "--no-vite"], false).await;
    let response = stack.daemon.get("/components/nginx/logs").await;
    assert_eq!(response.status(), 404);
    let body: Value = response.json().await.unwrap();
    assert!(body["type"].as_str().unwrap().ends_with("/unknown-component"));
    assert_eq!(
        stack.daemon.get("/components/agent/logs").await.status(),
        200,
        "the agent's stderr is served too"
    );
    let response = stack
        .daemon
        .client
        .post(stack.daemon.url("/components/nginx/restart"))
        .bearer_auth(&stack.daemon.token);
    assert_eq!(response.send().await.unwrap().status(), 404);
    let response = stack
        .daemon
        .client
        .post(stack.daemon.url("/components/vite/restart"))
        .bearer_auth(&stack.daemon.token);
    assert_eq!(response.send().await.unwrap().status(), 409);
    let unauthenticated = stack
        .daemon
        .client
        .get(stack.daemon.url("/components/vite/logs"))
        .send()
        .await
        .unwrap();
    assert_eq!(unauthenticated.status(), 401);
}

#[tokio::test]
async fn sigterm_stops_every_component_and_leaves_no_process_behind() {
    let _turn = BROWSER.acquire().await.unwrap();
    let mut stack = stack(&[], true).await;
    wait_healthy(&stack.daemon).await;
    let daemon_pid = stack.daemon.pid();
    let children = processes_of(daemon_pid);
    assert!(
        children.len() >= 3,
        "xvfb, chromium (several processes) and vite run: {children:?}"
    );
    let vite_pid = component(&stack.daemon, "vite").await["pid"].as_u64().unwrap() as u32;
    stack.daemon.sigterm();
    let status = stack.daemon.wait_exit(Duration::from_secs(20)).await;
    assert_eq!(status.code(), Some(0));
    wait_for("every child process to be gone", Duration::from_secs(10), || async {
        processes_of(daemon_pid).is_empty().then_some(())
    })
    .await;
    assert!(!alive(vite_pid), "Vite's node process is gone");
    for port in [stack.cdp_port, stack.vite_port] {
        assert!(
            std::net::TcpListener::bind(("127.0.0.1", port)).is_ok(),
            "port {port} is free again"
        );
    }
    let logs = stack.daemon.logs();
    let order: Vec<&str> = ["\"component\":\"chromium\"", "\"component\":\"xvfb\""]
        .iter()
        .map(|needle| {
            logs.lines()
                .rfind(|l| l.contains(needle) && l.contains("\"stopped\""))
                .unwrap_or("")
        })
        .collect();
    let position = |line: &str| logs.find(line).unwrap();
    assert!(position(order[0]) < position(order[1]), "chromium stops before xvfb");
}

#[tokio::test]
async fn disabled_components_report_disabled_and_do_not_hold_health_back() {
    let stack = stack(&["--no-xvfb", "--no-chromium", "--no-vite"], false).await;
    let health: Value = stack.daemon.get_public("/health").await.json().await.unwrap();
    for name in ["xvfb", "chromium", "vite"] {
        assert_eq!(health["components"][name]["state"], "disabled");
    }
    assert_eq!(health["status"], "ok");
}
