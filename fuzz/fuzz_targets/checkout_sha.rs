//! `parse_sha` on any text, as `POST /history/checkout` receives `sha`.
//!
//! Properties: it never panics; it accepts exactly 7 to 40 ASCII hex digits, as their lowercase, and accepts that
//! again; everything else is `MalformedSha` naming the input as given.

#![no_main]

use acp_bridge::repo::{RepoError, ShaPrefix, parse_sha};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    // The sha arrives in a JSON string, so it is always UTF-8.
    let text = String::from_utf8_lossy(bytes);
    let well_formed = (ShaPrefix::MIN_DIGITS..=ShaPrefix::MAX_DIGITS).contains(&text.chars().count())
        && text.chars().all(|c| c.is_ascii_hexdigit());
    match parse_sha(&text) {
        Ok(sha) => {
            assert!(well_formed, "accepted {text:?}");
            assert_eq!(sha.as_str(), text.to_ascii_lowercase());
            assert!(sha.as_str().bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')));
            assert_eq!(sha.is_full(), text.len() == ShaPrefix::MAX_DIGITS);
            assert_eq!(parse_sha(sha.as_str()).ok(), Some(sha), "a parsed sha parses to itself");
        }
        Err(RepoError::MalformedSha { sha }) => {
            assert!(!well_formed, "rejected {text:?}");
            assert_eq!(sha, text);
        }
        Err(other) => panic!("{text:?} rejected as {other:?}"),
    }
});
