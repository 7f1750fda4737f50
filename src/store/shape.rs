//! The stored shape of a job's definition, shared by both stores: a
//! column per field (SQL reads `timeout_s` and `max_attempts` directly),
//! JSON text only for what is free-form (headers, body, metadata), kept as
//! the text serde_json wrote, so that it reads back exactly (PostgreSQL's
//! JSONB would round numbers a JSON client may send). It is not the
//! API's request form, so renaming an API field needs no data migration,
//! and reading it back validates nothing: what was stored was valid.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::domain::trigger::Zone;
use chrono::{DateTime, Utc};
use serde_json::{Map, Value};
use url::Url;

use super::{StoreError, StoreResult};
use crate::domain::calendar::policy::Policy;
use crate::domain::calendar::{CalendarInput, CalendarSet};
use crate::domain::job::JobDefinition;
use crate::domain::overlap::Overlap;
use crate::domain::retry::RetryPolicy;
use crate::domain::run_limit::OnComplete;
use crate::domain::sealing::{Row, SealingKey};
use crate::domain::target::{Body, Method, Target, is_sensitive_header};
use crate::domain::trigger::{
    AnyOf, Calendared, CalendarsInput, CronSchedule, CronTrigger, DateTrigger, IntervalTrigger,
    Trigger,
};

/// A definition, column by column (the field or `rename` is the column's
/// name). PostgreSQL reads rows straight into it; SQLite, whose instants
/// are integers and JSON text, maps its own row types to it.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub(crate) struct StoredDefinition {
    pub name: Option<String>,
    #[sqlx(flatten)]
    pub trigger: StoredTrigger,
    #[sqlx(flatten)]
    pub target: StoredTarget,
    pub misfire_grace_s: Option<i64>,
    #[sqlx(rename = "coalesce_runs")]
    pub coalesce: bool,
    pub catchup_max: i64,
    pub max_instances: i64,
    /// `skip`, `buffer_one` or `buffer_all` (DESIGN.md §11.1).
    pub overlap: String,
    /// Only with `buffer_all`.
    pub buffer_max: Option<i64>,
    pub pause_on_failure: bool,
    /// DESIGN.md §11.3; `on_complete` is `keep` or `delete`.
    pub max_runs: Option<i64>,
    pub on_complete: String,
    #[sqlx(flatten)]
    pub retry: StoredRetry,
    /// The job's flow as given (a JSON object, as text), and its key apart
    /// (§11.1).
    pub flow: Option<String>,
    pub flow_key: Option<String>,
    /// Its alerts and `mute_until` (§11.5), as JSON [`StoredAlerts`]; none
    /// when it does not alert.
    pub alerts: Option<String>,
    /// A JSON object, as text.
    pub metadata: String,
    /// A JSON object of strings, as text (§11.9).
    pub labels: String,
}

#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub(crate) struct StoredTrigger {
    /// `cron`, `interval` or `date`.
    pub trigger_type: String,
    pub cron_expr: Option<String>,
    pub cron_timezone: Option<String>,
    pub every_s: Option<i64>,
    pub run_at: Option<DateTime<Utc>>,
    pub start_at: Option<DateTime<Utc>>,
    pub end_at: Option<DateTime<Utc>>,
    pub jitter_s: i64,
    /// JSON text of what the columns above do not hold (§11.4): an `H`
    /// expression as written, an any_of's parts, a trigger's calendars and
    /// the snapshot of their rules; null for most triggers.
    #[sqlx(rename = "trigger_more")]
    pub more: Option<String>,
}

/// What a trigger's `trigger_more` column holds.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
struct TriggerMore {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    source: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    parts: Option<Vec<StoredPart>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    calendars: Option<CalendarsInput>,
    /// Each referred calendar with those it includes, as they read when
    /// the job or a calendar last changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    snapshot: Option<Snapshot>,
}

#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
struct Snapshot {
    exclude: Vec<Vec<CalendarInput>>,
    include_only: Vec<Vec<CalendarInput>>,
}

/// One trigger of an any_of, as its columns would hold it.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct StoredPart {
    trigger_type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    cron_expr: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    cron_source: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    every_s: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    start_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    end_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub(crate) struct StoredTarget {
    #[sqlx(rename = "target_url")]
    pub url: String,
    #[sqlx(rename = "target_method")]
    pub method: String,
    /// A JSON object of header names to values, as text.
    #[sqlx(rename = "target_headers")]
    pub headers: String,
    /// The body as JSON text (a JSON string for a text body); none is null.
    #[sqlx(rename = "target_body")]
    pub body: Option<String>,
    /// Sensitive header values and the whole URL, sealed: a JSON object
    /// `{"headers": {…}, "url": "…"}` (rows written before issue 22 hold
    /// the URL's password as `url_password` instead, and the URL itself
    /// in the clear).
    #[sqlx(rename = "target_secrets")]
    pub secrets: Option<String>,
    pub timeout_s: i64,
    /// Rendered when a run is made (§11.2).
    #[sqlx(rename = "target_template")]
    pub template: bool,
}

