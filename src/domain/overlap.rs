//! What happens to a run over `max_instances` (DESIGN.md §11.1): skipped,
//! or waiting `pending` for a run of the job to end. One rule admits a
//! run, one says how many waiting runs go when room opens; the store runs
//! both under the job's row lock.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::domain::error::FieldError;
use crate::domain::run::RunStatus;

/// `buffer_max` when a job does not say.
pub const DEFAULT_BUFFER_MAX: u32 = 100;
/// The most runs one job may keep waiting (a backfill's ceiling, §11.3).
pub const MAX_BUFFER_MAX: u32 = 10_000;

/// The `wait_reason` of a run waiting for a run of its job to end.
pub const WAIT_OVERLAP: &str = "overlap";

/// A job's overlap policy, as a client names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum OverlapMode {
    /// Over the cap, the run is recorded `skipped` (APScheduler's way).
    #[default]
    Skip,
    /// At most one run waits; more are skipped.
    BufferOne,
    /// Every run waits, up to `buffer_max`; past it, skipped.
    BufferAll,
    /// The oldest run in flight is cancelled (its request aborted) and
    /// the new run goes (Temporal's `CANCEL_OTHER`).
    Replace,
}

/// A job's overlap policy, validated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Overlap {
    #[default]
    Skip,
    BufferOne,
    BufferAll {
        buffer_max: u32,
    },
    Replace,
}

/// Why a run was recorded `skipped`: its `reason`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SkipReason {
    /// The job had `max_instances` runs in flight (overlap `skip`).
    MaxInstances,
    /// As many runs were waiting as the policy keeps.
    BufferFull,
    /// It waited, and the policy became `skip`.
    OverlapSkip,
}

impl SkipReason {
    pub fn as_str(self) -> &'static str {
        match self {
            SkipReason::MaxInstances => "max_instances",
            SkipReason::BufferFull => "buffer_full",
            SkipReason::OverlapSkip => "overlap_skip",
        }
    }
}

/// What becomes of one more run of a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Sent when due.
    Go,
    /// Pending with `wait_reason: "overlap"`, until a run of the job ends.
    Wait,
    /// Sent when due; the oldest run of the job in flight is cancelled.
    Replace,
    Skip(SkipReason),
}

impl Admission {
    /// The run it makes: its status, `wait_reason` and `reason`.
    pub fn run_fields(self) -> (RunStatus, Option<&'static str>, Option<&'static str>) {
        match self {
            Admission::Go | Admission::Replace => (RunStatus::Pending, None, None),
            Admission::Wait => (RunStatus::Pending, Some(WAIT_OVERLAP), None),
            Admission::Skip(why) => (RunStatus::Skipped, None, Some(why.as_str())),
        }
    }
}

/// A job's runs in flight, counted under its row lock: those admitted
/// (pending to be sent, or running) and those waiting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct InFlight {
    pub admitted: u32,
    pub waiting: u32,
}

impl Overlap {
    /// From the request's `overlap` and `buffer_max` (which only
    /// `buffer_all` takes).
    pub fn parse(mode: Option<OverlapMode>, buffer_max: Option<i64>) -> Result<Self, FieldError> {
        let mode = mode.unwrap_or_default();
        match (mode, buffer_max) {
            (OverlapMode::BufferAll, None) => Ok(Overlap::BufferAll {
                buffer_max: DEFAULT_BUFFER_MAX,
            }),
            (OverlapMode::BufferAll, Some(n)) if (1..=i64::from(MAX_BUFFER_MAX)).contains(&n) => {
                Ok(Overlap::BufferAll {
                    buffer_max: n as u32,
                })
            }
            (OverlapMode::BufferAll, Some(n)) => Err(FieldError::new(
                "buffer_max",
                format!("must be between 1 and {MAX_BUFFER_MAX}, got {n}"),
            )),
            (_, Some(_)) => Err(FieldError::new(
                "buffer_max",
                "applies only with overlap \"buffer_all\"",
            )),
            (OverlapMode::Skip, None) => Ok(Overlap::Skip),
            (OverlapMode::BufferOne, None) => Ok(Overlap::BufferOne),
            (OverlapMode::Replace, None) => Ok(Overlap::Replace),
        }
    }

    pub fn mode(self) -> OverlapMode {
        match self {
            Overlap::Skip => OverlapMode::Skip,
            Overlap::BufferOne => OverlapMode::BufferOne,
            Overlap::BufferAll { .. } => OverlapMode::BufferAll,
            Overlap::Replace => OverlapMode::Replace,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Overlap::Skip => "skip",
            Overlap::BufferOne => "buffer_one",
            Overlap::BufferAll { .. } => "buffer_all",
            Overlap::Replace => "replace",
        }
    }

    /// `buffer_max` as shown and stored: only `buffer_all` has one.
    pub fn buffer_max(self) -> Option<u32> {
        match self {
            Overlap::BufferAll { buffer_max } => Some(buffer_max),
            _ => None,
        }
    }

