//! Webhook delivery end to end: the real service, real databases and a
//! real HTTP receiver on 127.0.0.1.

use crate::support as common;

use std::time::Duration;

use chrono::Utc;
use common::receiver::{Answer, Receiver};
use common::{Backend, TestApp, TestDb, eventually};
use serde_json::{Value, json};

const DEADLINE: Duration = Duration::from_secs(60);

use common::now_text as now;

use common::instant;

/// A job that fires once, now, at `target`.
fn job_now(id: &str, target: Value) -> Value {
    json!({"id": id, "trigger": {"type": "date", "run_at": now()}, "target": target})
}

/// The job's one run, with attempts, once `done` holds for it.
async fn run_when(app: &TestApp, job: &str, what: &str, done: impl Fn(&Value) -> bool) -> Value {
    eventually(DEADLINE, what, || async {
        let runs = app.get(&format!("/v1/jobs/{job}/runs")).await.json();
        let id = runs["items"].as_array()?.last()?["id"]
            .as_str()?
            .to_string();
        let run = app.get(&format!("/v1/runs/{id}")).await.json();
        done(&run).then_some(run)
    })
    .await
}

async fn finished(app: &TestApp, job: &str) -> Value {
    run_when(app, job, "a finished run", |r| r["finished_at"].is_string()).await
}

