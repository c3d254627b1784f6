//! The durable outgoing mail queue: accepted mail is stored before it is acknowledged, delivered
//! over SMTP as soon as it is due, retried with backoff, and parked in an error queue when it keeps
//! failing.

mod attachments;
mod attempt;
mod delivery;
mod message;
mod queue;
mod raw;
pub mod recipients;
mod relay;
mod relay_health;
mod relays;
mod retry;
pub mod rfc822;
mod smtp;

pub use attachments::{MAX_ATTACHMENTS, MailAttachment};
pub use delivery::{BatchReport, Delivery};
pub use message::{InvalidMail, MAX_RECIPIENTS, MailSubmission, ValidMail};
pub use queue::{Accepted, IdempotencyKey, MailError, MailQueue};
pub use raw::{EnvelopeParams, Origin, Protocol, RawMail, check_envelope_address, normalize_line_breaks};
pub use relay::{SmtpTarget, TlsMode};
pub use relays::{describe as describe_relay, parse_relay_list};
pub use retry::{Next, RetryPolicy};
pub use smtp::{Connection, SendError, SmtpClient};

use std::path::PathBuf;
use std::time::Duration;

use crate::secret::Secret;

/// The mail section of the settings: what the queue accepts, the relay, and the retry policy.
#[derive(Debug, Clone)]
pub struct MailSettings {
    /// Sender of mail submitted without `from`.
    pub from: String,
    /// Largest message accepted, in bytes: an HTTP submission's body, an SMTP message's content.
    pub max_size: usize,
    /// Whether this node delivers its queue (off: it only accepts and stores mail).
    pub delivery: bool,
    /// The SMTP relays, comma-separated in order of preference: `smtp://[user:password@]host[:port][?tls=starttls]`
    /// or `smtps://…`.
    pub smtp_url: Secret,
    /// SMTP connections (and delivery workers) per node.
    pub smtp_connections: u32,
    /// Limit for each SMTP exchange (connect, each command, the message).
    pub smtp_timeout: Duration,
    /// How long a down relay waits for its first probe, and at most between probes.
    pub probe_initial: Duration,
    pub probe_max: Duration,
    /// A PEM file with extra CA certificates to trust for the relay's TLS certificate.
    pub smtp_ca_file: Option<PathBuf>,
    /// When to retry a failed delivery, and when to give up.
    pub retry: RetryPolicy,
}
