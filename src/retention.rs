//! The cleaner: deletes finished runs (and their attempts) older than the
//! retention period, and beyond the newest 1,000 of each job, in small
//! batches so that the hot tables stay small at any job rate; events and
//! audit records past their own retention; and Idempotency-Keys older
//! than their 24 hours.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::store::{DynStore, RUNS_KEPT_PER_JOB, StoreResult};

/// Rows per delete statement: short transactions, no long locks.
pub const BATCH: u32 = 1000;
/// How long an instance that stopped beating stays listed.
pub const DEAD_INSTANCES_KEPT: Duration = Duration::from_secs(3600);
/// How often the cleaner looks.
pub const EVERY: Duration = Duration::from_secs(60);

/// One full clean-up: batches until nothing is left to delete. The
/// per-job cap looks at jobs with runs finished within `finished_within`
/// (every job when `None`, as on the first pass).
pub async fn clean(
    store: &DynStore,
    retention: Duration,
    finished_within: Option<Duration>,
) -> StoreResult<u64> {
    let kept = Retention {
        runs: retention,
        events: retention,
        audit: retention,
    };
    clean_all(store, &kept, finished_within).await
}

/// How long finished runs, events and audit records are kept.
#[derive(Debug, Clone, Copy)]
pub struct Retention {
    pub runs: Duration,
    pub events: Duration,
    /// DESIGN §11.9: a year by default.
    pub audit: Duration,
}

/// [`clean`], each kind kept as `kept` says.
pub async fn clean_all(
    store: &DynStore,
    kept: &Retention,
    finished_within: Option<Duration>,
) -> StoreResult<u64> {
    let mut deleted = 0;
    loop {
        let n = store.delete_expired_runs(kept.runs, BATCH).await?;
        deleted += n;
        if n < u64::from(BATCH) {
            break;
        }
        tokio::task::yield_now().await;
    }
    loop {
        let n = store
            .trim_run_history(RUNS_KEPT_PER_JOB, BATCH, finished_within)
            .await?;
        deleted += n;
        if n == 0 {
            break;
        }
        tokio::task::yield_now().await;
    }
    // Instances killed long ago, whose deliveries were taken over.
    deleted += store.delete_dead_instances(DEAD_INSTANCES_KEPT).await?;
    // Runs made in past minutes count against no quota any more.
    deleted += store.forget_runs_made().await?;
    // Dashboard sessions past their end.
    deleted += store.delete_expired_sessions().await?;
    loop {
        let n = store.delete_expired_events(kept.events, BATCH).await?;
        deleted += n;
        if n < u64::from(BATCH) {
            break;
        }
        tokio::task::yield_now().await;
    }
    loop {
        let n = store.delete_expired_audit(kept.audit, BATCH).await?;
        deleted += n;
        if n < u64::from(BATCH) {
            break;
        }
        tokio::task::yield_now().await;
    }
    // Idempotency-Keys past their window answer nothing any more.
    loop {
        let n = store
            .delete_expired_idempotency_keys(crate::domain::idempotency::WINDOW, BATCH)
            .await?;
        deleted += n;
        if n < u64::from(BATCH) {
            break;
        }
        tokio::task::yield_now().await;
    }
    Ok(deleted)
}

pub async fn run(store: DynStore, kept: Retention, shutdown: CancellationToken) {
    // When the last complete pass began: the next one need only look at
    // jobs that finished runs since (with a pass's worth of overlap).
    let mut last_pass: Option<tokio::time::Instant> = None;
    loop {
        let began = tokio::time::Instant::now();
        let within = last_pass.map(|at| at.elapsed() + EVERY);
        match clean_all(&store, &kept, within).await {
            Ok(n) => {
                last_pass = Some(began);
                if n > 0 {
                    tracing::info!(deleted = n, "deleted old runs");
                }
            }
            Err(e) => tracing::warn!(error = %e, "run clean-up failed"),
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(EVERY) => {}
        }
    }
}

/// A duration as people write it (`7d`, `12h`, `1h30m`, `90s`, `2w`:
/// humantime's units), or plain seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        return text
            .parse()
            .map(Duration::from_secs)
            .map_err(|_| format!("{text:?} is too many seconds"));
    }
    humantime::parse_duration(text).map_err(|e| {
        format!("expected a duration such as 7d, 12h, 1h30m or 90s, got {text:?}: {e}")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_durations() {
        assert_eq!(
            parse_duration("7d").unwrap(),
            Duration::from_secs(7 * 86_400)
        );
        assert_eq!(
            parse_duration("12h").unwrap(),
            Duration::from_secs(12 * 3600)
        );
        assert_eq!(parse_duration("30m").unwrap(), Duration::from_secs(1800));
        assert_eq!(parse_duration("90").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("1h30m").unwrap(), Duration::from_secs(5400));
        assert_eq!(
            parse_duration("2w").unwrap(),
            Duration::from_secs(14 * 86_400)
        );
        let e = parse_duration("soon").unwrap_err();
        assert!(e.contains("such as 7d, 12h, 1h30m or 90s"), "{e}");
        assert!(parse_duration("").is_err());
    }
}
