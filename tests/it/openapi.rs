//! The OpenAPI document in the repository is the one the code generates
//! and serves; the docs page is served from the binary.

use crate::support as common;

use common::{Backend, TestApp};

const COMMITTED: &str = include_str!("../../openapi/openapi.json");

#[test]
fn committed_document_matches_the_code() {
    let generated = serde_json::to_string_pretty(&cronhook::api::openapi()).unwrap();
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
    // Gzipped for a client that takes it, and kept by a browser a while.
    let zipped = app
        .client
        .get(app.url("/docs/swagger-ui-bundle.js"))
        .header("accept-encoding", "gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(zipped.status(), 200);
    assert_eq!(zipped.headers()["content-encoding"], "gzip");
    assert_eq!(zipped.headers()["cache-control"], "public, max-age=3600");
    let bytes = zipped.bytes().await.unwrap();
    assert!(
        bytes.len() < script.text.len() / 2,
        "{} bytes gzipped",
        bytes.len()
    );
    let init = app.get("/docs/swagger-initializer.js").await;
    assert!(init.text.contains("/openapi.json"), "{}", init.text);
    // No online validator: the page never sends the spec's URL away.
    assert!(
        init.text.contains(r#""validatorUrl": "none""#),
        "{}",
        init.text
    );
}

/// What Swagger UI's "Try it out" sends is the document's example: each
/// must be accepted as it stands.
#[tokio::test]
async fn the_document_s_examples_are_accepted() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let doc: serde_json::Value = serde_json::from_str(COMMITTED).unwrap();
    let schemas = &doc["components"]["schemas"];
    let created = app
        .post("/v1/jobs", schemas["JobRequest"]["example"].clone())
        .await;
    assert_eq!(created.status, 201, "{}", created.text);
    let id = created.json()["id"].as_str().unwrap().to_string();
    let patched = app
        .patch(
            &format!("/v1/jobs/{id}"),
            schemas["JobPatch"]["example"].clone(),
        )
        .await;
    assert_eq!(patched.status, 200, "{}", patched.text);
    for kind in ["CronTrigger", "IntervalTrigger", "DateTrigger"] {
        let preview = app
            .post(
                "/v1/triggers/preview",
                serde_json::json!({"trigger": schemas[kind]["example"].clone(), "count": 2}),
            )
            .await;
        assert_eq!(preview.status, 200, "{kind}: {}", preview.text);
    }
    let target = &schemas["Target"]["example"];
    let mut job = serde_json::json!({"trigger": {"type": "interval", "every_s": 60}});
    job["target"] = target.clone();
    assert_eq!(app.post("/v1/jobs", job).await.status, 201);
    // Every problem example is a problem of its own status.
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            for (status, response) in operation["responses"].as_object().unwrap() {
                let example = &response["content"]["application/problem+json"]["example"];
                if !example.is_null() {
                    assert_eq!(example["status"].to_string(), *status, "{method} {path}");
                }
            }
        }
    }
}

/// A method a route does not have is a 405 that says which it has.
#[tokio::test]
async fn unsupported_methods_are_405_with_allow() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let reply = app.request(reqwest::Method::DELETE, "/v1/jobs", None).await;
    assert_eq!(reply.status, 405, "{}", reply.text);
    let allow = reply.headers["allow"].to_str().unwrap().to_string();
    assert!(allow.contains("GET") && allow.contains("POST"), "{allow}");
    assert_eq!(reply.content_type, "application/problem+json");
}
