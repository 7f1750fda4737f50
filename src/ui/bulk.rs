//! The dashboard's bulk actions (DESIGN.md §11.9): the jobs a label filter
//! shows, or those ticked in the list, paused, resumed, run, changed by
//! one merge patch or deleted together through the API's one operation
//! (`Ops::bulk`), all or nothing. A delete is shown first as a dry run
//! listing the jobs, and carried out only with that count.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use chrono::Utc;
use maud::{Markup, html};

use super::render::csrf_field;
use super::session::{UiError, Viewer};
use crate::domain::bulk::BulkInput;
use crate::ops::Via;
use crate::state::AppState;

/// The id of the form the job list's checkboxes belong to.
pub const SELECTED_FORM: &str = "selected-jobs";

/// What `POST /ui/bulk` sends: the jobs a label filter picks, or the jobs
/// ticked in the list (`ids`, repeated), and the action.
#[derive(Debug, Default)]
pub struct BulkForm {
    csrf: String,
    selector: Option<String>,
    ids: Vec<String>,
    action: String,
    /// A delete's count, from the dry run's page.
    confirm: Option<u64>,
    /// A patch's text: a JSON Merge Patch for each job.
    patch: String,
}

impl BulkForm {
    /// Reads a form body; `ids` comes once per ticked job, which a
    /// struct's form decoding cannot hold.
    fn read(body: &[u8]) -> Result<Self, UiError> {
        let mut form = Self::default();
        for (key, value) in url::form_urlencoded::parse(body) {
            match key.as_ref() {
                "csrf" => form.csrf = value.into_owned(),
                "selector" => form.selector = Some(value.into_owned()),
                "ids" => form.ids.push(value.into_owned()),
                "action" => form.action = value.into_owned(),
                "patch" => form.patch = value.into_owned(),
                "confirm" => {
                    form.confirm = Some(value.parse().map_err(|_| {
                        UiError::Page(
                            StatusCode::UNPROCESSABLE_ENTITY,
                            format!("confirm: {value:?} is not a count"),
                        )
                    })?);
                }
                _ => {}
            }
        }
        Ok(form)
    }
}

/// The buttons over the job list: each acts on the jobs ticked in it.
pub fn selected_buttons(viewer: &Viewer) -> Markup {
    html! {
        form.bulk #(SELECTED_FORM) method="post" action="/ui/bulk" aria-label="Act on the selected jobs" {
            (csrf_field(viewer))
            span.hint { "Selected jobs: " }
            @for (action, label) in [("pause", "Pause selected"), ("resume", "Resume selected"), ("run", "Run selected"), ("delete", "Delete selected…")] {
                button type="submit" name="action" value=(action) class=[(action == "delete").then_some("danger")] { (label) }
                " "
            }
            (patch_field("selected-patch", "Change selected"))
        }
    }
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
            (patch_field("bulk-patch", "Change all"))
        }
    }
}

/// A merge patch for each job, folded away until wanted.
fn patch_field(id: &str, label: &str) -> Markup {
    html! {
        details.bulk-patch {
            summary #{ (id) "-toggle" } { "Change a field…" }
            label for=(id) { "A JSON Merge Patch, applied to each job as " code { "PATCH /v1/jobs/{id}" } " applies it" }
            textarea #(id) name="patch" rows="3" spellcheck="false" placeholder=r#"{"max_instances": 2, "labels": {"tier": "gold"}}"# {}
            button type="submit" name="action" value="patch" { (label) }
        }
    }
}

/// `POST /ui/bulk`.
pub async fn post(
    State(app): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, UiError> {
    let form = BulkForm::read(&body)?;
    let viewer = Viewer::write(&app, &headers, &form.csrf).await?;
    let selector = form.selector.clone().filter(|s| !s.trim().is_empty());
    let input = match (&selector, form.ids.is_empty()) {
        (Some(selector), _) => BulkInput {
            selector: Some(selector.clone()),
            confirm: form.confirm,
            ..BulkInput::default()
        },
        (None, false) => BulkInput {
            ids: Some(form.ids.clone()),
            confirm: form.confirm,
            ..BulkInput::default()
        },
        (None, true) => {
            return Err(UiError::Page(
                StatusCode::UNPROCESSABLE_ENTITY,
                "ids: tick the jobs to act on, or filter by labels".into(),
            ));
        }
    };
    let patch = match form.action.as_str() {
        "patch" => Some(parse_patch(&form.patch)?),
        _ => None,
    };
    let input = BulkInput { patch, ..input };
    let mut request = input
        .parse(&form.action, Utc::now())
        .map_err(|e| UiError::Page(StatusCode::UNPROCESSABLE_ENTITY, e.to_string()))?;
    let asking = form.action == "delete" && form.confirm.is_none();
    request.dry_run = asking;
    let outcome = app
        .ops(&viewer.caller.tenant, Via::Dashboard)
        .bulk(&request)
        .await?;
    let (title, back) = match &selector {
        Some(selector) => (
            html! { "Jobs labelled " code { (selector) } },
            super::pages::jobs_selected_by(selector),
        ),
        None => (html! { "Selected jobs" }, "/ui".to_string()),
    };
    let body = html! {
        h1 { (title) }
        @if asking {
            p { "Delete these " (outcome.matched) " jobs and their runs?" }
            form method="post" action="/ui/bulk" {
                (csrf_field(&viewer))
                @if let Some(selector) = &selector {
                    input type="hidden" name="selector" value=(selector);
                } @else {
                    @for id in &outcome.job_ids { input type="hidden" name="ids" value=(id); }
                }
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

/// A patch's text as the object `BulkInput` takes; a refusal says why.
fn parse_patch(text: &str) -> Result<serde_json::Map<String, serde_json::Value>, UiError> {
    let refused =
        |why: String| UiError::Page(StatusCode::UNPROCESSABLE_ENTITY, format!("patch: {why}"));
    match serde_json::from_str(text) {
        Ok(serde_json::Value::Object(patch)) => Ok(patch),
        Ok(_) => Err(refused(
            "must be a JSON object, such as {\"max_instances\": 2}".into(),
        )),
        Err(e) => Err(refused(format!("is not JSON: {e}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_patch_is_a_json_object_or_a_refusal_that_says_so() {
        let patch = parse_patch(r#"{"max_instances": 3}"#).unwrap();
        assert_eq!(patch["max_instances"], 3);
        for (text, why) in [("[1]", "must be a JSON object"), ("{", "is not JSON")] {
            match parse_patch(text) {
                Err(UiError::Page(status, message)) => {
                    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
                    assert!(message.starts_with(&format!("patch: {why}")), "{message}");
                }
                other => panic!("{text}: {other:?}"),
            }
        }
    }
}
