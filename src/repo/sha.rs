//! The sha a client names for a checkout, checked before git is asked about it.

use super::RepoError;

/// A full or abbreviated commit sha: 7 to 40 hexadecimal digits, in lowercase.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShaPrefix(String);

impl ShaPrefix {
    /// Fewer digits than this match too many objects to be useful.
    pub const MIN_DIGITS: usize = 7;
    /// A full SHA-1 object id.
    pub const MAX_DIGITS: usize = 40;

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether this is a whole object id rather than a prefix.
    pub fn is_full(&self) -> bool {
        self.0.len() == Self::MAX_DIGITS
    }
}

/// Accepts 7 to 40 hexadecimal digits, in either case; anything else is [`RepoError::MalformedSha`] naming `text`.
pub fn parse_sha(text: &str) -> Result<ShaPrefix, RepoError> {
    let digits = ShaPrefix::MIN_DIGITS..=ShaPrefix::MAX_DIGITS;
    if !digits.contains(&text.len()) || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(RepoError::MalformedSha { sha: text.to_owned() });
    }
    Ok(ShaPrefix(text.to_ascii_lowercase()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seven_to_forty_hex_digits_are_accepted_in_lowercase() {
        assert_eq!(parse_sha("ABCdef0").unwrap().as_str(), "abcdef0");
        let full = "0123456789abcdef0123456789ABCDEF01234567";
        let parsed = parse_sha(full).unwrap();
        assert!(parsed.is_full());
        assert_eq!(parsed.as_str(), full.to_ascii_lowercase());
        assert!(!parse_sha("1234567").unwrap().is_full());
    }

    #[test]
    fn anything_else_is_malformed_and_named() {
        let long = "a".repeat(41);
        for text in [
            "",
            "abc123",
            "g123456",
            " 1234567",
            "1234567 ",
            "１２３４５６７",
            long.as_str(),
        ] {
            match parse_sha(text) {
                Err(RepoError::MalformedSha { sha }) => assert_eq!(sha, text),
                other => panic!("{text:?}: {other:?}"),
            }
        }
    }
}
