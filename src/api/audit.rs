//! `GET /api/v1/audit` (Superadmin): the audit log, newest first.

use axum::Json;
use axum::extract::{RawQuery, State};
use serde_json::Value;

use super::AppState;
use super::input;
use super::problem::ApiError;
use crate::store::AuditQuery;

pub async fn list(
    State(state): State<AppState>,
    RawQuery(raw): RawQuery,
) -> Result<Json<Value>, ApiError> {
    let params = input::query(raw.as_deref())?;
    let limit = input::int_param(&params, "limit", 1, 500, Some(100))?.unwrap_or(100) as usize;
    let before_id = match params.get("cursor") {
        Some(cursor) => Some(
            cursor
                .strip_prefix("aud_")
                .and_then(|n| n.parse::<i64>().ok())
                .filter(|n| *n > 0)
                .ok_or_else(|| {
                    ApiError::bad_parameter("cursor", "the cursor is not one this server issued")
                })?,
        ),
        None => None,
    };
    let action = params.get("action").cloned();
    if action
        .as_ref()
        .is_some_and(|a| a.is_empty() || a.len() > 64)
    {
        return Err(ApiError::bad_parameter(
            "action",
            "`action` must be an action name such as endpoint.created",
        ));
    }
    let since = match params.get("since") {
        Some(text) => Some(
            chrono::DateTime::parse_from_rfc3339(text)
                .map_err(|_| {
                    ApiError::bad_parameter("since", "`since` must be an RFC 3339 date-time")
                })?
                .with_timezone(&chrono::Utc)
                .to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
        ),
        None => None,
    };
    let entries = state
        .audit
        .list(AuditQuery {
            before_id,
            action,
            since,
            limit: limit + 1,
        })
        .await?;
    Ok(Json(input::list_page(entries, limit, |e| {
        e["id"].as_str().map(str::to_owned)
    })))
}
