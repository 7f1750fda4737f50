//! `/v1/subscriptions`: events delivered as signed webhooks, by the same
//! dispatcher as jobs' (APScheduler's `add_listener`, over HTTP).

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use super::auth::{Reader, Writer};
use super::error::{ApiError, Problem};
use super::extract::ApiJson;
use crate::domain::auth::Role;
use crate::domain::error::FieldError;
use crate::domain::event::EventType;
use crate::domain::instant;
use crate::domain::run::RunStatus;
use crate::domain::signing::generate_secret;
use crate::domain::subscription::{self, SubscriptionFormat, SubscriptionInput};
use crate::domain::target::{masked_url, url_shown_to};
use crate::state::AppState;
use crate::store::{DeliveryRecord, NewSubscription, Subscription};

/// Deliveries listed, newest first.
const DELIVERIES_LISTED: u32 = 100;

/// A subscription as listed: its URL (a password as `***`), what it
/// listens to.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Subscription)]
pub struct SubscriptionView {
    #[schema(example = "sub_3f9a1c2b7d4e5f60")]
    pub id: String,
    pub url: String,
    pub types: Vec<EventType>,
    pub job_id: Option<String>,
    /// `standard` (the event as JSON) or `slack` (`{"text": …}`).
    pub format: SubscriptionFormat,
    #[serde(with = "instant::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: DateTime<Utc>,
}

impl SubscriptionView {
    /// The subscription as `role` is shown it: a read token sees no path
    /// (a chat webhook's secret is in it).
    fn seen_by(s: Subscription, role: Role) -> Self {
        Self {
            url: url_shown_to(&s.target.url, role),
            ..Self::from(s)
        }
    }
}

impl From<Subscription> for SubscriptionView {
    fn from(s: Subscription) -> Self {
        Self {
            id: s.id,
            url: masked_url(&s.target.url),
            types: s.interest.types,
            job_id: s.interest.job_id,
            format: s.format,
            created_at: s.created_at,
        }
    }
}

