//! In-process wake-up signals. The scheduler waits on `jobs`, the
//! dispatcher on `runs`; a signal sent while nobody waits is kept (one
//! permit), so a change made just before a loop goes to sleep still wakes
//! it. Across PostgreSQL instances, `NOTIFY` feeds the same signals.

use tokio::sync::Notify;

#[derive(Debug, Default)]
pub struct Wakeups {
    jobs: Notify,
    runs: Notify,
}

impl Wakeups {
    pub fn new() -> Self {
        Self::default()
    }

    /// A job was created or changed: its next fire time may be earlier.
    pub fn jobs_changed(&self) {
        self.jobs.notify_one();
    }

    /// Runs were created or released: something may be deliverable.
    pub fn runs_changed(&self) {
        self.runs.notify_one();
    }

    pub async fn jobs_did_change(&self) {
        self.jobs.notified().await;
    }

    pub async fn runs_did_change(&self) {
        self.runs.notified().await;
    }
}
