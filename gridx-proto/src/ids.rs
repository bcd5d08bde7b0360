//! Typed identifiers. A job id and a worker id are never confused at compile time,
//! and a user name is validated once, at the edge, then trusted everywhere.

use serde::{Deserialize, Deserializer, Serialize};
use std::fmt;
use std::str::FromStr;
use thiserror::Error;
use utoipa::ToSchema;

macro_rules! numeric_id {
    ($name:ident, $what:literal) => {
        #[doc = concat!("Identifier of a ", $what, ": a positive integer assigned by the coordinator.")]
        #[derive(
            Debug,
            Clone,
            Copy,
            PartialEq,
            Eq,
            PartialOrd,
            Ord,
            Hash,
            Serialize,
            Deserialize,
            ToSchema,
        )]
        #[serde(transparent)]
        pub struct $name(pub u64);

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}", self.0)
            }
        }

        impl FromStr for $name {
            type Err = IdError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s.trim().parse::<u64>() {
                    Ok(n) if n > 0 => Ok(Self(n)),
                    _ => Err(IdError::NotAnId {
                        what: $what,
                        input: truncate_for_message(s),
                    }),
                }
            }
        }
    };
}

numeric_id!(JobId, "job");
numeric_id!(WorkerId, "worker");

/// Why a piece of text is not a valid identifier.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum IdError {
    #[error("{input:?} is not a {what} id (a positive whole number)")]
    NotAnId { what: &'static str, input: String },
    #[error("{input:?} is not a valid name: use 1 to 64 letters, digits, '_' or '-'")]
    BadName { input: String },
}

/// A user (or worker label) name: `[A-Za-z0-9_-]{1,64}`.
///
/// Names appear in logs, file paths and terminal cells, so nothing outside that set
/// is accepted: no control characters, no path separators, no spaces.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, ToSchema)]
#[serde(transparent)]
pub struct UserName(String);

/// The longest name accepted.
pub const MAX_NAME_LEN: usize = 64;

impl UserName {
    pub fn new(input: &str) -> Result<Self, IdError> {
        let valid = !input.is_empty()
            && input.len() <= MAX_NAME_LEN
            && input
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if valid {
            Ok(Self(input.to_owned()))
        } else {
            Err(IdError::BadName {
                input: truncate_for_message(input),
            })
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for UserName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for UserName {
    type Err = IdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::new(s)
    }
}

impl<'de> Deserialize<'de> for UserName {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(deserializer)?;
        Self::new(&raw).map_err(serde::de::Error::custom)
    }
}

/// Error messages quote the input; a hostile megabyte must not be echoed back whole.
pub(crate) fn truncate_for_message(s: &str) -> String {
    const MAX: usize = 80;
    if s.len() <= MAX {
        return s.to_owned();
    }
    let mut end = MAX;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_documented_pattern() {
        assert!(UserName::new("alice").is_ok());
        assert!(UserName::new("A_b-9").is_ok());
        assert!(UserName::new(&"x".repeat(64)).is_ok());
        assert!(UserName::new(&"x".repeat(65)).is_err());
        assert!(UserName::new("").is_err());
        assert!(UserName::new("a b").is_err());
        assert!(UserName::new("../etc").is_err());
        assert!(UserName::new("ünï").is_err());
        assert!(UserName::new("a'; DROP TABLE users;--").is_err());
    }

    #[test]
    fn ids_parse_positive_integers_only() {
        assert_eq!("42".parse::<JobId>(), Ok(JobId(42)));
        assert!("0".parse::<JobId>().is_err());
        assert!("-1".parse::<JobId>().is_err());
        assert!("abc".parse::<WorkerId>().is_err());
        assert!("".parse::<WorkerId>().is_err());
    }

    #[test]
    fn bad_names_are_rejected_by_serde_too() {
        let err = serde_json::from_str::<UserName>("\"no spaces\"").unwrap_err();
        assert!(err.to_string().contains("not a valid name"), "{err}");
    }

    proptest::proptest! {
        #[test]
        fn a_name_is_valid_exactly_when_it_matches_the_pattern(s in "[A-Za-z0-9_\\- ./é']{0,70}") {
            let expected = (1..=64).contains(&s.len())
                && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
            proptest::prop_assert_eq!(UserName::new(&s).is_ok(), expected);
        }

        #[test]
        fn valid_names_round_trip(s in "[A-Za-z0-9_-]{1,64}") {
            let name = UserName::new(&s).unwrap();
            let json = serde_json::to_string(&name).unwrap();
            proptest::prop_assert_eq!(serde_json::from_str::<UserName>(&json).unwrap(), name);
        }
    }

    #[test]
    fn long_inputs_are_cut_in_messages() {
        let err = UserName::new(&"é".repeat(1000)).unwrap_err();
        assert!(err.to_string().len() < 300);
    }
}
