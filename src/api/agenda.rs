//! `GET /v1/agenda` (DESIGN.md §11.4): the coming occurrences of the
//! tenant's scheduled jobs in one list, with those calendars exclude or
//! move.

use axum::Json;
use axum::extract::State;
use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::auth::Reader;
use super::error::ApiError;
use super::extract::ApiQuery;
use crate::domain::agenda::{AgendaItem, MAX_DAYS, MAX_ITEMS};
use crate::domain::error::FieldError;
use crate::domain::instant;
use crate::ops::Via;
use crate::state::AppState;

/// Days an agenda covers without `to`.
pub const DEFAULT_DAYS: i64 = 7;
pub const DEFAULT_LIMIT: usize = 1_000;

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AgendaQuery {
    /// Occurrences after this instant (default now).
    #[param(value_type = Option<String>, format = DateTime)]
    pub from: Option<String>,
    /// …up to this one, at most 31 days on (default 7 days after `from`).
    #[param(value_type = Option<String>, format = DateTime)]
    pub to: Option<String>,
    /// Only this job's (none for a job that is not there, or not
    /// scheduled).
    pub job_id: Option<String>,
    /// Only the jobs this Kubernetes label selector picks (§11.9).
    #[param(max_length = 4096, example = "team=data")]
    pub selector: Option<String>,
    /// At most this many items, 1 to 10000 (default 1000).
    #[param(value_type = Option<i64>, minimum = 1, maximum = 10000)]
    pub limit: Option<String>,
}

/// One occurrence.
#[derive(Debug, Serialize, ToSchema)]
pub struct AgendaItemView {
    pub job_id: String,
    /// When it fires (or would have, when excluded).
    #[serde(with = "instant::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub at: DateTime<Utc>,
    /// `at` as wall time in the job's zone, with its offset.
    pub local: String,
    /// The occurrence its calendars moved to `at`.
    #[serde(with = "instant::rfc3339_opt", skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub nominal_for: Option<DateTime<Utc>>,
    /// True when its calendars exclude it: no run is made.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub excluded: bool,
    /// Why it is excluded or moved.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The change of UTC offset in the 24 hours before it (`+01:00`): a
    /// daylight-saving change moved its wall time against UTC.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dst_shift: Option<String>,
}

impl From<AgendaItem> for AgendaItemView {
    fn from(i: AgendaItem) -> Self {
        Self {
            job_id: i.job_id,
            at: i.at,
            local: i.local,
            nominal_for: i.nominal_for,
            excluded: i.excluded,
            reason: i.reason,
            dst_shift: i.dst_shift,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Agenda {
    #[serde(with = "instant::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub from: DateTime<Utc>,
    #[serde(with = "instant::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub to: DateTime<Utc>,
    /// In `at` order; `limit` of them when there are more.
    pub items: Vec<AgendaItemView>,
}

fn instant_param(text: Option<&str>, field: &str) -> Result<Option<DateTime<Utc>>, ApiError> {
    text.map(|t| instant::parse(t).map_err(|m| FieldError::new(field, m).into()))
        .transpose()
}

/// The merged coming occurrences of the tenant's scheduled jobs (or one
/// job's), with the ones their calendars exclude or move and why, and the
/// ones a daylight-saving change shifts marked.
#[utoipa::path(
    get, path = "/v1/agenda", tag = "calendars",
    params(AgendaQuery),
    responses((status = 200, description = "OK", body = Agenda))
)]
pub async fn agenda(
    Reader(caller): Reader,
    State(app): State<AppState>,
    ApiQuery(query): ApiQuery<AgendaQuery>,
) -> Result<Json<Agenda>, ApiError> {
    let from = instant_param(query.from.as_deref(), "from")?
        .unwrap_or_else(|| instant::truncate(Utc::now()));
    let to = match instant_param(query.to.as_deref(), "to")? {
        Some(to) if to <= from => return Err(FieldError::new("to", "must be after from").into()),
        Some(to) if to - from > TimeDelta::days(MAX_DAYS) => {
            return Err(FieldError::new(
                "to",
                format!("must be at most {MAX_DAYS} days after from"),
            )
            .into());
        }
        Some(to) => to,
        None => from
            .checked_add_signed(TimeDelta::days(DEFAULT_DAYS))
            .ok_or_else(|| FieldError::new("from", "is too far in the future"))?,
    };
    let limit = match query.limit.as_deref() {
        None => DEFAULT_LIMIT,
        Some(text) => text
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=MAX_ITEMS).contains(n))
            .ok_or_else(|| {
                FieldError::new(
                    "limit",
                    format!("must be an integer from 1 to {MAX_ITEMS}, got {text:?}"),
                )
            })?,
    };
    let job = super::extract::job_id_param(query.job_id.as_deref())?;
    let selector = crate::domain::labels::selector_param(query.selector.as_deref())?;
    let items = app
        .ops(&caller.tenant, Via::Api)
        .agenda(from, to, job.as_ref(), &selector, limit)
        .await?;
    Ok(Json(Agenda {
        from,
        to,
        items: items.into_iter().map(AgendaItemView::from).collect(),
    }))
}
