use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use cronhook::cli;
use cronhook::config::{Cli, Command, Config, ListenAddr, StoreArgs, TokenCommand};
use cronhook::domain::auth::{self, Tenant};
use cronhook::domain::sealing::SealingKey;
use cronhook::store::{self, DynStore, NewToken};
use cronhook::wakeup::Wakeups;
use cronhook::{api, app, keyfile, telemetry};

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    // The service's flags are `serve`'s, or the top level's without a
    // subcommand: its log format is theirs.
    let (command, config) = match cli.command {
        None => (None, cli.config),
        Some(Command::Serve(config)) => (None, *config),
        Some(other) => (Some(other), cli.config),
    };
    telemetry::init(config.log_format, command.is_some());
    // An operator's command says its failure once, on stderr, as a CLI does.
    let operator = matches!(
        command,
        Some(
            Command::Jobs(_) | Command::Apply { .. } | Command::Export { .. } | Command::Import(_)
        )
    );
    let result = match command {
        None | Some(Command::Serve(_)) => serve(config).await,
        Some(Command::Migrate(store)) => migrate(&store).await,
        Some(Command::Openapi) => print_openapi(),
        Some(Command::Token(command)) => token(command).await,
        Some(Command::Keygen) => {
            println!("{}", SealingKey::generate_base64());
            Ok(())
        }
        Some(Command::Healthcheck { listen }) => healthcheck(&listen).await,
        Some(Command::Jobs(command)) => cli::jobs(command).await,
        Some(Command::Apply(args)) => cli::apply(args).await,
        Some(Command::Export(args)) => cli::export(args).await,
        Some(Command::Import(command)) => cli::import(command),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            if !operator {
                tracing::error!(error = format!("{e:#}"), "cronhook failed");
            }
            eprintln!("cronhook: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(mut config: Config) -> anyhow::Result<()> {
    config.read_root_token()?;
    let stop = app::shutdown_signal();
    let running = app::start(config).await?;
    stop.await;
    running.shutdown().await;
    Ok(())
}

/// `GET /readyz` on the address the service listens on (its loopback
/// name when it listens on every address).
async fn healthcheck(listen: &ListenAddr) -> anyhow::Result<()> {
    let host = match listen.host.as_str() {
        "0.0.0.0" | "" => "127.0.0.1".to_string(),
        "::" | "[::]" => "[::1]".to_string(),
        h if h.contains(':') && !h.starts_with('[') => format!("[{h}]"),
        h => h.to_string(),
    };
    let url = format!("http://{host}:{}/readyz", listen.port);
    cronhook::dispatch::client::install_crypto_provider();
    let answer = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(5))
        .build()?
        .get(&url)
        .send()
        .await
        .with_context(|| format!("asking {url}"))?;
    let status = answer.status();
    let body = answer.text().await.unwrap_or_default();
    anyhow::ensure!(status.is_success(), "{url} answered {status}: {body}");
    println!("{body}");
    Ok(())
}

async fn open_store(config: &StoreArgs) -> anyhow::Result<DynStore> {
    let key_file = store::key_file_for(&config.database_url);
    let found = config.encryption_key.is_some() || key_file.exists();
    let key = keyfile::load(config.encryption_key.as_deref(), &config.database_url)?;
    let opened = store::connect(
        &config.database_url,
        std::sync::Arc::new(Wakeups::new()),
        key,
    )
    .await
    .with_context(|| format!("opening the store at {}", app::redact(&config.database_url)));
    if opened.is_err() && !found {
        // A key made just now for a store sealed with another: leave no
        // stray file behind, and say where the right one is.
        std::fs::remove_file(&key_file).ok();
        return opened.with_context(|| {
            format!(
                "no key file was found at {}: the service keeps its key beside its SQLite database, or in the directory it runs in for PostgreSQL; run this command there, or set CRONHOOK_ENCRYPTION_KEY",
                key_file.display()
            )
        });
    }
    opened
}

async fn migrate(config: &StoreArgs) -> anyhow::Result<()> {
    let store = open_store(config).await?;
    tracing::info!(store = store.backend(), "migrations applied");
    Ok(())
}

async fn token(command: TokenCommand) -> anyhow::Result<()> {
    match command {
        TokenCommand::Generate => println!("{}", auth::generate_token().0),
        TokenCommand::Create {
            role,
            tenant,
            name,
            scopes,
            store,
        } => {
            let store = open_store(&store).await?;
            let tenant = Tenant::parse(&tenant).map_err(|e| anyhow::anyhow!("--tenant {e}"))?;
            let (text, hash) = auth::generate_token();
            let made = store
                .create_token(&NewToken {
                    id: auth::generate_token_id(),
                    name,
                    tenant,
                    role,
                    scopes,
                    hash,
                })
                .await?;
            eprintln!(
                "made token {} ({} on tenant {}); it is shown only now:",
                made.id, made.role, made.tenant
            );
            println!("{text}");
        }
        TokenCommand::List { store } => {
            let store = open_store(&store).await?;
            let at = |t: Option<chrono::DateTime<chrono::Utc>>| {
                t.map_or("-".to_string(), |t| {
                    t.format("%Y-%m-%dT%H:%M:%SZ").to_string()
                })
            };
            // Columns as wide as their widest cell: a role or tenant's
            // Display ignores a width, so every cell is a String first.
            let mut rows = vec![
                [
                    "id",
                    "role",
                    "tenant",
                    "scopes",
                    "created",
                    "last used",
                    "revoked",
                    "name",
                ]
                .map(String::from),
            ];
            for t in store.list_tokens().await? {
                let scopes: Vec<&str> = t.scopes.iter().map(|s| s.as_str()).collect();
                rows.push([
                    t.id,
                    t.role.to_string(),
                    t.tenant.to_string(),
                    if scopes.is_empty() {
                        "-".into()
                    } else {
                        scopes.join(",")
                    },
                    at(Some(t.created_at)),
                    at(t.last_used_at),
                    at(t.revoked_at),
                    t.name.unwrap_or_default(),
                ]);
            }
            let widths: Vec<usize> = (0..8)
                .map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0))
                .collect();
            for row in &rows {
                let cells: Vec<String> = row
                    .iter()
                    .zip(&widths)
                    .map(|(cell, w)| format!("{cell:<w$}"))
                    .collect();
                println!("{}", cells.join("  ").trim_end());
            }
        }
        TokenCommand::Revoke { id, store } => {
            let store = open_store(&store).await?;
            if !store.revoke_token(&id).await? {
                anyhow::bail!("no unrevoked token with id {id:?}; see `cronhook token list`");
            }
            eprintln!("revoked token {id}");
        }
    }
    Ok(())
}

fn print_openapi() -> anyhow::Result<()> {
    use std::io::Write;
    let document = serde_json::to_string_pretty(&api::openapi())?;
    match writeln!(std::io::stdout().lock(), "{document}") {
        // `cronhook openapi | head` closed the pipe: nothing more to say.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => Ok(other?),
    }
}
