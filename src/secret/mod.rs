//! Secrets, in memory and at rest.
//!
//! [`Secret`] is a string that is never printed (redacted `Debug` and `Display`) and is wiped on drop:
//! passwords, tokens, keys pass through Herald as one. [`SecretBox`] seals the credentials Herald
//! stores (AES-256-GCM, bound to the row they belong to) and opens them again with the same key. The
//! two are one module because every sealed value is opened into a `Secret` and nowhere else.

mod redacted;
mod sealing;

pub use redacted::{Secret, write_only};
pub use sealing::{KEY_FILE, SecretBox, SecretsError};
