//! The HTTP request a job sends: validated once, on the way in.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use url::{Host, Url};
use utoipa::ToSchema;

use crate::domain::error::{FieldError, Reason};
use crate::domain::network_policy::NetworkPolicy;
use crate::domain::success::{SuccessInput, SuccessRules};

pub const DEFAULT_TIMEOUT_S: u32 = 30;
pub const MAX_TIMEOUT_S: u32 = 300;
pub(crate) const MAX_URL_LEN: usize = 2048;
const MAX_HEADERS: usize = 50;
const MAX_HEADER_VALUE_LEN: usize = 8192;

/// The webhook request. Its body: a JSON string is sent as given
/// (`text/plain` unless `headers` sets `content-type`), any other JSON value
/// as `application/json`, none as an empty body.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = Target)]
pub struct TargetInput {
    /// `http` or `https` URL.
    #[schema(example = "https://example.com/hooks/report")]
    pub url: Option<String>,
    /// GET, POST (default), PUT, PATCH or DELETE.
    #[serde(default)]
    #[schema(example = "POST")]
    pub method: Option<String>,
    /// Extra request headers. `webhook-*`, `cronhook-*`, `host`,
    /// `content-length`, `connection`, `transfer-encoding` and `user-agent`
    /// are the service's own and refused.
    #[serde(default)]
    pub headers: Option<BTreeMap<String, String>>,
    /// The body: any JSON value.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub body: Option<Value>,
    /// Per-attempt timeout in seconds, 1 to 300 (default 30).
    #[serde(default)]
    #[schema(minimum = 1, maximum = 300)]
    pub timeout_s: Option<i64>,
    /// Render `{{ … }}` expressions with the run's context (default
    /// false): in the string leaves of a JSON body, a string body, header
    /// values, and the URL's path and query (DESIGN.md §11.2).
    #[serde(default)]
    pub template: Option<bool>,
    /// What makes an answer a success beyond a 2xx status (DESIGN.md
    /// §11.6); absent: any 2xx.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub success: Option<SuccessInput>,
    /// Where a cancel of a running callback run is sent (DESIGN.md §11.7;
    /// default: `url`). Only with `completion.mode: callback`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(example = "https://example.com/hooks/report/cancel")]
    pub cancel_url: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Get,
    Post,
    Put,
    Patch,
    Delete,
}

impl Method {
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Patch => "PATCH",
            Method::Delete => "DELETE",
        }
    }

    /// GET, POST, PUT, PATCH or DELETE (methods are case-sensitive).
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "GET" => Some(Method::Get),
            "POST" => Some(Method::Post),
            "PUT" => Some(Method::Put),
            "PATCH" => Some(Method::Patch),
            "DELETE" => Some(Method::Delete),
            _ => None,
        }
    }
}

impl Body {
    /// The body as a JSON value: a string for text, null for none.
    pub fn to_value(&self) -> Option<Value> {
        match self {
            Body::None => None,
            Body::Json(v) => Some(v.clone()),
            Body::Text(t) => Some(Value::String(t.clone())),
        }
    }

