//! RFC 9457 problem details: the one error format of the API.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::{Map, Value};
use utoipa::ToSchema;

/// Prefix of every problem `type`; the slug after it is stable and documented in `docs/api.md`.
pub const TYPE_PREFIX: &str = "https://acp-bridge.dev/problems/";

/// An error response. 4xx details are specific; 5xx details are generic (see [`Problem::internal`]).
#[derive(Debug, Clone)]
pub struct Problem {
    status: StatusCode,
    slug: &'static str,
    title: &'static str,
    detail: String,
    extensions: Vec<(&'static str, Value)>,
    www_authenticate: bool,
}

/// The JSON body of a problem response.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProblemBody {
    /// `https://acp-bridge.dev/problems/<slug>`.
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
    /// For validation errors: the JSON field at fault, as a dotted path.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

impl Problem {
    pub fn new(status: StatusCode, slug: &'static str, title: &'static str, detail: impl Into<String>) -> Self {
        Self {
            status,
            slug,
            title,
            detail: detail.into(),
            extensions: Vec::new(),
            www_authenticate: false,
        }
    }

    /// A 400 naming the request field at fault.
    pub fn invalid_field(field: impl Into<String>, detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "invalid-request",
            "Invalid request body",
            detail,
        )
        .with("field", Value::String(field.into()))
    }

    pub fn unauthorized() -> Self {
        let mut problem = Self::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "Unauthorized",
            "a valid `Authorization: Bearer <token>` header is required",
        );
        problem.www_authenticate = true;
        problem
    }

    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not-found", "Not found", detail)
    }

    /// A 500 whose detail says nothing of the cause; the cause is logged here instead.
    pub fn internal(context: &'static str, error: &dyn std::error::Error) -> Self {
        tracing::error!(context, error = %error, "internal error");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "Internal error",
            "the daemon hit an internal error; details are in its log",
        )
    }

    pub fn with(mut self, key: &'static str, value: Value) -> Self {
        self.extensions.push((key, value));
        self
    }

    pub fn status(&self) -> StatusCode {
        self.status
    }

    pub fn slug(&self) -> &'static str {
        self.slug
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let mut body = Map::new();
        body.insert("type".into(), Value::String(format!("{TYPE_PREFIX}{}", self.slug)));
        body.insert("title".into(), Value::from(self.title));
        body.insert("status".into(), Value::from(self.status.as_u16()));
        body.insert("detail".into(), Value::String(self.detail));
        body.extend(self.extensions.into_iter().map(|(k, v)| (k.to_owned(), v)));
        let mut response = (self.status, Value::Object(body).to_string()).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if self.www_authenticate {
            headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}
