//! Users, roles, passwords, API tokens, the credential cache and login throttling.

mod accounts;
pub mod password;
mod throttle;
pub mod token;

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

pub use accounts::{
    AccountError, Accounts, BootstrapError, BootstrapPassword, CreatedToken, INITIAL_PASSWORD_FILE, OwnPasswordError,
    PasswordChanged,
};
pub use password::PasswordHashing;
pub use throttle::Throttle;
use throttle::{Refusal, Reservation};

use crate::error_kind::{Classified, ErrorKind};
pub use crate::identity::{InvalidUsername, Role, UnknownRole, Username};
use crate::metrics::{AuthFailure, AuthSuccess, Metrics};
use crate::secret::Secret;
use crate::store::{Store, StoreError, now_ms};

/// The sign-in section of the settings.
#[derive(Debug, Clone)]
pub struct AuthSettings {
    /// Password of the bootstrap `admin` user, used only when the database has no user yet.
    pub admin_password: Option<Secret>,
    /// How long a verified credential is trusted without checking the database again.
    pub cache_ttl: Duration,
    /// Failed authentications from one client before it is throttled.
    pub max_failures: u32,
    /// The window over which failures are counted, and how long a throttled client waits.
    pub lockout: Duration,
}

/// Credentials as presented by a client.
pub enum Credentials {
    /// `Authorization: Basic`: a password, or an API token in the password's place.
    Basic { username: String, password: Secret },
    /// `Authorization: Bearer <token>`.
    Bearer(Secret),
}

impl Credentials {
    /// The user name given with Basic credentials.
    fn username(&self) -> Option<&str> {
        match self {
            Credentials::Basic { username, .. } => Some(username),
            Credentials::Bearer(_) => None,
        }
    }

    /// Whether this is checked as an API token (Bearer, or a token in Basic's password), which is
    /// cheap to check and infeasible to guess, so never throttled (see `throttle`).
    fn is_token(&self) -> bool {
        match self {
            Credentials::Basic { password, .. } => token::looks_like_token(password.expose()),
            Credentials::Bearer(_) => true,
        }
    }

