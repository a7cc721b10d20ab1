//! The repository layer against real repositories in temp folders, checked from the outside with the `git` CLI.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant, SystemTime};

use super::*;

/// Runs `git` in `dir` with no user or system config; panics unless it succeeds. Returns stdout, trimmed.
fn git(dir: &Path, args: &[&str]) -> String {
    let output = git_command(dir, args).output().unwrap();
    assert!(
        output.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap().trim().to_owned()
}

fn git_succeeds(dir: &Path, args: &[&str]) -> bool {
    git_command(dir, args).output().unwrap().status.success()
}

fn git_command(dir: &Path, args: &[&str]) -> Command {
    let mut command = Command::new("git");
    command
        .args(["-c", "user.name=Outside", "-c", "user.email=outside@example.com"])
        .args(args)
        .current_dir(dir)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null");
    command
}

fn write(dir: &Path, path: &str, text: &str) {
    let path = dir.join(path);
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, text).unwrap();
}

/// Every file under `dir` except `.git`, with its bytes.
fn files(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    fn walk(root: &Path, dir: &Path, into: &mut BTreeMap<PathBuf, Vec<u8>>) {
        for entry in fs::read_dir(dir).unwrap().flatten() {
            let path = entry.path();
            if path == root.join(".git") {
                continue;
            }
            if entry.file_type().unwrap().is_dir() {
                walk(root, &path, into);
            } else {
                into.insert(path.strip_prefix(root).unwrap().to_path_buf(), fs::read(&path).unwrap());
            }
        }
    }
    let mut into = BTreeMap::new();
    walk(dir, dir, &mut into);
    into
}

/// `files` without ignored paths.
fn tracked_view(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    files(dir)
        .into_iter()
        .filter(|(path, _)| !path.starts_with("node_modules") && !path.starts_with("dist"))
        .collect()
}

fn fsck(dir: &Path) {
    git(dir, &["fsck", "--strict", "--no-progress"]);
}

fn exists(dir: &Path, sha: &str) -> bool {
    git_succeeds(dir, &["cat-file", "-e", &format!("{sha}^{{commit}}")])
}

/// A repository with three turn commits: `a.txt` v1 → v2 → v3.
struct Turns {
    dir: tempfile::TempDir,
    repo: Repo,
    initial: String,
    turns: Vec<String>,
}

fn three_turns() -> Turns {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "index.html", "<html></html>\n");
    let repo = Repo::open_or_init(dir.path(), Author::default()).unwrap();
    let initial = repo.head().unwrap().0;
    let mut turns = Vec::new();
    for version in 1..=3 {
        write(dir.path(), "a.txt", &format!("v{version}\n"));
        write(dir.path(), &format!("added-in-{version}.txt"), "x\n");
        turns.push(repo.commit_all(&format!("turn {version}")).unwrap().unwrap().sha);
    }
    Turns {
        dir,
        repo,
        initial,
        turns,
    }
}

#[test]
fn first_run_commits_the_folder_on_main_and_writes_the_exclude_file() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "src/main.tsx", "render()\n");
    write(dir.path(), "node_modules/react/index.js", "module.exports = {}\n");
    write(dir.path(), "npm-debug.log", "noise\n");
    let repo = Repo::open_or_init(dir.path(), Author::default()).unwrap();

    assert_eq!(git(dir.path(), &["symbolic-ref", "HEAD"]), "refs/heads/main");
    assert_eq!(
        git(dir.path(), &["log", "--format=%s|%an <%ae>|%cn"]),
        "Initial app|acp-bridge <acp-bridge@localhost>|acp-bridge"
    );
    assert_eq!(
        git(dir.path(), &["ls-tree", "-r", "--name-only", "HEAD"]),
        "src/main.tsx"
    );
    let exclude = fs::read_to_string(dir.path().join(".git/info/exclude")).unwrap();
    for pattern in EXCLUDED {
        assert_eq!(
            exclude.lines().filter(|line| line == pattern).count(),
            1,
            "{pattern} in {exclude:?}"
        );
    }
    assert_eq!(repo.head().unwrap(), (git(dir.path(), &["rev-parse", "HEAD"]), false));
    fsck(dir.path());
}

