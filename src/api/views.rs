//! What the API answers with: jobs, runs, lists.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{Map, Value};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::domain::instant;
use crate::domain::job::JobState;
use crate::domain::retry::RetryInput;
use crate::domain::run::RunStatus;
use crate::domain::target::TargetInput;
use crate::domain::trigger::TriggerInput;
use crate::store::{Job, RunSummary};

/// A job as the service returns it: the definition, with defaults filled
/// in, and its schedule. `state`, `next_run_at`, `created_at`,
/// `updated_at` and `last_run` are answers only; a request may not set them.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Job)]
pub struct JobView {
    pub id: String,
    pub name: Option<String>,
    pub trigger: TriggerInput,
    pub target: TargetInput,
    pub misfire_grace_s: Option<u32>,
    pub coalesce: bool,
    pub max_instances: u32,
    pub retry: RetryInput,
    pub paused: bool,
    #[schema(value_type = Object)]
    pub metadata: Map<String, Value>,
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

impl From<Job> for JobView {
    fn from(job: Job) -> Self {
        let spec = job.spec;
        Self {
            id: job.id.to_string(),
            name: spec.name,
            trigger: spec.trigger.to_input(),
            target: spec.target.to_input(),
            misfire_grace_s: spec.misfire_grace_s,
            coalesce: spec.coalesce,
            max_instances: spec.max_instances,
            retry: spec.retry.to_input(),
            paused: job.schedule.state == JobState::Paused,
            metadata: spec.metadata,
            state: job.schedule.state,
            next_run_at: job.schedule.next_run_at,
            created_at: job.created_at,
            updated_at: job.updated_at,
            last_run: job.last_run.map(RunSummaryView::from),
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
