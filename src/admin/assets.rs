//! The stylesheet and the small script of the admin pages, compiled into
//! the binary: the pages load nothing from anywhere else.

use axum::extract::Path;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};

use super::page::AdminError;

const STYLESHEET: &str = include_str!("assets/admin.css");
const SCRIPT: &str = include_str!("assets/admin.js");

pub async fn serve(Path(file): Path<String>) -> Response {
    let (body, kind) = match file.as_str() {
        "admin.css" => (STYLESHEET, "text/css; charset=utf-8"),
        "admin.js" => (SCRIPT, "text/javascript; charset=utf-8"),
        _ => return AdminError::NotFound.into_response(),
    };
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(kind));
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=300"),
    );
    response
}
