//! The dashboard's backfill form (DESIGN.md §10, §11.3): a range, its
//! dry-run list of occurrences and the runs they have, then one post that
//! makes the backfill through the operation the API calls.

use axum::extract::{Form, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use chrono::{DateTime, SecondsFormat, TimeDelta, Utc};
use maud::html;
use serde::Deserialize;

use super::actions::{job_id, not_found};
use super::render::{self, csrf_field};
use super::session::{UiError, Viewer};
use crate::domain::backfill::{BackfillInput, BackfillSpec};
use crate::domain::error::FieldError;
use crate::domain::instant;
use crate::ops::Via;
use crate::state::AppState;
use crate::store::{BackfillMade, StoreError};

/// The range, as the form sends it (RFC 3339 text).
#[derive(Debug, Default, Deserialize)]
pub struct RangeQuery {
    from: Option<String>,
    to: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct MakeForm {
    csrf: String,
    from: String,
    to: String,
}

fn spec(from: &str, to: &str, dry_run: bool) -> Result<BackfillSpec, FieldError> {
    let at = |field: &str, text: &str| {
        instant::parse(text.trim()).map_err(|reason| FieldError::new(field, reason))
    };
    BackfillInput {
        from: Some(at("from", from)?),
        to: Some(at("to", to)?),
        dry_run: Some(dry_run),
        ..BackfillInput::default()
    }
    .parse()
}

fn text(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// `/ui/jobs/{id}/backfill`: the form, and with a range its dry run.
pub async fn page(
    State(app): State<AppState>,
    headers: HeaderMap,
    Path(raw): Path<String>,
    Query(range): Query<RangeQuery>,
) -> Result<Response, UiError> {
    let viewer = Viewer::read(&app, &headers)
        .await?
        .able_to_write("a backfill")?;
    let id = job_id(&raw)?;
    let now = Utc::now();
    let from = range.from.unwrap_or_else(|| text(now - TimeDelta::days(1)));
    let to = range.to.unwrap_or_else(|| text(now));
    let path = format!("/ui/jobs/{}", id.as_str());
    let listed = match spec(&from, &to, true) {
        Err(e) => Err(e.to_string()),
        Ok(spec) => match app
            .ops(&viewer.caller.tenant, Via::Dashboard)
            .backfill(&id, &spec)
            .await
        {
            Ok(BackfillMade::DryRun(listed)) => Ok(listed),
            Ok(BackfillMade::Made(_)) => Err("a dry run made a backfill".into()),
            Err(StoreError::Invalid(e)) => Err(e.to_string()),
            Err(e) => return Err(not_found(e, &id)),
        },
    };
    let body = html! {
        h1 { "Backfill " code { (id.as_str()) } }
        p { "A run for every occurrence in the range (both ends included, RFC 3339) that has none, sent one after another in order, at most max instances at once, beside the job's own runs." }
        form.filters method="get" action={ (path) "/backfill" } {
            label { "From " input type="text" name="from" value=(from) required; }
            label { "To " input type="text" name="to" value=(to) required; }
            button type="submit" { "List occurrences" }
        }
        @match &listed {
            Err(e) => p.error role="alert" { (e) },
            Ok(listed) => {
                @let without = listed.iter().filter(|(_, run)| run.is_none()).count();
                h2 { (listed.len()) " occurrences, " (without) " without a run" }
                @if !listed.is_empty() {
                    div.table-wrap { table.occurrences {
                        thead { tr { th scope="col" { "Occurrence" } th scope="col" { "Run" } } }
                        tbody { @for (at, run) in listed {
                            tr {
                                td { (render::utc(*at)) }
                                td { @match run {
                                    Some(run) => a href={ "/ui/runs/" (run) } { "has a run" },
                                    None => span.none { "a run will be made" },
                                } }
                            }
                        } }
                    } }
                }
                @if without > 0 {
                    form.inline method="post" action={ (path) "/backfill" } {
                        (csrf_field(&viewer))
                        input type="hidden" name="from" value=(from);
                        input type="hidden" name="to" value=(to);
                        button.primary type="submit" { "Backfill " (without) " occurrences" }
                    }
                }
            }
        }
        p { a href=(path) { "← Back to the job" } }
    };
    let mut response = viewer.page("Backfill", None, body);
    if listed.is_err() {
        *response.status_mut() = StatusCode::UNPROCESSABLE_ENTITY;
    }
    Ok(response)
}

/// Makes the backfill the form listed, then shows the job.
pub async fn make(
    State(app): State<AppState>,
    headers: HeaderMap,
    Path(raw): Path<String>,
    Form(form): Form<MakeForm>,
) -> Result<Response, UiError> {
    let viewer = Viewer::write(&app, &headers, &form.csrf).await?;
    let id = job_id(&raw)?;
    let spec = spec(&form.from, &form.to, false)
        .map_err(|e| UiError::Page(StatusCode::UNPROCESSABLE_ENTITY, e.to_string()))?;
    app.ops(&viewer.caller.tenant, Via::Dashboard)
        .backfill(&id, &spec)
        .await
        .map_err(|e| not_found(e, &id))?;
    Ok(Redirect::to(&format!("/ui/jobs/{}", id.as_str())).into_response())
}
