//! Timed pauses' end (DESIGN.md §11.9): the jobs whose `paused_until` has
//! come are resumed from it, each through the single job's save under its
//! row lock, so a job resumed, re-paused or paused for longer meanwhile is
//! left as it is (`lifecycle::decide`, `JobCommand::ResumeDue`).

use chrono::Utc;

use super::dialect::Dialect;
use super::writes::SqlStore;
use super::{Store, StoreError, StoreResult, job_id, tenant};
use crate::domain::job::{ParseContext, Schedule};
use crate::domain::lifecycle::JobCommand;

/// Jobs resumed per pass at most; the rest wait for the next.
const PASS_JOBS: u32 = 500;

// Private bounds as in writes.rs: only ever a `PgStore` or a `SqliteStore`.
#[allow(private_bounds)]
impl<D: Dialect> SqlStore<D> {
    pub(super) async fn resume_timed_pauses_inner(&self) -> StoreResult<u64> {
        let due = self.db.timed_pauses_due(Utc::now(), PASS_JOBS).await?;
        let mut resumed = 0;
        for (tenant_name, id) in due {
            let (tenant, id) = (tenant(&tenant_name)?, job_id(id)?);
            let ctx = ParseContext {
                now: Utc::now(),
                network_policy: Default::default(),
                binding: None,
            };
            match self
                .save_job(&tenant, &id, &JobCommand::ResumeDue, ctx, None)
                .await
            {
                Ok((job, _)) if job.schedule != Schedule::Paused => {
                    resumed += 1;
                    tracing::info!(%tenant, job_id = %id, state = job.schedule.state().as_str(), next_run_at = job.schedule.next_run_at().map(|t| crate::domain::instant::format(&t)), "job resumed: its timed pause ended");
                }
                Ok(_) | Err(StoreError::NotFound) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(resumed)
    }
}
