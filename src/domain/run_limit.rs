//! Run limits (DESIGN.md §11.3): a job that stops after `max_runs` runs,
//! counted as Temporal counts a schedule's remaining actions, and what
//! becomes of it then.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::domain::error::FieldError;
use crate::domain::run::RunStatus;

/// The largest `max_runs` (a 32-bit count in both databases).
pub const MAX_RUNS_LIMIT: i64 = i32::MAX as i64;

/// What becomes of a job once completed and its last run has ended
/// (EventBridge's `ActionAfterCompletion`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum OnComplete {
    /// Kept, `completed`, with its runs (the default).
    #[default]
    Keep,
    /// Deleted, with its runs (event `job.deleted`).
    Delete,
}

impl OnComplete {
    pub fn as_str(self) -> &'static str {
        match self {
            OnComplete::Keep => "keep",
            OnComplete::Delete => "delete",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "keep" => Some(OnComplete::Keep),
            "delete" => Some(OnComplete::Delete),
            _ => None,
        }
    }
}

/// `max_runs` as a client writes it: null for no limit, else at least 1.
pub fn parse_max_runs(given: Option<i64>) -> Result<Option<u32>, FieldError> {
    match given {
        None => Ok(None),
        Some(n) if (1..=MAX_RUNS_LIMIT).contains(&n) => Ok(Some(n as u32)),
        Some(n) => Err(FieldError::new(
            "max_runs",
            format!("must be between 1 and {MAX_RUNS_LIMIT} (or null for no limit), got {n}"),
        )),
    }
}

/// Whether a run the scheduler makes counts toward `max_runs`: one that
/// is sent, now or once released from waiting. Skipped and missed runs do
/// not; manual and backfill runs are not the scheduler's, so never count.
pub fn counts(status: RunStatus) -> bool {
    status == RunStatus::Pending
}

/// Runs left before the job completes; `None` without a limit.
pub fn remaining(max_runs: Option<u32>, counted: u32) -> Option<u32> {
    max_runs.map(|most| most.saturating_sub(counted))
}

/// A job's count of runs and its limit, before and after a change of its
/// definition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LimitChange {
    /// Runs counted before the change, and the limit then.
    pub counted: u32,
    pub before: Option<u32>,
    /// The limit the change asks for.
    pub after: Option<u32>,
}

impl LimitChange {
    /// Whether the count starts again from zero: a limit given to a job
    /// that had none counts the runs from then on (the count means nothing
    /// without a limit, and is kept at zero).
    pub fn restarts_count(self) -> bool {
        self.before.is_none() || self.after.is_none()
    }

    /// The count once changed.
    pub fn counted_after(self) -> u32 {
        if self.restarts_count() {
            0
        } else {
            self.counted
        }
    }

    /// Whether the limit was reached before the change.
    pub fn was_reached(self) -> bool {
        remaining(self.before, self.counted) == Some(0)
    }

    /// Whether it is reached after it: a limit lowered to the runs already
    /// made completes the job.
    pub fn is_reached(self) -> bool {
        remaining(self.after, self.counted_after()) == Some(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(counted: u32, before: Option<u32>, after: Option<u32>) -> LimitChange {
        LimitChange {
            counted,
            before,
            after,
        }
    }

    #[test]
    fn max_runs_is_at_least_one_or_null() {
        assert_eq!(parse_max_runs(None), Ok(None));
        assert_eq!(parse_max_runs(Some(1)), Ok(Some(1)));
        assert_eq!(
            parse_max_runs(Some(MAX_RUNS_LIMIT)),
            Ok(Some(i32::MAX as u32))
        );
        for bad in [0, -1, MAX_RUNS_LIMIT + 1] {
            let e = parse_max_runs(Some(bad)).unwrap_err();
            assert_eq!(e.field, "max_runs");
            assert!(e.message.contains(&bad.to_string()), "{e}");
        }
    }

    #[test]
    fn only_runs_that_are_sent_count() {
        assert!(counts(RunStatus::Pending));
        for status in [RunStatus::Skipped, RunStatus::Missed] {
            assert!(!counts(status), "{status:?}");
        }
    }

    #[test]
    fn remaining_is_the_limit_less_the_count_never_below_zero() {
        assert_eq!(remaining(None, 7), None);
        assert_eq!(remaining(Some(3), 1), Some(2));
        assert_eq!(remaining(Some(3), 3), Some(0));
        assert_eq!(remaining(Some(3), 5), Some(0));
    }

    #[test]
    fn a_new_limit_counts_from_zero_and_a_changed_one_keeps_the_count() {
        assert_eq!(change(9, None, Some(3)).counted_after(), 0);
        assert!(!change(9, None, Some(3)).is_reached());
        assert_eq!(change(2, Some(3), Some(5)).counted_after(), 2);
        assert_eq!(change(2, Some(3), None).counted_after(), 0);
    }

    #[test]
    fn lowering_the_limit_to_the_count_reaches_it_and_raising_it_lifts_it() {
        assert!(change(2, Some(5), Some(2)).is_reached());
        assert!(change(2, Some(5), Some(1)).is_reached());
        assert!(!change(2, Some(5), Some(3)).is_reached());
        let raised = change(3, Some(3), Some(4));
        assert!(raised.was_reached() && !raised.is_reached());
        let removed = change(3, Some(3), None);
        assert!(removed.was_reached() && !removed.is_reached());
    }
}
