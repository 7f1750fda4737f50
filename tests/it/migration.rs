//! Upgrading a database: jobs stored by the first schema (their definition
//! as the API's JSON, their secrets in plain text) read back the same after
//! the migrations that follow, their secrets sealed, on both stores; and a
//! store sealed with one key refuses another without touching anything.

use crate::support as common;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use common::{Backend, TestDb};
use cronhook::domain::instant;
use cronhook::domain::job::{JobId, JobInput, JobSpec, ParseContext, Schedule};
use cronhook::store;
use cronhook::wakeup::Wakeups;
use serde_json::{Value, json};
use sqlx::Connection;

/// The jobs of the old database, as clients created them.
fn bodies() -> Vec<Value> {
    vec![
        json!({"id": "cron", "name": "Nightly",
               "trigger": {"type": "cron", "expr": "30 2 * * 1-5", "timezone": "Asia/Seoul",
                           "start_at": "2026-01-01T00:00:00.123456Z", "end_at": "2031-01-01T00:00:00Z",
                           "jitter_s": 9},
               "target": {"url": "https://example.com/hook?x=1", "method": "PUT",
                          "headers": {"X-Team": "data", "Authorization": "Bearer tok-plain-1"},
                          "body": {"report": ["daily", 1]},
                          "timeout_s": 12},
               "misfire_grace_s": 900, "coalesce": false, "max_instances": 3,
               "retry": {"max_attempts": 5, "backoff_initial_s": 2, "backoff_max_s": 60},
               "metadata": {"owner": "data-team"}}),
        json!({"id": "interval",
               "trigger": {"type": "interval", "every_s": 90, "start_at": "2026-11-23T10:00:00.5Z"},
               "target": {"url": "http://hooks:pw-plain-2@127.0.0.1:9/text", "body": "plain text"}}),
        json!({"id": "date",
               "trigger": {"type": "date", "run_at": "2031-12-01T09:00:00Z"},
               "target": {"url": "http://127.0.0.1:9/none"}}),
    ]
}

fn spec(body: &Value) -> JobSpec {
    serde_json::from_value::<JobInput>(body.clone())
        .unwrap()
        .parse(ParseContext {
            now: instant::parse("2026-11-01T00:00:00Z").unwrap(),
            network_policy: Default::default(),
            binding: None,
        })
        .unwrap()
}

