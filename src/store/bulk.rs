//! Bulk actions' write path once for both databases (DESIGN.md §11.9):
//! the selected jobs locked in id order, each one's part decided by
//! `domain::bulk` and written through the same paths as a single job's
//! save, delete or run, in one transaction: all or nothing. A dry run
//! does all of it and rolls back, so it answers exactly what would happen.

use serde::Serialize;
use utoipa::ToSchema;

use super::dialect::Dialect;
use super::writes::{SqlStore, Written, with_tenant};
use super::{JobFilter, StoreError, StoreResult, Tenant};
use crate::domain::bulk::{self, BulkAction, BulkRequest, JobPart, MAX_BULK_JOBS};
use crate::domain::event;
use crate::domain::job::ParseContext;
use crate::domain::lifecycle::JobCommand;

/// What a bulk action did, or would do in a dry run.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct BulkOutcome {
    /// Jobs the selector picked.
    pub matched: usize,
    /// Of those, the ones the action changed (or would change).
    pub changed: usize,
    /// The ones it left as they were (pausing a paused job).
    pub unchanged: usize,
    /// The picked jobs' ids, in id order.
    pub job_ids: Vec<String>,
    /// True when nothing was written.
    pub dry_run: bool,
    /// The statuses of the runs a `run` made, for the metrics.
    #[serde(skip)]
    pub runs_made: Vec<crate::domain::run::RunStatus>,
}

// Private bounds as in writes.rs: only ever a `PgStore` or a `SqliteStore`.
#[allow(private_bounds)]
impl<D: Dialect> SqlStore<D> {
    pub(crate) async fn bulk_inner(
        &self,
        tenant: &Tenant,
        request: &BulkRequest,
        ctx: ParseContext,
    ) -> StoreResult<BulkOutcome> {
        let mut tx = self.db.begin().await?;
        let filter = JobFilter {
            selector: request.selector.clone(),
            ids: request.ids.clone(),
            limit: MAX_BULK_JOBS as u32 + 1,
            ..Default::default()
        };
        let jobs = self
            .db
            .lock_jobs_matching(&mut tx, &self.key, tenant, &filter)
            .await?;
        bulk::admit(request, jobs.len())?;
        let (mut events, mut runs) = (Vec::new(), Vec::new());
        let mut written = Written::default();
        let mut changed = 0;
        for job in &jobs {
            let id = &job.id;
            let ctx = match &request.action {
                // A patched trigger is bound to the job as a save binds it.
                BulkAction::Patch(patch) => {
                    let command = JobCommand::Patch(patch.clone());
                    let binding = self
                        .binding(&mut tx, tenant, id, &command, Some(job))
                        .await?;
                    ParseContext {
                        binding: Some(binding),
                        ..ctx.clone()
                    }
                }
                _ => ctx.clone(),
            };
            let part = bulk::part(&request.action, job, ctx)?;
            changed += usize::from(part.changes());
            match part {
                JobPart::Unchanged => {}
                JobPart::Change(change) => {
                    let change = *change;
                    events.extend(with_tenant(
                        tenant,
                        event::for_job_change(id.as_str(), Some(job), &change),
                    ));
                    self.write_change(&mut tx, tenant, id, Some(job), change, &mut written)
                        .await?
                        .ok_or(StoreError::NotFound)?;
                }
                JobPart::Delete => {
                    if self.delete_in(&mut tx, tenant, id, false).await? {
                        events.extend(with_tenant(tenant, vec![event::job_deleted(id.as_str())]));
                    }
                }
                JobPart::Run => {
                    let made = self.manual_run_in(&mut tx, tenant, id, false).await?;
                    events.extend(made.events.iter().cloned());
                    runs.push(made);
                }
            }
        }
        self.finish_changes(&mut tx, tenant, &written).await?;
        let outcome = BulkOutcome {
            matched: jobs.len(),
            changed,
            unchanged: jobs.len() - changed,
            job_ids: jobs.iter().map(|j| j.id.to_string()).collect(),
            dry_run: request.dry_run,
            runs_made: Vec::new(),
        };
        if request.dry_run {
            // Dropped, the transaction rolls back.
            return Ok(outcome);
        }
        let deliveries = self.write_events(&mut tx, &events).await?;
        D::commit(tx).await?;
        self.written(&written);
        for made in &runs {
            self.manual_run_made(made);
        }
        self.events_written(deliveries);
        Ok(BulkOutcome {
            runs_made: runs.iter().map(|made| made.run.status).collect(),
            ..outcome
        })
    }
}
