//! Overlap policies (DESIGN.md §11.1): runs over `max_instances` wait and
//! go in order as runs of the job end, or are skipped, end to end through
//! the API to a real receiver, on both stores.

use crate::support as common;

use std::time::Duration;

use common::receiver::{Answer, Gate, Receiver};
use common::{Backend, TestApp, eventually};
use serde_json::{Value, json};

const DEADLINE: Duration = Duration::from_secs(60);

/// A job that never fires by itself; its runs are manual.
fn manual_job(id: &str, url: String, overlap: Value) -> Value {
    let mut job = json!({
        "id": id,
        "trigger": {"type": "date", "run_at": "2099-01-01T00:00:00Z"},
        "target": {"url": url, "timeout_s": 30},
        "max_instances": 1,
        "retry": {"max_attempts": 1}
    });
    for (k, v) in overlap.as_object().unwrap() {
        job[k] = v.clone();
    }
    job
}

async fn run_of(app: &TestApp, id: &str) -> Value {
    app.get(&format!("/v1/runs/{id}")).await.json()
}

async fn finished(app: &TestApp, id: &str) -> Value {
    eventually(DEADLINE, "the run finished", || async {
        let run = run_of(app, id).await;
        (!run["finished_at"].is_null()).then_some(run)
    })
    .await
}

