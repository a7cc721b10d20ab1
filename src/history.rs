//! The app's history as the daemon uses it: the git [`Repo`] behind one gate shared with turns, every git
//! call off the async runtime, and a `history` event after each move.
//!
//! A turn holds the gate from its start until its commit is written, so history operations never run
//! in the middle of a turn (they answer `turn-in-progress` instead of waiting) and turns never interleave.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde::Serialize;
use serde_json::json;
use tokio::sync::{Mutex, OwnedMutexGuard};
use utoipa::ToSchema;

use crate::events::EventBus;
use crate::repo::{Author, CommitInfo, History, Repo, RepoError};

#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    #[error("the app folder is not under version control (see the daemon log)")]
    Unavailable,
    #[error("a turn is running")]
    TurnInProgress,
    #[error(transparent)]
    Repo(#[from] RepoError),
    #[error("the git task did not finish")]
    Task {
        #[source]
        source: tokio::task::JoinError,
    },
}

/// `repo` on `/health` and `/status`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RepoSummary {
    pub head: String,
    pub dirty: bool,
}

#[derive(Clone)]
pub struct AppHistory {
    repo: Option<Arc<Repo>>,
    gate: Arc<Mutex<()>>,
    /// Whether the gate's holder is a turn (rather than a short history operation).
    turn_active: Arc<AtomicBool>,
    /// The last `repo` summary, for when the repository is busy.
    last_summary: Arc<std::sync::Mutex<Option<RepoSummary>>>,
    events: EventBus,
}

/// Held by a turn from its start until its commit is written.
pub struct TurnGate {
    _guard: OwnedMutexGuard<()>,
    active: Arc<AtomicBool>,
}

impl Drop for TurnGate {
    fn drop(&mut self) {
        self.active.store(false, Ordering::Release);
    }
}

impl AppHistory {
    /// Opens (or initialises) the repository in `dir`, creating `dir` if needed. Failure is logged, not fatal:
    /// the daemon still serves everything else and the history endpoints answer 503.
    pub async fn open(dir: &Path, author: Author, events: EventBus) -> Self {
        let path = dir.to_path_buf();
        let opened = tokio::task::spawn_blocking(move || {
            std::fs::create_dir_all(&path).map_err(|source| RepoError::Io {
                op: "create the app folder",
                source,
            })?;
            Repo::open_or_init(&path, author)
        })
        .await;
        let repo = match opened {
            Ok(Ok(repo)) => Some(Arc::new(repo)),
            Ok(Err(error)) => {
                tracing::error!(dir = %dir.display(), error = %crate::error_chain(&error), "app history unavailable");
                None
            }
            Err(error) => {
                tracing::error!(dir = %dir.display(), %error, "app history unavailable");
                None
            }
        };
        Self {
            repo,
            gate: Arc::new(Mutex::new(())),
            turn_active: Arc::new(AtomicBool::new(false)),
            last_summary: Arc::new(std::sync::Mutex::new(None)),
            events,
        }
    }

    /// Waits for the gate; a turn holds it until its commit is written.
    pub async fn enter_turn(&self) -> TurnGate {
        let guard = self.gate.clone().lock_owned().await;
        self.turn_active.store(true, Ordering::Release);
        TurnGate {
            _guard: guard,
            active: self.turn_active.clone(),
        }
    }

    /// Commits whatever the turn changed (the caller holds the gate). Errors are logged: a failed commit
    /// leaves the work in the working tree, where the next commit picks it up.
    pub async fn commit_turn(&self, message: String) -> Option<CommitInfo> {
        let repo = self.repo.clone()?;
        match tokio::task::spawn_blocking(move || repo.commit_all(&message)).await {
            Ok(Ok(commit)) => commit,
            Ok(Err(error)) => {
                tracing::error!(error = %crate::error_chain(&error), "turn commit failed; the changes stay in the working tree");
                None
            }
            Err(error) => {
                tracing::error!(%error, "turn commit task failed");
                None
            }
        }
    }

    pub async fn history(&self, limit: usize) -> Result<History, HistoryError> {
        self.run(move |repo| repo.history(limit)).await
    }

    /// HEAD and dirtiness, answered within 250 ms: while git is busy, the last known summary.
    pub async fn summary(&self) -> Option<RepoSummary> {
        let repo = self.repo.clone()?;
        let lookup = tokio::task::spawn_blocking(move || repo.head());
        match tokio::time::timeout(Duration::from_millis(250), lookup).await {
            Ok(Ok(Ok((head, dirty)))) => {
                let summary = RepoSummary { head, dirty };
                *self.last_summary.lock().unwrap_or_else(|e| e.into_inner()) = Some(summary.clone());
                Some(summary)
            }
            _ => self.last_summary.lock().unwrap_or_else(|e| e.into_inner()).clone(),
        }
    }

    pub async fn undo(&self) -> Result<String, HistoryError> {
        self.step("undo", |repo| repo.undo()).await
    }

    pub async fn redo(&self) -> Result<String, HistoryError> {
        self.step("redo", |repo| repo.redo()).await
    }

    pub async fn checkout(&self, sha: String) -> Result<String, HistoryError> {
        self.step("checkout", move |repo| repo.checkout(&sha)).await
    }

    async fn step(
        &self,
        op: &'static str,
        work: impl FnOnce(&Repo) -> Result<String, RepoError> + Send + 'static,
    ) -> Result<String, HistoryError> {
        let head = self.run(work).await?;
        self.events.publish("history", json!({"head": head, "op": op}));
        tracing::info!(op, %head, "history moved");
        Ok(head)
    }

    /// Runs `work` on the repository unless a turn holds the gate.
    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Repo) -> Result<T, RepoError> + Send + 'static,
    ) -> Result<T, HistoryError> {
        let repo = self.repo.clone().ok_or(HistoryError::Unavailable)?;
        // A turn holds the gate for minutes: refuse. Another history operation holds it for milliseconds: wait.
        let _gate = match self.gate.clone().try_lock_owned() {
            Ok(gate) => gate,
            Err(_) if self.turn_active.load(Ordering::Acquire) => return Err(HistoryError::TurnInProgress),
            Err(_) => self.gate.clone().lock_owned().await,
        };
        let result = tokio::task::spawn_blocking(move || work(&repo))
            .await
            .map_err(|source| HistoryError::Task { source })?;
        Ok(result?)
    }
}
