//! API keys: list with role and last use, create (the key shown once),
//! revoke.

use askama::Template;
use axum::extract::{Extension, Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};

use crate::admin::form::AdminForm;
use crate::admin::form::params;
use crate::admin::page::notice;
use crate::admin::page::{AdminError, Confirm, Frame, render_confirm, render_with, when};
use crate::admin::session::CurrentAdmin;
use crate::api::AppState;
use crate::auth::{AuthError, KeyInfo, Role};

/// Keys listed at most (a practice has a handful).
const MAX_LISTED: usize = 500;

pub struct KeyRow {
    pub id: String,
    pub name: String,
    pub role: &'static str,
    pub created: String,
    pub last_used: String,
    pub revoked: String,
    pub is_current: bool,
}

pub struct CreatedKey {
    pub name: String,
    pub role: &'static str,
    pub secret: String,
}

#[derive(Template)]
#[template(path = "keys.html")]
struct KeysPage {
    frame: Frame,
    keys: Vec<KeyRow>,
    created: Option<CreatedKey>,
    name: String,
    role: String,
    roles: [&'static str; 3],
}

async fn keys_page(
    state: &AppState,
    admin: &CurrentAdmin,
    status: StatusCode,
    frame: Frame,
    created: Option<CreatedKey>,
) -> Result<Response, AdminError> {
    let keys: Vec<KeyInfo> = state.keys.list(None, MAX_LISTED).await?;
    let rows = keys
        .into_iter()
        .map(|k| KeyRow {
            is_current: k.id == admin.session.key_id,
            id: k.id,
            name: k.name,
            role: k.role.as_str(),
            created: when(&k.created_at),
            last_used: k.last_used_at.as_deref().map(when).unwrap_or_default(),
            revoked: k.revoked_at.as_deref().map(when).unwrap_or_default(),
        })
        .collect();
    Ok(render_with(
        status,
        &KeysPage {
            frame,
            keys: rows,
            created,
            name: String::new(),
            role: "integration".into(),
            roles: [
                Role::Superadmin.as_str(),
                Role::Staff.as_str(),
                Role::Integration.as_str(),
            ],
        },
    ))
}

pub async fn list(
    State(state): State<AppState>,
    Extension(admin): Extension<CurrentAdmin>,
    RawQuery(raw): RawQuery,
) -> Result<Response, AdminError> {
    let frame = Frame::new(&admin, "keys", "API keys").with_notice(notice(&params(raw.as_deref())));
    keys_page(&state, &admin, StatusCode::OK, frame, None).await
}

pub async fn create(
    State(state): State<AppState>,
    form: AdminForm,
) -> Result<Response, AdminError> {
    let admin = &form.admin;
    let frame = Frame::new(admin, "keys", "API keys");
    let Some(role) = Role::parse(form.fields.get("role")) else {
        let frame = frame.with_problem(Some("Choose a role for the key.".into()));
        return keys_page(&state, admin, StatusCode::UNPROCESSABLE_ENTITY, frame, None).await;
    };
    match state
        .keys
        .create(form.fields.get("name"), role, &admin.actor)
        .await
    {
        Ok((info, secret)) => {
            let created = CreatedKey {
                name: info.name,
                role: info.role.as_str(),
                secret,
            };
            let frame = frame.with_notice(Some(
                "The key was created. Copy it now: it is shown only this once.".into(),
            ));
            keys_page(&state, admin, StatusCode::CREATED, frame, Some(created)).await
        }
        Err(AuthError::InvalidName) => {
            let frame = frame.with_problem(Some("The name must be 1 to 100 characters.".into()));
            keys_page(&state, admin, StatusCode::UNPROCESSABLE_ENTITY, frame, None).await
        }
        Err(err) => Err(err.into()),
    }
}

pub async fn confirm_revoke(
    State(state): State<AppState>,
    Extension(admin): Extension<CurrentAdmin>,
    Path(id): Path<String>,
) -> Result<Response, AdminError> {
    let keys = state.keys.list(None, MAX_LISTED).await?;
    let key = keys
        .into_iter()
        .find(|k| k.id == id && k.revoked_at.is_none())
        .ok_or(AdminError::NotFound)?;
    let signs_out = if key.id == admin.session.key_id {
        " It is the key of this session: you are signed out."
    } else {
        ""
    };
    Ok(render_confirm(
        Frame::new(&admin, "keys", "Revoke API key"),
        Confirm {
            question: "Revoke the key",
            subject: format!("{} ({}, {})", key.name, key.role.as_str(), key.id),
            consequence: format!(
                "Every request made with it is refused from then on, and an integration using it needs a new key.{signs_out}"
            ),
            action: format!("/admin/keys/{}/revoke", key.id),
            button: "Revoke key",
            back: "/admin/keys".into(),
        },
    ))
}

pub async fn revoke(
    State(state): State<AppState>,
    Path(id): Path<String>,
    form: AdminForm,
) -> Result<Response, AdminError> {
    match state.keys.revoke(&id, true, &form.admin.actor).await {
        Ok(()) => Ok(Redirect::to("/admin/keys?notice=key_revoked").into_response()),
        Err(AuthError::LastSuperadmin) => Err(AdminError::Conflict(
            "This is the last active Superadmin key; create another before revoking it.".into(),
        )),
        Err(err) => Err(err.into()),
    }
}
