//! AUTH (RFC 4954) with the PLAIN (RFC 4616) and LOGIN mechanisms, checked by the same
//! [`Authenticator`] as HTTP's Basic authentication: the same users, passwords or API tokens in the
//! password's place, the same credential cache and the same throttling of password guessing.
//!
//! - **Where AUTH is offered.** Over TLS, or from a loopback client (the password never leaves the
//!   machine). Elsewhere, before STARTTLS, AUTH is answered `538 5.7.11` and not advertised: a
//!   password sent in clear over a network is a password given away.
//! - **Who may submit.** A user whose role satisfies `mail` (`mail` or `admin`). Right credentials
//!   of another role (`monitor`) are refused at AUTH itself, `535 5.7.8` with a text that says why,
//!   so the client stays unauthenticated and the operator sees the cause in its error.
//! - **Replies.** Wrong credentials `535 5.7.8`; throttled `454 4.7.0` with the wait; the database
//!   unreachable `454 4.7.0` (temporary: the client may try again).

use std::net::IpAddr;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use super::reply::Reply;
use crate::auth::{AuthError, Authenticator, Credentials, Principal, Role};
use crate::secret::Secret;

/// The SASL mechanisms Herald offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Mechanism {
    Plain,
    Login,
}

impl Mechanism {
    pub fn from_smtp_proto(mechanism: u64) -> Option<Mechanism> {
        match mechanism {
            smtp_proto::AUTH_PLAIN => Some(Mechanism::Plain),
            smtp_proto::AUTH_LOGIN => Some(Mechanism::Login),
            _ => None,
        }
    }
}

/// Whether AUTH may be used on this connection: over TLS, or from the machine itself.
pub(super) fn allowed(tls: bool, client: IpAddr) -> bool {
    tls || client.to_canonical().is_loopback()
}

/// Why a SASL response could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum SaslError {
    /// The client answered `*`.
    Cancelled,
    /// Not base64, not UTF-8, or not the mechanism's shape.
    Malformed,
}

impl SaslError {
    pub fn reply(self) -> Reply {
        match self {
            SaslError::Cancelled => Reply::new(501, "5.0.0", "Authentication cancelled"),
            SaslError::Malformed => Reply::new(501, "5.5.2", "Cannot decode the authentication response"),
        }
    }
}

/// A base64 SASL response, decoded as UTF-8 text (`=` is the empty response).
pub(super) fn decode(response: &str) -> Result<String, SaslError> {
    let response = response.trim();
    if response == "*" {
        return Err(SaslError::Cancelled);
    }
    if response == "=" {
        return Ok(String::new());
    }
    let bytes = STANDARD.decode(response).map_err(|_| SaslError::Malformed)?;
    String::from_utf8(bytes).map_err(|_| SaslError::Malformed)
}

/// PLAIN's `authzid NUL authcid NUL password`. An authorization identity other than the user's own
/// is refused: Herald has no proxy users.
pub(super) fn plain_credentials(decoded: &str) -> Result<(String, Secret), SaslError> {
    let mut parts = decoded.splitn(3, '\0');
    let (Some(authzid), Some(user), Some(password)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(SaslError::Malformed);
    };
    if user.is_empty() || (!authzid.is_empty() && authzid != user) {
        return Err(SaslError::Malformed);
    }
    Ok((user.to_owned(), Secret::new(password)))
}

/// The outcome of checking credentials: the principal, or the reply that refuses them.
pub(super) async fn check(
    authenticator: &Authenticator,
    client: IpAddr,
    username: String,
    password: Secret,
) -> Result<Principal, Refused> {
    let credentials = Credentials::Basic { username, password };
    match authenticator.authenticate(client, &credentials).await {
        Ok((principal, _)) if principal.role.satisfies(Role::Mail) => Ok(principal),
        Ok((principal, _)) => Err(Refused::Role(principal.username.to_string(), principal.role)),
        Err(AuthError::Invalid) => Err(Refused::Invalid),
        Err(AuthError::Throttled { retry_after }) => Err(Refused::Throttled(retry_after.as_secs().max(1))),
        Err(AuthError::Store(e)) => {
            tracing::warn!(error = %e, "SMTP AUTH: cannot check credentials");
            Err(Refused::Unavailable)
        }
    }
}