async fn manual_runs_wait_under_buffer_one_and_go_in_order(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let receiver = Receiver::start().await;
    // The first request is answered once the test has seen the others wait.
    let gate = Gate::default();
    receiver.script("/slow", [Answer::Gated(gate.clone(), 200)]);
    let job = manual_job(
        "b1",
        receiver.url("/slow"),
        json!({"overlap": "buffer_one"}),
    );
    let created = app.create_job(job).await;
    assert_eq!(
        (&created["overlap"], &created["buffer_max"]),
        (&json!("buffer_one"), &Value::Null)
    );

    let first = app.post_empty("/v1/jobs/b1/run").await;
    assert_eq!(first.status, 201, "{}", first.text);
    let first = first.json();
    // Over the cap: it waits, with no next attempt.
    let second = app.post_empty("/v1/jobs/b1/run").await;
    assert_eq!(second.status, 202, "{}", second.text);
    let second = second.json();
    assert_eq!(second["status"], "pending");
    assert_eq!(second["wait_reason"], "overlap");
    assert_eq!(second["next_attempt_at"], Value::Null);
    // One waits already: the next is skipped, and says why.
    let third = app.post_empty("/v1/jobs/b1/run").await;
    let detail = third.problem(409);
    assert!(detail.contains("recorded as skipped"), "{detail}");
    let skipped = app.get("/v1/jobs/b1/runs?status=skipped").await.json();
    assert_eq!(skipped["items"][0]["reason"], "buffer_full");
    // Their run.created events say so too (listed once every older
    // transaction has ended).
    let created = eventually(DEADLINE, "the run.created events", || async {
        let created = app.get("/v1/events?type=run.created").await.json();
        (created["items"].as_array().map_or(0, Vec::len) >= 3).then_some(created)
    })
    .await;
    let data_of = |run_id: &Value| {
        created["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| &e["run_id"] == run_id)
            .map(|e| e["data"].clone())
            .unwrap_or_else(|| panic!("no run.created for {run_id}: {created}"))
    };
    assert_eq!(data_of(&second["id"])["wait_reason"], "overlap");
    assert_eq!(data_of(&first["id"]).get("wait_reason"), None);
    assert_eq!(data_of(&skipped["items"][0]["id"])["reason"], "buffer_full");

    let sent = |n: usize| {
        let receiver = &receiver;
        async move {
            eventually(DEADLINE, "the requests", || async {
                let got = receiver.received("/slow");
                (got.len() >= n).then_some(got)
            })
            .await
        }
    };
    sent(1).await;
    let answered_from = chrono::Utc::now();
    gate.open();
    let got = sent(2).await;
    let id_of = |run: &Value| run["id"].as_str().unwrap().to_string();
    assert_eq!(got[0].header("webhook-id"), id_of(&first));
    assert_eq!(got[1].header("webhook-id"), id_of(&second));
    // Released when the first ended: its request came after the answer.
    assert!(
        got[1].at >= answered_from,
        "the waiting run went {} ms before the first was answered",
        (answered_from - got[1].at).num_milliseconds()
    );
    assert_eq!(receiver.most_open_at_once("/slow"), 1);
    let second = finished(&app, &id_of(&second)).await;
    assert_eq!(second["status"], "succeeded", "{second}");
    assert_eq!(second["wait_reason"], Value::Null);

    // `?force=true` goes past the cap: two requests open at once.
    let gate = Gate::default();
    receiver.script("/slow", [Answer::Gated(gate.clone(), 200)]);
    assert_eq!(app.post_empty("/v1/jobs/b1/run").await.status, 201);
    sent(3).await;
    let forced = app.post_empty("/v1/jobs/b1/run?force=true").await;
    assert_eq!(forced.status, 201, "{}", forced.text);
    assert_eq!(forced.json()["wait_reason"], Value::Null);
    sent(4).await;
    assert_eq!(receiver.most_open_at_once("/slow"), 2);
    gate.open();
    let bad = app.post_empty("/v1/jobs/b1/run?force=maybe").await;
    assert_eq!(bad.status, 400, "{}", bad.text);
}

async fn scheduled_runs_wait_under_buffer_all_and_never_overlap(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let receiver = Receiver::start().await;
    // Each request takes 1.2 s; the job fires every second.
    receiver.script(
        "/slow",
        (0..20).map(|_| Answer::After(Duration::from_millis(1200), 200)),
    );
    app.create_job(json!({
        "id": "every-second",
        "trigger": {"type": "interval", "every_s": 1},
        "target": {"url": receiver.url("/slow"), "timeout_s": 30},
        "coalesce": false,
        "overlap": "buffer_all",
        "buffer_max": 2,
        "retry": {"max_attempts": 1}
    }))
    .await;
    eventually(DEADLINE, "a run skipped with the buffer full", || async {
        let skipped = app
            .get("/v1/jobs/every-second/runs?status=skipped")
            .await
            .json();
        let reason = skipped["items"].get(0)?["reason"].clone();
        (reason == "buffer_full").then_some(())
    })
    .await;
    eventually(DEADLINE, "four requests", || async {
        (receiver.received("/slow").len() >= 4).then_some(())
    })
    .await;
    app.patch("/v1/jobs/every-second", json!({"paused": true}))
        .await;
    assert_eq!(receiver.most_open_at_once("/slow"), 1);
    // The runs went out in the order of their fire times.
    let runs = app
        .get("/v1/jobs/every-second/runs?status=succeeded&limit=100")
        .await
        .json();
    let mut sent: Vec<(String, String)> = runs["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let id = r["id"].as_str().unwrap().to_string();
            (r["scheduled_for"].as_str().unwrap().to_string(), id)
        })
        .collect();
    sent.sort();
    let order: Vec<String> = receiver
        .received("/slow")
        .iter()
        .map(|r| r.header("webhook-id").to_string())
        .filter(|id| sent.iter().any(|(_, s)| s == id))
        .collect();
    let by_fire_time: Vec<String> = sent.into_iter().map(|(_, id)| id).collect();
    assert_eq!(order, by_fire_time);
}

/// The service without its dispatcher: runs stay as they were made.
async fn spawn_without_dispatcher(backend: Backend) -> TestApp {
    let db = common::TestDb::new(backend).await;
    let mut config = common::test_config(&db.url);
    config.no_dispatcher = true;
    TestApp::spawn_with(db, config).await
}

