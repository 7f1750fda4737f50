//! Dependency gates end to end on both stores (DESIGN.md §11.8): a `wait`
//! gate holds B's fire time until A succeeds, then B is sent; a `skip`
//! gate records B skipped until A has a recent success; a held run past
//! `wait_max_s` is missed; bad gates are refused with the field, and a
//! job a gate names is kept unless `?drop_refs=true`.

use crate::support as common;

use std::time::Duration;

use common::receiver::Receiver;
use common::{Backend, TestApp, eventually, run_when};
use cronhook::domain::auth::Role;
use serde_json::{Value, json};

const DEADLINE: Duration = Duration::from_secs(60);
/// A trigger that never fires in a test: the job runs when forced to.
const NEVER: &str = "2099-01-01T00:00:00Z";

fn job(id: &str, url: String) -> Value {
    json!({"id": id, "trigger": {"type": "date", "run_at": NEVER},
           "target": {"url": url}, "retry": {"max_attempts": 1}})
}

/// Job `b`, firing now, with `requires`.
fn gated(url: String, requires: Value) -> Value {
    let mut b = job("b", url);
    b["requires"] = requires;
    b["next_run_at"] = json!("now");
    b
}

/// B's runs, newest first, once there is one that `holds`.
async fn b_run_when(app: &TestApp, what: &str, holds: impl Fn(&Value) -> bool) -> Value {
    eventually(DEADLINE, what, || async {
        let runs = app.get("/v1/jobs/b/runs").await.json();
        runs["items"].as_array()?.iter().find(|r| holds(r)).cloned()
    })
    .await
}

async fn a_wait_gate_releases_b_when_a_succeeds(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let receiver = Receiver::start().await;
    app.create_job(job("a", receiver.url("/a"))).await;
    let b = app
        .create_job(gated(
            receiver.url("/b"),
            json!([{"job": "a", "mode": "wait", "wait_max_s": 3600}]),
        ))
        .await;
    assert_eq!(
        b["requires"],
        json!([{"job": "a", "succeeded_within_s": 21600, "mode": "wait", "wait_max_s": 3600}]),
        "{b}"
    );
    let held = b_run_when(&app, "B's run held for A", |r| {
        r["status"] == "pending" && r["wait_reason"] == "dependency:a"
    })
    .await;
    assert!(receiver.received("/b").is_empty());

    let reply = app.post_empty("/v1/jobs/a/run").await;
    assert_eq!(reply.status, 201, "{}", reply.text);
    eventually(DEADLINE, "B sent after A succeeded", || async {
        (receiver.received("/b").len() == 1).then_some(())
    })
    .await;
    let id = held["id"].as_str().unwrap();
    let run = run_when(&app.client, &app.base, id, "B's run ended", |run| {
        run["status"] == "succeeded"
    })
    .await;
    assert!(run.get("wait_reason").is_none_or(Value::is_null), "{run}");
    let sent = &receiver.received("/b")[0];
    assert_eq!(sent.header("webhook-id"), id);
    assert_eq!(receiver.received("/a").len(), 1);
}

async fn a_skip_gate_skips_until_the_job_has_succeeded_recently(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let receiver = Receiver::start().await;
    app.create_job(job("a", receiver.url("/a"))).await;
    app.create_job(gated(
        receiver.url("/b"),
        json!([{"job": "a", "succeeded_within_s": 3600}]),
    ))
    .await;
    let skipped = b_run_when(&app, "B's run skipped", |r| r["status"] == "skipped").await;
    assert_eq!(skipped["reason"], "dependency", "{skipped}");

    let reply = app.post_empty("/v1/jobs/a/run").await;
    assert_eq!(reply.status, 201, "{}", reply.text);
    let a = common::finished_run(&app, "a").await;
    assert_eq!(a["status"], "succeeded", "{a}");
    let reply = app.patch("/v1/jobs/b", json!({"next_run_at": "now"})).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    b_run_when(&app, "B's run sent", |r| r["status"] == "succeeded").await;
    assert_eq!(receiver.received("/b").len(), 1);
}

async fn a_held_run_is_missed_after_its_wait(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let receiver = Receiver::start().await;
    app.create_job(job("a", receiver.url("/a"))).await;
    app.create_job(gated(
        receiver.url("/b"),
        json!([{"job": "a", "mode": "wait", "wait_max_s": 1}]),
    ))
    .await;
    let missed = b_run_when(&app, "B's run missed", |r| r["status"] == "missed").await;
    assert_eq!(missed["reason"], "dependency", "{missed}");
    assert!(missed["finished_at"].is_string(), "{missed}");
    // A success after the wait sends nothing: what it releases is
    // released in the transaction that records it.
    let reply = app.post_empty("/v1/jobs/a/run").await;
    assert_eq!(reply.status, 201, "{}", reply.text);
    let a = common::finished_run(&app, "a").await;
    assert_eq!(a["status"], "succeeded", "{a}");
    let runs = app.get("/v1/jobs/b/runs").await.json();
    assert_eq!(runs["items"].as_array().map(Vec::len), Some(1), "{runs}");
    assert!(receiver.received("/b").is_empty());
}

async fn bad_gates_are_refused_and_a_required_job_is_kept(backend: Backend) {
    let mut app = TestApp::spawn(backend).await;
    let receiver = Receiver::start().await;
    app.create_job(job("a", receiver.url("/a"))).await;
    let refused = |reply: common::Reply| reply.problem_field(422);
    let url = receiver.url("/b");
    let (field, detail) = refused(
        app.post(
            "/v1/jobs",
            gated(url.clone(), json!([{"job": "a"}, {"job": "ghost"}])),
        )
        .await,
    );
    assert_eq!(field, "requires[1].job");
    assert!(detail.contains("\"ghost\""), "{detail}");
    let (field, _) = refused(
        app.post(
            "/v1/jobs",
            gated(url.clone(), json!([{"job": "a", "wait_max_s": 60}])),
        )
        .await,
    );
    assert_eq!(field, "requires[0].wait_max_s");
    let mut own = gated(url.clone(), json!(null));
    own["requires_any"] = json!([{"job": "b", "mode": "wait"}]);
    let (field, detail) = refused(app.post("/v1/jobs", own).await);
    assert_eq!(field, "requires_any[0].job");
    assert!(detail.contains("itself"), "{detail}");

    // A job a gate names stays, unless the gate goes with it.
    app.create_job(gated(url.clone(), json!([{"job": "a"}])))
        .await;
    let kept = app.delete("/v1/jobs/a").await;
    assert!(kept.problem(409).contains("gates of b"), "{}", kept.text);
    let gone = app.delete("/v1/jobs/a?drop_refs=true").await;
    assert_eq!(gone.status, 204, "{}", gone.text);
    let b = app.get("/v1/jobs/b").await.json();
    assert!(b.get("requires").is_none(), "{b}");

    // Another tenant's job is not there to name.
    let root = app.make_token(Role::Root, "default").await;
    let other = app.make_token(Role::Write, "other").await;
    app.token = Some(other);
    app.create_job(job("theirs", receiver.url("/t"))).await;
    app.token = Some(root);
    let (field, _) = refused(
        app.put("/v1/jobs/b", gated(url, json!([{"job": "theirs"}])))
            .await,
    );
    assert_eq!(field, "requires[0].job");
}

crate::store_tests!(
    a_held_run_is_missed_after_its_wait,
    a_skip_gate_skips_until_the_job_has_succeeded_recently,
    a_wait_gate_releases_b_when_a_succeeds,
    bad_gates_are_refused_and_a_required_job_is_kept,
);
