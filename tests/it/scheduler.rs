//! The scheduler engine with real databases and the real clock: misfire
//! grace, coalescing, max_instances, several instances, crashes, wake-ups.

use crate::support as common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use common::{Backend, TestApp, TestDb, eventually};
use cronhook::scheduler::{Scheduler, plan};
use cronhook::store::{self, DynStore, PgStore, Store};
use cronhook::wakeup::Wakeups;
use futures_util::StreamExt;
use serde_json::{Value, json};
use sqlx::Connection;
use tokio_util::sync::CancellationToken;

const DEADLINE: Duration = Duration::from_secs(60);

use common::instant;

fn whole_seconds(t: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp(t.timestamp(), 0).unwrap()
}

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

use common::runs_of;

/// The service without its dispatcher: runs stay as the scheduler made them.
async fn spawn_engine(backend: Backend) -> TestApp {
    let db = TestDb::new(backend).await;
    let mut config = common::test_config(&db.url);
    config.no_dispatcher = true;
    TestApp::spawn_with(db, config).await
}

/// Every run of a job, oldest first.
async fn runs(app: &TestApp, job: &str) -> Vec<Value> {
    let reply = app.get(&format!("/v1/jobs/{job}/runs?limit=500")).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let mut items = reply.json()["items"].as_array().unwrap().clone();
    items.reverse();
    items
}

async fn runs_until(
    app: &TestApp,
    job: &str,
    what: &str,
    done: impl Fn(&[Value]) -> bool,
) -> Vec<Value> {
    eventually(DEADLINE, what, || async {
        let runs = runs(app, job).await;
        done(&runs).then_some(runs)
    })
    .await
}

fn target() -> Value {
    json!({"url": "http://127.0.0.1:9/never-called"})
}

async fn misfire_grace_records_one_missed_run_then_fires_normally(backend: Backend) {
    let app = spawn_engine(backend).await;
    let start = whole_seconds(Utc::now()) - TimeDelta::hours(1);
    app.create_job(json!({"id": "late", "trigger": {"type": "interval", "every_s": 5, "start_at": rfc3339(start)},
               "target": target(), "misfire_grace_s": 60, "max_instances": 1000,
               "next_run_at": rfc3339(start)}),
    )
    .await;
    let runs = runs_until(&app, "late", "a missed run, a run and the next one", |r| {
        r.len() >= 3
    })
    .await;
    let (missed, first, next) = (&runs[0], &runs[1], &runs[2]);
    assert_eq!(missed["status"], "missed");
    assert_eq!(missed["cause"], "schedule");
    assert_eq!(missed["attempt_count"], 0);
    assert!(missed["finished_at"].is_string());
    let missed_at = instant(&missed["scheduled_for"]);
    // Every 5 s for an hour, all but the last minute: one run counts them.
    // (5 s apart, so that a slow scheduler pass cannot coalesce the next
    // run with the one after it.)
    assert_eq!(
        missed["occurrences"],
        (missed_at - start).num_seconds() / 5 + 1
    );
    assert!(missed["occurrences"].as_i64().unwrap() >= 707, "{missed}");

    assert_eq!(first["status"], "pending");
    let first_at = instant(&first["scheduled_for"]);
    assert_eq!(
        first["occurrences"],
        (first_at - missed_at).num_seconds() / 5
    );
    assert!(first["occurrences"].as_i64().unwrap() >= 11, "{first}");

    // Then it fires normally, one occurrence a run.
    assert_eq!(next["status"], "pending");
    assert_eq!(next["occurrences"], 1);
    assert_eq!(
        instant(&next["scheduled_for"]),
        first_at + TimeDelta::seconds(5)
    );
}

