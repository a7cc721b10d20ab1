//! `parse_write_body` on any JSON, as `POST /credentials/write` receives it.
//!
//! Properties:
//! - it never panics; a rejection names a field that exists in the API (a dotted path under `claudeAiOauth.`
//!   when the body has that shape) and has a message;
//! - what it accepts has non-blank tokens, a positive `expiresAt` and the `user:inference` scope, and leaves none
//!   of the known keys among the pass-through extras;
//! - the document `merge_into(None, …)` builds reads back with `parse_file` as the same credentials (tokens,
//!   `expiresAt`, scopes, subscription), and its oauth object sent again as a write body is the same request.

#![no_main]

use acp_bridge::credentials::document::{
    MAX_FILE_BYTES, OAUTH_KEY, REQUIRED_SCOPE, Unusable, WriteRequest, merge_into, parse_file, parse_write_body,
};
use libfuzzer_sys::fuzz_target;
use serde_json::{Value, json};

const FIELDS: [&str; 6] = [
    "accessToken",
    "refreshToken",
    "expiresAt",
    "scopes",
    "subscriptionType",
    "rateLimitTier",
];

fuzz_target!(|bytes: &[u8]| {
    let Ok(body) = serde_json::from_slice::<Value>(bytes) else {
        return;
    };
    let wrapped = body.get(OAUTH_KEY).is_some();
    match parse_write_body(body) {
        Err(error) => {
            assert!(!error.message.is_empty());
            let known = match error.field.strip_prefix("claudeAiOauth.") {
                Some("force") | Some(OAUTH_KEY) => wrapped,
                Some(field) => wrapped && FIELDS.contains(&field),
                None => {
                    ["body", "force", OAUTH_KEY].contains(&error.field.as_str())
                        || (!wrapped && FIELDS.contains(&error.field.as_str()))
                }
            };
            assert!(known, "field `{}` (wrapped: {wrapped})", error.field);
        }
        Ok(request) => check_accepted(&request),
    }
});

fn check_accepted(request: &WriteRequest) {
    let credentials = &request.credentials;
    assert!(!credentials.access_token.expose().trim().is_empty());
    assert!(!credentials.refresh_token.expose().trim().is_empty());
    assert!(credentials.expires_at > 0);
    assert!(credentials.scopes.iter().any(|scope| scope == REQUIRED_SCOPE));
    for key in FIELDS.iter().chain(&["force", OAUTH_KEY]) {
        assert!(!request.extra.contains_key(*key), "`{key}` left among the extras");
    }

    let merged = merge_into(None, request);
    let written = serde_json::to_vec(&merged).expect("a JSON map serializes");
    if written.len() > MAX_FILE_BYTES {
        assert_eq!(parse_file(&written).unwrap_err(), Unusable::TooLarge);
        return;
    }
    let (top, read) = parse_file(&written).expect("a written document reads back");
    assert_eq!(read.expires_at, credentials.expires_at);
    assert_eq!(read.access_token, credentials.access_token);
    assert_eq!(read.refresh_token, credentials.refresh_token);
    assert_eq!(&read, credentials);

    let again = parse_write_body(json!({OAUTH_KEY: top[OAUTH_KEY], "force": request.force}))
        .expect("a written oauth object is a valid write body");
    assert_eq!(&again.credentials, credentials);
    assert_eq!(again.extra, request.extra);
    assert_eq!(again.force, request.force);
}
