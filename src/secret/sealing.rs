//! Encryption of stored credentials: AES-256-GCM with a random 96-bit nonce per value.
//!
//! The key comes from `HERALD_SECRET_KEY` (base64 of 32 bytes) or from `<data_dir>/secret.key`, which is
//! created with mode 0600 on first start, but only while the database holds nothing sealed: a key
//! made up later could open none of it (see `services::open_secrets`, shared by `serve` and the CLI).
//!
//! A sealed value is `v1:` + base64(nonce ‖ ciphertext ‖ tag); the caller's context string (e.g. the
//! integration's name) is bound as associated data, so a value copied to another row does not decrypt.

use std::io::Write;
use std::path::{Path, PathBuf};

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use rand::RngCore;
use zeroize::Zeroizing;

use super::Secret;
use crate::error_kind::{Classified, ErrorKind};

pub const KEY_FILE: &str = "secret.key";
const PREFIX: &str = "v1:";
const NONCE_LEN: usize = 12;

#[derive(Debug, thiserror::Error)]
pub enum SecretsError {
    #[error("HERALD_SECRET_KEY must be the base64 encoding of exactly 32 bytes")]
    BadKey,
    #[error("the key file {path} is not usable: {reason}")]
    KeyFile { path: PathBuf, reason: String },
    #[error("a stored secret cannot be decrypted (wrong HERALD_SECRET_KEY or secret.key, or altered data)")]
    Undecryptable,
}

impl Classified for SecretsError {
    /// Internal whatever the cause: a key that does not fit or a stored value that does not decrypt
    /// stays so until an operator restores the right key or the credential.
    fn kind(&self) -> ErrorKind {
        ErrorKind::Internal
    }
}

/// Seals and opens stored secrets. Cheap to clone.
#[derive(Clone)]
pub struct SecretBox {
    cipher: Aes256Gcm,
}

impl std::fmt::Debug for SecretBox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretBox(<key redacted>)")
    }
}

impl SecretBox {
    pub fn from_key(key: &[u8; 32]) -> Self {
        Self {
            cipher: Aes256Gcm::new(&Key::<Aes256Gcm>::from(*key)),
        }
    }

    /// The key from `HERALD_SECRET_KEY` when given, else from the data dir's key file; `None` when
    /// neither exists. Whether a new key may be created instead is the caller's decision (it depends
    /// on what the database holds: see `services::open_secrets`).
    pub fn load_existing(configured: Option<&Secret>, data_dir: &Path) -> Result<Option<Self>, SecretsError> {
        if let Some(encoded) = configured {
            let bytes = Zeroizing::new(
                STANDARD
                    .decode(encoded.expose().trim())
                    .map_err(|_| SecretsError::BadKey)?,
            );
            let key: [u8; 32] = bytes.as_slice().try_into().map_err(|_| SecretsError::BadKey)?;
            return Ok(Some(Self::from_key(&key)));
        }
        let path = data_dir.join(KEY_FILE);
        let fail = |reason: String| SecretsError::KeyFile {
            path: path.clone(),
            reason,
        };
        match std::fs::read(&path) {
            Ok(bytes) => {
                let bytes = Zeroizing::new(bytes);
                let decoded = Zeroizing::new(
                    STANDARD
                        .decode(String::from_utf8_lossy(&bytes).trim())
                        .map_err(|_| fail("it must hold the base64 of 32 bytes".into()))?,
                );
                let key: [u8; 32] = decoded
                    .as_slice()
                    .try_into()
                    .map_err(|_| fail("it must hold the base64 of 32 bytes".into()))?;
                Ok(Some(Self::from_key(&key)))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(fail(e.to_string())),
        }
    }

    /// A new random key, kept in memory only.
    pub fn generate() -> Self {
        let mut key = Zeroizing::new([0u8; 32]);
        rand::rng().fill_bytes(key.as_mut_slice());
        Self::from_key(&key)
    }

    /// Creates the data dir's key file (mode 0600) with a new random key. Should another process
    /// have created it meanwhile, that key is used.
    pub fn create(data_dir: &Path) -> Result<Self, SecretsError> {
        let path = data_dir.join(KEY_FILE);
        let mut key = Zeroizing::new([0u8; 32]);
        rand::rng().fill_bytes(key.as_mut_slice());
        let encoded = Zeroizing::new(STANDARD.encode(key.as_slice()));
        match write_private(&path, encoded.as_bytes()) {
            Ok(()) => {
                tracing::info!(file = %path.display(), "created the key that encrypts stored credentials");
                Ok(Self::from_key(&key))
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                Self::load_existing(None, data_dir)?.ok_or_else(|| SecretsError::KeyFile {
                    path,
                    reason: "it vanished while it was being created".into(),
                })
            }
            Err(e) => Err(SecretsError::KeyFile {
                path,
                reason: e.to_string(),
            }),
        }
    }

    /// Encrypts `plaintext`, bound to `context`.
    pub fn seal(&self, context: &str, plaintext: &str) -> String {
        let mut nonce = [0u8; NONCE_LEN];
        rand::rng().fill_bytes(&mut nonce);
        let payload = Payload {
            msg: plaintext.as_bytes(),
            aad: context.as_bytes(),
        };
        // Encryption fails only for messages beyond 64 GiB; credentials are bounded far below that.
        let ciphertext = self.cipher.encrypt(&Nonce::from(nonce), payload).unwrap_or_default();
        let mut out = Vec::with_capacity(NONCE_LEN + ciphertext.len());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ciphertext);
        format!("{PREFIX}{}", STANDARD.encode(out))
    }

