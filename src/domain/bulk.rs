//! Bulk actions (DESIGN.md §11.9): one action on every job a label
//! selector picks, all or nothing. What each job's part is, and whether the
//! whole may go ahead, decided here; the store runs it in one transaction.

use serde::Deserialize;
use serde_json::{Map, Value};
use utoipa::ToSchema;

use crate::domain::error::FieldError;
use crate::domain::instant;
use crate::domain::job::{Job, ParseContext, PauseNote, Schedule};
use crate::domain::labels::Selector;
use crate::domain::lifecycle::{self, JobChange, JobCommand, Refusal};

/// The most jobs one bulk action takes.
pub const MAX_BULK_JOBS: usize = 10_000;

/// What to do to each job.
#[derive(Debug, Clone, PartialEq)]
pub enum BulkAction {
    /// With the pause's end and reason, if given.
    Pause(PauseNote),
    Resume,
    /// A manual run of each (`POST /v1/jobs/{id}/run`).
    Run,
    /// One JSON Merge Patch applied to each.
    Patch(Map<String, Value>),
    Delete,
}

impl BulkAction {
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Pause(_) => "pause",
            Self::Resume => "resume",
            Self::Run => "run",
            Self::Patch(_) => "patch",
            Self::Delete => "delete",
        }
    }
}

/// A bulk action as a client asked for it.
#[derive(Debug, Clone, PartialEq)]
pub struct BulkRequest {
    pub action: BulkAction,
    pub selector: Selector,
    /// Only these jobs (the dashboard's selection), instead of a selector.
    pub ids: Option<Vec<crate::domain::job::JobId>>,
    /// Answer what it would do, and write nothing.
    pub dry_run: bool,
    /// A delete's count of the jobs it expects to delete.
    pub confirm: Option<u64>,
}

/// `POST /v1/jobs/bulk/{action}`.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BulkInput {
    /// A Kubernetes label selector (`team=data,env!=dev`); the empty
    /// string picks every job of the tenant.
    #[schema(example = "team=data,env!=dev")]
    pub selector: Option<String>,
    /// The jobs to act on, by id, instead of a selector (at most 10,000);
    /// an id no job has is left out of `matched`.
    #[serde(default)]
    #[schema(max_items = 10000)]
    pub ids: Option<Vec<String>>,
    /// Answer what the action would do, and change nothing.
    #[serde(default)]
    pub dry_run: Option<bool>,
    /// `delete` only, and required there: the number of jobs the selector
    /// picks (a dry run tells), so that a selector that picks more than
    /// meant deletes nothing.
    #[serde(default)]
    #[schema(minimum = 0)]
    pub confirm: Option<u64>,
    /// `patch` only, and required there: a JSON Merge Patch (RFC 7396)
    /// applied to each job, as `PATCH /v1/jobs/{id}` applies it.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub patch: Option<Map<String, Value>>,
    /// `pause` only: the scheduler resumes the jobs at this instant (each
    /// from it: a fire time after it is due then).
    #[serde(default, with = "instant::rfc3339_opt")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub until: Option<chrono::DateTime<chrono::Utc>>,
    /// `pause` only: why, shown with each job (at most 500 characters).
    #[serde(default)]
    #[schema(max_length = 500)]
    pub reason: Option<String>,
}

