//! Accepting mail (group commit) and the admin operations on the queue.

use std::sync::Arc;
use std::time::Duration;

use sha2::{Digest, Sha256};
use tokio::sync::{Notify, mpsc, oneshot};

use super::message::ValidMail;
use super::raw::{Origin, RawMail};
use crate::cluster::NodeId;
use crate::error_kind::{Classified, ErrorKind};
use crate::metrics::Metrics;
use crate::store::{EnqueueOutcome, HeldWriter, MailFilter, MailSummary, NewMail, Store, StoreError, now_ms};

/// Largest number of submissions committed in one transaction.
const MAX_BATCH: usize = 1024;

#[derive(Debug, thiserror::Error)]
pub enum MailError {
    #[error("the Idempotency-Key was already used for a different message ({0})")]
    KeyConflict(String),
    #[error("no message `{0}` in that queue")]
    NotFound(String),
    #[error("the mail queue is shutting down")]
    ShuttingDown,
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl Classified for MailError {
    fn kind(&self) -> ErrorKind {
        match self {
            MailError::KeyConflict(_) => ErrorKind::Conflict,
            MailError::NotFound(_) => ErrorKind::NotFound,
            MailError::ShuttingDown => ErrorKind::Unavailable,
            MailError::Store(e) => e.kind(),
        }
    }

    fn code(&self) -> Option<&'static str> {
        match self {
            MailError::KeyConflict(_) => Some("idempotency_key_reused"),
            MailError::Store(e) => e.code(),
            _ => None,
        }
    }

    fn public_detail(&self) -> String {
        match self {
            MailError::Store(e) => e.public_detail(),
            other => other.to_string(),
        }
    }
}

/// The answer to a submission.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accepted {
    pub id: String,
    /// False when an `Idempotency-Key` matched an earlier, identical submission.
    pub created: bool,
}

/// An `Idempotency-Key` header: 1 to 255 visible ASCII characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyKey(String);

impl TryFrom<&str> for IdempotencyKey {
    type Error = &'static str;
    fn try_from(s: &str) -> Result<Self, &'static str> {
        if s.is_empty() || s.len() > 255 || !s.bytes().all(|b| b.is_ascii_graphic()) {
            return Err("the Idempotency-Key header must be 1 to 255 visible ASCII characters");
        }
        Ok(IdempotencyKey(s.to_owned()))
    }
}

impl IdempotencyKey {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

struct Pending {
    row: NewMail,
    reply: oneshot::Sender<Result<EnqueueOutcome, String>>,
}

/// The node's mail queue. Cheap to clone.
#[derive(Clone)]
pub struct MailQueue {
    store: Store,
    node_id: NodeId,
    submissions: mpsc::Sender<Pending>,
    /// Woken when new work is due (accepted mail, resend, flush).
    pub(crate) wake: Arc<Notify>,
}

impl MailQueue {
    /// Creates the queue and starts its committer task, which ends when every `MailQueue` clone is
    /// dropped.
    pub fn start(store: Store, node_id: NodeId, metrics: Arc<Metrics>) -> MailQueue {
        let (tx, rx) = mpsc::channel(MAX_BATCH * 4);
        let wake = Arc::new(Notify::new());
        tokio::spawn(commit_loop(store.clone(), rx, wake.clone(), metrics));
        MailQueue {
            store,
            node_id,
            submissions: tx,
            wake,
        }
    }

    pub fn node_id(&self) -> &NodeId {
        &self.node_id
    }

