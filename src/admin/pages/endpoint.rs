//! An endpoint's page: its settings, signing secret (revealed on request,
//! audited), test event, delivery log with attempts, retry and recover.

use std::time::Duration;

use askama::Template;
use axum::extract::{Extension, Path, RawQuery, State};
use axum::response::{IntoResponse, Redirect, Response};
use serde_json::{Value, json};

use crate::admin::form::AdminForm;
use crate::admin::form::{param, params};
use crate::admin::page::notice;
use crate::admin::page::{AdminError, Frame, render};
use crate::admin::session::CurrentAdmin;
use crate::admin::views::{self, DeliveryView};
use crate::api::AppState;
use crate::events::catalogue;
use crate::webhooks::deliveries::{self, STATUSES};

/// Deliveries per page of the log.
const PAGE: usize = 25;
/// How long "send test event" waits for the test's first attempt.
const TEST_WAIT: Duration = Duration::from_secs(5);

/// A secret shown once, on request.
pub struct SecretShown {
    pub label: &'static str,
    pub value: String,
    pub note: Option<String>,
}

/// What became of a test event.
pub struct TestResult {
    pub ok: bool,
    pub text: String,
}

/// Something to show on the page besides the endpoint itself.
#[derive(Default)]
struct Extras {
    secret: Option<SecretShown>,
    test: Option<TestResult>,
}

pub struct Summary {
    pub head: views::EndpointHead,
    pub events: Vec<String>,
    pub headers: Vec<(String, String)>,
    pub ordering: String,
    pub content: String,
    pub signature: String,
    pub rotation_ends: String,
    pub created: String,
    pub updated: String,
    pub failing_since: String,
}

impl Summary {
    fn new(view: &Value) -> Summary {
        Summary {
            head: views::EndpointHead::of(view),
            events: views::strings(&view["events"]),
            headers: view["headers"]
                .as_object()
                .map(|h| {
                    h.iter()
                        .map(|(k, v)| (k.clone(), v.as_str().unwrap_or("…").to_owned()))
                        .collect()
                })
                .unwrap_or_default(),
            ordering: views::text(view, "ordering"),
            content: views::text(view, "content"),
            signature: views::text(view, "signature"),
            rotation_ends: views::time(view, "secret_rotation_ends_at"),
            created: views::time(view, "created_at"),
            updated: views::time(view, "updated_at"),
            failing_since: views::time(&view["health"], "failing_since"),
        }
    }

    pub fn enabled(&self) -> bool {
        self.head.status == "enabled"
    }
}

#[derive(Template)]
#[template(path = "endpoint_detail.html")]
struct DetailPage {
    frame: Frame,
    endpoint: Summary,
    secret: Option<SecretShown>,
    test: Option<TestResult>,
    deliveries: Vec<DeliveryView>,
    statuses: &'static [&'static str],
    event_types: Vec<String>,
    status_filter: String,
    type_filter: String,
    /// The query string of the next (older) page.
    older: Option<String>,
    filtered: bool,
    recover_since: String,
    /// Where the script re-reads the log from (this page, as filtered).
    refresh_url: String,
}

/// The delivery log's query string for these filters and this page.
fn log_query(status: &Option<String>, event_type: &Option<String>, before: Option<i64>) -> String {
    let mut pairs = Vec::new();
    if let Some(before) = before {
        pairs.push(("before", format!("dlv_{before}")));
    }
    if let Some(status) = status {
        pairs.push(("status", status.clone()));
    }
    if let Some(event_type) = event_type {
        pairs.push(("event_type", event_type.clone()));
    }
    serde_urlencoded::to_string(pairs).unwrap_or_default()
}

