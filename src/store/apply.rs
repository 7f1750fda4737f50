//! Applying a bundle (DESIGN.md §11.9), once for both databases: under the
//! tenant's apply lock, its jobs locked, each bundle job is a `PUT` of the
//! job decided by `lifecycle::decide` and written through the single
//! job's save path, and a prune deletes the owner's jobs the bundle lacks
//! through the single job's delete; one transaction, all or nothing. A dry
//! run does all of it and rolls back, so its plan is what would happen.

use std::collections::HashMap;

use super::dialect::Dialect;
use super::writes::{SqlStore, Written, with_tenant};
use super::{JobFilter, StoreError, StoreResult, Tenant};
use crate::domain::bundle::{self, Bundle, Plan, PlannedUpdate, field_at};
use crate::domain::event;
use crate::domain::job::{Job, ParseContext};
use crate::domain::lifecycle::{self, JobChange, JobCommand, Refusal};
use crate::domain::signing::generate_secret;

// Private bounds as in writes.rs: only ever a `PgStore` or a `SqliteStore`.
#[allow(private_bounds)]
impl<D: Dialect> SqlStore<D> {
    pub(crate) async fn apply_inner(
        &self,
        tenant: &Tenant,
        bundle: &Bundle,
        prune_owner: Option<&str>,
        dry_run: bool,
        ctx: ParseContext,
    ) -> StoreResult<Plan> {
        let mut tx = self.db.begin().await?;
        self.db.lock_applies(&mut tx, tenant).await?;
        let filter = JobFilter {
            limit: u32::MAX,
            ..Default::default()
        };
        let current = self
            .db
            .lock_jobs_matching(&mut tx, &self.key, tenant, &filter)
            .await?;
        let by_id: HashMap<&str, &Job> = current.iter().map(|j| (j.id.as_str(), j)).collect();
        let mut plan = Plan {
            dry_run,
            ..Default::default()
        };
        let (mut events, mut written) = (Vec::new(), Written::default());
        for (i, (id, entry)) in bundle.jobs.iter().enumerate() {
            let existing = by_id.get(id.as_str()).copied();
            let input = bundle::job_input(
                i,
                entry,
                existing.and_then(|j| j.definition.target.as_ref()),
            )?;
            let trigger = input.trigger.clone().unwrap_or_default();
            let spec = input.parse(ctx.clone()).map_err(|e| field_at(e, i))?;
            let command = JobCommand::Replace {
                spec,
                trigger: Box::new(trigger),
                secret: generate_secret(),
            };
            let binding = self
                .binding(&mut tx, tenant, id, &command, existing)
                .await?;
            let command = lifecycle::bound(&command, &binding).map_err(|e| refusal_at(e, i))?;
            let bound_ctx = ParseContext {
                binding: Some(binding),
                ..ctx.clone()
            };
            let mut change = lifecycle::decide(id.as_str(), existing, &command, bound_ctx)
                .map_err(|e| refusal_at(e, i))?;
            // A replacement that changes nothing is none: a second apply of
            // the same bundle writes nothing.
            if let (Some(before), JobChange::Update { .. }) = (existing, &change)
                && lifecycle::changes_nothing(before, &change)
            {
                change = JobChange::Unchanged;
            }
            // An update's next fire times, before and after.
            let fire_times = match (&change, existing) {
                (
                    JobChange::Update {
                        definition,
                        schedule,
                        ..
                    },
                    Some(before),
                ) => Some((
                    bundle::next_fire_times(&before.definition.trigger, before.schedule),
                    bundle::next_fire_times(
                        &definition.trigger,
                        schedule.unwrap_or(before.schedule),
                    ),
                )),
                (JobChange::Update { .. }, None) => return Err(StoreError::NotFound),
                _ => None,
            };
            events.extend(with_tenant(
                tenant,
                event::for_job_change(id.as_str(), existing, &change),
            ));
            match change {
                JobChange::Unchanged => plan.unchanged.push(id.to_string()),
                change => {
                    self.write_change(&mut tx, tenant, id, existing, change, &mut written)
                        .await?
                        .ok_or_else(|| {
                            StoreError::Conflict(format!(
                                "job {id} was created meanwhile; apply again"
                            ))
                        })?;
                    match fire_times {
                        // The changes are its audit record's, just written.
                        Some((next_before, next_after)) => plan.update.push(PlannedUpdate {
                            id: id.to_string(),
                            changes: written
                                .audit
                                .last()
                                .map(|r| r.changes.clone())
                                .unwrap_or_default(),
                            next_before,
                            next_after,
                        }),
                        None => plan.create.push(id.to_string()),
                    }
                }
            }
        }
        if let Some(owner) = prune_owner {
            for job in bundle::pruned(owner, &current, bundle) {
                if self.delete_in(&mut tx, tenant, &job.id).await? {
                    events.extend(with_tenant(
                        tenant,
                        vec![event::job_deleted(job.id.as_str())],
                    ));
                    plan.delete.push(job.id.to_string());
                }
            }
        }
        self.finish_changes(&mut tx, tenant, &written).await?;
        if dry_run {
            // Dropped, the transaction rolls back.
            return Ok(plan);
        }
        let deliveries = self.write_events(&mut tx, &events).await?;
        D::commit(tx).await?;
        self.written(&written);
        if !events.is_empty() {
            self.events_written(deliveries);
        }
        Ok(plan)
    }
}

/// A bundle job's refusal by the lifecycle: a field named in the bundle,
/// anything else said of the job.
fn refusal_at(e: Refusal, i: usize) -> Refusal {
    match e {
        Refusal::Invalid(e) => Refusal::Invalid(field_at(e, i)),
        Refusal::Conflict(m) => Refusal::Conflict(format!("jobs[{i}]: {m}")),
        other => other,
    }
}
