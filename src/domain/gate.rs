//! Dependency gates (DESIGN.md §11.8): at a fire time, a job with
//! `requires` runs only if each job it names has a run that succeeded
//! within `succeeded_within_s` of that fire time (`requires_any`: one of
//! them). Otherwise `skip` records the run `skipped`, reason `dependency`,
//! and `wait` holds it `pending` with `wait_reason: "dependency:<job>"`
//! until the job succeeds or `wait_max_s` passes (`missed`).

use std::collections::HashMap;

use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::domain::alert::seconds_at;
use crate::domain::error::FieldError;
use crate::domain::job::JobId;
use crate::domain::run::RunStatus;

/// The `reason` of a run a gate skipped, or held until it was missed.
pub const REASON: &str = "dependency";
/// The most requirements one job has, both lists together.
pub const MAX_REQUIREMENTS: usize = 32;
pub const DEFAULT_WITHIN_S: u32 = 21_600;
pub const DEFAULT_WAIT_MAX_S: u32 = 7_200;

const WAITING_PREFIX: &str = "dependency:";

/// The `wait_reason` of a run held for job `job`.
pub fn wait_reason(job: &str) -> String {
    format!("{WAITING_PREFIX}{job}")
}

/// The job a held run waits for, from its `wait_reason`.
pub fn waits_for(wait_reason: &str) -> Option<&str> {
    wait_reason.strip_prefix(WAITING_PREFIX)
}

/// What a fire time does when a requirement does not hold.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum GateMode {
    /// Record the run `skipped`, reason `dependency` (the default).
    #[default]
    Skip,
    /// Hold the run until the job succeeds, at most `wait_max_s`.
    Wait,
}

impl GateMode {
    pub fn as_str(self) -> &'static str {
        match self {
            GateMode::Skip => "skip",
            GateMode::Wait => "wait",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [GateMode::Skip, GateMode::Wait]
            .into_iter()
            .find(|m| m.as_str() == s)
    }
}

/// One requirement as a client writes it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RequirementInput {
    /// A job of the same tenant.
    #[schema(example = "extract-orders")]
    pub job: String,
    /// How recent its success must be, before the fire time (default
    /// 21600).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1, maximum = 2678400)]
    pub succeeded_within_s: Option<i64>,
    /// `skip` (the default) or `wait`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<GateMode>,
    /// With `mode: wait`, how long after the fire time the run waits
    /// before it is `missed` (default 7200).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1, maximum = 2678400)]
    pub wait_max_s: Option<i64>,
}

/// One validated requirement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Requirement {
    pub job: JobId,
    pub within_s: u32,
    pub mode: GateMode,
    /// Zero under `skip`.
    pub wait_max_s: u32,
}

/// A job's validated gates: all of `all`, and one of `any` when it has
/// any, in the order written.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Gates {
    pub all: Vec<Requirement>,
    pub any: Vec<Requirement>,
}

/// What a gate does with a run at its fire time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Every requirement holds: the run goes.
    Open,
    /// Recorded `skipped`, reason `dependency`: `on` does not hold.
    Skip { on: JobId },
    /// Held for `on` until `until`.
    Wait { on: JobId, until: DateTime<Utc> },
    /// Held past its `wait_max_s` for `on`: recorded `missed`.
    Missed { on: JobId },
}

impl Verdict {
    /// The status of a run it ends at once: `skipped` or `missed`.
    pub fn ends(&self) -> Option<RunStatus> {
        match self {
            Verdict::Skip { .. } => Some(RunStatus::Skipped),
            Verdict::Missed { .. } => Some(RunStatus::Missed),
            Verdict::Open | Verdict::Wait { .. } => None,
        }
    }

    /// The hold of a run it holds.
    pub fn held(&self) -> Option<Held> {
        match self {
            Verdict::Wait { on, until } => Some(Held {
                on: on.clone(),
                until: *until,
            }),
            _ => None,
        }
    }
}

