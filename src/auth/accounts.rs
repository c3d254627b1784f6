//! Managing users and tokens: the operations behind `/api/v1/users`, `/api/v1/tokens` and the CLI.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::password::{self, PasswordError, PasswordHashing};
use super::{AuthError, Authenticator, Role, Username, token};
use crate::error_kind::{Classified, ErrorKind};
use crate::secret::Secret;
use crate::store::{AdminGuarded, NewToken, NewUser, Store, StoreError, TokenWithOwner, UserRecord, now_ms};

#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    #[error("no user named `{0}`")]
    UserNotFound(String),
    #[error("no token with id `{0}`")]
    TokenNotFound(String),
    #[error("`{0}` is the last admin; create another admin first")]
    LastAdmin(String),
    #[error("{0}")]
    Password(#[from] PasswordError),
    #[error("a token name must be 1 to 128 printable characters")]
    TokenName,
    #[error("a token's lifetime must be between 1 minute and 10 years")]
    TokenLifetime,
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl Classified for AccountError {
    fn kind(&self) -> ErrorKind {
        match self {
            AccountError::UserNotFound(_) | AccountError::TokenNotFound(_) => ErrorKind::NotFound,
            AccountError::LastAdmin(_) => ErrorKind::Conflict,
            AccountError::Password(e) => e.kind(),
            AccountError::TokenName => ErrorKind::Invalid { field: "name".into() },
            AccountError::TokenLifetime => ErrorKind::Invalid {
                field: "expires_in".into(),
            },
            AccountError::Store(e) => e.kind(),
        }
    }

    fn code(&self) -> Option<&'static str> {
        match self {
            AccountError::Password(e) => e.code(),
            AccountError::Store(e) => e.code(),
            _ => None,
        }
    }

    fn public_detail(&self) -> String {
        match self {
            AccountError::Store(e) => e.public_detail(),
            other => other.to_string(),
        }
    }
}

/// A token as created: the secret is shown to the caller once and never again.
pub struct CreatedToken {
    pub token: TokenWithOwner,
    pub secret: Secret,
}

/// Name of the file holding the generated bootstrap password.
pub const INITIAL_PASSWORD_FILE: &str = "initial-admin-password";

/// Why a user's own password was not changed.
#[derive(Debug, thiserror::Error)]
pub enum OwnPasswordError {
    /// The current password was not accepted: wrong, throttled, or not checkable.
    #[error(transparent)]
    Current(AuthError),
    /// The new password was not set (the policy refused it, or the database failed).
    #[error(transparent)]
    New(AccountError),
}

/// A changed password, and what went with it.
#[derive(Debug)]
pub struct PasswordChanged {
    /// The generated first-start password file, deleted now that its password is no longer valid.
    pub deleted_initial_password_file: Option<PathBuf>,
}

#[derive(Clone)]
pub struct Accounts {
    store: Store,
    hashing: PasswordHashing,
    authenticator: Authenticator,
    /// Where the generated first-start password of `admin` is written, when it is.
    initial_password_file: Option<PathBuf>,
}

impl Accounts {
    /// `authenticator` checks current passwords and has its credential cache cleared after every
    /// change.
    pub fn new(store: Store, hashing: PasswordHashing, authenticator: Authenticator) -> Self {
        Self {
            store,
            hashing,
            authenticator,
            initial_password_file: None,
        }
    }

    /// The data dir whose first-start password file a password change of `admin` deletes.
    pub fn with_initial_password_in(mut self, data_dir: &Path) -> Self {
        self.initial_password_file = Some(data_dir.join(INITIAL_PASSWORD_FILE));
        self
    }

    fn changed(&self) {
        self.authenticator.invalidate_cache();
    }

    /// Whether `username` is `admin` and still has the generated first-start password (its file is
    /// still there).
    pub fn uses_initial_password(&self, username: &Username) -> bool {
        username.as_str() == "admin" && self.initial_password_file.as_ref().is_some_and(|f| f.exists())
    }

