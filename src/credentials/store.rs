//! Reads and writes `<claude-config-dir>/.credentials.json`.
//!
//! - Reads are live and retried briefly while the file looks torn (the CLI rewrites it in place).
//! - Writes never replace newer tokens with older ones, keep every other key, and are atomic
//!   (temp file in the same directory, fsync, rename, fsync the directory), mode 0600.
//! - Writes and watcher checks are serialized by one lock, so the watcher can tell the daemon's own
//!   writes (`credentials.written`) from everyone else's (`credentials.rotated`).

use std::collections::hash_map::RandomState;
use std::fs::{self, DirBuilder, File, OpenOptions};
use std::hash::BuildHasher;
use std::io::{self, Read, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Map, Value, json};
use tokio::sync::oneshot;
use tokio::time::Instant;

use super::document::{self, OAuthCredentials, Unusable, WriteRequest};
use super::error::CredentialsError;
use crate::events::{EventBus, now_ms};

/// How long a read keeps retrying a file that looks torn before answering 422.
const TORN_READ_BUDGET: Duration = Duration::from_secs(1);

/// What the daemon last saw in the file. Never holds a token, only a keyed hash of them.
#[derive(Debug, Clone, Default)]
pub struct Known {
    pub present: bool,
    pub expires_at: Option<u64>,
    pub scopes: Vec<String>,
    pub subscription_type: Option<String>,
    pub last_rotation_at: Option<u64>,
    pub rotations: u64,
    fingerprint: Option<u64>,
}

#[derive(Clone)]
pub struct CredentialsStore {
    inner: Arc<Inner>,
}

struct Inner {
    dir: PathBuf,
    file: PathBuf,
    lock: tokio::sync::Mutex<()>,
    known: Mutex<Known>,
    events: EventBus,
    hasher: RandomState,
    temp_counter: AtomicU64,
    /// Writes waiting to be committed (see [`CredentialsStore::write`]).
    queue: Mutex<Vec<Queued>>,
}

type Parsed = Result<(Map<String, Value>, OAuthCredentials), CredentialsError>;

impl CredentialsStore {
    pub fn new(config_dir: PathBuf, events: EventBus) -> Self {
        let file = config_dir.join(".credentials.json");
        Self {
            inner: Arc::new(Inner {
                dir: config_dir,
                file,
                lock: tokio::sync::Mutex::new(()),
                known: Mutex::new(Known::default()),
                events,
                hasher: RandomState::new(),
                temp_counter: AtomicU64::new(0),
                queue: Mutex::new(Vec::new()),
            }),
        }
    }

