//! The audit log, newest first, filtered by action and time.

use askama::Template;
use axum::extract::{Extension, RawQuery, State};
use axum::response::Response;

use crate::admin::form::{param, params};
use crate::admin::page::{AdminError, Frame, render, when};
use crate::admin::session::CurrentAdmin;
use crate::admin::views::text;
use crate::api::AppState;
use crate::store::AuditQuery;

const PAGE: usize = 100;

pub struct AuditRow {
    pub id: String,
    pub at: String,
    pub actor: String,
    pub action: String,
    pub target: String,
    pub source_ip: String,
    pub detail: String,
}

#[derive(Template)]
#[template(path = "audit.html")]
struct AuditPage {
    frame: Frame,
    rows: Vec<AuditRow>,
    action: String,
    since: String,
    older: Option<String>,
}

pub async fn list(
    State(state): State<AppState>,
    Extension(admin): Extension<CurrentAdmin>,
    RawQuery(raw): RawQuery,
) -> Result<Response, AdminError> {
    let query = params(raw.as_deref());
    let action = param(&query, "action")
        .filter(|a| a.len() <= 64)
        .map(str::to_owned);
    let since_input = param(&query, "since").unwrap_or("").to_owned();
    let since = chrono::NaiveDateTime::parse_from_str(&since_input, "%Y-%m-%dT%H:%M")
        .ok()
        .map(|t| {
            t.and_utc()
                .to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
        });
    let before_id = param(&query, "before")
        .and_then(|c| c.strip_prefix("aud_"))
        .and_then(|n| n.parse::<i64>().ok())
        .filter(|n| *n > 0);
    let mut entries = state
        .audit
        .list(AuditQuery {
            before_id,
            action: action.clone(),
            since,
            limit: PAGE + 1,
        })
        .await?;
    let more = entries.len() > PAGE;
    entries.truncate(PAGE);
    let rows: Vec<AuditRow> = entries
        .iter()
        .map(|e| AuditRow {
            id: text(e, "id"),
            at: when(e["at"].as_str().unwrap_or("")),
            actor: format!("{} {}", text(&e["actor"], "type"), text(&e["actor"], "id"))
                .trim()
                .to_owned(),
            action: text(e, "action"),
            target: e["target"]
                .as_object()
                .map(|t| {
                    format!(
                        "{} {}",
                        t.get("type").and_then(|v| v.as_str()).unwrap_or(""),
                        t.get("id").and_then(|v| v.as_str()).unwrap_or("")
                    )
                })
                .unwrap_or_default(),
            source_ip: text(e, "source_ip"),
            detail: if e["detail"].is_null() {
                String::new()
            } else {
                e["detail"].to_string()
            },
        })
        .collect();
    let older = more
        .then(|| rows.last().map(|r| r.id.clone()))
        .flatten()
        .map(|id| {
            let mut pairs = vec![("before".to_owned(), id)];
            if let Some(a) = &action {
                pairs.push(("action".into(), a.clone()));
            }
            if !since_input.is_empty() {
                pairs.push(("since".into(), since_input.clone()));
            }
            serde_urlencoded::to_string(pairs).unwrap_or_default()
        });
    Ok(render(&AuditPage {
        frame: Frame::new(&admin, "audit", "Audit log"),
        rows,
        action: action.unwrap_or_default(),
        since: since_input,
        older,
    }))
}
