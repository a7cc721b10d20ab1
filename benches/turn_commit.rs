//! Turn commit latency on the Vite skeleton with its real `node_modules` present: `Repo::commit_all` against
//! `git add -A && git commit` by the git CLI on the same kind of change (three files: two edits, one new
//! file), measured side by side in one run. Prints medians, min–max and the ratio.
//!
//! Run: `cargo bench --bench turn_commit` (ROUNDS=n; needs `npm ci` in image/app).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use acp_bridge::repo::{Author, Repo};

fn main() {
    let rounds: u32 = std::env::var("ROUNDS").ok().and_then(|v| v.parse().ok()).unwrap_or(100);
    let skeleton = Path::new(env!("CARGO_MANIFEST_DIR")).join("image/app");
    assert!(
        skeleton.join("node_modules").is_dir(),
        "run `npm ci` in image/app first"
    );
    let root = tempfile::tempdir().unwrap();
    let ours = copy(&skeleton, &root.path().join("ours"));
    let theirs = copy(&skeleton, &root.path().join("theirs"));

    let repo = Repo::open_or_init(&ours, Author::default()).unwrap();
    git(&theirs, &["init", "-q", "-b", "main"]);
    std::fs::write(
        theirs.join(".git/info/exclude"),
        "node_modules/\ndist/\n.playwright-mcp/\n*.log\n",
    )
    .unwrap();
    git(&theirs, &["add", "-A"]);
    git(
        &theirs,
        &[
            "-c",
            "user.name=bench",
            "-c",
            "user.email=bench@localhost",
            "commit",
            "-q",
            "-m",
            "init",
        ],
    );

    let (mut ours_samples, mut cli_samples) = (Vec::new(), Vec::new());
    for round in 0..rounds {
        change(&ours, round);
        let started = Instant::now();
        assert!(repo.commit_all("turn").unwrap().is_some());
        ours_samples.push(started.elapsed());

        change(&theirs, round);
        let started = Instant::now();
        git(&theirs, &["add", "-A"]);
        git(
            &theirs,
            &[
                "-c",
                "user.name=bench",
                "-c",
                "user.email=bench@localhost",
                "commit",
                "-q",
                "-m",
                "turn",
            ],
        );
        cli_samples.push(started.elapsed());
    }
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0);
    println!("machine: {cores} cores; {rounds} commits each, alternating, on copies of image/app with node_modules");
    let ours_median = report("acp-bridge commit_all (git2, in process)", &mut ours_samples);
    let cli_median = report("git add -A && git commit (git CLI)", &mut cli_samples);
    println!(
        "ratio acp-bridge/CLI (medians): {:.2}",
        ours_median.as_secs_f64() / cli_median.as_secs_f64()
    );
}

/// A typical turn: two files edited, one added.
fn change(dir: &Path, round: u32) {
    for file in ["src/App.tsx", "src/index.css"] {
        let path = dir.join(file);
        let mut text = std::fs::read_to_string(&path).unwrap();
        text.push_str(&format!("/* round {round} */\n"));
        std::fs::write(path, text).unwrap();
    }
    std::fs::write(
        dir.join(format!("src/Component{round}.tsx")),
        format!("export const C{round} = () => null;\n"),
    )
    .unwrap();
}

fn copy(from: &Path, to: &Path) -> PathBuf {
    let status = Command::new("cp").arg("-a").arg(from).arg(to).status().unwrap();
    assert!(status.success());
    to.to_path_buf()
}

fn git(dir: &Path, args: &[&str]) {
    let status = Command::new("git").arg("-C").arg(dir).args(args).status().unwrap();
    assert!(status.success(), "git {args:?}");
}

fn report(name: &str, samples: &mut [Duration]) -> Duration {
    samples.sort();
    let median = samples[samples.len() / 2];
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "{name}: median {:.2} ms (min {:.2}, max {:.2})",
        ms(median),
        ms(samples[0]),
        ms(samples[samples.len() - 1])
    );
    median
}
