//! What kind of failure an error is, said once beside each domain error.
//!
//! Herald answers through several faces: the API's problem details, the console's pages and the
//! Xray-compatible bodies. Each used to decide on its own what a store or service error meant, so the
//! same failure could be a 500 in one face and a 503 in another. Now each domain error says what kind
//! it is ([`Classified`]) and each face turns kinds into its answers in one place (`http/error.rs`,
//! `console/error.rs`, `http/ticketing.rs`). A leaf: it imports nothing of Herald, so any module may
//! classify its errors without creating an import cycle.

use std::time::Duration;

/// What kind of failure an error is: all a face needs to choose its status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ErrorKind {
    /// What the request names does not exist.
    NotFound,
    /// The request contradicts what is stored or configured: a name already taken, the last admin, an
    /// idempotency key used for another message, alerts without recipients.
    Conflict,
    /// A value the caller sent cannot be used; `field` is its path, such as `role` or
    /// `fields.components[0]` (empty when the whole value is at fault).
    Invalid { field: String },
    /// The credentials are missing or not valid.
    Unauthenticated,
    /// Too many failed attempts: refused until `retry_after` has passed.
    Throttled { retry_after: Duration },
    /// A part Herald depends on (the database) did not answer, or Herald is shutting down: the same
    /// request may work a little later.
    Unavailable,
    /// A fault of Herald or of its stored data (a row this version cannot read, a secret that does
    /// not decrypt): asking again will not help, an operator must look at the log.
    Internal,
}

/// An error that knows its [`ErrorKind`]. Implemented beside each domain error's definition; an
/// error that only passes another one on (a service's `Store(StoreError)` variant) answers with
/// the inner error's kind, code and detail.
pub trait Classified: std::error::Error {
    fn kind(&self) -> ErrorKind;

    /// A stable name finer than the kind, for clients that act on it (the API's problem `code`,
    /// such as `idempotency_key_reused`); `None` when the kind says enough.
    fn code(&self) -> Option<&'static str> {
        None
    }

    /// What whoever sent the request may read: the error's own words, unless they carry internals
    /// (a database driver's message names hosts and users) that belong in the log only. Faces
    /// never show the detail of an [`ErrorKind::Internal`] error.
    fn public_detail(&self) -> String {
        self.to_string()
    }
}
