//! The change feed route and the event-type catalogue.

use std::time::Duration;

use axum::Json;
use axum::extract::{Extension, RawQuery, State};
use serde_json::{Value, json};

use super::AppState;
use super::input;
use super::problem::ApiError;
use crate::auth::Principal;
use crate::events::{catalogue, schema};
use crate::feed::{FeedRequest, MAX_LIMIT, MAX_WAIT};

pub const DEFAULT_LIMIT: i64 = 100;

pub async fn changes(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    RawQuery(raw): RawQuery,
) -> Result<Json<Value>, ApiError> {
    let params = input::query(raw.as_deref())?;
    let limit = input::int_param(&params, "limit", 1, MAX_LIMIT as i64, Some(DEFAULT_LIMIT))?
        .unwrap_or(DEFAULT_LIMIT);
    let wait =
        input::int_param(&params, "wait", 0, MAX_WAIT.as_secs() as i64, Some(0))?.unwrap_or(0);
    let types = params.get("types").map(|text| {
        text.split(',')
            .map(|t| t.trim().to_owned())
            .filter(|t| !t.is_empty())
            .collect::<Vec<_>>()
    });
    if types.as_ref().is_some_and(Vec::is_empty) {
        return Err(ApiError::bad_parameter(
            "types",
            "`types` must name at least one event type",
        ));
    }
    let page = state
        .feed
        .read(
            principal.role,
            FeedRequest {
                after: params.get("after").cloned(),
                limit: limit as usize,
                types,
                wait: Duration::from_secs(wait as u64),
            },
        )
        .await?;
    Ok(Json(json!({
        "data": page.events,
        "next_cursor": page.next_cursor,
        "has_more": page.has_more,
    })))
}

/// The catalogue, each type with a JSON Schema of its body and an example.
pub async fn event_types() -> Json<Value> {
    let types: Vec<Value> = catalogue::all()
        .iter()
        .map(|t| {
            json!({
                "name": t.name,
                "description": t.description,
                "record_type": t.record_type,
                "category": t.category,
                "schema": schema::schema_of(t),
                "example": schema::example_of(t),
            })
        })
        .collect();
    Json(json!({"data": types, "next_cursor": null, "has_more": false}))
}