    /// Stores a JSON submission durably and returns its id. Concurrent submissions share one
    /// transaction (group commit): each caller is answered only after the commit that holds its message.
    pub async fn submit(
        &self,
        mail: &ValidMail,
        origin: &Origin,
        key: Option<&IdempotencyKey>,
    ) -> Result<Accepted, MailError> {
        let content_json = serde_json::to_string(mail).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let recipients = mail.recipients();
        let id = uuid::Uuid::now_v7().to_string();
        let row = NewMail {
            // What `ValidMail::render` writes in the Message-ID header.
            message_id: Some(format!("{id}@herald")),
            id,
            node_id: self.node_id.to_string(),
            envelope_from: mail.envelope_from(),
            recipients_json: serde_json::to_string(&recipients).map_err(|e| StoreError::Corrupt(e.to_string()))?,
            subject: mail.subject.clone(),
            size_bytes: i64::try_from(content_json.len()).unwrap_or(i64::MAX),
            idempotency: key.map(|k| (k.0.clone(), hex_sha256(&[content_json.as_bytes()]))),
            content_json,
            submitted_by: origin.user.clone(),
            raw: None,
            envelope_params: String::new(),
            protocol: origin.protocol.as_str(),
            client_addr: origin.client.map(|ip| ip.to_string()),
            now: now_ms(),
        };
        self.store_row(row).await
    }

    /// Stores a complete message durably, byte for byte, with its envelope; answered like [`submit`](Self::submit),
    /// after the commit that holds it.
    pub async fn submit_raw(
        &self,
        mail: RawMail,
        origin: &Origin,
        key: Option<&IdempotencyKey>,
    ) -> Result<Accepted, MailError> {
        let recipients_json =
            serde_json::to_string(mail.recipients()).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let params = mail.params().to_column();
        let idempotency = key.map(|k| {
            let hash = hex_sha256(&[
                mail.envelope_from().as_bytes(),
                b"\0",
                recipients_json.as_bytes(),
                b"\0",
                params.as_bytes(),
                b"\0",
                mail.bytes(),
            ]);
            (k.0.clone(), hash)
        });
        let row = NewMail {
            id: uuid::Uuid::now_v7().to_string(),
            node_id: self.node_id.to_string(),
            envelope_from: mail.envelope_from().to_owned(),
            recipients_json,
            subject: mail.subject().to_owned(),
            size_bytes: i64::try_from(mail.bytes().len()).unwrap_or(i64::MAX),
            idempotency,
            content_json: String::new(),
            submitted_by: origin.user.clone(),
            envelope_params: params,
            protocol: origin.protocol.as_str(),
            client_addr: origin.client.map(|ip| ip.to_string()),
            message_id: mail.message_id().map(str::to_owned),
            raw: Some(mail.into_bytes()),
            now: now_ms(),
        };
        self.store_row(row).await
    }

    async fn store_row(&self, row: NewMail) -> Result<Accepted, MailError> {
        let id = row.id.clone();
        let (reply, answer) = oneshot::channel();
        self.submissions
            .send(Pending { row, reply })
            .await
            .map_err(|_| MailError::ShuttingDown)?;
        match answer.await.map_err(|_| MailError::ShuttingDown)? {
            Ok(EnqueueOutcome::Stored) => Ok(Accepted { id, created: true }),
            Ok(EnqueueOutcome::Duplicate(existing)) => Ok(Accepted {
                id: existing,
                created: false,
            }),
            Ok(EnqueueOutcome::KeyConflict(existing)) => Err(MailError::KeyConflict(existing)),
            Err(unavailable) => Err(MailError::Store(StoreError::Unavailable(sqlx::Error::Protocol(
                unavailable,
            )))),
        }
    }

    /// `(size, errorSize)` of this node, from the live counts.
    pub async fn counts(&self) -> Result<(i64, i64), MailError> {
        Ok(self.store.mail_counts(self.node_id.as_str()).await?)
    }

    pub async fn oldest_queued(&self) -> Result<Option<i64>, MailError> {
        Ok(self.store.oldest_queued_mail(self.node_id.as_str()).await?)
    }

    pub async fn list(&self, filter: &MailFilter) -> Result<Vec<MailSummary>, MailError> {
        Ok(self.store.list_mail(filter).await?)
    }

    pub async fn get(&self, id: &str) -> Result<MailSummary, MailError> {
        self.store
            .mail_by_id(id)
            .await?
            .ok_or_else(|| MailError::NotFound(id.to_owned()))
    }

    /// Moves errored mail (one, or all with `None`) back into this node's queue, due now.
    pub async fn resend(&self, id: Option<&str>) -> Result<u64, MailError> {
        let n = self.store.resend_mail(id, self.node_id.as_str(), now_ms()).await?;
        if let (Some(id), 0) = (id, n) {
            return Err(MailError::NotFound(id.to_owned()));
        }
        self.wake.notify_one();
        Ok(n)
    }

