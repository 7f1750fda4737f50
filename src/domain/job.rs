//! Jobs as clients write them, validated once into a [`JobSpec`].

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;

use crate::domain::alert::{AlertPolicy, AlertsInput};
use crate::domain::error::{FieldError, Reason};
use crate::domain::flow::{Flow, FlowInput};
use crate::domain::instant;
use crate::domain::misfire::{DEFAULT_CATCHUP_MAX, MAX_CATCHUP_MAX};
use crate::domain::monitor::{Monitor, MonitorInput};
use crate::domain::network_policy::NetworkPolicy;
use crate::domain::overlap::{Overlap, OverlapMode};
use crate::domain::retry::{RetryInput, RetryPolicy};
use crate::domain::run::RunSummary;
use crate::domain::run_limit::{self, OnComplete};
use crate::domain::signing::ChosenSecret;
use crate::domain::target::{Target, TargetInput};
use crate::domain::trigger::{Trigger, TriggerInput};

pub const MAX_ID_LEN: usize = 200;
/// [`JobId`]'s rule as a regular expression, for the OpenAPI document.
pub const ID_PATTERN: &str = r"^(?!\.\.?$)[A-Za-z0-9._:-]+$";
pub const MAX_NAME_LEN: usize = 1000;
pub const MAX_INSTANCES_LIMIT: i64 = 1000;

/// A job id: 1 to 200 characters from `[A-Za-z0-9._:-]`, other than `.`
/// and `..` (which a URL path would read as a directory).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct JobId(String);

