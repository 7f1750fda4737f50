//! Config as code (DESIGN.md §11.9) end to end, on both stores: a YAML
//! bundle applied, changed, planned and applied again with a prune; its
//! export round-trips byte for byte, holds no secret, and keeps the
//! secrets it refers to; every change has its audit record.

use crate::support as common;

use common::{Backend, Reply, TestApp};
use cronhook::domain::job::JobId;
use serde_json::{Value, json};

const PLANTED: &str = "planted-apply-secret-91d2";

async fn apply(app: &TestApp, query: &str, content_type: &str, body: &str) -> Reply {
    let response = app
        .client
        .post(app.url(&format!("/v1/apply{query}")))
        .header("content-type", content_type)
        .header("cronhook-reason", "deploy 42")
        .body(body.to_string())
        .send()
        .await
        .expect("sent");
    Reply::from(response).await
}

async fn export(app: &TestApp, query: &str) -> String {
    let reply = app.get(&format!("/v1/export{query}")).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    reply.text
}

async fn ids(app: &TestApp) -> Vec<String> {
    let page = app.get("/v1/jobs").await.json();
    page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["id"].as_str().unwrap().to_string())
        .collect()
}

fn bundle(report_expr: &str, with_cleanup: bool) -> String {
    let cleanup = if with_cleanup {
        r#"
  - id: cleanup
    trigger: {type: interval, every_s: 3600}
    target: {url: "https://example.com/cleanup"}
    labels: {cronhook.io/owner: team-a}"#
    } else {
        ""
    };
    format!(
        r#"apiVersion: cronhook/v1
kind: Bundle
jobs:
  - id: report
    trigger: {{type: cron, expr: "{report_expr}", timezone: Europe/Berlin}}
    target:
      url: "https://ops:{PLANTED}@example.com/report"
      headers: {{authorization: "Bearer {PLANTED}", x-team: data}}
    labels: {{cronhook.io/owner: team-a, team: data}}
  - id: sync
    trigger: {{type: interval, every_s: 600}}
    target: {{url: "https://example.com/sync", method: PUT}}
    max_instances: 2
    labels: {{cronhook.io/owner: team-a}}{cleanup}
"#
    )
}

fn sorted(plan: &Value, key: &str) -> Vec<String> {
    let mut ids: Vec<String> = plan[key]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            v.as_str()
                .map_or_else(|| v["id"].as_str().unwrap().to_string(), str::to_string)
        })
        .collect();
    ids.sort();
    ids
}

