//! What every page shares: the frame around it (navigation, sign-out form,
//! notices), rendering, and the error page.

use askama::Template;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};

use super::form::param;
use super::session::CurrentAdmin;
use crate::auth::AuthError;
use crate::store::StoreError;
use crate::webhooks::deliveries::DeliveryError;
use crate::webhooks::endpoint::EndpointError;

/// The parts of the layout that come from the request.
pub struct Frame {
    pub title: String,
    /// Which navigation entry is current.
    pub section: &'static str,
    pub csrf: String,
    /// The name of the key the admin signed in with.
    pub who: String,
    /// A message about what was just done.
    pub notice: Option<String>,
    /// A message about what could not be done.
    pub problem: Option<String>,
}

impl Frame {
    pub fn new(admin: &CurrentAdmin, section: &'static str, title: impl Into<String>) -> Frame {
        Frame {
            title: title.into(),
            section,
            csrf: admin.session.csrf_token.clone(),
            who: admin.session.key_name.clone(),
            notice: None,
            problem: None,
        }
    }

    pub fn with_notice(mut self, notice: Option<String>) -> Frame {
        self.notice = notice;
        self
    }

    pub fn with_problem(mut self, problem: Option<String>) -> Frame {
        self.problem = problem;
        self
    }

    pub fn is(&self, section: &str) -> bool {
        self.section == section
    }

    /// The section's name and page, for the breadcrumb.
    pub fn crumb(&self) -> (&'static str, &'static str) {
        match self.section {
            "event-types" => ("Event catalogue", "/admin/event-types"),
            "egress" => ("Egress addresses", "/admin/egress"),
            "keys" => ("API keys", "/admin/keys"),
            "audit" => ("Audit log", "/admin/audit"),
            _ => ("Integrations", "/admin/integrations"),
        }
    }
}

/// Render a page with the given status.
pub fn render_with(status: StatusCode, page: &impl Template) -> Response {
    match page.render() {
        Ok(html) => (status, Html(html)).into_response(),
        Err(err) => {
            tracing::error!(error = %err, "an admin page failed to render");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "the page could not be rendered",
            )
                .into_response()
        }
    }
}

pub fn render(page: &impl Template) -> Response {
    render_with(StatusCode::OK, page)
}

/// A destructive action, asked about on a page of its own before it is
/// taken (so the question works without script).
pub struct Confirm {
    /// "Delete the endpoint", followed by the subject and a question mark.
    pub question: &'static str,
    pub subject: String,
    /// What follows from it (before "This cannot be undone.").
    pub consequence: String,
    /// Where the form posts.
    pub action: String,
    pub button: &'static str,
    /// Where "Keep it" leads.
    pub back: String,
}

#[derive(Template)]
#[template(path = "confirm.html")]
struct ConfirmPage {
    frame: Frame,
    confirm: Confirm,
}

pub fn render_confirm(frame: Frame, confirm: Confirm) -> Response {
    render(&ConfirmPage { frame, confirm })
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage<'a> {
    status: u16,
    title: &'a str,
    detail: &'a str,
}

/// Why a page cannot be shown or an action not taken.
#[derive(Debug)]
pub enum AdminError {
    /// The form's CSRF token or origin is wrong.
    Forgery,
    /// The key is valid but not a Superadmin's.
    Role(&'static str),
    NotFound,
    /// The action does not fit the current state.
    Conflict(String),
    /// A form field is not understood; the message says what it needs.
    Invalid(String),
    BadForm,
    TooLarge,
    /// The key's request rate limit was reached.
    RateLimited,
    Unavailable,
}

impl AdminError {
    fn parts(&self) -> (StatusCode, &'static str, String) {
        match self {
            AdminError::Forgery => (
                StatusCode::FORBIDDEN,
                "Form refused",
                "The form did not come from this page or has expired. Go back, reload the page and try again.".into(),
            ),
            AdminError::Role(role) => (
                StatusCode::FORBIDDEN,
                "Superadmins only",
                format!(
                    "The admin pages are for Superadmin keys. This is a {role} key: it can use the API within its role, but cannot manage integrations. Ask a Superadmin for access."
                ),
            ),
            AdminError::NotFound => (
                StatusCode::NOT_FOUND,
                "Not found",
                "There is nothing here. It may have been deleted.".into(),
            ),
            AdminError::Conflict(why) => (StatusCode::CONFLICT, "Not possible now", why.clone()),
            AdminError::Invalid(why) => (
                StatusCode::UNPROCESSABLE_ENTITY,
                "Check the form",
                why.clone(),
            ),
            AdminError::BadForm => (
                StatusCode::BAD_REQUEST,
                "Form not understood",
                "The form could not be read. Reload the page and try again.".into(),
            ),
            AdminError::TooLarge => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "Form too large",
                "The form is larger than the server accepts.".into(),
            ),
            AdminError::RateLimited => (
                StatusCode::TOO_MANY_REQUESTS,
                "Too many requests",
                "This key made more requests than the server allows per second. Wait a moment and reload.".into(),
            ),
            AdminError::Unavailable => (
                StatusCode::SERVICE_UNAVAILABLE,
                "Temporarily unavailable",
                "The database cannot be reached just now. Try again in a moment.".into(),
            ),
        }
    }
}

