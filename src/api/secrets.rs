//! A job's signing secret, and its rotation.

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::auth::Writer;
use super::error::ApiError;
use super::extract::{ApiQuery, JobIdPath};
use crate::domain::error::FieldError;
use crate::domain::instant;
use crate::ops::Via;
use crate::state::AppState;
use crate::store::JobSecret;

/// How long the old secret keeps signing after a rotation, by default.
pub const DEFAULT_GRACE_S: u64 = 86_400;
pub const MAX_GRACE_S: u64 = 30 * 86_400;

/// The secret a job's webhooks are signed with (Standard Webhooks).
#[derive(Debug, Serialize, ToSchema)]
pub struct Secret {
    /// `whsec_` and the base64 key: verify `webhook-signature` with it.
    #[schema(example = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")]
    pub secret: String,
    /// The secret before the last rotation: requests carry a signature
    /// with each until this expires.
    pub previous: Option<PreviousSecret>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PreviousSecret {
    pub secret: String,
    #[serde(with = "instant::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub expires_at: DateTime<Utc>,
}

impl Secret {
    fn from(secret: JobSecret, now: DateTime<Utc>) -> Self {
        Self {
            secret: secret.secret,
            previous: secret
                .previous
                .filter(|(_, expires_at)| *expires_at > now)
                .map(|(secret, expires_at)| PreviousSecret { secret, expires_at }),
        }
    }
}

/// Get a job's signing secret.
#[utoipa::path(
    get, path = "/v1/jobs/{id}/secret", tag = "jobs",
    params(("id" = String, Path, description = "Job id")),
    responses(
        (status = 200, description = "OK", body = Secret),
    )
)]
pub async fn get_secret(
    Writer(caller): Writer,
    State(app): State<AppState>,
    JobIdPath(id): JobIdPath,
) -> Result<Json<Secret>, ApiError> {
    let secret = app
        .store
        .get_secret(&caller.tenant, &id)
        .await?
        .ok_or_else(|| ApiError::not_found_job(&id))?;
    Ok(Json(Secret::from(secret, Utc::now())))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RotateQuery {
    /// Seconds the old secret keeps signing (default 86400, at most 30 days).
    #[param(value_type = Option<u64>, minimum = 0, maximum = 2592000)]
    grace_s: Option<String>,
}

/// Rotate a job's signing secret. During the grace period every request
/// carries two signatures, one per secret, so receivers can switch over.
#[utoipa::path(
    post, path = "/v1/jobs/{id}/secret/rotate", tag = "jobs",
    params(("id" = String, Path, description = "Job id"), RotateQuery),
    responses(
        (status = 200, description = "The new secret, and the old one with its expiry", body = Secret),
    )
)]
pub async fn rotate_secret(
    Writer(caller): Writer,
    State(app): State<AppState>,
    JobIdPath(id): JobIdPath,
    ApiQuery(query): ApiQuery<RotateQuery>,
) -> Result<Json<Secret>, ApiError> {
    let grace_s = match query.grace_s.as_deref() {
        None => DEFAULT_GRACE_S,
        Some(text) => text
            .parse::<u64>()
            .ok()
            .filter(|g| *g <= MAX_GRACE_S)
            .ok_or_else(|| {
                FieldError::new(
                    "grace_s",
                    format!("must be an integer from 0 to {MAX_GRACE_S}, got {text:?}"),
                )
            })?,
    };
    let secret = app
        .ops(&caller.tenant, Via::Api)
        .rotate_secret(&id, Duration::from_secs(grace_s))
        .await?
        .ok_or_else(|| ApiError::not_found_job(&id))?;
    Ok(Json(Secret::from(secret, Utc::now())))
}