impl BulkInput {
    /// The request for `action` (the path's: `pause`, `resume`, `run`,
    /// `patch` or `delete`).
    pub fn parse(
        self,
        action: &str,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<BulkRequest, FieldError> {
        let (selector, ids) = match (self.selector, self.ids) {
            (Some(_), Some(_)) => {
                return Err(FieldError::new("ids", "give a selector or ids, not both"));
            }
            (None, None) => {
                return Err(FieldError::new(
                    "selector",
                    "is required (\"\" picks every job), or ids",
                ));
            }
            (Some(selector), None) => (
                crate::domain::labels::selector_param(Some(&selector))?,
                None,
            ),
            (None, Some(ids)) => (Selector::default(), Some(job_ids(&ids)?)),
        };
        if !["pause", "resume", "run", "patch", "delete"].contains(&action) {
            return Err(FieldError::new(
                "action",
                format!(
                    "{action:?} is not a bulk action; expected pause, resume, run, patch or delete"
                ),
            ));
        }
        let action = match (action, self.patch) {
            ("patch", Some(patch)) => BulkAction::Patch(patch),
            ("patch", None) => return Err(FieldError::new("patch", "is required to patch")),
            (_, Some(_)) => {
                return Err(FieldError::new(
                    "patch",
                    format!("is for `patch`, not `{action}`"),
                ));
            }
            ("pause", None) => BulkAction::Pause(PauseNote::parse(self.until, self.reason, now)?),
            (_, None) if self.until.is_some() || self.reason.is_some() => {
                let field = if self.until.is_some() {
                    "until"
                } else {
                    "reason"
                };
                return Err(FieldError::new(
                    field,
                    format!("is for `pause`, not `{action}`"),
                ));
            }
            ("resume", None) => BulkAction::Resume,
            ("delete", None) => BulkAction::Delete,
            // `run`, the last of the actions checked above.
            (_, None) => BulkAction::Run,
        };
        if self.confirm.is_some() && action != BulkAction::Delete {
            return Err(FieldError::new("confirm", "is for `delete` only"));
        }
        Ok(BulkRequest {
            action,
            selector,
            ids,
            dry_run: self.dry_run.unwrap_or(false),
            confirm: self.confirm,
        })
    }
}

/// The jobs `ids` name: each an id, none twice, at most [`MAX_BULK_JOBS`].
fn job_ids(ids: &[String]) -> Result<Vec<crate::domain::job::JobId>, FieldError> {
    if ids.is_empty() {
        return Err(FieldError::new("ids", "must name at least one job"));
    }
    if ids.len() > MAX_BULK_JOBS {
        return Err(FieldError::new(
            "ids",
            format!(
                "names {} jobs; a bulk action takes at most {MAX_BULK_JOBS}",
                ids.len()
            ),
        ));
    }
    let mut parsed: Vec<crate::domain::job::JobId> = Vec::with_capacity(ids.len());
    for (i, id) in ids.iter().enumerate() {
        let id = crate::domain::job::JobId::parse(id)
            .map_err(|m| FieldError::new(format!("ids[{i}]"), m))?;
        parsed.push(id);
    }
    parsed.sort();
    parsed.dedup();
    Ok(parsed)
}

/// One job's part.
#[derive(Debug, Clone, PartialEq)]
pub enum JobPart {
    /// Left as it is (pausing a paused job).
    Unchanged,
    Change(Box<JobChange>),
    Delete,
    Run,
}

impl JobPart {
    pub fn changes(&self) -> bool {
        *self != Self::Unchanged
    }
}

/// Whether the action may go ahead over `matched` jobs: at most
/// [`MAX_BULK_JOBS`], and a delete only with `confirm` equal to the count
/// (a dry run needs none: it is how the count is learnt).
pub fn admit(request: &BulkRequest, matched: usize) -> Result<(), Refusal> {
    if matched > MAX_BULK_JOBS {
        return Err(FieldError::new(
            "selector",
            format!(
                "selects more than {MAX_BULK_JOBS} jobs; a bulk action takes at most \
                 {MAX_BULK_JOBS}: narrow the selector"
            ),
        )
        .into());
    }
    if request.action == BulkAction::Delete && !request.dry_run {
        let matched = matched as u64;
        match request.confirm {
            Some(n) if n == matched => {}
            Some(n) => {
                return Err(Refusal::Conflict(format!(
                    "confirm is {n} but the selector picks {matched} jobs now; \
                     nothing was deleted"
                )));
            }
            None => {
                return Err(FieldError::new(
                    "confirm",
                    format!(
                        "is required to delete: the number of jobs the selector picks \
                         ({matched}; a dry run tells)"
                    ),
                )
                .into());
            }
        }
    }
    Ok(())
}

/// `job`'s part in `action` at `ctx.now`. Pausing or resuming a completed
/// job leaves it as it is (there is nothing to pause); any other refusal
/// refuses the whole action, naming the job.
pub fn part(action: &BulkAction, job: &Job, ctx: ParseContext) -> Result<JobPart, Refusal> {
    let id = job.id.as_str();
    let command = match action {
        BulkAction::Delete => return Ok(JobPart::Delete),
        BulkAction::Run if job.definition.monitor.is_some() => {
            return Err(Refusal::Conflict(format!(
                "job {id} is monitor-only: it waits for pings and sends no requests; \
                 leave it out of the selector"
            )));
        }
        BulkAction::Run => return Ok(JobPart::Run),
        BulkAction::Pause(_) | BulkAction::Resume if job.schedule == Schedule::Completed => {
            return Ok(JobPart::Unchanged);
        }
        BulkAction::Pause(note) => JobCommand::Pause(note.clone()),
        BulkAction::Resume => JobCommand::Resume,
        BulkAction::Patch(patch) => JobCommand::Patch(patch.clone()),
    };
    match lifecycle::decide(id, Some(job), &command, ctx) {
        Ok(JobChange::Unchanged) => Ok(JobPart::Unchanged),
        Ok(change) => Ok(JobPart::Change(Box::new(change))),
        Err(Refusal::Invalid(e)) => Err(FieldError::new(
            if e.field.is_empty() {
                "patch".to_string()
            } else {
                format!("patch.{}", e.field)
            },
            format!("job {id}: {}", e.message),
        )
        .into()),
        Err(Refusal::Conflict(why)) => Err(Refusal::Conflict(format!("job {id}: {why}"))),
        Err(other) => Err(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::instant;
    use crate::domain::job::JobInput;
    use crate::domain::json::from_value;
    use crate::domain::network_policy::NetworkPolicy;
    use serde_json::json;

    fn ctx() -> ParseContext {
        ParseContext {
            now: instant::parse("2026-12-04T10:00:00Z").unwrap(),
            network_policy: NetworkPolicy::default(),
            binding: None,
        }
    }

    fn job(id: &str, schedule: Schedule, extra: Value) -> Job {
        let mut v = json!({
            "id": id,
            "trigger": {"type": "interval", "every_s": 60, "start_at": "2026-12-04T09:00:00Z"},
            "target": {"url": "http://127.0.0.1:9/hook"},
        });
        for (k, val) in extra.as_object().unwrap() {
            v[k] = val.clone();
        }
        let spec = from_value::<JobInput>(&v).unwrap().parse(ctx()).unwrap();
        Job {
            id: spec.id.unwrap(),
            definition: spec.definition,
            schedule,
            runs_counted: 0,
            created_at: ctx().now,
            updated_at: ctx().now,
            last_run: None,
            ping_key: None,
            pause: Default::default(),
        }
    }

    fn scheduled() -> Schedule {
        Schedule::Scheduled {
            next_run_at: ctx().now,
        }
    }

    fn request(action: BulkAction, dry_run: bool, confirm: Option<u64>) -> BulkRequest {
        BulkRequest {
            action,
            selector: Selector::parse("team=data").unwrap(),
            ids: None,
            dry_run,
            confirm,
        }
    }

    #[test]
    fn at_most_ten_thousand_jobs() {
        let pause = request(BulkAction::Pause(PauseNote::default()), false, None);
        assert_eq!(admit(&pause, MAX_BULK_JOBS), Ok(()));
        let Err(Refusal::Invalid(e)) = admit(&pause, MAX_BULK_JOBS + 1) else {
            panic!("more than the most is refused");
        };
        assert_eq!(e.field, "selector");
    }

    #[test]
    fn a_delete_needs_the_count_it_deletes_but_a_dry_run_does_not() {
        let Err(Refusal::Invalid(e)) = admit(&request(BulkAction::Delete, false, None), 3) else {
            panic!("a delete without confirm is refused");
        };
        assert_eq!(e.field, "confirm");
        assert!(e.message.contains("(3;"), "{}", e.message);
        assert_eq!(admit(&request(BulkAction::Delete, true, None), 3), Ok(()));
        assert_eq!(
            admit(&request(BulkAction::Delete, false, Some(3)), 3),
            Ok(())
        );
        assert!(matches!(
            admit(&request(BulkAction::Delete, false, Some(2)), 3),
            Err(Refusal::Conflict(why)) if why.contains("picks 3 jobs now")
        ));
    }

    #[test]
    fn pausing_leaves_paused_and_completed_jobs_as_they_are() {
        let pause = BulkAction::Pause(PauseNote::default());
        let part_of = |schedule| part(&pause, &job("a", schedule, json!({})), ctx());
        assert!(matches!(
            part_of(scheduled()),
            Ok(JobPart::Change(change))
                if matches!(*change, JobChange::Update { schedule: Some(Schedule::Paused), .. })
        ));
        assert_eq!(part_of(Schedule::Paused), Ok(JobPart::Unchanged));
        assert_eq!(part_of(Schedule::Completed), Ok(JobPart::Unchanged));
        let resumed = part(
            &BulkAction::Resume,
            &job("a", Schedule::Completed, json!({})),
            ctx(),
        );
        assert_eq!(resumed, Ok(JobPart::Unchanged));
        assert!(!JobPart::Unchanged.changes());
        assert!(JobPart::Delete.changes());
    }

    #[test]
    fn a_patch_that_does_not_fit_one_job_refuses_all_naming_it() {
        let patch = json!({"max_instances": 0}).as_object().unwrap().clone();
        let Err(Refusal::Invalid(e)) = part(
            &BulkAction::Patch(patch),
            &job("b", scheduled(), json!({})),
            ctx(),
        ) else {
            panic!("an invalid patch is refused");
        };
        assert_eq!(e.field, "patch.max_instances");
        assert!(e.message.starts_with("job b: "), "{}", e.message);
        let patch = json!({"coalesce": false}).as_object().unwrap().clone();
        assert!(matches!(
            part(&BulkAction::Patch(patch), &job("b", scheduled(), json!({})), ctx()),
            Ok(JobPart::Change(change))
                if matches!(&*change, JobChange::Update { definition, .. } if !definition.coalesce)
        ));
    }

    #[test]
    fn the_input_names_what_does_not_fit_the_action() {
        let input = |v: Value| from_value::<BulkInput>(&v).unwrap();
        let ok = input(json!({"selector": "team=data", "dry_run": true}))
            .parse("pause", ctx().now)
            .unwrap();
        assert_eq!(
            (ok.action, ok.dry_run),
            (BulkAction::Pause(PauseNote::default()), true)
        );
        let timed =
            input(json!({"selector": "", "until": "2026-12-05T06:00:00Z", "reason": "migration"}))
                .parse("pause", ctx().now)
                .unwrap();
        assert_eq!(
            timed.action,
            BulkAction::Pause(PauseNote {
                until: Some(instant::parse("2026-12-05T06:00:00Z").unwrap()),
                reason: Some("migration".into()),
            })
        );
        let all = input(json!({"selector": ""}))
            .parse("resume", ctx().now)
            .unwrap();
        assert!(all.selector.requirements().is_empty());
        let picked = input(json!({"ids": ["b", "a", "b"]}))
            .parse("run", ctx().now)
            .unwrap();
        let ids: Vec<&str> = picked.ids.iter().flatten().map(|id| id.as_str()).collect();
        assert_eq!(ids, ["a", "b"]);
        for (body, action, field) in [
            (json!({"selector": "", "ids": ["a"]}), "pause", "ids"),
            (json!({"ids": []}), "pause", "ids"),
            (json!({"ids": ["a", "no spaces"]}), "pause", "ids[1]"),
            (json!({}), "pause", "selector"),
            (json!({"selector": "team in gold"}), "pause", "selector"),
            (json!({"selector": ""}), "patch", "patch"),
            (json!({"selector": "", "patch": {}}), "pause", "patch"),
            (json!({"selector": "", "confirm": 3}), "pause", "confirm"),
            (json!({"selector": ""}), "explode", "action"),
            (json!({"selector": "", "patch": {}}), "explode", "action"),
            (
                json!({"selector": "", "until": "2026-12-05T06:00:00Z"}),
                "resume",
                "until",
            ),
            (
                json!({"selector": "", "until": "2026-12-04T09:00:00Z"}),
                "pause",
                "until",
            ),
            (
                json!({"selector": "", "reason": "x".repeat(501)}),
                "pause",
                "reason",
            ),
        ] {
            assert_eq!(
                input(body.clone())
                    .parse(action, ctx().now)
                    .unwrap_err()
                    .field,
                field,
                "{body}"
            );
        }
        let unknown = from_value::<BulkInput>(&json!({"selector": "", "since": "x"})).unwrap_err();
        assert_eq!(unknown.field, "since");
    }

    #[test]
    fn a_monitor_cannot_be_run() {
        let monitor = job(
            "m",
            scheduled(),
            json!({"target": null, "monitor": {"grace_s": 60}}),
        );
        assert!(matches!(
            part(&BulkAction::Run, &monitor, ctx()),
            Err(Refusal::Conflict(why)) if why.starts_with("job m is monitor-only")
        ));
        assert_eq!(
            part(&BulkAction::Run, &job("a", scheduled(), json!({})), ctx()),
            Ok(JobPart::Run)
        );
    }
}