    pub fn file(&self) -> &Path {
        &self.inner.file
    }

    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    /// Removes the temporary files that daemons killed in the middle of a write left in the config directory
    /// (`.credentials.json.<pid>.<n>.tmp` of a process that is gone). Called at start.
    pub fn remove_stale_temp_files(&self) {
        let Ok(entries) = fs::read_dir(&self.inner.dir) else {
            return;
        };
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(pid) = name
                .to_str()
                .and_then(|n| n.strip_prefix(".credentials.json."))
                .and_then(|n| n.strip_suffix(".tmp"))
                .and_then(|n| n.split('.').next())
                .and_then(|pid| pid.parse::<i32>().ok())
            else {
                continue;
            };
            let gone = pid != std::process::id() as i32
                && pid > 0
                && nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None) == Err(nix::errno::Errno::ESRCH);
            if gone {
                match fs::remove_file(entry.path()) {
                    Ok(()) => {
                        tracing::info!(file = ?name, "removed a temporary credentials file left by a killed daemon")
                    }
                    Err(error) => {
                        tracing::warn!(file = ?name, %error, "cannot remove a stale temporary credentials file")
                    }
                }
            }
        }
    }

    /// A copy of what the daemon last saw (for `/health` and `/status`; no file access).
    pub fn known(&self) -> Known {
        self.inner.known.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The live credentials, read from disk.
    pub async fn read(&self) -> Result<OAuthCredentials, CredentialsError> {
        self.read_settled().await.parsed.map(|(_, credentials)| credentials)
    }

    /// Reads the file, retrying while it looks torn.
    async fn read_settled(&self) -> Snapshot {
        let deadline = Instant::now() + TORN_READ_BUDGET;
        let mut delay = Duration::from_millis(1);
        loop {
            // Read in place: the file is small (capped at `MAX_FILE_BYTES`) and local, so open + read + parse
            // take microseconds — less than handing the work to the blocking pool and back.
            let snapshot = Snapshot::load(&self.inner.file);
            match &snapshot.parsed {
                Err(CredentialsError::Unusable { reason })
                    if reason.may_be_torn() && Instant::now() + delay < deadline =>
                {
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_millis(25));
                }
                _ => return snapshot,
            }
        }
    }

    /// Writes credentials unless the file holds strictly newer ones (and `force` is not set).
    /// Returns the `expiresAt` written.
    ///
    /// Concurrent writes are committed together: the requests queued while one write is on its way to disk are
    /// decided in arrival order, as if applied one after another, and the result goes to disk in one atomic write
    /// (one fsync for all of them). Each is answered only once that write is durable. The work runs in its own
    /// task, so a client that goes away mid-write never leaves a half-recorded write behind.
    pub async fn write(&self, request: WriteRequest) -> Result<u64, CredentialsError> {
        let (reply, answer) = oneshot::channel();
        self.inner
            .queue
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(Queued { request, reply });
        let store = self.clone();
        tokio::spawn(async move { store.commit_queued().await });
        answer.await.unwrap_or(Err(CredentialsError::Lost))
    }

    /// Takes every queued write and commits them as one.
    async fn commit_queued(&self) {
        let _serialized = self.inner.lock.lock().await;
        let batch: Vec<Queued> = std::mem::take(&mut *self.inner.queue.lock().unwrap_or_else(|e| e.into_inner()))
            .into_iter()
            // Nobody waits for these any more (the client went away before they were decided): drop them.
            .filter(|queued| !queued.reply.is_closed())
            .collect();
        if batch.is_empty() {
            return;
        }
        let mut attempts = 0;
        let (decisions, written) = loop {
            attempts += 1;
            // Read the patient way: a torn read might hide newer tokens the CLI is writing right now.
            let Snapshot { bytes, parsed } = self.read_settled().await;
            let (keep, current) = match parsed {
                Ok((top, credentials)) => (Some(top), Some(credentials.expires_at)),
                Err(CredentialsError::NotFound) => (None, None),
                // An unusable file still has keys worth keeping if it is a JSON object, and if it still
                // holds tokens with a later expiry, they are protected like any others.
                Err(CredentialsError::Unusable { reason }) => {
                    let top = bytes.as_deref().and_then(json_object);
                    let current = top
                        .as_ref()
                        .filter(|_| reason != Unusable::EmptyTokens)
                        .and_then(document::expires_at_of);
                    (top, current)
                }
                Err(error) => {
                    for queued in batch {
                        let _ = queued.reply.send(Err(error.replicate()));
                    }
                    return;
                }
            };
            let (decisions, document) = decide(&batch, keep, current);
            let Some(document) = document else {
                break (decisions, None);
            };
            let inner = self.inner.clone();
            let outcome = tokio::task::spawn_blocking(move || inner.write_atomically(&document, bytes.as_deref()))
                .await
                .map_err(|source| CredentialsError::Task { source })
                .and_then(|outcome| outcome);
            match outcome {
                Ok(Outcome::Written) => {
                    let last = decisions.iter().rposition(Result::is_ok);
                    break (decisions, last);
                }
                // The CLI rewrote the file between our read and our rename: decide again on what it wrote.
                Ok(Outcome::ChangedUnderneath) if attempts < 5 => continue,
                Ok(Outcome::ChangedUnderneath) => break (answer_all(decisions, &CredentialsError::Contended), None),
                Err(error) => break (answer_all(decisions, &error), None),
            }
        };

        if let Some(last) = written {
            let credentials = &batch[last].request.credentials;
            {
                let mut known = self.inner.known.lock().unwrap_or_else(|e| e.into_inner());
                known.present = true;
                known.expires_at = Some(credentials.expires_at);
                known.scopes = credentials.scopes.clone();
                known.subscription_type = credentials.subscription_type.clone();
                known.fingerprint = Some(self.inner.fingerprint(credentials));
            }
            self.inner
                .events
                .publish("credentials.written", json!({ "expiresAt": credentials.expires_at }));
            let applied = decisions.iter().filter(|d| d.is_ok()).count();
            tracing::info!(
                expires_at = credentials.expires_at,
                forced = batch[last].request.force,
                writes = applied,
                "credentials written"
            );
        }
        for (queued, decision) in batch.into_iter().zip(decisions) {
            let _ = queued.reply.send(decision);
        }
    }

    /// Looks at the file and reports what changed since last time: `credentials.rotated` when someone
    /// other than this daemon rewrote it, `credentials.cleared` when it disappeared or lost its tokens.
    /// With `announce == false` (at start) it only records the current state.
    pub async fn observe(&self, announce: bool) {
        let _serialized = self.inner.lock.lock().await;
        let observed = self.read_settled().await.parsed;
        let mut known = self.inner.known.lock().unwrap_or_else(|e| e.into_inner());
        match observed {
            Ok((_, credentials)) => {
                let fingerprint = self.inner.fingerprint(&credentials);
                let changed = known.fingerprint != Some(fingerprint);
                let previous = known.present.then_some(known.expires_at).flatten();
                known.present = true;
                known.expires_at = Some(credentials.expires_at);
                known.scopes = credentials.scopes;
                known.subscription_type = credentials.subscription_type;
                known.fingerprint = Some(fingerprint);
                if changed && announce {
                    known.rotations += 1;
                    known.last_rotation_at = Some(now_ms());
                    self.inner.events.publish(
                        "credentials.rotated",
                        json!({ "expiresAt": credentials.expires_at, "previousExpiresAt": previous }),
                    );
                    tracing::info!(
                        expires_at = credentials.expires_at,
                        previous_expires_at = previous,
                        "credentials rotated on disk"
                    );
                }
            }
            Err(CredentialsError::NotFound) => self.clear(&mut known, announce, "removed"),
            Err(CredentialsError::Unusable {
                reason: Unusable::EmptyTokens,
            }) => self.clear(&mut known, announce, "tokens-empty"),
            Err(CredentialsError::Unusable { reason }) => {
                if known.present {
                    tracing::warn!(%reason, "credentials file became unusable");
                }
                self.clear(&mut known, announce, "unusable");
            }
            Err(error) => tracing::warn!(error = %error, "cannot check the credentials file"),
        }
    }

    fn clear(&self, known: &mut Known, announce: bool, reason: &'static str) {
        if !known.present {
            return;
        }
        let previous = known.expires_at;
        *known = Known {
            rotations: known.rotations,
            last_rotation_at: known.last_rotation_at,
            ..Known::default()
        };
        if announce {
            self.inner.events.publish(
                "credentials.cleared",
                json!({ "reason": reason, "previousExpiresAt": previous }),
            );
            tracing::info!(reason, "credentials cleared");
        }
    }
}

