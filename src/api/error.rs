//! The one error type of the API, rendered as `application/problem+json`
//! (RFC 9457): a status, a title, and a detail that names the field and
//! the reason.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use crate::domain::error::FieldError;
use crate::domain::lifecycle::Refusal;
use crate::store::StoreError;

pub const PROBLEM_JSON: &str = "application/problem+json";

/// An error answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct Problem {
    /// `about:blank`: the status says what kind of problem it is.
    #[serde(rename = "type")]
    #[schema(example = "about:blank")]
    pub kind: &'static str,
    #[schema(example = "Unprocessable Entity")]
    pub title: String,
    #[schema(example = 422)]
    pub status: u16,
    /// What was wrong, starting with the field it concerns.
    #[schema(example = "trigger.expr: expected 5 or 6 fields (6 with leading seconds), got 4")]
    pub detail: String,
    /// The field, as a dotted path into the request, when one is at fault.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(example = "trigger.expr")]
    pub field: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The request as a whole is unreadable (malformed JSON, bad query).
    #[error("{0}")]
    BadRequest(String),
    /// A well-formed request with a value the API refuses.
    #[error("{0}")]
    Invalid(FieldError),
    /// No valid token where one is needed.
    #[error("{0}")]
    Unauthorized(String),
    /// A token whose role (or tenant) does not allow this; a cross-site
    /// change.
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("request body is larger than {0} bytes")]
    PayloadTooLarge(usize),
    /// One field of a body is over its bound (a completion's `output`).
    #[error("{0}")]
    FieldTooLarge(FieldError),
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("{0}")]
    MethodNotAllowed(String),
    /// A `Host` the open API does not answer to.
    #[error("{0}")]
    Misdirected(String),
    #[error("{0}")]
    Unavailable(String),
    /// Past a cap: try again in this many seconds (`Retry-After`).
    #[error("{0}")]
    TooManyRequests(String, u32),
    /// Our fault: logged in full, answered without details.
    #[error(transparent)]
    Internal(anyhow::Error),
}

impl ApiError {
    pub fn not_found_job(id: impl std::fmt::Display) -> Self {
        ApiError::NotFound(format!("no job with id \"{id}\""))
    }

    fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Invalid(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::PayloadTooLarge(_) | ApiError::FieldTooLarge(_) => {
                StatusCode::PAYLOAD_TOO_LARGE
            }
            ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Misdirected(_) => StatusCode::MISDIRECTED_REQUEST,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::TooManyRequests(..) => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub fn problem(&self) -> Problem {
        let status = self.status();
        let (detail, field) = match self {
            ApiError::Invalid(e) | ApiError::FieldTooLarge(e) => (
                e.to_string(),
                Some(e.field.clone()).filter(|f| !f.is_empty()),
            ),
            ApiError::Internal(_) => ("internal error; see the service log".to_string(), None),
            other => (other.to_string(), None),
        };
        Problem {
            kind: "about:blank",
            title: status.canonical_reason().unwrap_or("Error").to_string(),
            status: status.as_u16(),
            detail,
            field,
        }
    }
}

impl From<FieldError> for ApiError {
    fn from(e: FieldError) -> Self {
        ApiError::Invalid(e)
    }
}

/// Store errors: the one place where unique-key violations and refused
/// changes become 409s.
/// A domain rule's refusal, as the rule worded it.
impl From<Refusal> for ApiError {
    fn from(r: Refusal) -> Self {
        match r {
            Refusal::NotFound => ApiError::NotFound("not found".into()),
            Refusal::Conflict(m) => ApiError::Conflict(m),
            Refusal::Invalid(e) => ApiError::Invalid(e),
            Refusal::QuotaReached(m, retry_after_s) => ApiError::TooManyRequests(m, retry_after_s),
        }
    }
}

impl From<crate::access::Denied> for ApiError {
    fn from(e: crate::access::Denied) -> Self {
        use crate::access::Denied;
        match e {
            Denied::Unauthorized(m) => ApiError::Unauthorized(m),
            Denied::Forbidden(m) => ApiError::Forbidden(m),
            Denied::Invalid(f) => ApiError::Invalid(f),
            Denied::Store(e) => e.into(),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound => ApiError::NotFound("not found".into()),
            StoreError::Refused(refusal) => refusal.into(),
            StoreError::Conflict(m) => ApiError::Conflict(m),
            e @ StoreError::IdempotencyKeyTaken => ApiError::Conflict(e.to_string()),
            StoreError::Invalid(f) => ApiError::Invalid(f),
            StoreError::Database(sqlx::Error::Database(db)) if db.is_unique_violation() => {
                ApiError::Conflict(format!("already exists: {}", db.message()))
            }
            // A concurrent change the database rolled this one back for
            // (a deadlock, a busy SQLite), or a connection lost: a 503
            // to try again, not a fault of the request or a 500.
            e if e.is_transient() => {
                tracing::warn!(error = %e, "request met a transient database error");
                ApiError::Unavailable(
                    "the database could not complete the request now (a concurrent change, \
                     or its connection); send it again (a repeat with the same \
                     Idempotency-Key is safe)"
                        .into(),
                )
            }
            other => ApiError::Internal(other.into()),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if let ApiError::Internal(e) = &self {
            tracing::error!(error = format!("{e:#}"), "request failed");
        }
        let problem = self.problem();
        let body = serde_json::to_vec(&problem).unwrap_or_default();
        let mut response = (self.status(), body).into_response();
        response
            .headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        if let ApiError::TooManyRequests(_, retry_after_s) = &self {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(*retry_after_s));
        }
        if matches!(self, ApiError::Unavailable(_)) {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(1));
        }
        if matches!(self, ApiError::Unauthorized(_)) {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"cronhook\""),
            );
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_names_the_field() {
        let p = ApiError::Invalid(FieldError::new("trigger.expr", "bad")).problem();
        assert_eq!(p.status, 422);
        assert_eq!(p.detail, "trigger.expr: bad");
        assert_eq!(p.field.as_deref(), Some("trigger.expr"));
        assert_eq!(p.title, "Unprocessable Entity");
    }

    #[test]
    fn a_transient_database_error_is_a_503_to_send_again() {
        let e = ApiError::from(StoreError::Database(sqlx::Error::PoolTimedOut));
        assert_eq!(e.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert!(e.problem().detail.contains("send it again"));
        let response = e.into_response();
        assert_eq!(response.headers()[header::RETRY_AFTER], "1");
        let lasting = ApiError::from(StoreError::Corrupt("row".into()));
        assert_eq!(lasting.status(), StatusCode::INTERNAL_SERVER_ERROR);
    }

    #[test]
    fn internal_errors_hide_details() {
        let p = ApiError::Internal(anyhow::anyhow!("password=secret")).problem();
        assert_eq!(p.status, 500);
        assert!(!p.detail.contains("secret"));
    }
}
