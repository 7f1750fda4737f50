//! The store contract: the same tests against PostgreSQL and SQLite.

mod common;

use std::sync::Arc;

use chrono::{DateTime, TimeDelta, Utc};
use common::{Backend, TestDb};
use cronhook::domain::job::{JobId, JobInput, JobSpec, JobState, ParseContext, Schedule};
use cronhook::domain::network_policy::NetworkPolicy;
use cronhook::store::{self, DynStore, Job, JobFilter, JobWrite, Saved, StoreError};
use cronhook::wakeup::Wakeups;
use serde_json::json;

async fn open(db: &TestDb) -> DynStore {
    store::connect(&db.url, Arc::new(Wakeups::new()))
        .await
        .expect("store opens")
}

fn now() -> DateTime<Utc> {
    cronhook::domain::instant::truncate(Utc::now())
}

fn spec(id: &str) -> JobSpec {
    let input: JobInput = serde_json::from_value(json!({
        "id": id,
        "name": "contract",
        "trigger": {"type": "interval", "every_s": 60, "start_at": "2030-01-01T00:00:00Z"},
        "target": {"url": "http://127.0.0.1:9/hook", "body": {"n": 1}},
        "misfire_grace_s": 30,
        "coalesce": false,
        "max_instances": 2,
        "metadata": {"team": "x"}
    }))
    .unwrap();
    input
        .parse(ParseContext {
            now: now(),
            network_policy: NetworkPolicy::Any,
        })
        .unwrap()
}

fn id(s: &str) -> JobId {
    JobId::parse(s).unwrap()
}

async fn create(store: &DynStore, job_id: &str) -> Job {
    let spec = spec(job_id);
    let schedule = spec.initial_schedule(now());
    let (job, saved) = store
        .save_job(
            &id(job_id),
            "whsec_dGVzdA==",
            &|existing: Option<&Job>| match existing {
                Some(_) => Err(StoreError::Conflict("exists".into())),
                None => Ok(JobWrite {
                    spec: spec.clone(),
                    schedule: Some(schedule),
                }),
            },
        )
        .await
        .expect("created");
    assert_eq!(saved, Saved::Created);
    job
}

async fn saves_and_reads_back_the_same_job(backend: Backend) {
    let db = TestDb::new(backend).await;
    let store = open(&db).await;
    let job = create(&store, "j1").await;
    assert_eq!(job.spec, spec("j1"));
    assert_eq!(
        job.schedule,
        Schedule::at(Some("2030-01-01T00:00:00Z".parse().unwrap()))
    );
    assert!(job.last_run.is_none());
    let read = store.get_job(&id("j1")).await.unwrap().expect("stored");
    assert_eq!(read.spec, job.spec);
    assert_eq!(read.created_at, job.created_at);
    assert!(store.get_job(&id("nope")).await.unwrap().is_none());
    assert!(store.job_exists(&id("j1")).await.unwrap());
    assert!(!store.job_exists(&id("nope")).await.unwrap());

    let refused = store
        .save_job(&id("j1"), "s", &|existing: Option<&Job>| match existing {
            Some(_) => Err(StoreError::Conflict("exists".into())),
            None => unreachable!(),
        })
        .await;
    assert!(matches!(refused, Err(StoreError::Conflict(_))));
}

async fn updates_keep_created_at_and_optionally_the_schedule(backend: Backend) {
    let db = TestDb::new(backend).await;
    let store = open(&db).await;
    let job = create(&store, "j").await;
    let mut renamed = job.spec.clone();
    renamed.name = Some("renamed".into());
    let (updated, saved) = store
        .save_job(&id("j"), "unused", &|existing: Option<&Job>| {
            assert!(existing.is_some());
            Ok(JobWrite {
                spec: renamed.clone(),
                schedule: None,
            })
        })
        .await
        .unwrap();
    assert_eq!(saved, Saved::Updated);
    assert_eq!(updated.spec.name.as_deref(), Some("renamed"));
    assert_eq!(updated.created_at, job.created_at);
    assert!(updated.updated_at >= job.updated_at);
    assert_eq!(updated.schedule, job.schedule, "schedule: None keeps it");

    let (paused, _) = store
        .save_job(&id("j"), "unused", &|_: Option<&Job>| {
            Ok(JobWrite {
                spec: renamed.clone(),
                schedule: Some(Schedule::paused()),
            })
        })
        .await
        .unwrap();
    assert_eq!(paused.schedule.state, JobState::Paused);
    assert_eq!(paused.schedule.next_run_at, None);
}