async fn signed_requests_carry_the_job_and_verify_independently(backend: Backend) {
    let receiver = Receiver::start().await;
    let app = TestApp::spawn(backend).await;
    let target = json!({"url": receiver.url("/hook"), "method": "PUT", "headers": {"X-Team": "data"},
                        "body": {"report": "daily", "n": 1}});
    app.create_job(job_now("signed", target)).await;
    let run = finished(&app, "signed").await;
    assert_eq!(run["status"], "succeeded", "{run}");
    assert_eq!(run["attempt_count"], 1);
    let attempt = &run["attempts"][0];
    assert_eq!(attempt["number"], 1);
    assert_eq!(attempt["status_code"], 200);
    assert_eq!(attempt["error"], Value::Null);
    assert_eq!(attempt["response_excerpt"], "answer 200");

    let requests = receiver.received("/hook");
    assert_eq!(requests.len(), 1);
    let request = &requests[0];
    assert_eq!(request.method, "PUT");
    assert_eq!(request.header("content-type"), "application/json");
    assert_eq!(
        serde_json::from_slice::<Value>(&request.body).unwrap(),
        json!({"report": "daily", "n": 1})
    );
    assert_eq!(request.header("x-team"), "data");
    assert!(
        request.header("user-agent").starts_with("Cronhook/"),
        "{}",
        request.header("user-agent")
    );
    assert_eq!(request.header("webhook-id"), run["id"].as_str().unwrap());
    assert_eq!(request.header("cronhook-job-id"), "signed");
    assert_eq!(request.header("cronhook-attempt"), "1");
    assert_eq!(
        instant(&json!(request.header("cronhook-scheduled-for"))),
        instant(&run["scheduled_for"])
    );

    // Verified with the Standard Webhooks reference implementation.
    let secret = app.get("/v1/jobs/signed/secret").await.json();
    let secret = secret["secret"].as_str().unwrap();
    assert!(secret.starts_with("whsec_"));
    let webhook = standardwebhooks::Webhook::new(secret).unwrap();
    webhook
        .verify(&request.body, &request.headers)
        .expect("signature verifies");
    let other = standardwebhooks::Webhook::new("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
    assert!(
        other.verify(&request.body, &request.headers).is_err(),
        "another secret does not verify"
    );

    // The job shows its last run's outcome.
    let job = app.get("/v1/jobs/signed").await.json();
    assert_eq!(job["last_run"]["status"], "succeeded");
    assert_eq!(job["state"], "completed");
}

async fn bodies_text_and_none(backend: Backend) {
    let receiver = Receiver::start().await;
    let app = TestApp::spawn(backend).await;
    app.create_job(job_now(
        "text",
        json!({"url": receiver.url("/text"), "body": "plain words"}),
    ))
    .await;
    app.create_job(job_now(
        "xml",
        json!({"url": receiver.url("/xml"), "body": "<a/>",
                                        "headers": {"content-type": "application/xml"}}),
    ))
    .await;
    app.create_job(job_now(
        "none",
        json!({"url": receiver.url("/none"), "method": "GET"}),
    ))
    .await;
    for job in ["text", "xml", "none"] {
        assert_eq!(finished(&app, job).await["status"], "succeeded");
    }
    let text = &receiver.received("/text")[0];
    assert_eq!(text.header("content-type"), "text/plain; charset=utf-8");
    assert_eq!(&text.body[..], b"plain words");
    assert_eq!(
        receiver.received("/xml")[0].header("content-type"),
        "application/xml"
    );
    let none = &receiver.received("/none")[0];
    assert_eq!(none.method, "GET");
    assert!(none.body.is_empty());
    assert_eq!(none.header("content-type"), "");
    // An empty body is still signed.
    let secret = app.get("/v1/jobs/none/secret").await.json();
    standardwebhooks::Webhook::new(secret["secret"].as_str().unwrap())
        .unwrap()
        .verify(&none.body, &none.headers)
        .expect("signature verifies");
}

async fn retries_server_errors_then_succeeds(backend: Backend) {
    let receiver = Receiver::start().await;
    receiver.script("/flaky", [Answer::Status(500), Answer::Status(503)]);
    let app = TestApp::spawn(backend).await;
    app.create_job(job_now("flaky", json!({"url": receiver.url("/flaky")})))
        .await;
    let run = finished(&app, "flaky").await;
    assert_eq!(run["status"], "succeeded", "{run}");
    let codes: Vec<_> = run["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["status_code"].clone())
        .collect();
    assert_eq!(codes, [json!(500), json!(503), json!(200)]);
    let requests = receiver.received("/flaky");
    assert_eq!(requests.len(), 3);
    // The same webhook-id on every attempt: the receiver's idempotency key.
    assert!(
        requests
            .iter()
            .all(|r| r.header("webhook-id") == run["id"].as_str().unwrap())
    );
    let attempts: Vec<_> = requests
        .iter()
        .map(|r| r.header("cronhook-attempt").to_string())
        .collect();
    assert_eq!(attempts, ["1", "2", "3"]);
    // Backoff: the first retry waits at least half of backoff_initial_s.
    assert!(requests[1].at - requests[0].at >= chrono::TimeDelta::milliseconds(500));
}

async fn client_errors_fail_at_once_and_redirects_are_not_followed(backend: Backend) {
    let receiver = Receiver::start().await;
    receiver.script("/bad", [Answer::Status(400)]);
    receiver.script(
        "/moved",
        [Answer::WithHeaders(
            302,
            vec![("location", "/elsewhere".to_string())],
        )],
    );
    let app = TestApp::spawn(backend).await;
    app.create_job(job_now("bad", json!({"url": receiver.url("/bad")})))
        .await;
    app.create_job(job_now("moved", json!({"url": receiver.url("/moved")})))
        .await;
    let bad = finished(&app, "bad").await;
    assert_eq!(bad["status"], "failed");
    assert_eq!(bad["attempt_count"], 1);
    assert_eq!(bad["attempts"][0]["status_code"], 400);
    let moved = finished(&app, "moved").await;
    assert_eq!(moved["status"], "failed");
    assert_eq!(moved["attempts"][0]["status_code"], 302);
    assert!(receiver.received("/elsewhere").is_empty());
    assert_eq!(receiver.received("/bad").len(), 1);
}

async fn retry_after_is_honoured_and_clamped(backend: Backend) {
    let receiver = Receiver::start().await;
    receiver.script(
        "/busy",
        [Answer::WithHeaders(429, vec![("retry-after", "2".into())])],
    );
    receiver.script(
        "/very-busy",
        [Answer::WithHeaders(
            503,
            vec![("retry-after", "3600".into())],
        )],
    );
    let app = TestApp::spawn(backend).await;
    app.create_job(job_now("busy", json!({"url": receiver.url("/busy")})))
        .await;
    let mut clamped = job_now("very-busy", json!({"url": receiver.url("/very-busy")}));
    clamped["retry"] = json!({"backoff_initial_s": 1, "backoff_max_s": 1});
    app.create_job(clamped).await;

    let busy = finished(&app, "busy").await;
    assert_eq!(busy["status"], "succeeded");
    let requests = receiver.received("/busy");
    assert_eq!(requests.len(), 2);
    assert!(
        requests[1].at - requests[0].at >= chrono::TimeDelta::seconds(2),
        "Retry-After: 2 honoured"
    );

    // Retry-After: 3600 is clamped to backoff_max_s: the retry comes.
    let very_busy = finished(&app, "very-busy").await;
    assert_eq!(very_busy["status"], "succeeded");
    assert_eq!(receiver.received("/very-busy").len(), 2);
}

async fn a_hanging_target_times_out_without_delaying_others(backend: Backend) {
    let receiver = Receiver::start().await;
    receiver.script("/hang", [Answer::Hang]);
    let app = TestApp::spawn(backend).await;
    let mut slow = job_now(
        "slow",
        // Long enough that the other job is surely delivered within it.
        json!({"url": receiver.url("/hang"), "timeout_s": 10}),
    );
    slow["retry"] = json!({"max_attempts": 1});
    app.create_job(slow).await;
    eventually(DEADLINE, "the hanging request", || async {
        (!receiver.received("/hang").is_empty()).then_some(())
    })
    .await;

    // While that request is open, another job is delivered.
    app.create_job(job_now("quick", json!({"url": receiver.url("/quick")})))
        .await;
    let quick = finished(&app, "quick").await;
    assert_eq!(quick["status"], "succeeded");
    let slow_now = app.get("/v1/jobs/slow/runs").await.json();
    assert_eq!(
        slow_now["items"][0]["status"], "running",
        "the slow request is still open"
    );

    let slow = finished(&app, "slow").await;
    assert_eq!(slow["status"], "failed");
    let error = slow["attempts"][0]["error"].as_str().unwrap();
    assert!(error.starts_with("timeout"), "{error}");
    assert_eq!(slow["attempts"][0]["status_code"], Value::Null);
}

/// One slow host cannot take every delivery slot: with 3 slots and at
/// most 2 requests per host, six slow requests to one host leave a slot
/// for another host's job, and never have more than 2 open. The host is
/// its address: its ports, and its names (`localhost`, `127.0.0.1`), are
/// one host.
async fn a_slow_host_gets_at_most_its_share_of_slots(backend: Backend) {
    // One slow host behind three ports, and another host (127.0.0.2).
    let slow = Receiver::start().await;
    let ports = [
        slow.another_port().await,
        slow.another_port().await,
        slow.another_port().await,
    ];
    let other = Receiver::start_on("127.0.0.2").await;
    // The slow host answers in the end: the receiver closes each request
    // before the answer leaves, so its count of open requests is exact. (A
    // request the client gives up on closes on the receiver's side only
    // some time after the client has moved on, and would be counted twice.)
    slow.script(
        "/slow",
        (0..6).map(|_| Answer::After(Duration::from_secs(2), 200)),
    );
    let db = TestDb::new(backend).await;
    let mut config = common::test_config(&db.url);
    config.max_in_flight = 3;
    config.max_in_flight_per_host = 2;
    config.max_in_flight_per_tenant = Some(3);
    let app = TestApp::spawn_with(db, config).await;
    for k in 0..6 {
        let port = ports[k % 3].addr.port();
        let name = if k % 2 == 0 { "localhost" } else { "127.0.0.1" };
        let job = job_now(
            &format!("slow-{k}"),
            json!({"url": format!("http://{name}:{port}/slow"), "timeout_s": 30}),
        );
        app.create_job(job).await;
    }
    let received = || slow.received("/slow").len();
    eventually(DEADLINE, "two slow requests", || async {
        (received() >= 2).then_some(())
    })
    .await;
    app.create_job(job_now("other", json!({"url": other.url("/other")})))
        .await;
    assert_eq!(finished(&app, "other").await["status"], "succeeded");
    let unfinished = eventually(DEADLINE, "the slow runs listed", || async {
        let runs = app.get("/v1/runs?limit=500").await.json();
        let runs = runs["items"].as_array()?.clone();
        Some(runs.iter().filter(|r| r["finished_at"].is_null()).count())
    })
    .await;
    assert!(
        unfinished > 0,
        "the other host waited for the slow one's ports"
    );
    // Every slow run is sent in the end, two at a time at most.
    for k in 0..6 {
        let run = finished(&app, &format!("slow-{k}")).await;
        assert_eq!(run["status"], "succeeded", "{run}");
        assert_eq!(
            run["attempt_count"], 1,
            "a wait for the host is not an attempt: {run}"
        );
    }
    assert_eq!(received(), 6);
    assert!(slow.most_open_at_once("/slow") <= 2);
}

async fn a_refused_connection_is_retried_and_named(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    // Nothing listens on port 9 of the loopback address.
    let mut job = job_now("refused", json!({"url": "http://127.0.0.1:9/"}));
    job["retry"] = json!({"max_attempts": 2, "backoff_initial_s": 1});
    app.create_job(job).await;
    let run = finished(&app, "refused").await;
    assert_eq!(run["status"], "failed");
    assert_eq!(run["attempt_count"], 2);
    for attempt in run["attempts"].as_array().unwrap() {
        assert_eq!(attempt["error"], "connection refused");
    }
}

async fn a_killed_dispatcher_s_run_is_redelivered_with_the_same_webhook_id(backend: Backend) {
    let receiver = Receiver::start().await;
    receiver.script("/once", [Answer::Hang]);
    let db = TestDb::new(backend).await;
    let mut config = common::test_config(&db.url);
    config.lease_margin_s = 1;
    let url = db.url.clone();
    let mut first = TestApp::spawn_with(db, config.clone()).await;
    first
        .create_job(job_now(
            "crash",
            json!({"url": receiver.url("/once"), "timeout_s": 2}),
        ))
        .await;
    eventually(DEADLINE, "the first attempt in flight", || async {
        (!receiver.received("/once").is_empty()).then_some(())
    })
    .await;
    first.kill();

    // Another instance takes the run over once the first has missed its
    // heartbeats for the instance timeout (or the lease, 2 s + 1 s, runs out).
    let second = TestApp::spawn_with(TestDb::existing(&url), config).await;
    let run = finished(&second, "crash").await;
    assert_eq!(run["status"], "succeeded", "{run}");
    let attempts = run["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 2);
    assert_eq!(attempts[0]["error"], "interrupted");
    assert_eq!(attempts[1]["status_code"], 200);
    let requests = receiver.received("/once");
    assert_eq!(requests.len(), 2);
    assert_eq!(
        requests[0].header("webhook-id"),
        requests[1].header("webhook-id")
    );
    assert_eq!(
        requests[1].header("webhook-id"),
        run["id"].as_str().unwrap()
    );
    assert_eq!(requests[1].header("cronhook-attempt"), "2");
}

async fn graceful_shutdown_finishes_requests_in_flight(backend: Backend) {
    let receiver = Receiver::start().await;
    receiver.script("/slow", [Answer::After(Duration::from_millis(1500), 200)]);
    let mut app = TestApp::spawn(backend).await;
    app.create_job(job_now("drain", json!({"url": receiver.url("/slow")})))
        .await;
    eventually(DEADLINE, "the request in flight", || async {
        (!receiver.received("/slow").is_empty()).then_some(())
    })
    .await;
    app.stop().await;
    // The response arrived before the service stopped, and was recorded.
    let mut config = common::test_config(&app.db.url);
    config.no_dispatcher = true;
    config.no_scheduler = true;
    let after = TestApp::spawn_with(TestDb::existing(&app.db.url), config).await;
    let runs = after.get("/v1/jobs/drain/runs").await.json();
    assert_eq!(runs["items"][0]["status"], "succeeded", "{runs}");
}

async fn shutdown_releases_what_it_cannot_finish(backend: Backend) {
    let receiver = Receiver::start().await;
    receiver.script("/stuck", [Answer::Hang]);
    let db = TestDb::new(backend).await;
    let mut config = common::test_config(&db.url);
    // The drain gets 4 s of it, the release of what is cut off the last 1 s.
    config.shutdown_timeout_s = 5;
    let mut app = TestApp::spawn_with(db, config).await;
    app.create_job(job_now(
        "stuck",
        json!({"url": receiver.url("/stuck"), "timeout_s": 60}),
    ))
    .await;
    eventually(DEADLINE, "the request in flight", || async {
        (!receiver.received("/stuck").is_empty()).then_some(())
    })
    .await;
    app.stop().await;
    let mut config = common::test_config(&app.db.url);
    config.no_dispatcher = true;
    let after = TestApp::spawn_with(TestDb::existing(&app.db.url), config).await;
    let run = after.get("/v1/jobs/stuck/runs").await.json()["items"][0].clone();
    assert_eq!(run["status"], "pending", "{run}");
    assert_eq!(
        run["attempt_count"], 0,
        "the cut-off attempt does not count"
    );
}

async fn secret_rotation_signs_with_both_secrets(backend: Backend) {
    let receiver = Receiver::start().await;
    let app = TestApp::spawn(backend).await;
    let mut job = job_now("rotate", json!({"url": receiver.url("/rotate")}));
    job["paused"] = json!(true);
    job["trigger"] = json!({"type": "cron", "expr": "@yearly"});
    app.create_job(job).await;
    let old = app.get("/v1/jobs/rotate/secret").await.json()["secret"]
        .as_str()
        .unwrap()
        .to_string();
    let rotated = app.post_empty("/v1/jobs/rotate/secret/rotate").await;
    assert_eq!(rotated.status, 200, "{}", rotated.text);
    let rotated = rotated.json();
    let new = rotated["secret"].as_str().unwrap().to_string();
    assert_ne!(new, old);
    assert_eq!(rotated["previous"]["secret"], old);
    let expires = instant(&rotated["previous"]["expires_at"]);
    assert!(expires > Utc::now() + chrono::TimeDelta::hours(23));

    assert_eq!(app.post_empty("/v1/jobs/rotate/run").await.status, 201);
    assert_eq!(finished(&app, "rotate").await["status"], "succeeded");
    let request = &receiver.received("/rotate")[0];
    assert_eq!(request.header("webhook-signature").split(' ').count(), 2);
    for secret in [&old, &new] {
        standardwebhooks::Webhook::new(secret)
            .unwrap()
            .verify(&request.body, &request.headers)
            .expect("verifies");
    }
    // Without a grace period the old secret stops signing at once.
    let rotated = app
        .post_empty("/v1/jobs/rotate/secret/rotate?grace_s=0")
        .await
        .json();
    assert_eq!(rotated["previous"], Value::Null);
    app.post_empty("/v1/jobs/rotate/secret/rotate?grace_s=-1")
        .await
        .problem(422);
    app.post_empty("/v1/jobs/nope/secret/rotate")
        .await
        .problem(404);
    app.get("/v1/jobs/nope/secret").await.problem(404);
}

async fn a_job_deleted_mid_request_is_dropped_quietly(backend: Backend) {
    let receiver = Receiver::start().await;
    receiver.script("/gone", [Answer::After(Duration::from_millis(800), 200)]);
    let app = TestApp::spawn(backend).await;
    app.create_job(job_now("gone", json!({"url": receiver.url("/gone")})))
        .await;
    eventually(DEADLINE, "the request in flight", || async {
        (!receiver.received("/gone").is_empty()).then_some(())
    })
    .await;
    assert_eq!(app.delete("/v1/jobs/gone").await.status, 204);
    // The dispatcher goes on delivering.
    app.create_job(job_now("after", json!({"url": receiver.url("/after")})))
        .await;
    assert_eq!(finished(&app, "after").await["status"], "succeeded");
    app.get("/v1/jobs/gone/runs").await.problem(404);
}

async fn a_binary_response_body_is_recorded_and_holds_nothing_up(backend: Backend) {
    let receiver = Receiver::start().await;
    receiver.script(
        "/binary",
        [Answer::Body(200, b"PNG\0\x01\xff\0end".to_vec())],
    );
    let app = TestApp::spawn(backend).await;
    app.create_job(job_now("binary", json!({"url": receiver.url("/binary")})))
        .await;
    let run = finished(&app, "binary").await;
    assert_eq!(run["status"], "succeeded");
    let excerpt = run["attempts"][0]["response_excerpt"].as_str().unwrap();
    assert!(excerpt.starts_with("PNG\u{FFFD}"), "{excerpt:?}");
    assert!(!excerpt.contains('\0'));
    // Recording goes on.
    app.create_job(job_now("next", json!({"url": receiver.url("/next")})))
        .await;
    assert_eq!(finished(&app, "next").await["status"], "succeeded");
}

async fn a_job_whose_stored_target_no_longer_parses_fails_alone(backend: Backend) {
    let receiver = Receiver::start().await;
    let app = TestApp::spawn(backend).await;
    for id in ["broken", "fine"] {
        let mut job = job_now(id, json!({"url": receiver.url(&format!("/{id}"))}));
        job["paused"] = json!(true);
        job["trigger"] = json!({"type": "cron", "expr": "@yearly"});
        app.create_job(job).await;
    }
    // As after a manual edit of the database: a row that no longer reads
    // back as a target.
    let corrupt = "UPDATE jobs SET target_method = 'TRACE' WHERE id = 'broken' RETURNING id";
    let changed: Vec<(String,)> = app.db.fetch_all(corrupt).await;
    assert_eq!(changed.len(), 1);
    assert_eq!(app.post_empty("/v1/jobs/broken/run").await.status, 201);
    assert_eq!(app.post_empty("/v1/jobs/fine/run").await.status, 201);
    assert_eq!(finished(&app, "fine").await["status"], "succeeded");
    let broken = finished(&app, "broken").await;
    assert_eq!(broken["status"], "failed");
    assert_eq!(broken["attempt_count"], 1);
    let error = broken["attempts"][0]["error"].as_str().unwrap();
    assert!(
        error.starts_with("not sent: the stored job does not parse"),
        "{error}"
    );
    assert!(receiver.received("/broken").is_empty());
}

/// DESIGN.md §12: with a lookahead longer than the wait, the run exists
/// before its fire time and is sent at it, not before; a pause before the
/// fire time removes a run made ahead, so nothing is sent.
async fn a_run_made_ahead_is_sent_at_its_fire_time_and_a_pause_stops_it(backend: Backend) {
    let receiver = Receiver::start().await;
    let db = TestDb::new(backend).await;
    let mut config = common::test_config(&db.url);
    config.lookahead_ms = 10_000;
    let app = TestApp::spawn_with(db, config).await;
    let fire = cronhook::domain::instant::truncate(Utc::now() + chrono::TimeDelta::seconds(3));
    let at = cronhook::domain::instant::format(&fire);
    for id in ["ahead", "paused"] {
        app.create_job(
            json!({"id": id, "trigger": {"type": "interval", "every_s": 3600, "start_at": at},
                              "target": {"url": receiver.url(&format!("/{id}"))}}),
        )
        .await;
    }
    // Both runs are made well before the fire time.
    for id in ["ahead", "paused"] {
        let run = run_when(&app, id, "a run made ahead", |r| r["status"] == "pending").await;
        assert_eq!(instant(&run["scheduled_for"]), fire, "{run}");
    }
    let paused = app.post_empty("/v1/jobs/paused/pause").await;
    assert_eq!(paused.status, 200, "{}", paused.text);
    let runs = app.get("/v1/jobs/paused/runs").await.json();
    assert_eq!(
        runs["items"],
        json!([]),
        "the pause removed its run made ahead"
    );

    let run = finished(&app, "ahead").await;
    assert_eq!(run["status"], "succeeded", "{run}");
    assert!(instant(&run["created_at"]) < fire, "made ahead: {run}");
    let request = &receiver.received("/ahead")[0];
    assert!(
        request.at >= fire,
        "sent at {} before its fire time {fire}",
        request.at
    );
    assert_eq!(
        instant(&json!(request.header("cronhook-scheduled-for"))),
        fire
    );
    // The paused job's fire time has passed too: still nothing for it.
    assert!(receiver.received("/paused").is_empty());
    let job = app.get("/v1/jobs/paused").await.json();
    assert_eq!(job["state"], "paused", "{job}");
    assert_eq!(
        app.get("/v1/jobs/paused/runs").await.json()["items"],
        json!([])
    );
}

store_tests!(
    a_run_made_ahead_is_sent_at_its_fire_time_and_a_pause_stops_it,
    a_binary_response_body_is_recorded_and_holds_nothing_up,
    a_job_whose_stored_target_no_longer_parses_fails_alone,
    signed_requests_carry_the_job_and_verify_independently,
    bodies_text_and_none,
    retries_server_errors_then_succeeds,
    client_errors_fail_at_once_and_redirects_are_not_followed,
    retry_after_is_honoured_and_clamped,
    a_hanging_target_times_out_without_delaying_others,
    a_slow_host_gets_at_most_its_share_of_slots,
    a_refused_connection_is_retried_and_named,
    a_killed_dispatcher_s_run_is_redelivered_with_the_same_webhook_id,
    graceful_shutdown_finishes_requests_in_flight,
    shutdown_releases_what_it_cannot_finish,
    secret_rotation_signs_with_both_secrets,
    a_job_deleted_mid_request_is_dropped_quietly,
);

/// With an hour-long poll interval, a run made by another instance and the
/// retry the dispatcher recorded are still delivered: NOTIFY and the retry's
/// own timer wake it (and, since fail-over, the look for expired leases
/// every 250 ms bounds its sleep too, so this does not prove NOTIFY alone).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notify_wakes_another_instance_s_dispatcher_and_retries_fall_due_on_time() {
    let receiver = Receiver::start().await;
    receiver.script("/woken", [Answer::Status(500)]);
    let db = TestDb::postgres().await;
    let mut scheduling = common::test_config(&db.url);
    scheduling.no_dispatcher = true;
    let mut delivering = common::test_config(&db.url);
    delivering.no_scheduler = true;
    delivering.poll_interval_ms = 3_600_000;
    let url = db.url.clone();
    let scheduler = TestApp::spawn_with(db, scheduling).await;
    let _dispatcher = TestApp::spawn_with(TestDb::existing(&url), delivering).await;
    // Let the dispatcher go to sleep for its hour.
    tokio::time::sleep(Duration::from_millis(300)).await;
    scheduler
        .create_job(job_now("woken", json!({"url": receiver.url("/woken")})))
        .await;
    let run = finished(&scheduler, "woken").await;
    assert_eq!(run["status"], "succeeded");
    let codes: Vec<_> = run["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["status_code"].clone())
        .collect();
    assert_eq!(codes, [json!(500), json!(200)]);
}

// --- The network policy ----------------------------------------------------

#[tokio::test]
async fn metadata_and_link_local_targets_are_refused_at_creation() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    for (url, address) in [
        ("http://169.254.169.254/latest/meta-data", "169.254.169.254"),
        ("http://[::ffff:169.254.169.254]/", "::ffff:169.254.169.254"),
        ("http://[fd00:ec2::254]/", "fd00:ec2::254"),
        ("http://0.0.0.0:8080/", "0.0.0.0"),
        ("http://[fe80::1]/", "fe80::1"),
    ] {
        let detail = app
            .post("/v1/jobs", job_now("meta", json!({"url": url})))
            .await
            .problem(422);
        assert!(
            detail.starts_with(&format!("target.url: address {address} refused")),
            "{url}: {detail}"
        );
    }
    // The default policy allows private networks and loopback.
    app.create_job(json!({"trigger": {"type": "cron", "expr": "@yearly"}, "target": {"url": "http://10.0.0.1/"}})).await;
}

#[tokio::test]
async fn public_only_refuses_loopback_literals_and_names_that_resolve_to_it() {
    let receiver = Receiver::start().await;
    let db = TestDb::sqlite();
    let mut config = common::test_config(&db.url);
    config.targets = Some(cronhook::domain::network_policy::TargetMode::PublicOnly);
    let app = TestApp::spawn_with(db, config).await;
    let detail = app
        .post(
            "/v1/jobs",
            job_now("lo", json!({"url": receiver.url("/x")})),
        )
        .await
        .problem(422);
    assert!(
        detail.starts_with("target.url: address 127.0.0.1 refused: loopback"),
        "{detail}"
    );
    let detail = app
        .post(
            "/v1/jobs",
            job_now("ten", json!({"url": "http://10.1.2.3/"})),
        )
        .await
        .problem(422);
    assert!(detail.contains("private address"), "{detail}");

    // A name is accepted at creation; its resolved addresses are checked
    // when connecting, so it cannot reach loopback either.
    let mut job = job_now(
        "named",
        json!({"url": format!("http://localhost:{}/x", receiver.addr.port())}),
    );
    job["retry"] = json!({"max_attempts": 1});
    app.create_job(job).await;
    let run = finished(&app, "named").await;
    assert_eq!(run["status"], "failed");
    // Said without the address or its kind: the run's reader learns
    // nothing of the internal network by DNS (issue 22).
    let error = run["attempts"][0]["error"].as_str().unwrap();
    assert_eq!(
        error,
        "localhost resolves only to addresses --targets refuses"
    );
    assert!(receiver.all().is_empty(), "nothing reached the receiver");
}

#[tokio::test]
async fn ip_literals_are_checked_again_when_sending() {
    // A job stored under `any`, delivered by a public-only instance.
    let receiver = Receiver::start().await;
    let db = TestDb::sqlite();
    let mut config = common::test_config(&db.url);
    config.no_scheduler = true;
    config.no_dispatcher = true;
    let writer = TestApp::spawn_with(db, config.clone()).await;
    writer
        .create_job(job_now("literal", json!({"url": receiver.url("/x")})))
        .await;
    let mut strict = common::test_config(&writer.db.url);
    strict.targets = Some(cronhook::domain::network_policy::TargetMode::PublicOnly);
    let deliverer = TestApp::spawn_with(TestDb::existing(&writer.db.url), strict).await;
    let run = finished(&deliverer, "literal").await;
    assert_eq!(run["attempt_count"], 1);
    let error = run["attempts"][0]["error"].as_str().unwrap();
    assert!(
        error.starts_with("address 127.0.0.1 refused: loopback"),
        "{error}"
    );
    assert!(receiver.all().is_empty());
}
