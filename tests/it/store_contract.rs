//! The store contract: the same tests, with the same assertions, against
//! PostgreSQL and SQLite, for every method of the `Store` trait.

use crate::support as common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use common::{Backend, TestDb, eventually};
use cronhook::domain::job::{JobId, JobInput, JobSpec, JobState, ParseContext, Schedule};
use cronhook::domain::lifecycle::{JobCommand, Refusal};
use cronhook::domain::network_policy::NetworkPolicy;
use cronhook::domain::retry::Outcome;
use cronhook::domain::run::{INTERRUPTED, RunCause, RunStatus};
use cronhook::store::{
    self, AttemptRecord, Busy, DynStore, Job, JobFilter, RunCursor, Saved, StoreError, StoreResult,
};
use cronhook::wakeup::Wakeups;
use serde_json::{Value, json};

use common::runs_of;

async fn open(db: &TestDb) -> DynStore {
    store::connect(&db.url, Arc::new(Wakeups::new()), common::test_key())
        .await
        .expect("store opens")
}

fn now() -> DateTime<Utc> {
    cronhook::domain::instant::truncate(Utc::now())
}

fn ctx() -> ParseContext {
    ParseContext {
        now: now(),
        network_policy: NetworkPolicy::default(),
        binding: None,
    }
}

fn body(id: &str) -> Value {
    json!({
        "id": id,
        "name": "contract",
        "trigger": {"type": "interval", "every_s": 60, "start_at": "2030-01-01T00:00:00Z"},
        "target": {"url": "http://127.0.0.1:9/hook", "body": {"n": 1}, "headers": {"x-team": "t"},
                   "timeout_s": 1},
        "misfire_grace_s": 30,
        "coalesce": false,
        "max_instances": 2,
        "retry": {"max_attempts": 2, "backoff_initial_s": 3, "backoff_max_s": 7},
        "metadata": {"team": "x"}
    })
}

fn parse(v: Value) -> JobSpec {
    serde_json::from_value::<JobInput>(v)
        .unwrap()
        .parse(ctx())
        .unwrap()
}

fn spec(id: &str) -> JobSpec {
    parse(body(id))
}

fn id(s: &str) -> JobId {
    JobId::parse(s).unwrap()
}

fn create_command(spec: JobSpec) -> JobCommand {
    JobCommand::Create {
        spec,
        secret: "whsec_dGVzdA==".into(),
    }
}

async fn apply(store: &DynStore, job_id: &str, command: JobCommand) -> StoreResult<(Job, Saved)> {
    store
        .save_job(
            &common::default_tenant(),
            &id(job_id),
            &command,
            ctx(),
            None,
        )
        .await
}

async fn create(store: &DynStore, job_id: &str) -> Job {
    let (job, saved) = apply(store, job_id, create_command(spec(job_id)))
        .await
        .expect("created");
    assert_eq!(saved, Saved::Created);
    job
}

async fn backend_and_ping(backend: Backend) {
    let db = TestDb::new(backend).await;
    let store = open(&db).await;
    store.ping().await.unwrap();
    let expected = match backend {
        Backend::Postgres => "postgres",
        Backend::Sqlite => "sqlite",
    };
    assert_eq!(store.backend(), expected);
}

async fn saves_and_reads_back_the_same_job(backend: Backend) {
    let db = TestDb::new(backend).await;
    let store = open(&db).await;
    let job = create(&store, "j1").await;
    assert_eq!(job.definition, spec("j1").definition);
    assert_eq!(
        job.schedule,
        Schedule::Scheduled {
            next_run_at: "2030-01-01T00:00:00Z".parse().unwrap()
        }
    );
    assert!(job.last_run.is_none());
    let read = store
        .get_job(&common::default_tenant(), &id("j1"))
        .await
        .unwrap()
        .expect("stored");
    assert_eq!(read, job);
    assert!(
        store
            .get_job(&common::default_tenant(), &id("nope"))
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        store
            .job_exists(&common::default_tenant(), &id("j1"))
            .await
            .unwrap()
    );
    assert!(
        !store
            .job_exists(&common::default_tenant(), &id("nope"))
            .await
            .unwrap()
    );

    let refused = apply(&store, "j1", create_command(spec("j1"))).await;
    assert!(
        matches!(refused, Err(StoreError::Refused(Refusal::Conflict(m))) if m.contains("already exists"))
    );

    // Every kind of trigger and body reads back as it was written.
    for (n, v) in [
        json!({"trigger": {"type": "cron", "expr": "30 2 * * 1-5", "timezone": "Asia/Seoul",
               "start_at": "2026-01-01T00:00:00.123456Z", "end_at": "2031-01-01T00:00:00Z", "jitter_s": 9},
               "target": {"url": "https://x.test/p?q=1", "method": "PUT", "body": "text body"}}),
        json!({"trigger": {"type": "date", "run_at": "2031-05-01T09:00:00Z"},
               "target": {"url": "http://x.test", "body": [1, {"a": null}]}}),
        json!({"trigger": {"type": "interval", "every_s": 5}, "target": {"url": "http://x.test"},
               "paused": true}),
    ]
    .into_iter()
    .enumerate()
    {
        let mut v = v;
        v["id"] = json!(format!("kind-{n}"));
        let spec = parse(v);
        let (job, _) = apply(&store, &format!("kind-{n}"), create_command(spec.clone()))
            .await
            .unwrap();
        assert_eq!(job.definition, spec.definition, "{n}");
        let read = store.get_job(&common::default_tenant(), &job.id).await.unwrap().unwrap();
        assert_eq!(read, job, "{n}");
    }
}

async fn commands_are_decided_by_the_lifecycle_rules(backend: Backend) {
    let db = TestDb::new(backend).await;
    let store = open(&db).await;
    let job = create(&store, "j").await;

    // Replace: the definition changes, created_at stays, the schedule too
    // when the trigger is the same.
    let mut renamed = body("j");
    renamed["name"] = json!("renamed");
    let trigger = serde_json::from_value(renamed["trigger"].clone()).unwrap();
    let (updated, saved) = apply(
        &store,
        "j",
        JobCommand::Replace {
            spec: parse(renamed),
            trigger: Box::new(trigger),
            secret: "whsec_dW51c2Vk".into(),
        },
    )
    .await
    .unwrap();
    assert_eq!(saved, Saved::Updated);
    assert_eq!(updated.definition.name.as_deref(), Some("renamed"));
    assert_eq!(updated.created_at, job.created_at);
    assert!(updated.updated_at >= job.updated_at);
    assert_eq!(updated.schedule, job.schedule);

    // Patch merges; pause and resume move the schedule.
    let patch = json!({"target": {"headers": {"x-more": "1"}}});
    let (patched, _) = apply(
        &store,
        "j",
        JobCommand::Patch(patch.as_object().unwrap().clone()),
    )
    .await
    .unwrap();
    assert_eq!(patched.definition.target.as_ref().unwrap().headers.len(), 2);
    assert_eq!(
        patched.definition.target.as_ref().unwrap().body,
        job.definition.target.as_ref().unwrap().body
    );
    let (paused, _) = apply(&store, "j", JobCommand::Pause(Default::default()))
        .await
        .unwrap();
    assert_eq!(paused.schedule, Schedule::Paused);
    let (again, saved) = apply(&store, "j", JobCommand::Pause(Default::default()))
        .await
        .unwrap();
    assert_eq!((again.schedule, saved), (Schedule::Paused, Saved::Updated));
    let (resumed, _) = apply(&store, "j", JobCommand::Resume).await.unwrap();
    assert_eq!(resumed.schedule.state(), JobState::Scheduled);
    assert_eq!(
        store
            .get_job(&common::default_tenant(), &id("j"))
            .await
            .unwrap()
            .unwrap()
            .schedule,
        resumed.schedule
    );

    for command in [
        JobCommand::Pause(Default::default()),
        JobCommand::Resume,
        JobCommand::Patch(Default::default()),
    ] {
        assert!(matches!(
            apply(&store, "missing", command).await,
            Err(StoreError::Refused(Refusal::NotFound))
        ));
    }
    let invalid = JobCommand::Patch(json!({"coalesce": null}).as_object().unwrap().clone());
    assert!(matches!(
        apply(&store, "j", invalid).await,
        Err(StoreError::Refused(Refusal::Invalid(e))) if e.field == "coalesce"
    ));
}

