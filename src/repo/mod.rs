//! The app folder as a git repository: each agent turn becomes a commit on `main`, and undo, redo and jump-to-sha
//! move the branch, the index and the working tree between commits. Every method blocks; callers run them off the
//! async runtime, one at a time. No git config is needed: commits carry the explicit [`Author`].
//!
//! # Refs
//! - `refs/heads/main`: the app as it is now. HEAD is always symbolic to it (an outside `git checkout` that leaves
//!   HEAD elsewhere is undone at the next write, and the old `main` tip is kept).
//! - `refs/acp-bridge/redo`: the tip of the undone commits. The redo list is its first-parent chain from just after
//!   HEAD up to the tip, next first; it counts only while HEAD is on that chain.
//! - `refs/acp-bridge/kept/<sha>`: commits that left both `main` and the redo chain, kept reachable (for
//!   [`Repo::checkout`] and for `git gc`): a redo list cleared by a new commit, a snapshot taken before a redo or a
//!   checkout, the line left by a jump to a commit of another line. Kept refs are never deleted.
//!
//! # Snapshots before a move
//! Uncommitted changes present before [`Repo::undo`], [`Repo::redo`] or [`Repo::checkout`] are first committed on
//! `main` on top of HEAD (`Snapshot before undo` / `… redo` / `… checkout`), then the move is computed from the
//! pre-snapshot HEAD, so nothing is lost and undo still goes back one turn:
//! - undo: the snapshot joins the redo chain. HEAD goes to the parent of the last commit before the snapshot and
//!   the redo list becomes [that commit, the snapshot]: two redos bring the dirty edit back. Like any new change,
//!   the snapshot replaces a redo list that went further than HEAD (its tip is kept).
//! - redo and checkout: the snapshot is kept under `refs/acp-bridge/kept/<sha>` and the move happens as if the tree
//!   had been clean (redo steps along the same redo list).
//!
//! # Checkout
//! Any commit reachable from HEAD, the redo ref or a kept ref can be checked out. When the target is on the current
//! line (HEAD's first-parent chain or the redo chain), the redo list then runs from the target up to the line's tip,
//! so redo walks forward again. When it is on another line (a kept one), that line's furthest tip becomes the redo
//! tip and the line that was left is kept.

mod author;
mod error;
mod lock;
mod message;
mod sha;
#[cfg(test)]
mod tests;

use std::collections::{BTreeSet, HashSet};
use std::ffi::OsStr;
use std::fs;
use std::io::ErrorKind;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError};

use git2::build::CheckoutBuilder;
use git2::{Commit, ErrorCode, ObjectType, Oid, Repository, RepositoryInitOptions, Status, StatusOptions, StatusShow};

pub use author::Author;
pub use error::{InvalidAuthor, RepoError};
pub use message::{SUBJECT_MAX_CHARS, turn_message};
pub use sha::{ShaPrefix, parse_sha};

/// The app's branch.
pub const BRANCH: &str = "main";
/// The first commit's message when the repository had to be re-created while the daemon ran.
pub const RECREATED: &str = "Re-created the app repository (its .git folder had been removed)";
const BRANCH_REF: &str = "refs/heads/main";
const REDO_REF: &str = "refs/acp-bridge/redo";
const KEPT_PREFIX: &str = "refs/acp-bridge/kept/";
/// Patterns always listed in `.git/info/exclude`, whatever the app's `.gitignore` says.
pub const EXCLUDED: &[&str] = &["node_modules/", "dist/", ".playwright-mcp/", "*.log"];
/// Bound on first-parent walks (a corrupt or huge history cannot hang a request).
const MAX_CHAIN: usize = 100_000;

/// Worktree changes that make the tree dirty and that [`Repo::commit_all`] stages.
const WORKTREE_CHANGES: Status = Status::WT_NEW
    .union(Status::WT_MODIFIED)
    .union(Status::WT_DELETED)
    .union(Status::WT_TYPECHANGE)
    .union(Status::WT_RENAMED)
    .union(Status::CONFLICTED);
/// Changes already staged in the index (by an outside `git add`).
const INDEX_CHANGES: Status = Status::INDEX_NEW
    .union(Status::INDEX_MODIFIED)
    .union(Status::INDEX_DELETED)
    .union(Status::INDEX_RENAMED)
    .union(Status::INDEX_TYPECHANGE);

