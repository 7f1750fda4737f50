//! What the API answers with: jobs, runs, lists.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{Map, Value};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::domain::auth::Role;
use crate::domain::instant;
use crate::domain::job::JobState;
use crate::domain::overlap::OverlapMode;
use crate::domain::retry::RetryInput;
use crate::domain::run::{RunCause, RunStatus};
use crate::domain::run_limit::{self, OnComplete};
use crate::domain::success::SuccessInput;
use crate::domain::target::{Target, is_sensitive_header, masked_url, url_shown_to};
use crate::domain::trigger::TriggerInput;
use crate::store::{Attempt, Job, Run, RunSummary};

/// A job as the service returns it: the definition, with defaults filled
/// in, and its schedule. `state`, `next_run_at`, `created_at`,
/// `updated_at` and `last_run` are answers only; a request may not set them.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Job)]
pub struct JobView {
    pub id: String,
    pub name: Option<String>,
    pub trigger: TriggerInput,
    /// Where each run is sent; null for a monitor-only job.
    pub target: Option<TargetView>,
    /// A monitor-only job's settings and ping URL (§11.5); absent otherwise.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub monitor: Option<MonitorView>,
    pub misfire_grace_s: Option<u32>,
    pub coalesce: bool,
    pub catchup_max: u32,
    pub max_instances: u32,
    /// What a run over `max_instances` does: `skip`, `buffer_one`,
    /// `buffer_all`, `replace`.
    pub overlap: OverlapMode,
    /// With `buffer_all`: the most runs that wait; null otherwise.
    pub buffer_max: Option<u32>,
    pub pause_on_failure: bool,
    /// Scheduled runs sent before the job completes; null for no limit.
    pub max_runs: Option<u32>,
    /// Runs left before `max_runs` completes the job; null without a limit.
    pub runs_remaining: Option<u32>,
    /// Once completed and its last run has ended: `keep` or `delete`.
    pub on_complete: OnComplete,
    pub retry: RetryInput,
    /// How a run ends (§11.7); absent: its response ends it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub completion: Option<crate::domain::callback::CompletionInput>,
    /// The jobs its runs' ends start (§11.8); absent without any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub chain: Option<crate::domain::chain::ChainInput>,
    /// The jobs that must each have succeeded recently for a fire time to
    /// run (§11.8); absent without any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub requires: Option<Vec<crate::domain::gate::RequirementInput>>,
    /// As `requires`, one of them enough; absent without any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub requires_any: Option<Vec<crate::domain::gate::RequirementInput>>,
    /// The flow key its runs share (§11.1); absent without one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub flow: Option<crate::domain::flow::FlowInput>,
    /// When its runs alert (§11.5); absent when they do not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub alerts: Option<crate::domain::alert::AlertsInput>,
    /// No alert opens or reminds before this instant.
    #[serde(with = "instant::rfc3339_opt", skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub mute_until: Option<DateTime<Utc>>,
    /// Its last success time and consecutive failures are on `/metrics`.
    pub metrics: bool,
    pub paused: bool,
    /// A timed pause's end: the scheduler resumes the job then (§11.9).
    #[serde(with = "instant::rfc3339_opt", skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub paused_until: Option<DateTime<Utc>>,
    /// Why it was paused, as the pause said.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pause_reason: Option<String>,
    #[schema(value_type = Object)]
    pub metadata: Map<String, Value>,
    /// Labels to select the job by (§11.9).
    #[schema(value_type = std::collections::HashMap<String, String>)]
    pub labels: crate::domain::labels::Labels,
    pub state: JobState,
    /// The next fire time; null when paused or completed.
    #[serde(with = "instant::rfc3339_opt")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub next_run_at: Option<DateTime<Utc>>,
    #[serde(with = "instant::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: DateTime<Utc>,
    #[serde(with = "instant::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: DateTime<Utc>,
    /// The newest run, or null.
    pub last_run: Option<RunSummaryView>,
}

/// A monitor-only job's monitor, as the service returns it.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = MonitorSettings)]
pub struct MonitorView {
    /// Seconds after each fire time its ping may come.
    pub grace_s: u32,
    /// Where the watched work reports: GET or POST this URL when it
    /// succeeds, `/start` when it starts, `/fail` or `/{exit_code}` when
    /// it ends. The key in it is the job's alone, not an API token;
    /// shown to write tokens only (null for read tokens).
    pub ping_url: Option<String>,
}

