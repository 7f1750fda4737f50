//! Flow keys (DESIGN.md §11.1): limits shared by many jobs' runs — at most
//! `max_in_flight` sent at once, a token-bucket `rate` — admitted by
//! priority, paused and resumed, defined centrally. End to end through the
//! API to a real receiver, on both stores.

use crate::support as common;

use std::time::Duration;

use common::receiver::{Answer, Gate, Receiver};
use common::{Backend, TestApp, eventually};
use serde_json::{Value, json};

const DEADLINE: Duration = Duration::from_secs(60);

fn now() -> String {
    chrono::Utc::now().to_rfc3339()
}

fn job(id: &str, url: &str, flow: Value) -> Value {
    json!({"id": id, "trigger": {"type": "date", "run_at": now()}, "target": {"url": url}, "flow": flow})
}

async fn succeeded(app: &TestApp, id: &str) -> Value {
    eventually(DEADLINE, "the job's run succeeded", || async {
        let runs = app.get(&format!("/v1/jobs/{id}/runs")).await.json();
        let run = runs["items"].as_array()?.first()?.clone();
        (run["status"] == "succeeded").then_some(run)
    })
    .await
}

async fn max_in_flight_holds_across_jobs_and_waiting_runs_say_why(backend: Backend) {
    let receiver = Receiver::start().await;
    // The first request is held until a run is seen waiting behind it.
    let gate = Gate::default();
    receiver.script("/partner", [Answer::Gated(gate.clone(), 200)]);
    let app = TestApp::spawn(backend).await;
    let defined = app
        .put("/v1/flows/partner", json!({"max_in_flight": 1}))
        .await;
    assert_eq!(defined.status, 200, "{}", defined.text);
    assert_eq!(defined.json()["defined_by"], "api");
    for id in ["a", "b", "c"] {
        let created = app
            .create_job(job(
                id,
                &receiver.url("/partner"),
                json!({"key": "partner"}),
            ))
            .await;
        assert_eq!(created["flow"]["key"], "partner", "{created}");
    }
    let waiting = eventually(DEADLINE, "a run waiting for the key", || async {
        let runs = app.get("/v1/runs?limit=100").await.json();
        runs["items"]
            .as_array()?
            .iter()
            .find(|r| r["wait_reason"] == "flow:partner")
            .cloned()
    })
    .await;
    assert_eq!(waiting["status"], "pending");
    gate.open();
    for id in ["a", "b", "c"] {
        succeeded(&app, id).await;
    }
    assert_eq!(receiver.received("/partner").len(), 3);
    assert_eq!(receiver.most_open_at_once("/partner"), 1);
    let flow = app.get("/v1/flows/partner").await.json();
    assert_eq!(
        (&flow["in_flight"], &flow["waiting"]),
        (&json!(0), &json!(0)),
        "{flow}"
    );
}

async fn a_rate_spreads_runs_over_time(backend: Backend) {
    let receiver = Receiver::start().await;
    let app = TestApp::spawn(backend).await;
    let url = receiver.url("/rated");
    // Declared by the first job: 2 at once, then one every half second.
    let flow = json!({"key": "rated", "rate": {"limit": 2, "period_s": 1}});
    for i in 0..6 {
        app.create_job(job(&format!("r{i}"), &url, flow.clone()))
            .await;
    }
    let mut at: Vec<_> = eventually(DEADLINE, "every run sent", || async {
        let got = receiver.received("/rated");
        (got.len() == 6).then_some(got.iter().map(|r| r.at).collect::<Vec<_>>())
    })
    .await;
    at.sort();
    // A full bucket lets two go at once; each later one waits for its
    // token (lower bounds only: a slow machine is later, never earlier).
    for (i, t) in at.iter().enumerate().skip(2) {
        let earliest = chrono::TimeDelta::milliseconds(500 * (i as i64 - 1) - 150);
        assert!(
            *t - at[0] >= earliest,
            "run {i} came {:?} after the first",
            *t - at[0]
        );
    }
    let listed = app.get("/v1/flows").await.json();
    let rated = &listed["items"][0];
    assert_eq!(
        (&rated["key"], &rated["rate"], &rated["defined_by"]),
        (
            &json!("rated"),
            &json!({"limit": 2, "period_s": 1}),
            &json!("job")
        )
    );
}