/// What a target's `secrets` column holds, once opened.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
struct TargetSecrets {
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    headers: Map<String, Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    url_password: Option<String>,
    /// The whole URL: a Slack or Discord webhook keeps its secret in the
    /// path, an API key may sit in the query.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    url: Option<String>,
}

/// The column a target's sealed secrets are bound to.
const TARGET_SECRETS: &str = "target_secrets";

#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub(crate) struct StoredRetry {
    pub max_attempts: i64,
    pub backoff_initial_s: i64,
    pub backoff_max_s: i64,
    /// The target's success rules and the retry rules beyond the backoff
    /// (§11.6), as JSON [`StoredRules`]; none for the defaults, so a job
    /// without rules carries one null to its claims.
    #[sqlx(rename = "delivery_rules")]
    pub rules: Option<String>,
}

/// What a job's `delivery_rules` column holds.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
struct StoredRules {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    success: Option<crate::domain::success::SuccessInput>,
    /// Only `retry_on`, `never_retry`, `max_age_s`, `delays_s` and
    /// `on_timeout`: the rest has columns.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    retry: Option<crate::domain::retry::RetryInput>,
    /// A callback job's `completion` (§11.7): claims read it here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    completion: Option<crate::domain::callback::CompletionInput>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    cancel_url: Option<String>,
    /// The jobs its runs' ends start (§11.8); `job_edges` holds the same
    /// edges for the store's own lookups.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    chain: Option<crate::domain::chain::ChainInput>,
    /// Its gates (§11.8); `job_requires` holds the same for the store's
    /// own lookups.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    requires: Option<Vec<crate::domain::gate::RequirementInput>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    requires_any: Option<Vec<crate::domain::gate::RequirementInput>>,
}

impl StoredDefinition {
    /// The columns of `d`, its target's secrets sealed with `key` for
    /// `row`.
    pub fn of(d: &JobDefinition, key: &SealingKey, row: Row<'_>) -> Self {
        Self {
            name: d.name.clone(),
            trigger: StoredTrigger::of(&d.trigger),
            target: d
                .target
                .as_ref()
                .map_or_else(StoredTarget::none, |t| StoredTarget::of(t, key, row)),
            misfire_grace_s: d.misfire_grace_s.map(i64::from),
            coalesce: d.coalesce,
            catchup_max: d.catchup_max.into(),
            max_instances: d.max_instances.into(),
            overlap: d.overlap.as_str().to_string(),
            buffer_max: d.overlap.buffer_max().map(i64::from),
            pause_on_failure: d.pause_on_failure,
            max_runs: d.max_runs.map(i64::from),
            on_complete: d.on_complete.as_str().to_string(),
            retry: StoredRetry::of(&d.retry, d.target.as_ref(), &d.chain, &d.gates),
            flow: d
                .flow
                .as_ref()
                .map(|f| serde_json::to_string(&f.to_input()).unwrap_or_default()),
            flow_key: d.flow.as_ref().map(|f| f.key.as_str().to_string()),
            alerts: StoredAlerts::of(d),
            metadata: Value::Object(d.metadata.clone()).to_string(),
            labels: serde_json::to_string(&d.labels).unwrap_or_else(|_| "{}".to_string()),
        }
    }
}

impl StoredTrigger {
    pub fn of(trigger: &Trigger) -> Self {
        let mut more = TriggerMore::default();
        let base = match trigger {
            Trigger::Calendared(c) => {
                more.calendars = Some(c.refs.clone());
                more.snapshot = c.policy.as_ref().map(|p| Snapshot {
                    exclude: p.exclude.iter().map(CalendarSet::snapshot).collect(),
                    include_only: p.include_only.iter().map(CalendarSet::snapshot).collect(),
                });
                &c.base
            }
            other => other,
        };
        let mut stored = Self::columns(base, &mut more);
        let empty = more.source.is_none()
            && more.parts.is_none()
            && more.calendars.is_none()
            && more.snapshot.is_none();
        stored.more = (!empty).then(|| serde_json::to_string(&more).unwrap_or_default());
        stored
    }

