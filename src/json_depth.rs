//! serde_json refuses JSON nested deeper than 127 arrays and objects (its recursion limit, which keeps a
//! hostile document from overflowing the stack). Such a document is valid JSON, so it gets its own message.

/// The deepest nesting serde_json reads (it counts down from 128 and fails on reaching 0).
pub const MAX_DEPTH: usize = 127;

/// Whether `error` is serde_json's nesting limit rather than malformed JSON. serde_json has no error category for
/// it; its message is the only mark.
pub fn exceeded(error: &serde_json::Error) -> bool {
    error.to_string().starts_with("recursion limit exceeded")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> serde_json::Error {
        serde_json::from_str::<serde_json::Value>(text).unwrap_err()
    }

    #[test]
    fn too_deep_is_told_apart_from_malformed() {
        let deep = |n: usize| format!("{}{}", "[".repeat(n), "]".repeat(n));
        assert!(serde_json::from_str::<serde_json::Value>(&deep(MAX_DEPTH)).is_ok());
        assert!(exceeded(&parse(&deep(MAX_DEPTH + 1))));
        assert!(exceeded(&parse(&format!("{{\"a\":{}}}", deep(200)))));
        for malformed in ["[", "{\"a\":}", "[1,]", "\u{feff}{}", ""] {
            assert!(!exceeded(&parse(malformed)), "{malformed:?}");
        }
    }
}
