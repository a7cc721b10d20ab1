//! `POST /credentials/read` and `POST /credentials/write`.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

use super::AppState;
use super::json::ApiJson;
use super::problem::{Problem, ProblemBody};
use crate::credentials::CredentialsError;
use crate::credentials::document::parse_write_body;

/// The live credentials. The only response of the API that carries tokens.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CredentialsBody {
    pub access_token: String,
    pub refresh_token: String,
    /// Epoch milliseconds.
    pub expires_at: u64,
    pub scopes: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subscription_type: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rate_limit_tier: Option<String>,
}

/// A write body: the flat credentials object, or the CLI's `{"claudeAiOauth": {...}}` document.
#[derive(ToSchema)]
#[allow(dead_code)] // documents the accepted body; parsing is done by `parse_write_body`
#[schema(as = CredentialsWrite)]
pub struct CredentialsWriteDoc {
    /// Required (flat form).
    access_token: String,
    /// Required (flat form).
    refresh_token: String,
    /// Epoch milliseconds (integer > 0) or an ISO 8601 date-time with offset.
    #[schema(value_type = Object)]
    expires_at: Value,
    /// Must contain `user:inference`.
    scopes: Vec<String>,
    subscription_type: Option<String>,
    rate_limit_tier: Option<String>,
    /// The CLI's document form; when present, the fields above are read from inside it.
    #[schema(value_type = Option<Object>)]
    claude_ai_oauth: Option<Value>,
    /// Write even if the file holds newer credentials.
    force: Option<bool>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Written {
    pub written: bool,
    pub expires_at: u64,
}

/// Read the live Claude credentials from the sandbox's credentials file.
#[utoipa::path(post, path = "/credentials/read", tag = "credentials", security(("bearer" = [])),
    responses((status = 200, body = CredentialsBody),
              (status = 401, body = ProblemBody, content_type = "application/problem+json"),
              (status = 500, body = ProblemBody, content_type = "application/problem+json"),
              (status = 404, description = "No credentials file", body = ProblemBody, content_type = "application/problem+json"),
              (status = 422, description = "The file cannot be parsed or its tokens are empty", body = ProblemBody, content_type = "application/problem+json"),
              (status = 503, description = "Not provisioned", body = ProblemBody, content_type = "application/problem+json")))]
pub async fn read(State(state): State<AppState>) -> Result<Response, Problem> {
    let credentials = state.credentials.read().await?;
    let body = CredentialsBody {
        access_token: credentials.access_token.expose().to_owned(),
        refresh_token: credentials.refresh_token.expose().to_owned(),
        expires_at: credentials.expires_at,
        scopes: credentials.scopes,
        subscription_type: credentials.subscription_type,
        rate_limit_tier: credentials.rate_limit_tier,
    };
    Ok(no_store(Json(body)))
}

fn no_store(body: impl IntoResponse) -> Response {
    let mut response = body.into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// Write credentials into the sandbox, unless it holds newer ones.
#[utoipa::path(post, path = "/credentials/write", tag = "credentials", security(("bearer" = [])),
    request_body = CredentialsWriteDoc,
    responses((status = 200, body = Written),
              (status = 400, description = "Invalid body; `field` names the culprit", body = ProblemBody, content_type = "application/problem+json"),
              (status = 401, body = ProblemBody, content_type = "application/problem+json"),
              (status = 409, description = "The sandbox holds newer credentials; `currentExpiresAt` says how new", body = ProblemBody, content_type = "application/problem+json"),
              (status = 413, body = ProblemBody, content_type = "application/problem+json"),
              (status = 415, description = "Not `application/json`", body = ProblemBody, content_type = "application/problem+json"),
              (status = 500, body = ProblemBody, content_type = "application/problem+json"),
              (status = 503, description = "Not provisioned, or the file kept changing (`credentials-busy`)", body = ProblemBody, content_type = "application/problem+json")))]
pub async fn write(State(state): State<AppState>, ApiJson(body): ApiJson<Value>) -> Result<Response, Problem> {
    let request = parse_write_body(body).map_err(|error| CredentialsError::Invalid { error })?;
    let expires_at = state.credentials.write(request).await?;
    Ok(no_store(Json(Written {
        written: true,
        expires_at,
    })))
}
