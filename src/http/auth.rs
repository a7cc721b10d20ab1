//! The bearer-token layer in front of every protected endpoint.

use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::problem::Problem;
use crate::auth::{Auth, Verdict};

pub async fn require_token(State(auth): State<Auth>, request: Request, next: Next) -> Response {
    let presented = request.headers().get(header::AUTHORIZATION).map(|v| v.as_bytes());
    match auth.verify(presented) {
        Verdict::Allowed => next.run(request).await,
        Verdict::Unauthorized => Problem::unauthorized().into_response(),
        Verdict::NotProvisioned => not_provisioned().into_response(),
    }
}

pub fn not_provisioned() -> Problem {
    Problem::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "not-provisioned",
        "Not provisioned",
        "this sandbox has no bearer token yet; the control plane provisions it by writing the token file",
    )
}