    /// A signed-in user changes their own password: the current one is checked first (throttled
    /// like a sign-in), then the new one must pass the policy. Like every password change it ends
    /// the user's sessions; the first-start password file of `admin` goes with the old password.
    pub async fn change_own_password(
        &self,
        client: IpAddr,
        username: &Username,
        current: &Secret,
        new: &Secret,
    ) -> Result<PasswordChanged, OwnPasswordError> {
        self.authenticator
            .authenticate_password(client, username.as_str(), current)
            .await
            .map_err(OwnPasswordError::Current)?;
        self.set_password(username.as_str(), new)
            .await
            .map_err(OwnPasswordError::New)?;
        let mut deleted_initial_password_file = None;
        if let Some(file) = self
            .initial_password_file
            .as_ref()
            .filter(|_| username.as_str() == "admin")
        {
            if file.exists() {
                match std::fs::remove_file(file) {
                    Ok(()) => deleted_initial_password_file = Some(file.clone()),
                    Err(e) => {
                        tracing::warn!(file = %file.display(), error = %e, "cannot delete the generated password file")
                    }
                }
            }
        }
        Ok(PasswordChanged {
            deleted_initial_password_file,
        })
    }

    pub async fn create_user(
        &self,
        username: &Username,
        password: &Secret,
        role: Role,
    ) -> Result<UserRecord, AccountError> {
        password::check_policy(password)?;
        let hash = self.hashing.hash(password).await?;
        let user = self
            .store
            .insert_user(&NewUser {
                username,
                password_hash: &hash,
                role,
                now: now_ms(),
            })
            .await?;
        Ok(user)
    }

    pub async fn list_users(&self) -> Result<Vec<UserRecord>, AccountError> {
        Ok(self.store.list_users().await?)
    }

    pub async fn user(&self, username: &str) -> Result<UserRecord, AccountError> {
        self.store
            .user_by_name(username)
            .await?
            .ok_or_else(|| AccountError::UserNotFound(username.to_owned()))
    }

    pub async fn delete_user(&self, username: &str) -> Result<(), AccountError> {
        let outcome = self.store.delete_user(username).await?;
        self.changed();
        match outcome {
            AdminGuarded::Done => Ok(()),
            AdminGuarded::NotFound => Err(AccountError::UserNotFound(username.to_owned())),
            AdminGuarded::LastAdmin => Err(AccountError::LastAdmin(username.to_owned())),
        }
    }

    /// Changes a user's role. Console sessions and uncached credentials read the role from the user,
    /// so it applies at their next request on this node (whose cache is cleared) and within the cache
    /// lifetime on others. The last admin cannot be demoted.
    pub async fn set_role(&self, username: &str, role: Role) -> Result<UserRecord, AccountError> {
        let outcome = self.store.set_role(username, role, now_ms()).await?;
        self.changed();
        if role.api_only() {
            // `mail` and `events` users cannot use the console: their sessions end now.
            self.store.delete_user_sessions(username).await?;
        }
        match outcome {
            AdminGuarded::Done => self.user(username).await,
            AdminGuarded::NotFound => Err(AccountError::UserNotFound(username.to_owned())),
            AdminGuarded::LastAdmin => Err(AccountError::LastAdmin(username.to_owned())),
        }
    }

    pub async fn set_password(&self, username: &str, password: &Secret) -> Result<(), AccountError> {
        password::check_policy(password)?;
        let hash = self.hashing.hash(password).await?;
        let found = self.store.set_password_hash(username, &hash, now_ms()).await?;
        self.changed();
        // A new password signs the user out of the console everywhere (after the cache is cleared,
        // so the old password cannot start a new session in between).
        self.store.delete_user_sessions(username).await?;
        if found {
            Ok(())
        } else {
            Err(AccountError::UserNotFound(username.to_owned()))
        }
    }

