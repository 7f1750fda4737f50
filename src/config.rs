//! Configuration: every setting is a flag and an environment variable.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use clap::builder::BoolishValueParser;
use clap::{ArgAction, Args, Parser, Subcommand, ValueEnum};

use crate::domain::auth::{AuthMode, Role};
use crate::domain::network_policy::{Exemption, NetworkPolicy, TargetMode};
use crate::domain::quota::Quotas;

#[derive(Debug, Parser)]
#[command(
    name = "cronhook",
    version,
    about = "A scheduling service: cron, interval and date jobs delivered as signed webhooks",
    // The service's flags go with `serve` or with no subcommand; each
    // other subcommand takes only its own, so its help lists only those.
    args_conflicts_with_subcommands = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    /// `cronhook` with no subcommand serves with these.
    #[command(flatten)]
    pub config: Config,
}

#[derive(Debug, Clone, Subcommand)]
pub enum Command {
    /// Serve the API and run the scheduler and dispatcher (the default).
    Serve(Box<Config>),
    /// Apply the store's migrations and exit.
    Migrate(StoreArgs),
    /// Print the OpenAPI document.
    Openapi,
    /// Make, list and revoke API tokens (in the store DATABASE_URL names).
    #[command(subcommand)]
    Token(TokenCommand),
    /// Print a new random encryption key for CRONHOOK_ENCRYPTION_KEY.
    Keygen,
    /// List, show, create, pause, resume, run and delete jobs on a running
    /// service (CRONHOOK_URL, CRONHOOK_TOKEN).
    #[command(subcommand)]
    Jobs(crate::cli::JobsCommand),
    /// Make the service's jobs what a bundle file says (`-` reads stdin);
    /// prints the plan.
    Apply(crate::cli::ApplyArgs),
    /// Print the service's jobs as a bundle (no secrets), for `apply`.
    Export(crate::cli::ExportArgs),
    /// Translate another scheduler's jobs into a bundle for `apply`.
    #[command(subcommand)]
    Import(crate::cli::ImportCommand),
    /// Ask the service listening on --listen whether it is ready (`GET
    /// /readyz`, its store answering): exit 0 if so, 1 if not. For a
    /// container's HEALTHCHECK, which has no curl to call.
    Healthcheck {
        /// The address the service listens on (as its --listen).
        #[arg(long, env = "CRONHOOK_LISTEN", default_value = "127.0.0.1:8080")]
        listen: ListenAddr,
    },
}

/// The store a command opens: the service's, and the token and migrate
/// commands'.
#[derive(Debug, Clone, Args)]
pub struct StoreArgs {
    /// `sqlite://path` (created when missing) or `postgres://…`.
    #[arg(long, env = "DATABASE_URL", default_value = "sqlite://cronhook.db")]
    pub database_url: String,

    /// The key secrets are sealed with at rest: 32 bytes as base64, made by
    /// `cronhook keygen`. Without it, the key file `cronhook.key` beside
    /// the SQLite database (or in the working directory) is used, and made
    /// when missing.
    #[arg(long, env = "CRONHOOK_ENCRYPTION_KEY", hide_env_values = true)]
    pub encryption_key: Option<String>,
}

