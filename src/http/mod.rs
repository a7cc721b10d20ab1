//! The HTTP API: one file per resource, the auth layer, the problem format, the extractors that answer in it
//! (`json`, `params`) and the OpenAPI document.
//! [`router`] has no side effects, so tests can drive it with `oneshot`.

pub mod auth;
pub mod components;
pub mod credentials;
pub mod events;
pub mod health;
pub mod history;
pub mod json;
pub mod openapi;
pub mod params;
pub mod problem;
pub mod server;
pub mod session;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use tokio_util::sync::CancellationToken;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::agent::Agent;
use crate::auth::Auth;
use crate::components::Components;
use crate::credentials::CredentialsStore;
use crate::events::EventBus;
use crate::supervisor::SupervisorHandle;
use problem::Problem;

/// Everything a handler can reach. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub auth: Auth,
    pub credentials: CredentialsStore,
    pub events: EventBus,
    pub components: Components,
    pub supervisor: SupervisorHandle,
    pub agent: Agent,
    pub history: crate::history::AppHistory,
    pub info: Arc<DaemonInfo>,
    /// Cancelled when the daemon shuts down: long-lived responses (SSE) end on it.
    pub shutdown: CancellationToken,
}

/// Facts about this daemon fixed at start.
#[derive(Debug, Clone)]
pub struct DaemonInfo {
    pub started: Instant,
    pub listen: SocketAddr,
    pub app_dir: PathBuf,
}

/// The whole API.
pub fn router(state: AppState) -> Router {
    let (public, public_api) = OpenApiRouter::with_openapi(openapi::ApiDoc::openapi())
        .routes(routes!(health::health))
        .routes(routes!(openapi::openapi_json))
        .split_for_parts();
    let (protected, protected_api) = OpenApiRouter::new()
        .routes(routes!(health::status))
        .routes(routes!(credentials::read))
        .routes(routes!(credentials::write))
        .routes(routes!(events::stream))
        .routes(routes!(components::logs))
        .routes(routes!(components::restart))
        .routes(routes!(components::screenshot))
        .routes(routes!(session::create))
        .routes(routes!(session::prompt))
        .routes(routes!(session::cancel))
        .routes(routes!(history::list))
        .routes(routes!(history::undo))
        .routes(routes!(history::redo))
        .routes(routes!(history::checkout))
        .split_for_parts();
    let mut api = public_api;
    api.merge(protected_api);
    let document = openapi::Document::new(api);

    let protected = protected.route_layer(axum::middleware::from_fn_with_state(
        state.auth.clone(),
        auth::require_token,
    ));
    public
        .merge(protected)
        .fallback(|| async { Problem::not_found("no such endpoint") })
        .method_not_allowed_fallback(|| async {
            Problem::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method-not-allowed",
                "Method not allowed",
                "this endpoint does not accept that method",
            )
        })
        .layer(DefaultBodyLimit::max(json::BODY_LIMIT))
        .layer(axum::Extension(document))
        // The port is reachable from browsers too (E2B's public URL): no answer may be sniffed into HTML or script,
        // and none is stored by a cache unless it says otherwise (the event streams say `no-cache`).
        .layer(tower_http::set_header::SetResponseHeaderLayer::overriding(
            axum::http::header::X_CONTENT_TYPE_OPTIONS,
            axum::http::HeaderValue::from_static("nosniff"),
        ))
        .layer(tower_http::set_header::SetResponseHeaderLayer::if_not_present(
            axum::http::header::CACHE_CONTROL,
            axum::http::HeaderValue::from_static("no-store"),
        ))
        .with_state(state)
}