    fn columns(trigger: &Trigger, more: &mut TriggerMore) -> Self {
        let mut stored = Self {
            trigger_type: trigger.kind().to_string(),
            cron_expr: None,
            cron_timezone: None,
            every_s: None,
            run_at: None,
            start_at: None,
            end_at: None,
            jitter_s: trigger.jitter_s().into(),
            more: None,
        };
        match trigger {
            Trigger::Cron(c) => {
                stored.cron_expr = Some(c.schedule.expr().to_string());
                stored.cron_timezone = Some(c.schedule.timezone().name().to_string());
                stored.start_at = c.start_at;
                stored.end_at = c.end_at;
                more.source = c.source.clone();
            }
            Trigger::AnyOf(a) => {
                // Type `cron` without an expression (see 0019_calendars.sql).
                stored.trigger_type = "cron".into();
                stored.cron_timezone = Some(a.timezone.name().to_string());
                let parts = a
                    .triggers
                    .iter()
                    .map(|t| {
                        let mut inner = TriggerMore::default();
                        let c = Self::columns(t, &mut inner);
                        StoredPart {
                            trigger_type: c.trigger_type,
                            cron_expr: c.cron_expr,
                            cron_source: inner.source,
                            every_s: c.every_s,
                            start_at: c.start_at,
                            end_at: c.end_at,
                        }
                    })
                    .collect();
                more.parts = Some(parts);
            }
            Trigger::Calendared(c) => return Self::columns(&c.base, more),
            Trigger::Interval(i) => {
                stored.every_s = Some(i.every_s as i64);
                stored.start_at = Some(i.start_at);
                stored.end_at = i.end_at;
            }
            Trigger::Date(t) => stored.run_at = Some(t.run_at),
        }
        stored
    }
}

impl StoredTarget {
    /// A monitor-only job's target columns: empty (they are NOT NULL; an
    /// empty URL is no target, which no request can have).
    pub fn none() -> Self {
        Self {
            url: String::new(),
            method: String::new(),
            headers: "{}".into(),
            body: None,
            secrets: None,
            timeout_s: crate::domain::target::DEFAULT_TIMEOUT_S.into(),
            template: false,
        }
    }

    /// Whether the columns hold no target (a monitor-only job's).
    pub fn is_none(&self) -> bool {
        Self::is_no_url(&self.url)
    }

    /// Whether a `target_url` column read alone says "no target": the
    /// one place that knows how [`StoredTarget::none`] writes it.
    pub fn is_no_url(target_url: &str) -> bool {
        target_url.is_empty()
    }

    /// A subscription's target as its row keeps it: a URL (its secrets
    /// sealed apart) that takes a POST with the default timeout.
    pub fn of_subscription(url: String, secrets: Option<String>) -> Self {
        Self {
            url,
            method: "POST".into(),
            headers: "{}".into(),
            body: None,
            secrets,
            timeout_s: crate::domain::target::DEFAULT_TIMEOUT_S.into(),
            template: false,
        }
    }

    pub fn of(t: &Target, key: &SealingKey, row: Row<'_>) -> Self {
        let mut plain = Map::new();
        let mut secrets = TargetSecrets::default();
        for (name, value) in &t.headers {
            let map = if is_sensitive_header(name) {
                &mut secrets.headers
            } else {
                &mut plain
            };
            map.insert(name.clone(), Value::String(value.clone()));
        }
        secrets.url = Some(t.url.to_string());
        let sealed = key.seal_in(
            row,
            TARGET_SECRETS,
            &serde_json::to_string(&secrets).unwrap_or_default(),
        );
        Self {
            // The rest is sealed (issue 22): read tokens see this much.
            url: crate::domain::target::url_without_path(&t.url),
            method: t.method.as_str().to_string(),
            headers: Value::Object(plain).to_string(),
            body: t.body.to_value().map(|v| v.to_string()),
            secrets: Some(sealed),
            timeout_s: t.timeout_s.into(),
            template: t.template,
        }
    }
}

/// A run's rendered request as its `request` column keeps it (§11.2): the
/// target's columns, its secrets sealed to the run's own row; or why it
/// did not render (the run then fails with `template_error`, unsent).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum StoredRequest {
    Rendered {
        url: String,
        method: String,
        headers: String,
        body: Option<String>,
        secrets: Option<String>,
    },
    Failed {
        error: String,
    },
}

impl StoredRequest {
    /// The column's text for run `row` (table `runs`).
    pub fn of(rendered: &Result<Target, String>, key: &SealingKey, row: Row<'_>) -> String {
        let stored = match rendered {
            Ok(target) => {
                let t = StoredTarget::of(target, key, row);
                StoredRequest::Rendered {
                    url: t.url,
                    method: t.method,
                    headers: t.headers,
                    body: t.body,
                    secrets: t.secrets,
                }
            }
            Err(error) => StoredRequest::Failed {
                error: error.clone(),
            },
        };
        serde_json::to_string(&stored).unwrap_or_default()
    }

    /// The request a run sends, with its job's timeout; or the rendering
    /// error it ends with.
    pub fn read(
        text: &str,
        row: Row<'_>,
        key: &SealingKey,
        timeout_s: i64,
    ) -> StoreResult<Result<Target, String>> {
        let stored: StoredRequest = serde_json::from_str(text)
            .map_err(|e| StoreError::Corrupt(format!("run {}: request: {e}", row.id)))?;
        Ok(match stored {
            StoredRequest::Rendered {
                url,
                method,
                headers,
                body,
                secrets,
            } => Ok(StoredTarget {
                url,
                method,
                headers,
                body,
                secrets,
                timeout_s,
                template: false,
            }
            .into_target(row, key)?),
            StoredRequest::Failed { error } => Err(error),
        })
    }
}

