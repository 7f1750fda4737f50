//! Runs: a job's history, one run with its attempts, and "run now".

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::IntoResponse;
use chrono::DateTime;
use serde::Deserialize;
use utoipa::IntoParams;
use uuid::Uuid;

use super::AppState;
use super::error::{ApiError, Problem};
use super::extract::{ApiQuery, JobIdPath};
use super::pagination::{decode_cursor, encode_cursor, limit};
use super::views::{AttemptView, RunDetailView, RunPage, RunView};
use crate::domain::error::FieldError;
use crate::domain::run::RunStatus;
use crate::store::{RunCursor, StoreError};

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListRunsQuery {
    /// Page size, 1 to 500 (default 50).
    limit: Option<String>,
    /// `next_cursor` of the previous page.
    cursor: Option<String>,
}

fn run_cursor(raw: Option<&str>) -> Result<Option<RunCursor>, ApiError> {
    let invalid = || {
        ApiError::from(FieldError::new(
            "cursor",
            "is not a cursor this service returned",
        ))
    };
    let Some(position) = decode_cursor(raw)? else {
        return Ok(None);
    };
    let (micros, id) = position.split_once(':').ok_or_else(invalid)?;
    let created_at = micros
        .parse::<i64>()
        .ok()
        .and_then(DateTime::from_timestamp_micros)
        .ok_or_else(invalid)?;
    let id = Uuid::parse_str(id).map_err(|_| invalid())?;
    Ok(Some(RunCursor { created_at, id }))
}

/// A job's runs, newest first.
#[utoipa::path(
    get, path = "/v1/jobs/{id}/runs", tag = "runs",
    params(("id" = String, Path, description = "Job id"), ListRunsQuery),
    responses(
        (status = 200, description = "OK", body = RunPage),
        (status = 404, description = "No such job", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A parameter is invalid", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn list_runs(
    State(app): State<AppState>,
    JobIdPath(id): JobIdPath,
    ApiQuery(query): ApiQuery<ListRunsQuery>,
) -> Result<Json<RunPage>, ApiError> {
    let limit = limit(query.limit.as_deref())?;
    let cursor = run_cursor(query.cursor.as_deref())?;
    if !app.store.job_exists(&id).await? {
        return Err(ApiError::not_found_job(&id));
    }
    let mut runs = app.store.list_runs(&id, cursor, limit + 1).await?;
    let next_cursor = if runs.len() > limit as usize {
        runs.truncate(limit as usize);
        runs.last()
            .map(|r| encode_cursor(&format!("{}:{}", r.created_at.timestamp_micros(), r.id)))
    } else {
        None
    };
    Ok(Json(RunPage {
        items: runs.into_iter().map(RunView::from).collect(),
        next_cursor,
    }))
}

/// One run, with its attempts.
#[utoipa::path(
    get, path = "/v1/runs/{id}", tag = "runs",
    params(("id" = String, Path, description = "Run id (a UUID)")),
    responses(
        (status = 200, description = "OK", body = RunDetailView),
        (status = 404, description = "No such run", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn get_run(
    State(app): State<AppState>,
    Path(raw): Path<String>,
) -> Result<Json<RunDetailView>, ApiError> {
    let not_found = || ApiError::NotFound(format!("no run with id \"{raw}\""));
    let id = Uuid::parse_str(&raw).map_err(|_| not_found())?;
    let (run, attempts) = app.store.get_run(id).await?.ok_or_else(not_found)?;
    Ok(Json(RunDetailView {
        run: run.into(),
        attempts: attempts.into_iter().map(AttemptView::from).collect(),
    }))
}

/// Run a job now, outside its schedule (also when paused or completed).
/// Over `max_instances` the run is recorded as `skipped` and the answer is 409.
#[utoipa::path(
    post, path = "/v1/jobs/{id}/run", tag = "runs",
    params(("id" = String, Path, description = "Job id")),
    responses(
        (status = 201, description = "A pending manual run", body = RunView),
        (status = 404, description = "No such job", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Over max_instances: recorded as skipped", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn run_now(
    State(app): State<AppState>,
    JobIdPath(id): JobIdPath,
) -> Result<impl IntoResponse, ApiError> {
    let run = app
        .store
        .create_manual_run(&id)
        .await
        .map_err(|e| match e {
            StoreError::NotFound => ApiError::not_found_job(&id),
            other => other.into(),
        })?;
    tracing::info!(job_id = %id, run_id = %run.id, status = run.status.as_str(), "manual run");
    if run.status == RunStatus::Skipped {
        return Err(ApiError::Conflict(format!(
            "job {id} already has its max_instances runs in flight; run {} was recorded as skipped",
            run.id
        )));
    }
    let mut headers = HeaderMap::new();
    if let Ok(location) = HeaderValue::from_str(&format!("/v1/runs/{}", run.id)) {
        headers.insert(header::LOCATION, location);
    }
    Ok((StatusCode::CREATED, headers, Json(RunView::from(run))))
}
