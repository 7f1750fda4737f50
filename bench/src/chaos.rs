//! `chaos`: three instances on one PostgreSQL under a steady load whose
//! target answers in 1.5 s, one instance killed with SIGKILL every 5 s
//! (and started again), then PostgreSQL itself restarted under load. It
//! counts what no later change may trade away unseen: runs lost,
//! occurrences doubled or without a run, runs left unfinished; and how
//! soon a killed instance's deliveries were sent again.

use std::collections::{HashMap, HashSet};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, bail};
use chrono::{DateTime, TimeDelta, Utc};
use serde_json::{Value, json};

use crate::receiver::{Hit, SLOW_PREFIX};
use crate::scenarios::{Ctx, ms, spread_interval_jobs, wait_for};
use crate::service::Service;
use crate::setup::{BenchDb, ensure_before, seed, sleep_until, start_after, store};
use crate::stats::summarize;

/// The instances' `--instance-timeout-s`.
const INSTANCE_TIMEOUT_S: &str = "3";
const INSTANCES: usize = 3;
const KILL_EVERY: Duration = Duration::from_secs(5);
/// Load kept up after PostgreSQL's restart.
const AFTER_RESTART: Duration = Duration::from_secs(15);

fn start(ctx: &Ctx, db: &BenchDb) -> anyhow::Result<Service> {
    Service::start(
        &ctx.bin,
        &db.url,
        &["--instance-timeout-s", INSTANCE_TIMEOUT_S],
    )
}

pub async fn chaos(ctx: &Ctx) -> anyhow::Result<Value> {
    let k = ctx.sizes.chaos_jobs;
    let db = BenchDb::create(&ctx.server, "chaos").await?;
    let mut instances = (0..INSTANCES)
        .map(|_| start(ctx, &db))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let seeding = store(&db.url).await?;
    let t0 = start_after(TimeDelta::milliseconds(3000 + k as i64));
    // Every second, not coalesced; a few may be in flight at once (each
    // request takes 1.5 s), so that none is skipped.
    let path = format!("{SLOW_PREFIX}/chaos");
    seed(&seeding, spread_interval_jobs(k, t0, &ctx.url(&path), 5)?).await?;
    ensure_before(t0, "seeding")?;
    drop(seeding);
    sleep_until(t0).await;

    // Kill one instance every 5 s, round the three, and start it again.
    let mut kills = Vec::new();
    let rounds = (ctx.sizes.duration.as_secs() / KILL_EVERY.as_secs()).max(1);
    for round in 0..rounds {
        tokio::time::sleep(KILL_EVERY).await;
        let victim = round as usize % INSTANCES;
        let killed_at = Utc::now();
        let dead = std::mem::replace(&mut instances[victim], start(ctx, &db)?);
        dead.kill()?;
        kills.push(killed_at);
    }

    // PostgreSQL itself, under load.
    let restart_s = if ctx.pg_restart.is_empty() {
        None
    } else {
        let began = Utc::now();
        let restarted = Command::new("sh")
            .args(["-c", &ctx.pg_restart])
            .status()
            .with_context(|| format!("running {:?}", ctx.pg_restart))?;
        if !restarted.success() {
            bail!(
                "restarting PostgreSQL with {:?} failed: {restarted}",
                ctx.pg_restart
            );
        }
        let took = ms(Utc::now() - began) / 1000.0;
        tokio::time::sleep(AFTER_RESTART).await;
        Some(took)
    };

    // Stop the load, then let everything in flight finish.
    let mut conn = crate::scenarios::connect_when_up(&db.url).await?;
    let stopped_at: DateTime<Utc> =
        sqlx::query_scalar("UPDATE jobs SET state = 'paused', next_run_at = NULL RETURNING now()")
            .fetch_all(&mut conn)
            .await?
            .into_iter()
            .next()
            .context("no jobs")?;
    wait_for(Duration::from_secs(180), "every run to finish", || {
        let url = db.url.clone();
        async move {
            let mut conn = crate::scenarios::connect_when_up(&url).await?;
            let open: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM runs WHERE status IN ('pending', 'running')",
            )
            .fetch_one(&mut conn)
            .await?;
            Ok(open == 0)
        }
    })
    .await
    .ok();
    let runs: Vec<(uuid::Uuid, String, DateTime<Utc>, String)> = sqlx::query_as(
        "SELECT id, job_id, scheduled_for, status FROM runs WHERE cause = 'schedule'",
    )
    .fetch_all(&mut conn)
    .await?;
    for instance in instances {
        let _ = instance.stop();
    }
    let hits = ctx.receiver.hits(&path);
    // Whole seconds inside the load, away from its two ends.
    let window = (
        t0 + TimeDelta::seconds(2),
        stopped_at - TimeDelta::seconds(2),
    );
    let report = analyse(k, t0, window, &runs, &hits, &kills);
    db.drop_database().await?;
    let mut report = report;
    // Null when it was not restarted (--quick, or --pg-restart none).
    report["postgres_restart_s"] = json!(restart_s);
    report["instances_killed"] = json!(kills.len());
    Ok(report)
}

