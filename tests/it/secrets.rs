//! A job's signing secret chosen by the client, and
//! `--signing-secret-default`: set at creation, changed by a replace or a
//! patch, never shown in a job's view, and what the receiver verifies.

use crate::support as common;

use common::receiver::Receiver;
use common::{Backend, TestApp, TestDb};
use serde_json::{Value, json};

// The Standard Webhooks specification's example secret, and another.
const CHOSEN: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const OTHER: &str = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";

fn job(id: &str, url: &str, secret: Option<&str>) -> Value {
    let mut job = json!({
        "id": id,
        "trigger": {"type": "date", "run_at": chrono::Utc::now().to_rfc3339()},
        "target": {"url": url, "body": {"n": 1}},
    });
    if let Some(secret) = secret {
        job["secret"] = json!(secret);
    }
    job
}

async fn secret_of(app: &TestApp, id: &str) -> String {
    let got = app.get(&format!("/v1/jobs/{id}/secret")).await;
    assert_eq!(got.status, 200, "{}", got.text);
    got.json()["secret"].as_str().unwrap().to_string()
}

/// The receiver's one request for `path`, verified with `secret`.
async fn verified_with(receiver: &Receiver, path: &str, secret: &str) {
    let request = common::first_request(receiver, path).await;
    standardwebhooks::Webhook::new(secret)
        .unwrap()
        .verify(&request.body, &request.headers)
        .expect("the chosen secret verifies the request");
}

async fn a_job_created_with_its_own_secret_is_signed_with_it(backend: Backend) {
    let receiver = Receiver::start().await;
    let app = TestApp::spawn(backend).await;
    let created = app
        .post("/v1/jobs", job("own", &receiver.url("/own"), Some(CHOSEN)))
        .await;
    assert_eq!(created.status, 201, "{}", created.text);
    // Written only: neither the answer nor a read shows it.
    assert!(!created.text.contains("MfKQ9r8"), "{}", created.text);
    let read = app.get("/v1/jobs/own").await;
    assert!(!read.text.contains("MfKQ9r8"), "{}", read.text);
    assert_eq!(secret_of(&app, "own").await, CHOSEN);
    verified_with(&receiver, "/own", CHOSEN).await;

    // A PUT that creates takes it too; a replace without one keeps it; a
    // patch with one changes it.
    let url = receiver.url("/later");
    let mut later = job("later", &url, Some(OTHER));
    later["paused"] = json!(true);
    later["trigger"] = json!({"type": "interval", "every_s": 60});
    assert_eq!(app.put("/v1/jobs/later", later.clone()).await.status, 201);
    assert_eq!(secret_of(&app, "later").await, OTHER);
    later.as_object_mut().unwrap().remove("secret");
    assert_eq!(app.put("/v1/jobs/later", later).await.status, 200);
    assert_eq!(secret_of(&app, "later").await, OTHER);
    let patched = app.patch("/v1/jobs/later", json!({"secret": CHOSEN})).await;
    assert_eq!(patched.status, 200, "{}", patched.text);
    assert!(!patched.text.contains("MfKQ9r8"), "{}", patched.text);
    assert_eq!(secret_of(&app, "later").await, CHOSEN);
    let patched = app
        .patch("/v1/jobs/later", json!({"name": "renamed"}))
        .await;
    assert_eq!(patched.status, 200, "{}", patched.text);
    assert_eq!(secret_of(&app, "later").await, CHOSEN);
}

async fn a_bad_secret_is_a_422_naming_the_field(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let url = "https://example.com/";
    let cases = [
        ("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "must start with whsec_"),
        ("whsec_not base64!", "standard base64"),
        ("whsec_c2hvcnQ=", "24 to 64 bytes of key, it holds 5"),
    ];
    for (secret, why) in cases {
        let detail = app
            .post("/v1/jobs", job("bad", url, Some(secret)))
            .await
            .problem(422);
        assert!(detail.starts_with("secret: "), "{detail}");
        assert!(detail.contains(why), "{detail}");
        // The refusal never echoes what was sent.
        assert!(!detail.contains(&secret[6..]), "{detail}");
    }
    let monitor = json!({
        "id": "m", "trigger": {"type": "interval", "every_s": 60},
        "target": null, "monitor": {}, "secret": CHOSEN,
    });
    let detail = app.post("/v1/jobs", monitor).await.problem(422);
    assert!(detail.starts_with("secret: a monitor-only job"), "{detail}");
    assert_eq!(app.get("/v1/jobs").await.json()["items"], json!([]));
}

async fn the_default_secret_signs_every_job_that_sets_none(backend: Backend) {
    let receiver = Receiver::start().await;
    let db = TestDb::new(backend).await;
    let mut config = common::test_config(&db.url);
    config.signing_secret_default =
        Some(cronhook::domain::signing::ChosenSecret::parse(OTHER).unwrap());
    let app = TestApp::spawn_with(db, config).await;
    app.create_job(job("a", &receiver.url("/a"), None)).await;
    app.create_job(job("b", &receiver.url("/b"), Some(CHOSEN)))
        .await;
    assert_eq!(secret_of(&app, "a").await, OTHER);
    assert_eq!(secret_of(&app, "b").await, CHOSEN);
    verified_with(&receiver, "/a", OTHER).await;
    verified_with(&receiver, "/b", CHOSEN).await;
}

store_tests!(
    a_job_created_with_its_own_secret_is_signed_with_it,
    a_bad_secret_is_a_422_naming_the_field,
    the_default_secret_signs_every_job_that_sets_none,
);