impl JobId {
    pub fn parse(text: &str) -> Result<Self, Reason> {
        if text.is_empty() {
            return Err("must not be empty".into());
        }
        if text.len() > MAX_ID_LEN {
            return Err(format!(
                "must be at most {MAX_ID_LEN} characters, got {}",
                text.len()
            )
            .into());
        }
        if let Some(bad) = text
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | ':' | '-')))
        {
            return Err(format!("contains {bad:?}; only A-Z a-z 0-9 . _ : - are allowed").into());
        }
        if text == "." || text == ".." {
            return Err(
                format!("{text:?} is not an id: a URL path would read it as a directory").into(),
            );
        }
        Ok(Self(text.to_string()))
    }

    /// A fresh UUIDv7, for jobs created without an id.
    pub fn generate() -> Self {
        Self(uuid::Uuid::now_v7().to_string())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A job as a client writes it. Only `trigger` and `target` are required
/// (`target: null` with `monitor` for a monitor-only job).
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = JobRequest, example = json!({
    "id": "nightly-report",
    "name": "Nightly report",
    "trigger": {"type": "cron", "expr": "30 2 * * *", "timezone": "Asia/Seoul"},
    "target": {"url": "https://example.com/hooks/report", "body": {"report": "daily"}},
    "misfire_grace_s": 900
}))]
pub struct JobInput {
    /// 1 to 200 characters from `[A-Za-z0-9._:-]` (not `.` or `..`); a
    /// UUIDv7 when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(example = "nightly-report")]
    pub id: Option<String>,
    #[serde(default)]
    #[schema(example = "Nightly report", max_length = 1000)]
    pub name: Option<String>,
    #[schema(required = true, value_type = TriggerInput)]
    pub trigger: Option<TriggerInput>,
    /// Where each run is sent; null for a monitor-only job.
    #[schema(required = true, value_type = Option<TargetInput>)]
    pub target: Option<TargetInput>,
    /// Makes the job monitor-only (DESIGN.md §11.5), with `target: null`:
    /// each fire time makes a run `awaiting` a ping to its
    /// `monitor.ping_url`; none within `grace_s` makes it `missed` and
    /// opens a `ping_missing` alert.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub monitor: Option<MonitorInput>,
    /// Seconds an occurrence may be late and still run; null (the
    /// default) for no limit.
    #[serde(default)]
    #[schema(minimum = 1, maximum = 4294967295_i64)]
    pub misfire_grace_s: Option<i64>,
    /// Run due occurrences once, for the latest (default true).
    #[serde(default)]
    pub coalesce: Option<bool>,
    /// With `coalesce: false`, at most this many already-due occurrences
    /// become runs at once; older ones become one `missed` run with their
    /// count (default 100, at most 1000).
    #[serde(default)]
    #[schema(minimum = 1, maximum = 1000)]
    pub catchup_max: Option<i64>,
    /// Runs of this job in flight at once (default 1).
    #[serde(default)]
    #[schema(minimum = 1, maximum = 1000)]
    pub max_instances: Option<i64>,
    /// What a run over `max_instances` does (default `skip`): `skip`
    /// records it skipped; `buffer_one` keeps one waiting, `buffer_all` up
    /// to `buffer_max`, sent in order as runs of the job end; `replace`
    /// cancels the oldest run in flight (its request aborted) and sends
    /// the new one.
    #[serde(default)]
    pub overlap: Option<OverlapMode>,
    /// With `overlap: buffer_all`, the most runs that wait (default 100,
    /// at most 10000); past it a run is skipped (`reason: buffer_full`).
    #[serde(default)]
    #[schema(minimum = 1, maximum = 10000)]
    pub buffer_max: Option<i64>,
    /// Pause the job when one of its runs fails (default false); event
    /// `job.paused` says why.
    #[serde(default)]
    pub pause_on_failure: Option<bool>,
    /// Complete the job after this many scheduled runs that were sent
    /// (skipped, missed and manual runs do not count); null (the default)
    /// for no limit. A limit given to a job without one counts from then.
    #[serde(default)]
    #[schema(minimum = 1, maximum = 2147483647)]
    pub max_runs: Option<i64>,
    /// What becomes of the job once completed and its last run has ended:
    /// `keep` (the default) or `delete` (event `job.deleted`).
    #[serde(default)]
    pub on_complete: Option<OnComplete>,
    #[serde(default)]
    pub retry: Option<RetryInput>,
    /// How a run ends (DESIGN.md §11.7): `response` (the default) or
    /// `callback`, where a successful response accepts the run and the
    /// receiver reports its end to `cronhook-callback-url` with the run's
    /// `cronhook-callback-token`; `timeout_s` and `heartbeat_s` bound it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completion: Option<crate::domain::callback::CompletionInput>,
    /// Jobs of this tenant that get one run when a run of this job ends
    /// (DESIGN.md §11.8): `on_success`, `on_failure`, `on_complete` (either),
    /// each `[{"job": "b", "delay_s": 0}]`. A job named must exist; a cycle
    /// is refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chain: Option<crate::domain::chain::ChainInput>,
    /// Jobs of this tenant that must each have succeeded recently for a
    /// fire time to run (DESIGN.md §11.8): `[{"job": "a",
    /// "succeeded_within_s": 21600, "mode": "skip" | "wait", "wait_max_s":
    /// 7200}]`. `skip` records the run `skipped` (reason `dependency`);
    /// `wait` holds it (`wait_reason: "dependency:a"`) until the job
    /// succeeds, or `missed` after `wait_max_s`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requires: Option<Vec<crate::domain::gate::RequirementInput>>,
    /// As `requires`, but one of these jobs is enough.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requires_any: Option<Vec<crate::domain::gate::RequirementInput>>,
    /// The flow key its runs share with other jobs' (DESIGN.md §11.1):
    /// they are sent while the key's `max_in_flight` and `rate` allow, by
    /// priority, and wait (`wait_reason: "flow:<key>"`) otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flow: Option<FlowInput>,
    /// When its runs alert (DESIGN.md §11.5): `alert.opened`,
    /// `alert.reminded` and `alert.resolved` events, and `GET /v1/alerts`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alerts: Option<AlertsInput>,
    /// No alert opens or reminds before this instant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub mute_until: Option<String>,
    /// Export this job's last success time and consecutive failures on
    /// `/metrics` (default false; at most `--max-job-metrics` jobs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics: Option<bool>,
    /// Create the job paused (default false).
    #[serde(default)]
    pub paused: Option<bool>,
    /// An extra first fire time, before the trigger's own (for a date
    /// trigger, its one fire): an instant, or `"now"`. Not with
    /// `paused: true`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_run_at: Option<ForcedRun>,
    /// Free-form JSON object, stored and returned as given.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<Map<String, Value>>,
    /// Labels to select the job by (DESIGN.md §11.9): at most 32, keys
    /// `[prefix/]name` and values of Kubernetes' syntax (`team: data`,
    /// `cronhook.io/owner: ops`). `GET /v1/jobs?selector=team=data` and the
    /// bulk actions pick jobs by them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<std::collections::HashMap<String, String>>)]
    pub labels: Option<Map<String, Value>>,
    /// The job's signing secret, chosen by the client: `whsec_` and 24 to
    /// 64 bytes in base64. Written only: read it from `GET
    /// /v1/jobs/{id}/secret`. When absent a new job gets
    /// `--signing-secret-default`, or a random one; a replace or patch
    /// without it keeps the job's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(write_only, example = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")]
    pub secret: Option<String>,
}

