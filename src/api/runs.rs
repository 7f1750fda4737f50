//! Runs: a job's history, one run with its attempts, and "run now".

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::IntoResponse;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use utoipa::IntoParams;
use uuid::Uuid;

use super::auth::{Reader, Writer};
use super::error::{ApiError, Problem};
use super::extract::{ApiQuery, IdempotencyHeader, JobIdPath};
use super::idempotent;
use super::pagination::{limit, run_cursor, runs_page};
use super::schema::IdempotencyKeyHeader;
use super::views::{AttemptView, RunDetailView, RunPage, RunView};
use crate::domain::auth::Tenant;
use crate::domain::error::FieldError;
use crate::domain::run::{Run, RunStatus};
use crate::ops::Via;
use crate::state::AppState;
use crate::store::{RunFilter, StoreError};

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListRunsQuery {
    /// Only runs in these states, comma-separated (`failed,skipped`).
    #[param(value_type = Option<Vec<RunStatus>>, style = Form, explode = false)]
    status: Option<String>,
    /// Page size (default 50).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 500)]
    limit: Option<String>,
    /// `next_cursor` of the previous page.
    cursor: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListAllRunsQuery {
    /// Only runs in these states, comma-separated (`failed,skipped`).
    #[param(value_type = Option<Vec<RunStatus>>, style = Form, explode = false)]
    status: Option<String>,
    /// Only this job's runs.
    job_id: Option<String>,
    /// Only runs created after this instant (RFC 3339, with an offset).
    #[param(value_type = Option<String>, format = DateTime)]
    after: Option<String>,
    /// Only runs created before this instant (RFC 3339, with an offset).
    #[param(value_type = Option<String>, format = DateTime)]
    before: Option<String>,
    /// Page size (default 50).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 500)]
    limit: Option<String>,
    /// `next_cursor` of the previous page.
    cursor: Option<String>,
}

/// `?status=failed,skipped`: every name must be a run status.
fn statuses(raw: Option<&str>) -> Result<Vec<RunStatus>, ApiError> {
    let Some(raw) = raw else {
        return Ok(Vec::new());
    };
    raw.split(',')
        .map(|name| {
            RunStatus::parse(name.trim()).ok_or_else(|| {
                let known: Vec<&str> = RunStatus::ALL.iter().map(|s| s.as_str()).collect();
                ApiError::from(FieldError::new(
                    "status",
                    format!(
                        "unknown status {name:?}; expected one or more of {}, comma-separated",
                        known.join(", ")
                    ),
                ))
            })
        })
        .collect()
}

/// `?after=` and `?before=`: any RFC 3339 instant bounds a list, even one
/// that could not be stored (a year before 0001 in UTC).
fn instant_param(raw: Option<&str>, name: &str) -> Result<Option<DateTime<Utc>>, ApiError> {
    raw.map(|text| {
        DateTime::parse_from_rfc3339(text)
            .map(|t| t.to_utc())
            .map_err(|e| {
                FieldError::new(
                    name,
                    format!("expected an RFC 3339 instant such as 2026-11-23T10:00:00Z, got {text:?} ({e})"),
                )
                .into()
            })
    })
    .transpose()
}

/// Runs one page of `filter` and the cursor of the next.
async fn page(app: &AppState, tenant: &Tenant, filter: RunFilter) -> Result<RunPage, ApiError> {
    let (runs, next_cursor) = runs_page(app.store.as_ref(), tenant, filter).await?;
    Ok(RunPage {
        items: runs.into_iter().map(RunView::from).collect(),
        next_cursor,
    })
}

/// A job's runs, newest first.
#[utoipa::path(
    get, path = "/v1/jobs/{id}/runs", tag = "runs",
    params(("id" = String, Path, description = "Job id"), ListRunsQuery),
    responses(
        (status = 200, description = "OK", body = RunPage),
    )
)]
pub async fn list_runs(
    Reader(caller): Reader,
    State(app): State<AppState>,
    JobIdPath(id): JobIdPath,
    ApiQuery(query): ApiQuery<ListRunsQuery>,
) -> Result<Json<RunPage>, ApiError> {
    let filter = RunFilter {
        statuses: statuses(query.status.as_deref())?,
        limit: limit(query.limit.as_deref())?,
        cursor: run_cursor(query.cursor.as_deref())?,
        job_id: Some(id.clone()),
        ..Default::default()
    };
    if !app.store.job_exists(&caller.tenant, &id).await? {
        return Err(ApiError::not_found_job(&id));
    }
    Ok(Json(page(&app, &caller.tenant, filter).await?))
}

