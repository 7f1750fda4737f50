//! `/ui/tokens`: every API token (root only, as `GET /v1/tokens`): who
//! holds what role on which tenant, when it was last used, whether it was
//! revoked. Never a token's text: only its hash is kept.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use maud::html;

use super::render;
use super::session::{UiError, Viewer};
use crate::domain::auth::Role;
use crate::state::AppState;

pub async fn page(State(app): State<AppState>, headers: HeaderMap) -> Result<Response, UiError> {
    let viewer = Viewer::read(&app, &headers).await?;
    if viewer.role() != Role::Root {
        return Err(UiError::Page(
            StatusCode::FORBIDDEN,
            format!(
                "the tokens page needs a root token; you signed in with a {} token",
                viewer.role()
            ),
        ));
    }
    let tokens = app.store.list_tokens().await?;
    let when = |t: Option<chrono::DateTime<chrono::Utc>>| t.map_or("—".to_string(), render::utc);
    let body = html! {
        h1 { "Tokens" }
        p { "Make one with " code { "cronhook token create --role read|write|root" } " or " code { "POST /v1/tokens" } "; revoke with " code { "cronhook token revoke ID" } " or " code { "DELETE /v1/tokens/{id}" } "." }
        @if tokens.is_empty() {
            p.empty { "No tokens: the API is open on loopback until the first one is made." }
        } @else {
            div.table-wrap { table.tokens {
                thead { tr {
                    th scope="col" { "Id" } th scope="col" { "Name" } th scope="col" { "Role" }
                    th scope="col" { "Tenant" } th scope="col" { "Scopes" } th scope="col" { "Created" }
                    th scope="col" { "Last used" } th scope="col" { "Revoked" }
                } }
                tbody { @for t in &tokens {
                    tr data-token=(t.id) {
                        td { code { (t.id) } }
                        td { (t.name.as_deref().unwrap_or("")) }
                        td { (t.role) }
                        td { (t.tenant.as_str()) }
                        td { (t.scopes.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")) }
                        td { (render::utc(t.created_at)) }
                        td { (when(t.last_used_at)) }
                        td { @if t.revoked_at.is_some() { span.badge.run-failed { "revoked" } " " } (when(t.revoked_at)) }
                    }
                } }
            } }
        }
    };
    Ok(viewer.page("Tokens", None, body))
}