    /// Reads back what [`Self::as_str`] and [`Self::buffer_max`] stored.
    pub fn from_stored(mode: &str, buffer_max: Option<i64>) -> Option<Self> {
        match mode {
            "skip" => Some(Overlap::Skip),
            "buffer_one" => Some(Overlap::BufferOne),
            "buffer_all" => Some(Overlap::BufferAll {
                buffer_max: buffer_max
                    .and_then(|n| u32::try_from(n).ok())
                    .unwrap_or(DEFAULT_BUFFER_MAX),
            }),
            "replace" => Some(Overlap::Replace),
            _ => None,
        }
    }

    /// Whether runs of a job with this policy can wait: then the end of
    /// each of its runs looks for one to release.
    pub fn waits(self) -> bool {
        self.room() > 0
    }

    fn room(self) -> u32 {
        match self {
            Overlap::Skip | Overlap::Replace => 0,
            Overlap::BufferOne => 1,
            Overlap::BufferAll { buffer_max } => buffer_max,
        }
    }
}

/// Admits one more run of a job with `max_instances` and the runs
/// `in_flight`, and counts it there. A run goes while the cap allows and
/// nothing waits (a waiting run is older and goes first); `force` (a
/// manual run's `?force=true`) goes past the cap. Under `replace` a run
/// over the cap goes in place of the oldest in flight, which is cancelled:
/// the count stays.
pub fn admit(
    overlap: Overlap,
    max_instances: u32,
    in_flight: &mut InFlight,
    force: bool,
) -> Admission {
    if force || (in_flight.admitted < max_instances && in_flight.waiting == 0) {
        in_flight.admitted += 1;
        Admission::Go
    } else if overlap == Overlap::Replace {
        Admission::Replace
    } else if overlap == Overlap::Skip {
        Admission::Skip(SkipReason::MaxInstances)
    } else if in_flight.waiting < overlap.room() {
        in_flight.waiting += 1;
        Admission::Wait
    } else {
        Admission::Skip(SkipReason::BufferFull)
    }
}

/// When a job's policy changes from `before` to `after`: how many of its
/// waiting runs may still wait (the oldest), and the reason the others
/// are recorded `skipped` with; `None` when all may.
pub fn trimmed(before: Overlap, after: Overlap) -> Option<(u32, SkipReason)> {
    let most = after.room();
    if most >= before.room() {
        return None;
    }
    let reason = if most == 0 {
        SkipReason::OverlapSkip
    } else {
        SkipReason::BufferFull
    };
    Some((most, reason))
}

/// Under `replace`, once runs were admitted: how many of the job's oldest
/// runs in flight are cancelled, so that `max_instances` stay (counted
/// after the new runs are written, so a run not written cancels nothing).
pub fn replaced(max_instances: u32, in_flight: InFlight) -> u32 {
    in_flight.admitted.saturating_sub(max_instances)
}

