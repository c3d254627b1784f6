//! One SMTP session, as a state machine driven by the client's commands: greeting, EHLO/HELO,
//! STARTTLS, AUTH, then any number of mail transactions (in `transaction`), until QUIT, an error
//! limit, a timeout, the client leaving, or shutdown.
//!
//! The order rules (RFC 5321 §4.1.4, RFC 2920, RFC 3207, RFC 4954) are checked here:
//! - EHLO/HELO first; MAIL needs it, RCPT needs MAIL, DATA needs RCPT; otherwise `503 5.5.1`.
//! - EHLO, HELO, STARTTLS, AUTH and DATA must end a pipelined group (the client waits for their
//!   reply): input already buffered after them is a protocol error, answered `554 5.5.0` and closed.
//!   After STARTTLS this is what keeps plaintext injected before the handshake out (CVE-2011-0411).
//! - STARTTLS forgets everything (EHLO, AUTH, transaction), as RFC 3207 §4.2 requires.
//! - Every refusal counts; at `HERALD_SMTP_MAX_ERRORS` the session is closed with `421 4.7.0`
//!   (except `452` for recipients over the limit, which is flow control, not an error).

use std::net::IpAddr;
use std::sync::Arc;

use smtp_proto::{Error as ParseError, Request};

use super::auth::{self, Mechanism, SaslError};
use super::conn::{Conn, Line, ReadError};
use super::reply::{self, Reply, echo};
use super::transaction::Transaction;
use super::{Shared, stopped};
use crate::auth::Principal;
use crate::metrics::SmtpRejection;

/// RFC 5321 §4.5.3.1.4: a command line, with its CRLF.
pub(super) const MAX_COMMAND: usize = 512;
/// RFC 4954 §4: an AUTH command or response line.
const MAX_AUTH_LINE: usize = 12288;

/// Whether the session goes on after a command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Flow {
    Continue,
    Close,
}

pub(super) struct Helo {
    pub name: String,
    /// EHLO (true) or HELO.
    pub esmtp: bool,
}

pub(super) struct Session {
    pub conn: Conn,
    pub shared: Arc<Shared>,
    pub client: IpAddr,
    /// Names the session in logs and trace headers.
    pub id: String,
    pub transactions: u32,
    pub helo: Option<Helo>,
    pub principal: Option<Principal>,
    pub tx: Option<Transaction>,
    errors: u32,
}

impl Session {
    pub fn new(conn: Conn, shared: Arc<Shared>, client: IpAddr) -> Session {
        let id = uuid::Uuid::new_v4().simple().to_string()[..12].to_owned();
        Session {
            conn,
            shared,
            client: client.to_canonical(),
            id,
            transactions: 0,
            helo: None,
            principal: None,
            tx: None,
            errors: 0,
        }
    }

    /// Greets the client and serves its commands until the session ends.
    pub async fn run(mut self) {
        if !self.shared.state.cluster.accepts_work() {
            self.shared.state.metrics.smtp.rejected(SmtpRejection::Draining);
            let reply = reply::draining(self.shared.state.node_id.as_str());
            self.conn.close_with(&reply).await;
            return;
        }
        if self.conn.has_spoken(self.shared.settings.greet_wait).await {
            self.shared.state.metrics.smtp.rejected(SmtpRejection::Pregreet);
            tracing::debug!(client = %self.client, "SMTP client spoke before the greeting");
            self.conn.close_with(&reply::pregreet()).await;
            return;
        }
        self.conn
            .queue(&Reply::bare(220, format!("{} Herald ESMTP", self.shared.hostname)));
        let mut stop = self.shared.stop.clone();
        loop {
            let timeout = self.shared.settings.command_timeout;
            let line = tokio::select! {
                biased;
                () = stopped(&mut stop) => {
                    self.conn.close_with(&reply::shutting_down()).await;
                    return;
                }
                line = self.conn.read_line(MAX_AUTH_LINE, timeout) => line,
            };
            let flow = match line {
                Err(ReadError::Timeout) => {
                    self.shared.state.metrics.smtp.rejected(SmtpRejection::Timeout);
                    self.conn.close_with(&reply::timeout()).await;
                    return;
                }
                Err(ReadError::Closed) => return,
                Ok(Line::TooLong) => self.respond(reply::line_too_long(), Some(SmtpRejection::LineTooLong)),
                Ok(Line::Complete(line)) if line.len() + 2 > MAX_COMMAND && !is_auth(&line) => {
                    self.respond(reply::line_too_long(), Some(SmtpRejection::LineTooLong))
                }
                Ok(Line::Complete(line)) => self.command(line).await,
            };
            if flow == Flow::Close {
                self.conn.close().await;
                return;
            }
        }
    }

