//! The admin pages under `/admin` ("Admin › Manage › Integrations"):
//! server-rendered HTML for Superadmins to manage webhook endpoints, API
//! keys and to read the audit log.
//!
//! A browser signs in with a Superadmin API key and gets a session cookie
//! (`HttpOnly`, `SameSite=Strict`, `Secure` over TLS); every form carries
//! the session's CSRF token, checked by the [`form::AdminForm`] extractor
//! that every POST handler takes. Pages call the same domain services as
//! the API (endpoints, deliveries, keys, audit), so rules, events and audit
//! entries are the same whichever way a change is made. No SQL and no
//! business rules here; nothing a page shows is loaded from elsewhere (no
//! CDN): styles and the small script are compiled into the binary.

mod assets;
mod endpoint_form;
mod form;
mod page;
mod pages;
mod session;
mod views;

use axum::Router;
use axum::extract::Request;
use axum::http::{HeaderValue, header};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{get, post};

use crate::api::AppState;
use pages::{audit, catalogue, endpoint, integrations, keys, sign_in};

/// Every admin route. Pages other than sign-in and the static assets need a
/// session.
pub fn router(state: &AppState) -> Router<AppState> {
    let signed_in = Router::new()
        .route("/admin", get(integrations::home))
        .route("/admin/", get(integrations::home))
        .route(
            "/admin/integrations",
            get(integrations::list).post(integrations::create),
        )
        .route("/admin/integrations/new", get(integrations::new_form))
        .route("/admin/integrations/{id}", get(endpoint::detail))
        .route(
            "/admin/integrations/{id}/edit",
            get(integrations::edit_form).post(integrations::update),
        )
        .route(
            "/admin/integrations/{id}/delete",
            get(integrations::confirm_delete).post(integrations::delete),
        )
        .route(
            "/admin/integrations/{id}/enabled",
            post(endpoint::set_enabled),
        )
        .route(
            "/admin/integrations/{id}/secret",
            post(endpoint::reveal_secret),
        )
        .route(
            "/admin/integrations/{id}/rotate-secret",
            post(endpoint::rotate_secret),
        )
        .route("/admin/integrations/{id}/test", post(endpoint::send_test))
        .route("/admin/integrations/{id}/recover", post(endpoint::recover))
        .route("/admin/deliveries/{id}/retry", post(endpoint::retry))
        .route("/admin/event-types", get(catalogue::event_types))
        .route("/admin/egress", get(catalogue::egress))
        .route("/admin/keys", get(keys::list).post(keys::create))
        .route(
            "/admin/keys/{id}/revoke",
            get(keys::confirm_revoke).post(keys::revoke),
        )
        .route("/admin/audit", get(audit::list))
        .route("/admin/sign-out", post(sign_in::sign_out))
        .route("/admin/{*rest}", get(page::not_found))
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            session::require,
        ));
    Router::new()
        .route("/admin/sign-in", get(sign_in::form).post(sign_in::submit))
        .route("/admin/assets/{file}", get(assets::serve))
        .merge(signed_in)
        .layer(middleware::from_fn(protective_headers))
}

/// The content security policy: everything from this server, nothing
/// inline, nothing from anywhere else, no framing.
const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
     img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; \
     base-uri 'none'; object-src 'none'";

async fn protective_headers(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    if !headers.contains_key(header::CACHE_CONTROL) {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}
