//! Reading submitted forms and query strings. Every POST handler takes an
//! [`AdminForm`], which only exists for a signed-in admin whose form carries
//! the session's CSRF token and, when the browser names one, this server's
//! origin.

use axum::extract::{FromRequest, Request};
use axum::http::{HeaderMap, header};

use super::page::AdminError;
use super::session::CurrentAdmin;
use crate::api::AppState;

/// The largest form accepted (a client certificate fits comfortably).
const FORM_LIMIT: usize = 256 * 1024;

/// The fields of an `application/x-www-form-urlencoded` body, in order.
#[derive(Debug, Clone, Default)]
pub struct Fields(pub Vec<(String, String)>);

impl Fields {
    pub fn parse(body: &[u8]) -> Result<Fields, AdminError> {
        serde_urlencoded::from_bytes(body)
            .map(Fields)
            .map_err(|_| AdminError::BadForm)
    }

    /// The first value of a field, trimmed; empty when absent.
    pub fn get(&self, name: &str) -> &str {
        self.0
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.trim())
            .unwrap_or("")
    }

    /// Every value of a repeated field, untrimmed, in order.
    pub fn all(&self, name: &str) -> Vec<&str> {
        self.0
            .iter()
            .filter(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
            .collect()
    }

    pub fn has(&self, name: &str) -> bool {
        self.0.iter().any(|(key, _)| key == name)
    }
}

/// A form from a signed-in admin, checked against forgery.
pub struct AdminForm {
    pub admin: CurrentAdmin,
    pub fields: Fields,
}

/// True when the request names no origin, or this server's: the host the
/// browser asked for (`Host`, or `X-Forwarded-Host` from a proxy in front).
/// A page elsewhere cannot set either of those on a form it submits.
pub fn same_origin(headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(header::ORIGIN) else {
        return true;
    };
    let Some(origin_host) = origin.to_str().ok().and_then(|o| {
        o.strip_prefix("http://")
            .or_else(|| o.strip_prefix("https://"))
    }) else {
        return false;
    };
    let forwarded = headers
        .get("x-forwarded-host")
        .and_then(|h| h.to_str().ok())
        .and_then(|h| h.split(',').next())
        .map(str::trim);
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
    [host, forwarded]
        .into_iter()
        .flatten()
        .any(|h| h.eq_ignore_ascii_case(origin_host))
}

/// The body of a form, within the size limit.
pub async fn read_fields(request: Request) -> Result<Fields, AdminError> {
    let bytes = axum::body::to_bytes(request.into_body(), FORM_LIMIT)
        .await
        .map_err(|_| AdminError::TooLarge)?;
    Fields::parse(&bytes)
}

impl FromRequest<AppState> for AdminForm {
    type Rejection = AdminError;

    async fn from_request(request: Request, _state: &AppState) -> Result<Self, Self::Rejection> {
        let admin = request
            .extensions()
            .get::<CurrentAdmin>()
            .cloned()
            .ok_or(AdminError::Forgery)?;
        if !same_origin(request.headers()) {
            return Err(AdminError::Forgery);
        }
        let fields = read_fields(request).await?;
        if !admin.session.csrf_matches(fields.get("csrf")) {
            return Err(AdminError::Forgery);
        }
        Ok(AdminForm { admin, fields })
    }
}

/// A query string's parameters.
pub fn params(raw: Option<&str>) -> Vec<(String, String)> {
    raw.and_then(|q| serde_urlencoded::from_str(q).ok())
        .unwrap_or_default()
}

/// A parameter's value; `None` when absent or empty.
pub fn param<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
        .filter(|v| !v.is_empty())
}
