//! A job's lifecycle (DESIGN.md §3, "Pause / resume", "Replace and
//! modify", "Run now"): every change a client asks for, decided in one
//! place from the stored job and `now`. The store runs [`decide`] with the
//! job's row locked and writes what it answers; handlers only parse.

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use crate::domain::error::FieldError;
use crate::domain::job::{
    Job, JobDefinition, JobInput, JobSpec, ParseContext, PauseNote, Schedule,
};
use crate::domain::json::from_value;
use crate::domain::run::RunStatus;
use crate::domain::run_limit::LimitChange;
use crate::domain::trigger::{Binding, TriggerInput};

/// A change to one job, as a client asked for it.
#[derive(Debug, Clone)]
pub enum JobCommand {
    /// `POST /v1/jobs`: a new job; one that exists is a conflict.
    Create {
        spec: JobSpec,
        /// The new job's signing secret unless the spec chose one.
        secret: String,
    },
    /// `PUT /v1/jobs/{id}`: create or replace the whole definition.
    Replace {
        spec: JobSpec,
        /// The trigger as given, to tell an unchanged one from a new one.
        trigger: Box<TriggerInput>,
        /// The signing secret, should the job be new and the spec not
        /// choose one.
        secret: String,
    },
    /// `PATCH /v1/jobs/{id}`: a JSON Merge Patch of the job.
    Patch(Map<String, Value>),
    /// Until resumed, or until the note's `until` (§11.9).
    Pause(PauseNote),
    Resume,
    /// The scheduler's resume of a job whose timed pause has ended: from
    /// its `paused_until`, and only if that is still the job's pause.
    ResumeDue,
}

/// What the store writes.
#[derive(Debug, Clone, PartialEq)]
pub enum JobChange {
    Insert {
        definition: JobDefinition,
        schedule: Schedule,
        secret: String,
    },
    /// A new definition; the schedule too when it changes (`None` keeps
    /// the stored one).
    Update {
        definition: JobDefinition,
        schedule: Option<Schedule>,
        /// The count of runs toward `max_runs` starts again at zero: a
        /// limit given or removed (§11.3).
        restart_count: bool,
        /// A signing secret the client chose; `None` keeps the job's.
        secret: Option<String>,
        /// With a new schedule: the pause's note (none unless paused).
        pause: PauseNote,
    },
    /// Nothing to write (pausing a paused job, resuming a scheduled one).
    Unchanged,
}

/// Whether `change` to `job` leaves it as it is: the same definition,
/// schedule and secret (a `PUT` of what is stored).
pub fn changes_nothing(job: &Job, change: &JobChange) -> bool {
    match change {
        JobChange::Unchanged => true,
        JobChange::Insert { .. } => false,
        JobChange::Update {
            definition,
            schedule,
            restart_count,
            secret,
            ..
        } => {
            *definition == job.definition
                && schedule.is_none_or(|s| s == job.schedule)
                && !restart_count
                && secret.is_none()
        }
    }
}

/// Why a command is refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Refusal {
    #[error("no such job")]
    NotFound,
    /// Not in the job's present state (pausing a completed job).
    #[error("{0}")]
    Conflict(String),
    #[error(transparent)]
    Invalid(#[from] FieldError),
    /// The tenant holds or made its most of something (`domain::quota`):
    /// why, and in how many seconds to try again.
    #[error("{0}")]
    QuotaReached(String, u32),
}

/// `command` with the trigger it gives bound to its job (§11.4): `H`
/// hashed from the job's seed, its calendars read; a missing calendar is
/// refused, naming the field.
pub fn bound(command: &JobCommand, binding: &Binding) -> Result<JobCommand, Refusal> {
    let mut command = command.clone();
    if let JobCommand::Create { spec, .. } | JobCommand::Replace { spec, .. } = &mut command {
        let trigger = std::mem::replace(
            &mut spec.definition.trigger,
            crate::domain::trigger::Trigger::Date(crate::domain::trigger::DateTrigger {
                run_at: DateTime::<Utc>::MIN_UTC,
            }),
        );
        spec.definition.trigger = trigger.bind(binding, "trigger")?;
    }
    Ok(command)
}

/// Fields a PATCH may change but not remove.
const NOT_NULLABLE: [&str; 6] = [
    "trigger",
    "target",
    "coalesce",
    "max_instances",
    "retry",
    "paused",
];

