//! Delivery: claims pending runs, sends their webhooks concurrently,
//! records every attempt, retries with backoff (DESIGN.md §4, §5).

mod addresses;
pub mod client;
mod hosts;
mod shares;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::Utc;
use rand::RngExt;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::domain::retry::{AttemptNumber, AttemptResult, Backoff, Outcome, after_attempt};
use crate::domain::run::problem_in_words;
use crate::domain::success::{Answer, Failure, SuccessRules};
use crate::domain::target::Target;
use crate::instance::Liveness;
use crate::metrics::Metrics;
use crate::store::{AttemptRecord, Busy, ClaimedRun, DynStore, ExpiredLease, Subject};
use crate::wakeup::Wakeups;
use addresses::Addresses;
use client::{Delivery, Response, WebhookClient};
use hosts::Hosts;
use shares::Shares;

/// Most runs one claim takes (it never takes more than free slots).
pub const CLAIM_BATCH: u32 = 256;
/// How often expired leases are looked for: a dead instance's runs are
/// taken over within its timeout and this.
pub const RECOVERY_EVERY: Duration = Duration::from_millis(250);
/// Most attempts one completion transaction records.
pub const RECORD_BATCH: usize = 512;

pub struct Dispatcher {
    /// This service's URL as receivers reach it: callback runs' requests
    /// carry `cronhook-callback-url` under it (§11.7).
    pub public_url: String,
    pub store: DynStore,
    pub wakeups: Arc<Wakeups>,
    pub client: WebhookClient,
    /// This process, as lease holder.
    pub owner: String,
    /// Whether this process still counts as alive to the others.
    pub liveness: Arc<Liveness>,
    /// How long a silent instance keeps its leases.
    pub instance_timeout: Duration,
    pub max_in_flight: usize,
    /// Requests in flight to one host (whatever the port) at once, from this
    /// instance.
    pub max_in_flight_per_host: usize,
    /// Requests in flight for one tenant at once, from this instance
    /// (DESIGN.md §8: a tenant holds at most a share of the slots).
    pub max_in_flight_per_tenant: usize,
    pub lease_margin: Duration,
    pub poll_interval: Duration,
    /// How long a shutdown lets requests in flight finish.
    pub drain_timeout: Duration,
    pub metrics: Arc<Metrics>,
}

/// What becomes of a run whose attempt was cut off by its instance's
/// death, under the same retry rules.
fn recover(lease: &ExpiredLease<'_>) -> Outcome {
    // Sent again at once: `max_age_s` is not applied to a run cut off.
    let outcome = after_attempt(
        AttemptNumber {
            number: lease.attempt,
            before_redrive: lease.prior_attempts,
        },
        &lease.policy,
        AttemptResult::Interrupted,
        Duration::ZERO,
        rand::rng().random::<f64>(),
    )
    .outcome;
    log_outcome(
        &Logged {
            run_id: lease.run_id,
            subject: lease.subject,
            attempt: lease.attempt,
            lateness: None,
            duration: Duration::ZERO,
        },
        outcome,
        "interrupted: its instance stopped during the request",
    );
    outcome
}

/// An attempt as its log line names it.
struct Logged<'a> {
    run_id: Uuid,
    /// The job, or `subscription …` for an event's delivery.
    subject: &'a str,
    attempt: u32,
    /// A job run's first request: how late it went out.
    lateness: Option<Duration>,
    duration: Duration,
}

