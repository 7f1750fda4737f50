//! Run context in the request (DESIGN.md §11.2): a template target is
//! rendered once, when its run is made, and every attempt sends those
//! bytes; bad templates are refused naming the field, and one that does
//! not render at run time fails the run unsent. End to end through the API
//! to a real receiver, on both stores.

use crate::support as common;

use std::time::Duration;

use common::receiver::{Answer, Receiver};
use common::{Backend, TestApp, eventually};
use serde_json::{Value, json};

const DEADLINE: Duration = Duration::from_secs(60);

fn now() -> String {
    chrono::Utc::now().to_rfc3339()
}

use common::finished_run as finished;

fn template_target(receiver: &Receiver) -> Value {
    json!({
        "url": receiver.url("/export/{{ job.metadata.team }}?day={{ run.scheduled_for | date_utc('%Y-%m-%d') }}&job={{ job.id }}"),
        "template": true,
        "headers": {"X-Run": "{{ run.id }}", "Authorization": "Bearer {{ job.metadata.team }}-token"},
        "body": {"run": "{{ run.id }}", "for": "{{ run.scheduled_for }}", "cause": "{{ run.cause }}",
                 "since": "{{ last_success.finished_at | default('never') }}", "n": 1}
    })
}

async fn a_template_is_rendered_once_and_every_attempt_sends_the_same_bytes(backend: Backend) {
    let receiver = Receiver::start().await;
    receiver.script("/export/data", [Answer::Status(500), Answer::Status(200)]);
    let app = TestApp::spawn(backend).await;
    let created = app
        .create_job(json!({
            "id": "export",
            "trigger": {"type": "date", "run_at": now()},
            "target": template_target(&receiver),
            "retry": {"max_attempts": 2, "backoff_initial_s": 1, "backoff_max_s": 1},
            "metadata": {"team": "data"}
        }))
        .await;
    assert_eq!(created["target"]["template"], true, "{created}");

    let run = finished(&app, "export").await;
    assert_eq!(run["status"], "succeeded", "{run}");
    assert_eq!(run["attempt_count"], 2);
    let run_id = run["id"].as_str().unwrap();
    let requests = receiver.received("/export/data");
    assert_eq!(requests.len(), 2);
    let day = &run["scheduled_for"].as_str().unwrap()[..10];
    for request in &requests {
        assert_eq!(
            request.query.as_deref(),
            Some(&*format!("day={day}&job=export"))
        );
        assert_eq!(request.header("x-run"), run_id);
        assert_eq!(request.header("authorization"), "Bearer data-token");
        let body: Value = serde_json::from_slice(&request.body).unwrap();
        assert_eq!(
            (&body["run"], &body["cause"], &body["since"], &body["n"]),
            (
                &json!(run_id),
                &json!("schedule"),
                &json!("never"),
                &json!(1)
            )
        );
        let scheduled_for =
            chrono::DateTime::parse_from_rfc3339(body["for"].as_str().unwrap()).unwrap();
        assert_eq!(
            scheduled_for,
            chrono::DateTime::parse_from_rfc3339(run["scheduled_for"].as_str().unwrap()).unwrap()
        );
    }
    // The retry sent exactly the bytes the first attempt did, and each
    // attempt's signature covers them.
    assert_eq!(requests[0].body, requests[1].body);
    // The run's page shows the request as rendered, its secret hidden.
    let page = app.get(&format!("/ui/runs/{run_id}")).await;
    assert_eq!(page.status, 200, "{}", page.text);
    let sent_body = String::from_utf8(requests[0].body.to_vec()).unwrap();
    for shown in [
        format!("?day={day}&amp;job=export"),
        format!("x-run: {run_id}"),
        format!("webhook-id: {run_id}"),
        "authorization: ***".to_string(),
        maud::html! { (sent_body) }.into_string(),
    ] {
        assert!(page.text.contains(&shown), "{shown}: {}", page.text);
    }
    assert!(!page.text.contains("data-token"), "{}", page.text);
    let secret = app.get("/v1/jobs/export/secret").await.json();
    let webhook = standardwebhooks::Webhook::new(secret["secret"].as_str().unwrap()).unwrap();
    for request in &requests {
        webhook
            .verify(&request.body, &request.headers)
            .expect("signature verifies");
    }

    // A manual run is rendered with its own context: a new id, its cause,
    // and the last success there now is.
    let manual = app.post_empty("/v1/jobs/export/run").await;
    assert_eq!(manual.status, 201, "{}", manual.text);
    let manual_id = manual.json()["id"].as_str().unwrap().to_string();
    let sent = eventually(DEADLINE, "the manual run's request", || async {
        receiver
            .received("/export/data")
            .into_iter()
            .find(|r| r.header("x-run") == manual_id)
    })
    .await;
    let body: Value = serde_json::from_slice(&sent.body).unwrap();
    assert_eq!(body["cause"], "manual");
    assert_eq!(body["run"], manual_id.as_str());
    assert_eq!(body["since"], run["finished_at"], "{body}");
}

