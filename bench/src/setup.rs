//! Databases and jobs for the scenarios.

use std::sync::Arc;

use anyhow::Context;
use chrono::{DateTime, TimeDelta, Utc};
use cronhook::domain::auth::Tenant;
use cronhook::domain::job::{JobInput, JobSpec, ParseContext};
use cronhook::domain::lifecycle::JobCommand;
use cronhook::domain::sealing::SealingKey;
use cronhook::domain::signing::generate_secret;
use cronhook::domain::trigger::Trigger;
use cronhook::store::{PgStore, Store};
use cronhook::wakeup::Wakeups;
use serde_json::Value;
use sqlx::{Connection, PgConnection};

/// A database of its own for one scenario, dropped afterwards.
pub struct BenchDb {
    pub url: String,
    server: String,
    name: String,
}

impl BenchDb {
    pub async fn create(server: &str, scenario: &str) -> anyhow::Result<Self> {
        let mut admin = PgConnection::connect(server)
            .await
            .with_context(|| format!("connecting to PostgreSQL at {server}"))?;
        let name = format!(
            "cronhook_bench_{}_{}",
            scenario.replace('-', "_"),
            &uuid::Uuid::new_v4().simple().to_string()[..8]
        );
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut admin)
            .await?;
        let mut url = url::Url::parse(server)?;
        url.set_path(&name);
        Ok(Self {
            url: url.to_string(),
            server: server.to_string(),
            name,
        })
    }

    pub async fn drop_database(self) -> anyhow::Result<()> {
        let mut admin = PgConnection::connect(&self.server).await?;
        sqlx::query(&format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            self.name
        ))
        .execute(&mut admin)
        .await?;
        Ok(())
    }
}

/// The key every benchmark service and store seals secrets with (the
/// services get it as CRONHOOK_ENCRYPTION_KEY).
pub const BENCH_KEY: &str = "Y3Jvbmhvb2stYmVuY2gtc2VhbGluZy1rZXktMzJieXQ=";

/// The jobs and runs a minute the benchmark's tenant may have: above any
/// scenario's load (the services get the same, see `service.rs`).
pub const BENCH_QUOTA: u32 = 10_000_000;

pub async fn store(url: &str) -> anyhow::Result<PgStore> {
    let key = SealingKey::from_base64(BENCH_KEY).map_err(anyhow::Error::msg)?;
    let quotas = cronhook::domain::quota::Quotas {
        jobs: BENCH_QUOTA,
        runs_per_minute: BENCH_QUOTA,
        ..Default::default()
    };
    Ok(PgStore::connect(url, Arc::new(Wakeups::new()), key)
        .await?
        .with_quotas(quotas))
}

pub fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

/// The next whole second at least `lead` from now: a start all jobs share.
pub fn start_after(lead: TimeDelta) -> DateTime<Utc> {
    let t = Utc::now() + lead;
    DateTime::from_timestamp(t.timestamp() + 1, 0).unwrap()
}

/// A new job as seeding takes it: its spec, with an id.
pub type NewJob = JobSpec;

/// A validated job from its JSON (with an id), as the API would read it.
pub fn job(json: Value) -> anyhow::Result<NewJob> {
    let spec = serde_json::from_value::<JobInput>(json)?
        .parse(ParseContext {
            now: Utc::now(),
            network_policy: Default::default(),
            binding: None,
        })
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    anyhow::ensure!(spec.id.is_some(), "a seeded job needs an id");
    Ok(spec)
}

/// The instants in which seeded jobs of one shape differ.
fn instants(trigger: &Trigger) -> (Option<DateTime<Utc>>, Option<DateTime<Utc>>) {
    match trigger {
        Trigger::Date(t) => (Some(t.run_at), None),
        Trigger::Interval(t) => (None, Some(t.start_at)),
        Trigger::Cron(t) => (None, t.start_at),
        // Not seeded by copy: the agenda scenario creates those over HTTP.
        Trigger::AnyOf(_) | Trigger::Calendared(_) => (None, None),
    }
}