/// The answer to one write: the `expiresAt` written, or why not.
type Decision = Result<u64, CredentialsError>;

/// A write waiting for its turn to go to disk.
struct Queued {
    request: WriteRequest,
    reply: oneshot::Sender<Decision>,
}

/// Decides the queued writes in order against the file's current expiry, as if each were applied in turn: a
/// write older than what is current by then is stale. Returns each one's answer, and the document to write
/// (`None` when every write was stale).
fn decide(
    batch: &[Queued],
    keep: Option<Map<String, Value>>,
    mut current: Option<u64>,
) -> (Vec<Decision>, Option<Map<String, Value>>) {
    let mut document = None;
    let mut keep = keep;
    let decisions = batch
        .iter()
        .map(|queued| {
            let request = &queued.request;
            let expires_at = request.credentials.expires_at;
            match current {
                Some(current) if current > expires_at && !request.force => Err(CredentialsError::Stale {
                    current_expires_at: current,
                }),
                _ => {
                    let merged = document::merge_into(document.take().or_else(|| keep.take()), request);
                    document = Some(merged);
                    current = Some(expires_at);
                    Ok(expires_at)
                }
            }
        })
        .collect();
    (decisions, document)
}

/// The decisions after the write failed: every write that was to be applied gets `error`.
fn answer_all(decisions: Vec<Decision>, error: &CredentialsError) -> Vec<Decision> {
    decisions
        .into_iter()
        .map(|decision| decision.and_then(|_| Err(error.replicate())))
        .collect()
}