#[test]
fn first_run_on_an_empty_folder_makes_an_empty_first_commit() {
    let dir = tempfile::tempdir().unwrap();
    let repo = Repo::open_or_init(dir.path(), Author::default()).unwrap();
    let history = repo.history(10).unwrap();
    assert_eq!(history.commits.len(), 1);
    assert_eq!(history.commits[0].message, "Initial app");
    assert_eq!(history.commits[0].files_changed, Vec::<String>::new());
    assert_eq!(git(dir.path(), &["ls-tree", "-r", "HEAD"]), "");
    assert_eq!(history.branch, "main");
}

#[test]
fn reopening_keeps_the_history_and_does_not_repeat_exclude_lines() {
    let turns = three_turns();
    drop(turns.repo);
    let repo = Repo::open_or_init(turns.dir.path(), Author::default()).unwrap();
    assert_eq!(repo.head().unwrap(), (turns.turns[2].clone(), false));
    assert_eq!(repo.history(100).unwrap().commits.len(), 4);
    let exclude = fs::read_to_string(turns.dir.path().join(".git/info/exclude")).unwrap();
    assert_eq!(
        exclude.lines().filter(|line| *line == "node_modules/").count(),
        1,
        "{exclude}"
    );
}

#[test]
fn an_existing_repository_gets_the_exclude_lines_appended_and_keeps_its_own() {
    let dir = tempfile::tempdir().unwrap();
    git(dir.path(), &["init", "-q", "-b", "main"]);
    fs::write(dir.path().join(".git/info/exclude"), "secret.txt").unwrap();
    write(dir.path(), "secret.txt", "hidden\n");
    write(dir.path(), "app.ts", "x\n");
    git(dir.path(), &["add", "-A"]);
    git(dir.path(), &["commit", "-qm", "made by hand"]);

    let repo = Repo::open_or_init(dir.path(), Author::default()).unwrap();
    let exclude = fs::read_to_string(dir.path().join(".git/info/exclude")).unwrap();
    assert!(exclude.starts_with("secret.txt\n# acp-bridge"), "{exclude:?}");
    assert_eq!(
        repo.history(10).unwrap().commits.len(),
        1,
        "no extra commit for an existing history"
    );
    assert_eq!(repo.commit_all("nothing").unwrap().map(|c| c.sha), None);
}

#[test]
fn a_repository_without_commits_gets_the_initial_commit_on_main() {
    let dir = tempfile::tempdir().unwrap();
    git(dir.path(), &["init", "-q", "-b", "master"]);
    write(dir.path(), "app.ts", "x\n");
    let repo = Repo::open_or_init(dir.path(), Author::default()).unwrap();
    assert_eq!(git(dir.path(), &["symbolic-ref", "HEAD"]), "refs/heads/main");
    assert_eq!(repo.history(10).unwrap().commits[0].files_changed, ["app.ts"]);
}

#[test]
fn a_subfolder_of_another_repository_gets_its_own_repository() {
    let outer = tempfile::tempdir().unwrap();
    git(outer.path(), &["init", "-q", "-b", "main"]);
    let app = outer.path().join("app");
    write(&app, "app.ts", "x\n");
    Repo::open_or_init(&app, Author::default()).unwrap();
    assert!(app.join(".git").is_dir());
    assert_eq!(
        git(&app, &["rev-parse", "--show-toplevel"]),
        fs::canonicalize(&app).unwrap().to_str().unwrap()
    );
}

