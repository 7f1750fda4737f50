//! Monitor-only jobs (DESIGN.md §11.5): a dead-man's switch for work
//! Cronhook does not start. Each fire time makes a run `awaiting`; pings
//! to the job's URL move it on; nothing by `scheduled_for + grace_s`
//! makes it `missed` (reason `ping_missing`).

use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::domain::alert::seconds_at;
use crate::domain::error::FieldError;
use crate::domain::run::{RunStatus, storable};

pub const DEFAULT_GRACE_S: u32 = 300;
/// The most of a ping's body kept, as its run's excerpt.
pub const MAX_PING_BODY: usize = 10 * 1024;
/// Why a run without its ping is missed.
pub const REASON_PING_MISSING: &str = "ping_missing";
/// Why a run that started and never reported its end failed: the work
/// started again (its next `/start`).
pub const REASON_NO_END_PING: &str = "no_end_ping";
/// How early a ping may come for the next fire time (the watched host's
/// clock ahead of ours, the run not made yet) and still be its run.
pub const EARLY_PING_S: i64 = 60;

/// A monitor as a client writes it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = Monitor)]
pub struct MonitorInput {
    /// Seconds after each fire time a ping may come (default 300).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1, maximum = 2678400)]
    pub grace_s: Option<i64>,
}

/// A validated monitor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Monitor {
    pub grace_s: u32,
}

impl MonitorInput {
    pub fn parse(self, field: &str) -> Result<Monitor, FieldError> {
        let grace_s =
            seconds_at(self.grace_s, 1, format!("{field}.grace_s"))?.unwrap_or(DEFAULT_GRACE_S);
        Ok(Monitor { grace_s })
    }
}

impl Monitor {
    pub fn to_input(self) -> MonitorInput {
        MonitorInput {
            grace_s: Some(self.grace_s.into()),
        }
    }

    /// Runs awaiting a ping that were due at or before this are missed.
    pub fn missed_if_due_before(self, now: DateTime<Utc>) -> DateTime<Utc> {
        now - TimeDelta::seconds(i64::from(self.grace_s))
    }
}

/// A fresh ping key: 122 random bits, as 32 hex digits (not an API token:
/// it can only report on its one job).
pub fn new_ping_key() -> String {
    Uuid::new_v4().simple().to_string()
}

/// Whether `text` could be a ping key: anything else is a 404 before the
/// store is asked.
pub fn looks_like_key(text: &str) -> bool {
    text.len() == 32 && text.bytes().all(|b| b.is_ascii_hexdigit())
}

/// What of a ping's body its run keeps: the first [`MAX_PING_BODY`]
/// bytes as text the store can hold (none when empty), and whether it was
/// cut.
pub fn excerpt(body: &[u8]) -> (Option<String>, bool) {
    if body.is_empty() {
        return (None, false);
    }
    let kept = &body[..body.len().min(MAX_PING_BODY)];
    // Cut inside a character: up to the last whole one.
    let text = match std::str::from_utf8(kept) {
        Ok(text) => text.to_string(),
        Err(e) if e.error_len().is_none() => {
            String::from_utf8_lossy(&kept[..e.valid_up_to()]).into_owned()
        }
        Err(_) => String::from_utf8_lossy(kept).into_owned(),
    };
    (Some(storable(text)), body.len() > MAX_PING_BODY)
}

/// What a ping says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ping {
    Start,
    Success,
    Fail,
    /// `/{exit_code}`: 0 is success, anything else a failure.
    Exit(u8),
}

impl Ping {
    /// The ping a URL's last segment names (none for the bare URL).
    pub fn parse(suffix: Option<&str>) -> Result<Self, FieldError> {
        match suffix {
            None | Some("") => Ok(Ping::Success),
            Some("start") => Ok(Ping::Start),
            Some("fail") => Ok(Ping::Fail),
            Some(code) => code.parse::<u8>().map(Ping::Exit).map_err(|_| {
                FieldError::new(
                    "kind",
                    format!("must be start, fail or an exit code 0-255, got {code:?}"),
                )
            }),
        }
    }

    pub fn as_str(self) -> String {
        match self {
            Ping::Start => "start".into(),
            Ping::Success => "success".into(),
            Ping::Fail => "fail".into(),
            Ping::Exit(code) => format!("exit {code}"),
        }
    }

