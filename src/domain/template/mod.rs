//! Run context in the request (DESIGN.md §11.2): a target with
//! `template: true` has Jinja expressions in the string leaves of its JSON
//! body (never keys), a string body, header values, and its URL's path and
//! query (never its host), rendered through minijinja once, when a run is
//! made; the store keeps what this answers on the run, so retries and
//! redrives send the same bytes.

mod filters;
mod url_parts;

use chrono::{DateTime, SecondsFormat, Utc};
use minijinja::{Environment, UndefinedBehavior, Value as Context};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::domain::error::FieldError;
use crate::domain::job::JobDefinition;
use crate::domain::run::RunCause;
use crate::domain::target::{Body, Target, is_header_value};
use crate::domain::trigger::local_rfc3339;

/// A rendered body obeys the API's own request body limit.
pub const MAX_RENDERED_BODY_BYTES: usize = 1024 * 1024;

/// What a run's request is rendered with, besides its job.
#[derive(Debug, Clone, PartialEq)]
pub struct RunFacts {
    pub run_id: Uuid,
    pub scheduled_for: DateTime<Utc>,
    pub cause: RunCause,
    pub occurrences: u64,
    /// The job's newest run that succeeded: scheduled for, finished at.
    pub last_success: Option<(DateTime<Utc>, DateTime<Utc>)>,
    /// A chained run's parent (§11.8): `parent.*`.
    pub parent: Option<ParentFacts>,
}

/// The run whose end made a chained run (§11.8).
#[derive(Debug, Clone, PartialEq)]
pub struct ParentFacts {
    pub run_id: Uuid,
    pub job_id: String,
    /// `succeeded` or `failed`.
    pub status: crate::domain::run::RunStatus,
    pub scheduled_for: DateTime<Utc>,
}

/// Why a template does not render: the field it sits in and what went
/// wrong where. At write time a 422; at run time the run fails with
/// error `template_error`, not retried.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateError {
    pub field: String,
    pub message: String,
}

impl TemplateError {
    fn at(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }

    /// The attempt's error at run time.
    pub fn as_run_error(&self) -> String {
        format!("template_error: {}: {}", self.field, self.message)
    }
}

impl From<TemplateError> for FieldError {
    fn from(e: TemplateError) -> Self {
        FieldError::new(e.field, e.message)
    }
}

/// Checks a template target when a job is written: statements refused,
/// and every expression rendered with sample values (the job's own
/// metadata, a last success), so that an unknown variable or filter is
/// refused now, naming the field and the position.
pub fn check(
    job_id: &str,
    definition: &JobDefinition,
    now: DateTime<Utc>,
) -> Result<(), FieldError> {
    let sample = RunFacts {
        run_id: Uuid::from_u128(0x0190_0000_0000_7000_8000_0000_0000_0000),
        scheduled_for: now,
        cause: RunCause::Schedule,
        occurrences: 1,
        last_success: Some((now, now)),
        parent: Some(ParentFacts {
            run_id: Uuid::from_u128(0x0190_0000_0000_7000_8000_0000_0000_0001),
            job_id: "parent".into(),
            status: crate::domain::run::RunStatus::Succeeded,
            scheduled_for: now,
        }),
    };
    render(job_id, definition, &sample)?;
    Ok(())
}

