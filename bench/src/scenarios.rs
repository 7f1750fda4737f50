//! The scenarios: each starts a real `cronhook serve` on a database of its
//! own, seeds jobs, lets them fire, and measures.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use chrono::{DateTime, TimeDelta, Utc};
use serde::Serialize;
use serde_json::{Value, json};
use sqlx::{Connection, PgConnection};

use crate::dbwork::{self, DbWork};
use crate::receiver::{Hit, Receiver};
use crate::service::{EVENTS_PATH, Service};
use crate::setup::{
    BenchDb, NewJob, ensure_before, job, rfc3339, seed, sleep_until, start_after, store,
};
use crate::stats::{Summary, summarize};

#[derive(Debug, Clone)]
pub struct Sizes {
    pub burst: usize,
    /// Jobs on one flow key in the flow scenario.
    pub flow: usize,
    pub steady: usize,
    pub duration: Duration,
    pub scale: usize,
    pub api: usize,
    /// Jobs listed by the agenda scenario.
    pub agenda: usize,
    /// Jobs of the chaos scenario.
    pub chaos_jobs: usize,
}

pub struct Ctx {
    pub server: String,
    pub bin: PathBuf,
    pub receiver: Receiver,
    pub receiver_addr: SocketAddr,
    /// Where the APScheduler peer's virtual environment lives.
    pub venv: PathBuf,
    pub sizes: Sizes,
    /// The shell command that restarts PostgreSQL (chaos); empty: none.
    pub pg_restart: String,
}

impl Ctx {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.receiver_addr)
    }

    /// The receiver at the `i`-th of its loopback addresses (modulo
    /// [`crate::receiver::HOSTS`]): another host to the service.
    pub fn host_url(&self, i: usize, path: &str) -> String {
        let host = crate::receiver::host_address(i);
        format!("http://{host}:{}{path}", self.receiver_addr.port())
    }
}

/// Occurrences that never arrived, and ones that arrived more than once.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Exactness {
    pub expected: usize,
    pub missing: usize,
    pub doubled: usize,
}

/// Checks arrivals against the expected occurrences.
fn exactness(
    expected: &[(String, DateTime<Utc>)],
    arrived: &[(String, DateTime<Utc>)],
) -> Exactness {
    let mut counts: HashMap<(&str, DateTime<Utc>), usize> = HashMap::new();
    for (job, at) in arrived {
        *counts.entry((job.as_str(), *at)).or_default() += 1;
    }
    let mut e = Exactness {
        expected: expected.len(),
        ..Default::default()
    };
    for (job, at) in expected {
        match counts.get(&(job.as_str(), *at)) {
            None => e.missing += 1,
            Some(n) if *n > 1 => e.doubled += n - 1,
            _ => {}
        }
    }
    e
}

pub fn ms(d: TimeDelta) -> f64 {
    d.num_microseconds().unwrap_or(i64::MAX) as f64 / 1000.0
}

