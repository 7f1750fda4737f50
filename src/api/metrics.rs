//! `/metrics` (Prometheus; once tokens exist, root or the `metrics` scope) and the middleware
//! that counts API requests by route.

use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::auth::MetricsReader;
use super::error::ApiError;
use crate::metrics::{CONTENT_TYPE, HttpLabels};
use crate::state::AppState;

/// Metrics in the OpenMetrics text format Prometheus scrapes.
#[utoipa::path(
    get, path = "/metrics", tag = "health",
    responses((status = 200, description = "Prometheus metrics", content_type = "application/openmetrics-text", body = String))
)]
pub async fn metrics(
    MetricsReader(caller): MetricsReader,
    State(app): State<AppState>,
) -> Result<Response, ApiError> {
    let gauges = app.store.gauges().await?;
    // A scoped token sees its own tenant's jobs' series, never another's
    // (DESIGN §8); the service-wide figures name no job.
    let own = (caller.role != crate::domain::auth::Role::Root).then_some(&caller.tenant);
    let signals = app
        .store
        .job_signals(app.metrics.job_series_max, own)
        .await?;
    let mut response = app.metrics.render(&gauges, &signals).into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
    Ok(response)
}

/// Marks the answer to a probe or a scrape (`/healthz`, `/readyz`,
/// `/metrics`): its request is not an INFO line, or a scraped service would
/// log little else.
#[derive(Debug, Clone, Copy)]
pub struct QuietLog;

/// Counts each request by method, route pattern and status class, after
/// routing (the route is the pattern matched).
pub async fn count(State(app): State<AppState>, request: Request, next: Next) -> Response {
    let began = Instant::now();
    let method = request.method().clone();
    let route = request.extensions().get::<MatchedPath>().cloned();
    let quiet = matches!(request.uri().path(), "/healthz" | "/readyz" | "/metrics");
    let mut response = next.run(request).await;
    if quiet {
        response.extensions_mut().insert(QuietLog);
    }
    app.metrics.http(
        HttpLabels::of(
            &method,
            route.as_ref().map(|r| r.as_str()),
            response.status(),
        ),
        began.elapsed(),
    );
    response
}