async fn detail_page(
    state: &AppState,
    admin: &CurrentAdmin,
    id: &str,
    query: &[(String, String)],
    extras: Extras,
) -> Result<Response, AdminError> {
    let view = state.endpoints.get(id).await?;
    let status_filter = param(query, "status")
        .filter(|s| STATUSES.contains(s))
        .map(str::to_owned);
    let type_filter = param(query, "event_type")
        .filter(|t| catalogue::find(t).is_some())
        .map(str::to_owned);
    let before = param(query, "before").and_then(deliveries::parse_id);
    let (page, next) = state
        .deliveries
        .list(id, status_filter.clone(), type_filter.clone(), before, PAGE)
        .await?;
    let mut shown = Vec::with_capacity(page.len());
    for delivery in &page {
        let Some(delivery_id) = delivery["id"].as_str().and_then(deliveries::parse_id) else {
            continue;
        };
        match state.deliveries.get(delivery_id).await {
            Ok(full) => shown.push(DeliveryView::new(&full)),
            // Purged between the two reads: leave it out.
            Err(crate::webhooks::deliveries::DeliveryError::NotFound) => {}
            Err(err) => return Err(err.into()),
        }
    }
    let mut event_types = catalogue::expand(&views::strings(&view["events"])).unwrap_or_default();
    event_types.push(catalogue::TEST_EVENT.to_owned());
    let refresh_url = format!(
        "/admin/integrations/{id}?{}",
        log_query(&status_filter, &type_filter, before)
    );
    let older = next.map(|n| log_query(&status_filter, &type_filter, Some(n)));
    let endpoint = Summary::new(&view);
    let title = if endpoint.head.description.is_empty() {
        "Endpoint".to_owned()
    } else {
        endpoint.head.description.clone()
    };
    let recover_since = (chrono::Utc::now() - chrono::Duration::hours(24))
        .format("%Y-%m-%dT%H:%M")
        .to_string();
    Ok(render(&DetailPage {
        frame: Frame::new(admin, "integrations", title).with_notice(notice(query)),
        endpoint,
        secret: extras.secret,
        test: extras.test,
        deliveries: shown,
        statuses: STATUSES,
        event_types,
        filtered: status_filter.is_some() || type_filter.is_some() || before.is_some(),
        status_filter: status_filter.unwrap_or_default(),
        type_filter: type_filter.unwrap_or_default(),
        older,
        recover_since,
        refresh_url,
    }))
}

