//! The audit trail (DESIGN §11.9): who changed what, when, from where and
//! why. A record is made for each change, in the change's transaction;
//! what changed is an RFC 6902 patch from the thing before (a job, a
//! calendar, a subscription, a flow key) to the thing after, with
//! sensitive values redacted, so no secret reaches the trail.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{Value, json};
use url::Url;
use uuid::Uuid;

use super::auth::Role;
use super::error::FieldError;
use super::event::Interest;
use super::flow::FlowLimits;
use super::job::{Job, JobId, JobState};
use super::lifecycle::JobChange;
use super::quota::QuotaOverrides;
use super::subscription::SubscriptionFormat;
use super::target::is_sensitive_header;

/// The header a client gives its reason for a change in.
pub const REASON_HEADER: &str = "cronhook-reason";
/// The longest reason kept.
pub const MAX_REASON_CHARS: usize = 500;
/// What a redacted value reads as.
pub const REDACTED: &str = "***";

/// Who made a change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Actor {
    /// A caller with an API token (or a dashboard session opened with one).
    Token {
        token_id: String,
        name: Option<String>,
        role: Role,
    },
    /// A caller of the open API (no tokens: loopback only, DESIGN §8).
    Open,
    /// A caller that presented no valid token.
    Anonymous,
    /// The service itself: a timed resume, a pause on failure, a job
    /// completed by `max_runs`, a prune.
    System,
}

impl Actor {
    /// Its kind, as `?actor=` names it when it is not a token's id.
    pub fn kind(&self) -> &'static str {
        match self {
            Actor::Token { .. } => "token",
            Actor::Open => "open",
            Actor::Anonymous => "anonymous",
            Actor::System => "system",
        }
    }

    /// Its stored parts: `(kind, token id, name, role)`.
    pub fn parts(
        &self,
    ) -> (
        &'static str,
        Option<&str>,
        Option<&str>,
        Option<&'static str>,
    ) {
        match self {
            Actor::Token {
                token_id,
                name,
                role,
            } => (
                self.kind(),
                Some(token_id),
                name.as_deref(),
                Some(role.as_str()),
            ),
            _ => (self.kind(), None, None, None),
        }
    }

    /// The actor a stored `(kind, token id, name, role)` names.
    pub fn from_parts(
        kind: &str,
        token_id: Option<String>,
        name: Option<String>,
        role: Option<&str>,
    ) -> Option<Self> {
        Some(match kind {
            "token" => Actor::Token {
                token_id: token_id?,
                name,
                role: role?.parse().ok()?,
            },
            "open" => Actor::Open,
            "anonymous" => Actor::Anonymous,
            "system" => Actor::System,
            _ => return None,
        })
    }
}

/// The facts of the request a change is made in; the system's own
/// changes have none but the actor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Context {
    pub actor: Actor,
    /// The tenant the caller acts on, once known.
    pub tenant: Option<String>,
    pub request_id: Option<String>,
    pub source_ip: Option<String>,
    pub reason: Option<String>,
}

impl Context {
    pub fn system() -> Self {
        Self {
            actor: Actor::System,
            tenant: None,
            request_id: None,
            source_ip: None,
            reason: None,
        }
    }

    /// The record of `action` on `target` in `tenant`, made at `at`.
    pub fn record(
        &self,
        tenant: &str,
        action: &str,
        target: &str,
        changes: Value,
        at: DateTime<Utc>,
    ) -> AuditRecord {
        AuditRecord {
            id: Uuid::now_v7(),
            at,
            tenant: tenant.to_string(),
            actor: self.actor.clone(),
            request_id: self.request_id.clone(),
            source_ip: self.source_ip.clone(),
            action: action.to_string(),
            target: target.to_string(),
            reason: self.reason.clone(),
            changes,
        }
    }
}