#[derive(Debug, Clone, Subcommand)]
pub enum TokenCommand {
    /// Make a token and print it (once: only its hash is kept).
    Create {
        /// `root` (every tenant, tokens), `write` (its tenant's jobs and
        /// runs) or `read` (GET only, never a secret).
        #[arg(long)]
        role: Role,
        /// The tenant the token acts on.
        #[arg(long, default_value = "default")]
        tenant: String,
        /// A name to recognise it by in `token list`.
        #[arg(long)]
        name: Option<String>,
        /// What it may do beyond its role: `metrics` (scrape `/metrics`).
        #[arg(long = "scope", value_parser = parse_scope)]
        scopes: Vec<crate::domain::auth::Scope>,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// List tokens (never their text).
    List {
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Revoke a token by its id.
    Revoke {
        id: String,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Print a new random token without storing it: a value for
    /// CRONHOOK_ROOT_TOKEN.
    Generate,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Args)]
pub struct Config {
    /// Address the HTTP API listens on: `host:port`, where host is an IP
    /// address or a name (`localhost:8080`, `[::1]:8080`, `0.0.0.0:8080`).
    #[arg(long, env = "CRONHOOK_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: ListenAddr,

    #[command(flatten)]
    pub store: StoreArgs,

    /// Serve the API (and dispatch) without scheduling. The variable takes
    /// 1/0, true/false, yes/no, on/off.
    #[arg(long, env = "CRONHOOK_NO_SCHEDULER", action = ArgAction::SetTrue, value_parser = BoolishValueParser::new())]
    pub no_scheduler: bool,

    /// Serve the API (and schedule) without delivering webhooks. The
    /// variable takes 1/0, true/false, yes/no, on/off.
    #[arg(long, env = "CRONHOOK_NO_DISPATCHER", action = ArgAction::SetTrue, value_parser = BoolishValueParser::new())]
    pub no_dispatcher: bool,

    /// Webhook requests in flight at once.
    #[arg(long, env = "CRONHOOK_MAX_IN_FLIGHT", default_value_t = 256, value_parser = clap::value_parser!(u32).range(1..=65536))]
    pub max_in_flight: u32,

    /// Webhook requests in flight to one host at once, so that one slow
    /// target cannot take every slot.
    #[arg(long, env = "CRONHOOK_MAX_IN_FLIGHT_PER_HOST", default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..=65536))]
    pub max_in_flight_per_host: u32,

    /// Webhook requests in flight for one tenant at once while other
    /// tenants have some, so that one tenant's slow targets cannot hold
    /// every slot; by default half of --max-in-flight. A tenant alone may
    /// use all of --max-in-flight; an eighth of this more is kept for other
    /// tenants' runs.
    #[arg(long, env = "CRONHOOK_MAX_IN_FLIGHT_PER_TENANT", value_parser = clap::value_parser!(u32).range(1..=65536))]
    pub max_in_flight_per_tenant: Option<u32>,

    /// API connections served at once; past them only health checks are
    /// served, and any other request gets a 503 at once.
    #[arg(long, env = "CRONHOOK_MAX_CONNECTIONS", default_value_t = 1024, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub max_connections: u32,

    /// Jobs one tenant may hold; a new one past it is a 429.
    #[arg(long, env = "CRONHOOK_MAX_JOBS_PER_TENANT", default_value_t = 100_000, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_jobs_per_tenant: u32,

    /// Runs one tenant's jobs may make in a minute (by schedule or
    /// run-now); past it a run-now is a 429 and its due jobs wait for the
    /// next minute.
    #[arg(long, env = "CRONHOOK_MAX_RUNS_PER_MINUTE_PER_TENANT", default_value_t = 60_000, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_runs_per_minute_per_tenant: u32,

    /// Jobs with `metrics: true` whose own series `/metrics` shows (last
    /// success, consecutive failures), at most: a bound on the scrape's
    /// cardinality.
    #[arg(long, env = "CRONHOOK_MAX_JOB_METRICS", default_value_t = crate::metrics::DEFAULT_JOB_SERIES_MAX)]
    pub max_job_metrics: u32,

    /// Event subscriptions one tenant may hold (and so the webhooks one
    /// event makes); a new one past it is a 429.
    #[arg(long, env = "CRONHOOK_MAX_SUBSCRIPTIONS_PER_TENANT", default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_subscriptions_per_tenant: u32,

    /// Event streams one token may hold open at once; the next is a 429.
    #[arg(long, env = "CRONHOOK_MAX_STREAMS_PER_TOKEN", default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub max_streams_per_token: u32,

    /// Event streams one tenant may hold open at once; the next is a 429.
    #[arg(long, env = "CRONHOOK_MAX_STREAMS_PER_TENANT", default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub max_streams_per_tenant: u32,

    /// `auto`: tokens are required as soon as one has been made (revoking
    /// every one does not turn them off), and always on a non-loopback
    /// address; `required`; `none` (loopback only).
    #[arg(long, env = "CRONHOOK_AUTH", default_value = "auto", value_parser = parse_auth)]
    pub auth: AuthMode,

    /// A root token (`chk_…`) registered at start, for a container's
    /// first run; stored hashed like any other. Read from the variable
    /// `CRONHOOK_ROOT_TOKEN` or from `--root-token-file`, never from the
    /// command line, which every local user can read in the process list.
    #[arg(skip)]
    pub root_token: Option<String>,

    /// A file holding the root token to register at start (a mounted
    /// secret), instead of `CRONHOOK_ROOT_TOKEN`.
    #[arg(long, env = "CRONHOOK_ROOT_TOKEN_FILE")]
    pub root_token_file: Option<std::path::PathBuf>,

    /// The URL receivers reach this service at (such as
    /// https://cronhook.example.com): a callback job's requests carry
    /// `cronhook-callback-url` under it (DESIGN.md §11.7). Default: http://
    /// and the address the service listens on.
    #[arg(long, env = "CRONHOOK_PUBLIC_URL", value_parser = parse_public_url)]
    pub public_url: Option<url::Url>,

    /// Mark the dashboard's cookies `Secure` (sent over HTTPS only) on
    /// every request, for a proxy that terminates TLS without saying so in
    /// `X-Forwarded-Proto` or `Forwarded`, which otherwise decide it. The
    /// variable takes 1/0, true/false, yes/no, on/off.
    #[arg(long, env = "CRONHOOK_COOKIE_SECURE", action = ArgAction::SetTrue, value_parser = BoolishValueParser::new())]
    pub cookie_secure: bool,

    /// The signing secret every job created without its own `secret` gets
    /// (`whsec_` and 24 to 64 bytes in base64), so one receiver key
    /// verifies all of them. A trade-off: whoever reads one job's secret
    /// can sign for all of them, and changing this flag changes no job
    /// made before (rotate those one by one). Without it, each job gets a
    /// random secret of its own.
    #[arg(
        long,
        env = "CRONHOOK_SIGNING_SECRET_DEFAULT",
        hide_env_values = true,
        value_parser = parse_signing_secret
    )]
    pub signing_secret_default: Option<crate::domain::signing::ChosenSecret>,