fn corrupt(job: &str, what: &str, detail: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("job {job:?}: {what}: {detail}"))
}

fn json(job: &str, what: &str, text: &str) -> StoreResult<Value> {
    serde_json::from_str(text).map_err(|e| corrupt(job, what, e))
}

fn unsigned(job: &str, what: &str, n: i64) -> StoreResult<u32> {
    u32::try_from(n).map_err(|_| corrupt(job, what, n))
}

impl StoredDefinition {
    pub fn into_definition(self, row: Row<'_>, key: &SealingKey) -> StoreResult<JobDefinition> {
        let job = row.id;
        let trigger = self.trigger.into_trigger(job)?;
        let alerts = StoredAlerts::read(job, self.alerts.as_deref())?;
        let metadata = match json(job, "metadata", &self.metadata)? {
            Value::Object(map) => map,
            other => return Err(corrupt(job, "metadata", other)),
        };
        let labels = serde_json::from_str(&self.labels).map_err(|e| corrupt(job, "labels", e))?;
        let rules = self.retry.read(job)?;
        Ok(JobDefinition {
            name: self.name,
            trigger,
            target: if self.target.is_none() {
                None
            } else {
                Some(rules.complete(self.target.into_target(row, key)?))
            },
            monitor: alerts.monitor,
            misfire_grace_s: self
                .misfire_grace_s
                .map(|g| unsigned(job, "misfire_grace_s", g))
                .transpose()?,
            coalesce: self.coalesce,
            catchup_max: unsigned(job, "catchup_max", self.catchup_max)?,
            max_instances: unsigned(job, "max_instances", self.max_instances)?,
            overlap: Overlap::from_stored(&self.overlap, self.buffer_max)
                .ok_or_else(|| corrupt(job, "overlap", &self.overlap))?,
            pause_on_failure: self.pause_on_failure,
            max_runs: self
                .max_runs
                .map(|n| unsigned(job, "max_runs", n))
                .transpose()?,
            on_complete: OnComplete::parse(&self.on_complete)
                .ok_or_else(|| corrupt(job, "on_complete", &self.on_complete))?,
            chain: rules.chain,
            gates: rules.gates,
            retry: rules.policy,
            flow: self.flow.as_deref().map(|f| flow_of(job, f)).transpose()?,
            alerts: alerts.alerts,
            mute_until: alerts.mute_until,
            metrics: alerts.metrics,
            metadata,
            labels,
        })
    }
}

/// What a job's `alerts` column holds (§11.5).
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
pub(crate) struct StoredAlerts {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    alerts: Option<crate::domain::alert::AlertsInput>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    mute_until: Option<DateTime<Utc>>,
    /// Written `"metrics":true` exactly: `/metrics` finds such jobs by it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    metrics: bool,
    /// A monitor-only job's settings: the watchdog misses its runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    monitor: Option<crate::domain::monitor::MonitorInput>,
}

/// A job's alert settings, read back.
pub(crate) struct AlertSettings {
    pub alerts: Option<crate::domain::alert::AlertPolicy>,
    pub mute_until: Option<DateTime<Utc>>,
    pub metrics: bool,
    pub monitor: Option<crate::domain::monitor::Monitor>,
}

impl AlertSettings {
    /// When the job alerts: as it says, or for a monitor-only job as
    /// `{}` says when it says nothing (a monitor is there to alert).
    pub fn policy(&self) -> Option<crate::domain::alert::AlertPolicy> {
        self.alerts.or_else(|| {
            self.monitor
                .map(|_| crate::domain::alert::AlertPolicy::default())
        })
    }
}

impl StoredAlerts {
    fn of(d: &JobDefinition) -> Option<String> {
        let stored = StoredAlerts {
            alerts: d.alerts.as_ref().map(|a| a.to_input()),
            mute_until: d.mute_until,
            metrics: d.metrics,
            monitor: d.monitor.map(|m| m.to_input()),
        };
        (stored.alerts.is_some()
            || stored.mute_until.is_some()
            || stored.metrics
            || stored.monitor.is_some())
        .then(|| serde_json::to_string(&stored).unwrap_or_default())
    }

    pub fn read(job: &str, text: Option<&str>) -> StoreResult<AlertSettings> {
        let stored: StoredAlerts = text
            .map(|t| serde_json::from_str(t).map_err(|e| corrupt(job, "alerts", e)))
            .transpose()?
            .unwrap_or_default();
        Ok(AlertSettings {
            alerts: stored
                .alerts
                .map(|a| a.parse("alerts").map_err(|e| corrupt(job, "alerts", e)))
                .transpose()?,
            mute_until: stored.mute_until,
            metrics: stored.metrics,
            monitor: stored
                .monitor
                .map(|m| m.parse("monitor").map_err(|e| corrupt(job, "alerts", e)))
                .transpose()?,
        })
    }
}

