//! `/v1/tenants/{tenant}/quotas`: what one tenant may hold and make, set
//! by root (DESIGN.md §8; the rules are `domain::quota`).

use axum::Json;
use axum::extract::{Path, State};

use super::auth::Root;
use super::error::ApiError;
use super::extract::ApiJson;
use crate::domain::auth::Tenant;
use crate::domain::error::FieldError;
use crate::domain::quota::{QuotaOverrides, Quotas};
use crate::state::AppState;

fn tenant(name: &str) -> Result<Tenant, ApiError> {
    Tenant::parse(name).map_err(|e| FieldError::new("tenant", e).into())
}

/// A tenant's quotas: the flags' defaults, with what root set for it.
#[utoipa::path(
    get, path = "/v1/tenants/{tenant}/quotas", tag = "tenants",
    params(("tenant" = String, Path, description = "The tenant's name")),
    responses((status = 200, description = "OK", body = Quotas))
)]
pub async fn get_quotas(
    Root(_): Root,
    State(app): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<Quotas>, ApiError> {
    Ok(Json(app.store.tenant_quotas(&tenant(&name)?).await?))
}

/// Sets a tenant's quotas; a field left out or null is the flag's
/// default. What the tenant already holds is never touched: past a
/// lowered quota, only new jobs or subscriptions are refused.
#[utoipa::path(
    put, path = "/v1/tenants/{tenant}/quotas", tag = "tenants",
    params(("tenant" = String, Path, description = "The tenant's name")),
    request_body = QuotaOverrides,
    responses((status = 200, description = "The tenant's quotas now", body = Quotas))
)]
pub async fn set_quotas(
    Root(_): Root,
    State(app): State<AppState>,
    Path(name): Path<String>,
    ApiJson(set): ApiJson<QuotaOverrides>,
) -> Result<Json<Quotas>, ApiError> {
    let tenant = tenant(&name)?;
    set.check()?;
    Ok(Json(app.store.set_tenant_quotas(&tenant, &set).await?))
}
