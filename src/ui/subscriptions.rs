//! `/ui/subscriptions`: the tenant's event subscriptions (DESIGN.md §9,
//! §10), each with what it listens to and its latest deliveries. Made and
//! changed through the API (`/v1/subscriptions`), which answers the
//! secret once.

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use maud::html;

use super::render;
use super::session::{UiError, Viewer};
use crate::domain::target::url_shown_to;
use crate::state::AppState;

/// Deliveries shown per subscription.
const DELIVERIES: u32 = 5;

pub async fn page(State(app): State<AppState>, headers: HeaderMap) -> Result<Response, UiError> {
    let viewer = Viewer::read(&app, &headers).await?;
    let tenant = &viewer.caller.tenant;
    let subscriptions = app.store.list_subscriptions(tenant).await?;
    let mut deliveries = Vec::with_capacity(subscriptions.len());
    for s in &subscriptions {
        deliveries.push(app.store.list_deliveries(tenant, &s.id, DELIVERIES).await?);
    }
    let body = html! {
        h1 { "Subscriptions" }
        p { "Webhooks for events: each run's and job's changes, signed like a job's requests. Make one with " code { "POST /v1/subscriptions" } "." }
        @if subscriptions.is_empty() {
            p.empty { "No subscriptions yet." }
        } @else {
            div.table-wrap { table.subscriptions {
                thead { tr {
                    th scope="col" { "Id" } th scope="col" { "URL" } th scope="col" { "Events" }
                    th scope="col" { "Format" } th scope="col" { "Latest deliveries" }
                } }
                tbody { @for (s, sent) in subscriptions.iter().zip(&deliveries) {
                    tr data-subscription=(s.id) {
                        td { code { (s.id) } br; small.hint { "since " (render::utc(s.created_at)) } }
                        td { code { (url_shown_to(&s.target.url, viewer.role())) } }
                        td {
                            @if s.interest.types.is_empty() { "every type" }
                            @else { (s.interest.types.iter().map(|t| t.as_str()).collect::<Vec<_>>().join(", ")) }
                            @if let Some(job) = &s.interest.job_id { br; small { "job " code { (job) } } }
                        }
                        td { (s.format.as_str()) }
                        td {
                            @if sent.is_empty() { span.none { "none yet" } }
                            @for d in sent {
                                div { (render::run_badge(d.status)) " " small { (render::utc(d.created_at))
                                    @if let Some(code) = d.last_status_code { " · " (code) }
                                    @if let Some(e) = &d.last_error { " · " (e) } } }
                            }
                        }
                    }
                } }
            } }
        }
    };
    Ok(viewer.page("Subscriptions", None, body))
}
