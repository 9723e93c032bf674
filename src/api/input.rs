//! Reading requests: JSON bodies with a size limit, query strings, `If-Match`
//! and path ids. Every failure becomes a problem that names what was wrong,
//! never what was sent.

use std::collections::HashMap;

use axum::body::Body;
use axum::http::{HeaderMap, StatusCode, header};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::Value;

use super::problem::ApiError;

/// Bodies larger than this are refused with 413.
pub const MAX_BODY: usize = 1024 * 1024;
const RECORD_CURSOR_TAG: &str = "rec1:";

fn too_large() -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
        "Payload too large",
        format!("the body must be at most {MAX_BODY} bytes"),
    )
}

/// Read a JSON body: `application/json` (or any `+json` type), at most
/// [`MAX_BODY`] bytes, well-formed.
pub async fn json_body(headers: &HeaderMap, body: Body) -> Result<Value, ApiError> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    if essence != "application/json"
        && !(essence.starts_with("application/") && essence.ends_with("+json"))
    {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "Unsupported media type",
            "send the body as application/json",
        ));
    }
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_BODY as u64) {
        return Err(too_large());
    }
    let bytes = axum::body::to_bytes(body, MAX_BODY)
        .await
        .map_err(|_| too_large())?;
    serde_json::from_slice(&bytes).map_err(|err| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_json",
            "Malformed JSON",
            format!(
                "the body is not valid JSON (line {}, column {})",
                err.line(),
                err.column()
            ),
        )
    })
}

/// Query parameters; a repeated name keeps its last value.
pub fn query(raw: Option<&str>) -> Result<HashMap<String, String>, ApiError> {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(raw.unwrap_or(""))
        .map_err(|_| ApiError::bad_parameter("query", "the query string is malformed"))?;
    Ok(pairs.into_iter().collect())
}

/// An integer parameter within `min..=max`, or `default` when absent.
pub fn int_param(
    params: &HashMap<String, String>,
    name: &str,
    min: i64,
    max: i64,
    default: Option<i64>,
) -> Result<Option<i64>, ApiError> {
    match params.get(name) {
        None => Ok(default),
        Some(text) => match text.trim().parse::<i64>() {
            Ok(n) if (min..=max).contains(&n) => Ok(Some(n)),
            _ => Err(ApiError::bad_parameter(
                name,
                format!("`{name}` must be an integer from {min} to {max}"),
            )),
        },
    }
}

/// A record id from the path; anything that is not a positive integer names no record.
pub fn record_id(text: &str) -> Result<i64, ApiError> {
    match text.parse::<i64>() {
        Ok(id) if id > 0 => Ok(id),
        _ => Err(ApiError::not_found()),
    }
}

/// `If-Match: "3"` (or `W/"3"`, or `*` for any version).
pub fn if_match(headers: &HeaderMap) -> Result<Option<i64>, ApiError> {
    let Some(value) = headers.get(header::IF_MATCH) else {
        return Ok(None);
    };
    let text = value.to_str().unwrap_or("").trim();
    if text == "*" {
        return Ok(None);
    }
    let text = text.strip_prefix("W/").unwrap_or(text);
    let unquoted = text.trim_matches('"');
    unquoted.parse::<i64>().map(Some).map_err(|_| {
        ApiError::bad_parameter("If-Match", "If-Match must be the record's ETag, e.g. \"3\"")
    })
}

pub fn etag(version: i64) -> String {
    format!("\"{version}\"")
}

pub fn encode_record_cursor(id: i64) -> String {
    URL_SAFE_NO_PAD.encode(format!("{RECORD_CURSOR_TAG}{id}"))
}

pub fn decode_record_cursor(cursor: &str) -> Result<i64, ApiError> {
    URL_SAFE_NO_PAD
        .decode(cursor)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .and_then(|t| {
            t.strip_prefix(RECORD_CURSOR_TAG)
                .and_then(|n| n.parse().ok())
        })
        .filter(|n: &i64| *n >= 0)
        .ok_or_else(|| {
            ApiError::bad_parameter("cursor", "the cursor is not one this server issued")
        })
}

/// A list answer made from one item more than a page:
/// `{"data": […], "next_cursor": …, "has_more": …}`.
pub fn list_page<T: serde::Serialize>(
    mut items: Vec<T>,
    limit: usize,
    cursor: impl Fn(&T) -> Option<String>,
) -> Value {
    let has_more = items.len() > limit;
    items.truncate(limit);
    let next = if has_more {
        items.last().and_then(cursor)
    } else {
        None
    };
    serde_json::json!({"data": items, "next_cursor": next, "has_more": has_more})
}