/// One record of the trail.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditRecord {
    pub id: Uuid,
    pub at: DateTime<Utc>,
    pub tenant: String,
    pub actor: Actor,
    pub request_id: Option<String>,
    pub source_ip: Option<String>,
    /// `job.created`, `job.updated`, `job.paused`, `job.resumed`,
    /// `job.completed`, `job.deleted`, `job.run`, `job.secret_rotated`,
    /// `job.ping_key_rotated`, `job.backfilled`, `job.backfill_cancelled`,
    /// `calendar.…`, `subscription.…` (`created`, `updated`, `deleted`),
    /// `flow.created`, `flow.updated`, `flow.paused`, `flow.resumed`,
    /// `alert.acknowledged`, `tenant.quotas_set`, `token.created`,
    /// `token.revoked`, `denied`.
    pub action: String,
    /// `job/{id}`, `calendar/{id}`, `subscription/{id}`, `flow/{key}`,
    /// `alert/{id}`, `tenant/{name}`, `token/{id}`, or the request a
    /// refusal refused (`POST /v1/…`).
    pub target: String,
    pub reason: Option<String>,
    /// RFC 6902 operations from before to after.
    pub changes: Value,
}

/// The reason a `cronhook-reason` header gives: trimmed, at most
/// [`MAX_REASON_CHARS`] characters, none when empty.
pub fn reason(header: Option<&[u8]>) -> Result<Option<String>, FieldError> {
    let Some(bytes) = header else {
        return Ok(None);
    };
    let text = std::str::from_utf8(bytes)
        .map_err(|_| FieldError::new(REASON_HEADER, "must be UTF-8 text"))?
        .trim();
    if text.chars().count() > MAX_REASON_CHARS {
        return Err(FieldError::new(
            REASON_HEADER,
            format!("must be at most {MAX_REASON_CHARS} characters"),
        ));
    }
    Ok((!text.is_empty()).then(|| text.to_string()))
}

/// A filter's text (`target`, `actor`, `action`): at most 500 characters
/// and no NUL, which PostgreSQL holds in no record.
pub fn filter_text(value: Option<String>, field: &str) -> Result<Option<String>, FieldError> {
    match value {
        Some(v) if v.contains('\0') => Err(FieldError::new(
            field,
            "must not contain a NUL character (\\u0000)",
        )),
        Some(v) if v.chars().count() > MAX_REASON_CHARS => Err(FieldError::new(
            field,
            format!("must be at most {MAX_REASON_CHARS} characters"),
        )),
        other => Ok(other),
    }
}

/// A job as the trail shows it: its input form, state and pause, with
/// sensitive header values and a URL's password redacted.
pub fn job_document(job: &Job) -> Value {
    let mut doc = super::bundle::redacted(job, |_| json!(REDACTED));
    // Kept a year and not sealed: a URL shows as a read token sees it,
    // as its path and query often hold a webhook's secret (DESIGN §8).
    if let Some(target) = &job.definition.target {
        doc["target"]["url"] = json!(super::target::url_without_path(&target.url));
    }
    if let Value::Object(map) = &mut doc {
        map.remove("paused");
        map.insert("state".into(), json!(job.schedule.state().as_str()));
        if let Some(until) = job.pause.until {
            map.insert("paused_until".into(), json!(super::instant::format(&until)));
        }
        if let Some(reason) = &job.pause.reason {
            map.insert("pause_reason".into(), json!(reason));
        }
    }
    doc
}

/// The action and changes of a job's change, `existing` as it stood;
/// none for no change.
pub fn for_job_change(
    id: &JobId,
    existing: Option<&Job>,
    change: &JobChange,
    now: DateTime<Utc>,
) -> Option<(&'static str, Value)> {
    match (change, existing) {
        (JobChange::Unchanged, _) => None,
        (
            JobChange::Insert {
                definition,
                schedule,
                ..
            },
            _,
        ) => {
            let job = Job {
                id: id.clone(),
                definition: definition.clone(),
                schedule: *schedule,
                runs_counted: 0,
                created_at: now,
                updated_at: now,
                last_run: None,
                ping_key: None,
                pause: Default::default(),
            };
            Some(("job.created", patch(&Value::Null, &job_document(&job))))
        }
        (
            JobChange::Update {
                definition,
                schedule,
                secret,
                pause,
                ..
            },
            Some(before),
        ) => {
            let after = Job {
                definition: definition.clone(),
                schedule: schedule.unwrap_or(before.schedule),
                // A pause's note is written with a new schedule only.
                pause: match schedule {
                    Some(_) => pause.clone(),
                    None => before.pause.clone(),
                },
                ..before.clone()
            };
            let mut ops = patch(&job_document(before), &job_document(&after));
            if let Value::Array(ops) = &mut ops {
                ops.extend(hidden_changes(before, &after));
                if secret.is_some() {
                    ops.push(json!({"op": "replace", "path": "/secret", "value": REDACTED}));
                }
            }
            let action = match (before.schedule.state(), after.schedule.state()) {
                (before, after) if before == after => "job.updated",
                (_, JobState::Paused) => "job.paused",
                (_, JobState::Completed) => "job.completed",
                (_, JobState::Scheduled) => "job.resumed",
            };
            Some((action, ops))
        }
        // An update of a job not read: nothing to compare with.
        (JobChange::Update { .. }, None) => None,
    }
}