/// A run held by its gate: for whom (its `wait_reason`), and until when
/// at the latest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Held {
    pub on: JobId,
    pub until: DateTime<Utc>,
}

impl Held {
    pub fn wait_reason(&self) -> String {
        wait_reason(self.on.as_str())
    }

    /// When the watchdog looks at the held run again: at its deadline, or
    /// sooner, so that a success it was not told of (one committed as the
    /// run was made) holds it at most [`RECHECK`] longer.
    pub fn check_at(&self, now: DateTime<Utc>) -> DateTime<Utc> {
        self.until.min(now + RECHECK)
    }
}

/// How often a held run is looked at again, at most.
pub const RECHECK: TimeDelta = TimeDelta::seconds(30);

/// A job's gates with its required jobs' latest successes: what a
/// verdict needs, read once for all of a claim's fire times.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Facts {
    pub gates: Gates,
    pub succeeded: HashMap<String, DateTime<Utc>>,
}

impl Facts {
    pub fn verdict(&self, fire_at: DateTime<Utc>, now: DateTime<Utc>) -> Verdict {
        self.gates
            .verdict(fire_at, now, &|job| self.succeeded.get(job).copied())
    }
}

fn seconds(v: Option<i64>, field: String, default: u32) -> Result<u32, FieldError> {
    Ok(seconds_at(v, 1, field)?.unwrap_or(default))
}

impl RequirementInput {
    fn parse(self, at: &dyn Fn(&str) -> String) -> Result<Requirement, FieldError> {
        let job = JobId::parse(&self.job).map_err(|m| FieldError::new(at("job"), m))?;
        let within_s = seconds(
            self.succeeded_within_s,
            at("succeeded_within_s"),
            DEFAULT_WITHIN_S,
        )?;
        let mode = self.mode.unwrap_or_default();
        let wait_max_s = match mode {
            GateMode::Wait => seconds(self.wait_max_s, at("wait_max_s"), DEFAULT_WAIT_MAX_S)?,
            GateMode::Skip if self.wait_max_s.is_some() => {
                return Err(FieldError::new(
                    at("wait_max_s"),
                    "applies only with mode \"wait\"",
                ));
            }
            GateMode::Skip => 0,
        };
        Ok(Requirement {
            job,
            within_s,
            mode,
            wait_max_s,
        })
    }
}

impl Requirement {
    fn to_input(&self) -> RequirementInput {
        RequirementInput {
            job: self.job.to_string(),
            succeeded_within_s: Some(self.within_s.into()),
            mode: Some(self.mode),
            wait_max_s: (self.mode == GateMode::Wait).then_some(self.wait_max_s.into()),
        }
    }

    /// Whether a success at `last_success` is recent enough for a fire
    /// at `fire_at`.
    fn holds(&self, fire_at: DateTime<Utc>, last_success: Option<DateTime<Utc>>) -> bool {
        last_success.is_some_and(|t| t >= fire_at - TimeDelta::seconds(self.within_s.into()))
    }

    /// The latest a run firing at `fire_at` waits for it, under `wait`.
    pub fn deadline(&self, fire_at: DateTime<Utc>) -> DateTime<Utc> {
        fire_at + TimeDelta::seconds(self.wait_max_s.into())
    }
}

impl Gates {
    /// The gates of `requires` and `requires_any`; each refusal names its
    /// place (`requires[0].job`).
    pub fn parse(
        requires: Option<Vec<RequirementInput>>,
        requires_any: Option<Vec<RequirementInput>>,
    ) -> Result<Gates, FieldError> {
        let mut gates = Gates::default();
        for (name, list) in [("requires", requires), ("requires_any", requires_any)] {
            for (i, input) in list.unwrap_or_default().into_iter().enumerate() {
                let at = |part: &str| format!("{name}[{i}].{part}");
                let requirement = input.parse(&at)?;
                if gates.iter().any(|r| r.job == requirement.job) {
                    return Err(FieldError::new(
                        at("job"),
                        format!("names job {:?} twice", requirement.job.as_str()),
                    ));
                }
                match name {
                    "requires" => gates.all.push(requirement),
                    _ => gates.any.push(requirement),
                }
            }
        }
        let n = gates.all.len() + gates.any.len();
        if n > MAX_REQUIREMENTS {
            return Err(FieldError::new(
                "requires",
                format!("has {n} requirements with requires_any; at most {MAX_REQUIREMENTS}"),
            ));
        }
        Ok(gates)
    }