    pub async fn create_token(
        &self,
        username: &Username,
        name: &str,
        lifetime: Option<Duration>,
    ) -> Result<CreatedToken, AccountError> {
        if name.is_empty() || name.chars().count() > 128 || name.chars().any(char::is_control) {
            return Err(AccountError::TokenName);
        }
        let now = now_ms();
        let expires_at = match lifetime {
            None => None,
            Some(d) if d >= Duration::from_secs(60) && d <= Duration::from_secs(10 * 366 * 86_400) => {
                Some(now + i64::try_from(d.as_millis()).map_err(|_| AccountError::TokenLifetime)?)
            }
            Some(_) => return Err(AccountError::TokenLifetime),
        };
        let minted = token::mint();
        let new = NewToken {
            id: &minted.id,
            username,
            name,
            token_hash: &minted.hash,
            now,
            expires_at,
        };
        let token = self
            .store
            .insert_token(&new)
            .await?
            .ok_or_else(|| AccountError::UserNotFound(username.to_string()))?;
        Ok(CreatedToken {
            token,
            secret: minted.secret,
        })
    }

    pub async fn list_tokens(&self, username: Option<&str>) -> Result<Vec<TokenWithOwner>, AccountError> {
        Ok(self.store.list_tokens(username).await?)
    }

    pub async fn revoke_token(&self, id: &str) -> Result<(), AccountError> {
        let found = self.store.delete_token(id).await?;
        self.changed();
        if found {
            Ok(())
        } else {
            Err(AccountError::TokenNotFound(id.to_owned()))
        }
    }

    /// On a database without users, creates `admin` with the configured password, or with a random one
    /// written to `<data_dir>/initial-admin-password` (mode 0600). Returns where the password is, if
    /// a user was created.
    pub async fn bootstrap_admin(
        &self,
        configured: Option<&Secret>,
        data_dir: &Path,
    ) -> Result<Option<BootstrapPassword>, BootstrapError> {
        if self.store.count_users().await.map_err(AccountError::from)? > 0 {
            return Ok(None);
        }
        let admin = Username::try_from("admin").map_err(|e| BootstrapError::Io(e.to_string()))?;
        let (password, source) = match configured {
            Some(password) => (password.clone(), BootstrapPassword::FromConfiguration),
            None => {
                let password = password::generate();
                let path = data_dir.join(INITIAL_PASSWORD_FILE);
                write_private_file(&path, &format!("{}\n", password.expose()))
                    .map_err(|e| BootstrapError::Io(format!("cannot write {}: {e}", path.display())))?;
                (password, BootstrapPassword::Generated(path))
            }
        };
        match self.create_user(&admin, &password, Role::Admin).await {
            Ok(_) => Ok(Some(source)),
            // Another node bootstrapped the same database at the same moment: theirs stands.
            Err(AccountError::Store(StoreError::Conflict(_))) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }
}

/// Where the bootstrap admin's password came from.
#[derive(Debug)]
pub enum BootstrapPassword {
    FromConfiguration,
    Generated(std::path::PathBuf),
}

#[derive(Debug, thiserror::Error)]
pub enum BootstrapError {
    #[error("cannot create the initial admin: {0}")]
    Account(#[from] AccountError),
    #[error("cannot create the initial admin: {0}")]
    Io(String),
}

fn write_private_file(path: &Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path)?;
    #[cfg(unix)]
    file.set_permissions(std::os::unix::fs::PermissionsExt::from_mode(0o600))?;
    file.write_all(contents.as_bytes())?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::auth::Throttle;
    use crate::metrics::{Exposition, Metrics};

