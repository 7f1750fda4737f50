//! The HTTP API: thin handlers that parse into domain types, call the
//! store and map its errors; the OpenAPI document is generated from them.

pub mod auth;
pub mod error;
mod events;
mod extract;
pub mod guard;
mod health;
mod idempotent;
mod instances;
mod jobs;
mod metrics;
mod openapi;
pub(crate) mod pagination;
mod runs;
mod schema;
mod secrets;
mod subscriptions;
mod tokens;
mod triggers;
pub mod views;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderName, Request, Response};
use axum::response::IntoResponse;
use chrono::{DateTime, Utc};
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;
use tracing::Span;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use utoipa_swagger_ui::SwaggerUi;

use crate::domain::job::ParseContext;
use crate::domain::network_policy::NetworkPolicy;
use crate::store::DynStore;
use error::ApiError;
pub(crate) use events::stream_events;
pub use extract::MAX_BODY_BYTES;
pub(crate) use jobs::search as job_search;
pub(crate) use secrets::DEFAULT_GRACE_S as DEFAULT_SECRET_GRACE_S;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub store: DynStore,
    pub network_policy: NetworkPolicy,
    pub auth: Arc<auth::Authenticator>,
    pub allowed_hosts: Arc<guard::AllowedHosts>,
    pub metrics: Arc<crate::metrics::Metrics>,
    /// Event streams wait on it.
    pub wakeups: Arc<crate::wakeup::Wakeups>,
    /// Cancelled when the service stops: streams end.
    pub shutdown: tokio_util::sync::CancellationToken,
}

impl AppState {
    pub fn parse_context(&self, now: DateTime<Utc>) -> ParseContext {
        ParseContext {
            now,
            network_policy: self.network_policy.clone(),
        }
    }
}

fn api_router() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(openapi::ApiDoc::openapi())
        .routes(routes!(jobs::create_job, jobs::list_jobs))
        .routes(routes!(
            jobs::get_job,
            jobs::replace_job,
            jobs::modify_job,
            jobs::delete_job
        ))
        .routes(routes!(jobs::pause_job))
        .routes(routes!(jobs::resume_job))
        .routes(routes!(secrets::get_secret))
        .routes(routes!(secrets::rotate_secret))
        .routes(routes!(runs::run_now))
        .routes(routes!(runs::list_runs))
        .routes(routes!(runs::list_all_runs))
        .routes(routes!(runs::get_run))
        .routes(routes!(runs::retry_run))
        .routes(routes!(events::list_events))
        .routes(routes!(events::stream_events))
        .routes(routes!(
            subscriptions::create_subscription,
            subscriptions::list_subscriptions
        ))
        .routes(routes!(
            subscriptions::get_subscription,
            subscriptions::delete_subscription
        ))
        .routes(routes!(subscriptions::get_subscription_secret))
        .routes(routes!(subscriptions::list_deliveries))
        .routes(routes!(metrics::metrics))
        .routes(routes!(triggers::preview))
        .routes(routes!(instances::list_instances))
        .routes(routes!(tokens::create_token, tokens::list_tokens))
        .routes(routes!(tokens::revoke_token))
        .routes(routes!(health::healthz))
        .routes(routes!(health::readyz))
}

/// The OpenAPI document, as served at `/openapi.json`.
pub fn openapi() -> serde_json::Value {
    openapi::complete(api_router().split_for_parts().1)
}

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The whole HTTP application.
pub fn router(state: AppState) -> Router {
    let (api, document) = api_router().split_for_parts();
    // No online validator: it would send the spec's URL to swagger.io.
    let docs = SwaggerUi::new("/docs")
        .external_url_unchecked("/openapi.json", openapi::complete(document))
        .config(utoipa_swagger_ui::Config::default().validator_url("none"));
    api.merge(docs)
        .merge(crate::ui::router())
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            guard::guard,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            metrics::count,
        ))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(PropagateRequestIdLayer::new(REQUEST_ID))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(|request: &Request<_>| {
                    let request_id = request
                        .headers()
                        .get(&REQUEST_ID)
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("-");
                    tracing::info_span!(
                        "request",
                        method = %request.method(),
                        path = %request.uri().path(),
                        request_id = %request_id,
                    )
                })
                .on_request(())
                .on_response(|response: &Response<_>, latency: Duration, _span: &Span| {
                    tracing::info!(
                        status = response.status().as_u16(),
                        latency_ms = latency.as_secs_f64() * 1e3,
                        "request"
                    );
                })
                .on_failure(()),
        )
        .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
        .with_state(state)
}

async fn not_found() -> impl IntoResponse {
    ApiError::NotFound("no such route; see /docs".into())
}

async fn method_not_allowed() -> impl IntoResponse {
    ApiError::MethodNotAllowed("method not allowed on this route; see /docs".into())
}