    pub fn is_empty(&self) -> bool {
        self.all.is_empty() && self.any.is_empty()
    }

    /// Every requirement, `requires` first.
    pub fn iter(&self) -> impl Iterator<Item = &Requirement> {
        self.all.iter().chain(&self.any)
    }

    /// `requires` and `requires_any` as written; none when empty.
    pub fn to_inputs(&self) -> (Option<Vec<RequirementInput>>, Option<Vec<RequirementInput>>) {
        let list = |l: &[Requirement]| {
            (!l.is_empty()).then(|| l.iter().map(Requirement::to_input).collect())
        };
        (list(&self.all), list(&self.any))
    }

    /// The field of requirement `job`, for a refusal.
    pub fn field_of(&self, job: &str) -> String {
        let place = |name: &str, l: &[Requirement]| {
            l.iter()
                .position(|r| r.job.as_str() == job)
                .map(|i| format!("{name}[{i}].job"))
        };
        place("requires", &self.all)
            .or_else(|| place("requires_any", &self.any))
            .unwrap_or_else(|| "requires".into())
    }

    /// The verdict for a run firing at `fire_at`, seen at `now`, given
    /// each named job's latest success (`last_success`).
    pub fn verdict(
        &self,
        fire_at: DateTime<Utc>,
        now: DateTime<Utc>,
        last_success: &dyn Fn(&str) -> Option<DateTime<Utc>>,
    ) -> Verdict {
        let holds = |r: &Requirement| r.holds(fire_at, last_success(r.job.as_str()));
        let unmet: Vec<&Requirement> = self.all.iter().filter(|r| !holds(r)).collect();
        let any_unmet = !self.any.is_empty() && !self.any.iter().any(holds);
        if unmet.is_empty() && !any_unmet {
            return Verdict::Open;
        }
        // A requirement that skips cannot be waited out.
        if let Some(r) = unmet.iter().find(|r| r.mode == GateMode::Skip) {
            return Verdict::Skip { on: r.job.clone() };
        }
        // One of `requires_any` may still succeed while one of them waits.
        let any_waits: Vec<&Requirement> = self
            .any
            .iter()
            .filter(|r| r.mode == GateMode::Wait)
            .collect();
        if any_unmet && any_waits.is_empty() {
            return Verdict::Skip {
                on: self.any[0].job.clone(),
            };
        }
        // Each unmet requirement waits until its own deadline; the group of
        // `requires_any` until the last of its members'.
        let mut waits: Vec<(&JobId, DateTime<Utc>)> = unmet
            .iter()
            .map(|r| (&r.job, r.deadline(fire_at)))
            .collect();
        if any_unmet {
            let last = any_waits.iter().map(|r| r.deadline(fire_at)).max();
            waits.extend(last.map(|until| (&any_waits[0].job, until)));
        }
        // Past the skips, something is unmet and waits: `waits` has it.
        let (Some(&(first, _)), Some(&(passed, until))) =
            (waits.first(), waits.iter().min_by_key(|(_, until)| *until))
        else {
            return Verdict::Open;
        };
        if now >= until {
            return Verdict::Missed { on: passed.clone() };
        }
        Verdict::Wait {
            on: first.clone(),
            until,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn gates(requires: serde_json::Value, any: serde_json::Value) -> Result<Gates, FieldError> {
        Gates::parse(
            serde_json::from_value(requires).unwrap(),
            serde_json::from_value(any).unwrap(),
        )
    }

    fn t(s: &str) -> DateTime<Utc> {
        crate::domain::instant::parse(s).unwrap()
    }

    fn id(s: &str) -> JobId {
        JobId::parse(s).unwrap()
    }

    /// Successes as (job, instant).
    fn succeeded<'a>(
        list: &'a [(&'a str, &'a str)],
    ) -> impl Fn(&str) -> Option<DateTime<Utc>> + 'a {
        move |job| {
            list.iter()
                .filter(|(j, _)| *j == job)
                .map(|(_, at)| t(at))
                .max()
        }
    }

