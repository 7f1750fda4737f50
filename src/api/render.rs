//! `POST /v1/jobs/{id}/render`: the request a run would send (§11.2).

use axum::Json;
use axum::extract::State;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::auth::Writer;
use super::error::{ApiError, Problem};
use super::extract::{ApiJson, JobIdPath};
use super::views::TargetView;
use crate::domain::instant;
use crate::ops::Via;
use crate::state::AppState;
use crate::store::StoreError;

/// Which occurrence to render for.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RenderInput {
    /// The occurrence (default: the job's next run, else now).
    #[serde(default, with = "instant::rfc3339_opt")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub scheduled_for: Option<DateTime<Utc>>,
}

/// The request a run for `scheduled_for` would send, with the job's last
/// success as it stands.
#[derive(Debug, Serialize, ToSchema)]
pub struct RenderedView {
    #[serde(with = "instant::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub scheduled_for: DateTime<Utc>,
    /// Sensitive header values are named in `sensitive_headers`, never
    /// shown.
    pub request: TargetView,
}

/// Render a job's request for an occurrence: with `target.template`, its
/// expressions filled in as a run for `scheduled_for` would send them
/// (sensitive header values masked); without, the target as it is. A
/// template that does not render for it is 422, naming the field.
#[utoipa::path(
    post, path = "/v1/jobs/{id}/render", tag = "jobs",
    params(("id" = String, Path, description = "Job id")),
    request_body = RenderInput,
    responses(
        (status = 200, description = "The request a run would send", body = RenderedView),
        (status = 404, description = "No such job", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "The template does not render for this occurrence", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn render_request(
    Writer(caller): Writer,
    State(app): State<AppState>,
    JobIdPath(id): JobIdPath,
    ApiJson(input): ApiJson<RenderInput>,
) -> Result<Json<RenderedView>, ApiError> {
    match app
        .ops(&caller.tenant, Via::Api)
        .render(&id, input.scheduled_for)
        .await
    {
        Ok((scheduled_for, target)) => Ok(Json(RenderedView {
            scheduled_for,
            request: TargetView::from(&target),
        })),
        Err(StoreError::NotFound) => Err(ApiError::not_found_job(&id)),
        Err(e) => Err(e.into()),
    }
}
