//! `POST /v1/triggers/preview`: what a trigger will do, before a job uses it.

use axum::Json;
use axum::extract::State;
use std::sync::Arc;

use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::auth::Reader;
use super::error::ApiError;
use super::extract::ApiJson;
use crate::domain::agenda::{self, AgendaItem};
use crate::domain::calendar::Book;
use crate::domain::error::FieldError;
use crate::domain::instant;
use crate::domain::trigger::{Binding, TriggerInput, local_rfc3339};
use crate::state::AppState;

pub const DEFAULT_COUNT: i64 = 10;
pub const MAX_COUNT: i64 = 1000;

/// A trigger to preview.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PreviewRequest {
    #[schema(required = true, value_type = TriggerInput)]
    pub trigger: Option<TriggerInput>,
    /// List fire times strictly after this instant. Without it, the list
    /// starts where a job created now would (a past `run_at` included).
    #[serde(default, with = "instant::rfc3339_opt")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub after: Option<DateTime<Utc>>,
    /// How many fire times, 1 to 1000 (default 10).
    #[serde(default)]
    #[schema(minimum = 1, maximum = 1000)]
    pub count: Option<i64>,
    /// Resolve `H` in a cron expression as for this job id (without it,
    /// as for a job without one).
    #[serde(default)]
    pub job_id: Option<String>,
}

/// One fire time.
#[derive(Debug, Serialize, ToSchema)]
pub struct FireTime {
    /// The instant, in UTC.
    #[schema(example = "2026-03-08T07:00:00Z")]
    pub at: String,
    /// The same instant as wall time in the trigger's zone, with its offset.
    #[schema(example = "2026-03-08T03:00:00-04:00")]
    pub local: String,
    /// The occurrence calendars moved here (§11.4).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nominal_for: Option<String>,
    /// Why it was moved here, or (in `excluded`) why it does not fire.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The change of UTC offset in the 24 hours before it (`+01:00`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dst_shift: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Preview {
    /// The zone `local` times are given in (UTC for interval and date).
    #[schema(example = "America/New_York")]
    pub timezone: String,
    /// Fewer than `count` when the trigger ends sooner.
    pub fire_times: Vec<FireTime>,
    /// Occurrences its calendars exclude, up to the last fire time listed.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub excluded: Vec<FireTime>,
    /// The cron expression with `H` resolved.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resolved_expr: Option<String>,
}

/// Preview a trigger's next fire times. It validates exactly as job
/// creation does.
#[utoipa::path(
    post, path = "/v1/triggers/preview", tag = "triggers",
    request_body = PreviewRequest,
    responses(
        (status = 200, description = "The next fire times", body = Preview),
    )
)]
pub async fn preview(
    Reader(caller): Reader,
    State(app): State<AppState>,
    ApiJson(request): ApiJson<PreviewRequest>,
) -> Result<Json<Preview>, ApiError> {
    Ok(Json(preview_for(&app, &caller.tenant, request).await?))
}

/// What `request`'s trigger will do for `tenant`: the API's preview, and
/// the dashboard's job form as the trigger is typed.
pub async fn preview_for(
    app: &AppState,
    tenant: &crate::domain::auth::Tenant,
    request: PreviewRequest,
) -> Result<Preview, ApiError> {
    let now = instant::truncate(Utc::now());
    let trigger = request
        .trigger
        .ok_or_else(|| FieldError::new("trigger", "is required"))?
        .parse(now, "trigger")?;
    let job_id = super::extract::job_id_param(request.job_id.as_deref())?;
    let calendars: Book = if trigger.calendar_ids().is_empty() {
        Book::new()
    } else {
        app.store
            .list_calendars(tenant)
            .await?
            .into_iter()
            .map(|r| (r.calendar.id.clone(), r.calendar))
            .collect()
    };
    let binding = Binding {
        seed: format!(
            "{}/{}",
            tenant,
            job_id.as_ref().map_or("", |id| id.as_str())
        ),
        calendars: Arc::new(calendars),
    };
    let trigger = trigger.bind(&binding, "trigger")?;
    let count = match request.count.unwrap_or(DEFAULT_COUNT) {
        n if (1..=MAX_COUNT).contains(&n) => n as usize,
        n => {
            return Err(FieldError::new(
                "count",
                format!("must be between 1 and {MAX_COUNT}, got {n}"),
            )
            .into());
        }
    };
    let first = match request.after {
        Some(after) => trigger.next_after(after),
        None => trigger.first_fire_time(now),
    };
    let timezone = trigger.timezone();
    let times: Vec<DateTime<Utc>> = first
        .into_iter()
        .chain(first.into_iter().flat_map(|t| trigger.fire_times_after(t)))
        .take(count)
        .collect();
    // What the calendars did between the first and the last listed.
    let explained = match (times.first(), times.last()) {
        (Some(first), Some(last)) => agenda::job_items(
            "",
            &trigger,
            *first - TimeDelta::microseconds(1),
            *last,
            usize::MAX,
        ),
        _ => Vec::new(),
    };
    let shown = |i: &AgendaItem| FireTime {
        at: instant::format(&i.at),
        local: i.local.clone(),
        nominal_for: i.nominal_for.as_ref().map(instant::format),
        reason: i.reason.clone(),
        dst_shift: i.dst_shift.clone(),
    };
    let fire_times = times
        .iter()
        .map(|t| {
            let moved = explained
                .iter()
                .find(|i| i.at == *t && i.nominal_for.is_some());
            let plain = explained.iter().find(|i| i.at == *t && !i.excluded);
            match moved.or(plain) {
                Some(item) => shown(item),
                None => FireTime {
                    at: instant::format(t),
                    local: local_rfc3339(*t, timezone),
                    nominal_for: None,
                    reason: None,
                    dst_shift: None,
                },
            }
        })
        .collect();
    let excluded = explained.iter().filter(|i| i.excluded).map(shown).collect();
    Ok(Preview {
        timezone: timezone.name().to_string(),
        fire_times,
        excluded,
        resolved_expr: trigger.to_input().resolved_expr,
    })
}
