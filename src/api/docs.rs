//! `/docs`: Swagger UI, served from files inside the binary (no CDN).

use std::sync::{Arc, OnceLock};

use axum::extract::Path;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use utoipa_swagger_ui::Config;

use super::problem::ApiError;

fn config() -> Arc<Config<'static>> {
    static CONFIG: OnceLock<Arc<Config<'static>>> = OnceLock::new();
    CONFIG
        .get_or_init(|| Arc::new(Config::from("/openapi.json")))
        .clone()
}

pub async fn index() -> Redirect {
    Redirect::permanent("/docs/index.html")
}

pub async fn file(Path(file): Path<String>) -> Response {
    match utoipa_swagger_ui::serve(&file, config()) {
        Ok(Some(found)) => {
            let mut response = (StatusCode::OK, found.bytes.into_owned()).into_response();
            let headers = response.headers_mut();
            if let Ok(value) = HeaderValue::from_str(&found.content_type) {
                headers.insert(header::CONTENT_TYPE, value);
            }
            if found.gzpipped {
                headers.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
            }
            response
        }
        Ok(None) => ApiError::not_found().into_response(),
        Err(err) => {
            tracing::error!(error = %err, "swagger ui file could not be prepared");
            ApiError::not_found().into_response()
        }
    }
}
