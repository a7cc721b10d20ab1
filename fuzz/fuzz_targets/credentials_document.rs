//! `parse_file` on any bytes, as the store reads `.credentials.json`.
//!
//! Properties:
//! - it never panics, and every rejection is the class the bytes call for (too large, blank, not JSON, nested too
//!   deeply, not an object, no `claudeAiOauth` object, a field of the wrong type, a missing or blank token);
//! - what it accepts has non-blank tokens and a positive `expiresAt`, read from the document itself;
//! - writing the same credentials over the document (`merge_into`) keeps every other key, reads back as the same
//!   credentials, and writing them again changes nothing.

#![no_main]

use acp_bridge::credentials::document::{
    MAX_FILE_BYTES, OAUTH_KEY, OAuthCredentials, Unusable, WriteRequest, expires_at_of, merge_into, parse_file,
};
use libfuzzer_sys::fuzz_target;
use serde_json::{Map, Value};

/// The oauth keys a write always sets; every other key of the document survives a write untouched.
const REPLACED: [&str; 4] = ["accessToken", "refreshToken", "expiresAt", "scopes"];

fuzz_target!(|bytes: &[u8]| match parse_file(bytes) {
    Err(unusable) => check_rejection(bytes, unusable),
    Ok((top, credentials)) => {
        check_accepted(&top, &credentials);
        check_write_over(&top, &credentials);
    }
});

fn check_rejection(bytes: &[u8], unusable: Unusable) {
    let expected = if bytes.len() > MAX_FILE_BYTES {
        Some(Unusable::TooLarge)
    } else if bytes.iter().all(u8::is_ascii_whitespace) {
        Some(Unusable::Empty)
    } else {
        match serde_json::from_slice::<Value>(bytes) {
            Err(error) if acp_bridge::json_depth::exceeded(&error) => Some(Unusable::TooDeep),
            Err(_) => Some(Unusable::NotJson),
            Ok(Value::Object(top)) => match top.get(OAUTH_KEY) {
                Some(Value::Object(oauth)) => {
                    check_field_rejection(oauth, unusable);
                    None
                }
                _ => Some(Unusable::NoOauth),
            },
            Ok(_) => Some(Unusable::NotObject),
        }
    };
    if let Some(expected) = expected {
        assert_eq!(unusable, expected);
    }
    assert_eq!(
        unusable.may_be_torn(),
        matches!(unusable, Unusable::Empty | Unusable::NotJson)
    );
}

/// A rejection of a document that does have a `claudeAiOauth` object must be about one of its fields.
fn check_field_rejection(oauth: &Map<String, Value>, unusable: Unusable) {
    let token_missing = |key: &str| match oauth.get(key) {
        None | Some(Value::Null) => true,
        Some(value) => value.as_str().is_some_and(|token| token.trim().is_empty()),
    };
    match unusable {
        Unusable::EmptyTokens => assert!(token_missing("accessToken") || token_missing("refreshToken")),
        Unusable::BadField(field) => {
            assert!(
                [
                    "accessToken",
                    "refreshToken",
                    "expiresAt",
                    "scopes",
                    "subscriptionType",
                    "rateLimitTier"
                ]
                .contains(&field),
                "{field}"
            );
            // A field that is present with the right type is never the one blamed.
            match oauth.get(field) {
                Some(Value::String(_)) => assert!(field == "expiresAt" || field == "scopes", "{field}"),
                Some(Value::Array(items)) => {
                    assert!(field != "scopes" || items.iter().any(|item| !item.is_string()))
                }
                _ => {}
            }
        }
        other => panic!("a document with a `{OAUTH_KEY}` object rejected as {other:?}"),
    }
}

fn check_accepted(top: &Map<String, Value>, credentials: &OAuthCredentials) {
    assert!(!credentials.access_token.expose().trim().is_empty());
    assert!(!credentials.refresh_token.expose().trim().is_empty());
    assert!(credentials.expires_at > 0);
    assert_eq!(expires_at_of(top), Some(credentials.expires_at));
    let oauth = top[OAUTH_KEY]
        .as_object()
        .expect("an accepted document has an oauth object");
    assert_eq!(oauth["accessToken"], credentials.access_token.expose());
    assert_eq!(oauth["refreshToken"], credentials.refresh_token.expose());
    let optional = |key: &str| oauth.get(key).and_then(Value::as_str);
    assert_eq!(optional("subscriptionType"), credentials.subscription_type.as_deref());
    assert_eq!(optional("rateLimitTier"), credentials.rate_limit_tier.as_deref());
}

fn check_write_over(top: &Map<String, Value>, credentials: &OAuthCredentials) {
    let request = WriteRequest {
        credentials: credentials.clone(),
        extra: Map::new(),
        force: false,
    };
    let merged = merge_into(Some(top.clone()), &request);
    for (key, value) in top {
        if key != OAUTH_KEY {
            assert_eq!(merged.get(key), Some(value), "top-level `{key}` kept");
        }
    }
    let oauth = top[OAUTH_KEY].as_object().expect("oauth object");
    let merged_oauth = merged[OAUTH_KEY].as_object().expect("merged oauth object");
    for (key, value) in oauth {
        if !REPLACED.contains(&key.as_str()) {
            assert_eq!(merged_oauth.get(key), Some(value), "`{OAUTH_KEY}.{key}` kept");
        }
    }

    let written = serde_json::to_vec(&merged).expect("a JSON map serializes");
    if written.len() > MAX_FILE_BYTES {
        assert_eq!(parse_file(&written).unwrap_err(), Unusable::TooLarge);
        return;
    }
    let (read_top, read) = parse_file(&written).expect("a written document reads back");
    assert_eq!(&read, credentials);
    assert_eq!(read_top, merged);
    assert_eq!(
        merge_into(Some(read_top), &request),
        merged,
        "a second write changes nothing"
    );
}
