//! The HTTP side of delivery: one request per attempt, signed, with the
//! network policy applied to every address it could connect to.

use std::error::Error as StdError;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use url::Host;

use crate::domain::network_policy::{Blocked, NetworkPolicy};
use crate::domain::retry::parse_retry_after;
use crate::domain::run::storable;
use crate::domain::signing;
use crate::domain::target::{Body, Target};

/// Bytes of a response body kept with the attempt; the rest is not read
/// (up to [`crate::domain::success::MAX_BODY_BYTES`] when a success rule
/// reads the body).
pub const EXCERPT_BYTES: usize = 4096;
/// Longest wait for a TCP (and TLS) connection, within the attempt timeout.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

pub const USER_AGENT: &str = concat!("Cronhook/", env!("CARGO_PKG_VERSION"));

/// What one attempt sends.
#[derive(Debug, Clone)]
pub struct Delivery<'a> {
    /// `webhook-id`: a job run's id (the same on every retry), or an
    /// event's id for its deliveries.
    pub webhook_id: uuid::Uuid,
    pub attempt: u32,
    pub target: &'a Target,
    pub secrets: &'a [String],
    /// The `cronhook-*` headers naming what it delivers.
    pub about: &'a [(&'static str, String)],
}

/// What one attempt got back.
#[derive(Debug, Clone, PartialEq)]
pub struct Response {
    /// None when no response arrived (then `error` says why).
    pub status: Option<u16>,
    pub error: Option<String>,
    pub excerpt: Option<String>,
    /// The body went on past the excerpt.
    pub truncated: bool,
    pub retry_after: Option<Duration>,
    pub duration: Duration,
    /// The network policy refused every address: retrying cannot help.
    pub refused: bool,
    /// No response within the attempt's timeout (`error` says so too).
    pub timed_out: bool,
}

#[derive(Clone)]
pub struct WebhookClient {
    http: reqwest::Client,
    policy: NetworkPolicy,
}

/// Resolves with the system resolver, then drops every address the
/// policy refuses: a name that resolves (or rebinds) to a refused address
/// cannot be connected to.
struct PolicyResolver {
    policy: NetworkPolicy,
}

impl Resolve for PolicyResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let policy = self.policy.clone();
        let host = name.as_str().to_string();
        Box::pin(async move {
            let resolved: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let mut refusal = None;
            let allowed: Vec<SocketAddr> = resolved
                .into_iter()
                .filter(|addr| match policy.check_for(addr.ip(), Some(&host)) {
                    Ok(()) => true,
                    Err(r) => {
                        refusal.get_or_insert(r);
                        false
                    }
                })
                .collect();
            match (allowed.is_empty(), refusal) {
                (true, Some(refusal)) => {
                    tracing::warn!(
                        host = %host,
                        address = %refusal.addr,
                        rule = refusal.rule,
                        "a target's name resolves only to refused addresses"
                    );
                    Err(Box::new(refusal) as Box<dyn StdError + Send + Sync>)
                }
                _ => Ok(Box::new(allowed.into_iter()) as Addrs),
            }
        })
    }
}

/// Installs the process-wide TLS crypto provider (once; later calls are
/// no-ops).
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

impl WebhookClient {
    pub fn new(policy: NetworkPolicy, max_idle_per_host: usize) -> anyhow::Result<Self> {
        install_crypto_provider();
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .connect_timeout(CONNECT_TIMEOUT)
            .pool_max_idle_per_host(max_idle_per_host)
            .pool_idle_timeout(Duration::from_secs(60))
            .retry(reqwest::retry::never())
            .dns_resolver(Arc::new(PolicyResolver {
                policy: policy.clone(),
            }))
            .user_agent(USER_AGENT)
            .build()?;
        Ok(Self { http, policy })
    }

    /// Sends one attempt. Never fails: whatever goes wrong is the answer.
    pub async fn send(&self, delivery: &Delivery<'_>) -> Response {
        let started = Instant::now();
        let target = delivery.target;
        // IP literals do not go through the resolver: judge them here.
        let literal = match target.url.host() {
            Some(Host::Ipv4(v4)) => Some(IpAddr::V4(v4)),
            Some(Host::Ipv6(v6)) => Some(IpAddr::V6(v6)),
            _ => None,
        };
        if let Some(Err(refusal)) = literal.map(|ip| self.policy.check(ip)) {
            return Response {
                refused: true,
                ..failure(refusal.to_string(), started)
            };
        }
        let body = target.body_bytes();
        let headers = match headers(delivery, &body) {
            Ok(headers) => headers,
            Err(e) => return failure(e, started),
        };
        let method = reqwest::Method::from_bytes(target.method.as_str().as_bytes())
            .unwrap_or(reqwest::Method::POST);
        let mut request = self
            .http
            .request(method, target.url.clone())
            .headers(headers)
            .timeout(Duration::from_secs(target.timeout_s.into()));
        if !matches!(target.body, Body::None) {
            request = request.body(body);
        }
        let result = async {
            let response = request.send().await?;
            let status = response.status().as_u16();
            let retry_after = response
                .headers()
                .get(reqwest::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| parse_retry_after(v, Utc::now()));
            let limit = match target.success.as_deref() {
                Some(rules) if rules.reads_body() => crate::domain::success::MAX_BODY_BYTES,
                _ => EXCERPT_BYTES,
            };
            let (excerpt, truncated) = read_excerpt(response, limit).await;
            Ok::<_, reqwest::Error>((status, retry_after, excerpt, truncated))
        }
        .await;
        match result {
            Ok((status, retry_after, excerpt, truncated)) => Response {
                status: Some(status),
                error: None,
                excerpt: Some(excerpt).filter(|e| !e.is_empty()),
                truncated,
                retry_after,
                duration: started.elapsed(),
                refused: false,
                timed_out: false,
            },
            Err(e) => Response {
                refused: refusal(&e).is_some(),
                timed_out: e.is_timeout(),
                ..failure(
                    describe(&e, target.url.host_str().unwrap_or(""), target.timeout_s),
                    started,
                )
            },
        }
    }
}

