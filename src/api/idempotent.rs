//! `Idempotency-Key` on the operations that create something: the key and
//! the request's fingerprint go to the store with the write; a repeat is
//! answered with what the first request made.

use super::error::ApiError;
use crate::domain::auth::Tenant;
use crate::domain::idempotency::{self, IdempotencyKey};
use crate::state::AppState;
use crate::store::Idempotency;

/// The record a request with `key` makes, if it has one: `operation` and
/// `path` name what it asks for, `body` its canonical JSON.
pub fn request(
    key: Option<IdempotencyKey>,
    operation: &'static str,
    path: &str,
    body: &[u8],
) -> Option<Idempotency> {
    key.map(|key| Idempotency {
        scope: operation,
        key: key.as_str().to_string(),
        fingerprint: idempotency::fingerprint(operation, path, body),
    })
}

/// The id of what an earlier request with the same key made (within the
/// window), after checking that it asked for the same.
pub async fn earlier(
    app: &AppState,
    tenant: &Tenant,
    request: Option<&Idempotency>,
) -> Result<Option<String>, ApiError> {
    let Some(request) = request else {
        return Ok(None);
    };
    let Some(earlier) = app
        .store
        .find_idempotent_request(tenant, request.scope, &request.key, idempotency::WINDOW)
        .await?
    else {
        return Ok(None);
    };
    idempotency::check_repeat(&earlier.fingerprint, &request.fingerprint)?;
    Ok(Some(earlier.resource_id))
}

/// What to answer when what the first request made is gone.
pub fn gone(what: &str, id: &str) -> ApiError {
    ApiError::Conflict(format!(
        "{}: the {what} the first request with this key made, {id}, no longer exists",
        idempotency::HEADER
    ))
}
