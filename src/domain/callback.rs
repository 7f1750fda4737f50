//! Long runs (DESIGN.md §11.7): under `completion.mode: callback` a
//! successful response only *accepts* the run. It stays `running` until
//! the receiver reports its end with the run's `crt_` token, or the
//! watchdog ends it: no completion within `timeout_s` (`timed_out`), no
//! heartbeat for `heartbeat_s` (`heartbeat_lost`), or a cancel's grace
//! over. Every rule here takes `now`; the store runs them under the run's
//! row lock.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, TimeDelta, Utc};
use hmac::{Hmac, KeyInit, Mac};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::domain::alert::seconds_at;
use crate::domain::error::FieldError;
use crate::domain::retry::{self, AttemptNumber, Outcome, RetryPolicy};
use crate::domain::run::RunStatus;
use crate::domain::target::{Body, Method, Target};

/// Six hours, as DESIGN's example.
pub const DEFAULT_TIMEOUT_S: u32 = 21_600;
/// How long a cancelled run may take to say it stopped.
pub const DEFAULT_CANCEL_GRACE_S: u32 = 60;
/// The most of a completion's `output`, as JSON text.
pub const MAX_OUTPUT: usize = 16 * 1024;
/// The most characters of a completion's `error` or a heartbeat's
/// `message`.
pub const MAX_TEXT: usize = 1000;
/// The request that asks a callback run's receiver to stop (§11.7): a
/// POST to `target.cancel_url` (or its URL) with the job's headers, and a
/// JSON body naming the run.
pub fn cancel_request(target: &Target, run_id: Uuid, job_id: &str) -> Target {
    Target {
        url: target
            .cancel_url
            .clone()
            .unwrap_or_else(|| target.url.clone()),
        method: Method::Post,
        headers: target.headers.clone(),
        body: Body::Json(serde_json::json!({"type": "cancel", "run_id": run_id, "job_id": job_id})),
        timeout_s: target.timeout_s,
        template: false,
        success: None,
        cancel_url: None,
        completion: None,
    }
}

/// A callback token's prefix: it says what the secret is when it leaks
/// into a log or a paste.
pub const TOKEN_PREFIX: &str = "crt_";
/// Why a callback run failed: no completion within `timeout_s`.
pub const REASON_TIMED_OUT: &str = "timed_out";
/// Why a callback run failed: no heartbeat for `heartbeat_s`.
pub const REASON_HEARTBEAT_LOST: &str = "heartbeat_lost";
/// Why a run was cancelled: `POST /v1/runs/{id}/cancel`.
pub const REASON_CANCELLED: &str = "cancel_requested";

/// How a job's run ends.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum CompletionMode {
    /// The response ends the run (the default).
    #[default]
    Response,
    /// A successful response accepts the run; the receiver completes it
    /// with `POST /v1/runs/{id}/complete`.
    Callback,
}

/// `completion` as a client writes it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = Completion)]
pub struct CompletionInput {
    #[serde(default)]
    pub mode: Option<CompletionMode>,
    /// Seconds from acceptance to completion before the run fails
    /// `timed_out` (callback only; default 21600).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1, maximum = 2678400)]
    pub timeout_s: Option<i64>,
    /// Seconds without a heartbeat before the run fails `heartbeat_lost`
    /// (callback only; none by default: heartbeats are then optional).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1, maximum = 2678400)]
    pub heartbeat_s: Option<i64>,
    /// Seconds a cancelled run may take to report its end before it is
    /// `cancelled` anyway (callback only; default 60).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1, maximum = 2678400)]
    pub cancel_grace_s: Option<i64>,
}

/// A callback job's limits (a job in `response` mode has none).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Completion {
    pub timeout_s: u32,
    pub heartbeat_s: Option<u32>,
    pub cancel_grace_s: u32,
}

fn seconds(value: Option<i64>, field: &str) -> Result<Option<u32>, FieldError> {
    seconds_at(value, 1, field)
}