    const FIRE: &str = "2026-12-05T06:00:00Z";

    #[test]
    fn requirements_read_back_as_written_with_their_defaults() {
        let g = gates(
            json!([{"job": "a"}, {"job": "b", "mode": "wait", "succeeded_within_s": 60}]),
            json!([{"job": "c", "mode": "wait", "wait_max_s": 600}]),
        )
        .unwrap();
        assert_eq!(g.all[0].within_s, DEFAULT_WITHIN_S);
        assert_eq!((g.all[0].mode, g.all[0].wait_max_s), (GateMode::Skip, 0));
        assert_eq!(g.all[1].wait_max_s, DEFAULT_WAIT_MAX_S);
        assert_eq!(g.any[0].wait_max_s, 600);
        let (all, any) = g.to_inputs();
        assert_eq!(Gates::parse(all, any).unwrap(), g);
        assert_eq!(g.field_of("c"), "requires_any[0].job");
        assert!(Gates::parse(None, None).unwrap().is_empty());
    }

    #[test]
    fn refusals_name_their_place() {
        let field = |r, a| gates(r, a).unwrap_err().field;
        assert_eq!(
            field(json!([{"job": "no spaces"}]), json!(null)),
            "requires[0].job"
        );
        assert_eq!(
            field(json!([{"job": "a", "succeeded_within_s": 0}]), json!(null)),
            "requires[0].succeeded_within_s"
        );
        assert_eq!(
            field(json!([{"job": "a", "wait_max_s": 60}]), json!(null)),
            "requires[0].wait_max_s"
        );
        assert_eq!(
            field(
                json!(null),
                json!([{"job": "a", "mode": "wait", "wait_max_s": 9999999}])
            ),
            "requires_any[0].wait_max_s"
        );
        assert_eq!(
            field(json!([{"job": "a"}]), json!([{"job": "a"}])),
            "requires_any[0].job"
        );
        let many: Vec<_> = (0..33).map(|n| json!({"job": format!("j{n}")})).collect();
        assert_eq!(field(json!(many), json!(null)), "requires");
    }

    #[test]
    fn a_gate_opens_only_for_a_success_within_the_window_before_the_fire_time() {
        let g = gates(
            json!([{"job": "a", "succeeded_within_s": 3600}]),
            json!(null),
        )
        .unwrap();
        let now = t(FIRE);
        let open = g.verdict(t(FIRE), now, &succeeded(&[("a", "2026-12-05T05:00:00Z")]));
        assert_eq!(open, Verdict::Open);
        let old = g.verdict(t(FIRE), now, &succeeded(&[("a", "2026-12-05T04:59:59Z")]));
        assert_eq!(old, Verdict::Skip { on: id("a") });
        assert_eq!(
            g.verdict(t(FIRE), now, &succeeded(&[])),
            Verdict::Skip { on: id("a") }
        );
    }

    #[test]
    fn requires_needs_all_and_a_skipping_requirement_is_not_waited_for() {
        let g = gates(
            json!([{"job": "a", "mode": "wait"}, {"job": "b"}]),
            json!(null),
        )
        .unwrap();
        let now = t(FIRE);
        let only_a = succeeded(&[("a", "2026-12-05T05:00:00Z")]);
        assert_eq!(
            g.verdict(t(FIRE), now, &only_a),
            Verdict::Skip { on: id("b") }
        );
        let only_b = succeeded(&[("b", "2026-12-05T05:00:00Z")]);
        assert_eq!(
            g.verdict(t(FIRE), now, &only_b),
            Verdict::Wait {
                on: id("a"),
                until: t("2026-12-05T08:00:00Z")
            }
        );
    }

