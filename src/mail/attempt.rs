//! One delivery attempt of one message: what is sent (the message, to its recipients not delivered
//! yet), and what the relay's answer makes of each recipient and of the message.

use lettre::Address;
use lettre::message::Mailbox;

use super::message::ValidMail;
use super::raw::EnvelopeParams;
use super::recipients::{self, Recipient, RecipientState};
use super::smtp::{Outgoing, SendError, Sent};
use crate::store::ClaimedMail;

/// A claimed message ready to go: its recipients' states, which of them this attempt sends to, and
/// the message.
pub(super) struct Prepared {
    pub recipients: Vec<Recipient>,
    /// Indexes into `recipients`, in the order of `outgoing.to`.
    pub sending: Vec<usize>,
    pub outgoing: Outgoing,
}

/// What one attempt came to, before the retry policy is applied.
pub(super) struct Attempt {
    pub claimed: ClaimedMail,
    /// The recipients' states before the attempt (empty when the message could not be read).
    pub recipients: Vec<Recipient>,
    pub sending: Vec<usize>,
    pub result: Result<Sent, SendError>,
}

/// What the attempt means for the message as a whole.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Outcome {
    /// Every recipient has it: the message leaves the queue.
    Delivered,
    /// Some recipients were refused for now (4xx): they wait for a retry; `recipients` is the new
    /// column, with those already delivered marked so.
    Deferred { recipients: String, error: String },
    /// Nobody waits any more but some recipients were refused for good (5xx): the message goes to the
    /// error queue for them alone.
    Refused { recipients: String, error: String },
    /// The message as a whole was not taken.
    Failed(SendError),
}

fn unreadable(e: impl std::fmt::Display) -> SendError {
    SendError::Permanent(format!("stored message is unreadable: {e}"))
}

/// The bare address of a stored recipient (a JSON submission stores `Name <addr>` forms).
fn address(stored: &str) -> Result<Address, SendError> {
    stored
        .parse::<Address>()
        .or_else(|_| stored.parse::<Mailbox>().map(|m| m.email))
        .map_err(|e| unreadable(format!("{stored}: {e}")))
}

/// The message of a claimed row, as it goes to the relay: a complete message as received, or a JSON
/// submission rendered the same way on every attempt; addressed to the recipients not yet delivered.
pub(super) fn prepare(claimed: &mut ClaimedMail) -> Result<Prepared, SendError> {
    let recipients = recipients::parse(&claimed.recipients).map_err(unreadable)?;
    // The message moves into the attempt: a row is claimed for one attempt, and its content may be
    // megabytes.
    let (from, params, bytes) = match claimed.raw.take() {
        Some(raw) => {
            let from = (!claimed.envelope_from.is_empty())
                .then(|| address(&claimed.envelope_from))
                .transpose()?;
            (from, EnvelopeParams::from_column(&claimed.envelope_params), raw)
        }
        None => {
            let mail: ValidMail = serde_json::from_str(&claimed.content).map_err(unreadable)?;
            let (envelope, bytes) = mail
                .render(&claimed.id, claimed.created_at)
                .map_err(|e| SendError::Permanent(e.to_string()))?;
            (envelope.from().cloned(), EnvelopeParams::default(), bytes)
        }
    };
    let sending: Vec<usize> = recipients::to_send(&recipients).map(|(i, _)| i).collect();
    let to = sending
        .iter()
        .map(|&i| address(&recipients[i].address))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Prepared {
        recipients,
        sending,
        outgoing: Outgoing {
            from,
            to,
            params,
            bytes,
        },
    })
}

