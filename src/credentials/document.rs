//! The Claude CLI's credentials document (`.credentials.json`) and the body of `POST /credentials/write`.
//!
//! ```json
//! {"claudeAiOauth":{"accessToken":"…","refreshToken":"…","expiresAt":1767225600000,
//!                   "scopes":["user:inference","user:profile"],"subscriptionType":"max","rateLimitTier":"…"}}
//! ```
//! Nothing here ever puts a token or any other file content into an error.

use serde_json::{Map, Value};
use time::OffsetDateTime;
use time::format_description::well_known::Iso8601;

use crate::secret::Secret;

pub const OAUTH_KEY: &str = "claudeAiOauth";
pub const REQUIRED_SCOPE: &str = "user:inference";
/// A credentials file larger than this is not a credentials file.
pub const MAX_FILE_BYTES: usize = 256 * 1024;

/// Fields a write always replaces; the optional `subscriptionType` and `rateLimitTier` are replaced only when given.
const REPLACED_FIELDS: [&str; 4] = ["accessToken", "refreshToken", "expiresAt", "scopes"];

/// The `claudeAiOauth` object, with its tokens kept secret.
#[derive(Debug, Clone, PartialEq)]
pub struct OAuthCredentials {
    pub access_token: Secret,
    pub refresh_token: Secret,
    /// Epoch milliseconds.
    pub expires_at: u64,
    pub scopes: Vec<String>,
    pub subscription_type: Option<String>,
    pub rate_limit_tier: Option<String>,
}

/// Why a credentials file cannot be used. The messages name the problem, never the content.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Unusable {
    #[error("the credentials file is empty")]
    Empty,
    #[error("the credentials file is not valid JSON")]
    NotJson,
    #[error("the credentials document nests deeper than {} levels", crate::json_depth::MAX_DEPTH)]
    TooDeep,
    #[error("the credentials file is larger than {MAX_FILE_BYTES} bytes")]
    TooLarge,
    #[error("the credentials document is not a JSON object")]
    NotObject,
    #[error("the credentials document has no `claudeAiOauth` object")]
    NoOauth,
    #[error("`claudeAiOauth.{0}` is missing or has the wrong type")]
    BadField(&'static str),
    #[error("the access or refresh token is empty (signed out or a failed refresh)")]
    EmptyTokens,
    #[error("the credentials path is not a regular file")]
    NotAFile,
}

impl Unusable {
    /// A reader racing an in-place rewrite sees an empty or cut-off file: worth reading again.
    pub fn may_be_torn(self) -> bool {
        matches!(self, Unusable::Empty | Unusable::NotJson)
    }
}

/// A validation error of a write body, naming the field as a dotted path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

/// A parsed `POST /credentials/write` body.
#[derive(Debug, Clone)]
pub struct WriteRequest {
    pub credentials: OAuthCredentials,
    /// Keys of the oauth object this daemon does not know; written through unchanged.
    pub extra: Map<String, Value>,
    pub force: bool,
}

/// Parses the file's bytes into its top-level object and its credentials.
pub fn parse_file(bytes: &[u8]) -> Result<(Map<String, Value>, OAuthCredentials), Unusable> {
    if bytes.len() > MAX_FILE_BYTES {
        return Err(Unusable::TooLarge);
    }
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(Unusable::Empty);
    }
    let value: Value = serde_json::from_slice(bytes).map_err(|error| {
        if crate::json_depth::exceeded(&error) {
            Unusable::TooDeep
        } else {
            Unusable::NotJson
        }
    })?;
    let Value::Object(top) = value else {
        return Err(Unusable::NotObject);
    };
    let Some(Value::Object(oauth)) = top.get(OAUTH_KEY) else {
        return Err(Unusable::NoOauth);
    };
    let credentials = credentials_from_file_object(oauth)?;
    Ok((top, credentials))
}

fn credentials_from_file_object(oauth: &Map<String, Value>) -> Result<OAuthCredentials, Unusable> {
    let token = |key: &'static str| match oauth.get(key) {
        Some(Value::String(s)) => Ok(Secret::new(s.as_str())),
        Some(Value::Null) | None => Ok(Secret::default()),
        Some(_) => Err(Unusable::BadField(key)),
    };
    let access_token = token("accessToken")?;
    let refresh_token = token("refreshToken")?;
    if access_token.expose().trim().is_empty() || refresh_token.expose().trim().is_empty() {
        return Err(Unusable::EmptyTokens);
    }
    let expires_at = oauth
        .get("expiresAt")
        .and_then(epoch_ms_from_number)
        .ok_or(Unusable::BadField("expiresAt"))?;
    let scopes = match oauth.get("scopes") {
        None | Some(Value::Null) => Vec::new(),
        Some(value) => string_array(value).ok_or(Unusable::BadField("scopes"))?,
    };
    let optional = |key: &'static str| match oauth.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(Unusable::BadField(key)),
    };
    Ok(OAuthCredentials {
        access_token,
        refresh_token,
        expires_at,
        scopes,
        subscription_type: optional("subscriptionType")?,
        rate_limit_tier: optional("rateLimitTier")?,
    })
}

