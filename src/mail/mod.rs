//! The durable outgoing mail queue: accepted mail is stored before it is acknowledged, delivered
//! over SMTP as soon as it is due, retried with backoff, and parked in an error queue when it keeps
//! failing.

mod delivery;
mod message;
mod queue;
mod relay;
mod retry;
mod smtp;

pub use delivery::{BatchReport, Delivery};
pub use message::{InvalidMail, MailSubmission, ValidMail};
pub use queue::{Accepted, IdempotencyKey, MailError, MailQueue};
pub use relay::{SmtpTarget, TlsMode};
pub use retry::{Next, RetryPolicy};
pub use smtp::{Connection, SendError, SmtpClient};