/// A folder holding only the first migration, as the first release had it.
fn first_migration(backend: Backend) -> PathBuf {
    let name = match backend {
        Backend::Postgres => "postgres",
        Backend::Sqlite => "sqlite",
    };
    let dir = std::env::temp_dir().join(format!(
        "cronhook-first-migration-{}",
        uuid::Uuid::new_v4().simple()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let source = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("migrations")
        .join(name)
        .join("0001_schema.sql");
    std::fs::copy(&source, dir.join("0001_schema.sql")).unwrap();
    dir
}

/// The JSON columns as the first release wrote them: the API's canonical
/// input form of each part.
fn old_columns(spec: &JobSpec) -> (String, String, String, String) {
    let d = &spec.definition;
    (
        serde_json::to_string(&d.trigger.to_input()).unwrap(),
        serde_json::to_string(&d.target.as_ref().unwrap().to_input()).unwrap(),
        serde_json::to_string(&d.retry.to_input()).unwrap(),
        Value::Object(d.metadata.clone()).to_string(),
    )
}

const NEXT_RUN: &str = "2031-06-01T00:00:00Z";

/// The raw columns that hold secrets, as stored: job id, signing secret,
/// URL, headers, sealed target secrets.
async fn stored_secrets(url: &str) -> Vec<(String, String, String, String, Option<String>)> {
    TestDb::existing(url)
        .fetch_all(
            "SELECT id, secret, target_url, target_headers, target_secrets FROM jobs ORDER BY id",
        )
        .await
}

async fn jobs_stored_by_the_first_schema_read_back_the_same(backend: Backend) {
    let db = TestDb::new(backend).await;
    let dir = first_migration(backend);
    let old = sqlx::migrate::Migrator::new(dir.as_path()).await.unwrap();
    let created: DateTime<Utc> = instant::parse("2026-11-01T12:00:00.654321Z").unwrap();
    let next: DateTime<Utc> = instant::parse(NEXT_RUN).unwrap();
    let specs: Vec<JobSpec> = bodies().iter().map(spec).collect();

    match backend {
        Backend::Postgres => {
            let mut conn = sqlx::PgConnection::connect(&db.url).await.unwrap();
            old.run(&mut conn).await.unwrap();
            for s in &specs {
                let (trigger, target, retry, metadata) = old_columns(s);
                let d = &s.definition;
                sqlx::query(
                    "INSERT INTO jobs (id, name, trigger, target, retry, metadata, misfire_grace_s,
                         coalesce_runs, max_instances, state, next_run_at, secret, created_at,
                         updated_at)
                     VALUES ($1, $2, $3::jsonb, $4::jsonb, $5::jsonb, $6::jsonb, $7, $8, $9,
                             'scheduled', $10, 'whsec_b2xk', $11, $11)",
                )
                .bind(s.id.as_ref().unwrap().as_str())
                .bind(&d.name)
                .bind(trigger)
                .bind(target)
                .bind(retry)
                .bind(metadata)
                .bind(d.misfire_grace_s.map(i64::from))
                .bind(d.coalesce)
                .bind(d.max_instances as i32)
                .bind(next)
                .bind(created)
                .execute(&mut conn)
                .await
                .unwrap();
            }
            sqlx::query(
                "INSERT INTO runs (id, job_id, scheduled_for, cause, status, occurrences,
                                   deliver_after, finished_at)
                 VALUES ($1, 'cron', $2, 'schedule', 'failed', 1, $2, $2)",
            )
            .bind(uuid::Uuid::now_v7())
            .bind(created)
            .execute(&mut conn)
            .await
            .unwrap();
        }
        Backend::Sqlite => {
            let mut conn = sqlx::SqliteConnection::connect(&format!("{}?mode=rwc", db.url))
                .await
                .unwrap();
            old.run(&mut conn).await.unwrap();
            let micros = |t: DateTime<Utc>| t.timestamp_micros();
            for s in &specs {
                let (trigger, target, retry, metadata) = old_columns(s);
                let d = &s.definition;
                sqlx::query(
                    "INSERT INTO jobs (id, name, trigger, target, retry, metadata, misfire_grace_s,
                         coalesce_runs, max_instances, state, next_run_at, secret, created_at,
                         updated_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, 'scheduled', ?10, 'whsec_b2xk',
                             ?11, ?11)",
                )
                .bind(s.id.as_ref().unwrap().as_str())
                .bind(&d.name)
                .bind(trigger)
                .bind(target)
                .bind(retry)
                .bind(metadata)
                .bind(d.misfire_grace_s.map(i64::from))
                .bind(d.coalesce)
                .bind(i64::from(d.max_instances))
                .bind(micros(next))
                .bind(micros(created))
                .execute(&mut conn)
                .await
                .unwrap();
            }
            sqlx::query(
                "INSERT INTO runs (id, job_id, scheduled_for, cause, status, occurrences,
                                   deliver_after, created_at, finished_at)
                 VALUES (?1, 'cron', ?2, 'schedule', 'failed', 1, ?2, ?2, ?2)",
            )
            .bind(uuid::Uuid::now_v7().to_string())
            .bind(micros(created))
            .execute(&mut conn)
            .await
            .unwrap();
        }
    }
    std::fs::remove_dir_all(&dir).ok();

    // The service opens it: the later migrations run, the data comes along.
    let store = store::connect(&db.url, Arc::new(Wakeups::new()), common::test_key())
        .await
        .expect("the upgrade applies");
    for s in &specs {
        let id = s.id.clone().unwrap();
        let job = store
            .get_job(&common::default_tenant(), &id)
            .await
            .unwrap()
            .expect("still there");
        assert_eq!(job.definition, s.definition, "{id}");
        assert_eq!(job.schedule, Schedule::Scheduled { next_run_at: next });
        assert_eq!(job.created_at, created);
    }
    let cron = store
        .get_job(&common::default_tenant(), &JobId::parse("cron").unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(cron.last_run.unwrap().status.as_str(), "failed");
    assert_eq!(
        store
            .get_secret(&common::default_tenant(), &JobId::parse("date").unwrap())
            .await
            .unwrap()
            .unwrap()
            .secret,
        "whsec_b2xk"
    );
    // And it works as before: a run is claimed with its target, lease and
    // retry policy read from the new columns.
    store
        .create_manual_run(
            &common::default_tenant(),
            &JobId::parse("cron").unwrap(),
            None,
            false,
        )
        .await
        .unwrap();
    let claimed = store
        .claim_runs(
            "me",
            10,
            Duration::from_secs(1),
            &cronhook::store::Busy::default(),
        )
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1);
    let (target, retry) = claimed[0].spec.clone().unwrap();
    assert_eq!(Some(target.clone()), specs[0].definition.target);
    assert_eq!(retry, specs[0].definition.retry);
    assert_eq!(target.headers["authorization"], "Bearer tok-plain-1");
    // The jobs stored before count towards the tenant's quota: with room
    // for four, one more fits and the next is refused.
    let tenant = common::default_tenant();
    let four = cronhook::domain::quota::QuotaOverrides {
        jobs: Some(4),
        ..Default::default()
    };
    store.set_tenant_quotas(&tenant, &four).await.unwrap();
    let context = ParseContext {
        now: Utc::now(),
        network_policy: Default::default(),
        binding: None,
    };
    for (n, fits) in [("fourth", true), ("fifth", false)] {
        let mut body = bodies()[2].clone();
        body["id"] = json!(n);
        let create = cronhook::domain::lifecycle::JobCommand::Create {
            spec: spec(&body),
            secret: "whsec_dGVzdA==".into(),
        };
        let made = store
            .save_job(
                &tenant,
                &JobId::parse(n).unwrap(),
                &create,
                context.clone(),
                None,
            )
            .await;
        assert_eq!(made.is_ok(), fits, "{n}: {:?}", made.err());
    }
    drop(store);

    // What was plain is sealed: no secret is left in the database's text.
    let stored = stored_secrets(&db.url).await;
    assert_eq!(stored.len(), 4);
    for (id, secret, url, headers, sealed) in &stored {
        assert!(
            secret.starts_with("enc:v2:"),
            "{id}: bound to its row: {secret}"
        );
        assert!(
            url.ends_with("/***"),
            "{id}: the whole URL is sealed: {url}"
        );
        for plain in [
            "whsec_b2xk",
            "tok-plain-1",
            "pw-plain-2",
            "hook?x=1",
            "/text",
        ] {
            for column in [secret, url, headers] {
                assert!(!column.contains(plain), "{id}: {column}");
            }
            assert!(!sealed.as_deref().unwrap_or("").contains(plain), "{id}");
        }
    }
    assert!(
        stored.iter().all(|r| r.4.is_some()),
        "every URL is sealed, its path and query with it"
    );

    // Another key: refused, saying so, and nothing changes.
    let other = cronhook::domain::sealing::SealingKey::from_base64(
        &cronhook::domain::sealing::SealingKey::generate_base64(),
    )
    .unwrap();
    let refused = store::connect(&db.url, Arc::new(Wakeups::new()), other)
        .await
        .err()
        .expect("another key is refused");
    assert!(
        matches!(refused, store::StoreError::WrongKey(_)),
        "{refused}"
    );
    assert!(
        refused.to_string().contains("nothing was changed"),
        "{refused}"
    );
    assert_eq!(stored_secrets(&db.url).await, stored);
    // The right key still opens everything.
    let store = store::connect(&db.url, Arc::new(Wakeups::new()), common::test_key())
        .await
        .unwrap();
    let job = store
        .get_job(
            &common::default_tenant(),
            &JobId::parse("interval").unwrap(),
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        job.definition.target.as_ref().unwrap().url.password(),
        Some("pw-plain-2")
    );
}

store_tests!(jobs_stored_by_the_first_schema_read_back_the_same);