async fn lists_in_id_order_with_filter_and_cursor(backend: Backend) {
    let db = TestDb::new(backend).await;
    let store = open(&db).await;
    for name in ["c", "a", "b", "d"] {
        create(&store, name).await;
    }
    let spec_b = spec("b");
    store
        .save_job(&id("b"), "x", &|_: Option<&Job>| {
            Ok(JobWrite {
                spec: spec_b.clone(),
                schedule: Some(Schedule::paused()),
            })
        })
        .await
        .unwrap();
    let ids = |jobs: Vec<Job>| {
        jobs.into_iter()
            .map(|j| j.id.to_string())
            .collect::<Vec<_>>()
    };
    let all = store
        .list_jobs(&JobFilter {
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(ids(all), ["a", "b", "c", "d"]);
    let page = store
        .list_jobs(&JobFilter {
            after: Some(id("b")),
            limit: 1,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(ids(page), ["c"]);
    let paused = store
        .list_jobs(&JobFilter {
            state: Some(JobState::Paused),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(ids(paused), ["b"]);
}

async fn deletes(backend: Backend) {
    let db = TestDb::new(backend).await;
    let store = open(&db).await;
    create(&store, "gone").await;
    assert!(store.delete_job(&id("gone")).await.unwrap());
    assert!(!store.delete_job(&id("gone")).await.unwrap());
    assert!(store.get_job(&id("gone")).await.unwrap().is_none());
}

async fn concurrent_creates_of_one_id_make_one_job(backend: Backend) {
    let db = TestDb::new(backend).await;
    let store = open(&db).await;
    let mut tasks = Vec::new();
    for n in 0..8 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let mut spec = spec("race");
            spec.name = Some(format!("writer {n}"));
            let schedule = spec.initial_schedule(now());
            store
                .save_job(&id("race"), &format!("whsec_{n}"), &|existing: Option<
                    &Job,
                >| {
                    Ok(JobWrite {
                        spec: spec.clone(),
                        schedule: existing.is_none().then_some(schedule),
                    })
                })
                .await
                .map(|(_, saved)| saved)
        }));
    }
    let mut created = 0;
    for task in tasks {
        if task.await.unwrap().expect("every writer succeeds") == Saved::Created {
            created += 1;
        }
    }
    assert_eq!(created, 1);
    let all = store
        .list_jobs(&JobFilter {
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(all.len(), 1);
}

async fn survives_reopening(backend: Backend) {
    let db = TestDb::new(backend).await;
    {
        let store = open(&db).await;
        create(&store, "kept").await;
    }
    let store = open(&db).await;
    let job = store
        .get_job(&id("kept"))
        .await
        .unwrap()
        .expect("still there");
    assert_eq!(job.spec, spec("kept"));
    assert!(job.created_at > now() - TimeDelta::minutes(5));
}

/// Makes `n` finished runs of a job: manual runs beyond max_instances are
/// recorded as skipped, finished at once.
async fn finished_runs(store: &DynStore, job_id: &str, n: usize) {
    create(store, job_id).await;
    let first = store.create_manual_run(&id(job_id)).await.unwrap();
    assert_eq!(first.status.as_str(), "pending");
    let second = store.create_manual_run(&id(job_id)).await.unwrap();
    assert_eq!(second.status.as_str(), "pending", "max_instances is 2");
    for _ in 0..n {
        let run = store.create_manual_run(&id(job_id)).await.unwrap();
        assert_eq!(run.status.as_str(), "skipped");
        assert!(run.finished_at.is_some());
    }
}

async fn retention_deletes_old_and_surplus_finished_runs_only(backend: Backend) {
    let db = TestDb::new(backend).await;
    let store = open(&db).await;
    finished_runs(&store, "busy", 1005).await;
    finished_runs(&store, "quiet", 3).await;
    let count = |job: &'static str| {
        let store = store.clone();
        async move { store.list_runs(&id(job), None, 5000).await.unwrap().len() }
    };
    assert_eq!(count("busy").await, 1007);

    // Nothing is old yet: only the surplus beyond 1,000 finished runs goes,
    // the oldest first, in batches.
    assert_eq!(
        store
            .delete_expired_runs(std::time::Duration::from_secs(3600), 100)
            .await
            .unwrap(),
        0
    );
    let mut trimmed = 0;
    loop {
        // Only jobs with runs finished in the last hour: these all are.
        let window = Some(std::time::Duration::from_secs(3600));
        let n = store.trim_run_history(1000, 2, window).await.unwrap();
        assert!(n <= 2);
        if n == 0 {
            break;
        }
        trimmed += n;
    }
    assert_eq!(trimmed, 5);
    let busy = store.list_runs(&id("busy"), None, 5000).await.unwrap();
    assert_eq!(busy.len(), 1002, "1,000 finished and the 2 pending");
    assert_eq!(busy.iter().filter(|r| r.status.in_flight()).count(), 2);
    assert_eq!(count("quiet").await, 5);

    // With a zero retention every finished run is old; pending ones stay.
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    let mut deleted = 0;
    loop {
        let n = store
            .delete_expired_runs(std::time::Duration::ZERO, 400)
            .await
            .unwrap();
        deleted += n;
        if n < 400 {
            break;
        }
    }
    assert_eq!(deleted, 1003);
    assert_eq!(count("busy").await, 2);
    assert_eq!(count("quiet").await, 2);
    // The cleaner as it runs in the service: nothing left to do.
    assert_eq!(
        cronhook::retention::clean(&store, std::time::Duration::ZERO, None)
            .await
            .unwrap(),
        0
    );
}

/// What the loops sleep by: nothing scheduled or pending means `None`
/// (sleep the poll interval), not "due now".
async fn next_due_times(backend: Backend) {
    let db = TestDb::new(backend).await;
    let store = open(&db).await;
    assert_eq!(store.next_due_in().await.unwrap(), None);
    assert_eq!(store.next_attempt_in().await.unwrap(), None);

    create(&store, "later").await;
    let due_in = store.next_due_in().await.unwrap().expect("a scheduled job");
    assert!(
        due_in > std::time::Duration::from_secs(86_400),
        "{due_in:?}"
    );
    assert_eq!(store.next_attempt_in().await.unwrap(), None);

    store.create_manual_run(&id("later")).await.unwrap();
    assert_eq!(
        store.next_attempt_in().await.unwrap(),
        Some(std::time::Duration::ZERO)
    );
    // Once claimed it is leased, not due: its expiry is looked for apart.
    let claimed = store
        .claim_runs("owner", 10, std::time::Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1);
    assert!(claimed[0].spec.is_ok());
    assert_eq!(store.next_attempt_in().await.unwrap(), None);

    let mut past = spec("past");
    past.next_run_at = Some(now() - TimeDelta::hours(1));
    let schedule = past.initial_schedule(now());
    store
        .save_job(&id("past"), "s", &|_: Option<&Job>| {
            Ok(JobWrite {
                spec: past.clone(),
                schedule: Some(schedule),
            })
        })
        .await
        .unwrap();
    assert_eq!(
        store.next_due_in().await.unwrap(),
        Some(std::time::Duration::ZERO)
    );
}

store_tests!(
    next_due_times,
    retention_deletes_old_and_surplus_finished_runs_only,
    saves_and_reads_back_the_same_job,
    updates_keep_created_at_and_optionally_the_schedule,
    lists_in_id_order_with_filter_and_cursor,
    deletes,
    concurrent_creates_of_one_id_make_one_job,
    survives_reopening,
);
