//! Applying a bundle (DESIGN.md §11.9), once for both databases, under
//! the tenant's apply lock: its calendars and flow keys written through
//! their own write paths; then, its jobs locked, each bundle job a `PUT`
//! of the job decided by `lifecycle::decide` and written through the
//! single job's save path, and a prune deleting the owner's jobs the
//! bundle lacks through the single job's delete; last its subscriptions,
//! saved as `PUT /v1/subscriptions/{id}` saves them. One transaction, all
//! or nothing. A dry run does all of it and rolls back, so its plan is
//! what would happen.

use std::collections::HashMap;

use serde_json::Value;

use super::dialect::Dialect;
use super::writes::{SqlStore, Written, with_tenant};
use super::{JobFilter, NewSubscription, StoreError, StoreResult, Tenant};
use crate::domain::bundle::{
    self, Bundle, Plan, PlannedChange, PlannedUpdate, SectionPlan, entry_field,
};
use crate::domain::calendar::Calendar;
use crate::domain::event;
use crate::domain::flow;
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
        let calendar_order = bundle.calendar_order();
        let mut tx = self.db.begin().await?;
        self.db.lock_applies(&mut tx, tenant).await?;
        let mut plan = Plan {
            dry_run,
            ..Default::default()
        };
        // The jobs first, then the calendar lock, in a job write's order
        // (its row, then the calendars its trigger binds to).
        let filter = JobFilter {
            limit: u32::MAX,
            ..Default::default()
        };
        let mut current = self
            .db
            .lock_jobs_matching(&mut tx, &self.key, tenant, &filter)
            .await?;
        // Calendars and flow keys before the jobs, as the jobs use them.
        let replanned = self
            .apply_calendars(
                &mut tx,
                tenant,
                bundle,
                &calendar_order,
                &mut plan.calendars,
            )
            .await?;
        self.apply_flows(&mut tx, tenant, bundle, &mut plan.flows)
            .await?;
        if changed(&plan.calendars) {
            // Re-planned: the jobs are compared as they are now.
            current = self
                .db
                .lock_jobs_matching(&mut tx, &self.key, tenant, &filter)
                .await?;
        }
        let by_id: HashMap<&str, &Job> = current.iter().map(|j| (j.id.as_str(), j)).collect();
        let (mut events, mut written) = (Vec::new(), Written::default());
        // A job after the jobs its chain names (§11.8).
        for i in bundle.job_order() {
            let (id, entry) = &bundle.jobs[i];
            let existing = by_id.get(id.as_str()).copied();
            let input = bundle::job_input(
                i,
                entry,
                existing.and_then(|j| j.definition.target.as_ref()),
            )?;
            let trigger = input.trigger.clone().unwrap_or_default();
            let spec = input
                .parse(ctx.clone())
                .map_err(|e| entry_field(e, "jobs", i))?;
            let command = JobCommand::Replace {
                spec,
                trigger: Box::new(trigger),
                secret: generate_secret(),
            };
            let binding = self
                .binding(&mut tx, tenant, id, &command, existing)
                .await?;
            let command = lifecycle::bound(&command, &binding)
                .map_err(|e| section_error(e.into(), "jobs", i))?;
            let bound_ctx = ParseContext {
                binding: Some(binding),
                ..ctx.clone()
            };
            let mut change = lifecycle::decide(id.as_str(), existing, &command, bound_ctx)
                .map_err(|e| section_error(e.into(), "jobs", i))?;
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
                if self.delete_in(&mut tx, tenant, &job.id, false).await? {
                    events.extend(with_tenant(
                        tenant,
                        vec![event::job_deleted(job.id.as_str())],
                    ));
                    plan.delete.push(job.id.to_string());
                }
            }
        }
        // Subscriptions last: they may name the bundle's jobs.
        self.apply_subscriptions(&mut tx, tenant, bundle, &ctx, &mut plan.subscriptions)
            .await?;
        self.finish_changes(&mut tx, tenant, &written).await?;
        if dry_run {
            // Dropped, the transaction rolls back.
            return Ok(plan);
        }
        let subscriptions_changed = changed(&plan.subscriptions);
        if subscriptions_changed {
            // This apply's own events go to the subscriptions it saved,
            // read in its transaction...
            self.subscriptions_cache().clear(Some(tenant.as_str()));
        }
        let committed = async {
            let deliveries = self.write_events(&mut tx, &events).await?;
            D::commit(tx).await?;
            Ok::<_, StoreError>(deliveries)
        }
        .await;
        if subscriptions_changed {
            // ...and no read made in it outlives it, committed or not.
            self.subscriptions_cache().clear(Some(tenant.as_str()));
        }
        let deliveries = committed?;
        self.written(&written);
        if !events.is_empty() {
            self.events_written(deliveries);
        }
        if replanned {
            self.wakeups.jobs_changed();
        }
        if changed(&plan.flows) {
            self.wakeups.flows_changed();
        }
        if subscriptions_changed {
            self.subscriptions_changed(tenant).await?;
        }
        Ok(plan)
    }

    /// Writes the bundle's calendars that differ from the stored ones,
    /// under the tenant's calendar lock, each re-planning the jobs that use
    /// it (§11.4); answers whether any job was re-planned.
    async fn apply_calendars(
        &self,
        tx: &mut D::Tx,
        tenant: &Tenant,
        bundle: &Bundle,
        order: &[usize],
        plan: &mut SectionPlan,
    ) -> StoreResult<bool> {
        if bundle.calendars.is_empty() {
            return Ok(false);
        }
        let mut book = self.book(tx, tenant, true).await?;
        let mut replanned = false;
        for &i in order {
            let calendar = &bundle.calendars[i];
            let id = calendar.id.clone();
            let stored = book.get(&id).map(Calendar::to_input);
            if stored.as_ref() == Some(&calendar.to_input()) {
                plan.unchanged.push(id);
                continue;
            }
            let (_, jobs, changes) = self
                .write_and_replan(tx, tenant, &mut book, calendar.clone())
                .await
                .map_err(|e| section_error(e, "calendars", i))?;
            replanned |= !jobs.is_empty();
            planned(plan, id, stored.is_none(), changes);
        }
        Ok(replanned)
    }

    /// Defines the bundle's flow keys whose limits differ from the stored
    /// ones (§11.1).
    async fn apply_flows(
        &self,
        tx: &mut D::Tx,
        tenant: &Tenant,
        bundle: &Bundle,
        plan: &mut SectionPlan,
    ) -> StoreResult<()> {
        if bundle.flows.is_empty() {
            return Ok(());
        }
        let stored = self.db.list_flows(tx, tenant.as_str()).await?;
        for (key, limits) in &bundle.flows {
            let before = stored.iter().find(|f| f.key == key.as_str());
            if before.is_some_and(|f| f.limits == *limits && f.defined_by == flow::DEFINED_BY_API) {
                plan.unchanged.push(key.as_str().to_string());
                continue;
            }
            let changes = self.put_flow_in(tx, tenant, key.as_str(), *limits).await?;
            planned(plan, key.as_str().to_string(), before.is_none(), changes);
        }
        Ok(())
    }

    /// Creates or replaces the bundle's subscriptions that differ from the
    /// stored ones (§9); a replaced one keeps its signing secret.
    async fn apply_subscriptions(
        &self,
        tx: &mut D::Tx,
        tenant: &Tenant,
        bundle: &Bundle,
        ctx: &ParseContext,
        plan: &mut SectionPlan,
    ) -> StoreResult<()> {
        for (i, (id, entry)) in bundle.subscriptions.iter().enumerate() {
            let stored = self
                .db
                .lock_subscription(tx, &self.key, tenant, id.as_str())
                .await?;
            let input = bundle::subscription_input(i, entry, stored.as_ref().map(|s| &s.target))?;
            let format = input.format.unwrap_or_default();
            let (target, interest) = input
                .parse(&ctx.network_policy)
                .map_err(|e| entry_field(e, "subscriptions", i))?;
            if stored.as_ref().is_some_and(|s| {
                s.target.url == target.url && s.interest == interest && s.format == format
            }) {
                plan.unchanged.push(id.to_string());
                continue;
            }
            let new = NewSubscription {
                id: id.to_string(),
                target,
                interest,
                format,
                secret: generate_secret(),
            };
            let (_, created, changes) = self
                .write_subscription_in(tx, tenant, &new, stored)
                .await
                .map_err(|e| section_error(e, "subscriptions", i))?;
            planned(plan, id.to_string(), created, changes);
        }
        Ok(())
    }
}

/// One entry of a section written: made, or changed as `changes` say.
fn planned(plan: &mut SectionPlan, id: String, created: bool, changes: Value) {
    if created {
        plan.create.push(id);
    } else {
        plan.update.push(PlannedChange { id, changes });
    }
}

/// Whether an apply wrote anything in a section.
fn changed(plan: &SectionPlan) -> bool {
    !plan.create.is_empty() || !plan.update.is_empty()
}

/// A refusal of entry `i` of the bundle's `section`, by the store or the
/// domain's rules: a field named in the bundle (`jobs[2].trigger.expr`),
/// anything else said of the entry.
fn section_error(e: StoreError, section: &str, i: usize) -> StoreError {
    let said = |m: String| format!("{section}[{i}]: {m}");
    match e {
        StoreError::Invalid(e) => StoreError::Invalid(entry_field(e, section, i)),
        StoreError::Conflict(m) => StoreError::Conflict(said(m)),
        StoreError::Refused(Refusal::Invalid(e)) => {
            StoreError::Refused(Refusal::Invalid(entry_field(e, section, i)))
        }
        StoreError::Refused(Refusal::Conflict(m)) => {
            StoreError::Refused(Refusal::Conflict(said(m)))
        }
        other => other,
    }
}
