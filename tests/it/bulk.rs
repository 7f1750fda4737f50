//! Labels and bulk actions (DESIGN.md §11.9) end to end through the API,
//! on both stores: a selector picks the jobs, the action is all or nothing,
//! a dry run writes nothing, a bulk run reaches a real receiver.

use crate::support as common;

use std::time::Duration;

use chrono::Timelike;
use common::receiver::Receiver;
use common::{Backend, TestApp, eventually};
use serde_json::{Value, json};

const DEADLINE: Duration = Duration::from_secs(60);

fn job(id: &str, url: &str, labels: Value) -> Value {
    json!({
        "id": id,
        "trigger": {"type": "cron", "expr": "30 2 * * *", "timezone": "Europe/Berlin"},
        "target": {"url": url},
        "labels": labels,
    })
}

async fn states(app: &TestApp, selector: &str) -> Vec<(String, String)> {
    let query: String = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("selector", selector)
        .finish();
    let page = app.get(&format!("/v1/jobs?{query}")).await.json();
    page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| {
            (
                j["id"].as_str().unwrap().to_string(),
                j["state"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

async fn bulk(app: &TestApp, action: &str, body: Value) -> common::Reply {
    app.post(&format!("/v1/jobs/bulk/{action}"), body).await
}

async fn a_selector_picks_the_jobs_and_each_action_is_all_or_nothing(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let receiver = Receiver::start().await;
    let url = receiver.url("/hook");
    for (id, labels) in [
        ("data-1", json!({"team": "data", "tier": "gold"})),
        ("data-2", json!({"team": "data", "tier": "silver"})),
        ("data-3", json!({"team": "data"})),
        ("web-1", json!({"team": "web", "tier": "gold"})),
        ("loose", json!({})),
    ] {
        let created = app.post("/v1/jobs", job(id, &url, labels)).await;
        assert_eq!(created.status, 201, "{}", created.text);
    }
    // The agenda takes the same selector.
    let agenda = app.get("/v1/agenda?selector=tier%3Dgold").await.json();
    let mut listed: Vec<&str> = agenda["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["job_id"].as_str().unwrap())
        .collect();
    listed.dedup();
    listed.sort();
    listed.dedup();
    assert_eq!(listed, ["data-1", "web-1"]);
    let data = ["data-1", "data-2", "data-3"];
    let scheduled = |ids: &[&str]| -> Vec<(String, String)> {
        ids.iter()
            .map(|id| (id.to_string(), "scheduled".to_string()))
            .collect()
    };

    // A dry run answers what it would do and changes nothing.
    let planned = bulk(
        &app,
        "pause",
        json!({"selector": "team=data", "dry_run": true}),
    )
    .await;
    assert_eq!(planned.status, 200, "{}", planned.text);
    assert_eq!(
        planned.json(),
        json!({"matched": 3, "changed": 3, "unchanged": 0, "job_ids": data, "dry_run": true})
    );
    assert_eq!(states(&app, "team=data").await, scheduled(&data));

    // Pause, then again: the second changes nothing.
    let paused = bulk(&app, "pause", json!({"selector": "team=data"}))
        .await
        .json();
    assert_eq!(
        (paused["changed"].clone(), paused["dry_run"].clone()),
        (json!(3), json!(false))
    );
    let all = states(&app, "").await;
    assert_eq!(
        all.iter()
            .filter(|(_, s)| s == "paused")
            .map(|(id, _)| id.as_str())
            .collect::<Vec<_>>(),
        data
    );
    let again = bulk(&app, "pause", json!({"selector": "team=data"}))
        .await
        .json();
    assert_eq!(
        (again["changed"].clone(), again["unchanged"].clone()),
        (json!(0), json!(3))
    );
    let resumed = bulk(&app, "resume", json!({"selector": "team = data, tier"}))
        .await
        .json();
    assert_eq!(resumed["job_ids"], json!(["data-1", "data-2"]));
    assert_eq!(
        states(&app, "team=data,tier").await,
        scheduled(&["data-1", "data-2"])
    );

    // A patch applies to each; one that fits none changes none.
    let patched = bulk(
        &app,
        "patch",
        json!({"selector": "tier in (gold,silver)", "patch": {"max_instances": 3, "labels": {"reviewed": "yes"}}}),
    )
    .await;
    assert_eq!(patched.status, 200, "{}", patched.text);
    for id in ["data-1", "data-2", "web-1"] {
        let got = app.get(&format!("/v1/jobs/{id}")).await.json();
        assert_eq!(got["max_instances"], 3, "{id}");
        assert_eq!(got["labels"]["reviewed"], "yes", "{id}");
    }
    let refused = bulk(
        &app,
        "patch",
        json!({"selector": "reviewed", "patch": {"max_instances": 0}}),
    )
    .await;
    let detail = refused.problem(422);
    assert!(
        detail.starts_with("patch.max_instances: job data-1: "),
        "{detail}"
    );
    assert_eq!(app.get("/v1/jobs/web-1").await.json()["max_instances"], 3);

    // A run of each reaches the receiver, once per job.
    let ran = bulk(&app, "run", json!({"selector": "tier=gold"}))
        .await
        .json();
    assert_eq!(ran["job_ids"], json!(["data-1", "web-1"]));
    eventually(DEADLINE, "both runs reached the receiver", || async {
        (receiver.received("/hook").len() >= 2).then_some(())
    })
    .await;
    for id in ["data-1", "web-1"] {
        let runs = app.get(&format!("/v1/jobs/{id}/runs")).await.json();
        assert_eq!(runs["items"].as_array().unwrap().len(), 1, "{id}");
    }
    assert_eq!(receiver.received("/hook").len(), 2);

    // A delete needs the count it deletes.
    let unconfirmed = bulk(&app, "delete", json!({"selector": "team=data"})).await;
    assert!(
        unconfirmed
            .problem(422)
            .starts_with("confirm: is required to delete")
    );
    let stale = bulk(
        &app,
        "delete",
        json!({"selector": "team=data", "confirm": 2}),
    )
    .await;
    assert!(
        stale
            .problem(409)
            .contains("picks 3 jobs now; nothing was deleted")
    );
    assert_eq!(states(&app, "team=data").await.len(), 3);
    let deleted = bulk(
        &app,
        "delete",
        json!({"selector": "team=data", "confirm": 3}),
    )
    .await
    .json();
    assert_eq!(deleted["changed"], 3);
    let left: Vec<String> = states(&app, "")
        .await
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    assert_eq!(left, ["loose", "web-1"]);

    // Bad input names the field.
    assert!(
        bulk(&app, "pause", json!({"selector": "team in gold"}))
            .await
            .problem(422)
            .starts_with("selector: at character 9")
    );
    assert!(
        bulk(&app, "pause", json!({}))
            .await
            .problem(422)
            .starts_with("selector: is required")
    );
    assert!(
        bulk(&app, "explode", json!({"selector": ""}))
            .await
            .problem(422)
            .starts_with("action: \"explode\" is not a bulk action")
    );
    assert!(
        bulk(&app, "pause", json!({"selector": "", "since": "tomorrow"}))
            .await
            .problem(422)
            .starts_with("since: unknown field")
    );
    // The path's word is reserved: no job can be called `bulk`.
    let reserved = app.put("/v1/jobs/bulk", job("bulk", &url, json!({}))).await;
    assert!(
        reserved
            .problem(422)
            .starts_with("id: \"bulk\" is reserved")
    );
}

/// A timed pause (§11.9) shows its end and reason, and the scheduler
/// resumes the job from its end: a run follows.
async fn a_timed_pause_ends_by_itself(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let receiver = Receiver::start().await;
    let url = receiver.url("/timed");
    let mut body = job("timed", &url, json!({"team": "ops"}));
    body["trigger"] = json!({"type": "interval", "every_s": 1});
    let mut other = body.clone();
    other["id"] = json!("timed-2");
    for body in [body, other] {
        assert_eq!(app.post("/v1/jobs", body).await.status, 201);
    }
    let until = (chrono::Utc::now() + chrono::TimeDelta::seconds(3))
        .with_nanosecond(0)
        .unwrap();
    let until_text = until.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let paused = app
        .post(
            "/v1/jobs/timed/pause",
            json!({"until": until_text, "reason": "  database migration  "}),
        )
        .await;
    assert_eq!(paused.status, 200, "{}", paused.text);
    let paused = paused.json();
    assert_eq!(
        (
            &paused["state"],
            &paused["paused_until"],
            &paused["pause_reason"]
        ),
        (
            &json!("paused"),
            &json!(until_text),
            &json!("database migration")
        )
    );
    // A bulk pause takes the same, for each job picked.
    let bulk_paused = bulk(
        &app,
        "pause",
        json!({"selector": "team=ops,!missing", "until": until_text, "reason": "window"}),
    )
    .await;
    assert_eq!(bulk_paused.json()["changed"], 2, "a new reason is a change");
    assert_eq!(
        app.get("/v1/jobs/timed-2").await.json()["pause_reason"],
        "window"
    );
    let received_before = receiver.received("/timed").len();

    let resumed = eventually(DEADLINE, "the timed pause ended", || async {
        let job = app.get("/v1/jobs/timed").await.json();
        (job["state"] == "scheduled").then_some(job)
    })
    .await;
    assert!(resumed.get("paused_until").is_none(), "{resumed}");
    assert!(resumed.get("pause_reason").is_none(), "{resumed}");
    eventually(DEADLINE, "a run after the pause", || async {
        (receiver.received("/timed").len() > received_before).then_some(())
    })
    .await;
    let runs = app.get("/v1/jobs/timed/runs?limit=500").await.json();
    // Nothing was made between the pause and its end (a run made just
    // ahead and already sent may carry a fire time inside it).
    let instant = |v: &Value| chrono::DateTime::parse_from_rfc3339(v.as_str().unwrap()).unwrap();
    let paused_at = instant(&paused["updated_at"]);
    for run in runs["items"].as_array().unwrap() {
        let made = instant(&run["created_at"]);
        assert!(
            !(made > paused_at && made < until),
            "no run was made while paused: {run}"
        );
    }

    // A plain pause has no end; an end already past is refused.
    let plain = app.post_empty("/v1/jobs/timed/pause").await;
    assert_eq!(plain.status, 200, "{}", plain.text);
    assert!(plain.json().get("paused_until").is_none());
    let refused = app
        .post(
            "/v1/jobs/timed/pause",
            json!({"until": "2020-01-01T00:00:00Z"}),
        )
        .await
        .problem(422);
    assert!(
        refused.starts_with("until: must be in the future"),
        "{refused}"
    );
    let refused = app
        .post("/v1/jobs/timed/pause", json!({"until": "soon"}))
        .await
        .problem(422);
    assert!(refused.starts_with("until:"), "{refused}");
}

store_tests!(
    a_selector_picks_the_jobs_and_each_action_is_all_or_nothing,
    a_timed_pause_ends_by_itself,
);
