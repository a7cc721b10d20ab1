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
            Self::Lost | Self::Task { .. } => Self::Lost,
        }
    }

    pub fn io(op: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |source| Self::Io { op, path, source }
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
            error @ (CredentialsError::Io { .. } | CredentialsError::Task { .. } | CredentialsError::Lost) => {
                Problem::internal("credentials", &error)
            }
        }
    }
}
