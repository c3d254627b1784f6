//! `/xray/api/v1/ticketing/...`: JFrog Xray-compatible endpoints, so existing automation works unchanged.
//! The status check answers exactly as the seed specifies; the management endpoints answer errors
//! as Xray does, `{"error": "..."}`, and verify the connection before saving. Both shapes of a
//! failure come from [`XrayFailure`], which turns an error's kind into Xray's status in one place.

use std::collections::HashMap;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::openapi::schema::{ObjectBuilder, SchemaType, Type};
use utoipa::openapi::{Ref, RefOr, Schema};

use super::auth::RequireAdmin;
use super::error::Problem;
use super::openapi;
use crate::error_kind::{Classified, ErrorKind};
use crate::integrations::{AuthSpec, Change, InstallationType, IntegrationSpec, Verified};
use crate::secret::Secret;
use crate::state::AppState;
use crate::store::now_ms;
use crate::timefmt::rfc3339_ms;

pub const NOT_FOUND_REASON: &str = "The integration does not exist or cannot be located.";
pub const INTERNAL_REASON: &str =
    "The system is temporarily unable to retrieve integration details. Please try again later.";

/// The status check's answer. Field names and order are the seed's.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct IntegrationStatus {
    /// HEALTHY_INTEGRATION, FAULTY_CONFIGURATION, INTEGRATION_NOT_FOUND or INTERNAL_SERVER_ERROR.
    status: &'static str,
    reason: String,
    /// When the status was verified: RFC 3339, UTC, whole seconds, `Z`.
    time: String,
    integration_name: String,
}

/// Xray's error body.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct XrayError {
    error: String,
}

/// Xray's success body for management calls.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct XrayInfo {
    info: String,
}

/// A failed Xray call, in Xray's shapes. Domain errors become these by their kind here, and only
/// here; Xray knows no 503, so whatever is not the caller's doing is its 500.
#[derive(Debug)]
pub enum XrayFailure {
    /// The management endpoints' `{"error": "..."}`.
    Error { status: StatusCode, message: String },
    /// The status check's seed body: INTEGRATION_NOT_FOUND or INTERNAL_SERVER_ERROR.
    Status {
        status: StatusCode,
        body: IntegrationStatus,
    },
}

impl XrayFailure {
    fn new(status: StatusCode, message: impl Into<String>) -> Self {
        XrayFailure::Error {
            status,
            message: message.into(),
        }
    }

    fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    /// A management call on the integration `name` that failed.
    fn of(err: &impl Classified, name: &str) -> Self {
        match err.kind() {
            ErrorKind::NotFound => Self::new(
                StatusCode::NOT_FOUND,
                format!("Jira integration '{name}' was not found"),
            ),
            ErrorKind::Conflict => Self::new(
                StatusCode::CONFLICT,
                format!("Jira integration '{name}' already exists"),
            ),
            ErrorKind::Invalid { .. } => Self::bad_request(err.public_detail()),
            _ => {
                tracing::error!(integration = name, error = %err, "ticketing integration request failed");
                Self::new(StatusCode::INTERNAL_SERVER_ERROR, INTERNAL_REASON)
            }
        }
    }

    /// The status check of the integration `name` that failed.
    fn of_status_check(err: &impl Classified, name: &str) -> Self {
        let (status, seed_status, reason) = match err.kind() {
            ErrorKind::NotFound => (StatusCode::NOT_FOUND, "INTEGRATION_NOT_FOUND", NOT_FOUND_REASON),
            _ => {
                tracing::error!(integration = %name, error = %err, "cannot read integration for its status");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "INTERNAL_SERVER_ERROR",
                    INTERNAL_REASON,
                )
            }
        };
        XrayFailure::Status {
            status,
            body: IntegrationStatus {
                status: seed_status,
                reason: reason.to_owned(),
                time: rfc3339_ms(now_ms()),
                integration_name: name.to_owned(),
            },
        }
    }
}

impl IntoResponse for XrayFailure {
    fn into_response(self) -> Response {
        match self {
            XrayFailure::Error { status, message } => (status, Json(XrayError { error: message })).into_response(),
            XrayFailure::Status { status, body } => (status, Json(body)).into_response(),
        }
    }
}

/// Query of the status check; read by hand so a missing parameter gets Xray's 400, not a rejection.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct StatusQuery {
    /// The name of the integration to check.
    #[serde(rename = "integrationName")]
    #[param(min_length = 1)]
    integration_name: String,
}

