//! Relay: the fake ACP agent emitting updates as fast as it can → received by the SSE client of the prompt
//! (updates/s), and at a steady 1 000/s with each update stamped by the agent (latency the bridge adds).
//! Also the turn plumbing the memory figures reuse.

use std::path::PathBuf;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use futures_util::StreamExt;
use serde_json::json;

use crate::Settings;
use crate::helper::{Daemon, Options, fake_agent};
use crate::table::{Budget, Row, Samples, Table};

/// A daemon whose agent is the fake ACP agent, with one API-key session.
pub struct Bridge {
    pub daemon: Daemon,
    pub session: String,
    _dir: tempfile::TempDir,
}

/// The agent flags for the fake agent.
pub fn agent_args() -> Vec<String> {
    vec!["--agent-command".to_owned(), fake_agent().display().to_string()]
}

impl Bridge {
    pub async fn start() -> Bridge {
        let dir = tempfile::tempdir().unwrap();
        let app: PathBuf = dir.path().join("app");
        std::fs::create_dir_all(&app).unwrap();
        let daemon = Daemon::start_with(Options {
            app_dir: Some(app),
            args: agent_args(),
            log_level: "info",
            ..Options::default()
        })
        .await;
        let session = new_session(&daemon).await;
        Bridge {
            daemon,
            session,
            _dir: dir,
        }
    }

    /// Runs one turn, reading its stream as it comes; `on_update` sees each update's `data` line.
    pub async fn turn(&self, prompt: &str, mut on_update: impl FnMut(&[u8])) -> TurnStats {
        let response = self
            .daemon
            .post(&format!("/session/{}/prompt", self.session), &json!({"prompt": prompt}))
            .await;
        assert_eq!(response.status(), 200, "prompt refused");
        let mut body = response.bytes_stream();
        let mut buffer: Vec<u8> = Vec::with_capacity(1 << 16);
        let mut stats = TurnStats::default();
        while let Some(chunk) = body.next().await {
            buffer.extend_from_slice(&chunk.expect("turn stream"));
            let mut start = 0;
            while let Some(end) = find(&buffer[start..], b"\n\n") {
                let frame = &buffer[start..start + end];
                start += end + 2;
                let (event, data) = parse_frame(frame);
                match event {
                    b"update" => {
                        let now = Instant::now();
                        stats.first.get_or_insert(now);
                        stats.last = Some(now);
                        stats.updates += 1;
                        on_update(data);
                    }
                    b"done" => stats.done = true,
                    b"error" => panic!("turn failed: {}", String::from_utf8_lossy(data)),
                    _ => {}
                }
            }
            buffer.drain(..start);
        }
        assert!(stats.done, "the turn stream ended without `done`");
        stats
    }
}

pub async fn new_session(daemon: &Daemon) -> String {
    let response = daemon.post("/session", &json!({"apiKey": "sk-ant-api03-bench"})).await;
    assert_eq!(response.status(), 200, "session refused");
    let body: serde_json::Value = response.json().await.unwrap();
    body["sessionId"].as_str().unwrap().to_owned()
}

#[derive(Default)]
pub struct TurnStats {
    pub updates: u64,
    pub first: Option<Instant>,
    pub last: Option<Instant>,
    pub done: bool,
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// The `event:` name and the `data:` line of one SSE frame.
fn parse_frame(frame: &[u8]) -> (&[u8], &[u8]) {
    let (mut event, mut data): (&[u8], &[u8]) = (b"message", b"");
    for line in frame.split(|&b| b == b'\n') {
        if let Some(rest) = line.strip_prefix(b"event:") {
            event = rest.trim_ascii();
        } else if let Some(rest) = line.strip_prefix(b"data:") {
            data = rest.trim_ascii();
        }
    }
    (event, data)
}

pub async fn run(settings: &Settings, table: &mut Table) {
    let bridge = Bridge::start().await;
    let count = settings.rounds(100_000, 10_000);
    let mut rate = Samples::default();
    for _ in 0..settings.rounds(5, 1) {
        let stats = bridge.turn(&format!("flood {count}"), |_| {}).await;
        assert_eq!(stats.updates, count as u64, "every update arrives");
        let elapsed = stats.last.unwrap() - stats.first.unwrap();
        rate.push(count as f64 / elapsed.as_secs_f64());
    }
    table.add(Row {
        figure: format!("relay: agent flood → prompt's SSE client, {count} updates per turn"),
        unit: "updates/s",
        budget: Budget::AtLeast(50_000.0),
        samples: rate,
        of: "turns".into(),
        command: settings.command("relay"),
    });

    let per_run = settings.rounds(3_000, 300);
    let (mut p50, mut p99) = (Samples::default(), Samples::default());
    for _ in 0..settings.rounds(3, 1) {
        let mut latencies = Samples::default();
        let stats = bridge
            .turn(&format!("paced {per_run} 1000"), |data| {
                let received = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos();
                let sent = stamp(data).expect("a `t=` stamp in every paced update");
                latencies.push(received.saturating_sub(sent) as f64 / 1e6);
            })
            .await;
        assert_eq!(stats.updates, per_run as u64, "every update arrives");
        p50.push(latencies.quantile(0.5));
        p99.push(latencies.quantile(0.99));
    }
    table.add(Row {
        figure: "relay at a steady 1 000 updates/s: agent's write → SSE client, p50".into(),
        unit: "ms",
        budget: Budget::None,
        samples: p50,
        of: format!("runs of {per_run} updates"),
        command: settings.command("relay"),
    });
    table.add(Row {
        figure: "same, p99".into(),
        unit: "ms",
        budget: Budget::AtMost(1.0),
        samples: p99,
        of: format!("runs of {per_run} updates"),
        command: settings.command("relay"),
    });
}

/// The nanosecond stamp `t=<n>` the fake agent's `paced` mode puts in each chunk's text.
fn stamp(data: &[u8]) -> Option<u128> {
    let at = find(data, b"\"t=")? + 3;
    let digits = data[at..].iter().take_while(|b| b.is_ascii_digit()).count();
    std::str::from_utf8(&data[at..at + digits]).ok()?.parse().ok()
}