/// A forced first fire time as a client writes it: an RFC 3339 instant, or
/// `"now"` (APScheduler's `next_run_time=datetime.now()`), which is the
/// instant the request is handled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ForcedRun {
    Now,
    At(DateTime<Utc>),
}

impl ForcedRun {
    pub fn resolve(self, now: DateTime<Utc>) -> DateTime<Utc> {
        match self {
            ForcedRun::Now => now,
            ForcedRun::At(t) => t,
        }
    }
}

impl Serialize for ForcedRun {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            ForcedRun::Now => s.serialize_str("now"),
            ForcedRun::At(t) => s.serialize_str(&instant::format(t)),
        }
    }
}

impl<'de> Deserialize<'de> for ForcedRun {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        if text == "now" {
            return Ok(ForcedRun::Now);
        }
        instant::parse(&text)
            .map(ForcedRun::At)
            .map_err(|m| serde::de::Error::custom(format!("{m}, or \"now\"")))
    }
}

impl utoipa::PartialSchema for ForcedRun {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{
            KnownFormat, ObjectBuilder, OneOfBuilder, SchemaFormat, Type,
        };
        OneOfBuilder::new()
            .item(
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .format(Some(SchemaFormat::KnownFormat(KnownFormat::DateTime))),
            )
            .item(
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .enum_values(Some(["now"])),
            )
            .description(Some("An RFC 3339 instant, or `now`."))
            .into()
    }
}

impl ToSchema for ForcedRun {}

/// What a job is, once validated: everything but its id, its schedule and
/// its secret. It cannot hold an invalid value.
#[derive(Debug, Clone, PartialEq)]
pub struct JobDefinition {
    pub name: Option<String>,
    pub trigger: Trigger,
    /// None for a monitor-only job, which has `monitor` instead.
    pub target: Option<Target>,
    pub monitor: Option<Monitor>,
    pub misfire_grace_s: Option<u32>,
    pub coalesce: bool,
    pub catchup_max: u32,
    pub max_instances: u32,
    pub overlap: Overlap,
    pub pause_on_failure: bool,
    /// Scheduled runs sent before the job completes (§11.3).
    pub max_runs: Option<u32>,
    pub on_complete: OnComplete,
    pub retry: RetryPolicy,
    /// The flow key its runs share (§11.1).
    pub flow: Option<Flow>,
    /// When its runs alert (§11.5), and until when they may not.
    pub alerts: Option<AlertPolicy>,
    pub mute_until: Option<DateTime<Utc>>,
    /// Its own signals on `/metrics` (§11.5).
    pub metrics: bool,
    pub metadata: Map<String, Value>,
    /// DESIGN.md §11.9.
    pub labels: crate::domain::labels::Labels,
    /// The jobs its runs' ends start (§11.8).
    pub chain: crate::domain::chain::Chain,
    /// The jobs that must have succeeded for its fire times to run (§11.8).
    pub gates: crate::domain::gate::Gates,
}

impl JobDefinition {
    /// Its `completion` as written; none for `response`, the default
    /// (§11.7).
    pub fn completion_input(&self) -> Option<crate::domain::callback::CompletionInput> {
        self.target
            .as_ref()
            .and_then(|t| t.completion)
            .map(crate::domain::callback::Completion::to_input)
    }

    /// Its `chain` as written; none without edges (§11.8).
    pub fn chain_input(&self) -> Option<crate::domain::chain::ChainInput> {
        (!self.chain.is_empty()).then(|| self.chain.to_input())
    }
}

/// A validated request for a job: its definition and what the client asks
/// of its schedule (paused, a forced first fire time), which the job's
/// lifecycle rules turn into a [`Schedule`].
#[derive(Debug, Clone, PartialEq)]
pub struct JobSpec {
    pub id: Option<JobId>,
    pub definition: JobDefinition,
    pub paused: bool,
    /// A forced first fire time.
    pub next_run_at: Option<DateTime<Utc>>,
    /// The signing secret the client chose, if it did.
    pub secret: Option<ChosenSecret>,
}