/// The file as read once: its bytes (`None` when absent) and what they parse to.
struct Snapshot {
    bytes: Option<Vec<u8>>,
    parsed: Parsed,
}

impl Snapshot {
    fn load(file: &Path) -> Snapshot {
        match read_bytes(file) {
            Ok(bytes) => {
                let parsed = document::parse_file(&bytes).map_err(|reason| CredentialsError::Unusable { reason });
                Snapshot {
                    bytes: Some(bytes),
                    parsed,
                }
            }
            Err(error) => Snapshot {
                bytes: None,
                parsed: Err(error),
            },
        }
    }
}

enum Outcome {
    Written,
    ChangedUnderneath,
}

impl Inner {
    fn fingerprint(&self, credentials: &OAuthCredentials) -> u64 {
        self.hasher.hash_one((
            credentials.access_token.expose(),
            credentials.refresh_token.expose(),
            credentials.expires_at,
        ))
    }

    /// Writes `document` through a temporary file and renames it over the credentials file, unless the
    /// file no longer holds `expected` (what the decision to write was based on) just before the rename.
    fn write_atomically(
        &self,
        document: &Map<String, Value>,
        expected: Option<&[u8]>,
    ) -> Result<Outcome, CredentialsError> {
        ensure_private_dir(&self.dir)?;
        let bytes = serde_json::to_vec(document).unwrap_or_default();
        let n = self.temp_counter.fetch_add(1, Ordering::Relaxed);
        let temp = self
            .dir
            .join(format!(".credentials.json.{}.{n}.tmp", std::process::id()));
        let result = write_temp(&temp, &bytes, owner_for(&self.dir)).and_then(|()| {
            let current = match read_bytes(&self.file) {
                Ok(current) => Some(current),
                // As the decision saw it: no bytes (a FIFO or the like is replaced by the rename).
                Err(CredentialsError::NotFound | CredentialsError::Unusable { .. }) => None,
                Err(error) => return Err(error),
            };
            if current.as_deref() != expected {
                return Ok(Outcome::ChangedUnderneath);
            }
            // rename(2) replaces the directory entry itself, even a symlink: it never writes elsewhere.
            fs::rename(&temp, &self.file).map_err(CredentialsError::write_io("rename onto", &self.file))?;
            Ok(Outcome::Written)
        });
        if !matches!(result, Ok(Outcome::Written)) {
            let _ = fs::remove_file(&temp);
        }
        if let Ok(Outcome::Written) = result {
            // Make the rename itself durable. If that fails the write has still happened: every reader, the CLI
            // included, sees the new file, so it is reported as written (and recorded as the daemon's own, not as
            // a rotation); only its survival of a power loss is in doubt.
            if let Err(error) = File::open(&self.dir).and_then(|d| d.sync_all()) {
                tracing::warn!(
                    dir = %self.dir.display(),
                    %error,
                    "credentials written, but the directory could not be synced: the write may not survive a power loss"
                );
            }
        }
        result
    }
}

/// Creates `temp` exclusively (never through a planted file or symlink), mode 0600, synced.
///
/// The name holds this process's pid and a counter, and writes are serialized, so a file already there was left by
/// a killed process that had the same pid (pids are reused, after a reboot too): it is removed and created again.
fn write_temp(temp: &Path, bytes: &[u8], owner: Option<(u32, u32)>) -> Result<(), CredentialsError> {
    let create = || {
        OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_CLOEXEC)
            .open(temp)
    };
    let mut out = match create() {
        Err(error) if error.kind() == io::ErrorKind::AlreadyExists => {
            tracing::warn!(temp = %temp.display(), "removing a temporary file left by an earlier process");
            // unlink(2) removes the entry itself, even a symlink.
            fs::remove_file(temp).and_then(|()| create())
        }
        other => other,
    }
    .map_err(CredentialsError::write_io("create temporary file in", temp))?;
    out.set_permissions(fs::Permissions::from_mode(0o600))
        .map_err(CredentialsError::write_io("set mode of", temp))?;
    if let Some((uid, gid)) = owner {
        std::os::unix::fs::fchown(&out, Some(uid), Some(gid))
            .map_err(CredentialsError::write_io("set owner of", temp))?;
    }
    out.write_all(bytes)
        .map_err(CredentialsError::write_io("write", temp))?;
    out.sync_all().map_err(CredentialsError::write_io("sync", temp))
}

