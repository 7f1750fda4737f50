//! `/ui/flows`: the tenant's flow keys (DESIGN.md §10, §11.1) with their
//! limits, runs in flight and waiting, and whether each is paused.

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use maud::html;

use super::render;
use super::session::{UiError, Viewer};
use crate::state::AppState;

pub async fn page(State(app): State<AppState>, headers: HeaderMap) -> Result<Response, UiError> {
    let viewer = Viewer::read(&app, &headers).await?;
    let flows = app.store.list_flows(&viewer.caller.tenant).await?;
    let body = html! {
        h1 { "Flow keys" }
        p { "Limits shared by the runs of every job that names the key: at most so many in flight, at most so many per period. Runs over them wait, by priority, then by occurrence." }
        @if flows.is_empty() {
            p.empty { "No flow keys yet: a job's " code { "flow.key" } " or " code { "PUT /v1/flows/{key}" } " makes one." }
        } @else {
            div.table-wrap { table.flows {
                thead { tr {
                    th scope="col" { "Key" } th scope="col" { "Limits" } th scope="col" { "In flight" }
                    th scope="col" { "Waiting" } th scope="col" { "Tokens" } th scope="col" { "State" }
                } }
                tbody { @for f in &flows {
                    tr data-flow=(f.key) {
                        td { code { (f.key) } }
                        td { (f.limits.describe()) " (" (f.defined_by) ")" }
                        td { (f.in_flight) }
                        td { (f.waiting) }
                        td { @match f.tokens { Some(t) => (t), None => span.none { "—" } } }
                        td { @if f.paused { "paused" } @else { "admitting" }
                             @if let Some(at) = f.next_admit_at { br; small { "next at " (render::utc(at)) } } }
                    }
                } }
            } }
        }
    };
    Ok(viewer.page("Flow keys", None, body))
}