#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CommitInfo {
    /// Full sha.
    pub sha: String,
    /// First parent; none for the first commit.
    pub parent: Option<String>,
    /// The whole message, without its final newline.
    pub message: String,
    /// Commit time (git keeps seconds), in milliseconds since the Unix epoch.
    pub time_ms: u64,
    /// Paths changed against the first parent, sorted. A rename lists both the old and the new path.
    pub files_changed: Vec<String>,
}

#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct History {
    /// Sha of HEAD.
    pub head: String,
    /// Always `main`.
    pub branch: String,
    /// Whether the working tree has uncommitted changes (ignored files do not count).
    pub dirty: bool,
    /// HEAD's first-parent chain, newest first.
    pub commits: Vec<CommitInfo>,
    /// The shas redo steps through, next first.
    pub redo: Vec<String>,
}

/// The app repository. `Send + Sync`; calls are serialized internally.
pub struct Repo {
    inner: Mutex<Inner>,
}

struct Inner {
    git: Repository,
    author: Author,
    workdir: PathBuf,
    git_dir: PathBuf,
}

/// How much of the objects it has read libgit2 keeps in memory, for all repositories. Its default, 256 MiB, let a
/// long-running daemon grow by about 3 KiB per turn for as long as it ran (the parsed objects take about three
/// times the bytes the cache counts); at 256 KiB the daemon's memory levels off after a few hundred turns.
pub const OBJECT_CACHE_BYTES: usize = 256 << 10;

/// Caps libgit2's object cache at [`OBJECT_CACHE_BYTES`]. Call once, at start, before any thread is spawned.
pub fn limit_object_cache() {
    // SAFETY: libgit2 sets a global without synchronization; `main` calls this before the runtime's threads exist.
    if let Err(error) = unsafe { git2::opts::set_cache_max_size(OBJECT_CACHE_BYTES as _) } {
        tracing::warn!(%error, "cannot limit git's object cache");
    }
}

impl Repo {
    /// Opens the repository whose work tree is `dir` (never a parent folder's repository). If `dir` is not a git
    /// repository, initializes it (branch `main`) and commits what is there as the first commit, `Initial app` (an
    /// empty folder gets an empty first commit); the same happens for an existing repository without commits.
    /// Always makes sure `.git/info/exclude` lists [`EXCLUDED`], and removes stale git lock files: left by a killed
    /// process, no live process has them open (every write checks this first; a held lock is waited for a few
    /// seconds, then reported as [`RepoError::Locked`]).
    pub fn open_or_init(dir: &Path, author: Author) -> Result<Repo, RepoError> {
        let inner = Inner::open_or_init(dir, author, "Initial app")?;
        Ok(Repo {
            inner: Mutex::new(inner),
        })
    }

    /// Stages everything (adds, edits, deletions, renames; ignored files and nested repositories excluded) and
    /// commits it on `main`; `Ok(None)` when nothing changed. `files_changed` lists the paths the commit touches,
    /// sorted; a rename lists both the old and the new path (no rename detection: it is a deletion and an addition).
    /// A new commit clears the redo list (its commits stay reachable under `refs/acp-bridge/kept/`).
    pub fn commit_all(&self, message: &str) -> Result<Option<CommitInfo>, RepoError> {
        let inner = self.lock();
        inner.prepare()?;
        let Some(commit) = inner.commit_worktree(message)? else {
            return Ok(None);
        };
        if let Some(old) = inner.ref_target(REDO_REF)? {
            inner.retire(old, None, commit)?;
            inner.delete_ref(REDO_REF)?;
        }
        let commit = inner
            .git
            .find_commit(commit)
            .map_err(RepoError::git("read the new commit"))?;
        inner.commit_info(&commit).map(Some)
    }