fn failure(error: String, started: Instant) -> Response {
    Response {
        status: None,
        error: Some(storable(error)),
        excerpt: None,
        truncated: false,
        retry_after: None,
        duration: started.elapsed(),
        refused: false,
        timed_out: false,
    }
}

/// The policy refusal in an error's sources, if that is what it was.
fn refusal<'a>(e: &'a (dyn StdError + 'static)) -> Option<&'a Blocked> {
    let mut source = e.source();
    while let Some(s) = source {
        if let Some(refusal) = s.downcast_ref::<Blocked>() {
            return Some(refusal);
        }
        source = s.source();
    }
    None
}

/// The request headers: the job's own, then the service's.
fn headers(delivery: &Delivery<'_>, body: &[u8]) -> Result<HeaderMap, String> {
    let target = delivery.target;
    let mut headers = HeaderMap::new();
    for (name, value) in &target.headers {
        let name =
            HeaderName::from_bytes(name.as_bytes()).map_err(|e| format!("header {name}: {e}"))?;
        let value = HeaderValue::from_str(value).map_err(|e| format!("header {name}: {e}"))?;
        headers.insert(name, value);
    }
    if let Some(content_type) = target.content_type()
        && !headers.contains_key(reqwest::header::CONTENT_TYPE)
    {
        headers.insert(reqwest::header::CONTENT_TYPE, value(content_type)?);
    }
    let id = delivery.webhook_id.to_string();
    let timestamp = Utc::now().timestamp();
    let secrets: Vec<&str> = delivery.secrets.iter().map(String::as_str).collect();
    let signature = signing::signature_header(&secrets, &id, timestamp, body);
    headers.insert("webhook-id", value(&id)?);
    headers.insert("webhook-timestamp", value(&timestamp.to_string())?);
    headers.insert("webhook-signature", value(&signature)?);
    for (name, text) in delivery.about {
        headers.insert(*name, value(text)?);
    }
    headers.insert("cronhook-attempt", value(&delivery.attempt.to_string())?);
    Ok(headers)
}

fn value(text: &str) -> Result<HeaderValue, String> {
    HeaderValue::from_str(text).map_err(|e| format!("header value {text:?}: {e}"))
}

/// The first `limit` bytes of the body, as text, and whether it went on;
/// the rest is not read.
async fn read_excerpt(mut response: reqwest::Response, limit: usize) -> (String, bool) {
    let mut bytes = Vec::new();
    let mut truncated = false;
    // One chunk past a full excerpt tells whether the body went on.
    while let Ok(Some(chunk)) = response.chunk().await {
        let room = limit - bytes.len();
        bytes.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if chunk.len() > room {
            truncated = true;
            break;
        }
    }
    (
        storable(String::from_utf8_lossy(&bytes).into_owned()),
        truncated,
    )
}

/// An error in words: what a user can act on.
fn describe(e: &reqwest::Error, host: &str, timeout_s: u32) -> String {
    if e.is_timeout() {
        return format!("timeout: no response within {timeout_s} s");
    }
    if refusal(e).is_some() {
        // Not which address nor why: that would map the internal network
        // by DNS for whoever reads the run (issue 22). The log has both.
        return format!("{host} resolves only to addresses --targets refuses");
    }
    let mut source: Option<&(dyn StdError + 'static)> = e.source();
    while let Some(s) = source {
        if let Some(io) = s.downcast_ref::<std::io::Error>() {
            match io.kind() {
                std::io::ErrorKind::ConnectionRefused => return "connection refused".into(),
                std::io::ErrorKind::ConnectionReset => {
                    return "connection reset by the target".into();
                }
                std::io::ErrorKind::TimedOut => return "timeout: connecting took too long".into(),
                _ => {}
            }
            let mut inner = io.get_ref().map(|i| i as &(dyn StdError + 'static));
            while let Some(i) = inner {
                if let Some(tls) = i.downcast_ref::<rustls::Error>() {
                    return format!("TLS error: {tls}");
                }
                inner = i.source();
            }
        }
        if let Some(tls) = s.downcast_ref::<rustls::Error>() {
            return format!("TLS error: {tls}");
        }
        source = s.source();
    }
    if e.is_connect() {
        let detail = innermost(e);
        if detail.contains("dns error") || detail.contains("failed to lookup") {
            return format!("DNS lookup failed: {detail}");
        }
        return format!("connection failed: {detail}");
    }
    if e.is_body() || e.is_decode() {
        return format!("reading the response failed: {}", innermost(e));
    }
    format!("request failed: {}", innermost(e))
}

fn innermost(e: &(dyn StdError + 'static)) -> String {
    let mut last = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        last = s.to_string();
        source = s.source();
    }
    last
}