async fn the_higher_priority_goes_first_and_a_paused_key_holds_its_runs(backend: Backend) {
    let receiver = Receiver::start().await;
    let gate = Gate::default();
    receiver.script("/p", [Answer::Gated(gate.clone(), 200)]);
    let app = TestApp::spawn(backend).await;
    let url = receiver.url("/p");
    app.put("/v1/flows/one", json!({"max_in_flight": 1})).await;
    app.create_job(job("first", &url, json!({"key": "one"})))
        .await;
    eventually(DEADLINE, "the first run sent", || async {
        (!receiver.received("/p").is_empty()).then_some(())
    })
    .await;
    app.create_job(job("low", &url, json!({"key": "one"})))
        .await;
    app.create_job(job("high", &url, json!({"key": "one", "priority": 10})))
        .await;
    // Both wait behind the first run, held in flight until they do.
    eventually(DEADLINE, "low and high waiting for the key", || async {
        (app.get("/v1/flows/one").await.json()["waiting"] == 2).then_some(())
    })
    .await;
    gate.open();
    for id in ["first", "low", "high"] {
        succeeded(&app, id).await;
    }
    let order: Vec<String> = receiver
        .received("/p")
        .iter()
        .map(|r| r.header("cronhook-job-id").to_string())
        .collect();
    assert_eq!(order, ["first", "high", "low"]);

    // Paused: a due run waits; resumed, it goes.
    let paused = app.post_empty("/v1/flows/one/pause").await;
    assert_eq!(paused.json()["paused"], true);
    app.create_job(job("later", &url, json!({"key": "one"})))
        .await;
    eventually(DEADLINE, "the run waiting for the paused key", || async {
        let runs = app.get("/v1/jobs/later/runs").await.json();
        let run = runs["items"].as_array()?.first()?.clone();
        (run["wait_reason"] == "flow:one").then_some(())
    })
    .await;
    assert_eq!(app.get("/v1/flows/one").await.json()["waiting"], 1);
    let resumed = app.post_empty("/v1/flows/one/resume").await;
    assert_eq!(resumed.json()["paused"], false);
    succeeded(&app, "later").await;
}

async fn a_run_that_waits_past_max_wait_s_is_missed(backend: Backend) {
    let receiver = Receiver::start().await;
    receiver.script("/busy", [Answer::After(Duration::from_secs(4), 200)]);
    let app = TestApp::spawn(backend).await;
    let url = receiver.url("/busy");
    app.put("/v1/flows/busy", json!({"max_in_flight": 1})).await;
    app.create_job(job("long", &url, json!({"key": "busy"})))
        .await;
    eventually(DEADLINE, "the long run sent", || async {
        (!receiver.received("/busy").is_empty()).then_some(())
    })
    .await;
    app.create_job(job(
        "impatient",
        &url,
        json!({"key": "busy", "max_wait_s": 1}),
    ))
    .await;
    let missed = eventually(DEADLINE, "the impatient run missed", || async {
        let runs = app.get("/v1/jobs/impatient/runs").await.json();
        let run = runs["items"].as_array()?.first()?.clone();
        (run["status"] == "missed").then_some(run)
    })
    .await;
    assert_eq!(missed["reason"], "max_wait");
    let events = eventually(DEADLINE, "its event", || async {
        let events = app.get("/v1/events?type=run.missed").await.json();
        let items = events["items"].as_array().cloned().unwrap_or_default();
        (!items.is_empty()).then_some(items)
    })
    .await;
    assert_eq!(events[0]["data"]["flow_key"], "busy");
    succeeded(&app, "long").await;
    assert_eq!(receiver.received("/busy").len(), 1);
}