    /// Further `Host` names the API answers while auth is off (it answers
    /// the listen address, localhost and loopback addresses), comma
    /// separated.
    #[arg(long, env = "CRONHOOK_ALLOWED_HOSTS", value_delimiter = ',')]
    pub allowed_hosts: Vec<String>,

    /// A delivery's lease is its request timeout plus this, in seconds:
    /// how long before another instance may take over a run whose
    /// instance died mid-request.
    #[arg(long, env = "CRONHOOK_LEASE_MARGIN_S", default_value_t = 30)]
    pub lease_margin_s: u64,

    /// Seconds an instance may miss its heartbeats (one a second) before
    /// the others take over its deliveries, whatever their lease.
    #[arg(long, env = "CRONHOOK_INSTANCE_TIMEOUT_S", default_value_t = 3, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub instance_timeout_s: u64,

    /// Longest sleep of the scheduler between passes, in milliseconds;
    /// it wakes sooner for due jobs and for changes.
    #[arg(long, env = "CRONHOOK_POLL_INTERVAL_MS", default_value_t = 1000)]
    pub poll_interval_ms: u64,

    /// How long before its fire time a job's next run is made, in
    /// milliseconds (0 makes runs only once due); the run is still sent at
    /// its fire time. Pause, delete and a trigger change remove runs made
    /// ahead and not yet due.
    #[arg(long, env = "CRONHOOK_LOOKAHEAD_MS", default_value_t = 500, value_parser = clap::value_parser!(u64).range(0..=10_000))]
    pub lookahead_ms: u64,

    /// How long finished runs are kept: `7d`, `12h`, `30m`, `90s`.
    #[arg(long, env = "CRONHOOK_RUN_RETENTION", default_value = "7d", value_parser = crate::retention::parse_duration)]
    pub run_retention: Duration,

    /// How long events are kept: `7d`, `12h`, `30m`, `90s`.
    #[arg(long, env = "CRONHOOK_EVENT_RETENTION", default_value = "7d", value_parser = crate::retention::parse_duration)]
    pub event_retention: Duration,

    /// How long audit records are kept (DESIGN §11.9): `365d`, `90d`.
    #[arg(long, env = "CRONHOOK_AUDIT_RETENTION", default_value = "365d", value_parser = crate::retention::parse_duration)]
    pub audit_retention: Duration,

    /// How long a shutdown waits for in-flight work, in seconds.
    #[arg(long, env = "CRONHOOK_SHUTDOWN_TIMEOUT_S", default_value_t = 30)]
    pub shutdown_timeout_s: u64,