    /// Cache key: a digest of the client address and the whole credential, so the cache never holds
    /// a secret, and a guess can only hit a credential verified from the guesser's own address.
    fn cache_key(&self, client: IpAddr) -> [u8; 32] {
        let mut digest = Sha256::new();
        match client {
            IpAddr::V4(v4) => digest.update(v4.octets()),
            IpAddr::V6(v6) => digest.update(v6.octets()),
        }
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
    #[error("the user name, password or token is not valid")]
    Invalid,
    #[error("too many failed sign-in attempts; try again in {} s", retry_after.as_secs().max(1))]
    Throttled { retry_after: Duration },
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl Classified for AuthError {
    fn kind(&self) -> ErrorKind {
        match self {
            AuthError::Invalid => ErrorKind::Unauthenticated,
            AuthError::Throttled { retry_after } => ErrorKind::Throttled {
                retry_after: *retry_after,
            },
            AuthError::Store(e) => e.kind(),
        }
    }

    fn public_detail(&self) -> String {
        match self {
            AuthError::Store(e) => e.public_detail(),
            other => other.to_string(),
        }
    }
}

/// Verifies credentials, with a short-lived cache of successes so that a monitoring client polling
/// with Basic authentication does not pay for an Argon2 hash on every request. Every attempt's
/// outcome is counted in the metrics here, whichever face asked.
#[derive(Clone)]
pub struct Authenticator {
    store: Store,
    hashing: PasswordHashing,
    cache: Option<moka::future::Cache<[u8; 32], Principal>>,
    /// Bumped by every `invalidate_cache`: a credential verified across a change (its role or
    /// password read before the change, cached after it) is not cached.
    generation: Arc<std::sync::atomic::AtomicU64>,
    throttle: Arc<Throttle>,
    metrics: Arc<Metrics>,
}

impl Authenticator {
    pub fn new(
        store: Store,
        hashing: PasswordHashing,
        cache_ttl: Duration,
        throttle: Throttle,
        metrics: Arc<Metrics>,
    ) -> Self {
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
            metrics,
        }
    }

    /// Counts an attempt's outcome in `herald_auth_successes_total` or `herald_auth_failures_total`.
    fn record<T>(&self, outcome: &Result<T, AuthError>, verification: impl FnOnce(&T) -> Verification) {
        match outcome {
            Ok(verified) => self.metrics.auth_success(match verification(verified) {
                Verification::Cached => AuthSuccess::Cache,
                Verification::Checked => AuthSuccess::Checked,
            }),
            Err(e) => self.metrics.auth_failure(match e {
                AuthError::Invalid => AuthFailure::Invalid,
                AuthError::Throttled { .. } => AuthFailure::Throttled,
                AuthError::Store(_) => AuthFailure::Database,
            }),
        }
    }

    /// Verifies credentials. In order: a key closed even to cached credentials is refused; a cached
    /// credential is honoured; a token is looked up (never throttled); a password is checked only
    /// after reserving a check with the throttle, so a locked user name gets 429 without any hash.
    /// The reasons are in the `throttle` module.
    pub async fn authenticate(
        &self,
        client: IpAddr,
        credentials: &Credentials,
    ) -> Result<(Principal, Verification), AuthError> {
        let outcome = self.verify_credentials(client, credentials).await;
        self.record(&outcome, |(_, verification)| *verification);
        outcome
    }

    async fn verify_credentials(
        &self,
        client: IpAddr,
        credentials: &Credentials,
    ) -> Result<(Principal, Verification), AuthError> {
        let throttled = |retry_after| AuthError::Throttled { retry_after };
        if let Some(username) = credentials.username().filter(|_| !credentials.is_token()) {
            self.throttle
                .check_open(client, username, Instant::now())
                .map_err(throttled)?;
        }
        let key = credentials.cache_key(client);
        // Looked up again after waiting for a check in flight: it may have verified these very
        // credentials (a client's burst of concurrent requests costs one hash, not one each).
        let (verified, generation) = loop {
            if let Some(cache) = &self.cache {
                if let Some(principal) = cache.get(&key).await {
                    if principal.expires_at.is_none_or(|at| at > now_ms()) {
                        return Ok((principal, Verification::Cached));
                    }
                    cache.invalidate(&key).await;
                }
            }
            let generation = self.generation.load(Ordering::Acquire);
            let verified = match credentials {
                Credentials::Bearer(token) => self.verify_token(token, None).await?,
                Credentials::Basic { username, password } if credentials.is_token() => {
                    self.verify_token(password, Some(username)).await?
                }
                Credentials::Basic { username, password } => {
                    let Some(reservation) = self.reserve_or_wait(client, username).await? else {
                        continue;
                    };
                    self.verify_password_reserved(reservation, client, username, password)
                        .await?
                }
            };
            break (verified, generation);
        };
        let principal = verified.ok_or(AuthError::Invalid)?;
        self.remember(key, &principal, generation).await;
        Ok((principal, Verification::Checked))
    }

    /// Checks a password against the database, never the cache, for signing in to the console: a
    /// session outlives the cache, so it must not start from a password changed on another node a
    /// moment ago. Tokens are refused (a session would outlive the token's expiry or revocation).
    /// Passwords are throttled like any other.
    pub async fn authenticate_password(
        &self,
        client: IpAddr,
        username: &str,
        password: &Secret,
    ) -> Result<Principal, AuthError> {
        let outcome = self.verify_password_only(client, username, password).await;
        self.record(&outcome, |_| Verification::Checked);
        outcome
    }

    async fn verify_password_only(
        &self,
        client: IpAddr,
        username: &str,
        password: &Secret,
    ) -> Result<Principal, AuthError> {
        if token::looks_like_token(password.expose()) {
            return Err(AuthError::Invalid);
        }
        let reservation = loop {
            if let Some(reservation) = self.reserve_or_wait(client, username).await? {
                break reservation;
            }
        };
        self.verify_password_reserved(reservation, client, username, password)
            .await?
            .ok_or(AuthError::Invalid)
    }

    /// Reserves a password check with the throttle: `Throttled` when the key is locked, `None`
    /// after waiting for a check in flight to settle (look in the cache again, then retry).
    async fn reserve_or_wait(&self, client: IpAddr, username: &str) -> Result<Option<Reservation<'_>>, AuthError> {
        // No user can have a name outside the rule: refuse it before it takes a place in the
        // throttle (an attacker's ever new, long names would otherwise fill it) or costs a hash.
        if Username::try_from(username).is_err() {
            return Err(AuthError::Invalid);
        }
        let settled = self.throttle.settled();
        tokio::pin!(settled);
        settled.as_mut().enable();
        match self.throttle.reserve(client, username, Instant::now()) {
            Ok(reservation) => Ok(Some(reservation)),
            Err(Refusal::Locked(retry_after)) => Err(AuthError::Throttled { retry_after }),
            Err(Refusal::Busy) => {
                settled.await;
                Ok(None)
            }
        }
    }

