//! Learning of what happens without polling (DESIGN.md §9), on both
//! stores: the event log and its live stream, subscriptions, pause on
//! failure, redrive, and `/metrics`.

use crate::support as common;

use std::collections::HashSet;
use std::time::Duration;

use common::receiver::{Answer, Receiver};
use common::{Backend, TestApp, TestDb, eventually};
use serde_json::{Value, json};

const DEADLINE: Duration = Duration::from_secs(60);

use common::now_text as now;

/// A job that fires once, now, at `url`, with one attempt unless told.
fn job_now(id: &str, url: &str, max_attempts: u32) -> Value {
    json!({"id": id, "trigger": {"type": "date", "run_at": now()},
           "target": {"url": url}, "retry": {"max_attempts": max_attempts, "backoff_initial_s": 1}})
}

async fn events(app: &TestApp, query: &str) -> Vec<Value> {
    let reply = app.get(&format!("/v1/events?limit=1000&{query}")).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    reply.json()["items"].as_array().unwrap().clone()
}

/// The events `query` lists once `done` holds. PostgreSQL shows an event
/// only when every transaction older than its own has ended, so a read
/// right after a write may briefly miss it.
async fn events_when(app: &TestApp, query: &str, done: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    eventually(DEADLINE, "the events", || async {
        let listed = events(app, query).await;
        done(&listed).then_some(listed)
    })
    .await
}

fn types(events: &[Value]) -> Vec<String> {
    events
        .iter()
        .map(|e| e["type"].as_str().unwrap().to_string())
        .collect()
}

/// The job's runs, newest first, once `done` holds.
async fn runs_when(app: &TestApp, job: &str, done: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    eventually(DEADLINE, "the job's runs", || async {
        let runs = app.get(&format!("/v1/jobs/{job}/runs")).await.json();
        let runs = runs["items"].as_array()?.clone();
        done(&runs).then_some(runs)
    })
    .await
}