/// The integration's latest status: cached for HERALD_CHECK_MAX_AGE, otherwise verified against Jira now.
#[utoipa::path(
    get, path = "/xray/api/v1/ticketing/integrations/status/check", tag = "ticketing",
    security(("basic" = []), ("bearer" = [])), params(StatusQuery),
    responses(
        (status = 200, description = "Healthy or faulty", body = IntegrationStatus),
        (status = 400, description = "integrationName missing or empty", body = XrayError),
        (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 404, description = "No such integration", body = IntegrationStatus),
        (status = 500, description = "Herald cannot read the integration", body = IntegrationStatus)
    )
)]
pub async fn integration_status(
    State(state): State<AppState>,
    _admin: RequireAdmin,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Json<IntegrationStatus>, XrayFailure> {
    let Some(name) = query.get("integrationName").filter(|n| !n.is_empty()) else {
        return Err(XrayFailure::bad_request(
            "The query parameter integrationName is required and must not be empty.",
        ));
    };
    let verdict = state
        .integrations
        .status(name)
        .await
        .map_err(|e| XrayFailure::of_status_check(&e, name))?;
    Ok(Json(IntegrationStatus {
        status: verdict.status(),
        reason: verdict.report.reason.clone(),
        time: rfc3339_ms(verdict.verified_at),
        integration_name: name.clone(),
    }))
}

/// Xray's Jira integration body.
#[derive(Deserialize, utoipa::ToSchema)]
pub struct XrayJiraIntegration {
    /// The integration's name (required on create; on update, the one in the path).
    #[serde(default)]
    #[schema(
        min_length = 1,
        max_length = 128,
        pattern = r"^(?!\.\.?$)[^\s\x00-\x1f\x7f-\x9f]([^\x00-\x1f\x7f-\x9f]*[^\s\x00-\x1f\x7f-\x9f])?$"
    )]
    connection_name: Option<String>,
    /// `basic` (username + password or API token) or `bearer` (personal access token in `password`).
    #[serde(default)]
    #[schema(pattern = r"^(basic|bearer|token|pat|personal_access_token)$")]
    auth_type: Option<String>,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    #[schema(value_type = Option<String>, write_only)]
    password: Option<Secret>,
    /// `cloud` or `server` (Data Center too).
    #[serde(default)]
    #[schema(pattern = r"^(auto|cloud|server|datacenter|data_center|data-center)?$")]
    installation_type: Option<String>,
    /// Jira's base URL, http or https.
    #[schema(pattern = r"^https?://[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?(:[1-9][0-9]{0,3})?(/[A-Za-z0-9._~/-]*)?$")]
    jira_server_url: String,
    #[serde(default)]
    skip_proxy: bool,
}

/// The documented body of the Xray create: `XrayJiraIntegration` with a `connection_name` and the
/// credentials its `auth_type` needs.
pub struct XrayNewJiraIntegration;

impl utoipa::PartialSchema for XrayNewJiraIntegration {
    fn schema() -> RefOr<Schema> {
        let name = ObjectBuilder::new()
            .property("connection_name", ObjectBuilder::new().schema_type(Type::String))
            .required("connection_name");
        openapi::with_rules(
            Ref::from_schema_name("XrayJiraIntegration").into(),
            [name.into(), credentials_rule()],
        )
    }
}

impl utoipa::ToSchema for XrayNewJiraIntegration {
    fn schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) {
        schemas.push((
            "XrayJiraIntegration".to_owned(),
            <XrayJiraIntegration as utoipa::PartialSchema>::schema(),
        ));
    }
}

/// The documented body of the Xray update: `XrayJiraIntegration` without `connection_name`, which
/// the path gives (an equal one is accepted; another is refused: integrations are not renamed).
/// The password is documented as required: it may be left out only while the Jira URL's origin
/// and the user name stay the same, a rule about the stored integration.
pub struct XrayJiraIntegrationUpdate;

impl utoipa::PartialSchema for XrayJiraIntegrationUpdate {
    fn schema() -> RefOr<Schema> {
        let base = openapi::without_properties(
            <XrayJiraIntegration as utoipa::PartialSchema>::schema(),
            &["connection_name"],
        );
        openapi::with_rules(base, [credentials_rule()])
    }
}

impl utoipa::ToSchema for XrayJiraIntegrationUpdate {}

