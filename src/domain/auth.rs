//! Who may do what (DESIGN.md §8): API tokens, their roles and tenants,
//! and when tokens are required at all.

use std::fmt;
use std::str::FromStr;

use crate::domain::error::Reason;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::Rng;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use utoipa::ToSchema;

/// Every token starts so, which makes a leaked one easy to recognise.
pub const TOKEN_PREFIX: &str = "chk_";

/// The tenant a caller acts on when nothing says otherwise.
pub const DEFAULT_TENANT: &str = "default";

/// What a token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// GET only, never a secret.
    Read,
    /// Everything on its own tenant's jobs, runs, events, subscriptions.
    Write,
    /// Every tenant, tokens, instances, metrics.
    Root,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Read => "read",
            Role::Write => "write",
            Role::Root => "root",
        }
    }
}

impl FromStr for Role {
    type Err = Reason;

    fn from_str(s: &str) -> Result<Self, Reason> {
        match s {
            "read" => Ok(Role::Read),
            "write" => Ok(Role::Write),
            "root" => Ok(Role::Root),
            other => Err(format!("expected root, write or read, got {other:?}").into()),
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What an operation needs of its caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Reading jobs, runs, events (and previewing a trigger).
    Read,
    /// Changing them, and reading a signing secret.
    Write,
    /// `/metrics`: root, or a token with the `metrics` scope.
    Metrics,
    /// Tokens, instances, other tenants.
    Root,
}

/// What a token may do beyond its role (DESIGN.md §8, §11.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    /// Scrape `/metrics`: Prometheus needs no root token.
    Metrics,
}

impl Scope {
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Metrics => "metrics",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        (s == "metrics").then_some(Scope::Metrics)
    }
}

/// Whether `role` with `scopes` grants `access`.
pub fn allows(role: Role, scopes: &[Scope], access: Access) -> bool {
    match access {
        Access::Read => true,
        Access::Write => role >= Role::Write,
        Access::Metrics => role == Role::Root || scopes.contains(&Scope::Metrics),
        Access::Root => role == Role::Root,
    }
}

/// A tenant's name: like a job id, 1 to 200 characters from
/// `[A-Za-z0-9._:-]`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Tenant(String);

impl Tenant {
    pub fn parse(text: &str) -> Result<Self, Reason> {
        crate::domain::job::JobId::parse(text).map(|id| Self(id.as_str().to_string()))
    }

    pub fn default_tenant() -> Self {
        Self(DEFAULT_TENANT.to_string())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Tenant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Who is asking: a tenant and a role.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub tenant: Tenant,
    pub role: Role,
    /// The id of the token it presented (none while the API is open).
    pub token: Option<String>,
    pub scopes: Vec<Scope>,
}

impl Caller {
    /// Without auth (the loopback, no-token mode) every request is root on
    /// the tenant it names, `default` otherwise.
    pub fn open(tenant: Tenant) -> Self {
        Self {
            tenant,
            role: Role::Root,
            token: None,
            scopes: Vec::new(),
        }
    }
}

/// A new token: the text shown once, and the hash kept.
pub fn generate_token() -> (String, String) {
    let mut key = [0u8; 32];
    rand::rng().fill_bytes(&mut key);
    let token = format!("{TOKEN_PREFIX}{}", URL_SAFE_NO_PAD.encode(key));
    let hash = token_hash(&token);
    (token, hash)
}

/// Dashboard session ids start so (the cookie's value).
pub const SESSION_PREFIX: &str = "chs_";

/// How long a dashboard session lasts from its sign-in.
pub const SESSION_LIFETIME: std::time::Duration = std::time::Duration::from_secs(12 * 3600);

/// A new dashboard session id: the text the cookie holds, and the hash
/// the store keeps.
pub fn generate_session() -> (String, String) {
    let mut key = [0u8; 32];
    rand::rng().fill_bytes(&mut key);
    let id = format!("{SESSION_PREFIX}{}", URL_SAFE_NO_PAD.encode(key));
    let hash = token_hash(&id);
    (id, hash)
}

/// Whether `text` has a session id's form (`chs_` and 43 base64url
/// characters).
pub fn is_session(text: &str) -> bool {
    text.strip_prefix(SESSION_PREFIX)
        .is_some_and(|rest| is_token(&format!("{TOKEN_PREFIX}{rest}")))
}

/// A new token's id (`tok_` and 16 hex digits): how it is listed and
/// revoked, never how it authenticates.
pub fn generate_token_id() -> String {
    let mut bytes = [0u8; 8];
    rand::rng().fill_bytes(&mut bytes);
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("tok_{hex}")
}

/// What the store keeps of a token: its SHA-256, in hex.
pub fn token_hash(token: &str) -> String {
    Sha256::digest(token.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Whether `text` has a token's form (`chk_` and 43 base64url characters).
pub fn is_token(text: &str) -> bool {
    text.strip_prefix(TOKEN_PREFIX).is_some_and(|rest| {
        rest.len() == 43
            && rest
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    })
}

/// The token of an `Authorization: Bearer …` header.
pub fn bearer(header: &str) -> Option<&str> {
    let (scheme, token) = header.trim().split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// `--auth`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AuthMode {
    /// Tokens as soon as one has been made, and always off loopback.
    /// Revoking every token does not open the service again: only an
    /// explicit `--auth none` does (issue 22).
    #[default]
    Auto,
    Required,
    /// Never (refused off loopback).
    None,
}

impl FromStr for AuthMode {
    type Err = Reason;

    fn from_str(s: &str) -> Result<Self, Reason> {
        match s {
            "auto" => Ok(AuthMode::Auto),
            "required" => Ok(AuthMode::Required),
            "none" => Ok(AuthMode::None),
            other => Err(format!("expected auto, required or none, got {other:?}").into()),
        }
    }
}

impl fmt::Display for AuthMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AuthMode::Auto => "auto",
            AuthMode::Required => "required",
            AuthMode::None => "none",
        })
    }
}