/// What the relay's answer makes of the message and each recipient.
pub(super) fn outcome(attempt: &Attempt) -> Outcome {
    let sent = match &attempt.result {
        Ok(sent) => sent,
        Err(e) => return Outcome::Failed(e.clone()),
    };
    let mut recipients = attempt.recipients.clone();
    for &i in &attempt.sending {
        if let Some(r) = recipients.get_mut(i) {
            r.state = RecipientState::Delivered;
            r.reply = None;
        }
    }
    for (position, refusal) in &sent.refused {
        let Some(r) = attempt.sending.get(*position).and_then(|&i| recipients.get_mut(i)) else {
            continue;
        };
        r.state = match refusal {
            SendError::Permanent(_) => RecipientState::Failed,
            _ => RecipientState::Pending,
        };
        r.reply = Some(refusal.text().to_owned());
    }
    let waiting = |state| recipients.iter().filter(|r| r.state == state).count();
    let (pending, failed) = (waiting(RecipientState::Pending), waiting(RecipientState::Failed));
    if pending == 0 && failed == 0 {
        return Outcome::Delivered;
    }
    let first = recipients
        .iter()
        .find(|r| r.state != RecipientState::Delivered && r.reply.is_some())
        .or_else(|| recipients.iter().find(|r| r.state != RecipientState::Delivered));
    let error = match first {
        Some(r) => format!(
            "{} of {} recipients not delivered; {}: {}",
            pending + failed,
            recipients.len(),
            r.address,
            r.reply.as_deref().unwrap_or("not tried")
        ),
        None => String::new(),
    };
    let column = recipients::to_column(&recipients);
    if pending > 0 {
        Outcome::Deferred {
            recipients: column,
            error,
        }
    } else {
        Outcome::Refused {
            recipients: column,
            error,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claimed(recipients: &str) -> ClaimedMail {
        ClaimedMail {
            id: "0190".into(),
            content: String::new(),
            raw: Some(b"Subject: s\r\n\r\nbody\r\n".to_vec()),
            envelope_from: "a@example.com".into(),
            recipients: recipients.into(),
            envelope_params: "8BITMIME".into(),
            created_at: 0,
            attempts: 0,
        }
    }

    fn attempt(recipients: &str, result: Result<Sent, SendError>) -> Attempt {
        let mut claimed = claimed(recipients);
        let prepared = prepare(&mut claimed).unwrap();
        Attempt {
            claimed,
            recipients: prepared.recipients,
            sending: prepared.sending,
            result,
        }
    }

    #[test]
    fn only_recipients_not_yet_delivered_are_sent_to() {
        let column = r#"[{"address":"b@example.com","state":"delivered"},"c@example.com",
            {"address":"d@example.com","state":"failed","reply":"550 no"}]"#;
        let prepared = prepare(&mut claimed(column)).unwrap();
        assert_eq!(prepared.sending, [1, 2]);
        let to: Vec<String> = prepared.outgoing.to.iter().map(ToString::to_string).collect();
        assert_eq!(to, ["c@example.com", "d@example.com"]);
        assert!(prepared.outgoing.params.body_8bit);
        assert_eq!(
            prepared.outgoing.from.map(|a| a.to_string()).as_deref(),
            Some("a@example.com")
        );
    }

    #[test]
    fn refused_recipients_alone_wait_or_fail() {
        let three = r#"["b@example.com","c@example.com","d@example.com"]"#;
        let all = attempt(three, Ok(Sent { refused: vec![] }));
        assert_eq!(outcome(&all), Outcome::Delivered);

        let one_5xx = attempt(
            three,
            Ok(Sent {
                refused: vec![(1, SendError::Permanent("550 5.1.1 unknown".into()))],
            }),
        );
        let Outcome::Refused { recipients, error } = outcome(&one_5xx) else {
            panic!("a 5xx for one recipient sends the message to the error queue for it alone")
        };
        let states = recipients::parse(&recipients).unwrap();
        let summary: Vec<_> = states.iter().map(|r| r.state.as_str()).collect();
        assert_eq!(summary, ["delivered", "failed", "delivered"]);
        assert_eq!(
            error,
            "1 of 3 recipients not delivered; c@example.com: 550 5.1.1 unknown"
        );

        let one_4xx = attempt(
            three,
            Ok(Sent {
                refused: vec![
                    (0, SendError::Transient("450 busy".into())),
                    (2, SendError::Permanent("550 no".into())),
                ],
            }),
        );
        let Outcome::Deferred { recipients, .. } = outcome(&one_4xx) else {
            panic!("a 4xx keeps the recipient waiting")
        };
        let states = recipients::parse(&recipients).unwrap();
        let summary: Vec<_> = states.iter().map(|r| r.state.as_str()).collect();
        assert_eq!(summary, ["pending", "delivered", "failed"]);

        let failed = attempt(three, Err(SendError::Transient("421 closing".into())));
        assert_eq!(
            outcome(&failed),
            Outcome::Failed(SendError::Transient("421 closing".into()))
        );
    }
}