    /// HEAD's first-parent chain, newest first, at most `limit` commits, and the redo list, next first.
    pub fn history(&self, limit: usize) -> Result<History, RepoError> {
        let inner = self.lock();
        let head = inner.head_commit()?;
        let mut commits = Vec::with_capacity(limit.min(256));
        let mut next = Some(head.clone());
        while let Some(commit) = next.take().filter(|_| commits.len() < limit) {
            commits.push(inner.commit_info(&commit)?);
            next = commit.parent(0).ok();
        }
        let head_ref = inner.git.find_reference("HEAD").map_err(RepoError::git("read HEAD"))?;
        let branch = match head_ref.symbolic_target_bytes() {
            Some(target) => String::from_utf8_lossy(target.strip_prefix(b"refs/heads/").unwrap_or(target)).into_owned(),
            None => "HEAD".to_owned(),
        };
        Ok(History {
            head: head.id().to_string(),
            branch,
            dirty: inner.is_dirty()?,
            commits,
            redo: inner.redo_line(head.id())?.chain.iter().map(Oid::to_string).collect(),
        })
    }

    /// HEAD's sha, and whether the working tree has uncommitted changes.
    pub fn head(&self) -> Result<(String, bool), RepoError> {
        let inner = self.lock();
        Ok((inner.head_commit()?.id().to_string(), inner.is_dirty()?))
    }

    /// Moves to the parent of the last commit (before any snapshot, see the module docs) and returns it;
    /// [`RepoError::NothingToUndo`] at the first commit, with nothing changed.
    pub fn undo(&self) -> Result<String, RepoError> {
        let inner = self.lock();
        inner.prepare()?;
        let head = inner.head_commit()?;
        let target = head.parent_id(0).map_err(|_| RepoError::NothingToUndo)?;
        let line = inner.redo_line(head.id())?;
        let line_tip = line.valid_tip().unwrap_or(head.id());
        let new_redo = inner.snapshot("undo")?.unwrap_or(line_tip);
        if let Some(old) = line.tip {
            inner.retire(old, Some(new_redo), target)?;
        }
        inner.set_ref(REDO_REF, new_redo, "acp-bridge: undo")?;
        inner.move_to(target, "undo")?;
        Ok(target.to_string())
    }

    /// Steps forward one undone commit and returns it; [`RepoError::NothingToRedo`] when the redo list is empty,
    /// with nothing changed. Uncommitted changes are kept as a snapshot under `refs/acp-bridge/kept/`.
    pub fn redo(&self) -> Result<String, RepoError> {
        let inner = self.lock();
        inner.prepare()?;
        let head = inner.head_commit()?;
        let line = inner.redo_line(head.id())?;
        let (Some(&target), Some(tip)) = (line.chain.first(), line.tip) else {
            return Err(RepoError::NothingToRedo);
        };
        if let Some(snapshot) = inner.snapshot("redo")? {
            inner.keep(snapshot)?;
        }
        inner.move_to(target, "redo")?;
        if target == tip {
            inner.delete_ref(REDO_REF)?;
        }
        Ok(target.to_string())
    }

    /// Moves to `sha` (full, or abbreviated to at least 7 hex digits), a commit of the app's history: reachable
    /// from HEAD, the redo ref or a kept ref. See the module docs for what happens to the redo list.
    pub fn checkout(&self, sha: &str) -> Result<String, RepoError> {
        let inner = self.lock();
        inner.prepare()?;
        let target = inner.resolve(sha)?;
        let head = inner.head_commit()?.id();
        let line = inner.redo_line(head)?;
        let kept = inner.kept_tips()?;
        let mut roots = [head].into_iter().chain(line.tip).chain(kept.iter().copied());
        if !roots.any(|root| inner.contains(root, target)) {
            return Err(RepoError::UnknownSha { sha: sha.to_owned() });
        }
        let snapshot = inner.snapshot("checkout")?;
        if snapshot.is_none() && target == head {
            return Ok(target.to_string());
        }
        let line_tip = line.valid_tip().unwrap_or(head);
        let new_tip = if inner.first_parent_path(line_tip, target)?.is_some() {
            Some(line_tip)
        } else {
            inner.furthest_line_through(target, line.tip.iter().chain(&kept).copied())?
        };
        let new_redo = new_tip.filter(|&tip| tip != target);
        if let Some(snapshot) = snapshot {
            inner.keep(snapshot)?;
        }
        for old in [Some(line_tip), line.tip]
            .into_iter()
            .flatten()
            .collect::<BTreeSet<_>>()
        {
            inner.retire(old, new_redo, target)?;
        }
        if let Some(tip) = new_redo {
            inner.set_ref(REDO_REF, tip, "acp-bridge: checkout")?;
        }
        inner.move_to(target, "checkout")?;
        if new_redo.is_none() {
            inner.delete_ref(REDO_REF)?;
        }
        Ok(target.to_string())
    }

