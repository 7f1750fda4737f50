//! In-process wake-up signals. The scheduler waits on `jobs`, the
//! dispatcher on `runs`; a signal sent while nobody waits is kept (one
//! permit), so a change made just before a loop goes to sleep still wakes
//! it. Event streams, any number of them, watch `events`. Across
//! PostgreSQL instances, `NOTIFY` feeds the same signals.

use tokio::sync::{Notify, watch};

use crate::aborts::Aborts;

#[derive(Debug)]
pub struct Wakeups {
    jobs: Notify,
    runs: Notify,
    /// Flow keys whose waiting runs may go (§11.1).
    flows: Notify,
    /// Counts writes of events: each stream sees that it moved.
    events: watch::Sender<u64>,
    /// Requests of runs that a cancel aborts.
    pub aborts: Aborts,
}

impl Default for Wakeups {
    fn default() -> Self {
        Self {
            jobs: Notify::new(),
            runs: Notify::new(),
            flows: Notify::new(),
            events: watch::Sender::new(0),
            aborts: Aborts::default(),
        }
    }
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

    /// A flow key was made due: the flow pass admits its runs.
    pub fn flows_changed(&self) {
        self.flows.notify_one();
    }

    pub async fn flows_did_change(&self) {
        self.flows.notified().await;
    }

    /// Events were written: every stream reads on.
    pub fn events_changed(&self) {
        self.events.send_modify(|n| *n = n.wrapping_add(1));
    }

    pub async fn jobs_did_change(&self) {
        self.jobs.notified().await;
    }

    pub async fn runs_did_change(&self) {
        self.runs.notified().await;
    }

    /// A receiver that sees each later [`events_changed`](Self::events_changed).
    pub fn watch_events(&self) -> watch::Receiver<u64> {
        self.events.subscribe()
    }
}