impl CompletionInput {
    /// The callback limits; none for `response` mode.
    pub fn parse(self, field: &str) -> Result<Option<Completion>, FieldError> {
        let timeout_s = seconds(self.timeout_s, &format!("{field}.timeout_s"))?;
        let heartbeat_s = seconds(self.heartbeat_s, &format!("{field}.heartbeat_s"))?;
        let cancel_grace_s = seconds(self.cancel_grace_s, &format!("{field}.cancel_grace_s"))?;
        if self.mode.unwrap_or_default() == CompletionMode::Response {
            let given = [
                ("timeout_s", timeout_s),
                ("heartbeat_s", heartbeat_s),
                ("cancel_grace_s", cancel_grace_s),
            ];
            if let Some((name, _)) = given.iter().find(|(_, v)| v.is_some()) {
                return Err(FieldError::new(
                    format!("{field}.{name}"),
                    "applies only with mode callback (a response ends a run in mode response)",
                ));
            }
            return Ok(None);
        }
        let timeout_s = timeout_s.unwrap_or(DEFAULT_TIMEOUT_S);
        if let Some(h) = heartbeat_s.filter(|h| *h > timeout_s) {
            return Err(FieldError::new(
                format!("{field}.heartbeat_s"),
                format!("must be at most timeout_s ({timeout_s}), got {h}"),
            ));
        }
        Ok(Some(Completion {
            timeout_s,
            heartbeat_s,
            cancel_grace_s: cancel_grace_s.unwrap_or(DEFAULT_CANCEL_GRACE_S),
        }))
    }
}

impl Completion {
    pub fn to_input(self) -> CompletionInput {
        CompletionInput {
            mode: Some(CompletionMode::Callback),
            timeout_s: Some(self.timeout_s.into()),
            heartbeat_s: self.heartbeat_s.map(i64::from),
            cancel_grace_s: Some(self.cancel_grace_s.into()),
        }
    }

    /// When an accepted run fails `timed_out`.
    pub fn deadline(self, accepted_at: DateTime<Utc>) -> DateTime<Utc> {
        accepted_at + TimeDelta::seconds(self.timeout_s.into())
    }
}

/// The key of callback tokens, derived from the service's sealing key, so
/// every instance mints and checks the same tokens and none is stored.
#[derive(Clone)]
pub struct CallbackKey([u8; 32]);

impl std::fmt::Debug for CallbackKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CallbackKey(…)")
    }
}

type HmacSha256 = Hmac<Sha256>;

impl CallbackKey {
    /// The key for `secret` (the sealing key's bytes), apart from any
    /// other use of it.
    pub fn derive(secret: &[u8]) -> Self {
        let digest = Sha256::new()
            .chain_update(b"cronhook callback tokens\0")
            .chain_update(secret)
            .finalize();
        let mut key = [0u8; 32];
        key.copy_from_slice(&digest);
        Self(key)
    }

    fn mac(&self, run: Uuid) -> HmacSha256 {
        let mut mac = HmacSha256::new_from_slice(&self.0).expect("HMAC takes any key length");
        mac.update(run.as_bytes());
        mac
    }

    /// Run `run`'s token: good for that run only.
    pub fn token(&self, run: Uuid) -> String {
        let tag = self.mac(run).finalize().into_bytes();
        format!("{TOKEN_PREFIX}{}", URL_SAFE_NO_PAD.encode(tag))
    }

    /// Whether `presented` is run `run`'s token (compared in constant time).
    pub fn verify(&self, run: Uuid, presented: &str) -> bool {
        let Some(tag) = presented
            .strip_prefix(TOKEN_PREFIX)
            .and_then(|b64| URL_SAFE_NO_PAD.decode(b64).ok())
        else {
            return false;
        };
        self.mac(run).verify_slice(&tag).is_ok()
    }
}

/// How the receiver says its work ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ReportedStatus {
    Succeeded,
    Failed,
    Cancelled,
}

