//! Backfills (DESIGN.md §11.3): `POST /v1/jobs/{id}/backfill`,
//! `GET` and `DELETE /v1/backfills/{id}`.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use super::auth::{Reader, Writer};
use super::error::{ApiError, Problem};
use super::extract::{ApiJson, JobIdPath};
use crate::domain::backfill::BackfillInput;
use crate::domain::instant;
use crate::ops::Via;
use crate::state::AppState;
use crate::store::{Backfill, BackfillMade, StoreError};

/// A backfill and how far it has come.
#[derive(Debug, Serialize, ToSchema)]
pub struct BackfillView {
    pub id: Uuid,
    pub job_id: String,
    #[serde(with = "instant::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub from: DateTime<Utc>,
    #[serde(with = "instant::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub to: DateTime<Utc>,
    /// `buffer_all`, `buffer_one` or `skip`.
    pub overlap: String,
    pub reprocess: bool,
    /// The occurrences in the range.
    pub occurrences: u32,
    /// The runs it made: occurrences that had a run got none, unless
    /// reprocessing.
    pub runs_made: u32,
    /// Its runs by state: `waiting` (for a run of the backfill to end),
    /// `pending`, `running`, `succeeded`, `failed`, `skipped`, `cancelled`.
    #[schema(value_type = Object)]
    pub runs: BTreeMap<String, u64>,
    /// No run of it is pending or running.
    pub done: bool,
    #[serde(with = "instant::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: DateTime<Utc>,
    #[serde(with = "instant::rfc3339_opt")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub cancelled_at: Option<DateTime<Utc>>,
}

impl From<Backfill> for BackfillView {
    fn from(b: Backfill) -> Self {
        let open = ["waiting", "pending", "running"];
        Self {
            id: b.id,
            job_id: b.job_id.to_string(),
            from: b.from,
            to: b.to,
            overlap: b.overlap,
            reprocess: b.reprocess,
            occurrences: b.occurrences,
            runs_made: b.runs_made,
            done: !open.iter().any(|s| b.runs.get(*s).is_some_and(|n| *n > 0)),
            runs: b.runs,
            created_at: b.created_at,
            cancelled_at: b.cancelled_at,
        }
    }
}

/// One occurrence a dry run lists.
#[derive(Debug, Serialize, ToSchema)]
pub struct OccurrenceView {
    #[serde(with = "instant::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub scheduled_for: DateTime<Utc>,
    /// The run it has; a backfill makes one only where this is null
    /// (or, reprocessing, beside it).
    pub run_id: Option<Uuid>,
}

/// What a dry run lists: nothing is made.
#[derive(Debug, Serialize, ToSchema)]
pub struct DryRunView {
    pub dry_run: bool,
    pub occurrences: Vec<OccurrenceView>,
    /// How many have no run yet.
    pub without_run: usize,
}

/// Backfill a job: a run (`cause: backfill`) for every occurrence of its
/// trigger in `[from, to]` that has none (with `reprocess`, a new run
/// beside each that has, with `replay_of`). They go out one after another
/// in `scheduled_for` order, at most `max_instances` at once, beside the
/// job's own runs, under the backfill's `overlap` (default `buffer_all`);
/// a template job renders each with its own `scheduled_for`. Works on
/// paused and completed jobs; `to` may be in the future (those runs wait
/// for their instant). Repeating a request makes no second run of an
/// occurrence. `dry_run` lists the occurrences and the runs they have.
#[utoipa::path(
    post, path = "/v1/jobs/{id}/backfill", tag = "jobs",
    params(("id" = String, Path, description = "Job id")),
    request_body = BackfillInput,
    responses(
        (status = 201, description = "The backfill made", body = BackfillView,
         headers(("location" = String, description = "`/v1/backfills/{id}`"))),
        (status = 200, description = "A dry run: the occurrences, nothing made", body = DryRunView),
        (status = 404, description = "No such job", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The job is monitor-only: pings move its runs", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A bad range, or more occurrences than `max`", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "The tenant made its most runs this minute", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn create_backfill(
    Writer(caller): Writer,
    State(app): State<AppState>,
    JobIdPath(id): JobIdPath,
    ApiJson(input): ApiJson<BackfillInput>,
) -> Result<Response, ApiError> {
    let spec = input.parse()?;
    match app.ops(&caller.tenant, Via::Api).backfill(&id, &spec).await {
        Ok(BackfillMade::DryRun(listed)) => {
            let without_run = listed.iter().filter(|(_, run)| run.is_none()).count();
            let occurrences = listed
                .into_iter()
                .map(|(scheduled_for, run_id)| OccurrenceView {
                    scheduled_for,
                    run_id,
                })
                .collect();
            Ok(Json(DryRunView {
                dry_run: true,
                occurrences,
                without_run,
            })
            .into_response())
        }
        Ok(BackfillMade::Made(backfill)) => {
            let mut headers = HeaderMap::new();
            if let Ok(location) = HeaderValue::from_str(&format!("/v1/backfills/{}", backfill.id)) {
                headers.insert(header::LOCATION, location);
            }
            Ok((
                StatusCode::CREATED,
                headers,
                Json(BackfillView::from(backfill)),
            )
                .into_response())
        }
        Err(StoreError::NotFound) => Err(ApiError::not_found_job(&id)),
        Err(e) => Err(e.into()),
    }
}

fn backfill_id(raw: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(raw).map_err(|_| not_found(raw))
}

fn not_found(raw: &str) -> ApiError {
    ApiError::NotFound(format!("no backfill with id \"{raw}\""))
}

/// A backfill: its range, policy and runs by state.
#[utoipa::path(
    get, path = "/v1/backfills/{id}", tag = "jobs",
    params(("id" = String, Path, description = "Backfill id (a UUID)")),
    responses(
        (status = 200, description = "OK", body = BackfillView),
        (status = 404, description = "No such backfill", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn get_backfill(
    Reader(caller): Reader,
    State(app): State<AppState>,
    Path(raw): Path<String>,
) -> Result<Json<BackfillView>, ApiError> {
    let id = backfill_id(&raw)?;
    let backfill = app.store.get_backfill(&caller.tenant, id).await?;
    Ok(Json(backfill.ok_or_else(|| not_found(&raw))?.into()))
}

/// Cancel a backfill: its pending runs (waiting or not yet sent) end
/// `cancelled` (`reason: backfill_cancelled`); those being sent finish.
#[utoipa::path(
    delete, path = "/v1/backfills/{id}", tag = "jobs",
    params(("id" = String, Path, description = "Backfill id (a UUID)")),
    responses(
        (status = 200, description = "The backfill, cancelled", body = BackfillView),
        (status = 404, description = "No such backfill", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn cancel_backfill(
    Writer(caller): Writer,
    State(app): State<AppState>,
    Path(raw): Path<String>,
) -> Result<Json<BackfillView>, ApiError> {
    let id = backfill_id(&raw)?;
    let backfill = app.store.cancel_backfill(&caller.tenant, id).await?;
    Ok(Json(backfill.ok_or_else(|| not_found(&raw))?.into()))
}
