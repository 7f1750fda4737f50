//! Alerts (DESIGN.md §11.5): `GET /v1/alerts` and
//! `POST /v1/alerts/{id}/ack`. The watchdog opens, reminds and resolves
//! them; a client lists and acknowledges them.

use axum::Json;
use axum::extract::{Path, State};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::auth::{Reader, Writer};
use super::error::{ApiError, Problem};
use super::extract::ApiQuery;
use super::pagination::limit;
use crate::domain::alert::{AlertState, Condition};
use crate::domain::error::FieldError;
use crate::domain::instant;
use crate::state::AppState;
use crate::store::alerts::{AlertFilter, AlertRecord};

/// An alert: a job's runs failed, were missed, started late, ran too long
/// or too short.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Alert)]
pub struct AlertView {
    pub id: Uuid,
    pub job_id: String,
    pub condition: Condition,
    /// `open`, `acked` (no reminders until it resolves) or `resolved`.
    pub state: AlertState,
    /// The run it is about.
    pub run_id: Option<Uuid>,
    /// What happened, in words.
    #[schema(example = "3 runs failed in a row")]
    pub detail: String,
    #[serde(with = "instant::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub opened_at: DateTime<Utc>,
    /// When it was last sent (opened or reminded).
    #[serde(with = "instant::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub notified_at: DateTime<Utc>,
    pub reminders: u32,
    #[serde(with = "instant::rfc3339_opt")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub acked_at: Option<DateTime<Utc>>,
    #[serde(with = "instant::rfc3339_opt")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub resolved_at: Option<DateTime<Utc>>,
}

impl From<AlertRecord> for AlertView {
    fn from(a: AlertRecord) -> Self {
        Self {
            id: a.id,
            job_id: a.job_id,
            condition: a.condition,
            state: a.state,
            run_id: a.run_id,
            detail: a.detail,
            opened_at: a.opened_at,
            notified_at: a.notified_at,
            reminders: a.reminders,
            acked_at: a.acked_at,
            resolved_at: a.resolved_at,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AlertList {
    pub items: Vec<AlertView>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListAlertsQuery {
    /// Only alerts in this state.
    #[param(value_type = Option<AlertState>)]
    state: Option<String>,
    /// Only this job's alerts.
    job_id: Option<String>,
    /// Only alerts of this condition.
    #[param(value_type = Option<Condition>)]
    condition: Option<String>,
    /// How many, newest first (default 50).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 500)]
    limit: Option<String>,
}

fn one_of<T>(
    raw: Option<&str>,
    field: &str,
    parse: fn(&str) -> Option<T>,
    names: &[&str],
) -> Result<Option<T>, ApiError> {
    raw.map(|text| {
        parse(text).ok_or_else(|| {
            ApiError::from(FieldError::new(
                field,
                format!("must be one of {}, got {text:?}", names.join(", ")),
            ))
        })
    })
    .transpose()
}

/// The tenant's alerts, newest first.
#[utoipa::path(
    get, path = "/v1/alerts", tag = "alerts",
    params(ListAlertsQuery),
    responses(
        (status = 200, description = "OK", body = AlertList),
        (status = 422, description = "A bad parameter", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn list_alerts(
    Reader(caller): Reader,
    State(app): State<AppState>,
    ApiQuery(query): ApiQuery<ListAlertsQuery>,
) -> Result<Json<AlertList>, ApiError> {
    let job_id = super::extract::job_id_param(query.job_id.as_deref())?;
    let filter = AlertFilter {
        id: None,
        job_id: job_id.map(|id| id.to_string()),
        state: one_of(
            query.state.as_deref(),
            "state",
            AlertState::parse,
            &["open", "acked", "resolved"],
        )?,
        condition: one_of(
            query.condition.as_deref(),
            "condition",
            Condition::parse,
            &Condition::ALL.map(Condition::as_str),
        )?,
        unresolved: false,
        limit: limit(query.limit.as_deref())?,
    };
    let alerts = app.store.list_alerts(&caller.tenant, &filter).await?;
    Ok(Json(AlertList {
        items: alerts.into_iter().map(AlertView::from).collect(),
    }))
}

/// Acknowledge an alert: it stays open, without reminders, until the job
/// recovers. Acknowledging one twice is harmless; a resolved one is a 409.
#[utoipa::path(
    post, path = "/v1/alerts/{id}/ack", tag = "alerts",
    params(("id" = String, Path, description = "Alert id (a UUID)")),
    responses(
        (status = 200, description = "Acknowledged", body = AlertView),
        (status = 404, description = "No such alert", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The alert is resolved", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn ack_alert(
    Writer(caller): Writer,
    State(app): State<AppState>,
    Path(raw): Path<String>,
) -> Result<Json<AlertView>, ApiError> {
    let not_found = || ApiError::NotFound(format!("no alert with id \"{raw}\""));
    let id = Uuid::parse_str(&raw).map_err(|_| not_found())?;
    let alert = app
        .store
        .ack_alert(&caller.tenant, id)
        .await?
        .ok_or_else(not_found)?;
    Ok(Json(alert.into()))
}
