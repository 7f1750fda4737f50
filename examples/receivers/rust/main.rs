//! A Cronhook webhook receiver that verifies each request's signature.
//!
//! ```sh
//! WEBHOOK_SECRET=whsec_... PORT=8000 cargo run --example receiver
//! ```
//!
//! The secret is the job's (`GET /v1/jobs/{id}/secret`, or the `secret`
//! the job was created with). Verify the raw bytes before reading them; a
//! job's body may be JSON, a plain string or nothing at all. Dependencies:
//! `axum`, `tokio` and `standardwebhooks`.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use standardwebhooks::Webhook;

async fn receive(
    State(webhook): State<Arc<Webhook>>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let id = headers
        .get("webhook-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    if let Err(e) = webhook.verify(&body, &headers) {
        println!("rejected {id}: {e}");
        return StatusCode::UNAUTHORIZED;
    }
    let is_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.starts_with("application/json"));
    let kind = if body.is_empty() {
        "empty"
    } else if is_json {
        // Your job's JSON body.
        if serde_json::from_slice::<serde_json::Value>(&body).is_err() {
            return StatusCode::BAD_REQUEST;
        }
        "json"
    } else {
        // A string body, as the job gave it.
        if std::str::from_utf8(&body).is_err() {
            return StatusCode::BAD_REQUEST;
        }
        "text"
    };
    // webhook-id is the run's id, the same on every retry: do the work
    // once per id.
    println!("verified {id} {kind}");
    StatusCode::NO_CONTENT
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let secret = std::env::var("WEBHOOK_SECRET").expect("WEBHOOK_SECRET: the job's whsec_ secret");
    let webhook = Webhook::new(&secret).expect("WEBHOOK_SECRET: a whsec_ secret");
    let port = std::env::var("PORT").unwrap_or_else(|_| "8000".into());
    let listener = tokio::net::TcpListener::bind(format!("127.0.0.1:{port}")).await?;
    println!("listening on {}", listener.local_addr()?);
    let app = axum::Router::new()
        .fallback(receive)
        .with_state(Arc::new(webhook));
    axum::serve(listener, app).await
}
