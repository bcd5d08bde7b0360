//! Credits, held as integer milli-credits.
//!
//! Money never touches floating point arithmetic here. On the wire docs/jobs.md asks
//! for JSON numbers with at most three decimals; a number is written from the exact
//! decimal text (`1.5`, `0.8`, `100`) and read back by parsing that same decimal text,
//! so the only use of `f64` is as serde_json's carrier for a number it has already
//! tokenised, and the conversion is checked to be exact.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::iter::Sum;
use std::str::FromStr;
use thiserror::Error;
use utoipa::ToSchema;

/// An amount of credits in milli-credits (1 credit = 1000).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, ToSchema)]
#[schema(value_type = f64, example = 1.5)]
pub struct Credits(i64);

/// Milli-credits in one credit.
pub const MILLIS_PER_CREDIT: i64 = 1000;

/// The largest magnitude accepted: 10^15 milli-credits (a trillion credits). Any
/// decimal of at most 15 significant digits survives a trip through an IEEE double
/// and back to its shortest text, which is what keeps JSON numbers exact; at 16
/// digits that guarantee is gone.
pub const MAX_ABS_MILLIS: i64 = 1_000_000_000_000_000;

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum CreditsError {
    #[error(
        "{0:?} is not an amount of credits (expected a number with at most 3 decimals, like 1.5)"
    )]
    Malformed(String),
    #[error("{0:?} has more than 3 decimals; credits are counted in thousandths")]
    TooPrecise(String),
    #[error("{0:?} is out of range")]
    OutOfRange(String),
    #[error("credit arithmetic overflowed")]
    Overflow,
}

impl Credits {
    pub const ZERO: Credits = Credits(0);

    pub const fn from_millis(millis: i64) -> Credits {
        Credits(millis)
    }

    /// Whole credits, for config defaults such as "100 credits for a new user".
    pub const fn from_whole(credits: i64) -> Credits {
        Credits(credits * MILLIS_PER_CREDIT)
    }

    pub const fn millis(self) -> i64 {
        self.0
    }

    pub fn is_negative(self) -> bool {
        self.0 < 0
    }

    pub fn checked_add(self, other: Credits) -> Result<Credits, CreditsError> {
        self.0
            .checked_add(other.0)
            .filter(|v| v.abs() <= MAX_ABS_MILLIS)
            .map(Credits)
            .ok_or(CreditsError::Overflow)
    }

    pub fn checked_sub(self, other: Credits) -> Result<Credits, CreditsError> {
        self.0
            .checked_sub(other.0)
            .filter(|v| v.abs() <= MAX_ABS_MILLIS)
            .map(Credits)
            .ok_or(CreditsError::Overflow)
    }

    /// Splits an amount by a share given in per-mille (e.g. 800 for 80 %), rounding the
    /// first part down so the two parts always add up to exactly `self`.
    pub fn split_permille(self, permille: u16) -> (Credits, Credits) {
        let permille = i64::from(permille.min(1000));
        // i128 so that a large amount times 1000 cannot overflow.
        let first = (i128::from(self.0) * i128::from(permille) / 1000) as i64;
        (Credits(first), Credits(self.0 - first))
    }
}

impl fmt::Display for Credits {
    /// Exact decimal text with trailing zeros trimmed: `1`, `1.5`, `0.125`, `-2.05`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.0 < 0 { "-" } else { "" };
        let abs = self.0.unsigned_abs();
        let whole = abs / 1000;
        let frac = abs % 1000;
        let text = if frac == 0 {
            format!("{sign}{whole}")
        } else {
            let digits = format!("{frac:03}");
            format!("{sign}{whole}.{}", digits.trim_end_matches('0'))
        };
        f.pad(&text)
    }
}

impl FromStr for Credits {
    type Err = CreditsError;

    /// Parses `12`, `12.5`, `-0.125`, `+3`; rejects exponents, more than three
    /// decimals, empty parts and anything else.
    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let s = input.trim();
        let malformed = || CreditsError::Malformed(crate::ids::truncate_for_message(input));
        let (negative, unsigned) = match s.as_bytes().first() {
            Some(b'-') => (true, &s[1..]),
            Some(b'+') => (false, &s[1..]),
            _ => (false, s),
        };
        let (whole_text, frac_text) = match unsigned.split_once('.') {
            Some((w, f)) => (w, Some(f)),
            None => (unsigned, None),
        };
        let is_digits = |t: &str| !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit());
        if !is_digits(whole_text) {
            return Err(malformed());
        }
        let frac_millis = match frac_text {
            None => 0,
            Some(f) if !is_digits(f) => return Err(malformed()),
            Some(f) => {
                let significant = f.trim_end_matches('0');
                if significant.len() > 3 {
                    return Err(CreditsError::TooPrecise(crate::ids::truncate_for_message(
                        input,
                    )));
                }
                let padded = format!("{significant:0<3}");
                padded.parse::<i64>().map_err(|_| malformed())?
            }
        };
        let out_of_range = || CreditsError::OutOfRange(crate::ids::truncate_for_message(input));
        let whole: i64 = whole_text.parse().map_err(|_| out_of_range())?;
        let millis = whole
            .checked_mul(MILLIS_PER_CREDIT)
            .and_then(|m| m.checked_add(frac_millis))
            .filter(|m| *m <= MAX_ABS_MILLIS)
            .ok_or_else(out_of_range)?;
        Ok(Credits(if negative { -millis } else { millis }))
    }
}

