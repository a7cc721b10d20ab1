//! The identity every app commit is written with, so that no git config is needed.

use std::fmt;
use std::str::FromStr;

use super::error::InvalidAuthor;

/// Author and committer of the app's commits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Author {
    pub name: String,
    pub email: String,
}

impl Author {
    pub(crate) fn signature(&self) -> Result<git2::Signature<'static>, git2::Error> {
        git2::Signature::now(&self.name, &self.email)
    }
}

impl Default for Author {
    fn default() -> Self {
        Self {
            name: "acp-bridge".to_owned(),
            email: "acp-bridge@localhost".to_owned(),
        }
    }
}

impl fmt::Display for Author {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} <{}>", self.name, self.email)
    }
}

/// Parses `Name <email>`, with the checks git makes on an identity.
impl FromStr for Author {
    type Err = InvalidAuthor;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let invalid = |problem| InvalidAuthor {
            input: input.to_owned(),
            problem,
        };
        let text = input.trim();
        if text.chars().any(char::is_control) {
            return Err(invalid("it contains a line break or control character"));
        }
        let Some(open) = text.find('<') else {
            return Err(invalid("there is no `<email>`"));
        };
        let Some(close) = text.rfind('>') else {
            return Err(invalid("the `<` has no closing `>`"));
        };
        if close != text.len() - 1 {
            return Err(invalid("there is text after `>`"));
        }
        if close < open {
            return Err(invalid("`>` comes before `<`"));
        }
        let (name, email) = (text[..open].trim(), text[open + 1..close].trim());
        if name.contains('>') {
            return Err(invalid("the name contains `>`"));
        }
        if email.contains(['<', '>']) {
            return Err(invalid("the email contains `<` or `>`"));
        }
        // git trims these from both ends of a name or email and refuses what is left empty.
        let crud = |c: char| c <= ' ' || ".,:;<>\"\\'".contains(c);
        if name.trim_matches(crud).is_empty() {
            return Err(invalid("the name is empty"));
        }
        if email.trim_matches(crud).is_empty() {
            return Err(invalid("the email is empty"));
        }
        let author = Self {
            name: name.to_owned(),
            email: email.to_owned(),
        };
        author
            .signature()
            .map_err(|_| invalid("git does not accept this name and email"))?;
        Ok(author)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_name_and_email() {
        let author: Author = "  Jane Doe <jane@example.com> ".parse().unwrap();
        assert_eq!(
            author,
            Author {
                name: "Jane Doe".into(),
                email: "jane@example.com".into()
            }
        );
        assert_eq!(author.to_string(), "Jane Doe <jane@example.com>");
    }

    #[test]
    fn default_is_acp_bridge_at_localhost() {
        assert_eq!(Author::default().to_string(), "acp-bridge <acp-bridge@localhost>");
        assert_eq!(
            "acp-bridge <acp-bridge@localhost>".parse::<Author>().unwrap(),
            Author::default()
        );
    }

    #[test]
    fn each_malformed_author_names_its_problem() {
        for (input, problem) in [
            ("Jane Doe", "there is no `<email>`"),
            ("Jane <jane@example.com", "the `<` has no closing `>`"),
            ("Jane <jane@example.com> x", "there is text after `>`"),
            ("<jane@example.com>", "the name is empty"),
            ("Jane <>", "the email is empty"),
            ("Jane <a<b>", "the email contains `<` or `>`"),
            ("Ja>ne <jane@example.com>", "the name contains `>`"),
            (
                "Jane\n <jane@example.com>",
                "it contains a line break or control character",
            ),
        ] {
            let error = input.parse::<Author>().unwrap_err();
            assert_eq!(error.problem, problem, "{input:?}");
            assert!(error.to_string().contains(problem), "{error}");
        }
    }
}
