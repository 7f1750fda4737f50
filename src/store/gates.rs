//! Gates' write paths once for both databases (DESIGN.md §11.8): a job's
//! requirements written with it (every job named one of the tenant's, not
//! itself), their verdicts at a claim's fire times, and the held runs
//! settled when a job they wait for succeeds or when the watchdog looks
//! again.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::dialect::{Channel, Dialect, HeldRun, JobKey, Settle};
use super::writes::SqlStore;
use super::{AttemptRecord, StoreResult, Tenant};
use crate::domain::error::FieldError;
use crate::domain::event::{self, NewEvent};
use crate::domain::gate::{Facts, Gates, Verdict};
use crate::domain::job::JobId;
use crate::domain::retry::Outcome;
use crate::domain::run::RunStatus;

/// The most held runs one watchdog pass looks at.
const WATCH_BATCH: u32 = 200;

/// What settling held runs did, for the caller to follow up after its
/// commit.
#[derive(Debug, Default)]
pub(crate) struct Settled {
    pub released: u64,
    /// Released runs wait for their flow keys, made due.
    pub flows_poked: bool,
    /// A `run.missed` for each run missed.
    pub events: Vec<(String, NewEvent)>,
    /// Jobs whose held runs ended: their other waiting runs may go.
    pub ended: Vec<JobKey>,
}

/// Each required job's latest success, as read once (§11.8).
pub(super) type Successes = HashMap<JobKey, Option<DateTime<Utc>>>;

// Private bounds as in writes.rs: only ever a `PgStore` or a `SqliteStore`.
#[allow(private_bounds)]
impl<D: Dialect> SqlStore<D> {
    /// Writes job `id`'s requirements as its saved gates say, in `tx` (the
    /// job written already). `had`: it had gates before.
    pub(super) async fn write_gates_in(
        &self,
        tx: &mut D::Tx,
        tenant: &Tenant,
        id: &JobId,
        gates: &Gates,
        had: bool,
    ) -> StoreResult<()> {
        if gates.is_empty() && !had {
            return Ok(());
        }
        for requirement in gates.iter() {
            let job = requirement.job.as_str();
            let field = gates.field_of(job);
            if requirement.job == *id {
                return Err(FieldError::new(field, "a job cannot require itself").into());
            }
            if self
                .db
                .monitor_only(tx, tenant.as_str(), job)
                .await?
                .is_none()
            {
                return Err(FieldError::new(
                    field,
                    format!("names job {job:?}, which this tenant does not have"),
                )
                .into());
            }
        }
        self.db
            .replace_requires(tx, tenant.as_str(), id.as_str(), gates)
            .await
    }

    /// Job `job`'s gates with its required jobs' latest successes, read
    /// in `tx`; `seen` keeps each success read, for the next job that
    /// names the same one.
    pub(super) async fn gate_facts_in(
        &self,
        tx: &mut D::Tx,
        tenant: &str,
        job: &str,
        seen: &mut Successes,
    ) -> StoreResult<Facts> {
        let gates = self.db.gates_of(tx, tenant, job).await?;
        let mut succeeded = HashMap::new();
        for requirement in gates.iter() {
            let key = (tenant.to_string(), requirement.job.to_string());
            let last = match seen.get(&key) {
                Some(last) => *last,
                None => {
                    let last = self.db.last_success(tx, &key).await?.map(|(_, at)| at);
                    seen.insert(key.clone(), last);
                    last
                }
            };
            succeeded.extend(last.map(|at| (key.1, at)));
        }
        Ok(Facts { gates, succeeded })
    }

    /// After recorded ends: the runs held for a job whose run succeeded
    /// are looked at again, in the same transaction.
    pub(super) async fn release_gates_in(
        &self,
        tx: &mut D::Tx,
        records: &[AttemptRecord],
        recorded: &[Uuid],
    ) -> StoreResult<Settled> {
        let mut held = Vec::new();
        let succeeded = records.iter().filter(|r| {
            r.follow_up.gates && r.outcome == Outcome::Succeeded && recorded.contains(&r.run_id)
        });
        for record in succeeded {
            let Some(job_id) = &record.job_id else {
                continue;
            };
            held.extend(
                self.db
                    .held_for(tx, record.tenant.as_str(), job_id.as_str())
                    .await?,
            );
        }
        self.settle_in(tx, held, Utc::now()).await
    }

