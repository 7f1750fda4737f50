//! OpenAPI schemas the derive cannot say exactly: a trigger as `oneOf`
//! its three kinds with a `type` discriminator (the input type is one
//! struct, so that a bad trigger's error can name its field), a target
//! whose body is any JSON value and whose header names have a pattern, and
//! a job's merge patch, where `null` removes. Everything else is derived
//! from the types. They are written as JSON Schema
//! here, next to the types they describe in words; `tests` below feed every
//! example through the real input types, so the two cannot drift apart.

use serde_json::{Value, json};

use crate::domain::job::{ID_PATTERN, MAX_ID_LEN, MAX_INSTANCES_LIMIT, MAX_NAME_LEN};
use crate::domain::target::MAX_TIMEOUT_S;
use crate::domain::trigger::MAX_JITTER_S;

fn reference(name: &str) -> Value {
    json!({"$ref": format!("#/components/schemas/{name}")})
}

const INSTANT: &str = "An RFC 3339 instant such as `2026-11-23T10:00:00Z` (an offset is required; it is returned in UTC).";

fn instant(description: &str) -> Value {
    json!({"type": ["string", "null"], "format": "date-time", "description": format!("{description} {INSTANT}")})
}

fn jitter() -> Value {
    json!({"type": ["integer", "null"], "minimum": 0, "maximum": MAX_JITTER_S,
           "description": "Delay each delivery by a random 0 to `jitter_s` seconds; fire times do not move (default 0)."})
}

/// `CronTrigger`.
fn cron_trigger() -> Value {
    json!({
        "type": "object",
        "description": "Fires at the wall times a crontab expression matches, in an IANA time zone, with cron's own daylight-saving rules.",
        "required": ["type", "expr"],
        "properties": {
            "type": {"type": "string", "enum": ["cron"]},
            "expr": {"type": "string", "minLength": 1, "example": "30 2 * * *",
                     "description": "5 fields (minute hour day-of-month month day-of-week), or 6 with leading seconds; names, ranges, steps, `L`, `W`, `#` and the macros `@yearly @monthly @weekly @daily @hourly`. 0 and 7 are Sunday."},
            "timezone": {"type": ["string", "null"], "example": "Asia/Seoul",
                         "description": "IANA time zone the expression is read in (default `UTC`)."},
            "start_at": instant("No fire time before this (inclusive)."),
            "end_at": instant("No fire time after this (inclusive)."),
            "jitter_s": jitter()
        },
        "additionalProperties": false,
        "example": {"type": "cron", "expr": "30 2 * * *", "timezone": "Asia/Seoul"}
    })
}

/// `IntervalTrigger`.
fn interval_trigger() -> Value {
    json!({
        "type": "object",
        "description": "Fires every `every_s` seconds of real time, at `start_at + k·every_s`.",
        "required": ["type", "every_s"],
        "properties": {
            "type": {"type": "string", "enum": ["interval"]},
            "every_s": {"type": "integer", "minimum": 1, "maximum": crate::domain::trigger::MAX_EVERY_S,
                        "example": 3600, "description": "Seconds between fire times, 1 to ten years."},
            "start_at": instant("The grid's anchor and first fire time; without it, creation time + `every_s`, returned here."),
            "end_at": instant("No fire time after this (inclusive)."),
            "jitter_s": jitter()
        },
        "additionalProperties": false,
        "example": {"type": "interval", "every_s": 3600}
    })
}

/// `DateTrigger`.
fn date_trigger() -> Value {
    json!({
        "type": "object",
        "description": "Fires once, even when `run_at` is already past (the misfire grace then decides).",
        "required": ["type", "run_at"],
        "properties": {
            "type": {"type": "string", "enum": ["date"]},
            "run_at": {"type": "string", "format": "date-time", "example": "2030-12-01T09:00:00Z",
                       "description": format!("The one fire time. {INSTANT}")}
        },
        "additionalProperties": false,
        "example": {"type": "date", "run_at": "2030-12-01T09:00:00Z"}
    })
}

