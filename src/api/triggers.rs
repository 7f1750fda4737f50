//! `POST /v1/triggers/preview`: what a trigger will do, before a job uses it.

use axum::Json;
use axum::extract::State;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::auth::Reader;
use super::error::ApiError;
use super::extract::ApiJson;
use crate::domain::error::FieldError;
use crate::domain::instant;
use crate::domain::trigger::{TriggerInput, local_rfc3339};
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
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Preview {
    /// The zone `local` times are given in (UTC for interval and date).
    #[schema(example = "America/New_York")]
    pub timezone: String,
    /// Fewer than `count` when the trigger ends sooner.
    pub fire_times: Vec<FireTime>,
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
    Reader(_): Reader,
    State(_app): State<AppState>,
    ApiJson(request): ApiJson<PreviewRequest>,
) -> Result<Json<Preview>, ApiError> {
    let now = instant::truncate(Utc::now());
    let trigger = request
        .trigger
        .ok_or_else(|| FieldError::new("trigger", "is required"))?
        .parse(now, "trigger")?;
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
    let fire_times = first
        .into_iter()
        .chain(first.into_iter().flat_map(|t| trigger.fire_times_after(t)))
        .take(count)
        .map(|t| FireTime {
            at: instant::format(&t),
            local: local_rfc3339(t, timezone),
        })
        .collect();
    Ok(Json(Preview {
        timezone: timezone.name().to_string(),
        fire_times,
    }))
}