impl JobView {
    /// The job as `role` is shown it (`TargetView::seen_by`), its ping URL
    /// under `base` (`scheme://host` this service is reached at).
    pub fn seen_by(job: Job, role: Role, base: &str) -> Self {
        let ping_key = job.ping_key.clone().filter(|_| role >= Role::Write);
        let shown = job.definition.target.as_ref().map(|t| {
            (
                url_shown_to(&t.url, role),
                t.cancel_url.as_ref().map(|u| url_shown_to(u, role)),
            )
        });
        let mut view = Self::from(job);
        if let (Some(target), Some((url, cancel_url))) = (view.target.as_mut(), shown) {
            target.url = url;
            target.cancel_url = cancel_url;
        }
        if let Some(monitor) = view.monitor.as_mut() {
            monitor.ping_url = ping_key.map(|key| super::ping_url(base, &key));
        }
        view
    }
}

impl TargetView {
    /// The target as `role` is shown it: a read token sees no path.
    pub fn seen_by(target: &Target, role: Role) -> Self {
        Self {
            url: url_shown_to(&target.url, role),
            cancel_url: target.cancel_url.as_ref().map(|u| url_shown_to(u, role)),
            ..Self::from(target)
        }
    }
}

impl From<Job> for JobView {
    fn from(job: Job) -> Self {
        let d = job.definition;
        let (completion, chain) = (d.completion_input(), d.chain_input());
        let (requires, requires_any) = d.gates.to_inputs();
        Self {
            id: job.id.to_string(),
            name: d.name,
            trigger: d.trigger.to_input(),
            target: d.target.as_ref().map(TargetView::from),
            monitor: d.monitor.map(|m| MonitorView {
                grace_s: m.grace_s,
                ping_url: None,
            }),
            misfire_grace_s: d.misfire_grace_s,
            coalesce: d.coalesce,
            catchup_max: d.catchup_max,
            max_instances: d.max_instances,
            overlap: d.overlap.mode(),
            buffer_max: d.overlap.buffer_max(),
            pause_on_failure: d.pause_on_failure,
            max_runs: d.max_runs,
            runs_remaining: run_limit::remaining(d.max_runs, job.runs_counted),
            on_complete: d.on_complete,
            retry: d.retry.to_input(),
            completion,
            chain,
            requires,
            requires_any,
            flow: d.flow.as_ref().map(crate::domain::flow::Flow::to_input),
            alerts: d
                .alerts
                .as_ref()
                .map(crate::domain::alert::AlertPolicy::to_input),
            mute_until: d.mute_until,
            metrics: d.metrics,
            paused: job.schedule.state() == JobState::Paused,
            paused_until: job.pause.until,
            pause_reason: job.pause.reason,
            metadata: d.metadata,
            labels: d.labels,
            state: job.schedule.state(),
            next_run_at: job.schedule.next_run_at(),
            created_at: job.created_at,
            updated_at: job.updated_at,
            last_run: job.last_run.map(RunSummaryView::from),
        }
    }
}

/// A job's target as the service shows it: sensitive header values (and
/// a URL's password) are never shown, only the headers' names.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = JobTarget)]
pub struct TargetView {
    /// The URL; a password in it shows as `***`. A read token sees only
    /// its scheme, host and port (`https://example.com/***`): paths and
    /// queries often hold a webhook's secret.
    #[schema(example = "https://example.com/hooks/report")]
    pub url: String,
    #[schema(example = "POST")]
    pub method: String,
    /// The headers whose values are not secrets.
    #[schema(value_type = Object)]
    pub headers: BTreeMap<String, String>,
    /// The names of the headers whose values are kept secret
    /// (`authorization`, `cookie`, and any containing `token`, `secret`,
    /// `key`, `password` or `auth`).
    pub sensitive_headers: Vec<String>,
    /// The body: any JSON value; absent when there is none.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Object)]
    pub body: Option<Value>,
    pub timeout_s: u32,
    /// Its `{{ … }}` expressions are rendered when a run is made
    /// (DESIGN.md §11.2).
    pub template: bool,
    /// What makes an answer a success beyond a 2xx (DESIGN.md §11.6);
    /// absent: any 2xx.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub success: Option<SuccessInput>,
    /// Where a cancel of a running callback run goes (DESIGN.md §11.7),
    /// shown as `url` is; absent: the URL.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cancel_url: Option<String>,
}