/// What the store holds of tokens: the decision that tokens are required
/// is stored as the tokens themselves, revoked ones included.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tokens {
    /// None was ever made: a fresh loopback service is open.
    NoneMade,
    /// Some were made, and every one is revoked.
    AllRevoked,
    /// At least one works.
    Live,
}

impl Tokens {
    /// From whether any token was made, and whether any is not revoked.
    pub fn of(made: bool, live: bool) -> Self {
        match (made, live) {
            (_, true) => Tokens::Live,
            (true, false) => Tokens::AllRevoked,
            (false, false) => Tokens::NoneMade,
        }
    }
}

/// Whether a request needs a token.
pub fn tokens_required(mode: AuthMode, loopback: bool, tokens: Tokens) -> bool {
    match mode {
        AuthMode::Required => true,
        AuthMode::None => false,
        AuthMode::Auto => !loopback || tokens != Tokens::NoneMade,
    }
}

/// Whether the service may start so; why not, with what to do, otherwise.
pub fn may_start(mode: AuthMode, loopback: bool, tokens: Tokens) -> Result<(), Reason> {
    match (mode, loopback, tokens) {
        (AuthMode::None, false, _) => Err(
            "--auth none is refused on a non-loopback address: anyone who reaches the port would own the service"
                .into(),
        ),
        (AuthMode::Auto | AuthMode::Required, false, Tokens::NoneMade | Tokens::AllRevoked) => Err(
            "listening on a non-loopback address needs an API token first: make one with \
             `cronhook token create --role root` (or set CRONHOOK_ROOT_TOKEN), then start again"
                .into(),
        ),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_grant_what_they_say() {
        use Access::*;
        let table = [
            (Role::Read, [true, false, false, false]),
            (Role::Write, [true, true, false, false]),
            (Role::Root, [true, true, true, true]),
        ];
        for (role, expected) in table {
            let got = [Read, Write, Metrics, Root].map(|a| allows(role, &[], a));
            assert_eq!(got, expected, "{role}");
        }
        // The metrics scope adds /metrics, and nothing else.
        let scraper = [Scope::Metrics];
        let got = [Read, Write, Metrics, Root].map(|a| allows(Role::Read, &scraper, a));
        assert_eq!(got, [true, false, true, false]);
        assert_eq!("write".parse::<Role>(), Ok(Role::Write));
        assert!("admin".parse::<Role>().is_err());
    }

    #[test]
    fn tokens_are_prefixed_random_and_kept_only_as_a_hash() {
        let (token, hash) = generate_token();
        assert!(is_token(&token), "{token}");
        assert_eq!(hash, token_hash(&token));
        assert_eq!(hash.len(), 64);
        assert!(!hash.contains(&token[4..]));
        let (other, _) = generate_token();
        assert_ne!(token, other);
        assert!(!is_token("chk_short"));
        let (session, hash) = generate_session();
        assert!(is_session(&session) && !is_token(&session), "{session}");
        assert!(!is_session(&token));
        assert_eq!(hash, token_hash(&session));
        assert!(!is_token(&token.replace("chk_", "tok_")));
        assert_eq!(bearer("Bearer abc"), Some("abc"));
        assert_eq!(bearer("bearer  abc "), Some("abc"));
        assert_eq!(bearer("Basic abc"), None);
    }

    #[test]
    fn when_tokens_are_required() {
        use AuthMode::*;
        use Tokens::*;
        // mode, loopback, tokens -> required
        for (mode, loopback, tokens, required) in [
            (Auto, true, NoneMade, false),
            (Auto, true, Live, true),
            // Revoking the last token does not open the service again.
            (Auto, true, AllRevoked, true),
            (Auto, false, Live, true),
            (Required, true, NoneMade, true),
            (None, true, Live, false),
            (None, true, AllRevoked, false),
        ] {
            assert_eq!(
                tokens_required(mode, loopback, tokens),
                required,
                "{mode} {loopback} {tokens:?}"
            );
        }
        assert_eq!(Tokens::of(false, false), NoneMade);
        assert_eq!(Tokens::of(true, false), AllRevoked);
        assert_eq!(Tokens::of(true, true), Live);
        assert!(may_start(Auto, true, NoneMade).is_ok());
        for tokens in [NoneMade, AllRevoked] {
            assert!(
                may_start(Auto, false, tokens)
                    .unwrap_err()
                    .contains("cronhook token create")
            );
        }
        assert!(may_start(Auto, false, Live).is_ok());
        assert!(
            may_start(None, false, Live)
                .unwrap_err()
                .contains("refused")
        );
        assert!(
            may_start(Required, true, NoneMade).is_ok(),
            "loopback: make one later"
        );
    }

    #[test]
    fn tenants_are_named_like_job_ids() {
        assert!(Tenant::parse("team-a").is_ok());
        assert!(Tenant::parse("a/b").is_err());
        assert!(Tenant::parse("").is_err());
        assert_eq!(Tenant::default_tenant().as_str(), "default");
    }
}