#[test]
fn one_commit_holds_adds_edits_deletions_and_renames() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "edit.txt", "old\n");
    write(dir.path(), "delete.txt", "bye\n");
    write(dir.path(), "src/old-name.ts", "export const x = 1;\n");
    let repo = Repo::open_or_init(dir.path(), Author::default()).unwrap();
    let initial = repo.head().unwrap().0;

    write(dir.path(), "edit.txt", "new\n");
    fs::remove_file(dir.path().join("delete.txt")).unwrap();
    fs::rename(dir.path().join("src/old-name.ts"), dir.path().join("src/new-name.ts")).unwrap();
    write(dir.path(), "deep/new/add.txt", "hi\n");
    let commit = repo
        .commit_all(&turn_message("Do four things", "s1", "t1", "end_turn"))
        .unwrap()
        .unwrap();

    assert_eq!(
        commit.files_changed,
        [
            "deep/new/add.txt",
            "delete.txt",
            "edit.txt",
            "src/new-name.ts",
            "src/old-name.ts"
        ],
        "a rename lists the old and the new path"
    );
    assert_eq!(commit.parent.as_deref(), Some(initial.as_str()));
    assert_eq!(
        commit.message,
        "Do four things\n\nSession: s1\nTurn: t1\nStop-Reason: end_turn"
    );
    let now_ms = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    assert!(
        commit.time_ms <= now_ms && now_ms - commit.time_ms < 60_000,
        "{}",
        commit.time_ms
    );

    assert_eq!(git(dir.path(), &["rev-list", "--count", "HEAD"]), "2");
    assert_eq!(git(dir.path(), &["rev-parse", "HEAD"]), commit.sha);
    assert_eq!(
        git(dir.path(), &["status", "--porcelain"]),
        "",
        "index and working tree agree with the commit"
    );
    assert_eq!(
        git(dir.path(), &["log", "-1", "--format=%(trailers:key=Turn,valueonly)"]),
        "t1",
        "git reads the trailers"
    );
    assert_eq!(
        git(dir.path(), &["diff", "--no-renames", "--name-only", &initial, "HEAD"])
            .lines()
            .count(),
        5
    );
    fsck(dir.path());

    assert_eq!(repo.undo().unwrap(), initial);
    assert!(!dir.path().join("deep").exists(), "emptied folders go too");
    assert_eq!(
        fs::read_to_string(dir.path().join("src/old-name.ts")).unwrap(),
        "export const x = 1;\n"
    );
    assert!(!dir.path().join("src/new-name.ts").exists());
}

#[test]
fn nothing_changed_commits_nothing() {
    let turns = three_turns();
    assert!(turns.repo.commit_all("again").unwrap().is_none());
    // Touching a file without changing it is no change either.
    write(turns.dir.path(), "a.txt", "v3\n");
    assert!(turns.repo.commit_all("again").unwrap().is_none());
    assert_eq!(git(turns.dir.path(), &["rev-parse", "HEAD"]), turns.turns[2]);
}

#[test]
fn changes_staged_by_an_outside_git_add_are_committed_too() {
    let turns = three_turns();
    write(turns.dir.path(), "staged.txt", "by the agent\n");
    git(turns.dir.path(), &["add", "staged.txt"]);
    let commit = turns.repo.commit_all("turn").unwrap().unwrap();
    assert_eq!(commit.files_changed, ["staged.txt"]);
}

#[test]
fn node_modules_is_never_committed_even_after_gitignore_is_deleted() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), ".gitignore", "node_modules\n");
    write(dir.path(), "node_modules/react/index.js", "module.exports = {}\n");
    let repo = Repo::open_or_init(dir.path(), Author::default()).unwrap();

    fs::remove_file(dir.path().join(".gitignore")).unwrap();
    write(dir.path(), "node_modules/vite/index.js", "export {}\n");
    write(dir.path(), "dist/index.html", "built\n");
    write(dir.path(), "web/node_modules/x.js", "nested\n");
    write(dir.path(), ".playwright-mcp/page.png", "png\n");
    write(dir.path(), "vite.log", "log\n");
    let commit = repo.commit_all("drop the gitignore").unwrap().unwrap();

    assert_eq!(commit.files_changed, [".gitignore"]);
    assert_eq!(git(dir.path(), &["ls-tree", "-r", "--name-only", "HEAD"]), "");
    assert!(!repo.head().unwrap().1, "ignored files do not make the tree dirty");
}

