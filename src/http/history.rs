//! `GET /history`, `POST /history/undo`, `POST /history/redo`, `POST /history/checkout`.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::AppState;
use super::json::ApiJson;
use super::params::ApiQuery;
use super::problem::{Problem, ProblemBody};
use crate::history::HistoryError;
use crate::repo::{History, RepoError};

const DEFAULT_LIMIT: usize = 50;
const MAX_LIMIT: usize = 1000;

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct HistoryQuery {
    /// How many commits (default 50; more than 1000 gives 1000).
    #[param(value_type = Option<usize>, minimum = 1)]
    limit: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct CheckoutBody {
    /// A commit of the app's history: full or abbreviated (at least 7 hex digits).
    #[schema(pattern = "^[0-9a-fA-F]{7,40}$")]
    sha: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Head {
    head: String,
}

impl From<HistoryError> for Problem {
    fn from(error: HistoryError) -> Self {
        match error {
            HistoryError::Unavailable => Problem::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "history-unavailable",
                "History unavailable",
                error.to_string(),
            ),
            HistoryError::TurnInProgress => Problem::new(
                StatusCode::CONFLICT,
                "turn-in-progress",
                "Turn in progress",
                "a turn is running on this app; retry after its `done`",
            ),
            HistoryError::Repo(RepoError::NothingToUndo) => Problem::new(
                StatusCode::CONFLICT,
                "nothing-to-undo",
                "Nothing to undo",
                "the app is at its first commit",
            ),
            HistoryError::Repo(RepoError::NothingToRedo) => Problem::new(
                StatusCode::CONFLICT,
                "nothing-to-redo",
                "Nothing to redo",
                "there is no undone commit to redo",
            ),
            HistoryError::Repo(RepoError::MalformedSha { .. }) => {
                Problem::invalid_field("sha", "`sha` must be 7 to 40 hexadecimal digits")
            }
            HistoryError::Repo(RepoError::UnknownSha { sha }) => Problem::new(
                StatusCode::NOT_FOUND,
                "unknown-commit",
                "Unknown commit",
                format!("`{sha}` is not a commit of the app's history"),
            ),
            HistoryError::Repo(RepoError::AmbiguousSha { .. }) => {
                Problem::invalid_field("sha", "`sha` matches more than one object; give more digits")
            }
            HistoryError::Repo(RepoError::Locked { .. }) => Problem::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "repository-locked",
                "Repository locked",
                "another git process holds the app's repository; retry shortly",
            ),
            other => Problem::internal("history", &other),
        }
    }
}

/// The app's commits, newest first along HEAD's first-parent chain, and the redo list.
#[utoipa::path(get, path = "/history", tag = "history", security(("bearer" = [])), params(HistoryQuery),
    responses((status = 200, body = History),
              (status = 400, body = ProblemBody, content_type = "application/problem+json"),
              (status = 401, body = ProblemBody, content_type = "application/problem+json"),
              (status = 409, description = "A turn is running", body = ProblemBody, content_type = "application/problem+json"),
              (status = 500, description = "A git error", body = ProblemBody, content_type = "application/problem+json"),
              (status = 503, description = "Not provisioned, or no repository", body = ProblemBody, content_type = "application/problem+json")))]
pub async fn list(
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<HistoryQuery>,
) -> Result<impl axum::response::IntoResponse, Problem> {
    let limit = match query.limit.as_deref().map(str::parse::<usize>) {
        None => DEFAULT_LIMIT,
        Some(Ok(n)) if n > 0 => n.min(MAX_LIMIT),
        Some(_) => return Err(Problem::invalid_field("limit", "`limit` must be a positive integer")),
    };
    let history = state.history.history(limit).await?;
    Ok(Json(history))
}

/// Move the app (branch and working tree) to HEAD's parent; uncommitted changes are snapshotted first.
#[utoipa::path(post, path = "/history/undo", tag = "history", security(("bearer" = [])),
    responses((status = 200, body = Head),
              (status = 401, body = ProblemBody, content_type = "application/problem+json"),
              (status = 409, description = "`nothing-to-undo` or `turn-in-progress`", body = ProblemBody, content_type = "application/problem+json"),
              (status = 500, description = "A git error", body = ProblemBody, content_type = "application/problem+json"),
              (status = 503, description = "Not provisioned, no repository, or the repository is locked", body = ProblemBody, content_type = "application/problem+json")))]
pub async fn undo(State(state): State<AppState>) -> Result<Json<Head>, Problem> {
    Ok(Json(Head {
        head: state.history.undo().await?,
    }))
}

/// Step forward one undone commit.
#[utoipa::path(post, path = "/history/redo", tag = "history", security(("bearer" = [])),
    responses((status = 200, body = Head),
              (status = 401, body = ProblemBody, content_type = "application/problem+json"),
              (status = 409, description = "`nothing-to-redo` or `turn-in-progress`", body = ProblemBody, content_type = "application/problem+json"),
              (status = 500, description = "A git error", body = ProblemBody, content_type = "application/problem+json"),
              (status = 503, description = "Not provisioned, no repository, or the repository is locked", body = ProblemBody, content_type = "application/problem+json")))]
pub async fn redo(State(state): State<AppState>) -> Result<Json<Head>, Problem> {
    Ok(Json(Head {
        head: state.history.redo().await?,
    }))
}

/// Jump to any commit of the app's history.
#[utoipa::path(post, path = "/history/checkout", tag = "history", security(("bearer" = [])), request_body = CheckoutBody,
    responses((status = 200, body = Head),
              (status = 400, description = "Invalid body, malformed or ambiguous sha", body = ProblemBody, content_type = "application/problem+json"),
              (status = 401, body = ProblemBody, content_type = "application/problem+json"),
              (status = 404, description = "Not a commit of the app's history", body = ProblemBody, content_type = "application/problem+json"),
              (status = 409, description = "A turn is running", body = ProblemBody, content_type = "application/problem+json"),
              (status = 413, description = "The body is over 1 MiB", body = ProblemBody, content_type = "application/problem+json"),
              (status = 408, description = "The body did not arrive within `--body-timeout`", body = ProblemBody, content_type = "application/problem+json"),
              (status = 415, description = "Not `application/json`", body = ProblemBody, content_type = "application/problem+json"),
              (status = 500, description = "A git error", body = ProblemBody, content_type = "application/problem+json"),
              (status = 503, description = "Not provisioned, no repository, or the repository is locked", body = ProblemBody, content_type = "application/problem+json")))]
pub async fn checkout(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<CheckoutBody>,
) -> Result<Json<Head>, Problem> {
    Ok(Json(Head {
        head: state.history.checkout(body.sha).await?,
    }))
}