impl ReportedStatus {
    pub fn run_status(self) -> RunStatus {
        match self {
            ReportedStatus::Succeeded => RunStatus::Succeeded,
            ReportedStatus::Failed => RunStatus::Failed,
            ReportedStatus::Cancelled => RunStatus::Cancelled,
        }
    }
}

/// `POST /v1/runs/{id}/complete`'s body.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CompletionReport {
    pub status: ReportedStatus,
    /// Any JSON, at most 16 kB as text; kept with the run.
    #[serde(default)]
    pub output: Option<Value>,
    /// Why it failed, in words (at most 1000 characters).
    #[serde(default)]
    pub error: Option<String>,
}

/// A completion as the run keeps it: a repeat is recognised by equality.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Completed {
    pub status: ReportedStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Why a report is refused before any run is read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReportRefusal {
    /// `output` over [`MAX_OUTPUT`] (a 413).
    TooLarge(usize),
    Invalid(FieldError),
}

fn bounded_text(text: Option<String>, field: &str) -> Result<Option<String>, FieldError> {
    match text {
        Some(t) if t.chars().count() > MAX_TEXT => Err(FieldError::new(
            field,
            format!("must be at most {MAX_TEXT} characters"),
        )),
        Some(t) if t.contains('\0') => Err(FieldError::new(field, "must not hold NUL characters")),
        other => Ok(other),
    }
}

impl CompletionReport {
    pub fn parse(self) -> Result<Completed, ReportRefusal> {
        let value = self.output.filter(|v| !v.is_null());
        let output = value.as_ref().map(Value::to_string);
        if let Some(text) = &output
            && text.len() > MAX_OUTPUT
        {
            return Err(ReportRefusal::TooLarge(text.len()));
        }
        // A NUL in a string, not the text `\u0000` in one.
        if let Some(path) = value
            .as_ref()
            .and_then(|v| crate::domain::json::nul_at(v, "output".to_string()))
        {
            return Err(ReportRefusal::Invalid(FieldError::new(
                path,
                "must not hold NUL characters",
            )));
        }
        let error = bounded_text(self.error, "error").map_err(ReportRefusal::Invalid)?;
        Ok(Completed {
            status: self.status,
            output,
            error,
        })
    }
}

/// `POST /v1/runs/{id}/heartbeat`'s body.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HeartbeatReport {
    /// How far the work is, in percent (0 to 100).
    #[serde(default)]
    #[schema(minimum = 0, maximum = 100)]
    pub progress: Option<f64>,
    /// What it is doing, in words (at most 1000 characters).
    #[serde(default)]
    pub message: Option<String>,
}

/// A heartbeat as the run keeps it.
#[derive(Debug, Clone, PartialEq)]
pub struct Beat {
    pub progress: Option<f64>,
    pub message: Option<String>,
}

impl HeartbeatReport {
    pub fn parse(self) -> Result<Beat, FieldError> {
        if let Some(p) = self.progress
            && !(0.0..=100.0).contains(&p)
        {
            return Err(FieldError::new(
                "progress",
                format!("must be a percentage from 0 to 100, got {p}"),
            ));
        }
        Ok(Beat {
            progress: self.progress,
            message: bounded_text(self.message, "message")?,
        })
    }
}

/// A run as the callback rules see it, read under its row lock.
#[derive(Debug, Clone, PartialEq)]
pub struct CallbackRun {
    /// As stored: a cancelling run is `running` with `cancel_requested_at`.
    pub status: RunStatus,
    pub attempt_count: u32,
    /// A request of it is in flight (a dispatcher's lease).
    pub leased: bool,
    pub accepted_at: Option<DateTime<Utc>>,
    pub cancel_requested_at: Option<DateTime<Utc>>,
    pub completed: Option<Completed>,
}