/// Runs across jobs, newest first: the failed ones, a job's, those of a
/// time range.
#[utoipa::path(
    get, path = "/v1/runs", tag = "runs",
    params(ListAllRunsQuery),
    responses(
        (status = 200, description = "OK", body = RunPage),
    )
)]
pub async fn list_all_runs(
    Reader(caller): Reader,
    State(app): State<AppState>,
    ApiQuery(query): ApiQuery<ListAllRunsQuery>,
) -> Result<Json<RunPage>, ApiError> {
    let job_id = super::extract::job_id_param(query.job_id.as_deref())?;
    let filter = RunFilter {
        job_id,
        statuses: statuses(query.status.as_deref())?,
        created_after: instant_param(query.after.as_deref(), "after")?,
        created_before: instant_param(query.before.as_deref(), "before")?,
        cursor: run_cursor(query.cursor.as_deref())?,
        limit: limit(query.limit.as_deref())?,
    };
    Ok(Json(page(&app, &caller.tenant, filter).await?))
}

/// One run, with its attempts.
#[utoipa::path(
    get, path = "/v1/runs/{id}", tag = "runs",
    params(("id" = String, Path, description = "Run id (a UUID)")),
    responses(
        (status = 200, description = "OK", body = RunDetailView),
        (status = 404, description = "No such run", body = Problem, content_type = "application/problem+json",
         example = json!({"type": "about:blank", "title": "Not Found", "status": 404, "detail": "no run with id \"0190c4a4-0000-7000-8000-000000000000\""})),
    )
)]
pub async fn get_run(
    Reader(caller): Reader,
    State(app): State<AppState>,
    Path(raw): Path<String>,
) -> Result<Json<RunDetailView>, ApiError> {
    let not_found = || ApiError::NotFound(format!("no run with id \"{raw}\""));
    let id = Uuid::parse_str(&raw).map_err(|_| not_found())?;
    let (run, attempts) = app
        .store
        .get_run(&caller.tenant, id)
        .await?
        .ok_or_else(not_found)?;
    Ok(Json(RunDetailView {
        run: run.into(),
        attempts: attempts.into_iter().map(AttemptView::from).collect(),
    }))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RunNowQuery {
    /// Go past `max_instances` and any waiting runs (default false).
    force: Option<bool>,
}

/// Run a job now, outside its schedule (also when paused or completed).
/// Over `max_instances` the job's `overlap` decides: under `skip` the run
/// is recorded `skipped` and the answer is 409; under `buffer_one` or
/// `buffer_all` it waits (`wait_reason: overlap`) and the answer is 202
/// (409 when the buffer is full). `?force=true` goes past the cap.
#[utoipa::path(
    post, path = "/v1/jobs/{id}/run", tag = "runs",
    params(("id" = String, Path, description = "Job id"), RunNowQuery, IdempotencyKeyHeader),
    responses(
        (status = 201, description = "A pending manual run (or, for a repeated Idempotency-Key, the run the first request made)", body = RunView,
         headers(("location" = String, description = "`/v1/runs/{id}`"))),
        (status = 202, description = "Over max_instances under a buffering overlap: the run waits for a run of the job to end", body = RunView,
         headers(("location" = String, description = "`/v1/runs/{id}`"))),
        (status = 409, description = "Over max_instances: recorded as skipped (`reason` max_instances or buffer_full); or the run an Idempotency-Key's first request made is gone", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "The tenant made its most runs this minute (`--max-runs-per-minute-per-tenant`, or its quota); `Retry-After` says when the minute ends", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn run_now(
    Writer(caller): Writer,
    State(app): State<AppState>,
    JobIdPath(id): JobIdPath,
    ApiQuery(query): ApiQuery<RunNowQuery>,
    IdempotencyHeader(key): IdempotencyHeader,
) -> Result<axum::response::Response, ApiError> {
    let tenant = &caller.tenant;
    let force = query.force.unwrap_or(false);
    // A forced run is another request than an unforced one.
    let path = if force {
        format!("/v1/jobs/{id}/run?force=true")
    } else {
        format!("/v1/jobs/{id}/run")
    };
    let idempotency = idempotent::request(key, "run_job", &path, b"");
    if let Some(run_id) = idempotent::earlier(&app, tenant, idempotency.as_ref()).await? {
        return ran_earlier(&app, tenant, &run_id).await;
    }
    let run = match app
        .ops(tenant, Via::Api)
        .run_now(&id, idempotency.as_ref(), force)
        .await
    {
        Ok(run) => run,
        Err(StoreError::NotFound) => return Err(ApiError::not_found_job(&id)),
        // A concurrent request with the same key may have made it first.
        Err(e) => {
            return match idempotent::earlier(&app, tenant, idempotency.as_ref()).await? {
                Some(run_id) => ran_earlier(&app, tenant, &run_id).await,
                None => Err(e.into()),
            };
        }
    };
    manual_run_answer(run)
}

/// 201 with a pending manual run, 202 with one that waits; 409 when it
/// was recorded as skipped.
fn manual_run_answer(run: Run) -> Result<axum::response::Response, ApiError> {
    if run.status == RunStatus::Skipped {
        let why = match run.reason.as_deref() {
            Some("buffer_full") => "and as many runs waiting as its overlap policy keeps",
            _ => "(overlap: skip)",
        };
        return Err(ApiError::Conflict(format!(
            "job {} already has its max_instances runs in flight {why}; run {} was recorded as skipped; ?force=true goes past the cap",
            run.job_id, run.id
        )));
    }
    let mut headers = HeaderMap::new();
    if let Ok(location) = HeaderValue::from_str(&format!("/v1/runs/{}", run.id)) {
        headers.insert(header::LOCATION, location);
    }
    let status = if run.wait_reason.is_some() {
        StatusCode::ACCEPTED
    } else {
        StatusCode::CREATED
    };
    Ok((status, headers, Json(RunView::from(run))).into_response())
}

/// The answer to a repeated run-now: the run the first request made.
async fn ran_earlier(
    app: &AppState,
    tenant: &Tenant,
    run_id: &str,
) -> Result<axum::response::Response, ApiError> {
    let run = match Uuid::parse_str(run_id) {
        Ok(id) => app.store.get_run(tenant, id).await?,
        Err(_) => None,
    };
    let (run, _) = run.ok_or_else(|| idempotent::gone("run", run_id))?;
    manual_run_answer(run)
}

/// Send a failed run again (redrive): it becomes `pending` with the same id
/// (and `webhook-id`); its attempts number on from the last, and its job's
/// `max_attempts` counts afresh. Event `run.retried`. Any other status is
/// a 409.
#[utoipa::path(
    post, path = "/v1/runs/{id}/retry", tag = "runs",
    params(("id" = String, Path, description = "Run id (a UUID)")),
    responses(
        (status = 200, description = "The run, pending again", body = RunView),
        (status = 404, description = "No such run", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The run is not failed", body = Problem, content_type = "application/problem+json",
         example = json!({"type": "about:blank", "title": "Conflict", "status": 409, "detail": "only a failed run can be sent again; this one is succeeded"})),
    )
)]
pub async fn retry_run(
    Writer(caller): Writer,
    State(app): State<AppState>,
    Path(raw): Path<String>,
) -> Result<Json<RunView>, ApiError> {
    let not_found = || ApiError::NotFound(format!("no run with id \"{raw}\""));
    let id = Uuid::parse_str(&raw).map_err(|_| not_found())?;
    let run = app
        .ops(&caller.tenant, Via::Api)
        .redrive(id)
        .await
        .map_err(|e| match e {
            StoreError::NotFound => not_found(),
            other => other.into(),
        })?;
    Ok(Json(run.into()))
}
