//! A JSON body extractor whose every rejection is a problem+json naming the field at fault.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::{StatusCode, header};
use serde::de::DeserializeOwned;

use super::problem::Problem;

/// Largest accepted request body.
pub const BODY_LIMIT: usize = 1024 * 1024;

pub struct ApiJson<T>(pub T);

impl<S, T> FromRequest<S> for ApiJson<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = Problem;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        if let Some(content_type) = request.headers().get(header::CONTENT_TYPE) {
            let is_json = content_type
                .to_str()
                .map(|v| {
                    let essence = v.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
                    essence == "application/json" || essence.ends_with("+json")
                })
                .unwrap_or(false);
            if !is_json {
                return Err(Problem::new(
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    "unsupported-media-type",
                    "Unsupported media type",
                    "the request body must be `application/json`",
                ));
            }
        }
        let bytes = Bytes::from_request(request, state).await.map_err(|rejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                Problem::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "body-too-large",
                    "Request body too large",
                    format!("request bodies are limited to {BODY_LIMIT} bytes"),
                )
            } else if timed_out(&rejection) {
                Problem::new(
                    StatusCode::REQUEST_TIMEOUT,
                    "request-timeout",
                    "Request timeout",
                    "the request body did not arrive in time (see --body-timeout)",
                )
            } else {
                Problem::new(
                    StatusCode::BAD_REQUEST,
                    "invalid-request",
                    "Invalid request body",
                    "the request body could not be read",
                )
            }
        })?;
        parse(&bytes).map(ApiJson)
    }
}

/// Deserializes `bytes`, turning serde's error into a 400 that names the field (never echoing values).
pub fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, Problem> {
    let deserializer = &mut serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(deserializer).map_err(|error| {
        let path = error.path().to_string();
        let inner = error.into_inner();
        let message = inner.to_string();
        let (field, detail) = match inner.classify() {
            serde_json::error::Category::Syntax if crate::json_depth::exceeded(&inner) => (
                "body".to_owned(),
                format!("JSON nested deeper than {} levels", crate::json_depth::MAX_DEPTH),
            ),
            serde_json::error::Category::Syntax | serde_json::error::Category::Eof => (
                "body".to_owned(),
                format!("malformed JSON at line {} column {}", inner.line(), inner.column()),
            ),
            serde_json::error::Category::Io => ("body".to_owned(), "the request body could not be read".to_owned()),
            serde_json::error::Category::Data => {
                // serde names a missing field in its message only ("missing field `x`"): lift it into the path.
                let field = match message
                    .split('`')
                    .nth(1)
                    .filter(|_| message.starts_with("missing field"))
                {
                    Some(missing) if path == "." => missing.to_owned(),
                    Some(missing) => format!("{path}.{missing}"),
                    None if path == "." => "body".to_owned(),
                    None => path,
                };
                let detail = describe_data_error(&message, &field);
                (field, detail)
            }
        };
        Problem::invalid_field(field, detail)
    })
}

/// serde's data errors quote the offending value (`invalid type: string "abc"…`); keep only the shape.
pub(super) fn describe_data_error(message: &str, field: &str) -> String {
    if message.starts_with("missing field") {
        format!("`{field}` is required")
    } else if let Some(expected) = message.split(", expected ").nth(1) {
        let expected = expected.split(" at line").next().unwrap_or(expected);
        format!("`{field}` has the wrong type or value: expected {expected}")
    } else {
        format!("`{field}` is invalid")
    }
}

/// True when reading the body failed because the client was too slow (`--body-timeout`).
fn timed_out(rejection: &(dyn std::error::Error + 'static)) -> bool {
    let mut source = Some(rejection);
    while let Some(error) = source {
        if error.is::<tower_http::timeout::TimeoutError>() {
            return true;
        }
        source = error.source();
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    #[serde(rename_all = "camelCase", deny_unknown_fields)]
    #[allow(dead_code)]
    struct Body {
        sha: String,
        inner: Inner,
    }

    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct Inner {
        n: u32,
    }

    fn field_of(problem: Problem) -> String {
        let response = axum::response::IntoResponse::into_response(problem);
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        let body = futures_body(response);
        body["field"].as_str().unwrap().to_owned()
    }

    fn futures_body(response: axum::response::Response) -> serde_json::Value {
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let bytes = rt
            .block_on(axum::body::to_bytes(response.into_body(), usize::MAX))
            .unwrap();
        serde_json::from_slice(&bytes).unwrap()
    }

    #[test]
    fn missing_field_is_named() {
        assert_eq!(field_of(parse::<Body>(br#"{"inner":{"n":1}}"#).unwrap_err()), "sha");
        assert_eq!(
            field_of(parse::<Body>(br#"{"sha":"x","inner":{}}"#).unwrap_err()),
            "inner.n"
        );
    }

    #[test]
    fn wrong_type_is_named_without_echoing_the_value() {
        let problem = parse::<Body>(br#"{"sha":"x","inner":{"n":"secret-value"}}"#).unwrap_err();
        let body = futures_body(axum::response::IntoResponse::into_response(problem));
        assert_eq!(body["field"], "inner.n");
        assert!(!body["detail"].as_str().unwrap().contains("secret-value"));
    }

    #[test]
    fn malformed_json_is_a_400() {
        let problem = parse::<Body>(b"{\"sha\":").unwrap_err();
        assert_eq!(problem.status(), StatusCode::BAD_REQUEST);
        let body = futures_body(axum::response::IntoResponse::into_response(problem));
        assert!(body["detail"].as_str().unwrap().starts_with("malformed JSON at line 1"));
    }

    #[test]
    fn json_nested_too_deeply_is_a_400_saying_so() {
        let deep = format!(r#"{{"sha":"x","inner":{}{}}}"#, "[".repeat(200), "]".repeat(200));
        let problem = parse::<serde_json::Value>(deep.as_bytes()).unwrap_err();
        let body = futures_body(axum::response::IntoResponse::into_response(problem));
        assert_eq!(body["status"], 400);
        assert_eq!(body["field"], "body");
        assert_eq!(body["detail"], "JSON nested deeper than 127 levels");
    }
}
