//! Run limits (DESIGN.md §11.3): a job completes after `max_runs` runs sent,
//! and `on_complete: delete` removes it once its last run has ended; end to
//! end through the API to a real receiver, on both stores.

use crate::support as common;

use std::time::Duration;

use common::receiver::{Answer, Receiver};
use common::{Backend, TestApp, eventually};
use serde_json::{Value, json};

const DEADLINE: Duration = Duration::from_secs(60);

async fn job_of(app: &TestApp, id: &str) -> Value {
    app.get(&format!("/v1/jobs/{id}")).await.json()
}

async fn completed(app: &TestApp, id: &str) -> Value {
    eventually(DEADLINE, "the job completed", || async {
        let job = job_of(app, id).await;
        (job["state"] == "completed").then_some(job)
    })
    .await
}

/// The job's runs, once every one of them has finished.
async fn finished_runs(app: &TestApp, id: &str, n: usize) -> Vec<Value> {
    eventually(DEADLINE, "the runs finished", || async {
        let runs = app.get(&format!("/v1/jobs/{id}/runs")).await.json();
        let items = runs["items"].as_array().cloned().unwrap_or_default();
        (items.len() >= n && items.iter().all(|r| !r["finished_at"].is_null())).then_some(items)
    })
    .await
}

/// The job's event types, once all of `expected` are listed (an event is
/// listed once every older transaction has ended).
async fn event_types(app: &TestApp, job_id: &str, expected: &[&str]) -> Vec<String> {
    eventually(DEADLINE, "the events", || async {
        let events = app.get("/v1/events?limit=1000").await.json();
        let types: Vec<String> = events["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["job_id"] == job_id)
            .map(|e| e["type"].as_str().unwrap().to_string())
            .collect();
        expected
            .iter()
            .all(|t| types.iter().any(|have| have == t))
            .then_some(types)
    })
    .await
}

async fn a_job_stops_after_max_runs_and_a_raised_limit_lets_it_run_on(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let receiver = Receiver::start().await;
    let created = app
        .create_job(json!({
            "id": "twice",
            "trigger": {"type": "interval", "every_s": 1},
            "target": {"url": receiver.url("/hook")},
            "max_runs": 2
        }))
        .await;
    assert_eq!(
        (
            &created["max_runs"],
            &created["runs_remaining"],
            &created["on_complete"]
        ),
        (&json!(2), &json!(2), &json!("keep"))
    );

    let job = completed(&app, "twice").await;
    assert_eq!(job["runs_remaining"], 0, "{job}");
    assert_eq!(job["next_run_at"], Value::Null);
    // Completed: no run can be made any more, so these are all there are.
    let runs = finished_runs(&app, "twice", 2).await;
    assert_eq!(runs.len(), 2, "{runs:?}");
    assert!(runs.iter().all(|r| r["status"] == "succeeded"), "{runs:?}");
    assert_eq!(receiver.received("/hook").len(), 2);
    event_types(&app, "twice", &["job.completed"]).await;
    // The dashboard says so.
    let page = app.get("/ui/jobs/twice").await;
    assert!(
        page.text.contains("2 runs, 0 left; then completed"),
        "{}",
        page.text
    );

    // A raised limit: it runs on from now, once more.
    let patched = app.patch("/v1/jobs/twice", json!({"max_runs": 3})).await;
    assert_eq!(patched.status, 200, "{}", patched.text);
    let patched = patched.json();
    assert_eq!(
        (&patched["state"], &patched["runs_remaining"]),
        (&json!("scheduled"), &json!(1))
    );
    completed(&app, "twice").await;
    assert_eq!(finished_runs(&app, "twice", 3).await.len(), 3);
    assert_eq!(receiver.received("/hook").len(), 3);

    // Lowered to what it has run: completed at once.
    let job = app
        .patch("/v1/jobs/twice", json!({"max_runs": 10}))
        .await
        .json();
    assert_eq!(job["runs_remaining"], 7, "{job}");
    let job = app
        .patch("/v1/jobs/twice", json!({"max_runs": 3}))
        .await
        .json();
    assert_eq!(
        (&job["state"], &job["runs_remaining"]),
        (&json!("completed"), &json!(0))
    );
}

async fn a_completed_job_is_deleted_once_its_last_run_ends(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let receiver = Receiver::start().await;
    // The last request is held for 3 s: the job waits for it.
    receiver.script("/last", [Answer::After(Duration::from_secs(3), 200)]);
    app.create_job(json!({
        "id": "once",
        "trigger": {"type": "interval", "every_s": 3600},
        "next_run_at": "now",
        "target": {"url": receiver.url("/last")},
        "max_runs": 1,
        "on_complete": "delete"
    }))
    .await;
    eventually(DEADLINE, "the request", || async {
        (!receiver.received("/last").is_empty()).then_some(())
    })
    .await;
    // Completed, but its run is still in flight: kept until it ends.
    let job = app.get("/v1/jobs/once").await;
    assert_eq!(job.status, 200, "{}", job.text);
    assert_eq!(job.json()["state"], "completed");
    eventually(DEADLINE, "the job deleted", || async {
        (app.get("/v1/jobs/once").await.status == 404).then_some(())
    })
    .await;
    event_types(
        &app,
        "once",
        &["job.completed", "run.succeeded", "job.deleted"],
    )
    .await;
    assert_eq!(receiver.received("/last").len(), 1);
}

async fn a_job_whose_last_occurrence_is_missed_is_deleted_at_once(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let an_hour_ago = chrono::Utc::now() - chrono::TimeDelta::hours(1);
    app.create_job(json!({
        "id": "late",
        "trigger": {"type": "date", "run_at": an_hour_ago.to_rfc3339()},
        "target": {"url": "http://127.0.0.1:9/"},
        "misfire_grace_s": 60,
        "on_complete": "delete"
    }))
    .await;
    eventually(DEADLINE, "the job deleted", || async {
        (app.get("/v1/jobs/late").await.status == 404).then_some(())
    })
    .await;
    event_types(&app, "late", &["job.completed", "job.deleted"]).await;
}

/// Its last occurrence missed while a manual run is still in flight: the
/// job is completed at once, and deleted when that run ends.
async fn a_missed_last_occurrence_waits_for_the_run_in_flight(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let receiver = Receiver::start().await;
    receiver.script("/held", [Answer::After(Duration::from_secs(6), 200)]);
    let an_hour_ago = (chrono::Utc::now() - chrono::TimeDelta::hours(1)).to_rfc3339();
    app.create_job(json!({
        "id": "held",
        "trigger": {"type": "date", "run_at": an_hour_ago},
        "target": {"url": receiver.url("/held")},
        "misfire_grace_s": 60,
        "max_instances": 2,
        "on_complete": "delete",
        "paused": true
    }))
    .await;
    assert_eq!(app.post_empty("/v1/jobs/held/run").await.status, 201);
    eventually(DEADLINE, "the manual request", || async {
        (!receiver.received("/held").is_empty()).then_some(())
    })
    .await;
    // Its one fire time, an hour late: missed.
    let resumed = app
        .patch(
            "/v1/jobs/held",
            json!({"paused": false, "next_run_at": an_hour_ago}),
        )
        .await;
    assert_eq!(resumed.status, 200, "{}", resumed.text);
    let job = completed(&app, "held").await;
    assert_eq!(job["next_run_at"], Value::Null);
    let missed = app.get("/v1/jobs/held/runs?status=missed").await.json();
    assert_eq!(missed["items"].as_array().unwrap().len(), 1, "{missed}");
    eventually(DEADLINE, "the job deleted", || async {
        (app.get("/v1/jobs/held").await.status == 404).then_some(())
    })
    .await;
    assert_eq!(receiver.received("/held").len(), 1);
}

async fn bad_run_limits_are_refused_naming_the_field(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let job = |extra: Value| {
        let mut job = json!({
            "id": "bad",
            "trigger": {"type": "interval", "every_s": 60},
            "target": {"url": "http://127.0.0.1:9/"}
        });
        for (k, v) in extra.as_object().unwrap() {
            job[k] = v.clone();
        }
        job
    };
    let cases = [
        (json!({"max_runs": 0}), "max_runs: must be between 1 and"),
        (json!({"max_runs": -3}), "max_runs: must be between 1 and"),
        (json!({"max_runs": "ten"}), "max_runs: "),
        (json!({"on_complete": "archive"}), "on_complete: "),
    ];
    for (fields, expected) in cases {
        let detail = app.post("/v1/jobs", job(fields)).await.problem(422);
        assert!(detail.starts_with(expected), "{detail}");
    }
    let created = app.create_job(job(json!({}))).await;
    assert_eq!(
        (&created["max_runs"], &created["runs_remaining"]),
        (&Value::Null, &Value::Null)
    );
    let detail = app
        .patch("/v1/jobs/bad", json!({"max_runs": 0}))
        .await
        .problem(422);
    assert!(detail.starts_with("max_runs: "), "{detail}");
}

store_tests!(
    a_job_stops_after_max_runs_and_a_raised_limit_lets_it_run_on,
    a_completed_job_is_deleted_once_its_last_run_ends,
    a_job_whose_last_occurrence_is_missed_is_deleted_at_once,
    a_missed_last_occurrence_waits_for_the_run_in_flight,
    bad_run_limits_are_refused_naming_the_field,
);
