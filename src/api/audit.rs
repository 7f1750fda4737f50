//! The audit trail over HTTP (DESIGN §11.9): who acts in each request is
//! set here as it arrives, a refused (403) call is recorded as `denied`,
//! and the trail is listed and exported.

use std::net::SocketAddr;

use axum::Json;
use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::auth::Writer;
use super::error::ApiError;
use super::extract::ApiQuery;
use super::pagination::DEFAULT_LIMIT;
use crate::domain::audit::{self, Actor, AuditRecord, Context};
use crate::domain::error::FieldError;
use crate::domain::instant;
use crate::state::AppState;
use crate::store::AuditFilter;

/// Records read per page while an export streams.
const EXPORT_PAGE: u32 = 1_000;

/// Sets who acts in the request (its id, source address and the
/// `cronhook-reason` header; the caller once auth names it), and records
/// a refusal. A reason that is not text is a 422 before anything is done.
pub async fn acting(State(app): State<AppState>, request: Request, next: Next) -> Response {
    let reason = match audit::reason(
        request
            .headers()
            .get(audit::REASON_HEADER)
            .map(|v| v.as_bytes()),
    ) {
        Ok(reason) => reason,
        Err(e) => return ApiError::from(e).into_response(),
    };
    let context = Context {
        actor: Actor::Anonymous,
        tenant: None,
        request_id: request
            .headers()
            .get("x-request-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string),
        source_ip: request
            .extensions()
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip().to_string()),
        reason,
    };
    let refused = format!("{} {}", request.method(), request.uri().path());
    crate::acting::within(context, async move {
        let response = next.run(request).await;
        let acting = crate::acting::current();
        // Only a caller auth named: an unknown one (a cross-site request
        // the guard refused before auth) could fill the trail at will.
        if response.status() == StatusCode::FORBIDDEN && acting.actor != Actor::Anonymous {
            let tenant = acting.tenant.clone().unwrap_or_else(|| "default".into());
            let record = acting.record(&tenant, "denied", &refused, Value::Array(Vec::new()), Utc::now());
            if let Err(e) = app.store.record_audit(&[record]).await {
                tracing::warn!(error = %e, target = %refused, "recording a refused call in the audit trail failed");
            }
        }
        response
    })
    .await
}

/// An audit record as the API shows it.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = AuditRecord)]
pub struct AuditView {
    pub id: Uuid,
    #[serde(with = "instant::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub at: DateTime<Utc>,
    /// A token (`token_id`, `name`, `role`), `open` (no tokens, loopback),
    /// `anonymous` (no valid token), or `system`.
    pub actor: Actor,
    /// The request's `x-request-id`; null for the system's changes.
    pub request_id: Option<String>,
    /// The address the request came from.
    pub source_ip: Option<String>,
    /// `job.created`, `job.updated`, `job.paused`, `job.resumed`,
    /// `job.completed`, `job.deleted`, `job.run`, or `denied`.
    pub action: String,
    /// `job/{id}`, or the refused request (`DELETE /v1/tokens/…`).
    pub target: String,
    /// The `cronhook-reason` header the request gave.
    pub reason: Option<String>,
    /// RFC 6902 operations from before to after; sensitive header values,
    /// URL passwords and secrets read `***`.
    #[schema(value_type = Vec<Object>)]
    pub changes: Value,
}

impl From<AuditRecord> for AuditView {
    fn from(r: AuditRecord) -> Self {
        Self {
            id: r.id,
            at: r.at,
            actor: r.actor,
            request_id: r.request_id,
            source_ip: r.source_ip,
            action: r.action,
            target: r.target,
            reason: r.reason,
            changes: r.changes,
        }
    }
}

/// Audit records, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditPage {
    pub items: Vec<AuditView>,
    /// Pass as `cursor` for the next (older) page; null on the last.
    pub next_cursor: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    /// Only records of this target: `job/{id}`.
    #[param(pattern = "^[^\\u0000]*$", max_length = 500)]
    target: Option<String>,
    /// Only records of this actor: a token's id, or `system`, `open`,
    /// `anonymous`.
    #[param(pattern = "^[^\\u0000]*$", max_length = 500)]
    actor: Option<String>,
    /// Only records of this action (`job.paused`, `denied`, …).
    #[param(pattern = "^[^\\u0000]*$", max_length = 500)]
    action: Option<String>,
    /// Only records made at or after this instant (RFC 3339).
    #[param(value_type = Option<String>, format = DateTime)]
    after: Option<String>,
    /// The `next_cursor` of the page before.
    #[param(value_type = Option<String>, format = Uuid)]
    cursor: Option<String>,
    /// Page size (default 50, at most 500).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 500)]
    limit: Option<String>,
}

