//! Admin › Manage › Integrations: the endpoint list, adding, editing and
//! deleting an endpoint.

use askama::Template;
use axum::extract::{Extension, Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};

use crate::admin::endpoint_form::EndpointForm;
use crate::admin::form::{AdminForm, param, params};
use crate::admin::page::{AdminError, Confirm, Frame, notice, render, render_confirm, render_with};
use crate::admin::session::CurrentAdmin;
use crate::admin::views::{EndpointRow, text};
use crate::api::AppState;
use crate::records::validate::FieldError;
use crate::webhooks::endpoint::EndpointError;

/// Endpoints per page of the list.
const PAGE: usize = 50;

pub async fn home() -> Redirect {
    Redirect::to("/admin/integrations")
}

#[derive(Template)]
#[template(path = "integrations.html")]
struct IntegrationsPage {
    frame: Frame,
    rows: Vec<EndpointRow>,
    next: Option<String>,
}

pub async fn list(
    State(state): State<AppState>,
    Extension(admin): Extension<CurrentAdmin>,
    RawQuery(raw): RawQuery,
) -> Result<Response, AdminError> {
    let params = params(raw.as_deref());
    let after = param(&params, "after")
        .filter(|c| c.starts_with("ep_") && c.len() <= 64)
        .map(str::to_owned);
    let mut endpoints = state.endpoints.list(after, PAGE + 1).await?;
    let more = endpoints.len() > PAGE;
    endpoints.truncate(PAGE);
    let since = (chrono::Utc::now() - chrono::Duration::hours(24))
        .to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    let stats = state.deliveries.attempt_stats(&since).await?;
    let rows: Vec<EndpointRow> = endpoints
        .iter()
        .map(|view| {
            let id = view["id"].as_str().unwrap_or("");
            let (attempts, succeeded) = stats
                .get(id)
                .map(|s| (s.attempts, s.succeeded))
                .unwrap_or((0, 0));
            EndpointRow::new(view, attempts, succeeded)
        })
        .collect();
    let next = more
        .then(|| rows.last().map(|r| r.head.id.clone()))
        .flatten();
    Ok(render(&IntegrationsPage {
        frame: Frame::new(&admin, "integrations", "Integrations").with_notice(notice(&params)),
        rows,
        next,
    }))
}

#[derive(Template)]
#[template(path = "endpoint_form.html")]
struct FormPage {
    frame: Frame,
    form: EndpointForm,
}

fn form_page(admin: &CurrentAdmin, form: EndpointForm, status: StatusCode) -> Response {
    let title = if form.is_new() {
        "Add an endpoint"
    } else {
        "Edit endpoint"
    };
    let problem = (!form.errors.is_empty())
        .then(|| "The endpoint was not saved: correct the fields marked below.".to_owned());
    render_with(
        status,
        &FormPage {
            frame: Frame::new(admin, "integrations", title).with_problem(problem),
            form,
        },
    )
}

/// The form again, with what was wrong marked.
fn refused(admin: &CurrentAdmin, shown: EndpointForm, errors: &[FieldError]) -> Response {
    form_page(
        admin,
        shown.with_errors(errors),
        StatusCode::UNPROCESSABLE_ENTITY,
    )
}

pub async fn new_form(Extension(admin): Extension<CurrentAdmin>) -> Response {
    form_page(&admin, EndpointForm::blank(), StatusCode::OK)
}

pub async fn create(
    State(state): State<AppState>,
    form: AdminForm,
) -> Result<Response, AdminError> {
    let (shown, body) = EndpointForm::submitted(&form.fields, None);
    let body = match body {
        Ok(body) => body,
        Err(errors) => return Ok(refused(&form.admin, shown, &errors)),
    };
    match state.endpoints.create(&body, &form.admin.actor).await {
        Ok(created) => {
            let id = created["id"].as_str().unwrap_or_default();
            Ok(Redirect::to(&format!("/admin/integrations/{id}?notice=created")).into_response())
        }
        Err(EndpointError::Invalid(errors)) => Ok(refused(&form.admin, shown, &errors)),
        Err(err) => Err(err.into()),
    }
}

pub async fn edit_form(
    State(state): State<AppState>,
    Extension(admin): Extension<CurrentAdmin>,
    Path(id): Path<String>,
) -> Result<Response, AdminError> {
    let view = state.endpoints.get(&id).await?;
    Ok(form_page(
        &admin,
        EndpointForm::from_view(&view),
        StatusCode::OK,
    ))
}

pub async fn update(
    State(state): State<AppState>,
    Path(id): Path<String>,
    form: AdminForm,
) -> Result<Response, AdminError> {
    let current = state.endpoints.get(&id).await?;
    let (shown, patch) = EndpointForm::submitted(&form.fields, Some(&current));
    let patch = match patch {
        Ok(patch) => patch,
        Err(errors) => return Ok(refused(&form.admin, shown, &errors)),
    };
    let before = current["updated_at"].clone();
    match state.endpoints.patch(&id, &patch, &form.admin.actor).await {
        Ok(after) => {
            let notice = if after["updated_at"] == before {
                "unchanged"
            } else {
                "saved"
            };
            Ok(Redirect::to(&format!("/admin/integrations/{id}?notice={notice}")).into_response())
        }
        Err(EndpointError::Invalid(errors)) => Ok(refused(&form.admin, shown, &errors)),
        Err(err) => Err(err.into()),
    }
}

pub async fn confirm_delete(
    State(state): State<AppState>,
    Extension(admin): Extension<CurrentAdmin>,
    Path(id): Path<String>,
) -> Result<Response, AdminError> {
    let view = state.endpoints.get(&id).await?;
    let url = text(&view, "url");
    let description = text(&view, "description");
    Ok(render_confirm(
        Frame::new(&admin, "integrations", "Delete endpoint"),
        Confirm {
            question: "Delete the endpoint",
            subject: if description.is_empty() {
                url
            } else {
                format!("{url} ({description})")
            },
            consequence: "It will be sent nothing more and its pending deliveries are cancelled; its delivery log stays readable until it is purged.".into(),
            action: format!("/admin/integrations/{id}/delete"),
            button: "Delete endpoint",
            back: format!("/admin/integrations/{id}"),
        },
    ))
}

pub async fn delete(
    State(state): State<AppState>,
    Path(id): Path<String>,
    form: AdminForm,
) -> Result<Response, AdminError> {
    state.endpoints.delete(&id, &form.admin.actor).await?;
    Ok(Redirect::to("/admin/integrations?notice=deleted").into_response())
}