    /// Queues a reply, counts a refusal, and closes the session at the error limit.
    pub fn respond(&mut self, reply: Reply, rejection: Option<SmtpRejection>) -> Flow {
        self.conn.queue(&reply);
        if let Some(rejection) = rejection {
            self.shared.state.metrics.smtp.rejected(rejection);
        }
        if reply.is_error() && reply.code != 452 {
            self.errors += 1;
            if self.errors >= self.shared.settings.max_errors {
                self.shared.state.metrics.smtp.rejected(SmtpRejection::TooManyErrors);
                self.conn.queue(&reply::too_many_errors());
                return Flow::Close;
            }
        }
        Flow::Continue
    }

    /// Refuses a command that must end a pipelined group but has input after it.
    pub(super) fn pipelined_after(&mut self, command: &str) -> Option<Flow> {
        if !self.conn.has_input() {
            return None;
        }
        self.shared.state.metrics.smtp.rejected(SmtpRejection::Pipelining);
        self.conn.queue(&reply::pipelining(command));
        Some(Flow::Close)
    }

    async fn command(&mut self, mut line: Vec<u8>) -> Flow {
        line.extend_from_slice(b"\r\n");
        let request = match Request::parse(&mut line.iter()) {
            Ok(request) => request.into_owned(),
            Err(e) => return self.respond(parse_error(e), Some(SmtpRejection::Syntax)),
        };
        match request {
            Request::Ehlo { host } => self.hello(host, true),
            Request::Helo { host } => self.hello(host, false),
            Request::Mail { from } => self.mail(from),
            Request::Rcpt { to } => self.rcpt(to),
            Request::Data => self.data().await,
            Request::Auth {
                mechanism,
                initial_response,
            } => self.auth(mechanism, initial_response).await,
            Request::StartTls => self.start_tls().await,
            Request::Rset => {
                self.tx = None;
                self.respond(reply::ok(), None)
            }
            Request::Noop { .. } => self.respond(reply::ok(), None),
            Request::Quit => {
                self.conn.queue(&Reply::new(221, "2.0.0", "Bye"));
                Flow::Close
            }
            Request::Vrfy { .. } => self.respond(
                Reply::new(252, "2.5.0", "Cannot VRFY a user, but will take mail for it"),
                None,
            ),
            Request::Help { .. } => self.respond(
                Reply::new(
                    214,
                    "2.0.0",
                    "Commands: EHLO HELO STARTTLS AUTH MAIL RCPT DATA RSET NOOP VRFY HELP QUIT",
                ),
                None,
            ),
            other => {
                let name = other.name();
                self.respond(reply::not_implemented(name), Some(SmtpRejection::Syntax))
            }
        }
    }

