//! The flow pass (DESIGN.md §11.1): admits the runs waiting for flow keys
//! that are due — a run of the key ended, one was made, a token came, a
//! waiting run fell due — under each key's row lock, so that a key's
//! limits hold across every instance.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::domain::retry::Backoff;
use crate::store::DynStore;
use crate::wakeup::Wakeups;

/// Keys admitted per transaction.
pub const BATCH: u32 = 100;

pub struct FlowPass {
    pub store: DynStore,
    pub wakeups: Arc<Wakeups>,
    /// The longest sleep between passes: another instance's changes are
    /// seen within it.
    pub poll_interval: Duration,
}

impl FlowPass {
    pub async fn run(self, shutdown: CancellationToken) {
        let mut backoff = Backoff::new();
        while !shutdown.is_cancelled() {
            let sleep = match self.store.admit_due_flows(BATCH).await {
                Ok(next) => {
                    backoff.reset();
                    next.map_or(self.poll_interval, |n| n.min(self.poll_interval))
                }
                Err(e) => {
                    let wait = backoff.next_wait();
                    tracing::warn!(error = %e, retry_ms = wait.as_millis() as u64, "flow pass failed");
                    wait
                }
            };
            if sleep.is_zero() {
                continue;
            }
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = self.wakeups.flows_did_change() => {}
                _ = tokio::time::sleep(sleep) => {}
            }
        }
    }
}