    /// Checks a password within a check reserved with the throttle, and settles the reservation.
    async fn verify_password_reserved(
        &self,
        reservation: Reservation<'_>,
        client: IpAddr,
        username: &str,
        password: &Secret,
    ) -> Result<Option<Principal>, AuthError> {
        match self.verify_password(username, password).await {
            Ok(Some(principal)) => {
                reservation.succeeded();
                Ok(Some(principal))
            }
            Ok(None) => {
                if reservation.failed(Instant::now()) {
                    tracing::warn!(
                        %client,
                        user = username,
                        "too many wrong passwords: further passwords for this user from this address are refused for the rest of the window"
                    );
                }
                Ok(None)
            }
            Err(e) => {
                reservation.released();
                Err(e.into())
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

    async fn verify_password(&self, username: &str, password: &Secret) -> Result<Option<Principal>, StoreError> {
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
    fn cache_keys_differ_by_address_scheme_user_and_secret() {
        let basic = |u: &str, p: &str| Credentials::Basic {
            username: u.into(),
            password: Secret::new(p),
        };
        let here = IpAddr::from([192, 0, 2, 1]);
        let there = IpAddr::from([192, 0, 2, 2]);
        assert_ne!(basic("a", "b").cache_key(here), basic("a", "c").cache_key(here));
        assert_ne!(basic("a", "bc").cache_key(here), basic("ab", "c").cache_key(here));
        assert_ne!(
            basic("a", "t").cache_key(here),
            Credentials::Bearer(Secret::new("t")).cache_key(here)
        );
        assert_ne!(basic("a", "b").cache_key(here), basic("a", "b").cache_key(there));
    }

    async fn authenticator(dir: &std::path::Path, max_failures: u32) -> (Authenticator, Accounts) {
        let store = Store::connect(&crate::store::ConnectOptions {
            url: format!("sqlite://{}", dir.join("auth.db").display()),
            max_connections: 4,
            timeout: Duration::from_secs(5),
        })
        .await
        .unwrap();
        store.migrate().await.unwrap();
        let hashing = PasswordHashing::new(2);
        let auth = Authenticator::new(
            store.clone(),
            hashing.clone(),
            Duration::from_secs(60),
            Throttle::new(max_failures, Duration::from_secs(60)),
            Arc::new(Metrics::new()),
        );
        let accounts = Accounts::new(store, hashing, auth.clone());
        (auth, accounts)
    }

    fn basic(username: &str, password: &str) -> Credentials {
        Credentials::Basic {
            username: username.into(),
            password: Secret::new(password),
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_wrong_passwords_reach_the_hasher_at_most_limit_times() {
        let dir = tempfile::tempdir().unwrap();
        let (auth, accounts) = authenticator(dir.path(), 10).await;
        let ops = Username::try_from("ops").unwrap();
        accounts
            .create_user(&ops, &Secret::new("right-password"), Role::Admin)
            .await
            .unwrap();
        let client = IpAddr::from([192, 0, 2, 1]);
        let before = auth.hashing.verifications();
        let guesses = (0..60).map(|i| {
            let auth = auth.clone();
            tokio::spawn(async move { auth.authenticate(client, &basic("ops", &format!("guess-{i}"))).await })
        });
        let outcomes = futures::future::join_all(guesses).await;
        let checked = auth.hashing.verifications() - before;
        let invalid = outcomes
            .iter()
            .filter(|o| matches!(o.as_ref().unwrap(), Err(AuthError::Invalid)))
            .count();
        let throttled = outcomes
            .iter()
            .filter(|o| matches!(o.as_ref().unwrap(), Err(AuthError::Throttled { .. })))
            .count();
        assert!(checked <= 10, "{checked} passwords were hashed");
        assert_eq!(invalid as u64, checked);
        assert_eq!(invalid + throttled, 60);
        // Locked now: the right password is refused too, without a hash.
        let before = auth.hashing.verifications();
        assert!(matches!(
            auth.authenticate(client, &basic("ops", "right-password")).await,
            Err(AuthError::Throttled { .. })
        ));
        assert_eq!(auth.hashing.verifications(), before);
    }

    #[tokio::test]
    async fn a_locked_user_name_still_gets_in_with_a_cached_password_or_a_token() {
        let dir = tempfile::tempdir().unwrap();
        let (auth, accounts) = authenticator(dir.path(), 2).await;
        let ops = Username::try_from("ops").unwrap();
        accounts
            .create_user(&ops, &Secret::new("right-password"), Role::Admin)
            .await
            .unwrap();
        let token = accounts.create_token(&ops, "poller", None).await.unwrap().secret;
        let client = IpAddr::from([192, 0, 2, 1]);
        let right = basic("ops", "right-password");
        assert_eq!(
            auth.authenticate(client, &right).await.unwrap().1,
            Verification::Checked
        );
        for i in 0..5 {
            let _ = auth.authenticate(client, &basic("ops", &format!("guess-{i}"))).await;
        }
        let before = auth.hashing.verifications();
        assert_eq!(auth.authenticate(client, &right).await.unwrap().1, Verification::Cached);
        // Bad tokens are not counted: the good one, uncached, is still looked up.
        for _ in 0..50 {
            let bad = Credentials::Bearer(Secret::new(token::mint().secret.expose()));
            assert!(matches!(auth.authenticate(client, &bad).await, Err(AuthError::Invalid)));
        }
        let bearer = Credentials::Bearer(token.clone());
        assert_eq!(
            auth.authenticate(client, &bearer).await.unwrap().1,
            Verification::Checked
        );
        let token_as_password = Credentials::Basic {
            username: "ops".into(),
            password: token,
        };
        assert!(auth.authenticate(client, &token_as_password).await.is_ok());
        assert_eq!(auth.hashing.verifications(), before, "no password was hashed");
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
            Arc::new(Metrics::new()),
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
