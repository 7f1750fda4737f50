//! Alerts end to end on both stores (DESIGN.md §11.5): a real receiver
//! failing, the watchdog opening one alert, a Slack-format subscription
//! receiving it, recovery resolving it, a skipped run opening `missed`.

use crate::support as common;

use std::time::Duration;

use common::receiver::{Answer, Receiver};
use common::{Backend, TestApp, eventually};
use serde_json::{Value, json};

const DEADLINE: Duration = Duration::from_secs(60);

/// The job's alerts once `holds` is true of them.
async fn alerts_when(
    app: &TestApp,
    job: &str,
    what: &str,
    holds: impl Fn(&[Value]) -> bool,
) -> Vec<Value> {
    eventually(DEADLINE, what, || async {
        let list = app.get(&format!("/v1/alerts?job_id={job}")).await.json();
        let items = list["items"].as_array()?.clone();
        holds(&items).then_some(items)
    })
    .await
}

fn texts(receiver: &Receiver, path: &str) -> Vec<String> {
    receiver
        .received(path)
        .iter()
        .map(|r| {
            let body: Value = serde_json::from_slice(&r.body).unwrap();
            body["text"].as_str().unwrap().to_string()
        })
        .collect()
}

async fn failures_open_one_alert_a_slack_subscription_receives_and_recovery_resolves(
    backend: Backend,
) {
    let receiver = Receiver::start().await;
    receiver.script("/report", (0..3).map(|_| Answer::Status(500)));
    let app = TestApp::spawn(backend).await;
    let sub = app
        .post(
            "/v1/subscriptions",
            json!({"url": receiver.url("/slack"), "format": "slack",
                   "types": ["alert.opened", "alert.reminded", "alert.resolved"]}),
        )
        .await;
    assert_eq!(sub.status, 201, "{}", sub.text);
    assert_eq!(sub.json()["format"], "slack");
    let job = app
        .create_job(json!({
            "id": "report", "trigger": {"type": "interval", "every_s": 1},
            "target": {"url": receiver.url("/report")},
            "retry": {"max_attempts": 1},
            "alerts": {"after_consecutive_failures": 2}
        }))
        .await;
    assert_eq!(job["alerts"]["after_consecutive_failures"], 2);

    // Two failures in a row: one alert, whatever more failures follow.
    let opened = alerts_when(&app, "report", "a failure alert", |a| !a.is_empty()).await;
    assert_eq!(opened.len(), 1, "{opened:?}");
    assert_eq!(opened[0]["condition"], "failure");
    assert!(
        opened[0]["detail"]
            .as_str()
            .unwrap()
            .ends_with("runs failed in a row"),
        "{}",
        opened[0]
    );
    let slack = eventually(DEADLINE, "the Slack message", || async {
        let t = texts(&receiver, "/slack");
        (!t.is_empty()).then_some(t)
    })
    .await;
    assert!(
        slack[0].contains("Cronhook alert on job `report`: failure"),
        "{slack:?}"
    );
    // Signed like any delivery.
    assert!(
        !receiver.received("/slack")[0]
            .header("webhook-signature")
            .is_empty()
    );

    // The 500s run out: the next success resolves it, and says so.
    let resolved = alerts_when(&app, "report", "the alert resolved", |a| {
        a.iter().all(|x| x["state"] == "resolved")
    })
    .await;
    assert_eq!(
        resolved.len(),
        1,
        "one alert, not one per failure: {resolved:?}"
    );
    eventually(DEADLINE, "the Slack recovery", || async {
        texts(&receiver, "/slack")
            .iter()
            .any(|t| t.contains("resolved on job `report`"))
            .then_some(())
    })
    .await;
    let id = resolved[0]["id"].as_str().unwrap();
    assert!(
        app.post_empty(&format!("/v1/alerts/{id}/ack"))
            .await
            .problem(409)
            .contains("resolved")
    );
    let events = eventually(DEADLINE, "the alert events", || async {
        let list = app
            .get("/v1/events?type=alert.opened,alert.resolved")
            .await
            .json();
        let kinds: Vec<String> = list["items"]
            .as_array()?
            .iter()
            .map(|e| e["type"].as_str().unwrap_or("").to_string())
            .collect();
        (kinds.len() >= 2).then_some(kinds)
    })
    .await;
    assert!(events.contains(&"alert.opened".to_string()), "{events:?}");
}

