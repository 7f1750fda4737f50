//! Flow keys (DESIGN.md §11.1): `GET /v1/flows`, `GET` and `PUT
//! /v1/flows/{key}`, `POST /v1/flows/{key}/pause` and `/resume`.

use axum::Json;
use axum::extract::{Path, State};
use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;

use super::auth::{Reader, Writer};
use super::error::{ApiError, Problem};
use super::extract::ApiJson;
use crate::domain::error::FieldError;
use crate::domain::flow::{FlowKey, FlowLimitsInput, Rate, parse_limits};
use crate::domain::instant;
use crate::state::AppState;
use crate::store::FlowInfo;

/// A flow key: its limits, whether it is paused, and its runs.
#[derive(Debug, Serialize, ToSchema)]
pub struct FlowView {
    pub key: String,
    pub max_in_flight: Option<u32>,
    pub rate: Option<Rate>,
    /// `api` (`PUT /v1/flows/{key}`) or `job` (the first job that declared
    /// them).
    pub defined_by: String,
    pub paused: bool,
    /// Runs of the key sent or being sent.
    pub in_flight: u32,
    /// Runs waiting for the key (`wait_reason: "flow:<key>"`).
    pub waiting: u32,
    /// Whole tokens in the bucket now; null without a rate.
    pub tokens: Option<u32>,
    /// When waiting runs may next go by time alone (a token, a run falling
    /// due, a `max_wait_s` deadline).
    #[serde(with = "instant::rfc3339_opt")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub next_admit_at: Option<DateTime<Utc>>,
}

impl From<FlowInfo> for FlowView {
    fn from(f: FlowInfo) -> Self {
        Self {
            key: f.key,
            max_in_flight: f.limits.max_in_flight,
            rate: f.limits.rate,
            defined_by: f.defined_by,
            paused: f.paused,
            in_flight: f.in_flight,
            waiting: f.waiting,
            tokens: f.tokens,
            next_admit_at: f.next_admit_at,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct FlowList {
    pub items: Vec<FlowView>,
}

fn key_of(raw: &str) -> Result<FlowKey, ApiError> {
    FlowKey::parse(raw).map_err(|m| FieldError::new("key", m).into())
}

fn not_found(key: &str) -> ApiError {
    ApiError::NotFound(format!("no flow key {key:?}"))
}

/// The tenant's flow keys, in key order.
#[utoipa::path(
    get, path = "/v1/flows", tag = "flows",
    responses((status = 200, description = "OK", body = FlowList))
)]
pub async fn list_flows(
    Reader(caller): Reader,
    State(app): State<AppState>,
) -> Result<Json<FlowList>, ApiError> {
    let flows = app.store.list_flows(&caller.tenant).await?;
    Ok(Json(FlowList {
        items: flows.into_iter().map(FlowView::from).collect(),
    }))
}

/// One flow key.
#[utoipa::path(
    get, path = "/v1/flows/{key}", tag = "flows",
    params(("key" = String, Path, description = "Flow key")),
    responses(
        (status = 200, description = "OK", body = FlowView),
        (status = 404, description = "No such key", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn get_flow(
    Reader(caller): Reader,
    State(app): State<AppState>,
    Path(raw): Path<String>,
) -> Result<Json<FlowView>, ApiError> {
    let info = app.store.get_flow(&caller.tenant, &raw).await?;
    Ok(Json(info.ok_or_else(|| not_found(&raw))?.into()))
}

/// Define a flow key's limits centrally: jobs then give only the key (a
/// job that gives other limits is refused, 409). Runs waiting for the key
/// are admitted under the new limits at once.
#[utoipa::path(
    put, path = "/v1/flows/{key}", tag = "flows",
    params(("key" = String, Path, description = "Flow key: 1 to 200 characters from [A-Za-z0-9._:-]")),
    request_body = FlowLimitsInput,
    responses(
        (status = 200, description = "The key, defined", body = FlowView),
        (status = 422, description = "A bad key or limit", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn put_flow(
    Writer(caller): Writer,
    State(app): State<AppState>,
    Path(raw): Path<String>,
    ApiJson(input): ApiJson<FlowLimitsInput>,
) -> Result<Json<FlowView>, ApiError> {
    let key = key_of(&raw)?;
    let limits = parse_limits(input.max_in_flight, input.rate, "")?;
    let info = app
        .store
        .put_flow(&caller.tenant, key.as_str(), limits)
        .await?;
    Ok(Json(info.into()))
}

/// Pause a flow key: its waiting runs stay waiting (runs in flight end).
#[utoipa::path(
    post, path = "/v1/flows/{key}/pause", tag = "flows",
    params(("key" = String, Path, description = "Flow key")),
    responses(
        (status = 200, description = "OK", body = FlowView),
        (status = 404, description = "No such key", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn pause_flow(
    Writer(caller): Writer,
    State(app): State<AppState>,
    Path(raw): Path<String>,
) -> Result<Json<FlowView>, ApiError> {
    let info = app.store.pause_flow(&caller.tenant, &raw, true).await?;
    Ok(Json(info.ok_or_else(|| not_found(&raw))?.into()))
}

/// Resume a flow key: its waiting runs go as its limits allow.
#[utoipa::path(
    post, path = "/v1/flows/{key}/resume", tag = "flows",
    params(("key" = String, Path, description = "Flow key")),
    responses(
        (status = 200, description = "OK", body = FlowView),
        (status = 404, description = "No such key", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn resume_flow(
    Writer(caller): Writer,
    State(app): State<AppState>,
    Path(raw): Path<String>,
) -> Result<Json<FlowView>, ApiError> {
    let info = app.store.pause_flow(&caller.tenant, &raw, false).await?;
    Ok(Json(info.ok_or_else(|| not_found(&raw))?.into()))
}