    /// The repository, re-created first if its git folder was removed while the daemon runs: what the folder
    /// holds then becomes the first commit of a new history (the old history is gone with the folder).
    fn lock(&self) -> MutexGuard<'_, Inner> {
        let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        if !inner.git_dir.join("HEAD").exists() {
            let workdir = inner.workdir.clone();
            match Inner::open_or_init(&workdir, inner.author.clone(), RECREATED) {
                Ok(fresh) => {
                    tracing::warn!(dir = %workdir.display(), "the app's .git folder was removed; re-created the repository");
                    *inner = fresh;
                }
                // The operation that follows fails with its own clear error.
                Err(error) => {
                    tracing::error!(error = %crate::error_chain(&error), "the app's .git folder was removed and cannot be re-created")
                }
            }
        }
        inner
    }
}

/// The redo ref and what it means relative to HEAD.
struct RedoLine {
    /// The ref's value, if it exists.
    tip: Option<Oid>,
    /// The commits redo steps through, next first: empty unless HEAD is on the tip's first-parent chain.
    chain: Vec<Oid>,
}

impl RedoLine {
    fn valid_tip(&self) -> Option<Oid> {
        self.tip.filter(|_| !self.chain.is_empty())
    }
}

impl Inner {
    /// See [`Repo::open_or_init`]; `first` is the message of the first commit when there is none yet.
    fn open_or_init(dir: &Path, author: Author, first: &str) -> Result<Inner, RepoError> {
        let git = match Repository::open(dir) {
            Ok(git) => git,
            Err(error) if error.code() == ErrorCode::NotFound => {
                let mut options = RepositoryInitOptions::new();
                options.initial_head(BRANCH).mkpath(true).external_template(false);
                Repository::init_opts(dir, &options).map_err(RepoError::git("initialize the app repository"))?
            }
            Err(source) => {
                return Err(RepoError::Git {
                    op: "open the app repository",
                    source,
                });
            }
        };
        let not_a_work_tree = || RepoError::NotAWorkTree { dir: dir.to_path_buf() };
        let workdir = git.workdir().ok_or_else(not_a_work_tree)?;
        let workdir = fs::canonicalize(workdir).map_err(RepoError::io("resolve the app folder"))?;
        if fs::canonicalize(dir).map_err(RepoError::io("resolve the app folder"))? != workdir {
            return Err(not_a_work_tree());
        }
        let git_dir = fs::canonicalize(git.path()).map_err(RepoError::io("resolve the git folder"))?;
        let inner = Inner {
            git,
            author,
            workdir,
            git_dir,
        };
        inner.prepare()?;
        if inner.branch_tip()?.is_none() {
            let initial = inner.commit_worktree(first)?;
            tracing::info!(dir = %dir.display(), commit = ?initial, "initialized the app repository");
        }
        Ok(inner)
    }

    /// Before a write: stale locks removed, the exclude file complete, HEAD on `main`.
    fn prepare(&self) -> Result<(), RepoError> {
        lock::clear_stale_locks(&self.git_dir)?;
        ensure_excludes(&self.git_dir)?;
        self.ensure_on_main()
    }

    /// Puts HEAD back on `main` if an outside command left it detached or on another branch: `main` moves to
    /// HEAD's commit (the working tree already matches it) and its old tip is kept.
    fn ensure_on_main(&self) -> Result<(), RepoError> {
        let head = self.git.find_reference("HEAD").map_err(RepoError::git("read HEAD"))?;
        if head.symbolic_target_bytes() == Some(BRANCH_REF.as_bytes()) {
            return Ok(());
        }
        let at = self
            .git
            .head()
            .ok()
            .and_then(|head| head.peel_to_commit().ok())
            .map(|commit| commit.id());
        if let Some(at) = at {
            if let Some(old) = self.branch_tip()?.filter(|&old| old != at) {
                self.keep(old)?;
            }
            self.set_ref(BRANCH_REF, at, "acp-bridge: back onto main")?;
        }
        self.git
            .set_head(BRANCH_REF)
            .map_err(RepoError::git("point HEAD at main"))?;
        tracing::warn!(head = ?at, "HEAD was not on main; moved it back");
        Ok(())
    }

