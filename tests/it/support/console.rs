//! Driving the console over plain HTTP: sign in through the form, keep the session cookie, post forms.
#![allow(dead_code)]

use reqwest::StatusCode;
use reqwest::header::{COOKIE, HeaderMap, SET_COOKIE};

use super::TestApp;

/// A browser-like HTTP client for the console, without redirects followed (so tests see them).
pub struct ConsoleClient {
    pub http: reqwest::Client,
    pub base: String,
    /// The `herald_session` cookie, once signed in.
    pub session: Option<String>,
}

/// The value of `name` among a response's `Set-Cookie` headers, and the whole header line.
pub fn set_cookie(headers: &HeaderMap, name: &str) -> Option<(String, String)> {
    headers
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with(&format!("{name}=")))
        .map(|line| {
            let value = line[name.len() + 1..].split(';').next().unwrap_or("").to_owned();
            (value, line.to_owned())
        })
}

/// The text right after the first `marker` (an opening tag, say) up to the next tag, if `marker` is
/// on the page.
pub fn text_after<'a>(html: &'a str, marker: &str) -> Option<&'a str> {
    let start = html.find(marker)? + marker.len();
    html[start..].split('<').next()
}

/// The CSRF token of the first form on a page.
pub fn csrf_of(html: &str) -> String {
    let marker = r#"name="csrf" value=""#;
    let start = html.find(marker).unwrap_or_else(|| panic!("no CSRF field in:\n{html}")) + marker.len();
    html[start..].split('"').next().unwrap().to_owned()
}

impl ConsoleClient {
    pub fn new(app: &TestApp) -> ConsoleClient {
        ConsoleClient::at(&app.base)
    }

    /// A client for the console at `base` (e.g. a `herald serve` child process).
    pub fn at(base: &str) -> ConsoleClient {
        ConsoleClient {
            http: reqwest::Client::builder()
                .no_proxy()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            base: base.to_owned(),
            session: None,
        }
    }

    fn with_session(&self, request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match &self.session {
            Some(id) => request.header(COOKIE, format!("herald_session={id}")),
            None => request,
        }
    }

    /// GET a console page: (status, headers, body).
    pub async fn get(&self, path: &str) -> (StatusCode, HeaderMap, String) {
        let response = self
            .with_session(self.http.get(format!("{}{path}", self.base)))
            .send()
            .await
            .unwrap();
        let (status, headers) = (response.status(), response.headers().clone());
        (status, headers, response.text().await.unwrap())
    }

    /// POSTs a form (with the session cookie, if any): (status, headers, body).
    pub async fn post(&self, path: &str, form: &[(&str, &str)]) -> (StatusCode, HeaderMap, String) {
        let response = self
            .with_session(self.http.post(format!("{}{path}", self.base)))
            .form(form)
            .send()
            .await
            .unwrap();
        let (status, headers) = (response.status(), response.headers().clone());
        (status, headers, response.text().await.unwrap())
    }

    /// Opens the sign-in form: (the `herald_signin` cookie, the form's token).
    pub async fn sign_in_form(&self) -> (String, String) {
        let (status, headers, body) = self.get("/console/sign-in").await;
        assert_eq!(status, StatusCode::OK);
        let (cookie, _) = set_cookie(&headers, "herald_signin").expect("sign-in cookie");
        (cookie, csrf_of(&body))
    }

    /// Posts the sign-in form with explicit cookies: the response.
    pub async fn post_sign_in(&self, cookies: &str, form: &[(&str, &str)]) -> reqwest::Response {
        self.http
            .post(format!("{}/console/sign-in", self.base))
            .header(COOKIE, cookies)
            .form(form)
            .send()
            .await
            .unwrap()
    }

    /// Opens a fresh sign-in form and posts `fields` with its token: the response.
    pub async fn try_sign_in(&self, fields: &[(&str, &str)]) -> reqwest::Response {
        let (cookie, token) = self.sign_in_form().await;
        let mut form = fields.to_vec();
        form.push(("csrf", &token));
        self.post_sign_in(&format!("herald_signin={cookie}"), &form).await
    }

    /// Signs in through the form; keeps and returns the session id.
    pub async fn sign_in(&mut self, username: &str, password: &str) -> String {
        let response = self
            .try_sign_in(&[("username", username), ("password", password)])
            .await;
        assert_eq!(
            response.status(),
            StatusCode::SEE_OTHER,
            "{}",
            response.text().await.unwrap()
        );
        let (session, _) = set_cookie(response.headers(), "herald_session").expect("session cookie");
        self.session = Some(session.clone());
        session
    }

    /// The CSRF token of this session (from any page's sign-out form).
    pub async fn csrf(&self) -> String {
        let (status, _, body) = self.get("/console/").await;
        assert_eq!(status, StatusCode::OK, "{body}");
        csrf_of(&body)
    }
}