    /// Which webhook targets may be called: `any`, or `public-only`
    /// (also refuses loopback, private, CGNAT, unique-local, reserved and
    /// documentation addresses). Default: `any` when listening on
    /// loopback, `public-only` otherwise.
    #[arg(long, env = "CRONHOOK_TARGETS", value_parser = parse_target_mode)]
    pub targets: Option<TargetMode>,

    /// Exemptions from `public-only`: CIDRs (`10.1.0.0/16`), addresses or
    /// host names, comma separated. Metadata and link-local addresses stay
    /// refused.
    #[arg(long, env = "CRONHOOK_ALLOW_TARGETS", value_delimiter = ',', value_parser = parse_exemption)]
    pub allow_targets: Vec<Exemption>,

    /// `text` or `json` (one JSON object per line).
    #[arg(long, env = "CRONHOOK_LOG_FORMAT", value_enum, default_value = "text")]
    pub log_format: LogFormat,
}

/// Where the API listens: a host (IP literal or name) and a port. A name
/// is resolved when the listener is bound.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenAddr {
    pub host: String,
    pub port: u16,
}

/// `--public-url`: an http(s) URL without a query or fragment.
fn parse_public_url(text: &str) -> Result<url::Url, String> {
    let url = url::Url::parse(text).map_err(|e| format!("not a URL: {e}"))?;
    if !matches!(url.scheme(), "http" | "https")
        || url.query().is_some()
        || url.fragment().is_some()
    {
        return Err(format!(
            "expected an http or https URL without a query, such as https://cronhook.example.com, got {text:?}"
        ));
    }
    Ok(url)
}

impl FromStr for ListenAddr {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let expected = || {
            format!(
                "expected host:port such as 127.0.0.1:8080, localhost:8080 or [::1]:8080, got {s:?}"
            )
        };
        let (host, port) = s.rsplit_once(':').ok_or_else(expected)?;
        let port: u16 = port.parse().map_err(|_| expected())?;
        let host = match host.strip_prefix('[') {
            Some(inner) => inner.strip_suffix(']').ok_or_else(expected)?,
            None if host.contains(':') => return Err(expected()),
            None => host,
        };
        if host.is_empty() {
            return Err(expected());
        }
        Ok(Self {
            host: host.to_string(),
            port,
        })
    }
}

impl fmt::Display for ListenAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

fn parse_target_mode(s: &str) -> Result<TargetMode, String> {
    s.parse()
}

fn parse_exemption(s: &str) -> Result<Exemption, String> {
    s.parse()
}

fn parse_auth(s: &str) -> Result<AuthMode, String> {
    s.parse().map_err(String::from)
}

impl ListenAddr {
    /// Whether the host is a loopback address or `localhost` (as named;
    /// the bound address decides in the end).
    pub fn is_loopback(&self) -> bool {
        self.host.eq_ignore_ascii_case("localhost")
            || self
                .host
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback())
    }
}

impl Config {
    /// Defaults, for tests and embedding: like the command line with no flags.
    pub fn for_database(database_url: &str) -> Self {
        let mut config = Cli::parse_from(["cronhook"]).config;
        config.store.database_url = database_url.to_string();
        config
    }

    /// The target policy: `--targets`, or by default `any` while the API
    /// is open on loopback (until tokens are required) and `public-only`
    /// wherever tokens are required.
    pub fn network_policy(&self, loopback: bool, tokens_required: bool) -> NetworkPolicy {
        let exemptions = self.allow_targets.clone();
        match self.targets {
            Some(mode) => NetworkPolicy::new(mode, exemptions),
            None if loopback && !tokens_required => NetworkPolicy::any_until_tokens(exemptions),
            None => NetworkPolicy::new(TargetMode::PublicOnly, exemptions),
        }
    }

    /// What one tenant may hold.
    pub fn quotas(&self) -> Quotas {
        Quotas {
            jobs: self.max_jobs_per_tenant,
            subscriptions: self.max_subscriptions_per_tenant,
            runs_per_minute: self.max_runs_per_minute_per_tenant,
            ..Quotas::default()
        }
    }

