//! The operations both front ends call (DESIGN §1, "as it grew"): each
//! once, with its log line and metric, as svix's `create_message_inner`
//! serves its API and its dashboard. A front end parses, calls one of
//! these and maps the answer; `via` says which one in the log.

use std::time::Duration;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::domain::agenda::{self, AgendaItem};
use crate::domain::auth::Tenant;
use crate::domain::backfill::BackfillSpec;
use crate::domain::error::FieldError;
use crate::domain::job::{JobId, JobInput, JobState, ParseContext, PauseNote};
use crate::domain::labels::Selector;
use crate::domain::lifecycle::JobCommand;
use crate::domain::network_policy::NetworkPolicy;
use crate::domain::run::RunCause;
use crate::domain::signing::generate_secret;
use crate::domain::target::Target;
use crate::domain::template::{self, RunFacts};
use crate::metrics::Metrics;
use crate::store::{
    BackfillMade, DynStore, Idempotency, Job, JobFilter, JobSecret, Run, Saved, StoreError,
    StoreResult,
};

/// Jobs read per page while an agenda gathers them.
const AGENDA_PAGE: u32 = 1_000;

/// Which front end asked: the API or the dashboard.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    Api,
    Dashboard,
}

impl Via {
    fn as_str(self) -> &'static str {
        match self {
            Via::Api => "api",
            Via::Dashboard => "dashboard",
        }
    }
}

/// What an operation needs: the store, the metrics, the target policy a
/// changed job is read under, and who asks for which tenant.
pub struct Ops<'a> {
    pub store: &'a DynStore,
    pub metrics: &'a Metrics,
    pub network_policy: &'a NetworkPolicy,
    /// For what an operation sends itself: a cancel's request (§11.7).
    pub webhooks: &'a crate::dispatch::client::WebhookClient,
    pub tenant: &'a Tenant,
    pub via: Via,
}

