//! Signing in with a Superadmin API key, and signing out.

use askama::Template;
use axum::extract::{RawQuery, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::admin::form::{self, AdminForm};
use crate::admin::page::{AdminError, render_with};
use crate::admin::session::{self, SESSION_COOKIE, SIGN_IN_COOKIE};
use crate::api::AppState;
use crate::auth::sessions::{SessionError, tokens_match};
use crate::ids;

#[derive(Template)]
#[template(path = "sign_in.html")]
struct SignInPage {
    csrf: String,
    notice: Option<&'static str>,
    problem: Option<&'static str>,
}

/// The sign-in form, with a fresh value for the double-submit check.
fn sign_in_page(
    secure: bool,
    status: StatusCode,
    notice: Option<&'static str>,
    problem: Option<&'static str>,
) -> Response {
    let csrf = URL_SAFE_NO_PAD.encode(ids::random_bytes(24));
    let mut response = render_with(
        status,
        &SignInPage {
            csrf: csrf.clone(),
            notice,
            problem,
        },
    );
    response.headers_mut().append(
        header::SET_COOKIE,
        session::set_cookie(SIGN_IN_COOKIE, &csrf, 3600, secure),
    );
    response
}

pub async fn form(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    // Already signed in: straight on.
    let token = session::cookie(&headers, SESSION_COOKIE).unwrap_or_default();
    if !token.is_empty() && matches!(state.sessions.resolve(&token).await, Ok(Some(_))) {
        return Redirect::to("/admin/integrations").into_response();
    }
    let notice = match query.as_deref() {
        Some("signed_out=1") => Some("You are signed out."),
        _ => None,
    };
    sign_in_page(
        session::secure_cookies(&state, &headers),
        StatusCode::OK,
        notice,
        None,
    )
}

pub async fn submit(State(state): State<AppState>, request: Request) -> Response {
    if !form::same_origin(request.headers()) {
        return AdminError::Forgery.into_response();
    }
    let expected = session::cookie(request.headers(), SIGN_IN_COOKIE).unwrap_or_default();
    let secure = session::secure_cookies(&state, request.headers());
    let ip = crate::api::source_ip(&request);
    let fields = match form::read_fields(request).await {
        Ok(fields) => fields,
        Err(err) => return err.into_response(),
    };
    if !tokens_match(fields.get("csrf"), &expected) {
        return AdminError::Forgery.into_response();
    }
    let key = fields.get("api_key");
    if key.is_empty() {
        return sign_in_page(
            secure,
            StatusCode::UNPROCESSABLE_ENTITY,
            None,
            Some("Enter a Superadmin API key."),
        );
    }
    match state.sessions.open(key, ip).await {
        Ok(token) => {
            let lifetime = state.sessions.settings().lifetime.as_secs();
            let mut response = Redirect::to("/admin/integrations").into_response();
            let headers = response.headers_mut();
            headers.append(
                header::SET_COOKIE,
                session::set_cookie(SESSION_COOKIE, &token, lifetime, secure),
            );
            headers.append(
                header::SET_COOKIE,
                session::set_cookie(SIGN_IN_COOKIE, "", 0, secure),
            );
            response
        }
        Err(SessionError::UnknownKey) => sign_in_page(
            secure,
            StatusCode::UNAUTHORIZED,
            None,
            Some("That API key is unknown or has been revoked."),
        ),
        Err(SessionError::WrongRole(role)) => AdminError::Role(role.as_str()).into_response(),
        Err(SessionError::Store(err)) => AdminError::from(err).into_response(),
    }
}

pub async fn sign_out(State(state): State<AppState>, form: AdminForm) -> Response {
    if let Err(err) = state
        .sessions
        .close(&form.admin.token, &form.admin.actor)
        .await
    {
        return AdminError::from(err).into_response();
    }
    let mut response = Redirect::to("/admin/sign-in?signed_out=1").into_response();
    response.headers_mut().append(
        header::SET_COOKIE,
        session::set_cookie(SESSION_COOKIE, "", 0, form.admin.secure_cookies),
    );
    response
}