impl IntoResponse for AdminError {
    fn into_response(self) -> Response {
        let (status, title, detail) = self.parts();
        let mut response = render_with(
            status,
            &ErrorPage {
                status: status.as_u16(),
                title,
                detail: &detail,
            },
        );
        if status == StatusCode::SERVICE_UNAVAILABLE || status == StatusCode::TOO_MANY_REQUESTS {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        response
    }
}

impl From<StoreError> for AdminError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::NotFound => AdminError::NotFound,
            other => {
                tracing::warn!(error = %other, "an admin page could not reach the store");
                AdminError::Unavailable
            }
        }
    }
}

impl From<EndpointError> for AdminError {
    fn from(err: EndpointError) -> Self {
        match err {
            EndpointError::NotFound => AdminError::NotFound,
            EndpointError::Conflict => AdminError::Conflict(
                "The endpoint was changed meanwhile. Reload the page and try again.".into(),
            ),
            EndpointError::TooMany => AdminError::Conflict(
                "The deployment already has its maximum number of endpoints; delete one first."
                    .into(),
            ),
            EndpointError::Invalid(errors) => AdminError::Invalid(
                errors
                    .iter()
                    .map(|e| format!("{}: {}", e.field, e.message))
                    .collect::<Vec<_>>()
                    .join("; "),
            ),
            EndpointError::Secrets(err) => {
                tracing::error!(error = %err, "a sealed endpoint secret could not be opened");
                AdminError::Unavailable
            }
            EndpointError::Store(err) => err.into(),
        }
    }
}

fn messages(errors: &[crate::records::validate::FieldError]) -> String {
    errors
        .iter()
        .map(|e| e.message.clone())
        .collect::<Vec<_>>()
        .join("; ")
}

impl From<DeliveryError> for AdminError {
    fn from(err: DeliveryError) -> Self {
        match err {
            DeliveryError::NotFound => AdminError::NotFound,
            DeliveryError::Invalid(errors) => AdminError::Invalid(messages(&errors)),
            DeliveryError::Conflict(errors) => AdminError::Conflict(messages(&errors)),
            DeliveryError::Endpoint(err) => err.into(),
            DeliveryError::Store(err) => err.into(),
        }
    }
}

impl From<AuthError> for AdminError {
    fn from(err: AuthError) -> Self {
        match err {
            AuthError::NotFound => AdminError::NotFound,
            AuthError::Store(err) => err.into(),
            other => AdminError::Conflict(other.to_string()),
        }
    }
}

/// What a redirect after an action says it did (fixed texts, never input).
pub fn notice(params: &[(String, String)]) -> Option<String> {
    let text = match param(params, "notice")? {
        "created" => "The endpoint was added. It receives the events you ticked from now on.",
        "saved" => "Your changes were saved.",
        "unchanged" => "Nothing changed.",
        "deleted" => "The endpoint was deleted; its pending deliveries were cancelled.",
        "enabled" => "The endpoint is enabled again. Use “Recover” to send what it missed.",
        "disabled" => "The endpoint is disabled; it is sent nothing until enabled.",
        "retried" => "The delivery was queued for another attempt.",
        "recovered" => {
            let requeued = param(params, "requeued").and_then(|n| n.parse::<u64>().ok());
            let created = param(params, "created").and_then(|n| n.parse::<u64>().ok());
            return Some(format!(
                "Recovery started: {} failed deliveries re-queued, {} missed events queued.",
                requeued.unwrap_or(0),
                created.unwrap_or(0)
            ));
        }
        "key_revoked" => "The key was revoked; it stops working at once.",
        _ => return None,
    };
    Some(text.to_owned())
}

pub async fn not_found() -> AdminError {
    AdminError::NotFound
}

/// `2026-12-04T11:28:54.123456Z` → `2026-12-04 11:28:54 UTC`.
pub fn when(text: &str) -> String {
    match chrono::DateTime::parse_from_rfc3339(text) {
        Ok(t) => t
            .with_timezone(&chrono::Utc)
            .format("%Y-%m-%d %H:%M:%S UTC")
            .to_string(),
        Err(_) => text.to_owned(),
    }
}
