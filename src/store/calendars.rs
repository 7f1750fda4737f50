//! Calendars' write paths once for both databases (DESIGN.md §11.4): a
//! calendar written and every job that uses it re-planned in the same
//! transaction, and the binding of a job's trigger (its `H` seed, the
//! tenant's calendars) read under the job's own write.

use std::collections::BTreeSet;
use std::sync::Arc;

use chrono::{NaiveDate, Utc};

use super::dialect::Dialect;
use super::shape::StoredDefinition;
use super::writes::{SqlStore, Written, audit_record, job_row};
use super::{CalendarRecord, CalendarSaved, StoreError, StoreResult, Tenant};
use crate::domain::calendar::{Book, Calendar, CalendarSet};
use crate::domain::error::FieldError;
use crate::domain::job::{Job, JobId, Schedule};
use crate::domain::lifecycle::JobCommand;
use crate::domain::trigger::Binding;
use crate::domain::{audit, bundle};

// Private bounds as in writes.rs: only ever a `PgStore` or a `SqliteStore`.
#[allow(private_bounds)]
impl<D: Dialect> SqlStore<D> {
    /// What binds job `id`'s trigger: its `H` seed, and the tenant's
    /// calendars when the command or the stored job may use them (read in
    /// `tx`, so that a calendar changing meanwhile waits for this write).
    pub(super) async fn binding(
        &self,
        tx: &mut D::Tx,
        tenant: &Tenant,
        id: &JobId,
        command: &JobCommand,
        existing: Option<&Job>,
    ) -> StoreResult<Binding> {
        let given = match command {
            JobCommand::Create { spec, .. } | JobCommand::Replace { spec, .. } => {
                !spec.definition.trigger.calendar_ids().is_empty()
            }
            JobCommand::Patch(patch) => patch.contains_key("trigger"),
            JobCommand::Pause(_) | JobCommand::Resume | JobCommand::ResumeDue => false,
        };
        let stored = existing.is_some_and(|j| !j.definition.trigger.calendar_ids().is_empty());
        let calendars = if given || stored {
            self.book(tx, tenant, false).await?
        } else {
            Book::new()
        };
        Ok(Binding {
            seed: format!("{tenant}/{id}"),
            calendars: Arc::new(calendars),
        })
    }

    /// The tenant's calendars, read under the tenant's calendar lock:
    /// shared by a job's write, which keeps a snapshot of them, exclusive
    /// by a calendar's, which re-plans the jobs that use it. So a job
    /// written while a calendar changes is re-planned by that change, or
    /// reads it changed.
    pub(super) async fn book(
        &self,
        tx: &mut D::Tx,
        tenant: &Tenant,
        exclusive: bool,
    ) -> StoreResult<Book> {
        self.db.lock_calendars(tx, tenant, exclusive).await?;
        Ok(self
            .db
            .read_calendars(tx, tenant)
            .await?
            .into_iter()
            .map(|r| (r.calendar.id.clone(), r.calendar))
            .collect())
    }

    pub(super) async fn list_calendars_inner(
        &self,
        tenant: &Tenant,
    ) -> StoreResult<Vec<CalendarRecord>> {
        let mut tx = self.db.begin().await?;
        let all = self.db.read_calendars(&mut tx, tenant).await?;
        D::commit(tx).await?;
        Ok(all)
    }

    pub(super) async fn put_calendar_inner(
        &self,
        tenant: &Tenant,
        calendar: Calendar,
        create: bool,
    ) -> StoreResult<CalendarSaved> {
        let mut tx = self.db.begin().await?;
        let mut book = self.book(&mut tx, tenant, true).await?;
        let created = !book.contains_key(&calendar.id);
        if create && !created {
            return Err(StoreError::Conflict(format!(
                "a calendar with id {:?} already exists",
                calendar.id
            )));
        }
        let saved = self
            .write_and_replan(&mut tx, tenant, &mut book, calendar)
            .await?;
        D::commit(tx).await?;
        Ok(self.saved(tenant, saved, created))
    }

    pub(super) async fn add_calendar_days_inner(
        &self,
        tenant: &Tenant,
        id: &str,
        days: &BTreeSet<NaiveDate>,
    ) -> StoreResult<(CalendarSaved, usize)> {
        let mut tx = self.db.begin().await?;
        let mut book = self.book(&mut tx, tenant, true).await?;
        let mut calendar = book.get(id).cloned().ok_or(StoreError::NotFound)?;
        let added = calendar.add_dates(days.iter().copied());
        if calendar.rules.len() > crate::domain::calendar::MAX_RULES {
            return Err(StoreError::Invalid(FieldError::new(
                "body",
                format!(
                    "would give the calendar {} rules; at most {}",
                    calendar.rules.len(),
                    crate::domain::calendar::MAX_RULES
                ),
            )));
        }
        let saved = self
            .write_and_replan(&mut tx, tenant, &mut book, calendar)
            .await?;
        D::commit(tx).await?;
        Ok((self.saved(tenant, saved, false), added))
    }

    fn saved(
        &self,
        tenant: &Tenant,
        (record, replanned, _): (CalendarRecord, Vec<String>, serde_json::Value),
        created: bool,
    ) -> CalendarSaved {
        tracing::info!(%tenant, calendar = %record.calendar.id, rules = record.calendar.rules.len(), created, jobs_replanned = replanned.len(), "calendar saved");
        if !replanned.is_empty() {
            self.wakeups.jobs_changed();
        }
        CalendarSaved {
            record,
            created,
            replanned,
        }
    }