impl Ops<'_> {
    /// Pauses a job: no fire times until it is resumed, or until the
    /// note's `until` (§11.9).
    pub async fn pause(&self, id: &JobId, note: PauseNote) -> StoreResult<Job> {
        let job = self.change(id, JobCommand::Pause(note)).await?;
        tracing::info!(tenant = %self.tenant, job_id = %job.id, paused_until = job.pause.until.map(|t| crate::domain::instant::format(&t)), reason = job.pause.reason.as_deref(), via = self.via.as_str(), "job paused");
        Ok(job)
    }

    /// Resumes a job from now.
    pub async fn resume(&self, id: &JobId) -> StoreResult<Job> {
        let job = self.change(id, JobCommand::Resume).await?;
        tracing::info!(tenant = %self.tenant, job_id = %job.id, state = job.schedule.state().as_str(), via = self.via.as_str(), "job resumed");
        Ok(job)
    }

    /// Creates a job from the dashboard's form (the API's create adds an
    /// Idempotency-Key). `secret` is the new job's unless it gives one.
    pub async fn create(&self, input: JobInput, secret: String) -> StoreResult<Job> {
        let ctx = self.context();
        let spec = input.parse(ctx.clone())?;
        let id = spec.id.clone().unwrap_or_else(JobId::generate);
        let command = JobCommand::Create { spec, secret };
        let (job, _) = self
            .store
            .save_job(self.tenant, &id, &command, ctx, None)
            .await?;
        tracing::info!(tenant = %self.tenant, job_id = %job.id, state = job.schedule.state().as_str(), via = self.via.as_str(), "job created");
        Ok(job)
    }

    /// Replaces job `id`'s definition, or creates it (`PUT /v1/jobs/{id}`,
    /// and the dashboard's edit); `secret` is a new job's unless it gives
    /// one. Answers whether it was made or replaced.
    pub async fn replace(
        &self,
        id: &JobId,
        input: JobInput,
        secret: String,
    ) -> StoreResult<(Job, Saved)> {
        if let Some(given) = &input.id
            && given != id.as_str()
        {
            return Err(FieldError::new(
                "id",
                format!("{given:?} differs from the path's {:?}", id.as_str()),
            )
            .into());
        }
        let ctx = self.context();
        let trigger = input.trigger.clone().unwrap_or_default();
        let spec = input.parse(ctx.clone())?;
        let command = JobCommand::Replace {
            spec,
            trigger: Box::new(trigger),
            secret,
        };
        let (job, saved) = self
            .store
            .save_job(self.tenant, id, &command, ctx, None)
            .await?;
        tracing::info!(tenant = %self.tenant, job_id = %job.id, state = job.schedule.state().as_str(), created = saved == Saved::Created, via = self.via.as_str(), "job replaced");
        Ok((job, saved))
    }

    fn context(&self) -> ParseContext {
        ParseContext {
            now: Utc::now(),
            network_policy: self.network_policy.clone(),
            binding: None,
        }
    }

    async fn change(&self, id: &JobId, command: JobCommand) -> StoreResult<Job> {
        let ctx = self.context();
        let (job, _) = self
            .store
            .save_job(self.tenant, id, &command, ctx, None)
            .await?;
        Ok(job)
    }

    /// The request a run of the job for `scheduled_for` would send (§11.2):
    /// its template rendered with the job's last success as it stands; a
    /// template that does not render for it is refused, naming the field.
    pub async fn render(
        &self,
        id: &JobId,
        scheduled_for: Option<DateTime<Utc>>,
    ) -> StoreResult<(DateTime<Utc>, Target)> {
        let (job, last_success) = self
            .store
            .job_for_render(self.tenant, id)
            .await?
            .ok_or(StoreError::NotFound)?;
        let now = crate::domain::instant::truncate(Utc::now());
        let scheduled_for = scheduled_for.or(job.schedule.next_run_at()).unwrap_or(now);
        let facts = RunFacts {
            run_id: Uuid::now_v7(),
            scheduled_for,
            cause: RunCause::Schedule,
            occurrences: 1,
            last_success,
            parent: None,
        };
        let target = template::render(id.as_str(), &job.definition, &facts)
            .map_err(|e| StoreError::Invalid(e.into()))?;
        Ok((scheduled_for, target))
    }

    /// Backfills the job's occurrences in a range, or lists them (§11.3).
    pub async fn backfill(&self, id: &JobId, spec: &BackfillSpec) -> StoreResult<BackfillMade> {
        self.store.create_backfill(self.tenant, id, spec).await
    }

    /// A manual run now; over `max_instances` it waits or is recorded as
    /// skipped as the job's overlap policy says, unless `force`.
    pub async fn run_now(
        &self,
        id: &JobId,
        idempotency: Option<&Idempotency>,
        force: bool,
    ) -> StoreResult<Run> {
        let run = self
            .store
            .create_manual_run(self.tenant, id, idempotency, force)
            .await?;
        tracing::info!(tenant = %self.tenant, job_id = %id, run_id = %run.id, status = run.status.as_str(), wait_reason = run.wait_reason.as_deref(), reason = run.reason.as_deref(), force, via = self.via.as_str(), "manual run");
        self.metrics.runs_made(run.status, 1);
        Ok(run)
    }

    /// One action on every job a selector picks, all or nothing (§11.9).
    pub async fn bulk(
        &self,
        request: &crate::domain::bulk::BulkRequest,
    ) -> StoreResult<crate::store::bulk::BulkOutcome> {
        let outcome = self
            .store
            .bulk_jobs(self.tenant, request, self.context())
            .await?;
        tracing::info!(tenant = %self.tenant, action = request.action.as_str(), selector = %request.selector, matched = outcome.matched, changed = outcome.changed, dry_run = outcome.dry_run, via = self.via.as_str(), "bulk action");
        for status in &outcome.runs_made {
            self.metrics.runs_made(*status, 1);
        }
        Ok(outcome)
    }

    /// Applies a bundle (§11.9): the plan, carried out unless `dry_run`.
    pub async fn apply(
        &self,
        bundle: &crate::domain::bundle::Bundle,
        prune_owner: Option<&str>,
        dry_run: bool,
    ) -> StoreResult<crate::domain::bundle::Plan> {
        let plan = self
            .store
            .apply_bundle(self.tenant, bundle, prune_owner, dry_run, self.context())
            .await?;
        tracing::info!(tenant = %self.tenant, jobs = bundle.jobs.len(), created = plan.create.len(), updated = plan.update.len(), deleted = plan.delete.len(), unchanged = plan.unchanged.len(), prune_owner, dry_run, via = self.via.as_str(), "bundle applied");
        Ok(plan)
    }

    /// The tenant's bundle (§11.9): the jobs `selector` picks, or with an
    /// empty one every job, calendar, subscription and flow key defined by the
    /// API (a key a job defined goes with the job). A selector picking
    /// more than a bundle holds is refused.
    pub async fn export(&self, selector: Selector) -> StoreResult<serde_json::Value> {
        use crate::domain::bundle::{self, MAX_BUNDLE_JOBS};
        let everything = selector.requirements().is_empty();
        let filter = JobFilter {
            selector,
            limit: MAX_BUNDLE_JOBS as u32 + 1,
            ..Default::default()
        };
        let jobs = self.store.list_jobs(self.tenant, &filter).await?;
        if jobs.len() > MAX_BUNDLE_JOBS {
            return Err(FieldError::new(
                "selector",
                format!("picks more than {MAX_BUNDLE_JOBS} jobs; a bundle holds at most that many"),
            )
            .into());
        }
        let (mut calendars, mut subscriptions, mut flows) = (Vec::new(), Vec::new(), Vec::new());
        if everything {
            for record in self.store.list_calendars(self.tenant).await? {
                calendars.push(bundle::calendar_entry(&record.calendar));
            }
            for s in self.store.list_subscriptions(self.tenant).await? {
                let entry = bundle::subscription_entry(&s.id, &s.target.url, &s.interest, s.format);
                subscriptions.push(entry);
            }
            for f in self.store.list_flows(self.tenant).await? {
                if f.defined_by == crate::domain::flow::DEFINED_BY_API {
                    flows.push(bundle::flow_entry(&f.key, f.limits));
                }
            }
        }
        Ok(bundle::export(&jobs, calendars, subscriptions, flows))
    }

    /// Deletes a job and its runs; false when there was none.
    pub async fn delete(&self, id: &JobId, drop_refs: bool) -> StoreResult<bool> {
        let deleted = self.store.delete_job(self.tenant, id, drop_refs).await?;
        if deleted {
            tracing::info!(tenant = %self.tenant, job_id = %id, via = self.via.as_str(), "job deleted");
        }
        Ok(deleted)
    }

    /// A new signing secret; the old one signs too for `grace`.
    pub async fn rotate_secret(
        &self,
        id: &JobId,
        grace: Duration,
    ) -> StoreResult<Option<JobSecret>> {
        let secret = self
            .store
            .rotate_secret(self.tenant, id, &generate_secret(), grace)
            .await?;
        if secret.is_some() {
            tracing::info!(tenant = %self.tenant, job_id = %id, grace_s = grace.as_secs(), via = self.via.as_str(), "secret rotated");
        }
        Ok(secret)
    }

    /// Sends a failed run again (redrive), with the same id.
    pub async fn redrive(&self, id: Uuid) -> StoreResult<Run> {
        let run = self.store.retry_run(self.tenant, id).await?;
        tracing::info!(tenant = %self.tenant, job_id = %run.job_id, run_id = %run.id, via = self.via.as_str(), "run sent again");
        Ok(run)
    }

    /// Cancels a run (§11.7): at once when nothing of it runs, else
    /// `cancelling`, and its receiver is asked to stop (in the
    /// background: the run ends after its grace if it never answers).
    pub async fn cancel_run(
        &self,
        id: Uuid,
    ) -> StoreResult<crate::store::callbacks::CancelReceipt> {
        let receipt = self.store.cancel_run(self.tenant, id).await?;
        tracing::info!(tenant = %self.tenant, job_id = %receipt.job_id, run_id = %id, status = receipt.status.as_str(), via = self.via.as_str(), "run cancel asked");
        if receipt.status == crate::domain::run::RunStatus::Cancelled {
            self.metrics.runs_ended(receipt.status, 1);
        }
        if receipt.notify_receiver {
            tokio::spawn(crate::cancels::ask_receiver_to_stop(
                self.store.clone(),
                self.webhooks.clone(),
                id,
                receipt.clone(),
            ));
        }
        Ok(receipt)
    }

    /// The coming occurrences of the tenant's scheduled jobs (or of one)
    /// that `selector` picks, in `(from, to]`, merged in time order (§11.4).
    pub async fn agenda(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        job: Option<&JobId>,
        selector: &Selector,
        limit: usize,
    ) -> StoreResult<Vec<AgendaItem>> {
        let scheduled = |j: &Job| {
            j.schedule.state() == JobState::Scheduled && selector.matches(&j.definition.labels)
        };
        let mut jobs = Vec::new();
        if let Some(id) = job {
            // A filter: a job that is not there lists nothing.
            if let Some(found) = self.store.get_job(self.tenant, id).await?
                && scheduled(&found)
            {
                jobs.push((found.id.to_string(), found.definition.trigger));
            }
        } else {
            let mut after = None;
            loop {
                let page = self
                    .store
                    .list_jobs(
                        self.tenant,
                        &JobFilter {
                            state: Some(JobState::Scheduled),
                            search: None,
                            selector: selector.clone(),
                            after: after.clone(),
                            ids: None,
                            limit: AGENDA_PAGE,
                        },
                    )
                    .await?;
                let more = page.len() == AGENDA_PAGE as usize;
                after = page.last().map(|j| j.id.clone());
                jobs.extend(
                    page.into_iter()
                        .map(|j| (j.id.to_string(), j.definition.trigger)),
                );
                if !more {
                    break;
                }
            }
        }
        Ok(agenda::agenda(&jobs, from, to, limit))
    }

    /// A page of jobs in id order, and whether another follows (its
    /// cursor is the last job's id).
    pub async fn jobs_page(&self, filter: JobFilter) -> StoreResult<(Vec<Job>, bool)> {
        let limit = filter.limit as usize;
        let mut jobs = self
            .store
            .list_jobs(
                self.tenant,
                &JobFilter {
                    limit: filter.limit + 1,
                    ..filter
                },
            )
            .await?;
        let more = jobs.len() > limit;
        jobs.truncate(limit);
        Ok((jobs, more))
    }
}