/// The request run `run` of job `job_id` sends: its target with every
/// expression rendered. A target without `template` comes back as it is.
pub fn render(
    job_id: &str,
    definition: &JobDefinition,
    run: &RunFacts,
) -> Result<Target, TemplateError> {
    let Some(target) = &definition.target else {
        return Err(TemplateError::at(
            "target",
            "is null: a monitor-only job sends no request",
        ));
    };
    if !target.template {
        return Ok(target.clone());
    }
    let zone_name = definition.trigger.timezone();
    let zone = crate::domain::trigger::zone_rules(zone_name)
        .ok_or_else(|| TemplateError::at("trigger.timezone", "has no rules"))?;
    let mut env = Environment::empty();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    // None (no last success yet) prints as nothing, not "none".
    env.set_formatter(|out, state, value| {
        if value.is_none() {
            Ok(())
        } else {
            minijinja::escape_formatter(out, state, value)
        }
    });
    filters::register(&mut env, &zone);
    let context = Context::from(minijinja::value::Serde(context_of(job_id, definition, run)));
    let render_one = |field: &str, source: &str| render_text(&env, &context, field, source);
    let mut out = target.clone();
    out.url = url_parts::render(&target.url, |source| render_one("target.url", source))?;
    for (name, value) in out.headers.iter_mut() {
        let field = format!("target.headers.{name}");
        *value = render_one(&field, value)?;
        if !is_header_value(value) {
            return Err(TemplateError::at(
                field,
                "renders to a value that is not a valid header value (visible ASCII, at most 8192 bytes)",
            ));
        }
    }
    out.body = match &target.body {
        Body::None => Body::None,
        Body::Text(text) => Body::Text(render_one("target.body", text)?),
        Body::Json(value) => Body::Json(render_json(value, "target.body", &render_one)?),
    };
    let size = out.body_bytes().len();
    if size > MAX_RENDERED_BODY_BYTES {
        return Err(TemplateError::at(
            "target.body",
            format!("renders to {size} bytes; at most {MAX_RENDERED_BODY_BYTES}"),
        ));
    }
    Ok(out)
}

/// The variables of §11.2. Instants are RFC 3339 text (UTC unless said);
/// `prev` and `window.start` are the trigger's previous occurrence,
/// computed; what has no value is none.
fn context_of(job_id: &str, definition: &JobDefinition, run: &RunFacts) -> Value {
    let utc = |t: DateTime<Utc>| t.to_rfc3339_opts(SecondsFormat::AutoSi, true);
    let zone = definition.trigger.timezone();
    let scheduled_for = utc(run.scheduled_for);
    let prev = definition
        .trigger
        .previous_before(run.scheduled_for)
        .map(utc);
    json!({
        "run": {
            "id": run.run_id.to_string(),
            "scheduled_for": scheduled_for,
            "scheduled_for_local": local_rfc3339(run.scheduled_for, zone),
            // No calendar moves an occurrence yet (§11.4): nominal is when.
            "nominal_for": scheduled_for,
            "cause": run.cause.as_str(),
            "occurrences": run.occurrences,
        },
        "job": {
            "id": job_id,
            "name": definition.name,
            "timezone": zone.name(),
            "metadata": definition.metadata,
            "labels": {},
        },
        "prev": {"scheduled_for": prev},
        "last_success": {
            "scheduled_for": run.last_success.map(|(s, _)| utc(s)),
            "finished_at": run.last_success.map(|(_, f)| utc(f)),
        },
        "window": {"start": prev, "end": scheduled_for},
        // Empty but for a chained run (§11.8), so that one template serves
        // the job's own runs too.
        "parent": {
            "run_id": run.parent.as_ref().map(|p| p.run_id.to_string()),
            "job_id": run.parent.as_ref().map(|p| p.job_id.clone()),
            "status": run.parent.as_ref().map(|p| p.status.as_str()),
            "scheduled_for": run.parent.as_ref().map(|p| utc(p.scheduled_for)),
        },
    })
}

/// One string through the engine: expressions only.
fn render_text(
    env: &Environment<'_>,
    context: &Context,
    field: &str,
    source: &str,
) -> Result<String, TemplateError> {
    if let Some(at) = source.find("{%") {
        return Err(TemplateError::at(
            field,
            format!(
                "a statement ({{% … %}}) at character {}: only expressions ({{{{ … }}}}) may be used",
                at + 1
            ),
        ));
    }
    env.render_str(source, context.clone())
        .map_err(|e| TemplateError::at(field, in_words(&e)))
}