    /// Writes `calendar` into `book` and the store, with its audit record
    /// (whose changes it answers), then re-plans the jobs
    /// that use it: each job's trigger is bound to the new book, and a job
    /// whose next fire time lies ahead gets it again from now (its runs
    /// made ahead removed); what is due stays due (§11.4: only future
    /// occurrences change).
    pub(super) async fn write_and_replan(
        &self,
        tx: &mut D::Tx,
        tenant: &Tenant,
        book: &mut Book,
        calendar: Calendar,
    ) -> StoreResult<(CalendarRecord, Vec<String>, serde_json::Value)> {
        let id = calendar.id.clone();
        let before = book.insert(id.clone(), calendar.clone());
        CalendarSet::resolve(&id, book)
            .map_err(|m| StoreError::Invalid(FieldError::new("rules", m)))?;
        self.db.write_calendar(tx, tenant, &calendar).await?;
        let action = match before {
            None => "calendar.created",
            Some(_) => "calendar.updated",
        };
        let changes = audit::for_document(
            before.as_ref().map(bundle::calendar_entry).as_ref(),
            Some(&bundle::calendar_entry(&calendar)),
        );
        let record = audit_record(tenant.as_str(), action, &target(&id), changes.clone());
        self.db.insert_audit(tx, &[record]).await?;
        let book = Arc::new(book.clone());
        let now = Utc::now();
        let mut replanned = Vec::new();
        // Those whose schedule moved: their runs made ahead go (§12).
        let mut ahead = Vec::new();
        for job_id in self.db.calendared_jobs(tx, tenant).await? {
            let Ok(job_id) = JobId::parse(&job_id) else {
                continue;
            };
            let Some(job) = self
                .db
                .read_job(tx, &self.key, tenant, &job_id, true)
                .await?
            else {
                continue;
            };
            if !job.definition.trigger.calendar_ids().contains(&id) {
                continue;
            }
            let binding = Binding {
                seed: format!("{tenant}/{job_id}"),
                calendars: book.clone(),
            };
            let mut definition = job.definition.clone();
            definition.trigger = definition
                .trigger
                .bind(&binding, "trigger")
                .map_err(|e| StoreError::Conflict(format!("job {job_id}: {e}")))?;
            let schedule = match job.schedule {
                Schedule::Scheduled { next_run_at } if next_run_at > now => Some(
                    Schedule::next_or_completed(definition.trigger.next_at_or_after(now)),
                ),
                _ => None,
            };
            let stored = StoredDefinition::of(&definition, &self.key, job_row(tenant, &job_id));
            self.db
                .update_job(
                    tx,
                    tenant,
                    &job_id,
                    &stored,
                    &super::dialect::ScheduleUpdate {
                        schedule,
                        restart_count: false,
                        pause: &Default::default(),
                    },
                )
                .await?;
            if schedule.is_some() {
                ahead.push(job_id.as_str().to_string());
            }
            replanned.push(job_id.as_str().to_string());
        }
        // Every job re-bound is a change the schedulers read again.
        let written = Written {
            schedule_changed: !replanned.is_empty(),
            released: 0,
            replanned: ahead,
            ..Written::default()
        };
        self.finish_changes(tx, tenant, &written).await?;
        let record = self
            .db
            .read_calendars(tx, tenant)
            .await?
            .into_iter()
            .find(|r| r.calendar.id == id)
            .ok_or(StoreError::NotFound)?;
        Ok((record, replanned, changes))
    }

    pub(super) async fn delete_calendar_inner(
        &self,
        tenant: &Tenant,
        id: &str,
    ) -> StoreResult<bool> {
        let mut tx = self.db.begin().await?;
        let book = self.book(&mut tx, tenant, true).await?;
        if !book.contains_key(id) {
            return Ok(false);
        }
        let calendars: Vec<&str> = book
            .values()
            .filter(|c| c.includes().contains(id))
            .map(|c| c.id.as_str())
            .collect();
        let mut jobs = Vec::new();
        for job_id in self.db.calendared_jobs(&mut tx, tenant).await? {
            let Ok(job_id) = JobId::parse(&job_id) else {
                continue;
            };
            if let Some(job) = self
                .db
                .read_job(&mut tx, &self.key, tenant, &job_id, false)
                .await?
                && job
                    .definition
                    .trigger
                    .calendar_ids()
                    .iter()
                    .any(|c| c == id)
            {
                jobs.push(job_id.as_str().to_string());
            }
        }
        if !jobs.is_empty() || !calendars.is_empty() {
            let mut users = Vec::new();
            if !jobs.is_empty() {
                users.push(format!("jobs {}", jobs.join(", ")));
            }
            if !calendars.is_empty() {
                users.push(format!("calendars {}", calendars.join(", ")));
            }
            return Err(StoreError::Conflict(format!(
                "calendar {id:?} is in use by {}; remove it from them first",
                users.join(" and ")
            )));
        }
        let deleted = self.db.delete_calendar(&mut tx, tenant, id).await?;
        if deleted {
            let changes =
                audit::for_document(book.get(id).map(bundle::calendar_entry).as_ref(), None);
            let record = audit_record(tenant.as_str(), "calendar.deleted", &target(id), changes);
            self.db.insert_audit(&mut tx, &[record]).await?;
        }
        D::commit(tx).await?;
        if deleted {
            tracing::info!(%tenant, calendar = %id, "calendar deleted");
        }
        Ok(deleted)
    }
}

/// The target a calendar's records name.
fn target(id: &str) -> String {
    audit::target("calendar", id)
}
