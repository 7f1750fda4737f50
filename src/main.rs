use std::process::ExitCode;

use clap::Parser;
use cronhook::config::{Cli, Command};
use cronhook::wakeup::Wakeups;
use cronhook::{api, app, store, telemetry};

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    telemetry::init(cli.config.log_format);
    let result = match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => serve(cli.config).await,
        Command::Migrate => migrate(cli.config).await,
        Command::Openapi => print_openapi(),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = format!("{e:#}"), "cronhook failed");
            eprintln!("cronhook: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(config: cronhook::config::Config) -> anyhow::Result<()> {
    let stop = app::shutdown_signal();
    let running = app::start(config).await?;
    stop.await;
    running.shutdown().await;
    Ok(())
}

async fn migrate(config: cronhook::config::Config) -> anyhow::Result<()> {
    let store = store::connect(&config.database_url, std::sync::Arc::new(Wakeups::new())).await?;
    tracing::info!(store = store.backend(), "migrations applied");
    Ok(())
}

fn print_openapi() -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(&api::openapi())?);
    Ok(())
}