/// The target a job's records name.
pub fn job_target(id: &str) -> String {
    format!("job/{id}")
}

/// What changed where the documents show `***` or no path: a sensitive
/// header's value, a URL's path or password. Each is named, never shown.
fn hidden_changes(before: &Job, after: &Job) -> Vec<Value> {
    let (Some(was), Some(is)) = (&before.definition.target, &after.definition.target) else {
        return Vec::new();
    };
    let mut ops = Vec::new();
    ops.extend(hidden_url_change(&was.url, &is.url, "/target/url"));
    for (name, value) in is.headers.iter().filter(|(n, _)| is_sensitive_header(n)) {
        let old = was.headers.iter().find(|(n, _)| *n == name).map(|(_, v)| v);
        if old.is_some_and(|old| old != value) {
            let path = format!(
                "/target/headers/{}",
                name.replace('~', "~0").replace('/', "~1")
            );
            ops.push(json!({"op": "replace", "path": path, "value": REDACTED}));
        }
    }
    ops
}

/// A change of the URL at `path` that its shown form hides (its path,
/// query or password): named, never shown.
fn hidden_url_change(was: &Url, is: &Url, path: &str) -> Option<Value> {
    let shown = super::target::url_without_path;
    (was != is && shown(was) == shown(is))
        .then(|| json!({"op": "replace", "path": path, "value": shown(is)}))
}

/// The changes of deleting `job`: a `test` of its whole document, so the
/// trail shows what went, then its removal.
pub fn for_job_deleted(job: &Job) -> Value {
    for_document(Some(&job_document(job)), None)
}

/// The target a record of anything but a job names: `calendar/holidays`,
/// `subscription/ops`, `flow/vendor-api`, `alert/…`, `tenant/acme`.
pub fn target(kind: &str, id: &str) -> String {
    format!("{kind}/{id}")
}

/// The changes that turn the document `before` into `after`, where none
/// is a thing not there: made (its document added), removed (a `test` of
/// its last document, so the trail shows what went, then its removal) or
/// changed.
pub fn for_document(before: Option<&Value>, after: Option<&Value>) -> Value {
    match (before, after) {
        (Some(before), None) => json!([
            {"op": "test", "path": "", "value": before},
            {"op": "remove", "path": ""}
        ]),
        (before, after) => patch(
            before.unwrap_or(&Value::Null),
            after.unwrap_or(&Value::Null),
        ),
    }
}

/// A subscription as the trail shows it: its URL without path, query or
/// password (a chat webhook's secret is in its path), what it listens to.
/// Its signing secret is never shown.
pub fn subscription_document(url: &Url, interest: &Interest, format: SubscriptionFormat) -> Value {
    json!({
        "url": super::target::url_without_path(url),
        "types": interest.types.iter().map(|t| t.as_str()).collect::<Vec<_>>(),
        "job_id": interest.job_id,
        "format": format.as_str(),
    })
}

/// The changes of a subscription from `before` to `after` (a document
/// and the URL it shows), with a change of URL the document hides named.
pub fn for_subscription(before: Option<(&Url, Value)>, after: Option<(&Url, Value)>) -> Value {
    let mut ops = for_document(
        before.as_ref().map(|(_, doc)| doc),
        after.as_ref().map(|(_, doc)| doc),
    );
    if let (Some((was, _)), Some((is, _)), Value::Array(ops)) = (&before, &after, &mut ops)
        && let Some(op) = hidden_url_change(was, is, "/url")
    {
        ops.push(op);
    }
    ops
}