    /// Back from [`Body::to_value`].
    pub fn from_value(value: Option<Value>) -> Self {
        match value {
            None | Some(Value::Null) => Body::None,
            Some(Value::String(text)) => Body::Text(text),
            Some(json) => Body::Json(json),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Body {
    None,
    Json(Value),
    Text(String),
}

/// A validated target.
#[derive(Debug, Clone, PartialEq)]
pub struct Target {
    pub url: Url,
    pub method: Method,
    /// Lower-case names, valid header values.
    pub headers: BTreeMap<String, String>,
    pub body: Body,
    pub timeout_s: u32,
    /// Its expressions are rendered when a run is made (§11.2).
    pub template: bool,
    /// Its success rules (§11.6); none for "any 2xx".
    pub success: Option<Arc<SuccessRules>>,
    /// Where a cancel goes instead of `url` (§11.7).
    pub cancel_url: Option<Url>,
    /// A callback job's limits; none when a response ends the run
    /// (§11.7). The job's `completion`, kept here so that every run's
    /// request carries it.
    pub completion: Option<crate::domain::callback::Completion>,
}

impl Target {
    /// The content type the request carries, if any: the job's own
    /// header wins, else it follows the body.
    pub fn content_type(&self) -> Option<&str> {
        if let Some(ct) = self.headers.get("content-type") {
            return Some(ct);
        }
        match self.body {
            Body::None => None,
            Body::Json(_) => Some("application/json"),
            Body::Text(_) => Some("text/plain; charset=utf-8"),
        }
    }

    /// The body's bytes, as sent and signed.
    pub fn body_bytes(&self) -> Vec<u8> {
        match &self.body {
            Body::None => Vec::new(),
            Body::Json(v) => serde_json::to_vec(v).unwrap_or_default(),
            Body::Text(t) => t.clone().into_bytes(),
        }
    }

    pub fn to_input(&self) -> TargetInput {
        TargetInput {
            url: Some(self.url.to_string()),
            method: Some(self.method.as_str().into()),
            headers: Some(self.headers.clone()),
            body: self.body.to_value(),
            timeout_s: Some(self.timeout_s.into()),
            template: Some(self.template),
            success: self.success.as_deref().map(SuccessRules::to_input),
            cancel_url: self.cancel_url.as_ref().map(Url::to_string),
        }
    }
}

impl Serialize for Target {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.to_input().serialize(s)
    }
}

impl TargetInput {
    pub fn parse(self, policy: &NetworkPolicy, field: &str) -> Result<Target, FieldError> {
        let at = |name: &str| format!("{field}.{name}");
        let url = self
            .url
            .ok_or_else(|| FieldError::new(at("url"), "is required"))?;
        let url = parse_url(&url, policy).map_err(|m| FieldError::new(at("url"), m))?;
        let method = match self.method.as_deref().map(Method::parse) {
            None => Method::Post,
            Some(Some(method)) => method,
            Some(None) => {
                return Err(FieldError::new(
                    at("method"),
                    format!(
                        "unsupported method {:?}; expected GET, POST, PUT, PATCH or DELETE (methods are case-sensitive)",
                        self.method.unwrap_or_default()
                    ),
                ));
            }
        };
        let headers = parse_headers(self.headers.unwrap_or_default(), &at("headers"))?;
        let body = Body::from_value(self.body);
        let timeout_s = match self.timeout_s {
            None => DEFAULT_TIMEOUT_S,
            Some(t) if (1..=i64::from(MAX_TIMEOUT_S)).contains(&t) => t as u32,
            Some(t) => {
                return Err(FieldError::new(
                    at("timeout_s"),
                    format!("must be between 1 and {MAX_TIMEOUT_S} seconds, got {t}"),
                ));
            }
        };
        let template = self.template.unwrap_or(false);
        if template && url.host_str().is_some_and(|h| h.contains('{')) {
            return Err(FieldError::new(
                at("url"),
                "only the path and query may hold expressions, never the host",
            ));
        }
        let success = self
            .success
            .map(|s| s.parse(&at("success")))
            .transpose()?
            .map(Arc::new);
        let cancel_url = self
            .cancel_url
            .map(|u| parse_url(&u, policy).map_err(|m| FieldError::new(at("cancel_url"), m)))
            .transpose()?;
        Ok(Target {
            url,
            method,
            headers,
            body,
            timeout_s,
            template,
            success,
            cancel_url,
            // The job's `completion` sets it.
            completion: None,
        })
    }
}

fn parse_url(text: &str, policy: &NetworkPolicy) -> Result<Url, Reason> {
    if text.len() > MAX_URL_LEN {
        return Err(format!("must be at most {MAX_URL_LEN} characters").into());
    }
    let url = Url::parse(text).map_err(|e| format!("not a valid URL: {e}"))?;
    // Normalising can lengthen it (percent-encoding): the stored form counts.
    if url.as_str().len() > MAX_URL_LEN {
        return Err(format!("must be at most {MAX_URL_LEN} characters once normalised").into());
    }
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!(
            "unsupported scheme {:?}; expected http or https",
            url.scheme()
        )
        .into());
    }
    let ip = match url.host() {
        None => return Err("must have a host".into()),
        Some(Host::Ipv4(v4)) => Some(IpAddr::V4(v4)),
        Some(Host::Ipv6(v6)) => Some(IpAddr::V6(v6)),
        Some(Host::Domain(_)) => None,
    };
    if let Some(ip) = ip {
        policy.check(ip).map_err(|r| r.to_string())?;
    }
    if url.port() == Some(0) {
        return Err("port 0 cannot be connected to".into());
    }
    Ok(url)
}