/// How many of the waiting runs go now, oldest first: as many as the cap
/// has room for. Asked whenever a run of the job ends, and after runs are
/// admitted (a raised `max_instances` makes room too).
pub fn releasable(max_instances: u32, in_flight: InFlight) -> u32 {
    in_flight
        .waiting
        .min(max_instances.saturating_sub(in_flight.admitted))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts(admitted: u32, waiting: u32) -> InFlight {
        InFlight { admitted, waiting }
    }

    #[test]
    fn skip_records_a_run_over_the_cap_as_skipped() {
        let mut n = counts(0, 0);
        assert_eq!(admit(Overlap::Skip, 1, &mut n, false), Admission::Go);
        assert_eq!(
            admit(Overlap::Skip, 1, &mut n, false),
            Admission::Skip(SkipReason::MaxInstances)
        );
        assert_eq!(n, counts(1, 0));
    }

    #[test]
    fn buffer_one_keeps_one_run_waiting_and_skips_the_rest() {
        let mut n = counts(1, 0);
        assert_eq!(admit(Overlap::BufferOne, 1, &mut n, false), Admission::Wait);
        assert_eq!(
            admit(Overlap::BufferOne, 1, &mut n, false),
            Admission::Skip(SkipReason::BufferFull)
        );
        assert_eq!(n, counts(1, 1));
    }

    #[test]
    fn buffer_all_keeps_up_to_buffer_max_waiting() {
        let policy = Overlap::BufferAll { buffer_max: 3 };
        let mut n = counts(2, 0);
        let admitted: Vec<_> = (0..4).map(|_| admit(policy, 2, &mut n, false)).collect();
        assert_eq!(
            admitted,
            [
                Admission::Wait,
                Admission::Wait,
                Admission::Wait,
                Admission::Skip(SkipReason::BufferFull)
            ]
        );
    }

    #[test]
    fn a_new_run_waits_behind_older_waiting_runs_even_with_room() {
        // A raised cap left room while one waits: the new run queues, and
        // the release that follows sends the oldest first.
        let policy = Overlap::BufferAll { buffer_max: 10 };
        let mut n = counts(0, 1);
        assert_eq!(admit(policy, 2, &mut n, false), Admission::Wait);
        assert_eq!(releasable(2, n), 2);
    }

    #[test]
    fn force_goes_past_the_cap_and_the_queue() {
        let mut n = counts(1, 2);
        assert_eq!(admit(Overlap::BufferOne, 1, &mut n, true), Admission::Go);
        assert_eq!(admit(Overlap::Skip, 1, &mut n, true), Admission::Go);
        assert_eq!(n, counts(3, 2));
    }

    #[test]
    fn an_ended_run_releases_as_many_waiting_runs_as_the_cap_has_room_for() {
        assert_eq!(releasable(1, counts(0, 5)), 1);
        assert_eq!(releasable(3, counts(1, 5)), 2);
        assert_eq!(releasable(3, counts(1, 1)), 1);
        assert_eq!(releasable(1, counts(1, 5)), 0);
        // Past the cap (forced runs): nothing goes until it is below.
        assert_eq!(releasable(1, counts(3, 5)), 0);
        assert_eq!(releasable(2, counts(0, 0)), 0);
    }

    #[test]
    fn an_admission_makes_a_pending_a_waiting_or_a_skipped_run() {
        assert_eq!(Admission::Go.run_fields(), (RunStatus::Pending, None, None));
        assert_eq!(
            Admission::Wait.run_fields(),
            (RunStatus::Pending, Some("overlap"), None)
        );
        assert_eq!(
            Admission::Skip(SkipReason::BufferFull).run_fields(),
            (RunStatus::Skipped, None, Some("buffer_full"))
        );
    }

    #[test]
    fn buffer_max_is_only_for_buffer_all_and_within_bounds() {
        assert_eq!(Overlap::parse(None, None), Ok(Overlap::Skip));
        assert_eq!(
            Overlap::parse(Some(OverlapMode::BufferAll), None),
            Ok(Overlap::BufferAll { buffer_max: 100 })
        );
        assert_eq!(
            Overlap::parse(Some(OverlapMode::BufferAll), Some(0))
                .unwrap_err()
                .to_string(),
            "buffer_max: must be between 1 and 10000, got 0"
        );
        assert_eq!(
            Overlap::parse(Some(OverlapMode::BufferOne), Some(5))
                .unwrap_err()
                .to_string(),
            "buffer_max: applies only with overlap \"buffer_all\""
        );
    }

    #[test]
    fn the_stored_policy_reads_back() {
        for policy in [
            Overlap::Skip,
            Overlap::BufferOne,
            Overlap::BufferAll { buffer_max: 7 },
            Overlap::Replace,
        ] {
            let back = Overlap::from_stored(policy.as_str(), policy.buffer_max().map(i64::from));
            assert_eq!(back, Some(policy));
        }
        assert_eq!(Overlap::from_stored("cancel_other", None), None);
    }

    #[test]
    fn a_smaller_buffer_keeps_its_oldest_waiting_runs_and_skips_the_rest() {
        let all = |buffer_max| Overlap::BufferAll { buffer_max };
        assert_eq!(
            trimmed(all(5), Overlap::Skip),
            Some((0, SkipReason::OverlapSkip))
        );
        assert_eq!(
            trimmed(all(5), Overlap::BufferOne),
            Some((1, SkipReason::BufferFull))
        );
        assert_eq!(trimmed(all(5), all(2)), Some((2, SkipReason::BufferFull)));
        assert_eq!(trimmed(all(5), all(5)), None);
        assert_eq!(trimmed(Overlap::BufferOne, all(5)), None);
        assert_eq!(trimmed(Overlap::Skip, Overlap::BufferOne), None);
    }

    #[test]
    fn replace_sends_a_run_over_the_cap_in_place_of_the_oldest() {
        let mut n = counts(0, 0);
        assert_eq!(admit(Overlap::Replace, 1, &mut n, false), Admission::Go);
        assert_eq!(
            admit(Overlap::Replace, 1, &mut n, false),
            Admission::Replace
        );
        assert_eq!(
            admit(Overlap::Replace, 1, &mut n, false),
            Admission::Replace
        );
        // One cancelled for each that went: still one in flight.
        assert_eq!(n, counts(1, 0));
        assert_eq!(
            Admission::Replace.run_fields(),
            (RunStatus::Pending, None, None)
        );
        assert_eq!(replaced(1, counts(3, 0)), 2);
        assert_eq!(replaced(2, counts(2, 0)), 0);
        // Forced, it goes beside the others.
        assert_eq!(admit(Overlap::Replace, 1, &mut n, true), Admission::Go);
        assert_eq!(n, counts(2, 0));
        // Nothing waits under replace: runs that did are skipped.
        assert!(!Overlap::Replace.waits());
        assert_eq!(
            trimmed(Overlap::BufferOne, Overlap::Replace),
            Some((0, SkipReason::OverlapSkip))
        );
        assert_eq!(
            Overlap::from_stored("replace", None),
            Some(Overlap::Replace)
        );
        assert_eq!(
            Overlap::parse(Some(OverlapMode::Replace), Some(3))
                .unwrap_err()
                .field,
            "buffer_max"
        );
    }
}
