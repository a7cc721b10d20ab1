//! Query-string and path-parameter extractors whose every rejection is a problem+json naming the parameter at
//! fault, like [`super::json::ApiJson`] for bodies. axum's own `Query` and `Path` answer in plain text.

use axum::extract::path::ErrorKind;
use axum::extract::rejection::PathRejection;
use axum::extract::{FromRequestParts, Path, Query};
use axum::http::StatusCode;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use super::json::describe_data_error;
use super::problem::Problem;

/// The query string, deserialized into `T`.
pub struct ApiQuery<T>(pub T);

impl<S, T> FromRequestParts<S> for ApiQuery<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Query::try_from_uri(&parts.uri)
            .map(|Query(value)| ApiQuery(value))
            .map_err(|rejection| query_problem(&rejection))
    }
}

/// axum keeps serde's error, with the path to the parameter, as the source of its rejection.
type QueryError = serde_path_to_error::Error<serde::de::value::Error>;

fn query_problem(rejection: &(dyn std::error::Error + 'static)) -> Problem {
    let mut source = Some(rejection);
    while let Some(error) = source {
        if let Some(error) = error.downcast_ref::<QueryError>() {
            return describe_query_error(&error.path().to_string(), &error.inner().to_string());
        }
        source = error.source();
    }
    invalid_query()
}

fn describe_query_error(path: &str, message: &str) -> Problem {
    let quoted = message.split('`').nth(1);
    if let Some(name) = quoted.filter(|_| message.starts_with("duplicate field")) {
        return Problem::invalid_field(name, format!("`{name}` must be given at most once"));
    }
    if path == "." {
        return invalid_query();
    }
    let detail = if message == "provided string was not `true` or `false`" {
        format!("`{path}` must be `true` or `false`")
    } else {
        describe_data_error(message, path)
    };
    Problem::invalid_field(path, detail)
}

fn invalid_query() -> Problem {
    Problem::new(
        StatusCode::BAD_REQUEST,
        "invalid-request",
        "Invalid request",
        "the query string is invalid",
    )
}

/// The path parameters, deserialized into `T`.
pub struct ApiPath<T>(pub T);

impl<S, T> FromRequestParts<S> for ApiPath<T>
where
    S: Send + Sync,
    T: DeserializeOwned + Send,
{
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match Path::<T>::from_request_parts(parts, state).await {
            Ok(Path(value)) => Ok(ApiPath(value)),
            Err(PathRejection::FailedToDeserializePathParams(error)) if error.status().is_client_error() => {
                Err(match error.kind() {
                    ErrorKind::InvalidUtf8InPathParam { key } => {
                        Problem::invalid_field(key.clone(), format!("`{key}` is not valid UTF-8"))
                    }
                    ErrorKind::ParseErrorAtKey { key, .. } | ErrorKind::DeserializeError { key, .. } => {
                        Problem::invalid_field(key.clone(), format!("`{key}` is invalid"))
                    }
                    _ => Problem::new(
                        StatusCode::BAD_REQUEST,
                        "invalid-request",
                        "Invalid request",
                        "a path parameter is invalid",
                    ),
                })
            }
            // The route and the extractor disagree: a bug, not the client's fault.
            Err(rejection) => Err(Problem::internal("path parameters", &rejection)),
        }
    }
}

#[cfg(test)]
mod tests {
    use axum::Router;
    use axum::routing::get;
    use serde::Deserialize;
    use serde_json::Value;

    use super::*;

    #[derive(Deserialize)]
    struct Flags {
        wait: Option<bool>,
        lines: Option<String>,
    }

    /// Serves a route per extractor on a loopback port; returns its base URL.
    async fn serve() -> String {
        let app = Router::new()
            .route(
                "/q",
                get(|ApiQuery(flags): ApiQuery<Flags>| async move { format!("{:?} {:?}", flags.wait, flags.lines) }),
            )
            .route("/p/{name}", get(|ApiPath(name): ApiPath<String>| async move { name }));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        base
    }

    /// Status, content type and body (JSON when it is JSON, else the text as a JSON string).
    async fn call(path: &str) -> (u16, String, Value) {
        let response = reqwest::get(format!("{}{path}", serve().await)).await.unwrap();
        let status = response.status().as_u16();
        let content_type = response
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default();
        let text = response.text().await.unwrap();
        (
            status,
            content_type,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    #[tokio::test]
    async fn a_bad_boolean_is_a_problem_naming_the_parameter() {
        let (status, content_type, body) = call("/q?wait=maybe").await;
        assert_eq!((status, content_type.as_str()), (400, "application/problem+json"));
        assert_eq!(body["field"], "wait");
        assert_eq!(body["detail"], "`wait` must be `true` or `false`");
    }

    #[tokio::test]
    async fn a_repeated_parameter_is_a_problem_naming_it() {
        let (status, content_type, body) = call("/q?lines=1&lines=2").await;
        assert_eq!((status, content_type.as_str()), (400, "application/problem+json"));
        assert_eq!(body["field"], "lines");
        assert_eq!(body["detail"], "`lines` must be given at most once");
    }

    #[tokio::test]
    async fn a_path_parameter_that_is_not_utf8_is_a_problem_naming_it() {
        let (status, content_type, body) = call("/p/%FF").await;
        assert_eq!((status, content_type.as_str()), (400, "application/problem+json"));
        assert_eq!(body["field"], "name");
        assert_eq!(body["detail"], "`name` is not valid UTF-8");
    }

    #[tokio::test]
    async fn good_queries_and_paths_pass() {
        assert_eq!(call("/q?wait=false&lines=3").await.2, "Some(false) Some(\"3\")");
        assert_eq!(call("/q").await.2, "None None");
        assert_eq!(call("/p/vite").await.2, "vite");
    }
}