/// A pause's end and reason (DESIGN.md §11.9), shown with the job.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PauseNote {
    /// The scheduler resumes the job from this instant.
    pub until: Option<DateTime<Utc>>,
    pub reason: Option<String>,
}

/// The longest pause reason.
pub const MAX_PAUSE_REASON: usize = 500;

impl PauseNote {
    /// `until` and `reason` as a client gave them: `until` after `now`.
    pub fn parse(
        until: Option<DateTime<Utc>>,
        reason: Option<String>,
        now: DateTime<Utc>,
    ) -> Result<Self, FieldError> {
        if let Some(until) = until
            && until <= now
        {
            return Err(FieldError::new(
                "until",
                format!(
                    "must be in the future (now is {})",
                    crate::domain::instant::format(&now)
                ),
            ));
        }
        let reason = reason
            .map(|r| r.trim().to_string())
            .filter(|r| !r.is_empty());
        if let Some(reason) = &reason {
            if reason.chars().count() > MAX_PAUSE_REASON {
                return Err(FieldError::new(
                    "reason",
                    format!("must be at most {MAX_PAUSE_REASON} characters"),
                ));
            }
            if reason.contains('\0') {
                return Err(FieldError::new(
                    "reason",
                    "must not contain a NUL character",
                ));
            }
        }
        Ok(Self { until, reason })
    }
}

/// A job as it stands.
#[derive(Debug, Clone, PartialEq)]
pub struct Job {
    pub id: JobId,
    pub definition: JobDefinition,
    pub schedule: Schedule,
    /// Runs counted toward `max_runs` (zero without a limit).
    pub runs_counted: u32,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// The newest run, shown with the job.
    pub last_run: Option<RunSummary>,
    /// A monitor-only job's ping key (§11.5).
    pub ping_key: Option<String>,
    /// A paused job's end and reason (§11.9); empty otherwise.
    pub pause: PauseNote,
}

/// What validation needs besides the request.
#[derive(Debug, Clone)]
pub struct ParseContext {
    /// Anchors an interval without `start_at`.
    pub now: DateTime<Utc>,
    /// Applied to IP-literal target URLs.
    pub network_policy: NetworkPolicy,
    /// The job's `H` seed and its tenant's calendars, once the store reads
    /// them; without it a trigger is checked but not bound (§11.4).
    pub binding: Option<crate::domain::trigger::Binding>,
}

