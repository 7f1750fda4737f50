//! Extractors whose rejections are problem+json naming the field.

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, FailedToBufferBody};
use axum::extract::{FromRequest, FromRequestParts, Path, Query, Request};
use axum::http::header;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use super::error::ApiError;
use crate::domain::error::FieldError;
use crate::domain::idempotency::{self, IdempotencyKey};
use crate::domain::job::JobId;

/// Largest request body accepted (413 beyond).
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// True when the request's body is an iCalendar file (`text/calendar`,
/// parameters aside): what `POST /v1/calendars/{id}/import` takes.
pub fn is_icalendar(headers: &axum::http::HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|m| m.trim().eq_ignore_ascii_case("text/calendar"))
}

/// A JSON body: malformed JSON is a 400, a value of the wrong shape a 422
/// whose field is the path to it (`trigger.every_s`).
pub struct ApiJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let is_json = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .map(|mime| {
                let mime = mime.trim().to_ascii_lowercase();
                mime == "application/json" || mime.ends_with("+json")
            });
        if is_json != Some(true) {
            return Err(ApiError::UnsupportedMediaType(
                "expected a JSON body with content-type: application/json".into(),
            ));
        }
        let bytes = Bytes::from_request(req, state).await.map_err(body_error)?;
        parse_json(&bytes).map(ApiJson)
    }
}

/// A JSON body read as [`ApiJson`] reads it, its refusal kept for the
/// handler to answer after it checked the caller: a call without its
/// credentials is a 401 whatever its body (the callback endpoints, whose
/// token the handler checks, §11.7).
pub struct LaterJson<T>(pub Result<T, ApiError>);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for LaterJson<T> {
    type Rejection = std::convert::Infallible;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        Ok(LaterJson(
            ApiJson::from_request(req, state).await.map(|ApiJson(v)| v),
        ))
    }
}

/// A JSON body that may be left out: none (an empty body) is `T`'s default.
pub struct OptionalJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Default> FromRequest<S> for OptionalJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let (parts, body) = req.into_parts();
        let bytes = Bytes::from_request(Request::from_parts(parts.clone(), body), state)
            .await
            .map_err(body_error)?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(OptionalJson(T::default()));
        }
        let req = Request::from_parts(parts, axum::body::Body::from(bytes));
        ApiJson::from_request(req, state)
            .await
            .map(|ApiJson(t)| OptionalJson(t))
    }
}

/// A raw body (a YAML bundle, an iCalendar file): too large is a 413
/// problem, as for JSON.
pub struct ApiBytes(pub Bytes);

impl<S: Send + Sync> FromRequest<S> for ApiBytes {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        Bytes::from_request(req, state)
            .await
            .map(ApiBytes)
            .map_err(body_error)
    }
}

/// A value read from a body that is not JSON, checked as [`parse_json`]
/// checks JSON's: no string or key in it may hold a NUL character.
pub fn no_nul(value: &serde_json::Value) -> Result<(), ApiError> {
    match crate::domain::json::nul_at(value, String::new()) {
        None => Ok(()),
        Some(path) => {
            let field = if path.is_empty() {
                "body".to_string()
            } else {
                path
            };
            Err(FieldError::new(field, "must not contain a NUL character (\\u0000)").into())
        }
    }
}

fn body_error(e: BytesRejection) -> ApiError {
    match e {
        BytesRejection::FailedToBufferBody(FailedToBufferBody::LengthLimitError(_)) => {
            ApiError::PayloadTooLarge(MAX_BODY_BYTES)
        }
        other => ApiError::BadRequest(format!(
            "could not read the request body: {}",
            other.body_text()
        )),
    }
}

/// Parses a JSON object into `T`, reporting where a value does not fit.
/// Every body of this API is an object (serde would also read a struct
/// from an array, which no client means), and no string in it may hold a
/// NUL character, which PostgreSQL cannot store.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let value: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|e| match e.classify() {
            serde_json::error::Category::Syntax | serde_json::error::Category::Eof => {
                ApiError::BadRequest(format!("malformed JSON: {e}"))
            }
            _ => ApiError::Invalid(FieldError::new("body", e.to_string())),
        })?;
    if !value.is_object() {
        return Err(FieldError::new("body", "expected a JSON object").into());
    }
    if let Some(path) = crate::domain::json::nul_at(&value, String::new()) {
        let field = if path.is_empty() {
            "body".to_string()
        } else {
            path
        };
        return Err(FieldError::new(field, "must not contain a NUL character (\\u0000)").into());
    }
    from_value(value)
}

/// Reads a JSON value into `T`; a value that does not fit is a 422 naming
/// its field.
pub fn from_value<T: DeserializeOwned>(value: serde_json::Value) -> Result<T, ApiError> {
    crate::domain::json::from_value(&value).map_err(|e| {
        if e.field.is_empty() {
            ApiError::Invalid(FieldError::new("body", e.message))
        } else {
            ApiError::Invalid(e)
        }
    })
}

