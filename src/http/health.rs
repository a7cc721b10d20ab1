//! `GET /health` (public, for people debugging a VM and for readiness checks) and `GET /status`.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use super::AppState;
use crate::components::{self, ComponentStatus, Overall, State as ComponentState};
use crate::history::RepoSummary;

/// A component as `/health` shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct ComponentHealth {
    pub state: ComponentState,
    pub restarts: u32,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CredentialsHealth {
    pub present: bool,
    /// Epoch milliseconds.
    pub expires_at: Option<u64>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Health {
    pub status: Overall,
    pub version: &'static str,
    pub uptime_ms: u64,
    pub components: BTreeMap<&'static str, ComponentHealth>,
    pub credentials: CredentialsHealth,
    /// The app's repository: HEAD and whether the working tree has uncommitted changes (null without a repository).
    pub repo: Option<RepoSummary>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CredentialsStatus {
    pub present: bool,
    pub expires_at: Option<u64>,
    pub scopes: Vec<String>,
    pub subscription_type: Option<String>,
    /// When the file was last rewritten by someone other than the daemon (epoch ms).
    pub last_rotation_at: Option<u64>,
    /// Rotations seen since the daemon started.
    pub rotations: u64,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Paths {
    pub claude_config_dir: String,
    pub credentials_file: String,
    pub app_dir: String,
    pub token_file: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuthStatus {
    /// `token`, `token-file` or `disabled`.
    pub mode: &'static str,
    pub provisioned: bool,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Status {
    pub status: Overall,
    pub version: &'static str,
    pub uptime_ms: u64,
    pub pid: u32,
    pub listen: String,
    pub components: BTreeMap<&'static str, ComponentStatus>,
    pub credentials: CredentialsStatus,
    pub repo: Option<RepoSummary>,
    pub auth: AuthStatus,
    pub paths: Paths,
    pub event_subscribers: usize,
    pub agent: crate::agent::AgentStatus,
}

/// Health of the daemon and its components.
///
/// 200 when every enabled component is ready, else 503; the body is the same either way.
#[utoipa::path(get, path = "/health", tag = "daemon",
    responses((status = 200, description = "Everything enabled is ready", body = Health),
              (status = 503, description = "Starting or degraded", body = Health)))]
pub async fn health(State(state): State<AppState>) -> Response {
    let components = state.components.snapshot();
    let status = components::overall(components.values());
    let known = state.credentials.known();
    let body = Health {
        status,
        version: env!("CARGO_PKG_VERSION"),
        uptime_ms: state.info.started.elapsed().as_millis() as u64,
        components: components
            .into_iter()
            .map(|(name, c)| {
                (
                    name,
                    ComponentHealth {
                        state: c.state,
                        restarts: c.restarts,
                    },
                )
            })
            .collect(),
        credentials: CredentialsHealth {
            present: known.present,
            expires_at: known.expires_at,
        },
        repo: state.history.summary().await,
    };
    (http_status(status), Json(body)).into_response()
}

/// Everything in `/health` plus pids, last exits, credential metadata and the paths in use. No secrets.
#[utoipa::path(get, path = "/status", tag = "daemon", security(("bearer" = [])),
    responses((status = 200, body = Status),
              (status = 401, body = super::problem::ProblemBody, content_type = "application/problem+json"),
              (status = 503, description = "Not provisioned", body = super::problem::ProblemBody, content_type = "application/problem+json")))]
pub async fn status(State(state): State<AppState>) -> Response {
    let components = state.components.snapshot();
    let status = components::overall(components.values());
    let known = state.credentials.known();
    let body = Status {
        status,
        version: env!("CARGO_PKG_VERSION"),
        uptime_ms: state.info.started.elapsed().as_millis() as u64,
        pid: std::process::id(),
        listen: state.info.listen.to_string(),
        components,
        credentials: CredentialsStatus {
            present: known.present,
            expires_at: known.expires_at,
            scopes: known.scopes,
            subscription_type: known.subscription_type,
            last_rotation_at: known.last_rotation_at,
            rotations: known.rotations,
        },
        repo: state.history.summary().await,
        auth: AuthStatus {
            mode: state.auth.mode_name(),
            provisioned: state.auth.provisioned(),
        },
        paths: Paths {
            claude_config_dir: state.credentials.dir().display().to_string(),
            credentials_file: state.credentials.file().display().to_string(),
            app_dir: state.info.app_dir.display().to_string(),
            token_file: state.auth.token_file().map(|p| p.display().to_string()),
        },
        event_subscribers: state.events.subscriber_count(),
        agent: state.agent.status(),
    };
    Json(body).into_response()
}

fn http_status(overall: Overall) -> StatusCode {
    if overall == Overall::Ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    }
}