async fn a_bundle_is_planned_applied_pruned_and_exported_back(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    // Jobs the bundle does not own: one of another owner, one by hand.
    for (id, labels) in [
        ("theirs", json!({"cronhook.io/owner": "team-b"})),
        ("by-hand", json!({})),
    ] {
        app.create_job(
            json!({"id": id, "trigger": {"type": "interval", "every_s": 60},
                              "target": {"url": "https://example.com/x"}, "labels": labels}),
        )
        .await;
    }

    // A dry run plans the creation and writes nothing.
    let yaml = "application/yaml";
    let planned = apply(&app, "?dry_run=true", yaml, &bundle("0 3 * * *", true)).await;
    assert_eq!(planned.status, 200, "{}", planned.text);
    let plan = planned.json();
    assert_eq!(sorted(&plan, "create"), ["cleanup", "report", "sync"]);
    assert_eq!(plan["dry_run"], true);
    assert_eq!(ids(&app).await, ["by-hand", "theirs"]);

    let applied = apply(&app, "", yaml, &bundle("0 3 * * *", true))
        .await
        .json();
    assert_eq!(sorted(&applied, "create"), ["cleanup", "report", "sync"]);
    assert_eq!(
        ids(&app).await,
        ["by-hand", "cleanup", "report", "sync", "theirs"]
    );
    // The same bundle again changes nothing.
    let again = apply(
        &app,
        "?prune_owner=team-a",
        yaml,
        &bundle("0 3 * * *", true),
    )
    .await
    .json();
    assert_eq!(
        sorted(&again, "unchanged"),
        ["cleanup", "report", "sync"],
        "{again}"
    );
    for key in ["create", "update", "delete"] {
        assert_eq!(again[key], json!([]), "{key}: {again}");
    }

    // The file changes: a new time for report, cleanup gone. The plan
    // says exactly that, and a dry run changes nothing.
    let changed = bundle("30 4 * * *", false);
    let plan = apply(&app, "?dry_run=true&prune_owner=team-a", yaml, &changed)
        .await
        .json();
    assert_eq!(plan["create"], json!([]));
    assert_eq!(plan["delete"], json!(["cleanup"]));
    assert_eq!(plan["unchanged"], json!(["sync"]));
    let update = &plan["update"][0];
    assert_eq!(update["id"], "report");
    assert_eq!(
        update["changes"],
        json!([{"op": "replace", "path": "/trigger/expr", "value": "30 4 * * *"}])
    );
    let hours = |key: &str| -> Vec<String> {
        update[key]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t.as_str().unwrap()[11..16].to_string())
            .collect()
    };
    assert_eq!(hours("next_before").len(), 3);
    assert!(
        hours("next_before")
            .iter()
            .all(|h| h == "02:00" || h == "03:00"),
        "{update}"
    );
    assert!(
        hours("next_after")
            .iter()
            .all(|h| h == "03:30" || h == "04:30"),
        "{update}"
    );
    assert_eq!(
        ids(&app).await,
        ["by-hand", "cleanup", "report", "sync", "theirs"]
    );

    let done = apply(&app, "?prune_owner=team-a", yaml, &changed)
        .await
        .json();
    assert_eq!(done["delete"], json!(["cleanup"]));
    assert_eq!(done["dry_run"], false);
    // Only the owner's job missing from the bundle went.
    assert_eq!(ids(&app).await, ["by-hand", "report", "sync", "theirs"]);

    // A new credential is a change, named but not shown.
    let rotated = changed.replace(&format!("Bearer {PLANTED}"), "Bearer rotated-7f3e");
    let plan = apply(&app, "?dry_run=true", yaml, &rotated).await.json();
    assert_eq!(plan["update"][0]["id"], "report", "{plan}");
    assert_eq!(
        plan["update"][0]["changes"],
        json!([{"op": "replace", "path": "/target/headers/authorization", "value": "***"}])
    );
    assert!(!plan.to_string().contains("rotated-7f3e"), "{plan}");

    // The export holds no secret, and applied back changes nothing, and
    // exports the same bytes again; JSON too.
    let exported = export(&app, "?selector=cronhook.io%2Fowner%3Dteam-a&format=yaml").await;
    assert!(!exported.contains(PLANTED), "{exported}");
    assert!(exported.contains("secret_ref: authorization"), "{exported}");
    assert!(exported.contains("ops:***@example.com"), "{exported}");
    let back = apply(&app, "?prune_owner=team-a", yaml, &exported)
        .await
        .json();
    assert_eq!(sorted(&back, "unchanged"), ["report", "sync"], "{back}");
    assert_eq!(
        export(&app, "?selector=cronhook.io%2Fowner%3Dteam-a&format=yaml").await,
        exported
    );
    let as_json = export(&app, "?selector=cronhook.io%2Fowner%3Dteam-a").await;
    let back = apply(&app, "", "application/json", &as_json).await.json();
    assert_eq!(sorted(&back, "unchanged"), ["report", "sync"], "{back}");
    assert_eq!(
        export(&app, "?selector=cronhook.io%2Fowner%3Dteam-a").await,
        as_json
    );
    // The references kept the secrets.
    let report = app
        .store()
        .get_job(&common::default_tenant(), &JobId::parse("report").unwrap())
        .await
        .unwrap()
        .unwrap();
    let target = report.definition.target.unwrap();
    assert_eq!(target.url.password(), Some(PLANTED));
    assert!(
        target
            .headers
            .iter()
            .any(|(n, v)| n == "authorization" && v.ends_with(PLANTED)),
        "{:?}",
        target.headers
    );

    // Every change has its record, with the reason, and none a secret.
    let trail = app.get("/v1/audit?limit=500").await;
    assert!(!trail.text.contains(PLANTED), "{}", trail.text);
    let records: Vec<(String, String)> = trail.json()["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["reason"] == "deploy 42")
        .map(|r| {
            (
                r["action"].as_str().unwrap().to_string(),
                r["target"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        records,
        [
            ("job.deleted", "job/cleanup"),
            ("job.updated", "job/report"),
            ("job.created", "job/cleanup"),
            ("job.created", "job/sync"),
            ("job.created", "job/report"),
        ]
        .map(|(a, t)| (a.to_string(), t.to_string()))
    );
}

async fn a_bad_bundle_is_refused_whole_and_says_where(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let yaml = "application/yaml";
    let bad_job = "apiVersion: cronhook/v1\nkind: Bundle\njobs:\n  - id: fine\n    trigger: {type: interval, every_s: 60}\n    target: {url: \"https://example.com\"}\n  - id: broken\n    trigger: {type: cron, expr: \"61 * * * *\"}\n    target: {url: \"https://example.com\"}\n";
    let refused = apply(&app, "", yaml, bad_job).await.problem(422);
    assert!(refused.starts_with("jobs[1].trigger.expr:"), "{refused}");
    assert!(ids(&app).await.is_empty(), "all or nothing");
    let refused = apply(&app, "", yaml, "apiVersion: v2\nkind: Bundle\n")
        .await
        .problem(422);
    assert!(
        refused.starts_with("apiVersion: must be \"cronhook/v1\""),
        "{refused}"
    );
    let twice = "apiVersion: cronhook/v1\nkind: Bundle\njobs: [{id: a}, {id: a}]\n";
    let refused = apply(&app, "", yaml, twice).await.problem(422);
    assert!(
        refused.starts_with("jobs[1].id: \"a\" appears twice"),
        "{refused}"
    );
    let refused = apply(&app, "", yaml, "jobs: [unclosed").await.problem(422);
    assert!(
        refused.starts_with("body: is not a YAML bundle"),
        "{refused}"
    );
    let refused = apply(&app, "", "application/json", "{").await.problem(400);
    assert!(refused.contains("not JSON"), "{refused}");
    let refused = apply(&app, "", "text/plain", "{}").await.problem(415);
    assert!(refused.contains("application/yaml"), "{refused}");
    let refused = apply(&app, "?dry_run=maybe", yaml, "{}").await.problem(422);
    assert!(refused.starts_with("dry_run:"), "{refused}");
    let dangling = "apiVersion: cronhook/v1\nkind: Bundle\njobs:\n  - id: new\n    trigger: {type: interval, every_s: 60}\n    target: {url: \"https://example.com\", headers: {authorization: {secret_ref: authorization}}}\n";
    let refused = apply(&app, "", yaml, dangling).await.problem(422);
    assert!(
        refused.starts_with(
            "jobs[0].target.headers.authorization: the job has no \"authorization\" header to keep"
        ),
        "{refused}"
    );
    let nul = "{\"apiVersion\": \"cronhook/v1\", \"kind\": \"Bundle\", \"jobs\": [{\"id\": \"a\", \"name\": \"x\\u0000\"}]}";
    let refused = apply(&app, "", "application/json", nul).await.problem(422);
    assert!(
        refused.starts_with("jobs[0].name: must not contain a NUL"),
        "{refused}"
    );
    // A prune of a bundle that names no jobs would delete all of them.
    let no_jobs = "apiVersion: cronhook/v1\nkind: Bundle\ncalendars: []\n";
    let refused = apply(&app, "?prune_owner=team-a", yaml, no_jobs)
        .await
        .problem(422);
    assert!(
        refused.starts_with("prune_owner: the bundle has no `jobs` field"),
        "{refused}"
    );
    let refused = app.get("/v1/export?format=toml").await.problem(422);
    assert!(refused.starts_with("format:"), "{refused}");
    // Last: the service answers 413 without reading the rest and closes
    // the connection, which a next request on it would find closed.
    let huge = format!(
        "apiVersion: cronhook/v1\nkind: Bundle\n# {}\n",
        "x".repeat(2 << 20)
    );
    let refused = apply(&app, "", yaml, &huge).await.problem(413);
    assert!(refused.contains("larger than"), "{refused}");
}

/// A bundle with calendars, flow keys and a subscription beside its job.
fn full_bundle(holiday: &str, max_in_flight: u32) -> String {
    format!(
        r#"apiVersion: cronhook/v1
kind: Bundle
jobs:
  - id: report
    trigger: {{type: cron, expr: "0 3 * * *", timezone: Europe/Berlin, calendars: {{exclude: [closed]}}}}
    target: {{url: "https://example.com/report"}}
    flow: {{key: vendor-api}}
calendars:
  - id: closed
    timezone: Europe/Berlin
    rules: [{{calendar: holidays}}]
  - id: holidays
    timezone: Europe/Berlin
    rules: [{{date: "{holiday}"}}]
flows:
  - key: vendor-api
    max_in_flight: {max_in_flight}
subscriptions:
  - id: ops
    url: "https://ops:{PLANTED}@example.com/events"
    types: [run.failed]
    job_id: report
"#
    )
}

async fn calendars_flows_and_subscriptions_are_applied_and_exported_back(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let yaml = "application/yaml";
    let section = |plan: &Value, name: &str, key: &str| sorted(&plan[name], key);

    // A dry run plans each section and writes nothing.
    let plan = apply(&app, "?dry_run=true", yaml, &full_bundle("2026-12-24", 2))
        .await
        .json();
    assert_eq!(
        section(&plan, "calendars", "create"),
        ["closed", "holidays"],
        "{plan}"
    );
    assert_eq!(section(&plan, "flows", "create"), ["vendor-api"]);
    assert_eq!(section(&plan, "subscriptions", "create"), ["ops"]);
    assert_eq!(sorted(&plan, "create"), ["report"]);
    assert_eq!(app.get("/v1/calendars").await.json()["items"], json!([]));
    assert_eq!(app.get("/v1/flows").await.json()["items"], json!([]));

    let applied = apply(&app, "", yaml, &full_bundle("2026-12-24", 2)).await;
    assert_eq!(applied.status, 200, "{}", applied.text);
    let secret = app.get("/v1/subscriptions/ops/secret").await.json()["secret"].clone();
    assert!(secret.as_str().unwrap().starts_with("whsec_"), "{secret}");
    let flow = app.get("/v1/flows/vendor-api").await.json();
    assert_eq!(
        (flow["max_in_flight"].clone(), flow["defined_by"].clone()),
        (json!(2), json!("api"))
    );

    // Again: nothing in any section changes.
    let again = apply(&app, "", yaml, &full_bundle("2026-12-24", 2))
        .await
        .json();
    for name in ["calendars", "flows", "subscriptions"] {
        assert_eq!(again[name]["create"], json!([]), "{name}: {again}");
        assert_eq!(again[name]["update"], json!([]), "{name}: {again}");
    }
    assert_eq!(
        section(&again, "calendars", "unchanged"),
        ["closed", "holidays"]
    );

    // A new day and a new limit: the plan shows exactly those.
    let changed = full_bundle("2026-12-31", 3);
    let plan = apply(&app, "?dry_run=true", yaml, &changed).await.json();
    assert_eq!(
        plan["calendars"]["update"],
        json!([{"id": "holidays", "changes": [{"op": "replace", "path": "/rules/0/date", "value": "2026-12-31"}]}]),
        "{plan}"
    );
    assert_eq!(plan["calendars"]["unchanged"], json!(["closed"]));
    assert_eq!(
        plan["flows"]["update"],
        json!([{"id": "vendor-api", "changes": [{"op": "replace", "path": "/max_in_flight", "value": 3}]}])
    );
    assert_eq!(plan["subscriptions"]["unchanged"], json!(["ops"]));
    assert_eq!(plan["unchanged"], json!(["report"]));
    assert_eq!(
        app.get("/v1/flows/vendor-api").await.json()["max_in_flight"],
        2
    );
    apply(&app, "", yaml, &changed).await.json();
    assert_eq!(
        app.get("/v1/flows/vendor-api").await.json()["max_in_flight"],
        3
    );

    // The whole export holds every section and no secret; applied back
    // it changes nothing and exports the same bytes; the subscription's
    // password and signing secret stay.
    let exported = export(&app, "?format=yaml").await;
    assert!(!exported.contains(PLANTED), "{exported}");
    for part in [
        "calendars:",
        "flows:",
        "subscriptions:",
        "ops:***@example.com",
        "2026-12-31",
    ] {
        assert!(exported.contains(part), "{part}: {exported}");
    }
    let back = apply(&app, "", yaml, &exported).await.json();
    assert_eq!(
        section(&back, "subscriptions", "unchanged"),
        ["ops"],
        "{back}"
    );
    assert_eq!(
        section(&back, "flows", "unchanged"),
        ["vendor-api"],
        "{back}"
    );
    assert_eq!(export(&app, "?format=yaml").await, exported);
    assert_eq!(
        app.get("/v1/subscriptions/ops/secret").await.json()["secret"],
        secret
    );
    let stored = app
        .store()
        .get_subscription(&common::default_tenant(), "ops")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.target.url.password(), Some(PLANTED));
    // With a selector, the jobs it picks only.
    let picked = export(&app, "?selector=team%21%3Dnobody").await;
    let picked: Value = serde_json::from_str(&picked).unwrap();
    assert!(picked.get("calendars").is_none(), "{picked}");

    // Every change has its record; none holds the secret.
    let trail = app.get("/v1/audit?limit=500").await;
    assert!(!trail.text.contains(PLANTED), "{}", trail.text);
    let mut records: Vec<String> = trail.json()["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["reason"] == "deploy 42")
        .map(|r| {
            format!(
                "{} {}",
                r["action"].as_str().unwrap(),
                r["target"].as_str().unwrap()
            )
        })
        .collect();
    records.sort();
    assert_eq!(
        records,
        [
            "calendar.created calendar/closed",
            "calendar.created calendar/holidays",
            "calendar.updated calendar/holidays",
            "flow.created flow/vendor-api",
            "flow.updated flow/vendor-api",
            "job.created job/report",
            "subscription.created subscription/ops",
        ]
    );

    // All or nothing: a bad job keeps a good calendar out; a cycle is
    // refused where it is.
    let bad = "apiVersion: cronhook/v1\nkind: Bundle\ncalendars:\n  - {id: extra, rules: []}\njobs:\n  - {id: broken, trigger: {type: cron, expr: \"61 * * * *\"}, target: {url: \"https://example.com\"}}\n";
    let refused = apply(&app, "", yaml, bad).await.problem(422);
    assert!(refused.starts_with("jobs[0].trigger.expr:"), "{refused}");
    assert_eq!(app.get("/v1/calendars/extra").await.status, 404);
    let cycle = "apiVersion: cronhook/v1\nkind: Bundle\ncalendars:\n  - {id: x, rules: [{calendar: y}]}\n  - {id: y, rules: [{calendar: x}]}\n";
    let refused = apply(&app, "", yaml, cycle).await.problem(422);
    assert!(refused.starts_with("calendars[0].rules:"), "{refused}");
    let foreign = "apiVersion: cronhook/v1\nkind: Bundle\nsubscriptions:\n  - {id: leak, url: \"ftp://example.com/x\", types: [run.failed]}\n";
    let refused = apply(&app, "", yaml, foreign).await.problem(422);
    assert!(refused.starts_with("subscriptions[0].url:"), "{refused}");
}

store_tests!(
    calendars_flows_and_subscriptions_are_applied_and_exported_back,
    a_bundle_is_planned_applied_pruned_and_exported_back,
    a_bad_bundle_is_refused_whole_and_says_where,
);