impl JobInput {
    pub fn parse(self, ctx: ParseContext) -> Result<JobSpec, FieldError> {
        let id = self
            .id
            .as_deref()
            .map(JobId::parse)
            .transpose()
            .map_err(|m| FieldError::new("id", m))?;
        if let Some(name) = &self.name
            && name.chars().count() > MAX_NAME_LEN
        {
            return Err(FieldError::new(
                "name",
                format!("must be at most {MAX_NAME_LEN} characters"),
            ));
        }
        let trigger = self
            .trigger
            .ok_or_else(|| FieldError::new("trigger", "is required"))?
            .parse(ctx.now, "trigger")?;
        let trigger = match &ctx.binding {
            Some(binding) => trigger.bind(binding, "trigger")?,
            None => trigger,
        };
        let monitor = self.monitor.map(|m| m.parse("monitor")).transpose()?;
        let completion = self
            .completion
            .map(|c| c.parse("completion"))
            .transpose()?
            .flatten();
        let target = match (self.target, monitor) {
            (Some(target), None) => Some(target.parse(&ctx.network_policy, "target")?),
            (None, Some(_)) => None,
            (Some(_), Some(_)) => {
                return Err(FieldError::new(
                    "target",
                    "must be null for a monitor-only job (monitor is given)",
                ));
            }
            (None, None) => {
                return Err(FieldError::new(
                    "target",
                    "is required (or null, with monitor, for a monitor-only job)",
                ));
            }
        };
        let target = match target {
            Some(mut t) => {
                if t.cancel_url.is_some() && completion.is_none() {
                    return Err(FieldError::new(
                        "target.cancel_url",
                        "applies only with completion.mode callback (a run in mode response \
                         ends with its response)",
                    ));
                }
                t.completion = completion;
                Some(t)
            }
            None if completion.is_some() => {
                return Err(FieldError::new(
                    "completion",
                    "a monitor-only job sends nothing to complete by callback",
                ));
            }
            None => None,
        };
        let misfire_grace_s = match self.misfire_grace_s {
            None => None,
            Some(g) if (1..=i64::from(u32::MAX)).contains(&g) => Some(g as u32),
            Some(g) => {
                return Err(FieldError::new(
                    "misfire_grace_s",
                    format!("must be at least 1 (or null for no limit), got {g}"),
                ));
            }
        };
        let catchup_max = match self.catchup_max {
            None => DEFAULT_CATCHUP_MAX,
            Some(n) if (1..=i64::from(MAX_CATCHUP_MAX)).contains(&n) => n as u32,
            Some(n) => {
                return Err(FieldError::new(
                    "catchup_max",
                    format!("must be between 1 and {MAX_CATCHUP_MAX}, got {n}"),
                ));
            }
        };
        let max_instances = match self.max_instances {
            None => 1,
            Some(n) if (1..=MAX_INSTANCES_LIMIT).contains(&n) => n as u32,
            Some(n) => {
                return Err(FieldError::new(
                    "max_instances",
                    format!("must be between 1 and {MAX_INSTANCES_LIMIT}, got {n}"),
                ));
            }
        };
        let overlap = Overlap::parse(self.overlap, self.buffer_max)?;
        let max_runs = run_limit::parse_max_runs(self.max_runs)?;
        let retry = self.retry.unwrap_or_default().parse("retry")?;
        if retry.retries_time_outs() && target.as_ref().and_then(|t| t.completion).is_none() {
            return Err(FieldError::new(
                "retry.on_timeout",
                "applies only with completion.mode callback (only a callback run can time out \
                 or lose its heartbeat)",
            ));
        }
        let flow = self.flow.map(FlowInput::parse).transpose()?;
        if monitor.is_some() && flow.is_some() {
            return Err(FieldError::new(
                "flow",
                "a monitor-only job sends nothing for a flow to hold back",
            ));
        }
        let chain = self
            .chain
            .map(|c| c.parse("chain"))
            .transpose()?
            .unwrap_or_default();
        if monitor.is_some() && !chain.is_empty() {
            return Err(FieldError::new(
                "chain",
                "a monitor-only job's runs end by pings, which start no chained runs",
            ));
        }
        let gates = crate::domain::gate::Gates::parse(self.requires, self.requires_any)?;
        if monitor.is_some() && !gates.is_empty() {
            return Err(FieldError::new(
                "requires",
                "a monitor-only job's runs await pings, which no gate can hold",
            ));
        }
        let alerts = self.alerts.map(|a| a.parse("alerts")).transpose()?;
        let mute_until = self
            .mute_until
            .map(|text| {
                crate::domain::instant::parse(&text).map_err(|_| {
                    FieldError::new(
                        "mute_until",
                        format!("must be an RFC 3339 instant with an offset, got {text:?}"),
                    )
                })
            })
            .transpose()?;
        let secret = match self.secret.as_deref() {
            Some(_) if monitor.is_some() => {
                return Err(FieldError::new(
                    "secret",
                    "a monitor-only job sends no requests to sign",
                ));
            }
            Some(text) => {
                Some(ChosenSecret::parse(text).map_err(|m| FieldError::new("secret", m))?)
            }
            None => None,
        };
        let labels = match &self.labels {
            Some(map) => crate::domain::labels::parse(map, "labels")?,
            None => Default::default(),
        };
        let paused = self.paused.unwrap_or(false);
        if paused && self.next_run_at.is_some() {
            return Err(FieldError::new(
                "next_run_at",
                "cannot be given with paused: true (a paused job has no next run)",
            ));
        }
        let spec = JobSpec {
            id,
            definition: JobDefinition {
                name: self.name,
                trigger,
                target,
                monitor,
                misfire_grace_s,
                coalesce: self.coalesce.unwrap_or(true),
                catchup_max,
                max_instances,
                overlap,
                pause_on_failure: self.pause_on_failure.unwrap_or(false),
                max_runs,
                on_complete: self.on_complete.unwrap_or_default(),
                retry,
                flow,
                alerts,
                mute_until,
                metrics: self.metrics.unwrap_or(false),
                metadata: self.metadata.unwrap_or_default(),
                labels,
                chain,
                gates,
            },
            paused,
            next_run_at: self.next_run_at.map(|forced| forced.resolve(ctx.now)),
            secret,
        };
        if spec.definition.target.as_ref().is_some_and(|t| t.template) {
            let id = spec.id.as_ref().map_or("", JobId::as_str);
            crate::domain::template::check(id, &spec.definition, ctx.now)?;
        }
        Ok(spec)
    }
}

