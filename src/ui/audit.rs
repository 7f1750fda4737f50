//! `/ui/audit`: the tenant's audit trail (DESIGN.md §11.9), newest first,
//! 100 a page; `?target=job/{id}` is one job's, linked from its page.
//! For write and root tokens, as `GET /v1/audit`.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use maud::{Markup, html};
use serde::Deserialize;
use uuid::Uuid;

use super::render;
use super::session::{UiError, Viewer};
use crate::domain::audit::{Actor, AuditRecord};
use crate::domain::auth::Role;
use crate::state::AppState;
use crate::store::AuditFilter;

const PAGE: u32 = 100;

#[derive(Debug, Default, Deserialize)]
pub struct AuditQuery {
    target: Option<String>,
    /// The last record of the page before: older ones follow.
    before: Option<Uuid>,
}

fn actor(actor: &Actor) -> Markup {
    match actor {
        Actor::Token {
            token_id,
            name,
            role,
        } => html! {
            code { (token_id) }
            @if let Some(name) = name { " (" (name) ")" }
            " " span.muted { (role.as_str()) }
        },
        other => html! { span.muted { (other.kind()) } },
    }
}

fn row(r: &AuditRecord) -> Markup {
    let job = r.target.strip_prefix("job/");
    html! {
        tr data-audit=(r.id) {
            td { (render::utc(r.at)) }
            td { (actor(&r.actor)) }
            td { code { (r.action) } }
            td {
                @if let Some(id) = job { a href={ "/ui/jobs/" (id) } { code { (id) } } }
                @else { code { (r.target) } }
            }
            td { (r.reason.as_deref().unwrap_or("")) }
            td { (r.source_ip.as_deref().unwrap_or("")) }
            td { pre.excerpt { (r.changes.to_string()) } }
        }
    }
}

pub async fn page(
    State(app): State<AppState>,
    headers: HeaderMap,
    q: Result<Query<AuditQuery>, QueryRejection>,
) -> Result<Response, UiError> {
    let viewer = Viewer::read(&app, &headers).await?;
    if viewer.role() < Role::Write {
        return Err(UiError::Page(
            StatusCode::FORBIDDEN,
            format!(
                "the audit trail needs a write or root token; you signed in with a {} token",
                viewer.role()
            ),
        ));
    }
    let query = super::pages::query(q)?;
    let target = crate::domain::audit::filter_text(query.target, "target")
        .map_err(|e| UiError::Page(StatusCode::UNPROCESSABLE_ENTITY, e.to_string()))?
        .filter(|t| !t.is_empty());
    let filter = AuditFilter {
        target: target.clone(),
        cursor: query.before,
        limit: PAGE + 1,
        ..Default::default()
    };
    let mut records = app.store.list_audit(&viewer.caller.tenant, &filter).await?;
    let more = records.len() > PAGE as usize;
    records.truncate(PAGE as usize);
    let older = records.last().filter(|_| more).map(|r| {
        let target = target
            .as_deref()
            .map(|t| format!("target={}&", urlencoding(t)))
            .unwrap_or_default();
        format!("/ui/audit?{target}before={}", r.id)
    });
    let title = match target.as_deref().and_then(|t| t.strip_prefix("job/")) {
        Some(id) => format!("Audit trail of {id}"),
        None => "Audit trail".to_string(),
    };
    let body = html! {
        h1 { (title) }
        p.muted { "Who changed what, when, from where and why; refused calls as " code { "denied" } ". Secrets read " code { "***" } "." }
        form.filters method="get" action="/ui/audit" {
            label for="target" { "Target" }
            input #target name="target" type="text" placeholder="job/nightly-report" value=(target.as_deref().unwrap_or(""));
            button type="submit" { "Show" }
        }
        @if records.is_empty() {
            p.empty { "No records." }
        } @else {
            div.table-wrap { table.audit {
                thead { tr {
                    th scope="col" { "When" } th scope="col" { "Who" } th scope="col" { "Action" }
                    th scope="col" { "Target" } th scope="col" { "Reason" } th scope="col" { "From" }
                    th scope="col" { "Changes" }
                } }
                tbody { @for r in &records { (row(r)) } }
            } }
            @if let Some(older) = older { p { a href=(older) { "Older records →" } } }
        }
    };
    Ok(viewer.page(&title, None, body))
}

/// A query value, percent-encoded.
fn urlencoding(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes()).collect()
}
