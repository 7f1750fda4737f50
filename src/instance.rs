//! This process as an instance of the cluster: registered under its lease
//! owner id, beating every second on the database clock, so that when it
//! dies the others take over its deliveries within `--instance-timeout-s`
//! (DESIGN.md §5), and so that it stops itself from starting requests once
//! it has missed its own beats that long.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::domain::lease::{self, HEARTBEAT_EVERY};
use crate::store::DynStore;

/// The version an instance registers with.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// A fresh lease owner id: the process id and random hex, so that two
/// processes (or one restarted) never share one.
pub fn new_id() -> String {
    let random = uuid::Uuid::new_v4().simple().to_string();
    format!("cronhook-{}-{}", std::process::id(), &random[..8])
}

/// When this process last beat, as it knows it itself.
#[derive(Debug)]
pub struct Liveness {
    start: Instant,
    /// Milliseconds from `start` to the last successful heartbeat.
    last_beat_ms: AtomicU64,
    timeout: Duration,
}

impl Liveness {
    /// Alive from now: registration has just succeeded.
    pub fn new(timeout: Duration) -> Self {
        Self {
            start: Instant::now(),
            last_beat_ms: AtomicU64::new(0),
            timeout,
        }
    }

    fn beat(&self) {
        let ms = self.start.elapsed().as_millis() as u64;
        self.last_beat_ms.fetch_max(ms, Ordering::Relaxed);
    }

    /// False once this process has missed its heartbeats for the timeout:
    /// the others may be sending its runs by then.
    pub fn is_alive(&self) -> bool {
        let since = self.start.elapsed().saturating_sub(Duration::from_millis(
            self.last_beat_ms.load(Ordering::Relaxed),
        ));
        lease::still_alive(since, self.timeout)
    }
}

/// Beats every second until `stop`; registers again when its row is gone.
pub async fn heartbeat(
    store: DynStore,
    id: String,
    liveness: Arc<Liveness>,
    stop: CancellationToken,
) {
    let mut failing = false;
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(HEARTBEAT_EVERY) => {}
        }
        let beat = match store.heartbeat(&id).await {
            Ok(true) => Ok(()),
            Ok(false) => {
                tracing::warn!(instance = %id, "this instance's row was gone; registering again");
                store.register_instance(&id, VERSION).await
            }
            Err(e) => Err(e),
        };
        match beat {
            Ok(()) => {
                liveness.beat();
                if failing {
                    tracing::info!(instance = %id, "heartbeat back");
                    failing = false;
                }
            }
            Err(e) if !failing => {
                tracing::warn!(instance = %id, error = %e, "heartbeat failed; other instances take over this one's deliveries once it has failed for the instance timeout");
                failing = true;
            }
            Err(_) => {}
        }
    }
}
