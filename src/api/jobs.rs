//! `/v1/jobs`: create, read, list, replace, modify, pause, resume, delete.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::IntoResponse;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{Map, Value};
use utoipa::{IntoParams, ToSchema};

use super::auth::{Reader, Writer};
use super::error::{ApiError, Problem};
use super::extract::{ApiJson, ApiQuery, BaseUrl, IdempotencyHeader, JobIdPath, OptionalJson};
use super::idempotent;
use super::pagination::{encode_job_cursor, job_cursor, limit};
use super::schema::IdempotencyKeyHeader;
use super::views::{JobPage, JobView};
use crate::domain::auth::{Role, Tenant};
use crate::domain::error::FieldError;
use crate::domain::instant;
use crate::domain::job::{JobId, JobInput, JobState, PauseNote, search_text};
use crate::domain::lifecycle::JobCommand;
use crate::ops::Via;
use crate::state::AppState;
use crate::store::{Job, JobFilter, Saved, StoreError};

fn created(job: Job, role: Role, base: &str) -> impl IntoResponse {
    let mut headers = HeaderMap::new();
    if let Ok(location) = HeaderValue::from_str(&format!("/v1/jobs/{}", job.id)) {
        headers.insert(header::LOCATION, location);
    }
    (
        StatusCode::CREATED,
        headers,
        Json(JobView::seen_by(job, role, base)),
    )
}

