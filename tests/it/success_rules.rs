//! Success rules and retry rules end to end (DESIGN.md §11.6): a real
//! receiver answering 200 with an error in its body, a service judging it.

use crate::support as common;

use std::time::Duration;

use common::receiver::{Answer, Receiver};
use common::{Backend, TestApp};
use serde_json::{Value, json};

fn job_now(id: &str, target: Value, retry: Value) -> Value {
    json!({"id": id, "trigger": {"type": "date", "run_at": common::now_text()},
           "target": target, "retry": retry})
}

use common::finished_run as finished;

fn body(json: Value) -> Answer {
    Answer::Body(200, json.to_string().into_bytes())
}

async fn a_2xx_failing_a_json_rule_is_retried_per_retry_on_and_says_why(backend: Backend) {
    let receiver = Receiver::start().await;
    receiver.script(
        "/report",
        [
            body(json!({"status": "error"})),
            body(json!({"status": "done"})),
        ],
    );
    receiver.script("/once", [body(json!({"status": "error"}))]);
    let app = TestApp::spawn(backend).await;
    let success = json!({"json": [{"path": "$.status", "equals": "done"}]});
    let created = app
        .create_job(job_now(
            "report",
            json!({"url": receiver.url("/report"), "success": success}),
            json!({"retry_on": ["rule_failed", "5xx"], "backoff_initial_s": 1}),
        ))
        .await;
    assert_eq!(created["target"]["success"]["json"][0]["path"], "$.status");
    assert_eq!(created["retry"]["retry_on"], json!(["rule_failed", "5xx"]));

    let run = finished(&app, "report").await;
    assert_eq!(run["status"], "succeeded", "{run}");
    let attempts = run["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 2, "{run}");
    assert_eq!(attempts[0]["status_code"], 200);
    assert_eq!(
        attempts[0]["outcome_reason"],
        r#"200 but $.status = "error", expected "done""#
    );
    assert!(attempts[1].get("outcome_reason").is_none(), "{run}");
    assert_eq!(receiver.received("/report").len(), 2);

    // Without `rule_failed` in retry_on (the default), the first refusal
    // fails the run, with the rule as its reason.
    app.create_job(job_now(
        "once",
        json!({"url": receiver.url("/once"), "success": success}),
        json!({}),
    ))
    .await;
    let run = finished(&app, "once").await;
    assert_eq!(
        (&run["status"], &run["reason"], &run["attempt_count"]),
        (&json!("failed"), &json!("rule_failed"), &json!(1)),
        "{run}"
    );
    assert_eq!(receiver.received("/once").len(), 1);
}

async fn statuses_never_retry_delays_and_max_age(backend: Backend) {
    let receiver = Receiver::start().await;
    receiver.script("/moved", [Answer::Status(304)]);
    receiver.script("/down", [Answer::Status(503), Answer::Status(503)]);
    receiver.script("/failing", (0..20).map(|_| Answer::Status(500)));
    let app = TestApp::spawn(backend).await;
    // 304 listed as a success; 204 not, so a 204 would fail.
    app.create_job(job_now(
        "moved",
        json!({"url": receiver.url("/moved"), "success": {"status": ["2xx", 304]}}),
        json!({}),
    ))
    .await;
    app.create_job(job_now(
        "down",
        json!({"url": receiver.url("/down")}),
        json!({"never_retry": [503]}),
    ))
    .await;
    // Steps of one second, but no retry later than 2 s after the fire
    // time: it ends `expired` long before its ten attempts.
    app.create_job(job_now(
        "failing",
        json!({"url": receiver.url("/failing")}),
        json!({"max_attempts": 10, "delays_s": [1], "max_age_s": 2}),
    ))
    .await;

    let moved = finished(&app, "moved").await;
    assert_eq!(moved["status"], "succeeded", "{moved}");
    let down = finished(&app, "down").await;
    assert_eq!(
        (&down["status"], &down["attempt_count"]),
        (&json!("failed"), &json!(1))
    );
    let failing = finished(&app, "failing").await;
    assert_eq!(
        (&failing["status"], &failing["reason"]),
        (&json!("failed"), &json!("expired")),
        "{failing}"
    );
    let sent = receiver.received("/failing");
    assert!((1..=3).contains(&sent.len()), "{} attempts", sent.len());
    for pair in sent.windows(2) {
        assert!(
            pair[1].at - pair[0].at >= chrono::TimeDelta::milliseconds(900),
            "delays_s [1] is a one-second step"
        );
    }
}

async fn body_rules_read_64_kb_and_say_when_cut(backend: Backend) {
    let receiver = Receiver::start().await;
    let mut long = vec![b'x'; 70_000];
    long.extend_from_slice(b"OK");
    receiver.script("/long", [Answer::Body(200, long)]);
    receiver.script("/fine", [Answer::Body(200, b"all OK".to_vec())]);
    receiver.script("/slow", [Answer::After(Duration::from_millis(400), 200)]);
    let app = TestApp::spawn(backend).await;
    for (id, path) in [("long", "/long"), ("fine", "/fine")] {
        app.create_job(job_now(
            id,
            json!({"url": receiver.url(path), "success": {"body_contains": "OK", "body_not_contains": "ERROR"}}),
            json!({}),
        ))
        .await;
    }
    app.create_job(job_now(
        "slow",
        json!({"url": receiver.url("/slow"), "success": {"max_latency_ms": 100}}),
        json!({}),
    ))
    .await;
    let long = finished(&app, "long").await;
    assert_eq!(long["status"], "failed", "{long}");
    let attempt = &long["attempts"][0];
    assert_eq!(attempt["body_truncated"], true);
    assert_eq!(attempt["response_excerpt"].as_str().unwrap().len(), 65_536);
    assert_eq!(
        attempt["outcome_reason"],
        r#"200 but the body does not contain "OK" (in its first 64 kB)"#
    );
    let fine = finished(&app, "fine").await;
    assert_eq!(fine["status"], "succeeded", "{fine}");
    assert!(fine["attempts"][0].get("body_truncated").is_none());
    let slow = finished(&app, "slow").await;
    assert_eq!(slow["status"], "failed", "{slow}");
    let why = slow["attempts"][0]["outcome_reason"].as_str().unwrap();
    assert!(
        why.starts_with("200 but took ") && why.ends_with("more than max_latency_ms 100"),
        "{why}"
    );
}

async fn bad_rules_are_422s_naming_the_field_and_a_patch_changes_them(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let job = |target_extra: Value, retry: Value| {
        let mut target = json!({"url": "http://127.0.0.1:9/x"});
        target
            .as_object_mut()
            .unwrap()
            .extend(target_extra.as_object().unwrap().clone());
        json!({"id": "j", "trigger": {"type": "interval", "every_s": 60}, "target": target, "retry": retry})
    };
    let cases = [
        (
            job(
                json!({"success": {"json": [{"path": "$.a[", "equals": 1}]}}),
                json!({}),
            ),
            "target.success.json[0].path",
        ),
        (
            job(json!({"success": {"status": ["9xx"]}}), json!({})),
            "target.success.status[0]",
        ),
        (
            job(json!({"success": {"colour": "green"}}), json!({})),
            "target.success",
        ),
        (
            job(json!({}), json!({"retry_on": ["often"]})),
            "retry.retry_on[0]",
        ),
        (
            job(json!({}), json!({"never_retry": [99]})),
            "retry.never_retry[0]",
        ),
        (job(json!({}), json!({"max_age_s": 0})), "retry.max_age_s"),
        (
            job(json!({}), json!({"delays_s": [-1]})),
            "retry.delays_s[0]",
        ),
    ];
    for (body, field) in cases {
        let reply = app.post("/v1/jobs", body).await;
        let problem = reply.problem(422);
        assert!(problem.contains(field), "{field}: {problem}");
    }

    let created = app
        .create_job(job(
            json!({"success": {"body_contains": "ok"}}),
            json!({"max_age_s": 600}),
        ))
        .await;
    assert_eq!(created["target"]["success"]["body_contains"], "ok");
    assert_eq!(created["retry"]["max_age_s"], 600);
    let patched = app
        .patch(
            "/v1/jobs/j",
            json!({"target": {"success": {"status": [200]}}, "retry": {"max_age_s": null}}),
        )
        .await;
    assert_eq!(patched.status, 200, "{}", patched.text);
    // A merge patch (RFC 7396): objects merge, null removes.
    let view = patched.json();
    let merged = json!({"status": [200], "body_contains": "ok"});
    assert_eq!(view["target"]["success"], merged);
    assert!(view["retry"].get("max_age_s").is_none(), "{view}");
    let read = app.get("/v1/jobs/j").await.json();
    assert_eq!(read["target"]["success"], merged);
    let cleared = app
        .patch("/v1/jobs/j", json!({"target": {"success": null}}))
        .await
        .json();
    assert!(cleared["target"].get("success").is_none(), "{cleared}");
}

store_tests!(
    a_2xx_failing_a_json_rule_is_retried_per_retry_on_and_says_why,
    statuses_never_retry_delays_and_max_age,
    body_rules_read_64_kb_and_say_when_cut,
    bad_rules_are_422s_naming_the_field_and_a_patch_changes_them,
);