/// One line per finished run: a failed one is a WARN an operator can
/// alert on, a succeeded one INFO (DEBUG for an event's delivery); a retry
/// is INFO with its delay.
fn log_outcome(a: &Logged<'_>, outcome: Outcome, error: &str) {
    let (run_id, job_id, attempts) = (a.run_id, a.subject, a.attempt);
    let lateness_ms = a.lateness.map(|l| l.as_secs_f64() * 1e3);
    let duration_ms = a.duration.as_millis() as u64;
    match outcome {
        Outcome::Succeeded if job_id.starts_with("subscription ") => {
            tracing::debug!(%run_id, job_id, attempts, duration_ms, "delivered");
        }
        Outcome::Succeeded => {
            tracing::info!(%run_id, job_id, attempts, status = "succeeded", lateness_ms, duration_ms, "run succeeded");
        }
        Outcome::Retry { delay } => {
            tracing::info!(%run_id, job_id, attempt = attempts, delay_ms = delay.as_millis() as u64, error, "delivery attempt failed; retrying");
        }
        Outcome::Failed => {
            tracing::warn!(%run_id, job_id, attempts, status = "failed", lateness_ms, duration_ms, error, "run failed");
        }
        Outcome::Cancelled => {
            tracing::info!(%run_id, job_id, attempts, status = "cancelled", "run cancelled");
        }
        Outcome::Accepted { timeout, .. } => {
            tracing::info!(%run_id, job_id, attempts, status = "running", lateness_ms, duration_ms, timeout_s = timeout.as_secs(), "run accepted; its receiver completes it by callback");
        }
    }
}

/// Runs leased to this process and not yet recorded: released on shutdown.
type InFlight = Arc<Mutex<HashMap<Uuid, u32>>>;

/// The host a run's request goes to (its name or address, without the
/// port); none when its job does not read back (it fails without a
/// request).
fn host_of(run: &ClaimedRun) -> Option<String> {
    let (target, _) = run.spec.as_ref().ok()?;
    Some(crate::domain::target::host_key(&target.url))
}

/// What a request task needs: it sends its run, then the runs that waited
/// for the same host, one after another.
struct Sending {
    store: DynStore,
    client: WebhookClient,
    owner: String,
    liveness: Arc<Liveness>,
    metrics: Arc<Metrics>,
    /// Requests in flight per host, keyed by its address.
    hosts: Arc<Hosts<ClaimedRun>>,
    addresses: Addresses,
    shares: Shares,
    in_flight: InFlight,
    done: mpsc::UnboundedSender<AttemptRecord>,
    lease_margin: Duration,
    shutdown: CancellationToken,
    /// Where a cancel finds a request to abort (§11.1).
    wakeups: Arc<Wakeups>,
    public_url: String,
}

impl Sending {
    /// A run no longer this process's to record (taken over, cancelled):
    /// not released on shutdown.
    fn forget(&self, run: Uuid) {
        if let Ok(mut map) = self.in_flight.lock() {
            map.remove(&run);
        }
    }

    /// Sends `run`, then each run that waited for its host, until none
    /// waits (or the service stops: those left are released).
    async fn run(
        self: Arc<Self>,
        run: ClaimedRun,
        host: Option<String>,
        permit: OwnedSemaphorePermit,
    ) {
        let mut next = Some(run);
        while let Some(run) = next.take() {
            self.send(&run).await;
            self.shares.give_back(run.tenant.as_str());
            if self.shutdown.is_cancelled() {
                break;
            }
            while let Some(h) = &host {
                let Some((waiting, waited)) = self.hosts.finished(h) else {
                    break;
                };
                if self.still_ours(&waiting, waited).await {
                    next = Some(waiting);
                    break;
                }
                self.shares.give_back(waiting.tenant.as_str());
            }
            if next.is_none() {
                drop(permit);
                return;
            }
        }
        // Stopping: this run's place is given back; the waiting ones stay
        // leased and are released with the rest.
        if let Some(h) = &host {
            while let Some((waiting, _)) = self.hosts.finished(h) {
                self.shares.give_back(waiting.tenant.as_str());
            }
        }
        drop(permit);
    }

    /// A run that waited longer than half its lease margin: its lease is
    /// renewed first (false when another instance took it over meanwhile).
    async fn still_ours(&self, run: &ClaimedRun, waited: Duration) -> bool {
        if waited < self.lease_margin / 2 {
            return true;
        }
        match self
            .store
            .renew_lease(&self.owner, run.run_id, run.attempt, self.lease_margin)
            .await
        {
            Ok(true) => true,
            Ok(false) => {
                tracing::info!(run_id = %run.run_id, "not sent: taken over while it waited for its host");
                self.forget(run.run_id);
                false
            }
            Err(e) => {
                // Its lease runs out, and it is taken over then.
                tracing::warn!(run_id = %run.run_id, error = %e, "not sent: renewing its lease failed");
                false
            }
        }
    }

