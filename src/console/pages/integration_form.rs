//! The form that adds or edits an integration, and the actions it posts to: each save is checked
//! at once, so the admin sees straight away whether the integration works.

use askama::Template;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;

use super::integration::{CHECK_STOPPED, STILL_CHECKING, check_wait};
use crate::console::error::{ConsoleError, sentence};
use crate::console::forms::IntegrationForm;
use crate::console::session::{Change, Session};
use crate::console::view::{Chrome, html, html_with};
use crate::error_kind::{Classified, ErrorKind};
use crate::integrations::{Change as Save, IntegrationError, Saved};
use crate::links::Link;
use crate::state::AppState;

#[derive(Template)]
#[template(path = "console/integration_form.html")]
struct IntegrationFormPage {
    page: Chrome,
    /// None for a new integration.
    editing: Option<String>,
    action: String,
    form: IntegrationForm,
    error: Option<String>,
    /// The setting the error is about (`tickets.summary`), shown again next to its input.
    error_field: Option<String>,
}

impl IntegrationFormPage {
    /// The error, when it is about `field` or one of its parts (`tickets.labels` for `tickets.labels[1]`).
    fn field_error(&self, field: &str) -> Option<&str> {
        let at = self.error_field.as_deref()?;
        let about = at == field || at.strip_prefix(field).is_some_and(|rest| rest.starts_with(['.', '[']));
        if about { self.error.as_deref() } else { None }
    }
}

fn form_page(
    session: &Session,
    state: &AppState,
    editing: Option<&str>,
    form: IntegrationForm,
    error: Option<(String, Option<String>)>,
) -> IntegrationFormPage {
    let (title, action) = match editing {
        Some(name) => (format!("Edit {name}"), Link::IntegrationEdit(name).path()),
        None => ("Add an integration".to_owned(), "/console/integrations".to_owned()),
    };
    IntegrationFormPage {
        page: Chrome::new(session, state.node_id.as_str(), "integrations", title),
        editing: editing.map(str::to_owned),
        action,
        form,
        error_field: error.as_ref().and_then(|(_, field)| field.clone()),
        error: error.map(|(message, _)| message),
    }
}

pub async fn new_integration(State(state): State<AppState>, session: Session) -> Result<Response, ConsoleError> {
    session.require_admin()?;
    let form = IntegrationForm {
        auth_type: "basic".to_owned(),
        installation_type: "auto".to_owned(),
        ..IntegrationForm::default()
    };
    html(&form_page(&session, &state, None, form, None))
}

pub async fn edit_integration(
    State(state): State<AppState>,
    session: Session,
    name: Result<Path<String>, PathRejection>,
) -> Result<Response, ConsoleError> {
    let Path(name) = name?;
    session.require_admin()?;
    let integration = state.integrations.get(&name).await?;
    html(&form_page(
        &session,
        &state,
        Some(&name),
        IntegrationForm::of(&integration),
        None,
    ))
}

/// A rejected form comes back with the values entered (never the secret) and the reason.
fn form_error(
    state: &AppState,
    session: &Session,
    editing: Option<&str>,
    mut form: IntegrationForm,
    error: (String, Option<String>),
) -> Result<Response, ConsoleError> {
    form.secret.clear();
    html_with(
        StatusCode::UNPROCESSABLE_ENTITY,
        &form_page(session, state, editing, form, Some(error)),
    )
}

/// Saves, then checks at once, so the admin sees straight away whether the integration works; a
/// rejected change comes back as the form's error.
async fn save(state: &AppState, session: &Session, change: Save, verb: &str) -> Result<Response, IntegrationError> {
    let (integration, check) = state.integrations.save_and_check(change, check_wait(state)).await?;
    let name = integration.name.to_string();
    let message = match check {
        Saved::Checked(v) if v.report.healthy => format!("Integration {name} {verb}. Checked: healthy."),
        Saved::Checked(v) => format!(
            "Integration {name} {verb}. Checked: FAULTY_CONFIGURATION: {}",
            v.report.reason
        ),
        Saved::StillRunning => format!("Integration {name} {verb}. {STILL_CHECKING}"),
        Saved::NotChecked(e) => format!(
            "Integration {name} {verb}, but it could not be checked: {}",
            e.public_detail()
        ),
        Saved::CheckStopped => format!("Integration {name} {verb}, but it could not be checked: {CHECK_STOPPED}"),
    };
    Ok(session.done(state, &Link::Integration(&name).path(), message).await)
}

/// A refusal the form shows with the values entered (a value at fault, a name already taken), with
/// the field at fault; anything else is an error page of its kind.
fn invalid(e: IntegrationError) -> Result<(String, Option<String>), ConsoleError> {
    match e.kind() {
        ErrorKind::Invalid { field } => Ok((sentence(&e.public_detail()), Some(field))),
        ErrorKind::Conflict => Ok((sentence(&e.public_detail()), None)),
        _ => Err(e.into()),
    }
}

pub async fn create_integration(
    State(state): State<AppState>,
    Change { session, form }: Change<IntegrationForm>,
) -> Result<Response, ConsoleError> {
    let spec = match form.to_spec() {
        Ok(spec) => spec,
        Err(e) => return form_error(&state, &session, None, form, (format!("{e}."), Some(e.field))),
    };
    match save(&state, &session, Save::Create(spec), "added").await {
        Ok(response) => Ok(response),
        Err(e) => form_error(&state, &session, None, form, invalid(e)?),
    }
}

pub async fn update_integration(
    State(state): State<AppState>,
    name: Result<Path<String>, PathRejection>,
    Change { session, mut form }: Change<IntegrationForm>,
) -> Result<Response, ConsoleError> {
    let Path(name) = name?;
    form.name = name.clone();
    let spec = match form.to_spec() {
        Ok(spec) => spec,
        Err(e) => return form_error(&state, &session, Some(&name), form, (format!("{e}."), Some(e.field))),
    };
    let change = Save::Replace {
        name: name.clone(),
        spec,
    };
    match save(&state, &session, change, "saved").await {
        Ok(response) => Ok(response),
        Err(e) => form_error(&state, &session, Some(&name), form, invalid(e)?),
    }
}
