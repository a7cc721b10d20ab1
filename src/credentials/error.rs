//! Errors of the credentials store, and how each becomes an HTTP problem.

use std::path::PathBuf;

use axum::http::StatusCode;
use serde_json::Value;

use super::document::{FieldError, Unusable};
use crate::http::problem::Problem;

#[derive(Debug, thiserror::Error)]
pub enum CredentialsError {
    #[error("there is no credentials file")]
    NotFound,
    #[error("the credentials file is unusable: {reason}")]
    Unusable { reason: Unusable },
    #[error("invalid credentials: {}", .error.message)]
    Invalid { error: FieldError },
    #[error("the credentials on disk are newer (expiresAt {current_expires_at})")]
    Stale { current_expires_at: u64 },
    #[error("the credentials file kept changing while it was being written")]
    Contended,
    #[error("cannot {op} {}", .path.display())]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A write the config directory did not take: its file system is full, read-only or failing, or writing there
    /// is not permitted. The credentials file was not replaced.
    #[error("cannot {op} {}: {fault}", .path.display())]
    Unwritable {
        op: &'static str,
        path: PathBuf,
        fault: WriteFault,
        #[source]
        source: std::io::Error,
    },
    #[error("the write was not carried out (the daemon is stopping)")]
    Lost,
    #[error("the credentials task did not finish")]
    Task {
        #[source]
        source: tokio::task::JoinError,
    },
}

impl CredentialsError {
    /// The same error for another waiter of a shared write (I/O errors keep their kind and message).
    pub fn replicate(&self) -> Self {
        match self {
            Self::NotFound => Self::NotFound,
            Self::Unusable { reason } => Self::Unusable { reason: *reason },
            Self::Invalid { error } => Self::Invalid { error: error.clone() },
            Self::Stale { current_expires_at } => Self::Stale {
                current_expires_at: *current_expires_at,
            },
            Self::Contended => Self::Contended,
            Self::Io { op, path, source } => Self::Io {
                op,
                path: path.clone(),
                source: std::io::Error::new(source.kind(), source.to_string()),
            },
            Self::Unwritable {
                op,
                path,
                fault,
                source,
            } => Self::Unwritable {
                op,
                path: path.clone(),
                fault: *fault,
                source: std::io::Error::new(source.kind(), source.to_string()),
            },
            Self::Lost | Self::Task { .. } => Self::Lost,
        }
    }

    pub fn io(op: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |source| Self::Io { op, path, source }
    }

    /// Like [`CredentialsError::io`], for a step of a write that comes before the rename: a full or read-only
    /// file system, or a refused permission, becomes [`CredentialsError::Unwritable`].
    pub fn write_io(op: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |source| match WriteFault::of(&source) {
            Some(fault) => Self::Unwritable {
                op,
                path,
                fault,
                source,
            },
            None => Self::Io { op, path, source },
        }
    }
}

/// Why the config directory does not take a write. Its `Display` goes into the problem's `detail`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum WriteFault {
    #[error("no space left on the device")]
    NoSpace,
    #[error("the file system is read-only")]
    ReadOnly,
    #[error("writing there is not permitted")]
    NotPermitted,
    #[error("the disk reported an I/O error")]
    DeviceError,
}

impl WriteFault {
    pub fn of(error: &std::io::Error) -> Option<Self> {
        use std::io::ErrorKind;
        match error.kind() {
            ErrorKind::StorageFull | ErrorKind::QuotaExceeded => Some(Self::NoSpace),
            ErrorKind::ReadOnlyFilesystem => Some(Self::ReadOnly),
            ErrorKind::PermissionDenied => Some(Self::NotPermitted),
            _ if error.raw_os_error() == Some(nix::libc::EIO) => Some(Self::DeviceError),
            _ => None,
        }
    }
}

impl From<CredentialsError> for Problem {
    fn from(error: CredentialsError) -> Self {
        match error {
            CredentialsError::NotFound => Problem::new(
                StatusCode::NOT_FOUND,
                "no-credentials",
                "No credentials",
                "there is no Claude credentials file in this sandbox",
            ),
            CredentialsError::Unusable { reason } => {
                Problem::new(StatusCode::UNPROCESSABLE_ENTITY, "credentials-unusable", "Credentials unusable", reason.to_string())
            }
            CredentialsError::Invalid { error } => Problem::invalid_field(error.field, error.message),
            CredentialsError::Stale { current_expires_at } => Problem::new(
                StatusCode::CONFLICT,
                "stale-credentials",
                "Stale credentials",
                "the sandbox holds credentials that expire later than these; they were not written (send `force: true` to override)",
            )
            .with("currentExpiresAt", Value::from(current_expires_at)),
            CredentialsError::Contended => Problem::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "credentials-busy",
                "Credentials busy",
                "the credentials file kept changing while it was being written; nothing was written, retry",
            ),
            CredentialsError::Unwritable { fault, .. } => {
                // The detail names the kind of fault only; the path and the OS error go to the log.
                tracing::error!(error = %crate::error_chain(&error), "credentials not written");
                Problem::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "credentials-unwritable",
                    "Credentials not writable",
                    format!("the credentials could not be written: {fault}; the credentials file was left as it was"),
                )
            }
            error @ (CredentialsError::Io { .. } | CredentialsError::Task { .. } | CredentialsError::Lost) => {
                Problem::internal("credentials", &error)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Error;

    #[test]
    fn a_full_read_only_failing_or_forbidden_directory_is_unwritable_and_other_failures_stay_internal() {
        let kinds = [
            (nix::libc::ENOSPC, Some(WriteFault::NoSpace)),
            (nix::libc::EDQUOT, Some(WriteFault::NoSpace)),
            (nix::libc::EROFS, Some(WriteFault::ReadOnly)),
            (nix::libc::EPERM, Some(WriteFault::NotPermitted)),
            (nix::libc::EACCES, Some(WriteFault::NotPermitted)),
            (nix::libc::EIO, Some(WriteFault::DeviceError)),
            (nix::libc::EINVAL, None),
            (nix::libc::EBADF, None),
        ];
        for (errno, fault) in kinds {
            let error = CredentialsError::write_io("write", "/home/user/.claude/.credentials.json.1.0.tmp")(
                Error::from_raw_os_error(errno),
            );
            let problem = Problem::from(error.replicate());
            match fault {
                Some(fault) => {
                    assert!(
                        matches!(error, CredentialsError::Unwritable { fault: f, .. } if f == fault),
                        "{errno}: {error:?}"
                    );
                    assert_eq!(
                        (problem.status(), problem.slug()),
                        (StatusCode::SERVICE_UNAVAILABLE, "credentials-unwritable")
                    );
                }
                None => assert_eq!(problem.slug(), "internal", "{errno}"),
            }
        }
    }
}
