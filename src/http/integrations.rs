//! `/api/v1/integrations`: Herald's own management API for ticketing integrations. Admin only.
//! Secrets are write-only: responses say `password_set` / `token_set`, never the value.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::openapi::schema::{AdditionalProperties, ObjectBuilder, SchemaType, Type};
use utoipa::openapi::{Ref, RefOr, Schema};

use super::auth::RequireAdmin;
use super::error::{ApiError, Problem};
use super::json::{ApiJson, ApiQuery};
use super::openapi;
use super::paging::PageLimit;
use crate::integrations::{
    Auth, Change, InstallationType, Integration, IntegrationSpec, Saved, Step, StepReport, UNTIL_DONE, Verdict,
};
use crate::state::AppState;
use crate::store::CheckRecord;
use crate::tickets::{TicketSettings, TicketSettingsSpec};
use crate::timefmt::rfc3339_ms;

#[derive(Serialize, utoipa::ToSchema)]
pub struct AuthView {
    /// `basic` or `bearer`.
    #[serde(rename = "type")]
    kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    username: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    password_set: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    token_set: Option<bool>,
}

/// An integration as the API shows it (never its secret).
#[derive(Serialize, utoipa::ToSchema)]
pub struct IntegrationView {
    name: String,
    url: String,
    installation_type: InstallationType,
    auth: AuthView,
    #[serde(skip_serializing_if = "Option::is_none")]
    project_key: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    issue_type: Option<String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    #[schema(value_type = Object)]
    fields: BTreeMap<String, serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    ca_cert_pem: Option<String>,
    skip_proxy: bool,
    /// The integration's own check budget, if set (HERALD_CHECK_TIMEOUT otherwise).
    #[serde(skip_serializing_if = "Option::is_none")]
    timeout: Option<String>,
    /// The ticket settings, as given (docs/tickets.md).
    #[serde(skip_serializing_if = "Option::is_none")]
    tickets: Option<TicketSettingsSpec>,
    revision: i64,
    created_at: String,
    updated_at: String,
    /// The cached verdict, when one is fresh; never triggers a check.
    #[serde(skip_serializing_if = "Option::is_none")]
    status: Option<CheckView>,
}

impl IntegrationView {
    pub fn new(integration: &Integration, verdict: Option<&Verdict>) -> Self {
        let s = &integration.settings;
        let auth = match &s.auth {
            Auth::Basic { username, password } => AuthView {
                kind: "basic",
                username: Some(username.clone()),
                password_set: Some(!password.is_empty()),
                token_set: None,
            },
            Auth::Bearer { token } => AuthView {
                kind: "bearer",
                username: None,
                password_set: None,
                token_set: Some(!token.is_empty()),
            },
        };
        Self {
            name: integration.name.to_string(),
            url: s.url.as_str().to_owned(),
            installation_type: s.installation_type,
            auth,
            project_key: s.project_key.clone(),
            issue_type: s.issue_type.clone(),
            fields: s.fields.clone(),
            ca_cert_pem: s.ca_cert_pem.clone(),
            skip_proxy: s.skip_proxy,
            timeout: s.timeout.map(|d| humantime::format_duration(d).to_string()),
            tickets: s.tickets.as_deref().map(TicketSettings::to_spec),
            revision: integration.revision,
            created_at: rfc3339_ms(integration.created_at),
            updated_at: rfc3339_ms(integration.updated_at),
            status: verdict.map(CheckView::from),
        }
    }
}

/// A check's full report. The first four fields are those of the Xray status check.
#[derive(Serialize, utoipa::ToSchema)]
pub struct CheckView {
    /// HEALTHY_INTEGRATION or FAULTY_CONFIGURATION.
    status: &'static str,
    reason: String,
    /// When the result was verified (RFC 3339, UTC, whole seconds).
    time: String,
    integration_name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    failed_step: Option<Step>,
    #[serde(skip_serializing_if = "Option::is_none")]
    deployment_type: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    server_version: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    user: Option<String>,
    round_trips: u32,
    requests: u32,
    duration_ms: u64,
    steps: Vec<StepReport>,
}

impl From<&Verdict> for CheckView {
    fn from(v: &Verdict) -> Self {
        let r = &v.report;
        Self {
            status: v.status(),
            reason: r.reason.clone(),
            time: rfc3339_ms(v.verified_at),
            integration_name: v.integration_name.clone(),
            failed_step: r.failed_step,
            deployment_type: r.deployment_type.clone(),
            server_version: r.server_version.clone(),
            user: r.user.clone(),
            round_trips: r.round_trips,
            requests: r.requests,
            duration_ms: u64::try_from(r.duration.as_millis()).unwrap_or(u64::MAX),
            steps: r.steps.clone(),
        }
    }
}

