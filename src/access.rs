//! Who may reach the service and as whom (DESIGN.md §8), for both front
//! ends: the bearer token, looked up in the store, and the role and tenant
//! it grants; and the `Host` names served while auth is off. Each front
//! end turns a [`Denied`] into its own answer.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use axum::http::HeaderMap;
use tokio::time::Instant;

use crate::domain::audit::Actor;
use crate::domain::auth::{self, Access, AuthMode, Caller, Role, Tenant, Tokens};
use crate::domain::error::FieldError;
use crate::store::{DynStore, Session, StoreError, TokenInfo};

/// Why a caller may not go on.
#[derive(Debug, thiserror::Error)]
pub enum Denied {
    /// No valid token where one is needed: 401.
    #[error("{0}")]
    Unauthorized(String),
    /// A token whose role or tenant does not allow it: 403.
    #[error("{0}")]
    Forbidden(String),
    /// A header that does not read.
    #[error(transparent)]
    Invalid(#[from] FieldError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The header a root caller names another tenant with.
pub const TENANT_HEADER: &str = "cronhook-tenant";

/// How long a token lookup (and whether any token exists) is trusted:
/// a revoked token stops working within this on every instance.
const CACHE_FOR: Duration = Duration::from_secs(1);
/// How often a token's `last_used_at` is written, at most.
const TOUCH_EVERY: Duration = Duration::from_secs(60);
/// Most lookups cached; beyond, the cache starts over (unknown tokens
/// are cached too, and a client may send any number of them).
const CACHE_MAX: usize = 10_000;

struct Cached {
    token: Option<TokenInfo>,
    fetched: Instant,
}

/// Checks callers against the store's tokens.
pub struct Authenticator {
    store: DynStore,
    mode: AuthMode,
    /// Whether the service listens on a loopback address only.
    loopback: bool,
    tokens_made: Mutex<Option<(Tokens, Instant)>>,
    tokens: Mutex<HashMap<String, Cached>>,
    /// Dashboard sessions, by id hash, likewise.
    sessions: Mutex<HashMap<String, (Option<Session>, Instant)>>,
    touched: Mutex<HashMap<String, Instant>>,
}

impl Authenticator {
    pub fn new(store: DynStore, mode: AuthMode, loopback: bool) -> Self {
        Self {
            store,
            mode,
            loopback,
            tokens_made: Mutex::new(None),
            tokens: Mutex::new(HashMap::new()),
            sessions: Mutex::new(HashMap::new()),
            touched: Mutex::new(HashMap::new()),
        }
    }

    /// Whether requests need a token now.
    pub async fn required(&self) -> Result<bool, Denied> {
        if self.mode != AuthMode::Auto || !self.loopback {
            return Ok(auth::tokens_required(
                self.mode,
                self.loopback,
                Tokens::Live,
            ));
        }
        let cached = *self.tokens_made.lock().expect("not poisoned");
        let tokens = match cached {
            // A token made stays made: no need to ask again.
            Some((tokens, _)) if tokens != Tokens::NoneMade => tokens,
            Some((tokens, at)) if at.elapsed() < CACHE_FOR => tokens,
            _ => {
                let tokens = self.store.tokens().await?;
                *self.tokens_made.lock().expect("not poisoned") = Some((tokens, Instant::now()));
                tokens
            }
        };
        Ok(auth::tokens_required(self.mode, self.loopback, tokens))
    }

    /// Forgets what was cached, after a token was made or revoked here.
    pub fn tokens_changed(&self) {
        *self.tokens_made.lock().expect("not poisoned") = None;
        self.tokens.lock().expect("not poisoned").clear();
        self.sessions.lock().expect("not poisoned").clear();
    }

    /// The dashboard session an `Authorization: Bearer chs_…` header (set
    /// from the cookie on `/ui`) presents, if live.
    pub async fn session(&self, headers: &HeaderMap) -> Result<Option<Session>, Denied> {
        let presented = headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(auth::bearer)
            .filter(|text| auth::is_session(text));
        match presented {
            Some(id) => self.lookup_session(&auth::token_hash(id)).await,
            None => Ok(None),
        }
    }

    /// Ends a session here at once (its row is deleted by the caller).
    pub fn session_ended(&self, hash: &str) {
        self.sessions.lock().expect("not poisoned").remove(hash);
    }

    async fn lookup_session(&self, hash: &str) -> Result<Option<Session>, Denied> {
        if let Some((session, fetched)) = self.sessions.lock().expect("not poisoned").get(hash)
            && fetched.elapsed() < CACHE_FOR
        {
            return Ok(session.clone());
        }
        let found = self.store.find_session(hash).await?;
        let mut sessions = self.sessions.lock().expect("not poisoned");
        if sessions.len() >= CACHE_MAX {
            sessions.clear();
        }
        sessions.insert(hash.to_string(), (found.clone(), Instant::now()));
        Ok(found)
    }

    async fn lookup(&self, token: &str) -> Result<Option<TokenInfo>, Denied> {
        let hash = auth::token_hash(token);
        if let Some(cached) = self.tokens.lock().expect("not poisoned").get(&hash)
            && cached.fetched.elapsed() < CACHE_FOR
        {
            return Ok(cached.token.clone());
        }
        let found = self.store.find_token(&hash).await?;
        let mut tokens = self.tokens.lock().expect("not poisoned");
        if tokens.len() >= CACHE_MAX {
            tokens.clear();
        }
        tokens.insert(
            hash,
            Cached {
                token: found.clone(),
                fetched: Instant::now(),
            },
        );
        Ok(found)
    }

    /// Records that a token was used, at most once a minute, off the
    /// request's path.
    fn touch(&self, id: &str) {
        let mut touched = self.touched.lock().expect("not poisoned");
        if touched.get(id).is_some_and(|at| at.elapsed() < TOUCH_EVERY) {
            return;
        }
        if touched.len() >= CACHE_MAX {
            touched.clear();
        }
        touched.insert(id.to_string(), Instant::now());
        let (store, id) = (self.store.clone(), id.to_string());
        tokio::spawn(async move {
            if let Err(e) = store.touch_token(&id).await {
                tracing::debug!(token = %id, error = %e, "recording a token's use failed");
            }
        });
    }

    /// Who is calling: the token's tenant and role, or (while tokens are
    /// not required and none is given) root on the tenant named.
    pub async fn caller(&self, headers: &HeaderMap) -> Result<Caller, Denied> {
        let named = named_tenant(headers)?;
        let presented = match headers.get(axum::http::header::AUTHORIZATION) {
            None => None,
            Some(value) => Some(value.to_str().ok().and_then(auth::bearer).ok_or_else(|| {
                Denied::Unauthorized("the Authorization header must be `Bearer chk_…`".into())
            })?),
        };
        let Some(token) = presented else {
            if self.required().await? {
                return Err(Denied::Unauthorized(
                    "this API needs a token: send `Authorization: Bearer chk_…` (make one with `cronhook token create`)".into(),
                ));
            }
            let caller = Caller::open(named.unwrap_or_else(Tenant::default_tenant));
            crate::acting::identify(Actor::Open, caller.tenant.as_str());
            return Ok(caller);
        };
        let found = if auth::is_token(token) {
            self.lookup(token).await?
        } else if auth::is_session(token) {
            // A dashboard session stands for the token it was opened with.
            self.lookup_session(&auth::token_hash(token))
                .await?
                .map(|s| s.token)
        } else {
            None
        };
        let info = found.ok_or_else(|| Denied::Unauthorized("unknown or revoked token".into()))?;
        self.touch(&info.id);
        let actor = Actor::Token {
            token_id: info.id.clone(),
            name: info.name.clone(),
            role: info.role,
        };
        // Named before a refusal too: a denied call is recorded (§11.9),
        // in the trail of the tenant the token acts on (a root token's
        // is the one it names).
        let acting_on = match &named {
            Some(named) if info.role == Role::Root => named,
            _ => &info.tenant,
        };
        crate::acting::identify(actor, acting_on.as_str());
        let tenant = match named {
            Some(named) if info.role == Role::Root => named,
            Some(named) if named != info.tenant => {
                return Err(Denied::Forbidden(format!(
                    "a {} token acts only on its own tenant {:?}; only a root token may name another in {TENANT_HEADER}",
                    info.role,
                    info.tenant.as_str()
                )));
            }
            _ if info.role == Role::Root => Tenant::default_tenant(),
            _ => info.tenant,
        };
        Ok(Caller {
            tenant,
            role: info.role,
            token: Some(info.id),
            scopes: info.scopes,
        })
    }

    /// The caller, if it may have `access`: 401 without a valid token where
    /// one is needed, 403 for a role too weak.
    pub async fn authorize(&self, headers: &HeaderMap, access: Access) -> Result<Caller, Denied> {
        let caller = self.caller(headers).await?;
        if !auth::allows(caller.role, &caller.scopes, access) {
            let needed = match access {
                Access::Read => "a token",
                Access::Write => "a write or root token",
                Access::Metrics => "a root token or one with the metrics scope",
                Access::Root => "a root token",
            };
            return Err(Denied::Forbidden(format!(
                "this operation needs {needed}; this one is {}",
                caller.role
            )));
        }
        Ok(caller)
    }
}

/// The tenant a request names in `cronhook-tenant`, if any.
fn named_tenant(headers: &HeaderMap) -> Result<Option<Tenant>, Denied> {
    let Some(value) = headers.get(TENANT_HEADER) else {
        return Ok(None);
    };
    let text = value
        .to_str()
        .map_err(|_| FieldError::new(TENANT_HEADER, "must be visible ASCII"))?;
    Tenant::parse(text)
        .map(Some)
        .map_err(|e| FieldError::new(TENANT_HEADER, e).into())
}

/// The `Host` names served while auth is off, besides loopback literals
/// and `localhost`.
#[derive(Debug, Clone, Default)]
pub struct AllowedHosts(Vec<String>);

impl AllowedHosts {
    /// The listen address's host and `--allowed-hosts`.
    pub fn new(listen_host: &str, extra: &[String]) -> Self {
        let mut names: Vec<String> = extra
            .iter()
            .map(|h| normalise(h))
            .filter(|h| !h.is_empty())
            .collect();
        names.push(normalise(listen_host));
        Self(names)
    }

    pub fn allows(&self, host: &str) -> bool {
        let host = normalise(host);
        host == "localhost"
            || host.ends_with(".localhost")
            || host
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback())
            || self.0.contains(&host)
    }
}

/// A host name as compared: lower case, without brackets or a final dot.
pub fn normalise(host: &str) -> String {
    host.trim()
        .trim_start_matches('[')
        .trim_end_matches(']')
        .trim_end_matches('.')
        .to_ascii_lowercase()
}

/// How often an open service asks the store whether a token was made
/// (here or on another instance): its webhook targets turn public-only
/// within this of the first token.
const TOKENS_WATCHED_EVERY: Duration = Duration::from_secs(2);

/// Turns `policy` public-only once a token has been made, where `any` was
/// only the open service's default (issue 22); then ends.
pub async fn tighten_targets_once_tokens_are_made(
    store: DynStore,
    policy: crate::domain::network_policy::NetworkPolicy,
    shutdown: tokio_util::sync::CancellationToken,
) {
    while policy.waits_for_tokens() {
        match store.tokens().await {
            Ok(Tokens::NoneMade) => {}
            Ok(_) => {
                if policy.tokens_required() {
                    tracing::info!(
                        "a token was made: webhook targets are public-only from now on \
                         (--targets any keeps every address)"
                    );
                }
                return;
            }
            Err(e) => tracing::debug!(error = %e, "reading whether tokens were made failed"),
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(TOKENS_WATCHED_EVERY) => {}
        }
    }
}