impl AuditQuery {
    fn filter(self, oldest_first: bool) -> Result<AuditFilter, ApiError> {
        let after = self
            .after
            .as_deref()
            .map(|t| instant::parse(t).map_err(|m| FieldError::new("after", m)))
            .transpose()?;
        let cursor = self
            .cursor
            .as_deref()
            .map(|t| {
                t.parse::<Uuid>()
                    .map_err(|_| FieldError::new("cursor", "is not a cursor this service returned"))
            })
            .transpose()?;
        let limit = match self.limit.as_deref() {
            None => DEFAULT_LIMIT,
            Some(text) => super::pagination::limit(Some(text))?,
        };
        Ok(AuditFilter {
            target: audit::filter_text(self.target, "target")?,
            actor: audit::filter_text(self.actor, "actor")?,
            action: audit::filter_text(self.action, "action")?,
            after,
            cursor,
            limit,
            oldest_first,
        })
    }
}

/// List the tenant's audit trail, newest first: every change to a job
/// (who, from where, why, and what changed) and every refused call.
/// Needs a write or root token.
#[utoipa::path(
    get, path = "/v1/audit", tag = "audit",
    params(AuditQuery),
    responses((status = 200, description = "OK", body = AuditPage))
)]
pub async fn list_audit(
    Writer(caller): Writer,
    State(app): State<AppState>,
    ApiQuery(query): ApiQuery<AuditQuery>,
) -> Result<Json<AuditPage>, ApiError> {
    let filter = query.filter(false)?;
    let items = app.store.list_audit(&caller.tenant, &filter).await?;
    let next_cursor = (items.len() == filter.limit as usize)
        .then(|| items.last().map(|r| r.id.to_string()))
        .flatten();
    Ok(Json(AuditPage {
        items: items.into_iter().map(AuditView::from).collect(),
        next_cursor,
    }))
}

/// Export the tenant's audit trail as NDJSON, oldest first: one record
/// per line, as `GET /v1/audit` shows it, with the same filters (`limit`
/// and `cursor` aside). Needs a write or root token.
#[utoipa::path(
    get, path = "/v1/audit/export", tag = "audit",
    params(AuditQuery),
    responses((status = 200, description = "One JSON record per line",
               content_type = "application/x-ndjson", body = String))
)]
pub async fn export_audit(
    Writer(caller): Writer,
    State(app): State<AppState>,
    ApiQuery(query): ApiQuery<AuditQuery>,
) -> Result<Response, ApiError> {
    let mut filter = query.filter(true)?;
    filter.limit = EXPORT_PAGE;
    filter.cursor = None;
    // The first page before the answer starts: the store failing is then
    // a status, not a broken stream.
    let first = app.store.list_audit(&caller.tenant, &filter).await?;
    let store = app.store.clone();
    let tenant = caller.tenant.clone();
    // Page by page, so a year's trail is never held at once; each page
    // read before the one in hand is sent.
    let pages = futures_util::stream::try_unfold(Some((filter, first)), move |page| {
        let (store, tenant) = (store.clone(), tenant.clone());
        async move {
            let Some((mut filter, records)) = page.filter(|(_, r)| !r.is_empty()) else {
                return Ok::<_, crate::store::StoreError>(None);
            };
            let next = if records.len() == filter.limit as usize {
                filter.cursor = records.last().map(|r| r.id);
                let more = store.list_audit(&tenant, &filter).await?;
                Some((filter, more))
            } else {
                None
            };
            let mut lines = String::new();
            for record in records {
                lines
                    .push_str(&serde_json::to_string(&AuditView::from(record)).unwrap_or_default());
                lines.push('\n');
            }
            Ok(Some((lines, next)))
        }
    });
    Ok((
        [(header::CONTENT_TYPE, "application/x-ndjson")],
        Body::from_stream(pages),
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_query_names_its_bad_field() {
        let query = |after: Option<&str>, cursor: Option<&str>, limit: Option<&str>| AuditQuery {
            target: None,
            actor: None,
            action: None,
            after: after.map(Into::into),
            cursor: cursor.map(Into::into),
            limit: limit.map(Into::into),
        };
        let field = |q: AuditQuery| match q.filter(false) {
            Err(ApiError::Invalid(e)) => e.field,
            other => panic!("{other:?}"),
        };
        assert_eq!(field(query(Some("yesterday"), None, None)), "after");
        assert_eq!(field(query(None, Some("x"), None)), "cursor");
        assert_eq!(field(query(None, None, Some("0"))), "limit");
        let ok = query(Some("2026-12-01T00:00:00Z"), None, None)
            .filter(true)
            .unwrap();
        assert_eq!(ok.limit, DEFAULT_LIMIT);
        assert!(ok.oldest_first);
    }
}
