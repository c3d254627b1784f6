//! Argon2id password hashing, off the async runtime and bounded in concurrency, and the password rule.
//!
//! **The rule** (after NIST SP 800-63B §5.1.1.2): any printable Unicode is allowed, spaces included;
//! a password is normalised to Unicode NFKC before it is measured and before it is hashed, so the
//! same password typed on keyboards or systems that encode it differently (a precomposed `é` or `e`
//! plus a combining accent, a full-width `Ａ`) is the same password. It must be at least
//! [`MIN_PASSWORD_CHARS`] characters and at most [`MAX_PASSWORD_BYTES`] bytes, both before and after
//! normalisation, and contain no control character (Unicode category Cc: U+0000–U+001F and
//! U+007F–U+009F, tab and newline included), which no one can type reliably into a form or a
//! `user:password` header and which usually means a pasted line ending or a mangled secret. It
//! must not start with `hrld_`, which marks an API token: such a password could never sign in.
//! Format characters (Cf) are allowed: emoji sequences need the zero-width joiner.
//!
//! **Hashes made before normalisation.** Earlier versions hashed the password as given. For the
//! many passwords that NFKC leaves unchanged (all ASCII ones among them) nothing changes. For one
//! that NFKC changes, [`PasswordHashing::verify`] tries the normalised form and then the form as
//! given, so a password set before still verifies; that second Argon2 run happens only for such
//! passwords, within the same permit and the same throttled attempt. The rule is enforced only when
//! a password is set: one set before with a control character still signs in.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use argon2::{Argon2, PasswordHasher, PasswordVerifier};
use rand::Rng;
use tokio::sync::{OnceCell, Semaphore};

use unicode_normalization::UnicodeNormalization;

use super::token;
use crate::error_kind::{Classified, ErrorKind};
use crate::secret::Secret;

/// Longest password accepted, in bytes: long enough for any passphrase, short enough to bound work.
pub const MAX_PASSWORD_BYTES: usize = 1024;
/// Shortest password accepted when setting one.
pub const MIN_PASSWORD_CHARS: usize = 8;

#[derive(Debug, thiserror::Error)]
pub enum PasswordError {
    #[error("the password must be at least {MIN_PASSWORD_CHARS} characters long (after Unicode NFKC normalisation)")]
    TooShort,
    #[error("the password must be at most {MAX_PASSWORD_BYTES} bytes long (UTF-8, after Unicode NFKC normalisation)")]
    TooLong,
    #[error(
        "the password must not contain control characters such as tab or newline (found U+{:04X}); \
         any other Unicode character, space included, is allowed",
        u32::from(*.0)
    )]
    ControlCharacter(char),
    #[error(
        "the password must not start with `{}`, which marks an API token",
        token::TOKEN_PREFIX
    )]
    TokenShaped,
    #[error("password hashing failed: {0}")]
    Hash(String),
}

impl Classified for PasswordError {
    fn kind(&self) -> ErrorKind {
        match self {
            // The hasher failing is Herald's fault, not the password's.
            PasswordError::Hash(_) => ErrorKind::Internal,
            _ => ErrorKind::Invalid {
                field: "password".into(),
            },
        }
    }

    fn code(&self) -> Option<&'static str> {
        match self {
            PasswordError::Hash(_) => None,
            _ => Some("invalid_password"),
        }
    }
}

/// The password in Unicode NFKC, the form that is measured and hashed.
pub fn normalize(password: &Secret) -> Secret {
    Secret::new(password.expose().nfkc().collect::<String>())
}