    /// The status a run takes on this ping.
    pub fn status(self) -> RunStatus {
        match self {
            Ping::Start => RunStatus::Running,
            Ping::Success | Ping::Exit(0) => RunStatus::Succeeded,
            Ping::Fail | Ping::Exit(_) => RunStatus::Failed,
        }
    }

    /// Why the run failed, in words; none when it did not.
    pub fn outcome_reason(self) -> Option<String> {
        match self {
            Ping::Fail => Some("the job reported failure".into()),
            Ping::Exit(code) if code != 0 => Some(format!("the job exited with code {code}")),
            _ => None,
        }
    }
}

/// A monitor's run a ping may apply to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpenRun {
    pub id: Uuid,
    pub status: RunStatus,
    pub scheduled_for: DateTime<Utc>,
}

/// What a ping does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PingEffect {
    /// The run takes `status` (`running`, or its end).
    Moves { run_id: Uuid, status: RunStatus },
    /// The next fire time's run, made now with `status`: the ping came
    /// before the scheduler made it.
    Early {
        scheduled_for: DateTime<Utc>,
        status: RunStatus,
    },
    /// No run expected it: a run of cause `ping` is recorded with
    /// `status`, and the job may alert `unexpected`.
    Unexpected { status: RunStatus },
}

/// What a ping does, and the runs it ends as `failed` (`no_end_ping`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PingPlan {
    pub effect: PingEffect,
    /// Runs that started and never reported their end: a new start
    /// means that work is over.
    pub abandoned: Vec<Uuid>,
}

