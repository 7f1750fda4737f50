//! Success rules (DESIGN.md §11.6): what makes an answer a success beyond
//! its status code. Compiled once, when a job is written; judged per
//! attempt, on the response's status, body excerpt and latency.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use serde_json_path::JsonPath;
use utoipa::ToSchema;

use crate::domain::error::FieldError;

/// Bytes of a body the rules read (and the attempt keeps) when a body rule
/// needs it; beyond them the body is cut and `body_truncated` set.
pub const MAX_BODY_BYTES: usize = 65_536;
pub(crate) const MAX_TEXT_LEN: usize = 1_024;
pub(crate) const MAX_JSON_RULES: usize = 20;
pub(crate) const MAX_STATUSES: usize = 50;
pub const MAX_LATENCY_MS: i64 = 300_000;

// The OpenAPI schema is derived from this type; its bounds are literals,
// held to the constants by `api::schema`'s tests.
/// What makes an answer a success. A status listed that fails another
/// rule is a failure with reason `rule_failed`, its attempt's
/// `outcome_reason` saying why (DESIGN.md §11.6).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = Success, example = json!({"status": ["2xx"], "json": [{"path": "$.status", "equals": "done"}]}))]
pub struct SuccessInput {
    /// Status codes (`304`) or classes (`"2xx"`) that may succeed
    /// (default `["2xx"]`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(schema_with = status_schema)]
    pub status: Option<Vec<Value>>,
    /// The body (its first 64 kB) must contain this text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(min_length = 1, max_length = 1024)]
    pub body_contains: Option<String>,
    /// The body (its first 64 kB) must not contain this text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(min_length = 1, max_length = 1024)]
    pub body_not_contains: Option<String>,
    /// JSONPath equalities the JSON body must hold.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(max_items = 20)]
    pub json: Option<Vec<JsonRuleInput>>,
    /// The answer must arrive within this many milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1, maximum = 300000)]
    pub max_latency_ms: Option<i64>,
}

/// One JSONPath equality: the path selects exactly one value, equal to
/// `equals`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct JsonRuleInput {
    /// A JSONPath (RFC 9535) selecting exactly one value.
    #[schema(example = "$.status")]
    pub path: String,
    /// The JSON value it must equal.
    pub equals: Value,
}

/// A status class in a list, `"2xx"` to `"5xx"`.
pub(crate) fn status_class_schema() -> utoipa::openapi::Object {
    utoipa::openapi::ObjectBuilder::new()
        .schema_type(utoipa::openapi::Type::String)
        .pattern(Some("^[1-5][xX][xX]$"))
        .build()
}

/// A status code in a list, 100 to 599.
pub(crate) fn status_code_schema() -> utoipa::openapi::Object {
    crate::domain::retry::integer_schema(100, 599)
}

fn status_schema() -> utoipa::openapi::Array {
    let items = utoipa::openapi::OneOfBuilder::new()
        .item(status_class_schema())
        .item(status_code_schema());
    let mut list = crate::domain::retry::list_schema(
        items,
        MAX_STATUSES,
        "Status codes (`304`) or classes (`\"2xx\"`) that may succeed (default `[\"2xx\"]`).",
    );
    list.min_items = Some(1);
    list
}

/// A status an answer may have to succeed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusMatch {
    Code(u16),
    /// `"2xx"`: 200 to 299.
    Class(u8),
}

impl StatusMatch {
    /// A code (100–599) or a class (`"1xx"` to `"5xx"`); `None` for
    /// anything else.
    pub fn parse(value: &Value) -> Option<Self> {
        match value {
            Value::Number(n) => n
                .as_u64()
                .filter(|c| (100..=599).contains(c))
                .map(|c| StatusMatch::Code(c as u16)),
            Value::String(s) => match s.as_bytes() {
                [d @ b'1'..=b'5', b'x' | b'X', b'x' | b'X'] => Some(StatusMatch::Class(d - b'0')),
                _ => s
                    .parse::<u16>()
                    .ok()
                    .filter(|c| (100..=599).contains(c))
                    .map(StatusMatch::Code),
            },
            _ => None,
        }
    }