impl CallbackRun {
    /// Whether the work of it may still run: sent (or being sent) and
    /// not ended.
    fn started(&self) -> bool {
        match self.status {
            RunStatus::Running => true,
            // Between retries: a request that went unanswered may have
            // started the work, with the token it carried.
            RunStatus::Pending => self.attempt_count > 0,
            _ => false,
        }
    }
}

/// What a completion does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CompletionEffect {
    /// The run ends with `status`.
    Ends { status: RunStatus },
    /// The same completion again: answered as before, nothing changes.
    Repeated,
    /// Another completion after the end: 409, and `run.late_completion`.
    Late { ended_as: RunStatus },
    /// Not sent yet: nobody could have started its work (409).
    NotStarted,
}

/// What `report` does to `run`.
pub fn complete(run: &CallbackRun, report: &Completed) -> CompletionEffect {
    if run.started() {
        return CompletionEffect::Ends {
            status: report.status.run_status(),
        };
    }
    match &run.completed {
        Some(done) if done == report => CompletionEffect::Repeated,
        _ if run.status.in_flight() => CompletionEffect::NotStarted,
        _ => CompletionEffect::Late {
            ended_as: run.status,
        },
    }
}

/// What a heartbeat does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeartbeatEffect {
    /// Recorded; the next one is due by `next_due` (none without
    /// `heartbeat_s`, nor once a cancel was asked: its grace alone
    /// counts), and the watchdog looks at the run at `watch_at`.
    Beats {
        next_due: Option<DateTime<Utc>>,
        watch_at: Option<DateTime<Utc>>,
    },
    /// The run is not running (409).
    NotRunning,
}

pub fn heartbeat(
    run: &CallbackRun,
    heartbeat_s: Option<u32>,
    deadline_at: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> HeartbeatEffect {
    if !run.started() {
        return HeartbeatEffect::NotRunning;
    }
    let next_due = heartbeat_s
        .filter(|_| run.cancel_requested_at.is_none())
        .map(|s| now + TimeDelta::seconds(s.into()));
    HeartbeatEffect::Beats {
        next_due,
        watch_at: watch_at(deadline_at, next_due),
    }
}

/// What `POST /v1/runs/{id}/cancel` does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CancelEffect {
    /// Not sent, or nothing of it runs that Cronhook could tell: it is
    /// `cancelled` at once.
    Now,
    /// Its request is in flight (not yet accepted): `cancelled`, and the
    /// request aborted where it is sent.
    Abort,
    /// Accepted: `cancelling` until the receiver completes it or `until`;
    /// a cancel request goes to the receiver.
    Cancelling { until: DateTime<Utc> },
    /// Asked before: nothing new.
    AlreadyCancelling,
    /// It has ended (409).
    Ended,
}

pub fn cancel(run: &CallbackRun, cancel_grace_s: u32, now: DateTime<Utc>) -> CancelEffect {
    match run.status {
        RunStatus::Running if run.cancel_requested_at.is_some() => CancelEffect::AlreadyCancelling,
        RunStatus::Running if run.accepted_at.is_some() => CancelEffect::Cancelling {
            until: now + TimeDelta::seconds(cancel_grace_s.into()),
        },
        RunStatus::Running if run.leased => CancelEffect::Abort,
        s if s.in_flight() => CancelEffect::Now,
        _ => CancelEffect::Ended,
    }
}

/// An accepted run the watchdog looks at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Watched {
    /// The end of `timeout_s`, or of a cancel's grace.
    pub deadline_at: Option<DateTime<Utc>>,
    pub heartbeat_due_at: Option<DateTime<Utc>>,
    pub cancelling: bool,
}

/// How the watchdog ends an accepted run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Overdue {
    /// `failed`, `timed_out`.
    TimedOut,
    /// `failed`, `heartbeat_lost`.
    HeartbeatLost,
    /// `cancelled`: the grace after a cancel passed.
    CancelGraceOver,
}

