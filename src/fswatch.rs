//! Watching one file whose directory may not exist yet.
//!
//! inotify can only watch what exists, and editors, the Claude CLI and E2B's file API replace or
//! rewrite files in every possible way. So the watch is on the file's *directory*, or, while that is
//! missing, on its deepest existing ancestor, re-armed as directories come and go. The `notify`
//! callback never blocks: it `try_send`s into a channel. Consumers get a coalesced "look again"
//! signal and re-read the file themselves; a slow rescan covers anything inotify dropped.

use std::path::{Path, PathBuf};
use std::time::Duration;

use notify::{RecursiveMode, Watcher};
use tokio::sync::mpsc;
use tokio::time::{Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// How often the file is looked at even without an event.
const RESCAN_EVERY: Duration = Duration::from_secs(5);

/// Starts watching `file`. The receiver yields `()` whenever the file may have changed (and once at start).
pub fn watch_file(
    file: PathBuf,
    cancel: CancellationToken,
    tracker: &TaskTracker,
) -> Result<mpsc::Receiver<()>, notify::Error> {
    let dir = file
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("/"));
    let (raw_tx, mut raw_rx) = mpsc::channel::<notify::Result<notify::Event>>(256);
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        // Opening or reading a file changes nothing, and the consumers' own reads would otherwise wake
        // them again and again (inotify reports IN_OPEN and IN_CLOSE_NOWRITE): only changes count.
        if let Ok(event) = &event {
            if is_only_a_look(&event.kind) && !event.need_rescan() {
                return;
            }
        }
        // A full channel already holds a pending wake-up; dropping this one loses nothing.
        let _ = raw_tx.try_send(event);
    })?;
    let (tx, rx) = mpsc::channel(1);
    let _ = tx.try_send(());

    tracker.spawn(async move {
        let mut armed = arm(&mut watcher, None, &dir, false);
        let mut rescan = tokio::time::interval_at(Instant::now() + RESCAN_EVERY, RESCAN_EVERY);
        rescan.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            let wake = tokio::select! {
                _ = cancel.cancelled() => break,
                Some(event) = raw_rx.recv() => {
                    let (touches_file, touches_armed, on_the_way) = match &event {
                        Ok(event) => (
                            event.need_rescan() || event.paths.iter().any(|p| p == &file),
                            event.paths.iter().any(|p| Some(p) == armed.as_ref()),
                            // While an ancestor is watched, only a change to the next directory down matters.
                            event.need_rescan() || event.paths.iter().any(|p| dir.starts_with(p)),
                        ),
                        Err(_) => (true, true, true),
                    };
                    if touches_armed || (armed.as_ref() != Some(&dir) && on_the_way) {
                        armed = arm(&mut watcher, armed, &dir, touches_armed);
                        true
                    } else {
                        touches_file
                    }
                }
                _ = rescan.tick() => {
                    // Re-arming unconditionally also heals a directory deleted and recreated between two events.
                    armed = arm(&mut watcher, armed, &dir, true);
                    true
                }
            };
            if wake {
                let _ = tx.try_send(());
            }
        }
    });
    Ok(rx)
}

/// An open, a read, or a close after reading: nothing changed. (A close after writing still counts.)
fn is_only_a_look(kind: &notify::EventKind) -> bool {
    use notify::event::{AccessKind, AccessMode};
    matches!(kind, notify::EventKind::Access(access) if !matches!(access, AccessKind::Close(AccessMode::Write)))
}

/// Watches the deepest existing directory on the way to `dir`; returns what is watched now.
/// `force` re-creates the watch even on the same path (its inode may have changed).
fn arm(watcher: &mut notify::RecommendedWatcher, current: Option<PathBuf>, dir: &Path, force: bool) -> Option<PathBuf> {
    let target = dir.ancestors().find(|p| p.is_dir())?.to_path_buf();
    if !force && current.as_ref() == Some(&target) {
        return current;
    }
    if let Some(old) = current {
        let _ = watcher.unwatch(&old);
    }
    match watcher.watch(&target, RecursiveMode::NonRecursive) {
        Ok(()) => {
            if target != dir {
                tracing::debug!(watching = %target.display(), waiting_for = %dir.display(), "directory missing; watching its ancestor");
            }
            Some(target)
        }
        Err(error) => {
            tracing::warn!(path = %target.display(), %error, "cannot watch directory; relying on periodic rescans");
            None
        }
    }
}

