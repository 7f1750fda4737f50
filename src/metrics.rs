//! Prometheus metrics (DESIGN.md §9), in the OpenMetrics text format that
//! Prometheus scrapes, through `prometheus-client`: one registry per
//! service (no global state), counted where things happen, gauges read from
//! the store at each scrape.

use std::sync::Mutex;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::domain::job::JobState;
use crate::domain::retry::Outcome;
use crate::domain::run::RunStatus;
use crate::store::{Gauges, JobSignal};

/// `--max-job-metrics`'s default.
pub const DEFAULT_JOB_SERIES_MAX: u32 = 100;

/// The answer's content type.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Lateness buckets, in seconds: fine from 1 ms (a 5 ms p99 reads as such)
/// to a minute.
const LATENESS_BUCKETS: [f64; 24] = [
    0.001, 0.002, 0.003, 0.004, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.03, 0.05, 0.075, 0.1, 0.15,
    0.2, 0.3, 0.5, 0.75, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0,
];

/// Durations of requests, claims and attempts, in seconds.
const DURATION_BUCKETS: [f64; 16] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
    60.0,
];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StatusLabel {
    status: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabel {
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabel {
    state: &'static str,
}

/// A job's own series: bounded by `--max-job-metrics`, opted into per job.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct JobLabels {
    tenant: String,
    job_id: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ConditionLabel {
    condition: &'static str,
}

/// An API request's labels, each from a closed set, so that no request,
/// authenticated or not, can add a series (issue 22: 20,000 made-up
/// methods once added 141 MB).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HttpLabels {
    /// A method HTTP defines, or `other`.
    method: &'static str,
    /// The matched route's pattern (`/v1/jobs/{id}`), never the raw path;
    /// `unmatched` where no route matched.
    route: String,
    /// `2xx`, `4xx`, …
    status: &'static str,
}

impl HttpLabels {
    pub fn of(method: &http::Method, route: Option<&str>, status: http::StatusCode) -> Self {
        const KNOWN: [&str; 9] = [
            "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "CONNECT", "TRACE",
        ];
        let method = KNOWN
            .into_iter()
            .find(|known| *known == method.as_str())
            .unwrap_or("other");
        let status = match status.as_u16() / 100 {
            1 => "1xx",
            2 => "2xx",
            3 => "3xx",
            4 => "4xx",
            _ => "5xx",
        };
        Self {
            method,
            route: route.unwrap_or("unmatched").to_string(),
            status,
        }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct VersionLabel {
    version: &'static str,
}

fn duration_histogram() -> Histogram {
    Histogram::new(DURATION_BUCKETS)
}

pub struct Metrics {
    registry: Registry,
    runs: Family<StatusLabel, Counter>,
    runs_created: Family<StatusLabel, Counter>,
    deliveries_failed: Counter,
    attempts: Family<OutcomeLabel, Counter>,
    attempt_duration: Histogram,
    lateness: Histogram,
    claim_duration: Histogram,
    http_requests: Family<HttpLabels, Counter>,
    http_duration: Family<HttpLabels, Histogram>,
    runs_pending: Gauge,
    process: ProcessGauges,
    jobs: Family<StateLabel, Gauge>,
    alerts_open: Family<ConditionLabel, Gauge>,
    job_last_success: Family<JobLabels, Gauge>,
    job_failures: Family<JobLabels, Gauge>,
    /// The most jobs with series of their own.
    pub job_series_max: u32,
    db_connections: Family<StateLabel, Gauge>,
    /// Scrapes are encoded one at a time (gauges are set, then read).
    scrape: Mutex<()>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::default();
        let runs = Family::<StatusLabel, Counter>::default();
        registry.register(
            "cronhook_runs",
            "Job runs by the status they ended with (succeeded, failed, missed, skipped), each once",
            runs.clone(),
        );
        let runs_created = Family::<StatusLabel, Counter>::default();
        registry.register(
            "cronhook_runs_created",
            "Job runs made, by the status they were made with (pending, missed, skipped)",
            runs_created.clone(),
        );
        let deliveries_failed = Counter::default();
        registry.register(
            "cronhook_subscription_deliveries_failed",
            "Deliveries of events to subscriptions that failed for good",
            deliveries_failed.clone(),
        );
        let attempts = Family::<OutcomeLabel, Counter>::default();
        registry.register(
            "cronhook_attempts",
            "Delivery attempts by outcome (succeeded, retried, failed)",
            attempts.clone(),
        );
        let attempt_duration = duration_histogram();
        registry.register(
            "cronhook_attempt_duration_seconds",
            "How long delivery attempts took",
            attempt_duration.clone(),
        );
        let lateness = Histogram::new(LATENESS_BUCKETS);
        registry.register(
            "cronhook_lateness_seconds",
            "First request sent minus scheduled_for, per run",
            lateness.clone(),
        );
        let claim_duration = duration_histogram();
        registry.register(
            "cronhook_claim_duration_seconds",
            "How long one scheduler claim of due jobs took",
            claim_duration.clone(),
        );
        let http_requests = Family::<HttpLabels, Counter>::default();
        registry.register(
            "cronhook_http_requests",
            "API requests by method, route and status",
            http_requests.clone(),
        );
        let http_duration = Family::<HttpLabels, Histogram>::new_with_constructor(
            duration_histogram as fn() -> Histogram,
        );
        registry.register(
            "cronhook_http_request_duration_seconds",
            "How long API requests took to answer, by method, route and status",
            http_duration.clone(),
        );
        let runs_pending = Gauge::default();
        registry.register(
            "cronhook_runs_pending",
            "Runs waiting for a delivery attempt",
            runs_pending.clone(),
        );
        let jobs = Family::<StateLabel, Gauge>::default();
        registry.register("cronhook_jobs", "Jobs by state", jobs.clone());
        let alerts_open = Family::<ConditionLabel, Gauge>::default();
        registry.register(
            "cronhook_alerts_open",
            "Alerts not resolved, by condition (DESIGN.md §11.5)",
            alerts_open.clone(),
        );
        let job_last_success = Family::<JobLabels, Gauge>::default();
        registry.register(
            "cronhook_job_last_success_timestamp_seconds",
            "When the job's last successful run finished (jobs with metrics: true)",
            job_last_success.clone(),
        );
        let job_failures = Family::<JobLabels, Gauge>::default();
        registry.register(
            "cronhook_job_consecutive_failures",
            "Scheduled runs failed since the job's last success (jobs with metrics: true)",
            job_failures.clone(),
        );
        let db_connections = Family::<StateLabel, Gauge>::default();
        registry.register(
            "cronhook_db_connections",
            "This instance's database connections (in_use, idle)",
            db_connections.clone(),
        );
        let build_info = Family::<VersionLabel, Gauge>::default();
        build_info
            .get_or_create(&VersionLabel {
                version: env!("CARGO_PKG_VERSION"),
            })
            .set(1);
        registry.register("cronhook_build_info", "The running version", build_info);
        let process = ProcessGauges::register(&mut registry);
        Self {
            registry,
            runs,
            runs_created,
            deliveries_failed,
            attempts,
            attempt_duration,
            lateness,
            claim_duration,
            http_requests,
            http_duration,
            runs_pending,
            process,
            jobs,
            alerts_open,
            job_last_success,
            job_failures,
            job_series_max: DEFAULT_JOB_SERIES_MAX,
            db_connections,
            scrape: Mutex::new(()),
        }
    }

    /// Job runs made with `status`; those made missed or skipped have
    /// also ended.
    pub fn runs_made(&self, status: RunStatus, n: usize) {
        if n == 0 {
            return;
        }
        let label = StatusLabel {
            status: status.as_str(),
        };
        self.runs_created.get_or_create(&label).inc_by(n as u64);
        if !status.in_flight() {
            self.runs.get_or_create(&label).inc_by(n as u64);
        }
    }

    /// A delivery of an event that failed for good.
    pub fn delivery_failed(&self) {
        self.deliveries_failed.inc();
    }

    /// Job runs that ended with `status` (each run once).
    pub fn runs_ended(&self, status: RunStatus, n: usize) {
        self.runs
            .get_or_create(&StatusLabel {
                status: status.as_str(),
            })
            .inc_by(n as u64);
    }

    /// One attempt's outcome and duration; `lateness` for a run's first.
    pub fn attempt(&self, outcome: Outcome, duration: Duration, lateness: Option<Duration>) {
        let label = match outcome {
            Outcome::Succeeded => "succeeded",
            Outcome::Retry { .. } => "retried",
            Outcome::Failed => "failed",
            Outcome::Accepted { .. } => "accepted",
            Outcome::Cancelled => "cancelled",
        };
        self.attempts
            .get_or_create(&OutcomeLabel { outcome: label })
            .inc();
        self.attempt_duration.observe(duration.as_secs_f64());
        if let Some(lateness) = lateness {
            self.lateness.observe(lateness.as_secs_f64());
        }
    }

    pub fn claim(&self, duration: Duration) {
        self.claim_duration.observe(duration.as_secs_f64());
    }

    pub fn http(&self, labels: HttpLabels, duration: Duration) {
        self.http_duration
            .get_or_create(&labels)
            .observe(duration.as_secs_f64());
        self.http_requests.get_or_create(&labels).inc();
    }

    /// With at most `n` jobs' own series.
    pub fn with_job_series_max(self, n: u32) -> Self {
        Self {
            job_series_max: n,
            ..self
        }
    }

    /// The text a scrape answers, with `gauges` and the opted-in jobs'
    /// `signals` read from the store now.
    pub fn render(&self, gauges: &Gauges, signals: &[JobSignal]) -> String {
        let _one_at_a_time = self.scrape.lock().unwrap_or_else(|e| e.into_inner());
        self.runs_pending
            .set(i64::try_from(gauges.runs_pending).unwrap_or(i64::MAX));
        for state in [JobState::Scheduled, JobState::Paused, JobState::Completed] {
            let n = gauges
                .jobs
                .iter()
                .find(|(s, _)| *s == state)
                .map_or(0, |(_, n)| *n);
            self.jobs
                .get_or_create(&StateLabel {
                    state: state.as_str(),
                })
                .set(i64::try_from(n).unwrap_or(i64::MAX));
        }
        for condition in crate::domain::alert::Condition::ALL {
            let n = gauges
                .alerts_open
                .iter()
                .find(|(c, _)| *c == condition)
                .map_or(0, |(_, n)| *n);
            self.alerts_open
                .get_or_create(&ConditionLabel {
                    condition: condition.as_str(),
                })
                .set(i64::try_from(n).unwrap_or(i64::MAX));
        }
        // A job deleted or opted out since the last scrape has no series.
        self.job_last_success.clear();
        self.job_failures.clear();
        for s in signals {
            let labels = JobLabels {
                tenant: s.tenant.clone(),
                job_id: s.job_id.clone(),
            };
            if let Some(at) = s.last_success {
                self.job_last_success
                    .get_or_create(&labels)
                    .set(at.timestamp());
            }
            self.job_failures
                .get_or_create(&labels)
                .set(i64::try_from(s.consecutive_failures).unwrap_or(i64::MAX));
        }
        self.process.read();
        let (in_use, idle) = gauges.db_connections;
        self.db_connections
            .get_or_create(&StateLabel { state: "in_use" })
            .set(in_use.into());
        self.db_connections
            .get_or_create(&StateLabel { state: "idle" })
            .set(idle.into());
        let mut text = String::new();
        // Writing to a String cannot fail.
        let _ = encode(&mut text, &self.registry);
        text
    }
}

/// This process's CPU, memory and open files, read from `/proc` at each
/// scrape under the names Prometheus's own clients use.
struct ProcessGauges {
    cpu_seconds: Gauge<f64, std::sync::atomic::AtomicU64>,
    resident_bytes: Gauge,
    open_fds: Gauge,
}

impl ProcessGauges {
    fn register(registry: &mut Registry) -> Self {
        let g = Self {
            cpu_seconds: Gauge::default(),
            resident_bytes: Gauge::default(),
            open_fds: Gauge::default(),
        };
        registry.register(
            "process_cpu_seconds",
            "User and system CPU time this process spent",
            g.cpu_seconds.clone(),
        );
        registry.register(
            "process_resident_memory_bytes",
            "This process's resident memory",
            g.resident_bytes.clone(),
        );
        registry.register(
            "process_open_fds",
            "This process's open file descriptors",
            g.open_fds.clone(),
        );
        g
    }

    /// Reads `/proc/self` (Linux); elsewhere the gauges stay at 0.
    fn read(&self) {
        // Fields 14 and 15 of /proc/self/stat, after the command's ")":
        // user and system time in clock ticks (100 a second on Linux).
        if let Ok(stat) = std::fs::read_to_string("/proc/self/stat")
            && let Some(rest) = stat.rsplit(')').next()
        {
            let fields: Vec<&str> = rest.split_whitespace().collect();
            let ticks: u64 = [11, 12]
                .iter()
                .filter_map(|&i| fields.get(i)?.parse::<u64>().ok())
                .sum();
            self.cpu_seconds.set(ticks as f64 / 100.0);
        }
        if let Ok(status) = std::fs::read_to_string("/proc/self/status")
            && let Some(kb) = status
                .lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<i64>().ok())
        {
            self.resident_bytes.set(kb * 1024);
        }
        if let Ok(dir) = std::fs::read_dir("/proc/self/fd") {
            self.open_fds.set(dir.count() as i64);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_every_metric_with_its_labels() {
        let m = Metrics::new();
        m.runs_made(RunStatus::Pending, 3);
        m.runs_made(RunStatus::Missed, 1);
        m.runs_ended(RunStatus::Succeeded, 1);
        m.attempt(
            Outcome::Succeeded,
            Duration::from_millis(12),
            Some(Duration::from_millis(4)),
        );
        m.http(
            HttpLabels::of(&http::Method::GET, Some("/v1/jobs"), http::StatusCode::OK),
            Duration::from_millis(1),
        );
        for made_up in ["FOO", "BAR", "get"] {
            m.http(
                HttpLabels::of(
                    &http::Method::from_bytes(made_up.as_bytes()).unwrap(),
                    None,
                    http::StatusCode::METHOD_NOT_ALLOWED,
                ),
                Duration::from_millis(1),
            );
        }
        let text = m.render(
            &Gauges {
                runs_pending: 7,
                jobs: vec![(JobState::Scheduled, 2)],
                alerts_open: vec![(crate::domain::alert::Condition::Failure, 1)],
                db_connections: (1, 3),
            },
            &[JobSignal {
                tenant: "default".into(),
                job_id: "nightly".into(),
                last_success: chrono::DateTime::from_timestamp(1_800_000_000, 0),
                consecutive_failures: 2,
            }],
        );
        for line in [
            "cronhook_runs_created_total{status=\"pending\"} 3",
            "cronhook_runs_created_total{status=\"missed\"} 1",
            "cronhook_runs_total{status=\"missed\"} 1",
            "cronhook_runs_total{status=\"succeeded\"} 1",
            "cronhook_http_request_duration_seconds_count{method=\"GET\",route=\"/v1/jobs\",status=\"2xx\"} 1",
            "process_resident_memory_bytes ",
            "process_open_fds ",
            "cronhook_job_last_success_timestamp_seconds{tenant=\"default\",job_id=\"nightly\"} 1800000000",
            "cronhook_job_consecutive_failures{tenant=\"default\",job_id=\"nightly\"} 2",
            "cronhook_attempts_total{outcome=\"succeeded\"} 1",
            "cronhook_lateness_seconds_bucket{le=\"0.005\"} 1",
            "cronhook_lateness_seconds_bucket{le=\"0.003\"} 0",
            "cronhook_runs_pending 7",
            "cronhook_jobs{state=\"scheduled\"} 2",
            "cronhook_jobs{state=\"paused\"} 0",
            "cronhook_db_connections{state=\"idle\"} 3",
            "cronhook_http_requests_total{method=\"GET\",route=\"/v1/jobs\",status=\"2xx\"} 1",
            "cronhook_http_requests_total{method=\"other\",route=\"unmatched\",status=\"4xx\"} 3",
            "cronhook_build_info{version=\"",
            "# EOF",
        ] {
            assert!(text.contains(line), "{line} in\n{text}");
        }
    }
}
