//! Errors of the app repository. How they become HTTP problems lives with the HTTP layer.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum RepoError {
    /// `undo` at the first commit: it has no parent.
    #[error("nothing to undo: HEAD is the first commit")]
    NothingToUndo,
    /// `redo` with no undone commit ahead of HEAD.
    #[error("nothing to redo")]
    NothingToRedo,
    /// Not 7 to 40 hexadecimal digits.
    #[error("`{sha}` is not a commit sha (7 to 40 hexadecimal digits)")]
    MalformedSha { sha: String },
    /// No such object, not a commit (a blob or tree sha), or a commit outside the app's history.
    #[error("`{sha}` is not a commit of the app's history")]
    UnknownSha { sha: String },
    /// An abbreviated sha that matches more than one object.
    #[error("`{sha}` matches more than one object; give more digits")]
    AmbiguousSha { sha: String },
    /// A git lock file held open by a live process (an outside `git` command) that did not let go in time.
    #[error("{} is held by a running process", .path.display())]
    Locked { path: PathBuf },
    /// The folder holds a bare repository, or a repository whose work tree is elsewhere.
    #[error("{} is not the work tree of its repository", .dir.display())]
    NotAWorkTree { dir: PathBuf },
    #[error("git: cannot {op}")]
    Git {
        op: &'static str,
        #[source]
        source: git2::Error,
    },
    #[error("cannot {op}")]
    Io {
        op: &'static str,
        #[source]
        source: std::io::Error,
    },
}

impl RepoError {
    pub(crate) fn git(op: &'static str) -> impl FnOnce(git2::Error) -> Self {
        move |source| Self::Git { op, source }
    }

    pub(crate) fn io(op: &'static str) -> impl FnOnce(std::io::Error) -> Self {
        move |source| Self::Io { op, source }
    }
}

/// A `--git-author` that is not `Name <email>`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid git author `{input}`: {problem} (expected `Name <email>`)")]
pub struct InvalidAuthor {
    pub input: String,
    pub problem: &'static str,
}