impl From<&Target> for TargetView {
    fn from(t: &Target) -> Self {
        let (sensitive, plain): (Vec<_>, Vec<_>) = t
            .headers
            .iter()
            .partition(|(name, _)| is_sensitive_header(name));
        Self {
            url: masked_url(&t.url),
            method: t.method.as_str().to_string(),
            headers: plain
                .into_iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            sensitive_headers: sensitive.into_iter().map(|(k, _)| k.clone()).collect(),
            body: t.body.to_value(),
            timeout_s: t.timeout_s,
            template: t.template,
            success: t.success.as_deref().map(|s| s.to_input()),
            cancel_url: t.cancel_url.as_ref().map(masked_url),
        }
    }
}

/// The newest run of a job: its id and outcome.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = RunSummary)]
pub struct RunSummaryView {
    pub id: Uuid,
    pub status: RunStatus,
    #[serde(with = "instant::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub scheduled_for: DateTime<Utc>,
    pub attempt_count: u32,
    #[serde(with = "instant::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: DateTime<Utc>,
    #[serde(with = "instant::rfc3339_opt")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub finished_at: Option<DateTime<Utc>>,
}

impl From<RunSummary> for RunSummaryView {
    fn from(r: RunSummary) -> Self {
        Self {
            id: r.id,
            status: r.status,
            scheduled_for: r.scheduled_for,
            attempt_count: r.attempt_count,
            created_at: r.created_at,
            finished_at: r.finished_at,
        }
    }
}

/// One page of jobs, in id order.
#[derive(Debug, Serialize, ToSchema)]
pub struct JobPage {
    pub items: Vec<JobView>,
    /// Pass as `cursor` for the next page; null on the last one.
    pub next_cursor: Option<String>,
}