    async fn send(&self, run: &ClaimedRun) {
        // Silent too long: the others may be sending it already. Its lease
        // is left to expire; it is taken over.
        if !self.liveness.is_alive() {
            tracing::warn!(run_id = %run.run_id, "not sent: this instance has missed its heartbeats");
            return;
        }
        let record = if run.abortable {
            // A newer run of its job may cancel it meanwhile (§11.1): the
            // run is ended in the database; its request is dropped here.
            let cancel = self.wakeups.aborts.open(run.run_id);
            let sent = tokio::select! {
                record = deliver(&self.client, run, &self.public_url) => Some(record),
                _ = cancel.cancelled() => None,
            };
            self.wakeups.aborts.ended(run.run_id);
            match sent {
                Some(record) => record,
                None => {
                    tracing::info!(run_id = %run.run_id, "request aborted: the run was cancelled (replaced by a newer run)");
                    self.forget(run.run_id);
                    return;
                }
            }
        } else {
            deliver(&self.client, run, &self.public_url).await
        };
        let lateness = match &run.subject {
            // A run's first request: how late it went out.
            Subject::Job { scheduled_for, .. } if run.attempt == 1 => {
                (record.started_at - *scheduled_for).to_std().ok()
            }
            _ => None,
        };
        self.metrics.attempt(
            record.outcome,
            Duration::from_millis(record.duration_ms),
            lateness,
        );
        match (&record.job_id, record.outcome) {
            (_, Outcome::Retry { .. } | Outcome::Accepted { .. } | Outcome::Cancelled) => {}
            (Some(_), outcome) => self.metrics.runs_ended(outcome.run_status(), 1),
            (None, Outcome::Failed) => self.metrics.delivery_failed(),
            (None, Outcome::Succeeded) => {}
        }
        let _ = self.done.send(record);
    }
}

impl Dispatcher {
    pub async fn run(self, shutdown: CancellationToken) {
        // A tenant alone may hold every one of --max-in-flight; a reserve
        // beyond them keeps room for another tenant's runs at once (§8).
        let reserve = crate::domain::fair_share::least_claim(self.max_in_flight_per_tenant);
        tracing::info!(
            owner = %self.owner,
            max_in_flight = self.max_in_flight,
            reserve_for_other_tenants = reserve,
            max_in_flight_per_tenant = self.max_in_flight_per_tenant,
            max_in_flight_per_host = self.max_in_flight_per_host,
            "dispatcher started"
        );
        let slots = Arc::new(Semaphore::new(self.max_in_flight + reserve));
        let in_flight: InFlight = Arc::default();
        let (done, results) = mpsc::unbounded_channel::<AttemptRecord>();
        let recorder = tokio::spawn(record(
            self.store.clone(),
            self.owner.clone(),
            self.wakeups.clone(),
            in_flight.clone(),
            results,
        ));
        let sending = Arc::new(Sending {
            store: self.store.clone(),
            client: self.client.clone(),
            owner: self.owner.clone(),
            liveness: self.liveness.clone(),
            metrics: self.metrics.clone(),
            hosts: Arc::new(Hosts::new(self.max_in_flight_per_host)),
            addresses: Addresses::default(),
            shares: Shares::new(self.max_in_flight_per_tenant, self.max_in_flight + reserve),
            in_flight: in_flight.clone(),
            done: done.clone(),
            lease_margin: self.lease_margin,
            shutdown: shutdown.clone(),
            wakeups: self.wakeups.clone(),
            public_url: self.public_url.clone(),
        });
        let mut requests = JoinSet::new();
        let mut backoff = Backoff::new();
        let mut last_recovery: Option<tokio::time::Instant> = None;

        while !shutdown.is_cancelled() {
            while requests.try_join_next().is_some() {}
            // Expired leases are rare: look for them about once a second.
            if last_recovery.is_none_or(|at| at.elapsed() >= RECOVERY_EVERY) {
                last_recovery = Some(tokio::time::Instant::now());
                match self
                    .store
                    .recover_expired_leases(CLAIM_BATCH, self.instance_timeout, &recover)
                    .await
                {
                    Ok(0) => {}
                    Ok(n) => tracing::warn!(runs = n, "took over runs whose lease expired"),
                    Err(e) => tracing::warn!(error = %e, "recovering expired leases failed"),
                }
            }
            // The next look for expired leases bounds every sleep.
            let until_recovery = last_recovery.map_or(Duration::ZERO, |at| {
                RECOVERY_EVERY.saturating_sub(at.elapsed())
            });
            let sleep = match self.claim_and_send(&slots, &sending, &mut requests).await {
                Ok((true, _)) => continue,
                // Every slot is busy: the first one freed is the signal.
                Ok(_) if slots.available_permits() == 0 => until_recovery,
                // Runs of busy hosts or tenants are due: a freed place is
                // the signal.
                Ok((false, true)) => self.poll_interval,
                Ok((false, false)) => {
                    backoff.reset();
                    match self.store.next_attempt_in().await {
                        Ok(Some(due)) => due.min(self.poll_interval),
                        _ => self.poll_interval,
                    }
                }
                Err(e) => {
                    let wait = backoff.next_wait();
                    tracing::warn!(error = %e, retry_ms = wait.as_millis() as u64, "dispatcher claim failed");
                    wait
                }
            };
            let full = slots.available_permits() == 0;
            let sleep = sleep.min(until_recovery).max(Duration::from_millis(1));
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = self.wakeups.runs_did_change() => {}
                _ = tokio::time::sleep(sleep) => {}
                Ok(_permit) = slots.acquire(), if full => {}
                _ = sending.hosts.freed() => {}
                _ = sending.shares.freed() => {}
            }
        }

