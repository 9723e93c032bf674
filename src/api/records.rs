//! Record routes: `/api/v1/<plural>` and `/api/v1/<plural>/{id}` for every type.

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
use crate::records::schema::RecordType;

pub const DEFAULT_LIMIT: i64 = 50;
pub const MAX_LIMIT: i64 = 200;

fn with_etag(status: StatusCode, record: Value) -> Response {
    let version = record.get("version").and_then(Value::as_i64).unwrap_or(0);
    let mut response = (status, Json(record)).into_response();
    if let Ok(value) = HeaderValue::from_str(&input::etag(version)) {
        response.headers_mut().insert(header::ETAG, value);
    }
    response
}

pub async fn create(
    kind: &'static RecordType,
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let body = input::json_body(&headers, body).await?;
    let record = state.records.create(kind, &body, &actor).await?;
    let id = record.get("id").and_then(Value::as_i64).unwrap_or(0);
    let mut response = with_etag(StatusCode::CREATED, record);
    if let Ok(location) = HeaderValue::from_str(&format!("/api/v1/{}/{id}", kind.plural)) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    Ok(response)
}

pub async fn get(
    kind: &'static RecordType,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let record = state.records.get(kind, input::record_id(&id)?).await?;
    Ok(with_etag(StatusCode::OK, record))
}

pub async fn list(
    kind: &'static RecordType,
    State(state): State<AppState>,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let params = input::query(raw.as_deref())?;
    let limit = input::int_param(&params, "limit", 1, MAX_LIMIT, Some(DEFAULT_LIMIT))?
        .unwrap_or(DEFAULT_LIMIT);
    let after = match params.get("cursor") {
        Some(cursor) => input::decode_record_cursor(cursor)?,
        None => 0,
    };
    let patient_id = if kind.patient_scoped() {
        input::int_param(&params, "patient_id", 1, i64::MAX, None)?
    } else if params.contains_key("patient_id") {
        return Err(ApiError::bad_parameter(
            "patient_id",
            "this record type cannot be filtered by patient",
        ));
    } else {
        None
    };
    let page = state
        .records
        .list(kind, after, limit as usize, patient_id)
        .await?;
    let next_cursor = page.next_after.map(input::encode_record_cursor);
    Ok(Json(json!({
        "data": page.records,
        "has_more": next_cursor.is_some(),
        "next_cursor": next_cursor,
    }))
    .into_response())
}

pub async fn patch(
    kind: &'static RecordType,
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let id = input::record_id(&id)?;
    let expected = input::if_match(&headers)?;
    let patch = input::json_body(&headers, body).await?;
    let record = state
        .records
        .patch(kind, id, &patch, expected, &actor)
        .await?;
    Ok(with_etag(StatusCode::OK, record))
}

pub async fn delete(
    kind: &'static RecordType,
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let id = input::record_id(&id)?;
    let expected = input::if_match(&headers)?;
    state.records.delete(kind, id, expected, &actor).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