/// The `expiresAt` of a document that may be otherwise unusable (used for the never-replace-newer rule).
pub fn expires_at_of(top: &Map<String, Value>) -> Option<u64> {
    top.get(OAUTH_KEY)?.get("expiresAt").and_then(epoch_ms_from_number)
}

/// Validates a write body: either the flat credentials object or the CLI's `{"claudeAiOauth":{…}}`.
pub fn parse_write_body(body: Value) -> Result<WriteRequest, FieldError> {
    let Value::Object(mut top) = body else {
        return Err(field_error("body", "the body must be a JSON object"));
    };
    let force = match top.remove("force") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => b,
        Some(_) => return Err(field_error("force", "`force` must be a boolean")),
    };
    let (mut oauth, prefix) = match top.remove(OAUTH_KEY) {
        Some(Value::Object(oauth)) => (oauth, "claudeAiOauth."),
        Some(_) => return Err(field_error(OAUTH_KEY, "`claudeAiOauth` must be an object")),
        None => (top, ""),
    };
    let field = |name: &str| format!("{prefix}{name}");
    if !prefix.is_empty() && oauth.contains_key("force") {
        return Err(field_error(
            "claudeAiOauth.force",
            "`force` belongs at the top level, next to `claudeAiOauth`",
        ));
    }
    if !prefix.is_empty() && oauth.contains_key(OAUTH_KEY) {
        return Err(field_error(
            "claudeAiOauth.claudeAiOauth",
            "`claudeAiOauth` cannot be nested in itself",
        ));
    }

    let mut token = |key: &str| match oauth.remove(key) {
        Some(Value::String(s)) if !s.trim().is_empty() => Ok(Secret::new(s)),
        Some(Value::String(_)) => Err(field_error(&field(key), &format!("`{}` must not be empty", field(key)))),
        None | Some(Value::Null) => Err(field_error(&field(key), &format!("`{}` is required", field(key)))),
        Some(_) => Err(field_error(&field(key), &format!("`{}` must be a string", field(key)))),
    };
    let access_token = token("accessToken")?;
    let refresh_token = token("refreshToken")?;

    let expires_at = match oauth.remove("expiresAt") {
        None | Some(Value::Null) => {
            return Err(field_error(
                &field("expiresAt"),
                &format!("`{}` is required", field("expiresAt")),
            ));
        }
        Some(Value::String(s)) => epoch_ms_from_iso8601(&s).ok_or_else(|| {
            field_error(
                &field("expiresAt"),
                &format!(
                    "`{}` must be epoch milliseconds or an ISO 8601 date-time with an offset",
                    field("expiresAt")
                ),
            )
        })?,
        Some(value) => epoch_ms_from_number(&value).ok_or_else(|| {
            field_error(
                &field("expiresAt"),
                &format!(
                    "`{}` must be a positive integer of epoch milliseconds",
                    field("expiresAt")
                ),
            )
        })?,
    };

    let scopes = match oauth.remove("scopes") {
        None | Some(Value::Null) => {
            return Err(field_error(
                &field("scopes"),
                &format!("`{}` is required", field("scopes")),
            ));
        }
        Some(value) => string_array(&value).ok_or_else(|| {
            field_error(
                &field("scopes"),
                &format!("`{}` must be an array of strings", field("scopes")),
            )
        })?,
    };
    if !scopes.iter().any(|s| s == REQUIRED_SCOPE) {
        return Err(field_error(
            &field("scopes"),
            &format!("`{}` must contain `{REQUIRED_SCOPE}`", field("scopes")),
        ));
    }

    let mut optional = |key: &str| match oauth.remove(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(field_error(&field(key), &format!("`{}` must be a string", field(key)))),
    };
    let subscription_type = optional("subscriptionType")?;
    let rate_limit_tier = optional("rateLimitTier")?;

    Ok(WriteRequest {
        credentials: OAuthCredentials {
            access_token,
            refresh_token,
            expires_at,
            scopes,
            subscription_type,
            rate_limit_tier,
        },
        extra: oauth,
        force,
    })
}