#[test]
fn undo_and_redo_restore_the_working_tree_byte_for_byte() {
    let turns = three_turns();
    let dir = turns.dir.path();
    write(dir, "node_modules/dep/index.js", "dependency\n");
    let mut views = vec![tracked_view(dir)];
    let ignored_before: Vec<_> = files(dir)
        .into_iter()
        .filter(|(p, _)| p.starts_with("node_modules"))
        .collect();

    assert_eq!(turns.repo.undo().unwrap(), turns.turns[1]);
    views.push(tracked_view(dir));
    assert!(!dir.join("added-in-3.txt").exists(), "a file added later is removed");
    assert_eq!(fs::read_to_string(dir.join("a.txt")).unwrap(), "v2\n");
    assert_eq!(turns.repo.undo().unwrap(), turns.turns[0]);
    assert_eq!(turns.repo.undo().unwrap(), turns.initial);
    assert!(matches!(turns.repo.undo(), Err(RepoError::NothingToUndo)));
    assert!(!dir.join("a.txt").exists());
    assert_eq!(git(dir, &["status", "--porcelain"]), "");

    let history = turns.repo.history(10).unwrap();
    assert_eq!(history.head, turns.initial);
    assert_eq!(history.redo, turns.turns, "next first");
    assert_eq!(history.commits.len(), 1);

    assert_eq!(turns.repo.redo().unwrap(), turns.turns[0]);
    assert_eq!(turns.repo.redo().unwrap(), turns.turns[1]);
    assert_eq!(tracked_view(dir), views[1]);
    assert_eq!(turns.repo.redo().unwrap(), turns.turns[2]);
    assert_eq!(tracked_view(dir), views[0]);
    assert!(matches!(turns.repo.redo(), Err(RepoError::NothingToRedo)));
    assert_eq!(git(dir, &["status", "--porcelain"]), "");
    assert_eq!(
        git(dir, &["for-each-ref", "refs/acp-bridge/redo"]),
        "",
        "the redo ref is gone at the tip"
    );

    let ignored_after: Vec<_> = files(dir)
        .into_iter()
        .filter(|(p, _)| p.starts_with("node_modules"))
        .collect();
    assert_eq!(ignored_after, ignored_before, "ignored files are untouched by moves");
    fsck(dir);
}

#[test]
fn redo_without_undo_is_nothing_to_redo() {
    let turns = three_turns();
    assert!(matches!(turns.repo.redo(), Err(RepoError::NothingToRedo)));
}

#[test]
fn undo_at_the_first_commit_with_a_dirty_tree_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let repo = Repo::open_or_init(dir.path(), Author::default()).unwrap();
    write(dir.path(), "draft.txt", "unsaved\n");
    assert!(matches!(repo.undo(), Err(RepoError::NothingToUndo)));
    assert_eq!(fs::read_to_string(dir.path().join("draft.txt")).unwrap(), "unsaved\n");
    assert_eq!(git(dir.path(), &["rev-list", "--all", "--count"]), "1");
}

#[test]
fn undo_with_a_dirty_edit_snapshots_it_and_goes_back_one_turn() {
    let turns = three_turns();
    let dir = turns.dir.path();
    write(dir, "a.txt", "edited by hand\n");
    write(dir, "hand.txt", "new by hand\n");
    let dirty_view = tracked_view(dir);
    assert!(turns.repo.head().unwrap().1);

    assert_eq!(
        turns.repo.undo().unwrap(),
        turns.turns[1],
        "the parent of the last turn commit"
    );
    assert_eq!(fs::read_to_string(dir.join("a.txt")).unwrap(), "v2\n");
    assert!(!dir.join("hand.txt").exists());
    assert!(!turns.repo.head().unwrap().1);

    let history = turns.repo.history(10).unwrap();
    assert_eq!(history.redo.len(), 2, "the undone turn, then the snapshot");
    assert_eq!(history.redo[0], turns.turns[2]);
    let snapshot = &history.redo[1];
    assert!(exists(dir, snapshot));
    assert_eq!(
        git(dir, &["log", "-1", "--format=%s", snapshot]),
        "Snapshot before undo"
    );
    assert_eq!(git(dir, &["rev-parse", &format!("{snapshot}^")]), turns.turns[2]);

    turns.repo.redo().unwrap();
    assert_eq!(turns.repo.redo().unwrap(), *snapshot);
    assert_eq!(tracked_view(dir), dirty_view, "two redos bring the dirty edit back");
    fsck(dir);
}