    fn hello(&mut self, host: String, esmtp: bool) -> Flow {
        if let Some(flow) = self.pipelined_after(if esmtp { "EHLO" } else { "HELO" }) {
            return flow;
        }
        self.tx = None;
        let greeting = format!("{} Herald", self.shared.hostname);
        self.helo = Some(Helo { name: host, esmtp });
        if !esmtp {
            return self.respond(Reply::bare(250, greeting), None);
        }
        let mut lines: Vec<std::borrow::Cow<'static, str>> = vec![
            greeting.into(),
            "PIPELINING".into(),
            format!("SIZE {}", self.shared.max_size).into(),
            "8BITMIME".into(),
            "ENHANCEDSTATUSCODES".into(),
        ];
        if self.shared.tls.is_some() && !self.conn.is_tls() {
            lines.push("STARTTLS".into());
        }
        if auth::allowed(self.conn.is_tls(), self.client) {
            lines.push("AUTH PLAIN LOGIN".into());
        }
        lines.push("SMTPUTF8".into());
        self.respond(
            Reply {
                code: 250,
                status: "",
                lines,
            },
            None,
        )
    }

    async fn start_tls(&mut self) -> Flow {
        let Some(acceptor) = self.shared.tls.clone() else {
            return self.respond(reply::not_implemented("STARTTLS"), Some(SmtpRejection::Syntax));
        };
        if self.conn.is_tls() {
            return self.respond(
                reply::out_of_order("TLS is already active"),
                Some(SmtpRejection::Syntax),
            );
        }
        if let Some(flow) = self.pipelined_after("STARTTLS") {
            return flow;
        }
        self.conn.queue(&Reply::new(220, "2.0.0", "Ready to start TLS"));
        if let Err(e) = self
            .conn
            .start_tls(&acceptor, self.shared.settings.command_timeout)
            .await
        {
            tracing::debug!(client = %self.client, error = %e, "SMTP STARTTLS handshake failed");
            return Flow::Close;
        }
        self.shared
            .state
            .metrics
            .smtp
            .tls_established(crate::metrics::SmtpTlsMode::StartTls);
        self.helo = None;
        self.principal = None;
        self.tx = None;
        Flow::Continue
    }

    async fn auth(&mut self, mechanism: u64, initial: String) -> Flow {
        if self.helo.as_ref().is_none_or(|helo| !helo.esmtp) {
            return self.respond(reply::out_of_order("Send EHLO first"), Some(SmtpRejection::Syntax));
        }
        if self.principal.is_some() {
            return self.respond(
                reply::out_of_order("Already authenticated"),
                Some(SmtpRejection::Syntax),
            );
        }
        if self.tx.is_some() {
            return self.respond(
                reply::out_of_order("AUTH is not allowed during a mail transaction"),
                Some(SmtpRejection::Syntax),
            );
        }
        if !auth::allowed(self.conn.is_tls(), self.client) {
            return self.respond(reply::encryption_required(), Some(SmtpRejection::AuthFailed));
        }
        let Some(mechanism) = Mechanism::from_smtp_proto(mechanism) else {
            return self.respond(
                Reply::new(504, "5.5.4", "Unrecognized authentication type; use PLAIN or LOGIN"),
                Some(SmtpRejection::Syntax),
            );
        };
        if let Some(flow) = self.pipelined_after("AUTH") {
            return flow;
        }
        let credentials = match self.sasl_exchange(mechanism, initial).await {
            Ok(credentials) => credentials,
            Err(Exchange::Client(e)) => return self.respond(e.reply(), Some(SmtpRejection::Syntax)),
            Err(Exchange::Ended(flow)) => return flow,
        };
        let (username, password) = credentials;
        // On the server's runtime: the check reads the database and hashes on the blocking pool.
        let authenticator = self.shared.state.authenticator.clone();
        let client = self.client;
        let checked = self
            .shared
            .services
            .spawn(async move { auth::check(&authenticator, client, username, password).await })
            .await
            .unwrap_or(Err(auth::Refused::Unavailable));
        match checked {
            Ok(principal) => {
                tracing::debug!(client = %self.client, user = %principal.username, "SMTP AUTH succeeded");
                self.principal = Some(principal);
                self.respond(Reply::new(235, "2.7.0", "Authentication successful"), None)
            }
            Err(refused) => {
                self.shared.state.metrics.smtp.auth_failed();
                let reason = match refused {
                    auth::Refused::Throttled(_) => SmtpRejection::Throttled,
                    auth::Refused::Unavailable => SmtpRejection::Storage,
                    _ => SmtpRejection::AuthFailed,
                };
                self.respond(refused.reply(), Some(reason))
            }
        }
    }

    /// Reads the user name and password of PLAIN or LOGIN, asking with `334` for what the AUTH
    /// command did not carry.
    async fn sasl_exchange(
        &mut self,
        mechanism: Mechanism,
        initial: String,
    ) -> Result<(String, crate::secret::Secret), Exchange> {
        match mechanism {
            Mechanism::Plain => {
                let response = match initial.is_empty() {
                    true => self.challenge("").await?,
                    false => initial,
                };
                let decoded = auth::decode(&response).map_err(Exchange::Client)?;
                auth::plain_credentials(&decoded).map_err(Exchange::Client)
            }
            Mechanism::Login => {
                let user = match initial.is_empty() {
                    true => self.challenge(auth::LOGIN_USERNAME).await?,
                    false => initial,
                };
                let user = auth::decode(&user).map_err(Exchange::Client)?;
                if user.is_empty() {
                    return Err(Exchange::Client(SaslError::Malformed));
                }
                let password = self.challenge(auth::LOGIN_PASSWORD).await?;
                let password = auth::decode(&password).map_err(Exchange::Client)?;
                Ok((user, crate::secret::Secret::new(password)))
            }
        }
    }

    /// Sends `334 <challenge>` and reads the client's response line.
    async fn challenge(&mut self, challenge: &'static str) -> Result<String, Exchange> {
        self.conn.queue(&Reply::bare(334, challenge));
        match self
            .conn
            .read_line(MAX_AUTH_LINE, self.shared.settings.command_timeout)
            .await
        {
            Ok(Line::Complete(line)) => String::from_utf8(line).map_err(|_| Exchange::Client(SaslError::Malformed)),
            Ok(Line::TooLong) => Err(Exchange::Ended(
                self.respond(reply::line_too_long(), Some(SmtpRejection::LineTooLong)),
            )),
            Err(ReadError::Timeout) => {
                self.shared.state.metrics.smtp.rejected(SmtpRejection::Timeout);
                self.conn.queue(&reply::timeout());
                Err(Exchange::Ended(Flow::Close))
            }
            Err(ReadError::Closed) => Err(Exchange::Ended(Flow::Close)),
        }
    }
}

