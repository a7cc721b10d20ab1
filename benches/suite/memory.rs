//! Memory: the daemon's own RSS (never its children's) idle with no components; with Xvfb, Chromium and Vite
//! supervised and an idle agent session; and after turns of 100 000 agent updates (growth across turns shows
//! whether anything accumulates).

use std::time::Duration;

use crate::Settings;
use crate::helper::{Daemon, Options, app_copy, cli_document};
use crate::relay::{Bridge, agent_args, new_session};
use crate::startup::start_supervised;
use crate::table::{Budget, Row, Samples, Table};

/// How long the daemon sits idle before its RSS is read.
const SETTLE: Duration = Duration::from_secs(1);
/// How long its idle CPU time is counted (the credentials rescan runs every 5 s). At 100 ticks/s one tick
/// in 5 s is 0.2 % of a core: the resolution of the figure.
const CPU_WINDOW: Duration = Duration::from_secs(5);

pub async fn run(settings: &Settings, table: &mut Table) {
    let (mut idle, mut cpu) = (Samples::default(), Samples::default());
    let window = if settings.quick {
        Duration::from_secs(1)
    } else {
        CPU_WINDOW
    };
    for _ in 0..settings.rounds(5, 1) {
        let daemon = Daemon::start_with(Options {
            log_level: "info",
            ..Options::default()
        })
        .await;
        let document = cli_document("sk-ant-oat01-idle", "sk-ant-ort01-idle", 4_102_444_800_000);
        assert_eq!(daemon.write_credentials(&document).await.0, 200);
        for path in ["/health", "/status", "/openapi.json"] {
            assert!(daemon.get(path).await.status().is_success(), "{path}");
        }
        let _events = daemon.events(None).await;
        tokio::time::sleep(SETTLE).await;
        idle.push(status_kib(daemon.pid(), "VmRSS") / 1024.0);
        let before = cpu_ticks(daemon.pid());
        tokio::time::sleep(window).await;
        let ticks = cpu_ticks(daemon.pid()) - before;
        cpu.push(ticks as f64 / clock_ticks_per_second() / window.as_secs_f64() * 100.0);
    }
    table.add(Row {
        figure: "daemon RSS, idle, no components".into(),
        unit: "MiB",
        budget: Budget::AtMost(10.0),
        samples: idle,
        of: "starts".into(),
        command: settings.command("memory"),
    });
    table.add(Row {
        figure: format!(
            "daemon CPU while idle (credentials file present, an `/events` client connected), over {} s",
            window.as_secs()
        ),
        unit: "% of a core",
        budget: Budget::AtMost(0.5),
        samples: cpu,
        of: "starts".into(),
        command: settings.command("memory"),
    });

    let mut supervised = Samples::default();
    for _ in 0..settings.rounds(3, 1) {
        let root = tempfile::tempdir().unwrap();
        let app = app_copy(root.path());
        let mut daemon = start_supervised(root.path(), &app, agent_args()).await;
        new_session(&daemon).await;
        tokio::time::sleep(SETTLE).await;
        supervised.push(status_kib(daemon.pid(), "VmRSS") / 1024.0);
        daemon.sigterm();
        daemon.wait_exit(Duration::from_secs(20)).await;
    }
    table.add(Row {
        figure: "daemon RSS, Xvfb + Chromium + Vite supervised, idle agent session".into(),
        unit: "MiB",
        budget: Budget::AtMost(10.0),
        samples: supervised,
        of: "starts".into(),
        command: settings.command("memory"),
    });

    let count = settings.rounds(100_000, 5_000);
    let (mut after, mut peak, mut growth) = (Samples::default(), Samples::default(), Samples::default());
    for _ in 0..settings.rounds(3, 1) {
        let bridge = Bridge::start().await;
        let pid = bridge.daemon.pid();
        let mut rss = Vec::new();
        for _ in 0..3 {
            let stats = bridge.turn(&format!("flood {count}"), |_| {}).await;
            assert_eq!(stats.updates, count as u64);
            rss.push(status_kib(pid, "VmRSS") / 1024.0);
        }
        after.push(rss[0]);
        growth.push(rss[2] - rss[0]);
        peak.push(status_kib(pid, "VmHWM") / 1024.0);
    }
    table.add(Row {
        figure: format!("daemon RSS after a turn of {count} updates"),
        unit: "MiB",
        budget: Budget::AtMost(16.0),
        samples: after,
        of: "daemons".into(),
        command: settings.command("memory"),
    });
    table.add(Row {
        figure: "daemon peak RSS (VmHWM) over three such turns".into(),
        unit: "MiB",
        budget: Budget::AtMost(16.0),
        samples: peak,
        of: "daemons".into(),
        command: settings.command("memory"),
    });
    table.add(Row {
        figure: "RSS growth from the 1st to the 3rd such turn".into(),
        unit: "MiB",
        budget: Budget::AtMost(0.5),
        samples: growth,
        of: "daemons".into(),
        command: settings.command("memory"),
    });
}

/// A `kB` line of `/proc/<pid>/status`, e.g. `VmRSS`.
pub fn status_kib(pid: u32, key: &str) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("daemon's /proc status");
    status
        .lines()
        .find_map(|line| line.strip_prefix(key)?.strip_prefix(':'))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("{key} in /proc/{pid}/status"))
}

/// User + system CPU time of `pid`, in clock ticks (`/proc/<pid>/stat` fields 14 and 15).
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("daemon's /proc stat");
    // The command name may hold spaces; the fields after it are plain.
    let after_name = &stat[stat.rfind(')').expect("comm") + 2..];
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    // Field 3 is the first after the name, so utime (14) and stime (15) are at 11 and 12.
    fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
}

fn clock_ticks_per_second() -> f64 {
    nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .unwrap_or(100) as f64
}