/// Decides what `command` does to job `id`, given the stored job
/// (`None`: there is none) and the parse context (its `now` is the
/// instant the change takes effect).
pub fn decide(
    id: &str,
    existing: Option<&Job>,
    command: &JobCommand,
    ctx: ParseContext,
) -> Result<JobChange, Refusal> {
    let now = ctx.now;
    match (command, existing) {
        (JobCommand::Create { .. }, Some(_)) => Err(Refusal::Conflict(format!(
            "a job with id {id:?} already exists"
        ))),
        // `/v1/jobs/bulk/{action}` are the bulk actions (§11.9): a job
        // of that id could not be paused or run by its path.
        (JobCommand::Create { .. } | JobCommand::Replace { .. }, None) if id == "bulk" => {
            Err(FieldError::new(
                "id",
                "\"bulk\" is reserved: /v1/jobs/bulk/{action} are the bulk actions",
            )
            .into())
        }
        (JobCommand::Create { spec, secret } | JobCommand::Replace { spec, secret, .. }, None) => {
            Ok(JobChange::Insert {
                definition: spec.definition.clone(),
                schedule: spec.initial_schedule(now),
                secret: spec
                    .secret
                    .as_ref()
                    .map_or_else(|| secret.clone(), |s| s.as_str().to_string()),
            })
        }
        (JobCommand::Replace { spec, trigger, .. }, Some(job)) => {
            replace(job, spec.clone(), trigger, now)
        }
        (_, None) => Err(Refusal::NotFound),
        (JobCommand::Patch(patch), Some(job)) => {
            let (spec, trigger) = apply_patch(job, patch, ctx)?;
            replace(job, spec, &trigger, now)
        }
        (JobCommand::Pause(note), Some(job)) => match job.schedule {
            Schedule::Completed => Err(completed(id, "pause")),
            Schedule::Paused if job.pause == *note => Ok(JobChange::Unchanged),
            // A new end or reason for a paused job: the note changes.
            Schedule::Paused | Schedule::Scheduled { .. } => Ok(JobChange::Update {
                definition: job.definition.clone(),
                schedule: Some(Schedule::Paused),
                restart_count: false,
                secret: None,
                pause: note.clone(),
            }),
        },
        (JobCommand::Resume, Some(job)) => match job.schedule {
            Schedule::Completed => Err(completed(id, "resume")),
            Schedule::Scheduled { .. } => Ok(JobChange::Unchanged),
            Schedule::Paused => Ok(JobChange::Update {
                definition: job.definition.clone(),
                schedule: Some(job.definition.resumed_schedule(now)),
                restart_count: false,
                secret: None,
                pause: PauseNote::default(),
            }),
        },
        (JobCommand::ResumeDue, Some(job)) => match (job.schedule, job.pause.until) {
            // Resumed from the pause's end, not from the pass that saw it:
            // a fire time after `until` is due even if the pass was late.
            (Schedule::Paused, Some(until)) if until <= now => Ok(JobChange::Update {
                definition: job.definition.clone(),
                schedule: Some(job.definition.resumed_schedule(until)),
                restart_count: false,
                secret: None,
                pause: PauseNote::default(),
            }),
            // Resumed, re-paused or paused longer meanwhile.
            _ => Ok(JobChange::Unchanged),
        },
    }
}

fn completed(id: &str, verb: &str) -> Refusal {
    Refusal::Conflict(format!("job {id} is completed; there is nothing to {verb}"))
}

/// PUT on an existing job, and a PATCH once merged: the definition is
/// replaced; the schedule follows the rules below.
fn replace(
    job: &Job,
    mut spec: JobSpec,
    trigger: &TriggerInput,
    now: DateTime<Utc>,
) -> Result<JobChange, Refusal> {
    // A monitor's runs wait for pings, a sending job's for the
    // dispatcher: neither kind of run could become the other (§11.5).
    if job.definition.monitor.is_some() != spec.definition.monitor.is_some() {
        let (was, is) = if job.definition.monitor.is_some() {
            ("monitor-only", "a job that sends requests")
        } else {
            ("a job that sends requests", "monitor-only")
        };
        return Err(Refusal::Conflict(format!(
            "job {} is {was} and cannot become {is}: delete it and create it again",
            job.id
        )));
    }
    // An unchanged trigger keeps the stored one, so an interval given
    // without start_at keeps its anchor (its grid).
    let same_trigger = trigger.describes(&job.definition.trigger);
    if same_trigger {
        spec.definition.trigger = job.definition.trigger.clone();
    }
    let limit = LimitChange {
        counted: job.runs_counted,
        before: job.definition.max_runs,
        after: spec.definition.max_runs,
    };
    let schedule = match job.schedule {
        // A limit lowered to the runs already counted completes the job.
        _ if limit.is_reached() => {
            (job.schedule != Schedule::Completed).then_some(Schedule::Completed)
        }
        // A completed job's only ways back are a new trigger and a limit
        // raised past the runs it counted.
        Schedule::Completed if spec.paused && same_trigger && !limit.was_reached() => {
            return Err(completed(job.id.as_str(), "pause"));
        }
        Schedule::Paused if spec.paused => None,
        _ if spec.paused => Some(Schedule::Paused),
        _ if spec.next_run_at.is_some() || !same_trigger => Some(spec.initial_schedule(now)),
        // Un-pausing by replacement is a resume: what fell due while
        // paused is not delivered; nor is what fell due after a limit
        // completed the job.
        Schedule::Paused => Some(spec.definition.resumed_schedule(now)),
        Schedule::Completed if limit.was_reached() => Some(spec.definition.resumed_schedule(now)),
        Schedule::Scheduled { .. } | Schedule::Completed => None,
    };
    Ok(JobChange::Update {
        definition: spec.definition,
        schedule,
        restart_count: limit.restarts_count() && job.runs_counted > 0,
        secret: spec.secret.map(|s| s.as_str().to_string()),
        pause: PauseNote::default(),
    })
}

