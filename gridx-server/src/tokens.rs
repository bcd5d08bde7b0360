//! API and worker tokens: 256 random bits, shown once, stored only as SHA-256 hashes,
//! compared in constant time.

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// Prefix of user API tokens.
pub const USER_PREFIX: &str = "gxu_";
/// Prefix of worker tokens. Distinct prefixes make a token used in the wrong place
/// easy to explain in an error message.
pub const WORKER_PREFIX: &str = "gxw_";

/// A fresh token: the prefix and 64 hex digits.
pub fn generate(prefix: &str) -> Result<String, getrandom::Error> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)?;
    Ok(format!("{prefix}{}", hex::encode(bytes)))
}

/// What the store keeps instead of the token.
pub fn hash(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// Compares a stored hash with a presented token's hash without early exit.
pub fn matches(stored: &[u8], presented: &[u8; 32]) -> bool {
    stored.len() == 32 && bool::from(stored.ct_eq(presented.as_slice()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_long_random_and_prefixed() {
        let a = generate(USER_PREFIX).unwrap();
        let b = generate(USER_PREFIX).unwrap();
        assert_ne!(a, b);
        assert!(a.starts_with("gxu_"));
        assert_eq!(a.len(), 4 + 64);
    }

    #[test]
    fn hashes_match_only_their_token() {
        let t = generate(WORKER_PREFIX).unwrap();
        let h = hash(&t);
        assert!(matches(&h, &hash(&t)));
        assert!(!matches(&h, &hash("gxw_other")));
        assert!(!matches(&h[..31], &hash(&t)));
    }
}
