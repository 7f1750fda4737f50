//! `/v1/tokens`: API tokens, for root callers (DESIGN.md §8).

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::auth::Root;
use super::error::ApiError;
use super::extract::ApiJson;
use crate::domain::auth::{self, Role, Scope, Tenant};
use crate::domain::error::FieldError;
use crate::domain::instant;
use crate::state::AppState;
use crate::store::{NewToken, TokenInfo};

/// Most characters in a token's name.
const MAX_NAME_LEN: usize = 200;

/// A token to make.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenInput {
    /// `root` (every tenant, tokens), `write` (its tenant's jobs and
    /// runs) or `read` (GET only, never a secret).
    pub role: Role,
    /// The tenant it acts on (default `default`); like a job id.
    #[schema(example = "team-a")]
    pub tenant: Option<String>,
    /// A name to recognise it by.
    #[schema(example = "ci deploys", max_length = 200, pattern = "^[^\\u0000]*$")]
    pub name: Option<String>,
    /// What it may do beyond its role: `metrics` lets a read or write
    /// token scrape `/metrics` (Prometheus needs no root token).
    #[serde(default)]
    pub scopes: Option<Vec<Scope>>,
}

/// A token as listed: never its text.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Token)]
pub struct TokenView {
    #[schema(example = "tok_3f9a1c2b7d4e5f60")]
    pub id: String,
    pub name: Option<String>,
    pub tenant: String,
    pub role: Role,
    /// What it may do beyond its role: `metrics` (scrape `/metrics`).
    pub scopes: Vec<Scope>,
    #[serde(with = "instant::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: DateTime<Utc>,
    /// Roughly when it last authenticated a request (written at most once
    /// a minute); null when never.
    #[serde(with = "instant::rfc3339_opt")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub last_used_at: Option<DateTime<Utc>>,
    #[serde(with = "instant::rfc3339_opt")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub revoked_at: Option<DateTime<Utc>>,
}

impl From<TokenInfo> for TokenView {
    fn from(t: TokenInfo) -> Self {
        Self {
            id: t.id,
            name: t.name,
            tenant: t.tenant.to_string(),
            role: t.role,
            scopes: t.scopes,
            created_at: t.created_at,
            last_used_at: t.last_used_at,
            revoked_at: t.revoked_at,
        }
    }
}

/// A new token, with its text: shown only in this answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedToken {
    /// Send it as `Authorization: Bearer …`. Only its hash is kept.
    #[schema(example = "chk_Zm9vYmFyYmF6cXV4cXV1eGNvcmdlZ3JhdWx0Z2FycGx5")]
    pub token: String,
    #[serde(flatten)]
    pub info: TokenView,
}

/// Every token, revoked ones too, oldest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct TokenList {
    pub items: Vec<TokenView>,
}

/// Make an API token (root only). Its text is in this answer and nowhere
/// else. On a loopback service without tokens, the first one turns
/// authentication on.
#[utoipa::path(
    post, path = "/v1/tokens", tag = "tokens",
    request_body = TokenInput,
    responses(
        (status = 201, description = "Created", body = CreatedToken),
        (status = 409, description = "A first token that is not root, on a service still open without tokens", body = super::error::Problem, content_type = "application/problem+json"),
    )
)]
pub async fn create_token(
    Root(_): Root,
    State(app): State<AppState>,
    ApiJson(input): ApiJson<TokenInput>,
) -> Result<impl IntoResponse, ApiError> {
    let tenant = match input.tenant.as_deref() {
        None => Tenant::default_tenant(),
        Some(t) => Tenant::parse(t).map_err(|e| FieldError::new("tenant", e))?,
    };
    if let Some(name) = &input.name
        && name.chars().count() > MAX_NAME_LEN
    {
        return Err(
            FieldError::new("name", format!("must be at most {MAX_NAME_LEN} characters")).into(),
        );
    }
    // The first token turns authentication on (on loopback), and only a
    // root token manages tokens: a first token of another role would lock
    // the API out.
    if input.role != Role::Root && !app.auth.required().await? {
        let tokens = app.store.list_tokens().await?;
        if !tokens
            .iter()
            .any(|t| t.role == Role::Root && t.revoked_at.is_none())
        {
            return Err(ApiError::Conflict(
                "make a root token first: the first token turns authentication on, and only a root token manages tokens".into(),
            ));
        }
    }
    let (text, hash) = auth::generate_token();
    let made = app
        .store
        .create_token(&NewToken {
            id: auth::generate_token_id(),
            name: input.name,
            tenant,
            role: input.role,
            scopes: input.scopes.unwrap_or_default(),
            hash,
        })
        .await?;
    app.auth.tokens_changed();
    tracing::info!(token = %made.id, role = %made.role, tenant = %made.tenant, "token created");
    Ok((
        StatusCode::CREATED,
        Json(CreatedToken {
            token: text,
            info: made.into(),
        }),
    ))
}

/// List API tokens (root only).
#[utoipa::path(
    get, path = "/v1/tokens", tag = "tokens",
    responses((status = 200, description = "OK", body = TokenList))
)]
pub async fn list_tokens(
    Root(_): Root,
    State(app): State<AppState>,
) -> Result<Json<TokenList>, ApiError> {
    let tokens = app.store.list_tokens().await?;
    Ok(Json(TokenList {
        items: tokens.into_iter().map(TokenView::from).collect(),
    }))
}

/// Revoke an API token (root only): it stops working within a second on
/// every instance.
#[utoipa::path(
    delete, path = "/v1/tokens/{id}", tag = "tokens",
    params(("id" = String, Path, description = "Token id")),
    responses((status = 204, description = "Revoked"))
)]
pub async fn revoke_token(
    Root(_): Root,
    State(app): State<AppState>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    if !app.store.revoke_token(&id).await? {
        return Err(ApiError::NotFound(format!(
            "no unrevoked token with id {id:?}"
        )));
    }
    app.auth.tokens_changed();
    tracing::info!(token = %id, "token revoked");
    Ok(StatusCode::NO_CONTENT)
}
