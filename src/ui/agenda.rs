//! `/ui/agenda`: the coming days across the tenant's jobs (DESIGN.md §10,
//! §11.4), with the occurrences their calendars exclude or move and why,
//! and the tenant's calendars.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use chrono::{TimeDelta, Utc};
use maud::{Markup, html};
use serde::Deserialize;

use super::render;
use super::session::{UiError, Viewer};
use crate::domain::agenda::{AgendaItem, MAX_DAYS};
use crate::domain::instant;
use crate::ops::Via;
use crate::state::AppState;

const DEFAULT_DAYS: i64 = 7;
const ITEMS_SHOWN: usize = 500;

#[derive(Debug, Default, Deserialize)]
pub struct AgendaQuery {
    /// Days ahead, 1 to 31.
    days: Option<String>,
    /// Only jobs whose id holds this text.
    q: Option<String>,
}

pub async fn page(
    State(app): State<AppState>,
    headers: HeaderMap,
    q: Result<Query<AgendaQuery>, QueryRejection>,
) -> Result<Response, UiError> {
    let viewer = Viewer::read(&app, &headers).await?;
    let q = super::pages::query(q)?;
    let days = match q.days.as_deref().filter(|d| !d.is_empty()) {
        None => DEFAULT_DAYS,
        Some(d) => d
            .parse::<i64>()
            .ok()
            .filter(|d| (1..=MAX_DAYS).contains(d))
            .ok_or_else(|| {
                UiError::Page(
                    StatusCode::BAD_REQUEST,
                    format!("days must be 1 to {MAX_DAYS}, got {d:?}"),
                )
            })?,
    };
    let search = q.q.unwrap_or_default();
    let now = instant::truncate(Utc::now());
    let tenant = &viewer.caller.tenant;
    let mut items = app
        .ops(tenant, Via::Dashboard)
        .agenda(
            now,
            now + TimeDelta::days(days),
            None,
            &Default::default(),
            usize::MAX,
        )
        .await?;
    if !search.is_empty() {
        let needle = search.to_lowercase();
        items.retain(|i| i.job_id.to_lowercase().contains(&needle));
    }
    let more = items.len() > ITEMS_SHOWN;
    items.truncate(ITEMS_SHOWN);
    let calendars = app.store.list_calendars(tenant).await?;
    let body = html! {
        h1 { "Agenda" }
        p { "What fires in the next " (days) " days, across jobs, in time order; what calendars exclude or move is listed too, with the reason." }
        form.filters method="get" action="/ui/agenda" {
            label { "Job id contains " input type="search" name="q" value=(search); }
            label { " Days " input type="number" name="days" min="1" max=(MAX_DAYS) value=(days); }
            button type="submit" { "Show" }
        }
        @if items.is_empty() {
            p.empty { "Nothing fires in these days." }
        } @else {
            div.table-wrap { table.agenda {
                thead { tr {
                    th scope="col" { "When (UTC)" } th scope="col" { "Local" } th scope="col" { "Job" } th scope="col" { "Calendars" }
                } }
                tbody { @for item in &items { (row(item)) } }
            } }
            @if more { p { "The first " (ITEMS_SHOWN) " are shown; narrow the days or the job id for the rest." } }
        }
        h2 { "Calendars" }
        @if calendars.is_empty() {
            p.empty { "No calendars yet: " code { "POST /v1/calendars" } " makes one, and " code { "POST /v1/calendars/{id}/import" } " adds an iCalendar file's holidays." }
        } @else {
            div.table-wrap { table.calendars {
                thead { tr { th scope="col" { "Calendar" } th scope="col" { "Zone" } th scope="col" { "Rules" } } }
                tbody { @for c in &calendars {
                    tr data-calendar=(c.calendar.id) {
                        td { code { (c.calendar.id) } @if let Some(d) = &c.calendar.description { br; small { (d) } } }
                        td { (c.calendar.timezone.name()) }
                        td { (rules_in_words(&c.calendar)) }
                    }
                } }
            } }
        }
    };
    Ok(viewer.page("Agenda", None, body))
}

fn row(item: &AgendaItem) -> Markup {
    html! {
        tr data-job=(item.job_id) data-excluded=[item.excluded.then_some("true")] {
            td { (render::utc(item.at)) }
            td { (item.local) @if let Some(shift) = &item.dst_shift { " " span.dst title="a daylight-saving change since the day before" { "DST " (shift) } } }
            td { a href={ "/ui/jobs/" (item.job_id) } { code { (item.job_id) } } }
            td {
                @if item.excluded { "excluded: " }
                @if let Some(nominal) = item.nominal_for { "moved from " (render::utc(nominal)) ": " }
                @if let Some(reason) = &item.reason { (reason) }
            }
        }
    }
}

/// A calendar's rules, briefly: the first few, and how many more.
pub fn rules_in_words(calendar: &crate::domain::calendar::Calendar) -> String {
    const SHOWN: usize = 4;
    let words: Vec<String> = calendar
        .rules
        .iter()
        .take(SHOWN)
        .map(|r| r.describe())
        .collect();
    let rest = calendar.rules.len().saturating_sub(SHOWN);
    match (words.is_empty(), rest) {
        (true, _) => "none".to_string(),
        (false, 0) => words.join("; "),
        (false, n) => format!("{}; and {n} more", words.join("; ")),
    }
}

/// A job's calendars and its next excluded or moved occurrences, for its
/// page.
pub fn job_section(job_id: &str, trigger: &crate::domain::trigger::Trigger) -> Option<Markup> {
    let crate::domain::trigger::Trigger::Calendared(c) = trigger else {
        return None;
    };
    let now = instant::truncate(Utc::now());
    let items: Vec<AgendaItem> =
        crate::domain::agenda::job_items(job_id, trigger, now, now + TimeDelta::days(31), 200)
            .into_iter()
            .filter(|i| i.excluded || i.nominal_for.is_some())
            .take(10)
            .collect();
    Some(html! {
        section.calendars {
            h2 { "Calendars" }
            dl.settings {
                @if !c.refs.exclude.is_empty() { dt { "Excluded" } dd { (c.refs.exclude.join(", ")) } }
                @if !c.refs.include_only.is_empty() { dt { "Only within" } dd { (c.refs.include_only.join(", ")) } }
                dt { "An excluded occurrence" } dd { (serde_json::to_value(c.refs.on_excluded).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default()) }
            }
            @if items.is_empty() {
                p.empty { "No occurrence in the next 31 days is excluded or moved." }
            } @else {
                h3 { "Excluded or moved in the next 31 days" }
                div.table-wrap { table.agenda {
                    thead { tr { th scope="col" { "When (UTC)" } th scope="col" { "Local" } th scope="col" { "Job" } th scope="col" { "Calendars" } } }
                    tbody { @for item in &items { (row(item)) } }
                } }
            }
            p { a href={ "/ui/agenda?q=" (job_id) } { "This job in the agenda →" } }
        }
    })
}