/// A flow key as the trail shows it (§11.1).
pub fn flow_document(limits: FlowLimits, paused: bool) -> Value {
    json!({"max_in_flight": limits.max_in_flight, "rate": limits.rate, "paused": paused})
}

/// The changes of a flow key paused or resumed.
pub fn for_flow_paused(paused: bool) -> Value {
    json!([{"op": "replace", "path": "/paused", "value": paused}])
}

/// The changes of a backfill made for a job (§11.3): the backfill, by id,
/// with its range and the runs it made.
pub fn for_backfill(id: Uuid, from: DateTime<Utc>, to: DateTime<Utc>, runs_made: u32) -> Value {
    json!([{"op": "add", "path": format!("/backfills/{id}"), "value": {
        "from": super::instant::format(&from),
        "to": super::instant::format(&to),
        "runs_made": runs_made,
    }}])
}

/// The changes of a backfill cancelled, with the runs that it stopped.
pub fn for_backfill_cancelled(id: Uuid, at: DateTime<Utc>, runs_cancelled: usize) -> Value {
    json!([{"op": "add", "path": format!("/backfills/{id}/cancelled"), "value": {
        "at": super::instant::format(&at),
        "runs_cancelled": runs_cancelled,
    }}])
}

/// The changes of an alert acknowledged (§11.5).
pub fn for_alert_acknowledged(at: DateTime<Utc>) -> Value {
    json!([
        {"op": "replace", "path": "/state", "value": "acked"},
        {"op": "add", "path": "/acknowledged_at", "value": super::instant::format(&at)}
    ])
}

/// The changes of a monitor's ping key rotated: the new one is never
/// shown, as it lets anyone ping.
pub fn for_ping_key_rotated() -> Value {
    json!([{"op": "replace", "path": "/ping_key", "value": REDACTED}])
}

/// The changes of a tenant's quotas set by root (§8).
pub fn for_quotas(before: &QuotaOverrides, after: &QuotaOverrides) -> Value {
    let doc = |q: &QuotaOverrides| serde_json::to_value(q).unwrap_or(Value::Null);
    for_document(Some(&doc(before)), Some(&doc(after)))
}

/// The changes of a signing secret rotated: the new one is never shown.
pub fn for_secret_rotated() -> Value {
    json!([{"op": "replace", "path": "/secret", "value": REDACTED}])
}

/// The changes of a token made: what it may do, never its text or hash.
pub fn for_token_created(
    id: &str,
    name: Option<&str>,
    role: Role,
    tenant: &str,
    scopes: &[super::auth::Scope],
) -> Value {
    let scopes: Vec<&str> = scopes.iter().map(|s| s.as_str()).collect();
    json!([{"op": "add", "path": "", "value": {
        "id": id, "name": name, "role": role.as_str(), "tenant": tenant, "scopes": scopes,
    }}])
}

/// The changes of a token revoked.
pub fn for_token_revoked() -> Value {
    json!([{"op": "add", "path": "/revoked", "value": true}])
}

/// The changes of a manual run: the run made.
pub fn for_job_run(run_id: Uuid) -> Value {
    json!([{"op": "add", "path": "/runs/-", "value": run_id.to_string()}])
}

/// The changes of a cancel asked of run `run_id` (§11.7): the status it
/// took, `cancelling` or `cancelled`.
pub fn for_run_cancelled(run_id: Uuid, status: &str) -> Value {
    json!([{"op": "replace", "path": format!("/runs/{run_id}/status"), "value": status}])
}

/// The changes of a job completed by `max_runs` as the scheduler planned
/// its last fire time.
pub fn for_job_completed() -> Value {
    json!([{"op": "replace", "path": "/state", "value": "completed"}])
}

/// The changes of a job paused because a run failed.
pub fn for_job_paused_by_failure(run_id: Uuid) -> Value {
    json!([
        {"op": "replace", "path": "/state", "value": "paused"},
        {"op": "add", "path": "/pause_reason", "value": format!("run {run_id} failed")}
    ])
}

