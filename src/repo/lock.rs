//! Lock files left behind by a killed git process.
//!
//! git creates `<file>.lock` next to a file it rewrites and renames it into place when done. A process killed in
//! between leaves the lock, and every later write fails until it is removed. A lock is stale when no live process
//! has it open (found through `/proc/<pid>/fd`) and it is at least a second old: git keeps the index lock open while
//! it writes, and closes a ref lock only just before renaming it. A lock a live process holds is waited for, up to a
//! few seconds, and then reported as [`RepoError::Locked`].

use std::fs;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use super::error::RepoError;

/// The lock files the repository layer's writes go through, relative to the git directory.
const LOCKS: &[&str] = &[
    "index.lock",
    "HEAD.lock",
    "refs/heads/main.lock",
    "refs/acp-bridge/redo.lock",
    "packed-refs.lock",
    "config.lock",
];
/// How old an unheld lock must be before it counts as stale.
const STALE_AFTER: Duration = Duration::from_secs(1);
/// How long to wait for a live holder to let go.
const WAIT_FOR_HOLDER: Duration = Duration::from_secs(3);
const POLL: Duration = Duration::from_millis(50);

/// Removes the stale lock files in `git_dir`; waits for held ones. The common case (no lock) costs one `lstat` each.
pub(super) fn clear_stale_locks(git_dir: &Path) -> Result<(), RepoError> {
    for name in LOCKS {
        let path = git_dir.join(name);
        if fs::symlink_metadata(&path).is_ok() {
            clear_if_stale(&path)?;
        }
    }
    Ok(())
}

fn clear_if_stale(path: &Path) -> Result<(), RepoError> {
    let deadline = Instant::now() + WAIT_FOR_HOLDER;
    // `/proc/<pid>/fd/<n>` links to the resolved path.
    let resolved = fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    loop {
        let modified = match fs::symlink_metadata(path) {
            Ok(metadata) => metadata.modified().ok(),
            Err(error) if error.kind() == ErrorKind::NotFound => return Ok(()),
            Err(source) => {
                return Err(RepoError::Io {
                    op: "inspect a git lock file",
                    source,
                });
            }
        };
        // A modification time in the future (clock change) does not block recovery: the holder check decides.
        let old_enough = match modified.map(|at| SystemTime::now().duration_since(at)) {
            Some(Ok(age)) => age >= STALE_AFTER,
            Some(Err(_)) | None => true,
        };
        if old_enough && !held_open(&resolved) {
            return match fs::remove_file(path) {
                Ok(()) => {
                    tracing::warn!(lock = %path.display(), "removed a stale git lock file (no process holds it)");
                    Ok(())
                }
                Err(error) if error.kind() == ErrorKind::NotFound => Ok(()),
                Err(source) => Err(RepoError::Io {
                    op: "remove a stale git lock file",
                    source,
                }),
            };
        }
        if Instant::now() >= deadline {
            return Err(RepoError::Locked {
                path: path.to_path_buf(),
            });
        }
        std::thread::sleep(POLL);
    }
}

/// Whether any process we can see has `path` open.
fn held_open(path: &Path) -> bool {
    let Ok(processes) = fs::read_dir("/proc") else {
        return false;
    };
    processes
        .flatten()
        .filter(|entry| entry.file_name().to_string_lossy().bytes().all(|b| b.is_ascii_digit()))
        .any(|process| {
            let Ok(fds) = fs::read_dir(process.path().join("fd")) else {
                return false;
            };
            fds.flatten()
                .any(|fd| fs::read_link(fd.path()).is_ok_and(|target: PathBuf| target == path))
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs::File;

    fn make_old(path: &Path) {
        File::options()
            .write(true)
            .open(path)
            .unwrap()
            .set_modified(SystemTime::now() - Duration::from_secs(60))
            .unwrap();
    }

    #[test]
    fn an_old_unheld_lock_is_removed_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let lock = dir.path().join("index.lock");
        fs::write(&lock, b"").unwrap();
        make_old(&lock);
        let started = Instant::now();
        clear_stale_locks(dir.path()).unwrap();
        assert!(!lock.exists());
        assert!(
            started.elapsed() < Duration::from_millis(500),
            "{:?}",
            started.elapsed()
        );
    }

    #[test]
    fn a_fresh_unheld_lock_is_removed_once_a_second_old() {
        let dir = tempfile::tempdir().unwrap();
        let lock = dir.path().join("HEAD.lock");
        fs::write(&lock, b"").unwrap();
        clear_stale_locks(dir.path()).unwrap();
        assert!(!lock.exists());
    }

    #[test]
    fn a_lock_held_by_a_live_process_is_reported_not_removed() {
        let dir = tempfile::tempdir().unwrap();
        let lock = dir.path().join("index.lock");
        fs::write(&lock, b"").unwrap();
        make_old(&lock);
        let holder = File::open(&lock).unwrap(); // this test process is the live holder
        let error = clear_stale_locks(dir.path()).unwrap_err();
        assert!(
            matches!(error, RepoError::Locked { ref path } if path == &lock),
            "{error:?}"
        );
        assert!(lock.exists());
        drop(holder);
        clear_stale_locks(dir.path()).unwrap();
        assert!(!lock.exists());
    }
}
