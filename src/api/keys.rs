//! API key routes (Superadmin only).

use axum::Json;
use axum::body::Body;
use axum::extract::{Extension, Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::AppState;
use super::input;
use super::problem::ApiError;
use crate::auth::Role;
use crate::events::Actor;
use crate::records::validate::FieldError;

const DEFAULT_LIMIT: i64 = 50;

pub async fn list(
    State(state): State<AppState>,
    RawQuery(raw): RawQuery,
) -> Result<Json<Value>, ApiError> {
    let params = input::query(raw.as_deref())?;
    let limit = input::int_param(&params, "limit", 1, 200, Some(DEFAULT_LIMIT))?
        .unwrap_or(DEFAULT_LIMIT) as usize;
    let after = params.get("cursor").cloned();
    if after
        .as_ref()
        .is_some_and(|c| !c.starts_with("key_") || c.len() > 64)
    {
        return Err(ApiError::bad_parameter(
            "cursor",
            "the cursor is not one this server issued",
        ));
    }
    let keys = state.keys.list(after, limit + 1).await?;
    Ok(Json(input::list_page(keys, limit, |k| Some(k.id.clone()))))
}

pub async fn create(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let body = input::json_body(&headers, body).await?;
    let Some(object) = body.as_object() else {
        return Err(ApiError::invalid(vec![FieldError::new(
            "",
            "type",
            "the body must be a JSON object",
        )]));
    };
    let mut errors = Vec::new();
    for key in object.keys() {
        if key != "name" && key != "role" {
            errors.push(FieldError::new(
                key.chars().take(64).collect::<String>(),
                "unknown_field",
                "is not a field of a key",
            ));
        }
    }
    let name = object.get("name").and_then(Value::as_str);
    if name.is_none() {
        errors.push(FieldError::new(
            "name",
            "required",
            "is required and must be a string",
        ));
    }
    let role = object
        .get("role")
        .and_then(Value::as_str)
        .and_then(Role::parse);
    if role.is_none() {
        errors.push(FieldError::new(
            "role",
            "enum",
            "must be one of: superadmin, staff, integration",
        ));
    }
    let (Some(name), Some(role), true) = (name, role, errors.is_empty()) else {
        return Err(ApiError::invalid(errors));
    };
    let (info, secret) = state.keys.create(name, role, &actor).await?;
    let mut shown = serde_json::to_value(info).unwrap_or_else(|_| json!({}));
    shown["key"] = json!(secret);
    Ok((StatusCode::CREATED, Json(shown)).into_response())
}

pub async fn revoke(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    state.keys.revoke(&id, true, &actor).await?;
    Ok(StatusCode::NO_CONTENT)
}
