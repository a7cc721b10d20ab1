//! `POST /session`, `POST /session/{id}/prompt` and `POST /session/{id}/cancel`.

use std::convert::Infallible;
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::stream;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};

use super::AppState;
use super::json::ApiJson;
use super::params::{ApiPath, ApiQuery};
use super::problem::{Problem, ProblemBody};
use crate::agent::SessionRequest;
use crate::agent::turn::TurnEvent;
use crate::secret::Secret;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SessionBody {
    /// A shared API key (used only when `oauthToken` is absent or empty). No control characters.
    #[serde(default)]
    #[schema(pattern = r"^[^\u0000-\u001F\u007F-\u009F]*$")]
    api_key: Option<String>,
    /// The credentials JSON: the `{"claudeAiOauth":{…}}` document (or the flat token object), as a string or an object.
    #[serde(default)]
    #[schema(schema_with = oauth_token_schema)]
    oauth_token: Option<Value>,
    /// Appended to the app-builder system prompt.
    #[serde(default)]
    system_prompt: Option<String>,
    #[serde(default)]
    model: Option<String>,
    /// Extra MCP servers, in ACP's shape, passed through.
    #[serde(default)]
    #[schema(value_type = Option<Vec<Object>>)]
    mcp_servers: Option<Vec<Value>>,
}

fn oauth_token_schema() -> utoipa::openapi::schema::Schema {
    use utoipa::openapi::schema::{ObjectBuilder, SchemaType, Type};
    ObjectBuilder::new()
        .schema_type(SchemaType::from_iter([Type::Object, Type::String, Type::Null]))
        .build()
        .into()
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SessionCreatedBody {
    session_id: String,
    /// `oauth` or `apiKey`.
    auth: &'static str,
    /// With `oauthToken`: `written`, or `kept-newer` when the sandbox already held newer tokens.
    #[serde(skip_serializing_if = "Option::is_none")]
    credentials: Option<&'static str>,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct PromptBody {
    /// Text (not empty or blank), or a non-empty array of ACP content blocks.
    #[schema(schema_with = prompt_schema)]
    prompt: Value,
}

fn prompt_schema() -> utoipa::openapi::schema::Schema {
    use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, OneOfBuilder, Type};
    OneOfBuilder::new()
        .item(ObjectBuilder::new().schema_type(Type::String).pattern(Some(r"\S")))
        .item(
            ArrayBuilder::new()
                .items(ObjectBuilder::new().schema_type(Type::Object))
                .min_items(Some(1)),
        )
        .build()
        .into()
}

/// One event of a turn's stream, as an SSE parser reads it (the OpenAPI 3.2 reading of a `text/event-stream`
/// schema: it describes each event, not the whole body).
#[derive(ToSchema)]
#[allow(dead_code)] // documents the stream that `prompt` writes
pub struct TurnStreamEvent {
    /// Counts from 1 in each stream.
    #[schema(pattern = "^[0-9]+$")]
    id: String,
    event: TurnEventName,
    /// JSON: the ACP update (`update`), the permission answered (`permission`), `{stopReason, commit,
    /// credentialsRotated}` (`done`), or a problem object (`error`).
    data: String,
}

/// The events of a turn's stream; it ends with exactly one `done` or `error`.
#[derive(ToSchema)]
#[schema(rename_all = "lowercase")]
#[allow(dead_code)]
pub enum TurnEventName {
    Update,
    Permission,
    Done,
    Error,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PromptQuery {
    /// `false`: answer 202 at once and publish the turn on `/events` only.
    wait: Option<bool>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TurnAccepted {
    turn_id: String,
}

/// Create an agent session (spawning or restarting the agent as the auth mode requires).
#[utoipa::path(post, path = "/session", tag = "agent", security(("bearer" = [])),
    request_body(content = SessionBody, example = json!({"apiKey": "sk-ant-api03-FAKE-kkkk", "systemPrompt": "The user prefers blue."})),
    responses((status = 200, body = SessionCreatedBody),
              (status = 400, description = "Invalid body, or no credentials (`no-credentials`)", body = ProblemBody, content_type = "application/problem+json"),
              (status = 401, body = ProblemBody, content_type = "application/problem+json"),
              (status = 409, description = "A turn runs and the agent would have to restart", body = ProblemBody, content_type = "application/problem+json"),
              (status = 413, description = "The body is over 1 MiB", body = ProblemBody, content_type = "application/problem+json"),
              (status = 408, description = "The body did not arrive within `--body-timeout`", body = ProblemBody, content_type = "application/problem+json"),
              (status = 415, description = "Not `application/json`", body = ProblemBody, content_type = "application/problem+json"),
              (status = 500, description = "The credentials file could not be written", body = ProblemBody, content_type = "application/problem+json"),
              (status = 502, description = "The agent failed the handshake", body = ProblemBody, content_type = "application/problem+json"),
              (status = 503, description = "Not provisioned, the agent cannot start, the daemon is shutting down, or `oauthToken` could not be written (`credentials-unwritable`)", body = ProblemBody, content_type = "application/problem+json")))]
