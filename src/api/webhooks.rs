//! Webhook routes (Superadmin only): endpoints, secrets, test events, the
//! delivery log, retry and recover.

use axum::Json;
use axum::body::Body;
use axum::extract::{Extension, Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::AppState;
use super::input;
use super::problem::ApiError;
use crate::events::Actor;
use crate::events::catalogue;
use crate::webhooks::deliveries::{self, DeliveryError, STATUSES};
use crate::webhooks::endpoint::EndpointError;

impl From<EndpointError> for ApiError {
    fn from(err: EndpointError) -> Self {
        match err {
            EndpointError::Invalid(errors) => ApiError::invalid(errors),
            EndpointError::NotFound => ApiError::not_found(),
            EndpointError::Conflict => ApiError::new(
                StatusCode::CONFLICT,
                "conflict",
                "Conflict",
                "the endpoint changed meanwhile; fetch it again and retry",
            ),
            EndpointError::TooMany => ApiError::new(
                StatusCode::CONFLICT,
                "too_many_endpoints",
                "Too many endpoints",
                "the deployment already has its maximum number of endpoints (--max-endpoints); delete one first",
            ),
            EndpointError::Secrets(err) => {
                tracing::error!(error = %err, "a sealed endpoint secret could not be opened");
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "unavailable",
                    "Service unavailable",
                    "a stored secret could not be opened; check the master key",
                )
            }
            EndpointError::Store(err) => err.into(),
        }
    }
}

impl From<DeliveryError> for ApiError {
    fn from(err: DeliveryError) -> Self {
        match err {
            DeliveryError::Invalid(errors) => ApiError::invalid(errors),
            DeliveryError::Conflict(errors) => {
                let mut problem = ApiError::invalid(errors);
                problem.status = StatusCode::CONFLICT;
                problem.kind = "conflict";
                problem.title = "Conflict";
                problem.detail =
                    "the delivery or its endpoint is not in a state that allows this".into();
                problem
            }
            DeliveryError::NotFound => ApiError::not_found(),
            DeliveryError::Endpoint(err) => err.into(),
            DeliveryError::Store(err) => err.into(),
        }
    }
}

pub async fn list_endpoints(
    State(state): State<AppState>,
    RawQuery(raw): RawQuery,
) -> Result<Json<Value>, ApiError> {
    let params = input::query(raw.as_deref())?;
    let limit = input::int_param(&params, "limit", 1, 200, Some(50))?.unwrap_or(50) as usize;
    let after = params.get("cursor").cloned();
    if after
        .as_ref()
        .is_some_and(|c| !c.starts_with("ep_") || c.len() > 64)
    {
        return Err(ApiError::bad_parameter(
            "cursor",
            "the cursor is not one this server issued",
        ));
    }
    let page = state.endpoints.list(after, limit + 1).await?;
    Ok(Json(input::list_page(page, limit, |e| {
        e["id"].as_str().map(str::to_owned)
    })))
}

pub async fn create_endpoint(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let body = input::json_body(&headers, body).await?;
    let endpoint = state.endpoints.create(&body, &actor).await?;
    let mut response = (StatusCode::CREATED, Json(endpoint.clone())).into_response();
    if let Some(id) = endpoint["id"].as_str()
        && let Ok(location) = HeaderValue::from_str(&format!("/api/v1/webhooks/endpoints/{id}"))
    {
        response.headers_mut().insert(header::LOCATION, location);
    }
    Ok(response)
}

pub async fn get_endpoint(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(state.endpoints.get(&id).await?))
}

pub async fn patch_endpoint(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<Value>, ApiError> {
    let patch = input::json_body(&headers, body).await?;
    Ok(Json(state.endpoints.patch(&id, &patch, &actor).await?))
}

pub async fn delete_endpoint(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    state.endpoints.delete(&id, &actor).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn send_test(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let sent = state.endpoints.send_test(&id, &actor).await?;
    Ok((StatusCode::ACCEPTED, Json(sent)).into_response())
}

pub async fn reveal_secret(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(state.endpoints.reveal_secret(&id, &actor).await?))
}

pub async fn rotate_secret(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(state.endpoints.rotate_secret(&id, &actor).await?))
}

pub async fn list_deliveries(
    State(state): State<AppState>,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> Result<Json<Value>, ApiError> {
    let params = input::query(raw.as_deref())?;
    let limit = input::int_param(&params, "limit", 1, 200, Some(50))?.unwrap_or(50) as usize;
    let status = params.get("status").cloned();
    if status.as_deref().is_some_and(|s| !STATUSES.contains(&s)) {
        return Err(ApiError::bad_parameter(
            "status",
            "`status` must be pending, succeeded, failed or cancelled",
        ));
    }
    let event_type = params.get("event_type").cloned();
    if event_type
        .as_deref()
        .is_some_and(|t| catalogue::find(t).is_none())
    {
        return Err(ApiError::bad_parameter(
            "event_type",
            "`event_type` must be an event name of the catalogue",
        ));
    }
    let before = match params.get("cursor") {
        Some(cursor) => Some(deliveries::parse_id(cursor).ok_or_else(|| {
            ApiError::bad_parameter("cursor", "the cursor is not one this server issued")
        })?),
        None => None,
    };
    let (page, next) = state
        .deliveries
        .list(&id, status, event_type, before, limit)
        .await?;
    Ok(Json(json!({
        "data": page,
        "next_cursor": next.map(|n| format!("dlv_{n}")),
        "has_more": next.is_some(),
    })))
}

pub async fn recover(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<Value>, ApiError> {
    let body = input::json_body(&headers, body).await?;
    let Some(object) = body.as_object() else {
        return Err(ApiError::invalid(vec![
            crate::records::validate::FieldError::new("", "type", "the body must be a JSON object"),
        ]));
    };
    if let Some(unknown) = object.keys().find(|k| k.as_str() != "since") {
        return Err(ApiError::invalid(vec![
            crate::records::validate::FieldError::new(
                unknown.chars().take(64).collect::<String>(),
                "unknown_field",
                "only `since` is accepted",
            ),
        ]));
    }
    let since = object.get("since").cloned().unwrap_or(Value::Null);
    Ok(Json(state.deliveries.recover(&id, &since, &actor).await?))
}

fn delivery_id(text: &str) -> Result<i64, ApiError> {
    deliveries::parse_id(text).ok_or_else(ApiError::not_found)
}

pub async fn get_delivery(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(state.deliveries.get(delivery_id(&id)?).await?))
}

pub async fn retry_delivery(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let shown = state.deliveries.retry(delivery_id(&id)?, &actor).await?;
    Ok((StatusCode::ACCEPTED, Json(shown)).into_response())
}

/// The addresses webhooks come from, for integrators' allow-lists.
pub async fn egress(State(state): State<AppState>) -> Json<Value> {
    Json(match state.egress {
        Some(ip) => json!({"fixed": true, "addresses": [ip.to_string()],
            "description": "Webhook requests come from these addresses."}),
        None => json!({"fixed": false, "addresses": [],
            "description": "Webhook requests come from whatever address the host's routing picks; ask the operator to set --egress-bind for a fixed one."}),
    })
}