    /// After a ping recorded a monitor's run `succeeded` (§11.5): the runs
    /// held for it are looked at again, in the same transaction.
    pub(super) async fn release_for_in(
        &self,
        tx: &mut D::Tx,
        tenant: &str,
        job: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<Settled> {
        let held = self.db.held_for(tx, tenant, job).await?;
        self.settle_in(tx, held, now).await
    }

    /// The watchdog's look at held runs due one (§11.8): released, held
    /// on or ended as their gates say now. One instance at a time.
    pub(super) async fn watch_gates_inner(&self) -> StoreResult<Settled> {
        let mut tx = self.db.begin().await?;
        let Some(now) = self.db.lock_watchdog(&mut tx).await? else {
            D::commit(tx).await?;
            return Ok(Settled::default());
        };
        let due = self.db.held_due(&mut tx, now, WATCH_BATCH).await?;
        let settled = self.settle_in(&mut tx, due, now).await?;
        let deliveries = self.write_events(&mut tx, &settled.events).await?;
        D::commit(tx).await?;
        if !settled.events.is_empty() {
            self.events_written(deliveries);
        }
        self.wake_after_settled(&settled).await?;
        Ok(settled)
    }

    /// What follows settled runs once committed (their events counted
    /// by the caller): dispatchers and flow passes woken, ended runs' jobs
    /// followed up.
    pub(super) async fn wake_after_settled(&self, settled: &Settled) -> StoreResult<()> {
        if settled.released > 0 {
            self.wakeups.runs_changed();
        }
        if settled.flows_poked {
            self.wakeups.flows_changed();
        }
        self.follow_up_ended(settled.ended.clone()).await
    }

    /// Settles `held` at `now` (the database's clock): each run's gate
    /// asked again, with its required jobs' latest successes.
    async fn settle_in(
        &self,
        tx: &mut D::Tx,
        held: Vec<HeldRun>,
        now: DateTime<Utc>,
    ) -> StoreResult<Settled> {
        let mut settled = Settled::default();
        let mut facts: HashMap<JobKey, Facts> = HashMap::new();
        let mut seen = Successes::new();
        for run in held {
            let key = (run.tenant.clone(), run.job_id.clone());
            if !facts.contains_key(&key) {
                let found = self
                    .gate_facts_in(tx, &run.tenant, &run.job_id, &mut seen)
                    .await?;
                facts.insert(key.clone(), found);
            }
            let verdict = facts[&key].verdict(run.scheduled_for, now);
            let settle = match (verdict.ends(), verdict.held()) {
                (Some(status), _) => Settle::End { status },
                (None, Some(held)) => Settle::Hold {
                    wait_reason: held.wait_reason(),
                    check_at: held.check_at(now),
                },
                (None, None) => Settle::Release,
            };
            let (changed, flow_key) = self.db.settle_held(tx, run.id, &settle, now).await?;
            if !changed {
                continue;
            }
            match (&settle, &verdict) {
                (Settle::Release, _) => {
                    tracing::info!(tenant = %run.tenant, job_id = %run.job_id, run_id = %run.id, "held run released: its gate holds");
                    settled.released += 1;
                    if let Some(flow_key) = flow_key {
                        self.db.poke_flow(tx, &run.tenant, &flow_key).await?;
                        settled.flows_poked = true;
                    }
                }
                (Settle::End { status }, Verdict::Skip { on } | Verdict::Missed { on }) => {
                    tracing::warn!(tenant = %run.tenant, job_id = %run.job_id, run_id = %run.id, status = status.as_str(), waited_for = %on, "held run ended: the job it waited for did not succeed in time");
                    if *status == RunStatus::Missed {
                        settled.events.push((
                            run.tenant.clone(),
                            event::run_gate_missed(&run.job_id, run.id, on.as_str()),
                        ));
                    }
                    settled.ended.push(key);
                }
                _ => {}
            }
        }
        if settled.released > 0 {
            self.db.notify(tx, Channel::Runs).await?;
        }
        settled.ended.sort_unstable();
        settled.ended.dedup();
        Ok(settled)
    }
}