async fn render_answers_the_request_a_run_would_send(backend: Backend) {
    let receiver = Receiver::start().await;
    let app = TestApp::spawn(backend).await;
    app.create_job(json!({
        "id": "nightly",
        "trigger": {"type": "cron", "expr": "0 0 * * *", "timezone": "Europe/Berlin"},
        "target": {
            "url": receiver.url("/day/{{ run.scheduled_for | add('-1d') | date('%Y-%m-%d') }}"),
            "template": true,
            "headers": {"Authorization": "Bearer {{ job.metadata.team }}"},
            "body": "window {{ window.start }} to {{ window.end }} ({{ run.scheduled_for_local }})"
        },
        "metadata": {"team": "data"}
    }))
    .await;
    // Midnight in Berlin on the day after the DST change: "-1d" is the
    // calendar day before, 23 hours earlier.
    let rendered = app
        .post(
            "/v1/jobs/nightly/render",
            json!({"scheduled_for": "2026-03-29T22:00:00Z"}),
        )
        .await;
    assert_eq!(rendered.status, 200, "{}", rendered.text);
    let rendered = rendered.json();
    let request = &rendered["request"];
    assert_eq!(rendered["scheduled_for"], "2026-03-29T22:00:00Z");
    assert_eq!(request["url"], receiver.url("/day/2026-03-29"));
    assert_eq!(
        request["body"],
        "window 2026-03-28T23:00:00Z to 2026-03-29T22:00:00Z (2026-03-30T00:00:00+02:00)"
    );
    // A sensitive header's value is never shown, only its name.
    assert_eq!(request["sensitive_headers"], json!(["authorization"]));
    assert!(!rendered.to_string().contains("Bearer"), "{rendered}");

    // The dashboard says the job renders a template, and shows it.
    let page = app.get("/ui/jobs/nightly").await;
    assert!(
        page.text
            .contains("yes: its {{ … }} expressions are rendered when each run is made")
            && page.text.contains("window {{ window.start }}"),
        "{}",
        page.text
    );

    // Without an occurrence: the job's next run.
    let next = app.post("/v1/jobs/nightly/render", json!({})).await.json();
    let job = app.get("/v1/jobs/nightly").await.json();
    assert_eq!(next["scheduled_for"], job["next_run_at"]);
    assert_eq!(
        app.post("/v1/jobs/nobody/render", json!({}))
            .await
            .problem(404),
        "no job with id \"nobody\""
    );
}

async fn a_template_that_does_not_render_fails_its_run_unsent(backend: Backend) {
    let receiver = Receiver::start().await;
    let app = TestApp::spawn(backend).await;
    // Written fine (a last success is assumed), but there is none yet.
    app.create_job(json!({
        "id": "since",
        "trigger": {"type": "date", "run_at": now()},
        "target": {"url": receiver.url("/since"), "template": true,
                   "body": "{{ last_success.finished_at | date('%F') }}"},
        "retry": {"max_attempts": 3, "backoff_initial_s": 1}
    }))
    .await;
    let run = finished(&app, "since").await;
    assert_eq!(run["status"], "failed", "{run}");
    assert_eq!(run["attempt_count"], 1, "not retried: {run}");
    let error = run["attempts"][0]["error"].as_str().unwrap();
    assert!(
        error.starts_with("template_error: target.body: "),
        "{error}"
    );
    assert!(receiver.received("/since").is_empty());
    let page = app
        .get(&format!("/ui/runs/{}", run["id"].as_str().unwrap()))
        .await;
    assert!(
        page.text
            .contains("Not sent: template_error: target.body: "),
        "{}",
        page.text
    );
    let detail = app
        .post("/v1/jobs/since/render", json!({}))
        .await
        .problem(422);
    assert!(detail.starts_with("target.body: "), "{detail}");
}

async fn bad_templates_are_refused_naming_the_field_and_position(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let refused = |target: Value| {
        let app = &app;
        async move {
            app.post(
                "/v1/jobs",
                json!({"trigger": {"type": "interval", "every_s": 60}, "target": target}),
            )
            .await
            .problem(422)
        }
    };
    let url = "https://example.com/hook";
    assert_eq!(
        refused(json!({"url": url, "template": true, "body": {"a": ["{{ run.nope }}"]}})).await,
        "target.body.a[0]: undefined value: `run.nope` is undefined (characters 4-11)"
    );
    assert!(
        refused(json!({"url": url, "template": true, "body": "{% for x in y %}{% endfor %}"}))
            .await
            .starts_with("target.body: a statement ({% … %}) at character 1")
    );
    assert!(
        refused(
            json!({"url": url, "template": true, "headers": {"X-Day": "{{ run.id | shout }}"}})
        )
        .await
        .starts_with("target.headers.x-day: unknown filter")
    );
    assert!(
        refused(json!({"url": "https://{{job.id}}.example.com/", "template": true}))
            .await
            .starts_with("target.url: ")
    );
    // Without `template`, braces are only text.
    let plain = app
        .create_job(
            json!({"id": "plain", "trigger": {"type": "interval", "every_s": 60},
                           "target": {"url": url, "body": "{% raw %}{{ x }}"}}),
        )
        .await;
    assert_eq!(plain["target"]["template"], false);
    // A change that breaks the template is refused too.
    app.create_job(
        json!({"id": "t", "trigger": {"type": "interval", "every_s": 60},
                          "target": {"url": url, "template": true, "body": "{{ job.metadata.k }}"},
                          "metadata": {"k": "v"}}),
    )
    .await;
    let detail = app
        .patch("/v1/jobs/t", json!({"metadata": {"k": null}}))
        .await
        .problem(422);
    assert!(
        detail.starts_with("target.body: undefined value"),
        "{detail}"
    );
}

store_tests!(
    a_template_is_rendered_once_and_every_attempt_sends_the_same_bytes,
    render_answers_the_request_a_run_would_send,
    a_template_that_does_not_render_fails_its_run_unsent,
    bad_templates_are_refused_naming_the_field_and_position,
);