/// A job's flow as its `flow` column keeps it.
pub(crate) fn flow_of(job: &str, text: &str) -> StoreResult<crate::domain::flow::Flow> {
    serde_json::from_str::<crate::domain::flow::FlowInput>(text)
        .map_err(|e| corrupt(job, "flow", e))?
        .parse()
        .map_err(|e| corrupt(job, "flow", e))
}

impl StoredTrigger {
    pub fn into_trigger(mut self, job: &str) -> StoreResult<Trigger> {
        let more: TriggerMore = match self.more.take() {
            None => TriggerMore::default(),
            Some(text) => {
                serde_json::from_str(&text).map_err(|e| corrupt(job, "trigger_more", e))?
            }
        };
        let source = more.source.clone();
        let base = self.base_trigger(job, source, more.parts)?;
        let Some(refs) = more.calendars else {
            return Ok(base);
        };
        let sets = |snapshots: Vec<Vec<CalendarInput>>| {
            snapshots
                .into_iter()
                .map(|s| CalendarSet::from_snapshot(s).map_err(|e| corrupt(job, "trigger_more", e)))
                .collect::<StoreResult<Vec<_>>>()
        };
        let policy = match more.snapshot {
            None => None,
            Some(s) => Some(Policy {
                exclude: sets(s.exclude)?,
                include_only: sets(s.include_only)?,
                on_excluded: refs.on_excluded,
            }),
        };
        Ok(Trigger::Calendared(Box::new(Calendared {
            base,
            refs,
            policy,
        })))
    }

    fn base_trigger(
        self,
        job: &str,
        source: Option<String>,
        parts: Option<Vec<StoredPart>>,
    ) -> StoreResult<Trigger> {
        let jitter_s = unsigned(job, "jitter_s", self.jitter_s)?;
        Ok(match self.trigger_type.as_str() {
            "cron" if parts.is_some() => {
                let zone = self.cron_timezone.as_deref().unwrap_or("UTC");
                let timezone: Zone = zone
                    .parse()
                    .map_err(|_| corrupt(job, "cron_timezone", zone))?;
                let triggers = parts
                    .ok_or_else(|| corrupt(job, "trigger_more", "an any_of without parts"))?
                    .into_iter()
                    .map(|p| {
                        StoredTrigger {
                            trigger_type: p.trigger_type,
                            cron_expr: p.cron_expr,
                            cron_timezone: Some(timezone.name().to_string()),
                            every_s: p.every_s,
                            run_at: None,
                            start_at: p.start_at,
                            end_at: p.end_at,
                            jitter_s: 0,
                            more: None,
                        }
                        .base_trigger(job, p.cron_source, None)
                    })
                    .collect::<StoreResult<Vec<_>>>()?;
                Trigger::AnyOf(AnyOf {
                    triggers,
                    timezone,
                    jitter_s,
                })
            }
            "cron" => {
                let expr = self
                    .cron_expr
                    .as_deref()
                    .ok_or_else(|| corrupt(job, "cron_expr", "missing"))?;
                let zone = self.cron_timezone.as_deref().unwrap_or("UTC");
                let timezone: Zone = zone
                    .parse()
                    .map_err(|_| corrupt(job, "cron_timezone", zone))?;
                Trigger::Cron(CronTrigger {
                    schedule: CronSchedule::parse_cached(expr, timezone)
                        .map_err(|e| corrupt(job, "cron_expr", e))?,
                    source,
                    start_at: self.start_at,
                    end_at: self.end_at,
                    jitter_s,
                })
            }
            "interval" => Trigger::Interval(IntervalTrigger {
                every_s: self
                    .every_s
                    .and_then(|s| u64::try_from(s).ok())
                    .filter(|s| *s > 0)
                    .ok_or_else(|| corrupt(job, "every_s", format!("{:?}", self.every_s)))?,
                start_at: self
                    .start_at
                    .ok_or_else(|| corrupt(job, "start_at", "missing"))?,
                end_at: self.end_at,
                jitter_s,
            }),
            "date" => Trigger::Date(DateTrigger {
                run_at: self
                    .run_at
                    .ok_or_else(|| corrupt(job, "run_at", "missing"))?,
            }),
            other => return Err(corrupt(job, "trigger_type", other)),
        })
    }
}

