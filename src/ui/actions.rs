//! The dashboard's actions: each a form post with a CSRF token, the same
//! store command the API sends, then a redirect to the page to look at.

use std::time::Duration;

use axum::extract::rejection::FormRejection;
use axum::extract::{Form, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use chrono::Utc;
use uuid::Uuid;

use super::session::{CsrfForm, UiError, Viewer};
use crate::api::AppState;
use crate::domain::job::JobId;
use crate::domain::lifecycle::JobCommand;
use crate::domain::run::RunStatus;
use crate::domain::signing::generate_secret;
use crate::store::StoreError;

/// The grace the old secret keeps after a rotation, as the API's default.
const ROTATE_GRACE: Duration = Duration::from_secs(crate::api::DEFAULT_SECRET_GRACE_S);

async fn writer(
    app: &AppState,
    headers: &HeaderMap,
    form: Result<Form<CsrfForm>, FormRejection>,
) -> Result<Viewer, UiError> {
    let Form(form) = form?;
    Viewer::write(app, headers, &form.csrf).await
}

fn job_id(raw: &str) -> Result<JobId, UiError> {
    JobId::parse(raw)
        .map_err(|_| UiError::Page(StatusCode::NOT_FOUND, format!("no job with id {raw:?}")))
}

fn to_job(id: &JobId) -> Response {
    Redirect::to(&format!("/ui/jobs/{}", id.as_str())).into_response()
}

fn not_found(e: StoreError, id: &JobId) -> UiError {
    match e {
        StoreError::NotFound => UiError::Page(
            StatusCode::NOT_FOUND,
            format!("no job with id {:?}", id.as_str()),
        ),
        other => other.into(),
    }
}

async fn apply(
    app: &AppState,
    viewer: &Viewer,
    id: &JobId,
    command: JobCommand,
) -> Result<(), UiError> {
    let (job, _) = app
        .store
        .save_job(
            &viewer.caller.tenant,
            id,
            &command,
            app.parse_context(Utc::now()),
            None,
        )
        .await
        .map_err(|e| not_found(e, id))?;
    tracing::info!(tenant = %viewer.caller.tenant, job_id = %job.id, state = job.schedule.state().as_str(), "job changed from the dashboard");
    Ok(())
}

pub async fn pause(
    State(app): State<AppState>,
    headers: HeaderMap,
    Path(raw): Path<String>,
    form: Result<Form<CsrfForm>, FormRejection>,
) -> Result<Response, UiError> {
    let viewer = writer(&app, &headers, form).await?;
    let id = job_id(&raw)?;
    apply(&app, &viewer, &id, JobCommand::Pause).await?;
    Ok(to_job(&id))
}

pub async fn resume(
    State(app): State<AppState>,
    headers: HeaderMap,
    Path(raw): Path<String>,
    form: Result<Form<CsrfForm>, FormRejection>,
) -> Result<Response, UiError> {
    let viewer = writer(&app, &headers, form).await?;
    let id = job_id(&raw)?;
    apply(&app, &viewer, &id, JobCommand::Resume).await?;
    Ok(to_job(&id))
}

/// A manual run; over `max_instances` it is recorded as skipped, which the
/// job's runs then show.
pub async fn run_now(
    State(app): State<AppState>,
    headers: HeaderMap,
    Path(raw): Path<String>,
    form: Result<Form<CsrfForm>, FormRejection>,
) -> Result<Response, UiError> {
    let viewer = writer(&app, &headers, form).await?;
    let id = job_id(&raw)?;
    let run = app
        .store
        .create_manual_run(&viewer.caller.tenant, &id, None)
        .await
        .map_err(|e| not_found(e, &id))?;
    tracing::info!(tenant = %viewer.caller.tenant, job_id = %id, run_id = %run.id, status = run.status.as_str(), "manual run from the dashboard");
    app.metrics.runs(run.status, 1);
    Ok(to_job(&id))
}

pub async fn delete(
    State(app): State<AppState>,
    headers: HeaderMap,
    Path(raw): Path<String>,
    form: Result<Form<CsrfForm>, FormRejection>,
) -> Result<Response, UiError> {
    let viewer = writer(&app, &headers, form).await?;
    let id = job_id(&raw)?;
    if !app.store.delete_job(&viewer.caller.tenant, &id).await? {
        return Err(not_found(StoreError::NotFound, &id));
    }
    tracing::info!(tenant = %viewer.caller.tenant, job_id = %id, "job deleted from the dashboard");
    Ok(Redirect::to("/ui").into_response())
}

pub async fn rotate_secret(
    State(app): State<AppState>,
    headers: HeaderMap,
    Path(raw): Path<String>,
    form: Result<Form<CsrfForm>, FormRejection>,
) -> Result<Response, UiError> {
    let viewer = writer(&app, &headers, form).await?;
    let id = job_id(&raw)?;
    app.store
        .rotate_secret(&viewer.caller.tenant, &id, &generate_secret(), ROTATE_GRACE)
        .await?
        .ok_or_else(|| not_found(StoreError::NotFound, &id))?;
    tracing::info!(tenant = %viewer.caller.tenant, job_id = %id, "secret rotated from the dashboard");
    Ok(Redirect::to(&format!("/ui/jobs/{}/secret", id.as_str())).into_response())
}

/// Redrive: a failed run is sent again with the same id.
pub async fn retry(
    State(app): State<AppState>,
    headers: HeaderMap,
    Path(raw): Path<String>,
    form: Result<Form<CsrfForm>, FormRejection>,
) -> Result<Response, UiError> {
    let viewer = writer(&app, &headers, form).await?;
    let no_run = || UiError::Page(StatusCode::NOT_FOUND, format!("no run with id {raw:?}"));
    let id = Uuid::parse_str(&raw).map_err(|_| no_run())?;
    let run = app
        .store
        .retry_run(&viewer.caller.tenant, id)
        .await
        .map_err(|e| match e {
            StoreError::NotFound => no_run(),
            other => other.into(),
        })?;
    debug_assert_eq!(run.status, RunStatus::Pending);
    tracing::info!(tenant = %viewer.caller.tenant, job_id = %run.job_id, run_id = %run.id, "run sent again from the dashboard");
    Ok(Redirect::to(&format!("/ui/runs/{}", run.id)).into_response())
}