/// A new subscription, with the secret its deliveries are signed with.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedSubscription {
    /// `whsec_…`: verify `webhook-signature` with it.
    pub secret: String,
    #[serde(flatten)]
    pub subscription: SubscriptionView,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SubscriptionList {
    pub items: Vec<SubscriptionView>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SubscriptionSecret {
    pub secret: String,
}

/// One delivery of an event to a subscription.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Delivery)]
pub struct DeliveryView {
    pub id: Uuid,
    /// The event delivered; also the requests' `webhook-id`.
    pub event_id: Uuid,
    pub status: RunStatus,
    pub attempt_count: u32,
    #[serde(with = "instant::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: DateTime<Utc>,
    #[serde(with = "instant::rfc3339_opt")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub next_attempt_at: Option<DateTime<Utc>>,
    #[serde(with = "instant::rfc3339_opt")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub finished_at: Option<DateTime<Utc>>,
    /// The last attempt's status code and error.
    pub last_status_code: Option<u16>,
    pub last_error: Option<String>,
}

impl From<DeliveryRecord> for DeliveryView {
    fn from(d: DeliveryRecord) -> Self {
        Self {
            id: d.id,
            event_id: d.event_id,
            status: d.status,
            attempt_count: d.attempt_count,
            created_at: d.created_at,
            next_attempt_at: d.next_attempt_at,
            finished_at: d.finished_at,
            last_status_code: d.last_status_code,
            last_error: d.last_error,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryList {
    pub items: Vec<DeliveryView>,
}

fn not_found(id: &str) -> ApiError {
    ApiError::NotFound(format!("no subscription with id {id:?}"))
}

/// Subscribe to events: each one of `types` (of `job_id`'s job, if given)
/// is POSTed to `url` as JSON, signed with the secret in this answer
/// (`webhook-id` is the event's id), with the same retries, attempt
/// records and target policy as a job's webhooks.
#[utoipa::path(
    post, path = "/v1/subscriptions", tag = "events",
    request_body = SubscriptionInput,
    responses(
        (status = 201, description = "Created", body = CreatedSubscription,
         headers(("location" = String, description = "`/v1/subscriptions/{id}`"))),
        (status = 429, description = "The tenant holds its most subscriptions (`--max-subscriptions-per-tenant`); with `Retry-After`", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn create_subscription(
    Writer(caller): Writer,
    State(app): State<AppState>,
    ApiJson(input): ApiJson<SubscriptionInput>,
) -> Result<impl IntoResponse, ApiError> {
    let format = input.format.unwrap_or_default();
    let (target, interest) = input.parse(&app.network_policy)?;
    let secret = generate_secret();
    let made = app
        .store
        .create_subscription(
            &caller.tenant,
            &NewSubscription {
                id: subscription::new_id(),
                target,
                interest,
                format,
                secret: secret.clone(),
            },
        )
        .await?;
    tracing::info!(tenant = %caller.tenant, subscription = %made.id, "subscription created");
    let mut headers = HeaderMap::new();
    if let Ok(location) = HeaderValue::from_str(&format!("/v1/subscriptions/{}", made.id)) {
        headers.insert(header::LOCATION, location);
    }
    Ok((
        StatusCode::CREATED,
        headers,
        Json(CreatedSubscription {
            secret,
            subscription: made.into(),
        }),
    ))
}

/// Create subscription `id` (a name of your own, like a job id), or
/// replace its URL, types, job and format: a setup script run twice
/// changes nothing and doubles nothing. Its secret is in the answer when
/// it is created, and stays when it is replaced.
#[utoipa::path(
    put, path = "/v1/subscriptions/{id}", tag = "events",
    params(("id" = String, Path, description = "Subscription id: 1 to 200 characters from [A-Za-z0-9._:-]")),
    request_body = SubscriptionInput,
    responses(
        (status = 201, description = "Created", body = CreatedSubscription),
        (status = 200, description = "Replaced", body = SubscriptionView),
        (status = 422, description = "A bad id, URL or type", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "The tenant holds its most subscriptions", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn put_subscription(
    Writer(caller): Writer,
    State(app): State<AppState>,
    Path(id): Path<String>,
    ApiJson(input): ApiJson<SubscriptionInput>,
) -> Result<Response, ApiError> {
    let id = crate::domain::job::JobId::parse(&id).map_err(|m| FieldError::new("id", m))?;
    let format = input.format.unwrap_or_default();
    let (target, interest) = input.parse(&app.network_policy)?;
    let secret = generate_secret();
    let (saved, created) = app
        .store
        .put_subscription(
            &caller.tenant,
            &NewSubscription {
                id: id.to_string(),
                target,
                interest,
                format,
                secret: secret.clone(),
            },
        )
        .await?;
    tracing::info!(tenant = %caller.tenant, subscription = %saved.id, created, "subscription saved");
    Ok(if created {
        (
            StatusCode::CREATED,
            Json(CreatedSubscription {
                secret,
                subscription: saved.into(),
            }),
        )
            .into_response()
    } else {
        Json(SubscriptionView::from(saved)).into_response()
    })
}

/// List subscriptions, oldest first.
#[utoipa::path(
    get, path = "/v1/subscriptions", tag = "events",
    responses((status = 200, description = "OK", body = SubscriptionList))
)]
pub async fn list_subscriptions(
    Reader(caller): Reader,
    State(app): State<AppState>,
) -> Result<Json<SubscriptionList>, ApiError> {
    let items = app.store.list_subscriptions(&caller.tenant).await?;
    Ok(Json(SubscriptionList {
        items: items
            .into_iter()
            .map(|s| SubscriptionView::seen_by(s, caller.role))
            .collect(),
    }))
}

/// Get one subscription.
#[utoipa::path(
    get, path = "/v1/subscriptions/{id}", tag = "events",
    params(("id" = String, Path, description = "Subscription id")),
    responses((status = 200, description = "OK", body = SubscriptionView))
)]
pub async fn get_subscription(
    Reader(caller): Reader,
    State(app): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<SubscriptionView>, ApiError> {
    let found = app
        .store
        .get_subscription(&caller.tenant, &id)
        .await?
        .ok_or_else(|| not_found(&id))?;
    Ok(Json(SubscriptionView::seen_by(found, caller.role)))
}

/// Delete a subscription and its deliveries.
#[utoipa::path(
    delete, path = "/v1/subscriptions/{id}", tag = "events",
    params(("id" = String, Path, description = "Subscription id")),
    responses((status = 204, description = "Deleted"))
)]
pub async fn delete_subscription(
    Writer(caller): Writer,
    State(app): State<AppState>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    if app.store.delete_subscription(&caller.tenant, &id).await? {
        tracing::info!(tenant = %caller.tenant, subscription = %id, "subscription deleted");
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(not_found(&id))
    }
}

/// The secret a subscription's deliveries are signed with.
#[utoipa::path(
    get, path = "/v1/subscriptions/{id}/secret", tag = "events",
    params(("id" = String, Path, description = "Subscription id")),
    responses((status = 200, description = "OK", body = SubscriptionSecret))
)]
pub async fn get_subscription_secret(
    Writer(caller): Writer,
    State(app): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<SubscriptionSecret>, ApiError> {
    let secret = app
        .store
        .subscription_secret(&caller.tenant, &id)
        .await?
        .ok_or_else(|| not_found(&id))?;
    Ok(Json(SubscriptionSecret { secret }))
}

/// A subscription's deliveries, newest first (the last 100), with their
/// last attempt's status and error.
#[utoipa::path(
    get, path = "/v1/subscriptions/{id}/deliveries", tag = "events",
    params(("id" = String, Path, description = "Subscription id")),
    responses((status = 200, description = "OK", body = DeliveryList))
)]
pub async fn list_deliveries(
    Reader(caller): Reader,
    State(app): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<DeliveryList>, ApiError> {
    if app
        .store
        .get_subscription(&caller.tenant, &id)
        .await?
        .is_none()
    {
        return Err(not_found(&id));
    }
    let items = app
        .store
        .list_deliveries(&caller.tenant, &id, DELIVERIES_LISTED)
        .await?;
    Ok(Json(DeliveryList {
        items: items.into_iter().map(DeliveryView::from).collect(),
    }))
}
