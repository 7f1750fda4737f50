//! Calendars (DESIGN.md §11.4): `POST` and `GET /v1/calendars`, `GET`,
//! `PUT` and `DELETE /v1/calendars/{id}`, `POST /v1/calendars/{id}/import`
//! (an iCalendar file's all-day events).

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::IntoResponse;
use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;

use super::auth::{Reader, Writer};
use super::error::{ApiError, Problem};
use super::extract::{ApiJson, is_icalendar};
use crate::domain::calendar::{CalendarInput, Rule, RuleInput, ics, parse_id};
use crate::domain::error::FieldError;
use crate::domain::instant;
use crate::state::AppState;
use crate::store::{CalendarRecord, CalendarSaved};

/// A calendar as stored.
#[derive(Debug, Serialize, ToSchema)]
pub struct CalendarView {
    #[schema(example = "de-holidays")]
    pub id: String,
    /// The IANA zone its dates and times are read in.
    #[schema(example = "Europe/Berlin")]
    pub timezone: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub rules: Vec<RuleInput>,
    #[serde(with = "instant::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: DateTime<Utc>,
    #[serde(with = "instant::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: DateTime<Utc>,
    /// On a write: the jobs whose coming fire times it re-planned.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replanned_jobs: Option<Vec<String>>,
}

impl From<CalendarRecord> for CalendarView {
    fn from(r: CalendarRecord) -> Self {
        let c = r.calendar;
        Self {
            rules: c.rules.iter().map(Rule::to_input).collect(),
            id: c.id,
            timezone: c.timezone.name().to_string(),
            description: c.description,
            created_at: r.created_at,
            updated_at: r.updated_at,
            replanned_jobs: None,
        }
    }
}

impl From<CalendarSaved> for CalendarView {
    fn from(s: CalendarSaved) -> Self {
        Self {
            replanned_jobs: Some(s.replanned),
            ..s.record.into()
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CalendarList {
    pub items: Vec<CalendarView>,
}

/// What an import added.
#[derive(Debug, Serialize, ToSchema)]
pub struct ImportView {
    /// Days the calendar did not hold yet.
    pub added_days: usize,
    /// All-day events read (recurring ones expanded five years ahead).
    pub events: usize,
    /// Events with a time of day, left out.
    pub timed_events_skipped: usize,
    pub calendar: CalendarView,
}

fn id_of(raw: &str) -> Result<String, ApiError> {
    parse_id(raw).map_err(|m| FieldError::new("id", m).into())
}

fn not_found(id: &str) -> ApiError {
    ApiError::NotFound(format!("no calendar {id:?}"))
}

/// Create a calendar: days and times, local to its zone, that triggers
/// exclude or keep to.
#[utoipa::path(
    post, path = "/v1/calendars", tag = "calendars",
    request_body = CalendarInput,
    responses(
        (status = 201, description = "Created", body = CalendarView),
        (status = 409, description = "A calendar with this id exists", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A bad rule (the field says which), or an included calendar that is missing or makes a cycle", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn create_calendar(
    Writer(caller): Writer,
    State(app): State<AppState>,
    ApiJson(input): ApiJson<CalendarInput>,
) -> Result<impl IntoResponse, ApiError> {
    let calendar = input.parse(None)?;
    let saved = app
        .store
        .put_calendar(&caller.tenant, calendar, true)
        .await?;
    let location = format!("/v1/calendars/{}", saved.record.calendar.id);
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        Json(CalendarView::from(saved)),
    ))
}

/// The tenant's calendars, in id order.
#[utoipa::path(
    get, path = "/v1/calendars", tag = "calendars",
    responses((status = 200, description = "OK", body = CalendarList))
)]
pub async fn list_calendars(
    Reader(caller): Reader,
    State(app): State<AppState>,
) -> Result<Json<CalendarList>, ApiError> {
    let all = app.store.list_calendars(&caller.tenant).await?;
    Ok(Json(CalendarList {
        items: all.into_iter().map(CalendarView::from).collect(),
    }))
}

