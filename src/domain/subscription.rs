//! A subscription as a client writes it (DESIGN §9): read into the target
//! its deliveries go to and the events it wants, each refusal naming its
//! field.

use serde::Deserialize;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::domain::error::FieldError;
use crate::domain::event::{EventType, Interest};
use crate::domain::job::JobId;
use crate::domain::network_policy::NetworkPolicy;
use crate::domain::target::{Target, TargetInput};

/// How a subscription's deliveries are shaped.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SubscriptionFormat {
    /// The event as JSON (DESIGN §9), signed per Standard Webhooks.
    #[default]
    Standard,
    /// `{"text": "…"}`: a Slack-compatible incoming webhook posts it as is.
    Slack,
}

impl SubscriptionFormat {
    pub fn as_str(self) -> &'static str {
        match self {
            SubscriptionFormat::Standard => "standard",
            SubscriptionFormat::Slack => "slack",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "standard" => Some(SubscriptionFormat::Standard),
            "slack" => Some(SubscriptionFormat::Slack),
            _ => None,
        }
    }
}

/// A subscription to make.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SubscriptionInput {
    /// Where events are POSTed, as JSON signed per Standard Webhooks.
    #[schema(example = "https://example.com/hooks/cronhook-events")]
    pub url: Option<String>,
    /// The event types to deliver (at least one).
    pub types: Option<Vec<EventType>>,
    /// Only this job's events; every job's of the tenant when absent.
    pub job_id: Option<String>,
    /// `standard` (default): the event as JSON; `slack`: `{"text": …}`
    /// for a Slack-compatible incoming webhook (DESIGN §11.5).
    #[serde(default)]
    pub format: Option<SubscriptionFormat>,
}

impl SubscriptionInput {
    /// The target (a POST of each event: the URL is all there is to check,
    /// with the same rules and network policy as a job's) and the interest.
    pub fn parse(self, policy: &NetworkPolicy) -> Result<(Target, Interest), FieldError> {
        let url = self
            .url
            .ok_or_else(|| FieldError::new("url", "is required"))?;
        let target = TargetInput {
            url: Some(url),
            ..Default::default()
        }
        .parse(policy, "target")
        .map_err(|e| FieldError::new("url", e.message))?;
        let mut types = self
            .types
            .ok_or_else(|| FieldError::new("types", "is required"))?;
        types.sort_by_key(|t| t.as_str());
        types.dedup();
        if types.is_empty() {
            return Err(FieldError::new(
                "types",
                "must name at least one event type",
            ));
        }
        let job_id = self
            .job_id
            .map(|id| {
                JobId::parse(&id)
                    .map(|id| id.to_string())
                    .map_err(|m| FieldError::new("job_id", m))
            })
            .transpose()?;
        Ok((target, Interest { types, job_id }))
    }
}

/// A subscription id: `sub_` and 16 hex digits.
pub fn new_id() -> String {
    let bytes = *Uuid::new_v4().as_bytes();
    let hex: String = bytes[..8].iter().map(|b| format!("{b:02x}")).collect();
    format!("sub_{hex}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(v: serde_json::Value) -> Result<(Target, Interest), String> {
        serde_json::from_value::<SubscriptionInput>(v)
            .unwrap()
            .parse(&NetworkPolicy::default())
            .map_err(|e| e.to_string())
    }

    #[test]
    fn types_are_required_sorted_and_once_each() {
        let (target, interest) = parse(serde_json::json!({
            "url": "https://x.test/events",
            "types": ["run.failed", "job.created", "run.failed"],
            "job_id": "nightly"
        }))
        .unwrap();
        assert_eq!(target.url.as_str(), "https://x.test/events");
        assert_eq!(
            interest,
            Interest {
                types: vec![EventType::JobCreated, EventType::RunFailed],
                job_id: Some("nightly".into())
            }
        );
        assert_eq!(
            parse(serde_json::json!({"url": "https://x.test", "types": []})).unwrap_err(),
            "types: must name at least one event type"
        );
        assert_eq!(
            parse(serde_json::json!({"types": ["run.failed"]})).unwrap_err(),
            "url: is required"
        );
        assert!(
            parse(serde_json::json!({"url": "https://x.test", "types": ["run.failed"], "job_id": "no spaces"}))
                .unwrap_err()
                .starts_with("job_id: ")
        );
    }

    #[test]
    fn ids_are_sub_and_sixteen_hex_digits() {
        let id = new_id();
        assert_eq!(id.len(), 20);
        assert!(id.starts_with("sub_"));
        assert!(id[4..].chars().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(id, new_id());
    }
}