/// The job with `patch` merged in (RFC 7396), validated as a whole, and
/// the trigger as it now reads. A `trigger` that names a `type` replaces
/// the stored one whole; one that does not merges into it.
fn apply_patch(
    job: &Job,
    patch: &Map<String, Value>,
    ctx: ParseContext,
) -> Result<(JobSpec, TriggerInput), Refusal> {
    if let Some(given) = patch.get("id")
        && given.as_str() != Some(job.id.as_str())
    {
        return Err(
            FieldError::new("id", "differs from the path's id; a job's id cannot change").into(),
        );
    }
    for field in NOT_NULLABLE {
        if patch.get(field) == Some(&Value::Null) {
            return Err(FieldError::new(field, "may not be null").into());
        }
    }
    // The patch's own shape first: a field the job does not have is an
    // error even as a removal (`{"bogus": null}`). A header set to null is
    // a removal, which the header map's type cannot say.
    let mut shape = Value::Object(patch.clone());
    if let Some(headers) = shape
        .pointer_mut("/target/headers")
        .and_then(Value::as_object_mut)
    {
        headers.retain(|_, value| !value.is_null());
    }
    from_value::<JobInput>(&shape)?;
    let mut document = serde_json::to_value(job.to_input())
        .map_err(|e| FieldError::new("", format!("the stored job cannot be written: {e}")))?;
    // A new overlap policy other than `buffer_all` leaves the stored
    // `buffer_max` behind (it is that policy's alone), unless the patch
    // names one, which is then refused as it would be on a create.
    if patch.get("overlap").is_some_and(|o| o != "buffer_all")
        && !patch.contains_key("buffer_max")
        && let Value::Object(doc) = &mut document
    {
        doc.remove("buffer_max");
    }
    for (key, value) in patch {
        let slot = &mut document[key.as_str()];
        match (key.as_str(), value) {
            ("trigger", Value::Object(trigger)) if trigger.contains_key("type") => {
                *slot = value.clone();
            }
            (_, Value::Null) => {
                if let Value::Object(doc) = &mut document {
                    doc.remove(key);
                }
            }
            _ => json_patch::merge(slot, value),
        }
    }
    let input: JobInput = from_value(&document)?;
    let trigger = input
        .trigger
        .clone()
        .ok_or_else(|| FieldError::new("trigger", "is required"))?;
    Ok((input.parse(ctx)?, trigger))
}