/// The figures, from the runs the database holds and the requests the
/// receiver got.
fn analyse(
    k: usize,
    t0: DateTime<Utc>,
    window: (DateTime<Utc>, DateTime<Utc>),
    runs: &[(uuid::Uuid, String, DateTime<Utc>, String)],
    hits: &[Hit],
    kills: &[DateTime<Utc>],
) -> Value {
    let expected = crate::scenarios::spread_expected(k, t0, window.0, window.1);
    let in_window = |at: &DateTime<Utc>| *at >= window.0 && *at <= window.1;
    let mut runs_of: HashMap<(&str, DateTime<Utc>), usize> = HashMap::new();
    for (_, job, at, _) in runs.iter().filter(|r| in_window(&r.2)) {
        *runs_of.entry((job.as_str(), *at)).or_default() += 1;
    }
    let without_run = expected
        .iter()
        .filter(|(job, at)| !runs_of.contains_key(&(job.as_str(), *at)))
        .count();
    let doubled = runs_of.values().filter(|n| **n > 1).count();

    // Arrivals by webhook-id (the run id), in order.
    let mut arrivals: HashMap<&str, Vec<DateTime<Utc>>> = HashMap::new();
    for hit in hits {
        arrivals
            .entry(hit.run_id.as_str())
            .or_default()
            .push(hit.received);
    }
    for times in arrivals.values_mut() {
        times.sort();
    }
    let delivered: HashSet<String> = arrivals.keys().map(|id| id.to_string()).collect();
    let to_deliver: Vec<_> = runs
        .iter()
        .filter(|r| in_window(&r.2) && !matches!(r.3.as_str(), "missed" | "skipped"))
        .collect();
    let lost = to_deliver
        .iter()
        .filter(|r| !delivered.contains(&r.0.to_string()))
        .count();
    let unfinished = runs
        .iter()
        .filter(|r| matches!(r.3.as_str(), "pending" | "running"))
        .count();
    let skipped = runs
        .iter()
        .filter(|r| in_window(&r.2) && r.3 == "skipped")
        .count();
    let lateness = summarize(
        to_deliver
            .iter()
            .filter_map(|r| {
                let first = arrivals.get(r.0.to_string().as_str())?.first()?;
                Some(ms(*first - r.2))
            })
            .collect(),
    );
    let resent = arrivals.values().filter(|t| t.len() > 1).count();
    // A kill's deliveries: arrived before it, arrived again after it.
    let mut resend_ms = Vec::new();
    for (i, kill) in kills.iter().enumerate() {
        let next_kill = kills.get(i + 1).copied();
        for times in arrivals.values() {
            let before = times.iter().any(|t| t < kill);
            let again = times
                .iter()
                .find(|t| *t > kill && next_kill.is_none_or(|n| **t < n));
            if let (true, Some(again)) = (before, again) {
                resend_ms.push(ms(*again - *kill));
            }
        }
    }
    json!({
        "jobs": k,
        "occurrences": expected.len(),
        "occurrences_without_run": without_run,
        "occurrences_doubled": doubled,
        "runs_skipped": skipped,
        "runs_lost": lost,
        "runs_unfinished": unfinished,
        "resent_same_webhook_id": resent,
        "lateness": lateness,
        "kill_to_resend": summarize(resend_ms),
    })
}
