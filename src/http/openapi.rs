//! The OpenAPI 3.1 document, generated from the handlers' annotations, served at `/openapi.json`.

use std::sync::Arc;

use axum::Extension;
use axum::http::header;
use axum::response::IntoResponse;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi};

#[derive(OpenApi)]
#[openapi(
    info(title = "acp-bridge", description = "The daemon inside each app-builder sandbox VM. See docs/api.md."),
    modifiers(&BearerScheme),
    components(schemas(super::problem::ProblemBody)),
    tags((name = "daemon"), (name = "credentials"), (name = "events"), (name = "components"), (name = "agent"), (name = "history"))
)]
pub struct ApiDoc;

struct BearerScheme;

impl Modify for BearerScheme {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme("bearer", SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)));
    }
}

/// The serialized document, built once.
#[derive(Clone)]
pub struct Document(Arc<String>);

impl Document {
    pub fn new(mut api: utoipa::openapi::OpenApi) -> Self {
        api.info.version = env!("CARGO_PKG_VERSION").to_owned();
        let mut document = serde_json::to_value(&api).unwrap_or_default();
        add_json_schema_keywords(&mut document);
        Self(Arc::new(document.to_string()))
    }
}

/// JSON Schema 2020-12 keywords that OpenAPI 3.1 allows but utoipa cannot express.
fn add_json_schema_keywords(document: &mut serde_json::Value) {
    // A write's `scopes` must contain `user:inference` anywhere in the array (`prefixItems` would pin its place).
    if let Some(scopes) = document.pointer_mut("/components/schemas/CredentialsFields/properties/scopes")
        && let Some(scopes) = scopes.as_object_mut()
    {
        scopes.insert(
            "contains".to_owned(),
            serde_json::json!({ "const": crate::credentials::document::REQUIRED_SCOPE }),
        );
    }
}

/// This document.
#[utoipa::path(get, path = "/openapi.json", tag = "daemon",
    responses((status = 200, description = "The OpenAPI 3.1 document", content_type = "application/json", body = Object)))]
pub async fn openapi_json(Extension(document): Extension<Document>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "application/json")],
        document.0.as_str().to_owned(),
    )
}