/// The host a request to `url` goes to, as `--max-in-flight-per-host`
/// counts it: the lower-case name or address, whatever the port (one
/// tenant's jobs to four ports of one slow host once held every slot, the
/// host's share four times over: issue 22). IP literals are in the URL's
/// normal form (`127.1` is `127.0.0.1`).
pub fn host_key(url: &Url) -> String {
    url.host_str().unwrap_or("").to_ascii_lowercase()
}

/// Headers that concern one hop of a connection, not the request: a job
/// may not set them (they would reach proxies or the target's server as
/// instructions).
fn hop_by_hop(name: &str) -> bool {
    name.starts_with("proxy-")
        || matches!(name, "te" | "upgrade" | "keep-alive" | "trailer" | "expect")
}

/// Headers whose values are secrets: sealed at rest, and shown by name
/// only (DESIGN.md §8).
pub fn is_sensitive_header(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    matches!(
        name.as_str(),
        "authorization" | "proxy-authorization" | "cookie"
    ) || ["token", "secret", "key", "password", "auth"]
        .iter()
        .any(|word| name.contains(word))
}

/// A URL with only its scheme, host and port, and `/***` for the rest:
/// what a read token is shown (a Slack or Discord webhook keeps its secret
/// in the path, an API key may sit in the query), and how the store keeps
/// the URL beside the sealed whole.
pub fn url_without_path(url: &Url) -> String {
    let mut shown = url.clone();
    let _ = shown.set_username("");
    let _ = shown.set_password(None);
    shown.set_query(None);
    shown.set_fragment(None);
    shown.set_path("/***");
    shown.to_string()
}

/// A URL as `role` is shown it: the whole of it but its password (as
/// `***`) to a write or root token, [`url_without_path`] to a read token.
pub fn url_shown_to(url: &Url, role: super::auth::Role) -> String {
    match role {
        super::auth::Role::Read => url_without_path(url),
        _ => masked_url(url),
    }
}

/// A URL as views show it: its password, if any, as `***`.
pub fn masked_url(url: &Url) -> String {
    match url.password() {
        Some(_) => {
            let mut shown = url.clone();
            let _ = shown.set_password(Some("***"));
            shown.to_string()
        }
        None => url.to_string(),
    }
}

/// Whether a header value may be sent: visible ASCII (and tabs), at most
/// 8192 bytes.
pub(crate) fn is_header_value(value: &str) -> bool {
    value.len() <= MAX_HEADER_VALUE_LEN
        && value
            .bytes()
            .all(|b| b == b'\t' || (0x20..=0x7e).contains(&b))
}

/// Headers the service sets itself, which a job may not override.
fn reserved(name: &str) -> bool {
    name.starts_with("webhook-")
        || name.starts_with("cronhook-")
        || matches!(
            name,
            "host" | "content-length" | "connection" | "transfer-encoding" | "user-agent"
        )
}