async fn a_skipped_run_opens_missed_ack_stops_nothing_and_pausing_resolves(backend: Backend) {
    let receiver = Receiver::start().await;
    receiver.script("/slow", [Answer::Hang]);
    let app = TestApp::spawn(backend).await;
    // The first run hangs (max_instances 1): the next occurrences are
    // skipped, which is a missed run.
    app.create_job(json!({
        "id": "slow", "trigger": {"type": "interval", "every_s": 1},
        "target": {"url": receiver.url("/slow"), "timeout_s": 30},
        "alerts": {}
    }))
    .await;
    let open = alerts_when(&app, "slow", "a missed alert", |a| {
        a.iter().any(|x| x["condition"] == "missed")
    })
    .await;
    let missed = open.iter().find(|x| x["condition"] == "missed").unwrap();
    assert_eq!(missed["state"], "open");
    assert!(
        missed["detail"].as_str().unwrap().contains("was skipped"),
        "{missed}"
    );
    let id = missed["id"].as_str().unwrap();
    // The dashboard lists it with its button, and badges the job.
    let page = app.get("/ui/alerts").await;
    assert_eq!(page.status, 200);
    assert!(
        page.text.contains(&format!("data-alert=\"{id}\"")),
        "{}",
        page.text
    );
    assert!(page.text.contains("Acknowledge"));
    assert!(app.get("/ui").await.text.contains("alert: missed"));
    let acked = app.post_empty(&format!("/v1/alerts/{id}/ack")).await;
    assert_eq!(acked.status, 200, "{}", acked.text);
    assert_eq!(acked.json()["state"], "acked");
    let again = app.post_empty(&format!("/v1/alerts/{id}/ack")).await;
    assert_eq!(
        again.json()["state"],
        "acked",
        "acknowledging twice is harmless"
    );
    let listed = app.get("/v1/alerts?state=acked").await.json();
    assert_eq!(listed["items"].as_array().unwrap().len(), 1);
    // Each acknowledgement has its audit record (§11.9).
    let trail = app
        .get(&format!(
            "/v1/audit?target=alert/{id}&action=alert.acknowledged"
        ))
        .await
        .json();
    assert_eq!(trail["items"].as_array().unwrap().len(), 2, "{trail}");

    // Pausing resolves every alert of the job.
    assert_eq!(app.post_empty("/v1/jobs/slow/pause").await.status, 200);
    alerts_when(&app, "slow", "the alerts resolved", |a| {
        !a.is_empty() && a.iter().all(|x| x["state"] == "resolved")
    })
    .await;
    let metrics = app.get("/metrics").await.text;
    assert!(
        metrics.contains("cronhook_alerts_open{condition=\"missed\"} 0"),
        "{metrics}"
    );
}

async fn a_one_shot_job_that_fails_alerts_though_completed(backend: Backend) {
    let receiver = Receiver::start().await;
    receiver.script("/once", [Answer::Status(410)]);
    let app = TestApp::spawn(backend).await;
    app.create_job(json!({
        "id": "once", "trigger": {"type": "date", "run_at": common::now_text()},
        "target": {"url": receiver.url("/once")}, "alerts": {}
    }))
    .await;
    let opened = alerts_when(&app, "once", "a failure alert", |a| !a.is_empty()).await;
    assert_eq!(opened[0]["condition"], "failure", "{opened:?}");
    assert_eq!(app.get("/v1/jobs/once").await.json()["state"], "completed");
}

