//! `cronhook-bench`: drives a real `cronhook serve` over HTTP against
//! PostgreSQL with its own receiver, and measures throughput, lateness,
//! scale and resources; side by side with PostgreSQL's own ceiling and with
//! APScheduler. Prints a table and writes JSON. See BENCHMARKS.md.

mod chaos;
mod dbwork;
mod peer;
mod receiver;
mod repeats;
mod scenarios;
mod service;
mod setup;
mod stats;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Parser;
use serde_json::{Map, Value, json};

use scenarios::{Ctx, Sizes};

const ALL: &[&str] = &[
    "engine-burst",
    "engine-steady",
    "burst",
    "burst-hosts",
    "flow",
    "agenda",
    "steady",
    "aligned",
    "scale",
    "api",
    "bulk",
    "ceiling",
    "aps-burst",
    "aps-steady",
    "aps-aligned",
    "chaos",
];

#[derive(Debug, Parser)]
#[command(
    name = "cronhook-bench",
    about = "Benchmarks Cronhook end to end on PostgreSQL"
)]
struct Args {
    /// Scenarios: engine-burst engine-steady explain burst burst-hosts flow
    /// agenda steady aligned scale api bulk ceiling aps-burst aps-steady aps-aligned chaos, or `all`
    /// (every one but explain, which scale includes), `engine`, `delivery`.
    #[arg(default_value = "all")]
    scenarios: Vec<String>,
    /// The PostgreSQL server; each scenario makes (and drops) a database.
    #[arg(
        long,
        env = "DATABASE_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/postgres"
    )]
    database_url: String,
    /// The cronhook binary (default: next to this one).
    #[arg(long)]
    cronhook_bin: Option<PathBuf>,
    /// Jobs due at one instant in the burst scenarios.
    #[arg(long, default_value_t = 10_000)]
    burst_jobs: usize,
    /// Jobs on one flow key in the flow scenario (its rate: a fifth of
    /// them per second).
    #[arg(long, default_value_t = 1_000)]
    flow_jobs: usize,
    /// Jobs firing every second in the steady and aligned scenarios.
    #[arg(long, default_value_t = 1_000)]
    steady_jobs: usize,
    /// Length of the steady and aligned scenarios, in seconds.
    #[arg(long, default_value_t = 60)]
    seconds: u64,
    /// Future jobs stored in the scale scenario.
    #[arg(long, default_value_t = 1_000_000)]
    scale_jobs: usize,
    /// Jobs created over HTTP in the scale scenario's API test.
    #[arg(long, default_value_t = 5_000)]
    api_jobs: usize,
    /// Jobs the agenda scenario lists over 7 days.
    #[arg(long, default_value_t = 1_000)]
    agenda_jobs: usize,
    /// Jobs firing every second in the chaos scenario (its length is
    /// --seconds).
    #[arg(long, default_value_t = 100)]
    chaos_jobs: usize,
    /// The shell command the chaos scenario restarts PostgreSQL with, under
    /// load; `none` to leave it running.
    #[arg(
        long,
        default_value = "pg_ctlcluster --skip-systemctl-redirect \"$(ls /etc/postgresql | sort -V | tail -n1)\" main restart"
    )]
    pg_restart: String,
    /// Runs of every scenario, interleaved (all scenarios, then all again);
    /// each figure reported is the median over them.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=99))]
    repeat: u32,
    /// Tiny sizes: checks the harness works, measures nothing.
    #[arg(long)]
    quick: bool,
    /// Run every service with `--auth required` and a root token, and send
    /// it with every API request the harness makes: the cost of auth.
    #[arg(long)]
    auth: bool,
    /// Give every delivering service one subscription to every run event
    /// (`run.created`, `run.succeeded`, `run.failed`, `attempt.failed`),
    /// sent to the receiver by the same dispatcher: the cost of events
    /// delivered, not only written.
    #[arg(long)]
    subscribe: bool,
    /// Where the JSON results go.
    #[arg(long, default_value = "target/bench-results.json")]
    out: PathBuf,
    /// The APScheduler peer's virtual environment.
    #[arg(long, default_value = "target/bench-venv")]
    venv: PathBuf,
    /// Print the table of an earlier run's JSON, and run nothing.
    #[arg(long)]
    report: Option<PathBuf>,
}

