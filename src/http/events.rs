//! `GET /events`: Server-Sent Events for the control plane, resumable with `Last-Event-ID`.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::{StreamExt, stream};
use serde::Deserialize;
use tokio_stream::wrappers::BroadcastStream;
use utoipa::{IntoParams, ToSchema};

use super::AppState;
use super::params::ApiQuery;
use super::problem::{Problem, ProblemBody};
use crate::events;

/// More concurrent subscribers than this get a 503.
pub const MAX_SUBSCRIBERS: usize = 64;
const KEEPALIVE: Duration = Duration::from_secs(15);

#[derive(Debug, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub struct EventsQuery {
    /// Same as the `Last-Event-ID` header, for clients that cannot set headers. Ignored unless a number.
    #[param(value_type = Option<u64>)]
    last_event_id: Option<String>,
}

/// One event of the stream, as an SSE parser reads it (the OpenAPI 3.2 reading of a `text/event-stream` schema:
/// it describes each event, not the whole body).
#[derive(ToSchema)]
#[allow(dead_code)] // documents the stream; events are written by `to_sse`
pub struct StreamEvent {
    /// The event's number: one more than the previous event's. `events.gap` has none.
    #[schema(pattern = "^[0-9]+$")]
    id: Option<String>,
    event: EventName,
    /// A JSON object that repeats `event` as `type` and carries `timeMs` (see docs/api.md#event-types).
    data: String,
}

/// The names of the events of `GET /events`.
#[derive(ToSchema)]
#[allow(dead_code)]
pub enum EventName {
    #[schema(rename = "credentials.written")]
    CredentialsWritten,
    #[schema(rename = "credentials.rotated")]
    CredentialsRotated,
    #[schema(rename = "credentials.cleared")]
    CredentialsCleared,
    #[schema(rename = "component")]
    Component,
    #[schema(rename = "turn.started")]
    TurnStarted,
    #[schema(rename = "turn.update")]
    TurnUpdate,
    #[schema(rename = "turn.permission")]
    TurnPermission,
    #[schema(rename = "turn.finished")]
    TurnFinished,
    #[schema(rename = "turn.failed")]
    TurnFailed,
    #[schema(rename = "history")]
    History,
    #[schema(rename = "events.gap")]
    EventsGap,
}

/// Stream daemon events (`credentials.rotated`, `credentials.written`, `credentials.cleared`, …).
///
/// Each event has an `id`, an `event` name and a JSON `data` object that repeats the name as `type`.
/// A client that reconnects with `Last-Event-ID` first gets what it missed from a ring of 2048 events;
/// if some of them are gone it gets an `events.gap` event first. `: keepalive` comments every 15 s.
#[utoipa::path(get, path = "/events", tag = "events", security(("bearer" = [])),
    params(EventsQuery, ("Last-Event-ID" = Option<u64>, Header, description = "Resume after this event id")),
    responses((status = 200, description = "An endless `text/event-stream`; the schema describes each event", content_type = "text/event-stream", body = StreamEvent),
              (status = 400, description = "A query parameter is given more than once", body = ProblemBody, content_type = "application/problem+json"),
              (status = 401, body = ProblemBody, content_type = "application/problem+json"),
              (status = 503, description = "Not provisioned, or too many subscribers", body = ProblemBody, content_type = "application/problem+json")))]
pub async fn stream(
    State(state): State<AppState>,
    headers: HeaderMap,
    ApiQuery(query): ApiQuery<EventsQuery>,
) -> Response {
    if state.events.subscriber_count() >= MAX_SUBSCRIBERS {
        return Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "too-many-subscribers",
            "Too many event subscribers",
            format!("at most {MAX_SUBSCRIBERS} clients may follow /events at once"),
        )
        .into_response();
    }
    let header_id = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok());
    let query_id = query.last_event_id.and_then(|v| v.trim().parse().ok());
    let subscription = state.events.subscribe(header_id.or(query_id));

    // No id: a gap marker must not move the client's Last-Event-ID.
    let gap = subscription.gap.then(|| {
        Event::default()
            .event("events.gap")
            .data(format!(r#"{{"type":"events.gap","timeMs":{}}}"#, events::now_ms()))
    });
    let replay = stream::iter(
        gap.into_iter()
            .chain(subscription.replay.iter().map(|e| to_sse(e)))
            .collect::<Vec<_>>(),
    );
    // A subscriber that falls too far behind is cut off here; it resumes with `Last-Event-ID`.
    let live = BroadcastStream::new(subscription.live)
        .take_while(|received| std::future::ready(received.is_ok()))
        .filter_map(|received| std::future::ready(received.ok().map(|e| to_sse(&e))));
    let events = replay
        .chain(live)
        .take_until(state.shutdown.clone().cancelled_owned())
        .map(Ok::<_, Infallible>);
    Sse::new(events)
        .keep_alive(KeepAlive::new().interval(KEEPALIVE).text("keepalive"))
        .into_response()
}

fn to_sse(event: &events::Event) -> Event {
    Event::default()
        .id(event.id.to_string())
        .event(event.kind)
        .data(&event.data)
}
