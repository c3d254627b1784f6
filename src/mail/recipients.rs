//! Each recipient of a message has its own state: a relay may take some recipients of a message and
//! refuse others, and the ones it took must not be sent the message again.
//!
//! The queue's `recipients` column is a JSON array with one element per envelope recipient: a bare
//! address for a recipient nothing has happened to yet (the form every message is accepted in), or
//! `{"address", "state", "reply"}` once an attempt has said something about it. A delivery attempt
//! sends the message to every recipient not yet delivered; a message leaves the queue when all are.

use serde::{Deserialize, Serialize};

/// Where one recipient stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum RecipientState {
    /// Not delivered yet: waiting for its first attempt, or for a retry after a 4xx.
    Pending,
    /// The relay took the message for it.
    Delivered,
    /// The relay refused it for good (5xx): it waits in the error queue, to be resent or deleted.
    Failed,
}

impl RecipientState {
    pub fn as_str(self) -> &'static str {
        match self {
            RecipientState::Pending => "pending",
            RecipientState::Delivered => "delivered",
            RecipientState::Failed => "failed",
        }
    }
}

/// One envelope recipient and its state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Recipient {
    pub address: String,
    pub state: RecipientState,
    /// The relay's last reply about this recipient, when it said something.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply: Option<String>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Stored {
    Address(String),
    Recipient(Recipient),
}

/// Reads the `recipients` column. A column that is not such an array is corrupt.
pub fn parse(column: &str) -> Result<Vec<Recipient>, serde_json::Error> {
    let stored: Vec<Stored> = serde_json::from_str(column)?;
    Ok(stored
        .into_iter()
        .map(|s| match s {
            Stored::Address(address) => Recipient {
                address,
                state: RecipientState::Pending,
                reply: None,
            },
            Stored::Recipient(r) => r,
        })
        .collect())
}

/// The `recipients` column for these states: a recipient that is pending with nothing to say is
/// written as its bare address, so a message nothing has happened to keeps the accepted form.
pub fn to_column(recipients: &[Recipient]) -> String {
    let values: Vec<serde_json::Value> = recipients
        .iter()
        .map(|r| match (r.state, &r.reply) {
            (RecipientState::Pending, None) => serde_json::Value::String(r.address.clone()),
            _ => serde_json::to_value(r).unwrap_or_else(|_| serde_json::Value::String(r.address.clone())),
        })
        .collect();
    serde_json::Value::Array(values).to_string()
}

/// The recipients an attempt sends to: every one not delivered yet (a failed one is tried again
/// only after an admin resends the message, which is what moves it out of the error queue).
pub fn to_send(recipients: &[Recipient]) -> impl Iterator<Item = (usize, &Recipient)> {
    recipients
        .iter()
        .enumerate()
        .filter(|(_, r)| r.state != RecipientState::Delivered)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepted_columns_read_as_pending_and_states_round_trip() {
        let read = parse(r#"["a@example.com", "b@example.com"]"#).unwrap();
        assert!(
            read.iter()
                .all(|r| r.state == RecipientState::Pending && r.reply.is_none())
        );
        assert_eq!(to_column(&read), r#"["a@example.com","b@example.com"]"#);
        let mut states = read;
        states[0].state = RecipientState::Delivered;
        states[1] = Recipient {
            address: "b@example.com".into(),
            state: RecipientState::Failed,
            reply: Some("550 5.1.1 no such user".into()),
        };
        let column = to_column(&states);
        assert_eq!(
            column,
            r#"[{"address":"a@example.com","state":"delivered"},{"address":"b@example.com","reply":"550 5.1.1 no such user","state":"failed"}]"#
        );
        assert_eq!(parse(&column).unwrap(), states);
        assert_eq!(to_send(&states).map(|(i, _)| i).collect::<Vec<_>>(), [1]);
        assert!(parse("{}").is_err());
    }
}