/// A stored integration with the result of checking it right after the change.
#[derive(Serialize, utoipa::ToSchema)]
pub struct SavedIntegration {
    #[serde(flatten)]
    integration: IntegrationView,
    check: CheckView,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct HistoryEntry {
    status: String,
    reason: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    failed_step: Option<String>,
    time: String,
    duration_ms: i64,
}

impl From<CheckRecord> for HistoryEntry {
    fn from(r: CheckRecord) -> Self {
        Self {
            status: r.status,
            reason: r.reason,
            failed_step: r.failed_step,
            time: rfc3339_ms(r.checked_at),
            duration_ms: r.duration_ms,
        }
    }
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct HistoryQuery {
    /// How many entries, newest first.
    #[serde(default)]
    #[param(inline)]
    limit: PageLimit<{ crate::integrations::HISTORY_LENGTH }, { crate::integrations::HISTORY_LENGTH }>,
}

/// Saves, then checks the saved integration, answering with both. The API waits for the verdict as
/// long as the check takes (each check keeps to its own budget).
async fn saved(state: &AppState, change: Change, status: StatusCode) -> Result<(Integration, Response), ApiError> {
    let (integration, check) = state.integrations.save_and_check(change, UNTIL_DONE).await?;
    let verdict = match check {
        Saved::Checked(verdict) => verdict,
        Saved::NotChecked(e) => return Err(e.into()),
        // Not with UNTIL_DONE: the check runs in this request's task.
        Saved::StillRunning | Saved::CheckStopped => {
            return Err(ApiError::internal(&"the check did not finish"));
        }
    };
    let location = format!("/api/v1/integrations/{}", integration.name);
    let body = SavedIntegration {
        integration: IntegrationView::new(&integration, None),
        check: CheckView::from(&*verdict),
    };
    Ok((
        integration,
        (status, [(header::LOCATION, location)], Json(body)).into_response(),
    ))
}

/// The documented body of `POST /api/v1/integrations`: an `IntegrationSpec` with its `name`.
pub struct NewIntegration;

impl utoipa::PartialSchema for NewIntegration {
    fn schema() -> RefOr<Schema> {
        let name = ObjectBuilder::new()
            .property("name", ObjectBuilder::new().schema_type(Type::String))
            .required("name");
        openapi::with_rules(
            Ref::from_schema_name("IntegrationSpec").into(),
            std::iter::once(name.into()).chain(project_rules()),
        )
    }
}

impl utoipa::ToSchema for NewIntegration {
    fn schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) {
        schemas.push((
            "IntegrationSpec".to_owned(),
            <IntegrationSpec as utoipa::PartialSchema>::schema(),
        ));
        <IntegrationSpec as utoipa::ToSchema>::schemas(schemas);
    }
}

/// The documented body of `PUT /api/v1/integrations/{name}`: an `IntegrationSpec` without `name`,
/// which the path gives. (An equal `name` is still accepted, as earlier versions documented it.)
pub struct IntegrationUpdate;

impl utoipa::PartialSchema for IntegrationUpdate {
    fn schema() -> RefOr<Schema> {
        let spec = <IntegrationSpec as utoipa::PartialSchema>::schema();
        openapi::with_rules(openapi::without_properties(spec, &["name"]), project_rules())
    }
}

impl utoipa::ToSchema for IntegrationUpdate {
    fn schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) {
        <IntegrationSpec as utoipa::ToSchema>::schemas(schemas);
    }
}

/// The documented body of `PATCH /api/v1/integrations/{name}`: a JSON merge patch (RFC 7396) of an
/// `IntegrationSpec` without `name`. Every field is optional; `null` removes an optional setting
/// (`url` and `auth` cannot be removed); `auth` merges into the stored credentials unless its `type`
/// changes. Whether a patch is acceptable depends on what it is merged into: the result is checked
/// as a whole, like a PUT body.
pub struct IntegrationPatch;

impl utoipa::PartialSchema for IntegrationPatch {
    fn schema() -> RefOr<Schema> {
        let mut spec = openapi::without_properties(<IntegrationSpec as utoipa::PartialSchema>::schema(), &["name"]);
        if let RefOr::T(Schema::Object(object)) = &mut spec {
            object.required.clear();
            object.description = Some("A JSON merge patch (RFC 7396) of an integration's settings.".to_owned());
            for (field, property) in object.properties.iter_mut() {
                match field.as_str() {
                    "url" => {}
                    "auth" => *property = auth_patch_schema(),
                    "tickets" => *property = tickets_patch_schema(),
                    _ => *property = openapi::nullable(std::mem::take(property)),
                }
            }
        }
        spec
    }
}