/// `Trigger`: one of the three, by `type`.
fn trigger() -> Value {
    json!({
        "description": "When a job fires: a cron, interval or date trigger, told apart by `type`. Fields of another kind are refused.",
        "oneOf": [reference("CronTrigger"), reference("IntervalTrigger"), reference("DateTrigger")],
        "discriminator": {
            "propertyName": "type",
            "mapping": {
                "cron": "#/components/schemas/CronTrigger",
                "interval": "#/components/schemas/IntervalTrigger",
                "date": "#/components/schemas/DateTrigger"
            }
        }
    })
}

/// A header name a job may set: a token, not one of the service's own.
const HEADER_NAME_PATTERN: &str = "^[!#$%&'*+.^_`|~0-9A-Za-z-]+$";

fn target_properties() -> Value {
    json!({
        "url": {"type": "string", "format": "uri", "pattern": "^[Hh][Tt][Tt][Pp][Ss]?://",
                "maxLength": 2048, "example": "https://example.com/hooks/report",
                "description": "An `http` or `https` URL."},
        "method": {"oneOf": [reference("HttpMethod"), {"type": "null"}],
                   "description": "The request method (default POST)."},
        "headers": {"type": ["object", "null"], "maxProperties": 50,
                    "propertyNames": {"type": "string", "pattern": HEADER_NAME_PATTERN},
                    "additionalProperties": {"type": "string", "maxLength": 8192, "pattern": "^[\\t\\x20-\\x7e]*$"},
                    "description": "Extra request headers. `webhook-*`, `cronhook-*`, `host`, `content-length`, `connection`, `transfer-encoding` and `user-agent` are the service's own and refused."},
        "body": {"description": "The body: any JSON value. A string is sent as given (`text/plain` unless `headers` sets `content-type`), anything else as `application/json`, none (absent or null) as an empty body."},
        "timeout_s": {"type": ["integer", "null"], "minimum": 1, "maximum": MAX_TIMEOUT_S,
                      "description": "Per-attempt timeout in seconds (default 30)."},
        "success": {"oneOf": [reference("Success"), {"type": "null"}],
                    "description": "What makes an answer a success beyond a 2xx status (DESIGN.md §11.6); absent: any 2xx."}
    })
}

/// `Target`.
fn target() -> Value {
    json!({
        "type": "object",
        "description": "The webhook request each run sends.",
        "required": ["url"],
        "properties": target_properties(),
        "additionalProperties": false,
        "example": {"url": "https://example.com/hooks/report", "body": {"report": "daily"}}
    })
}

