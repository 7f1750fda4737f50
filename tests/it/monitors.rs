//! Monitor-only jobs end to end on both stores (DESIGN.md §11.5): work
//! Cronhook does not start, reported by `curl` from a shell as a crontab
//! line would, through every state; a ping that does not come opens
//! `ping_missing`, also when every instance was down at the time.

use crate::support as common;

use std::time::{Duration, Instant};

use chrono::Utc;
use common::receiver::Receiver;
use common::{Backend, TestApp, eventually};
use serde_json::{Value, json};

const DEADLINE: Duration = Duration::from_secs(60);

/// Runs `script` in bash with `URL` set, as a crontab line would.
async fn shell(script: &str, url: &str) -> String {
    let (script, url) = (script.to_string(), url.to_string());
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new("bash")
            .arg("-c")
            .arg(script)
            .env("URL", url)
            .output()
            .expect("bash runs")
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// The job's newest run once `holds` is true of it.
async fn newest_run(app: &TestApp, job: &str, what: &str, holds: impl Fn(&Value) -> bool) -> Value {
    eventually(DEADLINE, what, || async {
        let runs = app.get(&format!("/v1/jobs/{job}/runs")).await.json();
        let newest = runs["items"].as_array()?.first()?.clone();
        holds(&newest).then_some(newest)
    })
    .await
}

async fn a_monitor_driven_by_curl_goes_through_every_state(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let job = app
        .create_job(json!({
            "id": "backup", "trigger": {"type": "interval", "every_s": 3600},
            "target": null, "monitor": {"grace_s": 3600}, "next_run_at": "now"
        }))
        .await;
    assert_eq!(job["target"], Value::Null);
    assert_eq!(job["monitor"]["grace_s"], 3600);
    let url = job["monitor"]["ping_url"].as_str().unwrap().to_string();
    assert!(url.starts_with(&app.url("/v1/ping/")), "{url}");

    // Its fire time makes a run that awaits the ping.
    let run = newest_run(&app, "backup", "an awaiting run", |r| {
        r["status"] == "awaiting"
    })
    .await;
    assert_eq!(run["cause"], "schedule");
    let run_id = run["id"].as_str().unwrap().to_string();

    // Started, then exit code 3 with the log's tail as the body.
    let said = shell(
        r#"for k in start 3; do echo "disk full" | curl -fsS --data-binary @- "$URL/$k"; echo; done"#,
        &url,
    )
    .await;
    assert!(said.contains(r#""status":"running""#), "{said}");
    assert!(said.contains(r#""status":"failed""#), "{said}");
    let detail = app.get(&format!("/v1/runs/{run_id}")).await.json();
    assert_eq!(detail["status"], "failed", "{detail}");
    let attempt = &detail["attempts"][0];
    assert_eq!(attempt["outcome_reason"], "the job exited with code 3");
    assert_eq!(attempt["response_excerpt"], "disk full\n");
    let retry = app.post_empty(&format!("/v1/runs/{run_id}/retry")).await;
    assert!(
        retry.problem(409).contains("monitor-only"),
        "{}",
        retry.text
    );

    // The next fire time: a success straight from awaiting, by GET.
    let forced = app
        .patch("/v1/jobs/backup", json!({"next_run_at": "now"}))
        .await;
    assert_eq!(forced.status, 200, "{}", forced.text);
    let second = newest_run(&app, "backup", "a second awaiting run", |r| {
        r["status"] == "awaiting" && r["id"] != run_id.as_str()
    })
    .await;
    let said = shell(r#"curl -fsS "$URL""#, &url).await;
    assert!(said.contains(r#""status":"succeeded""#), "{said}");
    let done = app
        .get(&format!("/v1/runs/{}", second["id"].as_str().unwrap()))
        .await
        .json();
    assert_eq!(done["status"], "succeeded", "{done}");

    // Nothing awaits now: an unexpected run, and an alert that says so.
    // Its body is binary: a NUL, which PostgreSQL's text cannot hold.
    let said = shell(
        r#"printf 'ok\0bin' | curl -fsS --data-binary @- "$URL/0""#,
        &url,
    )
    .await;
    assert!(said.contains(r#""unexpected":true"#), "{said}");
    let extra = newest_run(&app, "backup", "the unexpected run", |r| {
        r["cause"] == "ping"
    })
    .await;
    assert_eq!(extra["status"], "succeeded");
    let kept = app
        .get(&format!("/v1/runs/{}", extra["id"].as_str().unwrap()))
        .await
        .json();
    assert_eq!(kept["attempts"][0]["response_excerpt"], "ok\u{FFFD}bin");
    eventually(DEADLINE, "the unexpected alert", || async {
        let list = app.get("/v1/alerts?job_id=backup").await.json();
        list["items"]
            .as_array()?
            .iter()
            .any(|a| a["condition"] == "unexpected" && a["state"] == "open")
            .then_some(())
    })
    .await;
    let events = app
        .get("/v1/events?job_id=backup&type=run.succeeded,run.failed")
        .await
        .json();
    let pings: Vec<&str> = events["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["data"]["ping"].as_str())
        .collect();
    assert_eq!(pings.len(), 3, "{events}");
    assert!(pings.contains(&"exit 3"), "{pings:?}");

    // A start a moment before the next fire time is that fire time's run
    // (a watched host's clock ahead): the scheduler makes no second one.
    let scheduled = |runs: &Value| {
        runs["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["cause"] == "schedule")
            .count()
    };
    let before = scheduled(&app.get("/v1/jobs/backup/runs").await.json());
    let soon = Utc::now() + chrono::TimeDelta::seconds(3);
    let moved = app
        .patch("/v1/jobs/backup", json!({"next_run_at": soon.to_rfc3339()}))
        .await;
    assert_eq!(moved.status, 200, "{}", moved.text);
    let said = shell(r#"curl -fsS "$URL/start""#, &url).await;
    assert!(said.contains(r#""unexpected":false"#), "{said}");
    let early: Value = serde_json::from_str(&said).unwrap();
    eventually(DEADLINE, "the scheduler past that fire time", || async {
        let job = app.get("/v1/jobs/backup").await.json();
        let next = job["next_run_at"].as_str()?;
        (chrono::DateTime::parse_from_rfc3339(next).ok()? > soon).then_some(())
    })
    .await;
    assert_eq!(
        scheduled(&app.get("/v1/jobs/backup/runs").await.json()),
        before + 1,
        "one run for the fire time, the ping's"
    );
    // Started again with no end reported: that run failed.
    shell(r#"curl -fsS "$URL/start""#, &url).await;
    let abandoned = app
        .get(&format!("/v1/runs/{}", early["run_id"].as_str().unwrap()))
        .await
        .json();
    assert_eq!(abandoned["status"], "failed", "{abandoned}");
    assert_eq!(abandoned["reason"], "no_end_ping", "{abandoned}");

    // The dashboard shows the ping URL, a crontab line and the pinged runs.
    let page = app.get("/ui/jobs/backup").await;
    assert_eq!(page.status, 200, "{}", page.text);
    assert!(page.text.contains(&url), "{}", page.text);
    assert!(page.text.contains("/start; your-command;"), "{}", page.text);
    assert!(page.text.contains("awaiting") || page.text.contains("succeeded"));
    assert!(
        !page.text.contains("Run now"),
        "a monitor has nothing to run"
    );
    assert!(
        page.text.contains("the job exited with code 3"),
        "the runs table's error column"
    );

    // A wrong key says nothing; a kind that is none is a 422 naming it.
    let key = url.rsplit('/').next().unwrap();
    let wrong = app.get(&format!("/v1/ping/{}", "0".repeat(32))).await;
    assert!(wrong.problem(404).contains("no monitor has this ping key"));
    assert_eq!(app.get("/v1/ping/not-a-key").await.status, 404);
    let kind = app.get(&format!("/v1/ping/{key}/stop")).await;
    assert!(kind.problem(422).contains("kind"), "{}", kind.text);

    // A monitor sends nothing: no manual run, no backfill.
    let run_now = app.post_empty("/v1/jobs/backup/run").await;
    assert!(
        run_now.problem(409).contains("monitor-only"),
        "{}",
        run_now.text
    );
    // Saving it again keeps its key; rotating replaces it.
    let again = app
        .put(
            "/v1/jobs/backup",
            json!({"trigger": {"type": "interval", "every_s": 3600},
                   "target": null, "monitor": {"grace_s": 600}}),
        )
        .await;
    assert_eq!(again.status, 200, "{}", again.text);
    assert_eq!(again.json()["monitor"]["ping_url"], url.as_str());
    let rotated = app.post_empty("/v1/jobs/backup/ping-key/rotate").await;
    assert_eq!(rotated.status, 200, "{}", rotated.text);
    let new_url = rotated.json()["ping_url"].as_str().unwrap().to_string();
    assert_ne!(new_url, url);
    assert_eq!(app.get(&format!("/v1/ping/{key}")).await.status, 404);
    shell(r#"curl -fsS "$URL/start""#, &new_url).await;
}

async fn a_ping_missing_through_an_outage_is_reported_once_an_instance_is_back(backend: Backend) {
    let receiver = Receiver::start().await;
    let mut app = TestApp::spawn(backend).await;
    let sub = app
        .post(
            "/v1/subscriptions",
            json!({"url": receiver.url("/alerts"), "types": ["alert.opened"]}),
        )
        .await;
    assert_eq!(sub.status, 201, "{}", sub.text);
    let due = Utc::now() + chrono::TimeDelta::seconds(3);
    app.create_job(json!({
        "id": "nightly", "trigger": {"type": "interval", "every_s": 3600},
        "target": null, "monitor": {"grace_s": 1},
        "next_run_at": due.to_rfc3339()
    }))
    .await;
    // Every instance down through the fire time and its grace.
    app.stop().await;
    eventually(DEADLINE, "the fire time and its grace to pass", || async {
        (Utc::now() > due + chrono::TimeDelta::seconds(2)).then_some(())
    })
    .await;
    app.restart().await;
    let back = Instant::now();
    let opened = eventually(DEADLINE, "the ping_missing alert delivered", || async {
        let got = receiver.received("/alerts");
        let first = got.first()?;
        serde_json::from_slice::<Value>(&first.body).ok()
    })
    .await;
    // Reported on the receiver this long after the restart (issue 26 asks
    // for 5 s; measured, not asserted: these machines are noisy).
    eprintln!(
        "ping_missing delivered {} ms after the restart",
        back.elapsed().as_millis()
    );
    assert_eq!(opened["type"], "alert.opened", "{opened}");
    assert_eq!(opened["data"]["condition"], "ping_missing", "{opened}");
    let run = newest_run(&app, "nightly", "the missed run", |r| {
        r["status"] == "missed"
    })
    .await;
    assert_eq!(run["reason"], "ping_missing");
    // Counted once, at its end, by the instance whose watchdog missed it.
    let metrics = app.get("/metrics").await.text;
    assert!(
        metrics.contains(r#"cronhook_runs_total{status="missed"} 1"#),
        "{metrics}"
    );
}

async fn bad_monitor_input_is_a_422_naming_the_field(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let trigger = json!({"type": "interval", "every_s": 60});
    for (body, field) in [
        (json!({"trigger": trigger, "target": null}), "target"),
        (
            json!({"trigger": trigger, "target": {"url": "http://127.0.0.1:9/x"}, "monitor": {}}),
            "target",
        ),
        (
            json!({"trigger": trigger, "target": null, "monitor": {"grace_s": 0}}),
            "monitor.grace_s",
        ),
        (
            json!({"trigger": trigger, "target": null, "monitor": {"grace": 5}}),
            "monitor",
        ),
        (
            json!({"trigger": trigger, "target": null, "monitor": {}, "flow": {"key": "k"}}),
            "flow",
        ),
    ] {
        let reply = app.post("/v1/jobs", body.clone()).await;
        assert!(reply.problem(422).contains(field), "{body}: {}", reply.text);
    }
    let plain = app
        .create_job(
            json!({"id": "plain", "trigger": trigger, "target": {"url": "http://127.0.0.1:9/x"}}),
        )
        .await;
    assert!(plain.get("monitor").is_none(), "{plain}");
    // Pings are limited per key, before the store is asked.
    let flood = format!("/v1/ping/{}", "a".repeat(32));
    let mut statuses = Vec::new();
    for _ in 0..20 {
        statuses.push(app.get(&flood).await.status);
    }
    assert_eq!(statuses, [404; 20]);
    let limited = app.get(&flood).await;
    assert!(limited.problem(429).contains("pings"), "{}", limited.text);
    assert_eq!(
        app.get(&format!("/v1/ping/{}", "b".repeat(32)))
            .await
            .status,
        404,
        "another key is not held back"
    );
    // A sending job cannot become a monitor, nor the other way round.
    let convert = app
        .put(
            "/v1/jobs/plain",
            json!({"trigger": trigger, "target": null, "monitor": {}}),
        )
        .await;
    assert!(
        convert.problem(409).contains("cannot become monitor-only"),
        "{}",
        convert.text
    );
    let rotate = app.post_empty("/v1/jobs/plain/ping-key/rotate").await;
    assert!(rotate.problem(409).contains("not monitor-only"));
    assert_eq!(
        app.post_empty("/v1/jobs/nope/ping-key/rotate").await.status,
        404
    );
}

store_tests!(
    a_monitor_driven_by_curl_goes_through_every_state,
    a_ping_missing_through_an_outage_is_reported_once_an_instance_is_back,
    bad_monitor_input_is_a_422_naming_the_field,
);
