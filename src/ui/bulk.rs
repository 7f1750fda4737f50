//! The dashboard's bulk actions (DESIGN.md §11.9): the jobs a label filter
//! shows, paused, resumed, run or deleted together through the API's one
//! operation (`Ops::bulk`), all or nothing. A delete is shown first as a
//! dry run listing the jobs, and carried out only with that count.

use axum::extract::{Form, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use chrono::Utc;
use maud::{Markup, html};
use serde::Deserialize;

use super::render::csrf_field;
use super::session::{UiError, Viewer};
use crate::domain::bulk::BulkInput;
use crate::ops::Via;
use crate::state::AppState;

#[derive(Debug, Deserialize)]
pub struct BulkForm {
    csrf: String,
    selector: String,
    action: String,
    /// A delete's count, from the dry run's page.
    confirm: Option<u64>,
}

/// The buttons under a label filter: each acts on every job it picks.
pub fn buttons(viewer: &Viewer, selector: &str) -> Markup {
    html! {
        form.bulk method="post" action="/ui/bulk" aria-label="Act on every job the labels pick" {
            (csrf_field(viewer))
            input type="hidden" name="selector" value=(selector);
            span.hint { "Every job with these labels: " }
            @for (action, label) in [("pause", "Pause all"), ("resume", "Resume all"), ("run", "Run all"), ("delete", "Delete all…")] {
                button type="submit" name="action" value=(action) class=[(action == "delete").then_some("danger")] { (label) }
                " "
            }
        }
    }
}

/// `POST /ui/bulk`.
pub async fn post(
    State(app): State<AppState>,
    headers: HeaderMap,
    Form(form): Form<BulkForm>,
) -> Result<Response, UiError> {
    let viewer = Viewer::write(&app, &headers, &form.csrf).await?;
    if form.selector.trim().is_empty() {
        return Err(UiError::Page(
            StatusCode::UNPROCESSABLE_ENTITY,
            "selector: the dashboard acts only on jobs a label filter picks".into(),
        ));
    }
    let input = BulkInput {
        selector: Some(form.selector.clone()),
        confirm: form.confirm,
        ..BulkInput::default()
    };
    let mut request = input
        .parse(&form.action, Utc::now())
        .map_err(|e| UiError::Page(StatusCode::UNPROCESSABLE_ENTITY, e.to_string()))?;
    let asking = form.action == "delete" && form.confirm.is_none();
    request.dry_run = asking;
    let outcome = app
        .ops(&viewer.caller.tenant, Via::Dashboard)
        .bulk(&request)
        .await?;
    let back = super::pages::jobs_selected_by(&form.selector);
    let body = html! {
        h1 { "Jobs labelled " code { (form.selector) } }
        @if asking {
            p { "Delete these " (outcome.matched) " jobs and their runs?" }
            form method="post" action="/ui/bulk" {
                (csrf_field(&viewer))
                input type="hidden" name="selector" value=(form.selector);
                input type="hidden" name="confirm" value=(outcome.matched);
                button.danger type="submit" name="action" value="delete" { "Delete " (outcome.matched) " jobs" }
            }
        } @else {
            p.outcome { (form.action) ": " (outcome.changed) " changed, " (outcome.unchanged) " unchanged." }
        }
        ul.job-ids {
            @for id in &outcome.job_ids { li { a href={ "/ui/jobs/" (id) } { (id) } } }
        }
        p { a href=(back) { "Back to the jobs" } }
    };
    Ok(viewer.page("Bulk action", None, body))
}