impl Overdue {
    pub fn status(self) -> RunStatus {
        match self {
            Overdue::TimedOut | Overdue::HeartbeatLost => RunStatus::Failed,
            Overdue::CancelGraceOver => RunStatus::Cancelled,
        }
    }

    pub fn reason(self) -> &'static str {
        match self {
            Overdue::TimedOut => REASON_TIMED_OUT,
            Overdue::HeartbeatLost => REASON_HEARTBEAT_LOST,
            Overdue::CancelGraceOver => REASON_CANCELLED,
        }
    }

    /// In words, for the run's log line and event.
    pub fn in_words(self) -> &'static str {
        match self {
            Overdue::TimedOut => "no completion within the job's completion.timeout_s",
            Overdue::HeartbeatLost => "no heartbeat within the job's completion.heartbeat_s",
            Overdue::CancelGraceOver => {
                "cancelled: the receiver did not confirm within completion.cancel_grace_s"
            }
        }
    }
}

/// Whether `run` is over its time at `now` (the database's clock).
pub fn overdue(run: Watched, now: DateTime<Utc>) -> Option<Overdue> {
    let past = |at: Option<DateTime<Utc>>| at.is_some_and(|at| at <= now);
    if past(run.deadline_at) {
        return Some(if run.cancelling {
            Overdue::CancelGraceOver
        } else {
            Overdue::TimedOut
        });
    }
    // A cancelled run owes no more heartbeats: only its grace counts.
    if !run.cancelling && past(run.heartbeat_due_at) {
        return Some(Overdue::HeartbeatLost);
    }
    None
}

/// What the watchdog does with a run over its time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OverdueEffect {
    /// The run ends so, for this reason.
    Ends {
        status: RunStatus,
        reason: &'static str,
    },
    /// A time-out its job's `retry.on_timeout` retries: pending again,
    /// sent after `delay`.
    Retry { delay: std::time::Duration },
}

/// What becomes of a run that is `overdue`, its accepted attempt being
/// `attempt` under its job's retry `policy`: a time-out or a lost
/// heartbeat fails it unless `retry.on_timeout` sends it again (§11.7,
/// [`retry::after_attempt`]); a cancel's grace over ends it cancelled.
/// `age` is now − its `scheduled_for`; `unit` a uniform random number in
/// `[0, 1)`.
pub fn settle_overdue(
    overdue: Overdue,
    attempt: AttemptNumber,
    policy: &RetryPolicy,
    age: std::time::Duration,
    unit: f64,
) -> OverdueEffect {
    if overdue == Overdue::CancelGraceOver {
        return OverdueEffect::Ends {
            status: overdue.status(),
            reason: overdue.reason(),
        };
    }
    let decision = retry::after_attempt(
        attempt,
        policy,
        retry::AttemptResult::CallbackTimedOut,
        age,
        unit,
    );
    match decision.outcome {
        Outcome::Retry { delay } => OverdueEffect::Retry { delay },
        _ => OverdueEffect::Ends {
            status: overdue.status(),
            reason: decision.reason.unwrap_or(overdue.reason()),
        },
    }
}

