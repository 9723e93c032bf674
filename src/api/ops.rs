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
    let mut text = state.metrics.render(store.as_ref());
    match state.store.delivery_stats().await {
        Ok(stats) => {
            let oldest = stats
                .oldest_pending_created_at
                .and_then(|t| chrono::DateTime::parse_from_rfc3339(&t).ok())
                .map(|t| {
                    let age = chrono::Utc::now() - t.with_timezone(&chrono::Utc);
                    age.num_milliseconds() as f64 / 1000.0
                })
                .unwrap_or(0.0);
            text.push_str(
                &state
                    .delivery_metrics
                    .render(stats.pending, oldest.max(0.0)),
            );
        }
        Err(err) => tracing::warn!(error = %err, "delivery stats unavailable"),
    }
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
}
