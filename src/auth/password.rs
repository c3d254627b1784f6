//! Argon2id password hashing, off the async runtime and bounded in concurrency.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use argon2::{Argon2, PasswordHasher, PasswordVerifier};
use rand::Rng;
use tokio::sync::{OnceCell, Semaphore};

use crate::secret::Secret;

/// Longest password accepted, in bytes: long enough for any passphrase, short enough to bound work.
pub const MAX_PASSWORD_BYTES: usize = 1024;
/// Shortest password accepted when setting one.
pub const MIN_PASSWORD_CHARS: usize = 8;

#[derive(Debug, thiserror::Error)]
pub enum PasswordError {
    #[error("the password must be at least {MIN_PASSWORD_CHARS} characters long")]
    TooShort,
    #[error("the password must be at most {MAX_PASSWORD_BYTES} bytes long")]
    TooLong,
    #[error("password hashing failed: {0}")]
    Hash(String),
}

/// Checks a new password against the policy.
pub fn check_policy(password: &Secret) -> Result<(), PasswordError> {
    if password.expose().chars().count() < MIN_PASSWORD_CHARS {
        return Err(PasswordError::TooShort);
    }
    if password.expose().len() > MAX_PASSWORD_BYTES {
        return Err(PasswordError::TooLong);
    }
    Ok(())
}

/// A random password of 24 characters from an unambiguous alphabet (about 137 bits).
pub fn generate() -> Secret {
    const ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789";
    let mut rng = rand::rng();
    Secret::new(
        (0..24)
            .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
            .collect::<String>(),
    )
}

/// Hashes and verifies passwords on blocking threads, at most `permits` at a time, so a burst of
/// logins cannot starve the runtime or use unbounded memory (19 MiB per Argon2id hash).
#[derive(Clone)]
pub struct PasswordHashing {
    permits: Arc<Semaphore>,
    /// Hash of a random password, verified against when the user does not exist so that the answer
    /// takes as long as for a real user (no user enumeration by timing).
    dummy: Arc<OnceCell<String>>,
    /// Passwords verified so far (each one guess), for tests of the throttle.
    verifications: Arc<AtomicU64>,
}

impl PasswordHashing {
    pub fn new(permits: usize) -> Self {
        Self {
            permits: Arc::new(Semaphore::new(permits.max(1))),
            dummy: Arc::new(OnceCell::new()),
            verifications: Arc::new(AtomicU64::new(0)),
        }
    }

    pub async fn hash(&self, password: &Secret) -> Result<String, PasswordError> {
        let password = password.clone();
        self.run(move || {
            Argon2::default()
                .hash_password(password.expose().as_bytes())
                .map(|h| h.to_string())
                .map_err(|e| PasswordError::Hash(e.to_string()))
        })
        .await
    }

    /// Whether the password matches the PHC string. A malformed stored hash never matches.
    pub async fn verify(&self, password: &Secret, phc: &str) -> bool {
        self.verifications.fetch_add(1, Ordering::Relaxed);
        let password = password.clone();
        let phc = phc.to_owned();
        self.run(move || {
            Ok(Argon2::default()
                .verify_password(password.expose().as_bytes(), phc.as_str())
                .is_ok())
        })
        .await
        .unwrap_or(false)
    }

    /// How many passwords were verified (against a stored or the dummy hash) since start.
    pub fn verifications(&self) -> u64 {
        self.verifications.load(Ordering::Relaxed)
    }

    /// Spends the same effort as [`PasswordHashing::verify`] and answers false.
    pub async fn verify_nobody(&self, password: &Secret) -> bool {
        let dummy = self
            .dummy
            .get_or_try_init(|| async {
                let random = generate();
                self.hash(&random).await
            })
            .await;
        if let Ok(dummy) = dummy {
            self.verify(password, &dummy.clone()).await;
        }
        false
    }

    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> Result<T, PasswordError> + Send + 'static,
    ) -> Result<T, PasswordError> {
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|e| PasswordError::Hash(e.to_string()))?;
        tokio::task::spawn_blocking(work)
            .await
            .map_err(|e| PasswordError::Hash(e.to_string()))?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_hash_verifies_its_password_and_no_other() {
        let hashing = PasswordHashing::new(2);
        let hash = hashing.hash(&Secret::new("correct horse")).await.unwrap();
        assert!(hash.starts_with("$argon2id$"), "{hash}");
        assert!(hashing.verify(&Secret::new("correct horse"), &hash).await);
        assert!(!hashing.verify(&Secret::new("wrong horse"), &hash).await);
        assert!(!hashing.verify(&Secret::new("correct horse"), "not a phc string").await);
        assert!(!hashing.verify_nobody(&Secret::new("correct horse")).await);
    }

    #[test]
    fn policy_rejects_short_and_huge_passwords() {
        assert!(matches!(check_policy(&Secret::new("")), Err(PasswordError::TooShort)));
        assert!(matches!(
            check_policy(&Secret::new("1234567")),
            Err(PasswordError::TooShort)
        ));
        assert!(check_policy(&Secret::new("12345678")).is_ok());
        assert!(matches!(
            check_policy(&Secret::new("x".repeat(2000))),
            Err(PasswordError::TooLong)
        ));
        assert_eq!(generate().expose().len(), 24);
    }
}