/// When the watchdog must look at a run next: the earlier of its
/// deadlines.
pub fn watch_at(
    deadline_at: Option<DateTime<Utc>>,
    heartbeat_due_at: Option<DateTime<Utc>>,
) -> Option<DateTime<Utc>> {
    match (deadline_at, heartbeat_due_at) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn at(s: &str) -> DateTime<Utc> {
        crate::domain::instant::parse(s).unwrap()
    }

    const NOW: &str = "2026-12-05T10:00:00Z";

    fn parse(v: Value) -> Result<Option<Completion>, FieldError> {
        serde_json::from_value::<CompletionInput>(v)
            .unwrap()
            .parse("completion")
    }

    #[test]
    fn callback_mode_takes_its_defaults_and_response_mode_has_none() {
        assert_eq!(
            parse(json!({"mode": "callback"})).unwrap(),
            Some(Completion {
                timeout_s: 21_600,
                heartbeat_s: None,
                cancel_grace_s: 60
            })
        );
        assert_eq!(parse(json!({})).unwrap(), None);
        assert_eq!(parse(json!({"mode": "response"})).unwrap(), None);
        let c = parse(json!({"mode": "callback", "timeout_s": 60, "heartbeat_s": 5})).unwrap();
        assert_eq!(
            parse(serde_json::to_value(c.unwrap().to_input()).unwrap()).unwrap(),
            c
        );
    }

    #[test]
    fn bad_limits_name_their_field() {
        let e = parse(json!({"mode": "response", "timeout_s": 60})).unwrap_err();
        assert_eq!(e.field, "completion.timeout_s");
        let e = parse(json!({"mode": "callback", "heartbeat_s": 0})).unwrap_err();
        assert_eq!(e.field, "completion.heartbeat_s");
        let e = parse(json!({"mode": "callback", "timeout_s": 10, "heartbeat_s": 20})).unwrap_err();
        assert_eq!(e.field, "completion.heartbeat_s");
        assert!(e.message.contains("timeout_s (10)"), "{}", e.message);
        let e = parse(json!({"mode": "callback", "cancel_grace_s": 99_999_999})).unwrap_err();
        assert_eq!(e.field, "completion.cancel_grace_s");
    }

    #[test]
    fn a_token_is_good_for_its_run_only_and_under_its_key_only() {
        let key = CallbackKey::derive(b"0123456789abcdef0123456789abcdef");
        let run = Uuid::now_v7();
        let token = key.token(run);
        assert!(token.starts_with("crt_"));
        assert!(key.verify(run, &token));
        assert!(!key.verify(Uuid::now_v7(), &token));
        assert!(!CallbackKey::derive(b"another key").verify(run, &token));
        assert!(!key.verify(run, "crt_"));
        assert!(!key.verify(run, &token[..token.len() - 1]));
        assert!(!key.verify(run, &token.replace("crt_", "cht_")));
        assert_eq!(format!("{key:?}"), "CallbackKey(…)");
    }

    fn report(v: Value) -> Result<Completed, ReportRefusal> {
        serde_json::from_value::<CompletionReport>(v)
            .unwrap()
            .parse()
    }

    #[test]
    fn an_output_over_16_kb_is_too_large_and_text_is_bounded() {
        let big = "x".repeat(MAX_OUTPUT);
        assert!(matches!(
            report(json!({"status": "succeeded", "output": {"s": big}})),
            Err(ReportRefusal::TooLarge(n)) if n > MAX_OUTPUT
        ));
        let ok = report(json!({"status": "succeeded", "output": {"rows": 3}})).unwrap();
        assert_eq!(ok.output.as_deref(), Some(r#"{"rows":3}"#));
        let e = report(json!({"status": "failed", "error": "e".repeat(1001)})).unwrap_err();
        assert!(matches!(e, ReportRefusal::Invalid(f) if f.field == "error"));
    }

    #[test]
    fn a_nul_in_the_output_is_refused_where_it_is_and_its_escape_as_text_is_not() {
        let e = report(json!({"status": "succeeded", "output": {"rows": [1, "a\0b"]}}));
        assert!(
            matches!(&e, Err(ReportRefusal::Invalid(f)) if f.field == "output.rows[1]"),
            "{e:?}"
        );
        let text = report(json!({"status": "succeeded", "output": {"path": "C:\\u0000"}}));
        assert_eq!(
            text.unwrap().output.as_deref(),
            Some(r#"{"path":"C:\\u0000"}"#)
        );
    }

    fn running(accepted: bool) -> CallbackRun {
        CallbackRun {
            status: RunStatus::Running,
            attempt_count: 1,
            leased: !accepted,
            accepted_at: accepted.then(|| at("2026-12-05T09:00:00Z")),
            cancel_requested_at: None,
            completed: None,
        }
    }

    fn done(status: ReportedStatus) -> Completed {
        Completed {
            status,
            output: Some("{}".into()),
            error: None,
        }
    }

    #[test]
    fn a_completion_ends_a_running_run_even_before_its_response_is_recorded() {
        for accepted in [true, false] {
            assert_eq!(
                complete(&running(accepted), &done(ReportedStatus::Succeeded)),
                CompletionEffect::Ends {
                    status: RunStatus::Succeeded
                }
            );
        }
        let cancelling = CallbackRun {
            cancel_requested_at: Some(at(NOW)),
            ..running(true)
        };
        assert_eq!(
            complete(&cancelling, &done(ReportedStatus::Cancelled)),
            CompletionEffect::Ends {
                status: RunStatus::Cancelled
            }
        );
        // Pending again after an unanswered request: its work may run.
        let retrying = CallbackRun {
            status: RunStatus::Pending,
            ..running(false)
        };
        assert!(matches!(
            complete(&retrying, &done(ReportedStatus::Failed)),
            CompletionEffect::Ends { .. }
        ));
        let unsent = CallbackRun {
            attempt_count: 0,
            ..retrying
        };
        assert_eq!(
            complete(&unsent, &done(ReportedStatus::Failed)),
            CompletionEffect::NotStarted
        );
    }

    #[test]
    fn the_same_completion_again_is_a_repeat_and_another_is_late() {
        let ended = CallbackRun {
            status: RunStatus::Succeeded,
            completed: Some(done(ReportedStatus::Succeeded)),
            ..running(true)
        };
        assert_eq!(
            complete(&ended, &done(ReportedStatus::Succeeded)),
            CompletionEffect::Repeated
        );
        assert_eq!(
            complete(&ended, &done(ReportedStatus::Failed)),
            CompletionEffect::Late {
                ended_as: RunStatus::Succeeded
            }
        );
        let timed_out = CallbackRun {
            status: RunStatus::Failed,
            completed: None,
            ..running(true)
        };
        assert_eq!(
            complete(&timed_out, &done(ReportedStatus::Succeeded)),
            CompletionEffect::Late {
                ended_as: RunStatus::Failed
            }
        );
    }

    #[test]
    fn a_heartbeat_sets_the_next_due_time_while_the_run_runs() {
        let deadline = Some(at("2026-12-05T16:00:00Z"));
        assert_eq!(
            heartbeat(&running(true), Some(30), deadline, at(NOW)),
            HeartbeatEffect::Beats {
                next_due: Some(at("2026-12-05T10:00:30Z")),
                watch_at: Some(at("2026-12-05T10:00:30Z")),
            }
        );
        assert_eq!(
            heartbeat(&running(true), None, deadline, at(NOW)),
            HeartbeatEffect::Beats {
                next_due: None,
                watch_at: deadline,
            }
        );
        // A cancelled run owes no heartbeat: its grace alone counts.
        let cancelling = CallbackRun {
            cancel_requested_at: Some(at("2026-12-05T09:59:00Z")),
            ..running(true)
        };
        let grace = Some(at("2026-12-05T10:00:00Z"));
        assert_eq!(
            heartbeat(&cancelling, Some(30), grace, at(NOW)),
            HeartbeatEffect::Beats {
                next_due: None,
                watch_at: grace,
            }
        );
        let ended = CallbackRun {
            status: RunStatus::Failed,
            ..running(true)
        };
        assert_eq!(
            heartbeat(&ended, Some(30), deadline, at(NOW)),
            HeartbeatEffect::NotRunning
        );
    }

    #[test]
    fn a_cancel_depends_on_how_far_the_run_is() {
        assert_eq!(
            cancel(&running(true), 60, at(NOW)),
            CancelEffect::Cancelling {
                until: at("2026-12-05T10:01:00Z")
            }
        );
        assert_eq!(cancel(&running(false), 60, at(NOW)), CancelEffect::Abort);
        let again = CallbackRun {
            cancel_requested_at: Some(at(NOW)),
            ..running(true)
        };
        assert_eq!(cancel(&again, 60, at(NOW)), CancelEffect::AlreadyCancelling);
        let pending = CallbackRun {
            status: RunStatus::Pending,
            attempt_count: 0,
            ..running(false)
        };
        assert_eq!(cancel(&pending, 60, at(NOW)), CancelEffect::Now);
        // A monitor's run started by a ping: no lease, not accepted.
        let pinged = CallbackRun {
            leased: false,
            ..running(false)
        };
        assert_eq!(cancel(&pinged, 60, at(NOW)), CancelEffect::Now);
        let ended = CallbackRun {
            status: RunStatus::Succeeded,
            ..running(true)
        };
        assert_eq!(cancel(&ended, 60, at(NOW)), CancelEffect::Ended);
    }

    #[test]
    fn the_watchdog_ends_a_run_at_its_first_deadline_not_before() {
        let run = Watched {
            deadline_at: Some(at("2026-12-05T16:00:00Z")),
            heartbeat_due_at: Some(at("2026-12-05T10:00:30Z")),
            cancelling: false,
        };
        assert_eq!(overdue(run, at("2026-12-05T10:00:29Z")), None);
        assert_eq!(
            overdue(run, at("2026-12-05T10:00:30Z")),
            Some(Overdue::HeartbeatLost)
        );
        assert_eq!(
            overdue(run, at("2026-12-05T16:00:00Z")),
            Some(Overdue::TimedOut)
        );
        let cancelling = Watched {
            deadline_at: Some(at("2026-12-05T10:01:00Z")),
            cancelling: true,
            ..run
        };
        // Its heartbeats no longer count; its grace does.
        assert_eq!(overdue(cancelling, at("2026-12-05T10:00:45Z")), None);
        assert_eq!(
            overdue(cancelling, at("2026-12-05T10:01:00Z")),
            Some(Overdue::CancelGraceOver)
        );
        assert_eq!(Overdue::CancelGraceOver.status(), RunStatus::Cancelled);
        assert_eq!(
            watch_at(run.deadline_at, run.heartbeat_due_at),
            run.heartbeat_due_at
        );
        assert_eq!(watch_at(run.deadline_at, None), run.deadline_at);
    }

    #[test]
    fn an_overdue_run_fails_or_is_retried_as_its_job_says() {
        let on_timeout: RetryPolicy = serde_json::from_value::<crate::domain::retry::RetryInput>(
            json!({"max_attempts": 2, "on_timeout": true, "delays_s": [5]}),
        )
        .unwrap()
        .parse("retry")
        .unwrap();
        let settle = |overdue, attempt: u32, policy: &RetryPolicy| {
            settle_overdue(
                overdue,
                attempt.into(),
                policy,
                std::time::Duration::ZERO,
                0.5,
            )
        };
        for overdue in [Overdue::TimedOut, Overdue::HeartbeatLost] {
            // By default it fails, naming why.
            assert_eq!(
                settle(overdue, 1, &RetryPolicy::default()),
                OverdueEffect::Ends {
                    status: RunStatus::Failed,
                    reason: overdue.reason()
                }
            );
            assert_eq!(
                settle(overdue, 1, &on_timeout),
                OverdueEffect::Retry {
                    delay: std::time::Duration::from_secs(5)
                }
            );
            // Its last attempt fails as by default.
            assert_eq!(
                settle(overdue, 2, &on_timeout),
                OverdueEffect::Ends {
                    status: RunStatus::Failed,
                    reason: overdue.reason()
                }
            );
        }
        // A cancel's grace over is no failure to retry.
        assert_eq!(
            settle(Overdue::CancelGraceOver, 1, &on_timeout),
            OverdueEffect::Ends {
                status: RunStatus::Cancelled,
                reason: REASON_CANCELLED
            }
        );
    }
}
