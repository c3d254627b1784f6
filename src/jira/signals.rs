//! Every way Jira says "no" to credentials, recognised from one answer to `GET /rest/api/2/myself`.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use http::StatusCode;

use super::JiraResponse;

/// How Jira refused to authenticate Herald.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthDenial {
    /// 401 without a more specific signal.
    Unauthorized { detail: String },
    /// `X-Seraph-LoginReason: AUTHENTICATED_FAILED` (wrong user name or password), on any status.
    AuthenticatedFailed,
    /// `X-Seraph-LoginReason: AUTHENTICATION_DENIED` (sign-in refused, typically locked behind a CAPTCHA).
    AuthenticationDenied,
    /// 403 with `X-Authentication-Denied-Reason: CAPTCHA_CHALLENGE`.
    CaptchaChallenge { login_url: Option<String> },
    /// Jira Cloud refuses account passwords over Basic auth.
    CloudPasswordDeprecated,
    /// 200 with an HTML page: Jira (or an SSO proxy) sent a login page instead of the REST answer.
    HtmlLoginPage,
    /// 403 for another reason (e.g. no Jira application access).
    Forbidden { detail: String },
}

/// How a reason says it, after "Jira stopped accepting the credentials: ".
impl std::fmt::Display for AuthDenial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let with = |detail: &str| {
            if detail.is_empty() {
                String::new()
            } else {
                format!(": {detail}")
            }
        };
        match self {
            AuthDenial::Unauthorized { detail } => write!(f, "HTTP 401{}", with(detail)),
            AuthDenial::AuthenticatedFailed => {
                f.write_str("X-Seraph-LoginReason: AUTHENTICATED_FAILED, the user name or password is wrong")
            }
            AuthDenial::AuthenticationDenied => f.write_str(
                "X-Seraph-LoginReason: AUTHENTICATION_DENIED, sign-in is refused (locked behind a CAPTCHA or not allowed)",
            ),
            AuthDenial::CaptchaChallenge { .. } => f.write_str(
                "HTTP 403 with X-Authentication-Denied-Reason: CAPTCHA_CHALLENGE, a CAPTCHA is demanded after failed logins",
            ),
            AuthDenial::CloudPasswordDeprecated => {
                f.write_str("Jira Cloud refuses account passwords over basic authentication")
            }
            AuthDenial::HtmlLoginPage => f.write_str("an HTML login page instead of JSON"),
            AuthDenial::Forbidden { detail } => write!(f, "HTTP 403{}", with(detail)),
        }
    }
}

/// Recognises a refusal in an answer to `myself`; `None` when the answer is not a refusal.
pub fn auth_denial(response: &JiraResponse) -> Option<AuthDenial> {
    let header = |name: &str| {
        response
            .headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.to_ascii_uppercase())
    };
    let body = String::from_utf8_lossy(&response.body[..response.body.len().min(8192)]).to_ascii_lowercase();
    if body.contains("basic authentication with passwords is deprecated") {
        return Some(AuthDenial::CloudPasswordDeprecated);
    }
    if let Some(reason) = header("x-authentication-denied-reason") {
        if reason.contains("CAPTCHA_CHALLENGE") {
            let login_url = reason
                .split(';')
                .find_map(|part| part.trim().strip_prefix("LOGIN-URL="))
                .map(|u| u.trim().to_ascii_lowercase());
            return Some(AuthDenial::CaptchaChallenge { login_url });
        }
    }
    if let Some(reason) = header("x-seraph-loginreason") {
        if reason.contains("AUTHENTICATION_DENIED") {
            return Some(AuthDenial::AuthenticationDenied);
        }
        if reason.contains("AUTHENTICATED_FAILED") {
            return Some(AuthDenial::AuthenticatedFailed);
        }
    }
    match response.status {
        StatusCode::UNAUTHORIZED => Some(AuthDenial::Unauthorized {
            detail: response.error_summary(),
        }),
        StatusCode::FORBIDDEN => Some(AuthDenial::Forbidden {
            detail: response.error_summary(),
        }),
        s if s.is_success() && response.is_html() => Some(AuthDenial::HtmlLoginPage),
        _ => None,
    }
}