    #[tokio::test]
    async fn changing_ones_own_password_checks_the_current_one_and_deletes_the_first_start_file() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::connect(&crate::store::ConnectOptions {
            url: format!("sqlite://{}", dir.path().join("accounts.db").display()),
            max_connections: 2,
            timeout: Duration::from_secs(5),
        })
        .await
        .unwrap();
        store.migrate().await.unwrap();
        let metrics = Arc::new(Metrics::new());
        let hashing = PasswordHashing::new(1);
        let auth = Authenticator::new(
            store.clone(),
            hashing.clone(),
            Duration::from_secs(60),
            Throttle::new(10, Duration::from_secs(60)),
            metrics.clone(),
        );
        let accounts = Accounts::new(store, hashing, auth).with_initial_password_in(dir.path());
        accounts.bootstrap_admin(None, dir.path()).await.unwrap();
        let file = dir.path().join(INITIAL_PASSWORD_FILE);
        let password = Secret::new(std::fs::read_to_string(&file).unwrap().trim());
        let admin = Username::try_from("admin").unwrap();
        let client = IpAddr::from([192, 0, 2, 1]);
        assert!(accounts.uses_initial_password(&admin));

        let new = Secret::new("brand-new-password");
        let wrong = accounts
            .change_own_password(client, &admin, &Secret::new("not-the-password"), &new)
            .await;
        assert!(
            matches!(wrong, Err(OwnPasswordError::Current(AuthError::Invalid))),
            "{wrong:?}"
        );
        let weak = accounts
            .change_own_password(client, &admin, &password, &Secret::new("short"))
            .await;
        assert!(
            matches!(weak, Err(OwnPasswordError::New(AccountError::Password(_)))),
            "{weak:?}"
        );
        assert!(accounts.uses_initial_password(&admin), "nothing changed yet");

        let changed = accounts
            .change_own_password(client, &admin, &password, &new)
            .await
            .unwrap();
        assert_eq!(changed.deleted_initial_password_file, Some(file.clone()));
        assert!(!file.exists() && !accounts.uses_initial_password(&admin));
        // Each check of the current password was counted by the authenticator itself.
        let text = metrics.render(Exposition::Prometheus).unwrap();
        assert!(
            text.contains("herald_auth_failures_total{reason=\"invalid\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("herald_auth_successes_total{reason=\"checked\"} 2"),
            "{text}"
        );
    }

    #[test]
    fn auth_and_account_errors_say_their_kind() {
        let wait = Duration::from_secs(3);
        assert_eq!(AuthError::Invalid.kind(), ErrorKind::Unauthenticated);
        assert_eq!(
            AuthError::Throttled { retry_after: wait }.kind(),
            ErrorKind::Throttled { retry_after: wait }
        );
        let outage = || StoreError::Unavailable(sqlx::Error::PoolTimedOut);
        assert_eq!(AuthError::Store(outage()).kind(), ErrorKind::Unavailable);
        assert_eq!(
            AuthError::Store(outage()).public_detail(),
            outage().public_detail(),
            "the driver's words stay in the log"
        );
        let field = |f: &str| ErrorKind::Invalid { field: f.into() };
        for (err, kind, code) in [
            (AccountError::UserNotFound("x".into()), ErrorKind::NotFound, None),
            (AccountError::TokenNotFound("x".into()), ErrorKind::NotFound, None),
            (AccountError::LastAdmin("x".into()), ErrorKind::Conflict, None),
            (
                AccountError::Password(PasswordError::TooShort),
                field("password"),
                Some("invalid_password"),
            ),
            (
                AccountError::Password(PasswordError::Hash("no memory".into())),
                ErrorKind::Internal,
                None,
            ),
            (AccountError::TokenName, field("name"), None),
            (AccountError::TokenLifetime, field("expires_in"), None),
            (AccountError::Store(outage()), ErrorKind::Unavailable, None),
            (
                AccountError::Store(StoreError::Corrupt("user 1".into())),
                ErrorKind::Internal,
                None,
            ),
        ] {
            assert_eq!((err.kind(), err.code()), (kind, code), "{err}");
        }
    }
}
