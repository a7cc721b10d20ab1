//! Start-up figures, each over several runs, reported as median and min–max:
//! - process start → `/health` answering (no components);
//! - cold start → Xvfb, Chromium and Vite all ready (`/health` 200), against the same three programs
//!   started one after another by `benches/serial_start.sh`, in the same run; and their ratio.
//!
//! Run: `cargo bench --bench cold_start` (RUNS=n to change the count; needs `npm ci` in image/app).

#[path = "../tests/it/helper.rs"]
#[allow(dead_code)]
mod helper;

use std::time::{Duration, Instant};

use helper::{Daemon, Options, app_copy, free_display, free_port};

#[tokio::main]
async fn main() {
    let runs: usize = std::env::var("RUNS").ok().and_then(|v| v.parse().ok()).unwrap_or(5);
    let client = reqwest::Client::new();

    let mut health = Vec::new();
    for _ in 0..runs * 4 {
        let start = Instant::now();
        let daemon = Daemon::start().await;
        while client.get(daemon.url("/health")).send().await.is_err() {}
        health.push(start.elapsed());
    }

    let mut parallel = Vec::new();
    let mut serial = Vec::new();
    for _ in 0..runs {
        let root = tempfile::tempdir().unwrap();
        let app = app_copy(root.path());
        let args = |display: u32| {
            vec![
                "--display".to_owned(),
                format!(":{display}"),
                "--cdp-port".to_owned(),
                free_port().to_string(),
                "--vite-port".to_owned(),
                free_port().to_string(),
                "--vite-host".to_owned(),
                "127.0.0.1".to_owned(),
                "--chromium-profile-dir".to_owned(),
                root.path().join(format!("profile-{display}")).display().to_string(),
            ]
        };
        let start = Instant::now();
        let mut daemon = Daemon::start_with(Options {
            app_dir: Some(app.clone()),
            args: args(free_display()),
            supervise: true,
            ..Options::default()
        })
        .await;
        loop {
            if let Ok(response) = client.get(daemon.url("/health")).send().await {
                if response.status() == 200 {
                    break;
                }
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        parallel.push(start.elapsed());
        daemon.sigterm();
        daemon.wait_exit(Duration::from_secs(20)).await;

        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/benches/serial_start.sh");
        let output = std::process::Command::new(script)
            .arg(free_display().to_string())
            .arg(free_port().to_string())
            .arg(free_port().to_string())
            .arg(&app)
            .arg(root.path().join("profile-serial"))
            .output()
            .expect("serial_start.sh");
        let ms: u64 = String::from_utf8_lossy(&output.stdout)
            .trim()
            .parse()
            .expect("milliseconds from serial_start.sh");
        serial.push(Duration::from_millis(ms));
    }

    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0);
    println!(
        "machine: {cores} cores; {runs} runs of each cold start, {} of the health start",
        health.len()
    );
    row("process start → /health answering", &mut health);
    row(
        "cold start → all components ready (acp-bridge, parallel)",
        &mut parallel,
    );
    row("same three programs, one after another (shell script)", &mut serial);
    println!(
        "ratio parallel/serial (medians): {:.2}",
        median(&parallel).as_secs_f64() / median(&serial).as_secs_f64()
    );
}

fn median(samples: &[Duration]) -> Duration {
    let mut sorted = samples.to_vec();
    sorted.sort();
    sorted[sorted.len() / 2]
}

fn row(name: &str, samples: &mut [Duration]) {
    samples.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "{name}: median {:.1} ms (min {:.1}, max {:.1})",
        ms(median(samples)),
        ms(samples[0]),
        ms(samples[samples.len() - 1])
    );
}