pub async fn wait_for<F, Fut>(deadline: Duration, what: &str, mut check: F) -> anyhow::Result<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<bool>>,
{
    let started = Instant::now();
    loop {
        if check().await? {
            return Ok(());
        }
        if started.elapsed() > deadline {
            bail!("timed out after {deadline:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// `n` date jobs due `at`, job `i` sending to `url(i)`.
fn date_jobs(
    prefix: &str,
    n: usize,
    at: DateTime<Utc>,
    url: impl Fn(usize) -> String,
) -> anyhow::Result<Vec<NewJob>> {
    (0..n)
        .map(|i| job(json!({"id": format!("{prefix}-{i:06}"), "trigger": {"type": "date", "run_at": rfc3339(at)}, "target": {"url": url(i)}})))
        .collect()
}

/// `k` interval jobs firing every second, their anchors spread evenly over
/// one second from `t0`, so that occurrences arrive one by one.
pub fn spread_interval_jobs(
    k: usize,
    t0: DateTime<Utc>,
    url: &str,
    max_instances: u32,
) -> anyhow::Result<Vec<NewJob>> {
    (0..k)
        .map(|i| {
            let start = t0 + TimeDelta::microseconds((i as i64 * 1_000_000) / k as i64);
            job(json!({"id": format!("steady-{i:05}"),
                       "trigger": {"type": "interval", "every_s": 1, "start_at": rfc3339(start)},
                       "target": {"url": url}, "coalesce": false, "max_instances": max_instances}))
        })
        .collect()
}

/// The fire times of the spread jobs inside `[from, to]`.
pub fn spread_expected(
    k: usize,
    t0: DateTime<Utc>,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Vec<(String, DateTime<Utc>)> {
    let mut expected = Vec::new();
    for i in 0..k {
        let start = t0 + TimeDelta::microseconds((i as i64 * 1_000_000) / k as i64);
        let mut t = start;
        while t <= to {
            if t >= from {
                expected.push((format!("steady-{i:05}"), t));
            }
            t += TimeDelta::seconds(1);
        }
    }
    expected
}

async fn connect(url: &str) -> anyhow::Result<PgConnection> {
    Ok(PgConnection::connect(url).await?)
}

/// A connection, once PostgreSQL answers again (within a minute).
pub async fn connect_when_up(url: &str) -> anyhow::Result<PgConnection> {
    let started = Instant::now();
    loop {
        match PgConnection::connect(url).await {
            Ok(conn) => return Ok(conn),
            Err(e) if started.elapsed() > Duration::from_secs(60) => return Err(e.into()),
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}

// --- Engine only (no dispatcher): runs created -----------------------------

pub async fn engine_burst(ctx: &Ctx) -> anyhow::Result<Value> {
    let n = ctx.sizes.burst;
    let db = BenchDb::create(&ctx.server, "engine_burst").await?;
    let service = Service::start(&ctx.bin, &db.url, &["--no-dispatcher"])?;
    let store = store(&db.url).await?;
    let t0 = start_after(TimeDelta::milliseconds(2000 + n as i64 / 5));
    seed(&store, date_jobs("burst", n, t0, |_| ctx.url("/engine"))?).await?;
    ensure_before(t0, "seeding")?;
    let pool = sqlx::PgPool::connect(&db.url).await?;
    wait_for(Duration::from_secs(300), "every run", || {
        let pool = pool.clone();
        async move {
            let runs: i64 = sqlx::query_scalar("SELECT count(*) FROM runs")
                .fetch_one(&pool)
                .await?;
            Ok(runs as usize >= n)
        }
    })
    .await?;
    let (first, last): (DateTime<Utc>, DateTime<Utc>) =
        sqlx::query_as("SELECT min(created_at), max(created_at) FROM runs")
            .fetch_one(&pool)
            .await?;
    pool.close().await;
    let resources = service.stop()?;
    db.drop_database().await?;
    let seconds = (last - t0).as_seconds_f64();
    Ok(json!({
        "jobs": n,
        "first_run_ms": ms(first - t0),
        "last_run_ms": ms(last - t0),
        "runs_per_s": n as f64 / seconds,
        "resources": resources,
    }))
}

pub async fn engine_steady(ctx: &Ctx) -> anyhow::Result<Value> {
    let k = ctx.sizes.steady;
    let duration = ctx.sizes.duration;
    let db = BenchDb::create(&ctx.server, "engine_steady").await?;
    // How late the scheduler makes a due run: with a lookahead it makes
    // them ahead (DESIGN.md §12), and the figure would say nothing.
    let service = Service::start(
        &ctx.bin,
        &db.url,
        &["--no-dispatcher", "--lookahead-ms", "0"],
    )?;
    let store = store(&db.url).await?;
    let t0 = start_after(TimeDelta::milliseconds(2000 + k as i64));
    seed(
        &store,
        spread_interval_jobs(k, t0, &ctx.url("/engine"), 1000)?,
    )
    .await?;
    ensure_before(t0, "seeding")?;
    let window = window(t0, duration);
    sleep_until(window.1 + TimeDelta::seconds(2)).await;
    let mut conn = connect(&db.url).await?;
    let runs: Vec<(String, DateTime<Utc>, DateTime<Utc>)> = sqlx::query_as(
        "SELECT job_id, scheduled_for, created_at FROM runs WHERE scheduled_for BETWEEN $1 AND $2",
    )
    .bind(window.0)
    .bind(window.1)
    .fetch_all(&mut conn)
    .await?;
    let resources = service.stop()?;
    db.drop_database().await?;
    let lateness = summarize(
        runs.iter()
            .map(|(_, at, created)| ms(*created - *at))
            .collect(),
    );
    let arrived: Vec<_> = runs.into_iter().map(|(job, at, _)| (job, at)).collect();
    let exact = exactness(&spread_expected(k, t0, window.0, window.1), &arrived);
    Ok(
        json!({"jobs": k, "seconds": duration.as_secs(), "lateness": lateness, "exactness": exact, "resources": resources}),
    )
}

// --- Delivery end to end ---------------------------------------------------

pub async fn burst(ctx: &Ctx) -> anyhow::Result<Value> {
    burst_to(ctx, "/burst", |_| ctx.url("/burst")).await
}

/// The burst with its jobs spread over [`crate::receiver::HOSTS`] hosts
/// (loopback addresses): what the per-host limit costs a single host.
pub async fn burst_hosts(ctx: &Ctx) -> anyhow::Result<Value> {
    burst_to(ctx, "/hosts-burst", |i| ctx.host_url(i, "/hosts-burst")).await
}

/// 10,000 date jobs due at one instant, job `i` sending to `url(i)`, all
/// under `path`.
async fn burst_to(ctx: &Ctx, path: &str, url: impl Fn(usize) -> String) -> anyhow::Result<Value> {
    let n = ctx.sizes.burst;
    let db = BenchDb::create(&ctx.server, "burst").await?;
    let store = store(&db.url).await?;
    let t0 = start_after(TimeDelta::milliseconds(2000 + n as i64 / 5));
    seed(&store, date_jobs("burst", n, t0, url)?).await?;
    store.pool().close().await;
    // One connection, alone on the database when it reads the counts.
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .connect(&db.url)
        .await?;
    dbwork::alone(&pool).await?;
    let before = DbWork::read(&pool).await?;
    let service = Service::start(&ctx.bin, &db.url, &[])?;
    service
        .subscribe(&ctx.url(&format!("{EVENTS_PATH}/burst")))
        .await?;
    ensure_before(t0, "seeding and starting")?;
    let receiver = &ctx.receiver;
    wait_for(Duration::from_secs(300), "every delivery", || async move {
        Ok(receiver.count(path) >= n)
    })
    .await?;
    wait_for(Duration::from_secs(300), "every attempt recorded", || {
        let pool = pool.clone();
        async move {
            let done: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM runs WHERE status = 'succeeded' AND job_id IS NOT NULL",
            )
            .fetch_one(&pool)
            .await?;
            Ok(done as usize >= n)
        }
    })
    .await?;
    // Subscribed (--subscribe): run.created and run.succeeded of each job's
    // run were delivered too, by the same dispatcher.
    if service.subscribed() {
        let events = format!("{EVENTS_PATH}/burst");
        wait_for(Duration::from_secs(300), "every event delivered", || {
            let done = receiver.count(&events) >= 2 * n;
            async move { Ok(done) }
        })
        .await?;
    }
    let recorded: DateTime<Utc> =
        sqlx::query_scalar("SELECT max(finished_at) FROM runs WHERE job_id IS NOT NULL")
            .fetch_one(&pool)
            .await?;
    let resources = service.stop()?;
    dbwork::alone(&pool).await?;
    let work = DbWork::read(&pool)
        .await?
        .per_delivery(&pool, &before, n)
        .await;
    pool.close().await;
    db.drop_database().await?;
    let mut result = burst_metrics(&ctx.receiver.hits(path), n, t0)?;
    result["all_recorded_ms"] = json!(ms(recorded - t0));
    result["resources"] = json!(resources);
    result["per_delivery"] = work;
    Ok(result)
}

/// 1,000 date jobs due at one instant on one flow key whose rate is a
/// fifth of them per second (200/s; DESIGN.md §11.1): the bucket lets its
/// burst go at once, then the key's rate holds. Reports the rate delivered
/// after the burst against the key's, and whether every run came once.
pub async fn flow(ctx: &Ctx) -> anyhow::Result<Value> {
    let n = ctx.sizes.flow;
    let rate = (n / 5).max(1);
    let db = BenchDb::create(&ctx.server, "flow").await?;
    let store = store(&db.url).await?;
    let t0 = start_after(TimeDelta::milliseconds(2000 + n as i64 / 5));
    let flow = json!({"key": "partner", "rate": {"limit": rate, "period_s": 1}});
    let jobs = (0..n)
        .map(|i| {
            job(json!({"id": format!("flow-{i:06}"),
                       "trigger": {"type": "date", "run_at": rfc3339(t0)},
                       "target": {"url": ctx.url("/flow")}, "flow": flow}))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    seed(&store, jobs).await?;
    store.pool().close().await;
    let service = Service::start(&ctx.bin, &db.url, &[])?;
    ensure_before(t0, "seeding and starting")?;
    let receiver = &ctx.receiver;
    wait_for(Duration::from_secs(300), "every delivery", || async move {
        Ok(receiver.count("/flow") >= n)
    })
    .await?;
    let resources = service.stop()?;
    db.drop_database().await?;
    let hits = receiver.hits("/flow");
    let mut at: Vec<DateTime<Utc>> = hits.iter().map(|h| h.received).collect();
    at.sort();
    let runs: std::collections::HashSet<&str> = hits.iter().map(|h| h.run_id.as_str()).collect();
    let jobs: std::collections::HashSet<&str> = hits.iter().map(|h| h.job_id.as_str()).collect();
    // After the bucket's burst of `rate`, one run per token.
    let sustained = match (at.get(rate), at.last()) {
        (Some(first), Some(last)) if last > first => {
            (at.len() - rate - 1) as f64
                / ((*last - *first).num_microseconds().unwrap_or(1) as f64 / 1e6)
        }
        _ => 0.0,
    };
    Ok(json!({
        "jobs": n,
        "rate_per_s": rate,
        "sustained_per_s": sustained,
        "sustained_to_rate": sustained / rate as f64,
        "burst_ms": at.get(rate.saturating_sub(1)).map(|t| ms(*t - at[0])),
        "exactness": {"expected": n, "missing": n - jobs.len(), "doubled": hits.len() - runs.len()},
        "resources": resources,
    }))
}

/// Deliveries per second from the due instant to the last delivery.
pub fn burst_metrics(hits: &[Hit], n: usize, t0: DateTime<Utc>) -> anyhow::Result<Value> {
    let first = hits
        .iter()
        .map(|h| h.received)
        .min()
        .context("no delivery")?;
    let last = hits
        .iter()
        .map(|h| h.received)
        .max()
        .context("no delivery")?;
    let arrived: Vec<_> = hits
        .iter()
        .filter_map(|h| Some((h.job_id.clone(), h.scheduled_for?)))
        .collect();
    let expected: Vec<_> = (0..n).map(|i| (format!("burst-{i:06}"), t0)).collect();
    Ok(json!({
        "jobs": n,
        "first_delivery_ms": ms(first - t0),
        "last_delivery_ms": ms(last - t0),
        "deliveries_per_s": arrived.len() as f64 / (last - t0).as_seconds_f64(),
        "exactness": exactness(&expected, &arrived),
    }))
}

/// The steady scenario on a database that may already hold `background`
/// (the scale scenario's million future jobs).
pub async fn steady_on(
    ctx: &Ctx,
    db: &BenchDb,
    path: &str,
) -> anyhow::Result<(Summary, Exactness)> {
    let k = ctx.sizes.steady;
    let store = store(&db.url).await?;
    let t0 = start_after(TimeDelta::milliseconds(2000 + k as i64));
    seed(&store, spread_interval_jobs(k, t0, &ctx.url(path), 1)?).await?;
    ensure_before(t0, "seeding")?;
    let window = window(t0, ctx.sizes.duration);
    let expected = spread_expected(k, t0, window.0, window.1).len();
    await_window(&ctx.receiver, path, window, expected, TimeDelta::seconds(2)).await;
    let hits = ctx.receiver.hits(path);
    report_worst_second(path, &hits, window);
    Ok(steady_metrics(&hits, k, t0, window))
}

/// Prints the scheduled second whose last arrival was latest, with its
/// wall-clock time, so that an outlier can be matched against PostgreSQL's
/// log (checkpoints, autovacuum) and the system's.
fn report_worst_second(path: &str, hits: &[Hit], window: (DateTime<Utc>, DateTime<Utc>)) {
    let mut latest: HashMap<i64, f64> = HashMap::new();
    for (_, at, received) in in_window(hits, window) {
        let late = latest.entry(at.timestamp()).or_default();
        *late = late.max(ms(received - at));
    }
    let over_100ms = latest.values().filter(|late| **late > 100.0).count();
    if let Some((second, late)) = latest.into_iter().max_by(|a, b| a.1.total_cmp(&b.1)) {
        let at = DateTime::from_timestamp(second, 0).unwrap_or_default();
        eprintln!(
            "cronhook-bench: {path}: latest arrival {late:.1} ms after its fire time, in the second from {}; {over_100ms} seconds had one over 100 ms",
            rfc3339(at)
        );
    }
}

/// The window a steady or aligned scenario measures: after two seconds of
/// warm-up, until its end.
pub fn window(t0: DateTime<Utc>, duration: Duration) -> (DateTime<Utc>, DateTime<Utc>) {
    (
        t0 + TimeDelta::seconds(2),
        t0 + TimeDelta::from_std(duration).unwrap_or_default(),
    )
}

/// Waits `settle` past the window's end (a late double still counts), and
/// on while fewer than `expected` of the window's occurrences have arrived,
/// at most 30 s past its end: only one that has not arrived by then counts
/// as missing, so a slow spell of the machine is lateness, not loss.
async fn await_window(
    receiver: &Receiver,
    path: &str,
    window: (DateTime<Utc>, DateTime<Utc>),
    expected: usize,
    settle: TimeDelta,
) {
    sleep_until(window.1 + settle).await;
    let left = (window.1 + TimeDelta::seconds(30) - Utc::now())
        .to_std()
        .unwrap_or_default();
    // Running out of time is a result (those not arrived are missing), not
    // a failure of the scenario.
    let _ = wait_for(left, "the window's occurrences", || async {
        Ok(in_window(&receiver.hits(path), window).len() >= expected)
    })
    .await;
}

fn in_window(
    hits: &[Hit],
    window: (DateTime<Utc>, DateTime<Utc>),
) -> Vec<(String, DateTime<Utc>, DateTime<Utc>)> {
    hits.iter()
        .filter_map(|h| Some((h.job_id.clone(), h.scheduled_for?, h.received)))
        .filter(|(_, at, _)| *at >= window.0 && *at <= window.1)
        .collect()
}

/// Lateness (received − scheduled) and exactness of the spread jobs.
pub fn steady_metrics(
    hits: &[Hit],
    k: usize,
    t0: DateTime<Utc>,
    window: (DateTime<Utc>, DateTime<Utc>),
) -> (Summary, Exactness) {
    let hits = in_window(hits, window);
    let lateness = summarize(
        hits.iter()
            .map(|(_, at, received)| ms(*received - *at))
            .collect(),
    );
    let arrived: Vec<_> = hits.into_iter().map(|(job, at, _)| (job, at)).collect();
    (
        lateness,
        exactness(&spread_expected(k, t0, window.0, window.1), &arrived),
    )
}

pub async fn steady(ctx: &Ctx) -> anyhow::Result<Value> {
    let db = BenchDb::create(&ctx.server, "steady").await?;
    let service = Service::start(&ctx.bin, &db.url, &[])?;
    service
        .subscribe(&ctx.url(&format!("{EVENTS_PATH}/steady")))
        .await?;
    let (lateness, exact) = steady_on(ctx, &db, "/steady").await?;
    let resources = service.stop()?;
    db.drop_database().await?;
    Ok(
        json!({"jobs": ctx.sizes.steady, "seconds": ctx.sizes.duration.as_secs(), "lateness": lateness,
              "exactness": exact, "resources": resources}),
    )
}

pub async fn aligned(ctx: &Ctx) -> anyhow::Result<Value> {
    let k = ctx.sizes.steady;
    let db = BenchDb::create(&ctx.server, "aligned").await?;
    let service = Service::start(&ctx.bin, &db.url, &[])?;
    service
        .subscribe(&ctx.url(&format!("{EVENTS_PATH}/aligned")))
        .await?;
    let store = store(&db.url).await?;
    let t0 = start_after(TimeDelta::milliseconds(2000 + k as i64));
    let jobs = (0..k)
        .map(|i| {
            job(json!({"id": format!("aligned-{i:05}"),
                       "trigger": {"type": "cron", "expr": "* * * * * *", "start_at": rfc3339(t0)},
                       "target": {"url": ctx.url("/aligned")}, "coalesce": false, "max_instances": 1}))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    seed(&store, jobs).await?;
    ensure_before(t0, "seeding")?;
    let window = window(t0, ctx.sizes.duration);
    let seconds = (window.1 - window.0).num_seconds() as usize + 1;
    await_window(
        &ctx.receiver,
        "/aligned",
        window,
        k * seconds,
        TimeDelta::seconds(3),
    )
    .await;
    let resources = service.stop()?;
    db.drop_database().await?;
    let mut result = aligned_metrics(&ctx.receiver.hits("/aligned"), k, window);
    result["resources"] = json!(resources);
    Ok(result)
}

/// How long each second's block of deliveries takes to arrive, in full.
pub fn aligned_metrics(hits: &[Hit], k: usize, window: (DateTime<Utc>, DateTime<Utc>)) -> Value {
    let hits = in_window(hits, window);
    let mut last_per_second: HashMap<DateTime<Utc>, DateTime<Utc>> = HashMap::new();
    for (_, at, received) in &hits {
        let last = last_per_second.entry(*at).or_insert(*received);
        *last = (*last).max(*received);
    }
    let drain = summarize(
        last_per_second
            .iter()
            .map(|(at, last)| ms(*last - *at))
            .collect(),
    );
    let lateness = summarize(
        hits.iter()
            .map(|(_, at, received)| ms(*received - *at))
            .collect(),
    );
    let mut expected = Vec::new();
    let mut t = window.0;
    while t <= window.1 {
        expected.extend((0..k).map(|i| (format!("aligned-{i:05}"), t)));
        t += TimeDelta::seconds(1);
    }
    let arrived: Vec<_> = hits.into_iter().map(|(job, at, _)| (job, at)).collect();
    json!({"jobs": k, "seconds": (window.1 - window.0).num_seconds() + 2, "block_drain": drain,
           "lateness": lateness, "exactness": exactness(&expected, &arrived)})
}

// --- Scale: a million future jobs ------------------------------------------

/// `n` jobs whose fire times are spread over the coming day.
async fn seed_future(store: &cronhook::store::PgStore, n: usize, url: &str) -> anyhow::Result<()> {
    let now = Utc::now();
    let jobs = (0..n)
        .map(|i| {
            let start = now
                + TimeDelta::hours(1)
                + TimeDelta::milliseconds((i as i64 * 86_400_000) / n.max(1) as i64);
            job(json!({"id": format!("future-{i:07}"),
                       "trigger": {"type": "interval", "every_s": 86400, "start_at": rfc3339(start)},
                       "target": {"url": url}}))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    seed(store, jobs).await
}

/// Writes every dirty page out and waits for it (PostgreSQL's `CHECKPOINT`,
/// which the harness's superuser may run).
async fn checkpoint(url: &str) -> anyhow::Result<()> {
    let mut conn = connect(url).await?;
    sqlx::query("CHECKPOINT").execute(&mut conn).await?;
    Ok(())
}

/// The due-job claim's plan with the table as seeded, after ANALYZE.
pub async fn explain_claim(url: &str) -> anyhow::Result<String> {
    let mut conn = connect(url).await?;
    sqlx::query("ANALYZE jobs").execute(&mut conn).await?;
    let mut tx = conn.begin().await?;
    let plan: Vec<String> = sqlx::query_scalar(
        // The scheduler's statement (PgDialect::lock_due_jobs), no tenant
        // held back.
        "EXPLAIN (ANALYZE, BUFFERS, COSTS OFF)
         SELECT tenant, id, trigger_type, cron_expr, cron_timezone, every_s, run_at, start_at,
                end_at, jitter_s, next_run_at, misfire_grace_s, coalesce_runs, catchup_max,
                max_instances, target_url, now() AS db_now
         FROM jobs
         WHERE next_run_at <= now() AND NOT (tenant = ANY($1))
         ORDER BY next_run_at
         LIMIT 500
         FOR UPDATE SKIP LOCKED",
    )
    .bind(Vec::<String>::new())
    .fetch_all(&mut *tx)
    .await?;
    tx.rollback().await?;
    Ok(plan.join("\n"))
}

pub async fn explain(ctx: &Ctx) -> anyhow::Result<Value> {
    let db = BenchDb::create(&ctx.server, "explain").await?;
    let store = store(&db.url).await?;
    let started = Instant::now();
    seed_future(&store, ctx.sizes.scale, &ctx.url("/future")).await?;
    let seeded_s = started.elapsed().as_secs_f64();
    let plan = explain_claim(&db.url).await?;
    db.drop_database().await?;
    Ok(
        json!({"future_jobs": ctx.sizes.scale, "seed_s": seeded_s, "index_scan": plan.contains("Index Scan using jobs_due"), "plan": plan}),
    )
}

pub async fn scale(ctx: &Ctx) -> anyhow::Result<Value> {
    let db = BenchDb::create(&ctx.server, "scale").await?;
    let service = Service::start(&ctx.bin, &db.url, &[])?;
    service
        .subscribe(&ctx.url(&format!("{EVENTS_PATH}/scale")))
        .await?;
    let store = store(&db.url).await?;
    let started = Instant::now();
    seed_future(&store, ctx.sizes.scale, &ctx.url("/future")).await?;
    let seed_s = started.elapsed().as_secs_f64();
    let plan = explain_claim(&db.url).await?;
    // The seeding wrote over a gigabyte of WAL, which starts a checkpoint
    // that must finish soon; its writes and fsyncs would land in the
    // steady window (a 0.7 s stall, 2026-12-03). The million jobs are
    // written out first: the window measures the service with them stored.
    checkpoint(&db.url).await?;
    let (lateness, exact) = steady_on(ctx, &db, "/scale").await?;
    let api = api_on(ctx, &service, ctx.sizes.scale).await?;
    let resources = service.stop()?;
    db.drop_database().await?;
    Ok(json!({
        "future_jobs": ctx.sizes.scale, "seed_s": seed_s,
        "claim_index_scan": plan.contains("Index Scan using jobs_due"), "claim_plan": plan,
        "steady": {"jobs": ctx.sizes.steady, "seconds": ctx.sizes.duration.as_secs(), "lateness": lateness, "exactness": exact},
        "api": api, "resources": resources,
    }))
}

/// The API alone: job creation over HTTP with 16 clients, then `GET
/// /v1/jobs/{id}` of random stored jobs (of `--scale-jobs`, at most
/// 10,000, seeded first). With `--auth`, every request carries the token.
pub async fn api(ctx: &Ctx) -> anyhow::Result<Value> {
    let db = BenchDb::create(&ctx.server, "api").await?;
    let service = Service::start(&ctx.bin, &db.url, &["--no-dispatcher"])?;
    let stored = ctx.sizes.scale.min(10_000);
    seed_future(&store(&db.url).await?, stored, &ctx.url("/future")).await?;
    let api = api_on(ctx, &service, stored).await?;
    let resources = service.stop()?;
    db.drop_database().await?;
    Ok(json!({"stored": stored, "api": api, "resources": resources}))
}

/// The agenda (DESIGN.md §11.4) of 1,000 jobs (`--agenda-jobs`) over 7
/// days: daily crons in
/// five zones, hourly crons, 15-minute intervals, and daily crons whose
/// business-day calendars (weekends and twenty holidays, in their zones)
/// roll excluded days to the next allowed one. 20 requests of
/// `GET /v1/agenda?limit=10000` after 3 to warm up; reports their latency
/// and the items listed.
pub async fn agenda(ctx: &Ctx) -> anyhow::Result<Value> {
    let jobs = ctx.sizes.agenda;
    let db = BenchDb::create(&ctx.server, "agenda").await?;
    let service = Service::start(&ctx.bin, &db.url, &["--no-dispatcher", "--no-scheduler"])?;
    let client = service_client()?;
    let base = format!("http://{}", service.addr);
    let put = |path: String, body: Value| {
        let client = client.clone();
        let url = format!("{base}{path}");
        async move {
            let response = client.put(url).json(&body).send().await?;
            anyhow::ensure!(
                response.status().is_success(),
                "PUT answered {}",
                response.status()
            );
            Ok::<_, anyhow::Error>(())
        }
    };
    let holidays: Vec<Value> = (0..20)
        .map(|d| json!({"date": (Utc::now() + TimeDelta::days(d * 3)).format("%Y-%m-%d").to_string()}))
        .collect();
    put(
        "/v1/calendars/holidays".into(),
        json!({"timezone": "Europe/Berlin", "rules": holidays}),
    )
    .await?;
    put(
        "/v1/calendars/weekends".into(),
        json!({"timezone": "Europe/Berlin", "rules": [{"weekdays": ["sat", "sun"]}]}),
    )
    .await?;
    put(
        "/v1/calendars/business".into(),
        json!({"timezone": "Europe/Berlin", "rules": [{"calendar": "holidays"}, {"calendar": "weekends"}]}),
    )
    .await?;
    let zones = [
        "UTC",
        "Europe/Berlin",
        "America/New_York",
        "Asia/Tokyo",
        "Australia/Sydney",
    ];
    let mut tasks = Vec::new();
    for c in 0..8 {
        let (client, base, url) = (
            client.clone(),
            format!("http://{}", service.addr),
            ctx.url("/agenda"),
        );
        tasks.push(tokio::spawn(async move {
            for i in (c..jobs).step_by(8) {
                let zone = zones[i % zones.len()];
                let trigger = match i % 4 {
                    0 => json!({"type": "cron", "expr": format!("{} {} * * *", i % 60, i % 24), "timezone": zone}),
                    1 => json!({"type": "cron", "expr": format!("{} * * * *", i % 60), "timezone": zone}),
                    2 => json!({"type": "interval", "every_s": 900}),
                    _ => json!({"type": "cron", "expr": format!("{} 18 * * *", i % 60), "timezone": zone,
                                "calendars": {"exclude": ["business"], "on_excluded": "next_allowed"}}),
                };
                let body = json!({"id": format!("agenda-{i:05}"), "trigger": trigger, "target": {"url": url}});
                let response = client.post(format!("{base}/v1/jobs")).json(&body).send().await?;
                if response.status() != 201 {
                    bail!("creating a job answered {}: {}", response.status(), response.text().await?);
                }
            }
            Ok::<_, anyhow::Error>(())
        }));
    }
    for task in tasks {
        task.await??;
    }
    let mut latencies = Vec::new();
    let mut items = 0;
    for round in 0..23 {
        let began = Instant::now();
        let response = client
            .get(format!("{base}/v1/agenda?limit=10000"))
            .send()
            .await?;
        anyhow::ensure!(
            response.status() == 200,
            "the agenda answered {}",
            response.status()
        );
        let body: Value = response.json().await?;
        let elapsed = began.elapsed().as_secs_f64() * 1e3;
        items = body["items"].as_array().map_or(0, Vec::len);
        if round >= 3 {
            latencies.push(elapsed);
        }
    }
    let resources = service.stop()?;
    db.drop_database().await?;
    Ok(
        json!({"jobs": jobs, "days": 7, "items": items, "latency": summarize(latencies), "resources": resources}),
    )
}

/// Bulk actions (DESIGN.md §11.9): 10,000 jobs seeded, half labelled
/// `team=data`; then, 5 times each, `POST /v1/jobs/bulk/pause` and
/// `…/resume` by `team=data` (5,000 jobs changed each), and a dry run.
/// Reports each action's latency.
pub async fn bulk(ctx: &Ctx) -> anyhow::Result<Value> {
    const JOBS: usize = 10_000;
    let db = BenchDb::create(&ctx.server, "bulk").await?;
    let now = Utc::now();
    let url = ctx.url("/bulk");
    let jobs = (0..JOBS)
        .map(|i| {
            let team = if i % 2 == 0 { "data" } else { "web" };
            let start = now + TimeDelta::hours(1) + TimeDelta::seconds(i as i64);
            job(json!({"id": format!("bulk-{i:05}"),
                       "trigger": {"type": "interval", "every_s": 86400, "start_at": rfc3339(start)},
                       "target": {"url": url}, "labels": {"team": team}}))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    seed(&store(&db.url).await?, jobs).await?;
    // The seed copies the first job's labels to every job: half are
    // relabelled.
    sqlx::query("UPDATE jobs SET labels = '{\"team\":\"web\"}' WHERE right(id, 1)::int % 2 = 1")
        .execute(&mut connect(&db.url).await?)
        .await?;
    let service = Service::start(&ctx.bin, &db.url, &["--no-dispatcher"])?;
    let client = service_client()?;
    let base = format!("http://{}", service.addr);
    let act = |action: &'static str, body: Value| {
        let (client, url) = (client.clone(), format!("{base}/v1/jobs/bulk/{action}"));
        async move {
            let began = Instant::now();
            let response = client.post(url).json(&body).send().await?;
            let status = response.status();
            let answer: Value = response.json().await?;
            anyhow::ensure!(status == 200, "bulk {action} answered {status}: {answer}");
            anyhow::ensure!(
                answer["changed"] == JOBS / 2,
                "bulk {action} changed {}",
                answer["changed"]
            );
            Ok::<_, anyhow::Error>(began.elapsed().as_secs_f64() * 1e3)
        }
    };
    let (mut pause, mut resume, mut dry) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..5 {
        dry.push(act("pause", json!({"selector": "team=data", "dry_run": true})).await?);
        pause.push(act("pause", json!({"selector": "team=data"})).await?);
        resume.push(act("resume", json!({"selector": "team=data"})).await?);
    }
    let resources = service.stop()?;
    db.drop_database().await?;
    Ok(
        json!({"jobs": JOBS, "changed": JOBS / 2, "pause_ms": summarize(pause),
              "resume_ms": summarize(resume), "dry_run_ms": summarize(dry), "resources": resources}),
    )
}

/// A client that sends the root token when the service wants one.
fn service_client() -> anyhow::Result<reqwest::Client> {
    let mut headers = reqwest::header::HeaderMap::new();
    if let Some(token) = crate::service::root_token() {
        headers.insert(
            reqwest::header::AUTHORIZATION,
            format!("Bearer {token}").parse()?,
        );
    }
    Ok(reqwest::Client::builder()
        .no_proxy()
        .default_headers(headers)
        .build()?)
}

/// Job creation over HTTP with 16 clients, then `GET /v1/jobs/{id}` of
/// random ones of the `stored` seeded jobs.
async fn api_on(ctx: &Ctx, service: &Service, stored: usize) -> anyhow::Result<Value> {
    const CLIENTS: usize = 16;
    let client = service_client()?;
    let base = format!("http://{}", service.addr);
    let per_client = ctx.sizes.api.div_ceil(CLIENTS);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..CLIENTS {
        let (client, base, url) = (client.clone(), base.clone(), ctx.url("/api"));
        tasks.push(tokio::spawn(async move {
            for i in 0..per_client {
                let body = json!({"id": format!("api-{c:02}-{i:06}"), "trigger": {"type": "cron", "expr": "0 0 1 1 *"},
                                  "target": {"url": url}});
                let response = client.post(format!("{base}/v1/jobs")).json(&body).send().await?;
                if response.status() != 201 {
                    bail!("creating a job answered {}", response.status());
                }
            }
            Ok::<_, anyhow::Error>(())
        }));
    }
    for task in tasks {
        task.await??;
    }
    let created = per_client * CLIENTS;
    let create_s = started.elapsed().as_secs_f64();

    let stored = stored.max(1);
    let gets_per_client = 250;
    let mut tasks = Vec::new();
    for c in 0..CLIENTS {
        let (client, base) = (client.clone(), base.clone());
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::with_capacity(gets_per_client);
            for i in 0..gets_per_client {
                let n = (c * 7919 + i * 104_729) % stored;
                let began = Instant::now();
                let response = client
                    .get(format!("{base}/v1/jobs/future-{n:07}"))
                    .send()
                    .await?;
                let status = response.status();
                let _ = response.bytes().await?;
                if status != 200 {
                    bail!("GET answered {status}");
                }
                latencies.push(began.elapsed().as_secs_f64() * 1e3);
            }
            Ok::<_, anyhow::Error>(latencies)
        }));
    }
    let mut latencies = Vec::new();
    for task in tasks {
        latencies.extend(task.await??);
    }
    Ok(
        json!({"clients": CLIENTS, "created": created, "create_per_s": created as f64 / create_s,
              "get": summarize(latencies)}),
    )
}

// --- The ceiling: raw SQL claims --------------------------------------------

const CEILING_SCRIPT: &str = "WITH due AS (
    SELECT id FROM ceiling_runs
    WHERE status = 'pending' AND next_attempt_at <= now()
    ORDER BY next_attempt_at LIMIT 100
    FOR UPDATE SKIP LOCKED)
UPDATE ceiling_runs r SET status = 'done', finished_at = now() FROM due WHERE r.id = due.id;
";

pub async fn ceiling(ctx: &Ctx) -> anyhow::Result<Value> {
    let db = BenchDb::create(&ctx.server, "ceiling").await?;
    // A fixed number of claims per client, and rows for all of them, so
    // that no claim finds the table empty.
    const CLIENTS: i64 = 8;
    let per_client: i64 = if ctx.sizes.burst < 1000 { 20 } else { 2000 };
    let rows = CLIENTS * per_client * 100 + 10_000;
    let mut conn = connect(&db.url).await?;
    for statement in [
        "CREATE TABLE ceiling_runs (id uuid PRIMARY KEY, job_id text NOT NULL, scheduled_for timestamptz NOT NULL,
             status text NOT NULL, attempt_count int NOT NULL DEFAULT 0, next_attempt_at timestamptz,
             created_at timestamptz NOT NULL DEFAULT now(), finished_at timestamptz)",
        "CREATE INDEX ceiling_pending ON ceiling_runs (next_attempt_at) WHERE status = 'pending'",
    ] {
        sqlx::query(statement).execute(&mut conn).await?;
    }
    sqlx::query(
        "INSERT INTO ceiling_runs (id, job_id, scheduled_for, status, next_attempt_at)
         SELECT gen_random_uuid(), 'job-' || g, now(), 'pending', now() - interval '1 second'
         FROM generate_series(1, $1) g",
    )
    .bind(rows)
    .execute(&mut conn)
    .await?;
    sqlx::query("VACUUM ANALYZE ceiling_runs")
        .execute(&mut conn)
        .await?;
    let script = std::env::temp_dir().join(format!("cronhook-ceiling-{}.sql", std::process::id()));
    std::fs::write(&script, CEILING_SCRIPT)?;
    let pgbench = find_pgbench()?;
    let output = std::process::Command::new(&pgbench)
        .args([
            "-n",
            "-c",
            &CLIENTS.to_string(),
            "-j",
            "2",
            "-t",
            &per_client.to_string(),
            "-f",
        ])
        .arg(&script)
        .arg(&db.url)
        .output()
        .with_context(|| format!("running {}", pgbench.display()))?;
    let _ = std::fs::remove_file(&script);
    let text = String::from_utf8_lossy(&output.stdout).to_string();
    if !output.status.success() {
        bail!(
            "pgbench failed: {}{}",
            text,
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let tps: f64 = text
        .lines()
        .find(|l| l.starts_with("tps = "))
        .and_then(|l| l["tps = ".len()..].split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .context("no tps in pgbench's output")?;
    let done: i64 = sqlx::query_scalar("SELECT count(*) FROM ceiling_runs WHERE status = 'done'")
        .fetch_one(&mut conn)
        .await?;
    drop(conn);
    db.drop_database().await?;
    if done != CLIENTS * per_client * 100 {
        bail!(
            "the ceiling claimed {done} rows, not {}",
            CLIENTS * per_client * 100
        );
    }
    Ok(
        json!({"clients": CLIENTS, "batch": 100, "claims_per_client": per_client, "tps": tps, "rows_per_s": tps * 100.0}),
    )
}

fn find_pgbench() -> anyhow::Result<PathBuf> {
    let mut candidates = vec![PathBuf::from("/usr/bin/pgbench")];
    if let Ok(entries) = std::fs::read_dir("/usr/lib/postgresql") {
        for entry in entries.flatten() {
            candidates.push(entry.path().join("bin/pgbench"));
        }
    }
    candidates.into_iter().find(|p| p.exists()).context(
        "pgbench not found (install the PostgreSQL client, e.g. apt-get install postgresql-client)",
    )
}
