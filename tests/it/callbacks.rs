//! Long runs end to end on both stores (DESIGN.md §11.7): a callback job's
//! request is only accepted by its answer; the receiver's worker (this
//! test, over HTTP, with the token the request carried) sends heartbeats
//! and completes it; the watchdog fails a run whose heartbeats stop; a
//! cancel reaches the receiver; a killed instance loses nothing.

use crate::support as common;

use std::time::Duration;

use common::process::ServiceProcess;
use common::receiver::{Received, Receiver};
use common::{Backend, TestApp, TestDb, eventually, first_request, run_when};
use serde_json::{Value, json};

const DEADLINE: Duration = Duration::from_secs(60);

fn callback_job(id: &str, url: String, completion: Value) -> Value {
    json!({"id": id, "trigger": {"type": "interval", "every_s": 3600},
           "next_run_at": "now", "target": {"url": url},
           "completion": completion})
}

/// A POST to `url` with `token` as the bearer: (status, body).
async fn call(client: &reqwest::Client, url: &str, token: &str, body: Value) -> (u16, Value) {
    let response = client
        .post(url)
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .expect("sent");
    let status = response.status().as_u16();
    let text = response.text().await.unwrap_or_default();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// The callback URL and token a request carried.
fn callback_of(request: &Received) -> (String, String) {
    (
        request.header("cronhook-callback-url").to_string(),
        request.header("cronhook-callback-token").to_string(),
    )
}

async fn a_three_second_job_with_heartbeats_succeeds_by_callback(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let receiver = Receiver::start().await;
    app.create_job(callback_job(
        "report",
        receiver.url("/report"),
        // Room for a busy machine between beats: losing them is the next
        // test's.
        json!({"mode": "callback", "timeout_s": 600, "heartbeat_s": 60}),
    ))
    .await;
    let request = first_request(&receiver, "/report").await;
    let run_id = request.header("webhook-id").to_string();
    let (url, token) = callback_of(&request);
    assert_eq!(url, app.url(&format!("/v1/runs/{run_id}/complete")));
    assert!(token.starts_with("crt_"), "{token}");

    // Its answer accepted it: it runs until the receiver says otherwise.
    let run = run_when(&app.client, &app.base, &run_id, "accepted", |r| {
        r["accepted_at"].is_string()
    })
    .await;
    assert_eq!(run["status"], "running", "{run}");
    assert!(run["finished_at"].is_null(), "{run}");

    // The work: three seconds, a heartbeat each.
    let beat_url = app.url(&format!("/v1/runs/{run_id}/heartbeat"));
    for (second, progress) in [(1, 33.0), (2, 66.0), (3, 99.0)] {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let (status, _) = call(
            &app.client,
            &beat_url,
            &token,
            json!({"progress": progress, "message": format!("second {second}")}),
        )
        .await;
        assert_eq!(status, 204);
    }
    let running = app.get(&format!("/v1/runs/{run_id}")).await.json();
    assert_eq!(running["status"], "running", "{running}");
    assert_eq!(running["progress"], 99.0, "{running}");
    assert_eq!(running["message"], "second 3", "{running}");
    assert!(running["last_heartbeat_at"].is_string(), "{running}");
    // The job's one instance is taken while the work runs.
    let skipped = app.post_empty("/v1/jobs/report/run").await;
    assert_eq!(skipped.status, 409, "{}", skipped.text);

    let done = json!({"status": "succeeded", "output": {"rows": 1200}});
    let (status, body) = call(&app.client, &url, &token, done.clone()).await;
    assert_eq!(
        (status, &body["status"]),
        (200, &json!("succeeded")),
        "{body}"
    );
    let run = app.get(&format!("/v1/runs/{run_id}")).await.json();
    assert_eq!(run["status"], "succeeded", "{run}");
    assert_eq!(run["output"], json!({"rows": 1200}), "{run}");
    assert!(run["completed_at"].is_string(), "{run}");
    assert!(run["duration_ms"].as_u64().unwrap() >= 3000, "{run}");
    assert_eq!(run["attempts"].as_array().unwrap().len(), 1, "{run}");

    // The same completion again is answered as before; another is 409.
    let (status, _) = call(&app.client, &url, &token, done).await;
    assert_eq!(status, 200);
    let (status, body) = call(&app.client, &url, &token, json!({"status": "failed"})).await;
    assert_eq!(status, 409, "{body}");
    let events = app
        .get("/v1/events?type=run.succeeded,run.late_completion")
        .await
        .json();
    let kinds: Vec<&str> = events["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["run.succeeded", "run.late_completion"], "{events}");
    let (status, _) = call(&app.client, &beat_url, &token, json!({})).await;
    assert_eq!(status, 409, "no heartbeat after the end");
}

async fn bad_callbacks_are_refused_and_change_nothing(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let receiver = Receiver::start().await;
    let completion = json!({"mode": "callback", "timeout_s": 600});
    for id in ["a", "b"] {
        app.create_job(callback_job(
            id,
            receiver.url(&format!("/{id}")),
            completion.clone(),
        ))
        .await;
    }
    let (a, b) = (
        first_request(&receiver, "/a").await,
        first_request(&receiver, "/b").await,
    );
    let (_, a_token) = callback_of(&a);
    let b_id = b.header("webhook-id").to_string();
    run_when(&app.client, &app.base, &b_id, "b accepted", |r| {
        r["accepted_at"].is_string()
    })
    .await;
    let b_complete = app.url(&format!("/v1/runs/{b_id}/complete"));

    // Another run's token, none, an API-shaped one: 401, b untouched.
    let ok = json!({"status": "succeeded"});
    let (status, body) = call(&app.client, &b_complete, &a_token, ok.clone()).await;
    assert_eq!(status, 401, "{body}");
    assert!(
        body["detail"].as_str().unwrap().contains("callback token"),
        "{body}"
    );
    let bare = app.client.post(&b_complete).json(&ok).send().await.unwrap();
    assert_eq!(bare.status(), 401);
    let (status, _) = call(&app.client, &b_complete, "crt_AAAA", ok.clone()).await;
    assert_eq!(status, 401);
    // Without its token, a body the API would refuse is still a 401: who
    // calls is checked first.
    let beat = app.url(&format!("/v1/runs/{b_id}/heartbeat"));
    for (url, body) in [
        (
            &b_complete,
            json!({"status": "succeeded", "output": {"s": "a\0b"}}),
        ),
        (&beat, json!({"message": "a\0b"})),
        (&beat, json!({"progress": "lots"})),
    ] {
        let (status, reply) = call(&app.client, url, &a_token, body).await;
        assert_eq!(status, 401, "{url}: {reply}");
    }
    let b_run = app.get(&format!("/v1/runs/{b_id}")).await.json();
    assert_eq!(b_run["status"], "running", "{b_run}");

    // Output over 16 kB: 413 naming it; a bad status: 422.
    let (_, b_token) = callback_of(&b);
    let big = json!({"status": "succeeded", "output": {"log": "x".repeat(17 * 1024)}});
    let (status, body) = call(&app.client, &b_complete, &b_token, big).await;
    assert_eq!((status, &body["field"]), (413, &json!("output")), "{body}");
    let (status, body) = call(
        &app.client,
        &b_complete,
        &b_token,
        json!({"status": "done"}),
    )
    .await;
    assert_eq!(status, 422, "{body}");
    let beat = app.url(&format!("/v1/runs/{b_id}/heartbeat"));
    let (status, body) = call(&app.client, &beat, &b_token, json!({"progress": 140})).await;
    assert_eq!(
        (status, &body["field"]),
        (422, &json!("progress")),
        "{body}"
    );
    let b_run = app.get(&format!("/v1/runs/{b_id}")).await.json();
    assert_eq!(b_run["status"], "running", "{b_run}");

    // Completion settings: named errors.
    let reply = app
        .post(
            "/v1/jobs",
            callback_job(
                "c",
                receiver.url("/c"),
                json!({"mode": "callback", "heartbeat_s": 0}),
            ),
        )
        .await;
    assert_eq!(
        reply.json()["field"],
        "completion.heartbeat_s",
        "{}",
        reply.text
    );
    let mut cancel_without_callback = callback_job("d", receiver.url("/d"), json!({}));
    cancel_without_callback["target"]["cancel_url"] = json!(receiver.url("/stop"));
    let reply = app.post("/v1/jobs", cancel_without_callback).await;
    assert_eq!(reply.json()["field"], "target.cancel_url", "{}", reply.text);
}

async fn a_run_whose_heartbeats_stop_fails_heartbeat_lost(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let receiver = Receiver::start().await;
    app.create_job(callback_job(
        "etl",
        receiver.url("/etl"),
        json!({"mode": "callback", "timeout_s": 3600, "heartbeat_s": 5}),
    ))
    .await;
    let request = first_request(&receiver, "/etl").await;
    let run_id = request.header("webhook-id").to_string();
    let (url, token) = callback_of(&request);
    // One heartbeat, then silence.
    let beat = app.url(&format!("/v1/runs/{run_id}/heartbeat"));
    run_when(&app.client, &app.base, &run_id, "accepted", |r| {
        r["accepted_at"].is_string()
    })
    .await;
    let (status, _) = call(&app.client, &beat, &token, json!({"progress": 10})).await;
    assert_eq!(status, 204);
    let run = run_when(&app.client, &app.base, &run_id, "heartbeat_lost", |r| {
        r["status"] == "failed"
    })
    .await;
    assert_eq!(run["reason"], "heartbeat_lost", "{run}");
    // Not before its due time: five seconds after the last heartbeat.
    let ended = common::instant(&run["finished_at"]);
    let last = common::instant(&run["last_heartbeat_at"]);
    assert!(ended - last >= chrono::TimeDelta::seconds(5), "{run}");
    // Its worker reporting success now is too late.
    let (status, _) = call(&app.client, &url, &token, json!({"status": "succeeded"})).await;
    assert_eq!(status, 409);
    let failed = app.get("/v1/events?type=run.failed").await.json();
    assert_eq!(
        failed["items"][0]["data"]["reason"], "heartbeat_lost",
        "{failed}"
    );

    // A run with no completion within timeout_s fails timed_out.
    app.create_job(callback_job(
        "slow",
        receiver.url("/slow"),
        json!({"mode": "callback", "timeout_s": 1}),
    ))
    .await;
    let slow = first_request(&receiver, "/slow").await;
    let slow_id = slow.header("webhook-id").to_string();
    let run = run_when(&app.client, &app.base, &slow_id, "timed_out", |r| {
        r["status"] == "failed"
    })
    .await;
    assert_eq!(run["reason"], "timed_out", "{run}");
}

async fn retry_on_timeout_sends_a_timed_out_run_again(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let receiver = Receiver::start().await;
    let mut job = callback_job(
        "backup",
        receiver.url("/backup"),
        json!({"mode": "callback", "timeout_s": 2}),
    );
    job["retry"] = json!({"max_attempts": 2, "delays_s": [1], "on_timeout": true});
    // On a flow key: sent again through its queue.
    job["flow"] = json!({"key": "backups", "max_in_flight": 1});
    app.create_job(job).await;
    let first = first_request(&receiver, "/backup").await;
    let run_id = first.header("webhook-id").to_string();
    // No completion within two seconds: the same run is sent again.
    let second = eventually(DEADLINE, "the run sent again", || async {
        receiver.received("/backup").into_iter().nth(1)
    })
    .await;
    assert_eq!(second.header("webhook-id"), run_id);
    let (url, token) = callback_of(&second);
    run_when(&app.client, &app.base, &run_id, "accepted again", |r| {
        r["accepted_at"].is_string() && r["attempts"].as_array().is_some_and(|a| a.len() == 2)
    })
    .await;
    let (status, body) = call(&app.client, &url, &token, json!({"status": "succeeded"})).await;
    assert_eq!(status, 200, "{body}");
    let run = app.get(&format!("/v1/runs/{run_id}")).await.json();
    assert_eq!(run["status"], "succeeded", "{run}");
    let attempts = run["attempts"].as_array().unwrap();
    let why = attempts[0]["outcome_reason"].as_str().unwrap_or_default();
    assert!(why.starts_with("timed_out: no completion"), "{run}");
    assert!(attempts[1]["outcome_reason"].is_null(), "{run}");
    let failed = app.get("/v1/events?type=attempt.failed").await.json();
    assert_eq!(failed["items"][0]["data"]["retry_in_ms"], 1000, "{failed}");
    assert_eq!(failed["items"][0]["run_id"], run_id, "{failed}");
    assert_eq!(receiver.received("/backup").len(), 2);

    // Its last attempt lost too: it fails as without the rule.
    let mut job = callback_job(
        "etl",
        receiver.url("/etl"),
        json!({"mode": "callback", "timeout_s": 3600, "heartbeat_s": 1}),
    );
    job["retry"] = json!({"max_attempts": 2, "delays_s": [0], "on_timeout": true});
    app.create_job(job).await;
    let etl_id = first_request(&receiver, "/etl")
        .await
        .header("webhook-id")
        .to_string();
    let run = run_when(
        &app.client,
        &app.base,
        &etl_id,
        "heartbeat_lost twice",
        |r| r["status"] == "failed",
    )
    .await;
    assert_eq!(run["reason"], "heartbeat_lost", "{run}");
    assert_eq!(run["attempts"].as_array().unwrap().len(), 2, "{run}");
    assert_eq!(receiver.received("/etl").len(), 2);

    // Only a callback job can time out.
    let mut plain = callback_job("plain", receiver.url("/plain"), json!({}));
    plain["retry"] = json!({"on_timeout": true});
    let reply = app.post("/v1/jobs", plain).await;
    assert_eq!(reply.status, 422, "{}", reply.text);
    assert_eq!(reply.json()["field"], "retry.on_timeout", "{}", reply.text);
}

async fn a_cancel_reaches_the_receiver(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let receiver = Receiver::start().await;
    let mut job = callback_job(
        "backup",
        receiver.url("/backup"),
        json!({"mode": "callback", "timeout_s": 3600, "cancel_grace_s": 600}),
    );
    job["target"]["cancel_url"] = json!(receiver.url("/backup/cancel"));
    job["target"]["headers"] = json!({"x-team": "ops"});
    let view = app.create_job(job).await;
    assert_eq!(
        view["completion"],
        json!({"mode": "callback", "timeout_s": 3600, "cancel_grace_s": 600})
    );
    assert_eq!(view["target"]["cancel_url"], receiver.url("/backup/cancel"));
    let request = first_request(&receiver, "/backup").await;
    let run_id = request.header("webhook-id").to_string();
    let (url, token) = callback_of(&request);
    run_when(&app.client, &app.base, &run_id, "accepted", |r| {
        r["accepted_at"].is_string()
    })
    .await;

    let reply = app.post_empty(&format!("/v1/runs/{run_id}/cancel")).await;
    assert_eq!(reply.status, 202, "{}", reply.text);
    assert_eq!(reply.json()["status"], "cancelling");
    let listed = app.get("/v1/runs?status=cancelling").await.json();
    assert_eq!(listed["items"][0]["id"], run_id.as_str(), "{listed}");
    let cancel = first_request(&receiver, "/backup/cancel").await;
    assert_eq!(cancel.method, "POST");
    assert_eq!(cancel.header("cronhook-event"), "cancel");
    assert_eq!(cancel.header("webhook-id"), run_id);
    assert_eq!(cancel.header("x-team"), "ops");
    assert!(cancel.header("webhook-signature").starts_with("v1,"));
    let body: Value = serde_json::from_slice(&cancel.body).unwrap();
    assert_eq!(body["run_id"], run_id.as_str(), "{body}");
    // Asked again: still cancelling, no second request needed.
    let again = app.post_empty(&format!("/v1/runs/{run_id}/cancel")).await;
    assert_eq!(again.json()["status"], "cancelling", "{}", again.text);

    // The receiver stops its work and says so.
    let (status, body) = call(&app.client, &url, &token, json!({"status": "cancelled"})).await;
    assert_eq!(
        (status, &body["status"]),
        (200, &json!("cancelled")),
        "{body}"
    );
    let run = app.get(&format!("/v1/runs/{run_id}")).await.json();
    assert_eq!(run["status"], "cancelled", "{run}");
    assert_eq!(run["reason"], "cancel_requested", "{run}");
    let ended = app.post_empty(&format!("/v1/runs/{run_id}/cancel")).await;
    assert_eq!(ended.status, 409, "{}", ended.text);
    // The cancel is in the job's trail, once.
    let trail = app
        .get("/v1/audit?target=job/backup&action=job.run_cancelled")
        .await
        .json();
    let items = trail["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{trail}");
    assert_eq!(items[0]["changes"][0]["value"], "cancelling", "{trail}");

    // A receiver that never confirms: cancelled once its grace passes.
    app.create_job(callback_job(
        "deaf",
        receiver.url("/deaf"),
        json!({"mode": "callback", "timeout_s": 3600, "cancel_grace_s": 1}),
    ))
    .await;
    let deaf = first_request(&receiver, "/deaf").await;
    let deaf_id = deaf.header("webhook-id").to_string();
    run_when(&app.client, &app.base, &deaf_id, "accepted", |r| {
        r["accepted_at"].is_string()
    })
    .await;
    let reply = app.post_empty(&format!("/v1/runs/{deaf_id}/cancel")).await;
    assert_eq!(reply.status, 202, "{}", reply.text);
    // Without a cancel_url its request goes to the job's URL.
    eventually(DEADLINE, "the cancel request", || async {
        receiver
            .received("/deaf")
            .iter()
            .any(|r| r.header("cronhook-event") == "cancel")
            .then_some(())
    })
    .await;
    let run = run_when(&app.client, &app.base, &deaf_id, "cancelled", |r| {
        r["status"] == "cancelled"
    })
    .await;
    assert_eq!(run["reason"], "cancel_requested", "{run}");
}

crate::store_tests!(
    a_three_second_job_with_heartbeats_succeeds_by_callback,
    bad_callbacks_are_refused_and_change_nothing,
    a_run_whose_heartbeats_stop_fails_heartbeat_lost,
    retry_on_timeout_sends_a_timed_out_run_again,
    a_cancel_reaches_the_receiver,
);

/// Starts a callback run at `doomed`, kills it (SIGKILL) once the run is
/// accepted, and has `survivor` (another instance on PostgreSQL, or the
/// same database restarted on SQLite) enforce the timeout of one run and
/// accept the completion of another.
async fn a_killed_instance_loses_no_callback_run(
    mut doomed: ServiceProcess,
    start_survivor: impl FnOnce() -> ServiceProcess,
) {
    let client = common::client();
    let receiver = Receiver::start().await;
    for (id, timeout_s) in [("finishes", 3600), ("times-out", 4)] {
        let job = callback_job(
            id,
            receiver.url(&format!("/{id}")),
            json!({"mode": "callback", "timeout_s": timeout_s}),
        );
        let reply = client
            .post(format!("{}/v1/jobs", doomed.base))
            .json(&job)
            .send()
            .await
            .unwrap();
        assert_eq!(reply.status(), 201);
    }
    let finishes = first_request(&receiver, "/finishes").await;
    let times_out = first_request(&receiver, "/times-out").await;
    let (finishes_id, times_out_id) = (
        finishes.header("webhook-id").to_string(),
        times_out.header("webhook-id").to_string(),
    );
    for id in [&finishes_id, &times_out_id] {
        run_when(&client, &doomed.base, id, "accepted", |r| {
            r["accepted_at"].is_string()
        })
        .await;
    }
    doomed.kill();
    let survivor = start_survivor();

    let (_, token) = callback_of(&finishes);
    let url = format!("{}/v1/runs/{finishes_id}/complete", survivor.base);
    let (status, body) = call(&client, &url, &token, json!({"status": "succeeded"})).await;
    assert_eq!(status, 200, "{body}");
    let run = run_when(&client, &survivor.base, &times_out_id, "timed out", |r| {
        r["status"] == "failed"
    })
    .await;
    assert_eq!(run["reason"], "timed_out", "{run}");
    let run = run_when(&client, &survivor.base, &finishes_id, "succeeded", |r| {
        r["status"] == "succeeded"
    })
    .await;
    assert_eq!(run["attempts"].as_array().unwrap().len(), 1, "{run}");
    // Each was sent once: none was taken for lost and sent again.
    assert_eq!(receiver.received("/finishes").len(), 1);
    assert_eq!(receiver.received("/times-out").len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_a_killed_instance_loses_no_callback_run() {
    let db = TestDb::postgres().await;
    let doomed = ServiceProcess::start(&db.url, &["--instance-timeout-s", "3"], &[]);
    let url = db.url.clone();
    a_killed_instance_loses_no_callback_run(doomed, move || {
        ServiceProcess::start(&url, &["--instance-timeout-s", "3"], &[])
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_a_killed_instance_loses_no_callback_run() {
    let db = TestDb::sqlite();
    let doomed = ServiceProcess::start(&db.url, &[], &[]);
    let url = db.url.clone();
    a_killed_instance_loses_no_callback_run(doomed, move || ServiceProcess::start(&url, &[], &[]))
        .await;
}
