//! The ticket list: each problem (integration and dedup key) with its issue and its events still to
//! apply, and the admin's operations on it: resend a parked event, delete what waits, forget the issue.
//! What the API, the console and the command line show and do.

use serde_json::Value;

use super::TicketDelivery;
use crate::error_kind::{Classified, ErrorKind};
use crate::store::{ProblemFilter, ProblemRow, StoreError, TicketEventRow, now_ms};

#[derive(Debug, thiserror::Error)]
pub enum TicketsError {
    #[error("no problem `{dedup_key}` in the tickets of `{integration}`")]
    NotFound { integration: String, dedup_key: String },
    #[error("`{integration}`'s problem `{dedup_key}` has no event in the error list to resend")]
    NothingToResend { integration: String, dedup_key: String },
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl Classified for TicketsError {
    fn kind(&self) -> ErrorKind {
        match self {
            TicketsError::NotFound { .. } => ErrorKind::NotFound,
            TicketsError::NothingToResend { .. } => ErrorKind::Conflict,
            TicketsError::Store(e) => e.kind(),
        }
    }

    fn code(&self) -> Option<&'static str> {
        match self {
            TicketsError::NothingToResend { .. } => Some("nothing_to_resend"),
            TicketsError::Store(e) => e.code(),
            TicketsError::NotFound { .. } => None,
        }
    }

    fn public_detail(&self) -> String {
        match self {
            TicketsError::Store(e) => e.public_detail(),
            other => other.to_string(),
        }
    }
}

/// One problem with its issue and the event that waits at its head.
#[derive(Debug, Clone)]
pub struct Problem {
    pub row: ProblemRow,
    /// The head's last error, as the worker recorded it (`kind`, `message`, and Jira's `status`,
    /// `errorMessages`, `errors` when Jira answered).
    pub last_error: Option<Value>,
}

/// An event's `last_error` as the worker stored it (JSON), or the text itself if it is not JSON.
pub fn stored_error(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.to_owned()))
}

impl From<ProblemRow> for Problem {
    fn from(row: ProblemRow) -> Self {
        let last_error = row.head_last_error.as_deref().map(stored_error);
        Problem { row, last_error }
    }
}

/// What deleting a problem's events did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deleted {
    pub events: u64,
    pub forgotten: bool,
}

impl TicketDelivery {
    /// Problems in (integration, dedup key) order.
    pub async fn problems(&self, filter: &ProblemFilter) -> Result<Vec<Problem>, TicketsError> {
        let rows = self.inner.store.ticket_problems(filter).await?;
        Ok(rows.into_iter().map(Problem::from).collect())
    }

    /// How many problems an integration has in each state (`error`, `pending`, `open`, …); states
    /// without a problem are left out.
    pub async fn problem_counts(&self, integration: &str) -> Result<Vec<(String, i64)>, TicketsError> {
        Ok(self.inner.store.ticket_problem_counts(integration).await?)
    }

    /// One problem and its events (the newest `limit`, applied ones included while they are kept).
    pub async fn problem(
        &self,
        integration: &str,
        dedup_key: &str,
        limit: i64,
    ) -> Result<(Problem, Vec<TicketEventRow>), TicketsError> {
        let filter = ProblemFilter {
            integration: Some(integration.to_owned()),
            dedup_key: Some(dedup_key.to_owned()),
            limit: 1,
            ..ProblemFilter::default()
        };
        let problem = self
            .problems(&filter)
            .await?
            .into_iter()
            .next()
            .ok_or_else(|| not_found(integration, dedup_key))?;
        let events = self
            .inner
            .store
            .latest_ticket_events(integration, dedup_key, limit.max(1))
            .await?;
        Ok((problem, events))
    }

    /// Sends a problem's parked event again, at once.
    pub async fn resend(&self, integration: &str, dedup_key: &str) -> Result<u64, TicketsError> {
        let n = self
            .inner
            .store
            .resend_ticket_events(integration, dedup_key, now_ms())
            .await?;
        if n == 0 {
            self.problem(integration, dedup_key, 1).await?;
            return Err(TicketsError::NothingToResend {
                integration: integration.to_owned(),
                dedup_key: dedup_key.to_owned(),
            });
        }
        self.inner.wake.notify_one();
        Ok(n)
    }

    /// Sends every parked event of an integration (or of all) again; how many.
    pub async fn resend_all(&self, integration: Option<&str>) -> Result<u64, TicketsError> {
        let filter = ProblemFilter {
            integration: integration.map(str::to_owned),
            state: Some("error"),
            limit: 100_000,
            ..ProblemFilter::default()
        };
        let mut n = 0;
        for problem in self.problems(&filter).await? {
            n += self
                .inner
                .store
                .resend_ticket_events(&problem.row.integration, &problem.row.dedup_key, now_ms())
                .await?;
        }
        if n > 0 {
            self.inner.wake.notify_one();
        }
        Ok(n)
    }

    /// Deletes a problem's events still waiting or parked; with `forget`, also Herald's record of its
    /// issue (the next event then searches Jira for it, and creates one if none is found).
    pub async fn delete(&self, integration: &str, dedup_key: &str, forget: bool) -> Result<Deleted, TicketsError> {
        let (events, forgotten) = self
            .inner
            .store
            .delete_ticket_events(integration, dedup_key, forget)
            .await?;
        if events == 0 && !forgotten {
            self.problem(integration, dedup_key, 1).await?;
        }
        Ok(Deleted { events, forgotten })
    }
}

fn not_found(integration: &str, dedup_key: &str) -> TicketsError {
    TicketsError::NotFound {
        integration: integration.to_owned(),
        dedup_key: dedup_key.to_owned(),
    }
}
