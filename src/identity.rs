//! Who someone is and what things are called: user names, roles, integration names.
//!
//! The store saves them and `auth` decides with them, so they sit below both: `auth` uses the store, and the
//! store must not need `auth` to read a row. `auth` re-exports them, the name most code uses.

use std::fmt;
use std::str::FromStr;

/// What a user may do. An admin may do everything a monitor may.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Everything: configuration, users, tokens, mail administration.
    Admin,
    /// Read-only access to the monitoring endpoints.
    Monitor,
    /// May submit mail (`POST /api/v1/mail`) and nothing else: for applications that send mail.
    Mail,
    /// May post events (`POST /api/v1/events`, `POST /api/v1/alertmanager/{integration}`) and nothing
    /// else: for Alertmanager, scanners, CI and scripts that open Jira issues.
    Events,
}

#[derive(Debug, thiserror::Error)]
#[error("unknown role `{0}`: expected `admin`, `monitor`, `mail` or `events`")]
pub struct UnknownRole(String);

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Monitor => "monitor",
            Role::Mail => "mail",
            Role::Events => "events",
        }
    }

    /// Whether a holder of this role may act where `required` is needed.
    pub fn satisfies(self, required: Role) -> bool {
        match required {
            Role::Admin => self == Role::Admin,
            Role::Monitor => matches!(self, Role::Admin | Role::Monitor),
            Role::Mail => matches!(self, Role::Admin | Role::Mail),
            Role::Events => matches!(self, Role::Admin | Role::Events),
        }
    }

    /// Whether the role is for an application that only posts through the API (mail, events): such
    /// users cannot sign in to the console.
    pub fn api_only(self) -> bool {
        matches!(self, Role::Mail | Role::Events)
    }
}

impl FromStr for Role {
    type Err = UnknownRole;
    fn from_str(s: &str) -> Result<Self, UnknownRole> {
        match s {
            "admin" => Ok(Role::Admin),
            "monitor" => Ok(Role::Monitor),
            "mail" => Ok(Role::Mail),
            "events" => Ok(Role::Events),
            other => Err(UnknownRole(other.to_owned())),
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A user name: 1 to 64 characters from `A-Z a-z 0-9 . _ @ -`, so it is safe in Basic
/// authentication (no `:`), in URLs and in logs.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Username(String);

#[derive(Debug, thiserror::Error)]
pub enum InvalidUsername {
    #[error("a user name must be 1 to 64 characters long")]
    Length,
    #[error("a user name may contain only letters A-Z and a-z, digits, `.`, `_`, `@` and `-` (found {0:?})")]
    Character(char),
}

impl TryFrom<&str> for Username {
    type Error = InvalidUsername;
    fn try_from(s: &str) -> Result<Self, InvalidUsername> {
        if s.is_empty() || s.chars().count() > 64 {
            return Err(InvalidUsername::Length);
        }
        if let Some(c) = s
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '@' | '-')))
        {
            return Err(InvalidUsername::Character(c));
        }
        Ok(Username(s.to_owned()))
    }
}

impl Username {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Username {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames_are_validated() {
        assert!(Username::try_from("admin").is_ok());
        assert!(Username::try_from("svc.jira-bot@corp_1").is_ok());
        assert!(matches!(Username::try_from(""), Err(InvalidUsername::Length)));
        assert!(matches!(
            Username::try_from(&*"a".repeat(65)),
            Err(InvalidUsername::Length)
        ));
        assert!(matches!(
            Username::try_from("a:b"),
            Err(InvalidUsername::Character(':'))
        ));
        assert!(matches!(
            Username::try_from("a b"),
            Err(InvalidUsername::Character(' '))
        ));
    }

    #[test]
    fn admin_satisfies_monitor_but_not_the_reverse() {
        assert!(Role::Admin.satisfies(Role::Monitor));
        assert!(Role::Admin.satisfies(Role::Admin));
        assert!(Role::Monitor.satisfies(Role::Monitor));
        assert!(!Role::Monitor.satisfies(Role::Admin));
        assert!(Role::Admin.satisfies(Role::Mail));
        assert!(Role::Mail.satisfies(Role::Mail));
        assert!(!Role::Mail.satisfies(Role::Monitor));
        assert!(!Role::Monitor.satisfies(Role::Mail));
        assert!(Role::Admin.satisfies(Role::Events));
        assert!(Role::Events.satisfies(Role::Events));
        assert!(!Role::Events.satisfies(Role::Mail));
        assert!(!Role::Events.satisfies(Role::Monitor));
        assert!(!Role::Mail.satisfies(Role::Events));
        assert!(!Role::Monitor.satisfies(Role::Events));
        assert_eq!("events".parse::<Role>().unwrap(), Role::Events);
        assert!(Role::Events.api_only() && Role::Mail.api_only() && !Role::Monitor.api_only());
        assert_eq!("monitor".parse::<Role>().unwrap(), Role::Monitor);
        assert!("root".parse::<Role>().is_err());
    }
}

/// An integration's name as the admin chose it: 1–128 printable characters, unique, case-sensitive.
/// Here, below the services, because both the integrations and the ticket events name integrations.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct IntegrationName(String);

impl IntegrationName {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for IntegrationName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<&str> for IntegrationName {
    type Error = InvalidIntegrationName;
    fn try_from(s: &str) -> Result<Self, InvalidIntegrationName> {
        let count = s.chars().count();
        if count == 0 || count > 128 {
            return Err(InvalidIntegrationName("must be 1 to 128 characters long"));
        }
        if s.chars().any(char::is_control) {
            return Err(InvalidIntegrationName("must contain only printable characters"));
        }
        if s == "." || s == ".." {
            return Err(InvalidIntegrationName(
                "must not be `.` or `..` (they cannot appear in a URL path)",
            ));
        }
        if s.trim() != s {
            return Err(InvalidIntegrationName("must not start or end with white space"));
        }
        Ok(Self(s.to_owned()))
    }
}

/// Why a text cannot be an integration's name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidIntegrationName(pub &'static str);
