//! Databases and jobs for the scenarios.

use std::sync::Arc;

use anyhow::Context;
use chrono::{DateTime, TimeDelta, Utc};
use cronhook::domain::job::{JobDefinition, JobId, JobInput, ParseContext, Schedule};
use cronhook::domain::sealing::SealingKey;
use cronhook::domain::signing::generate_secret;
use cronhook::store::PgStore;
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

pub async fn store(url: &str) -> anyhow::Result<PgStore> {
    let key = SealingKey::from_base64(BENCH_KEY).map_err(anyhow::Error::msg)?;
    Ok(PgStore::connect(url, Arc::new(Wakeups::new()), key).await?)
}

pub fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

/// The next whole second at least `lead` from now: a start all jobs share.
pub fn start_after(lead: TimeDelta) -> DateTime<Utc> {
    let t = Utc::now() + lead;
    DateTime::from_timestamp(t.timestamp() + 1, 0).unwrap()
}

/// A new job as the bulk insert takes it: id, definition, schedule, secret.
pub type NewJob = (JobId, JobDefinition, Schedule, String);

/// A validated job from its JSON (with an id), scheduled as the API would.
pub fn job(json: Value) -> anyhow::Result<NewJob> {
    let now = Utc::now();
    let spec = serde_json::from_value::<JobInput>(json)?
        .parse(ParseContext {
            now,
            network_policy: Default::default(),
        })
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let schedule = spec.initial_schedule(now);
    let id = spec
        .id
        .ok_or_else(|| anyhow::anyhow!("a seeded job needs an id"))?;
    Ok((id, spec.definition, schedule, generate_secret()))
}

/// Inserts jobs in chunks through the bulk path.
pub async fn seed(store: &PgStore, jobs: Vec<NewJob>) -> anyhow::Result<()> {
    for chunk in jobs.chunks(5000) {
        store.insert_jobs(chunk).await?;
    }
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