    pub fn matches(self, status: u16) -> bool {
        match self {
            StatusMatch::Code(c) => c == status,
            StatusMatch::Class(d) => status / 100 == u16::from(d),
        }
    }

    pub fn to_value(self) -> Value {
        match self {
            StatusMatch::Code(c) => Value::from(c),
            StatusMatch::Class(d) => Value::from(format!("{d}xx")),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct JsonRule {
    pub source: String,
    pub path: JsonPath,
    pub equals: Value,
}

/// Validated success rules.
#[derive(Debug, Clone, PartialEq)]
pub struct SuccessRules {
    pub status: Vec<StatusMatch>,
    pub body_contains: Option<String>,
    pub body_not_contains: Option<String>,
    pub json: Vec<JsonRule>,
    pub max_latency_ms: Option<u32>,
}

/// What an attempt got back, as the rules read it.
#[derive(Debug, Clone, Copy)]
pub struct Answer<'a> {
    pub status: u16,
    /// The body's first [`MAX_BODY_BYTES`] (or fewer, when no rule reads it).
    pub body: Option<&'a str>,
    pub truncated: bool,
    pub latency: Duration,
}

/// Why an answer is not a success.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// Its status is not one the rules accept.
    Status,
    /// Its status is, but another rule failed: in words.
    RuleFailed(String),
}

impl SuccessRules {
    /// The default, `status: ["2xx"]` and nothing else.
    pub fn status_2xx(status: u16) -> bool {
        (200..300).contains(&status)
    }

    /// Whether any rule reads the body.
    pub fn reads_body(&self) -> bool {
        self.body_contains.is_some() || self.body_not_contains.is_some() || !self.json.is_empty()
    }

    /// Judges an answer: `Ok` when it succeeds.
    pub fn judge(&self, answer: &Answer<'_>) -> Result<(), Failure> {
        let status = answer.status;
        if !self.status.iter().any(|s| s.matches(status)) {
            return Err(Failure::Status);
        }
        let failed = |what: String| Err(Failure::RuleFailed(format!("{status} but {what}")));
        if let Some(max) = self.max_latency_ms {
            let took = answer.latency.as_millis();
            if took > u128::from(max) {
                return failed(format!("took {took} ms, more than max_latency_ms {max}"));
            }
        }
        let body = answer.body.unwrap_or("");
        let cut = if answer.truncated {
            " (in its first 64 kB)"
        } else {
            ""
        };
        if let Some(text) = &self.body_contains
            && !body.contains(text.as_str())
        {
            return failed(format!("the body does not contain {text:?}{cut}"));
        }
        if let Some(text) = &self.body_not_contains
            && body.contains(text.as_str())
        {
            return failed(format!("the body contains {text:?}"));
        }
        if self.json.is_empty() {
            return Ok(());
        }
        let document: Value = match serde_json::from_str(body) {
            Ok(v) => v,
            Err(e) if answer.truncated => {
                return failed(format!(
                    "the body is cut at 64 kB and is not JSON there ({e})"
                ));
            }
            Err(e) => return failed(format!("the body is not JSON ({e})")),
        };
        for rule in &self.json {
            let nodes = rule.path.query(&document).all();
            match nodes.as_slice() {
                [] => {
                    return failed(format!(
                        "{} selects nothing, expected {}",
                        rule.source, rule.equals
                    ));
                }
                [one] if **one == rule.equals => {}
                [one] => {
                    return failed(format!("{} = {one}, expected {}", rule.source, rule.equals));
                }
                many => {
                    return failed(format!(
                        "{} selects {} values, expected one equal to {}",
                        rule.source,
                        many.len(),
                        rule.equals
                    ));
                }
            }
        }
        Ok(())
    }