/// Builds the document to write: every key of `existing` is kept, and so are the keys of its oauth object
/// that the request does not set. Tokens, `expiresAt` and `scopes` always come from the request;
/// `subscriptionType` and `rateLimitTier` are kept from the file when the request leaves them out.
pub fn merge_into(existing: Option<Map<String, Value>>, request: &WriteRequest) -> Map<String, Value> {
    let mut top = existing.unwrap_or_default();
    let mut oauth = match top.remove(OAUTH_KEY) {
        Some(Value::Object(map)) => map,
        _ => Map::new(),
    };
    for key in REPLACED_FIELDS {
        oauth.remove(key);
    }
    for (key, value) in &request.extra {
        oauth.insert(key.clone(), value.clone());
    }
    let c = &request.credentials;
    oauth.insert("accessToken".into(), Value::String(c.access_token.expose().to_owned()));
    oauth.insert(
        "refreshToken".into(),
        Value::String(c.refresh_token.expose().to_owned()),
    );
    oauth.insert("expiresAt".into(), Value::from(c.expires_at));
    oauth.insert("scopes".into(), Value::from(c.scopes.clone()));
    if let Some(s) = &c.subscription_type {
        oauth.insert("subscriptionType".into(), Value::String(s.clone()));
    }
    if let Some(s) = &c.rate_limit_tier {
        oauth.insert("rateLimitTier".into(), Value::String(s.clone()));
    }
    top.insert(OAUTH_KEY.into(), Value::Object(oauth));
    top
}

fn field_error(field: &str, message: &str) -> FieldError {
    FieldError {
        field: field.to_owned(),
        message: message.to_owned(),
    }
}

fn string_array(value: &Value) -> Option<Vec<String>> {
    value
        .as_array()?
        .iter()
        .map(|v| v.as_str().map(str::to_owned))
        .collect()
}

/// A positive integral number of epoch milliseconds.
fn epoch_ms_from_number(value: &Value) -> Option<u64> {
    let ms = match value {
        Value::Number(n) => n.as_u64().or_else(|| {
            n.as_f64()
                .filter(|f| f.fract() == 0.0 && *f > 0.0 && *f < 9.0e15)
                .map(|f| f as u64)
        })?,
        _ => return None,
    };
    (ms > 0).then_some(ms)
}

