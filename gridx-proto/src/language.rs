//! The languages a job may be written in.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;
use thiserror::Error;
use utoipa::ToSchema;

/// A job's language. `javascript` is accepted as an alias of `node` and `c++` of
/// `cpp` on input; they are always written back as `node` and `cpp`.
///
/// The first three are interpreted; the compiled ones (and Ruby, added with them)
/// travel in the worker protocol's `more_languages`, which older coordinators ignore
/// (docs/protocol.md, "Compatibility").
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Language {
    Python,
    #[serde(alias = "javascript")]
    Node,
    Bash,
    /// C, compiled by gcc.
    C,
    /// C++, compiled by g++.
    #[serde(alias = "c++")]
    Cpp,
    /// Java, compiled by javac; the class is `Main` (file `Main.java`), as in Judge0.
    Java,
    Go,
    Rust,
    Ruby,
}

impl Language {
    pub const ALL: [Language; 9] = [
        Language::Python,
        Language::Node,
        Language::Bash,
        Language::C,
        Language::Cpp,
        Language::Java,
        Language::Go,
        Language::Rust,
        Language::Ruby,
    ];

    /// The languages of protocol version 1 as first published: a worker lists these
    /// in `capabilities.languages`, every later one in `more_languages`.
    pub const FIRST: [Language; 3] = [Language::Python, Language::Node, Language::Bash];

    pub fn as_str(self) -> &'static str {
        match self {
            Language::Python => "python",
            Language::Node => "node",
            Language::Bash => "bash",
            Language::C => "c",
            Language::Cpp => "cpp",
            Language::Java => "java",
            Language::Go => "go",
            Language::Rust => "rust",
            Language::Ruby => "ruby",
        }
    }

    /// Whether the worker compiles the source before running it. A compile that
    /// fails ends the job `failed` with reason `compile_error` (docs/jobs.md).
    pub fn is_compiled(self) -> bool {
        matches!(
            self,
            Language::C | Language::Cpp | Language::Java | Language::Go | Language::Rust
        )
    }

    /// Whether this language was in protocol version 1 from the start.
    pub fn is_first(self) -> bool {
        Language::FIRST.contains(&self)
    }

    /// The file name the job's code is written to inside the sandbox.
    pub fn source_file_name(self) -> &'static str {
        match self {
            Language::Python => "main.py",
            Language::Node => "main.js",
            Language::Bash => "main.sh",
            Language::C => "main.c",
            Language::Cpp => "main.cpp",
            Language::Java => "Main.java",
            Language::Go => "main.go",
            Language::Rust => "main.rs",
            Language::Ruby => "main.rb",
        }
    }

    /// Guesses a language from a file extension, for `submit FILE` without `--lang`.
    pub fn from_extension(ext: &str) -> Option<Language> {
        match ext.to_ascii_lowercase().as_str() {
            "py" => Some(Language::Python),
            "js" | "mjs" | "cjs" => Some(Language::Node),
            "sh" | "bash" => Some(Language::Bash),
            "c" => Some(Language::C),
            "cc" | "cpp" | "cxx" | "c++" => Some(Language::Cpp),
            "java" => Some(Language::Java),
            "go" => Some(Language::Go),
            "rs" => Some(Language::Rust),
            "rb" => Some(Language::Ruby),
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
#[error(
    "unknown language {0:?}: use python, node (or javascript), bash, c, cpp (or c++), java, go, rust or ruby"
)]
pub struct UnknownLanguage(pub String);

impl FromStr for Language {
    type Err = UnknownLanguage;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "python" | "py" | "python3" => Ok(Language::Python),
            "node" | "javascript" | "js" => Ok(Language::Node),
            "bash" | "sh" => Ok(Language::Bash),
            "c" => Ok(Language::C),
            "cpp" | "c++" | "cxx" => Ok(Language::Cpp),
            "java" => Ok(Language::Java),
            "go" | "golang" => Ok(Language::Go),
            "rust" | "rs" => Ok(Language::Rust),
            "ruby" | "rb" => Ok(Language::Ruby),
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
        assert!(serde_json::from_str::<Language>("\"cobol\"").is_err());
        assert!("cobol".parse::<Language>().is_err());
        assert!(
            serde_json::from_str::<Language>("\"Ruby\"").is_err(),
            "exact case"
        );
    }

    #[test]
    fn every_language_round_trips_by_name_and_extension() {
        for l in Language::ALL {
            assert_eq!(l.as_str().parse::<Language>(), Ok(l));
            let json = serde_json::to_string(&l).unwrap();
            assert_eq!(json, format!("\"{}\"", l.as_str()));
            assert_eq!(serde_json::from_str::<Language>(&json).unwrap(), l);
            let ext = l.source_file_name().rsplit('.').next().unwrap();
            assert_eq!(Language::from_extension(ext), Some(l), "{ext}");
        }
        let cpp: Language = serde_json::from_str("\"c++\"").unwrap();
        assert_eq!(cpp, Language::Cpp);
        assert_eq!(Language::from_extension("cc"), Some(Language::Cpp));
        assert!(Language::Java.is_compiled() && !Language::Ruby.is_compiled());
        assert!(Language::Bash.is_first() && !Language::Ruby.is_first());
    }
}
