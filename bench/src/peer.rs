//! APScheduler 3.x on the same PostgreSQL and the same receiver, driven by
//! `bench/apscheduler_peer.py` in a virtual environment made here.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use chrono::{DateTime, TimeDelta, Utc};
use serde_json::{Value, json};

use crate::scenarios::{Ctx, aligned_metrics, burst_metrics, steady_metrics, window};
use crate::setup::{BenchDb, sleep_until};

/// APScheduler 3.x and what its job store and job function need.
const PACKAGES: &[&str] = &[
    "APScheduler>=3.10,<4",
    "SQLAlchemy>=2,<2.1",
    "psycopg2-binary>=2.9",
    "requests>=2.31",
];

fn python(venv: &Path) -> PathBuf {
    venv.join("bin/python")
}

/// Creates the virtual environment and installs the packages once.
pub fn ensure_venv(venv: &Path) -> anyhow::Result<String> {
    if !python(venv).exists() {
        eprintln!(
            "cronhook-bench: creating {} for the APScheduler peer",
            venv.display()
        );
        let status = Command::new("python3")
            .args(["-m", "venv"])
            .arg(venv)
            .status()
            .context("running python3 -m venv")?;
        if !status.success() {
            bail!("python3 -m venv {} failed", venv.display());
        }
    }
    let status = Command::new(python(venv))
        .args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
        ])
        .args(PACKAGES)
        .status()
        .context("running pip")?;
    if !status.success() {
        bail!("installing {PACKAGES:?} with pip failed");
    }
    let version = Command::new(python(venv))
        .args(["-c", "import apscheduler; print(apscheduler.__version__)"])
        .output()?;
    Ok(String::from_utf8_lossy(&version.stdout).trim().to_string())
}

pub async fn apscheduler(ctx: &Ctx, scenario: &str) -> anyhow::Result<Value> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("apscheduler_peer.py");
    let jobs = if scenario == "burst" {
        ctx.sizes.burst
    } else {
        ctx.sizes.steady
    };
    let db = BenchDb::create(&ctx.server, &format!("aps_{scenario}")).await?;
    let path = format!("/aps-{scenario}");
    // APScheduler stores a job in about a millisecond or two.
    let lead = 5.0 + jobs as f64 / 250.0;
    let mut child = Command::new(python(&ctx.venv))
        .arg(&script)
        .arg(scenario)
        .args([
            "--jobs",
            &jobs.to_string(),
            "--db",
            &db.url,
            "--url",
            &ctx.url(&path),
            "--lead",
            &lead.to_string(),
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .context("starting the APScheduler peer")?;
    let pid = child.id();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = lines
        .next()
        .context("the APScheduler peer said nothing")??;
    let started: Value = serde_json::from_str(&first)?;
    if let Some(error) = started.get("error") {
        bail!("APScheduler peer: {error}");
    }
    let t0 =
        DateTime::from_timestamp(started["t0"].as_i64().context("no t0")?, 0).context("bad t0")?;

    let result = match scenario {
        "burst" => {
            let began = Instant::now();
            while ctx.receiver.count(&path) < jobs && began.elapsed() < Duration::from_secs(600) {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            burst_metrics(&ctx.receiver.hits(&path), jobs, t0)?
        }
        "steady" => {
            let w = window(t0, ctx.sizes.duration);
            sleep_until(w.1 + TimeDelta::seconds(2)).await;
            let (lateness, exact) = steady_metrics(&ctx.receiver.hits(&path), jobs, t0, w);
            json!({"jobs": jobs, "seconds": ctx.sizes.duration.as_secs(), "lateness": lateness, "exactness": exact})
        }
        _ => {
            let w = window(t0, ctx.sizes.duration);
            sleep_until(w.1 + TimeDelta::seconds(3)).await;
            aligned_metrics(&ctx.receiver.hits(&path), jobs, w)
        }
    };
    let resources = process_resources(pid);
    let _ = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status();
    let _ = child.wait();
    db.drop_database().await?;
    let mut result = result;
    result["resources"] = resources;
    Ok(result)
}

fn process_resources(pid: u32) -> Value {
    json!({"peak_rss_mb": crate::service::peak_rss_mb(pid), "measured_at": Utc::now().to_rfc3339()})
}
