//! The scheduler loop: turns due jobs into runs, exactly once per
//! occurrence, whatever the number of instances (DESIGN.md §5).

use std::sync::Arc;
use std::time::Duration;

use rand::RngExt;
use tokio_util::sync::CancellationToken;

use crate::domain::misfire::{self, DueJob};
use crate::domain::retry::Backoff;
use crate::domain::run::RunStatus;
use crate::metrics::Metrics;
use crate::store::DynStore;
use crate::wakeup::Wakeups;

/// Due jobs per claim transaction.
pub const BATCH: u32 = 500;

pub struct Scheduler {
    pub store: DynStore,
    pub wakeups: Arc<Wakeups>,
    /// The longest sleep between passes; notifications are only hints.
    pub poll_interval: Duration,
    /// How long before its fire time a job's next run is made (DESIGN.md
    /// §12): the dispatcher then sends it at the instant, the scheduler's
    /// commit out of the way.
    pub lookahead: Duration,
    pub metrics: Arc<Metrics>,
}

/// The scheduler's rule: the pure misfire / coalesce / max_instances
/// decision, with jitter drawn here.
pub fn plan(job: &DueJob<'_>, now: chrono::DateTime<chrono::Utc>) -> misfire::Decision {
    let mut rng = rand::rng();
    misfire::decide(job, now, &mut || rng.random::<f64>())
}

impl Scheduler {
    pub async fn run(self, shutdown: CancellationToken) {
        tracing::info!(
            poll_interval_ms = self.poll_interval.as_millis() as u64,
            lookahead_ms = self.lookahead.as_millis() as u64,
            "scheduler started"
        );
        let mut backoff = Backoff::new();
        while !shutdown.is_cancelled() {
            let sleep = match self.pass().await {
                Ok(()) => {
                    backoff.reset();
                    match self.store.next_due_in(self.lookahead).await {
                        Ok(Some(due_in)) => due_in.min(self.poll_interval),
                        Ok(None) => self.poll_interval,
                        Err(e) => {
                            tracing::warn!(error = %e, "scheduler: reading the next due time failed");
                            self.poll_interval
                        }
                    }
                }
                Err(e) => {
                    let wait = backoff.next_wait();
                    tracing::warn!(error = %e, retry_ms = wait.as_millis() as u64, "scheduler pass failed");
                    wait
                }
            };
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = self.wakeups.jobs_did_change() => {}
                _ = tokio::time::sleep(sleep) => {}
            }
        }
        tracing::info!("scheduler stopped");
    }

    /// Claims batches until one comes back short: everything due is handled.
    async fn pass(&self) -> Result<(), crate::store::StoreError> {
        loop {
            let began = std::time::Instant::now();
            let outcome = self
                .store
                .claim_due_jobs(BATCH, self.lookahead, &plan)
                .await?;
            self.metrics.claim(began.elapsed());
            self.metrics.runs_made(RunStatus::Pending, outcome.pending);
            self.metrics.runs_made(RunStatus::Missed, outcome.missed);
            self.metrics.runs_made(RunStatus::Skipped, outcome.skipped);
            if outcome.jobs > 0 {
                tracing::debug!(
                    jobs = outcome.jobs,
                    runs = outcome.runs,
                    pending = outcome.pending,
                    "claimed due jobs"
                );
            }
            if outcome.jobs < BATCH as usize {
                return Ok(());
            }
        }
    }
}
