//! `/ui/events`: the tenant's event log (DESIGN.md §9, §10), newest first,
//! 100 a page, optionally of one type.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use maud::html;
use serde::Deserialize;
use uuid::Uuid;

use super::render;
use super::session::{UiError, Viewer};
use crate::domain::event::EventType;
use crate::state::AppState;
use crate::store::EventFilter;

const PAGE: u32 = 100;

#[derive(Debug, Default, Deserialize)]
pub struct EventsQuery {
    #[serde(rename = "type")]
    kind: Option<String>,
    /// The last event of the page before: older ones follow.
    before: Option<Uuid>,
}

pub async fn page(
    State(app): State<AppState>,
    headers: HeaderMap,
    q: Result<Query<EventsQuery>, QueryRejection>,
) -> Result<Response, UiError> {
    let viewer = Viewer::read(&app, &headers).await?;
    let query = super::pages::query(q)?;
    let kind = match query.kind.as_deref().filter(|k| !k.is_empty()) {
        None => None,
        Some(text) => Some(
            EventType::ALL
                .into_iter()
                .find(|t| t.as_str() == text)
                .ok_or_else(|| {
                    UiError::Page(
                        StatusCode::BAD_REQUEST,
                        format!("type: no event type is called {text:?}"),
                    )
                })?,
        ),
    };
    let filter = EventFilter {
        after: query.before,
        types: kind.into_iter().collect(),
        job_id: None,
        limit: PAGE + 1,
        newest_first: true,
    };
    let mut events = app
        .store
        .list_events(&viewer.caller.tenant, &filter)
        .await?;
    let more = events.len() > PAGE as usize;
    events.truncate(PAGE as usize);
    let older = events.last().filter(|_| more).map(|e| {
        let kind = kind
            .map(|k| format!("type={}&", k.as_str()))
            .unwrap_or_default();
        format!("/ui/events?{kind}before={}", e.id)
    });
    let body = html! {
        h1 { "Events" }
        form.filters method="get" action="/ui/events" {
            label for="type" { "Type" }
            select #type name="type" {
                option value="" selected[kind.is_none()] { "any" }
                @for t in EventType::ALL {
                    option value=(t.as_str()) selected[kind == Some(t)] { (t.as_str()) }
                }
            }
            button type="submit" { "Show" }
        }
        @if events.is_empty() {
            p.empty { "No events." }
        } @else {
            div.table-wrap { table.events {
                thead { tr {
                    th scope="col" { "When" } th scope="col" { "Type" } th scope="col" { "Job" }
                    th scope="col" { "Run" } th scope="col" { "Data" }
                } }
                tbody { @for e in &events {
                    tr data-event=(e.id) {
                        td { (render::utc(e.at)) }
                        td { code { (e.kind.as_str()) } }
                        td { @if !e.job_id.is_empty() { a href={ "/ui/jobs/" (e.job_id) } { code { (e.job_id) } } } }
                        td { @if let Some(run) = e.run_id { a href={ "/ui/runs/" (run) } { code { (super::pages::short(run)) } } } }
                        td { pre.excerpt { (e.data.to_string()) } }
                    }
                } }
            } }
            @if let Some(older) = older { p { a href=(older) { "Older events →" } } }
        }
    };
    Ok(viewer.page("Events", None, body))
}