/// RFC 6902 operations that turn `before` into `after`.
fn patch(before: &Value, after: &Value) -> Value {
    serde_json::to_value(json_patch::diff(before, after)).unwrap_or(Value::Array(Vec::new()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::instant;
    use crate::domain::job::{JobInput, ParseContext, PauseNote, Schedule};
    use crate::domain::network_policy::NetworkPolicy;

    fn now() -> DateTime<Utc> {
        instant::parse("2026-12-04T10:00:00Z").unwrap()
    }

    fn job(v: Value) -> Job {
        let input: JobInput = serde_json::from_value(v).unwrap();
        let spec = input
            .parse(ParseContext {
                now: now(),
                network_policy: NetworkPolicy::default(),
                binding: None,
            })
            .unwrap();
        Job {
            id: JobId::parse("nightly").unwrap(),
            schedule: spec.initial_schedule(now()),
            definition: spec.definition,
            runs_counted: 0,
            created_at: now(),
            updated_at: now(),
            last_run: None,
            ping_key: None,
            pause: PauseNote::default(),
        }
    }

    fn secretive() -> Value {
        json!({
            "trigger": {"type": "interval", "every_s": 60},
            "target": {"url": "https://user:hunter2@example.com/hook",
                       "headers": {"authorization": "Bearer planted-secret", "x-team": "data"}}
        })
    }

    #[test]
    fn a_job_document_redacts_sensitive_headers_and_url_passwords() {
        let doc = job_document(&job(secretive()));
        let text = doc.to_string();
        assert!(!text.contains("planted-secret"), "{text}");
        assert!(!text.contains("hunter2"), "{text}");
        assert_eq!(doc["target"]["headers"]["authorization"], "***");
        assert_eq!(doc["target"]["headers"]["x-team"], "data");
        assert_eq!(doc["target"]["url"], "https://example.com/***");
        assert_eq!(doc["state"], "scheduled");
        assert!(doc.get("secret").is_none() && doc.get("paused").is_none());
    }

    #[test]
    fn an_update_is_the_patch_from_before_to_after() {
        let before = job(secretive());
        let mut changed = secretive();
        changed["max_instances"] = json!(3);
        changed["target"]["headers"]["authorization"] = json!("Bearer another-secret");
        changed["target"]["url"] = json!("https://user:hunter3@example.com/hook?key=2");
        let after = job(changed);
        let change = JobChange::Update {
            definition: after.definition.clone(),
            schedule: None,
            restart_count: false,
            secret: Some("whsec_planted".into()),
            pause: PauseNote::default(),
        };
        let (action, ops) = for_job_change(&before.id, Some(&before), &change, now()).unwrap();
        assert_eq!(action, "job.updated");
        assert_eq!(
            ops,
            json!([
                {"op": "replace", "path": "/max_instances", "value": 3},
                {"op": "replace", "path": "/target/url", "value": "https://example.com/***"},
                {"op": "replace", "path": "/target/headers/authorization", "value": "***"},
                {"op": "replace", "path": "/secret", "value": "***"}
            ])
        );
    }

    #[test]
    fn a_pause_names_its_action_and_its_note() {
        let before = job(secretive());
        let until = instant::parse("2026-12-04T12:00:00Z").unwrap();
        let change = JobChange::Update {
            definition: before.definition.clone(),
            schedule: Some(Schedule::Paused),
            restart_count: false,
            secret: None,
            pause: PauseNote {
                until: Some(until),
                reason: Some("migration".into()),
            },
        };
        let (action, ops) = for_job_change(&before.id, Some(&before), &change, now()).unwrap();
        assert_eq!(action, "job.paused");
        let ops = ops.to_string();
        for expected in [
            r#""path":"/state","value":"paused""#,
            r#""path":"/paused_until","value":"2026-12-04T12:00:00Z""#,
            r#""path":"/pause_reason","value":"migration""#,
        ] {
            assert!(ops.contains(expected), "{ops}");
        }
    }

    #[test]
    fn a_creation_and_a_deletion_carry_the_whole_redacted_document() {
        let new = job(secretive());
        let change = JobChange::Insert {
            definition: new.definition.clone(),
            schedule: new.schedule,
            secret: "whsec_planted".into(),
        };
        let (action, ops) = for_job_change(&new.id, None, &change, now()).unwrap();
        assert_eq!(action, "job.created");
        assert_eq!(ops[0]["op"], "replace");
        assert_eq!(ops[0]["value"]["target"]["headers"]["authorization"], "***");
        let deleted = for_job_deleted(&new);
        assert_eq!(deleted[0]["value"]["target"]["headers"]["x-team"], "data");
        assert_eq!(deleted[1], json!({"op": "remove", "path": ""}));
        for text in [ops.to_string(), deleted.to_string()] {
            assert!(!text.contains("planted"), "{text}");
        }
    }

    #[test]
    fn a_subscription_shows_no_path_and_names_a_hidden_url_change() {
        let interest = Interest {
            types: vec![crate::domain::event::EventType::RunFailed],
            job_id: None,
        };
        let was = Url::parse("https://hooks.slack.com/services/T0/B0/planted").unwrap();
        let is = Url::parse("https://hooks.slack.com/services/T0/B0/rotated").unwrap();
        let doc = |url: &Url| subscription_document(url, &interest, SubscriptionFormat::Slack);
        assert_eq!(
            doc(&was),
            json!({"url": "https://hooks.slack.com/***", "types": ["run.failed"],
                   "job_id": null, "format": "slack"})
        );
        let made = for_subscription(None, Some((&was, doc(&was))));
        assert_eq!(made[0]["op"], "replace");
        assert_eq!(made[0]["path"], "");
        let changed = for_subscription(Some((&was, doc(&was))), Some((&is, doc(&is))));
        assert_eq!(
            changed,
            json!([{"op": "replace", "path": "/url", "value": "https://hooks.slack.com/***"}])
        );
        let text = changed.to_string() + &made.to_string();
        assert!(
            !text.contains("planted") && !text.contains("rotated"),
            "{text}"
        );
        let gone = for_subscription(Some((&was, doc(&was))), None);
        assert_eq!(gone[0]["op"], "test");
        assert_eq!(gone[1], json!({"op": "remove", "path": ""}));
    }

    #[test]
    fn a_flow_key_and_quotas_change_field_by_field() {
        let limits = |n| FlowLimits {
            max_in_flight: Some(n),
            rate: None,
        };
        let before = flow_document(limits(2), true);
        let after = flow_document(limits(5), true);
        assert_eq!(
            for_document(Some(&before), Some(&after)),
            json!([{"op": "replace", "path": "/max_in_flight", "value": 5}])
        );
        let set = QuotaOverrides {
            jobs: Some(10),
            ..Default::default()
        };
        assert_eq!(
            for_quotas(&QuotaOverrides::default(), &set),
            json!([{"op": "replace", "path": "/jobs", "value": 10}])
        );
    }

    #[test]
    fn no_change_makes_no_record() {
        assert_eq!(
            for_job_change(&job(secretive()).id, None, &JobChange::Unchanged, now()),
            None
        );
    }

    #[test]
    fn a_reason_is_trimmed_and_bounded() {
        assert_eq!(reason(None), Ok(None));
        assert_eq!(reason(Some(b"  ")), Ok(None));
        assert_eq!(
            reason(Some(b" db migration ")),
            Ok(Some("db migration".into()))
        );
        let long = "x".repeat(MAX_REASON_CHARS + 1);
        let e = reason(Some(long.as_bytes())).unwrap_err();
        assert_eq!(e.field, REASON_HEADER);
        assert!(reason(Some(&[0xff])).is_err());
    }

    #[test]
    fn actors_read_back_from_their_parts() {
        let token = Actor::Token {
            token_id: "tok_1".into(),
            name: Some("ci".into()),
            role: Role::Write,
        };
        let (kind, id, name, role) = token.parts();
        assert_eq!(
            Actor::from_parts(kind, id.map(Into::into), name.map(Into::into), role),
            Some(token)
        );
        for actor in [Actor::Open, Actor::Anonymous, Actor::System] {
            assert_eq!(
                Actor::from_parts(actor.kind(), None, None, None),
                Some(actor)
            );
        }
        assert_eq!(Actor::from_parts("token", None, None, Some("write")), None);
    }
}