    fn branch_tip(&self) -> Result<Option<Oid>, RepoError> {
        self.ref_target(BRANCH_REF)
    }

    fn head_commit(&self) -> Result<Commit<'_>, RepoError> {
        let head = self.git.head().map_err(RepoError::git("read HEAD"))?;
        head.peel_to_commit().map_err(RepoError::git("read HEAD's commit"))
    }

    fn ref_target(&self, name: &str) -> Result<Option<Oid>, RepoError> {
        match self.git.find_reference(name) {
            Ok(reference) => Ok(reference.target()),
            Err(error) if error.code() == ErrorCode::NotFound => Ok(None),
            Err(source) => Err(RepoError::Git {
                op: "read a ref",
                source,
            }),
        }
    }

    fn set_ref(&self, name: &str, target: Oid, log: &str) -> Result<(), RepoError> {
        self.git
            .reference(name, target, true, log)
            .map_err(RepoError::git("write a ref"))?;
        Ok(())
    }

    fn delete_ref(&self, name: &str) -> Result<(), RepoError> {
        match self.git.find_reference(name) {
            Ok(mut reference) => reference.delete().map_err(RepoError::git("delete a ref")),
            Err(error) if error.code() == ErrorCode::NotFound => Ok(()),
            Err(source) => Err(RepoError::Git {
                op: "read a ref",
                source,
            }),
        }
    }

    /// Keeps `commit` reachable under `refs/acp-bridge/kept/<sha>`.
    fn keep(&self, commit: Oid) -> Result<(), RepoError> {
        self.set_ref(&format!("{KEPT_PREFIX}{commit}"), commit, "acp-bridge: keep")
    }

    /// Keeps `old` unless it stays reachable from the new redo tip or the new HEAD.
    fn retire(&self, old: Oid, new_redo: Option<Oid>, new_head: Oid) -> Result<(), RepoError> {
        if new_redo.is_some_and(|tip| self.contains(tip, old)) || self.contains(new_head, old) {
            return Ok(());
        }
        self.keep(old)
    }

    fn kept_tips(&self) -> Result<Vec<Oid>, RepoError> {
        let refs = self
            .git
            .references_glob(&format!("{KEPT_PREFIX}*"))
            .map_err(RepoError::git("list kept refs"))?;
        Ok(refs.flatten().filter_map(|reference| reference.target()).collect())
    }

    /// Whether `commit` is `tip` or one of its ancestors.
    fn contains(&self, tip: Oid, commit: Oid) -> bool {
        tip == commit || self.git.graph_descendant_of(tip, commit).unwrap_or(false)
    }

    /// The commits from `from` down its first-parent chain to `to` (excluded), oldest first; `None` when `to` is
    /// not on that chain.
    fn first_parent_path(&self, from: Oid, to: Oid) -> Result<Option<Vec<Oid>>, RepoError> {
        let mut path = Vec::new();
        let mut at = from;
        for _ in 0..MAX_CHAIN {
            if at == to {
                path.reverse();
                return Ok(Some(path));
            }
            path.push(at);
            let commit = self.git.find_commit(at).map_err(RepoError::git("walk the history"))?;
            match commit.parent_id(0) {
                Ok(parent) => at = parent,
                Err(_) => return Ok(None),
            }
        }
        Ok(None)
    }

    /// Among `tips`, the one whose first-parent chain goes through `target` and reaches furthest beyond it.
    fn furthest_line_through(&self, target: Oid, tips: impl Iterator<Item = Oid>) -> Result<Option<Oid>, RepoError> {
        let mut best: Option<(usize, Oid)> = None;
        for tip in tips {
            if let Some(path) = self.first_parent_path(tip, target)? {
                if best.is_none_or(|(length, sha)| (path.len(), tip) > (length, sha)) {
                    best = Some((path.len(), tip));
                }
            }
        }
        Ok(best.map(|(_, tip)| tip))
    }

    fn redo_line(&self, head: Oid) -> Result<RedoLine, RepoError> {
        let tip = self.ref_target(REDO_REF)?;
        let chain = match tip {
            Some(tip) => self
                .first_parent_path(tip, head)
                .unwrap_or_default()
                .unwrap_or_default(),
            None => Vec::new(),
        };
        Ok(RedoLine { tip, chain })
    }

    /// Resolves a full or abbreviated sha to a commit.
    fn resolve(&self, sha: &str) -> Result<Oid, RepoError> {
        let prefix = parse_sha(sha)?;
        let found = if prefix.is_full() {
            Oid::from_str(prefix.as_str()).and_then(|oid| self.git.find_object(oid, None))
        } else {
            self.git.find_object_by_prefix(prefix.as_str(), None)
        };
        match found {
            Ok(object) if object.kind() == Some(ObjectType::Commit) => Ok(object.id()),
            Ok(_) => Err(RepoError::UnknownSha { sha: sha.to_owned() }),
            Err(error) if error.code() == ErrorCode::NotFound => Err(RepoError::UnknownSha { sha: sha.to_owned() }),
            Err(error) if error.code() == ErrorCode::Ambiguous => Err(RepoError::AmbiguousSha { sha: sha.to_owned() }),
            Err(source) => Err(RepoError::Git {
                op: "look up a commit",
                source,
            }),
        }
    }

    fn is_dirty(&self) -> Result<bool, RepoError> {
        let statuses = self
            .git
            .statuses(Some(&mut status_options()))
            .map_err(RepoError::git("read the status"))?;
        Ok(statuses.iter().any(|entry| {
            !entry.path_bytes().ends_with(b"/") && entry.status().intersects(WORKTREE_CHANGES | INDEX_CHANGES)
        }))
    }

    /// Brings the index up to the working tree, touching only the entries the status reports (ignored directories
    /// are not walked), and writes its tree.
    fn stage_all(&self) -> Result<Oid, RepoError> {
        let mut index = self.git.index().map_err(RepoError::git("open the index"))?;
        index.read(false).map_err(RepoError::git("read the index"))?;
        let statuses = self
            .git
            .statuses(Some(&mut status_options()))
            .map_err(RepoError::git("read the status"))?;
        let mut changed = false;
        for entry in statuses.iter() {
            let bytes = entry.path_bytes();
            // A directory entry is a nested repository: neither `git add -A` nor we take its files.
            if bytes.ends_with(b"/") || !entry.status().intersects(WORKTREE_CHANGES) {
                continue;
            }
            let path = Path::new(OsStr::from_bytes(bytes));
            let on_disk = fs::symlink_metadata(self.workdir.join(path));
            match on_disk {
                Ok(metadata) if !metadata.is_dir() => index.add_path(path).map_err(RepoError::git("stage a file"))?,
                Ok(_) => index.remove_path(path).map_err(RepoError::git("unstage a file"))?,
                Err(error) if error.kind() == ErrorKind::NotFound => {
                    index.remove_path(path).map_err(RepoError::git("unstage a file"))?
                }
                Err(source) => {
                    return Err(RepoError::Io {
                        op: "inspect a changed file",
                        source,
                    });
                }
            }
            changed = true;
        }
        if changed {
            index.write().map_err(RepoError::git("write the index"))?;
        }
        index.write_tree().map_err(RepoError::git("write the tree"))
    }

    /// Stages everything and commits it on `main` when the tree differs from HEAD's (always when `main` has no
    /// commit yet). Returns the new commit.
    fn commit_worktree(&self, message: &str) -> Result<Option<Oid>, RepoError> {
        let tree = self.stage_all()?;
        let parent = match self.branch_tip()? {
            Some(tip) => Some(
                self.git
                    .find_commit(tip)
                    .map_err(RepoError::git("read HEAD's commit"))?,
            ),
            None => None,
        };
        if parent.as_ref().is_some_and(|parent| parent.tree_id() == tree) {
            return Ok(None);
        }
        let tree = self.git.find_tree(tree).map_err(RepoError::git("read the new tree"))?;
        let signature = self
            .author
            .signature()
            .map_err(RepoError::git("make the commit signature"))?;
        let message = git2::message_prettify(message, None).map_err(RepoError::git("clean up the commit message"))?;
        let parents: Vec<&Commit<'_>> = parent.iter().collect();
        let commit = self
            .git
            .commit(Some(BRANCH_REF), &signature, &signature, &message, &tree, &parents)
            .map_err(RepoError::git("commit"))?;
        Ok(Some(commit))
    }

    /// Commits uncommitted changes before a move (on `main`, on top of HEAD).
    fn snapshot(&self, op: &str) -> Result<Option<Oid>, RepoError> {
        let snapshot = self.commit_worktree(&format!("Snapshot before {op}"))?;
        if let Some(snapshot) = snapshot {
            tracing::info!(op, %snapshot, "committed uncommitted changes before moving");
        }
        Ok(snapshot)
    }

    /// Makes the working tree and the index equal `target`'s tree (files it lacks are removed; untracked and
    /// ignored files are not touched) and points `main` at it. The tree must be clean (see [`Inner::snapshot`]).
    fn move_to(&self, target: Oid, op: &str) -> Result<(), RepoError> {
        let commit = self
            .git
            .find_commit(target)
            .map_err(RepoError::git("read the target commit"))?;
        let mut checkout = CheckoutBuilder::new();
        checkout.force();
        self.git
            .checkout_tree(commit.as_object(), Some(&mut checkout))
            .map_err(RepoError::git("check out a commit"))?;
        self.set_ref(BRANCH_REF, target, &format!("acp-bridge: {op}"))
    }

    fn commit_info(&self, commit: &Commit<'_>) -> Result<CommitInfo, RepoError> {
        let parent = commit.parent(0).ok();
        let old_tree = parent
            .as_ref()
            .map(Commit::tree)
            .transpose()
            .map_err(RepoError::git("read a tree"))?;
        let new_tree = commit.tree().map_err(RepoError::git("read a tree"))?;
        let diff = self
            .git
            .diff_tree_to_tree(old_tree.as_ref(), Some(&new_tree), None)
            .map_err(RepoError::git("diff a commit"))?;
        let files: BTreeSet<String> = diff
            .deltas()
            .flat_map(|delta| [delta.old_file().path_bytes(), delta.new_file().path_bytes()])
            .flatten()
            .map(|path| String::from_utf8_lossy(path).into_owned())
            .collect();
        Ok(CommitInfo {
            sha: commit.id().to_string(),
            parent: parent.map(|parent| parent.id().to_string()),
            message: String::from_utf8_lossy(commit.message_bytes()).trim_end().to_owned(),
            time_ms: u64::try_from(commit.time().seconds()).unwrap_or(0) * 1000,
            files_changed: files.into_iter().collect(),
        })
    }
}

