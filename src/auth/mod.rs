//! Users, roles, passwords, API tokens, the credential cache and login throttling.

mod accounts;
pub mod password;
mod throttle;
pub mod token;

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

pub use accounts::{AccountError, Accounts, BootstrapError, BootstrapPassword, CreatedToken, INITIAL_PASSWORD_FILE};
pub use password::PasswordHashing;
pub use throttle::Throttle;

use crate::secret::Secret;
use crate::store::{Store, StoreError, now_ms};

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
}

#[derive(Debug, thiserror::Error)]
#[error("unknown role `{0}`: expected `admin`, `monitor` or `mail`")]
pub struct UnknownRole(String);

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Monitor => "monitor",
            Role::Mail => "mail",
        }
    }

    /// Whether a holder of this role may act where `required` is needed.
    pub fn satisfies(self, required: Role) -> bool {
        match required {
            Role::Admin => self == Role::Admin,
            Role::Monitor => matches!(self, Role::Admin | Role::Monitor),
            Role::Mail => matches!(self, Role::Admin | Role::Mail),
        }
    }
}

impl FromStr for Role {
    type Err = UnknownRole;
    fn from_str(s: &str) -> Result<Self, UnknownRole> {
        match s {
            "admin" => Ok(Role::Admin),
            "monitor" => Ok(Role::Monitor),
            "mail" => Ok(Role::Mail),
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

/// Credentials as presented by a client.
pub enum Credentials {
    /// `Authorization: Basic`: a password, or an API token in the password's place.
    Basic { username: String, password: Secret },
    /// `Authorization: Bearer <token>`.
    Bearer(Secret),
}

impl Credentials {
    /// The name throttling counts failures under.
    fn principal(&self) -> &str {
        match self {
            Credentials::Basic { username, .. } => username,
            Credentials::Bearer(_) => "(bearer token)",
        }
    }

    /// Cache key: a digest of the whole credential, so the cache never holds a secret.
    fn cache_key(&self) -> [u8; 32] {
        let mut digest = Sha256::new();
        match self {
            Credentials::Basic { username, password } => {
                digest.update(b"basic\0");
                digest.update(username.as_bytes());
                digest.update(b"\0");
                digest.update(password.expose().as_bytes());
            }
            Credentials::Bearer(token) => {
                digest.update(b"bearer\0");
                digest.update(token.expose().as_bytes());
            }
        }
        digest.finalize().into()
    }
}

/// How a principal proved who they are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthMethod {
    Password,
    Token { id: String },
}

/// An authenticated caller.
#[derive(Debug, Clone)]
pub struct Principal {
    pub username: Username,
    pub role: Role,
    pub method: AuthMethod,
    /// When the credential stops being valid (tokens with an expiry), in ms since the epoch.
    pub expires_at: Option<i64>,
}

/// Whether a success came from the credential cache or from a full check against the database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verification {
    Cached,
    Checked,
}

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("the credentials are not valid")]
    Invalid,
    #[error("too many failed attempts; try again in {} s", retry_after.as_secs().max(1))]
    Throttled { retry_after: Duration },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Verifies credentials, with a short-lived cache of successes so that a monitoring client polling
/// with Basic authentication does not pay for an Argon2 hash on every request.
#[derive(Clone)]
pub struct Authenticator {
    store: Store,
    hashing: PasswordHashing,
    cache: Option<moka::future::Cache<[u8; 32], Principal>>,
    /// Bumped by every `invalidate_cache`: a credential verified across a change (its role or
    /// password read before the change, cached after it) is not cached.
    generation: Arc<std::sync::atomic::AtomicU64>,
    throttle: Arc<Throttle>,
}

impl Authenticator {
    pub fn new(store: Store, hashing: PasswordHashing, cache_ttl: Duration, throttle: Throttle) -> Self {
        let cache = (!cache_ttl.is_zero()).then(|| {
            moka::future::Cache::builder()
                .max_capacity(10_000)
                .time_to_live(cache_ttl)
                .build()
        });
        Self {
            store,
            hashing,
            cache,
            generation: Arc::new(std::sync::atomic::AtomicU64::new(0)),
            throttle: Arc::new(throttle),
        }
    }

    pub async fn authenticate(
        &self,
        client: IpAddr,
        credentials: &Credentials,
    ) -> Result<(Principal, Verification), AuthError> {
        let principal_name = credentials.principal();
        self.throttle
            .check(client, principal_name, Instant::now())
            .map_err(|retry_after| AuthError::Throttled { retry_after })?;
        let key = credentials.cache_key();
        if let Some(cache) = &self.cache {
            if let Some(principal) = cache.get(&key).await {
                if principal.expires_at.is_none_or(|at| at > now_ms()) {
                    return Ok((principal, Verification::Cached));
                }
                cache.invalidate(&key).await;
            }
        }
        let generation = self.generation.load(Ordering::Acquire);
        match self.verify(credentials).await? {
            Some(principal) => {
                self.throttle.record_success(client, principal_name);
                self.remember(key, &principal, generation).await;
                Ok((principal, Verification::Checked))
            }
            None => {
                self.throttle.record_failure(client, principal_name, Instant::now());
                Err(AuthError::Invalid)
            }
        }
    }