impl StoredTarget {
    pub fn into_target(self, row: Row<'_>, key: &SealingKey) -> StoreResult<Target> {
        let job = row.id;
        let secrets: TargetSecrets = match &self.secrets {
            None => TargetSecrets::default(),
            Some(sealed) => {
                let opened = key
                    .open_in(row, TARGET_SECRETS, sealed)
                    .map_err(|e| corrupt(job, "target_secrets", e))?;
                serde_json::from_str(&opened).map_err(|e| corrupt(job, "target_secrets", e))?
            }
        };
        let mut url = Url::parse(secrets.url.as_deref().unwrap_or(&self.url))
            .map_err(|e| corrupt(job, "target_url", e))?;
        if let Some(password) = &secrets.url_password {
            url.set_password(Some(password))
                .map_err(|()| corrupt(job, "target_url", "cannot carry a password"))?;
        }
        let method = Method::parse(&self.method)
            .ok_or_else(|| corrupt(job, "target_method", &self.method))?;
        let plain = match json(job, "target_headers", &self.headers)? {
            Value::Object(map) => map,
            other => return Err(corrupt(job, "target_headers", other)),
        };
        let headers = plain
            .into_iter()
            .chain(secrets.headers)
            .map(|(name, value)| match value {
                Value::String(v) => Ok((name, v)),
                other => Err(corrupt(job, "target_headers", other)),
            })
            .collect::<StoreResult<BTreeMap<_, _>>>()?;
        Ok(Target {
            url,
            method,
            headers,
            body: Body::from_value(
                self.body
                    .as_deref()
                    .map(|b| json(job, "target_body", b))
                    .transpose()?,
            ),
            timeout_s: unsigned(job, "timeout_s", self.timeout_s)?,
            template: self.template,
            // Kept with the retry rules (`StoredRetry::with_target`).
            success: None,
            cancel_url: None,
            completion: None,
        })
    }
}

impl StoredRetry {
    /// A job's retry columns, as a left join reads them: none when no job
    /// was found.
    pub fn joined(
        max_attempts: Option<i64>,
        backoff_initial_s: Option<i64>,
        backoff_max_s: Option<i64>,
        rules: Option<String>,
    ) -> Option<Self> {
        Some(Self {
            max_attempts: max_attempts?,
            backoff_initial_s: backoff_initial_s?,
            backoff_max_s: backoff_max_s?,
            rules,
        })
    }

    pub fn of(
        retry: &RetryPolicy,
        target: Option<&Target>,
        chain: &crate::domain::chain::Chain,
        gates: &crate::domain::gate::Gates,
    ) -> Self {
        let (requires, requires_any) = gates.to_inputs();
        let rules = StoredRules {
            requires,
            requires_any,
            chain: (!chain.is_empty()).then(|| chain.to_input()),
            completion: target
                .and_then(|t| t.completion)
                .map(crate::domain::callback::Completion::to_input),
            cancel_url: target
                .and_then(|t| t.cancel_url.as_ref())
                .map(Url::to_string),
            success: target
                .and_then(|t| t.success.as_deref())
                .map(|s| s.to_input()),
            retry: retry.rules.is_some().then(|| {
                let all = retry.to_input();
                crate::domain::retry::RetryInput {
                    retry_on: all.retry_on,
                    never_retry: all.never_retry,
                    max_age_s: all.max_age_s,
                    delays_s: all.delays_s,
                    on_timeout: all.on_timeout,
                    ..Default::default()
                }
            }),
        };
        Self {
            max_attempts: retry.max_attempts.into(),
            backoff_initial_s: retry.backoff_initial_s.into(),
            backoff_max_s: retry.backoff_max_s.into(),
            rules: (rules.success.is_some()
                || rules.chain.is_some()
                || rules.requires.is_some()
                || rules.requires_any.is_some()
                || rules.retry.is_some()
                || rules.completion.is_some()
                || rules.cancel_url.is_some())
            .then(|| serde_json::to_string(&rules).unwrap_or_default()),
        }
    }

    fn stored_rules(&self, job: &str) -> StoreResult<StoredRules> {
        self.rules
            .as_deref()
            .map(|text| serde_json::from_str(text).map_err(|e| corrupt(job, "delivery_rules", e)))
            .transpose()
            .map(Option::unwrap_or_default)
    }

    /// Its columns and its rules column, read: one parse of the column
    /// for every reader of a job or a claimed run.
    pub fn read(&self, job: &str) -> StoreResult<JobRules> {
        let rules = self.stored_rules(job)?;
        let bad = |e| corrupt(job, "delivery_rules", e);
        Ok(JobRules {
            policy: self.policy(job, rules.retry)?,
            success: rules
                .success
                .map(|input| input.parse("success").map(Arc::new))
                .transpose()
                .map_err(bad)?,
            completion: rules
                .completion
                .map(|c| c.parse("completion"))
                .transpose()
                .map_err(bad)?
                .flatten(),
            cancel_url: rules
                .cancel_url
                .map(|u| Url::parse(&u))
                .transpose()
                .map_err(|e| corrupt(job, "delivery_rules", e))?,
            chain: rules
                .chain
                .map(|c| c.parse("chain"))
                .transpose()
                .map_err(bad)?
                .unwrap_or_default(),
            gates: crate::domain::gate::Gates::parse(rules.requires, rules.requires_any)
                .map_err(bad)?,
        })
    }

