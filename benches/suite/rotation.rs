//! Rotation latency: an in-place rewrite of the credentials file (the way the Claude CLI does it) until an
//! `/events` client receives `credentials.rotated`.

use std::time::{Duration, Instant};

use crate::Settings;
use crate::helper::{Daemon, Options, cli_document, rewrite_in_place};
use crate::table::{Budget, Row, Samples, Table};

pub async fn run(settings: &Settings, table: &mut Table) {
    let rotations = settings.rounds(300, 20);
    let daemon = Daemon::start_with(Options {
        log_level: "info",
        ..Options::default()
    })
    .await;
    std::fs::create_dir_all(&daemon.config_dir).unwrap();
    let file = daemon.credentials_file();
    rewrite_in_place(&file, cli_document("a0", "r0", 1).to_string().as_bytes());
    let mut events = daemon.events(None).await;
    events.next_named("credentials.rotated", Duration::from_secs(5)).await;

    let mut samples = Samples::default();
    for i in 1..=rotations as u64 {
        let document = cli_document(&format!("a{i}"), &format!("r{i}"), 1 + i).to_string();
        let start = Instant::now();
        rewrite_in_place(&file, document.as_bytes());
        let event = events.next_named("credentials.rotated", Duration::from_secs(5)).await;
        samples.push_ms(start.elapsed());
        assert_eq!(event.data["expiresAt"], 1 + i);
    }
    let mut p99 = Samples::default();
    p99.push(samples.quantile(0.99));
    table.add(Row {
        figure: "in-place rewrite of the credentials file → `credentials.rotated` on `/events`, p50".into(),
        unit: "ms",
        budget: Budget::None,
        samples,
        of: "rotations".into(),
        command: settings.command("rotation"),
    });
    table.add(Row {
        figure: "same, p99".into(),
        unit: "ms",
        budget: Budget::AtMost(50.0),
        samples: p99,
        of: format!("over {rotations} rotations"),
        command: settings.command("rotation"),
    });
}