async fn flows_are_checked_and_a_key_defined_two_ways_is_refused(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let url = "https://example.com/";
    let bad = app
        .put("/v1/flows/k", json!({"max_in_flight": 0}))
        .await
        .problem(422);
    assert!(bad.starts_with("max_in_flight: must be between 1"), "{bad}");
    let bad = app
        .put("/v1/flows/a%20b", json!({"max_in_flight": 1}))
        .await
        .problem(422);
    assert!(bad.starts_with("key: contains ' '"), "{bad}");
    let bad = app
        .post(
            "/v1/jobs",
            job("x", url, json!({"key": "k", "priority": 5000})),
        )
        .await
        .problem(422);
    assert!(bad.starts_with("flow.priority: "), "{bad}");
    app.create_job(job(
        "declares",
        url,
        json!({"key": "shared", "max_in_flight": 2}),
    ))
    .await;
    let conflict = app
        .post(
            "/v1/jobs",
            job("differs", url, json!({"key": "shared", "max_in_flight": 3})),
        )
        .await
        .problem(409);
    assert!(
        conflict.starts_with("flow key shared is defined with max_in_flight 2"),
        "{conflict}"
    );
    // Naming only the key, or the same limits, is fine.
    app.create_job(job("names", url, json!({"key": "shared"})))
        .await;
    app.create_job(job(
        "same",
        url,
        json!({"key": "shared", "max_in_flight": 2}),
    ))
    .await;
    assert_eq!(
        app.post_empty("/v1/flows/none/pause").await.problem(404),
        "no flow key \"none\""
    );
    assert_eq!(
        app.get("/v1/flows/none").await.problem(404),
        "no flow key \"none\""
    );
    // The dashboard lists the keys.
    let page = app.get("/ui/flows").await;
    assert!(page.text.contains("max_in_flight 2 (job)"), "{}", page.text);
}

async fn a_backfill_of_a_flow_job_goes_through_its_key_and_is_never_too_late(backend: Backend) {
    let receiver = Receiver::start().await;
    let app = TestApp::spawn(backend).await;
    let t = chrono::Utc::now() - chrono::TimeDelta::hours(5);
    let text =
        |t: chrono::DateTime<chrono::Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let (start, to) = (text(t), text(t + chrono::TimeDelta::minutes(270)));
    app.create_job(json!({
        "id": "old", "paused": true,
        "trigger": {"type": "interval", "every_s": 3600, "start_at": start},
        "target": {"url": receiver.url("/old")},
        "max_instances": 3,
        "flow": {"key": "gate", "max_in_flight": 1, "max_wait_s": 1}
    }))
    .await;
    let made = app
        .post("/v1/jobs/old/backfill", json!({"from": start, "to": to}))
        .await;
    assert_eq!(made.status, 201, "{}", made.text);
    let location = made.headers["location"].to_str().unwrap().to_string();
    let done = eventually(DEADLINE, "the backfill done", || async {
        let b = app.get(&location).await.json();
        (b["done"] == true).then_some(b)
    })
    .await;
    // Hours late on purpose, yet none missed; one at a time through the key.
    assert_eq!(done["runs"], json!({"succeeded": 5}), "{done}");
    assert_eq!(receiver.most_open_at_once("/old"), 1);
}

store_tests!(
    max_in_flight_holds_across_jobs_and_waiting_runs_say_why,
    a_rate_spreads_runs_over_time,
    the_higher_priority_goes_first_and_a_paused_key_holds_its_runs,
    a_run_that_waits_past_max_wait_s_is_missed,
    flows_are_checked_and_a_key_defined_two_ways_is_refused,
    a_backfill_of_a_flow_job_goes_through_its_key_and_is_never_too_late,
);