async fn without_grace_a_backlog_runs_once_or_once_per_occurrence(backend: Backend) {
    let app = spawn_engine(backend).await;
    let start = whole_seconds(Utc::now()) - TimeDelta::seconds(630);
    for (id, coalesce) in [("coalesced", true), ("each", false)] {
        app.create_job(json!({"id": id, "trigger": {"type": "interval", "every_s": 60, "start_at": rfc3339(start)},
                   "target": target(), "coalesce": coalesce, "max_instances": 100,
                   "next_run_at": rfc3339(start)}),
        )
        .await;
    }
    // 11 occurrences are due (start, start + 1 min, …, start + 10 min).
    let coalesced = runs_until(&app, "coalesced", "one coalesced run", |r| !r.is_empty()).await;
    assert_eq!(coalesced.len(), 1);
    assert_eq!(coalesced[0]["status"], "pending");
    assert_eq!(coalesced[0]["occurrences"], 11);
    assert_eq!(
        instant(&coalesced[0]["scheduled_for"]),
        start + TimeDelta::minutes(10)
    );

    let each = runs_until(&app, "each", "eleven runs", |r| r.len() >= 11).await;
    assert_eq!(each.len(), 11);
    for (k, run) in each.iter().enumerate() {
        assert_eq!(run["status"], "pending");
        assert_eq!(run["occurrences"], 1);
        assert_eq!(
            instant(&run["scheduled_for"]),
            start + TimeDelta::minutes(k as i64)
        );
    }
    let job = app.get("/v1/jobs/each").await.json();
    assert_eq!(instant(&job["next_run_at"]), start + TimeDelta::minutes(11));
    assert_eq!(job["last_run"]["id"], each[10]["id"]);
}

/// One request cannot start a flood: without coalescing, a first fire
/// time (`next_run_at`) a year in the past makes `catchup_max` runs of the newest occurrences and one
/// missed run counting the rest (the 357,000 rows in 10 s).
async fn a_backlog_without_coalescing_is_bounded_by_catchup_max(backend: Backend) {
    let app = spawn_engine(backend).await;
    // On the minute grid of now, so that no further occurrence falls due
    // within the next minute.
    let now = whole_seconds(Utc::now());
    let start = now - TimeDelta::days(365);
    let due = 365 * 24 * 60 + 1;
    for (id, catchup_max) in [("flood", None), ("small", Some(5))] {
        let mut body = json!({"id": id, "trigger": {"type": "interval", "every_s": 60, "start_at": rfc3339(start)},
                              "target": target(), "coalesce": false, "max_instances": 1000,
                              "next_run_at": rfc3339(start)});
        if let Some(max) = catchup_max {
            body["catchup_max"] = json!(max);
        }
        let created = app.create_job(body).await;
        assert_eq!(created["catchup_max"], catchup_max.unwrap_or(100));
    }
    for (id, kept) in [("flood", 100), ("small", 5)] {
        let runs = runs_until(&app, id, "the bounded catch-up", |r| r.len() > kept).await;
        assert_eq!(runs.len(), kept + 1, "{id}: at most catchup_max + 1 runs");
        let (missed, kept_runs) = (&runs[0], &runs[1..]);
        assert_eq!(missed["status"], "missed");
        assert_eq!(missed["occurrences"], due - kept as i64, "{missed}");
        for (k, run) in kept_runs.iter().enumerate() {
            assert_eq!(run["status"], "pending");
            assert_eq!(run["occurrences"], 1);
            let index = (due - kept as i64) + k as i64;
            assert_eq!(
                instant(&run["scheduled_for"]),
                start + TimeDelta::minutes(index)
            );
        }
        let job = app.get(&format!("/v1/jobs/{id}")).await.json();
        assert_eq!(instant(&job["next_run_at"]), now + TimeDelta::minutes(1));
    }
    let bad = app
        .post("/v1/jobs", json!({"trigger": {"type": "interval", "every_s": 60}, "target": target(), "catchup_max": 0}))
        .await
        .problem(422);
    assert!(bad.starts_with("catchup_max:"), "{bad}");
}

async fn max_instances_skips_while_a_run_is_pending(backend: Backend) {
    let app = spawn_engine(backend).await;
    app.create_job(
        json!({"id": "busy", "trigger": {"type": "interval", "every_s": 1},
               "target": target(), "max_instances": 1, "next_run_at": rfc3339(Utc::now())}),
    )
    .await;
    // Nothing delivers here, so the first run stays pending.
    let runs = runs_until(&app, "busy", "a skipped run", |r| {
        r.iter().any(|r| r["status"] == "skipped")
    })
    .await;
    assert_eq!(runs[0]["status"], "pending");
    let skipped: Vec<_> = runs.iter().filter(|r| r["status"] == "skipped").collect();
    assert!(skipped[0]["finished_at"].is_string());
    assert_eq!(runs.iter().filter(|r| r["status"] == "pending").count(), 1);
}