impl utoipa::ToSchema for IntegrationPatch {
    fn schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) {
        <IntegrationSpec as utoipa::ToSchema>::schemas(schemas);
    }
}

/// A patch of `auth`: any of its fields; `null` for a secret keeps nothing to keep.
fn auth_patch_schema() -> RefOr<Schema> {
    let text = || ObjectBuilder::new().schema_type(Type::String);
    ObjectBuilder::new()
        .schema_type(Type::Object)
        .description(Some(
            "Merged into the stored credentials; a different `type` replaces them (and needs its secret).",
        ))
        .property(
            "type",
            ObjectBuilder::new()
                .schema_type(Type::String)
                .enum_values(Some(["basic", "bearer"])),
        )
        .property("username", text())
        .property("password", text().write_only(true))
        .property("token", text().write_only(true))
        .additional_properties(Some(AdditionalProperties::FreeForm(false)))
        .into()
}

/// A patch of `tickets`: any of its settings, each `null` to remove it (merged into the stored ones).
fn tickets_patch_schema() -> RefOr<Schema> {
    let mut schema = <TicketSettingsSpec as utoipa::PartialSchema>::schema();
    if let RefOr::T(Schema::Object(object)) = &mut schema {
        object.required.clear();
        object.description = Some("Merged into the stored ticket settings; `null` removes a setting.".to_owned());
        for (name, property) in object.properties.iter_mut() {
            // `null` values remove stored fields, so a patch may name more than the stored limit.
            if let (RefOr::T(Schema::Object(fields)), "fields") = (&mut *property, name.as_str()) {
                fields.max_properties = None;
            }
            *property = openapi::nullable(std::mem::take(property));
        }
    }
    openapi::nullable(schema)
}

/// What `issue_type` and `fields` need: a `project_key` (they are checked within the project); what
/// enabled tickets need: a `project_key` and an `issue_type` (where issues are created).
fn project_rules() -> [RefOr<Schema>; 3] {
    let blank = format!("^{}*$", crate::integrations::WHITE_SPACE_CLASS);
    let not_blank = format!("[^{}]", {
        let class = crate::integrations::WHITE_SPACE_CLASS;
        &class[1..class.len() - 1]
    });
    let tickets_off = ObjectBuilder::new().property(
        "tickets",
        ObjectBuilder::new()
            .schema_type(SchemaType::from_iter([Type::Object, Type::Null]))
            .property(
                "enabled",
                ObjectBuilder::new()
                    .schema_type(Type::Boolean)
                    .enum_values(Some([false])),
            ),
    );
    let destination = ObjectBuilder::new()
        .property(
            "project_key",
            ObjectBuilder::new().schema_type(Type::String).min_length(Some(1)),
        )
        .property(
            "issue_type",
            ObjectBuilder::new().schema_type(Type::String).pattern(Some(not_blank)),
        )
        .required("project_key")
        .required("issue_type");
    [
        openapi::any_of([tickets_off.into(), destination.into()]),
        openapi::needs(
            "issue_type",
            ObjectBuilder::new()
                .schema_type(SchemaType::from_iter([Type::String, Type::Null]))
                .pattern(Some(blank)),
            "project_key",
        ),
        openapi::needs(
            "fields",
            ObjectBuilder::new().schema_type(Type::Object).max_properties(Some(0)),
            "project_key",
        ),
    ]
}

/// Every integration, with its cached verdict when fresh.
#[utoipa::path(
    get, path = "/api/v1/integrations", tag = "integrations", security(("basic" = []), ("bearer" = [])),
    responses((status = 200, body = [IntegrationView]), (status = 401, body = Problem), (status = 403, body = Problem))
)]
pub async fn list_integrations(
    State(state): State<AppState>,
    _admin: RequireAdmin,
) -> Result<Json<Vec<IntegrationView>>, ApiError> {
    let mut out = Vec::new();
    for integration in state.integrations.list().await? {
        let verdict = state.integrations.cached(&integration).await;
        out.push(IntegrationView::new(&integration, verdict.as_deref()));
    }
    Ok(Json(out))
}

/// Registers an integration, then checks it; it is stored whatever the check finds.
#[utoipa::path(
    post, path = "/api/v1/integrations", tag = "integrations", security(("basic" = []), ("bearer" = [])),
    request_body = NewIntegration,
    responses(
        (status = 201, body = SavedIntegration), (status = 400, body = Problem), (status = 401, body = Problem),
        (status = 403, body = Problem), (status = 409, body = Problem)
    )
)]
pub async fn create_integration(
    State(state): State<AppState>,
    RequireAdmin(admin): RequireAdmin,
    ApiJson(spec): ApiJson<IntegrationSpec>,
) -> Result<Response, ApiError> {
    if spec.name.is_none() {
        return Err(ApiError::bad_request("invalid_field", "`name` is required").with_field("name"));
    }
    let (integration, response) = saved(&state, Change::Create(spec), StatusCode::CREATED).await?;
    tracing::info!(integration = %integration.name, by = %admin.username, "integration registered");
    Ok(response)
}

