//! Cookies and the session check in front of every signed-in page.

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};

use super::page::AdminError;
use crate::api::AppState;
use crate::auth::sessions::Session;
use crate::auth::{Principal, Role};
use crate::events::Actor;

/// The session cookie: the session's token.
pub const SESSION_COOKIE: &str = "cw_session";
/// Before sign-in: the value the sign-in form must repeat (double submit).
pub const SIGN_IN_COOKIE: &str = "cw_sign_in";

/// The signed-in admin of a request, put there by [`require`].
#[derive(Clone)]
pub struct CurrentAdmin {
    pub session: Session,
    pub token: String,
    /// The actor for audit entries and events: the session's key, from
    /// the request's address.
    pub actor: Actor,
    /// Whether cookies set in answer carry `Secure`.
    pub secure_cookies: bool,
}

/// Cookies are `Secure` when chartwire serves TLS itself, or when the
/// proxy in front says the browser came over HTTPS (that can only make
/// them stricter).
pub fn secure_cookies(state: &AppState, headers: &HeaderMap) -> bool {
    state.secure_cookies
        || headers
            .get("x-forwarded-proto")
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"https"))
}

/// A cookie's value from the request's `Cookie` headers.
pub fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value.to_owned())
}

/// A `Set-Cookie` value scoped to the admin pages. `max_age` 0 removes it.
pub fn set_cookie(name: &str, value: &str, max_age: u64, secure: bool) -> HeaderValue {
    let secure = if secure { "; Secure" } else { "" };
    HeaderValue::from_str(&format!(
        "{name}={value}; Path=/admin; Max-Age={max_age}; HttpOnly; SameSite=Strict{secure}"
    ))
    .unwrap_or_else(|_| HeaderValue::from_static("cw_invalid=; Max-Age=0"))
}

/// Let the request through with its [`CurrentAdmin`], or send the browser
/// to the sign-in page (and forget a cookie that no longer works). A
/// session's requests count against its key's rate limit, as the API's do.
pub async fn require(State(state): State<AppState>, mut request: Request, next: Next) -> Response {
    let token = cookie(request.headers(), SESSION_COOKIE).unwrap_or_default();
    let secure = secure_cookies(&state, request.headers());
    let session = match state.sessions.resolve(&token).await {
        Ok(session) => session,
        Err(err) => return AdminError::from(err).into_response(),
    };
    let Some(session) = session else {
        let mut response = Redirect::to("/admin/sign-in").into_response();
        if !token.is_empty() {
            response.headers_mut().append(
                header::SET_COOKIE,
                set_cookie(SESSION_COOKIE, "", 0, secure),
            );
        }
        return response;
    };
    if state.rate_limiter.take(&session.key_id).is_err() {
        return AdminError::RateLimited.into_response();
    }
    let principal = Principal {
        key_id: session.key_id.clone(),
        role: Role::Superadmin,
    };
    let actor = Actor::api_key(&session.key_id).with_ip(crate::api::source_ip(&request));
    request.extensions_mut().insert(CurrentAdmin {
        session,
        token,
        actor,
        secure_cookies: secure,
    });
    let mut response = next.run(request).await;
    // For the request log: which key's session made the request.
    response.extensions_mut().insert(principal);
    response
}