/// Checks a new password against the rule (see the module documentation).
pub fn check_policy(password: &Secret) -> Result<(), PasswordError> {
    // Measured before normalising too, which bounds its work (NFKC expands at most 18 times).
    if password.expose().len() > MAX_PASSWORD_BYTES {
        return Err(PasswordError::TooLong);
    }
    let normalized = normalize(password);
    let text = normalized.expose();
    if let Some(c) = text.chars().find(|c| c.is_control()) {
        return Err(PasswordError::ControlCharacter(c));
    }
    if token::looks_like_token(text) {
        return Err(PasswordError::TokenShaped);
    }
    if text.chars().count() < MIN_PASSWORD_CHARS {
        return Err(PasswordError::TooShort);
    }
    if text.len() > MAX_PASSWORD_BYTES {
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

    /// Hashes the password's NFKC form.
    pub async fn hash(&self, password: &Secret) -> Result<String, PasswordError> {
        let password = normalize(password);
        self.run(move || {
            Argon2::default()
                .hash_password(password.expose().as_bytes())
                .map(|h| h.to_string())
                .map_err(|e| PasswordError::Hash(e.to_string()))
        })
        .await
    }

    /// Whether the password matches the PHC string: its NFKC form, or (for a hash made before
    /// passwords were normalised) the form as given. A malformed stored hash never matches.
    pub async fn verify(&self, password: &Secret, phc: &str) -> bool {
        self.verifications.fetch_add(1, Ordering::Relaxed);
        let normalized = normalize(password);
        let as_given = (normalized != *password).then(|| password.clone());
        let phc = phc.to_owned();
        self.run(move || {
            let matches = |candidate: &Secret| {
                Argon2::default()
                    .verify_password(candidate.expose().as_bytes(), phc.as_str())
                    .is_ok()
            };
            Ok(matches(&normalized) || as_given.as_ref().is_some_and(matches))
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
    fn policy_refuses_control_characters_and_token_shapes_but_allows_any_printable_unicode() {
        for (password, found) in [
            ("abc\u{16}defgh", '\u{16}'),
            ("tab\tseparated", '\t'),
            ("line\nbreak!", '\n'),
        ] {
            match check_policy(&Secret::new(password)) {
                Err(e @ PasswordError::ControlCharacter(c)) => {
                    assert_eq!(c, found);
                    assert!(
                        e.to_string()
                            .starts_with("the password must not contain control characters"),
                        "{e}"
                    );
                    assert!(e.to_string().contains(&format!("U+{:04X}", u32::from(found))), "{e}");
                }
                other => panic!("{password:?}: {other:?}"),
            }
        }
        assert!(matches!(
            check_policy(&Secret::new("hrld_not-a-token-really")),
            Err(PasswordError::TokenShaped)
        ));
        for fine in [
            "correct horse battery",
            "pässwörter",
            "密码密码密码密码",
            "👩‍💻👩‍💻👩‍💻👩‍💻",
            "  spaced  ",
        ] {
            assert!(check_policy(&Secret::new(fine)).is_ok(), "{fine:?}");
        }
        // Counted after NFKC: the ligature "ﬃ" is three characters, so this is long enough.
        assert!(check_policy(&Secret::new("ﬃﬃab")).is_ok());
        assert!(matches!(
            check_policy(&Secret::new("ﬃab")),
            Err(PasswordError::TooShort)
        ));
    }

    #[tokio::test]
    async fn nfkc_equivalent_passwords_verify_and_older_hashes_of_the_raw_form_still_do() {
        let hashing = PasswordHashing::new(2);
        let precomposed = Secret::new("caf\u{e9}-au-lait");
        let decomposed = Secret::new("cafe\u{301}-au-lait");
        let hash = hashing.hash(&precomposed).await.unwrap();
        assert!(hashing.verify(&decomposed, &hash).await);
        assert!(hashing.verify(&precomposed, &hash).await);
        let fullwidth = Secret::new("\u{FF21}\u{FF22}\u{FF23}-password");
        let hash = hashing.hash(&fullwidth).await.unwrap();
        assert!(hashing.verify(&Secret::new("ABC-password"), &hash).await);
        // A hash made before normalisation, of the raw non-NFKC form.
        let legacy = Argon2::default()
            .hash_password(fullwidth.expose().as_bytes())
            .unwrap()
            .to_string();
        assert!(hashing.verify(&fullwidth, &legacy).await);
        assert!(
            !hashing
                .verify(&Secret::new("\u{FF21}\u{FF22}\u{FF24}-password"), &legacy)
                .await
        );
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