fn expand(names: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    for name in names {
        match name.as_str() {
            "all" => out.extend(ALL.iter().map(|s| s.to_string())),
            "engine" => out.extend(["engine-burst", "engine-steady", "explain"].map(String::from)),
            "delivery" => out.extend(["burst", "steady"].map(String::from)),
            other => out.push(other.to_string()),
        }
    }
    out
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if let Some(path) = &args.report {
        let results: Value = serde_json::from_str(&std::fs::read_to_string(path)?)?;
        println!("{}", report::table(&results));
        return Ok(());
    }
    cronhook::dispatch::client::install_crypto_provider();
    if args.auth {
        service::require_auth();
    }
    if args.subscribe {
        service::subscribe_to_run_events();
    }
    let sizes = if args.quick {
        Sizes {
            burst: 50,
            flow: 50,
            steady: 20,
            duration: Duration::from_secs(4),
            scale: 2_000,
            api: 64,
            agenda: 40,
            chaos_jobs: 10,
        }
    } else {
        Sizes {
            burst: args.burst_jobs,
            flow: args.flow_jobs,
            steady: args.steady_jobs,
            duration: Duration::from_secs(args.seconds),
            scale: args.scale_jobs,
            api: args.api_jobs,
            agenda: args.agenda_jobs,
            chaos_jobs: args.chaos_jobs,
        }
    };
    let bin = match args.cronhook_bin {
        Some(bin) => bin,
        None => std::env::current_exe()?.with_file_name("cronhook"),
    };
    anyhow::ensure!(
        bin.exists(),
        "no cronhook binary at {} (build it, or pass --cronhook-bin)",
        bin.display()
    );
    let (receiver, receiver_addr) = receiver::Receiver::start();
    let ctx = Ctx {
        server: args.database_url.clone(),
        bin,
        receiver,
        receiver_addr,
        sizes,
        venv: args.venv.clone(),
        // Quick runs share PostgreSQL with the test suite: never restart it.
        pg_restart: if args.quick || args.pg_restart == "none" {
            String::new()
        } else {
            args.pg_restart.clone()
        },
    };

    let scenarios = expand(&args.scenarios);
    let mut results = Map::new();
    results.insert("machine".into(), machine());
    if scenarios.iter().any(|s| s.starts_with("aps-")) {
        let version = peer::ensure_venv(&args.venv).context("setting up the APScheduler peer")?;
        results.insert("apscheduler_version".into(), json!(version));
    }
    let mut runs: Vec<Vec<Value>> = vec![Vec::new(); scenarios.len()];
    for round in 1..=args.repeat {
        for (name, scenario_runs) in scenarios.iter().zip(&mut runs) {
            eprintln!("cronhook-bench: {name} ({round} of {}) …", args.repeat);
            let started = Instant::now();
            ctx.receiver.clear();
            let result = match name.as_str() {
                "engine-burst" => scenarios::engine_burst(&ctx).await,
                "engine-steady" => scenarios::engine_steady(&ctx).await,
                "explain" => scenarios::explain(&ctx).await,
                "burst" => scenarios::burst(&ctx).await,
                "burst-hosts" => scenarios::burst_hosts(&ctx).await,
                "flow" => scenarios::flow(&ctx).await,
                "agenda" => scenarios::agenda(&ctx).await,
                "steady" => scenarios::steady(&ctx).await,
                "aligned" => scenarios::aligned(&ctx).await,
                "scale" => scenarios::scale(&ctx).await,
                "api" => scenarios::api(&ctx).await,
                "bulk" => scenarios::bulk(&ctx).await,
                "ceiling" => scenarios::ceiling(&ctx).await,
                "aps-burst" => peer::apscheduler(&ctx, "burst").await,
                "aps-steady" => peer::apscheduler(&ctx, "steady").await,
                "aps-aligned" => peer::apscheduler(&ctx, "aligned").await,
                "chaos" => chaos::chaos(&ctx).await,
                other => anyhow::bail!("unknown scenario {other:?}; expected one of {ALL:?}, explain, engine, delivery or all"),
            }
            .with_context(|| format!("scenario {name}"))?;
            eprintln!(
                "cronhook-bench: {name} done in {:.0} s",
                started.elapsed().as_secs_f64()
            );
            scenario_runs.push(result);
        }
    }
    results.insert("repeats".into(), json!(args.repeat));
    results.insert("auth".into(), json!(args.auth));
    results.insert("subscribe".into(), json!(args.subscribe));
    for (name, scenario_runs) in scenarios.iter().zip(&runs) {
        results.insert(name.clone(), repeats::combine(scenario_runs));
    }
    let results = Value::Object(results);
    let summary = report::table(&results);
    println!("{summary}");
    if let Some(parent) = args.out.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(&args.out, serde_json::to_string_pretty(&results)?)?;
    eprintln!("cronhook-bench: results in {}", args.out.display());
    Ok(())
}

/// What the figures were measured on.
fn machine() -> Value {
    let read = |path: &str| std::fs::read_to_string(path).unwrap_or_default();
    let cpuinfo = read("/proc/cpuinfo");
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map(|m| m.trim_start_matches([' ', '\t', ':']).to_string());
    let cores = cpuinfo
        .lines()
        .filter(|l| l.starts_with("processor"))
        .count();
    let memory_kb = read("/proc/meminfo")
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok());
    json!({"cpu": model, "cores": cores, "memory_gib": memory_kb.map(|kb| (kb / 1048576.0 * 10.0).round() / 10.0),
           "kernel": read("/proc/sys/kernel/osrelease").trim()})
}

mod report;