fn epoch_ms_from_iso8601(text: &str) -> Option<u64> {
    let at = OffsetDateTime::parse(text.trim(), &Iso8601::DEFAULT).ok()?;
    let ms = at.unix_timestamp_nanos() / 1_000_000;
    u64::try_from(ms).ok().filter(|ms| *ms > 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn flat() -> Value {
        json!({"accessToken":"a","refreshToken":"r","expiresAt":1767225600000u64,"scopes":["user:inference"]})
    }

    #[test]
    fn file_with_every_field_parses() {
        let bytes = br#"{"claudeAiOauth":{"accessToken":"a","refreshToken":"r","expiresAt":5,"scopes":["user:inference"],"subscriptionType":"max","rateLimitTier":"t"},"other":1}"#;
        let (top, c) = parse_file(bytes).unwrap();
        assert_eq!(c.expires_at, 5);
        assert_eq!(c.subscription_type.as_deref(), Some("max"));
        assert_eq!(top["other"], 1);
    }

    #[test]
    fn torn_and_broken_files_are_classified() {
        assert_eq!(parse_file(b"").unwrap_err(), Unusable::Empty);
        assert_eq!(
            parse_file(br#"{"claudeAiOauth":{"accessTo"#).unwrap_err(),
            Unusable::NotJson
        );
        assert_eq!(parse_file(b"[1]").unwrap_err(), Unusable::NotObject);
        assert_eq!(parse_file(b"{}").unwrap_err(), Unusable::NoOauth);
        assert_eq!(
            parse_file(br#"{"claudeAiOauth":{"accessToken":"","refreshToken":"","expiresAt":5}}"#).unwrap_err(),
            Unusable::EmptyTokens
        );
        assert_eq!(
            parse_file(br#"{"claudeAiOauth":{"accessToken":"a","refreshToken":"r","expiresAt":"soon"}}"#).unwrap_err(),
            Unusable::BadField("expiresAt")
        );
        assert_eq!(
            parse_file(&vec![b' '; MAX_FILE_BYTES + 1]).unwrap_err(),
            Unusable::TooLarge
        );
        let deep = format!(r#"{{"claudeAiOauth":{}{}}}"#, "[".repeat(200), "]".repeat(200));
        assert_eq!(parse_file(deep.as_bytes()).unwrap_err(), Unusable::TooDeep);
        assert!(Unusable::NotJson.may_be_torn() && !Unusable::EmptyTokens.may_be_torn());
        assert!(!Unusable::TooDeep.may_be_torn(), "a torn file is never too deep");
    }

    #[test]
    fn write_body_in_both_shapes() {
        let request = parse_write_body(flat()).unwrap();
        assert_eq!(request.credentials.expires_at, 1767225600000);
        assert!(!request.force);
        let wrapped = json!({"claudeAiOauth": flat(), "force": true});
        let request = parse_write_body(wrapped).unwrap();
        assert!(request.force);
        assert_eq!(request.credentials.access_token.expose(), "a");
    }

    #[test]
    fn iso8601_expires_at_becomes_epoch_ms() {
        let mut body = flat();
        body["expiresAt"] = json!("2026-01-01T00:00:00Z");
        assert_eq!(parse_write_body(body).unwrap().credentials.expires_at, 1767225600000);
        let mut body = flat();
        body["expiresAt"] = json!("2026-01-01T01:00:00.5+01:00");
        assert_eq!(parse_write_body(body).unwrap().credentials.expires_at, 1767225600500);
    }

    #[test]
    fn every_validation_error_names_its_field() {
        let cases: Vec<(Value, &str)> = vec![
            (
                json!({"refreshToken":"r","expiresAt":1,"scopes":["user:inference"]}),
                "accessToken",
            ),
            (
                json!({"accessToken":"","refreshToken":"r","expiresAt":1,"scopes":["user:inference"]}),
                "accessToken",
            ),
            (
                json!({"accessToken":"a","refreshToken":7,"expiresAt":1,"scopes":["user:inference"]}),
                "refreshToken",
            ),
            (
                json!({"accessToken":"a","refreshToken":"r","expiresAt":0,"scopes":["user:inference"]}),
                "expiresAt",
            ),
            (
                json!({"accessToken":"a","refreshToken":"r","expiresAt":-5,"scopes":["user:inference"]}),
                "expiresAt",
            ),
            (
                json!({"accessToken":"a","refreshToken":"r","expiresAt":"tomorrow","scopes":["user:inference"]}),
                "expiresAt",
            ),
            (
                json!({"accessToken":"a","refreshToken":"r","scopes":["user:inference"]}),
                "expiresAt",
            ),
            (
                json!({"accessToken":"a","refreshToken":"r","expiresAt":1,"scopes":"user:inference"}),
                "scopes",
            ),
            (
                json!({"accessToken":"a","refreshToken":"r","expiresAt":1,"scopes":["user:profile"]}),
                "scopes",
            ),
            (
                json!({"accessToken":"a","refreshToken":"r","expiresAt":1,"scopes":[1]}),
                "scopes",
            ),
            (json!({"accessToken":"a","refreshToken":"r","expiresAt":1}), "scopes"),
            (
                json!({"accessToken":"a","refreshToken":"r","expiresAt":1,"scopes":["user:inference"],"subscriptionType":3}),
                "subscriptionType",
            ),
            (
                json!({"accessToken":"a","refreshToken":"r","expiresAt":1,"scopes":["user:inference"],"force":"yes"}),
                "force",
            ),
            (json!({"claudeAiOauth":"x"}), "claudeAiOauth"),
            (json!({"claudeAiOauth":{"force":true}}), "claudeAiOauth.force"),
            (
                json!({"claudeAiOauth":{"claudeAiOauth":{},"accessToken":"a","refreshToken":"r","expiresAt":1,"scopes":["user:inference"]}}),
                "claudeAiOauth.claudeAiOauth",
            ),
            (
                json!({"claudeAiOauth":{"accessToken":"a"}}),
                "claudeAiOauth.refreshToken",
            ),
            (json!([1]), "body"),
        ];
        for (body, field) in cases {
            let error = parse_write_body(body.clone()).unwrap_err();
            assert_eq!(error.field, field, "body {body}");
        }
    }

    #[test]
    fn merge_keeps_unknown_keys_and_replaces_known_ones() {
        let existing = json!({"claudeAiOauth":{"accessToken":"old","subscriptionType":"pro","rateLimitTier":"t","keep":1},
                              "mcpOAuth":{"x":2}});
        let Value::Object(existing) = existing else {
            unreachable!()
        };
        let mut body = flat();
        body["subscriptionType"] = json!("max");
        let merged = merge_into(Some(existing), &parse_write_body(body).unwrap());
        assert_eq!(merged["mcpOAuth"]["x"], 2);
        assert_eq!(merged["claudeAiOauth"]["keep"], 1);
        assert_eq!(merged["claudeAiOauth"]["accessToken"], "a");
        assert_eq!(merged["claudeAiOauth"]["subscriptionType"], "max", "given: replaced");
        assert_eq!(merged["claudeAiOauth"]["rateLimitTier"], "t", "left out: kept");
    }
}