        // Stop claiming; let what is in flight finish, within the deadline.
        let open = requests.len();
        if open > 0 {
            tracing::info!(
                in_flight = open,
                timeout_s = self.drain_timeout.as_secs(),
                "dispatcher draining"
            );
        }
        let drained = tokio::time::timeout(self.drain_timeout, async {
            while requests.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            requests.abort_all();
            while requests.join_next().await.is_some() {}
        }
        drop(done);
        drop(sending);
        let _ = recorder.await;
        // Whatever was cut off goes back to pending, its attempt not counted.
        let unfinished: Vec<(Uuid, u32)> = in_flight
            .lock()
            .map(|m| m.iter().map(|(k, v)| (*k, *v)).collect())
            .unwrap_or_default();
        if !unfinished.is_empty() {
            match self
                .store
                .release_runs(&self.owner, &unfinished, Duration::ZERO)
                .await
            {
                Ok(n) => tracing::info!(released = n, "released unfinished runs"),
                Err(e) => {
                    tracing::warn!(error = %e, "releasing unfinished runs failed; their leases will expire")
                }
            }
        }
        tracing::info!("dispatcher stopped");
    }

    /// One round: claim what fits (none of the busy hosts' or tenants'
    /// runs), start sending. Answers whether the claim was full (more may
    /// be waiting), and whether busy hosts' or tenants' runs were left.
    async fn claim_and_send(
        &self,
        slots: &Arc<Semaphore>,
        sending: &Arc<Sending>,
        requests: &mut JoinSet<()>,
    ) -> Result<(bool, bool), crate::store::StoreError> {
        let free = slots.available_permits().min(CLAIM_BATCH as usize);
        if free == 0 {
            return Ok((false, false));
        }
        let plan = sending.shares.plan(free);
        let busy = Busy {
            hosts: sending.addresses.spellings(&sending.hosts.busy()),
            tenants: plan.busy,
        };
        let claimed = self
            .store
            .claim_runs(&self.owner, plan.limit as u32, self.lease_margin, &busy)
            .await?;
        let full = claimed.len() == plan.limit;
        let hosts: Vec<Option<String>> = claimed.iter().map(host_of).collect();
        sending
            .addresses
            .learn(hosts.iter().flatten().map(String::as_str))
            .await;
        for (run, host) in claimed.into_iter().zip(hosts) {
            if let Ok(mut map) = sending.in_flight.lock() {
                map.insert(run.run_id, run.attempt);
            }
            sending.shares.take(run.tenant.as_str());
            let host = host.map(|h| sending.addresses.key(&h));
            let run = match &host {
                Some(host) => match sending.hosts.admit(host, run) {
                    Some(run) => run,
                    // It waits for a request to its host to end.
                    None => continue,
                },
                None => run,
            };
            // Runs started never exceed the free slots claimed for.
            let Ok(permit) = slots.clone().try_acquire_owned() else {
                sending.shares.give_back(run.tenant.as_str());
                continue;
            };
            requests.spawn(sending.clone().run(run, host, permit));
        }
        Ok((full, busy != Busy::default()))
    }
}

