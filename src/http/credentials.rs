//! `POST /credentials/read` and `POST /credentials/write`.

use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::Value;
use utoipa::{PartialSchema, ToSchema};

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

/// The credentials of a write: the flat body, or what `claudeAiOauth` holds. Other keys are kept in the file.
#[derive(ToSchema)]
#[schema(rename_all = "camelCase")]
#[allow(dead_code)] // documents the accepted body; parsing is done by `parse_write_body`
pub struct CredentialsFields {
    /// Not empty or blank.
    #[schema(pattern = r"\S")]
    access_token: String,
    /// Not empty or blank.
    #[schema(pattern = r"\S")]
    refresh_token: String,
    /// Epoch milliseconds (an integer > 0), or an ISO 8601 date-time with an offset.
    #[schema(schema_with = expires_at_schema)]
    expires_at: Value,
    /// Must contain `user:inference`.
    scopes: Vec<String>,
    /// Absent or `null`: the file keeps its value.
    subscription_type: Option<String>,
    /// Absent or `null`: the file keeps its value.
    rate_limit_tier: Option<String>,
}

fn expires_at_schema() -> utoipa::openapi::schema::Schema {
    use utoipa::openapi::schema::{KnownFormat, ObjectBuilder, OneOfBuilder, SchemaFormat, Type};
    OneOfBuilder::new()
        .item(
            ObjectBuilder::new()
                .schema_type(Type::Integer)
                .format(Some(SchemaFormat::KnownFormat(KnownFormat::Int64)))
                .minimum(Some(1)),
        )
        .item(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .format(Some(SchemaFormat::KnownFormat(KnownFormat::DateTime))),
        )
        .build()
        .into()
}

/// The CLI's document form of a write.
#[derive(ToSchema)]
#[schema(rename_all = "camelCase")]
#[allow(dead_code)]
pub struct CredentialsDocument {
    /// The credentials (`force` may not be inside).
    claude_ai_oauth: CredentialsFields,
    /// Write even if the file holds newer credentials.
    force: Option<bool>,
}

/// `force` beside the fields of the flat form.
#[derive(ToSchema)]
#[allow(dead_code)]
struct Force {
    /// Write even if the file holds newer credentials.
    force: Option<bool>,
}

/// A write body: the flat credentials object (the shape `/credentials/read` returns), or the CLI's
/// `{"claudeAiOauth": {...}}` document. Either way, `force` is at the top level.
pub struct CredentialsWrite;

impl PartialSchema for CredentialsWrite {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{AllOfBuilder, AnyOfBuilder, Ref};
        let flat = AllOfBuilder::new()
            .item(Ref::from_schema_name(CredentialsFields::name()))
            .item(Force::schema());
        AnyOfBuilder::new()
            .description(Some(
                "The flat credentials object (the shape `/credentials/read` returns), or the CLI's \
                 `{\"claudeAiOauth\": {...}}` document. Either way, `force` is at the top level.",
            ))
            .item(flat)
            .item(Ref::from_schema_name(CredentialsDocument::name()))
            .into()
    }
}

impl ToSchema for CredentialsWrite {
    fn schemas(schemas: &mut Vec<(String, utoipa::openapi::RefOr<utoipa::openapi::schema::Schema>)>) {
        schemas.push((CredentialsFields::name().into(), CredentialsFields::schema()));
        schemas.push((CredentialsDocument::name().into(), CredentialsDocument::schema()));
    }
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
    Ok(Json(body).into_response())
}

/// Write credentials into the sandbox, unless it holds newer ones.
#[utoipa::path(post, path = "/credentials/write", tag = "credentials", security(("bearer" = [])),
    request_body(content = CredentialsWrite, example = json!({
        "accessToken": "sk-ant-oat01-FAKE-aaaa", "refreshToken": "sk-ant-ort01-FAKE-rrrr",
        "expiresAt": "2026-12-05T02:00:00Z", "scopes": ["user:inference", "user:profile"], "subscriptionType": "max"})),
    responses((status = 200, body = Written),
              (status = 400, description = "Invalid body; `field` names the culprit", body = ProblemBody, content_type = "application/problem+json"),
              (status = 401, body = ProblemBody, content_type = "application/problem+json"),
              (status = 409, description = "The sandbox holds newer credentials; `currentExpiresAt` says how new", body = ProblemBody, content_type = "application/problem+json"),
              (status = 413, body = ProblemBody, content_type = "application/problem+json"),
              (status = 408, description = "The body did not arrive within `--body-timeout`", body = ProblemBody, content_type = "application/problem+json"),
              (status = 415, description = "Not `application/json`", body = ProblemBody, content_type = "application/problem+json"),
              (status = 500, body = ProblemBody, content_type = "application/problem+json"),
              (status = 503, description = "Not provisioned, the file kept changing (`credentials-busy`), or the disk is full, read-only or failing, or writing there is not permitted (`credentials-unwritable`)", body = ProblemBody, content_type = "application/problem+json")))]
pub async fn write(State(state): State<AppState>, ApiJson(body): ApiJson<Value>) -> Result<Response, Problem> {
    let request = parse_write_body(body).map_err(|error| CredentialsError::Invalid { error })?;
    let expires_at = state.credentials.write(request).await?;
    Ok(Json(Written {
        written: true,
        expires_at,
    })
    .into_response())
}