/// Waits for a signal, then keeps absorbing signals until `quiet` passes without one (at most `max`).
/// Returns `false` when the watch has ended.
pub async fn next_settled(rx: &mut mpsc::Receiver<()>, quiet: Duration, max: Duration) -> bool {
    if rx.recv().await.is_none() {
        return false;
    }
    let deadline = Instant::now() + max;
    loop {
        let until = (Instant::now() + quiet).min(deadline);
        match tokio::time::timeout_at(until, rx.recv()).await {
            Ok(Some(())) if Instant::now() < deadline => continue,
            Ok(None) => return false,
            _ => return true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn expect_signal(rx: &mut mpsc::Receiver<()>) {
        tokio::time::timeout(Duration::from_secs(3), rx.recv())
            .await
            .expect("a signal within 3 s")
            .expect("watch alive");
    }

    async fn drain(rx: &mut mpsc::Receiver<()>) {
        while tokio::time::timeout(Duration::from_millis(100), rx.recv())
            .await
            .is_ok()
        {}
    }

    #[tokio::test]
    async fn signals_when_a_file_appears_in_a_directory_created_later() {
        let root = tempfile::tempdir().unwrap();
        let file = root.path().join("a/b/token");
        let cancel = CancellationToken::new();
        let tracker = TaskTracker::new();
        let mut rx = watch_file(file.clone(), cancel.clone(), &tracker).unwrap();
        expect_signal(&mut rx).await;
        drain(&mut rx).await;
        // While only the root exists, what else happens there is no reason to look.
        std::fs::write(root.path().join("busy.log"), "x").unwrap();
        std::fs::create_dir(root.path().join("other")).unwrap();
        assert!(
            tokio::time::timeout(Duration::from_millis(300), rx.recv())
                .await
                .is_err(),
            "activity beside the path must not wake"
        );
        std::fs::create_dir_all(root.path().join("a/b")).unwrap();
        expect_signal(&mut rx).await;
        drain(&mut rx).await;
        std::fs::write(&file, "x").unwrap();
        expect_signal(&mut rx).await;
        drain(&mut rx).await;
        std::fs::write(root.path().join("a/b/unrelated"), "x").unwrap();
        assert!(
            tokio::time::timeout(Duration::from_millis(300), rx.recv())
                .await
                .is_err(),
            "an unrelated file must not wake"
        );
        cancel.cancel();
        tracker.close();
        tracker.wait().await;
    }

    #[tokio::test]
    async fn reading_the_file_is_not_a_change() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("f.json");
        std::fs::write(&file, b"{}").unwrap();
        let cancel = CancellationToken::new();
        let tracker = TaskTracker::new();
        let mut rx = watch_file(file.clone(), cancel.clone(), &tracker).unwrap();
        expect_signal(&mut rx).await;
        drain(&mut rx).await;
        for _ in 0..20 {
            assert_eq!(std::fs::read(&file).unwrap(), b"{}");
        }
        assert!(
            tokio::time::timeout(Duration::from_millis(300), rx.recv())
                .await
                .is_err(),
            "reads must not wake the watcher"
        );
        std::fs::write(&file, b"{\"a\":1}").unwrap();
        expect_signal(&mut rx).await;
        cancel.cancel();
    }

    #[tokio::test(start_paused = true)]
    async fn next_settled_coalesces_a_burst() {
        let (tx, mut rx) = mpsc::channel(1);
        tx.try_send(()).unwrap();
        let sender = tokio::spawn(async move {
            for _ in 0..5 {
                tokio::time::sleep(Duration::from_millis(2)).await;
                let _ = tx.try_send(());
            }
            tx
        });
        let start = Instant::now();
        assert!(next_settled(&mut rx, Duration::from_millis(10), Duration::from_millis(100)).await);
        assert!(start.elapsed() >= Duration::from_millis(20));
        let tx = sender.await.unwrap();
        drop(tx);
        assert!(!next_settled(&mut rx, Duration::from_millis(10), Duration::from_millis(100)).await);
    }
}