/// One calendar.
#[utoipa::path(
    get, path = "/v1/calendars/{id}", tag = "calendars",
    params(("id" = String, Path, description = "Calendar id")),
    responses(
        (status = 200, description = "OK", body = CalendarView),
        (status = 404, description = "No such calendar", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn get_calendar(
    Reader(caller): Reader,
    State(app): State<AppState>,
    Path(raw): Path<String>,
) -> Result<Json<CalendarView>, ApiError> {
    let all = app.store.list_calendars(&caller.tenant).await?;
    let found = all.into_iter().find(|r| r.calendar.id == raw);
    Ok(Json(found.ok_or_else(|| not_found(&raw))?.into()))
}

/// Create or replace a calendar. Every job that uses it (or a calendar
/// that includes it) has its coming fire times re-planned in the same
/// transaction, runs made ahead included; what is already due stays due.
#[utoipa::path(
    put, path = "/v1/calendars/{id}", tag = "calendars",
    params(("id" = String, Path, description = "Calendar id")),
    request_body = CalendarInput,
    responses(
        (status = 200, description = "Replaced", body = CalendarView),
        (status = 201, description = "Created", body = CalendarView),
        (status = 422, description = "A bad rule, or an included calendar that is missing or makes a cycle", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn put_calendar(
    Writer(caller): Writer,
    State(app): State<AppState>,
    Path(raw): Path<String>,
    ApiJson(input): ApiJson<CalendarInput>,
) -> Result<impl IntoResponse, ApiError> {
    let id = id_of(&raw)?;
    let calendar = input.parse(Some(&id))?;
    let saved = app
        .store
        .put_calendar(&caller.tenant, calendar, false)
        .await?;
    let status = if saved.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(CalendarView::from(saved))))
}

/// Delete a calendar; refused (409, naming them) while a job or another
/// calendar uses it.
#[utoipa::path(
    delete, path = "/v1/calendars/{id}", tag = "calendars",
    params(("id" = String, Path, description = "Calendar id")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "No such calendar", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "In use: the jobs and calendars that use it are named", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn delete_calendar(
    Writer(caller): Writer,
    State(app): State<AppState>,
    Path(raw): Path<String>,
) -> Result<StatusCode, ApiError> {
    if app.store.delete_calendar(&caller.tenant, &raw).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(not_found(&raw))
    }
}

/// Add the all-day events of an iCalendar file (`text/calendar`, RFC 5545)
/// to a calendar as dates: recurring events (RRULE, less EXDATE) expanded
/// to the end of the fifth year from now; events with a time of day are
/// left out. Jobs that use the calendar are re-planned.
#[utoipa::path(
    post, path = "/v1/calendars/{id}/import", tag = "calendars",
    params(("id" = String, Path, description = "Calendar id")),
    request_body(content = String, content_type = "text/calendar", description = "An iCalendar file"),
    responses(
        (status = 200, description = "The days added", body = ImportView),
        (status = 404, description = "No such calendar", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Not text/calendar", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Not an iCalendar file, or a bad RRULE", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn import_calendar(
    Writer(caller): Writer,
    State(app): State<AppState>,
    Path(raw): Path<String>,
    headers: HeaderMap,
    super::extract::ApiBytes(body): super::extract::ApiBytes,
) -> Result<Json<ImportView>, ApiError> {
    let is_ics = is_icalendar(&headers);
    if !is_ics {
        return Err(ApiError::UnsupportedMediaType(
            "expected an iCalendar file with content-type: text/calendar".into(),
        ));
    }
    let text =
        std::str::from_utf8(&body).map_err(|_| FieldError::new("body", "is not UTF-8 text"))?;
    let today = Utc::now().date_naive();
    let found = ics::all_day_events(text, today).map_err(|m| FieldError::new("body", m))?;
    let (saved, added) = app
        .store
        .add_calendar_days(&caller.tenant, &raw, &found.days)
        .await
        .map_err(|e| match e {
            crate::store::StoreError::NotFound => not_found(&raw),
            other => other.into(),
        })?;
    tracing::info!(tenant = %caller.tenant, calendar = %raw, added, events = found.events, timed = found.timed, "calendar imported");
    Ok(Json(ImportView {
        added_days: added,
        events: found.events,
        timed_events_skipped: found.timed,
        calendar: saved.into(),
    }))
}
