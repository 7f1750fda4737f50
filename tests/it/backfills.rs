//! Backfill (DESIGN.md §11.3): runs for a range's occurrences that have
//! none, sent one after another in `scheduled_for` order, each rendered
//! with its own context; idempotent, reprocessing, dry runs and
//! cancelling. End to end through the API to a real receiver, on both
//! stores.

use crate::support as common;

use std::time::Duration;

use chrono::{DurationRound, TimeDelta, Utc};
use common::receiver::{Answer, Receiver};
use common::{Backend, TestApp, eventually};
use serde_json::{Value, json};

const DEADLINE: Duration = Duration::from_secs(60);

fn rfc3339(t: chrono::DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// A paused hourly job whose grid starts ten hours ago: five of its past
/// occurrences, `start`, are the backfill's range.
async fn hourly_job(app: &TestApp, id: &str, target: Value) -> chrono::DateTime<Utc> {
    let start = Utc::now().duration_trunc(TimeDelta::hours(1)).unwrap() - TimeDelta::hours(10);
    app.create_job(json!({
        "id": id,
        "trigger": {"type": "interval", "every_s": 3600, "start_at": rfc3339(start)},
        "target": target,
        "paused": true
    }))
    .await;
    start
}

async fn done(app: &TestApp, location: &str) -> Value {
    eventually(DEADLINE, "the backfill done", || async {
        let b = app.get(location).await.json();
        (b["done"] == true).then_some(b)
    })
    .await
}

async fn a_backfill_sends_each_occurrence_in_order_one_at_a_time(backend: Backend) {
    let receiver = Receiver::start().await;
    for _ in 0..5 {
        receiver.script("/bf", [Answer::After(Duration::from_millis(200), 200)]);
    }
    let app = TestApp::spawn(backend).await;
    let target = json!({"url": receiver.url("/bf"), "template": true,
                        "body": {"for": "{{ run.scheduled_for }}", "cause": "{{ run.cause }}"}});
    let start = hourly_job(&app, "hourly", target).await;
    let range = json!({"from": rfc3339(start), "to": rfc3339(start + TimeDelta::hours(4))});

    let mut dry = range.clone();
    dry["dry_run"] = json!(true);
    let listed = app.post("/v1/jobs/hourly/backfill", dry).await;
    assert_eq!(listed.status, 200, "{}", listed.text);
    let listed = listed.json();
    assert_eq!(
        (
            listed["occurrences"].as_array().unwrap().len(),
            &listed["without_run"]
        ),
        (5, &json!(5))
    );
    assert_eq!(
        listed["occurrences"][0],
        json!({"scheduled_for": rfc3339(start), "run_id": null})
    );
    assert!(
        receiver.received("/bf").is_empty(),
        "a dry run makes nothing"
    );

    let made = app.post("/v1/jobs/hourly/backfill", range.clone()).await;
    assert_eq!(made.status, 201, "{}", made.text);
    let location = made.headers["location"].to_str().unwrap().to_string();
    let made = made.json();
    assert_eq!(
        (&made["occurrences"], &made["runs_made"], &made["overlap"]),
        (&json!(5), &json!(5), &json!("buffer_all"))
    );
    assert_eq!(
        location,
        format!("/v1/backfills/{}", made["id"].as_str().unwrap())
    );
    let finished = done(&app, &location).await;
    assert_eq!(finished["runs"], json!({"succeeded": 5}), "{finished}");

    // One at a time (max_instances 1), oldest first, each rendered with
    // its own occurrence.
    assert_eq!(receiver.most_open_at_once("/bf"), 1);
    let sent: Vec<Value> = receiver
        .received("/bf")
        .iter()
        .map(|r| serde_json::from_slice(&r.body).unwrap())
        .collect();
    let expected: Vec<Value> = (0..5)
        .map(|h| json!({"for": rfc3339(start + TimeDelta::hours(h)), "cause": "backfill"}))
        .collect();
    assert_eq!(sent, expected);
    let runs = app.get("/v1/jobs/hourly/runs").await.json();
    let run = &runs["items"][0];
    assert_eq!(
        (&run["cause"], &run["backfill_id"]),
        (&json!("backfill"), &made["id"])
    );

    // Again: every occurrence has its run, so nothing is made.
    let again = app.post("/v1/jobs/hourly/backfill", range).await.json();
    assert_eq!(again["runs_made"], 0, "{again}");
    // Reprocessing two of them: new runs beside the old ones.
    let replay = app
        .post(
            "/v1/jobs/hourly/backfill",
            json!({"from": rfc3339(start), "to": rfc3339(start + TimeDelta::hours(1)), "reprocess": true}),
        )
        .await;
    assert_eq!(replay.status, 201, "{}", replay.text);
    let replay_location = replay.headers["location"].to_str().unwrap().to_string();
    assert_eq!(replay.json()["runs_made"], 2);
    done(&app, &replay_location).await;
    let runs = app.get("/v1/jobs/hourly/runs?limit=100").await.json();
    let replays: Vec<&Value> = runs["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["replay_of"].is_string())
        .collect();
    assert_eq!(replays.len(), 2, "{runs}");
    assert_eq!(receiver.received("/bf").len(), 7);
}

async fn cancelling_a_backfill_cancels_its_pending_runs(backend: Backend) {
    let receiver = Receiver::start().await;
    receiver.script("/slow", [Answer::After(Duration::from_secs(2), 200)]);
    let app = TestApp::spawn(backend).await;
    let start = hourly_job(&app, "slow", json!({"url": receiver.url("/slow")})).await;
    let made = app
        .post(
            "/v1/jobs/slow/backfill",
            json!({"from": rfc3339(start), "to": rfc3339(start + TimeDelta::hours(3))}),
        )
        .await;
    assert_eq!(made.status, 201, "{}", made.text);
    let location = made.headers["location"].to_str().unwrap().to_string();
    assert_eq!(made.json()["runs"], json!({"pending": 1, "waiting": 3}));
    eventually(DEADLINE, "the first run sent", || async {
        (!receiver.received("/slow").is_empty()).then_some(())
    })
    .await;
    let cancelled = app.request(reqwest::Method::DELETE, &location, None).await;
    assert_eq!(cancelled.status, 200, "{}", cancelled.text);
    assert!(cancelled.json()["cancelled_at"].is_string());
    let finished = done(&app, &location).await;
    assert_eq!(
        finished["runs"],
        json!({"succeeded": 1, "cancelled": 3}),
        "{finished}"
    );
    assert_eq!(receiver.received("/slow").len(), 1);
    let events = eventually(DEADLINE, "the cancellations' events", || async {
        let events = app.get("/v1/events?type=run.cancelled").await.json();
        let items = events["items"].as_array().cloned().unwrap_or_default();
        (items.len() == 3).then_some(items)
    })
    .await;
    assert_eq!(events[0]["data"]["reason"], "backfill_cancelled");
}

async fn bad_backfills_are_refused_naming_the_field(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let start = hourly_job(&app, "h", json!({"url": "https://example.com/"})).await;
    let refused = |body: Value| {
        let app = &app;
        async move { app.post("/v1/jobs/h/backfill", body).await.problem(422) }
    };
    let (from, to) = (rfc3339(start), rfc3339(start + TimeDelta::hours(5)));
    assert!(
        refused(json!({"to": to}))
            .await
            .starts_with("from: is required")
    );
    assert!(
        refused(json!({"from": to, "to": from}))
            .await
            .starts_with("to: must not be before from")
    );
    assert!(
        refused(json!({"from": from, "to": to, "max": 3}))
            .await
            .starts_with("max: the range holds more than 3 occurrences")
    );
    assert!(
        refused(json!({"from": from, "to": to, "max": 10001}))
            .await
            .starts_with("max: must be between 1 and 10000")
    );
    assert!(
        refused(json!({"from": from, "to": to, "overlap": "replace"}))
            .await
            .starts_with("overlap: unknown variant `replace`")
    );
    assert_eq!(
        app.post("/v1/jobs/nobody/backfill", json!({"from": from, "to": to}))
            .await
            .problem(404),
        "no job with id \"nobody\""
    );
    assert_eq!(
        app.get("/v1/backfills/0190c4a4-0000-7000-8000-000000000000")
            .await
            .problem(404),
        "no backfill with id \"0190c4a4-0000-7000-8000-000000000000\""
    );
}

async fn a_backfill_into_the_future_waits_and_the_scheduler_makes_no_second_run(backend: Backend) {
    let receiver = Receiver::start().await;
    let app = TestApp::spawn(backend).await;
    let start = Utc::now().duration_trunc(TimeDelta::seconds(1)).unwrap() + TimeDelta::seconds(3);
    app.create_job(json!({
        "id": "ahead",
        "trigger": {"type": "interval", "every_s": 2, "start_at": rfc3339(start)},
        "target": {"url": receiver.url("/ahead")},
        "max_instances": 3
    }))
    .await;
    let last = start + TimeDelta::seconds(4);
    let made = app
        .post(
            "/v1/jobs/ahead/backfill",
            json!({"from": rfc3339(start), "to": rfc3339(last)}),
        )
        .await;
    assert_eq!(made.status, 201, "{}", made.text);
    // Past the range, the scheduler's own runs go on.
    let sent_for = |r: &common::receiver::Received| {
        chrono::DateTime::parse_from_rfc3339(r.header("cronhook-scheduled-for"))
            .unwrap()
            .with_timezone(&Utc)
    };
    eventually(DEADLINE, "a run after the range", || async {
        receiver
            .received("/ahead")
            .iter()
            .any(|r| sent_for(r) > last)
            .then_some(())
    })
    .await;
    let mut in_range: Vec<_> = receiver
        .received("/ahead")
        .iter()
        .map(sent_for)
        .filter(|t| *t <= last)
        .collect();
    in_range.sort();
    let expected: Vec<_> = (0..3).map(|i| start + TimeDelta::seconds(2 * i)).collect();
    assert_eq!(
        in_range, expected,
        "one request per occurrence, none before its instant"
    );
    for r in receiver.received("/ahead") {
        assert!(r.at >= sent_for(&r), "sent before its instant");
    }
}

async fn the_dashboard_lists_a_dry_run_then_makes_the_backfill(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let start = hourly_job(&app, "dash", json!({"url": "https://example.com/"})).await;
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let (from, to) = (rfc3339(start), rfc3339(start + TimeDelta::hours(2)));
    let page = client
        .get(app.url(&format!("/ui/jobs/dash/backfill?from={from}&to={to}")))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    let csrf_cookie = common::set_cookie(&page, "cronhook_csrf").map(|l| common::cookie_value(&l));
    let html = page.text().await.unwrap();
    assert!(html.contains("3 occurrences, 3 without a run"), "{html}");
    assert!(html.contains("Backfill 3 occurrences"), "{html}");
    let csrf = html
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("the form's CSRF token")
        .to_string();
    let mut post = client
        .post(app.url("/ui/jobs/dash/backfill"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("csrf={csrf}&from={from}&to={to}"));
    if let Some(cookie) = csrf_cookie {
        post = post.header("cookie", format!("cronhook_csrf={cookie}"));
    }
    let made = post.send().await.unwrap();
    assert_eq!(made.status(), 303, "{}", made.text().await.unwrap());
    let runs = app.get("/v1/jobs/dash/runs").await.json();
    assert_eq!(runs["items"].as_array().unwrap().len(), 3, "{runs}");
    // A bad range says which field, on the page.
    let bad = client
        .get(app.url(&format!("/ui/jobs/dash/backfill?from=yesterday&to={to}")))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 422);
    assert!(bad.text().await.unwrap().contains("from: "));
}

store_tests!(
    a_backfill_sends_each_occurrence_in_order_one_at_a_time,
    cancelling_a_backfill_cancels_its_pending_runs,
    bad_backfills_are_refused_naming_the_field,
    the_dashboard_lists_a_dry_run_then_makes_the_backfill,
    a_backfill_into_the_future_waits_and_the_scheduler_makes_no_second_run,
);