    /// Deletes errored mail (one, or all with `None`).
    pub async fn delete_errors(&self, id: Option<&str>) -> Result<u64, MailError> {
        self.delete("error", id).await
    }

    /// Deletes a queued message that is not being sent right now.
    pub async fn delete_queued(&self, id: &str) -> Result<u64, MailError> {
        self.delete("queued", Some(id)).await
    }

    async fn delete(&self, state: &'static str, id: Option<&str>) -> Result<u64, MailError> {
        let n = self.store.delete_mail(state, id).await?;
        if let (Some(id), 0) = (id, n) {
            return Err(MailError::NotFound(id.to_owned()));
        }
        Ok(n)
    }

    /// Makes the queue due now: one node's (`Some`), or every node's. Other nodes' dispatchers find
    /// their messages due at their next look at the queue, within 5 seconds.
    pub async fn flush(&self, node_id: Option<&str>) -> Result<u64, MailError> {
        let n = self.store.flush_mail(node_id, now_ms()).await?;
        self.wake.notify_one();
        Ok(n)
    }
}

fn hex_sha256(parts: &[&[u8]]) -> String {
    let mut digest = Sha256::new();
    for part in parts {
        digest.update(part);
    }
    digest.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// Group commit: takes every submission waiting, stores them in one transaction, answers each.
async fn commit_loop(store: Store, mut rx: mpsc::Receiver<Pending>, wake: Arc<Notify>, metrics: Arc<Metrics>) {
    let mut batch: Vec<Pending> = Vec::with_capacity(MAX_BATCH);
    let mut writer = HeldWriter::default();
    while rx.recv_many(&mut batch, MAX_BATCH).await > 0 {
        // The rows move out of the batch (a complete message may be megabytes: no copy of it is made).
        let (rows, replies): (Vec<NewMail>, Vec<_>) = batch.drain(..).map(|p| (p.row, p.reply)).unzip();
        let started = std::time::Instant::now();
        let result = async { writer.get(&store).await?.enqueue_mail(&rows).await }.await;
        drop(rows);
        writer.after_batch(result.is_ok(), !rx.is_empty());
        match result {
            Ok(outcomes) => {
                metrics.mail_committed(replies.len(), started.elapsed());
                for (reply, outcome) in replies.into_iter().zip(outcomes) {
                    let _ = reply.send(Ok(outcome));
                }
                wake.notify_one();
            }
            Err(e) => {
                tracing::warn!(error = %e, messages = replies.len(), "cannot store submitted mail");
                let text = e.to_string();
                for reply in replies {
                    let _ = reply.send(Err(text.clone()));
                }
                // Do not spin on a database that is down.
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mail_errors_say_their_kind() {
        let reused = MailError::KeyConflict("0190".into());
        assert_eq!(
            (reused.kind(), reused.code()),
            (ErrorKind::Conflict, Some("idempotency_key_reused"))
        );
        assert_eq!(MailError::NotFound("0190".into()).kind(), ErrorKind::NotFound);
        assert_eq!(MailError::ShuttingDown.kind(), ErrorKind::Unavailable);
        let outage = MailError::Store(StoreError::Unavailable(sqlx::Error::PoolTimedOut));
        assert_eq!(outage.kind(), ErrorKind::Unavailable);
        assert_eq!(outage.public_detail(), "the database is unavailable; try again shortly");
        let invalid = crate::mail::InvalidMail {
            field: "to[0]".into(),
            message: "is not an address".into(),
        };
        assert_eq!(invalid.kind(), ErrorKind::Invalid { field: "to[0]".into() });
    }

    #[test]
    fn idempotency_keys_are_validated() {
        assert!(IdempotencyKey::try_from("order-42").is_ok());
        assert!(IdempotencyKey::try_from("").is_err());
        assert!(IdempotencyKey::try_from("has space").is_err());
        assert!(IdempotencyKey::try_from(&*"k".repeat(256)).is_err());
    }
}