async fn pause_resume_and_delete(backend: Backend) {
    let app = spawn_engine(backend).await;
    app.create_job(
        json!({"id": "tick", "trigger": {"type": "interval", "every_s": 1}, "target": target(),
               "max_instances": 1000, "next_run_at": rfc3339(Utc::now())}),
    )
    .await;
    runs_until(&app, "tick", "a first run", |r| !r.is_empty()).await;
    assert_eq!(app.post_empty("/v1/jobs/tick/pause").await.status, 200);
    let paused_at = Utc::now();
    // Two fire times pass while paused (an absence needs a wait).
    tokio::time::sleep(Duration::from_millis(2200)).await;
    let resumed_at = Utc::now();
    assert_eq!(app.post_empty("/v1/jobs/tick/resume").await.status, 200);
    let runs = runs_until(&app, "tick", "a run after resuming", |r| {
        r.iter()
            .any(|run| instant(&run["scheduled_for"]) >= resumed_at)
    })
    .await;
    for run in &runs {
        let at = instant(&run["scheduled_for"]);
        assert!(
            !(at > paused_at && at < resumed_at),
            "delivered while paused: {run}"
        );
    }

    let run_id = runs[0]["id"].as_str().unwrap().to_string();
    assert_eq!(app.get(&format!("/v1/runs/{run_id}")).await.status, 200);
    assert_eq!(app.delete("/v1/jobs/tick").await.status, 204);
    app.get(&format!("/v1/runs/{run_id}")).await.problem(404);
    app.get("/v1/jobs/tick/runs").await.problem(404);
}

async fn run_now_creates_a_manual_run_or_a_skipped_one(backend: Backend) {
    let app = spawn_engine(backend).await;
    app.create_job(json!({"id": "manual", "trigger": {"type": "cron", "expr": "@yearly"}, "target": target(), "paused": true}),
    )
    .await;
    let first = app.post_empty("/v1/jobs/manual/run").await;
    assert_eq!(first.status, 201, "{}", first.text);
    let first = first.json();
    assert_eq!(first["cause"], "manual");
    assert_eq!(first["status"], "pending");
    assert_eq!(first["occurrences"], 1);
    assert_eq!(first.get("attempts"), None);
    assert_eq!(first_location(&app, &first).await, 200);

    let detail = app.post_empty("/v1/jobs/manual/run").await.problem(409);
    assert!(detail.contains("recorded as skipped"), "{detail}");
    let runs = runs(&app, "manual").await;
    assert_eq!(runs.len(), 2);
    assert_eq!(runs[1]["status"], "skipped");
    assert_eq!(runs[1]["cause"], "manual");
    let detail = app
        .get(&format!("/v1/runs/{}", runs[0]["id"].as_str().unwrap()))
        .await
        .json();
    assert_eq!(detail["attempts"], json!([]));
    assert_eq!(detail["job_id"], "manual");

    app.post_empty("/v1/jobs/nope/run").await.problem(404);
    app.get("/v1/runs/not-a-uuid").await.problem(404);
    app.get(&format!("/v1/runs/{}", uuid::Uuid::now_v7()))
        .await
        .problem(404);
}

async fn first_location(app: &TestApp, run: &Value) -> u16 {
    app.get(&format!("/v1/runs/{}", run["id"].as_str().unwrap()))
        .await
        .status
}