/// Create a job.
#[utoipa::path(
    post, path = "/v1/jobs", tag = "jobs",
    params(IdempotencyKeyHeader),
    request_body = JobInput,
    responses(
        (status = 201, description = "Created (or, for a repeated Idempotency-Key, the job the first request created)", body = JobView,
         headers(("location" = String, description = "`/v1/jobs/{id}`"))),
        (status = 409, description = "A job with this id exists; or the job an Idempotency-Key's first request created was deleted", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "The tenant holds its most jobs (`--max-jobs-per-tenant`); with `Retry-After`", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn create_job(
    Writer(caller): Writer,
    State(app): State<AppState>,
    BaseUrl(base): BaseUrl,
    IdempotencyHeader(key): IdempotencyHeader,
    ApiJson(input): ApiJson<JobInput>,
) -> Result<axum::response::Response, ApiError> {
    let body = serde_json::to_vec(&input).map_err(|e| ApiError::Internal(e.into()))?;
    let idempotency = idempotent::request(key, "create_job", "/v1/jobs", &body);
    let tenant = &caller.tenant;
    if let Some(job_id) = idempotent::earlier(&app, tenant, idempotency.as_ref()).await? {
        return created_earlier(&app, tenant, &job_id, caller.role, &base).await;
    }
    let ctx = app.parse_context(Utc::now());
    let spec = input.parse(ctx.clone())?;
    let id = spec.id.clone().unwrap_or_else(JobId::generate);
    let command = JobCommand::Create {
        spec,
        secret: app.new_job_secret(),
    };
    match app
        .store
        .save_job(tenant, &id, &command, ctx, idempotency.as_ref())
        .await
    {
        Ok((job, _)) => {
            tracing::info!(tenant = %tenant, job_id = %job.id, state = job.schedule.state().as_str(), "job created");
            Ok(created(job, caller.role, &base).into_response())
        }
        // A concurrent request with the same key may have made it first.
        Err(e) => match idempotent::earlier(&app, tenant, idempotency.as_ref()).await? {
            Some(job_id) => created_earlier(&app, tenant, &job_id, caller.role, &base).await,
            None => Err(e.into()),
        },
    }
}

/// The answer to a repeated create: the job the first request made.
async fn created_earlier(
    app: &AppState,
    tenant: &Tenant,
    job_id: &str,
    role: Role,
    base: &str,
) -> Result<axum::response::Response, ApiError> {
    let job = match JobId::parse(job_id) {
        Ok(id) => app.store.get_job(tenant, &id).await?,
        Err(_) => None,
    };
    let job = job.ok_or_else(|| idempotent::gone("job", job_id))?;
    Ok(created(job, role, base).into_response())
}

/// Create or replace a job (APScheduler's `replace_existing`).
///
/// Replacing keeps the job's runs, `created_at` and secret (unless the
/// request gives one). A trigger equal to the stored one keeps the
/// schedule as it is; a new trigger, `paused` or `next_run_at` recompute
/// it.
#[utoipa::path(
    put, path = "/v1/jobs/{id}", tag = "jobs",
    params(("id" = String, Path, description = "Job id")),
    request_body = JobInput,
    responses(
        (status = 200, description = "Replaced", body = JobView),
        (status = 201, description = "Created", body = JobView,
         headers(("location" = String, description = "`/v1/jobs/{id}`"))),
        (status = 409, description = "Pausing a completed job whose trigger does not change; or the job is being created by a concurrent request", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn replace_job(
    Writer(caller): Writer,
    State(app): State<AppState>,
    BaseUrl(base): BaseUrl,
    JobIdPath(id): JobIdPath,
    ApiJson(input): ApiJson<JobInput>,
) -> Result<axum::response::Response, ApiError> {
    let (job, saved) = app
        .ops(&caller.tenant, Via::Api)
        .replace(&id, input, app.new_job_secret())
        .await
        .map_err(|e| not_found(e, &id))?;
    Ok(match saved {
        Saved::Created => created(job, caller.role, &base).into_response(),
        Saved::Updated => Json(JobView::seen_by(job, caller.role, &base)).into_response(),
    })
}

/// Get one job, with its next fire time and last run.
#[utoipa::path(
    get, path = "/v1/jobs/{id}", tag = "jobs",
    params(("id" = String, Path, description = "Job id")),
    responses(
        (status = 200, description = "OK", body = JobView),
    )
)]
pub async fn get_job(
    Reader(caller): Reader,
    State(app): State<AppState>,
    BaseUrl(base): BaseUrl,
    JobIdPath(id): JobIdPath,
) -> Result<Json<JobView>, ApiError> {
    let job = app
        .store
        .get_job(&caller.tenant, &id)
        .await?
        .ok_or_else(|| ApiError::not_found_job(&id))?;
    Ok(Json(JobView::seen_by(job, caller.role, &base)))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListJobsQuery {
    /// Only jobs in this state.
    #[param(value_type = Option<JobState>)]
    state: Option<String>,
    /// Only jobs whose id or name contains this text, in any case.
    #[param(max_length = 1000, pattern = "^[^\\u0000]*$")]
    q: Option<String>,
    /// Only jobs whose labels match this Kubernetes label selector
    /// (`team=data,env!=dev,tier in (gold,silver)`, `!legacy`).
    #[param(max_length = 4096, example = "team=data,env!=dev")]
    selector: Option<String>,
    /// Page size (default 50).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 500)]
    limit: Option<String>,
    /// `next_cursor` of the previous page.
    cursor: Option<String>,
}

/// List jobs in id order.
#[utoipa::path(
    get, path = "/v1/jobs", tag = "jobs",
    params(ListJobsQuery),
    responses(
        (status = 200, description = "OK", body = JobPage),
    )
)]
pub async fn list_jobs(
    Reader(caller): Reader,
    State(app): State<AppState>,
    BaseUrl(base): BaseUrl,
    ApiQuery(query): ApiQuery<ListJobsQuery>,
) -> Result<Json<JobPage>, ApiError> {
    let state = query
        .state
        .as_deref()
        .map(|s| {
            JobState::parse(s).ok_or_else(|| {
                FieldError::new(
                    "state",
                    format!("expected scheduled, paused or completed, got {s:?}"),
                )
            })
        })
        .transpose()?;
    let filter = JobFilter {
        state,
        search: search_text(query.q.as_deref())?,
        selector: crate::domain::labels::selector_param(query.selector.as_deref())?,
        after: job_cursor(query.cursor.as_deref())?,
        ids: None,
        limit: limit(query.limit.as_deref())?,
    };
    let (jobs, more) = app.ops(&caller.tenant, Via::Api).jobs_page(filter).await?;
    let next_cursor = more
        .then(|| jobs.last().map(|job| encode_job_cursor(&job.id)))
        .flatten();
    Ok(Json(JobPage {
        items: jobs
            .into_iter()
            .map(|job| JobView::seen_by(job, caller.role, &base))
            .collect(),
        next_cursor,
    }))
}

/// Modify a job with a JSON Merge Patch (RFC 7396): only the fields given
/// change, objects merge (a new `target.url` keeps the body and headers),
/// `null` removes. A `trigger` naming a `type` replaces the trigger whole.
/// A new trigger recomputes `next_run_at`; `paused` pauses or resumes;
/// `next_run_at` forces the next fire time.
#[utoipa::path(
    patch, path = "/v1/jobs/{id}", tag = "jobs",
    params(("id" = String, Path, description = "Job id")),
    request_body(
        description = "A JSON Merge Patch (RFC 7396) of the job. Sent as `application/json`, it is read the same.",
        content(
            (ref("#/components/schemas/JobPatch") = "application/merge-patch+json"),
        )
    ),
    responses(
        (status = 200, description = "OK", body = JobView),
        (status = 409, description = "Pausing a completed job whose trigger does not change", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn modify_job(
    Writer(caller): Writer,
    State(app): State<AppState>,
    BaseUrl(base): BaseUrl,
    JobIdPath(id): JobIdPath,
    ApiJson(patch): ApiJson<Map<String, Value>>,
) -> Result<Json<JobView>, ApiError> {
    let ctx = app.parse_context(Utc::now());
    let (job, _) = app
        .store
        .save_job(&caller.tenant, &id, &JobCommand::Patch(patch), ctx, None)
        .await
        .map_err(|e| not_found(e, &id))?;
    tracing::info!(tenant = %caller.tenant, job_id = %job.id, state = job.schedule.state().as_str(), "job modified");
    Ok(Json(JobView::seen_by(job, caller.role, &base)))
}

fn not_found(e: StoreError, id: &JobId) -> ApiError {
    if e.is_not_found() {
        ApiError::not_found_job(id)
    } else {
        e.into()
    }
}

/// `POST /v1/jobs/{id}/pause`, all optional.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PauseInput {
    /// The scheduler resumes the job at this instant, from it (a fire
    /// time after it is due then); without it the job stays paused until
    /// resumed.
    #[serde(default, with = "instant::rfc3339_opt")]
    #[schema(value_type = Option<String>, format = DateTime)]
    until: Option<DateTime<Utc>>,
    /// Why, shown with the job (at most 500 characters).
    #[serde(default)]
    #[schema(max_length = 500)]
    reason: Option<String>,
}

/// Pause a job: no fire times until it is resumed, or until `until`;
/// runs in flight finish. Pausing a paused job again sets its `until` and
/// `reason` anew.
#[utoipa::path(
    post, path = "/v1/jobs/{id}/pause", tag = "jobs",
    params(("id" = String, Path, description = "Job id")),
    request_body(content = Option<PauseInput>, description = "Optional: when to resume, and why"),
    responses(
        (status = 200, description = "OK", body = JobView),
        (status = 409, description = "The job is completed", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`until` is not in the future, or `reason` is too long", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn pause_job(
    Writer(caller): Writer,
    State(app): State<AppState>,
    BaseUrl(base): BaseUrl,
    JobIdPath(id): JobIdPath,
    OptionalJson(input): OptionalJson<PauseInput>,
) -> Result<Json<JobView>, ApiError> {
    let note = PauseNote::parse(input.until, input.reason, Utc::now())?;
    let job = app
        .ops(&caller.tenant, Via::Api)
        .pause(&id, note)
        .await
        .map_err(|e| not_found(e, &id))?;
    Ok(Json(JobView::seen_by(job, caller.role, &base)))
}

/// Resume a job: `next_run_at` is computed from now; what fell due while
/// it was paused is not delivered.
#[utoipa::path(
    post, path = "/v1/jobs/{id}/resume", tag = "jobs",
    params(("id" = String, Path, description = "Job id")),
    responses(
        (status = 200, description = "OK", body = JobView),
        (status = 409, description = "The job is completed", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn resume_job(
    Writer(caller): Writer,
    State(app): State<AppState>,
    BaseUrl(base): BaseUrl,
    JobIdPath(id): JobIdPath,
) -> Result<Json<JobView>, ApiError> {
    let job = app
        .ops(&caller.tenant, Via::Api)
        .resume(&id)
        .await
        .map_err(|e| not_found(e, &id))?;
    Ok(Json(JobView::seen_by(job, caller.role, &base)))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DeleteJobQuery {
    /// Take the job out of the chains of the jobs that name it (DESIGN.md
    /// §11.8); without it, such a job is a 409 listing them.
    drop_refs: Option<bool>,
}

/// Delete a job and its runs.
#[utoipa::path(
    delete, path = "/v1/jobs/{id}", tag = "jobs",
    params(("id" = String, Path, description = "Job id"), DeleteJobQuery),
    responses(
        (status = 204, description = "Deleted"),
        (status = 409, description = "Other jobs' chains name it (see `drop_refs`)", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn delete_job(
    Writer(caller): Writer,
    State(app): State<AppState>,
    JobIdPath(id): JobIdPath,
    ApiQuery(query): ApiQuery<DeleteJobQuery>,
) -> Result<StatusCode, ApiError> {
    let drop_refs = query.drop_refs.unwrap_or(false);
    if app
        .ops(&caller.tenant, Via::Api)
        .delete(&id, drop_refs)
        .await?
    {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found_job(&id))
    }
}
