//! API tokens: `hrld_` followed by 43 characters of URL-safe base64 (256 random bits).
//! Only the SHA-256 of a token is stored; the token cannot be recovered from the database.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore;
use sha2::{Digest, Sha256};

use crate::secret::Secret;

pub const TOKEN_PREFIX: &str = "hrld_";

/// A freshly minted token: the secret to show once, its id and the hash to store.
pub struct MintedToken {
    pub id: String,
    pub secret: Secret,
    pub hash: String,
}

pub fn mint() -> MintedToken {
    let mut rng = rand::rng();
    let mut bytes = [0u8; 32];
    rng.fill_bytes(&mut bytes);
    let secret = Secret::new(format!("{TOKEN_PREFIX}{}", URL_SAFE_NO_PAD.encode(bytes)));
    let mut id = [0u8; 8];
    rng.fill_bytes(&mut id);
    let id = id.iter().map(|b| format!("{b:02x}")).collect();
    let hash = hash(&secret);
    MintedToken { id, secret, hash }
}

/// Whether a presented secret has the shape of a Herald token (and so is checked as one).
pub fn looks_like_token(secret: &str) -> bool {
    secret.starts_with(TOKEN_PREFIX)
}

/// The stored form of a token. A fast hash is right here: the token has 256 bits of entropy.
pub fn hash(secret: &Secret) -> String {
    let digest = Sha256::digest(secret.expose().as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minted_tokens_are_unique_prefixed_and_hashed() {
        let a = mint();
        let b = mint();
        assert!(looks_like_token(a.secret.expose()));
        assert_eq!(a.secret.expose().len(), TOKEN_PREFIX.len() + 43);
        assert_ne!(a.secret, b.secret);
        assert_ne!(a.id, b.id);
        assert_eq!(a.hash, hash(&a.secret));
        assert_eq!(a.hash.len(), 64);
        assert!(!a.hash.contains(a.secret.expose()));
    }
}