    /// Reads the root token from `CRONHOOK_ROOT_TOKEN` or the file
    /// `--root-token-file` names (not both).
    pub fn read_root_token(&mut self) -> anyhow::Result<()> {
        let variable = std::env::var("CRONHOOK_ROOT_TOKEN")
            .ok()
            .filter(|v| !v.is_empty());
        self.root_token = match (variable, &self.root_token_file) {
            (Some(_), Some(_)) => anyhow::bail!(
                "both CRONHOOK_ROOT_TOKEN and --root-token-file are set: give the root token once"
            ),
            (Some(token), None) => Some(token),
            (None, Some(path)) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| anyhow::anyhow!("--root-token-file {}: {e}", path.display()))?;
                Some(text.trim().to_string())
            }
            (None, None) => self.root_token.take(),
        };
        Ok(())
    }

    /// One tenant's share of the delivery slots: as given, or half of
    /// them (rounded up), so that two tenants can both be served at once.
    pub fn max_in_flight_per_tenant(&self) -> u32 {
        self.max_in_flight_per_tenant
            .unwrap_or(self.max_in_flight.div_ceil(2))
    }

    pub fn poll_interval(&self) -> Duration {
        Duration::from_millis(self.poll_interval_ms.max(1))
    }

    pub fn lookahead(&self) -> Duration {
        Duration::from_millis(self.lookahead_ms)
    }

    pub fn instance_timeout(&self) -> Duration {
        Duration::from_secs(self.instance_timeout_s)
    }

    pub fn shutdown_timeout(&self) -> Duration {
        Duration::from_secs(self.shutdown_timeout_s)
    }

    /// What a shutdown gives deliveries in flight: most of the shutdown
    /// timeout, leaving time to release what did not finish.
    pub fn drain_timeout(&self) -> Duration {
        self.shutdown_timeout().mul_f64(0.8)
    }
}

/// `--scope`: a token scope's name.
fn parse_scope(text: &str) -> Result<crate::domain::auth::Scope, String> {
    crate::domain::auth::Scope::parse(text)
        .ok_or_else(|| format!("unknown scope {text:?}; the one scope is `metrics`"))
}

