//! Bearer tokens: generation (256 bits), hashing (SHA-256) and constant-time comparison.
//!
//! Only hashes are stored. A token is compared by hashing the presented value and comparing
//! the digests in constant time.

use base64::Engine as _;
use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::secrets::SecretValue;

/// A new random 256-bit token, base64url without padding (43 characters).
pub fn generate_token() -> SecretValue {
    let mut bytes = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut bytes);
    let text = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    zeroize::Zeroize::zeroize(&mut bytes);
    SecretValue::new(text)
}

/// SHA-256 of the token text, lowercase hex.
pub fn hash_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Whether `presented` hashes to `stored_hash`, compared in constant time.
pub fn token_matches(presented: &str, stored_hash: &str) -> bool {
    let h = hash_token(presented);
    h.as_bytes().ct_eq(stored_hash.as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_and_hash_checks() {
        let a = generate_token();
        let b = generate_token();
        assert_ne!(a.expose(), b.expose());
        assert_eq!(a.expose().len(), 43);
        let h = hash_token(a.expose());
        assert!(token_matches(a.expose(), &h));
        assert!(!token_matches(b.expose(), &h));
        assert!(!format!("{a:?}").contains(a.expose()));
    }
}