/// Untracked files one by one, ignored directories not walked, submodules and rename detection off.
fn status_options() -> StatusOptions {
    let mut options = StatusOptions::new();
    options
        .show(StatusShow::IndexAndWorkdir)
        .include_untracked(true)
        .recurse_untracked_dirs(true)
        .include_ignored(false)
        .recurse_ignored_dirs(false)
        .include_unmodified(false)
        .exclude_submodules(true)
        .renames_head_to_index(false)
        .renames_index_to_workdir(false);
    options
}

/// Appends the missing [`EXCLUDED`] patterns to `.git/info/exclude`.
fn ensure_excludes(git_dir: &Path) -> Result<(), RepoError> {
    let path = git_dir.join("info").join("exclude");
    let current = match fs::read(&path) {
        Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
        Err(error) if error.kind() == ErrorKind::NotFound => String::new(),
        Err(source) => {
            return Err(RepoError::Io {
                op: "read .git/info/exclude",
                source,
            });
        }
    };
    let present: HashSet<&str> = current.lines().map(str::trim).collect();
    let missing: Vec<&str> = EXCLUDED
        .iter()
        .copied()
        .filter(|pattern| !present.contains(pattern))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    let mut text = current.clone();
    if !text.is_empty() && !text.ends_with('\n') {
        text.push('\n');
    }
    text.push_str("# acp-bridge: never committed, whatever the app's .gitignore says\n");
    for pattern in missing {
        text.push_str(pattern);
        text.push('\n');
    }
    fs::create_dir_all(git_dir.join("info")).map_err(RepoError::io("create .git/info"))?;
    fs::write(&path, text).map_err(RepoError::io("write .git/info/exclude"))
}