fn parse_signing_secret(text: &str) -> Result<crate::domain::signing::ChosenSecret, String> {
    crate::domain::signing::ChosenSecret::parse(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_service_s_flags_go_with_serve_or_no_subcommand_only() {
        let cli = Cli::parse_from([
            "cronhook",
            "serve",
            "--listen",
            "0.0.0.0:9000",
            "--targets",
            "public-only",
        ]);
        let Some(Command::Serve(config)) = cli.command else {
            panic!("serve")
        };
        assert_eq!(config.listen.port, 9000);
        assert_eq!(config.targets, Some(TargetMode::PublicOnly));
        let cli = Cli::parse_from(["cronhook", "--listen", "0.0.0.0:9000"]);
        assert!(cli.command.is_none());
        assert_eq!(cli.config.listen.port, 9000);
        // Given before a subcommand they would be ignored: refused instead.
        for args in [
            &["cronhook", "--listen", "0.0.0.0:9000", "serve"][..],
            &["cronhook", "--targets", "any", "token", "list"],
            &["cronhook", "token", "list", "--listen", "0.0.0.0:9000"],
            &["cronhook", "keygen", "--database-url", "sqlite://x.db"],
        ] {
            assert!(Cli::try_parse_from(args).is_err(), "{args:?}");
        }
        let cli = Cli::parse_from(["cronhook", "migrate", "--database-url", "sqlite://x.db"]);
        let Some(Command::Migrate(store)) = cli.command else {
            panic!("migrate")
        };
        assert_eq!(store.database_url, "sqlite://x.db");
    }

    #[test]
    fn each_subcommand_s_help_shows_only_its_own_flags() {
        use clap::CommandFactory;
        let mut cli = Cli::command();
        let help = |cli: &mut clap::Command, path: &[&str]| {
            let mut command = cli.clone();
            for name in path {
                command = command.find_subcommand(name).unwrap().clone();
            }
            command.render_long_help().to_string()
        };
        let token = help(&mut cli, &["token", "create"]);
        assert!(
            token.contains("--role") && token.contains("--database-url"),
            "{token}"
        );
        assert!(!token.contains("--max-in-flight"), "{token}");
        let health = help(&mut cli, &["healthcheck"]);
        assert!(
            health.contains("--listen") && !health.contains("--database-url"),
            "{health}"
        );
        assert!(!help(&mut cli, &["keygen"]).contains("--listen"));
        assert!(help(&mut cli, &["serve"]).contains("--max-in-flight"));
    }

    #[test]
    fn defaults() {
        let cli = Cli::parse_from(["cronhook"]);
        assert!(cli.command.is_none());
        assert_eq!(cli.config.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(cli.config.targets, None);
        assert_eq!(cli.config.auth, AuthMode::Auto);
        assert_eq!(cli.config.max_in_flight_per_host, 64);
        assert_eq!(cli.config.max_in_flight_per_tenant(), 128);
        assert_eq!(cli.config.max_connections, 1024);
        assert_eq!(cli.config.log_format, LogFormat::Text);
    }

    #[test]
    fn the_target_policy_is_public_only_wherever_tokens_are_required_unless_given() {
        let cli = Cli::parse_from(["cronhook"]);
        let open = cli.config.network_policy(true, false);
        assert_eq!(open.mode(), TargetMode::Any);
        assert!(open.waits_for_tokens());
        for (loopback, required) in [(true, true), (false, true)] {
            assert_eq!(
                cli.config.network_policy(loopback, required).mode(),
                TargetMode::PublicOnly,
                "{loopback} {required}"
            );
        }
        let cli = Cli::parse_from([
            "cronhook",
            "--targets",
            "any",
            "--allow-targets",
            "10.0.0.0/8,hooks.internal",
        ]);
        assert_eq!(
            cli.config.network_policy(false, true).mode(),
            TargetMode::Any
        );
        assert_eq!(
            cli.config.network_policy(false, true).to_string(),
            "any (except 10.0.0.0/8, hooks.internal)"
        );
        assert!(Cli::try_parse_from(["cronhook", "--allow-targets", "a b"]).is_err());
    }

    #[test]
    fn token_commands_parse() {
        let cli = Cli::parse_from([
            "cronhook", "token", "create", "--role", "write", "--tenant", "team-a",
        ]);
        assert!(matches!(
            cli.command,
            Some(Command::Token(TokenCommand::Create { role: Role::Write, ref tenant, name: None, ref scopes, .. })) if tenant == "team-a" && scopes.is_empty()
        ));
        assert!(matches!(
            Cli::parse_from(["cronhook", "token", "create", "--role", "read", "--scope", "metrics"]).command,
            Some(Command::Token(TokenCommand::Create { ref scopes, .. })) if scopes == &[crate::domain::auth::Scope::Metrics]
        ));
        assert!(
            Cli::try_parse_from([
                "cronhook", "token", "create", "--role", "read", "--scope", "all"
            ])
            .is_err()
        );
        assert!(Cli::try_parse_from(["cronhook", "token", "create", "--role", "admin"]).is_err());
        assert!(matches!(
            Cli::parse_from(["cronhook", "token", "revoke", "tok_1"]).command,
            Some(Command::Token(TokenCommand::Revoke { .. }))
        ));
    }

    #[test]
    fn loopback_listen_addresses() {
        for (addr, loopback) in [
            ("127.0.0.1:8080", true),
            ("localhost:1", true),
            ("[::1]:1", true),
            ("0.0.0.0:8080", false),
            ("10.0.0.1:80", false),
            ("example.com:80", false),
        ] {
            assert_eq!(
                addr.parse::<ListenAddr>().unwrap().is_loopback(),
                loopback,
                "{addr}"
            );
        }
    }

    #[test]
    fn listen_takes_names_and_bracketed_ipv6() {
        let parse = |s: &str| s.parse::<ListenAddr>();
        assert_eq!(
            parse("localhost:8080").unwrap(),
            ListenAddr {
                host: "localhost".into(),
                port: 8080
            }
        );
        assert_eq!(parse("[::1]:9000").unwrap().host, "::1");
        assert_eq!(parse("[::1]:9000").unwrap().to_string(), "[::1]:9000");
        assert_eq!(parse("0.0.0.0:0").unwrap().to_string(), "0.0.0.0:0");
        for bad in ["localhost", "::1:80", ":8080", "host:99999", "[::1:80"] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn refuses_unknown_policies() {
        assert!(Cli::try_parse_from(["cronhook", "--targets", "none"]).is_err());
    }
}