/// Sends one attempt and decides what the run becomes. A callback job's
/// request also says where and with what token to complete it, under
/// `public_url` (§11.7).
pub async fn deliver(client: &WebhookClient, run: &ClaimedRun, public_url: &str) -> AttemptRecord {
    let started_at = Utc::now();
    let subject = run.subject.name();
    let (target, retry) = match &run.spec {
        Ok(spec) => spec,
        Err(e) => {
            tracing::error!(run_id = %run.run_id, job_id = %subject, error = %e, "run failed unsent");
            return AttemptRecord {
                run_id: run.run_id,
                tenant: run.tenant.clone(),
                job_id: run.job_id(),
                number: run.attempt,
                started_at,
                duration_ms: 0,
                status_code: None,
                error: Some(e.clone()),
                response_excerpt: None,
                outcome_reason: None,
                body_truncated: false,
                outcome: Outcome::Failed,
                run_reason: None,
                delivery: run.delivery(),
                follow_up: run.follow_up,
                flow: run.flow,
            };
        }
    };
    let (webhook_id, about) = match &run.subject {
        Subject::Job {
            job_id,
            scheduled_for,
        } => {
            let mut about = vec![
                ("cronhook-job-id", job_id.to_string()),
                (
                    "cronhook-scheduled-for",
                    crate::domain::instant::format(scheduled_for),
                ),
            ];
            if let Some(parent) = run.parent_run_id {
                about.push(("cronhook-parent-run-id", parent.to_string()));
            }
            if let Some(token) = &run.callback_token {
                about.push((
                    "cronhook-callback-url",
                    format!("{public_url}/v1/runs/{}/complete", run.run_id),
                ));
                about.push(("cronhook-callback-token", token.clone()));
            }
            (run.run_id, about)
        }
        // An event's deliveries carry its id: a receiver drops repeats.
        Subject::Event {
            subscription_id,
            event_id,
            event_type,
            ..
        } => (
            *event_id,
            vec![
                ("cronhook-event-type", event_type.clone()),
                ("cronhook-subscription-id", subscription_id.clone()),
            ],
        ),
    };
    let response = client
        .send(&Delivery {
            webhook_id,
            attempt: run.attempt,
            target,
            secrets: &run.secrets,
            about: &about,
        })
        .await;
    let judged = judge(target, &response);
    let result = match (response.refused, response.status, &judged) {
        (true, ..) => AttemptResult::Refused,
        (false, Some(_), Ok(())) => AttemptResult::Succeeded,
        (false, Some(status), Err(Failure::Status)) => AttemptResult::Response {
            status,
            retry_after: response.retry_after,
        },
        (false, Some(status), Err(Failure::RuleFailed(_))) => AttemptResult::RuleFailed {
            status,
            retry_after: response.retry_after,
        },
        (false, None, _) => AttemptResult::NoResponse {
            timeout: response.timed_out,
        },
    };
    let attempt = AttemptNumber {
        number: run.attempt,
        before_redrive: run.prior_attempts,
    };
    // A job's retries end `max_age_s` after the occurrence (§11.6).
    let age = match &run.subject {
        Subject::Job { scheduled_for, .. } => {
            (Utc::now() - *scheduled_for).to_std().unwrap_or_default()
        }
        Subject::Event { .. } => Duration::ZERO,
    };
    let mut decision = after_attempt(attempt, retry, result, age, rand::rng().random::<f64>());
    // A callback job's success only accepts the run (§11.7).
    if let (Outcome::Succeeded, Some(c)) = (decision.outcome, target.completion) {
        decision.outcome = Outcome::Accepted {
            timeout: Duration::from_secs(c.timeout_s.into()),
            heartbeat: c.heartbeat_s.map(|s| Duration::from_secs(s.into())),
        };
    }
    let outcome_reason = match judged {
        Err(Failure::RuleFailed(why)) => Some(why),
        _ => None,
    };
    let error = outcome_reason
        .clone()
        .or_else(|| problem_in_words(response.error.as_deref(), response.status))
        .unwrap_or_else(|| "no response".to_string());
    let lateness = match &run.subject {
        Subject::Job { scheduled_for, .. } if run.attempt == 1 => {
            (started_at - *scheduled_for).to_std().ok()
        }
        _ => None,
    };
    log_outcome(
        &Logged {
            run_id: run.run_id,
            subject: &subject,
            attempt: run.attempt,
            lateness,
            duration: response.duration,
        },
        decision.outcome,
        &error,
    );
    AttemptRecord {
        run_id: run.run_id,
        tenant: run.tenant.clone(),
        job_id: run.job_id(),
        number: run.attempt,
        started_at,
        duration_ms: u64::try_from(response.duration.as_millis()).unwrap_or(u64::MAX),
        status_code: response.status,
        error: response.error,
        response_excerpt: response.excerpt,
        outcome_reason,
        body_truncated: response.truncated,
        outcome: decision.outcome,
        run_reason: decision.reason,
        delivery: run.delivery(),
        follow_up: run.follow_up,
        flow: run.flow,
    }
}

