//! Failing over in seconds (DESIGN.md §5): a killed instance's deliveries
//! are sent again by another within `--instance-timeout-s` (plus its
//! recovery poll), a live instance keeps its slow requests, and a process
//! restarted on SQLite takes back its own.

use crate::support as common;

use std::time::Duration;

use chrono::Utc;
use common::process::ServiceProcess;
use common::receiver::{Answer, Receiver};
use common::{Backend, TestApp, TestDb, eventually};
use serde_json::{Value, json};

const TIMEOUT_S: u64 = 3;
/// What the issue allows between a kill and the second request: the
/// instance timeout and two seconds (a heartbeat missed just before the
/// kill, the recovery poll, a claim).
const RESEND_WITHIN: Duration = Duration::from_secs(TIMEOUT_S + 2);

use common::now_text as now;

fn job(id: &str, url: String, timeout_s: u32) -> Value {
    json!({"id": id, "trigger": {"type": "date", "run_at": now()},
           "target": {"url": url, "timeout_s": timeout_s},
           "retry": {"max_attempts": 3}})
}

async fn get(client: &reqwest::Client, url: String) -> Value {
    client.get(url).send().await.unwrap().json().await.unwrap()
}

/// The run of a job, once `done` holds, read through `base`.
async fn run_when(
    client: &reqwest::Client,
    base: &str,
    job: &str,
    done: impl Fn(&Value) -> bool,
) -> Value {
    eventually(Duration::from_secs(60), "the run", || async {
        let runs = get(client, format!("{base}/v1/jobs/{job}/runs")).await;
        let id = runs["items"][0]["id"].as_str()?.to_string();
        let run = get(client, format!("{base}/v1/runs/{id}")).await;
        done(&run).then_some(run)
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_instance_s_deliveries_are_sent_again_within_its_timeout() {
    let db = TestDb::postgres().await;
    let receiver = Receiver::start().await;
    let client = common::client();
    let timeout = TIMEOUT_S.to_string();
    let args = ["--instance-timeout-s", timeout.as_str()];
    let mut doomed = ServiceProcess::start(&db.url, &args, &[]);
    // Five deliveries in flight at the doomed instance: their targets
    // answer nothing to the first request, 200 to the next.
    let jobs: Vec<String> = (0..5).map(|n| format!("slow-{n}")).collect();
    for job_id in &jobs {
        let path = format!("/{job_id}");
        receiver.script(&path, [Answer::Hang]);
        let created = client
            .post(format!("{}/v1/jobs", doomed.base))
            .json(&job(job_id, receiver.url(&path), 60))
            .send()
            .await
            .unwrap();
        assert_eq!(created.status(), 201);
    }
    eventually(
        Duration::from_secs(30),
        "five requests in flight",
        || async { (receiver.all().len() == 5).then_some(()) },
    )
    .await;
    let survivor = ServiceProcess::start(&db.url, &args, &[]);
    let instances = get(&client, format!("{}/v1/instances", survivor.base)).await;
    let holding: Vec<(String, u64)> = instances["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            (
                i["id"].as_str().unwrap().to_string(),
                i["leases"].as_u64().unwrap(),
            )
        })
        .collect();
    assert!(
        holding.contains(&(doomed.instance.clone(), 5)),
        "{holding:?}"
    );
    assert!(
        holding.contains(&(survivor.instance.clone(), 0)),
        "{holding:?}"
    );

    doomed.kill();
    let killed_at = Utc::now();
    let mut delays = Vec::new();
    for job_id in &jobs {
        let path = format!("/{job_id}");
        let requests = eventually(Duration::from_secs(60), "the second request", || async {
            let requests = receiver.received(&path);
            (requests.len() == 2).then_some(requests)
        })
        .await;
        // When the receiver had it, not when this loop looked.
        delays.push((requests[1].at - killed_at).to_std().unwrap_or_default());
        assert_eq!(
            requests[0].header("webhook-id"),
            requests[1].header("webhook-id"),
            "the same webhook-id, for the receiver's idempotency"
        );
        assert_eq!(requests[1].header("cronhook-attempt"), "2");
    }
    eprintln!("kill to second request: {delays:?}");
    let worst = delays.iter().max().unwrap();
    assert!(
        *worst <= RESEND_WITHIN,
        "sent again {worst:?} after the kill (allowed {RESEND_WITHIN:?}); all: {delays:?}"
    );
    for job_id in &jobs {
        let run = run_when(&client, &survivor.base, job_id, |r| {
            r["status"] == "succeeded"
        })
        .await;
        let attempts: Vec<(u64, Value, Value)> = run["attempts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| {
                (
                    a["number"].as_u64().unwrap(),
                    a["error"].clone(),
                    a["status_code"].clone(),
                )
            })
            .collect();
        assert_eq!(
            attempts,
            [
                (1, json!("interrupted"), Value::Null),
                (2, Value::Null, json!(200))
            ],
            "{job_id}"
        );
    }
    // The dead instance is listed with nothing left in its hands.
    let instances = get(&client, format!("{}/v1/instances", survivor.base)).await;
    let dead = instances["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["id"] == doomed.instance.as_str())
        .expect("the dead instance is still listed for a while")
        .clone();
    assert_eq!(dead["leases"], 0, "{dead}");
}

/// A request that outlasts the instance timeout is not taken away from a
/// live instance: its heartbeat keeps its lease.
async fn a_live_instance_keeps_its_slow_request(backend: Backend) {
    let db = TestDb::new(backend).await;
    let receiver = Receiver::start().await;
    receiver.script("/slow", [Answer::After(Duration::from_secs(10), 200)]);
    let mut config = common::test_config(&db.url);
    config.instance_timeout_s = TIMEOUT_S;
    // A lease of the target's timeout alone (20 s, the answer comes after
    // 10): the heartbeat is what keeps it past the instance timeout.
    config.lease_margin_s = 0;
    let sender = TestApp::spawn_with(db, config.clone()).await;
    // A second instance looking for leases to take over, every 250 ms.
    let watcher = TestApp::spawn_with(TestDb::existing(&config.store.database_url), config).await;
    let created = sender
        .post("/v1/jobs", job("slow", receiver.url("/slow"), 20))
        .await;
    assert_eq!(created.status, 201, "{}", created.text);
    let run = run_when(&sender.client, &watcher.base, "slow", |r| {
        r["status"] == "succeeded"
    })
    .await;
    assert_eq!(run["attempt_count"], 1, "{run}");
    assert_eq!(run["attempts"][0]["status_code"], 200, "{run}");
    assert_eq!(receiver.received("/slow").len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_instance_keeps_its_slow_request_postgres() {
    a_live_instance_keeps_its_slow_request(Backend::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_instance_keeps_its_slow_request_sqlite() {
    a_live_instance_keeps_its_slow_request(Backend::Sqlite).await;
}

/// The supported SQLite deployment is one process: restarted after a
/// crash, it takes back what its former self was sending, within the
/// instance timeout (not the lease's minutes).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_sqlite_process_takes_back_its_own_deliveries() {
    let receiver = Receiver::start().await;
    receiver.script("/crash", [Answer::Hang]);
    let db = TestDb::sqlite();
    let mut config = common::test_config(&db.url);
    config.instance_timeout_s = TIMEOUT_S;
    let mut app = TestApp::spawn_with(db, config).await;
    let created = app
        .post("/v1/jobs", job("crash", receiver.url("/crash"), 60))
        .await;
    assert_eq!(created.status, 201, "{}", created.text);
    eventually(Duration::from_secs(30), "the request in flight", || async {
        (receiver.received("/crash").len() == 1).then_some(())
    })
    .await;
    app.kill();
    let killed_at = Utc::now();
    app.restart().await;
    let again = eventually(Duration::from_secs(60), "the request again", || async {
        let requests = receiver.received("/crash");
        (requests.len() == 2).then(|| requests[1].at)
    })
    .await;
    let delay = (again - killed_at).to_std().unwrap_or_default();
    assert!(
        delay <= RESEND_WITHIN,
        "sent again {delay:?} after the crash"
    );
    let run = run_when(&app.client, &app.base, "crash", |r| {
        r["status"] == "succeeded"
    })
    .await;
    assert_eq!(run["attempts"][0]["error"], "interrupted", "{run}");
}

/// Runs that wait for a killed instance's run (overlap `buffer_all`,
/// DESIGN.md §11.1) lose nothing: the run is sent again by the survivor,
/// and its end releases the waiting ones, one after another, in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_waiting_for_a_killed_instance_s_run_still_go_in_order() {
    let db = TestDb::postgres().await;
    let receiver = Receiver::start().await;
    receiver.script("/waits", [Answer::Hang]);
    let client = common::client();
    let timeout = TIMEOUT_S.to_string();
    let args = ["--instance-timeout-s", timeout.as_str()];
    let mut doomed = ServiceProcess::start(&db.url, &args, &[]);
    let created = client
        .post(format!("{}/v1/jobs", doomed.base))
        .json(&json!({
            "id": "buffered",
            "trigger": {"type": "date", "run_at": "2099-01-01T00:00:00Z"},
            "target": {"url": receiver.url("/waits"), "timeout_s": 60},
            "overlap": "buffer_all",
            "retry": {"max_attempts": 3}
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let mut runs = Vec::new();
    for expected in [201, 202, 202] {
        let reply = client
            .post(format!("{}/v1/jobs/buffered/run", doomed.base))
            .send()
            .await
            .unwrap();
        assert_eq!(reply.status(), expected);
        let run: Value = reply.json().await.unwrap();
        runs.push(run["id"].as_str().unwrap().to_string());
    }
    eventually(Duration::from_secs(30), "the first request", || async {
        (receiver.received("/waits").len() == 1).then_some(())
    })
    .await;
    let survivor = ServiceProcess::start(&db.url, &args, &[]);
    doomed.kill();

    let requests = eventually(Duration::from_secs(60), "every run sent", || async {
        let requests = receiver.received("/waits");
        (requests.len() == 4).then_some(requests)
    })
    .await;
    let sent: Vec<(String, String)> = requests
        .iter()
        .map(|r| {
            let header = |name| r.header(name).to_string();
            (header("webhook-id"), header("cronhook-attempt"))
        })
        .collect();
    let (a, b, c) = (&runs[0], &runs[1], &runs[2]);
    assert_eq!(
        sent,
        [
            (a.clone(), "1".to_string()),
            (a.clone(), "2".to_string()),
            (b.clone(), "1".to_string()),
            (c.clone(), "1".to_string()),
        ]
    );
    for id in &runs {
        let run = eventually(Duration::from_secs(60), "the run succeeded", || async {
            let run = get(&client, format!("{}/v1/runs/{id}", survivor.base)).await;
            (run["status"] == "succeeded").then_some(run)
        })
        .await;
        assert_eq!(run["wait_reason"], Value::Null, "{run}");
    }
}

/// Overlap `replace` across instances (DESIGN.md §11.1): a run made at one
/// instance cancels the run another instance is sending, and that
/// instance aborts its request (told by `NOTIFY`): with one request per
/// host allowed, it can send the new run only once the old request is gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_replaced_at_one_instance_is_aborted_at_the_other() {
    let db = TestDb::postgres().await;
    let receiver = Receiver::start().await;
    receiver.script("/replaced", [Answer::Hang]);
    let client = common::client();
    let sender = ServiceProcess::start(&db.url, &["--max-in-flight-per-host", "1"], &[]);
    let api = ServiceProcess::start(&db.url, &["--no-dispatcher", "--no-scheduler"], &[]);
    let created = client
        .post(format!("{}/v1/jobs", api.base))
        .json(&json!({
            "id": "replaced",
            "trigger": {"type": "date", "run_at": "2099-01-01T00:00:00Z"},
            "target": {"url": receiver.url("/replaced"), "timeout_s": 60},
            "overlap": "replace"
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let run_now = || async {
        let reply = client
            .post(format!("{}/v1/jobs/replaced/run", api.base))
            .send()
            .await
            .unwrap();
        assert_eq!(reply.status(), 201);
        reply.json::<Value>().await.unwrap()["id"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let first = run_now().await;
    eventually(Duration::from_secs(30), "the first request", || async {
        (receiver.received("/replaced").len() == 1).then_some(())
    })
    .await;
    let second = run_now().await;
    let requests = eventually(Duration::from_secs(30), "the second request", || async {
        let requests = receiver.received("/replaced");
        (requests.len() == 2).then_some(requests)
    })
    .await;
    assert_eq!(requests[0].header("webhook-id"), first);
    assert_eq!(requests[1].header("webhook-id"), second);
    let cancelled = get(&client, format!("{}/v1/runs/{first}", api.base)).await;
    assert_eq!(cancelled["status"], "cancelled", "{cancelled}");
    drop(sender);
}

/// A flow key's limits across instances (DESIGN.md §11.1): two instances
/// share one key's `max_in_flight` and token bucket, held by a lock on
/// the key's row; the receiver counts what reaches it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flow_keys_limits_hold_across_two_instances() {
    let db = TestDb::postgres().await;
    let receiver = Receiver::start().await;
    for _ in 0..12 {
        receiver.script("/shared", [Answer::After(Duration::from_millis(300), 200)]);
    }
    let client = common::client();
    let one = ServiceProcess::start(&db.url, &[], &[]);
    let two = ServiceProcess::start(&db.url, &[], &[]);
    let defined = client
        .put(format!("{}/v1/flows/shared", one.base))
        .json(&json!({"max_in_flight": 2, "rate": {"limit": 4, "period_s": 1}}))
        .send()
        .await
        .unwrap();
    assert_eq!(defined.status(), 200);
    for n in 0..12 {
        let base = if n % 2 == 0 { &one.base } else { &two.base };
        let mut body = job(&format!("f{n}"), receiver.url("/shared"), 30);
        body["flow"] = json!({"key": "shared"});
        let created = client
            .post(format!("{base}/v1/jobs"))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(created.status(), 201);
    }
    let mut at: Vec<_> = eventually(Duration::from_secs(60), "every run sent", || async {
        let got = receiver.received("/shared");
        (got.len() >= 12).then_some(got.iter().map(|r| r.at).collect::<Vec<_>>())
    })
    .await;
    assert_eq!(at.len(), 12, "each run once");
    assert!(receiver.most_open_at_once("/shared") <= 2);
    // Four tokens at first, then one every quarter second, whichever
    // instance admits (lower bounds only).
    at.sort();
    for (i, t) in at.iter().enumerate().skip(4) {
        let earliest = chrono::TimeDelta::milliseconds(250 * (i as i64 - 3) - 150);
        assert!(
            *t - at[0] >= earliest,
            "run {i} came {:?} after the first",
            *t - at[0]
        );
    }
    // Once the last answer is recorded, nothing holds the key.
    eventually(Duration::from_secs(30), "the key idle", || async {
        let flow = get(&client, format!("{}/v1/flows/shared", two.base)).await;
        (flow["in_flight"] == 0 && flow["waiting"] == 0).then_some(())
    })
    .await;
}

/// A killed instance's flow run (DESIGN.md §11.1): re-sent by the other
/// instance within `--instance-timeout-s`, still holding the key's one
/// slot, and the run waiting for the key goes once it ends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_instance_s_flow_run_is_sent_again_and_the_key_counts_stay_right() {
    let db = TestDb::postgres().await;
    let receiver = Receiver::start().await;
    receiver.script("/held", [Answer::Hang]);
    let client = common::client();
    let timeout = TIMEOUT_S.to_string();
    let args = ["--instance-timeout-s", timeout.as_str()];
    let mut doomed = ServiceProcess::start(&db.url, &args, &[]);
    client
        .put(format!("{}/v1/flows/one", doomed.base))
        .json(&json!({"max_in_flight": 1}))
        .send()
        .await
        .unwrap();
    let mut first = job("held", receiver.url("/held"), 60);
    first["flow"] = json!({"key": "one"});
    client
        .post(format!("{}/v1/jobs", doomed.base))
        .json(&first)
        .send()
        .await
        .unwrap();
    eventually(Duration::from_secs(30), "the first request", || async {
        (receiver.received("/held").len() == 1).then_some(())
    })
    .await;
    let mut next = job("next", receiver.url("/next"), 60);
    next["flow"] = json!({"key": "one"});
    client
        .post(format!("{}/v1/jobs", doomed.base))
        .json(&next)
        .send()
        .await
        .unwrap();
    let survivor = ServiceProcess::start(&db.url, &args, &[]);
    doomed.kill();
    // The held run is sent again (same webhook-id) before the waiting one.
    let held = run_when(&client, &survivor.base, "held", |r| {
        r["status"] == "succeeded"
    })
    .await;
    let next_run = run_when(&client, &survivor.base, "next", |r| {
        r["status"] == "succeeded"
    })
    .await;
    let sent = receiver.received("/held");
    assert_eq!(sent.len(), 2);
    assert_eq!(sent[1].header("webhook-id"), held["id"].as_str().unwrap());
    let next_at = receiver.received("/next")[0].at;
    assert!(
        next_at >= sent[1].at,
        "the waiting run went only once the slot was free"
    );
    assert_eq!(next_run["attempt_count"], 1);
    eventually(Duration::from_secs(30), "the key idle", || async {
        let flow = get(&client, format!("{}/v1/flows/one", survivor.base)).await;
        (flow["in_flight"] == 0 && flow["waiting"] == 0).then_some(())
    })
    .await;
}
