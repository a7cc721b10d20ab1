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
    #[error("the credentials task did not finish")]
    Task {
        #[source]
        source: tokio::task::JoinError,
    },
}

impl CredentialsError {
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
            error @ (CredentialsError::Io { .. } | CredentialsError::Task { .. }) => Problem::internal("credentials", &error),
        }
    }
}