async fn lists_in_id_order_with_filter_and_cursor(backend: Backend) {
    let db = TestDb::new(backend).await;
    let store = open(&db).await;
    for name in ["c", "a", "b", "d"] {
        create(&store, name).await;
    }
    apply(&store, "b", JobCommand::Pause(Default::default()))
        .await
        .unwrap();
    let ids = |jobs: Vec<Job>| {
        jobs.into_iter()
            .map(|j| j.id.to_string())
            .collect::<Vec<_>>()
    };
    let all = store
        .list_jobs(
            &common::default_tenant(),
            &JobFilter {
                limit: 10,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(ids(all), ["a", "b", "c", "d"]);
    let page = store
        .list_jobs(
            &common::default_tenant(),
            &JobFilter {
                after: Some(id("b")),
                limit: 1,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(ids(page), ["c"]);
    let paused = store
        .list_jobs(
            &common::default_tenant(),
            &JobFilter {
                state: Some(JobState::Paused),
                limit: 10,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(ids(paused), ["b"]);
    // Search: in the id or the name, in any case.
    let mut name = serde_json::Map::new();
    name.insert("name".into(), "Nightly REPORT".into());
    apply(&store, "d", JobCommand::Patch(name)).await.unwrap();
    for (text, found) in [("B", vec!["b"]), ("report", vec!["d"]), ("zz", vec![])] {
        let listed = store
            .list_jobs(
                &common::default_tenant(),
                &JobFilter {
                    search: Some(text.into()),
                    limit: 10,
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        assert_eq!(ids(listed), found, "search {text:?}");
    }
}

/// A selector picks on both databases exactly the jobs the pure rule
/// picks (DESIGN.md §11.9), keys with a prefix and dots included.
async fn selectors_pick_what_the_rule_picks(backend: Backend) {
    use cronhook::domain::labels::{Labels, Selector};
    let db = TestDb::new(backend).await;
    let store = open(&db).await;
    let jobs: [(&str, Value); 5] = [
        ("a", json!({"team": "data", "tier": "gold"})),
        ("b", json!({"team": "data", "env": "dev", "tier": "silver"})),
        (
            "c",
            json!({"team": "web", "example.com/tier": "gold", "env": ""}),
        ),
        ("d", json!({})),
        ("e", json!({"team": "data", "env": "prod", "a.b": "x"})),
    ];
    let mut labels = std::collections::BTreeMap::new();
    for (name, given) in &jobs {
        let mut v = body(name);
        v["labels"] = given.clone();
        let (job, _) = apply(&store, name, create_command(parse(v))).await.unwrap();
        assert_eq!(
            serde_json::to_value(&job.definition.labels).unwrap(),
            *given
        );
        labels.insert(name.to_string(), job.definition.labels);
    }
    for text in [
        "",
        "team=data,env!=dev,tier in (gold,silver)",
        "team",
        "!team",
        "env=",
        "env!=",
        "env notin (dev,prod)",
        "example.com/tier=gold",
        "a.b",
        "team in (web, data),!env",
        "tier notin (gold)",
    ] {
        let selector = Selector::parse(text).unwrap();
        let listed: Vec<String> = store
            .list_jobs(
                &common::default_tenant(),
                &JobFilter {
                    selector: selector.clone(),
                    limit: 10,
                    ..Default::default()
                },
            )
            .await
            .unwrap()
            .into_iter()
            .map(|j| j.id.to_string())
            .collect();
        let expected: Vec<String> = labels
            .iter()
            .filter(|(_, l): &(&String, &Labels)| selector.matches(l))
            .map(|(id, _)| id.clone())
            .collect();
        assert_eq!(listed, expected, "{text}");
    }
    // A patch merges labels; null removes one.
    let patch = json!({"labels": {"team": null, "owner": "ops"}});
    let (job, _) = apply(
        &store,
        "a",
        JobCommand::Patch(patch.as_object().unwrap().clone()),
    )
    .await
    .unwrap();
    assert_eq!(
        serde_json::to_value(&job.definition.labels).unwrap(),
        json!({"owner": "ops", "tier": "gold"})
    );
}

async fn deletes(backend: Backend) {
    let db = TestDb::new(backend).await;
    let store = open(&db).await;
    create(&store, "gone").await;
    let run = store
        .create_manual_run(&common::default_tenant(), &id("gone"), None, false)
        .await
        .unwrap();
    assert!(
        store
            .delete_job(&common::default_tenant(), &id("gone"), false)
            .await
            .unwrap()
    );
    assert!(
        !store
            .delete_job(&common::default_tenant(), &id("gone"), false)
            .await
            .unwrap()
    );
    assert!(
        store
            .get_job(&common::default_tenant(), &id("gone"))
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        store
            .get_run(&common::default_tenant(), run.id)
            .await
            .unwrap()
            .is_none(),
        "runs go with it"
    );
}

async fn concurrent_creates_of_one_id_make_one_job(backend: Backend) {
    let db = TestDb::new(backend).await;
    let store = open(&db).await;
    let mut tasks = Vec::new();
    for n in 0..8 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let mut v = body("race");
            v["name"] = json!(format!("writer {n}"));
            let trigger = serde_json::from_value(v["trigger"].clone()).unwrap();
            let command = JobCommand::Replace {
                spec: parse(v),
                trigger: Box::new(trigger),
                secret: format!("whsec_{n}"),
            };
            apply(&store, "race", command).await.map(|(_, saved)| saved)
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
        .list_jobs(
            &common::default_tenant(),
            &JobFilter {
                limit: 10,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(all.len(), 1);
}

async fn survives_reopening(backend: Backend) {
    let db = TestDb::new(backend).await;
    let created = {
        let store = open(&db).await;
        create(&store, "kept").await
    };
    let store = open(&db).await;
    let job = store
        .get_job(&common::default_tenant(), &id("kept"))
        .await
        .unwrap()
        .expect("still there");
    assert_eq!(job, created);
}

async fn claims_due_jobs_as_the_plan_decides(backend: Backend) {
    let db = TestDb::new(backend).await;
    let store = open(&db).await;
    let mut due = spec("due");
    due.next_run_at = Some(now() - TimeDelta::seconds(10));
    apply(&store, "due", create_command(due)).await.unwrap();
    create(&store, "later").await;

    let seen = Mutex::new(Vec::new());
    let plan = |job: &cronhook::domain::misfire::DueJob<'_>, db_now: DateTime<Utc>| {
        seen.lock()
            .unwrap()
            .push((job.next_run_at, job.in_flight, job.max_instances));
        assert!(db_now >= job.next_run_at);
        cronhook::scheduler::plan(job, db_now)
    };
    let outcome = store
        .claim_due_jobs(10, Duration::ZERO, &plan)
        .await
        .unwrap();
    assert_eq!(
        (outcome.jobs, outcome.runs, outcome.pending),
        (1, 1, 1),
        "the forced occurrence, 10 s late and within grace: one pending run"
    );
    assert_eq!(seen.lock().unwrap().len(), 1);
    assert_eq!(seen.lock().unwrap()[0].1, Default::default());
    assert_eq!(seen.lock().unwrap()[0].2, 2);
    let runs = store
        .list_runs(&common::default_tenant(), &runs_of(&id("due"), None, 10))
        .await
        .unwrap();
    assert_eq!(runs.len(), 1);
    assert_eq!(
        (runs[0].cause, runs[0].status),
        (RunCause::Schedule, RunStatus::Pending)
    );
    // Advanced to the trigger's own first fire time.
    let job = store
        .get_job(&common::default_tenant(), &id("due"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        job.schedule.next_run_at(),
        Some("2030-01-01T00:00:00Z".parse().unwrap())
    );
    assert_eq!(job.last_run.as_ref().map(|r| r.id), Some(runs[0].id));
    // Nothing is due any more.
    let again = store
        .claim_due_jobs(10, Duration::ZERO, &plan)
        .await
        .unwrap();
    assert_eq!(again.jobs, 0);
}

async fn manual_runs_and_history(backend: Backend) {
    let db = TestDb::new(backend).await;
    let store = open(&db).await;
    create(&store, "m").await;
    let mut made = Vec::new();
    for expected in [RunStatus::Pending, RunStatus::Pending, RunStatus::Skipped] {
        let run = store
            .create_manual_run(&common::default_tenant(), &id("m"), None, false)
            .await
            .unwrap();
        assert_eq!((run.cause, run.status), (RunCause::Manual, expected));
        assert_eq!(run.finished_at.is_some(), expected == RunStatus::Skipped);
        made.push(run);
    }
    assert!(matches!(
        store
            .create_manual_run(&common::default_tenant(), &id("missing"), None, false)
            .await,
        Err(StoreError::NotFound)
    ));
    // Newest first, by pages.
    let first = store
        .list_runs(&common::default_tenant(), &runs_of(&id("m"), None, 2))
        .await
        .unwrap();
    assert_eq!(
        first.iter().map(|r| r.id).collect::<Vec<_>>(),
        [made[2].id, made[1].id]
    );
    let cursor = RunCursor {
        created_at: first[1].created_at,
        id: first[1].id,
    };
    let rest = store
        .list_runs(
            &common::default_tenant(),
            &runs_of(&id("m"), Some(cursor), 2),
        )
        .await
        .unwrap();
    assert_eq!(rest.iter().map(|r| r.id).collect::<Vec<_>>(), [made[0].id]);
    let (run, attempts) = store
        .get_run(&common::default_tenant(), made[0].id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(run, made[0]);
    assert!(attempts.is_empty());
    assert!(
        store
            .get_run(&common::default_tenant(), uuid::Uuid::now_v7())
            .await
            .unwrap()
            .is_none()
    );
}

async fn runs_are_listed_by_job_status_and_time(backend: Backend) {
    let db = TestDb::new(backend).await;
    let store = open(&db).await;
    create(&store, "a").await;
    create(&store, "b").await;
    // a: pending, pending, skipped; b: pending, pending, skipped.
    let mut made = Vec::new();
    for job in ["a", "b", "a", "b", "a", "b"] {
        made.push(
            store
                .create_manual_run(&common::default_tenant(), &id(job), None, false)
                .await
                .unwrap(),
        );
    }
    let list = |filter: store::RunFilter| {
        let store = store.clone();
        async move {
            store
                .list_runs(&common::default_tenant(), &filter)
                .await
                .unwrap()
                .into_iter()
                .map(|r| r.id)
                .collect::<Vec<_>>()
        }
    };
    let all = list(store::RunFilter {
        limit: 10,
        ..Default::default()
    })
    .await;
    let newest_first: Vec<_> = made.iter().rev().map(|r| r.id).collect();
    assert_eq!(all, newest_first);
    let skipped = list(store::RunFilter {
        statuses: vec![RunStatus::Skipped],
        limit: 10,
        ..Default::default()
    })
    .await;
    assert_eq!(skipped, [made[5].id, made[4].id]);
    let a_pending_or_skipped = list(store::RunFilter {
        job_id: Some(id("a")),
        statuses: vec![RunStatus::Pending, RunStatus::Skipped],
        limit: 10,
        ..Default::default()
    })
    .await;
    assert_eq!(a_pending_or_skipped, [made[4].id, made[2].id, made[0].id]);
    assert!(
        list(store::RunFilter {
            statuses: vec![RunStatus::Failed],
            limit: 10,
            ..Default::default()
        })
        .await
        .is_empty()
    );
    // A time range on created_at, both ends exclusive; then a page after it.
    let between = list(store::RunFilter {
        created_after: Some(made[0].created_at),
        created_before: Some(made[5].created_at),
        limit: 10,
        ..Default::default()
    })
    .await;
    assert_eq!(between, newest_first[1..5]);
    let after_cursor = list(store::RunFilter {
        cursor: Some(RunCursor {
            created_at: made[2].created_at,
            id: made[2].id,
        }),
        limit: 10,
        ..Default::default()
    })
    .await;
    assert_eq!(after_cursor, [made[1].id, made[0].id]);
}

async fn idempotency_keys_are_recorded_with_what_they_made(backend: Backend) {
    let db = TestDb::new(backend).await;
    let store = open(&db).await;
    let key = |n: &str| store::Idempotency {
        scope: "create_job",
        key: format!("key-{n}"),
        fingerprint: format!("fp-{n}"),
    };
    let day = Duration::from_secs(86_400);
    assert_eq!(
        store
            .find_idempotent_request(&common::default_tenant(), "create_job", "key-1", day)
            .await
            .unwrap(),
        None
    );
    store
        .save_job(
            &common::default_tenant(),
            &id("j1"),
            &create_command(spec("j1")),
            ctx(),
            Some(&key("1")),
        )
        .await
        .unwrap();
    let found = store
        .find_idempotent_request(&common::default_tenant(), "create_job", "key-1", day)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (found.fingerprint.as_str(), found.resource_id.as_str()),
        ("fp-1", "j1")
    );
    // Scopes are apart.
    assert_eq!(
        store
            .find_idempotent_request(&common::default_tenant(), "run_job", "key-1", day)
            .await
            .unwrap(),
        None
    );
    // The same key again: nothing is written, not even the job.
    let again = store
        .save_job(
            &common::default_tenant(),
            &id("j2"),
            &create_command(spec("j2")),
            ctx(),
            Some(&key("1")),
        )
        .await;
    assert!(
        matches!(again, Err(StoreError::IdempotencyKeyTaken)),
        "{again:?}"
    );
    assert!(
        store
            .get_job(&common::default_tenant(), &id("j2"))
            .await
            .unwrap()
            .is_none()
    );

    // A manual run records its run id.
    let run_key = store::Idempotency {
        scope: "run_job",
        key: "key-1".into(),
        fingerprint: "fp-run".into(),
    };
    let run = store
        .create_manual_run(&common::default_tenant(), &id("j1"), Some(&run_key), false)
        .await
        .unwrap();
    let found = store
        .find_idempotent_request(&common::default_tenant(), "run_job", "key-1", day)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.resource_id, run.id.to_string());
    assert!(matches!(
        store
            .create_manual_run(&common::default_tenant(), &id("j1"), Some(&run_key), false)
            .await,
        Err(StoreError::IdempotencyKeyTaken)
    ));
    assert_eq!(
        store
            .list_runs(&common::default_tenant(), &runs_of(&id("j1"), None, 10))
            .await
            .unwrap()
            .len(),
        1
    );

    // Past the window a key is not found, and the cleaner deletes it.
    tokio::time::sleep(Duration::from_millis(5)).await;
    assert_eq!(
        store
            .find_idempotent_request(
                &common::default_tenant(),
                "create_job",
                "key-1",
                Duration::from_millis(1)
            )
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        store
            .delete_expired_idempotency_keys(Duration::ZERO, 1)
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        store
            .delete_expired_idempotency_keys(Duration::ZERO, 10)
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        store
            .find_idempotent_request(&common::default_tenant(), "run_job", "key-1", day)
            .await
            .unwrap(),
        None
    );
}

/// Waits for a claimable run and claims it.
async fn claim_one(store: &DynStore, owner: &str, margin: Duration) -> store::ClaimedRun {
    eventually(Duration::from_secs(10), "a claimable run", || async {
        store
            .claim_runs(owner, 1, margin, &Busy::default())
            .await
            .unwrap()
            .into_iter()
            .next()
    })
    .await
}

async fn deliveries_are_claimed_recorded_fenced_and_released(backend: Backend) {
    let db = TestDb::new(backend).await;
    let store = open(&db).await;
    create(&store, "d").await;
    let run = store
        .create_manual_run(&common::default_tenant(), &id("d"), None, false)
        .await
        .unwrap();

    let claimed = claim_one(&store, "me", Duration::from_secs(30)).await;
    assert_eq!((claimed.run_id, claimed.attempt), (run.id, 1));
    let (target, retry) = claimed.spec.clone().expect("the job reads back");
    assert_eq!(Some(target), spec("d").definition.target);
    assert_eq!(retry, spec("d").definition.retry);
    assert_eq!(claimed.secrets, ["whsec_dGVzdA=="]);
    assert!(
        store
            .claim_runs("other", 10, Duration::from_secs(30), &Busy::default())
            .await
            .unwrap()
            .is_empty()
    );
    let (running, _) = store
        .get_run(&common::default_tenant(), run.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (running.status, running.attempt_count),
        (RunStatus::Running, 1)
    );

    let record = |outcome, number| AttemptRecord {
        run_id: run.id,
        tenant: common::default_tenant(),
        job_id: Some(run.job_id.clone()),
        number,
        started_at: now(),
        duration_ms: 12,
        status_code: Some(503),
        error: None,
        response_excerpt: Some("busy".into()),
        outcome_reason: Some("503 but the body contains \"busy\"".into()),
        body_truncated: true,
        outcome,
        run_reason: None,
        delivery: None,
        follow_up: cronhook::store::FollowUp::default(),
        flow: false,
    };
    let retry_later = Outcome::Retry {
        delay: Duration::from_secs(3600),
    };
    // Fenced: another owner, or another attempt number, writes nothing.
    assert_eq!(
        store
            .record_attempts("other", &[record(retry_later, 1)])
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        store
            .record_attempts("me", &[record(retry_later, 2)])
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        store
            .record_attempts("me", &[record(retry_later, 1)])
            .await
            .unwrap(),
        1
    );
    let (waiting, attempts) = store
        .get_run(&common::default_tenant(), run.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(waiting.status, RunStatus::Pending);
    let wait = waiting.next_attempt_at.unwrap() - now();
    assert!(
        wait > TimeDelta::minutes(59) && wait <= TimeDelta::minutes(60),
        "{wait}"
    );
    assert_eq!(attempts.len(), 1);
    assert_eq!(
        (
            attempts[0].number,
            attempts[0].status_code,
            attempts[0].duration_ms
        ),
        (1, Some(503), 12)
    );
    assert_eq!(attempts[0].response_excerpt.as_deref(), Some("busy"));
    assert_eq!(
        (
            attempts[0].outcome_reason.as_deref(),
            attempts[0].body_truncated
        ),
        (Some("503 but the body contains \"busy\""), true)
    );
    let due_in = store.next_attempt_in().await.unwrap().unwrap();
    assert!(due_in > Duration::from_secs(3500), "{due_in:?}");

    // A second run, claimed then released: pending again, its attempt not counted.
    let second = store
        .create_manual_run(&common::default_tenant(), &id("d"), None, false)
        .await
        .unwrap();
    let claimed = claim_one(&store, "me", Duration::from_secs(30)).await;
    assert_eq!(claimed.run_id, second.id);
    assert_eq!(
        store
            .release_runs("other", &[(second.id, 1)], Duration::ZERO)
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        store
            .release_runs("me", &[(second.id, 1)], Duration::ZERO)
            .await
            .unwrap(),
        1
    );
    let (released, _) = store
        .get_run(&common::default_tenant(), second.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (released.status, released.attempt_count),
        (RunStatus::Pending, 0)
    );

    // Claimed again and succeeded: finished.
    let claimed = claim_one(&store, "me", Duration::from_secs(30)).await;
    assert_eq!((claimed.run_id, claimed.attempt), (second.id, 1));
    let mut ok = record(Outcome::Succeeded, 1);
    ok.run_id = second.id;
    ok.status_code = Some(200);
    assert_eq!(store.record_attempts("me", &[ok]).await.unwrap(), 1);
    let (done, _) = store
        .get_run(&common::default_tenant(), second.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(done.status, RunStatus::Succeeded);
    assert!(done.finished_at.is_some());
}

async fn expired_leases_are_recovered_as_the_retry_rules_decide(backend: Backend) {
    let db = TestDb::new(backend).await;
    let store = open(&db).await;
    create(&store, "r").await; // timeout_s 1, max_attempts 2
    let run = store
        .create_manual_run(&common::default_tenant(), &id("r"), None, false)
        .await
        .unwrap();
    let decisions = Mutex::new(Vec::new());
    let recover = |lease: &store::ExpiredLease<'_>| {
        assert_eq!((lease.run_id, lease.subject), (run.id, "r"));
        let (attempt, policy) = (lease.attempt, lease.policy.clone());
        decisions.lock().unwrap().push((attempt, policy.clone()));
        if attempt < policy.max_attempts {
            Outcome::Retry {
                delay: Duration::ZERO,
            }
        } else {
            Outcome::Failed
        }
    };
    let minute = Duration::from_secs(60);
    assert_eq!(
        store
            .recover_expired_leases(10, minute, &recover)
            .await
            .unwrap(),
        0
    );
    store.register_instance("me", "test").await.unwrap();
    // The fence every takeover relies on: the old owner's late record of
    // this very attempt is refused.
    let late = |attempt| AttemptRecord {
        run_id: run.id,
        tenant: common::default_tenant(),
        job_id: Some(run.job_id.clone()),
        number: attempt,
        started_at: now(),
        duration_ms: 1,
        status_code: Some(200),
        error: None,
        response_excerpt: None,
        outcome_reason: None,
        body_truncated: false,
        outcome: Outcome::Succeeded,
        run_reason: None,
        delivery: None,
        follow_up: cronhook::store::FollowUp::default(),
        flow: false,
    };

    // 1. The owner stops beating: its lease is taken over whatever
    // lease_until says (here a minute away).
    let claimed = claim_one(&store, "me", minute).await;
    assert_eq!((claimed.run_id, claimed.attempt), (run.id, 1));
    assert_eq!(
        store
            .recover_expired_leases(10, minute, &recover)
            .await
            .unwrap(),
        0,
        "alive, and the lease is good"
    );
    eventually(
        Duration::from_secs(10),
        "the owner to fall silent",
        || async {
            let recovered = store
                .recover_expired_leases(10, Duration::from_millis(300), &recover)
                .await
                .unwrap();
            (recovered == 1).then_some(())
        },
    )
    .await;
    assert_eq!(store.record_attempts("me", &[late(1)]).await.unwrap(), 0);

    // 2. The owner beats on, but lease_until passes (the 1 s timeout and
    // no margin): taken over too.
    store.heartbeat("me").await.unwrap();
    let claimed = claim_one(&store, "me", Duration::ZERO).await;
    assert_eq!((claimed.run_id, claimed.attempt), (run.id, 2));
    eventually(Duration::from_secs(10), "the lease to run out", || async {
        assert!(store.heartbeat("me").await.unwrap());
        let recovered = store
            .recover_expired_leases(10, minute, &recover)
            .await
            .unwrap();
        (recovered == 1).then_some(())
    })
    .await;
    assert_eq!(store.record_attempts("me", &[late(2)]).await.unwrap(), 0);

    let policy = spec("r").definition.retry;
    assert_eq!(
        *decisions.lock().unwrap(),
        [(1, policy.clone()), (2, policy)]
    );
    let (failed, attempts) = store
        .get_run(&common::default_tenant(), run.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (failed.status, failed.attempt_count),
        (RunStatus::Failed, 2)
    );
    assert!(failed.finished_at.is_some());
    assert_eq!(
        attempts
            .iter()
            .map(|a| (a.number, a.error.as_deref()))
            .collect::<Vec<_>>(),
        [(1, Some(INTERRUPTED)), (2, Some(INTERRUPTED))]
    );
}

/// A lease held by an owner that never registered (an instance of a
/// release before heartbeats, or one whose row was cleaned away) is
/// taken over at once.
async fn a_lease_of_an_unknown_owner_is_taken_over_at_once(backend: Backend) {
    let db = TestDb::new(backend).await;
    let store = open(&db).await;
    create(&store, "g").await;
    let run = store
        .create_manual_run(&common::default_tenant(), &id("g"), None, false)
        .await
        .unwrap();
    claim_one(&store, "ghost", Duration::from_secs(3600)).await;
    let recovered = store
        .recover_expired_leases(10, Duration::from_secs(3600), &|_: &store::ExpiredLease<
            '_,
        >| {
            Outcome::Retry {
                delay: Duration::ZERO,
            }
        })
        .await
        .unwrap();
    assert_eq!(recovered, 1);
    let (pending, _) = store
        .get_run(&common::default_tenant(), run.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(pending.status, RunStatus::Pending);
}

async fn instances_register_beat_list_and_leave(backend: Backend) {
    let db = TestDb::new(backend).await;
    let store = open(&db).await;
    assert!(store.list_instances().await.unwrap().is_empty());
    store.register_instance("a", "1.0").await.unwrap();
    store.register_instance("b", "1.1").await.unwrap();
    create(&store, "j").await;
    store
        .create_manual_run(&common::default_tenant(), &id("j"), None, false)
        .await
        .unwrap();
    claim_one(&store, "b", Duration::from_secs(60)).await;
    let listed = store.list_instances().await.unwrap();
    assert_eq!(
        listed
            .iter()
            .map(|i| (i.id.as_str(), i.version.as_str(), i.leases))
            .collect::<Vec<_>>(),
        [("a", "1.0", 0), ("b", "1.1", 1)]
    );
    assert!(listed.iter().all(|i| i.heartbeat_at >= i.started_at));
    let before = listed[0].heartbeat_at;
    tokio::time::sleep(Duration::from_millis(5)).await;
    assert!(store.heartbeat("a").await.unwrap());
    let after = store.list_instances().await.unwrap()[0].heartbeat_at;
    assert!(after > before, "{before} then {after}");
    assert!(!store.heartbeat("nobody").await.unwrap(), "no row, no beat");
    // Registering again is a fresh beat, not a second row.
    store.register_instance("a", "1.2").await.unwrap();
    assert_eq!(store.list_instances().await.unwrap().len(), 2);
    // A long-silent instance is cleaned away unless it holds a lease.
    tokio::time::sleep(Duration::from_millis(5)).await;
    assert_eq!(
        store.delete_dead_instances(Duration::ZERO).await.unwrap(),
        1
    );
    let left: Vec<String> = store
        .list_instances()
        .await
        .unwrap()
        .into_iter()
        .map(|i| i.id)
        .collect();
    assert_eq!(left, ["b"], "b holds a lease");
    store.deregister_instance("b").await.unwrap();
    assert!(store.list_instances().await.unwrap().is_empty());
}

async fn secrets_are_kept_and_rotated(backend: Backend) {
    let db = TestDb::new(backend).await;
    let store = open(&db).await;
    create(&store, "s").await;
    let secret = store
        .get_secret(&common::default_tenant(), &id("s"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(secret.secret, "whsec_dGVzdA==");
    assert_eq!(secret.previous, None);
    let rotated = store
        .rotate_secret(
            &common::default_tenant(),
            &id("s"),
            "whsec_bmV3",
            Duration::from_secs(600),
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(rotated.secret, "whsec_bmV3");
    let (previous, expires_at) = rotated.previous.clone().unwrap();
    assert_eq!(previous, "whsec_dGVzdA==");
    let grace = expires_at - now();
    assert!(
        grace > TimeDelta::seconds(590) && grace <= TimeDelta::seconds(600),
        "{grace}"
    );
    assert_eq!(
        store
            .get_secret(&common::default_tenant(), &id("s"))
            .await
            .unwrap()
            .unwrap(),
        rotated
    );
    // Both sign while the grace lasts.
    store
        .create_manual_run(&common::default_tenant(), &id("s"), None, false)
        .await
        .unwrap();
    let claimed = claim_one(&store, "me", Duration::from_secs(30)).await;
    assert_eq!(claimed.secrets, ["whsec_bmV3", "whsec_dGVzdA=="]);
    assert!(
        store
            .get_secret(&common::default_tenant(), &id("none"))
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        store
            .rotate_secret(
                &common::default_tenant(),
                &id("none"),
                "whsec_eA==",
                Duration::ZERO
            )
            .await
            .unwrap()
            .is_none()
    );
    // At rest, both are sealed: neither appears in the database's text.
    let sql = "SELECT secret || ' ' || previous_secret FROM jobs WHERE id = 's'";
    let stored: String = match backend {
        Backend::Postgres => {
            use sqlx::Connection;
            let mut conn = sqlx::PgConnection::connect(&db.url).await.unwrap();
            sqlx::query_scalar(sql).fetch_one(&mut conn).await.unwrap()
        }
        Backend::Sqlite => {
            use sqlx::Connection;
            let mut conn = sqlx::SqliteConnection::connect(&db.url).await.unwrap();
            sqlx::query_scalar(sql).fetch_one(&mut conn).await.unwrap()
        }
    };
    assert!(stored.starts_with("enc:v2:"), "{stored}");
    assert!(
        !stored.contains("bmV3") && !stored.contains("dGVzdA"),
        "{stored}"
    );
}

/// Other instances' changes reach this one through PostgreSQL's NOTIFY;
/// SQLite, one process per file, has no listener.
async fn listener(backend: Backend) {
    let db = TestDb::new(backend).await;
    let wakeups = Arc::new(Wakeups::new());
    let store = store::connect(&db.url, wakeups.clone(), common::test_key())
        .await
        .unwrap();
    let shutdown = tokio_util::sync::CancellationToken::new();
    let listening = store.spawn_listener(shutdown.clone());
    match backend {
        Backend::Sqlite => assert!(listening.is_none()),
        Backend::Postgres => {
            let handle = listening.expect("a LISTEN task");
            // Connecting wakes both loops once; then a job made through
            // another handle on the database wakes this one's scheduler.
            tokio::time::timeout(Duration::from_secs(10), wakeups.jobs_did_change())
                .await
                .expect("woken after connecting");
            let other = open(&db).await;
            create(&other, "elsewhere").await;
            tokio::time::timeout(Duration::from_secs(10), wakeups.jobs_did_change())
                .await
                .expect("woken by the other handle's NOTIFY");
            shutdown.cancel();
            handle.await.unwrap();
        }
    }
}

/// Makes `n` finished runs of a job: manual runs beyond max_instances are
/// recorded as skipped, finished at once.
async fn finished_runs(store: &DynStore, job_id: &str, n: usize) {
    create(store, job_id).await;
    let first = store
        .create_manual_run(&common::default_tenant(), &id(job_id), None, false)
        .await
        .unwrap();
    assert_eq!(first.status.as_str(), "pending");
    let second = store
        .create_manual_run(&common::default_tenant(), &id(job_id), None, false)
        .await
        .unwrap();
    assert_eq!(second.status.as_str(), "pending", "max_instances is 2");
    for _ in 0..n {
        let run = store
            .create_manual_run(&common::default_tenant(), &id(job_id), None, false)
            .await
            .unwrap();
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
        async move {
            store
                .list_runs(&common::default_tenant(), &runs_of(&id(job), None, 5000))
                .await
                .unwrap()
                .len()
        }
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
    let busy = store
        .list_runs(&common::default_tenant(), &runs_of(&id("busy"), None, 5000))
        .await
        .unwrap();
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
    // The cleaner as it runs in the service: no run left to delete, and
    // with no event retention, the events of every run made (one each)
    // and of the two jobs go too.
    let events = |store: DynStore| async move {
        store
            .list_events(
                &common::default_tenant(),
                &store::EventFilter {
                    limit: 10_000,
                    newest_first: false,
                    ..Default::default()
                },
            )
            .await
            .unwrap()
            .len() as u64
    };
    // On PostgreSQL a reader sees an event once every older transaction on
    // the server has ended, other tests' too: wait until it sees them all.
    let before = eventually(Duration::from_secs(60), "every event visible", || async {
        let listed = events(store.clone()).await;
        let stored: Vec<(i64,)> = db.fetch_all("SELECT count(*) FROM events").await;
        (listed == stored[0].0 as u64).then_some(listed)
    })
    .await;
    assert!(before >= 1007, "{before}");
    // The latest event is the last one listed; a reader after it sees none.
    let latest = store
        .latest_event_id(&common::default_tenant())
        .await
        .unwrap()
        .expect("events exist");
    let after_latest = store
        .list_events(
            &common::default_tenant(),
            &store::EventFilter {
                after: Some(latest),
                limit: 10,
                newest_first: false,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert!(after_latest.is_empty(), "{after_latest:?}");
    let other = cronhook::domain::auth::Tenant::parse("nobody").unwrap();
    assert_eq!(store.latest_event_id(&other).await.unwrap(), None);
    // The cleaner also forgets the runs-made counts of past minutes (one
    // row per tenant and minute): a minute may end during the test.
    let made: Vec<(i64,)> = db.fetch_all("SELECT count(*) FROM tenant_runs_made").await;
    // And, with no retention, the audit records of the jobs' changes.
    let audit: Vec<(i64,)> = db.fetch_all("SELECT count(*) FROM audit").await;
    assert!(audit[0].0 >= 2, "the two jobs' creations are recorded");
    let cleaned = cronhook::retention::clean(&store, std::time::Duration::ZERO, None)
        .await
        .unwrap();
    let before = before + audit[0].0 as u64;
    assert!(
        (before..=before + made[0].0 as u64).contains(&cleaned),
        "cleaned {cleaned}, {before} events and audit records and at most {} counts",
        made[0].0
    );
    let audit: Vec<(i64,)> = db.fetch_all("SELECT count(*) FROM audit").await;
    assert_eq!(audit[0].0, 0);
    assert_eq!(events(store.clone()).await, 0);
    assert_eq!(count("busy").await, 2);
}

/// What the loops sleep by: nothing scheduled or pending means `None`
/// (sleep the poll interval), not "due now".
async fn next_due_times(backend: Backend) {
    let db = TestDb::new(backend).await;
    let store = open(&db).await;
    assert_eq!(store.next_due_in(Duration::ZERO).await.unwrap(), None);
    assert_eq!(store.next_attempt_in().await.unwrap(), None);

    create(&store, "later").await;
    let due_in = store
        .next_due_in(Duration::ZERO)
        .await
        .unwrap()
        .expect("a scheduled job");
    assert!(
        due_in > std::time::Duration::from_secs(86_400),
        "{due_in:?}"
    );
    assert_eq!(store.next_attempt_in().await.unwrap(), None);

    store
        .create_manual_run(&common::default_tenant(), &id("later"), None, false)
        .await
        .unwrap();
    assert_eq!(
        store.next_attempt_in().await.unwrap(),
        Some(std::time::Duration::ZERO)
    );
    // Once claimed it is leased, not due: its expiry is looked for apart.
    let claimed = store
        .claim_runs(
            "owner",
            10,
            std::time::Duration::from_secs(30),
            &Busy::default(),
        )
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1);
    assert!(claimed[0].spec.is_ok());
    assert_eq!(store.next_attempt_in().await.unwrap(), None);

    let mut past = spec("past");
    past.next_run_at = Some(now() - TimeDelta::hours(1));
    apply(&store, "past", create_command(past)).await.unwrap();
    assert_eq!(
        store.next_due_in(Duration::ZERO).await.unwrap(),
        Some(std::time::Duration::ZERO)
    );
}

/// Two tenants with a job of the same id: each reads, lists, runs and
/// deletes its own, and a claimed run carries its own tenant's target.
async fn tenants_keep_their_own_jobs_under_one_id(backend: Backend) {
    let db = TestDb::new(backend).await;
    let store = open(&db).await;
    let (a, b) = (
        store::Tenant::parse("team-a").unwrap(),
        store::Tenant::parse("team-b").unwrap(),
    );
    for (tenant, path) in [(&a, "/a"), (&b, "/b")] {
        let mut v = body("same");
        v["target"]["url"] = json!(format!("http://127.0.0.1:9{path}"));
        let (_, saved) = store
            .save_job(tenant, &id("same"), &create_command(parse(v)), ctx(), None)
            .await
            .unwrap();
        assert_eq!(saved, Saved::Created);
    }
    let url = |job: Option<Job>| {
        job.unwrap()
            .definition
            .target
            .unwrap()
            .url
            .path()
            .to_string()
    };
    assert_eq!(url(store.get_job(&a, &id("same")).await.unwrap()), "/a");
    assert_eq!(url(store.get_job(&b, &id("same")).await.unwrap()), "/b");
    assert!(
        store
            .get_job(&common::default_tenant(), &id("same"))
            .await
            .unwrap()
            .is_none()
    );
    let filter = JobFilter {
        limit: 10,
        ..Default::default()
    };
    assert_eq!(store.list_jobs(&a, &filter).await.unwrap().len(), 1);
    assert!(
        store
            .list_jobs(&common::default_tenant(), &filter)
            .await
            .unwrap()
            .is_empty()
    );

    let run_a = store
        .create_manual_run(&a, &id("same"), None, false)
        .await
        .unwrap();
    let run_b = store
        .create_manual_run(&b, &id("same"), None, false)
        .await
        .unwrap();
    assert!(store.get_run(&b, run_a.id).await.unwrap().is_none());
    assert!(store.get_run(&a, run_a.id).await.unwrap().is_some());
    let runs = |tenant: &store::Tenant| {
        let store = store.clone();
        let tenant = tenant.clone();
        async move {
            store
                .list_runs(
                    &tenant,
                    &store::RunFilter {
                        limit: 10,
                        ..Default::default()
                    },
                )
                .await
                .unwrap()
                .into_iter()
                .map(|r| r.id)
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(runs(&a).await, [run_a.id]);
    assert_eq!(runs(&b).await, [run_b.id]);
    let mut claimed = store
        .claim_runs("me", 10, Duration::from_secs(1), &Busy::default())
        .await
        .unwrap();
    claimed.sort_by_key(|c| c.tenant.clone());
    let seen: Vec<(String, String)> = claimed
        .iter()
        .map(|c| {
            (
                c.tenant.to_string(),
                c.spec.as_ref().unwrap().0.url.path().to_string(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            ("team-a".into(), "/a".into()),
            ("team-b".into(), "/b".into())
        ]
    );

    assert!(store.delete_job(&a, &id("same"), false).await.unwrap());
    assert!(store.get_job(&b, &id("same")).await.unwrap().is_some());
    assert!(!store.delete_job(&a, &id("same"), false).await.unwrap());
}

async fn tokens_are_kept_as_hashes_and_revoked(backend: Backend) {
    use cronhook::domain::auth::{Role, Tokens, generate_token, generate_token_id};
    let db = TestDb::new(backend).await;
    let store = open(&db).await;
    assert_eq!(store.tokens().await.unwrap(), Tokens::NoneMade);
    let (text, hash) = generate_token();
    let made = store
        .create_token(&store::NewToken {
            id: generate_token_id(),
            name: Some("ops".into()),
            tenant: store::Tenant::parse("team-a").unwrap(),
            role: Role::Write,
            scopes: Vec::new(),
            hash: hash.clone(),
        })
        .await
        .unwrap();
    assert_eq!(
        (made.role, made.tenant.as_str(), made.name.as_deref()),
        (Role::Write, "team-a", Some("ops"))
    );
    assert_eq!(made.last_used_at, None);
    assert_eq!(store.tokens().await.unwrap(), Tokens::Live);
    assert_eq!(store.find_token(&hash).await.unwrap(), Some(made.clone()));
    assert_eq!(
        store
            .find_token(&cronhook::domain::auth::token_hash(&format!("{text}x")))
            .await
            .unwrap(),
        None
    );
    let again = store
        .create_token(&store::NewToken {
            id: generate_token_id(),
            name: None,
            tenant: common::default_tenant(),
            role: Role::Root,
            scopes: vec![cronhook::domain::auth::Scope::Metrics],
            hash: hash.clone(),
        })
        .await;
    assert!(matches!(again, Err(StoreError::Conflict(_))), "{again:?}");

    store.touch_token(&made.id).await.unwrap();
    let listed = store.list_tokens().await.unwrap();
    assert_eq!(listed.len(), 1);
    assert!(listed[0].last_used_at.is_some());

    assert!(store.revoke_token(&made.id).await.unwrap());
    assert!(!store.revoke_token(&made.id).await.unwrap(), "once");
    assert_eq!(store.find_token(&hash).await.unwrap(), None);
    // Revoked, but made: `--auth auto` keeps requiring tokens.
    assert_eq!(store.tokens().await.unwrap(), Tokens::AllRevoked);
    assert!(store.list_tokens().await.unwrap()[0].revoked_at.is_some());
}

/// A tenant's `catchup_max` quota caps its jobs' catch-ups when they are
/// scheduled, whatever a job's own `catchup_max`.
async fn a_tenant_s_catch_up_quota_caps_its_jobs(backend: Backend) {
    let db = TestDb::new(backend).await;
    let store = open(&db).await;
    let tenant = common::default_tenant();
    let set = cronhook::domain::quota::QuotaOverrides {
        catchup_max: Some(3),
        ..Default::default()
    };
    store.set_tenant_quotas(&tenant, &set).await.unwrap();
    let start = now() - TimeDelta::minutes(10) - TimeDelta::seconds(5);
    let mut v = body("late");
    v["trigger"] = json!({"type": "interval", "every_s": 60,
                          "start_at": cronhook::domain::instant::format(&start)});
    v["misfire_grace_s"] = Value::Null;
    v["catchup_max"] = json!(100);
    v["max_instances"] = json!(10);
    let mut late = parse(v);
    late.next_run_at = Some(start);
    apply(&store, "late", create_command(late)).await.unwrap();
    let outcome = store
        .claim_due_jobs(10, Duration::ZERO, &cronhook::scheduler::plan)
        .await
        .unwrap();
    assert_eq!(
        (outcome.pending, outcome.missed),
        (3, 1),
        "11 due: the newest 3 (the tenant's quota, not the job's 100), one missed run for the rest"
    );
}

/// Sealed values are bound to their row: copied into another job's row
/// (by someone who can write the database) they do not open there. Values
/// sealed unbound, as before, open and are bound at the next start.
async fn sealed_values_are_bound_to_their_row(backend: Backend) {
    let db = TestDb::new(backend).await;
    {
        let store = open(&db).await;
        for job in ["a", "b"] {
            let mut v = body(job);
            v["target"]["url"] = json!(format!("https://x.test/{job}/secret-path"));
            v["target"]["headers"] = json!({"authorization": format!("Bearer {job}-token")});
            apply(&store, job, create_command(parse(v))).await.unwrap();
        }
    }
    let rows: Vec<(String, String, Option<String>)> = db
        .fetch_all("SELECT id, secret, target_secrets FROM jobs ORDER BY id")
        .await;
    assert!(
        rows.iter().all(|(_, s, t)| s.starts_with("enc:v2:")
            && t.as_deref().unwrap_or("").starts_with("enc:v2:"))
    );
    let (a_secret, a_target) = (rows[0].1.clone(), rows[0].2.clone().unwrap());
    db.execute(
        "UPDATE jobs SET target_secrets = $1 WHERE id = 'b'",
        &[&a_target],
    )
    .await;
    let store = open(&db).await;
    let moved = store.get_job(&common::default_tenant(), &id("b")).await;
    assert!(
        matches!(&moved, Err(StoreError::Corrupt(e)) if e.contains("in this place")),
        "{moved:?}"
    );
    db.execute("UPDATE jobs SET secret = $1 WHERE id = 'b'", &[&a_secret])
        .await;
    assert!(
        store
            .get_secret(&common::default_tenant(), &id("b"))
            .await
            .is_err()
    );

    // As the previous version sealed them: unbound. They open, and the
    // next start binds them.
    let key = common::test_key();
    let unbound_target = key.seal_unbound(
        &json!({"url": "https://x.test/b/secret-path", "headers": {"authorization": "Bearer b-token"}})
            .to_string(),
    );
    let unbound_secret = key.seal_unbound("whsec_dGVzdA==");
    db.execute(
        "UPDATE jobs SET target_secrets = $1, secret = $2 WHERE id = 'b'",
        &[&unbound_target, &unbound_secret],
    )
    .await;
    let job = store
        .get_job(&common::default_tenant(), &id("b"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        job.definition.target.as_ref().unwrap().url.path(),
        "/b/secret-path"
    );
    drop(store);
    let store = open(&db).await;
    let rows: Vec<(String, String, Option<String>)> = db
        .fetch_all("SELECT id, secret, target_secrets FROM jobs WHERE id = 'b'")
        .await;
    assert!(
        rows[0].1.starts_with("enc:v2:") && rows[0].2.as_deref().unwrap().starts_with("enc:v2:")
    );
    let secret = store
        .get_secret(&common::default_tenant(), &id("b"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(secret.secret, "whsec_dGVzdA==");
    assert_eq!(
        store
            .get_job(&common::default_tenant(), &id("b"))
            .await
            .unwrap()
            .unwrap()
            .definition
            .target
            .unwrap()
            .headers["authorization"],
        "Bearer b-token"
    );
}

/// A tenant past its runs this minute has its due jobs left due (not
/// locked, not counted as due) until the minute ends; another tenant's
/// are claimed.
async fn a_tenant_past_its_runs_per_minute_waits_for_the_next_minute(backend: Backend) {
    let db = TestDb::new(backend).await;
    let store = open(&db).await;
    let tenant = common::default_tenant();
    let set = cronhook::domain::quota::QuotaOverrides {
        runs_per_minute: Some(3),
        ..Default::default()
    };
    assert_eq!(
        store
            .set_tenant_quotas(&tenant, &set)
            .await
            .unwrap()
            .runs_per_minute,
        3
    );
    for job in ["q1", "q2"] {
        let mut due = spec(job);
        // Before q3, so claimed first (as missed runs: one row each).
        due.next_run_at = Some(now() - TimeDelta::seconds(80));
        apply(&store, job, create_command(due)).await.unwrap();
    }
    // q3 makes two runs (a missed one and a pending one): past the one
    // left of the quota, it waits, and holds its tenant back meanwhile.
    let start = now() - TimeDelta::seconds(70);
    let mut v = body("q3");
    v["trigger"] = json!({"type": "interval", "every_s": 60,
                          "start_at": cronhook::domain::instant::format(&start)});
    let mut q3 = parse(v);
    q3.next_run_at = Some(start);
    apply(&store, "q3", create_command(q3)).await.unwrap();
    let other = store::Tenant::parse("team-o").unwrap();
    let mut due = spec("o1");
    due.next_run_at = Some(now() - TimeDelta::seconds(10));
    store
        .save_job(&other, &id("o1"), &create_command(due), ctx(), None)
        .await
        .unwrap();
    // Not across two minutes.
    eventually(
        Duration::from_secs(20),
        "10 s left in the minute",
        || async { (Utc::now().timestamp().rem_euclid(60) < 50).then_some(()) },
    )
    .await;
    let first = store
        .claim_due_jobs(10, Duration::ZERO, &cronhook::scheduler::plan)
        .await
        .unwrap();
    assert_eq!((first.jobs, first.runs), (3, 3), "two of ours, and o1");
    let second = store
        .claim_due_jobs(10, Duration::ZERO, &cronhook::scheduler::plan)
        .await
        .unwrap();
    assert_eq!(second.jobs, 0, "the third waits for the next minute");
    let due_in = store.next_due_in(Duration::ZERO).await.unwrap().unwrap();
    assert!(
        due_in > Duration::from_secs(3600),
        "not due now: {due_in:?}"
    );
    let manual = store
        .create_manual_run(&tenant, &id("q1"), None, false)
        .await;
    assert!(
        matches!(manual, Err(StoreError::Refused(Refusal::QuotaReached(..)))),
        "{manual:?}"
    );
}

/// A claim counts a bounded number of missed occurrences, leaving the
/// rest of its due jobs for the next transaction: the write lock is never
/// held for long walks (issue 22: 4 s on SQLite).
async fn a_claim_counts_a_bounded_backlog(backend: Backend) {
    use cronhook::domain::misfire::MAX_COUNT_STEPS;
    let db = TestDb::new(backend).await;
    let store = open(&db).await;
    for job in ["s1", "s2", "s3"] {
        let mut v = body(job);
        v["trigger"] = json!({"type": "cron", "expr": "* * * * * *"});
        v["coalesce"] = json!(true);
        let mut spec = parse(v);
        spec.next_run_at = Some(now() - TimeDelta::days(1));
        apply(&store, job, create_command(spec)).await.unwrap();
    }
    let first = store
        .claim_due_jobs(10, Duration::ZERO, &cronhook::scheduler::plan)
        .await
        .unwrap();
    assert_eq!(first.jobs, 2, "two walks fill a claim's count");
    let second = store
        .claim_due_jobs(10, Duration::ZERO, &cronhook::scheduler::plan)
        .await
        .unwrap();
    // The third, in the next transaction (the other two may be due again:
    // they fire every second).
    assert!(second.jobs >= 1, "{second:?}");
    let runs = store
        .list_runs(&common::default_tenant(), &runs_of(&id("s3"), None, 10))
        .await
        .unwrap();
    let missed = runs
        .iter()
        .find(|r| r.status == RunStatus::Missed)
        .expect("a missed run");
    assert_eq!(
        missed.occurrences, MAX_COUNT_STEPS,
        "a day of seconds, counted up to the bound"
    );
}

/// A dispatcher whose requests to a host are at their limit claims none
/// of that host's runs, nor those of a tenant at its share; a run that
/// waited for its host renews its lease.
async fn busy_hosts_and_tenants_runs_are_left_for_later(backend: Backend) {
    let db = TestDb::new(backend).await;
    let store = open(&db).await;
    for (job, url) in [("a", "http://127.0.0.1:9/a"), ("b", "http://localhost:9/b")] {
        let mut v = body(job);
        v["target"]["url"] = json!(url);
        apply(&store, job, create_command(parse(v))).await.unwrap();
        store
            .create_manual_run(&common::default_tenant(), &id(job), None, false)
            .await
            .unwrap();
    }
    let other = store::Tenant::parse("team-c").unwrap();
    let mut c = body("c");
    c["target"]["url"] = json!("http://localhost:9/c");
    let (_, saved) = store
        .save_job(&other, &id("c"), &create_command(parse(c)), ctx(), None)
        .await
        .unwrap();
    assert_eq!(saved, Saved::Created);
    store
        .create_manual_run(&other, &id("c"), None, false)
        .await
        .unwrap();
    let busy = Busy {
        hosts: vec!["127.0.0.1".to_string()],
        tenants: vec!["team-c".to_string()],
    };
    let claimed = store
        .claim_runs("me", 10, Duration::from_secs(30), &busy)
        .await
        .unwrap();
    let jobs: Vec<String> = claimed.iter().map(|c| c.subject.name()).collect();
    assert_eq!(jobs, ["b"]);
    let busy = Busy {
        hosts: vec!["127.0.0.1".to_string()],
        tenants: vec![],
    };
    let claimed = store
        .claim_runs("me", 10, Duration::from_secs(30), &busy)
        .await
        .unwrap();
    let tenants: Vec<&str> = claimed.iter().map(|c| c.tenant.as_str()).collect();
    assert_eq!(tenants, ["team-c"], "its share has room again");
    let claimed = store
        .claim_runs("me", 10, Duration::from_secs(30), &Busy::default())
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1);
    let a = &claimed[0];
    assert_eq!(a.subject.name(), "a");
    assert!(
        store
            .renew_lease("me", a.run_id, a.attempt, Duration::from_secs(30))
            .await
            .unwrap()
    );
    assert!(
        !store
            .renew_lease("other", a.run_id, a.attempt, Duration::from_secs(30))
            .await
            .unwrap()
    );
    assert!(
        !store
            .renew_lease("me", a.run_id, a.attempt + 1, Duration::from_secs(30))
            .await
            .unwrap()
    );
}

/// DESIGN.md §12: a job due within the lookahead gets its run now, pending
/// until its fire time (the dispatcher does not take it before); a job
/// with a run in flight waits for its fire time; a pause, a trigger
/// change and a delete remove the run made ahead.
async fn runs_are_made_ahead_and_removed_when_the_schedule_changes(backend: Backend) {
    let db = TestDb::new(backend).await;
    let store = open(&db).await;
    let tenant = common::default_tenant();
    let lookahead = Duration::from_secs(20);
    let plan = cronhook::scheduler::plan;
    let first = now() + TimeDelta::seconds(10);
    let mut v = body("soon");
    v["trigger"] = json!({"type": "interval", "every_s": 60,
                          "start_at": cronhook::domain::instant::format(&first)});
    apply(&store, "soon", create_command(parse(v.clone())))
        .await
        .unwrap();
    let listed = || async {
        store
            .list_runs(&tenant, &runs_of(&id("soon"), None, 10))
            .await
            .unwrap()
    };

    // Not due, and no lookahead: nothing.
    let none = store
        .claim_due_jobs(10, Duration::ZERO, &plan)
        .await
        .unwrap();
    assert_eq!(none.jobs, 0);
    assert_eq!(
        store.next_due_in(lookahead).await.unwrap(),
        Some(Duration::ZERO)
    );
    let made = store.claim_due_jobs(10, lookahead, &plan).await.unwrap();
    assert_eq!((made.jobs, made.runs, made.pending), (1, 1, 1));
    let runs = listed().await;
    assert_eq!(runs.len(), 1);
    assert_eq!(
        (runs[0].scheduled_for, runs[0].status),
        (first, RunStatus::Pending)
    );
    assert_eq!(runs[0].deliver_after, first);
    // Pending until its fire time: not leased before.
    let due_in = store
        .next_attempt_in()
        .await
        .unwrap()
        .expect("a pending run");
    assert!(due_in > Duration::from_secs(5), "{due_in:?}");
    let leased = store
        .claim_runs("owner", 10, Duration::from_secs(30), &Busy::default())
        .await
        .unwrap();
    assert!(leased.is_empty(), "sent before its fire time");
    // The job moved on; with its run in flight it is not taken ahead again
    // (its next fire is 70 s away, more than the lookahead anyway).
    let job = store.get_job(&tenant, &id("soon")).await.unwrap().unwrap();
    assert_eq!(
        job.schedule.next_run_at(),
        Some(first + TimeDelta::seconds(60))
    );
    assert_eq!(
        store
            .claim_due_jobs(10, lookahead, &plan)
            .await
            .unwrap()
            .jobs,
        0
    );
    let due_in = store.next_due_in(lookahead).await.unwrap().unwrap();
    assert!(due_in > Duration::from_secs(50), "{due_in:?}");

    // A pause removes it; a resume before its fire time makes it again.
    apply(&store, "soon", JobCommand::Pause(Default::default()))
        .await
        .unwrap();
    assert!(
        listed().await.is_empty(),
        "a paused job's run made ahead stays"
    );
    apply(&store, "soon", JobCommand::Resume).await.unwrap();
    let again = store.claim_due_jobs(10, lookahead, &plan).await.unwrap();
    assert_eq!(again.pending, 1);
    assert_eq!(listed().await[0].scheduled_for, first);

    // A new trigger removes it too.
    let later = first + TimeDelta::seconds(5);
    v["trigger"] = json!({"type": "interval", "every_s": 120,
                          "start_at": cronhook::domain::instant::format(&later)});
    let spec = parse(v.clone());
    apply(
        &store,
        "soon",
        JobCommand::Replace {
            spec,
            trigger: Box::new(serde_json::from_value(v["trigger"].clone()).unwrap()),
            secret: "whsec_dGVzdA==".into(),
        },
    )
    .await
    .unwrap();
    assert!(listed().await.is_empty(), "a run of the old trigger stays");
    store.claim_due_jobs(10, lookahead, &plan).await.unwrap();
    assert_eq!(listed().await[0].scheduled_for, later);

    // A job whose run is in flight is taken only once due.
    let mut busy = body("busy");
    busy["trigger"] = json!({"type": "interval", "every_s": 60,
                             "start_at": cronhook::domain::instant::format(&first)});
    apply(&store, "busy", create_command(parse(busy)))
        .await
        .unwrap();
    store
        .create_manual_run(&tenant, &id("busy"), None, false)
        .await
        .unwrap();
    let outcome = store.claim_due_jobs(10, lookahead, &plan).await.unwrap();
    assert_eq!(outcome.jobs, 0, "{outcome:?}");
    let due_in = store.next_due_in(lookahead).await.unwrap().unwrap();
    assert!(due_in > Duration::from_secs(5), "{due_in:?}");
}

/// DESIGN.md §12: a last occurrence is not made ahead (a date job's, an
/// interval's last before its `end_at`, the run that reaches `max_runs`),
/// and neither the claim nor the scheduler's sleep takes it before its
/// fire time, so the scheduler is not woken for it again and again
/// meanwhile; an occurrence before `end_at` that is not the last is.
async fn a_last_occurrence_is_neither_made_nor_claimed_ahead(backend: Backend) {
    let db = TestDb::new(backend).await;
    let store = open(&db).await;
    let lookahead = Duration::from_secs(20);
    let plan = cronhook::scheduler::plan;
    let first = now() + TimeDelta::seconds(10);
    let at = cronhook::domain::instant::format(&first);
    let until = cronhook::domain::instant::format(&(first + TimeDelta::seconds(30)));
    let last_ones = [
        ("once", json!({"type": "date", "run_at": at}), None),
        (
            "bounded",
            json!({"type": "interval", "every_s": 60, "start_at": at, "end_at": until}),
            None,
        ),
        (
            "limited",
            json!({"type": "interval", "every_s": 60, "start_at": at}),
            Some(1),
        ),
    ];
    for (name, trigger, max_runs) in last_ones {
        let mut v = body(name);
        v["trigger"] = trigger;
        if let Some(n) = max_runs {
            v["max_runs"] = json!(n);
        }
        apply(&store, name, create_command(parse(v))).await.unwrap();
    }
    let outcome = store.claim_due_jobs(10, lookahead, &plan).await.unwrap();
    assert_eq!(outcome.jobs, 0, "{outcome:?}");
    let due_in = store.next_due_in(lookahead).await.unwrap().unwrap();
    assert!(due_in > Duration::from_secs(5), "{due_in:?}");
    // Others are, beside them: unbounded, or with an end_at further on.
    let later = cronhook::domain::instant::format(&(first + TimeDelta::days(7)));
    for (name, trigger) in [
        (
            "every",
            json!({"type": "interval", "every_s": 60, "start_at": at}),
        ),
        (
            "until",
            json!({"type": "interval", "every_s": 60, "start_at": at, "end_at": later}),
        ),
    ] {
        let mut v = body(name);
        v["trigger"] = trigger;
        apply(&store, name, create_command(parse(v))).await.unwrap();
    }
    assert_eq!(
        store.next_due_in(lookahead).await.unwrap(),
        Some(Duration::ZERO)
    );
    let made = store.claim_due_jobs(10, lookahead, &plan).await.unwrap();
    assert_eq!((made.jobs, made.pending), (2, 2), "{made:?}");
}

store_tests!(
    runs_are_made_ahead_and_removed_when_the_schedule_changes,
    a_last_occurrence_is_neither_made_nor_claimed_ahead,
    a_tenant_s_catch_up_quota_caps_its_jobs,
    sealed_values_are_bound_to_their_row,
    a_tenant_past_its_runs_per_minute_waits_for_the_next_minute,
    a_claim_counts_a_bounded_backlog,
    busy_hosts_and_tenants_runs_are_left_for_later,
    tenants_keep_their_own_jobs_under_one_id,
    tokens_are_kept_as_hashes_and_revoked,
    backend_and_ping,
    saves_and_reads_back_the_same_job,
    commands_are_decided_by_the_lifecycle_rules,
    lists_in_id_order_with_filter_and_cursor,
    selectors_pick_what_the_rule_picks,
    deletes,
    concurrent_creates_of_one_id_make_one_job,
    survives_reopening,
    claims_due_jobs_as_the_plan_decides,
    manual_runs_and_history,
    deliveries_are_claimed_recorded_fenced_and_released,
    expired_leases_are_recovered_as_the_retry_rules_decide,
    a_lease_of_an_unknown_owner_is_taken_over_at_once,
    instances_register_beat_list_and_leave,
    secrets_are_kept_and_rotated,
    runs_are_listed_by_job_status_and_time,
    idempotency_keys_are_recorded_with_what_they_made,
    listener,
    next_due_times,
    retention_deletes_old_and_surplus_finished_runs_only,
);