/// How a SASL exchange ended without credentials.
enum Exchange {
    /// The client's response was refused (cancelled, malformed).
    Client(SaslError),
    /// The session already answered (or is over).
    Ended(Flow),
}

/// Whether a command line is AUTH, which may be longer than other commands (RFC 4954 §4).
fn is_auth(line: &[u8]) -> bool {
    line.get(..5).is_some_and(|head| head.eq_ignore_ascii_case(b"AUTH "))
}

/// The reply to a line smtp-proto could not parse.
fn parse_error(error: ParseError) -> Reply {
    match error {
        ParseError::UnknownCommand => Reply::new(500, "5.5.2", "Command not recognized"),
        ParseError::SyntaxError { syntax } => Reply::new(501, "5.5.4", format!("Syntax: {syntax}")),
        ParseError::InvalidSenderAddress => Reply::new(501, "5.1.7", "Bad sender address syntax"),
        ParseError::InvalidRecipientAddress => Reply::new(501, "5.1.3", "Bad recipient address syntax"),
        ParseError::InvalidParameter { param } => {
            Reply::new(501, "5.5.4", format!("Invalid value for the parameter {}", echo(param)))
        }
        ParseError::UnsupportedParameter { param } => {
            Reply::new(555, "5.5.4", format!("Unsupported parameter {}", echo(&param)))
        }
        ParseError::ResponseTooLong => reply::line_too_long(),
        ParseError::NeedsMoreData { .. } | ParseError::InvalidResponse { .. } => {
            Reply::new(500, "5.5.2", "Syntax error")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(line: &str) -> Result<Request<String>, Reply> {
        let bytes = line.as_bytes().to_vec();
        Request::parse(&mut bytes.iter())
            .map(|r| r.into_owned())
            .map_err(parse_error)
    }

    #[test]
    fn commands_parse_and_bad_ones_get_precise_replies() {
        assert!(matches!(parse("EHLO client.example\r\n"), Ok(Request::Ehlo { .. })));
        assert!(
            matches!(parse("mail from:<a@b.example> SIZE=100\r\n"), Ok(Request::Mail { from }) if from.size == 100)
        );
        assert_eq!(parse("FOO bar\r\n").unwrap_err().code, 500);
        let bad_mail = parse("MAIL FROM a@b\r\n").unwrap_err();
        assert_eq!((bad_mail.code, bad_mail.status), (501, "5.5.4"));
        assert!(
            String::from_utf8(bad_mail.to_bytes())
                .unwrap()
                .contains("MAIL FROM:<reverse-path>")
        );
        assert_eq!(parse("RCPT TO:<a@@b>\r\n").unwrap_err().status, "5.1.3");
        assert_eq!(parse("MAIL FROM:<a@b> FOO=1\r\n").unwrap_err().code, 555);
        assert_eq!(parse("EHLO\r\n").unwrap_err().code, 501);
    }

    #[test]
    fn only_auth_may_exceed_the_command_line_limit() {
        assert!(is_auth(b"AUTH PLAIN abc"));
        assert!(is_auth(b"auth login"));
        assert!(!is_auth(b"MAIL FROM:<x@y>"));
        assert!(!is_auth(b"AUTH"));
    }
}
