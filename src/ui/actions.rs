//! The dashboard's actions: each a form post with a CSRF token, the same
//! operation the API calls (`crate::ops`), then a redirect to the page to
//! look at.

use std::time::Duration;

use axum::extract::{Form, FromRequest, FromRequestParts, Path, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use uuid::Uuid;

use super::session::{CsrfForm, UiError, Viewer};
use crate::domain::job::JobId;
use crate::ops::{Ops, Via};
use crate::state::AppState;
use crate::store::StoreError;

/// The grace the old secret keeps after a rotation, as the API's default.
const ROTATE_GRACE: Duration = Duration::from_secs(crate::api::DEFAULT_SECRET_GRACE_S);

/// A form post from our own page by someone who may change things: the
/// viewer, checked against the form's CSRF token, and the id in the path.
pub struct Posted {
    pub(super) viewer: Viewer,
    pub(super) id: String,
}

impl FromRequest<AppState> for Posted {
    type Rejection = UiError;

    async fn from_request(request: Request, app: &AppState) -> Result<Self, UiError> {
        let (mut parts, body) = request.into_parts();
        let Path(id) = Path::<String>::from_request_parts(&mut parts, app)
            .await
            .map_err(|e| UiError::Page(StatusCode::NOT_FOUND, e.to_string()))?;
        let headers = parts.headers.clone();
        let Form(form) =
            Form::<CsrfForm>::from_request(Request::from_parts(parts, body), app).await?;
        let viewer = Viewer::write(app, &headers, &form.csrf).await?;
        Ok(Self { viewer, id })
    }
}

pub(super) fn job_id(raw: &str) -> Result<JobId, UiError> {
    JobId::parse(raw)
        .map_err(|_| UiError::Page(StatusCode::NOT_FOUND, format!("no job with id {raw:?}")))
}

fn to_job(id: &JobId) -> Response {
    Redirect::to(&format!("/ui/jobs/{}", id.as_str())).into_response()
}

pub(super) fn not_found(e: StoreError, id: &JobId) -> UiError {
    if e.is_not_found() {
        UiError::Page(
            StatusCode::NOT_FOUND,
            format!("no job with id {:?}", id.as_str()),
        )
    } else {
        e.into()
    }
}

/// The operations, asked for from the dashboard by this viewer.
fn ops<'a>(app: &'a AppState, viewer: &'a Viewer) -> Ops<'a> {
    app.ops(&viewer.caller.tenant, Via::Dashboard)
}

pub async fn pause(State(app): State<AppState>, posted: Posted) -> Result<Response, UiError> {
    let id = job_id(&posted.id)?;
    ops(&app, &posted.viewer)
        .pause(&id, Default::default())
        .await
        .map_err(|e| not_found(e, &id))?;
    Ok(to_job(&id))
}

pub async fn resume(State(app): State<AppState>, posted: Posted) -> Result<Response, UiError> {
    let id = job_id(&posted.id)?;
    ops(&app, &posted.viewer)
        .resume(&id)
        .await
        .map_err(|e| not_found(e, &id))?;
    Ok(to_job(&id))
}

/// A manual run; over `max_instances` it waits or is recorded as skipped
/// as the job's overlap policy says, which the job's runs then show.
pub async fn run_now(State(app): State<AppState>, posted: Posted) -> Result<Response, UiError> {
    let id = job_id(&posted.id)?;
    ops(&app, &posted.viewer)
        .run_now(&id, None, false)
        .await
        .map_err(|e| not_found(e, &id))?;
    Ok(to_job(&id))
}

pub async fn delete(State(app): State<AppState>, posted: Posted) -> Result<Response, UiError> {
    let id = job_id(&posted.id)?;
    if !ops(&app, &posted.viewer).delete(&id, false).await? {
        return Err(not_found(StoreError::NotFound, &id));
    }
    Ok(Redirect::to("/ui").into_response())
}

pub async fn rotate_secret(
    State(app): State<AppState>,
    posted: Posted,
) -> Result<Response, UiError> {
    let id = job_id(&posted.id)?;
    ops(&app, &posted.viewer)
        .rotate_secret(&id, ROTATE_GRACE)
        .await?
        .ok_or_else(|| not_found(StoreError::NotFound, &id))?;
    Ok(Redirect::to(&format!("/ui/jobs/{}/secret", id.as_str())).into_response())
}

/// Cancel: a run not sent ends at once; an accepted callback run's
/// receiver is asked to stop (§11.7).
pub async fn cancel(State(app): State<AppState>, posted: Posted) -> Result<Response, UiError> {
    let no_run = || {
        UiError::Page(
            StatusCode::NOT_FOUND,
            format!("no run with id {:?}", posted.id),
        )
    };
    let id = Uuid::parse_str(&posted.id).map_err(|_| no_run())?;
    ops(&app, &posted.viewer)
        .cancel_run(id)
        .await
        .map_err(|e| match e {
            StoreError::NotFound => no_run(),
            other => other.into(),
        })?;
    Ok(Redirect::to(&format!("/ui/runs/{id}")).into_response())
}

/// Redrive: a failed run is sent again with the same id.
pub async fn retry(State(app): State<AppState>, posted: Posted) -> Result<Response, UiError> {
    let no_run = || {
        UiError::Page(
            StatusCode::NOT_FOUND,
            format!("no run with id {:?}", posted.id),
        )
    };
    let id = Uuid::parse_str(&posted.id).map_err(|_| no_run())?;
    let run = ops(&app, &posted.viewer)
        .redrive(id)
        .await
        .map_err(|e| match e {
            StoreError::NotFound => no_run(),
            other => other.into(),
        })?;
    Ok(Redirect::to(&format!("/ui/runs/{}", run.id)).into_response())
}