pub async fn create(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<SessionBody>,
) -> Result<Json<SessionCreatedBody>, Problem> {
    let request = SessionRequest {
        api_key: body.api_key.map(Secret::new),
        oauth_token: body.oauth_token,
        system_prompt: body.system_prompt,
        model: body.model,
        mcp_servers: body.mcp_servers.unwrap_or_default(),
    };
    let created = state.agent.create_session(request).await?;
    Ok(Json(SessionCreatedBody {
        session_id: created.session_id,
        auth: created.auth,
        credentials: created.credentials,
    }))
}

/// Run one prompt turn. Streams `update`, `permission`, then exactly one `done` or `error` (Server-Sent Events).
#[utoipa::path(post, path = "/session/{id}/prompt", tag = "agent", security(("bearer" = [])),
    request_body(content = PromptBody, example = json!({"prompt": "Make the header blue"})),
    params(("id" = String, Path, description = "The session id"), PromptQuery),
    responses((status = 200, description = "The turn, as `text/event-stream`; the schema describes each event", content_type = "text/event-stream", body = TurnStreamEvent,
               headers(("x-turn-id" = String, description = "The turn's id (as in `turn.*` events and /status)"))),
              (status = 202, description = "With `?wait=false`: the turn runs; follow it on `/events`", body = TurnAccepted),
              (status = 400, description = "Invalid body or `prompt`, or `wait` is not `true` or `false`", body = ProblemBody, content_type = "application/problem+json"),
              (status = 401, body = ProblemBody, content_type = "application/problem+json"),
              (status = 404, description = "Unknown session", body = ProblemBody, content_type = "application/problem+json"),
              (status = 409, description = "Another turn is running", body = ProblemBody, content_type = "application/problem+json"),
              (status = 410, description = "The session's agent process is gone", body = ProblemBody, content_type = "application/problem+json"),
              (status = 413, description = "The body is over 1 MiB", body = ProblemBody, content_type = "application/problem+json"),
              (status = 408, description = "The body did not arrive within `--body-timeout`", body = ProblemBody, content_type = "application/problem+json"),
              (status = 415, description = "Not `application/json`", body = ProblemBody, content_type = "application/problem+json"),
              (status = 503, description = "Not provisioned", body = ProblemBody, content_type = "application/problem+json")))]
pub async fn prompt(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
    ApiQuery(query): ApiQuery<PromptQuery>,
    ApiJson(body): ApiJson<PromptBody>,
) -> Result<Response, Problem> {
    let (info, receiver) = state.agent.prompt(&id, body.prompt).await?;
    if query.wait == Some(false) {
        // The turn goes on without a listener; its events are on /events.
        drop(receiver);
        return Ok((StatusCode::ACCEPTED, Json(TurnAccepted { turn_id: info.turn_id })).into_response());
    }
    let events = stream::unfold((receiver, 0u64, false), |(mut receiver, id, finished)| async move {
        if finished {
            return None;
        }
        let event = receiver.recv().await?;
        let (name, data, last) = match event {
            TurnEvent::Update(data) => ("update", data, false),
            TurnEvent::Permission(data) => ("permission", data, false),
            TurnEvent::Done(data) => ("done", data, true),
            TurnEvent::Error(data) => ("error", data, true),
        };
        let sse = Event::default()
            .id((id + 1).to_string())
            .event(name)
            .data(data.to_string());
        Some((Ok::<_, Infallible>(sse), (receiver, id + 1, last)))
    });
    let mut response = Sse::new(events)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)).text("keepalive"))
        .into_response();
    if let Ok(value) = axum::http::HeaderValue::from_str(&info.turn_id) {
        response.headers_mut().insert("x-turn-id", value);
    }
    Ok(response)
}

/// Cancel the session's running turn (ACP `session/cancel`); it ends with `stopReason: "cancelled"`.
#[utoipa::path(post, path = "/session/{id}/cancel", tag = "agent", security(("bearer" = [])),
    params(("id" = String, Path, description = "The session id")),
    responses((status = 202, description = "Cancel sent to the agent"),
              (status = 400, description = "The id is not valid UTF-8", body = ProblemBody, content_type = "application/problem+json"),
              (status = 401, body = ProblemBody, content_type = "application/problem+json"),
              (status = 404, description = "Unknown session", body = ProblemBody, content_type = "application/problem+json"),
              (status = 409, description = "No turn is running in this session", body = ProblemBody, content_type = "application/problem+json"),
              (status = 410, description = "The session's agent process is gone", body = ProblemBody, content_type = "application/problem+json"),
              (status = 503, description = "Not provisioned", body = ProblemBody, content_type = "application/problem+json")))]
pub async fn cancel(State(state): State<AppState>, ApiPath(id): ApiPath<String>) -> Result<StatusCode, Problem> {
    state.agent.cancel(&id)?;
    Ok(StatusCode::ACCEPTED)
}
