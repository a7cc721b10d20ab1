//! Turn commit latency on the Vite skeleton with its real `node_modules`: `Repo::commit_all` (what the daemon
//! runs after every turn) against `git add -A && git commit` by the git CLI on the same kind of change (two
//! files edited, one added), alternating, in one run.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use acp_bridge::repo::{Author, Repo};

use crate::Settings;
use crate::table::{Budget, Row, Samples, Table};

pub fn run(settings: &Settings, table: &mut Table) {
    let rounds = settings.rounds(100, 5);
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
    // The same ignores the daemon writes into `.git/info/exclude`.
    std::fs::copy(ours.join(".git/info/exclude"), theirs.join(".git/info/exclude")).unwrap();
    git(&theirs, &["add", "-A"]);
    commit(&theirs, "init");

    let (mut ours_ms, mut cli_ms) = (Samples::default(), Samples::default());
    for round in 0..rounds {
        change(&ours, round);
        let started = Instant::now();
        assert!(repo.commit_all("turn").unwrap().is_some());
        ours_ms.push_ms(started.elapsed());

        change(&theirs, round);
        let started = Instant::now();
        git(&theirs, &["add", "-A"]);
        commit(&theirs, "turn");
        cli_ms.push_ms(started.elapsed());
    }
    let mut ratio = Samples::default();
    ratio.push(ours_ms.median() / cli_ms.median());
    let files = count_files(&ours);
    table.add(Row {
        figure: format!(
            "turn commit (git2, in process), Vite skeleton with node_modules ({files} files), 3 files changed"
        ),
        unit: "ms",
        budget: Budget::None,
        samples: ours_ms,
        of: "commits".into(),
        command: settings.command("commit"),
    });
    table.add(Row {
        figure: "`git add -A && git commit` (git CLI) on the same change".into(),
        unit: "ms",
        budget: Budget::None,
        samples: cli_ms,
        of: "commits".into(),
        command: settings.command("commit"),
    });
    table.add(Row {
        figure: "ratio turn commit / git CLI (medians)".into(),
        unit: "",
        budget: Budget::AtMost(0.5),
        samples: ratio,
        of: "ratio".into(),
        command: settings.command("commit"),
    });
}

/// A typical turn: two files edited, one added.
fn change(dir: &Path, round: usize) {
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

fn commit(dir: &Path, message: &str) {
    git(
        dir,
        &[
            "-c",
            "user.name=bench",
            "-c",
            "user.email=bench@localhost",
            "commit",
            "-q",
            "-m",
            message,
        ],
    );
}

fn git(dir: &Path, args: &[&str]) {
    let status = Command::new("git").arg("-C").arg(dir).args(args).status().unwrap();
    assert!(status.success(), "git {args:?}");
}

/// Files in the working tree, `node_modules` included (what a status scan walks past).
fn count_files(dir: &Path) -> usize {
    let mut count = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap().flatten() {
            if entry.file_name() == ".git" {
                continue;
            }
            match entry.file_type() {
                Ok(t) if t.is_dir() => stack.push(entry.path()),
                Ok(_) => count += 1,
                Err(_) => {}
            }
        }
    }
    count
}