    pub fn into_policy(self, job: &str) -> StoreResult<RetryPolicy> {
        self.policy(job, self.stored_rules(job)?.retry)
    }

    /// Its retry columns with the rules column's `retry`.
    fn policy(
        &self,
        job: &str,
        retry: Option<crate::domain::retry::RetryInput>,
    ) -> StoreResult<RetryPolicy> {
        let rules = match retry {
            None => None,
            Some(input) => {
                input
                    .parse("retry")
                    .map_err(|e| corrupt(job, "delivery_rules", e))?
                    .rules
            }
        };
        Ok(RetryPolicy {
            max_attempts: unsigned(job, "max_attempts", self.max_attempts)?,
            backoff_initial_s: unsigned(job, "backoff_initial_s", self.backoff_initial_s)?,
            backoff_max_s: unsigned(job, "backoff_max_s", self.backoff_max_s)?,
            rules,
        })
    }
}

/// A job's retry policy and what its rules column keeps (§11.6–§11.8),
/// read once.
#[derive(Debug, Clone)]
pub(crate) struct JobRules {
    pub policy: RetryPolicy,
    success: Option<Arc<crate::domain::success::SuccessRules>>,
    completion: Option<crate::domain::callback::Completion>,
    cancel_url: Option<Url>,
    /// The jobs its runs' ends start (§11.8).
    pub chain: crate::domain::chain::Chain,
    /// The jobs that must have succeeded for its fire times to run.
    pub gates: crate::domain::gate::Gates,
}

impl JobRules {
    /// `target` with what the rules column keeps of it: its success
    /// rules, its callback completion and cancel URL.
    pub fn complete(&self, mut target: Target) -> Target {
        target.success = self.success.clone();
        target.completion = self.completion;
        target.cancel_url = self.cancel_url.clone();
        target
    }
}

/// A claimed run's job columns (nullable: a delivery has none), as both
/// stores read them.
#[derive(sqlx::FromRow)]
pub(crate) struct ClaimedJobColumns {
    target_url: Option<String>,
    target_method: Option<String>,
    target_headers: Option<String>,
    target_body: Option<String>,
    target_secrets: Option<String>,
    timeout_s: Option<i64>,
    target_template: Option<bool>,
    max_attempts: Option<i64>,
    backoff_initial_s: Option<i64>,
    backoff_max_s: Option<i64>,
    delivery_rules: Option<String>,
}

impl ClaimedJobColumns {
    /// The job's target and retry policy; none for an event's delivery.
    pub(crate) fn into_shape(self) -> Option<(StoredTarget, StoredRetry)> {
        let target = StoredTarget {
            url: self.target_url?,
            method: self.target_method?,
            headers: self.target_headers?,
            body: self.target_body,
            secrets: self.target_secrets,
            timeout_s: self.timeout_s?,
            template: self.target_template?,
        };
        let retry = StoredRetry {
            max_attempts: self.max_attempts?,
            backoff_initial_s: self.backoff_initial_s?,
            backoff_max_s: self.backoff_max_s?,
            rules: self.delivery_rules,
        };
        Some((target, retry))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::job::{JobInput, ParseContext};
    use crate::domain::network_policy::NetworkPolicy;
    use serde_json::json;

    fn definition(v: Value) -> JobDefinition {
        serde_json::from_value::<JobInput>(v)
            .unwrap()
            .parse(ParseContext {
                now: crate::domain::instant::parse("2026-11-23T10:00:00.123456Z").unwrap(),
                network_policy: NetworkPolicy::default(),
                binding: None,
            })
            .unwrap()
            .definition
    }

    fn key() -> SealingKey {
        SealingKey::from_base64("MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=").unwrap()
    }

    const ROW: Row<'static> = Row {
        tenant: "default",
        table: "jobs",
        id: "j",
    };

    #[test]
    fn a_rendered_request_round_trips_with_its_secrets_sealed_to_the_run() {
        let d = definition(json!({
            "trigger": {"type": "interval", "every_s": 60},
            "target": {"url": "https://example.com/hook?k=1", "template": true, "timeout_s": 7,
                       "headers": {"Authorization": "Bearer s3cret", "X-Day": "{{ run.id }}"},
                       "body": {"day": "{{ run.id }}"}}
        }));
        let run = Row {
            tenant: "default",
            table: "runs",
            id: "0190aaaa-0000-7000-8000-000000000000",
        };
        let target = d.target.clone().unwrap();
        let rendered = Ok(target.clone());
        let text = StoredRequest::of(&rendered, &key(), run);
        assert!(!text.contains("s3cret"), "{text}");
        let back = StoredRequest::read(&text, run, &key(), 7).unwrap().unwrap();
        assert_eq!(back.headers, target.headers);
        assert_eq!(
            (back.url, back.body, back.timeout_s),
            (target.url, target.body, 7)
        );
        // Sealed to its run: another row's key context does not open it.
        assert!(StoredRequest::read(&text, ROW, &key(), 7).is_err());
        let failed = StoredRequest::of(&Err("template_error: x".into()), &key(), run);
        assert_eq!(
            StoredRequest::read(&failed, run, &key(), 7).unwrap(),
            Err("template_error: x".to_string())
        );
    }

