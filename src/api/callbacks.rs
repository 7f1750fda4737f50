//! Long runs (DESIGN.md §11.7): a callback run's receiver completes it and
//! sends heartbeats with the run's own `crt_` token (from the request's
//! `cronhook-callback-token`), not an API token; a client with a write
//! token cancels a run.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use super::auth::Writer;
use super::error::{ApiError, Problem};
use super::extract::LaterJson;
use crate::domain::auth::bearer;
use crate::domain::callback::{
    CompletionReport, HeartbeatReport, MAX_OUTPUT, ReportRefusal, TOKEN_PREFIX,
};
use crate::domain::error::FieldError;
use crate::domain::run::RunStatus;
use crate::ops::Via;
use crate::state::AppState;

/// A run id from the path: anything else is a 404.
fn run_id(raw: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(raw).map_err(|_| ApiError::NotFound(format!("no run with id \"{raw}\"")))
}

/// The run `raw` names, when the request carries its callback token; a
/// 401 otherwise, whether or not the run exists.
fn authorised_run(app: &AppState, raw: &str, headers: &HeaderMap) -> Result<Uuid, ApiError> {
    let refused = || {
        ApiError::Unauthorized(format!(
            "send this run's callback token as Authorization: Bearer {TOKEN_PREFIX}… (the \
             request's cronhook-callback-token header)"
        ))
    };
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(bearer)
        .ok_or_else(refused)?;
    let id = Uuid::parse_str(raw).map_err(|_| refused())?;
    if !app.store.verify_callback(id, token) {
        return Err(refused());
    }
    Ok(id)
}

/// What a completion or cancel left the run as.
#[derive(Debug, Serialize, ToSchema)]
pub struct RunStatusView {
    pub run_id: Uuid,
    pub job_id: String,
    /// As the run stands now.
    pub status: RunStatus,
}

/// Report a callback run's end, with its token as the bearer. The same
/// completion again answers as the first; a different one after the run
/// ended (by another completion, its timeout or a lost heartbeat) is 409
/// and event `run.late_completion`.
#[utoipa::path(
    post, path = "/v1/runs/{id}/complete", tag = "runs",
    params(("id" = String, Path, description = "Run id (the request's `webhook-id`)")),
    request_body = CompletionReport,
    responses(
        (status = 200, description = "The run ended as reported (or had, by this same report)", body = RunStatusView),
        (status = 401, description = "Not this run's callback token", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Not sent yet, or ended otherwise", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "`output` over 16 kB", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn complete_run(
    State(app): State<AppState>,
    Path(raw): Path<String>,
    headers: HeaderMap,
    LaterJson(report): LaterJson<CompletionReport>,
) -> Result<Json<RunStatusView>, ApiError> {
    let id = authorised_run(&app, &raw, &headers)?;
    let report = report?.parse().map_err(|e| match e {
        ReportRefusal::TooLarge(n) => ApiError::FieldTooLarge(FieldError::new(
            "output",
            format!("is {n} bytes as JSON; at most {MAX_OUTPUT} are kept"),
        )),
        ReportRefusal::Invalid(f) => ApiError::Invalid(f),
    })?;
    let receipt = app
        .store
        .complete_run(id, &report)
        .await
        .map_err(gone(id))?;
    if !receipt.repeated {
        app.metrics.runs_ended(receipt.status, 1);
    }
    Ok(Json(RunStatusView {
        run_id: id,
        job_id: receipt.job_id,
        status: receipt.status,
    }))
}

/// A store error, its not-found said of run `id`, with `why`.
fn not_found_as(id: Uuid, why: &'static str) -> impl Fn(crate::store::StoreError) -> ApiError {
    move |e| {
        if e.is_not_found() {
            ApiError::NotFound(format!("no run with id \"{id}\"{why}"))
        } else {
            e.into()
        }
    }
}

/// A run deleted with its job since its token was handed out.
fn gone(id: Uuid) -> impl Fn(crate::store::StoreError) -> ApiError {
    not_found_as(id, " (its job was deleted)")
}

/// Report that a callback run's work goes on, with its token as the
/// bearer: it resets the job's `completion.heartbeat_s`.
#[utoipa::path(
    post, path = "/v1/runs/{id}/heartbeat", tag = "runs",
    params(("id" = String, Path, description = "Run id (the request's `webhook-id`)")),
    request_body = HeartbeatReport,
    responses(
        (status = 204, description = "Recorded"),
        (status = 401, description = "Not this run's callback token", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The run is not running", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn heartbeat_run(
    State(app): State<AppState>,
    Path(raw): Path<String>,
    headers: HeaderMap,
    LaterJson(report): LaterJson<HeartbeatReport>,
) -> Result<StatusCode, ApiError> {
    let id = authorised_run(&app, &raw, &headers)?;
    let beat = report?.parse()?;
    app.store.heartbeat_run(id, &beat).await.map_err(gone(id))?;
    Ok(StatusCode::NO_CONTENT)
}

/// Cancel a run. Not sent yet (or between retries): `cancelled` at once.
/// Its request in flight: `cancelled`, the request aborted. Accepted by a
/// callback job's receiver: `cancelling`, and a signed request with
/// `cronhook-event: cancel` goes to `target.cancel_url` (or the URL); the
/// run is `cancelled` when the receiver completes it so, or after
/// `completion.cancel_grace_s`.
#[utoipa::path(
    post, path = "/v1/runs/{id}/cancel", tag = "runs",
    params(("id" = String, Path, description = "Run id (a UUID)")),
    responses(
        (status = 202, description = "Cancelled, or cancelling", body = RunStatusView),
        (status = 404, description = "No such run", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The run has ended", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn cancel_run(
    Writer(caller): Writer,
    State(app): State<AppState>,
    Path(raw): Path<String>,
) -> Result<(StatusCode, Json<RunStatusView>), ApiError> {
    let id = run_id(&raw)?;
    let receipt = app
        .ops(&caller.tenant, Via::Api)
        .cancel_run(id)
        .await
        .map_err(not_found_as(id, ""))?;
    Ok((
        StatusCode::ACCEPTED,
        Json(RunStatusView {
            run_id: id,
            job_id: receipt.job_id,
            status: receipt.status,
        }),
    ))
}