/// Where a job stands; `next_run_at` is set exactly when `scheduled`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum JobState {
    Scheduled,
    Paused,
    Completed,
}

impl JobState {
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Scheduled => "scheduled",
            JobState::Paused => "paused",
            JobState::Completed => "completed",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "scheduled" => Some(JobState::Scheduled),
            "paused" => Some(JobState::Paused),
            "completed" => Some(JobState::Completed),
            _ => None,
        }
    }
}

/// A job's schedule: its state and next fire time, which only exists
/// while it is scheduled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Schedule {
    Scheduled {
        next_run_at: DateTime<Utc>,
    },
    Paused,
    /// The trigger yields no more fire times.
    Completed,
}

impl Schedule {
    /// Scheduled at `next`, or completed when the trigger has none left.
    pub fn next_or_completed(next: Option<DateTime<Utc>>) -> Self {
        match next {
            Some(next_run_at) => Schedule::Scheduled { next_run_at },
            None => Schedule::Completed,
        }
    }

    pub fn state(self) -> JobState {
        match self {
            Schedule::Scheduled { .. } => JobState::Scheduled,
            Schedule::Paused => JobState::Paused,
            Schedule::Completed => JobState::Completed,
        }
    }

    pub fn next_run_at(self) -> Option<DateTime<Utc>> {
        match self {
            Schedule::Scheduled { next_run_at } => Some(next_run_at),
            _ => None,
        }
    }

    /// Back from the stored pair; `None` when they disagree.
    pub fn from_parts(state: JobState, next_run_at: Option<DateTime<Utc>>) -> Option<Self> {
        match (state, next_run_at) {
            (JobState::Scheduled, Some(next_run_at)) => Some(Schedule::Scheduled { next_run_at }),
            (JobState::Paused, None) => Some(Schedule::Paused),
            (JobState::Completed, None) => Some(Schedule::Completed),
            _ => None,
        }
    }
}

impl JobSpec {
    /// The schedule of a job created (or given a new trigger) at `now`.
    pub fn initial_schedule(&self, now: DateTime<Utc>) -> Schedule {
        if self.paused {
            Schedule::Paused
        } else if let Some(forced) = self.next_run_at {
            Schedule::Scheduled {
                next_run_at: forced,
            }
        } else {
            Schedule::next_or_completed(self.definition.trigger.first_fire_time(now))
        }
    }
}

impl JobDefinition {
    /// The schedule of a job resumed at `now`: what fell due while it was
    /// paused is not delivered.
    pub fn resumed_schedule(&self, now: DateTime<Utc>) -> Schedule {
        Schedule::next_or_completed(self.trigger.next_at_or_after(now))
    }
}

/// A job search's text (`q`, the id or name holds it in any case):
/// none when blank.
pub fn search_text(q: Option<&str>) -> Result<Option<String>, FieldError> {
    let Some(text) = q.map(str::trim).filter(|t| !t.is_empty()) else {
        return Ok(None);
    };
    // PostgreSQL cannot hold a NUL, so no job's id or name has one.
    if text.contains('\0') {
        return Err(FieldError::new(
            "q",
            "must not contain a NUL character (\\u0000)",
        ));
    }
    if text.chars().count() > MAX_NAME_LEN {
        return Err(FieldError::new(
            "q",
            format!("must be at most {MAX_NAME_LEN} characters"),
        ));
    }
    Ok(Some(text.to_string()))
}

