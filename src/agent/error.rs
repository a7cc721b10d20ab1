//! Errors of the agent domain, and how each becomes an HTTP problem.

use axum::http::StatusCode;

use super::rpc::RpcError;
use crate::credentials::CredentialsError;
use crate::http::problem::Problem;

#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error("no credentials: send `oauthToken` or `apiKey`, or write credentials first")]
    NoCredentials,
    #[error("invalid `{field}`: {message}")]
    Invalid { field: String, message: String },
    #[error("credentials")]
    Credentials(#[from] CredentialsError),
    #[error("there is no session `{id}`")]
    UnknownSession { id: String },
    #[error("session `{id}` belonged to an agent process that is gone; create a new session")]
    SessionGone { id: String },
    #[error("a turn is already running")]
    TurnInProgress,
    #[error("no turn is running in session `{id}`")]
    NoTurn { id: String },
    #[error("cannot start the agent `{program}`")]
    Spawn {
        program: String,
        #[source]
        source: std::io::Error,
    },
    #[error("the agent failed `{method}`: {error}")]
    Handshake { method: &'static str, error: RpcError },
    #[error("the agent did not answer `{method}` in time")]
    Timeout { method: &'static str },
    #[error("the agent process exited during `{method}`")]
    Exited { method: &'static str },
    #[error("the daemon is shutting down")]
    ShuttingDown,
}

impl From<AgentError> for Problem {
    fn from(error: AgentError) -> Self {
        let detail = error.to_string();
        match error {
            AgentError::NoCredentials => {
                Problem::new(StatusCode::BAD_REQUEST, "no-credentials", "No credentials", detail)
            }
            AgentError::Invalid { field, message } => Problem::invalid_field(field, message),
            AgentError::Credentials(error) => error.into(),
            AgentError::UnknownSession { .. } => {
                Problem::new(StatusCode::NOT_FOUND, "unknown-session", "Unknown session", detail)
            }
            AgentError::SessionGone { .. } => Problem::new(StatusCode::GONE, "session-gone", "Session gone", detail),
            AgentError::TurnInProgress => Problem::new(
                StatusCode::CONFLICT,
                "turn-in-progress",
                "Turn in progress",
                "another turn is running on this app; wait for its `done` or cancel it",
            ),
            AgentError::NoTurn { .. } => Problem::new(StatusCode::CONFLICT, "no-turn", "No turn running", detail),
            AgentError::Spawn { .. } => {
                tracing::error!(error = %crate::error_chain(&error), "agent spawn failed");
                Problem::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "agent-unavailable",
                    "Agent unavailable",
                    detail,
                )
            }
            AgentError::Handshake { .. } => Problem::new(StatusCode::BAD_GATEWAY, "agent-error", "Agent error", detail),
            AgentError::Timeout { .. } | AgentError::Exited { .. } => Problem::new(
                StatusCode::BAD_GATEWAY,
                "agent-unavailable",
                "Agent unavailable",
                detail,
            ),
            AgentError::ShuttingDown => Problem::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "shutting-down",
                "Shutting down",
                detail,
            ),
        }
    }
}
