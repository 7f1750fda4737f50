//! The watchdog (DESIGN.md §11.5): once a second, one instance at a time
//! opens, reminds and resolves alerts on the database clock, so an outage
//! of the whole service is reported as soon as one instance is back. The
//! same pass resumes the jobs whose timed pause has ended (§11.9), ends
//! callback runs past their time (§11.7) and looks again at runs held by
//! their gates (§11.8).

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use std::sync::Arc;

use crate::domain::retry::Backoff;
use crate::domain::run::RunStatus;
use crate::metrics::Metrics;
use crate::store::DynStore;

/// How often a pass looks.
pub const EVERY: Duration = Duration::from_secs(1);

pub async fn run(store: DynStore, metrics: Arc<Metrics>, shutdown: CancellationToken) {
    let mut backoff = Backoff::new();
    while !shutdown.is_cancelled() {
        if let Err(e) = store.resume_timed_pauses().await {
            tracing::warn!(error = %e, "resuming timed pauses failed; the next pass tries again");
        }
        // Callback runs past their time end here (§11.7).
        match store.watch_callbacks().await {
            Ok(ended) => {
                for status in ended {
                    metrics.runs_ended(status, 1);
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "ending overdue callback runs failed; the next pass tries again")
            }
        }
        // Runs held by their gates are looked at again here (§11.8).
        match store.watch_gates().await {
            Ok(missed) if missed > 0 => metrics.runs_ended(RunStatus::Missed, missed),
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(error = %e, "looking at runs held by their gates failed; the next pass tries again")
            }
        }
        let sleep = match store.watch_alerts().await {
            Ok(pass) => {
                // A monitor's run missed ends here, not in a dispatcher.
                if pass.runs_missed > 0 {
                    metrics.runs_ended(RunStatus::Missed, pass.runs_missed);
                }
                backoff.reset();
                EVERY
            }
            Err(e) => {
                let wait = backoff.next_wait();
                tracing::warn!(error = %e, retry_ms = wait.as_millis() as u64, "watchdog pass failed");
                wait
            }
        };
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tokio::time::sleep(sleep) => {}
        }
    }
}
