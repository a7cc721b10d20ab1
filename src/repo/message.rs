//! Commit messages.

/// Longest subject line of a turn commit, in characters.
pub const SUBJECT_MAX_CHARS: usize = 72;

/// Message for a turn commit: a subject, a blank line, then the trailers `Session: <id>`, `Turn: <turnId>` and
/// `Stop-Reason: <reason>`, one a line, ending with a newline.
///
/// The subject is the prompt's first non-blank line, trimmed, cut to its first 72 characters (no ellipsis; the
/// prompt itself is kept with the turn), or `Agent turn` when the prompt has no text. Line breaks in the
/// trailer values become spaces so each trailer stays on one line.
pub fn turn_message(prompt_text: &str, session: &str, turn: &str, stop_reason: &str) -> String {
    let first_line = prompt_text
        .lines()
        .map(str::trim)
        .find(|line| !line.is_empty())
        .unwrap_or("");
    let subject = match first_line.char_indices().nth(SUBJECT_MAX_CHARS) {
        Some((cut, _)) => first_line[..cut].trim_end(),
        None => first_line,
    };
    let subject = if subject.is_empty() { "Agent turn" } else { subject };
    let one_line = |value: &str| value.trim().replace(['\r', '\n'], " ");
    format!(
        "{subject}\n\nSession: {}\nTurn: {}\nStop-Reason: {}\n",
        one_line(session),
        one_line(turn),
        one_line(stop_reason)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn turn_message_is_the_first_line_then_trailers() {
        let message = turn_message("  Add a dark mode toggle \nand make it blue", "s-1", "t-2", "end_turn");
        assert_eq!(
            message,
            "Add a dark mode toggle\n\nSession: s-1\nTurn: t-2\nStop-Reason: end_turn\n"
        );
    }

    #[test]
    fn turn_message_subject_is_cut_to_72_characters() {
        let prompt = "é".repeat(100);
        let message = turn_message(&prompt, "s", "t", "end_turn");
        let subject = message.lines().next().unwrap();
        assert_eq!(subject.chars().count(), 72);
        assert_eq!(subject, "é".repeat(72));

        let exactly = "x".repeat(72);
        assert_eq!(turn_message(&exactly, "s", "t", "r").lines().next().unwrap(), exactly);
        // A cut that ends in spaces does not leave them at the end of the subject.
        let spaced = format!("{} {}", "a".repeat(71), "b".repeat(10));
        assert_eq!(
            turn_message(&spaced, "s", "t", "r").lines().next().unwrap(),
            "a".repeat(71)
        );
    }

    #[test]
    fn turn_message_without_prompt_text_says_agent_turn() {
        for prompt in ["", "   ", "\n\n  \n"] {
            assert!(
                turn_message(prompt, "s", "t", "cancelled").starts_with("Agent turn\n\nSession: s\n"),
                "{prompt:?}"
            );
        }
    }

    #[test]
    fn turn_message_skips_leading_blank_lines_and_flattens_trailer_values() {
        let message = turn_message("\n\n  Fix the header\n", "s\n1", "t", "max_tokens");
        assert_eq!(
            message,
            "Fix the header\n\nSession: s 1\nTurn: t\nStop-Reason: max_tokens\n"
        );
    }
}
