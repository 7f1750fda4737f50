//! A real `cronhook serve` process, its address, and what it costs.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context, bail};
use serde::Serialize;

pub struct Service {
    child: Child,
    pub addr: String,
}

/// The root token every service is started with under `--auth` (and every
/// API request carries); none without.
static ROOT_TOKEN: std::sync::OnceLock<String> = std::sync::OnceLock::new();

/// From now on, services require a token, and the harness sends one.
pub fn require_auth() {
    ROOT_TOKEN.get_or_init(|| cronhook::domain::auth::generate_token().0);
}

/// The token API requests carry, if services require one.
pub fn root_token() -> Option<&'static str> {
    ROOT_TOKEN.get().map(String::as_str)
}

/// Whether delivering services get a subscription to every run event.
static SUBSCRIBE: std::sync::OnceLock<()> = std::sync::OnceLock::new();

/// From now on, every delivering service gets a subscription to every run
/// event ([`Service::subscribe`]).
pub fn subscribe_to_run_events() {
    SUBSCRIBE.get_or_init(|| ());
}

/// The run events a subscription is made for, and the receiver path they
/// are sent to.
pub const RUN_EVENTS: [&str; 4] = [
    "run.created",
    "run.succeeded",
    "run.failed",
    "attempt.failed",
];
pub const EVENTS_PATH: &str = "/events";

/// Peak memory and CPU time of the process over its life.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Resources {
    pub peak_rss_mb: f64,
    pub cpu_s: f64,
}

/// A process's peak RSS (VmHWM) in MB; NaN when it cannot be read.
pub fn peak_rss_mb(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let peak_kb = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .unwrap_or(f64::NAN);
    peak_kb / 1024.0
}

impl Service {
    /// Under `--subscribe`, subscribes to every run event over the API,
    /// sent to `url`; otherwise does nothing.
    pub async fn subscribe(&self, url: &str) -> anyhow::Result<()> {
        if SUBSCRIBE.get().is_none() {
            return Ok(());
        }
        let mut request = reqwest::Client::builder()
            .no_proxy()
            .build()?
            .post(format!("http://{}/v1/subscriptions", self.addr))
            .json(&serde_json::json!({"url": url, "types": RUN_EVENTS}));
        if let Some(token) = root_token() {
            request = request.bearer_auth(token);
        }
        let response = request.send().await?;
        if response.status() != reqwest::StatusCode::CREATED {
            bail!(
                "subscribing: {} {}",
                response.status(),
                response.text().await.unwrap_or_default()
            );
        }
        Ok(())
    }

    /// Whether [`Service::subscribe`] subscribes.
    pub fn subscribed(&self) -> bool {
        SUBSCRIBE.get().is_some()
    }

    pub fn start(bin: &Path, database_url: &str, flags: &[&str]) -> anyhow::Result<Self> {
        let mut command = Command::new(bin);
        if let Some(token) = root_token() {
            // The harness's receiver is on loopback: an explicit choice,
            // since tokens make public-only the default.
            command
                .env("CRONHOOK_AUTH", "required")
                .env("CRONHOOK_ROOT_TOKEN", token)
                .env("CRONHOOK_TARGETS", "any");
        }
        // The quotas a tenant is held to (issue 22) sit above the load the
        // scenarios make with one tenant: steady's 1,000 runs a second is
        // the default of 60,000 a minute exactly, scale stores a million jobs.
        let quota = crate::setup::BENCH_QUOTA.to_string();
        command
            .env("CRONHOOK_MAX_JOBS_PER_TENANT", &quota)
            .env("CRONHOOK_MAX_RUNS_PER_MINUTE_PER_TENANT", &quota);
        let mut child = command
            .arg("serve")
            .args(flags)
            .env("DATABASE_URL", database_url)
            .env("CRONHOOK_LISTEN", "127.0.0.1:0")
            .env("CRONHOOK_LOG_FORMAT", "json")
            .env("CRONHOOK_ENCRYPTION_KEY", crate::setup::BENCH_KEY)
            // CRONHOOK_BENCH_RUST_LOG: more of the service's log, for profiling.
            .env(
                "RUST_LOG",
                std::env::var("CRONHOOK_BENCH_RUST_LOG")
                    .unwrap_or_else(|_| "warn,cronhook::app=info".into()),
            )
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        loop {
            let line = rx
                .recv_timeout(Duration::from_secs(60))
                .context("cronhook did not report its address")?;
            let log: serde_json::Value = serde_json::from_str(&line).unwrap_or_default();
            if log["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("cronhook started"))
            {
                let addr = log["listen"].as_str().unwrap_or_default().to_string();
                if addr.is_empty() {
                    bail!("no address in {line}");
                }
                // Keep draining its output so it never blocks on a full pipe;
                // CRONHOOK_BENCH_LOG names a file to keep it in.
                let mut keep = std::env::var("CRONHOOK_BENCH_LOG")
                    .ok()
                    .and_then(|p| std::fs::File::create(p).ok());
                std::thread::spawn(move || {
                    while let Ok(line) = rx.recv() {
                        if let Some(file) = keep.as_mut() {
                            use std::io::Write;
                            let _ = writeln!(file, "{line}");
                        }
                    }
                });
                return Ok(Self { child, addr });
            }
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Peak RSS (VmHWM) and user + system CPU seconds so far.
    pub fn resources(&self) -> Resources {
        let pid = self.pid();
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        // Fields after the parenthesised command name; utime and stime are
        // the 14th and 15th fields of the line.
        let after = stat.rsplit_once(')').map(|(_, rest)| rest).unwrap_or("");
        let fields: Vec<&str> = after.split_whitespace().collect();
        let ticks: f64 = [11, 12]
            .iter()
            .filter_map(|i| fields.get(*i).and_then(|v| v.parse::<f64>().ok()))
            .sum();
        Resources {
            peak_rss_mb: peak_rss_mb(pid),
            cpu_s: ticks / clock_ticks_per_second(),
        }
    }

    /// SIGKILL: no drain, no release, no goodbye.
    pub fn kill(mut self) -> anyhow::Result<()> {
        self.child.kill()?;
        self.child.wait()?;
        Ok(())
    }

    /// SIGTERM, then wait for it to exit.
    pub fn stop(mut self) -> anyhow::Result<Resources> {
        let resources = self.resources();
        let _ = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status();
        let status = self.child.wait()?;
        if !status.success() {
            bail!("cronhook exited with {status}");
        }
        Ok(resources)
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn clock_ticks_per_second() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}