pub async fn detail(
    State(state): State<AppState>,
    Extension(admin): Extension<CurrentAdmin>,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> Result<Response, AdminError> {
    detail_page(
        &state,
        &admin,
        &id,
        &params(raw.as_deref()),
        Extras::default(),
    )
    .await
}

pub async fn set_enabled(
    State(state): State<AppState>,
    Path(id): Path<String>,
    form: AdminForm,
) -> Result<Response, AdminError> {
    let on = form.fields.get("enabled") == "true";
    state
        .endpoints
        .patch(&id, &json!({"enabled": on}), &form.admin.actor)
        .await?;
    let notice = if on { "enabled" } else { "disabled" };
    Ok(Redirect::to(&format!("/admin/integrations/{id}?notice={notice}")).into_response())
}

/// The page's extra: the secret an action just revealed or made.
fn showing_secret(shown: &Value, note: Option<String>) -> Extras {
    let (label, value) = match shown["public_key"].as_str() {
        Some(public_key) => ("Public key (Ed25519)", public_key.to_owned()),
        None => ("Signing secret", views::text(shown, "secret")),
    };
    Extras {
        secret: Some(SecretShown { label, value, note }),
        ..Extras::default()
    }
}

pub async fn reveal_secret(
    State(state): State<AppState>,
    Path(id): Path<String>,
    form: AdminForm,
) -> Result<Response, AdminError> {
    let shown = state
        .endpoints
        .reveal_secret(&id, &form.admin.actor)
        .await?;
    let extras = showing_secret(&shown, None);
    detail_page(&state, &form.admin, &id, &[], extras).await
}

pub async fn rotate_secret(
    State(state): State<AppState>,
    Path(id): Path<String>,
    form: AdminForm,
) -> Result<Response, AdminError> {
    let shown = state
        .endpoints
        .rotate_secret(&id, &form.admin.actor)
        .await?;
    let note = format!(
        "The secret was rotated. Until {} requests carry signatures with both the new and the previous secret, so your receiver can switch over.",
        views::time(&shown, "previous_secret_expires_at")
    );
    let extras = showing_secret(&shown, Some(note));
    detail_page(&state, &form.admin, &id, &[], extras).await
}

/// Send a `webhook.test` and wait briefly for its first attempt.
pub async fn send_test(
    State(state): State<AppState>,
    Path(id): Path<String>,
    form: AdminForm,
) -> Result<Response, AdminError> {
    let sent = state.endpoints.send_test(&id, &form.admin.actor).await?;
    let event_id = views::text(&sent, "event_id");
    let deadline = tokio::time::Instant::now() + TEST_WAIT;
    let mut result = TestResult {
        ok: false,
        text: format!(
            "Test event {event_id} was queued but not yet attempted; its delivery appears in the log below."
        ),
    };
    loop {
        let (page, _) = state
            .deliveries
            .list(&id, None, Some(catalogue::TEST_EVENT.to_owned()), None, 5)
            .await?;
        let attempted = page
            .iter()
            .find(|d| d["event_id"] == event_id.as_str() && d["attempts"].as_i64() > Some(0));
        if let Some(delivery) = attempted {
            let (outcome, ok) = views::outcome(
                delivery["last_http_status"].as_i64(),
                delivery["last_error"].as_str(),
            );
            result = TestResult {
                ok,
                text: if ok {
                    format!("Test event {event_id} was delivered: the endpoint answered {outcome}.")
                } else {
                    format!(
                        "Test event {event_id} was not accepted: {outcome}. It will be retried on the schedule."
                    )
                },
            };
            break;
        }
        if tokio::time::Instant::now() >= deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let extras = Extras {
        test: Some(result),
        ..Extras::default()
    };
    detail_page(&state, &form.admin, &id, &[], extras).await
}

/// `YYYY-MM-DDTHH:MM[:SS]` (taken as UTC, as the form says) or RFC 3339.
fn since_text(text: &str) -> Option<String> {
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(text) {
        return Some(t.with_timezone(&chrono::Utc).to_rfc3339());
    }
    ["%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S"]
        .iter()
        .find_map(|format| chrono::NaiveDateTime::parse_from_str(text, format).ok())
        .map(|t| t.and_utc().to_rfc3339())
}

pub async fn recover(
    State(state): State<AppState>,
    Path(id): Path<String>,
    form: AdminForm,
) -> Result<Response, AdminError> {
    let Some(since) = since_text(form.fields.get("since")) else {
        return Err(AdminError::Invalid(
            "Give the time to recover from as YYYY-MM-DD HH:MM (UTC).".into(),
        ));
    };
    let summary = state
        .deliveries
        .recover(&id, &json!(since), &form.admin.actor)
        .await?;
    Ok(Redirect::to(&format!(
        "/admin/integrations/{id}?notice=recovered&requeued={}&created={}",
        summary["requeued"].as_u64().unwrap_or(0),
        summary["created"].as_u64().unwrap_or(0)
    ))
    .into_response())
}

pub async fn retry(
    State(state): State<AppState>,
    Path(id): Path<String>,
    form: AdminForm,
) -> Result<Response, AdminError> {
    let delivery_id = deliveries::parse_id(&id).ok_or(AdminError::NotFound)?;
    let shown = state
        .deliveries
        .retry(delivery_id, &form.admin.actor)
        .await?;
    let endpoint = views::text(&shown, "endpoint_id");
    Ok(Redirect::to(&format!("/admin/integrations/{endpoint}?notice=retried")).into_response())
}

#[cfg(test)]
mod tests {
    use super::since_text;

    #[test]
    fn recover_times_are_utc_unless_they_say_otherwise() {
        assert_eq!(
            since_text("2026-12-03T10:30").as_deref(),
            Some("2026-12-03T10:30:00+00:00")
        );
        assert_eq!(
            since_text("2026-12-03T10:30:15").as_deref(),
            Some("2026-12-03T10:30:15+00:00")
        );
        assert_eq!(
            since_text("2026-12-03T10:30:00+02:00").as_deref(),
            Some("2026-12-03T08:30:00+00:00")
        );
        assert_eq!(since_text("yesterday"), None);
        assert_eq!(since_text(""), None);
    }
}
