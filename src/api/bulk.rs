//! Bulk actions (DESIGN.md §11.9): `POST /v1/jobs/bulk/{action}`.

use axum::Json;
use axum::extract::{Path, State};

use super::auth::Writer;
use super::error::{ApiError, Problem};
use super::extract::ApiJson;
use crate::domain::bulk::BulkInput;
use crate::ops::Via;
use crate::state::AppState;
use crate::store::bulk::BulkOutcome;

/// Pause, resume, run, patch or delete every job a label selector picks,
/// all or nothing, at most 10,000 jobs. Pausing or resuming a completed
/// job leaves it as it is; any other refusal of one job (a patch that does
/// not fit it, a monitor-only job to run) refuses the whole action, naming
/// the job. `pause` takes `until` (the scheduler resumes the jobs then)
/// and a `reason`. `delete` needs `confirm`, the number of jobs picked. With
/// `dry_run` the action is carried out and rolled back: the answer is
/// what it would do.
#[utoipa::path(
    post, path = "/v1/jobs/bulk/{action}", tag = "jobs",
    params(("action" = String, Path, description = "`pause`, `resume`, `run`, `patch` or `delete`",
            pattern = "^(pause|resume|run|patch|delete)$")),
    request_body = BulkInput,
    responses(
        (status = 200, description = "Done, or what a dry run would do", body = BulkOutcome),
        (status = 409, description = "`confirm` differs from the jobs picked, or one job refuses the action", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A bad selector, more than 10,000 jobs, or a patch that does not fit a job", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "The runs would pass the tenant's runs per minute", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn bulk_jobs(
    Writer(caller): Writer,
    State(app): State<AppState>,
    Path(action): Path<String>,
    ApiJson(input): ApiJson<BulkInput>,
) -> Result<Json<BulkOutcome>, ApiError> {
    let request = input.parse(&action, chrono::Utc::now())?;
    let outcome = app.ops(&caller.tenant, Via::Api).bulk(&request).await?;
    Ok(Json(outcome))
}