async fn run_history_paginates_newest_first(backend: Backend) {
    let app = spawn_engine(backend).await;
    app.create_job(json!({"id": "many", "trigger": {"type": "cron", "expr": "@yearly"}, "target": target(), "max_instances": 100}),
    )
    .await;
    let mut ids = Vec::new();
    for _ in 0..5 {
        ids.push(app.post_empty("/v1/jobs/many/run").await.json()["id"].clone());
    }
    ids.reverse();
    let mut seen = Vec::new();
    let mut path = "/v1/jobs/many/runs?limit=2".to_string();
    loop {
        let page = app.get(&path).await.json();
        seen.extend(
            page["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r["id"].clone()),
        );
        match page["next_cursor"].as_str() {
            Some(c) => path = format!("/v1/jobs/many/runs?limit=2&cursor={c}"),
            None => break,
        }
    }
    assert_eq!(seen, ids);
    app.get("/v1/jobs/many/runs?cursor=bm9wZQ")
        .await
        .problem(422);
}

async fn a_job_due_now_gets_its_run_although_the_poll_interval_is_an_hour(backend: Backend) {
    let db = TestDb::new(backend).await;
    let mut config = common::test_config(&db.url);
    config.poll_interval_ms = 3_600_000;
    config.no_dispatcher = true;
    let app = TestApp::spawn_with(db, config).await;
    // Let the scheduler finish its first pass and go to sleep for an hour.
    tokio::time::sleep(Duration::from_millis(300)).await;
    app.create_job(json!({"id": "now", "trigger": {"type": "date", "run_at": rfc3339(Utc::now())}, "target": target()}),
    )
    .await;
    let runs = runs_until(&app, "now", "the run", |r| !r.is_empty()).await;
    assert_eq!(runs[0]["status"], "pending");
    assert_eq!(app.get("/v1/jobs/now").await.json()["state"], "completed");
}

store_tests!(
    a_backlog_without_coalescing_is_bounded_by_catchup_max,
    misfire_grace_records_one_missed_run_then_fires_normally,
    without_grace_a_backlog_runs_once_or_once_per_occurrence,
    max_instances_skips_while_a_run_is_pending,
    pause_resume_and_delete,
    run_now_creates_a_manual_run_or_a_skipped_one,
    run_history_paginates_newest_first,
    a_job_due_now_gets_its_run_although_the_poll_interval_is_an_hour,
);

// --- Several instances on one database -----------------------------------

/// 500 date jobs due at one instant and 50 jobs firing every second for
/// 10 s, scheduled by `instances` schedulers with pools of their own.
async fn every_occurrence_has_exactly_one_run(db: &TestDb, stores: Vec<DynStore>) {
    let setup = store::connect(&db.url, Arc::new(Wakeups::new()), common::test_key())
        .await
        .unwrap();
    let t0 = whole_seconds(Utc::now()) + TimeDelta::seconds(6);
    let mut create = Vec::new();
    for n in 0..500 {
        create.push(
            json!({"id": format!("date-{n:03}"), "trigger": {"type": "date", "run_at": rfc3339(t0)},
                           "target": target()}),
        );
    }
    for n in 0..50 {
        create.push(json!({"id": format!("tick-{n:02}"),
                           "trigger": {"type": "interval", "every_s": 1, "start_at": rfc3339(t0),
                                       "end_at": rfc3339(t0 + TimeDelta::seconds(9))},
                           "target": target(), "coalesce": false, "max_instances": 1000}));
    }
    // Eight at a time: one by one, 550 creations in a debug build could
    // outlast the 5 s lead on a busy machine. A late start would still test
    // the race (everything due at once) and every assertion below holds
    // then too (no misfire grace, no coalescing).
    futures_util::stream::iter(create)
        .for_each_concurrent(8, |body| {
            let setup = &setup;
            async move {
                common::create_job(&**setup, body).await;
            }
        })
        .await;

    let shutdown = CancellationToken::new();
    let mut tasks = Vec::new();
    for store in stores {
        let scheduler = Scheduler {
            store,
            wakeups: Arc::new(Wakeups::new()),
            poll_interval: Duration::from_millis(100),
            // Runs made ahead, as by default: still one per occurrence.
            lookahead: Duration::from_millis(500),
            metrics: Default::default(),
        };
        tasks.push(tokio::spawn(scheduler.run(shutdown.clone())));
    }
    eventually(Duration::from_secs(90), "every job completed", || async {
        let scheduled = setup
            .list_jobs(
                &common::default_tenant(),
                &store::JobFilter {
                    state: Some(cronhook::domain::job::JobState::Scheduled),
                    limit: 1,
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        scheduled.is_empty().then_some(())
    })
    .await;
    shutdown.cancel();
    for task in tasks {
        task.await.unwrap();
    }

    let mut conn = sqlx::PgConnection::connect(&db.url).await.unwrap();
    /// Per job: id, runs, distinct fire times, first and last fire time.
    type JobRuns = (
        String,
        i64,
        i64,
        Option<DateTime<Utc>>,
        Option<DateTime<Utc>>,
    );
    let per_job: Vec<JobRuns> = sqlx::query_as(
        "SELECT j.id, count(r.id), count(DISTINCT r.scheduled_for), min(r.scheduled_for), max(r.scheduled_for)
         FROM jobs j LEFT JOIN runs r ON r.job_id = j.id GROUP BY j.id ORDER BY j.id",
    )
    .fetch_all(&mut conn)
    .await
    .unwrap();
    assert_eq!(per_job.len(), 550);
    for (id, runs, distinct, first, last) in per_job {
        if id.starts_with("date-") {
            assert_eq!((runs, distinct), (1, 1), "{id}");
            assert_eq!(first, Some(t0), "{id}");
        } else {
            assert_eq!((runs, distinct), (10, 10), "{id}");
            assert_eq!(
                (first, last),
                (Some(t0), Some(t0 + TimeDelta::seconds(9))),
                "{id}"
            );
        }
    }
    let not_pending: i64 =
        sqlx::query_scalar("SELECT count(*) FROM runs WHERE status <> 'pending'")
            .fetch_one(&mut conn)
            .await
            .unwrap();
    assert_eq!(not_pending, 0, "nothing missed or skipped");
}

async fn pg_stores(db: &TestDb, n: usize) -> Vec<DynStore> {
    let mut stores: Vec<DynStore> = Vec::new();
    for _ in 0..n {
        stores.push(Arc::new(
            PgStore::connect(&db.url, Arc::new(Wakeups::new()), common::test_key())
                .await
                .unwrap(),
        ));
    }
    stores
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_postgres_instances_fire_each_occurrence_once() {
    let db = TestDb::postgres().await;
    let stores = pg_stores(&db, 2).await;
    every_occurrence_has_exactly_one_run(&db, stores).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn four_postgres_instances_fire_each_occurrence_once() {
    let db = TestDb::postgres().await;
    let stores = pg_stores(&db, 4).await;
    every_occurrence_has_exactly_one_run(&db, stores).await;
}

/// Two processes on one SQLite file: the supported deployment is one, but
/// a second still never double-fires.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_sqlite_stores_on_one_file_never_double_fire() {
    let db = TestDb::sqlite();
    let a: DynStore = store::connect(&db.url, Arc::new(Wakeups::new()), common::test_key())
        .await
        .unwrap();
    let b: DynStore = store::connect(&db.url, Arc::new(Wakeups::new()), common::test_key())
        .await
        .unwrap();
    let t0 = whole_seconds(Utc::now()) + TimeDelta::seconds(3);
    for n in 0..100 {
        let body = if n < 90 {
            json!({"id": format!("d{n}"), "trigger": {"type": "date", "run_at": rfc3339(t0)}, "target": target()})
        } else {
            json!({"id": format!("t{n}"), "trigger": {"type": "interval", "every_s": 1, "start_at": rfc3339(t0),
                   "end_at": rfc3339(t0 + TimeDelta::seconds(4))}, "target": target(), "coalesce": false, "max_instances": 100})
        };
        common::create_job(&*a, body).await;
    }
    let shutdown = CancellationToken::new();
    let tasks: Vec<_> = [a.clone(), b]
        .into_iter()
        .map(|store| {
            let scheduler = Scheduler {
                store,
                wakeups: Arc::new(Wakeups::new()),
                poll_interval: Duration::from_millis(50),
                lookahead: Duration::from_millis(500),
                metrics: Default::default(),
            };
            tokio::spawn(scheduler.run(shutdown.clone()))
        })
        .collect();
    eventually(Duration::from_secs(60), "every job completed", || async {
        let left = a
            .list_jobs(
                &common::default_tenant(),
                &store::JobFilter {
                    state: Some(cronhook::domain::job::JobState::Scheduled),
                    limit: 1,
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        left.is_empty().then_some(())
    })
    .await;
    shutdown.cancel();
    for task in tasks {
        task.await.unwrap();
    }
    let mut total = 0;
    for n in 0..100 {
        let id =
            cronhook::domain::job::JobId::parse(&format!("{}{n}", if n < 90 { "d" } else { "t" }))
                .unwrap();
        let runs = a
            .list_runs(&common::default_tenant(), &runs_of(&id, None, 100))
            .await
            .unwrap();
        let mut at: Vec<_> = runs.iter().map(|r| r.scheduled_for).collect();
        at.dedup();
        assert_eq!(at.len(), runs.len(), "{id}: one run per occurrence");
        assert_eq!(runs.len(), if n < 90 { 1 } else { 5 }, "{id}");
        total += runs.len();
    }
    assert_eq!(total, 90 + 50);
}

/// A scheduler whose connection dies between claim and commit loses
/// nothing: its claim rolls back and another instance takes the job.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_claim_cut_off_before_commit_is_taken_by_another_instance() {
    let db = TestDb::postgres().await;
    let b = PgStore::connect(&db.url, Arc::new(Wakeups::new()), common::test_key())
        .await
        .unwrap();
    common::create_job(
        &b,
        json!({"id": "once", "trigger": {"type": "date", "run_at": rfc3339(Utc::now() - TimeDelta::seconds(1))}, "target": target()}),
    )
    .await;

    // Instance A runs on a thread and runtime of its own: its plan stalls
    // that thread, as a process stuck (then killed) between claim and commit.
    let entered = Arc::new(AtomicBool::new(false));
    let release = Arc::new(AtomicBool::new(false));
    let claim_a = {
        let (entered, release, url) = (entered.clone(), release.clone(), db.url.clone());
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                let a = PgStore::connect(&url, Arc::new(Wakeups::new()), common::test_key())
                    .await
                    .unwrap();
                let stalling = move |job: &cronhook::domain::misfire::DueJob<'_>,
                                     now: DateTime<Utc>| {
                    entered.store(true, Ordering::SeqCst);
                    while !release.load(Ordering::SeqCst) {
                        std::thread::sleep(Duration::from_millis(5));
                    }
                    plan(job, now)
                };
                a.claim_due_jobs(10, Duration::ZERO, &stalling)
                    .await
                    .map(|_| ())
            })
        })
    };
    eventually(
        Duration::from_secs(10),
        "instance A inside its claim",
        || async { entered.load(Ordering::SeqCst).then_some(()) },
    )
    .await;
    // A holds the row: B skips it.
    assert_eq!(
        b.claim_due_jobs(10, Duration::ZERO, &plan)
            .await
            .unwrap()
            .jobs,
        0
    );

    // A's connection dies mid-transaction.
    let mut admin = sqlx::PgConnection::connect(&db.url).await.unwrap();
    let killed: Vec<bool> = sqlx::query_scalar(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
         WHERE datname = current_database() AND state = 'idle in transaction'",
    )
    .fetch_all(&mut admin)
    .await
    .unwrap();
    assert_eq!(killed, [true]);
    release.store(true, Ordering::SeqCst);
    assert!(
        claim_a.join().unwrap().is_err(),
        "A's commit cannot succeed"
    );

    let outcome = eventually(Duration::from_secs(10), "B claims the job", || async {
        let outcome = b.claim_due_jobs(10, Duration::ZERO, &plan).await.unwrap();
        (outcome.jobs == 1).then_some(outcome)
    })
    .await;
    assert_eq!((outcome.runs, outcome.pending), (1, 1));
    let runs: i64 = sqlx::query_scalar("SELECT count(*) FROM runs")
        .fetch_one(&mut admin)
        .await
        .unwrap();
    assert_eq!(runs, 1);
}

/// An API-only instance and a scheduler whose poll interval is an hour:
/// only NOTIFY can make the run appear, also after the LISTEN connection
/// was killed and came back.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn notify_wakes_another_instance_and_survives_a_lost_listen_connection() {
    let db = TestDb::postgres().await;
    let mut api_only = common::test_config(&db.url);
    api_only.no_scheduler = true;
    api_only.no_dispatcher = true;
    let mut scheduler = common::test_config(&db.url);
    scheduler.poll_interval_ms = 3_600_000;
    scheduler.no_dispatcher = true;
    let url = db.url.clone();
    let api = TestApp::spawn_with(db, api_only).await;
    let _scheduler = TestApp::spawn_with(TestDb::existing(&url), scheduler).await;

    let mut admin = sqlx::PgConnection::connect(&url).await.unwrap();
    let listener_pid = || async {
        let mut admin = sqlx::PgConnection::connect(&url).await.unwrap();
        sqlx::query_scalar::<_, i32>(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND application_name = 'cronhook-listener'",
        )
        .fetch_optional(&mut admin)
        .await
        .unwrap()
    };
    let first_pid = eventually(Duration::from_secs(10), "the LISTEN connection", || async {
        listener_pid().await
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;

    api.create_job(json!({"id": "a", "trigger": {"type": "date", "run_at": rfc3339(Utc::now())}, "target": target()})).await;
    runs_until(&api, "a", "a run made by the other instance", |r| {
        r.len() == 1
    })
    .await;

    let _: bool = sqlx::query_scalar("SELECT pg_terminate_backend($1)")
        .bind(first_pid)
        .fetch_one(&mut admin)
        .await
        .unwrap();
    eventually(
        Duration::from_secs(30),
        "a new LISTEN connection",
        || async { listener_pid().await.filter(|pid| *pid != first_pid) },
    )
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    api.create_job(json!({"id": "b", "trigger": {"type": "date", "run_at": rfc3339(Utc::now())}, "target": target()})).await;
    runs_until(&api, "b", "a run after the reconnect", |r| r.len() == 1).await;
}