/// A run: one occurrence the scheduler acted on, or a manual run.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Run)]
pub struct RunView {
    /// Also the `webhook-id` of every request of this run.
    pub id: Uuid,
    pub job_id: String,
    /// The fire time this run is for (for a manual run, when it was asked).
    #[serde(with = "instant::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub scheduled_for: DateTime<Utc>,
    pub cause: RunCause,
    pub status: RunStatus,
    /// How many fire times this run stands for (coalesced or missed).
    pub occurrences: u64,
    pub attempt_count: u32,
    /// When delivery may start: `scheduled_for` plus any jitter.
    #[serde(with = "instant::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub deliver_after: DateTime<Utc>,
    /// A pending run: when its next attempt may start.
    #[serde(with = "instant::rfc3339_opt")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub next_attempt_at: Option<DateTime<Utc>>,
    #[serde(with = "instant::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: DateTime<Utc>,
    #[serde(with = "instant::rfc3339_opt")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub finished_at: Option<DateTime<Utc>>,
    /// Why a pending run is not sent yet: `overlap` (a run of its job is
    /// in flight and the job's overlap policy keeps this one waiting).
    #[schema(example = json!(null))]
    pub wait_reason: Option<String>,
    /// Why the run ended as it did, where there is more to say than its
    /// status: `max_instances`, `buffer_full` or `overlap_skip` for a
    /// skipped run, `replaced` for one cancelled by a newer run (overlap
    /// `replace`).
    #[schema(example = json!(null))]
    pub reason: Option<String>,
    /// The backfill that made it (cause `backfill`, §11.3).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backfill_id: Option<Uuid>,
    /// The run of the same occurrence that a reprocessing backfill
    /// replays.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replay_of: Option<Uuid>,
    /// The occurrence its calendars moved to `scheduled_for`
    /// (`on_excluded: next_allowed | previous_allowed`, §11.4).
    #[serde(
        with = "instant::rfc3339_opt",
        skip_serializing_if = "Option::is_none",
        default
    )]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub nominal_for: Option<DateTime<Utc>>,
    /// A chained run's parent (cause `chain`, §11.8).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parent_run_id: Option<Uuid>,
    /// A callback run (§11.7): when its response accepted it.
    #[serde(
        with = "instant::rfc3339_opt",
        skip_serializing_if = "Option::is_none",
        default
    )]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub accepted_at: Option<DateTime<Utc>>,
    /// A callback run: when it fails `timed_out` unless completed (or,
    /// cancelling, is `cancelled`).
    #[serde(
        with = "instant::rfc3339_opt",
        skip_serializing_if = "Option::is_none",
        default
    )]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub deadline_at: Option<DateTime<Utc>>,
    /// A callback run: its receiver's last heartbeat.
    #[serde(
        with = "instant::rfc3339_opt",
        skip_serializing_if = "Option::is_none",
        default
    )]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub last_heartbeat_at: Option<DateTime<Utc>>,
    /// A callback run: how far its work is, in percent, as last reported.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub progress: Option<f64>,
    /// A callback run: what its work last said it was doing.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// A callback run: when its receiver reported its end.
    #[serde(
        with = "instant::rfc3339_opt",
        skip_serializing_if = "Option::is_none",
        default
    )]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub completed_at: Option<DateTime<Utc>>,
    /// A callback run: from acceptance to its end.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<u64>,
    /// A callback run: the `output` its receiver reported.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub output: Option<serde_json::Value>,
    /// A callback run: the `error` its receiver reported.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl From<Run> for RunView {
    fn from(r: Run) -> Self {
        let long = r.long.as_ref();
        let completed = long.and_then(|l| l.completed.as_ref());
        Self {
            id: r.id,
            job_id: r.job_id.to_string(),
            scheduled_for: r.scheduled_for,
            cause: r.cause,
            status: r.status,
            occurrences: r.occurrences,
            attempt_count: r.attempt_count,
            deliver_after: r.deliver_after,
            next_attempt_at: r.next_attempt_at,
            created_at: r.created_at,
            finished_at: r.finished_at,
            wait_reason: r.wait_reason,
            reason: r.reason,
            backfill_id: r.backfill_id,
            replay_of: r.replay_of,
            nominal_for: r.nominal_for,
            parent_run_id: r.parent_run_id,
            accepted_at: long.and_then(|l| l.accepted_at),
            deadline_at: long.and_then(|l| l.deadline_at),
            last_heartbeat_at: long.and_then(|l| l.last_heartbeat_at),
            progress: long.and_then(|l| l.progress),
            message: long.and_then(|l| l.message.clone()),
            completed_at: completed.and(r.finished_at),
            duration_ms: long.and_then(|l| l.duration_ms(r.finished_at)),
            output: completed
                .and_then(|c| c.output.as_deref())
                .and_then(|o| serde_json::from_str(o).ok()),
            error: completed.and_then(|c| c.error.clone()),
        }
    }
}

/// One HTTP request of a run.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Attempt)]
pub struct AttemptView {
    /// 1 for the first attempt.
    pub number: u32,
    #[serde(with = "instant::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub started_at: DateTime<Utc>,
    pub duration_ms: u64,
    /// The response status; null when there was no response.
    pub status_code: Option<u16>,
    /// What went wrong, in words (`timeout`, `connection refused`, …).
    pub error: Option<String>,
    /// The first 4 KiB of the response body (64 kB when a success rule
    /// reads the body).
    pub response_excerpt: Option<String>,
    /// Why the success rules refused the answer, in words
    /// (`200 but $.status = "error", expected "done"`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub outcome_reason: Option<String>,
    /// The excerpt is not the whole body: the rules read its first 64 kB.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub body_truncated: bool,
}

impl From<Attempt> for AttemptView {
    fn from(a: Attempt) -> Self {
        Self {
            number: a.number,
            started_at: a.started_at,
            duration_ms: a.duration_ms,
            status_code: a.status_code,
            error: a.error,
            response_excerpt: a.response_excerpt,
            outcome_reason: a.outcome_reason,
            body_truncated: a.body_truncated,
        }
    }
}

/// A run with its attempts.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = RunDetail)]
pub struct RunDetailView {
    #[serde(flatten)]
    pub run: RunView,
    pub attempts: Vec<AttemptView>,
}

/// One page of runs, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct RunPage {
    pub items: Vec<RunView>,
    /// Pass as `cursor` for the next page; null on the last one.
    pub next_cursor: Option<String>,
}