fn parse_headers(
    headers: BTreeMap<String, String>,
    field: &str,
) -> Result<BTreeMap<String, String>, FieldError> {
    if headers.len() > MAX_HEADERS {
        return Err(FieldError::new(
            field,
            format!("at most {MAX_HEADERS} headers"),
        ));
    }
    let mut out = BTreeMap::new();
    for (name, value) in headers {
        let at = format!("{field}.{name}");
        let lower = name.to_ascii_lowercase();
        if http::HeaderName::from_bytes(lower.as_bytes()).is_err() {
            return Err(FieldError::new(at, "is not a valid header name"));
        }
        if reserved(&lower) {
            return Err(FieldError::new(
                at,
                "is set by Cronhook and may not be given",
            ));
        }
        if hop_by_hop(&lower) {
            return Err(FieldError::new(
                at,
                "is a hop-by-hop header (te, upgrade, keep-alive, trailer, expect, proxy-*) and may not be given",
            ));
        }
        if !is_header_value(&value) {
            return Err(FieldError::new(
                at,
                "is not a valid header value (visible ASCII, at most 8192 bytes)",
            ));
        }
        if out.insert(lower, value).is_some() {
            return Err(FieldError::new(
                at,
                "is given twice (header names ignore case)",
            ));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(v: Value) -> Result<Target, String> {
        parse_with(v, NetworkPolicy::default())
    }

    fn parse_with(v: Value, policy: NetworkPolicy) -> Result<Target, String> {
        let input: TargetInput = serde_json::from_value(v).map_err(|e| e.to_string())?;
        input.parse(&policy, "target").map_err(|e| e.to_string())
    }

    #[test]
    fn defaults() {
        let t = parse(json!({"url": "https://example.com/hook"})).unwrap();
        assert_eq!(t.method, Method::Post);
        assert_eq!(t.timeout_s, 30);
        assert_eq!(t.body, Body::None);
        assert_eq!(t.content_type(), None);
        assert!(t.body_bytes().is_empty());
    }

    #[test]
    fn body_kinds_and_content_types() {
        let t = parse(json!({"url": "http://x.test", "body": {"a": 1}})).unwrap();
        assert_eq!(t.content_type(), Some("application/json"));
        assert_eq!(t.body_bytes(), br#"{"a":1}"#);
        let t = parse(json!({"url": "http://x.test", "body": "hello"})).unwrap();
        assert_eq!(t.content_type(), Some("text/plain; charset=utf-8"));
        assert_eq!(t.body_bytes(), b"hello");
        let t = parse(json!({"url": "http://x.test", "body": "<a/>", "headers": {"Content-Type": "application/xml"}})).unwrap();
        assert_eq!(t.content_type(), Some("application/xml"));
    }

    #[test]
    fn refuses_bad_urls() {
        assert!(
            parse(json!({"url": "ftp://x.test"}))
                .unwrap_err()
                .starts_with("target.url: unsupported scheme \"ftp\"")
        );
        assert!(
            parse(json!({"url": "not a url"}))
                .unwrap_err()
                .starts_with("target.url: not a valid URL")
        );
        assert_eq!(parse(json!({})).unwrap_err(), "target.url: is required");
        // 1,819 characters as given, 3,019 once the spaces are encoded.
        let long = format!("http://example.com/{}", "a b".repeat(600));
        assert!(
            parse(json!({"url": long}))
                .unwrap_err()
                .contains("once normalised")
        );
        assert_eq!(
            parse(json!({"url": "http://169.254.169.254/latest"})).unwrap_err(),
            "target.url: address 169.254.169.254 refused: cloud metadata address"
        );
        assert!(parse(json!({"url": "http://[::ffff:169.254.169.254]/"})).is_err());
        assert!(parse(json!({"url": "http://127.0.0.1:8080/"})).is_ok());
        assert_eq!(
            parse(json!({"url": "http://example.com:0/"})).unwrap_err(),
            "target.url: port 0 cannot be connected to"
        );
        assert!(
            parse_with(
                json!({"url": "http://127.0.0.1:8080/"}),
                NetworkPolicy::public_only()
            )
            .is_err()
        );
    }

    #[test]
    fn refuses_reserved_and_invalid_headers() {
        for name in [
            "webhook-id",
            "Webhook-Signature",
            "cronhook-attempt",
            "Host",
            "content-length",
            "User-Agent",
        ] {
            let e = parse(json!({"url": "http://x.test", "headers": {name: "v"}})).unwrap_err();
            assert_eq!(
                e,
                format!("target.headers.{name}: is set by Cronhook and may not be given")
            );
        }
        assert!(
            parse(json!({"url": "http://x.test", "headers": {"bad name": "v"}}))
                .unwrap_err()
                .contains("not a valid header name")
        );
        for bad in ["line\nbreak", "caf\u{e9}", "nul\u{0}"] {
            assert!(
                parse(json!({"url": "http://x.test", "headers": {"x-a": bad}}))
                    .unwrap_err()
                    .contains("not a valid header value"),
                "{bad:?}"
            );
        }
        assert!(
            parse(json!({"url": "http://x.test", "headers": {"X-A": "1", "x-a": "2"}}))
                .unwrap_err()
                .contains("twice")
        );
    }

    #[test]
    fn a_host_is_one_whatever_its_port_or_spelling() {
        let key = |u: &str| host_key(&Url::parse(u).unwrap());
        assert_eq!(key("https://Example.com/x"), "example.com");
        assert_eq!(key("http://example.com:8080/x"), "example.com");
        assert_eq!(key("http://u:p@127.0.0.1:9000/"), "127.0.0.1");
        assert_eq!(key("http://127.1:9001/"), "127.0.0.1");
        assert_eq!(key("http://[::1]:81/"), "[::1]");
    }

    #[test]
    fn refuses_hop_by_hop_headers() {
        for name in [
            "TE",
            "upgrade",
            "Keep-Alive",
            "trailer",
            "proxy-authorization",
            "Proxy-Foo",
            "Expect",
        ] {
            let e = parse(json!({"url": "http://x.test", "headers": {name: "v"}})).unwrap_err();
            assert!(e.contains("hop-by-hop"), "{name}: {e}");
        }
    }

    #[test]
    fn sensitive_headers_and_passwords_are_told_apart() {
        for name in [
            "Authorization",
            "cookie",
            "X-Api-Key",
            "x-auth-user",
            "X-Token",
            "my-secret",
            "db-password",
        ] {
            assert!(is_sensitive_header(name), "{name}");
        }
        for name in ["x-team", "content-type", "accept"] {
            assert!(!is_sensitive_header(name), "{name}");
        }
        let url = Url::parse("https://user:hunter2@example.com/x").unwrap();
        assert_eq!(masked_url(&url), "https://user:***@example.com/x");
        let url = Url::parse("https://example.com/x").unwrap();
        assert_eq!(masked_url(&url), "https://example.com/x");
    }

    #[test]
    fn refuses_bad_method_and_timeout() {
        assert!(
            parse(json!({"url": "http://x.test", "method": "TRACE"}))
                .unwrap_err()
                .starts_with("target.method: unsupported method \"TRACE\"")
        );
        assert_eq!(
            parse(json!({"url": "http://x.test", "method": "GET"}))
                .unwrap()
                .method,
            Method::Get
        );
        assert!(
            parse(json!({"url": "http://x.test", "method": "get"}))
                .unwrap_err()
                .contains("case-sensitive")
        );
        assert_eq!(
            parse(json!({"url": "http://x.test", "timeout_s": 301})).unwrap_err(),
            "target.timeout_s: must be between 1 and 300 seconds, got 301"
        );
    }

    #[test]
    fn round_trips() {
        let t = parse(json!({"url": "https://x.test/a?b=c", "method": "PUT", "headers": {"X-Team": "data"}, "body": [1, 2], "timeout_s": 5})).unwrap();
        let again = parse(serde_json::to_value(&t).unwrap()).unwrap();
        assert_eq!(t, again);
    }
}
