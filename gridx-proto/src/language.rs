//! The languages a job may be written in.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;
use thiserror::Error;
use utoipa::ToSchema;

/// A job's language. `javascript` is accepted as an alias of `node` on input and is
/// always written back as `node`.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Language {
    Python,
    #[serde(alias = "javascript")]
    Node,
    Bash,
}

impl Language {
    pub const ALL: [Language; 3] = [Language::Python, Language::Node, Language::Bash];

    pub fn as_str(self) -> &'static str {
        match self {
            Language::Python => "python",
            Language::Node => "node",
            Language::Bash => "bash",
        }
    }

    /// The file name the job's code is written to inside the sandbox.
    pub fn source_file_name(self) -> &'static str {
        match self {
            Language::Python => "main.py",
            Language::Node => "main.js",
            Language::Bash => "main.sh",
        }
    }

    /// Guesses a language from a file extension, for `submit FILE` without `--lang`.
    pub fn from_extension(ext: &str) -> Option<Language> {
        match ext.to_ascii_lowercase().as_str() {
            "py" => Some(Language::Python),
            "js" | "mjs" | "cjs" => Some(Language::Node),
            "sh" | "bash" => Some(Language::Bash),
            _ => None,
        }
    }
}

impl fmt::Display for Language {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("unknown language {0:?}: use python, node (or javascript) or bash")]
pub struct UnknownLanguage(pub String);

impl FromStr for Language {
    type Err = UnknownLanguage;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "python" | "py" | "python3" => Ok(Language::Python),
            "node" | "javascript" | "js" => Ok(Language::Node),
            "bash" | "sh" => Ok(Language::Bash),
            _ => Err(UnknownLanguage(crate::ids::truncate_for_message(s))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn javascript_is_an_alias_of_node() {
        let l: Language = serde_json::from_str("\"javascript\"").unwrap();
        assert_eq!(l, Language::Node);
        assert_eq!(serde_json::to_string(&l).unwrap(), "\"node\"");
        assert_eq!("JavaScript".parse::<Language>(), Ok(Language::Node));
    }

    #[test]
    fn unknown_languages_are_rejected() {
        assert!(serde_json::from_str::<Language>("\"ruby\"").is_err());
        assert!("ruby".parse::<Language>().is_err());
    }
}
