//! Authentication extractors: `Authenticated` (any user), `RequireMonitor`, `RequireAdmin`.
//!
//! Accepts `Authorization: Basic` (password, or an API token as the password) and
//! `Authorization: Bearer <token>`. Missing or wrong credentials: 401 with `WWW-Authenticate`;
//! insufficient role: 403; too many failures: 429 with `Retry-After`; malformed header: 400.

use axum::extract::FromRequestParts;
use axum::http::header;
use axum::http::request::Parts;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use super::error::ApiError;
use crate::auth::{Credentials, Principal, Role};
use crate::client_addr::ClientAddr;
use crate::secret::Secret;
use crate::state::AppState;

/// Parses an `Authorization` header value into credentials.
pub fn parse_authorization(value: &[u8]) -> Result<Credentials, ApiError> {
    let malformed = |why: &str| {
        ApiError::bad_request(
            "invalid_authorization",
            format!("malformed Authorization header: {why}"),
        )
    };
    let value = std::str::from_utf8(value)
        .ok()
        .filter(|v| v.is_ascii())
        .ok_or_else(|| malformed("it must contain only ASCII characters"))?;
    let (scheme, rest) = value.trim().split_once(' ').unwrap_or((value.trim(), ""));
    let rest = rest.trim();
    if scheme.eq_ignore_ascii_case("basic") {
        let decoded = STANDARD
            .decode(rest)
            .map_err(|_| malformed("Basic credentials must be base64 (RFC 7617)"))?;
        let decoded =
            String::from_utf8(decoded).map_err(|_| malformed("Basic credentials must be UTF-8 once decoded"))?;
        let (username, password) = decoded
            .split_once(':')
            .ok_or_else(|| malformed("Basic credentials must be `user:password`"))?;
        if username.is_empty() {
            return Err(ApiError::unauthorized("the user name is empty"));
        }
        Ok(Credentials::Basic {
            username: username.to_owned(),
            password: Secret::new(password),
        })
    } else if scheme.eq_ignore_ascii_case("bearer") {
        if rest.is_empty() || rest.contains(' ') {
            return Err(malformed("Bearer needs exactly one token"));
        }
        Ok(Credentials::Bearer(Secret::new(rest)))
    } else {
        Err(ApiError::unauthorized(format!(
            "unsupported authorization scheme `{}`: use Basic or Bearer",
            scheme.chars().take(32).collect::<String>()
        )))
    }
}

async fn authenticate(parts: &mut Parts, state: &AppState, required: Option<Role>) -> Result<Principal, ApiError> {
    if let Some(principal) = parts.extensions.get::<Principal>() {
        return authorize(principal.clone(), required);
    }
    let value = parts
        .headers
        .get(header::AUTHORIZATION)
        .ok_or_else(|| ApiError::unauthorized("authentication is required: send Basic or Bearer credentials"))?;
    let credentials = parse_authorization(value.as_bytes())?;
    let ClientAddr(client) = ClientAddr::of(parts);
    let (principal, _) = state.authenticator.authenticate(client, &credentials).await?;
    parts.extensions.insert(principal.clone());
    authorize(principal, required)
}

fn authorize(principal: Principal, required: Option<Role>) -> Result<Principal, ApiError> {
    match required {
        Some(role) if !principal.role.satisfies(role) => Err(ApiError::forbidden(format!(
            "`{}` has the {} role; this needs the {} role",
            principal.username, principal.role, role
        ))),
        _ => Ok(principal),
    }
}

macro_rules! role_extractor {
    ($(#[$doc:meta])* $name:ident, $required:expr) => {
        $(#[$doc])*
        pub struct $name(pub Principal);

        impl FromRequestParts<AppState> for $name {
            type Rejection = ApiError;

            async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
                authenticate(parts, state, $required).await.map($name)
            }
        }
    };
}

role_extractor!(
    /// Any signed-in user.
    Authenticated,
    None
);
role_extractor!(
    /// A user with the monitor or admin role.
    RequireMonitor,
    Some(Role::Monitor)
);
role_extractor!(
    /// A user with the mail or admin role: may submit mail.
    RequireMailSender,
    Some(Role::Mail)
);
role_extractor!(
    /// A user with the events or admin role: may post events.
    RequireEventSender,
    Some(Role::Events)
);
role_extractor!(
    /// A user with the admin role.
    RequireAdmin,
    Some(Role::Admin)
);

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::StatusCode;

    fn status_of(value: &[u8]) -> StatusCode {
        match parse_authorization(value) {
            Ok(_) => StatusCode::OK,
            Err(e) => e.status(),
        }
    }

    #[test]
    fn basic_and_bearer_are_parsed() {
        let basic = format!("Basic {}", STANDARD.encode("alice:pa:ss"));
        match parse_authorization(basic.as_bytes()).unwrap() {
            Credentials::Basic { username, password } => {
                assert_eq!(username, "alice");
                assert_eq!(password.expose(), "pa:ss");
            }
            Credentials::Bearer(_) => panic!("expected Basic"),
        }
        assert!(matches!(
            parse_authorization(b"bearer hrld_abc").unwrap(),
            Credentials::Bearer(_)
        ));
    }

    #[test]
    fn malformed_headers_are_400_and_unknown_schemes_401() {
        assert_eq!(status_of(b"Basic !!!notbase64"), StatusCode::BAD_REQUEST);
        assert_eq!(
            status_of(format!("Basic {}", STANDARD.encode("nocolon")).as_bytes()),
            StatusCode::BAD_REQUEST
        );
        assert_eq!(
            status_of(format!("Basic {}", STANDARD.encode([0xff, b':', b'x'])).as_bytes()),
            StatusCode::BAD_REQUEST
        );
        assert_eq!(status_of(b"Basic \xff\xfe"), StatusCode::BAD_REQUEST);
        assert_eq!(status_of(b"Bearer"), StatusCode::BAD_REQUEST);
        assert_eq!(status_of(b"Bearer a b"), StatusCode::BAD_REQUEST);
        assert_eq!(status_of(b"Digest username=x"), StatusCode::UNAUTHORIZED);
        assert_eq!(status_of(b""), StatusCode::UNAUTHORIZED);
        assert_eq!(
            status_of(format!("Basic {}", STANDARD.encode(":pw")).as_bytes()),
            StatusCode::UNAUTHORIZED
        );
    }
}
