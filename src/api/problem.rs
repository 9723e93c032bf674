//! RFC 9457 problem details: every error the API returns.
//!
//! A problem names its `type` (a stable relative URI), `title`, `status`, a
//! `detail` that explains the rule, and, for invalid input, the fields at
//! fault. It never repeats a value the client sent.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::auth::AuthError;
use crate::feed::FeedError;
use crate::records::RecordError;
use crate::records::validate::FieldError;
use crate::store::StoreError;

pub const PROBLEM_JSON: &str = "application/problem+json";

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub kind: &'static str,
    pub title: &'static str,
    pub detail: String,
    pub errors: Vec<FieldError>,
    pub challenge: bool,
}

impl ApiError {
    pub fn new(
        status: StatusCode,
        kind: &'static str,
        title: &'static str,
        detail: impl Into<String>,
    ) -> Self {
        ApiError {
            status,
            kind,
            title,
            detail: detail.into(),
            errors: Vec::new(),
            challenge: false,
        }
    }

    pub fn with_field(mut self, field: &str, code: &'static str) -> Self {
        let message = self.detail.clone();
        self.errors.push(FieldError::new(field, code, message));
        self
    }

    pub fn unauthorized(detail: &str) -> Self {
        let mut err = ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "Unauthorized",
            detail,
        );
        err.challenge = true;
        err
    }

    pub fn forbidden(detail: impl Into<String>) -> Self {
        ApiError::new(StatusCode::FORBIDDEN, "forbidden", "Forbidden", detail)
    }

    pub fn not_found() -> Self {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            "Not found",
            "no such resource",
        )
    }

    pub fn bad_parameter(name: &str, detail: impl Into<String>) -> Self {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_parameter",
            "Invalid parameter",
            detail,
        )
        .with_field(name, "invalid")
    }

    pub fn invalid(errors: Vec<FieldError>) -> Self {
        let mut err = ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation",
            "Validation failed",
            "one or more fields are invalid; see `errors`",
        );
        err.errors = errors;
        err
    }

    pub fn unavailable() -> Self {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "Service unavailable",
            "the database is unavailable; try again shortly",
        )
    }

    fn internal() -> Self {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "Internal error",
            "an unexpected error occurred; it has been logged",
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = json!({
            "type": format!("/problems/{}", self.kind),
            "title": self.title,
            "status": self.status.as_u16(),
            "detail": self.detail,
        });
        if let Some(first) = self.errors.first() {
            body["field"] = json!(first.field);
            body["errors"] = json!(self.errors);
        }
        let mut response = (self.status, body.to_string()).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        if self.challenge {
            headers.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"chartwire\", Basic realm=\"chartwire\""),
            );
        }
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        response
    }
}

impl From<StoreError> for ApiError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::NotFound => ApiError::not_found(),
            StoreError::Unavailable(_) | StoreError::Locked(_) => {
                tracing::warn!(error = %err, "store unavailable");
                ApiError::unavailable()
            }
            other => {
                tracing::error!(error = %other, "store error");
                ApiError::internal()
            }
        }
    }
}

impl From<RecordError> for ApiError {
    fn from(err: RecordError) -> Self {
        match err {
            RecordError::Invalid(errors) => ApiError::invalid(errors),
            RecordError::NotFound => ApiError::not_found(),
            RecordError::VersionMismatch { current } => ApiError::new(
                StatusCode::PRECONDITION_FAILED,
                "precondition_failed",
                "Precondition failed",
                format!("the record is at version {current}; fetch it again and retry"),
            )
            .with_field("If-Match", "mismatch"),
            RecordError::Contended => ApiError::new(
                StatusCode::CONFLICT,
                "conflict",
                "Conflict",
                "the record kept changing; retry the request",
            ),
            RecordError::Store(err) => err.into(),
        }
    }
}

impl From<FeedError> for ApiError {
    fn from(err: FeedError) -> Self {
        match err {
            FeedError::InvalidCursor => {
                ApiError::bad_parameter("after", "the cursor is not one this server issued")
            }
            FeedError::InvalidTypes(_) => ApiError::bad_parameter(
                "types",
                "each type must be an event name of the catalogue, `<record type>.*` or `*`",
            ),
            FeedError::CursorExpired => ApiError::new(
                StatusCode::GONE,
                "cursor_expired",
                "Cursor expired",
                "events after this cursor are past the retention period; resynchronise from the records API and start the feed again without `after`",
            )
            .with_field("after", "expired"),
            FeedError::Store(err) => err.into(),
        }
    }
}

impl From<AuthError> for ApiError {
    fn from(err: AuthError) -> Self {
        match err {
            AuthError::InvalidName => ApiError::invalid(vec![FieldError::new(
                "name",
                "length",
                "must be 1 to 100 characters",
            )]),
            AuthError::NotFound => ApiError::not_found(),
            AuthError::LastSuperadmin => ApiError::new(
                StatusCode::CONFLICT,
                "conflict",
                "Conflict",
                "the last active superadmin key cannot be revoked; create another first",
            ),
            AuthError::Store(err) => err.into(),
        }
    }
}
