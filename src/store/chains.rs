//! Chains' write paths once for both databases (DESIGN.md §11.8): a job's
//! edges written with it (every child a job of the tenant, no cycle), the
//! referrers a deletion must not leave behind, and the one run each child
//! gets when a parent's run ends, in the transaction that records the end.

use chrono::Utc;

use super::dialect::Dialect;
use super::writes::{RunOrigin, SqlStore, Written};
use super::{AttemptRecord, StoreError, StoreResult, Tenant};
use crate::domain::chain::{self, Chain};
use crate::domain::error::FieldError;
use crate::domain::event::NewEvent;
use crate::domain::job::JobId;
use crate::domain::lifecycle::JobChange;
use crate::domain::retry::Outcome;
use crate::domain::template::ParentFacts;

// Private bounds as in writes.rs: only ever a `PgStore` or a `SqliteStore`.
#[allow(private_bounds)]
impl<D: Dialect> SqlStore<D> {
    /// Writes job `id`'s edges as its saved `chain` says, in `tx` (the job
    /// written already). `had`: it had edges before.
    pub(super) async fn write_edges_in(
        &self,
        tx: &mut D::Tx,
        tenant: &Tenant,
        id: &JobId,
        chain: &Chain,
        had: bool,
    ) -> StoreResult<()> {
        if chain.is_empty() && !had {
            return Ok(());
        }
        // Two saves could close a cycle together: a tenant's chain edits
        // take turns (re-entrant within an apply, which holds it already).
        self.db.lock_applies(tx, tenant).await?;
        for edge in &chain.edges {
            let field = chain.field_of(edge.child.as_str());
            match self
                .db
                .monitor_only(tx, tenant.as_str(), edge.child.as_str())
                .await?
            {
                None => {
                    return Err(FieldError::new(
                        field,
                        format!(
                            "names job {:?}, which this tenant does not have",
                            edge.child.as_str()
                        ),
                    )
                    .into());
                }
                Some(true) => {
                    return Err(FieldError::new(
                        field,
                        format!(
                            "names monitor-only job {:?}, which sends nothing to chain to",
                            edge.child.as_str()
                        ),
                    )
                    .into());
                }
                Some(false) => {}
            }
        }
        let others = self.db.tenant_edges(tx, tenant.as_str()).await?;
        let children: Vec<&str> = chain.edges.iter().map(|e| e.child.as_str()).collect();
        if let Some(path) = chain::cycle(id.as_str(), &children, &others) {
            return Err(FieldError::new(
                chain.field_of(&path[1]),
                format!("makes a cycle: {}", path.join(" → ")),
            )
            .into());
        }
        self.db
            .replace_edges(tx, tenant.as_str(), id.as_str(), &chain.edges)
            .await
    }

    /// Before job `id` is deleted in `tx`: a 409 naming the jobs whose
    /// chains or gates name it, unless `drop_refs`, which takes it out of
    /// theirs (each change written and audited as a save).
    pub(super) async fn release_referrers_in(
        &self,
        tx: &mut D::Tx,
        tenant: &Tenant,
        id: &JobId,
        drop_refs: bool,
    ) -> StoreResult<()> {
        let chains = self.db.referrers(tx, tenant.as_str(), id.as_str()).await?;
        let gates = self.db.requirers(tx, tenant.as_str(), id.as_str()).await?;
        if chains.is_empty() && gates.is_empty() {
            return Ok(());
        }
        if !drop_refs {
            let named = [("the chain", &chains), ("the gates", &gates)]
                .into_iter()
                .filter(|(_, jobs)| !jobs.is_empty())
                .map(|(what, jobs)| format!("{what} of {}", jobs.join(", ")))
                .collect::<Vec<_>>()
                .join(" and ");
            return Err(StoreError::Conflict(format!(
                "job {id} is named by {named}; delete it with ?drop_refs=true to take it out of \
                 theirs too"
            )));
        }
        let mut referrers: Vec<String> = chains.into_iter().chain(gates).collect();
        referrers.sort_unstable();
        referrers.dedup();
        let mut written = Written::default();
        for parent in referrers {
            let parent_id = super::job_id(parent)?;
            let Some(job) = self
                .db
                .read_job(tx, &self.key, tenant, &parent_id, true)
                .await?
            else {
                continue;
            };
            let mut definition = job.definition.clone();
            definition.chain.edges.retain(|e| e.child != *id);
            definition.gates.all.retain(|r| r.job != *id);
            definition.gates.any.retain(|r| r.job != *id);
            let change = JobChange::Update {
                definition,
                schedule: None,
                restart_count: false,
                secret: None,
                pause: job.pause.clone(),
            };
            self.write_change(tx, tenant, &parent_id, Some(&job), change, &mut written)
                .await?;
            tracing::info!(%tenant, job_id = %parent_id, dropped = %id, "chain edge or gate dropped: the job it named is deleted");
        }
        self.finish_changes(tx, tenant, &written).await
    }

    /// The chained runs of recorded ends (§11.8): each child of a job
    /// whose run succeeded or failed gets one run (none when that parent
    /// run made it already: its end is recorded once, but a retried
    /// transaction must not make two). Answers their events, and whether
    /// any is pending now.
    pub(super) async fn chain_runs_in(
        &self,
        tx: &mut D::Tx,
        records: &[AttemptRecord],
        recorded: &[uuid::Uuid],
    ) -> StoreResult<(Vec<(String, NewEvent)>, bool)> {
        let (mut events, mut pending) = (Vec::new(), false);
        let ended = records.iter().filter(|r| {
            r.follow_up.chain
                && recorded.contains(&r.run_id)
                && matches!(r.outcome, Outcome::Succeeded | Outcome::Failed)
        });
        for record in ended {
            let Some(job_id) = &record.job_id else {
                continue;
            };
            let edges = self
                .db
                .edges_of(tx, record.tenant.as_str(), job_id.as_str())
                .await?;
            let status = record.outcome.run_status();
            let children = chain::children_of(&edges, status);
            if children.is_empty() {
                continue;
            }
            let scheduled_for = self
                .db
                .run_scheduled_for(tx, record.run_id)
                .await?
                .unwrap_or_else(Utc::now);
            let parent = ParentFacts {
                run_id: record.run_id,
                job_id: job_id.to_string(),
                status,
                scheduled_for,
            };
            for (child, delay_s) in children {
                let origin = RunOrigin::Chain {
                    parent: parent.clone(),
                    delay_s,
                };
                match self
                    .make_run_in(tx, &record.tenant, &child, &origin)
                    .await?
                {
                    Some(made) => {
                        tracing::info!(tenant = %record.tenant, job_id = %child, run_id = %made.run.id, parent_job_id = %job_id, parent_run_id = %record.run_id, status = made.run.status.as_str(), "chained run made");
                        pending |= made.pending;
                        events.extend(made.events);
                    }
                    None => {
                        tracing::debug!(tenant = %record.tenant, job_id = %child, parent_run_id = %record.run_id, "no chained run: made already, or the job cannot take one");
                    }
                }
            }
        }
        Ok((events, pending))
    }
}