impl Serialize for Credits {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if self.0 % MILLIS_PER_CREDIT == 0 {
            return serializer.serialize_i64(self.0 / MILLIS_PER_CREDIT);
        }
        // The decimal text has at most 15 significant digits, so the nearest double
        // prints back (shortest round-trip formatting) as exactly that text.
        let exact: f64 = self
            .to_string()
            .parse()
            .map_err(|_| serde::ser::Error::custom("credits formatting"))?;
        serializer.serialize_f64(exact)
    }
}

impl<'de> Deserialize<'de> for Credits {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = Credits;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an amount of credits with at most 3 decimals")
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Credits, E> {
                v.checked_mul(MILLIS_PER_CREDIT)
                    .filter(|m| m.abs() <= MAX_ABS_MILLIS)
                    .map(Credits)
                    .ok_or_else(|| E::custom("credits out of range"))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Credits, E> {
                let v = i64::try_from(v).map_err(|_| E::custom("credits out of range"))?;
                self.visit_i64(v)
            }
            fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Credits, E> {
                if !v.is_finite() {
                    return Err(E::custom("credits must be finite"));
                }
                // `{}` on f64 prints the shortest text that reads back as the same
                // double: the decimal the sender wrote, for any amount it could send.
                format!("{v}").parse::<Credits>().map_err(E::custom)
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Credits, E> {
                v.parse::<Credits>().map_err(E::custom)
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

impl Sum for Credits {
    /// Saturates rather than wrapping; ledger code uses `checked_add` where a bound matters.
    fn sum<I: Iterator<Item = Credits>>(iter: I) -> Credits {
        Credits(iter.fold(0i64, |acc, c| acc.saturating_add(c.0)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn formats_exactly() {
        assert_eq!(Credits::from_millis(1000).to_string(), "1");
        assert_eq!(Credits::from_millis(1500).to_string(), "1.5");
        assert_eq!(Credits::from_millis(800).to_string(), "0.8");
        assert_eq!(Credits::from_millis(125).to_string(), "0.125");
        assert_eq!(Credits::from_millis(-2050).to_string(), "-2.05");
        assert_eq!(Credits::from_millis(1).to_string(), "0.001");
        assert_eq!(Credits::ZERO.to_string(), "0");
    }

    #[test]
    fn parses_decimal_text() {
        assert_eq!("1".parse(), Ok(Credits::from_millis(1000)));
        assert_eq!("1.50".parse(), Ok(Credits::from_millis(1500)));
        assert_eq!("0.001".parse(), Ok(Credits::from_millis(1)));
        assert_eq!("-0.2".parse(), Ok(Credits::from_millis(-200)));
        assert_eq!("1.2500000".parse(), Ok(Credits::from_millis(1250)));
    }

    #[test]
    fn rejects_bad_text() {
        for bad in [
            "", ".", "1.", ".5", "1e3", "abc", "1.0001", "--1", "1,5", " - 1", "NaN", "inf",
        ] {
            assert!(bad.parse::<Credits>().is_err(), "{bad:?} was accepted");
        }
        assert!(matches!(
            "99999999999999999999".parse::<Credits>(),
            Err(CreditsError::OutOfRange(_))
        ));
    }

    #[test]
    fn json_numbers_are_exact() {
        assert_eq!(
            serde_json::to_string(&Credits::from_millis(800)).unwrap(),
            "0.8"
        );
        assert_eq!(
            serde_json::to_string(&Credits::from_millis(100_000)).unwrap(),
            "100"
        );
        assert_eq!(
            serde_json::to_string(&Credits::from_millis(200)).unwrap(),
            "0.2"
        );
        let c: Credits = serde_json::from_str("0.1").unwrap();
        assert_eq!(c.millis(), 100);
        assert!(serde_json::from_str::<Credits>("0.0001").is_err());
        assert!(serde_json::from_str::<Credits>("1e300").is_err());
    }

    #[test]
    fn split_always_adds_up() {
        let (reward, fee) = Credits::from_millis(1000).split_permille(800);
        assert_eq!((reward.millis(), fee.millis()), (800, 200));
        let (a, b) = Credits::from_millis(1).split_permille(800);
        assert_eq!(a.millis() + b.millis(), 1);
    }

    proptest! {
        #[test]
        fn text_round_trips(millis in -MAX_ABS_MILLIS..=MAX_ABS_MILLIS) {
            let c = Credits::from_millis(millis);
            prop_assert_eq!(c.to_string().parse::<Credits>(), Ok(c));
        }

        #[test]
        fn json_round_trips(millis in -MAX_ABS_MILLIS..=MAX_ABS_MILLIS) {
            let c = Credits::from_millis(millis);
            let json = serde_json::to_string(&c).unwrap();
            prop_assert_eq!(&json, &c.to_string());
            prop_assert_eq!(serde_json::from_str::<Credits>(&json).unwrap(), c);
        }

        #[test]
        fn split_parts_sum_to_whole(millis in 0i64..=MAX_ABS_MILLIS, permille in 0u16..=1000) {
            let c = Credits::from_millis(millis);
            let (a, b) = c.split_permille(permille);
            prop_assert_eq!(a.millis() + b.millis(), millis);
            prop_assert!(a.millis() >= 0 && b.millis() >= 0);
        }

        #[test]
        fn checked_arithmetic_matches_integers(a in -1_000_000_000i64..1_000_000_000, b in -1_000_000_000i64..1_000_000_000) {
            let sum = Credits::from_millis(a).checked_add(Credits::from_millis(b)).unwrap();
            prop_assert_eq!(sum.millis(), a + b);
            let diff = sum.checked_sub(Credits::from_millis(b)).unwrap();
            prop_assert_eq!(diff.millis(), a);
        }

        #[test]
        fn parser_never_panics(s in ".{0,40}") {
            let _ = s.parse::<Credits>();
        }
    }
}