    /// Checks a password against the database, never the cache, for signing in to the console: a
    /// session outlives the cache, so it must not start from a password changed on another node a
    /// moment ago. Tokens are refused (a session would outlive the token's expiry or revocation).
    /// Failures are throttled like any other.
    pub async fn authenticate_password(
        &self,
        client: IpAddr,
        username: &str,
        password: &Secret,
    ) -> Result<Principal, AuthError> {
        self.throttle
            .check(client, username, Instant::now())
            .map_err(|retry_after| AuthError::Throttled { retry_after })?;
        let credentials = Credentials::Basic {
            username: username.to_owned(),
            password: password.clone(),
        };
        let verified = if token::looks_like_token(password.expose()) {
            None
        } else {
            self.verify(&credentials).await?
        };
        match verified {
            Some(principal) => {
                self.throttle.record_success(client, username);
                Ok(principal)
            }
            None => {
                self.throttle.record_failure(client, username, Instant::now());
                Err(AuthError::Invalid)
            }
        }
    }

    /// Caches a credential verified since `generation`, unless the cache was cleared meanwhile (the
    /// verification may have read a role or password that changed). Inserted, then checked again: a
    /// clear that lands between the check and the insert takes the entry out.
    async fn remember(&self, key: [u8; 32], principal: &Principal, generation: u64) {
        let Some(cache) = &self.cache else { return };
        if self.generation.load(Ordering::Acquire) != generation {
            return;
        }
        cache.insert(key, principal.clone()).await;
        if self.generation.load(Ordering::Acquire) != generation {
            cache.invalidate(&key).await;
        }
    }

    /// Forgets every cached credential; called after any change to users or tokens.
    pub fn invalidate_cache(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
        if let Some(cache) = &self.cache {
            cache.invalidate_all();
        }
    }

    async fn verify(&self, credentials: &Credentials) -> Result<Option<Principal>, StoreError> {
        match credentials {
            Credentials::Bearer(token) => self.verify_token(token, None).await,
            Credentials::Basic { username, password } if token::looks_like_token(password.expose()) => {
                self.verify_token(password, Some(username)).await
            }
            Credentials::Basic { username, password } => {
                if password.is_empty() || password.expose().len() > password::MAX_PASSWORD_BYTES {
                    return Ok(None);
                }
                let Some(user) = self.store.user_by_name(username).await? else {
                    self.hashing.verify_nobody(password).await;
                    return Ok(None);
                };
                if !self.hashing.verify(password, &user.password_hash).await {
                    return Ok(None);
                }
                Ok(Some(Principal {
                    username: user.username,
                    role: user.role,
                    method: AuthMethod::Password,
                    expires_at: None,
                }))
            }
        }
    }

    async fn verify_token(&self, secret: &Secret, username: Option<&str>) -> Result<Option<Principal>, StoreError> {
        let Some(found) = self.store.token_by_hash(&token::hash(secret)).await? else {
            return Ok(None);
        };
        let now = now_ms();
        if found.token.expires_at.is_some_and(|at| at <= now) {
            return Ok(None);
        }
        // With Basic, the user name must be the token owner's: a token is not a skeleton key.
        if username.is_some_and(|name| {
            !bool::from(subtle::ConstantTimeEq::ct_eq(
                name.as_bytes(),
                found.username.as_str().as_bytes(),
            ))
        }) {
            return Ok(None);
        }
        self.store.touch_token(&found.token.id, now).await?;
        Ok(Some(Principal {
            username: found.username,
            role: found.role,
            method: AuthMethod::Token { id: found.token.id },
            expires_at: found.token.expires_at,
        }))
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
        assert_eq!("monitor".parse::<Role>().unwrap(), Role::Monitor);
        assert!("root".parse::<Role>().is_err());
    }

    #[test]
    fn cache_keys_differ_by_scheme_user_and_secret() {
        let basic = |u: &str, p: &str| Credentials::Basic {
            username: u.into(),
            password: Secret::new(p),
        };
        assert_ne!(basic("a", "b").cache_key(), basic("a", "c").cache_key());
        assert_ne!(basic("a", "bc").cache_key(), basic("ab", "c").cache_key());
        assert_ne!(
            basic("a", "t").cache_key(),
            Credentials::Bearer(Secret::new("t")).cache_key()
        );
    }

    #[tokio::test]
    async fn a_credential_verified_across_a_cache_clear_is_not_cached() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::connect(&crate::store::ConnectOptions {
            url: format!("sqlite://{}", dir.path().join("auth.db").display()),
            max_connections: 2,
            timeout: Duration::from_secs(5),
        })
        .await
        .unwrap();
        let auth = Authenticator::new(
            store,
            PasswordHashing::new(1),
            Duration::from_secs(60),
            Throttle::new(10, Duration::from_secs(60)),
        );
        let principal = Principal {
            username: Username::try_from("ops").unwrap(),
            role: Role::Admin,
            method: AuthMethod::Password,
            expires_at: None,
        };
        let cache = auth.cache.clone().unwrap();
        // Verified before a change (a demotion, say) that cleared the cache: not kept.
        let before = auth.generation.load(Ordering::Acquire);
        auth.invalidate_cache();
        auth.remember([1; 32], &principal, before).await;
        assert!(cache.get(&[1; 32]).await.is_none());
        // Verified with no change in between: kept.
        let now = auth.generation.load(Ordering::Acquire);
        auth.remember([2; 32], &principal, now).await;
        assert!(cache.get(&[2; 32]).await.is_some());
    }
}
