//! `GET /components/{name}/logs`, `POST /components/{name}/restart` and `GET /preview/screenshot`.

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};

use super::AppState;
use super::params::{ApiPath, ApiQuery};
use super::problem::{Problem, ProblemBody};
use crate::components::State as ComponentState;
use crate::supervisor::{ComponentError, cdp};

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LogsQuery {
    /// How many of the most recent lines (default 200; more than 2000 gives 2000).
    #[param(value_type = Option<usize>)]
    lines: Option<String>,
}

/// The components: the three supervised programs and the ACP agent.
#[derive(ToSchema)]
#[schema(rename_all = "lowercase")]
#[allow(dead_code)] // documents the `{name}` parameter; the handlers take a string and answer 404 for other names
pub enum ComponentName {
    Xvfb,
    Chromium,
    Vite,
    Agent,
}

impl From<ComponentError> for Problem {
    fn from(error: ComponentError) -> Self {
        match error {
            ComponentError::Unknown { .. } => Problem::new(
                StatusCode::NOT_FOUND,
                "unknown-component",
                "Unknown component",
                error.to_string(),
            ),
            ComponentError::Disabled { .. } => Problem::new(
                StatusCode::CONFLICT,
                "component-disabled",
                "Component disabled",
                error.to_string(),
            ),
            ComponentError::Stopping { .. } => Problem::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "shutting-down",
                "Shutting down",
                error.to_string(),
            ),
        }
    }
}

/// The tail of a component's stdout and stderr, as plain text.
#[utoipa::path(get, path = "/components/{name}/logs", tag = "components", security(("bearer" = [])),
    params(("name" = inline(ComponentName), Path, description = "`xvfb`, `chromium`, `vite` or `agent` (the agent's stderr)"), LogsQuery),
    responses((status = 200, description = "The most recent lines, oldest first", content_type = "text/plain", body = String),
              (status = 400, description = "`lines` is not a non-negative integer, or a parameter is malformed", body = ProblemBody, content_type = "application/problem+json"),
              (status = 401, body = ProblemBody, content_type = "application/problem+json"),
              (status = 404, description = "Unknown component", body = ProblemBody, content_type = "application/problem+json"),
              (status = 409, description = "Component disabled", body = ProblemBody, content_type = "application/problem+json"),
              (status = 503, description = "Not provisioned", body = ProblemBody, content_type = "application/problem+json")))]
pub async fn logs(
    State(state): State<AppState>,
    ApiPath(name): ApiPath<String>,
    ApiQuery(query): ApiQuery<LogsQuery>,
) -> Result<Response, Problem> {
    let count = match query.lines.as_deref().map(str::parse::<usize>) {
        None => 200,
        Some(Ok(n)) => n.min(2000),
        Some(Err(_)) => {
            return Err(Problem::invalid_field(
                "lines",
                "`lines` must be a non-negative integer",
            ));
        }
    };
    let lines = if name == "agent" {
        state.agent.logs().tail(count)
    } else {
        state.supervisor.logs(&name, count)?
    };
    let mut text = String::with_capacity(lines.iter().map(|l| l.len() + 1).sum());
    for line in lines {
        text.push_str(&line);
        text.push('\n');
    }
    Ok(([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], text).into_response())
}

/// Restart one component; what depends on it (chromium on xvfb) restarts after it. For `agent`: stop it (a hung
/// turn ends and is committed; its sessions are gone) — the next `POST /session` starts a fresh one.
#[utoipa::path(post, path = "/components/{name}/restart", tag = "components", security(("bearer" = [])),
    params(("name" = inline(ComponentName), Path, description = "`xvfb`, `chromium`, `vite` or `agent`")),
    responses((status = 202, description = "Restart requested; follow it on `/health` or `/events`"),
              (status = 400, description = "The name is not valid UTF-8", body = ProblemBody, content_type = "application/problem+json"),
              (status = 401, body = ProblemBody, content_type = "application/problem+json"),
              (status = 404, description = "Unknown component", body = ProblemBody, content_type = "application/problem+json"),
              (status = 409, description = "Component disabled", body = ProblemBody, content_type = "application/problem+json"),
              (status = 503, description = "Not provisioned, or shutting down", body = ProblemBody, content_type = "application/problem+json")))]
pub async fn restart(State(state): State<AppState>, ApiPath(name): ApiPath<String>) -> Result<StatusCode, Problem> {
    if name == "agent" {
        // Stopping is enough: the next `POST /session` starts a fresh agent.
        state.agent.stop().await;
        return Ok(StatusCode::ACCEPTED);
    }
    state.supervisor.restart(&name)?;
    tracing::info!(component = %name, "restart requested over HTTP");
    Ok(StatusCode::ACCEPTED)
}

/// A PNG of what the browser shows, through CDP `Page.captureScreenshot`.
#[utoipa::path(get, path = "/preview/screenshot", tag = "components", security(("bearer" = [])),
    responses((status = 200, description = "The page as the browser renders it", content_type = "image/png", body = Vec<u8>),
              (status = 401, body = ProblemBody, content_type = "application/problem+json"),
              (status = 503, description = "Not provisioned, or chromium not ready", body = ProblemBody, content_type = "application/problem+json")))]
pub async fn screenshot(State(state): State<AppState>) -> Result<Response, Problem> {
    let chromium = state.components.snapshot().get("chromium").map(|c| c.state);
    let (Some(port), Some(ComponentState::Ready)) = (state.supervisor.cdp_port(), chromium) else {
        return Err(Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "browser-not-ready",
            "Browser not ready",
            "chromium is not ready (see /health); no screenshot can be taken",
        ));
    };
    let png = cdp::screenshot(port).await.map_err(|error| {
        tracing::warn!(error = %error, "screenshot failed");
        Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "screenshot-failed",
            "Screenshot failed",
            error.to_string(),
        )
    })?;
    Ok(([(header::CONTENT_TYPE, "image/png")], png).into_response())
}