/// One integration.
#[utoipa::path(
    get, path = "/api/v1/integrations/{name}", tag = "integrations", security(("basic" = []), ("bearer" = [])),
    params(("name" = String, Path)),
    responses((status = 200, body = IntegrationView), (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem))
)]
pub async fn get_integration(
    State(state): State<AppState>,
    _admin: RequireAdmin,
    Path(name): Path<String>,
) -> Result<Json<IntegrationView>, ApiError> {
    let integration = state.integrations.get(&name).await?;
    let verdict = state.integrations.cached(&integration).await;
    Ok(Json(IntegrationView::new(&integration, verdict.as_deref())))
}

/// Replaces an integration's settings (secrets may be omitted to keep them), then checks it.
#[utoipa::path(
    put, path = "/api/v1/integrations/{name}", tag = "integrations", security(("basic" = []), ("bearer" = [])),
    params(("name" = String, Path)), request_body = IntegrationUpdate,
    responses(
        (status = 200, body = SavedIntegration), (status = 400, body = Problem), (status = 401, body = Problem),
        (status = 403, body = Problem), (status = 404, body = Problem)
    )
)]
pub async fn replace_integration(
    State(state): State<AppState>,
    _admin: RequireAdmin,
    Path(name): Path<String>,
    ApiJson(spec): ApiJson<IntegrationSpec>,
) -> Result<Response, ApiError> {
    Ok(saved(&state, Change::Replace { name, spec }, StatusCode::OK).await?.1)
}

/// Changes some settings (JSON merge patch, RFC 7396; `null` removes an optional setting), then checks.
#[utoipa::path(
    patch, path = "/api/v1/integrations/{name}", tag = "integrations", security(("basic" = []), ("bearer" = [])),
    params(("name" = String, Path)), request_body(content = IntegrationPatch, content_type = "application/merge-patch+json"),
    responses(
        (status = 200, body = SavedIntegration), (status = 400, body = Problem), (status = 401, body = Problem),
        (status = 403, body = Problem), (status = 404, body = Problem)
    )
)]
pub async fn patch_integration(
    State(state): State<AppState>,
    _admin: RequireAdmin,
    Path(name): Path<String>,
    ApiJson(patch): ApiJson<serde_json::Value>,
) -> Result<Response, ApiError> {
    if !patch.is_object() {
        return Err(ApiError::bad_request(
            "invalid_field",
            "the body must be a JSON object (a merge patch)",
        ));
    }
    Ok(saved(&state, Change::Patch { name, patch }, StatusCode::OK).await?.1)
}

/// Deletes an integration and its history.
#[utoipa::path(
    delete, path = "/api/v1/integrations/{name}", tag = "integrations", security(("basic" = []), ("bearer" = [])),
    params(("name" = String, Path)),
    responses((status = 204), (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem))
)]
pub async fn delete_integration(
    State(state): State<AppState>,
    RequireAdmin(admin): RequireAdmin,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    state.integrations.delete(&name).await?;
    tracing::info!(integration = %name, by = %admin.username, "integration removed");
    Ok(StatusCode::NO_CONTENT)
}

/// Checks the integration against Jira now (ignoring the cache) and returns the full report.
#[utoipa::path(
    post, path = "/api/v1/integrations/{name}/check", tag = "integrations", security(("basic" = []), ("bearer" = [])),
    params(("name" = String, Path)),
    responses((status = 200, body = CheckView), (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem))
)]
pub async fn check_integration(
    State(state): State<AppState>,
    _admin: RequireAdmin,
    Path(name): Path<String>,
) -> Result<Json<CheckView>, ApiError> {
    let verdict = state.integrations.check_now(&name).await?;
    Ok(Json(CheckView::from(&*verdict)))
}

/// The latest check results, newest first.
#[utoipa::path(
    get, path = "/api/v1/integrations/{name}/history", tag = "integrations", security(("basic" = []), ("bearer" = [])),
    params(("name" = String, Path), HistoryQuery),
    responses((status = 200, body = [HistoryEntry]), (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem))
)]
pub async fn integration_history(
    State(state): State<AppState>,
    _admin: RequireAdmin,
    Path(name): Path<String>,
    ApiQuery(query): ApiQuery<HistoryQuery>,
) -> Result<Json<Vec<HistoryEntry>>, ApiError> {
    let records = state.integrations.history(&name, query.limit.get()).await?;
    Ok(Json(records.into_iter().map(HistoryEntry::from).collect()))
}
