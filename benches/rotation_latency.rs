//! Rotation latency: an in-place rewrite of the credentials file (the way the Claude CLI does it)
//! until an `/events` client receives `credentials.rotated`. Prints median, p99, min and max.
//!
//! Run: `cargo bench --bench rotation_latency` (override the count with ROTATIONS=n).

#[path = "../tests/it/helper.rs"]
#[allow(dead_code)]
mod helper;

use std::time::{Duration, Instant};

use helper::{Daemon, cli_document, rewrite_in_place};

#[tokio::main]
async fn main() {
    let rotations: usize = std::env::var("ROTATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(300);
    let daemon = Daemon::start().await;
    std::fs::create_dir_all(&daemon.config_dir).unwrap();
    let file = daemon.credentials_file();
    rewrite_in_place(&file, cli_document("a0", "r0", 1).to_string().as_bytes());
    let mut events = daemon.events(None).await;
    events.next_named("credentials.rotated", Duration::from_secs(5)).await;

    let mut samples = Vec::with_capacity(rotations);
    for i in 1..=rotations as u64 {
        let document = cli_document(&format!("a{i}"), &format!("r{i}"), 1 + i).to_string();
        let start = Instant::now();
        rewrite_in_place(&file, document.as_bytes());
        let event = events.next_named("credentials.rotated", Duration::from_secs(5)).await;
        samples.push(start.elapsed());
        assert_eq!(event.data["expiresAt"], 1 + i);
    }
    samples.sort();
    let pick = |q: f64| samples[((samples.len() - 1) as f64 * q).round() as usize];
    println!(
        "rotation → credentials.rotated over {rotations} rotations on {} cores: median {:.1} ms, p99 {:.1} ms, min {:.1} ms, max {:.1} ms",
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        ms(pick(0.5)),
        ms(pick(0.99)),
        ms(samples[0]),
        ms(samples[samples.len() - 1]),
    );
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