/// Creates the config directory with mode 0700 if it is missing.
fn ensure_private_dir(dir: &Path) -> Result<(), CredentialsError> {
    if dir.is_dir() {
        return Ok(());
    }
    if let Some(parent) = dir.parent() {
        fs::create_dir_all(parent).map_err(CredentialsError::write_io("create directory", parent))?;
    }
    match DirBuilder::new().mode(0o700).create(dir) {
        Ok(()) => {
            fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
                .map_err(CredentialsError::write_io("set mode of", dir))?;
            if let Some((uid, gid)) = dir.parent().and_then(owner_for) {
                std::os::unix::fs::chown(dir, Some(uid), Some(gid))
                    .map_err(CredentialsError::write_io("set owner of", dir))?;
            }
            Ok(())
        }
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(CredentialsError::write_io("create directory", dir)(e)),
    }
}

/// When the daemon runs as root, files it writes for the agent belong to whoever owns `dir`.
fn owner_for(dir: &Path) -> Option<(u32, u32)> {
    if !nix::unistd::geteuid().is_root() {
        return None;
    }
    let meta = fs::metadata(dir).ok()?;
    (meta.uid() != 0).then_some((meta.uid(), meta.gid()))
}

/// Reads the credentials file. Whatever is at the path, this never blocks: a FIFO or a device is opened
/// non-blocking and refused, like a directory, as [`Unusable::NotAFile`].
fn read_bytes(file: &Path) -> Result<Vec<u8>, CredentialsError> {
    let opened = OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NONBLOCK | nix::libc::O_CLOEXEC)
        .open(file);
    let handle = match opened {
        Ok(handle) => handle,
        Err(e) if matches!(e.kind(), io::ErrorKind::NotFound | io::ErrorKind::NotADirectory) => {
            return Err(CredentialsError::NotFound);
        }
        Err(e) => return Err(CredentialsError::io("open", file)(e)),
    };
    if !handle.metadata().map(|m| m.is_file()).unwrap_or(false) {
        return Err(CredentialsError::Unusable {
            reason: Unusable::NotAFile,
        });
    }
    let mut bytes = Vec::with_capacity(1024);
    handle
        .take(document::MAX_FILE_BYTES as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(CredentialsError::io("read", file))?;
    Ok(bytes)
}