/// `JobPatch`: a JSON Merge Patch (RFC 7396) of a job.
fn job_patch() -> Value {
    let mut target = target_properties();
    target["headers"]["additionalProperties"] =
        json!({"type": ["string", "null"], "maxLength": 8192, "pattern": "^[\\t\\x20-\\x7e]*$"});
    json!({
        "type": "object",
        "description": "A JSON Merge Patch (RFC 7396) of a job: the fields given change, objects merge (`{\"target\": {\"url\": …}}` keeps the body and headers), `null` removes where a field may be absent. A `trigger` that names a `type` replaces the trigger whole; one that does not merges into it. A new trigger recomputes `next_run_at`; `paused` pauses or resumes; `next_run_at` forces the next fire time.",
        "properties": {
            "id": {"type": "string", "description": "If given, the job's own id (it cannot change)."},
            "name": {"type": ["string", "null"], "maxLength": MAX_NAME_LEN},
            "trigger": {
                "type": "object",
                "description": "With `type`: a whole new trigger. Without: fields to change in the present one.",
                "properties": {
                    "type": {"type": "string", "enum": ["cron", "interval", "date"]},
                    "expr": {"type": "string", "minLength": 1},
                    "timezone": {"type": ["string", "null"]},
                    "every_s": {"type": "integer", "minimum": 1, "maximum": crate::domain::trigger::MAX_EVERY_S},
                    "run_at": {"type": "string", "format": "date-time"},
                    "start_at": {"type": ["string", "null"], "format": "date-time"},
                    "end_at": {"type": ["string", "null"], "format": "date-time"},
                    "jitter_s": jitter()
                },
                "additionalProperties": false
            },
            "target": {"type": "object", "properties": target, "additionalProperties": false},
            "misfire_grace_s": {"type": ["integer", "null"], "minimum": 1, "maximum": u32::MAX},
            "coalesce": {"type": "boolean"},
            "catchup_max": {"type": "integer", "minimum": 1, "maximum": crate::domain::misfire::MAX_CATCHUP_MAX},
            "max_instances": {"type": "integer", "minimum": 1, "maximum": MAX_INSTANCES_LIMIT},
            "overlap": {"type": ["string", "null"], "enum": ["skip", "buffer_one", "buffer_all", "replace", null]},
            "buffer_max": {"type": ["integer", "null"], "minimum": 1, "maximum": crate::domain::overlap::MAX_BUFFER_MAX},
            "pause_on_failure": {"type": "boolean"},
            "max_runs": {"type": ["integer", "null"], "minimum": 1, "maximum": crate::domain::run_limit::MAX_RUNS_LIMIT},
            "on_complete": {"type": ["string", "null"], "enum": ["keep", "delete", null]},
            "retry": reference("Retry"),
            "alerts": {"oneOf": [reference("Alerts"), {"type": "null"}],
                       "description": "When its runs alert (DESIGN.md §11.5); null: never."},
            "mute_until": {"type": ["string", "null"], "format": "date-time",
                           "description": "No alert opens or reminds before this instant; null: not muted."},
            "metrics": {"type": "boolean",
                        "description": "Export its last success time and consecutive failures on `/metrics`."},
            "paused": {"type": "boolean"},
            "next_run_at": {"oneOf": [
                {"type": "string", "format": "date-time"},
                {"type": "string", "enum": ["now"]}
            ], "description": format!("Force the next fire time: {INSTANT} Or `now`.")},
            "metadata": {"type": ["object", "null"],
                         "description": "Keys to set; a key set to null is removed."},
            "labels": {"type": ["object", "null"],
                       "additionalProperties": {"type": ["string", "null"], "maxLength": 63},
                       "description": "Labels to set; a label set to null is removed."}
        },
        "additionalProperties": false,
        "example": {"paused": true}
    })
}

/// The schemas above, by their component name, as the OpenAPI document
/// gets them.
pub fn components() -> Vec<(&'static str, Value)> {
    vec![
        ("Trigger", trigger()),
        ("CronTrigger", cron_trigger()),
        ("IntervalTrigger", interval_trigger()),
        ("DateTrigger", date_trigger()),
        ("Target", target()),
        (
            "HttpMethod",
            json!({"type": "string", "enum": ["GET", "POST", "PUT", "PATCH", "DELETE"],
                   "description": "A webhook's method; methods are case-sensitive."}),
        ),
        ("JobPatch", job_patch()),
    ]
}

/// The `Idempotency-Key` request header.
#[derive(utoipa::IntoParams, serde::Deserialize)]
#[into_params(parameter_in = Header)]
pub struct IdempotencyKeyHeader {
    /// Makes a retried request safe: the same key within 24 hours answers
    /// with what the first request made and creates nothing new; the same
    /// key with another request is a 422. 1 to 255 visible ASCII
    /// characters, such as a UUID.
    #[serde(rename = "Idempotency-Key")]
    #[param(min_length = 1, max_length = 255, pattern = "^[!-~]+$")]
    #[allow(dead_code)]
    idempotency_key: Option<String>,
}

