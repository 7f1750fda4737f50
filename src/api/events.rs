//! `/v1/events`: what happened to a tenant's jobs and runs, as a list and
//! as a live stream of Server-Sent Events (DESIGN.md §9).

use std::convert::Infallible;
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use chrono::{DateTime, Utc};
use futures_util::Stream;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::sync::mpsc;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::auth::Reader;
use super::error::{ApiError, Problem};
use super::extract::ApiQuery;
use crate::access::Denied;
use crate::domain::auth::Tenant;
use crate::domain::error::FieldError;
use crate::domain::event::EventType;
use crate::domain::instant;
use crate::state::AppState;
use crate::store::{Event, EventFilter, StoreError};

pub const DEFAULT_LIMIT: u32 = 100;
pub const MAX_LIMIT: u32 = 1000;
/// A heartbeat comment this often keeps proxies (and our idle timeout)
/// from closing a quiet stream.
pub const HEARTBEAT: Duration = Duration::from_secs(15);
/// Events read per query while a stream catches up.
const STREAM_PAGE: u32 = 500;
/// Events a stream holds for a slow client; past it, after
/// [`SLOW_CLIENT_GRACE`], the stream is closed (the client resumes with
/// `Last-Event-ID`).
const STREAM_BUFFER: usize = 1000;
const SLOW_CLIENT_GRACE: Duration = Duration::from_secs(30);
/// How often a stream looks even without a wake-up.
const STREAM_POLL: Duration = Duration::from_secs(1);

/// Something that happened, written with the change it describes.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Event)]
pub struct EventView {
    /// A UUIDv7; also the `id:` of the stream, and the `webhook-id` of its
    /// deliveries to subscriptions.
    pub id: Uuid,
    #[serde(rename = "type")]
    pub kind: EventType,
    #[serde(with = "instant::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub at: DateTime<Utc>,
    pub job_id: String,
    pub run_id: Option<Uuid>,
    /// What it says, by type: a job's `state` and `next_run_at`; a run's
    /// `status`, `cause`, `scheduled_for`, `occurrences`; an attempt's
    /// `attempt`, `status_code`, `error`, `retry_in_ms`; `reason` of a
    /// pause.
    #[schema(value_type = Object)]
    pub data: Value,
}

impl From<Event> for EventView {
    fn from(e: Event) -> Self {
        Self {
            id: e.id,
            kind: e.kind,
            at: e.at,
            job_id: e.job_id,
            run_id: e.run_id,
            data: e.data,
        }
    }
}

/// Events, oldest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct EventPage {
    pub items: Vec<EventView>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EventsQuery {
    /// Only events after this one (the last `id` seen), or `now`: only
    /// events written from now on.
    #[param(value_type = Option<String>)]
    after: Option<String>,
    /// `asc` (default: oldest first, to follow) or `desc` (newest first,
    /// to look back; `after` then pages back).
    #[param(value_type = Option<String>, pattern = "^(asc|desc)$")]
    order: Option<String>,
    /// Only events of these types, comma-separated (`run.failed,job.paused`).
    #[serde(rename = "type")]
    #[param(value_type = Option<Vec<EventType>>, style = Form, explode = false)]
    kind: Option<String>,
    /// Only this job's events.
    job_id: Option<String>,
    /// Page size (default 100).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 1000)]
    limit: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct StreamQuery {
    /// Only events after this one, or `now` (only events written from now
    /// on); a reconnecting client sends `Last-Event-ID` instead.
    #[param(value_type = Option<String>)]
    after: Option<String>,
    /// Only events of these types, comma-separated.
    #[serde(rename = "type")]
    #[param(value_type = Option<Vec<EventType>>, style = Form, explode = false)]
    kind: Option<String>,
    /// Only this job's events.
    job_id: Option<String>,
}

fn types(raw: Option<&str>) -> Result<Vec<EventType>, ApiError> {
    let Some(raw) = raw else {
        return Ok(Vec::new());
    };
    raw.split(',')
        .map(|name| {
            name.trim()
                .parse::<EventType>()
                .map_err(|e| FieldError::new("type", e).into())
        })
        .collect()
}

/// `after`: an event's id, or `now` (the tenant's latest event: only those
/// written from now on).
async fn after_param(
    app: &AppState,
    tenant: &crate::domain::auth::Tenant,
    raw: Option<&str>,
) -> Result<Option<Uuid>, ApiError> {
    match raw {
        None => Ok(None),
        Some("now") => Ok(app.store.latest_event_id(tenant).await?),
        Some(id) => event_id(id, "after").map(Some),
    }
}

fn event_id(raw: &str, field: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(raw.trim()).map_err(|_| {
        FieldError::new(field, format!("expected an event id (a UUID), got {raw:?}")).into()
    })
}

/// The store's answer, with an unknown `after` said in words.
async fn read(
    app: &AppState,
    tenant: &Tenant,
    filter: &EventFilter,
    field: &str,
) -> Result<Vec<Event>, ApiError> {
    app.store
        .list_events(tenant, filter)
        .await
        .map_err(|e| match e {
            StoreError::NotFound => FieldError::new(
                field,
                "no event with this id: it is not this tenant's, or older than --event-retention",
            )
            .into(),
            other => other.into(),
        })
}

/// List events, oldest first. To follow them, pass the last `id` as
/// `after`, or open the stream.
#[utoipa::path(
    get, path = "/v1/events", tag = "events",
    params(EventsQuery),
    responses((status = 200, description = "OK", body = EventPage))
)]
pub async fn list_events(
    Reader(caller): Reader,
    State(app): State<AppState>,
    ApiQuery(query): ApiQuery<EventsQuery>,
) -> Result<Json<EventPage>, ApiError> {
    let limit = match query.limit.as_deref() {
        None => DEFAULT_LIMIT,
        Some(text) => text
            .parse::<u32>()
            .ok()
            .filter(|n| (1..=MAX_LIMIT).contains(n))
            .ok_or_else(|| {
                FieldError::new(
                    "limit",
                    format!("must be an integer from 1 to {MAX_LIMIT}, got {text:?}"),
                )
            })?,
    };
    let newest_first = match query.order.as_deref() {
        None | Some("asc") => false,
        Some("desc") => true,
        Some(other) => {
            return Err(
                FieldError::new("order", format!("must be asc or desc, got {other:?}")).into(),
            );
        }
    };
    let filter = EventFilter {
        after: after_param(&app, &caller.tenant, query.after.as_deref()).await?,
        types: types(query.kind.as_deref())?,
        job_id: super::extract::job_id_param(query.job_id.as_deref())?,
        limit,
        newest_first,
    };
    let events = read(&app, &caller.tenant, &filter, "after").await?;
    Ok(Json(EventPage {
        items: events.into_iter().map(EventView::from).collect(),
    }))
}

