//! The OpenAPI document in the repository is the one the code generates
//! and serves; the docs page is served from the binary.

mod common;

use common::{Backend, TestApp};

const COMMITTED: &str = include_str!("../openapi/openapi.json");

#[test]
fn committed_document_matches_the_code() {
    let generated = cronhook::api::openapi().to_pretty_json().unwrap();
    assert!(
        generated.trim() == COMMITTED.trim(),
        "openapi/openapi.json is stale: regenerate it with `cargo run -- openapi > openapi/openapi.json`"
    );
}

#[tokio::test]
async fn served_document_and_docs_page() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let served: serde_json::Value = app.get("/openapi.json").await.json();
    let committed: serde_json::Value = serde_json::from_str(COMMITTED).unwrap();
    assert_eq!(served, committed);

    let docs = app.get("/docs/").await;
    assert_eq!(docs.status, 200);
    assert!(
        docs.content_type.starts_with("text/html"),
        "{}",
        docs.content_type
    );
    assert!(docs.text.contains("swagger"), "{}", docs.text);
    // The page's own assets come from the binary too.
    let script = app.get("/docs/swagger-ui-bundle.js").await;
    assert_eq!(script.status, 200);
    assert!(script.text.len() > 100_000);
    let init = app.get("/docs/swagger-initializer.js").await;
    assert!(init.text.contains("/openapi.json"), "{}", init.text);
}