async fn every_change_writes_its_events_once(backend: Backend) {
    let receiver = Receiver::start().await;
    receiver.script("/fails", [Answer::Status(500), Answer::Status(500)]);
    let app = TestApp::spawn(backend).await;

    // A job's life: created, renamed, paused, resumed, run by hand (it
    // succeeds), deleted.
    let life = json!({"id": "life", "trigger": {"type": "cron", "expr": "@yearly"},
                      "target": {"url": receiver.url("/ok")}});
    assert_eq!(app.post("/v1/jobs", life).await.status, 201);
    assert_eq!(
        app.patch("/v1/jobs/life", json!({"name": "renamed"}))
            .await
            .status,
        200
    );
    assert_eq!(app.post_empty("/v1/jobs/life/pause").await.status, 200);
    assert_eq!(
        app.post_empty("/v1/jobs/life/pause").await.status,
        200,
        "unchanged: no event"
    );
    assert_eq!(app.post_empty("/v1/jobs/life/resume").await.status, 200);
    let run = app.post_empty("/v1/jobs/life/run").await.json();
    runs_when(&app, "life", |r| {
        r.first().is_some_and(|r| r["status"] == "succeeded")
    })
    .await;
    assert_eq!(app.delete("/v1/jobs/life").await.status, 204);
    let life = events_when(&app, "job_id=life", |e| {
        e.last().is_some_and(|e| e["type"] == "job.deleted")
    })
    .await;
    assert_eq!(
        types(&life),
        [
            "job.created",
            "job.updated",
            "job.paused",
            "job.resumed",
            "run.created",
            "run.succeeded",
            "job.deleted"
        ]
    );
    let created = &life[4];
    assert_eq!(created["run_id"], run["id"]);
    assert_eq!(created["data"]["status"], "pending");
    assert_eq!(created["data"]["cause"], "manual");
    assert_eq!(life[2]["data"]["reason"], "request");
    assert_eq!(life[5]["data"]["status_code"], 200);

    // A date job that fails twice: scheduled, created, each attempt
    // failed, the run failed, the job completed.
    assert_eq!(
        app.post("/v1/jobs", job_now("fails", &receiver.url("/fails"), 2))
            .await
            .status,
        201
    );
    runs_when(&app, "fails", |r| {
        r.first().is_some_and(|r| r["status"] == "failed")
    })
    .await;
    let fails = eventually(DEADLINE, "the failure's events", || async {
        let e = events(&app, "job_id=fails").await;
        (e.len() >= 6).then_some(e)
    })
    .await;
    let mut kinds = types(&fails);
    // job.completed is written by the scheduler's claim, with run.created.
    let completed = kinds.iter().position(|k| k == "job.completed").unwrap();
    kinds.remove(completed);
    assert_eq!(
        kinds,
        [
            "job.created",
            "run.created",
            "attempt.failed",
            "attempt.failed",
            "run.failed"
        ]
    );
    let attempts: Vec<&Value> = fails
        .iter()
        .filter(|e| e["type"] == "attempt.failed")
        .collect();
    assert_eq!(attempts[0]["data"]["attempt"], 1);
    assert!(attempts[0]["data"]["retry_in_ms"].as_u64().is_some());
    assert_eq!(attempts[1]["data"]["retry_in_ms"], Value::Null);
    let failed = fails.iter().find(|e| e["type"] == "run.failed").unwrap();
    assert_eq!(failed["data"]["attempts"], 2);
    assert_eq!(failed["data"]["status_code"], 500);
    assert_eq!(failed["data"]["error"], "the target answered 500");

    // Oldest first, each once; `after` and `type` filter.
    let all = events(&app, "").await;
    let ids: HashSet<&str> = all.iter().map(|e| e["id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), all.len());
    let after = events(&app, &format!("after={}", all[2]["id"].as_str().unwrap())).await;
    assert_eq!(after, all[3..]);
    let only = events(&app, "type=run.failed,job.deleted").await;
    assert_eq!(types(&only), ["job.deleted", "run.failed"]);
    let bad = app.get("/v1/events?type=run.exploded").await.problem(422);
    assert!(bad.starts_with("type: unknown event type"), "{bad}");
    let unknown = app
        .get("/v1/events?after=0190c4a4-0000-7000-8000-000000000000")
        .await
        .problem(422);
    assert!(
        unknown.starts_with("after: no event with this id"),
        "{unknown}"
    );
}

/// Reads server-sent events from a response until `n` have arrived;
/// returns their ids and data.
async fn read_stream(mut response: reqwest::Response, n: usize) -> Vec<(String, Value)> {
    let mut buffer = String::new();
    let mut got = Vec::new();
    while got.len() < n {
        let chunk = tokio::time::timeout(DEADLINE, response.chunk())
            .await
            .expect("an event within the deadline")
            .unwrap()
            .expect("the stream stays open");
        buffer.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = buffer.find("\n\n") {
            let message: String = buffer.drain(..end + 2).collect();
            let (mut id, mut data) = (None, None);
            for line in message.lines() {
                if let Some(v) = line.strip_prefix("id:") {
                    id = Some(v.trim().to_string());
                } else if let Some(v) = line.strip_prefix("data:") {
                    data = Some(serde_json::from_str::<Value>(v.trim()).unwrap());
                }
            }
            if let (Some(id), Some(data)) = (id, data) {
                got.push((id, data));
            }
        }
    }
    got
}

async fn open_stream(app: &TestApp, last_event_id: Option<&str>) -> reqwest::Response {
    let mut request = app
        .client
        .get(app.url("/v1/events/stream?type=job.created"));
    if let Some(id) = last_event_id {
        request = request.header("last-event-id", id);
    }
    let response = request.send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    response
}

fn job(id: &str) -> Value {
    json!({"id": id, "trigger": {"type": "cron", "expr": "@yearly"},
           "target": {"url": "http://127.0.0.1:9/"}, "paused": true})
}

async fn the_stream_resumes_after_a_reconnect_without_loss_or_repeat(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    for k in 0..3 {
        app.post("/v1/jobs", job(&format!("before-{k}"))).await;
    }
    // Replay, then live.
    let stream = open_stream(&app, None).await;
    let writer = async {
        for k in 0..3 {
            app.post("/v1/jobs", job(&format!("live-{k}"))).await;
        }
    };
    let (first, ()) = tokio::join!(read_stream(stream, 6), writer);
    // Disconnected: more happens meanwhile.
    for k in 0..4 {
        app.post("/v1/jobs", job(&format!("missed-{k}"))).await;
    }
    let last = first.last().unwrap().0.clone();
    let resumed = read_stream(open_stream(&app, Some(&last)).await, 4).await;

    let streamed: Vec<String> = first
        .iter()
        .chain(&resumed)
        .map(|(id, _)| id.clone())
        .collect();
    let listed: Vec<String> = events(&app, "type=job.created")
        .await
        .iter()
        .map(|e| e["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        streamed, listed,
        "every event once, in order, across the reconnect"
    );
    let jobs: Vec<&str> = first
        .iter()
        .chain(&resumed)
        .map(|(_, e)| e["job_id"].as_str().unwrap())
        .collect();
    assert_eq!(
        jobs,
        [
            "before-0", "before-1", "before-2", "live-0", "live-1", "live-2", "missed-0",
            "missed-1", "missed-2", "missed-3"
        ]
    );
    let bad = app
        .client
        .get(app.url("/v1/events/stream"))
        .header("last-event-id", "not-an-id")
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 422);
}

async fn a_subscription_receives_failures_signed(backend: Backend) {
    let receiver = Receiver::start().await;
    receiver.script("/job", [Answer::Status(503)]);
    receiver.script("/other", [Answer::Status(503)]);
    let app = TestApp::spawn(backend).await;
    let made = app
        .post(
            "/v1/subscriptions",
            json!({"url": receiver.url("/events"), "types": ["run.failed", "job.paused"], "job_id": "flaky"}),
        )
        .await;
    assert_eq!(made.status, 201, "{}", made.text);
    let made = made.json();
    let (id, secret) = (
        made["id"].as_str().unwrap(),
        made["secret"].as_str().unwrap(),
    );
    assert!(secret.starts_with("whsec_"));
    assert_eq!(made["types"], json!(["job.paused", "run.failed"]));
    assert_eq!(
        app.get(&format!("/v1/subscriptions/{id}")).await.json()["job_id"],
        "flaky"
    );
    assert_eq!(
        app.get(&format!("/v1/subscriptions/{id}/secret"))
            .await
            .json()["secret"],
        secret
    );
    // Another job's failure is not this subscription's.
    assert_eq!(
        app.post("/v1/jobs", job_now("other", &receiver.url("/other"), 1))
            .await
            .status,
        201
    );
    let mut flaky = job_now("flaky", &receiver.url("/job"), 1);
    flaky["trigger"] = json!({"type": "cron", "expr": "@yearly"});
    flaky["pause_on_failure"] = json!(true);
    assert_eq!(app.post("/v1/jobs", flaky).await.status, 201);
    let failed_run = app.post_empty("/v1/jobs/flaky/run").await.json();

    let delivered = eventually(DEADLINE, "two events delivered", || async {
        let got = receiver.received("/events");
        (got.len() >= 2).then_some(got)
    })
    .await;
    let mut bodies = Vec::new();
    for request in &delivered {
        standardwebhooks::Webhook::new(secret)
            .unwrap()
            .verify(&request.body, &request.headers)
            .expect("the delivery verifies with the subscription's secret");
        let body: Value = serde_json::from_slice(&request.body).unwrap();
        assert_eq!(request.header("webhook-id"), body["id"].as_str().unwrap());
        assert_eq!(
            request.header("cronhook-event-type"),
            body["type"].as_str().unwrap()
        );
        assert_eq!(request.header("content-type"), "application/json");
        bodies.push(body);
    }
    let failed = bodies
        .iter()
        .find(|b| b["type"] == "run.failed")
        .expect("run.failed");
    assert_eq!(failed["job_id"], "flaky");
    assert_eq!(failed["run_id"], failed_run["id"]);
    assert_eq!(failed["data"]["status_code"], 503);
    // pause_on_failure: the job paused, saying why.
    let paused = bodies
        .iter()
        .find(|b| b["type"] == "job.paused")
        .expect("job.paused");
    assert_eq!(paused["data"]["reason"], "run_failed");
    assert_eq!(paused["data"]["run_id"], failed_run["id"]);
    assert_eq!(app.get("/v1/jobs/flaky").await.json()["state"], "paused");
    // Only the subscribed job's events, each once: the other job's failure
    // made no delivery (deliveries are made with the event they carry).
    runs_when(&app, "other", |r| {
        r.first().is_some_and(|r| r["status"] == "failed")
    })
    .await;
    let other = events_when(&app, "job_id=other&type=run.failed", |e| !e.is_empty()).await;
    assert_eq!(types(&other), ["run.failed"]);
    let listed = eventually(DEADLINE, "both deliveries recorded", || async {
        let listed = app
            .get(&format!("/v1/subscriptions/{id}/deliveries"))
            .await
            .json();
        let done = listed["items"]
            .as_array()?
            .iter()
            .all(|d| d["status"] == "succeeded");
        done.then_some(listed)
    })
    .await;
    let deliveries = listed["items"].as_array().unwrap();
    assert_eq!(deliveries.len(), 2, "{listed}");
    assert!(deliveries.iter().all(|d| d["attempt_count"] == 1));
    assert_eq!(receiver.received("/events").len(), 2);
    // Deliveries are not runs of any job.
    let runs = app.get("/v1/runs").await.json();
    assert!(
        runs["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["job_id"] != Value::Null)
    );

    let bad = app
        .post(
            "/v1/subscriptions",
            json!({"url": receiver.url("/x"), "types": []}),
        )
        .await
        .problem(422);
    assert!(bad.starts_with("types: must name at least one"), "{bad}");
    let bad = app
        .post(
            "/v1/subscriptions",
            json!({"url": "ftp://x", "types": ["run.failed"]}),
        )
        .await
        .problem(422);
    assert!(bad.starts_with("url: unsupported scheme"), "{bad}");
    assert_eq!(
        app.delete(&format!("/v1/subscriptions/{id}")).await.status,
        204
    );
    app.get(&format!("/v1/subscriptions/{id}"))
        .await
        .problem(404);
}

async fn a_failed_run_is_sent_again_with_the_same_id(backend: Backend) {
    let receiver = Receiver::start().await;
    receiver.script("/once", [Answer::Status(500)]);
    let app = TestApp::spawn(backend).await;
    assert_eq!(
        app.post("/v1/jobs", job_now("redrive", &receiver.url("/once"), 1))
            .await
            .status,
        201
    );
    let runs = runs_when(&app, "redrive", |r| {
        r.first().is_some_and(|r| r["status"] == "failed")
    })
    .await;
    let id = runs[0]["id"].as_str().unwrap().to_string();

    let again = app.post_empty(&format!("/v1/runs/{id}/retry")).await;
    assert_eq!(again.status, 200, "{}", again.text);
    assert_eq!(again.json()["id"], id.as_str());
    assert_eq!(again.json()["status"], "pending");
    let run = eventually(DEADLINE, "the run to succeed", || async {
        let run = app.get(&format!("/v1/runs/{id}")).await.json();
        (run["status"] == "succeeded").then_some(run)
    })
    .await;
    assert_eq!(run["attempt_count"], 2);
    let codes: Vec<&Value> = run["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| &a["status_code"])
        .collect();
    assert_eq!(codes, [&json!(500), &json!(200)]);
    let requests = receiver.received("/once");
    assert_eq!(requests.len(), 2);
    assert!(requests.iter().all(|r| r.header("webhook-id") == id));
    assert_eq!(requests[1].header("cronhook-attempt"), "2");

    let detail = app
        .post_empty(&format!("/v1/runs/{id}/retry"))
        .await
        .problem(409);
    assert_eq!(
        detail,
        "only a failed run can be sent again; this one is succeeded"
    );
    app.post_empty("/v1/runs/0190c4a4-0000-7000-8000-000000000000/retry")
        .await
        .problem(404);
    let kinds = types(
        &events_when(&app, "job_id=redrive", |e| {
            e.last().is_some_and(|e| e["type"] == "run.succeeded")
        })
        .await,
    );
    assert_eq!(kinds.iter().filter(|k| *k == "run.created").count(), 1);
    assert_eq!(kinds.iter().filter(|k| *k == "run.retried").count(), 1);
    assert_eq!(kinds.last().unwrap(), "run.succeeded");
}

/// The value of one sample in OpenMetrics text (parsed by a parser that is
/// not ours first).
fn sample(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    openmetrics_parser::openmetrics::parse_openmetrics(text)
        .unwrap_or_else(|e| panic!("not OpenMetrics text ({e:?}):\n{text}"));
    let wanted: String = labels
        .iter()
        .map(|(k, v)| format!("{k}=\"{v}\""))
        .collect::<Vec<_>>()
        .join(",");
    let prefix = if wanted.is_empty() {
        format!("{name} ")
    } else {
        format!("{name}{{{wanted}}} ")
    };
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .map(|v| v.trim().parse().unwrap())
        .unwrap_or(0.0)
}

async fn metrics_count_what_happened(backend: Backend) {
    let receiver = Receiver::start().await;
    let app = TestApp::spawn(backend).await;
    let before = app.get("/metrics").await;
    assert_eq!(before.status, 200);
    assert!(
        before
            .content_type
            .starts_with("application/openmetrics-text"),
        "{}",
        before.content_type
    );
    let before = before.text;
    assert_eq!(
        sample(&before, "cronhook_runs_total", &[("status", "succeeded")]),
        0.0
    );

    receiver.script("/broken", [Answer::Status(500)]);
    for (id, path) in [("counted", "/ok"), ("broken", "/broken")] {
        let mut job = job_now(id, &receiver.url(path), 1);
        job["metrics"] = json!(true);
        assert_eq!(app.post("/v1/jobs", job).await.status, 201);
    }
    runs_when(&app, "counted", |r| {
        r.first().is_some_and(|r| r["status"] == "succeeded")
    })
    .await;
    runs_when(&app, "broken", |r| {
        r.first().is_some_and(|r| r["status"] == "failed")
    })
    .await;
    let text = app.get("/metrics").await.text;
    // The jobs that opted in have series of their own.
    let job = |id: &'static str| [("tenant", "default"), ("job_id", id)];
    assert!(
        sample(
            &text,
            "cronhook_job_last_success_timestamp_seconds",
            &job("counted")
        ) > 1.7e9,
        "{text}"
    );
    assert_eq!(
        sample(&text, "cronhook_job_consecutive_failures", &job("counted")),
        0.0
    );
    assert_eq!(
        sample(&text, "cronhook_job_consecutive_failures", &job("broken")),
        1.0
    );
    // Made once, ended once: a run counts in runs_total only at its end.
    assert_eq!(
        sample(
            &text,
            "cronhook_runs_created_total",
            &[("status", "pending")]
        ),
        2.0
    );
    assert_eq!(
        sample(&text, "cronhook_runs_total", &[("status", "pending")]),
        0.0
    );
    assert_eq!(
        sample(&text, "cronhook_runs_total", &[("status", "succeeded")]),
        1.0
    );
    assert_eq!(
        sample(&text, "cronhook_runs_total", &[("status", "failed")]),
        1.0
    );
    assert_eq!(
        sample(
            &text,
            "cronhook_attempts_total",
            &[("outcome", "succeeded")]
        ),
        1.0
    );
    assert_eq!(sample(&text, "cronhook_lateness_seconds_count", &[]), 2.0);
    assert_eq!(
        sample(&text, "cronhook_jobs", &[("state", "completed")]),
        2.0
    );
    assert_eq!(sample(&text, "cronhook_runs_pending", &[]), 0.0);
    assert!(sample(&text, "cronhook_claim_duration_seconds_count", &[]) >= 1.0);
    assert!(
        sample(
            &text,
            "cronhook_http_requests_total",
            &[("method", "POST"), ("route", "/v1/jobs"), ("status", "2xx")]
        ) >= 1.0,
        "{text}"
    );
    assert!(
        sample(
            &text,
            "cronhook_http_request_duration_seconds_count",
            &[("method", "POST"), ("route", "/v1/jobs"), ("status", "2xx")]
        ) >= 1.0,
        "{text}"
    );
    assert!(
        sample(&text, "process_resident_memory_bytes", &[]) > 0.0,
        "{text}"
    );
    assert!(sample(&text, "process_open_fds", &[]) > 0.0, "{text}");
    assert!(sample(&text, "cronhook_db_connections", &[("state", "idle")]) >= 0.0);
    assert!(text.contains("cronhook_build_info{version=\""));

    // Once tokens exist, a root one.
    let write = app
        .make_token(cronhook::domain::auth::Role::Write, "default")
        .await;
    eventually(DEADLINE, "tokens required", || async {
        (app.get("/metrics").await.status == 401).then_some(())
    })
    .await;
    let mut with_write = app.client.get(app.url("/metrics"));
    with_write = with_write.bearer_auth(&write);
    assert_eq!(with_write.send().await.unwrap().status(), 403);
    // A read token with the metrics scope scrapes, and reads nothing more.
    let root = app
        .make_token(cronhook::domain::auth::Role::Root, "default")
        .await;
    let made = app
        .client
        .post(app.url("/v1/tokens"))
        .bearer_auth(&root)
        .json(&json!({"role": "read", "scopes": ["metrics"], "name": "prometheus"}))
        .send()
        .await
        .unwrap();
    assert_eq!(made.status(), 201);
    let made: Value = made.json().await.unwrap();
    assert_eq!(made["scopes"], json!(["metrics"]), "{made}");
    let scraper = made["token"].as_str().unwrap().to_string();
    let scraped = app.client.get(app.url("/metrics")).bearer_auth(&scraper);
    let scraped = scraped.send().await.unwrap();
    assert_eq!(scraped.status(), 200);
    assert!(scraped.text().await.unwrap().contains("job_id=\"counted\""));
    // Another tenant's scraper sees none of this tenant's jobs.
    let other = app
        .client
        .post(app.url("/v1/tokens"))
        .bearer_auth(&root)
        .json(&json!({"role": "read", "tenant": "team-b", "scopes": ["metrics"]}))
        .send()
        .await
        .unwrap();
    let other: Value = other.json().await.unwrap();
    let theirs = app
        .client
        .get(app.url("/metrics"))
        .bearer_auth(other["token"].as_str().unwrap())
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!theirs.contains("job_id=\"counted\""), "{theirs}");
    let tokens = app.client.get(app.url("/v1/tokens")).bearer_auth(&scraper);
    assert_eq!(tokens.send().await.unwrap().status(), 403);
    let bad = app
        .client
        .post(app.url("/v1/tokens"))
        .bearer_auth(&root)
        .json(&json!({"role": "read", "scopes": ["everything"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 422);
}

/// What a setup script and an operator need without glue (issue 26): a
/// subscription PUT twice is one, `after=now` and `order=desc`, and a
/// delivery that fails for good is an event and a metric.
async fn subscriptions_put_twice_events_from_now_and_failed_deliveries(backend: Backend) {
    let receiver = Receiver::start().await;
    receiver.script("/dead", (0..5).map(|_| Answer::Status(410)));
    let app = TestApp::spawn(backend).await;
    let body = json!({"url": receiver.url("/dead"), "types": ["job.created"]});
    let first = app.put("/v1/subscriptions/team-hooks", body.clone()).await;
    assert_eq!(first.status, 201, "{}", first.text);
    let secret = first.json()["secret"].as_str().unwrap().to_string();
    assert_eq!(first.json()["id"], "team-hooks");
    let again = app.put("/v1/subscriptions/team-hooks", body.clone()).await;
    assert_eq!(again.status, 200, "{}", again.text);
    assert!(again.json().get("secret").is_none(), "{}", again.text);
    let listed = app.get("/v1/subscriptions").await.json();
    assert_eq!(listed["items"].as_array().unwrap().len(), 1, "{listed}");
    let stored = app.get("/v1/subscriptions/team-hooks/secret").await.json();
    assert_eq!(stored["secret"], secret, "a replace keeps the secret");
    let bad = app.put("/v1/subscriptions/bad%20id", body).await;
    assert!(bad.problem(422).starts_with("id:"), "{}", bad.text);

    // Nothing from before `now`; newest first on request.
    app.post("/v1/jobs", job_now("before", &receiver.url("/ok"), 1))
        .await;
    events_when(&app, "type=job.created", |e| !e.is_empty()).await;
    let from_now = app
        .get("/v1/events?after=now&type=job.created")
        .await
        .json();
    assert_eq!(from_now["items"], json!([]), "{from_now}");
    app.post("/v1/jobs", job_now("after", &receiver.url("/ok"), 1))
        .await;
    let newest = eventually(DEADLINE, "the newest event first", || async {
        let page = app
            .get("/v1/events?order=desc&limit=1&type=job.created")
            .await
            .json();
        let first = page["items"].as_array()?.first()?.clone();
        (first["job_id"] == "after").then_some(first)
    })
    .await;
    let back = app
        .get(&format!(
            "/v1/events?order=desc&type=job.created&after={}",
            newest["id"].as_str().unwrap()
        ))
        .await
        .json();
    assert_eq!(back["items"][0]["job_id"], "before", "{back}");
    assert!(
        app.get("/v1/events?order=sideways")
            .await
            .problem(422)
            .starts_with("order:")
    );

    // The receiver answers 410 to every delivery: each fails for good.
    let failed = events_when(&app, "type=subscription.delivery_failed", |e| e.len() >= 2).await;
    assert_eq!(
        failed[0]["data"]["subscription_id"], "team-hooks",
        "{failed:?}"
    );
    assert_eq!(failed[0]["data"]["status_code"], 410);
    assert_eq!(failed[0]["data"]["event_type"], "job.created");
    let text = app.get("/metrics").await.text;
    assert!(
        sample(&text, "cronhook_subscription_deliveries_failed_total", &[]) >= 2.0,
        "{text}"
    );
}

store_tests!(
    subscriptions_put_twice_events_from_now_and_failed_deliveries,
    every_change_writes_its_events_once,
    the_stream_resumes_after_a_reconnect_without_loss_or_repeat,
    a_subscription_receives_failures_signed,
    a_failed_run_is_sent_again_with_the_same_id,
    metrics_count_what_happened,
);

/// With two instances on one PostgreSQL, an event written through one
/// reaches a stream open on the other (the table, and NOTIFY).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_on_one_instance_sees_events_written_through_another() {
    let db = TestDb::postgres().await;
    let url = db.url.clone();
    let mut reading = common::test_config(&url);
    // Only NOTIFY can wake it in time: its own loops are idle.
    reading.no_scheduler = true;
    reading.no_dispatcher = true;
    let reader = TestApp::spawn_with(db, reading).await;
    let writer = TestApp::spawn_with(TestDb::existing(&url), common::test_config(&url)).await;
    let stream = open_stream(&reader, None).await;
    let write = async {
        tokio::time::sleep(Duration::from_millis(200)).await;
        writer.post("/v1/jobs", job("across")).await;
    };
    let (got, ()) = tokio::join!(read_stream(stream, 1), write);
    assert_eq!(got[0].1["job_id"], "across");
}
