//! The audit trail (DESIGN.md §11.9) end to end, on both stores: each
//! change through the API, the dashboard's bulk path and the scheduler's
//! timed resume has its record with who, from where, why and what
//! changed; a refused call is recorded; no record holds a planted secret.

use crate::support as common;

use std::time::Duration;

use common::{Backend, TestApp, eventually, send};
use reqwest::Method;
use serde_json::{Value, json};

const DEADLINE: Duration = Duration::from_secs(60);
const PLANTED: &str = "planted-secret-5f1c";

async fn trail(app: &TestApp, token: &str, query: &str) -> Vec<Value> {
    let reply = send(
        app,
        Method::GET,
        &format!("/v1/audit?{query}"),
        Some(token),
        &[],
        None,
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    reply.json()["items"].as_array().unwrap().clone()
}

fn actions(records: &[Value]) -> Vec<&str> {
    records
        .iter()
        .map(|r| r["action"].as_str().unwrap())
        .collect()
}

async fn every_change_has_its_record_and_no_secret(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let root = app
        .make_token(cronhook::domain::auth::Role::Root, "default")
        .await;
    let made = send(
        &app,
        Method::POST,
        "/v1/tokens",
        Some(&root),
        &[],
        Some(json!({"role": "write", "name": "deployer"})),
    )
    .await
    .json();
    let (writer, writer_id) = (
        made["token"].as_str().unwrap().to_string(),
        made["id"].as_str().unwrap().to_string(),
    );
    let reader = send(
        &app,
        Method::POST,
        "/v1/tokens",
        Some(&root),
        &[],
        Some(json!({"role": "read", "name": "dashboards"})),
    )
    .await
    .json()["token"]
        .as_str()
        .unwrap()
        .to_string();
    let as_writer = |method: Method, path: &str, reason: Option<&str>, body: Option<Value>| {
        let (app, writer, path) = (&app, writer.clone(), path.to_string());
        let reason = reason.map(str::to_string);
        async move {
            let headers: Vec<(&str, &str)> = match &reason {
                Some(r) => vec![("cronhook-reason", r.as_str())],
                None => Vec::new(),
            };
            send(app, method, &path, Some(&writer), &headers, body).await
        }
    };

    // Created with a planted secret in a header, the URL and the secret.
    let created = as_writer(
        Method::POST,
        "/v1/jobs",
        Some("ticket OPS-12: nightly export"),
        Some(json!({
            "id": "export",
            "trigger": {"type": "cron", "expr": "0 3 * * *", "timezone": "Europe/Berlin"},
            "target": {"url": format!("https://user:{PLANTED}@example.com/hook"),
                       "headers": {"authorization": format!("Bearer {PLANTED}"), "x-team": "data"}},
            "secret": format!("whsec_{}", "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"),
            "labels": {"team": "data"},
        })),
    )
    .await;
    assert_eq!(created.status, 201, "{}", created.text);
    let patched = as_writer(
        Method::PATCH,
        "/v1/jobs/export",
        None,
        Some(json!({"max_instances": 2,
                    "target": {"headers": {"authorization": format!("Bearer other-{PLANTED}")}}})),
    )
    .await;
    assert_eq!(patched.status, 200, "{}", patched.text);
    let paused = as_writer(
        Method::POST,
        "/v1/jobs/export/pause",
        None,
        Some(json!({"reason": "db migration"})),
    )
    .await;
    assert_eq!(paused.status, 200, "{}", paused.text);
    let resumed = as_writer(Method::POST, "/v1/jobs/export/resume", None, None).await;
    assert_eq!(resumed.status, 200, "{}", resumed.text);
    let run = as_writer(Method::POST, "/v1/jobs/export/run", None, None).await;
    assert_eq!(run.status, 201, "{}", run.text);
    let bulk = as_writer(
        Method::POST,
        "/v1/jobs/bulk/pause",
        Some("freeze"),
        Some(json!({"selector": "team=data"})),
    )
    .await;
    assert_eq!(bulk.status, 200, "{}", bulk.text);

    // A read token may not delete: refused, and recorded.
    let refused = send(
        &app,
        Method::DELETE,
        "/v1/jobs/export",
        Some(&reader),
        &[],
        None,
    )
    .await;
    assert_eq!(refused.status, 403, "{}", refused.text);
    // A reason too long is refused before anything is done.
    let long = "x".repeat(501);
    let refused = as_writer(Method::DELETE, "/v1/jobs/export", Some(&long), None).await;
    assert!(
        refused
            .problem(422)
            .starts_with("cronhook-reason: must be at most 500"),
        "{}",
        refused.text
    );
    let deleted = as_writer(Method::DELETE, "/v1/jobs/export", Some("retired"), None).await;
    assert_eq!(deleted.status, 204, "{}", deleted.text);

    let records = trail(&app, &writer, "target=job/export").await;
    assert_eq!(
        actions(&records),
        [
            "job.deleted",
            "job.paused",
            "job.run",
            "job.resumed",
            "job.paused",
            "job.updated",
            "job.created"
        ]
    );
    for record in &records {
        assert_eq!(
            record["actor"],
            json!({"type": "token", "token_id": writer_id, "name": "deployer", "role": "write"}),
            "{record}"
        );
        assert_eq!(record["source_ip"], "127.0.0.1", "{record}");
        assert!(
            record["request_id"]
                .as_str()
                .is_some_and(|id| !id.is_empty()),
            "{record}"
        );
    }
    let created = &records[6];
    assert_eq!(created["reason"], "ticket OPS-12: nightly export");
    assert_eq!(
        created["changes"][0]["value"]["target"]["headers"]["authorization"],
        "***"
    );
    let updated = &records[5];
    assert_eq!(
        updated["changes"],
        json!([
            {"op": "replace", "path": "/max_instances", "value": 2},
            {"op": "replace", "path": "/target/headers/authorization", "value": "***"}
        ]),
        "a header's new secret value is named, never shown"
    );
    let paused = &records[4]["changes"].to_string();
    assert!(paused.contains(r#""value":"db migration""#), "{paused}");
    assert_eq!(records[1]["reason"], "freeze");
    assert_eq!(records[0]["reason"], "retired");
    assert_eq!(
        records[0]["changes"][1],
        json!({"op": "remove", "path": ""})
    );

    let denied = trail(&app, &writer, "action=denied").await;
    assert_eq!(denied.len(), 1, "{denied:?}");
    assert_eq!(denied[0]["target"], "DELETE /v1/jobs/export");
    assert_eq!(denied[0]["actor"]["role"], "read");
    assert_eq!(denied[0]["actor"]["name"], "dashboards");

    // Filters and pages.
    assert_eq!(
        trail(&app, &writer, &format!("actor={writer_id}"))
            .await
            .len(),
        7
    );
    assert_eq!(trail(&app, &writer, "action=job.paused").await.len(), 2);
    let first = trail(&app, &writer, "limit=3").await;
    let page = send(
        &app,
        Method::GET,
        "/v1/audit?limit=3",
        Some(&writer),
        &[],
        None,
    )
    .await
    .json();
    let cursor = page["next_cursor"].as_str().unwrap();
    let next = trail(&app, &writer, &format!("limit=3&cursor={cursor}")).await;
    // The first page: deleted, denied, the bulk pause; then the run.
    assert_eq!(next[0]["id"], records[2]["id"], "{first:?} then {next:?}");
    assert!(
        trail(&app, &writer, "after=2999-01-01T00:00:00Z")
            .await
            .is_empty()
    );
    let bad = send(
        &app,
        Method::GET,
        "/v1/audit?after=soon",
        Some(&writer),
        &[],
        None,
    )
    .await;
    assert!(bad.problem(422).starts_with("after:"), "{}", bad.text);
    let nul = send(
        &app,
        Method::GET,
        "/v1/audit/export?actor=a%00b",
        Some(&writer),
        &[],
        None,
    )
    .await;
    assert!(
        nul.problem(422)
            .starts_with("actor: must not contain a NUL"),
        "{}",
        nul.text
    );
    // The trail is the writers'.
    let read = send(&app, Method::GET, "/v1/audit", Some(&reader), &[], None).await;
    assert_eq!(read.status, 403);

    // A timed pause's end is the system's change.
    let again = as_writer(
        Method::POST,
        "/v1/jobs",
        None,
        Some(
            json!({"id": "timed", "trigger": {"type": "interval", "every_s": 3600},
                    "target": {"url": "https://example.com/hook"}}),
        ),
    )
    .await;
    assert_eq!(again.status, 201, "{}", again.text);
    let until = (chrono::Utc::now() + chrono::TimeDelta::seconds(2)).to_rfc3339();
    let paused = as_writer(
        Method::POST,
        "/v1/jobs/timed/pause",
        None,
        Some(json!({"until": until})),
    )
    .await;
    assert_eq!(paused.status, 200, "{}", paused.text);
    let resumed: Vec<Value> = eventually(DEADLINE, "the timed pause ends", || async {
        let records = trail(&app, &writer, "target=job/timed&actor=system").await;
        (!records.is_empty()).then_some(records)
    })
    .await;
    assert_eq!(actions(&resumed), ["job.resumed"]);
    assert_eq!(resumed[0]["actor"], json!({"type": "system"}));
    assert_eq!(resumed[0]["request_id"], Value::Null);

    // A secret rotated and a token revoked are changes too.
    let rotated = as_writer(Method::POST, "/v1/jobs/timed/secret/rotate", None, None).await;
    assert_eq!(rotated.status, 200, "{}", rotated.text);
    let new_secret = rotated.json()["secret"].as_str().unwrap().to_string();
    let reader_id = trail(&app, &writer, "action=denied").await[0]["actor"]["token_id"]
        .as_str()
        .unwrap()
        .to_string();
    let revoked = send(
        &app,
        Method::DELETE,
        &format!("/v1/tokens/{reader_id}"),
        Some(&root),
        &[("cronhook-reason", "left the team")],
        None,
    )
    .await;
    assert_eq!(revoked.status, 204, "{}", revoked.text);

    // The export: NDJSON, oldest first, every record, no secret.
    let export = send(
        &app,
        Method::GET,
        "/v1/audit/export",
        Some(&writer),
        &[],
        None,
    )
    .await;
    assert_eq!(export.status, 200);
    assert_eq!(export.content_type, "application/x-ndjson");
    let lines: Vec<Value> = export
        .text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    // Both refusals are there: the delete and the reader's look at the
    // trail; the tokens' making and revoking, and the rotation.
    // The root token, made in the store as `cronhook token create` does,
    // is the system's change.
    assert_eq!(lines.len(), 17, "{}", export.text);
    assert_eq!(lines[0]["action"], "token.created");
    assert_eq!(lines[0]["actor"], json!({"type": "system"}));
    assert_eq!(lines[1]["changes"][0]["value"]["name"], "deployer");
    assert_eq!(lines[1]["actor"]["role"], "root");
    assert_eq!(lines[3]["action"], "job.created");
    assert_eq!(lines[11]["target"], "GET /v1/audit");
    assert_eq!(lines[14]["action"], "job.resumed");
    assert_eq!(lines[15]["action"], "job.secret_rotated");
    assert_eq!(
        (lines[16]["action"].as_str(), lines[16]["reason"].as_str()),
        (Some("token.revoked"), Some("left the team"))
    );
    for secret in [
        PLANTED,
        "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        &new_secret,
        &writer,
        &reader,
    ] {
        assert!(!export.text.contains(secret), "{}", export.text);
    }
}

/// Calendars, subscriptions, flow keys, backfills, ping keys and quotas:
/// each change through the API has its record, and none a secret.
async fn changes_beside_jobs_have_their_records(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let with_reason = |method: Method, path: &str, body: Option<Value>| {
        let (app, path) = (&app, path.to_string());
        async move {
            send(
                app,
                method,
                &path,
                None,
                &[("cronhook-reason", "OPS-7")],
                body,
            )
            .await
        }
    };
    let ok =
        |reply: &common::Reply, status: u16| assert_eq!(reply.status, status, "{}", reply.text);

    // A chat webhook's secret is its URL's path.
    let hook = |path: &str| format!("https://hooks.example.com/services/{path}");
    let sub = |path: &str| json!({"url": hook(path), "types": ["run.failed"], "format": "slack"});
    ok(
        &with_reason(Method::PUT, "/v1/subscriptions/ops", Some(sub(PLANTED))).await,
        201,
    );
    let other = format!("other-{PLANTED}");
    ok(
        &with_reason(Method::PUT, "/v1/subscriptions/ops", Some(sub(&other))).await,
        200,
    );
    ok(
        &with_reason(Method::DELETE, "/v1/subscriptions/ops", None).await,
        204,
    );

    let calendar = |day: &str| json!({"timezone": "Europe/Berlin", "rules": [{"date": day}]});
    let put = with_reason(
        Method::PUT,
        "/v1/calendars/holidays",
        Some(calendar("2026-12-24")),
    );
    ok(&put.await, 201);
    let put = with_reason(
        Method::PUT,
        "/v1/calendars/holidays",
        Some(calendar("2026-12-25")),
    );
    ok(&put.await, 200);
    ok(
        &with_reason(Method::DELETE, "/v1/calendars/holidays", None).await,
        204,
    );

    let limits = json!({"max_in_flight": 2});
    ok(
        &with_reason(Method::PUT, "/v1/flows/vendor-api", Some(limits)).await,
        200,
    );
    ok(
        &with_reason(Method::POST, "/v1/flows/vendor-api/pause", None).await,
        200,
    );
    ok(
        &with_reason(Method::POST, "/v1/flows/vendor-api/resume", None).await,
        200,
    );

    app.create_job(
        json!({"id": "hourly", "trigger": {"type": "cron", "expr": "0 * * * *"},
                          "target": {"url": "https://example.com/hourly"}}),
    )
    .await;
    let now = chrono::Utc::now();
    let range = json!({"from": (now - chrono::TimeDelta::hours(3)).to_rfc3339(),
                       "to": (now - chrono::TimeDelta::hours(1)).to_rfc3339()});
    let backfill = with_reason(Method::POST, "/v1/jobs/hourly/backfill", Some(range)).await;
    ok(&backfill, 201);
    let backfill_id = backfill.json()["id"].as_str().unwrap().to_string();
    ok(
        &with_reason(
            Method::DELETE,
            &format!("/v1/backfills/{backfill_id}"),
            None,
        )
        .await,
        200,
    );

    app.create_job(
        json!({"id": "heartbeat", "trigger": {"type": "interval", "every_s": 3600},
                          "target": null, "monitor": {"grace_s": 60}}),
    )
    .await;
    let rotated = with_reason(Method::POST, "/v1/jobs/heartbeat/ping-key/rotate", None).await;
    ok(&rotated, 200);
    let ping_url = rotated.json()["ping_url"].as_str().unwrap().to_string();
    let ping_key = ping_url.rsplit('/').next().unwrap().to_string();

    let quotas =
        json!({"jobs": 50, "subscriptions": null, "runs_per_minute": null, "catchup_max": null});
    ok(
        &with_reason(Method::PUT, "/v1/tenants/default/quotas", Some(quotas)).await,
        200,
    );

    let page = app.get("/v1/audit?limit=100").await;
    ok(&page, 200);
    let records: Vec<Value> = page.json()["items"].as_array().unwrap().clone();
    let ours: Vec<(&str, &str)> = records
        .iter()
        .filter(|r| r["reason"] == "OPS-7")
        .map(|r| (r["action"].as_str().unwrap(), r["target"].as_str().unwrap()))
        .rev()
        .collect();
    let backfilled = "job/hourly";
    assert_eq!(
        ours,
        [
            ("subscription.created", "subscription/ops"),
            ("subscription.updated", "subscription/ops"),
            ("subscription.deleted", "subscription/ops"),
            ("calendar.created", "calendar/holidays"),
            ("calendar.updated", "calendar/holidays"),
            ("calendar.deleted", "calendar/holidays"),
            ("flow.created", "flow/vendor-api"),
            ("flow.paused", "flow/vendor-api"),
            ("flow.resumed", "flow/vendor-api"),
            ("job.backfilled", backfilled),
            ("job.backfill_cancelled", backfilled),
            ("job.ping_key_rotated", "job/heartbeat"),
            ("tenant.quotas_set", "tenant/default"),
        ],
        "{}",
        page.text
    );
    let by_action = |action: &str| {
        records
            .iter()
            .find(|r| r["action"] == action)
            .map(|r| r["changes"].clone())
            .unwrap()
    };
    // A new path is a change, named but not shown.
    assert_eq!(
        by_action("subscription.updated"),
        json!([{"op": "replace", "path": "/url", "value": "https://hooks.example.com/***"}])
    );
    assert_eq!(
        by_action("calendar.updated"),
        json!([{"op": "replace", "path": "/rules/0/date", "value": "2026-12-25"}])
    );
    assert_eq!(
        by_action("tenant.quotas_set"),
        json!([{"op": "replace", "path": "/jobs", "value": 50}])
    );
    assert_eq!(
        records
            .iter()
            .filter(|r| r["actor"]["type"] == "open")
            .count(),
        records.len()
    );
    assert!(ping_key.len() > 8, "{ping_url}");
    for secret in [PLANTED, ping_key.as_str()] {
        assert!(!page.text.contains(secret), "{}", page.text);
    }
}

store_tests!(
    every_change_has_its_record_and_no_secret,
    changes_beside_jobs_have_their_records,
);