/// Which run a ping applies to, given the job's runs `awaiting` or
/// `running` (oldest fire time first) and its next fire time: a start
/// takes the oldest awaiting run, and ends the runs still running; an end
/// takes the run that started (the newest), else the oldest awaiting
/// one. With none, a ping up to [`EARLY_PING_S`] before the next fire
/// time is that fire time's; anything else was not expected.
pub fn apply(
    ping: Ping,
    open: &[OpenRun],
    next_fire: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> PingPlan {
    let status = ping.status();
    let oldest = |s: RunStatus| open.iter().find(|r| r.status == s);
    let running = || open.iter().filter(|r| r.status == RunStatus::Running);
    let (run, abandoned) = match ping {
        Ping::Start => (
            oldest(RunStatus::Awaiting),
            running().map(|r| r.id).collect(),
        ),
        _ => (
            running()
                .next_back()
                .or_else(|| oldest(RunStatus::Awaiting)),
            Vec::new(),
        ),
    };
    let early = next_fire.filter(|at| *at > now && *at - now <= TimeDelta::seconds(EARLY_PING_S));
    let effect = match (run, early) {
        (Some(run), _) => PingEffect::Moves {
            run_id: run.id,
            status,
        },
        (None, Some(scheduled_for)) => PingEffect::Early {
            scheduled_for,
            status,
        },
        (None, None) => PingEffect::Unexpected { status },
    };
    PingPlan { effect, abandoned }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::instant;

    fn at(s: &str) -> DateTime<Utc> {
        instant::parse(s).unwrap()
    }

    fn run(n: u128, status: RunStatus, due: &str) -> OpenRun {
        OpenRun {
            id: Uuid::from_u128(n),
            status,
            scheduled_for: at(due),
        }
    }

    #[test]
    fn pings_parse_from_the_url() {
        assert_eq!(Ping::parse(None), Ok(Ping::Success));
        assert_eq!(Ping::parse(Some("start")), Ok(Ping::Start));
        assert_eq!(Ping::parse(Some("fail")), Ok(Ping::Fail));
        assert_eq!(Ping::parse(Some("0")), Ok(Ping::Exit(0)));
        assert_eq!(Ping::parse(Some("255")), Ok(Ping::Exit(255)));
        let e = Ping::parse(Some("256")).unwrap_err();
        assert!(e.message.contains("exit code 0-255"), "{e}");
        assert!(Ping::parse(Some("stop")).is_err());
    }

    #[test]
    fn exit_codes_decide_the_outcome() {
        assert_eq!(Ping::Exit(0).status(), RunStatus::Succeeded);
        assert_eq!(Ping::Exit(0).outcome_reason(), None);
        assert_eq!(Ping::Exit(3).status(), RunStatus::Failed);
        assert_eq!(
            Ping::Exit(3).outcome_reason().as_deref(),
            Some("the job exited with code 3")
        );
        assert_eq!(Ping::Fail.status(), RunStatus::Failed);
        assert_eq!(Ping::Start.status(), RunStatus::Running);
    }

    const NOW: &str = "2026-12-04T10:12:00Z";

    fn effect(ping: Ping, open: &[OpenRun], next: Option<&str>) -> PingEffect {
        apply(ping, open, next.map(at), at(NOW)).effect
    }

    #[test]
    fn a_start_takes_the_oldest_awaiting_run_and_ends_what_still_runs() {
        let open = [
            run(1, RunStatus::Running, "2026-12-04T10:00:00Z"),
            run(2, RunStatus::Awaiting, "2026-12-04T10:05:00Z"),
            run(3, RunStatus::Awaiting, "2026-12-04T10:10:00Z"),
        ];
        let plan = apply(Ping::Start, &open, None, at(NOW));
        assert_eq!(
            plan.effect,
            PingEffect::Moves {
                run_id: Uuid::from_u128(2),
                status: RunStatus::Running
            }
        );
        // 10:00's work never said it ended; it started again.
        assert_eq!(plan.abandoned, [Uuid::from_u128(1)]);
    }

    #[test]
    fn an_end_takes_the_run_that_started_else_the_oldest_awaiting() {
        let open = [
            run(1, RunStatus::Running, "2026-12-04T10:00:00Z"),
            run(2, RunStatus::Awaiting, "2026-12-04T10:05:00Z"),
        ];
        let plan = apply(Ping::Exit(1), &open, None, at(NOW));
        assert_eq!(
            plan.effect,
            PingEffect::Moves {
                run_id: Uuid::from_u128(1),
                status: RunStatus::Failed
            }
        );
        assert!(plan.abandoned.is_empty());
        assert_eq!(
            effect(Ping::Success, &open[1..], None),
            PingEffect::Moves {
                run_id: Uuid::from_u128(2),
                status: RunStatus::Succeeded
            }
        );
    }

    #[test]
    fn a_ping_just_before_the_next_fire_time_is_its_run() {
        assert_eq!(
            effect(Ping::Start, &[], Some("2026-12-04T10:12:30Z")),
            PingEffect::Early {
                scheduled_for: at("2026-12-04T10:12:30Z"),
                status: RunStatus::Running
            }
        );
        // More than a minute ahead: not expected.
        assert_eq!(
            effect(Ping::Start, &[], Some("2026-12-04T10:13:01Z")),
            PingEffect::Unexpected {
                status: RunStatus::Running
            }
        );
    }

    #[test]
    fn a_ping_nothing_awaits_is_unexpected() {
        assert_eq!(
            effect(Ping::Success, &[], None),
            PingEffect::Unexpected {
                status: RunStatus::Succeeded
            }
        );
        let started = [run(1, RunStatus::Running, "2026-12-04T10:00:00Z")];
        let plan = apply(Ping::Start, &started, None, at(NOW));
        assert_eq!(
            plan.effect,
            PingEffect::Unexpected {
                status: RunStatus::Running
            }
        );
        assert_eq!(plan.abandoned, [Uuid::from_u128(1)]);
    }

    #[test]
    fn grace_bounds_and_default() {
        assert_eq!(
            MonitorInput::default().parse("monitor").unwrap().grace_s,
            300
        );
        let e = MonitorInput { grace_s: Some(0) }
            .parse("monitor")
            .unwrap_err();
        assert_eq!(e.field, "monitor.grace_s");
        let m = Monitor { grace_s: 60 };
        assert_eq!(
            m.missed_if_due_before(at("2026-12-04T10:01:00Z")),
            at("2026-12-04T10:00:00Z")
        );
    }

    #[test]
    fn a_body_is_kept_up_to_ten_kilobytes() {
        assert_eq!(excerpt(b""), (None, false));
        assert_eq!(excerpt(b"ok"), (Some("ok".into()), false));
        assert_eq!(excerpt(b"a\0b"), (Some("a\u{FFFD}b".into()), false));
        let long = "é".repeat(MAX_PING_BODY);
        let (kept, cut) = excerpt(long.as_bytes());
        assert!(cut);
        assert_eq!(kept.unwrap().len(), MAX_PING_BODY);
    }

    #[test]
    fn keys_are_unguessable_hex() {
        let (a, b) = (new_ping_key(), new_ping_key());
        assert!(looks_like_key(&a) && looks_like_key(&b));
        assert_ne!(a, b);
        assert!(!looks_like_key("../etc"));
    }
}
