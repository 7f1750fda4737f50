//! Liveness and readiness.

use axum::Json;
use axum::extract::State;
use serde::Serialize;
use utoipa::ToSchema;

use super::error::{ApiError, Problem};
use crate::state::AppState;

#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    #[schema(example = "ok")]
    pub status: &'static str,
}

/// The process is up.
#[utoipa::path(get, path = "/healthz", tag = "health", responses((status = 200, description = "OK", body = Health)))]
pub async fn healthz() -> Json<Health> {
    Json(Health { status: "ok" })
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Ready {
    #[schema(example = "ok")]
    pub status: &'static str,
    /// `postgres` or `sqlite`.
    #[schema(example = "postgres")]
    pub store: &'static str,
}

/// The store answers.
#[utoipa::path(
    get, path = "/readyz", tag = "health",
    responses(
        (status = 200, description = "OK", body = Ready),
        (status = 503, description = "The store does not answer", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn readyz(State(app): State<AppState>) -> Result<Json<Ready>, ApiError> {
    match app.store.ping().await {
        Ok(()) => Ok(Json(Ready {
            status: "ok",
            store: app.store.backend(),
        })),
        Err(e) => {
            tracing::warn!(error = %e, "store not ready");
            Err(ApiError::Unavailable(format!(
                "the {} store does not answer",
                app.store.backend()
            )))
        }
    }
}