/// Why credentials were refused.
#[derive(Debug)]
pub(super) enum Refused {
    Invalid,
    /// Right credentials of a user whose role may not submit mail.
    Role(String, Role),
    /// Too many failures: seconds to wait.
    Throttled(u64),
    Unavailable,
}

impl Refused {
    pub fn reply(&self) -> Reply {
        match self {
            Refused::Invalid => Reply::new(535, "5.7.8", "Authentication credentials invalid"),
            Refused::Role(user, role) => Reply::new(
                535,
                "5.7.8",
                format!("Authentication refused: user {user} has the role {role}, which may not submit mail"),
            ),
            Refused::Throttled(seconds) => Reply::new(
                454,
                "4.7.0",
                format!("Too many failed authentication attempts; try again in {seconds} s"),
            ),
            Refused::Unavailable => Reply::new(454, "4.7.0", "Temporary authentication failure; try again later"),
        }
    }
}

/// `334` with LOGIN's prompts, base64 of `Username:` and `Password:`.
pub(super) const LOGIN_USERNAME: &str = "VXNlcm5hbWU6";
pub(super) const LOGIN_PASSWORD: &str = "UGFzc3dvcmQ6";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auth_is_allowed_over_tls_or_from_loopback_only() {
        let remote: IpAddr = "192.0.2.7".parse().unwrap();
        assert!(!allowed(false, remote));
        assert!(allowed(true, remote));
        assert!(allowed(false, "127.0.0.1".parse().unwrap()));
        assert!(allowed(false, "::1".parse().unwrap()));
        assert!(allowed(false, "::ffff:127.0.0.1".parse().unwrap()));
        assert!(!allowed(false, "::ffff:192.0.2.7".parse().unwrap()));
    }

    #[test]
    fn plain_gives_user_and_password() {
        let decoded = decode(&STANDARD.encode("\0jira\0s3cret")).unwrap();
        let (user, password) = plain_credentials(&decoded).unwrap();
        assert_eq!(user, "jira");
        assert_eq!(password.expose(), "s3cret");
        let same_authzid = decode(&STANDARD.encode("jira\0jira\0pw:with\0nul")).unwrap();
        assert_eq!(plain_credentials(&same_authzid).unwrap().1.expose(), "pw:with\0nul");
    }

    #[test]
    fn plain_refuses_another_identity_and_bad_shapes() {
        assert_eq!(plain_credentials("admin\0jira\0pw").unwrap_err(), SaslError::Malformed);
        assert_eq!(plain_credentials("\0\0pw").unwrap_err(), SaslError::Malformed);
        assert_eq!(plain_credentials("jira-only").unwrap_err(), SaslError::Malformed);
    }

    #[test]
    fn responses_decode_or_cancel() {
        assert_eq!(decode("*"), Err(SaslError::Cancelled));
        assert_eq!(decode("="), Ok(String::new()));
        assert_eq!(decode("not base64!"), Err(SaslError::Malformed));
        assert_eq!(decode(&STANDARD.encode([0xff, 0xfe])), Err(SaslError::Malformed));
        assert_eq!(decode(LOGIN_USERNAME).unwrap(), "Username:");
        assert_eq!(decode(LOGIN_PASSWORD).unwrap(), "Password:");
    }

    #[test]
    fn refusals_have_rfc_4954_codes() {
        assert_eq!(Refused::Invalid.reply().code, 535);
        assert_eq!(Refused::Role("bob".into(), Role::Monitor).reply().status, "5.7.8");
        assert!(
            String::from_utf8(Refused::Throttled(42).reply().to_bytes())
                .unwrap()
                .contains("try again in 42 s")
        );
        assert_eq!(Refused::Unavailable.reply().code, 454);
    }
}