/// What the target's success rules make of an answer (any 2xx without
/// rules); `Ok` for no answer at all, which the retry rules judge.
fn judge(target: &Target, response: &Response) -> Result<(), Failure> {
    let Some(status) = response.status else {
        return Ok(());
    };
    match target.success.as_deref() {
        None if SuccessRules::status_2xx(status) => Ok(()),
        None => Err(Failure::Status),
        Some(rules) => rules.judge(&Answer {
            status,
            body: response.excerpt.as_deref(),
            truncated: response.truncated,
            latency: response.duration,
        }),
    }
}

/// Writes finished attempts in batches: whatever has arrived goes in one
/// transaction. A transient failure is retried; a batch the database
/// refuses is written one attempt at a time, so that one bad record cannot
/// hold up the others (were the process to die first, the leases would
/// expire and the runs be redelivered).
async fn record(
    store: DynStore,
    owner: String,
    wakeups: Arc<Wakeups>,
    in_flight: InFlight,
    mut results: mpsc::UnboundedReceiver<AttemptRecord>,
) {
    let mut batch = Vec::with_capacity(RECORD_BATCH);
    while results.recv_many(&mut batch, RECORD_BATCH).await > 0 {
        if !write(&store, &owner, &batch).await && batch.len() > 1 {
            tracing::warn!(
                attempts = batch.len(),
                "recording a batch failed; recording one attempt at a time"
            );
            for record in &batch {
                if !write(&store, &owner, std::slice::from_ref(record)).await {
                    tracing::error!(run_id = %record.run_id, attempt = record.number, "the database refused this attempt's record; dropped");
                }
            }
        }
        if let Ok(mut map) = in_flight.lock() {
            for r in &batch {
                map.remove(&r.run_id);
            }
        }
        if batch
            .iter()
            .any(|r| matches!(r.outcome, Outcome::Retry { .. }))
        {
            wakeups.runs_changed();
        }
        batch.clear();
    }
}

/// Records attempts, retrying while the failure is transient. False when
/// the database refused them.
async fn write(store: &DynStore, owner: &str, records: &[AttemptRecord]) -> bool {
    let mut backoff = Backoff::new();
    loop {
        match store.record_attempts(owner, records).await {
            Ok(recorded) => {
                if (recorded as usize) < records.len() {
                    tracing::debug!(
                        dropped = records.len() - recorded as usize,
                        "attempts of runs taken over or deleted were dropped"
                    );
                }
                return true;
            }
            Err(e) if e.is_transient() => {
                let wait = backoff.next_wait();
                tracing::warn!(error = %e, retry_ms = wait.as_millis() as u64, "recording attempts failed");
                tokio::time::sleep(wait).await;
            }
            Err(e) => {
                tracing::warn!(error = %e, "the database refused recording attempts");
                return false;
            }
        }
    }
}
