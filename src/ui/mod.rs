//! The dashboard (DESIGN.md §10): server-rendered pages at `/ui` over the
//! same store calls as the API. A token login opens a server-side session
//! whose id a cookie holds, every form carries the session's CSRF token,
//! and a small script of ours keeps a page current from the event stream.
//! Every asset is in the binary: no CDN.

mod actions;
mod agenda;
mod alerts;
mod audit;
mod backfill;
mod bulk;
mod events;
mod flows;
mod job_form;
mod overview;
mod pages;
mod render;
mod request;
mod session;
mod subscriptions;
mod tokens;

use axum::Router;
use axum::http::{HeaderName, HeaderValue, header};
use axum::middleware;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use tower_http::set_header::SetResponseHeaderLayer;

use crate::state::AppState;

const STYLESHEET: &str = include_str!("assets/app.css");
const LIVE_SCRIPT: &str = include_str!("assets/live.js");
const JOB_FORM_SCRIPT: &str = include_str!("assets/job-form.js");

/// The dashboard's routes, all under `/ui`.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/ui", get(pages::jobs))
        .route("/ui/", get(pages::jobs))
        .route("/ui/failed", get(pages::failed))
        .route("/ui/overview", get(overview::page))
        .route("/ui/bulk", post(bulk::post))
        .route("/ui/flows", get(flows::page))
        .route("/ui/alerts", get(alerts::page))
        .route("/ui/alerts/{id}/ack", post(alerts::ack))
        .route("/ui/agenda", get(agenda::page))
        .route("/ui/events", get(events::page))
        .route("/ui/audit", get(audit::page))
        .route("/ui/subscriptions", get(subscriptions::page))
        .route("/ui/tokens", get(tokens::page))
        .route(
            "/ui/new-job",
            get(job_form::new_page).post(job_form::create),
        )
        .route("/ui/job-preview", post(job_form::preview))
        .route(
            "/ui/jobs/{id}/edit",
            get(job_form::edit_page).post(job_form::save),
        )
        .route("/ui/jobs/{id}", get(pages::job))
        .route("/ui/jobs/{id}/secret", get(pages::secret))
        .route(
            "/ui/jobs/{id}/delete",
            get(pages::confirm_delete).post(actions::delete),
        )
        .route("/ui/jobs/{id}/pause", post(actions::pause))
        .route("/ui/jobs/{id}/resume", post(actions::resume))
        .route("/ui/jobs/{id}/run", post(actions::run_now))
        .route(
            "/ui/jobs/{id}/backfill",
            get(backfill::page).post(backfill::make),
        )
        .route("/ui/jobs/{id}/rotate-secret", post(actions::rotate_secret))
        .route("/ui/runs/{id}", get(pages::run))
        .route("/ui/runs/{id}/retry", post(actions::retry))
        .route("/ui/runs/{id}/cancel", post(actions::cancel))
        .route("/ui/login", get(session::login_page).post(session::login))
        .route("/ui/logout", post(session::logout))
        .route("/ui/live", get(crate::api::stream_events))
        .route("/ui/assets/app.css", get(stylesheet))
        .route("/ui/assets/live.js", get(live_script))
        .route("/ui/assets/job-form.js", get(job_form_script))
        .layer(middleware::from_fn(session::bearer_from_cookie))
        .layer(header_layer(
            header::CONTENT_SECURITY_POLICY,
            CONTENT_SECURITY_POLICY,
        ))
        .layer(header_layer(header::X_FRAME_OPTIONS, "DENY"))
        .layer(header_layer(header::REFERRER_POLICY, "same-origin"))
}

/// Our own files only, and never inside another site's frame: a page of
/// buttons must not be clickjacked.
const CONTENT_SECURITY_POLICY: &str =
    "default-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'";

fn header_layer(name: HeaderName, value: &'static str) -> SetResponseHeaderLayer<HeaderValue> {
    SetResponseHeaderLayer::overriding(name, HeaderValue::from_static(value))
}

/// Assets change only with the binary; a day's caching is plenty.
const ASSET_CACHE: &str = "public, max-age=86400";

async fn stylesheet() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, ASSET_CACHE),
        ],
        STYLESHEET,
    )
}

async fn live_script() -> impl IntoResponse {
    script(LIVE_SCRIPT)
}

async fn job_form_script() -> impl IntoResponse {
    script(JOB_FORM_SCRIPT)
}

fn script(text: &'static str) -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, ASSET_CACHE),
        ],
        text,
    )
}