    pub fn to_input(&self) -> SuccessInput {
        SuccessInput {
            status: Some(self.status.iter().map(|s| s.to_value()).collect()),
            body_contains: self.body_contains.clone(),
            body_not_contains: self.body_not_contains.clone(),
            json: (!self.json.is_empty()).then(|| {
                self.json
                    .iter()
                    .map(|r| JsonRuleInput {
                        path: r.source.clone(),
                        equals: r.equals.clone(),
                    })
                    .collect()
            }),
            max_latency_ms: self.max_latency_ms.map(i64::from),
        }
    }
}

impl SuccessInput {
    pub fn parse(self, field: &str) -> Result<SuccessRules, FieldError> {
        let at = |name: &str| format!("{field}.{name}");
        let status = match self.status {
            None => vec![StatusMatch::Class(2)],
            Some(list) if list.is_empty() => {
                return Err(FieldError::new(at("status"), "must list at least one status"));
            }
            Some(list) if list.len() > MAX_STATUSES => {
                return Err(FieldError::new(
                    at("status"),
                    format!("must list at most {MAX_STATUSES} statuses"),
                ));
            }
            Some(list) => list
                .iter()
                .enumerate()
                .map(|(i, v)| {
                    StatusMatch::parse(v).ok_or_else(|| {
                        FieldError::new(
                            format!("{field}.status[{i}]"),
                            format!("must be a status code 100 to 599 or a class such as \"2xx\", got {v}"),
                        )
                    })
                })
                .collect::<Result<_, _>>()?,
        };
        let text = |value: Option<String>, name: &str| match value {
            Some(t) if t.is_empty() => Err(FieldError::new(at(name), "must not be empty")),
            Some(t) if t.len() > MAX_TEXT_LEN => Err(FieldError::new(
                at(name),
                format!("must be at most {MAX_TEXT_LEN} bytes"),
            )),
            other => Ok(other),
        };
        let body_contains = text(self.body_contains, "body_contains")?;
        let body_not_contains = text(self.body_not_contains, "body_not_contains")?;
        let rules = self.json.unwrap_or_default();
        if rules.len() > MAX_JSON_RULES {
            return Err(FieldError::new(
                at("json"),
                format!("must hold at most {MAX_JSON_RULES} rules"),
            ));
        }
        let json = rules
            .into_iter()
            .enumerate()
            .map(|(i, r)| {
                let path = JsonPath::parse(&r.path).map_err(|e| {
                    FieldError::new(
                        format!("{field}.json[{i}].path"),
                        format!("is not a JSONPath (RFC 9535): {e}"),
                    )
                })?;
                Ok(JsonRule {
                    source: r.path,
                    path,
                    equals: r.equals,
                })
            })
            .collect::<Result<_, FieldError>>()?;
        let max_latency_ms = match self.max_latency_ms {
            None => None,
            Some(ms) if (1..=MAX_LATENCY_MS).contains(&ms) => Some(ms as u32),
            Some(ms) => {
                return Err(FieldError::new(
                    at("max_latency_ms"),
                    format!("must be between 1 and {MAX_LATENCY_MS}, got {ms}"),
                ));
            }
        };
        Ok(SuccessRules {
            status,
            body_contains,
            body_not_contains,
            json,
            max_latency_ms,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rules(v: Value) -> SuccessRules {
        serde_json::from_value::<SuccessInput>(v)
            .unwrap()
            .parse("target.success")
            .unwrap()
    }

    fn refusal(v: Value) -> String {
        serde_json::from_value::<SuccessInput>(v)
            .unwrap()
            .parse("target.success")
            .unwrap_err()
            .to_string()
    }

    fn answer(status: u16, body: &str) -> Answer<'_> {
        Answer {
            status,
            body: Some(body),
            truncated: false,
            latency: Duration::from_millis(20),
        }
    }

    #[test]
    fn statuses_are_codes_or_classes_and_default_to_2xx() {
        let default = rules(json!({}));
        assert_eq!(default.judge(&answer(204, "")), Ok(()));
        assert_eq!(default.judge(&answer(304, "")), Err(Failure::Status));
        let listed = rules(json!({"status": ["2xx", 304, "410"]}));
        for ok in [200, 299, 304, 410] {
            assert_eq!(listed.judge(&answer(ok, "")), Ok(()), "{ok}");
        }
        assert_eq!(listed.judge(&answer(301, "")), Err(Failure::Status));
        let only_200 = rules(json!({"status": [200]}));
        assert_eq!(only_200.judge(&answer(204, "")), Err(Failure::Status));
    }

    #[test]
    fn a_2xx_failing_a_rule_says_which_and_why() {
        let r = rules(json!({"json": [{"path": "$.status", "equals": "done"}]}));
        assert_eq!(r.judge(&answer(200, r#"{"status": "done"}"#)), Ok(()));
        assert_eq!(
            r.judge(&answer(200, r#"{"status": "error"}"#)),
            Err(Failure::RuleFailed(
                r#"200 but $.status = "error", expected "done""#.into()
            ))
        );
        assert_eq!(
            r.judge(&answer(200, r#"{"state": 1}"#)),
            Err(Failure::RuleFailed(
                r#"200 but $.status selects nothing, expected "done""#.into()
            ))
        );
        let Err(Failure::RuleFailed(why)) = r.judge(&answer(200, "<html>")) else {
            panic!("HTML is not JSON");
        };
        assert!(why.starts_with("200 but the body is not JSON"), "{why}");
        let many = rules(json!({"json": [{"path": "$.items[*].ok", "equals": true}]}));
        assert_eq!(
            many.judge(&answer(200, r#"{"items": [{"ok": true}, {"ok": true}]}"#)),
            Err(Failure::RuleFailed(
                "200 but $.items[*].ok selects 2 values, expected one equal to true".into()
            ))
        );
        // Numbers compare as JSON values.
        let count = rules(json!({"json": [{"path": "$.failed", "equals": 0}]}));
        assert_eq!(count.judge(&answer(200, r#"{"failed": 0}"#)), Ok(()));
    }

    #[test]
    fn body_text_and_latency_rules() {
        let r = rules(json!({"body_contains": "OK", "body_not_contains": "ERROR"}));
        assert_eq!(r.judge(&answer(200, "all OK")), Ok(()));
        assert_eq!(
            r.judge(&answer(200, "OK but ERROR")),
            Err(Failure::RuleFailed(
                r#"200 but the body contains "ERROR""#.into()
            ))
        );
        let cut = Answer {
            truncated: true,
            ..answer(200, "nothing here")
        };
        assert_eq!(
            r.judge(&cut),
            Err(Failure::RuleFailed(
                r#"200 but the body does not contain "OK" (in its first 64 kB)"#.into()
            ))
        );
        let fast = rules(json!({"max_latency_ms": 100}));
        let slow = Answer {
            latency: Duration::from_millis(250),
            ..answer(200, "")
        };
        assert_eq!(
            fast.judge(&slow),
            Err(Failure::RuleFailed(
                "200 but took 250 ms, more than max_latency_ms 100".into()
            ))
        );
        assert!(!fast.reads_body());
        assert!(r.reads_body());
        // A status the rules refuse is a status failure, whatever the body.
        assert_eq!(r.judge(&answer(503, "OK")), Err(Failure::Status));
    }

    #[test]
    fn bad_rules_name_their_field() {
        assert_eq!(
            refusal(json!({"json": [{"path": "$.a[", "equals": 1}]}))
                .split(':')
                .next(),
            Some("target.success.json[0].path")
        );
        assert_eq!(
            refusal(json!({"status": ["2xx", "7xx"]})),
            "target.success.status[1]: must be a status code 100 to 599 or a class such as \"2xx\", got \"7xx\""
        );
        assert_eq!(
            refusal(json!({"status": []})),
            "target.success.status: must list at least one status"
        );
        assert_eq!(
            refusal(json!({"max_latency_ms": 0})),
            "target.success.max_latency_ms: must be between 1 and 300000, got 0"
        );
        assert_eq!(
            refusal(json!({"body_contains": ""})),
            "target.success.body_contains: must not be empty"
        );
    }

    #[test]
    fn round_trips_through_its_input() {
        let r = rules(json!({"status": ["2xx", 304], "body_contains": "ok",
                             "json": [{"path": "$.s", "equals": "done"}], "max_latency_ms": 5000}));
        assert_eq!(r.to_input().parse("s").unwrap(), r);
    }
}
