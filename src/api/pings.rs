//! `/v1/ping/{key}[/{kind}]` (DESIGN.md §11.5): what the work a
//! monitor-only job watches reports. No API token: the key in the URL is
//! the job's alone; a wrong one is a 404 that says nothing more.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use super::auth::Writer;
use super::error::{ApiError, Problem};
use super::extract::{BaseUrl, JobIdPath};
use crate::domain::error::FieldError;
use crate::domain::monitor::{self, Ping};
use crate::domain::run::RunStatus;
use crate::state::AppState;

/// What a ping did.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = PingReceipt)]
pub struct PingView {
    /// The run it moved (or recorded).
    pub run_id: Uuid,
    /// The run's status now: `running`, `succeeded` or `failed`.
    pub status: RunStatus,
    /// No run awaited a ping: one of cause `ping` was recorded, and the
    /// job may alert `unexpected`.
    pub unexpected: bool,
}

async fn ping(
    app: &AppState,
    key: &str,
    kind: Option<&str>,
    body: &[u8],
) -> Result<Json<PingView>, ApiError> {
    let unknown = || ApiError::NotFound("no monitor has this ping key".into());
    if !monitor::looks_like_key(key) {
        return Err(unknown());
    }
    // Hex in any case: keys are kept in lower case.
    let key = &key.to_ascii_lowercase();
    let ping = Ping::parse(kind).map_err(|e| FieldError::new("kind", e.message))?;
    app.pings.take(key, chrono::Utc::now()).map_err(|wait| {
        ApiError::TooManyRequests(
            format!(
                "this ping key sent more than {} pings in a short time; wait {} s",
                crate::ping_limits::RATE.limit,
                wait.as_secs() + 1
            ),
            u32::try_from(wait.as_secs() + 1).unwrap_or(u32::MAX),
        )
    })?;
    let receipt = app
        .store
        .record_ping(key, ping, body)
        .await?
        .ok_or_else(unknown)?;
    if !receipt.status.in_flight() {
        app.metrics.runs_ended(receipt.status, 1);
    }
    Ok(Json(PingView {
        run_id: receipt.run_id,
        status: receipt.status,
        unexpected: receipt.unexpected,
    }))
}

/// Report that a monitor-only job's work succeeded.
///
/// GET or POST; a body (a log's tail, any content type) is kept up to
/// 10 kB on the run's attempt. It ends the run that started, else the
/// oldest one awaiting a ping; with none, a run of cause `ping` is
/// recorded.
#[utoipa::path(
    method(get, post), path = "/v1/ping/{key}", tag = "monitors",
    params(("key" = String, Path, description = "The job's ping key (`monitor.ping_url`)")),
    request_body(content = String, content_type = "text/plain", description = "Optional: up to 10 kB are kept"),
    responses(
        (status = 200, description = "Recorded", body = PingView),
        (status = 404, description = "No monitor has this key", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many pings with this key; with `Retry-After`", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn ping_success(
    State(app): State<AppState>,
    Path(key): Path<String>,
    body: Bytes,
) -> Result<Json<PingView>, ApiError> {
    ping(&app, &key, None, &body).await
}

/// Report that a monitor-only job's work started, failed or exited.
///
/// `kind`: `start` (the oldest awaiting run becomes `running`), `fail`,
/// or an exit code 0-255 (0 succeeds, anything else fails).
#[utoipa::path(
    method(get, post), path = "/v1/ping/{key}/{kind}", tag = "monitors",
    params(
        ("key" = String, Path, description = "The job's ping key (`monitor.ping_url`)"),
        ("kind" = String, Path, description = "`start`, `fail`, or an exit code 0-255", pattern = "^(start|fail|[0-9]{1,3})$"),
    ),
    request_body(content = String, content_type = "text/plain", description = "Optional: up to 10 kB are kept"),
    responses(
        (status = 200, description = "Recorded", body = PingView),
        (status = 404, description = "No monitor has this key", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`kind` is none of these", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many pings with this key; with `Retry-After`", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn ping_kind(
    State(app): State<AppState>,
    Path((key, kind)): Path<(String, String)>,
    body: Bytes,
) -> Result<Json<PingView>, ApiError> {
    ping(&app, &key, Some(&kind), &body).await
}

/// The URL a monitor's work pings, under the base the request came to
/// (the job's view, the rotation's answer, the dashboard).
pub fn ping_url(base: &str, key: &str) -> String {
    format!("{base}/v1/ping/{key}")
}

/// A monitor-only job's new ping URL.
#[derive(Debug, Serialize, ToSchema)]
pub struct PingUrl {
    /// The URL the watched work pings from now on; the old one is a 404.
    pub ping_url: String,
}

/// Rotate a monitor-only job's ping key: its old ping URL stops working
/// at once.
#[utoipa::path(
    post, path = "/v1/jobs/{id}/ping-key/rotate", tag = "monitors",
    params(("id" = String, Path, description = "Job id")),
    responses(
        (status = 200, description = "The new ping URL", body = PingUrl),
        (status = 409, description = "The job is not monitor-only", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn rotate_ping_key(
    Writer(caller): Writer,
    State(app): State<AppState>,
    BaseUrl(base): BaseUrl,
    JobIdPath(id): JobIdPath,
) -> Result<Json<PingUrl>, ApiError> {
    let key = app
        .store
        .rotate_ping_key(&caller.tenant, &id)
        .await?
        .ok_or_else(|| ApiError::not_found_job(&id))?;
    Ok(Json(PingUrl {
        ping_url: ping_url(&base, &key),
    }))
}