    /// Through the columns and back, as a store does.
    fn round_trip(d: &JobDefinition) -> JobDefinition {
        StoredDefinition::of(d, &key(), ROW)
            .into_definition(ROW, &key())
            .unwrap()
    }

    #[test]
    fn a_target_s_secrets_and_whole_url_are_sealed_and_the_rest_is_not() {
        let d = definition(json!({"trigger": {"type": "interval", "every_s": 90},
            "target": {"url": "https://USERSECRET:hunter2@x.test:8443/services/T0/B0/XSECRET?token=QSECRET1&a=b",
                       "headers": {"Authorization": "Bearer s3cret", "X-Api-Key": "k3y-SECRET", "X-Team": "data"}}}));
        let stored = StoredDefinition::of(&d, &key(), ROW);
        assert_eq!(stored.target.url, "https://x.test:8443/***");
        assert_eq!(stored.target.headers, r#"{"x-team":"data"}"#);
        let sealed = stored.target.secrets.clone().unwrap();
        // Long enough that random base64 never spells one by chance.
        for secret in [
            "hunter2",
            "s3cret",
            "k3y-SECRET",
            "XSECRET",
            "QSECRET1",
            "USERSECRET",
        ] {
            assert!(!sealed.contains(secret), "{sealed}");
        }
        assert_eq!(round_trip(&d), d);
        let other = SealingKey::from_base64(&SealingKey::generate_base64()).unwrap();
        assert!(stored.clone().into_definition(ROW, &other).is_err());
        // Moved to another job's row, they do not open.
        let moved = Row { id: "other", ..ROW };
        assert!(stored.into_definition(moved, &key()).is_err());
    }

    #[test]
    fn a_row_from_before_the_url_was_sealed_still_reads_back() {
        let d = definition(json!({"trigger": {"type": "interval", "every_s": 90},
            "target": {"url": "https://user:hunter2@x.test/hook?a=b"}}));
        let old = StoredTarget {
            url: "https://user@x.test/hook?a=b".into(),
            secrets: Some(key().seal_unbound(r#"{"url_password":"hunter2"}"#)),
            ..StoredDefinition::of(&d, &key(), ROW).target
        };
        assert_eq!(Some(old.into_target(ROW, &key()).unwrap()), d.target);
    }

    #[test]
    fn every_kind_of_definition_round_trips() {
        for v in [
            json!({"name": "n", "trigger": {"type": "cron", "expr": "30 2 * * *", "timezone": "Asia/Seoul",
                   "start_at": "2026-01-01T00:00:00Z", "end_at": "2027-01-01T00:00:00Z", "jitter_s": 5},
                   "target": {"url": "https://x.test/a?b=c", "method": "PUT", "headers": {"x-a": "1"},
                              "body": {"k": [1, 2]}, "timeout_s": 7},
                   "misfire_grace_s": 60, "coalesce": false, "max_instances": 3,
                   "retry": {"max_attempts": 5, "backoff_initial_s": 2, "backoff_max_s": 9},
                   "metadata": {"owner": "me"}}),
            json!({"trigger": {"type": "interval", "every_s": 90},
                   "target": {"url": "http://x.test", "body": "plain text"}}),
            json!({"trigger": {"type": "date", "run_at": "2026-12-01T09:00:00Z"},
                   "target": {"url": "http://x.test"}}),
        ] {
            let d = definition(v);
            assert_eq!(round_trip(&d), d);
        }
    }

    #[test]
    fn json_numbers_read_back_exactly() {
        let d = definition(json!({"trigger": {"type": "interval", "every_s": 90},
            "target": {"url": "http://x.test", "body": {"big": 1.7976931348623157e308, "n": 12345678901234567890u64}},
            "metadata": {"small": -7.624524091444759e306, "third": 0.3333333333333333}}));
        assert_eq!(round_trip(&d), d);
    }

    #[test]
    fn a_row_that_does_not_read_back_is_corrupt_and_says_where() {
        let d = definition(json!({"trigger": {"type": "interval", "every_s": 90},
                                  "target": {"url": "http://x.test"}}));
        let target = StoredTarget {
            method: "TRACE".into(),
            ..StoredDefinition::of(&d, &key(), ROW).target
        };
        let e = target.into_target(ROW, &key()).unwrap_err().to_string();
        assert_eq!(e, "corrupt row: job \"j\": target_method: TRACE");
    }
}