    #[test]
    fn a_wait_holds_until_the_job_succeeds_or_its_wait_max_passes() {
        let g = gates(
            json!([{"job": "a", "mode": "wait", "wait_max_s": 600}]),
            json!(null),
        )
        .unwrap();
        let none = succeeded(&[]);
        let held = Verdict::Wait {
            on: id("a"),
            until: t("2026-12-05T06:10:00Z"),
        };
        assert_eq!(g.verdict(t(FIRE), t(FIRE), &none), held);
        assert_eq!(g.verdict(t(FIRE), t("2026-12-05T06:09:59Z"), &none), held);
        // A success after the fire time opens it.
        let later = succeeded(&[("a", "2026-12-05T06:05:00Z")]);
        assert_eq!(
            g.verdict(t(FIRE), t("2026-12-05T06:05:00Z"), &later),
            Verdict::Open
        );
        assert_eq!(
            g.verdict(t(FIRE), t("2026-12-05T06:10:00Z"), &none),
            Verdict::Missed { on: id("a") }
        );
    }

    #[test]
    fn requires_any_opens_on_one_success_and_waits_for_its_last_deadline() {
        let g = gates(
            json!(null),
            json!([{"job": "a", "mode": "wait", "wait_max_s": 600},
                   {"job": "b", "mode": "wait", "wait_max_s": 1200},
                   {"job": "c"}]),
        )
        .unwrap();
        let b_only = succeeded(&[("b", "2026-12-05T05:30:00Z")]);
        assert_eq!(g.verdict(t(FIRE), t(FIRE), &b_only), Verdict::Open);
        let none = succeeded(&[]);
        assert_eq!(
            g.verdict(t(FIRE), t("2026-12-05T06:15:00Z"), &none),
            Verdict::Wait {
                on: id("a"),
                until: t("2026-12-05T06:20:00Z")
            }
        );
        assert_eq!(
            g.verdict(t(FIRE), t("2026-12-05T06:20:00Z"), &none),
            Verdict::Missed { on: id("a") }
        );
        let skip_only = gates(json!(null), json!([{"job": "c"}, {"job": "d"}])).unwrap();
        assert_eq!(
            skip_only.verdict(t(FIRE), t(FIRE), &none),
            Verdict::Skip { on: id("c") }
        );
    }

    #[test]
    fn the_earliest_deadline_of_all_unmet_requirements_ends_the_wait() {
        let g = gates(
            json!([{"job": "a", "mode": "wait", "wait_max_s": 1200},
                   {"job": "b", "mode": "wait", "wait_max_s": 600}]),
            json!(null),
        )
        .unwrap();
        let none = succeeded(&[]);
        assert_eq!(
            g.verdict(t(FIRE), t(FIRE), &none),
            Verdict::Wait {
                on: id("a"),
                until: t("2026-12-05T06:10:00Z")
            }
        );
        assert_eq!(
            g.verdict(t(FIRE), t("2026-12-05T06:10:00Z"), &none),
            Verdict::Missed { on: id("b") }
        );
        // Once b has succeeded, a's own deadline holds.
        let b = succeeded(&[("b", "2026-12-05T06:01:00Z")]);
        assert_eq!(
            g.verdict(t(FIRE), t("2026-12-05T06:12:00Z"), &b),
            Verdict::Wait {
                on: id("a"),
                until: t("2026-12-05T06:20:00Z")
            }
        );
    }

    #[test]
    fn wait_reasons_name_the_job() {
        assert_eq!(wait_reason("a"), "dependency:a");
        assert_eq!(waits_for("dependency:a"), Some("a"));
        assert_eq!(waits_for("flow:a"), None);
    }
}