    pub fn open(&self, context: &str, sealed: &str) -> Result<Secret, SecretsError> {
        let body = sealed.strip_prefix(PREFIX).ok_or(SecretsError::Undecryptable)?;
        let bytes = STANDARD.decode(body).map_err(|_| SecretsError::Undecryptable)?;
        if bytes.len() < NONCE_LEN + 16 {
            return Err(SecretsError::Undecryptable);
        }
        let (nonce, ciphertext) = bytes.split_at(NONCE_LEN);
        let nonce: [u8; NONCE_LEN] = nonce.try_into().map_err(|_| SecretsError::Undecryptable)?;
        let plain = self
            .cipher
            .decrypt(
                &Nonce::from(nonce),
                Payload {
                    msg: ciphertext,
                    aad: context.as_bytes(),
                },
            )
            .map_err(|_| SecretsError::Undecryptable)?;
        let text = String::from_utf8(plain).map_err(|_| SecretsError::Undecryptable)?;
        Ok(Secret::new(text))
    }
}

/// Writes `contents` to `path` (mode 0600) whole or not at all, failing with `AlreadyExists` when
/// `path` exists: the key goes to a temporary file first, is synced, then linked into place (a hard
/// link never replaces an existing file). So a crash, or a second process starting at the same
/// moment, never sees an empty or half-written key file.
fn write_private(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    let temporary = path.with_extension(format!("tmp-{}", std::process::id()));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let written = options.open(&temporary).and_then(|mut file| {
        file.write_all(contents)?;
        file.sync_all()
    });
    let linked = written.and_then(|()| std::fs::hard_link(&temporary, path));
    let _ = std::fs::remove_file(&temporary);
    linked?;
    if let Some(dir) = path.parent() {
        // The new name must survive a crash too.
        std::fs::File::open(dir).and_then(|d| d.sync_all())?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_that_cannot_be_used_are_internal_faults() {
        for err in [
            SecretsError::BadKey,
            SecretsError::Undecryptable,
            SecretsError::KeyFile {
                path: "secret.key".into(),
                reason: "mode 0644".into(),
            },
        ] {
            assert_eq!(err.kind(), ErrorKind::Internal, "{err}");
        }
    }

    #[test]
    fn sealed_values_round_trip_and_differ_each_time() {
        let secrets = SecretBox::from_key(&[7; 32]);
        let a = secrets.seal("jira-prod", "hunter2");
        let b = secrets.seal("jira-prod", "hunter2");
        assert_ne!(a, b, "a fresh nonce per value");
        assert!(!a.contains("hunter2"));
        assert_eq!(secrets.open("jira-prod", &a).unwrap().expose(), "hunter2");
    }

    #[test]
    fn another_context_key_or_altered_data_does_not_open() {
        let secrets = SecretBox::from_key(&[7; 32]);
        let sealed = secrets.seal("jira-prod", "hunter2");
        assert!(secrets.open("jira-test", &sealed).is_err());
        assert!(SecretBox::from_key(&[8; 32]).open("jira-prod", &sealed).is_err());
        let mut altered = sealed.clone();
        altered.pop();
        altered.push('A');
        assert!(secrets.open("jira-prod", &altered).is_err());
    }

    #[test]
    fn the_key_file_is_created_private_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        assert!(SecretBox::load_existing(None, dir.path()).unwrap().is_none());
        assert!(!dir.path().join(KEY_FILE).exists(), "loading creates nothing");
        let first = SecretBox::create(dir.path()).unwrap();
        let sealed = first.seal("x", "value");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join(KEY_FILE))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let again = SecretBox::load_existing(None, dir.path()).unwrap().unwrap();
        assert_eq!(again.open("x", &sealed).unwrap().expose(), "value");
        let raced = SecretBox::create(dir.path()).unwrap();
        assert_eq!(
            raced.open("x", &sealed).unwrap().expose(),
            "value",
            "an existing file is kept"
        );
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, [KEY_FILE], "no temporary file is left behind");
    }

    #[test]
    fn a_configured_key_must_be_32_bytes_of_base64() {
        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(
            SecretBox::load_existing(Some(&Secret::new("c2hvcnQ=")), dir.path()),
            Err(SecretsError::BadKey)
        ));
        let key = STANDARD.encode([1u8; 32]);
        assert!(
            SecretBox::load_existing(Some(&Secret::new(key)), dir.path())
                .unwrap()
                .is_some()
        );
        assert!(!dir.path().join(KEY_FILE).exists());
    }
}
