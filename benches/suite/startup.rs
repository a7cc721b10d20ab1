//! Start-up: process start → `/health` answering with no components; and cold start → Xvfb, Chromium and Vite
//! all ready, against the same three programs started one after another by `serial_start.sh`, in the same run.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::Settings;
use crate::helper::{Daemon, Options, app_copy, free_display, free_port};
use crate::table::{Budget, Row, Samples, Table};

pub async fn run(settings: &Settings, table: &mut Table) {
    let client = reqwest::Client::new();
    // As in a VM: the app folder is already a repository (made so by the first start, measured apart).
    let existing = tempfile::tempdir().unwrap();
    let (mut health, mut first) = (Samples::default(), Samples::default());
    for round in 0..settings.rounds(20, 3) {
        for fresh in [true, false] {
            let app = match fresh {
                true => None,
                false => Some(existing.path().join("app")),
            };
            let start = Instant::now();
            let daemon = Daemon::start_with(Options {
                app_dir: app,
                log_level: "info",
                ..Options::default()
            })
            .await;
            while client.get(daemon.url("/health")).send().await.is_err() {}
            match fresh {
                true => first.push_ms(start.elapsed()),
                // The first start on the shared folder made it a repository.
                false if round > 0 => health.push_ms(start.elapsed()),
                false => {}
            }
        }
    }
    table.add(Row {
        figure: "process start → `/health` answering (no components; the app folder a repository)".into(),
        unit: "ms",
        budget: Budget::AtMost(50.0),
        samples: health,
        of: "starts".into(),
        command: settings.command("startup"),
    });
    table.add(Row {
        figure: "the same, first start: the app folder made a repository (init, first commit)".into(),
        unit: "ms",
        budget: Budget::AtMost(50.0),
        samples: first,
        of: "starts".into(),
        command: settings.command("startup"),
    });

    let (mut parallel, mut serial, mut critical) = (Samples::default(), Samples::default(), Samples::default());
    for _ in 0..settings.rounds(5, 1) {
        let root = tempfile::tempdir().unwrap();
        let app = app_copy(root.path());
        let start = Instant::now();
        let mut daemon = start_supervised(root.path(), &app, Vec::new()).await;
        parallel.push_ms(start.elapsed());
        daemon.sigterm();
        daemon.wait_exit(Duration::from_secs(20)).await;

        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/benches/suite/serial_start.sh");
        let output = std::process::Command::new(script)
            .arg(free_display().to_string())
            .arg(free_port().to_string())
            .arg(free_port().to_string())
            .arg(&app)
            .arg(root.path().join("profile-serial"))
            .output()
            .expect("serial_start.sh");
        let text = String::from_utf8_lossy(&output.stdout);
        let ms: Vec<f64> = text.split_whitespace().filter_map(|w| w.parse().ok()).collect();
        let [total, xvfb, chromium, vite] = ms[..] else {
            panic!(
                "serial_start.sh printed {text:?}; stderr: {}",
                String::from_utf8_lossy(&output.stderr)
            );
        };
        serial.push(total);
        // Chromium needs the display, Vite needs nothing: the best any parallel start can do.
        critical.push((xvfb + chromium).max(vite));
    }
    let ratio = |a: &Samples, b: &Samples| {
        let mut ratio = Samples::default();
        ratio.push(a.median() / b.median());
        ratio
    };
    let (vs_serial, vs_critical) = (ratio(&parallel, &serial), ratio(&parallel, &critical));
    table.add(Row {
        figure: "cold start → Xvfb, Chromium and Vite all ready (`/health` 200)".into(),
        unit: "ms",
        budget: Budget::None,
        samples: parallel,
        of: "runs".into(),
        command: settings.command("startup"),
    });
    table.add(Row {
        figure: "the same three started one after another by a shell script".into(),
        unit: "ms",
        budget: Budget::None,
        samples: serial,
        of: "runs".into(),
        command: settings.command("startup"),
    });
    table.add(Row {
        figure: "critical path in that script: max(Xvfb + Chromium, Vite)".into(),
        unit: "ms",
        budget: Budget::None,
        samples: critical,
        of: "runs".into(),
        command: settings.command("startup"),
    });
    table.add(Row {
        figure: "ratio cold start / serial script (medians)".into(),
        unit: "",
        budget: Budget::AtMost(1.0),
        samples: vs_serial,
        of: "ratio".into(),
        command: settings.command("startup"),
    });
    table.add(Row {
        figure: "ratio cold start / critical path (medians; 1.0 is ideal)".into(),
        unit: "",
        budget: Budget::None,
        samples: vs_critical,
        of: "ratio".into(),
        command: settings.command("startup"),
    });
}

/// Starts the daemon supervising Xvfb, Chromium and Vite on free ports and waits until `/health` says 200.
pub async fn start_supervised(root: &Path, app: &Path, extra: Vec<String>) -> Daemon {
    let display = free_display();
    let mut args = vec![
        "--display".to_owned(),
        format!(":{display}"),
        "--cdp-port".to_owned(),
        free_port().to_string(),
        "--vite-port".to_owned(),
        free_port().to_string(),
        "--vite-host".to_owned(),
        "127.0.0.1".to_owned(),
        "--chromium-profile-dir".to_owned(),
        root.join(format!("profile-{display}")).display().to_string(),
    ];
    args.extend(extra);
    let daemon = Daemon::start_with(Options {
        app_dir: Some(app.to_path_buf()),
        args,
        supervise: true,
        log_level: "info",
        ..Options::default()
    })
    .await;
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(response) = client.get(daemon.url("/health")).send().await {
            if response.status() == 200 {
                return daemon;
            }
        }
        assert!(
            Instant::now() < deadline,
            "components not ready within 60 s: {}",
            daemon.logs()
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}
