//! `/ui/alerts`: the tenant's alerts (DESIGN.md §10, §11.5), open and
//! acknowledged first, each acknowledged from the page.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use maud::html;
use uuid::Uuid;

use super::actions::Posted;
use super::render;
use super::session::{UiError, Viewer};
use crate::domain::alert::AlertState;
use crate::state::AppState;
use crate::store::alerts::AlertFilter;

/// Alerts listed, newest first.
const LISTED: u32 = 200;

pub async fn page(State(app): State<AppState>, headers: HeaderMap) -> Result<Response, UiError> {
    let viewer = Viewer::read(&app, &headers).await?;
    let filter = AlertFilter {
        limit: LISTED,
        ..AlertFilter::default()
    };
    let mut alerts = app
        .store
        .list_alerts(&viewer.caller.tenant, &filter)
        .await?;
    // Open and acknowledged first, each group newest first.
    alerts.sort_by_key(|a| a.state == AlertState::Resolved);
    let body = html! {
        h1 { "Alerts" }
        p { "When a job's runs failed, were missed, started late, ran too long or too short (a job's " code { "alerts" } "). Each is sent as an event; acknowledging one stops its reminders until the job recovers." }
        @if alerts.is_empty() {
            p.empty { "No alerts." }
        } @else {
            div.table-wrap { table.alerts {
                thead { tr {
                    th scope="col" { "Job" } th scope="col" { "Condition" } th scope="col" { "What happened" }
                    th scope="col" { "Opened" } th scope="col" { "State" } th scope="col" { "" }
                } }
                tbody { @for a in &alerts {
                    tr data-alert=(a.id) {
                        td { a href={ "/ui/jobs/" (a.job_id) } { code { (a.job_id) } } }
                        td { span class={ "badge alert-" (a.condition.as_str()) } { (a.condition.as_str()) } }
                        td { (a.detail)
                             @if let Some(run) = a.run_id { " · " a href={ "/ui/runs/" (run) } { "the run" } } }
                        td { (render::utc(a.opened_at)) }
                        td { (a.state.as_str())
                             @if let Some(at) = a.resolved_at { br; small { "at " (render::utc(at)) } } }
                        td { @if a.state == AlertState::Open && viewer.can_write() {
                            (render::action(&viewer, &format!("/ui/alerts/{}/ack", a.id), "Acknowledge", "secondary"))
                        } }
                    }
                } }
            } }
        }
    };
    Ok(viewer.page("Alerts", None, body))
}

pub async fn ack(State(app): State<AppState>, posted: Posted) -> Result<Response, UiError> {
    let not_found = || {
        UiError::Page(
            StatusCode::NOT_FOUND,
            format!("no alert with id {:?}", posted.id),
        )
    };
    let id = Uuid::parse_str(&posted.id).map_err(|_| not_found())?;
    app.store
        .ack_alert(&posted.viewer.caller.tenant, id)
        .await?
        .ok_or_else(not_found)?;
    Ok(Redirect::to("/ui/alerts").into_response())
}
