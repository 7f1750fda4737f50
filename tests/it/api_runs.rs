//! Finding runs (by status, by job, by time, across jobs), Idempotency-Key
//! on the operations that create, and a forced first run "now", end to end
//! on both stores.

use crate::support as common;

use std::time::Duration;

use common::{Backend, TestApp, eventually};
use serde_json::{Value, json};

/// A job that never fires by itself; its runs are manual.
fn job(id: &str, max_instances: u32) -> Value {
    json!({
        "id": id,
        "trigger": {"type": "date", "run_at": "2099-01-01T00:00:00Z"},
        "target": {"url": "http://127.0.0.1:9/unreachable"},
        "max_instances": max_instances,
        "retry": {"max_attempts": 1}
    })
}

/// The service without its dispatcher: runs stay as they were made.
async fn spawn(backend: Backend) -> TestApp {
    let db = common::TestDb::new(backend).await;
    let mut config = common::test_config(&db.url);
    config.no_dispatcher = true;
    TestApp::spawn_with(db, config).await
}

fn ids(page: &Value) -> Vec<String> {
    page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_string())
        .collect()
}

async fn runs_are_found_by_status_job_and_time(backend: Backend) {
    let app = spawn(backend).await;
    for id in ["a", "b"] {
        assert_eq!(app.post("/v1/jobs", job(id, 1)).await.status, 201);
    }
    // a: pending, then skipped twice; b: pending, then skipped.
    let mut made = Vec::new();
    for id in ["a", "b", "a", "b", "a"] {
        let reply = app.post_empty(&format!("/v1/jobs/{id}/run")).await;
        let run = if reply.status == 201 {
            reply.json()
        } else {
            assert_eq!(reply.status, 409, "{}", reply.text);
            // The skipped run is the newest of the job's.
            app.get(&format!("/v1/jobs/{id}/runs?limit=1")).await.json()["items"][0].clone()
        };
        made.push(run);
    }
    let id_of = |n: usize| made[n]["id"].as_str().unwrap().to_string();

    let skipped = app.get("/v1/jobs/a/runs?status=skipped").await.json();
    assert_eq!(ids(&skipped), [id_of(4), id_of(2)]);
    let both = app
        .get("/v1/jobs/a/runs?status=pending,skipped")
        .await
        .json();
    assert_eq!(ids(&both), [id_of(4), id_of(2), id_of(0)]);
    let detail = app
        .get("/v1/jobs/a/runs?status=failed,bogus")
        .await
        .problem(422);
    assert!(
        detail.starts_with("status: unknown status \"bogus\""),
        "{detail}"
    );

    // Across jobs, newest first, with the same filters and pages.
    let all = app.get("/v1/runs").await.json();
    assert_eq!(ids(&all), (0..5).rev().map(id_of).collect::<Vec<_>>());
    let skipped = app.get("/v1/runs?status=skipped").await.json();
    assert_eq!(ids(&skipped), [id_of(4), id_of(3), id_of(2)]);
    let of_b = app.get("/v1/runs?job_id=b").await.json();
    assert_eq!(ids(&of_b), [id_of(3), id_of(1)]);
    let first = app.get("/v1/runs?limit=2").await.json();
    assert_eq!(ids(&first), [id_of(4), id_of(3)]);
    let cursor = first["next_cursor"].as_str().unwrap();
    let second = app
        .get(&format!("/v1/runs?limit=2&cursor={cursor}"))
        .await
        .json();
    assert_eq!(ids(&second), [id_of(2), id_of(1)]);
    // A time range on created_at (exclusive): the three in the middle.
    let after = made[0]["created_at"].as_str().unwrap();
    let before = made[4]["created_at"].as_str().unwrap();
    let middle = app
        .get(&format!(
            "/v1/runs?after={}&before={}",
            encode(after),
            encode(before)
        ))
        .await
        .json();
    assert_eq!(ids(&middle), [id_of(3), id_of(2), id_of(1)]);
    assert!(
        app.get("/v1/runs?status=failed").await.json()["items"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    for (query, field) in [
        ("after=yesterday", "after"),
        ("before=2026-01-01", "before"),
        ("job_id=a/b", "job_id"),
        ("limit=0", "limit"),
        ("status=", "status"),
    ] {
        let detail = app.get(&format!("/v1/runs?{query}")).await.problem(422);
        assert!(
            detail.starts_with(&format!("{field}: ")),
            "{query}: {detail}"
        );
    }
}

fn encode(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

async fn post_with_key(app: &TestApp, path: &str, key: &str, body: Option<Value>) -> common::Reply {
    let mut request = app
        .client
        .post(app.url(path))
        .header("Idempotency-Key", key);
    request = match body {
        Some(body) => request.json(&body),
        None => request,
    };
    common::Reply::from(request.send().await.unwrap()).await
}

async fn an_idempotency_key_makes_a_retried_create_or_run_safe(backend: Backend) {
    let app = spawn(backend).await;
    // No id in the body: without the key, a retry would make a second job.
    let body = json!({"trigger": {"type": "interval", "every_s": 3600},
                      "target": {"url": "http://127.0.0.1:9/"}});
    let first = post_with_key(&app, "/v1/jobs", "create-1", Some(body.clone())).await;
    assert_eq!(first.status, 201, "{}", first.text);
    let again = post_with_key(&app, "/v1/jobs", "create-1", Some(body.clone())).await;
    assert_eq!(again.status, 201, "{}", again.text);
    assert_eq!(again.json()["id"], first.json()["id"]);
    assert_eq!(again.headers["location"], first.headers["location"]);
    assert_eq!(
        app.get("/v1/jobs").await.json()["items"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    // The same key with another request is refused.
    let mut other = body.clone();
    other["name"] = json!("another");
    let detail = post_with_key(&app, "/v1/jobs", "create-1", Some(other))
        .await
        .problem(422);
    assert!(
        detail.starts_with("Idempotency-Key: was already used"),
        "{detail}"
    );
    // Another key makes another job; a bad key is refused.
    assert_eq!(
        post_with_key(&app, "/v1/jobs", "create-2", Some(body.clone()))
            .await
            .status,
        201
    );
    let detail = post_with_key(&app, "/v1/jobs", "has space", Some(body.clone()))
        .await
        .problem(422);
    assert!(detail.starts_with("Idempotency-Key: "), "{detail}");

    // Concurrent requests with one key: one job.
    let mut racing = Vec::new();
    for _ in 0..6 {
        let (client, url, body) = (app.client.clone(), app.url("/v1/jobs"), body.clone());
        racing.push(tokio::spawn(async move {
            let reply = client
                .post(url)
                .header("Idempotency-Key", "race")
                .json(&body)
                .send()
                .await
                .unwrap();
            common::Reply::from(reply).await
        }));
    }
    let mut made = std::collections::BTreeSet::new();
    for task in racing {
        let reply = task.await.unwrap();
        assert_eq!(reply.status, 201, "{}", reply.text);
        made.insert(reply.json()["id"].as_str().unwrap().to_string());
    }
    assert_eq!(made.len(), 1, "{made:?}");
    assert_eq!(
        app.get("/v1/jobs").await.json()["items"]
            .as_array()
            .unwrap()
            .len(),
        3
    );

    // Run now: the same run again, not a second (which max_instances 1
    // would have recorded as skipped).
    assert_eq!(app.post("/v1/jobs", job("manual", 1)).await.status, 201);
    let run = post_with_key(&app, "/v1/jobs/manual/run", "run-1", None).await;
    assert_eq!(run.status, 201, "{}", run.text);
    let again = post_with_key(&app, "/v1/jobs/manual/run", "run-1", None).await;
    assert_eq!(again.status, 201, "{}", again.text);
    assert_eq!(again.json()["id"], run.json()["id"]);
    let runs = app.get("/v1/jobs/manual/runs").await.json();
    assert_eq!(runs["items"].as_array().unwrap().len(), 1);
    // The key of a deleted job's creation answers that it is gone.
    let id = first.json()["id"].as_str().unwrap().to_string();
    assert_eq!(app.delete(&format!("/v1/jobs/{id}")).await.status, 204);
    let detail = post_with_key(&app, "/v1/jobs", "create-1", Some(body))
        .await
        .problem(409);
    assert!(detail.contains("no longer exists"), "{detail}");
}

async fn a_first_run_forced_now_fires_at_once(backend: Backend) {
    let receiver = common::receiver::Receiver::start().await;
    let app = TestApp::spawn(backend).await;
    let mut body = json!({"id": "now", "trigger": {"type": "interval", "every_s": 3600},
                          "target": {"url": receiver.url("/now")}, "next_run_at": "now"});
    let created = app.post("/v1/jobs", body.clone()).await;
    assert_eq!(created.status, 201, "{}", created.text);
    eventually(Duration::from_secs(30), "the forced run", || async {
        (!receiver.received("/now").is_empty()).then_some(())
    })
    .await;
    // On replace and patch too.
    body["id"] = json!("now2");
    body["paused"] = json!(true);
    body.as_object_mut().unwrap().remove("next_run_at");
    assert_eq!(app.put("/v1/jobs/now2", body.clone()).await.status, 201);
    let patched = app
        .patch(
            "/v1/jobs/now2",
            json!({"paused": false, "next_run_at": "now"}),
        )
        .await;
    assert_eq!(patched.status, 200, "{}", patched.text);
    eventually(
        Duration::from_secs(30),
        "the patched forced run",
        || async { (receiver.received("/now").len() == 2).then_some(()) },
    )
    .await;
    let detail = app
        .post(
            "/v1/jobs",
            json!({"trigger": {"type": "interval", "every_s": 60},
                   "target": {"url": "http://x.test"}, "next_run_at": "soon"}),
        )
        .await
        .problem(422);
    assert!(detail.starts_with("next_run_at: "), "{detail}");
    assert!(detail.contains("\"now\""), "{detail}");
}

store_tests!(
    runs_are_found_by_status_job_and_time,
    an_idempotency_key_makes_a_retried_create_or_run_safe,
    a_first_run_forced_now_fires_at_once,
);