/// Whether a run may be sent again (`POST /v1/runs/{id}/retry`): only a
/// failed one.
pub fn may_retry(status: RunStatus) -> Result<(), Refusal> {
    if status == RunStatus::Failed {
        Ok(())
    } else {
        Err(Refusal::Conflict(format!(
            "only a failed run can be sent again; this one is {}",
            status.as_str()
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::instant;
    use crate::domain::job::JobId;
    use crate::domain::network_policy::NetworkPolicy;
    use serde_json::json;

    fn t(s: &str) -> DateTime<Utc> {
        instant::parse(s).unwrap()
    }

    const NOW: &str = "2026-11-23T10:00:30Z";

    fn ctx() -> ParseContext {
        ParseContext {
            now: t(NOW),
            network_policy: NetworkPolicy::default(),
            binding: None,
        }
    }

    fn spec(v: Value) -> JobSpec {
        from_value::<JobInput>(&v).unwrap().parse(ctx()).unwrap()
    }

    fn body(extra: Value) -> Value {
        let mut v = json!({
            "trigger": {"type": "interval", "every_s": 60, "start_at": "2026-11-23T09:00:00Z"},
            "target": {"url": "http://x.test/hook", "body": {"a": 1}, "headers": {"x-team": "data"}}
        });
        json_patch::merge(&mut v, &extra);
        v
    }

    /// A stored job made from `body` with this schedule.
    fn job(v: Value, schedule: Schedule) -> Job {
        Job {
            id: JobId::parse("j").unwrap(),
            definition: spec(v).definition,
            schedule,
            runs_counted: 0,
            created_at: t("2026-11-01T00:00:00Z"),
            updated_at: t("2026-11-01T00:00:00Z"),
            last_run: None,
            ping_key: None,
            pause: Default::default(),
        }
    }

    fn scheduled(at: &str) -> Schedule {
        Schedule::Scheduled { next_run_at: t(at) }
    }

    fn create(v: Value) -> JobCommand {
        JobCommand::Create {
            spec: spec(v),
            secret: "whsec_new".into(),
        }
    }

    fn replace(v: Value) -> JobCommand {
        let trigger = from_value::<JobInput>(&v).unwrap().trigger.unwrap();
        JobCommand::Replace {
            spec: spec(v),
            trigger: Box::new(trigger),
            secret: "whsec_new".into(),
        }
    }

    fn patch(v: Value) -> JobCommand {
        JobCommand::Patch(v.as_object().unwrap().clone())
    }

    fn run(existing: Option<&Job>, command: JobCommand) -> Result<JobChange, Refusal> {
        decide("j", existing, &command, ctx())
    }

    fn schedule_of(change: Result<JobChange, Refusal>) -> Option<Schedule> {
        match change.unwrap() {
            JobChange::Insert { schedule, .. } => Some(schedule),
            JobChange::Update { schedule, .. } => schedule,
            JobChange::Unchanged => None,
        }
    }

    fn definition_of(change: Result<JobChange, Refusal>) -> JobDefinition {
        match change.unwrap() {
            JobChange::Insert { definition, .. } | JobChange::Update { definition, .. } => {
                definition
            }
            JobChange::Unchanged => panic!("unchanged"),
        }
    }

    // --- Create -----------------------------------------------------------

    #[test]
    fn create_schedules_from_the_trigger_and_keeps_its_secret() {
        let change = run(None, create(body(json!({})))).unwrap();
        let JobChange::Insert {
            schedule, secret, ..
        } = change
        else {
            panic!("{change:?}")
        };
        assert_eq!(schedule, scheduled("2026-11-23T10:01:00Z"));
        assert_eq!(secret, "whsec_new");
    }

    #[test]
    fn a_chosen_secret_is_the_new_job_s_and_a_replace_or_patch_sets_it() {
        const CHOSEN: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        let with = body(json!({"secret": CHOSEN}));
        let Ok(JobChange::Insert { secret, .. }) = run(None, create(with.clone())) else {
            panic!("not an insert")
        };
        assert_eq!(secret, CHOSEN);
        let stored = job(body(json!({})), scheduled("2026-11-23T10:01:00Z"));
        let secret_of = |change| match change {
            Ok(JobChange::Update { secret, .. }) => secret,
            other => panic!("{other:?}"),
        };
        assert_eq!(
            secret_of(run(Some(&stored), replace(with))).as_deref(),
            Some(CHOSEN)
        );
        assert_eq!(
            secret_of(run(Some(&stored), replace(body(json!({}))))),
            None
        );
        assert_eq!(
            secret_of(run(Some(&stored), patch(json!({"secret": CHOSEN})))).as_deref(),
            Some(CHOSEN)
        );
        assert_eq!(
            secret_of(run(Some(&stored), patch(json!({"name": "n"})))),
            None
        );
    }

    #[test]
    fn create_paused_forced_or_already_over() {
        assert_eq!(
            schedule_of(run(None, create(body(json!({"paused": true}))))),
            Some(Schedule::Paused)
        );
        assert_eq!(
            schedule_of(run(
                None,
                create(body(json!({"next_run_at": "2026-11-23T10:00:00Z"})))
            )),
            Some(scheduled("2026-11-23T10:00:00Z"))
        );
        assert_eq!(
            schedule_of(run(
                None,
                create(body(json!({"trigger": {"end_at": "2026-11-23T09:30:00Z"}})))
            )),
            Some(Schedule::Completed)
        );
    }

    #[test]
    fn create_of_an_existing_id_is_a_conflict() {
        let stored = job(body(json!({})), scheduled("2026-11-23T10:01:00Z"));
        assert!(matches!(
            run(Some(&stored), create(body(json!({})))),
            Err(Refusal::Conflict(m)) if m.contains("already exists")
        ));
    }

    #[test]
    fn the_bulk_path_s_id_is_reserved_for_new_jobs() {
        for command in [create(body(json!({}))), replace(body(json!({})))] {
            let Err(Refusal::Invalid(e)) = decide("bulk", None, &command, ctx()) else {
                panic!("a new job called bulk is refused");
            };
            assert_eq!(e.field, "id");
        }
    }

    // --- Pause / resume ---------------------------------------------------

    fn note(until: &str, reason: &str) -> PauseNote {
        PauseNote {
            until: Some(t(until)),
            reason: Some(reason.into()),
        }
    }

    #[test]
    fn a_timed_pause_keeps_its_note_and_a_new_one_replaces_it() {
        let s = job(body(json!({})), scheduled("2026-11-23T10:01:00Z"));
        let window = note("2026-11-23T12:00:00Z", "migration");
        let Ok(JobChange::Update {
            schedule, pause, ..
        }) = run(Some(&s), JobCommand::Pause(window.clone()))
        else {
            panic!("a scheduled job is paused");
        };
        assert_eq!(
            (schedule, pause.clone()),
            (Some(Schedule::Paused), window.clone())
        );
        let paused = Job {
            pause: window.clone(),
            ..job(body(json!({})), Schedule::Paused)
        };
        assert_eq!(
            run(Some(&paused), JobCommand::Pause(window)),
            Ok(JobChange::Unchanged)
        );
        let longer = note("2026-11-23T14:00:00Z", "migration, longer");
        assert!(matches!(
            run(Some(&paused), JobCommand::Pause(longer.clone())),
            Ok(JobChange::Update { pause, .. }) if pause == longer
        ));
        // A resume, by hand or by replacing the job, clears the note.
        assert!(matches!(
            run(Some(&paused), JobCommand::Resume),
            Ok(JobChange::Update { pause, .. }) if pause == PauseNote::default()
        ));
    }

    #[test]
    fn a_timed_pause_ends_from_its_until_and_only_its_own() {
        let paused_until = |until: &str| Job {
            pause: note(until, "window"),
            ..job(body(json!({})), Schedule::Paused)
        };
        // Ended at 10:00:00, seen at 10:00:30: the 10:00 fire is due.
        assert_eq!(
            schedule_of(run(
                Some(&paused_until("2026-11-23T10:00:00Z")),
                JobCommand::ResumeDue
            )),
            Some(scheduled("2026-11-23T10:00:00Z"))
        );
        assert_eq!(
            schedule_of(run(
                Some(&paused_until("2026-11-23T09:59:10Z")),
                JobCommand::ResumeDue
            )),
            Some(scheduled("2026-11-23T10:00:00Z"))
        );
        // Not yet over, paused with no end, or resumed meanwhile.
        for job in [
            paused_until("2026-11-23T10:00:31Z"),
            job(body(json!({})), Schedule::Paused),
            job(body(json!({})), scheduled("2026-11-23T10:01:00Z")),
        ] {
            assert_eq!(
                run(Some(&job), JobCommand::ResumeDue),
                Ok(JobChange::Unchanged)
            );
        }
    }

    #[test]
    fn a_pause_note_is_checked() {
        let now = t(NOW);
        let past = PauseNote::parse(Some(t("2026-11-23T10:00:00Z")), None, now).unwrap_err();
        assert_eq!(past.field, "until");
        assert!(past.message.starts_with("must be in the future"));
        assert_eq!(
            PauseNote::parse(None, Some("x".repeat(501)), now)
                .unwrap_err()
                .field,
            "reason"
        );
        assert_eq!(
            PauseNote::parse(None, Some("  ".into()), now),
            Ok(PauseNote::default())
        );
    }

    #[test]
    fn pause_and_resume_by_state() {
        let s = job(body(json!({})), scheduled("2026-11-23T10:01:00Z"));
        assert_eq!(
            schedule_of(run(Some(&s), JobCommand::Pause(PauseNote::default()))),
            Some(Schedule::Paused)
        );
        assert_eq!(run(Some(&s), JobCommand::Resume), Ok(JobChange::Unchanged));

        let p = job(body(json!({})), Schedule::Paused);
        assert_eq!(
            run(Some(&p), JobCommand::Pause(PauseNote::default())),
            Ok(JobChange::Unchanged)
        );
        // Resume recomputes from now: 09:00 + k·60 s, first at or after 10:00:30.
        assert_eq!(
            schedule_of(run(Some(&p), JobCommand::Resume)),
            Some(scheduled("2026-11-23T10:01:00Z"))
        );

        let c = job(body(json!({})), Schedule::Completed);
        for command in [JobCommand::Pause(PauseNote::default()), JobCommand::Resume] {
            assert!(matches!(
                run(Some(&c), command),
                Err(Refusal::Conflict(m)) if m.contains("is completed")
            ));
        }
        assert_eq!(
            run(None, JobCommand::Pause(PauseNote::default())),
            Err(Refusal::NotFound)
        );
        assert_eq!(run(None, JobCommand::Resume), Err(Refusal::NotFound));
    }

    #[test]
    fn resuming_a_date_job_whose_time_passed_completes_it() {
        let p = job(
            json!({"trigger": {"type": "date", "run_at": "2026-11-23T09:00:00Z"},
                   "target": {"url": "http://x.test"}}),
            Schedule::Paused,
        );
        assert_eq!(
            schedule_of(run(Some(&p), JobCommand::Resume)),
            Some(Schedule::Completed)
        );
    }

    // --- Replace ----------------------------------------------------------

    #[test]
    fn replace_creates_when_missing() {
        assert_eq!(
            schedule_of(run(None, replace(body(json!({}))))),
            Some(scheduled("2026-11-23T10:01:00Z"))
        );
    }

    #[test]
    fn replace_with_the_same_trigger_keeps_the_schedule_and_the_interval_anchor() {
        let stored = job(
            body(json!({"trigger": {"start_at": "2026-11-23T09:00:30Z"}})),
            scheduled("2026-11-23T10:01:30Z"),
        );
        // Given again without start_at: the same trigger, anchor and all.
        let anchorless = json!({"trigger": {"type": "interval", "every_s": 60},
                                "target": {"url": "http://x.test"}});
        let change = run(Some(&stored), replace(anchorless));
        let JobChange::Update {
            definition,
            schedule,
            ..
        } = change.unwrap()
        else {
            panic!()
        };
        assert_eq!(definition.trigger, stored.definition.trigger);
        assert_eq!(schedule, None);
    }

    #[test]
    fn replace_with_a_new_trigger_or_a_forced_time_recomputes() {
        let stored = job(body(json!({})), scheduled("2026-11-23T10:01:00Z"));
        assert_eq!(
            schedule_of(run(
                Some(&stored),
                replace(body(json!({"trigger": {"every_s": 300}})))
            )),
            Some(scheduled("2026-11-23T10:05:00Z"))
        );
        assert_eq!(
            schedule_of(run(
                Some(&stored),
                replace(body(json!({"next_run_at": "2026-11-23T10:00:40Z"})))
            )),
            Some(scheduled("2026-11-23T10:00:40Z"))
        );
    }

    #[test]
    fn unpausing_by_replace_is_a_resume() {
        let stored = job(body(json!({})), Schedule::Paused);
        assert_eq!(
            schedule_of(run(Some(&stored), replace(body(json!({}))))),
            Some(scheduled("2026-11-23T10:01:00Z"))
        );
        // Still paused: nothing moves.
        assert_eq!(
            schedule_of(run(Some(&stored), replace(body(json!({"paused": true}))))),
            None
        );
    }

    #[test]
    fn pausing_a_completed_job_is_a_conflict_unless_its_trigger_changes() {
        let stored = job(body(json!({})), Schedule::Completed);
        assert!(matches!(
            run(Some(&stored), replace(body(json!({"paused": true})))),
            Err(Refusal::Conflict(_))
        ));
        assert_eq!(
            schedule_of(run(
                Some(&stored),
                replace(body(json!({"paused": true, "trigger": {"every_s": 30}})))
            )),
            Some(Schedule::Paused)
        );
        // Replaced unchanged and not paused: it stays completed.
        assert_eq!(
            schedule_of(run(Some(&stored), replace(body(json!({}))))),
            None
        );
    }

    // --- Patch ------------------------------------------------------------

    #[test]
    fn patch_to_another_overlap_leaves_buffer_max_behind() {
        let stored = job(
            body(json!({"overlap": "buffer_all", "buffer_max": 5})),
            scheduled("2026-11-23T10:01:00Z"),
        );
        let overlap = |v| match run(Some(&stored), patch(v)) {
            Ok(change) => Ok(definition_of(Ok(change)).overlap),
            Err(e) => Err(e.to_string()),
        };
        assert_eq!(
            overlap(json!({"overlap": "skip"})),
            Ok(crate::domain::overlap::Overlap::Skip)
        );
        assert_eq!(
            overlap(json!({"overlap": "buffer_one", "buffer_max": 2})),
            Err("buffer_max: applies only with overlap \"buffer_all\"".to_string())
        );
    }

    // --- max_runs (§11.3) -------------------------------------------------

    /// A stored job with `max_runs` and this many runs counted.
    fn limited(max_runs: u32, counted: u32, schedule: Schedule) -> Job {
        Job {
            runs_counted: counted,
            ..job(body(json!({"max_runs": max_runs})), schedule)
        }
    }

    fn restarts(change: Result<JobChange, Refusal>) -> bool {
        match change.unwrap() {
            JobChange::Update { restart_count, .. } => restart_count,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn max_runs_lowered_to_the_runs_counted_completes_the_job() {
        let stored = limited(5, 2, scheduled("2026-11-23T10:01:00Z"));
        assert_eq!(
            schedule_of(run(Some(&stored), patch(json!({"max_runs": 2})))),
            Some(Schedule::Completed)
        );
        // Still above them: nothing changes but the limit.
        let change = run(Some(&stored), patch(json!({"max_runs": 3})));
        assert_eq!(definition_of(change.clone()).max_runs, Some(3));
        assert_eq!(schedule_of(change.clone()), None);
        assert!(!restarts(change));
        // A paused job is completed too: no run is left to it.
        let paused = limited(5, 2, Schedule::Paused);
        assert_eq!(
            schedule_of(run(Some(&paused), patch(json!({"max_runs": 1})))),
            Some(Schedule::Completed)
        );
    }

    #[test]
    fn max_runs_raised_or_removed_lets_a_job_it_completed_run_on_from_now() {
        let stored = limited(3, 3, Schedule::Completed);
        // What fell due meanwhile is not delivered: the next fire from now.
        let next = Some(scheduled("2026-11-23T10:01:00Z"));
        assert_eq!(
            schedule_of(run(Some(&stored), patch(json!({"max_runs": 4})))),
            next
        );
        let removed = run(Some(&stored), patch(json!({"max_runs": null})));
        assert_eq!(schedule_of(removed.clone()), next);
        assert!(restarts(removed), "no limit: the count starts again");
        // Given again unchanged (config applied twice): still completed.
        assert_eq!(
            schedule_of(run(Some(&stored), replace(body(json!({"max_runs": 3}))))),
            None
        );
        // Raised but paused: paused, not scheduled.
        assert_eq!(
            schedule_of(run(
                Some(&stored),
                patch(json!({"max_runs": 9, "paused": true}))
            )),
            Some(Schedule::Paused)
        );
        // A job its trigger completed stays completed.
        let ended = job(body(json!({"max_runs": 3})), Schedule::Completed);
        assert_eq!(
            schedule_of(run(Some(&ended), patch(json!({"max_runs": 4})))),
            None
        );
    }

    #[test]
    fn a_limit_given_to_a_job_without_one_counts_from_then() {
        let stored = job(body(json!({})), scheduled("2026-11-23T10:01:00Z"));
        let change = run(Some(&stored), patch(json!({"max_runs": 1})));
        assert_eq!(schedule_of(change.clone()), None);
        assert_eq!(definition_of(change).max_runs, Some(1));
    }

    #[test]
    fn max_runs_and_on_complete_refuse_bad_values_by_name() {
        let stored = job(body(json!({})), scheduled("2026-11-23T10:01:00Z"));
        let refused = |v| run(Some(&stored), patch(v)).unwrap_err().to_string();
        assert_eq!(
            refused(json!({"max_runs": 0})),
            "max_runs: must be between 1 and 2147483647 (or null for no limit), got 0"
        );
        assert!(
            refused(json!({"on_complete": "archive"})).starts_with("on_complete: "),
            "{}",
            refused(json!({"on_complete": "archive"}))
        );
    }

    #[test]
    fn a_monitor_and_a_sending_job_do_not_turn_into_each_other() {
        let sending = job(body(json!({})), scheduled("2026-11-23T10:01:00Z"));
        let monitor = json!({"target": null, "monitor": {"grace_s": 60}});
        let refused = run(Some(&sending), replace(body(monitor.clone()))).unwrap_err();
        assert!(
            refused.to_string().contains("cannot become monitor-only"),
            "{refused}"
        );
        let watching = job(body(monitor), scheduled("2026-11-23T10:01:00Z"));
        let refused = run(
            Some(&watching),
            patch(json!({"monitor": null, "target": {"url": "http://x.test/"}})),
        )
        .unwrap_err();
        assert!(
            refused
                .to_string()
                .contains("cannot become a job that sends requests"),
            "{refused}"
        );
        // Its grace may change.
        assert!(run(Some(&watching), patch(json!({"monitor": {"grace_s": 120}}))).is_ok());
    }

    #[test]
    fn patch_merges_nested_objects() {
        let stored = job(body(json!({})), scheduled("2026-11-23T10:01:00Z"));
        let d = definition_of(run(
            Some(&stored),
            patch(json!({"target": {"url": "http://y.test/new"}})),
        ));
        assert_eq!(d.target.as_ref().unwrap().url.as_str(), "http://y.test/new");
        assert_eq!(d.target.as_ref().unwrap().headers["x-team"], "data");
        assert_eq!(
            d.target.as_ref().unwrap().body,
            stored.definition.target.as_ref().unwrap().body
        );
        // null removes where removal is allowed.
        let d = definition_of(run(
            Some(&stored),
            patch(json!({"target": {"body": null, "headers": {"x-team": null}}, "name": null})),
        ));
        assert_eq!(
            d.target.as_ref().unwrap().body,
            crate::domain::target::Body::None
        );
        assert!(d.target.as_ref().unwrap().headers.is_empty());
        assert_eq!(d.name, None);
    }

    #[test]
    fn patch_of_only_paused_pauses_and_keeps_the_rest() {
        let stored = job(body(json!({})), scheduled("2026-11-23T10:01:00Z"));
        let change = run(Some(&stored), patch(json!({"paused": true}))).unwrap();
        assert_eq!(
            change,
            JobChange::Update {
                definition: stored.definition.clone(),
                schedule: Some(Schedule::Paused),
                restart_count: false,
                secret: None,
                pause: PauseNote::default(),
            }
        );
    }

    #[test]
    fn patch_trigger_with_a_type_replaces_without_one_merges() {
        let stored = job(
            json!({"trigger": {"type": "cron", "expr": "0 * * * *", "timezone": "Asia/Seoul"},
                   "target": {"url": "http://x.test"}}),
            scheduled("2026-11-23T11:00:00Z"),
        );
        let d = definition_of(run(
            Some(&stored),
            patch(json!({"trigger": {"expr": "30 * * * *"}})),
        ));
        assert_eq!(d.trigger.timezone().name(), "Asia/Seoul");
        let d = definition_of(run(
            Some(&stored),
            patch(json!({"trigger": {"type": "cron", "expr": "30 * * * *"}})),
        ));
        assert_eq!(d.trigger.timezone().name(), "UTC");
        // A type change must be whole: a cron's fields do not carry over.
        let d = definition_of(run(
            Some(&stored),
            patch(json!({"trigger": {"type": "interval", "every_s": 5}})),
        ));
        assert_eq!(d.trigger.kind(), "interval");
    }

    #[test]
    fn patch_refusals_name_the_field() {
        let stored = job(body(json!({})), scheduled("2026-11-23T10:01:00Z"));
        let invalid = |v: Value| match run(Some(&stored), patch(v)) {
            Err(Refusal::Invalid(e)) => e.to_string(),
            other => panic!("{other:?}"),
        };
        assert_eq!(
            invalid(json!({"coalesce": null})),
            "coalesce: may not be null"
        );
        assert!(invalid(json!({"id": "other"})).starts_with("id: differs"));
        assert_eq!(
            invalid(json!({"target": {"url": null}})),
            "target.url: is required"
        );
        assert!(invalid(json!({"state": "paused"})).starts_with("state: unknown field"));
        assert!(invalid(json!({"": null})).starts_with("\"\": unknown field"));
        assert!(
            invalid(json!({"target": {"bogus": null}})).starts_with("target.bogus: unknown field")
        );
        assert!(invalid(json!({"retry": [1]})).starts_with("retry: invalid type"));
        assert!(
            invalid(json!({"trigger": {"every_s": "often"}}))
                .starts_with("trigger.every_s: invalid type")
        );
        assert!(
            invalid(json!({"paused": true, "next_run_at": "2026-11-23T11:00:00Z"}))
                .starts_with("next_run_at: cannot be given with paused: true")
        );
        assert_eq!(run(None, patch(json!({}))), Err(Refusal::NotFound));
    }

    #[test]
    fn patch_of_a_paused_job_to_unpause_resumes() {
        let stored = job(body(json!({})), Schedule::Paused);
        assert_eq!(
            schedule_of(run(Some(&stored), patch(json!({"paused": false})))),
            Some(scheduled("2026-11-23T10:01:00Z"))
        );
        assert_eq!(
            schedule_of(run(Some(&stored), patch(json!({"name": "renamed"})))),
            None
        );
    }
}