/// Follow events live, as Server-Sent Events: every event after
/// `Last-Event-ID` (or `after`), then each new one as it is written, on
/// any instance; a comment every 15 s while quiet. Each message's `id` is
/// the event's id and its `data` the event as `GET /v1/events` lists it.
#[utoipa::path(
    get, path = "/v1/events/stream", tag = "events",
    params(
        StreamQuery,
        ("Last-Event-ID" = Option<String>, Header, description = "The last event id received: the stream resumes after it"),
    ),
    responses(
        (status = 200, description = "A stream of events", content_type = "text/event-stream", body = String),
        (status = 429, description = "The token or tenant holds its most streams (`--max-streams-per-token`, `--max-streams-per-tenant`); with `Retry-After`", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn stream_events(
    Reader(caller): Reader,
    State(app): State<AppState>,
    headers: HeaderMap,
    ApiQuery(query): ApiQuery<StreamQuery>,
) -> Result<Sse<impl Stream<Item = Result<SseEvent, Infallible>>>, ApiError> {
    let resume = headers
        .get("last-event-id")
        .map(|v| {
            v.to_str()
                .map_err(|_| ApiError::from(FieldError::new("Last-Event-ID", "must be ASCII")))
                .and_then(|text| event_id(text, "Last-Event-ID"))
        })
        .transpose()?;
    let (after, field) = match resume {
        Some(id) => (Some(id), "Last-Event-ID"),
        None => (
            after_param(&app, &caller.tenant, query.after.as_deref()).await?,
            "after",
        ),
    };
    let filter = EventFilter {
        after,
        types: types(query.kind.as_deref())?,
        job_id: super::extract::job_id_param(query.job_id.as_deref())?,
        limit: STREAM_PAGE,
        newest_first: false,
    };
    let slot = app
        .streams
        .open(caller.token.as_deref(), caller.tenant.as_str())
        .map_err(|full| {
            ApiError::TooManyRequests(full.to_string(), crate::domain::quota::RETRY_AFTER_S)
        })?;
    // Watch before the first read: nothing written after it is missed.
    let mut woken = app.wakeups.watch_events();
    // The first page now, so that an unknown id is a 422, not a closed stream.
    let first = read(&app, &caller.tenant, &filter, field).await?;
    let (tx, mut rx) = mpsc::channel::<SseEvent>(STREAM_BUFFER);
    let tenant = caller.tenant;
    tokio::spawn(async move {
        let _slot = slot;
        let mut checked = tokio::time::Instant::now();
        let mut filter = filter;
        let mut page = first;
        // Re-reads left after a wake-up that found nothing yet: on
        // PostgreSQL an event shows only once every older transaction has
        // ended, a few milliseconds after its NOTIFY.
        let mut rereads = 0u32;
        loop {
            let full = page.len() == STREAM_PAGE as usize;
            for event in page {
                filter.after = Some(event.id);
                let id = event.id.to_string();
                let data = serde_json::to_string(&EventView::from(event)).unwrap_or_default();
                let message = SseEvent::default().id(id).data(data);
                match tokio::time::timeout(SLOW_CLIENT_GRACE, tx.send(message)).await {
                    Ok(Ok(())) => {}
                    // Gone, or too far behind: it resumes with Last-Event-ID.
                    Ok(Err(_)) => return,
                    Err(_) => {
                        tracing::info!(tenant = %tenant, "closing an event stream whose client fell behind");
                        return;
                    }
                }
            }
            if !full {
                let wait = if rereads > 0 {
                    rereads -= 1;
                    Duration::from_millis(20)
                } else {
                    STREAM_POLL
                };
                tokio::select! {
                    _ = app.shutdown.cancelled() => return,
                    _ = tx.closed() => return,
                    _ = woken.changed() => rereads = 10,
                    _ = tokio::time::sleep(wait) => {}
                }
            }
            // A token revoked (or auth turned on) since the stream opened
            // closes it within about a second (the token cache's age).
            if checked.elapsed() >= STREAM_POLL {
                checked = tokio::time::Instant::now();
                match app.auth.caller(&headers).await {
                    Ok(_) | Err(Denied::Store(_)) => {}
                    Err(_) => {
                        tracing::info!(tenant = %tenant, "closing an event stream whose token no longer admits it");
                        return;
                    }
                }
            }
            page = match app.store.list_events(&tenant, &filter).await {
                Ok(page) => page,
                Err(e) => {
                    tracing::warn!(error = %e, "an event stream's read failed; closing it");
                    return;
                }
            };
            if !page.is_empty() {
                rereads = 0;
            }
        }
    });
    let stream = futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx).map(|m| m.map(Ok)));
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(HEARTBEAT).text("heartbeat")))
}