/// Stores jobs as the API would make them, thousands per statement: the
/// first through the store's own create, the rest as copies of its row
/// that differ in id, `run_at` or `start_at`, and schedule (every batch a
/// scenario seeds is one shape of job). The service exposes no bulk path
/// of its own for this.
pub async fn seed(store: &PgStore, jobs: Vec<NewJob>) -> anyhow::Result<()> {
    let Some((first, rest)) = jobs.split_first() else {
        return Ok(());
    };
    let tenant = Tenant::default_tenant();
    let template = first.id.clone().context("a seeded job needs an id")?;
    let now = Utc::now();
    let secret = generate_secret();
    let create = JobCommand::Create {
        spec: first.clone(),
        secret: secret.clone(),
    };
    let key = SealingKey::from_base64(BENCH_KEY).map_err(anyhow::Error::msg)?;
    let context = ParseContext {
        now,
        network_policy: Default::default(),
        binding: None,
    };
    store
        .save_job(&tenant, &template, &create, context, None)
        .await?;
    for chunk in rest.chunks(10_000) {
        let mut ids = Vec::with_capacity(chunk.len());
        let (mut run_at, mut start_at) = (Vec::new(), Vec::new());
        let (mut next_run_at, mut states) = (Vec::new(), Vec::new());
        // Sealed values are bound to their row: each copy gets its own.
        let (mut target_secrets, mut secrets) = (Vec::new(), Vec::new());
        for spec in chunk {
            let schedule = spec.initial_schedule(now);
            let (run, start) = instants(&spec.definition.trigger);
            let id = spec.id.as_ref().context("a seeded job needs an id")?;
            let target = spec
                .definition
                .target
                .as_ref()
                .context("a seeded job needs a target")?;
            let (sealed_target, sealed_secret) =
                cronhook::store::sealed_job_columns(&key, &tenant, id, target, &secret);
            target_secrets.push(sealed_target);
            secrets.push(sealed_secret);
            ids.push(id.to_string());
            run_at.push(run);
            start_at.push(start);
            next_run_at.push(schedule.next_run_at());
            states.push(schedule.state().as_str());
        }
        sqlx::query(
            "INSERT INTO jobs
             SELECT (jsonb_populate_record(t, jsonb_build_object(
                        'id', u.id, 'run_at', u.run_at, 'start_at', u.start_at,
                        'next_run_at', u.next_run_at, 'state', u.state,
                        'target_secrets', u.target_secrets, 'secret', u.secret))).*
             FROM jobs t, UNNEST($2::text[], $3::timestamptz[], $4::timestamptz[],
                                 $5::timestamptz[], $6::text[], $8::text[], $9::text[])
                              AS u(id, run_at, start_at, next_run_at, state, target_secrets,
                                   secret)
             WHERE t.tenant = $7 AND t.id = $1",
        )
        .bind(template.as_str())
        .bind(&ids)
        .bind(&run_at)
        .bind(&start_at)
        .bind(&next_run_at)
        .bind(&states)
        .bind(tenant.as_str())
        .bind(&target_secrets)
        .bind(&secrets)
        .execute(store.pool())
        .await?;
    }
    // The copies count towards the tenant's jobs as created ones do.
    sqlx::query(
        "INSERT INTO tenant_job_counts (tenant, slot, jobs) VALUES ($1, 0, $2)
         ON CONFLICT (tenant, slot) DO UPDATE SET jobs = tenant_job_counts.jobs + excluded.jobs",
    )
    .bind(tenant.as_str())
    .bind(rest.len() as i64)
    .execute(store.pool())
    .await?;
    // Every instance's scheduler looks at once.
    sqlx::query("SELECT pg_notify('cronhook_jobs', '')")
        .execute(store.pool())
        .await?;
    Ok(())
}

/// Fails clearly when seeding took longer than the lead it was given.
pub fn ensure_before(t0: DateTime<Utc>, what: &str) -> anyhow::Result<()> {
    if Utc::now() >= t0 {
        anyhow::bail!("{what} took longer than planned: jobs were due before the scenario began");
    }
    Ok(())
}

/// Sleeps until `t`.
pub async fn sleep_until(t: DateTime<Utc>) {
    if let Ok(wait) = (t - Utc::now()).to_std() {
        tokio::time::sleep(wait).await;
    }
}