#[test]
fn a_dirty_undo_in_the_middle_of_the_redo_list_keeps_the_old_list() {
    let turns = three_turns();
    let dir = turns.dir.path();
    turns.repo.undo().unwrap();
    turns.repo.undo().unwrap(); // at turn 1; redo = [turn 2, turn 3]
    write(dir, "a.txt", "diverged\n");
    assert_eq!(turns.repo.undo().unwrap(), turns.initial);
    let history = turns.repo.history(10).unwrap();
    assert_eq!(history.redo[0], turns.turns[0]);
    assert_eq!(history.redo.len(), 2);
    assert_eq!(
        git(dir, &["rev-parse", &format!("refs/acp-bridge/kept/{}", turns.turns[2])]),
        turns.turns[2]
    );
    assert_eq!(
        turns.repo.checkout(&turns.turns[2]).unwrap(),
        turns.turns[2],
        "the old line is still checkable"
    );
}

#[test]
fn redo_with_a_dirty_edit_keeps_it_as_a_snapshot() {
    let turns = three_turns();
    let dir = turns.dir.path();
    turns.repo.undo().unwrap();
    write(dir, "a.txt", "edited after undo\n");
    assert_eq!(turns.repo.redo().unwrap(), turns.turns[2]);
    assert_eq!(fs::read_to_string(dir.join("a.txt")).unwrap(), "v3\n");

    let kept = git(
        dir,
        &["for-each-ref", "--format=%(objectname)", "refs/acp-bridge/kept/"],
    );
    assert_eq!(kept.lines().count(), 1);
    assert_eq!(git(dir, &["show", &format!("{kept}:a.txt")]), "edited after undo");
    assert_eq!(git(dir, &["log", "-1", "--format=%s", &kept]), "Snapshot before redo");
    assert_eq!(
        turns.repo.checkout(&kept).unwrap(),
        kept,
        "a kept snapshot can be checked out"
    );
    assert_eq!(fs::read_to_string(dir.join("a.txt")).unwrap(), "edited after undo\n");
}

#[test]
fn a_new_commit_clears_the_redo_list_but_keeps_its_commits() {
    let turns = three_turns();
    let dir = turns.dir.path();
    turns.repo.undo().unwrap();
    turns.repo.undo().unwrap();
    write(dir, "b.txt", "another idea\n");
    let commit = turns.repo.commit_all("turn 2b").unwrap().unwrap();
    assert_eq!(commit.parent.as_deref(), Some(turns.turns[0].as_str()));

    let history = turns.repo.history(10).unwrap();
    assert!(history.redo.is_empty());
    assert!(matches!(turns.repo.redo(), Err(RepoError::NothingToRedo)));
    assert_eq!(git(dir, &["for-each-ref", "refs/acp-bridge/redo"]), "");
    for sha in &turns.turns[1..] {
        assert!(exists(dir, sha));
        assert!(git(dir, &["branch", "--contains", sha, "--all"]).is_empty(), "off main");
    }
    assert_eq!(
        git(dir, &["for-each-ref", "--format=%(refname)", "refs/acp-bridge/kept/"]),
        format!("refs/acp-bridge/kept/{}", turns.turns[2])
    );
    // `git gc --prune=now` keeps them: they are reachable.
    git(dir, &["reflog", "expire", "--expire=now", "--all"]);
    git(dir, &["gc", "-q", "--prune=now"]);
    assert!(exists(dir, &turns.turns[1]) && exists(dir, &turns.turns[2]));
    fsck(dir);
}

#[test]
fn checkout_an_older_commit_then_redo_walks_to_the_tip() {
    let turns = three_turns();
    let dir = turns.dir.path();
    let tip_view = tracked_view(dir);
    assert_eq!(
        turns.repo.checkout(&turns.turns[0][..7]).unwrap(),
        turns.turns[0],
        "abbreviated sha"
    );
    assert_eq!(fs::read_to_string(dir.join("a.txt")).unwrap(), "v1\n");
    assert!(!dir.join("added-in-2.txt").exists());
    assert_eq!(turns.repo.history(10).unwrap().redo, turns.turns[1..]);

    // Forward along the redo list, then back to the tip.
    assert_eq!(
        turns.repo.checkout(&turns.turns[1].to_uppercase()).unwrap(),
        turns.turns[1]
    );
    assert_eq!(turns.repo.history(10).unwrap().redo, turns.turns[2..]);
    assert_eq!(turns.repo.redo().unwrap(), turns.turns[2]);
    assert_eq!(tracked_view(dir), tip_view);
    assert!(turns.repo.history(10).unwrap().redo.is_empty());
    assert_eq!(
        git(dir, &["for-each-ref", "refs/acp-bridge/"]),
        "",
        "nothing needed keeping"
    );
}

