//! Operational routes: liveness, readiness and Prometheus metrics.

use axum::Json;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use serde_json::{Value, json};

use super::AppState;
use super::problem::ApiError;

pub async fn healthz() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

/// Ready when the database answers; reports the durability settings in force.
pub async fn readyz(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    state
        .store
        .ping()
        .await
        .map_err(|_| ApiError::unavailable())?;
    let diagnostics = state
        .store
        .diagnostics()
        .await
        .map_err(|_| ApiError::unavailable())?;
    Ok(Json(json!({"status": "ready", "store": diagnostics})))
}

pub async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    let store = state.store.diagnostics().await.ok();
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.metrics.render(store.as_ref()),
    )
}