async fn overdue_too_fast_and_late_open_their_alerts(backend: Backend) {
    let receiver = Receiver::start().await;
    receiver.script("/slow", [Answer::After(Duration::from_secs(4), 200)]);
    let app = TestApp::spawn(backend).await;
    // Overdue while still running: 1 s after its first attempt started.
    app.create_job(json!({
        "id": "slow", "trigger": {"type": "date", "run_at": common::now_text()},
        "target": {"url": receiver.url("/slow")}, "alerts": {"max_duration_s": 1}
    }))
    .await;
    // Succeeded in far less than min_duration_s.
    app.create_job(json!({
        "id": "quick", "trigger": {"type": "date", "run_at": common::now_text()},
        "target": {"url": receiver.url("/quick")}, "alerts": {"min_duration_s": 60}
    }))
    .await;
    let overdue = alerts_when(&app, "slow", "an overdue alert", |a| !a.is_empty()).await;
    assert_eq!(overdue[0]["condition"], "overdue", "{overdue:?}");
    assert!(
        overdue[0]["detail"]
            .as_str()
            .unwrap()
            .contains("not finished"),
        "opened while the run still ran: {overdue:?}"
    );
    let quick = alerts_when(&app, "quick", "a too_fast alert", |a| !a.is_empty()).await;
    assert_eq!(quick[0]["condition"], "too_fast", "{quick:?}");
    // A run that waits behind a hanging one (buffer_one) starts late.
    receiver.script("/held", [Answer::Hang]);
    app.create_job(json!({
        "id": "held", "trigger": {"type": "interval", "every_s": 1},
        "target": {"url": receiver.url("/held"), "timeout_s": 30},
        "overlap": "buffer_one", "alerts": {"late_start_s": 1, "missed": false}
    }))
    .await;
    let late = alerts_when(&app, "held", "a late alert", |a| {
        a.iter().any(|x| x["condition"] == "late")
    })
    .await;
    let late = late.iter().find(|x| x["condition"] == "late").unwrap();
    assert!(
        late["detail"].as_str().unwrap().contains("has not started"),
        "{late}"
    );
}

async fn bad_alert_input_is_a_422_naming_the_field(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let job = |extra: Value| {
        let mut j = json!({"id": "j", "trigger": {"type": "interval", "every_s": 60},
                           "target": {"url": "http://127.0.0.1:9/x"}});
        j.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        j
    };
    for (extra, field) in [
        (
            json!({"alerts": {"after_consecutive_failures": 0}}),
            "alerts.after_consecutive_failures",
        ),
        (json!({"alerts": {"realert_s": 1}}), "alerts.realert_s"),
        (json!({"alerts": {"when": "always"}}), "alerts"),
        (json!({"mute_until": "tomorrow"}), "mute_until"),
    ] {
        let problem = app.post("/v1/jobs", job(extra)).await.problem(422);
        assert!(problem.contains(field), "{field}: {problem}");
    }
    for (query, field) in [
        ("state=bogus", "state"),
        ("condition=sometimes", "condition"),
        ("limit=0", "limit"),
    ] {
        let problem = app.get(&format!("/v1/alerts?{query}")).await.problem(422);
        assert!(problem.starts_with(field), "{query}: {problem}");
    }
    assert!(
        app.post_empty("/v1/alerts/0190c4a4-0000-7000-8000-000000000000/ack")
            .await
            .problem(404)
            .contains("no alert")
    );
    assert_eq!(app.post_empty("/v1/alerts/nope/ack").await.status, 404);
    let teams = app
        .post(
            "/v1/subscriptions",
            json!({"url": "http://127.0.0.1:9/t", "types": ["alert.opened"], "format": "teams"}),
        )
        .await;
    assert!(teams.problem(422).contains("format"), "{}", teams.text);
    // A job muted until a time, its settings read back.
    let muted = app
        .create_job(job(
            json!({"alerts": {"late_start_s": 120}, "mute_until": "2030-01-01T00:00:00Z"}),
        ))
        .await;
    assert_eq!(muted["mute_until"], "2030-01-01T00:00:00Z");
    assert_eq!(muted["alerts"]["late_start_s"], 120);
    assert_eq!(muted["alerts"]["after_consecutive_failures"], 1);
}

store_tests!(
    overdue_too_fast_and_late_open_their_alerts,
    a_one_shot_job_that_fails_alerts_though_completed,
    failures_open_one_alert_a_slack_subscription_receives_and_recovery_resolves,
    a_skipped_run_opens_missed_ack_stops_nothing_and_pausing_resolves,
    bad_alert_input_is_a_422_naming_the_field,
);