/// What `to_spec` and `IntegrationSpec::validate` require of the credentials: Basic (the default)
/// needs a user name without `:` or control characters and a non-empty password; a bearer
/// `auth_type` needs its token, without white space, in `password`.
fn credentials_rule() -> RefOr<Schema> {
    let text = || ObjectBuilder::new().schema_type(Type::String);
    let basic = ObjectBuilder::new()
        .property(
            "auth_type",
            ObjectBuilder::new()
                .schema_type(SchemaType::from_iter([Type::String, Type::Null]))
                .pattern(Some("^basic$")),
        )
        .property(
            "username",
            text().pattern(Some(
                r"^[^:\x00-\x1f\x7f-\x9f]*[^:\s\x00-\x1f\x7f-\x9f][^:\x00-\x1f\x7f-\x9f]*$",
            )),
        )
        .property("password", text().min_length(Some(1)))
        .required("username")
        .required("password");
    let bearer = ObjectBuilder::new()
        .property(
            "auth_type",
            text().pattern(Some("^(bearer|token|pat|personal_access_token)$")),
        )
        .property("password", text().pattern(Some(r"^[^\s\x00-\x1f\x7f-\x9f]+$")))
        .required("auth_type")
        .required("password");
    openapi::any_of([basic.into(), bearer.into()])
}

/// Xray's view of a Jira integration (never the password).
#[derive(Serialize, utoipa::ToSchema)]
pub struct XrayJiraIntegrationDetails {
    connection_name: String,
    auth_type: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    username: Option<String>,
    installation_type: InstallationType,
    jira_server_url: String,
    skip_proxy: bool,
}

fn parse_body(headers: &HeaderMap, bytes: &Bytes) -> Result<XrayJiraIntegration, XrayFailure> {
    super::json::require_json(headers).map_err(|e| XrayFailure::new(StatusCode::UNSUPPORTED_MEDIA_TYPE, e.detail()))?;
    super::json::parse::<XrayJiraIntegration>(bytes).map_err(|e| XrayFailure::bad_request(e.detail()))
}

/// Builds Herald's spec from Xray's body, keeping Herald-only settings of `base`.
fn to_spec(
    body: XrayJiraIntegration,
    name: String,
    base: Option<IntegrationSpec>,
) -> Result<IntegrationSpec, XrayFailure> {
    let bad = XrayFailure::bad_request;
    let auth = match body.auth_type.as_deref().map(str::to_ascii_lowercase).as_deref() {
        None | Some("basic") => AuthSpec::Basic {
            username: body.username.unwrap_or_default(),
            password: body.password,
        },
        Some("bearer" | "token" | "pat" | "personal_access_token") => AuthSpec::Bearer { token: body.password },
        Some(other) => {
            return Err(bad(format!(
                "auth_type '{other}' is not supported; use 'basic' or 'bearer'"
            )));
        }
    };
    let installation_type = match body
        .installation_type
        .as_deref()
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        None | Some("") | Some("auto") => InstallationType::Auto,
        Some("cloud") => InstallationType::Cloud,
        Some("server" | "datacenter" | "data_center" | "data-center") => InstallationType::Server,
        Some(other) => {
            return Err(bad(format!(
                "installation_type '{other}' is not supported; use 'cloud' or 'server'"
            )));
        }
    };
    let mut spec = base.unwrap_or(IntegrationSpec {
        name: None,
        url: String::new(),
        installation_type,
        auth: auth.clone(),
        project_key: None,
        issue_type: None,
        fields: Default::default(),
        ca_cert_pem: None,
        skip_proxy: false,
        timeout: None,
        tickets: None,
    });
    spec.name = Some(name);
    spec.url = body.jira_server_url;
    spec.installation_type = installation_type;
    spec.auth = auth;
    spec.skip_proxy = body.skip_proxy;
    Ok(spec)
}