async fn a_raised_cap_releases_waiting_runs_and_skip_ends_them(backend: Backend) {
    let app = spawn_without_dispatcher(backend).await;
    let job = manual_job(
        "q",
        "http://127.0.0.1:9/".into(),
        json!({"overlap": "buffer_all", "buffer_max": 5}),
    );
    assert_eq!(app.create_job(job).await["buffer_max"], 5);
    let mut runs = Vec::new();
    for expected in [201, 202, 202, 202] {
        let reply = app.post_empty("/v1/jobs/q/run").await;
        assert_eq!(reply.status, expected, "{}", reply.text);
        runs.push(reply.json()["id"].as_str().unwrap().to_string());
    }
    // Two more may be in flight: the two oldest waiting runs go.
    let patched = app.patch("/v1/jobs/q", json!({"max_instances": 3})).await;
    assert_eq!(patched.status, 200, "{}", patched.text);
    let waits: Vec<Value> = {
        let mut v = Vec::new();
        for id in &runs {
            v.push(run_of(&app, id).await["wait_reason"].clone());
        }
        v
    };
    assert_eq!(
        waits,
        [Value::Null, Value::Null, Value::Null, json!("overlap")]
    );
    assert!(!run_of(&app, &runs[1]).await["next_attempt_at"].is_null());
    // The dashboard says what the job does over its cap, and why a run waits.
    let page = app.get("/ui/jobs/q").await;
    assert_eq!(page.status, 200, "{}", page.text);
    assert!(page.text.contains("runs wait, up to 5"), "{}", page.text);
    assert!(page.text.contains("(overlap)"), "{}", page.text);
    // Under `skip` nothing waits: the last one is skipped.
    let patched = app.patch("/v1/jobs/q", json!({"overlap": "skip"})).await;
    assert_eq!(patched.status, 200, "{}", patched.text);
    assert_eq!(patched.json()["buffer_max"], Value::Null);
    let last = run_of(&app, &runs[3]).await;
    assert_eq!(
        (&last["status"], &last["reason"], &last["wait_reason"]),
        (&json!("skipped"), &json!("overlap_skip"), &Value::Null)
    );
}

async fn a_smaller_buffer_keeps_the_oldest_waiting_runs(backend: Backend) {
    let app = spawn_without_dispatcher(backend).await;
    let job = manual_job(
        "s",
        "http://127.0.0.1:9/".into(),
        json!({"overlap": "buffer_all", "buffer_max": 5}),
    );
    app.create_job(job).await;
    let mut runs = Vec::new();
    for expected in [201, 202, 202, 202] {
        let reply = app.post_empty("/v1/jobs/s/run").await;
        assert_eq!(reply.status, expected, "{}", reply.text);
        runs.push(reply.json()["id"].as_str().unwrap().to_string());
    }
    let patched = app.patch("/v1/jobs/s", json!({"buffer_max": 1})).await;
    assert_eq!(patched.status, 200, "{}", patched.text);
    let mut seen = Vec::new();
    for id in &runs[1..] {
        let run = run_of(&app, id).await;
        seen.push((
            run["status"].clone(),
            run["wait_reason"].clone(),
            run["reason"].clone(),
        ));
    }
    let skipped = (json!("skipped"), Value::Null, json!("buffer_full"));
    assert_eq!(
        seen,
        [
            (json!("pending"), json!("overlap"), Value::Null),
            skipped.clone(),
            skipped
        ]
    );
    // One waits, and one may: the next is skipped.
    assert_eq!(
        app.patch("/v1/jobs/s", json!({"overlap": "buffer_one"}))
            .await
            .status,
        200
    );
    assert_eq!(run_of(&app, &runs[1]).await["wait_reason"], "overlap");
    assert_eq!(app.post_empty("/v1/jobs/s/run").await.status, 409);
}

