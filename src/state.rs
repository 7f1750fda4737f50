//! What every request handler can reach, the API's and the dashboard's
//! alike: composed by `app.rs`, read by both front ends.

use std::sync::Arc;

use chrono::{DateTime, Utc};

use crate::access::{AllowedHosts, Authenticator};
use crate::domain::auth::Tenant;
use crate::domain::job::ParseContext;
use crate::domain::network_policy::NetworkPolicy;
use crate::metrics::Metrics;
use crate::ops::{Ops, Via};
use crate::store::DynStore;
use crate::streams::StreamLimits;
use crate::wakeup::Wakeups;

#[derive(Clone)]
pub struct AppState {
    pub store: DynStore,
    pub network_policy: NetworkPolicy,
    pub auth: Arc<Authenticator>,
    pub allowed_hosts: Arc<AllowedHosts>,
    pub metrics: Arc<Metrics>,
    /// Event streams wait on it.
    pub wakeups: Arc<Wakeups>,
    /// Cancelled when the service stops: streams end.
    pub shutdown: tokio_util::sync::CancellationToken,
    /// Event streams open, against their caps.
    pub streams: Arc<StreamLimits>,
    /// Pings per key (§11.5).
    pub pings: Arc<crate::ping_limits::PingLimits>,
    /// `--cookie-secure`: the dashboard's cookies only over HTTPS.
    pub cookie_secure: bool,
    /// Sends what a handler must send itself: a cancel's request to a
    /// callback run's receiver (§11.7), under the targets' network policy.
    pub webhooks: crate::dispatch::client::WebhookClient,
    /// `--signing-secret-default`.
    pub signing_secret_default: Option<crate::domain::signing::ChosenSecret>,
}

impl AppState {
    pub fn parse_context(&self, now: DateTime<Utc>) -> ParseContext {
        ParseContext {
            now,
            network_policy: self.network_policy.clone(),
            binding: None,
        }
    }

    /// The signing secret for a job created without one of its own.
    pub fn new_job_secret(&self) -> String {
        self.signing_secret_default
            .as_ref()
            .map_or_else(crate::domain::signing::generate_secret, |s| {
                s.as_str().to_string()
            })
    }

    /// The operations, for `tenant`, asked for through `via`.
    pub fn ops<'a>(&'a self, tenant: &'a Tenant, via: Via) -> Ops<'a> {
        Ops {
            store: &self.store,
            metrics: &self.metrics,
            network_policy: &self.network_policy,
            webhooks: &self.webhooks,
            tenant,
            via,
        }
    }
}