/// Creates a Jira integration after verifying that Jira is reachable and accepts the credentials.
#[utoipa::path(
    post, path = "/xray/api/v1/ticketing/jira-integrations", tag = "ticketing",
    security(("basic" = []), ("bearer" = [])), request_body = XrayNewJiraIntegration,
    responses(
        (status = 200, body = XrayInfo), (status = 400, body = XrayError), (status = 401, body = Problem),
        (status = 403, body = Problem), (status = 409, body = XrayError),
        (status = 415, description = "The body is not sent as `Content-Type: application/json`", body = XrayError)
    )
)]
pub async fn create_jira_integration(
    State(state): State<AppState>,
    _admin: RequireAdmin,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<XrayInfo>, XrayFailure> {
    let body = parse_body(&headers, &body)?;
    let Some(name) = body.connection_name.clone().filter(|n| !n.is_empty()) else {
        return Err(XrayFailure::bad_request("connection_name is required"));
    };
    let spec = to_spec(body, name.clone(), None)?;
    // Like Xray: the connection must work before it is saved.
    match state
        .integrations
        .verify_and_save(Change::Create(spec))
        .await
        .map_err(|e| XrayFailure::of(&e, &name))?
    {
        Verified::Saved(_) => Ok(Json(XrayInfo {
            info: format!("Jira integration '{name}' was created successfully"),
        })),
        Verified::Refused(report) => Err(XrayFailure::bad_request(report.reason)),
    }
}

/// Updates a Jira integration after verifying the new connection; an omitted password keeps the old one.
#[utoipa::path(
    put, path = "/xray/api/v1/ticketing/jira-integrations/{connection_name}", tag = "ticketing",
    security(("basic" = []), ("bearer" = [])), params(("connection_name" = String, Path)),
    request_body = XrayJiraIntegrationUpdate,
    responses(
        (status = 200, body = XrayInfo), (status = 400, body = XrayError), (status = 401, body = Problem),
        (status = 403, body = Problem), (status = 404, body = XrayError),
        (status = 415, description = "The body is not sent as `Content-Type: application/json`", body = XrayError)
    )
)]
pub async fn update_jira_integration(
    State(state): State<AppState>,
    _admin: RequireAdmin,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<XrayInfo>, XrayFailure> {
    let body = parse_body(&headers, &body)?;
    if body
        .connection_name
        .as_deref()
        .is_some_and(|n| !n.is_empty() && n != name)
    {
        return Err(XrayFailure::bad_request("connection_name cannot be changed"));
    }
    let current = state
        .integrations
        .get(&name)
        .await
        .map_err(|e| XrayFailure::of(&e, &name))?;
    let spec = to_spec(body, name.clone(), Some(current.settings.to_spec()))?;
    let change = Change::Replace {
        name: name.clone(),
        spec,
    };
    match state
        .integrations
        .verify_and_save(change)
        .await
        .map_err(|e| XrayFailure::of(&e, &name))?
    {
        Verified::Saved(_) => Ok(Json(XrayInfo {
            info: format!("Jira integration '{name}' was updated successfully"),
        })),
        Verified::Refused(report) => Err(XrayFailure::bad_request(report.reason)),
    }
}

/// A Jira integration's details (never the password).
#[utoipa::path(
    get, path = "/xray/api/v1/ticketing/jira-integrations/{connection_name}/details", tag = "ticketing",
    security(("basic" = []), ("bearer" = [])), params(("connection_name" = String, Path)),
    responses(
        (status = 200, body = XrayJiraIntegrationDetails), (status = 401, body = Problem),
        (status = 403, body = Problem), (status = 404, body = XrayError)
    )
)]
pub async fn jira_integration_details(
    State(state): State<AppState>,
    _admin: RequireAdmin,
    Path(name): Path<String>,
) -> Result<Json<XrayJiraIntegrationDetails>, XrayFailure> {
    let integration = state
        .integrations
        .get(&name)
        .await
        .map_err(|e| XrayFailure::of(&e, &name))?;
    let s = &integration.settings;
    Ok(Json(XrayJiraIntegrationDetails {
        connection_name: integration.name.to_string(),
        auth_type: s.auth.kind(),
        username: s.auth.username().map(str::to_owned),
        installation_type: s.installation_type,
        jira_server_url: s.url.as_str().to_owned(),
        skip_proxy: s.skip_proxy,
    }))
}

/// Deletes a Jira integration.
#[utoipa::path(
    delete, path = "/xray/api/v1/ticketing/jira-integrations/{connection_name}", tag = "ticketing",
    security(("basic" = []), ("bearer" = [])), params(("connection_name" = String, Path)),
    responses(
        (status = 200, body = XrayInfo), (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 404, body = XrayError)
    )
)]
pub async fn delete_jira_integration(
    State(state): State<AppState>,
    _admin: RequireAdmin,
    Path(name): Path<String>,
) -> Result<Json<XrayInfo>, XrayFailure> {
    state
        .integrations
        .delete(&name)
        .await
        .map_err(|e| XrayFailure::of(&e, &name))?;
    Ok(Json(XrayInfo {
        info: format!("Jira integration '{name}' was deleted successfully"),
    }))
}
