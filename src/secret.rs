//! A wrapper for values that must never be printed: bearer tokens, API keys, OAuth tokens.
//!
//! `Debug` and `Display` print `[redacted]`; the value is only reachable through [`Secret::expose`],
//! so every place that hands a secret out is greppable.

use std::fmt;

#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret value itself. Call only where the value must leave the process (a response body, a file).
    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Compares with `candidate` in time that depends only on the candidate's length, never on where
    /// the first differing byte is.
    pub fn ct_eq(&self, candidate: &[u8]) -> bool {
        let expected = self.0.as_bytes();
        if expected.is_empty() {
            return false;
        }
        let mut diff = (expected.len() ^ candidate.len()) as u8 | u8::from(expected.len() != candidate.len());
        for (i, byte) in candidate.iter().enumerate() {
            diff |= expected[i % expected.len()] ^ byte;
        }
        std::hint::black_box(diff) == 0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_and_display_never_show_the_value() {
        let secret = Secret::new("sk-ant-oat01-very-secret");
        assert_eq!(format!("{secret:?}"), "[redacted]");
        assert_eq!(format!("{secret}"), "[redacted]");
        assert_eq!(format!("{:?}", Some(secret)), "Some([redacted])");
    }

    #[test]
    fn ct_eq_accepts_only_the_exact_value() {
        let secret = Secret::new("abcdef");
        assert!(secret.ct_eq(b"abcdef"));
        assert!(!secret.ct_eq(b"abcdeg"));
        assert!(!secret.ct_eq(b"abcde"));
        assert!(!secret.ct_eq(b"abcdefabcdef"));
        assert!(!secret.ct_eq(b""));
        assert!(!Secret::new("").ct_eq(b""));
    }
}