impl Job {
    /// The job in its canonical input form (defaults filled in): what a
    /// client reads back, and the document a PATCH merges into.
    pub fn to_input(&self) -> JobInput {
        let d = &self.definition;
        let (requires, requires_any) = d.gates.to_inputs();
        JobInput {
            id: Some(self.id.to_string()),
            name: d.name.clone(),
            trigger: Some(d.trigger.to_input()),
            target: d.target.as_ref().map(Target::to_input),
            monitor: d.monitor.map(Monitor::to_input),
            misfire_grace_s: d.misfire_grace_s.map(i64::from),
            coalesce: Some(d.coalesce),
            catchup_max: Some(d.catchup_max.into()),
            max_instances: Some(d.max_instances.into()),
            overlap: Some(d.overlap.mode()),
            buffer_max: d.overlap.buffer_max().map(i64::from),
            pause_on_failure: Some(d.pause_on_failure),
            max_runs: d.max_runs.map(i64::from),
            on_complete: Some(d.on_complete),
            retry: Some(d.retry.to_input()),
            completion: d.completion_input(),
            chain: d.chain_input(),
            requires,
            requires_any,
            flow: d.flow.as_ref().map(Flow::to_input),
            alerts: d.alerts.as_ref().map(AlertPolicy::to_input),
            mute_until: d.mute_until.map(|t| crate::domain::instant::format(&t)),
            metrics: Some(d.metrics),
            paused: Some(self.schedule == Schedule::Paused),
            next_run_at: None,
            metadata: Some(d.metadata.clone()),
            labels: (!d.labels.is_empty()).then(|| {
                d.labels
                    .iter()
                    .map(|(k, v)| (k.clone(), Value::String(v.clone())))
                    .collect()
            }),
            // Never read back: a patch without one keeps the job's.
            secret: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ctx() -> ParseContext {
        ParseContext {
            now: instant::parse("2026-11-23T10:00:00Z").unwrap(),
            network_policy: NetworkPolicy::default(),
            binding: None,
        }
    }

    fn parse(v: Value) -> Result<JobSpec, String> {
        let input: JobInput = serde_json::from_value(v).map_err(|e| e.to_string())?;
        input.parse(ctx()).map_err(|e| e.to_string())
    }

    fn minimal() -> Value {
        json!({"trigger": {"type": "interval", "every_s": 60}, "target": {"url": "http://x.test"}})
    }

    fn with(field: &str, value: Value) -> Value {
        let mut v = minimal();
        v[field] = value;
        v
    }

    #[test]
    fn a_monitor_only_job_has_no_target_and_a_grace() {
        let v = json!({"trigger": {"type": "interval", "every_s": 60},
                       "target": null, "monitor": {"grace_s": 120}});
        let spec = parse(v).unwrap();
        assert_eq!(spec.definition.target, None);
        assert_eq!(spec.definition.monitor.unwrap().grace_s, 120);
        let mut v = with("monitor", json!({}));
        v["target"] = Value::Null;
        let default = parse(v).unwrap();
        assert_eq!(default.definition.monitor.unwrap().grace_s, 300);
        let both = parse(with("monitor", json!({}))).unwrap_err();
        assert!(both.starts_with("target: must be null"), "{both}");
        let neither = parse(json!({"trigger": {"type": "interval", "every_s": 60}})).unwrap_err();
        assert!(neither.starts_with("target: is required"), "{neither}");
    }

    #[test]
    fn retry_on_timeout_needs_a_callback_job() {
        let refused = parse(with("retry", json!({"on_timeout": true}))).unwrap_err();
        assert!(
            refused.starts_with("retry.on_timeout: applies only with completion.mode callback"),
            "{refused}"
        );
        let mut v = with("retry", json!({"on_timeout": true}));
        v["completion"] = json!({"mode": "callback"});
        let rules = parse(v).unwrap().definition.retry.rules.unwrap();
        assert!(rules.on_timeout);
        // Saying false is saying nothing.
        assert!(parse(with("retry", json!({"on_timeout": false}))).is_ok());
    }

    #[test]
    fn defaults_follow_apscheduler() {
        let spec = parse(minimal()).unwrap();
        assert_eq!(spec.id, None);
        assert!(!spec.paused);
        let d = spec.definition;
        assert_eq!(d.misfire_grace_s, None);
        assert!(d.coalesce);
        assert_eq!(d.max_instances, 1);
        assert_eq!(d.retry, RetryPolicy::default());
        assert!(d.metadata.is_empty());
    }

    #[test]
    fn ids_are_checked() {
        assert!(parse(with("id", json!("nightly-report.v2:eu_1"))).is_ok());
        assert_eq!(
            parse(with("id", json!("a/b"))).unwrap_err(),
            "id: contains '/'; only A-Z a-z 0-9 . _ : - are allowed"
        );
        assert_eq!(
            parse(with("id", json!("x".repeat(201)))).unwrap_err(),
            "id: must be at most 200 characters, got 201"
        );
        assert!(parse(with("id", json!("x".repeat(200)))).is_ok());
        assert_eq!(
            parse(with("id", json!(""))).unwrap_err(),
            "id: must not be empty"
        );
        assert!(
            parse(with("id", json!("..")))
                .unwrap_err()
                .starts_with("id: \"..\" is not an id")
        );
        assert!(parse(with("id", json!("..."))).is_ok());
    }

    #[test]
    fn required_fields_and_ranges() {
        assert_eq!(
            parse(json!({"target": {"url": "http://x.test"}})).unwrap_err(),
            "trigger: is required"
        );
        assert_eq!(
            parse(json!({"trigger": {"type": "date", "run_at": "2026-01-01T00:00:00Z"}}))
                .unwrap_err(),
            "target: is required (or null, with monitor, for a monitor-only job)"
        );
        assert_eq!(
            parse(with("max_instances", json!(0))).unwrap_err(),
            "max_instances: must be between 1 and 1000, got 0"
        );
        assert_eq!(
            parse(with("max_instances", json!(-3))).unwrap_err(),
            "max_instances: must be between 1 and 1000, got -3"
        );
        assert_eq!(
            parse(with("misfire_grace_s", json!(0))).unwrap_err(),
            "misfire_grace_s: must be at least 1 (or null for no limit), got 0"
        );
        let mut v = with("paused", json!(true));
        v["next_run_at"] = json!("2026-11-23T10:00:00Z");
        assert!(
            parse(v)
                .unwrap_err()
                .starts_with("next_run_at: cannot be given with paused: true")
        );
    }

    #[test]
    fn unknown_and_response_only_fields_are_refused() {
        for field in ["state", "created_at", "last_run", "bogus"] {
            let e = parse(with(field, json!(null))).unwrap_err();
            assert!(e.contains(&format!("unknown field `{field}`")), "{e}");
        }
    }

    #[test]
    fn schedules() {
        let now = ctx().now;
        let spec = parse(minimal()).unwrap();
        assert_eq!(
            spec.initial_schedule(now),
            Schedule::Scheduled {
                next_run_at: instant::parse("2026-11-23T10:01:00Z").unwrap()
            }
        );
        let forced = parse(with("next_run_at", json!("2026-11-23T10:00:00Z"))).unwrap();
        assert_eq!(forced.initial_schedule(now).next_run_at(), Some(now));
        let paused = parse(with("paused", json!(true))).unwrap();
        assert_eq!(paused.initial_schedule(now), Schedule::Paused);
        let over = parse(with(
            "trigger",
            json!({"type": "cron", "expr": "* * * * *", "end_at": "2026-11-01T00:00:00Z"}),
        ))
        .unwrap();
        assert_eq!(over.initial_schedule(now), Schedule::Completed);
        let past_date = parse(with(
            "trigger",
            json!({"type": "date", "run_at": "2026-01-01T00:00:00Z"}),
        ))
        .unwrap();
        assert_eq!(past_date.initial_schedule(now).state(), JobState::Scheduled);
        assert_eq!(
            past_date.definition.resumed_schedule(now),
            Schedule::Completed
        );
    }

    #[test]
    fn schedules_round_trip_through_their_stored_parts() {
        let t = ctx().now;
        for s in [
            Schedule::Scheduled { next_run_at: t },
            Schedule::Paused,
            Schedule::Completed,
        ] {
            assert_eq!(Schedule::from_parts(s.state(), s.next_run_at()), Some(s));
        }
        assert_eq!(Schedule::from_parts(JobState::Scheduled, None), None);
        assert_eq!(Schedule::from_parts(JobState::Paused, Some(t)), None);
    }

    #[test]
    fn round_trips_through_its_input_form() {
        let v = json!({
            "id": "nightly-report", "name": "Nightly report",
            "trigger": {"type": "cron", "expr": "30 2 * * *", "timezone": "Asia/Seoul"},
            "target": {"url": "https://example.com/hooks/report", "headers": {"x-team": "data"}, "body": {"report": "daily"}},
            "misfire_grace_s": 900, "coalesce": false, "max_instances": 2,
            "retry": {"max_attempts": 5, "backoff_initial_s": 2, "backoff_max_s": 60},
            "metadata": {"owner": "data-team"}
        });
        let spec = parse(v).unwrap();
        let job = Job {
            id: spec.id.clone().unwrap(),
            definition: spec.definition.clone(),
            schedule: Schedule::Paused,
            runs_counted: 0,
            created_at: ctx().now,
            updated_at: ctx().now,
            last_run: None,
            ping_key: None,
            pause: Default::default(),
        };
        let again = job.to_input().parse(ctx()).unwrap();
        assert_eq!(spec.definition, again.definition);
        assert!(again.paused);
    }
}