/// A job id in a path or query: what [`crate::domain::job::JobId`] accepts.
pub fn job_id_schema() -> Value {
    json!({"type": "string", "minLength": 1, "maxLength": MAX_ID_LEN, "pattern": ID_PATTERN})
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::job::{JobInput, ParseContext};
    use crate::domain::json::from_value;
    use crate::domain::network_policy::NetworkPolicy;
    use crate::domain::target::TargetInput;
    use crate::domain::trigger::TriggerInput;

    fn ctx() -> ParseContext {
        ParseContext {
            now: crate::domain::instant::parse("2026-11-23T10:00:00Z").unwrap(),
            network_policy: NetworkPolicy::default(),
            binding: None,
        }
    }

    #[test]
    fn every_trigger_example_is_a_trigger_the_service_accepts() {
        for kind in [cron_trigger(), interval_trigger(), date_trigger()] {
            let example = &kind["example"];
            let input: TriggerInput = from_value(example).unwrap();
            input.parse(ctx().now, "trigger").unwrap();
            // The schema lists exactly the fields the input type reads.
            let listed: Vec<&String> = kind["properties"].as_object().unwrap().keys().collect();
            for field in listed {
                let mut probe = example.clone();
                if probe.get(field).is_none() {
                    probe[field] = Value::Null;
                }
                assert!(
                    from_value::<TriggerInput>(&probe).is_ok(),
                    "{field} is not a field of TriggerInput"
                );
            }
        }
    }

    #[test]
    fn the_target_example_and_fields_are_the_input_type_s() {
        let t = target();
        let input: TargetInput = from_value(&t["example"]).unwrap();
        input.parse(&NetworkPolicy::default(), "target").unwrap();
        for field in t["properties"].as_object().unwrap().keys() {
            let probe = json!({"url": "http://x.test", field.as_str(): null});
            assert!(from_value::<TargetInput>(&probe).is_ok(), "{field}");
        }
    }

    /// `schema` attributes take literals only; these are the limits the
    /// parsers enforce.
    #[test]
    fn derived_bounds_are_the_parsers_limits() {
        use crate::domain::retry::{MAX_AGE_S, MAX_ATTEMPTS_LIMIT, MAX_BACKOFF_S, RetryInput};
        use crate::domain::success::{
            MAX_JSON_RULES, MAX_LATENCY_MS, MAX_STATUSES, MAX_TEXT_LEN, SuccessInput,
        };
        use utoipa::PartialSchema;
        let retry = serde_json::to_value(RetryInput::schema()).unwrap();
        let retry = &retry["properties"];
        assert_eq!(retry["max_attempts"]["maximum"], MAX_ATTEMPTS_LIMIT);
        assert_eq!(retry["backoff_initial_s"]["maximum"], MAX_BACKOFF_S);
        assert_eq!(retry["backoff_max_s"]["maximum"], MAX_BACKOFF_S);
        assert_eq!(retry["delays_s"]["items"]["maximum"], MAX_BACKOFF_S);
        assert_eq!(retry["max_age_s"]["maximum"], MAX_AGE_S);
        let success = serde_json::to_value(SuccessInput::schema()).unwrap();
        let properties = &success["properties"];
        assert_eq!(properties["max_latency_ms"]["maximum"], MAX_LATENCY_MS);
        assert_eq!(properties["status"]["maxItems"], MAX_STATUSES);
        assert_eq!(properties["json"]["maxItems"], MAX_JSON_RULES);
        for text in ["body_contains", "body_not_contains"] {
            assert_eq!(properties[text]["maxLength"], MAX_TEXT_LEN, "{text}");
        }
        // Refused past these by the parsers, as the schema says.
        let too_many = |field: &str, value: Value| {
            let input: RetryInput = from_value(&json!({field: value})).unwrap();
            input.parse("retry").unwrap_err().to_string()
        };
        assert!(too_many("max_attempts", json!(MAX_ATTEMPTS_LIMIT + 1)).contains("max_attempts"));
        assert!(too_many("delays_s", json!(vec![1; 51])).contains("delays_s"));
        assert!(too_many("never_retry", json!([99])).contains("never_retry"));
        let example: SuccessInput = from_value(&success["example"]).unwrap();
        example.parse("success").unwrap();
    }

    #[test]
    fn the_patch_fields_are_the_job_s() {
        let p = job_patch();
        for field in p["properties"].as_object().unwrap().keys() {
            let probe = json!({field.as_str(): null});
            assert!(from_value::<JobInput>(&probe).is_ok(), "{field}");
        }
    }
}