#[test]
fn checkout_with_a_dirty_edit_keeps_it_as_a_snapshot() {
    let turns = three_turns();
    let dir = turns.dir.path();
    write(dir, "added-in-1.txt", "changed\n");
    assert_eq!(
        turns.repo.checkout(&turns.turns[2]).unwrap(),
        turns.turns[2],
        "checkout of HEAD resets the edit"
    );
    assert_eq!(fs::read_to_string(dir.join("added-in-1.txt")).unwrap(), "x\n");
    let kept = git(
        dir,
        &["for-each-ref", "--format=%(objectname)", "refs/acp-bridge/kept/"],
    );
    assert_eq!(
        git(dir, &["log", "-1", "--format=%s", &kept]),
        "Snapshot before checkout"
    );
    assert_eq!(git(dir, &["show", &format!("{kept}:added-in-1.txt")]), "changed");
}

#[test]
fn checkout_of_a_kept_line_offers_redo_along_it_and_keeps_the_line_left() {
    let turns = three_turns();
    let dir = turns.dir.path();
    turns.repo.undo().unwrap();
    turns.repo.undo().unwrap();
    write(dir, "b.txt", "b\n");
    let other = turns.repo.commit_all("turn 2b").unwrap().unwrap().sha; // turns 2 and 3 are kept now

    assert_eq!(turns.repo.checkout(&turns.turns[1]).unwrap(), turns.turns[1]);
    assert_eq!(
        turns.repo.history(10).unwrap().redo,
        [turns.turns[2].clone()],
        "the kept line's tip is ahead"
    );
    assert!(!dir.join("b.txt").exists());
    assert!(
        git(dir, &["for-each-ref", "refs/acp-bridge/kept/"]).contains(&other),
        "the line left is kept"
    );
    assert_eq!(turns.repo.redo().unwrap(), turns.turns[2]);
    assert_eq!(turns.repo.checkout(&other).unwrap(), other);
    assert_eq!(fs::read_to_string(dir.join("b.txt")).unwrap(), "b\n");
    fsck(dir);
}

#[test]
fn checkout_rejects_malformed_unknown_blob_and_unreachable_shas() {
    let turns = three_turns();
    let dir = turns.dir.path();
    for sha in ["", "abc123", "not-hex-at-all", "g123456", &"a".repeat(41), " 1234567"] {
        assert!(
            matches!(turns.repo.checkout(sha), Err(RepoError::MalformedSha { .. })),
            "{sha:?}"
        );
    }
    assert!(matches!(
        turns.repo.checkout("0000000"),
        Err(RepoError::UnknownSha { .. })
    ));
    assert!(matches!(
        turns.repo.checkout(&"0".repeat(40)),
        Err(RepoError::UnknownSha { .. })
    ));

    let blob = git(dir, &["rev-parse", "HEAD:a.txt"]);
    assert!(matches!(turns.repo.checkout(&blob), Err(RepoError::UnknownSha { .. })));
    let tree = git(dir, &["rev-parse", "HEAD^{tree}"]);
    assert!(matches!(turns.repo.checkout(&tree), Err(RepoError::UnknownSha { .. })));

    // A commit that exists but is outside the app's history.
    let outside = git(dir, &["commit-tree", "-m", "stray", &tree]);
    assert!(exists(dir, &outside));
    let error = turns.repo.checkout(&outside).unwrap_err();
    assert!(
        matches!(&error, RepoError::UnknownSha { sha } if *sha == outside),
        "{error:?}"
    );
    assert_eq!(
        turns.repo.head().unwrap(),
        (turns.turns[2].clone(), false),
        "nothing moved"
    );
}