/// minijinja's error as a client reads it: what, and at which characters.
fn in_words(e: &minijinja::Error) -> String {
    let what = match e.detail() {
        Some(detail) => format!("{}: {detail}", e.kind()),
        None => e.kind().to_string(),
    };
    match e.range() {
        Some(range) => format!("{what} (characters {}-{})", range.start + 1, range.end),
        None => what,
    }
}

/// Every string leaf of a JSON body rendered; keys and other values kept.
fn render_json(
    value: &Value,
    field: &str,
    render_one: &dyn Fn(&str, &str) -> Result<String, TemplateError>,
) -> Result<Value, TemplateError> {
    Ok(match value {
        Value::String(text) => Value::String(render_one(field, text)?),
        Value::Array(items) => Value::Array(
            items
                .iter()
                .enumerate()
                .map(|(i, item)| render_json(item, &format!("{field}[{i}]"), render_one))
                .collect::<Result<_, _>>()?,
        ),
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| {
                    Ok((
                        k.clone(),
                        render_json(v, &format!("{field}.{k}"), render_one)?,
                    ))
                })
                .collect::<Result<_, TemplateError>>()?,
        ),
        other => other.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::instant::parse;
    use crate::domain::job::{JobInput, ParseContext};
    use crate::domain::network_policy::NetworkPolicy;
    use serde_json::json;

    fn definition(target: Value, metadata: Value) -> Result<JobDefinition, String> {
        let input: JobInput = serde_json::from_value(json!({
            "name": "Nightly export",
            "trigger": {"type": "cron", "expr": "0 0 * * *", "timezone": "Europe/Berlin"},
            "target": target,
            "metadata": metadata,
        }))
        .map_err(|e| e.to_string())?;
        input
            .parse(ParseContext {
                now: parse("2026-03-01T00:00:00Z").unwrap(),
                network_policy: NetworkPolicy::default(),
                binding: None,
            })
            .map(|spec| spec.definition)
            .map_err(|e| e.to_string())
    }

    fn facts(scheduled_for: &str) -> RunFacts {
        RunFacts {
            run_id: Uuid::from_u128(7),
            scheduled_for: parse(scheduled_for).unwrap(),
            cause: RunCause::Schedule,
            occurrences: 1,
            last_success: None,
            parent: None,
        }
    }

    #[test]
    fn renders_body_leaves_headers_and_url_with_the_run_context() {
        let d = definition(
            json!({
                "url": "https://example.com/export/{{ run.scheduled_for | date('%Y-%m-%d') }}?job={{ job.id }}&w={{ window.start }}",
                "template": true,
                "headers": {"X-Team": "{{ job.metadata.team }}"},
                "body": {"day": "{{ run.scheduled_for | add('-1d') | date('%Y-%m-%d') }}",
                         "{{ key }}": ["{{ run.scheduled_for_local }}", 3, "{{ prev.scheduled_for }}"],
                         "quote": "{{ job.name }} \"x\""}
            }),
            json!({"team": "data"}),
        )
        .unwrap();
        // Midnight in Berlin after the DST change: 22:00Z the day before.
        let t = render("export", &d, &facts("2026-03-29T22:00:00Z")).unwrap();
        assert_eq!(
            t.url.as_str(),
            "https://example.com/export/2026-03-30?job=export&w=2026-03-28T23%3A00%3A00Z"
        );
        assert_eq!(t.headers["x-team"], "data");
        assert_eq!(
            t.body,
            Body::Json(json!({
                "day": "2026-03-29",
                "{{ key }}": ["2026-03-30T00:00:00+02:00", 3, "2026-03-28T23:00:00Z"],
                "quote": "Nightly export \"x\""
            }))
        );
        assert_eq!(
            String::from_utf8(t.body_bytes()).unwrap(),
            r#"{"day":"2026-03-29","quote":"Nightly export \"x\"","{{ key }}":["2026-03-30T00:00:00+02:00",3,"2026-03-28T23:00:00Z"]}"#
        );
    }

    #[test]
    fn a_target_without_template_is_sent_as_written() {
        let d = definition(
            json!({"url": "https://example.com/", "body": "{{ run.id }}"}),
            json!({}),
        )
        .unwrap();
        let t = render("j", &d, &facts("2026-03-29T22:00:00Z")).unwrap();
        assert_eq!(t.body, Body::Text("{{ run.id }}".into()));
    }

    #[test]
    fn write_time_refusals_name_the_field_and_position() {
        let refused = |target: Value| definition(target, json!({"team": "data"})).unwrap_err();
        assert_eq!(
            refused(
                json!({"url": "https://example.com/", "template": true, "body": {"a": {"b": "x {{ nope }}"}}})
            ),
            "target.body.a.b: undefined value: `nope` is undefined (characters 6-9)"
        );
        assert!(
            refused(json!({"url": "https://example.com/", "template": true, "body": "{% if x %}y{% endif %}"}))
                .starts_with("target.body: a statement ({% … %}) at character 1")
        );
        assert!(
            refused(json!({"url": "https://example.com/", "template": true, "headers": {"X-A": "{{ run.id | shout }}"}}))
                .starts_with("target.headers.x-a: unknown filter")
        );
        assert!(
            refused(
                json!({"url": "https://example.com/{{ job.metadata.owner }}", "template": true})
            )
            .starts_with("target.url: undefined value")
        );
        assert!(
            refused(
                json!({"url": "https://example.com/", "template": true, "body": ["{{ run.id "]})
            )
            .starts_with("target.body[0]: syntax error")
        );
    }

    #[test]
    fn run_time_failures_are_template_errors() {
        let d = definition(
            json!({"url": "https://example.com/", "template": true,
                   "body": "{{ last_success.finished_at | date('%F') }}"}),
            json!({}),
        )
        .unwrap();
        let e = render("j", &d, &facts("2026-03-29T22:00:00Z")).unwrap_err();
        assert_eq!(e.field, "target.body");
        assert!(
            e.as_run_error()
                .starts_with("template_error: target.body: invalid operation: has no value")
        );
        let mut with_success = facts("2026-03-29T22:00:00Z");
        with_success.last_success = Some((
            parse("2026-03-28T22:00:00Z").unwrap(),
            parse("2026-03-28T22:00:05Z").unwrap(),
        ));
        assert_eq!(
            render("j", &d, &with_success).unwrap().body,
            Body::Text("2026-03-28".into())
        );
        let d = definition(
            json!({"url": "https://example.com/", "template": true,
                   "body": "{{ last_success.finished_at | default('never') }}"}),
            json!({}),
        )
        .unwrap();
        assert_eq!(
            render("j", &d, &facts("2026-03-29T22:00:00Z"))
                .unwrap()
                .body,
            Body::Text("never".into())
        );
    }

    #[test]
    fn a_header_that_renders_a_newline_fails() {
        let d = definition(
            json!({"url": "https://example.com/", "template": true, "headers": {"X-A": "{{ job.metadata.v }}"}}),
            json!({"v": "ok"}),
        )
        .unwrap();
        let mut bad = d.clone();
        bad.metadata.insert("v".into(), json!("a\r\nInjected: 1"));
        let e = render("j", &bad, &facts("2026-03-29T22:00:00Z")).unwrap_err();
        assert_eq!(e.field, "target.headers.x-a");
    }

    #[test]
    fn the_rendered_body_obeys_the_size_limit() {
        let d = definition(
            json!({"url": "https://example.com/", "template": true, "body": "{{ job.metadata.v * 400000 }}"}),
            json!({"v": "abc"}),
        )
        .unwrap_err();
        assert!(
            d.starts_with("target.body: renders to 1200000 bytes"),
            "{d}"
        );
    }
}
