//! Credentials round trip: `POST /credentials/read` and `POST /credentials/write` over loopback with 64
//! concurrent connections, driven by `wrk` (Debian's package) in a second process: requests/s, p50 and p99.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::process::Command;
use std::time::Instant;

use serde_json::Value;

use crate::Settings;
use crate::helper::{Daemon, Options, cli_document};
use crate::table::{Budget, Row, Samples, Table};

const CONNECTIONS: u32 = 64;

pub async fn run(settings: &Settings, table: &mut Table) {
    let daemon = Daemon::start_with(Options {
        log_level: "info",
        ..Options::default()
    })
    .await;
    let document = cli_document(
        "sk-ant-oat01-bench-access",
        "sk-ant-ort01-bench-refresh",
        4_102_444_800_000,
    );
    let (status, body) = daemon.write_credentials(&document).await;
    assert_eq!(status, 200, "{body}");

    // The disk's floor for one durable write, measured on the same file system just before the load.
    let floor = durable_replace_ms(&daemon.config_dir, settings.rounds(200, 20));
    let floor_median = floor.median();
    table.add(Row {
        figure: "the disk's floor: write + fsync + rename + fsync dir of a 200-byte file, plain loop".into(),
        unit: "ms",
        budget: Budget::None,
        samples: floor,
        of: "writes".into(),
        command: settings.command("credentials"),
    });

    for (endpoint, script) in [("read", "read.lua"), ("write", "write.lua")] {
        let (mut rate, mut p50, mut p99) = (Samples::default(), Samples::default(), Samples::default());
        let seconds = settings.rounds(5, 1);
        for _ in 0..settings.rounds(3, 1) {
            let run = wrk(&daemon, script, seconds, &document);
            rate.push(run.requests_per_second);
            p50.push(run.p50_ms);
            p99.push(run.p99_ms);
        }
        let what = format!("`POST /credentials/{endpoint}`, {CONNECTIONS} connections");
        let rate_median = rate.median();
        let runs = format!("runs of {seconds} s");
        table.add(Row {
            figure: format!("{what}: throughput"),
            unit: "req/s",
            budget: Budget::AtLeast(20_000.0),
            samples: rate,
            of: runs.clone(),
            command: settings.command("credentials"),
        });
        if endpoint == "write" {
            // Each durable write serves at most all 64 waiting requests: the most a disk this fast allows.
            let mut ratio = Samples::default();
            ratio.push(rate_median / (f64::from(CONNECTIONS) * 1000.0 / floor_median));
            table.add(Row {
                figure: format!("write throughput / the disk's ceiling ({CONNECTIONS} writes per floor time)"),
                unit: "",
                budget: Budget::None,
                samples: ratio,
                of: "ratio".into(),
                command: settings.command("credentials"),
            });
        }
        table.add(Row {
            figure: format!("{what}: latency p50"),
            unit: "ms",
            budget: Budget::None,
            samples: p50,
            of: runs.clone(),
            command: settings.command("credentials"),
        });
        table.add(Row {
            figure: format!("{what}: latency p99"),
            unit: "ms",
            budget: Budget::AtMost(5.0),
            samples: p99,
            of: runs,
            command: settings.command("credentials"),
        });
    }
    let (status, body) = daemon.read_credentials().await;
    assert_eq!(
        (status, &body["accessToken"]),
        (200, &Value::from("sk-ant-oat01-bench-access"))
    );
}

struct WrkRun {
    requests_per_second: f64,
    p50_ms: f64,
    p99_ms: f64,
}

fn wrk(daemon: &Daemon, script: &str, seconds: usize, document: &Value) -> WrkRun {
    let endpoint = if script == "read.lua" {
        "/credentials/read"
    } else {
        "/credentials/write"
    };
    let output = Command::new("wrk")
        .args([
            "-t2",
            &format!("-c{CONNECTIONS}"),
            &format!("-d{seconds}s"),
            "--latency",
            "--timeout",
            "5s",
        ])
        .arg("-s")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/benches/wrk/").to_owned() + script)
        .arg(daemon.url(endpoint))
        .env("ACP_BRIDGE_BENCH_TOKEN", &daemon.token)
        .env("ACP_BRIDGE_BENCH_BODY", document.to_string())
        .output()
        .expect("wrk (Debian package `wrk`; scripts/bench installs it)");
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "wrk failed: {text}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        !text.contains("Non-2xx") && !text.contains("Socket errors"),
        "every request must succeed:\n{text}"
    );
    let field = |prefix: &str| -> &str {
        text.lines()
            .find_map(|line| line.trim().strip_prefix(prefix))
            .map(str::trim)
            .unwrap_or_else(|| panic!("no {prefix:?} in wrk's output:\n{text}"))
    };
    WrkRun {
        requests_per_second: field("Requests/sec:").parse().expect("Requests/sec"),
        p50_ms: duration_ms(field("50%")),
        p99_ms: duration_ms(field("99%")),
    }
}

/// wrk's durations: `812.00us`, `1.23ms`, `2.00s`.
fn duration_ms(text: &str) -> f64 {
    let split = text.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let value: f64 = number.parse().unwrap_or_else(|_| panic!("a duration, not {text:?}"));
    match unit {
        "us" => value / 1000.0,
        "ms" => value,
        "s" => value * 1000.0,
        "m" => value * 60_000.0,
        other => panic!("unknown unit {other:?} in {text:?}"),
    }
}

/// What one durable replace of a small file costs on this disk, done the way the store does it.
fn durable_replace_ms(dir: &Path, rounds: usize) -> Samples {
    let (temp, target) = (dir.join(".floor.tmp"), dir.join(".floor.json"));
    let bytes = [b'x'; 200];
    let mut samples = Samples::default();
    for _ in 0..rounds {
        let start = Instant::now();
        let mut file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&temp)
            .unwrap();
        file.write_all(&bytes).unwrap();
        file.sync_all().unwrap();
        std::fs::rename(&temp, &target).unwrap();
        File::open(dir).unwrap().sync_all().unwrap();
        samples.push_ms(start.elapsed());
    }
    let _ = std::fs::remove_file(target);
    samples
}