/// Under `replace`, a run over the cap cancels the oldest in flight: its
/// request is aborted (with one request per host allowed, the new run's
/// request can only start once the old one is), its attempt recorded
/// `cancelled`, the run `cancelled` with reason `replaced`.
async fn replace_cancels_the_oldest_run_and_aborts_its_request(backend: Backend) {
    let db = common::TestDb::new(backend).await;
    let mut config = common::test_config(&db.url);
    config.max_in_flight_per_host = 1;
    let app = TestApp::spawn_with(db, config).await;
    let receiver = Receiver::start().await;
    receiver.script("/r", [Answer::Hang]);
    let job = manual_job("r", receiver.url("/r"), json!({"overlap": "replace"}));
    assert_eq!(app.create_job(job).await["overlap"], "replace");
    let first = app.post_empty("/v1/jobs/r/run").await;
    assert_eq!(first.status, 201, "{}", first.text);
    let first = first.json();
    eventually(DEADLINE, "the first request", || async {
        (receiver.received("/r").len() == 1).then_some(())
    })
    .await;
    let second = app.post_empty("/v1/jobs/r/run").await;
    assert_eq!(second.status, 201, "{}", second.text);
    let second = second.json();
    assert_eq!(second["wait_reason"], Value::Null);

    let got = eventually(DEADLINE, "the second request", || async {
        let got = receiver.received("/r");
        (got.len() == 2).then_some(got)
    })
    .await;
    assert_eq!(got[1].header("webhook-id"), second["id"].as_str().unwrap());
    let cancelled = run_of(&app, first["id"].as_str().unwrap()).await;
    assert_eq!(
        (&cancelled["status"], &cancelled["reason"]),
        (&json!("cancelled"), &json!("replaced")),
        "{cancelled}"
    );
    assert!(!cancelled["finished_at"].is_null(), "{cancelled}");
    assert_eq!(
        cancelled["attempts"][0]["error"], "cancelled",
        "{cancelled}"
    );
    assert_eq!(cancelled["attempts"].as_array().unwrap().len(), 1);
    let second = finished(&app, second["id"].as_str().unwrap()).await;
    assert_eq!(second["status"], "succeeded", "{second}");
    let events = eventually(DEADLINE, "the run.cancelled event", || async {
        let events = app.get("/v1/events?type=run.cancelled").await.json();
        (!events["items"][0].is_null()).then_some(events)
    })
    .await;
    assert_eq!(events["items"][0]["run_id"], first["id"], "{events}");
    assert_eq!(events["items"][0]["data"]["replaced_by"], second["id"]);
    let listed = app.get("/v1/jobs/r/runs?status=cancelled").await.json();
    assert_eq!(listed["items"].as_array().unwrap().len(), 1, "{listed}");
    // A run made while none is in flight cancels nothing.
    let third = app.post_empty("/v1/jobs/r/run").await.json();
    assert_eq!(
        finished(&app, third["id"].as_str().unwrap()).await["status"],
        "succeeded"
    );
    assert_eq!(
        app.get("/v1/jobs/r/runs?status=cancelled").await.json()["items"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

async fn bad_overlap_settings_are_refused_naming_the_field(backend: Backend) {
    let app = spawn_without_dispatcher(backend).await;
    let url = "http://127.0.0.1:9/".to_string();
    let cases = [
        (json!({"overlap": "swap"}), "overlap: "),
        (
            json!({"overlap": "replace", "buffer_max": 3}),
            "buffer_max: applies only with overlap \"buffer_all\"",
        ),
        (
            json!({"overlap": "buffer_one", "buffer_max": 3}),
            "buffer_max: applies only with overlap \"buffer_all\"",
        ),
        (
            json!({"overlap": "buffer_all", "buffer_max": 0}),
            "buffer_max: must be between 1 and 10000, got 0",
        ),
        (json!({"buffer_max": 20}), "buffer_max: applies only"),
    ];
    for (fields, expected) in cases {
        let detail = app
            .post("/v1/jobs", manual_job("bad", url.clone(), fields))
            .await
            .problem(422);
        assert!(detail.starts_with(expected), "{detail}");
    }
    let created = app.create_job(manual_job("plain", url, json!({}))).await;
    assert_eq!(created["overlap"], "skip");
}

store_tests!(
    manual_runs_wait_under_buffer_one_and_go_in_order,
    scheduled_runs_wait_under_buffer_all_and_never_overlap,
    a_raised_cap_releases_waiting_runs_and_skip_ends_them,
    a_smaller_buffer_keeps_the_oldest_waiting_runs,
    replace_cancels_the_oldest_run_and_aborts_its_request,
    bad_overlap_settings_are_refused_naming_the_field,
);