fn json_object(bytes: &[u8]) -> Option<Map<String, Value>> {
    match serde_json::from_slice(bytes) {
        Ok(Value::Object(map)) => Some(map),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::credentials::document::parse_write_body;

    fn request(expires_at: u64) -> WriteRequest {
        parse_write_body(
            json!({"accessToken": "a", "refreshToken": "r", "expiresAt": expires_at, "scopes": ["user:inference"]}),
        )
        .unwrap()
    }

    #[test]
    fn a_file_rewritten_between_the_decision_and_the_rename_is_not_clobbered() {
        let dir = tempfile::tempdir().unwrap();
        let store = CredentialsStore::new(dir.path().join("claude"), EventBus::new());
        std::fs::create_dir_all(store.dir()).unwrap();
        std::fs::write(store.file(), b"what the CLI wrote meanwhile").unwrap();
        let document = document::merge_into(None, &request(5));
        let outcome = store
            .inner
            .write_atomically(&document, Some(b"what the daemon read"))
            .unwrap();
        assert!(matches!(outcome, Outcome::ChangedUnderneath));
        assert_eq!(std::fs::read(store.file()).unwrap(), b"what the CLI wrote meanwhile");
        assert_eq!(
            std::fs::read_dir(store.dir()).unwrap().count(),
            1,
            "the temporary file is removed"
        );

        let outcome = store
            .inner
            .write_atomically(&document, Some(b"what the CLI wrote meanwhile"))
            .unwrap();
        assert!(matches!(outcome, Outcome::Written));
        assert_eq!(mode(store.file()), 0o600);
    }

    #[test]
    fn a_symlink_planted_at_the_credentials_path_is_replaced_not_followed() {
        let dir = tempfile::tempdir().unwrap();
        let store = CredentialsStore::new(dir.path().join("claude"), EventBus::new());
        std::fs::create_dir_all(store.dir()).unwrap();
        let elsewhere = dir.path().join("elsewhere");
        std::fs::write(&elsewhere, b"precious").unwrap();
        std::os::unix::fs::symlink(&elsewhere, store.file()).unwrap();
        let document = document::merge_into(None, &request(5));
        let outcome = store.inner.write_atomically(&document, Some(b"precious")).unwrap();
        assert!(matches!(outcome, Outcome::Written));
        assert_eq!(std::fs::read(&elsewhere).unwrap(), b"precious");
        assert!(
            !std::fs::symlink_metadata(store.file())
                .unwrap()
                .file_type()
                .is_symlink()
        );
    }

    fn queued(expires_at: u64, force: bool) -> Queued {
        let mut request = request(expires_at);
        request.force = force;
        Queued {
            request,
            reply: oneshot::channel().0,
        }
    }

    #[test]
    fn queued_writes_are_decided_in_order_as_if_applied_one_after_another() {
        let batch = [
            queued(7, false),
            queued(5, false),
            queued(9, false),
            queued(9, false),
            queued(3, true),
        ];
        let (decisions, document) = decide(&batch, None, Some(6));
        let answers: Vec<_> = decisions
            .iter()
            .map(|d| match d {
                Ok(at) => format!("ok {at}"),
                Err(CredentialsError::Stale { current_expires_at }) => format!("stale {current_expires_at}"),
                Err(other) => format!("{other}"),
            })
            .collect();
        assert_eq!(answers, ["ok 7", "stale 7", "ok 9", "ok 9", "ok 3"]);
        assert_eq!(document.as_ref().and_then(document::expires_at_of), Some(3));

        let (decisions, document) = decide(&batch[1..2], None, Some(6));
        assert!(matches!(
            decisions[..],
            [Err(CredentialsError::Stale { current_expires_at: 6 })]
        ));
        assert!(document.is_none(), "nothing to write when every write is stale");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_writes_each_get_an_answer_and_the_newest_wins() {
        let dir = tempfile::tempdir().unwrap();
        let store = CredentialsStore::new(dir.path().join("claude"), EventBus::new());
        let expiries: Vec<u64> = (1..=64).map(|i| (i * 37) % 64 + 1).collect();
        let writes = expiries.iter().map(|&at| {
            let store = store.clone();
            tokio::spawn(async move { (at, store.write(request(at)).await) })
        });
        let mut newest_applied = 0;
        for write in writes.collect::<Vec<_>>() {
            match write.await.unwrap() {
                (at, Ok(written)) => {
                    assert_eq!(written, at);
                    newest_applied = newest_applied.max(at);
                }
                (at, Err(CredentialsError::Stale { current_expires_at })) => assert!(current_expires_at > at),
                (_, Err(other)) => panic!("unexpected {other}"),
            }
        }
        assert_eq!(newest_applied, 64, "the newest write is never stale");
        let (_, on_disk) = document::parse_file(&std::fs::read(store.file()).unwrap()).unwrap();
        assert_eq!(on_disk.expires_at, 64);
        assert_eq!(store.known().expires_at, Some(64));
    }

    #[test]
    fn temporary_files_of_dead_daemons_are_removed_and_others_kept() {
        let dir = tempfile::tempdir().unwrap();
        let store = CredentialsStore::new(dir.path().to_path_buf(), EventBus::new());
        // pid_max is at most 2^22: this pid cannot exist.
        let dead = dir.path().join(".credentials.json.9999999.0.tmp");
        let live = dir
            .path()
            .join(format!(".credentials.json.{}.3.tmp", std::process::id()));
        let other = dir.path().join("notes.tmp");
        for file in [&dead, &live, &other] {
            std::fs::write(file, b"x").unwrap();
        }
        store.remove_stale_temp_files();
        assert!(!dead.exists());
        assert!(live.exists() && other.exists());
    }

    #[tokio::test]
    async fn missing_config_dir_is_created_0700() {
        let dir = tempfile::tempdir().unwrap();
        let store = CredentialsStore::new(dir.path().join("a/b/claude"), EventBus::new());
        store.write(request(5)).await.unwrap();
        assert_eq!(mode(store.dir()), 0o700);
        assert_eq!(mode(store.file()), 0o600);
    }

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    }
}