/// Query parameters, with a 400 that says which one is wrong.
pub struct ApiQuery<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Query::<T>::try_from_uri(&parts.uri)
            .map(|Query(q)| ApiQuery(q))
            .map_err(|e| ApiError::BadRequest(format!("query string: {}", e.body_text())))
    }
}

/// The `Idempotency-Key` header, when sent (422 when it is not a key).
pub struct IdempotencyHeader(pub Option<IdempotencyKey>);

impl<S: Send + Sync> FromRequestParts<S> for IdempotencyHeader {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let Some(value) = parts.headers.get(idempotency::HEADER) else {
            return Ok(IdempotencyHeader(None));
        };
        let text = value.to_str().map_err(|_| {
            FieldError::new(idempotency::HEADER, "must be visible ASCII characters")
        })?;
        Ok(IdempotencyHeader(Some(IdempotencyKey::parse(text)?)))
    }
}

/// Where a client reached this service, `scheme://host` (its `Host`
/// header, and `X-Forwarded-Proto` behind a proxy): a monitor's ping URL
/// is shown under it. Empty (a path alone) without a `Host`.
pub struct BaseUrl(pub String);

impl<S: Send + Sync> FromRequestParts<S> for BaseUrl {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let header = |name: &str| {
            parts
                .headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .filter(|v| !v.is_empty() && v.bytes().all(|b| b.is_ascii_graphic()))
        };
        let host = header("host").or_else(|| parts.uri.authority().map(|a| a.as_str()));
        let scheme = match header("x-forwarded-proto") {
            Some("https") => "https",
            _ => "http",
        };
        Ok(BaseUrl(
            host.map(|h| format!("{scheme}://{h}")).unwrap_or_default(),
        ))
    }
}

/// A `{id}` path segment that is a valid job id (422 otherwise).
pub struct JobIdPath(pub JobId);

impl<S: Send + Sync> FromRequestParts<S> for JobIdPath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let Path(raw) = Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(|e| ApiError::BadRequest(e.body_text()))?;
        JobId::parse(&raw)
            .map(JobIdPath)
            .map_err(|m| ApiError::Invalid(FieldError::new("id", m)))
    }
}

/// A `job_id` parameter, when given: a job id, or a 422 naming it.
pub fn job_id_param(raw: Option<&str>) -> Result<Option<crate::domain::job::JobId>, ApiError> {
    raw.map(|id| {
        crate::domain::job::JobId::parse(id)
            .map_err(|m| crate::domain::error::FieldError::new("job_id", m).into())
    })
    .transpose()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::job::JobInput;

    fn problem(json: &str) -> (u16, String) {
        let p = parse_json::<JobInput>(json.as_bytes())
            .unwrap_err()
            .problem();
        (p.status, p.detail)
    }

    #[test]
    fn malformed_json_is_400() {
        let (status, detail) = problem("{\"trigger\": ");
        assert_eq!(status, 400);
        assert!(detail.starts_with("malformed JSON"), "{detail}");
        assert_eq!(problem("{} x").0, 400);
    }

    #[test]
    fn unknown_fields_name_their_path() {
        let (status, detail) = problem(r#"{"trigger": {"type": "cron", "exp": "* * * * *"}}"#);
        assert_eq!(status, 422);
        assert!(
            detail.starts_with("trigger.exp: unknown field; expected one of"),
            "{detail}"
        );
        let (_, detail) = problem(r#"{"state": "paused"}"#);
        assert!(detail.starts_with("state: unknown field"), "{detail}");
    }

    #[test]
    fn nul_characters_are_refused_where_they_are() {
        let (status, detail) = problem(r#"{"name": "a\u0000b"}"#);
        assert_eq!(
            (status, detail.as_str()),
            (422, "name: must not contain a NUL character (\\u0000)")
        );
        let (_, detail) = problem(r#"{"metadata": {"tags": ["ok", "x\u0000"]}}"#);
        assert!(
            detail.starts_with("metadata.tags[1]: must not contain"),
            "{detail}"
        );
        // An escaped backslash followed by u0000 is ordinary text.
        assert!(parse_json::<JobInput>(br#"{"name": "a\\u0000b"}"#).is_ok());
    }

    #[test]
    fn wrong_types_name_their_path() {
        let (status, detail) = problem(r#"{"trigger": {"type": "interval", "every_s": "often"}}"#);
        assert_eq!(status, 422);
        assert!(
            detail.starts_with("trigger.every_s: invalid type: string \"often\""),
            "{detail}"
        );
        let (_, detail) =
            problem(r#"{"trigger": {"type": "date", "run_at": "2026-13-01T00:00:00Z"}}"#);
        assert!(
            detail.starts_with("trigger.run_at: expected an RFC 3339 instant"),
            "{detail}"
        );
        let (_, detail) = problem(r#"{"trigger": {"type": "hourly"}}"#);
        assert!(
            detail.starts_with("trigger.type: unknown variant `hourly`"),
            "{detail}"
        );
        let (status, detail) = problem("[1]");
        assert_eq!(
            (status, detail.as_str()),
            (422, "body: expected a JSON object")
        );
    }
}