/// Data Center personal access tokens are base64 of `<numeric id>:<random bytes>`, 44 characters.
pub fn looks_like_dc_personal_access_token(secret: &str) -> bool {
    if secret.len() != 44 {
        return false;
    }
    let Ok(decoded) = STANDARD.decode(secret) else {
        return false;
    };
    let Some(colon) = decoded.iter().position(|b| *b == b':') else {
        return false;
    };
    colon > 0 && decoded[..colon].iter().all(u8::is_ascii_digit)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use http::HeaderMap;

    fn answer(status: u16, headers: &[(&'static str, &str)], body: &str) -> JiraResponse {
        let mut map = HeaderMap::new();
        for (k, v) in headers {
            map.insert(*k, v.parse().unwrap());
        }
        JiraResponse {
            status: StatusCode::from_u16(status).unwrap(),
            headers: map,
            body: Bytes::from(body.to_owned()),
        }
    }

    #[test]
    fn each_refusal_is_recognised() {
        let seraph = [("x-seraph-loginreason", "AUTHENTICATED_FAILED")];
        assert_eq!(
            auth_denial(&answer(200, &seraph, "{}")),
            Some(AuthDenial::AuthenticatedFailed)
        );
        let denied = [("x-seraph-loginreason", "AUTHENTICATION_DENIED")];
        assert_eq!(
            auth_denial(&answer(200, &denied, "{}")),
            Some(AuthDenial::AuthenticationDenied)
        );
        let captcha = [(
            "x-authentication-denied-reason",
            "CAPTCHA_CHALLENGE; login-url=https://jira.example.com/login.jsp",
        )];
        assert!(matches!(
            auth_denial(&answer(403, &captcha, "")),
            Some(AuthDenial::CaptchaChallenge { login_url: Some(_) })
        ));
        let html = [("content-type", "text/html;charset=UTF-8")];
        assert_eq!(
            auth_denial(&answer(200, &html, "<html>login</html>")),
            Some(AuthDenial::HtmlLoginPage)
        );
        assert_eq!(
            auth_denial(&answer(
                401,
                &[],
                "Basic authentication with passwords is deprecated.  For more …"
            )),
            Some(AuthDenial::CloudPasswordDeprecated)
        );
        assert!(matches!(
            auth_denial(&answer(401, &[], "")),
            Some(AuthDenial::Unauthorized { .. })
        ));
        let json = [("content-type", "application/json")];
        assert_eq!(auth_denial(&answer(200, &json, "{\"name\":\"svc\"}")), None);
    }

    #[test]
    fn refusals_read_as_text_not_rust() {
        let unauthorized = AuthDenial::Unauthorized {
            detail: "Client must be authenticated".to_owned(),
        };
        assert_eq!(unauthorized.to_string(), "HTTP 401: Client must be authenticated");
        let bare = AuthDenial::Unauthorized { detail: String::new() };
        assert_eq!(bare.to_string(), "HTTP 401");
        for denial in [
            unauthorized,
            bare,
            AuthDenial::AuthenticatedFailed,
            AuthDenial::AuthenticationDenied,
            AuthDenial::CaptchaChallenge { login_url: None },
            AuthDenial::CloudPasswordDeprecated,
            AuthDenial::HtmlLoginPage,
            AuthDenial::Forbidden { detail: String::new() },
        ] {
            let text = denial.to_string();
            assert!(
                !text.contains('{') && !text.contains("()") && !text.contains(", )"),
                "{text}"
            );
        }
    }

    #[test]
    fn data_center_tokens_are_recognised() {
        let token = STANDARD.encode(b"123456789012:abcdefghij0123456789");
        assert_eq!(token.len(), 44, "{token}");
        assert!(looks_like_dc_personal_access_token(&token));
        assert!(!looks_like_dc_personal_access_token("hunter2"));
        assert!(!looks_like_dc_personal_access_token(&"A".repeat(44)));
    }
}