#[test]
fn a_stale_index_lock_is_removed() {
    let turns = three_turns();
    let dir = turns.dir.path();
    let lock = dir.join(".git/index.lock");
    fs::write(&lock, b"").unwrap();
    fs::File::options()
        .write(true)
        .open(&lock)
        .unwrap()
        .set_modified(SystemTime::now() - Duration::from_secs(30))
        .unwrap();
    write(dir, "a.txt", "after a crash\n");
    assert!(turns.repo.commit_all("turn").unwrap().is_some());
    assert!(!lock.exists());

    // And on open, as after a daemon restart.
    fs::write(&lock, b"").unwrap();
    fs::File::options()
        .write(true)
        .open(&lock)
        .unwrap()
        .set_modified(SystemTime::now() - Duration::from_secs(30))
        .unwrap();
    drop(turns.repo);
    Repo::open_or_init(dir, Author::default()).unwrap();
    assert!(!lock.exists());
    git(dir, &["add", "-A"]); // the CLI can write the index again
}

#[test]
fn an_index_lock_held_by_a_live_git_is_waited_for_not_removed() {
    let turns = three_turns();
    let dir = turns.dir.path();
    // A process that holds the lock open for a while, then lets go, as git does.
    let mut holder = Command::new("sh")
        .args(["-c", "exec 3>.git/index.lock; sleep 0.6; rm .git/index.lock"])
        .current_dir(dir)
        .spawn()
        .unwrap();
    let lock = dir.join(".git/index.lock");
    let deadline = Instant::now() + Duration::from_secs(5);
    while !lock.exists() {
        assert!(Instant::now() < deadline, "the holder never made its lock");
        std::thread::sleep(Duration::from_millis(5));
    }
    write(dir, "a.txt", "while locked\n");
    let started = Instant::now();
    assert!(turns.repo.commit_all("turn").unwrap().is_some());
    assert!(
        started.elapsed() >= Duration::from_millis(300),
        "{:?}",
        started.elapsed()
    );
    assert!(
        holder.wait().unwrap().success(),
        "the holder removed its own lock (we did not)"
    );
}

#[test]
fn head_moved_off_main_by_an_outside_checkout_is_brought_back() {
    let turns = three_turns();
    let dir = turns.dir.path();
    git(dir, &["checkout", "-q", "--detach", &turns.turns[0]]);
    write(dir, "a.txt", "on a detached head\n");
    let commit = turns.repo.commit_all("turn").unwrap().unwrap();
    assert_eq!(commit.parent.as_deref(), Some(turns.turns[0].as_str()));
    assert_eq!(git(dir, &["symbolic-ref", "HEAD"]), "refs/heads/main");
    assert_eq!(git(dir, &["rev-parse", "main"]), commit.sha);
    assert!(
        git(dir, &["for-each-ref", "refs/acp-bridge/kept/"]).contains(&turns.turns[2]),
        "old main is kept"
    );
}

#[test]
fn history_is_the_first_parent_chain_newest_first_with_files() {
    let turns = three_turns();
    let history = turns.repo.history(2).unwrap();
    assert_eq!(history.head, turns.turns[2]);
    assert!(!history.dirty);
    assert_eq!(
        history.commits.iter().map(|c| c.sha.as_str()).collect::<Vec<_>>(),
        [&turns.turns[2], &turns.turns[1]]
    );
    assert_eq!(history.commits[0].parent.as_deref(), Some(turns.turns[1].as_str()));
    assert_eq!(history.commits[0].files_changed, ["a.txt", "added-in-3.txt"]);
    assert_eq!(history.commits[0].message, "turn 3");
    let all = turns.repo.history(100).unwrap();
    assert_eq!(all.commits.len(), 4);
    assert_eq!(all.commits[3].files_changed, ["index.html"]);
    assert_eq!(all.commits[3].parent, None);

    let json = serde_json::to_value(&all).unwrap();
    assert!(
        json["commits"][0]["timeMs"].is_u64() && json["commits"][0]["filesChanged"].is_array(),
        "{json}"
    );
    write(turns.dir.path(), "untracked.txt", "x\n");
    assert!(turns.repo.history(1).unwrap().dirty);
}

#[test]
fn repo_can_be_shared_across_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Repo>();
}
