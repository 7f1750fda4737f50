//! The HTTP API: thin handlers that parse into domain types, call the
//! store and map its errors; the OpenAPI document is generated from them.

mod agenda;
mod alerts;
pub mod audit;
pub mod auth;
mod backfills;
mod bulk;
mod bundles;
mod calendars;
mod callbacks;
pub mod error;
mod events;
pub(crate) mod extract;
mod flows;
pub mod guard;
mod health;
mod idempotent;
mod instances;
mod jobs;
mod metrics;
mod openapi;
pub(crate) mod pagination;
mod pings;
mod quotas;
mod render;
mod runs;
mod schema;
mod secrets;
mod subscriptions;
mod tokens;
mod triggers;
pub mod views;

use axum::Router;
use axum::response::IntoResponse;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use utoipa_swagger_ui::SwaggerUi;

use crate::state::AppState;
use error::ApiError;
pub(crate) use events::stream_events;
pub use extract::MAX_BODY_BYTES;
pub use metrics::{QuietLog, count as count_requests};
pub use pings::ping_url;
pub(crate) use secrets::DEFAULT_GRACE_S as DEFAULT_SECRET_GRACE_S;
pub use triggers::{Preview, PreviewRequest, preview_for};

fn api_router() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(openapi::ApiDoc::openapi())
        .routes(routes!(jobs::create_job, jobs::list_jobs))
        .routes(routes!(
            jobs::get_job,
            jobs::replace_job,
            jobs::modify_job,
            jobs::delete_job
        ))
        .routes(routes!(bulk::bulk_jobs))
        .routes(routes!(jobs::pause_job))
        .routes(routes!(jobs::resume_job))
        .routes(routes!(secrets::get_secret))
        .routes(routes!(secrets::rotate_secret))
        .routes(routes!(runs::run_now))
        .routes(routes!(render::render_request))
        .routes(routes!(
            calendars::create_calendar,
            calendars::list_calendars
        ))
        .routes(routes!(
            calendars::get_calendar,
            calendars::put_calendar,
            calendars::delete_calendar
        ))
        .routes(routes!(calendars::import_calendar))
        .routes(routes!(agenda::agenda))
        .routes(routes!(alerts::list_alerts))
        .routes(routes!(alerts::ack_alert))
        .routes(routes!(pings::ping_success))
        .routes(routes!(pings::ping_kind))
        .routes(routes!(pings::rotate_ping_key))
        .routes(routes!(flows::list_flows))
        .routes(routes!(flows::get_flow, flows::put_flow))
        .routes(routes!(flows::pause_flow))
        .routes(routes!(flows::resume_flow))
        .routes(routes!(backfills::create_backfill))
        .routes(routes!(backfills::get_backfill, backfills::cancel_backfill))
        .routes(routes!(runs::list_runs))
        .routes(routes!(runs::list_all_runs))
        .routes(routes!(runs::get_run))
        .routes(routes!(runs::retry_run))
        .routes(routes!(callbacks::complete_run))
        .routes(routes!(callbacks::heartbeat_run))
        .routes(routes!(callbacks::cancel_run))
        .routes(routes!(bundles::export))
        .routes(routes!(bundles::apply))
        .routes(routes!(audit::list_audit))
        .routes(routes!(audit::export_audit))
        .routes(routes!(events::list_events))
        .routes(routes!(events::stream_events))
        .routes(routes!(
            subscriptions::create_subscription,
            subscriptions::list_subscriptions
        ))
        .routes(routes!(
            subscriptions::get_subscription,
            subscriptions::put_subscription,
            subscriptions::delete_subscription
        ))
        .routes(routes!(subscriptions::get_subscription_secret))
        .routes(routes!(subscriptions::list_deliveries))
        .routes(routes!(metrics::metrics))
        .routes(routes!(triggers::preview))
        .routes(routes!(instances::list_instances))
        .routes(routes!(quotas::get_quotas, quotas::set_quotas))
        .routes(routes!(tokens::create_token, tokens::list_tokens))
        .routes(routes!(tokens::revoke_token))
        .routes(routes!(health::healthz))
        .routes(routes!(health::readyz))
}

/// The OpenAPI document, as served at `/openapi.json`.
pub fn openapi() -> serde_json::Value {
    openapi::complete(api_router().split_for_parts().1)
}

/// The API's routes and its documentation (`/docs`, `/openapi.json`),
/// for `app.rs` to compose with the dashboard's.
pub fn routes() -> Router<AppState> {
    let (api, document) = api_router().split_for_parts();
    // No online validator: it would send the spec's URL to swagger.io.
    let docs = SwaggerUi::new("/docs")
        .external_url_unchecked("/openapi.json", openapi::complete(document))
        .config(utoipa_swagger_ui::Config::default().validator_url("none"));
    // The docs' assets are 1.5 MB and change only with the binary: gzip
    // them for a client that takes it, and let a browser keep them a while.
    let docs = Router::from(docs)
        .layer(tower_http::compression::CompressionLayer::new())
        .layer(
            tower_http::set_header::SetResponseHeaderLayer::if_not_present(
                http::header::CACHE_CONTROL,
                http::HeaderValue::from_static("public, max-age=3600"),
            ),
        );
    api.merge(docs)
}

fn busy_error() -> ApiError {
    ApiError::Unavailable("every connection is taken; try again shortly (--max-connections)".into())
}

/// The body of [`busy`], for a connection answered before any router.
pub fn busy_body() -> String {
    serde_json::to_string(&busy_error().problem()).unwrap_or_default()
}

/// A 503 problem with `Retry-After` (as every 503 has), for a connection
/// the server can serve only health checks on.
pub fn busy() -> axum::response::Response {
    busy_error().into_response()
}

/// No route matched: a problem pointing at the documentation.
pub async fn not_found() -> impl IntoResponse {
    ApiError::NotFound("no such route; see /docs".into())
}

pub async fn method_not_allowed() -> impl IntoResponse {
    ApiError::MethodNotAllowed("method not allowed on this route; see /docs".into())
}
