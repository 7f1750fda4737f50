//! The operator's command line (DESIGN §11.9): `cronhook jobs …`,
//! `cronhook apply`, `cronhook export` talk to a running service over
//! HTTP with a token (`CRONHOOK_URL`, `CRONHOOK_TOKEN`), as `kubectl`
//! does; `cronhook import crontab` translates a file into a bundle for
//! `apply`. Tables for people, `-o json` or `-o yaml` for scripts.

mod client;
mod output;

use std::io::Read;

use clap::{Args, Subcommand, ValueEnum};
use serde_json::{Value, json};

use crate::domain::apscheduler::{self, ApsOptions};
use crate::domain::crontab::{self, ImportOptions};
pub use client::Client;
use output::Output;

/// Where the service is, and who asks.
#[derive(Debug, Clone, Args)]
pub struct Remote {
    /// The service's base URL.
    #[arg(long, env = "CRONHOOK_URL", default_value = "http://127.0.0.1:8080")]
    pub url: String,
    /// An API token (`chk_…`); none for an open local service.
    #[arg(long, env = "CRONHOOK_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Why, for the audit trail (sent as `cronhook-reason`).
    #[arg(long)]
    pub reason: Option<String>,
}

/// How answers are printed.
#[derive(Debug, Clone, Args)]
pub struct Shown {
    /// `table` for people, `json` or `yaml` for scripts.
    #[arg(short, long, value_enum, default_value_t = Output::Table)]
    pub output: Output,
}

#[derive(Debug, Clone, Subcommand)]
pub enum JobsCommand {
    /// List jobs, every page (`-l team=data` picks by label).
    List {
        /// A label selector, as `GET /v1/jobs?selector=` takes it.
        #[arg(short = 'l', long)]
        selector: Option<String>,
        #[command(flatten)]
        shown: Shown,
        #[command(flatten)]
        remote: Remote,
    },
    /// Show one job.
    Get {
        id: String,
        #[command(flatten)]
        shown: Shown,
        #[command(flatten)]
        remote: Remote,
    },
    /// Create a job from a JSON or YAML file (`-` reads stdin).
    Create {
        #[arg(short = 'f', long)]
        file: String,
        #[command(flatten)]
        shown: Shown,
        #[command(flatten)]
        remote: Remote,
    },
    /// Pause a job, until resumed or until `--until`.
    Pause {
        id: String,
        /// When it resumes by itself (RFC 3339).
        #[arg(long)]
        until: Option<String>,
        #[command(flatten)]
        remote: Remote,
    },
    /// Resume a paused job.
    Resume {
        id: String,
        #[command(flatten)]
        remote: Remote,
    },
    /// Run a job now.
    Run {
        id: String,
        #[command(flatten)]
        shown: Shown,
        #[command(flatten)]
        remote: Remote,
    },
    /// Delete a job and its runs.
    Delete {
        id: String,
        #[command(flatten)]
        remote: Remote,
    },
}

/// A bundle's format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BundleFormat {
    Json,
    Yaml,
}

impl BundleFormat {
    fn as_str(self) -> &'static str {
        match self {
            BundleFormat::Json => "json",
            BundleFormat::Yaml => "yaml",
        }
    }
}

#[derive(Debug, Clone, Subcommand)]
pub enum ImportCommand {
    /// Translate a crontab (cronie's syntax, `CRON_TZ=`, comments as
    /// names) into a bundle of monitor-only jobs on stdout, for `cronhook
    /// apply -f -`; each line that makes no job is reported on stderr.
    Crontab {
        /// The crontab file (`crontab -l > FILE`); `-` reads stdin.
        file: String,
        /// The zone of entries before any `CRON_TZ=` (cron's is the host's).
        #[arg(long, default_value = "UTC")]
        timezone: String,
        /// Label the jobs `cronhook.io/owner=<OWNER>`, for `apply
        /// --prune-owner`.
        #[arg(long)]
        owner: Option<String>,
        #[arg(long, value_enum, default_value_t = BundleFormat::Yaml)]
        format: BundleFormat,
    },
    /// Translate APScheduler 3's jobs (the JSON the README's snippet
    /// writes from `scheduler.get_jobs()`) into a bundle of webhook jobs
    /// on stdout; each job that makes none is reported on stderr.
    Apscheduler {
        /// The snippet's JSON file; `-` reads stdin.
        file: String,
        /// Where each job's work now answers; `{id}` is the job's id
        /// (`https://worker.example.com/jobs/{id}`).
        #[arg(long)]
        url_template: String,
        /// Label the jobs `cronhook.io/owner=<OWNER>`.
        #[arg(long)]
        owner: Option<String>,
        #[arg(long, value_enum, default_value_t = BundleFormat::Yaml)]
        format: BundleFormat,
    },
}

/// `cronhook apply`.
#[derive(Debug, Clone, Args)]
pub struct ApplyArgs {
    #[arg(short = 'f', long)]
    file: String,
    /// Print the plan and change nothing.
    #[arg(long)]
    dry_run: bool,
    /// Delete this owner's jobs (label cronhook.io/owner) the bundle
    /// lacks.
    #[arg(long)]
    prune_owner: Option<String>,
    #[command(flatten)]
    shown: Shown,
    #[command(flatten)]
    remote: Remote,
}

/// `cronhook export`.
#[derive(Debug, Clone, Args)]
pub struct ExportArgs {
    /// Only the jobs this label selector picks.
    #[arg(short = 'l', long)]
    selector: Option<String>,
    #[arg(long, value_enum, default_value_t = BundleFormat::Yaml)]
    format: BundleFormat,
    #[command(flatten)]
    remote: Remote,
}

/// Sends a bundle file to `POST /v1/apply` and prints the plan.
pub async fn apply(args: ApplyArgs) -> anyhow::Result<()> {
    let text = read(&args.file)?;
    // JSON as JSON; anything else the service reads as YAML.
    let content_type = match serde_json::from_str::<Value>(&text) {
        Ok(_) => "application/json",
        Err(_) => "application/yaml",
    };
    let mut query = url::form_urlencoded::Serializer::new(String::new());
    if args.dry_run {
        query.append_pair("dry_run", "true");
    }
    if let Some(owner) = &args.prune_owner {
        query.append_pair("prune_owner", owner);
    }
    let path = format!("/v1/apply?{}", query.finish());
    let plan = Client::new(&args.remote)?
        .send_text(reqwest::Method::POST, &path, content_type, text)
        .await?;
    args.shown.output.plan(&plan)
}

/// Prints `GET /v1/export`'s bundle.
pub async fn export(args: ExportArgs) -> anyhow::Result<()> {
    let mut query = url::form_urlencoded::Serializer::new(String::new());
    query.append_pair("format", args.format.as_str());
    if let Some(selector) = &args.selector {
        query.append_pair("selector", selector);
    }
    let text = Client::new(&args.remote)?
        .text(&format!("/v1/export?{}", query.finish()))
        .await?;
    print!("{text}");
    Ok(())
}

/// Translates a file into a bundle on stdout; what it leaves out goes to
/// stderr.
pub fn import(command: ImportCommand) -> anyhow::Result<()> {
    let (file, imported, unit, format) = match command {
        ImportCommand::Crontab {
            file,
            timezone,
            owner,
            format,
        } => {
            let text = read(&file)?;
            let options = ImportOptions { timezone, owner };
            let imported = crontab::import(&text, &options, chrono::Utc::now());
            (file, imported, "line", format)
        }
        ImportCommand::Apscheduler {
            file,
            url_template,
            owner,
            format,
        } => {
            let text = read(&file)?;
            let options = ApsOptions {
                url_template,
                owner,
            };
            let imported = apscheduler::import(&text, &options, chrono::Utc::now())
                .map_err(|e| anyhow::anyhow!("{file}: {e}"))?;
            (file, imported, "job", format)
        }
    };
    report(&imported, &file, unit);
    print!("{}", output::bundle_text(&imported.bundle, format)?);
    Ok(())
}

/// What an import left out, by `unit` (`line 3`, `job 2`), on stderr.
fn report(imported: &crontab::Imported, file: &str, unit: &str) {
    for left in &imported.unmapped {
        eprintln!(
            "{unit} {}: not mapped: {}: {}",
            left.line, left.why, left.text
        );
    }
    let jobs = imported.bundle["jobs"].as_array().map_or(0, Vec::len);
    eprintln!(
        "{jobs} jobs made from {file}, {} {unit}s not mapped",
        imported.unmapped.len()
    );
}

/// `cronhook jobs …`.
pub async fn jobs(command: JobsCommand) -> anyhow::Result<()> {
    match command {
        JobsCommand::List {
            selector,
            shown,
            remote,
        } => {
            let client = Client::new(&remote)?;
            let mut items = Vec::new();
            let mut cursor: Option<String> = None;
            loop {
                let mut query = url::form_urlencoded::Serializer::new(String::new());
                query.append_pair("limit", "500");
                if let Some(selector) = &selector {
                    query.append_pair("selector", selector);
                }
                if let Some(cursor) = &cursor {
                    query.append_pair("cursor", cursor);
                }
                let page = client.json(&format!("/v1/jobs?{}", query.finish())).await?;
                items.extend(page["items"].as_array().cloned().unwrap_or_default());
                match page["next_cursor"].as_str() {
                    Some(next) => cursor = Some(next.to_string()),
                    None => break,
                }
            }
            shown.output.jobs(&items, false)
        }
        JobsCommand::Get { id, shown, remote } => {
            let job = Client::new(&remote)?.json(&job_path(&id, "")).await?;
            shown.output.jobs(std::slice::from_ref(&job), true)
        }
        JobsCommand::Create {
            file,
            shown,
            remote,
        } => {
            let text = read(&file)?;
            let body: Value = serde_norway::from_str(&text)
                .map_err(|e| anyhow::anyhow!("{file} is neither JSON nor YAML: {e}"))?;
            let job = Client::new(&remote)?
                .send(reqwest::Method::POST, "/v1/jobs", Some(&body))
                .await?;
            shown.output.jobs(std::slice::from_ref(&job), true)
        }
        JobsCommand::Pause { id, until, remote } => {
            let mut body = json!({});
            if let Some(until) = until {
                body["until"] = json!(until);
            }
            if let Some(reason) = &remote.reason {
                body["reason"] = json!(reason);
            }
            let job = Client::new(&remote)?
                .send(reqwest::Method::POST, &job_path(&id, "/pause"), Some(&body))
                .await?;
            eprintln!("{id}: {}", job["state"].as_str().unwrap_or("?"));
            Ok(())
        }
        JobsCommand::Resume { id, remote } => {
            let job = Client::new(&remote)?
                .send(reqwest::Method::POST, &job_path(&id, "/resume"), None)
                .await?;
            eprintln!("{id}: {}", job["state"].as_str().unwrap_or("?"));
            Ok(())
        }
        JobsCommand::Run { id, shown, remote } => {
            let run = Client::new(&remote)?
                .send(reqwest::Method::POST, &job_path(&id, "/run"), None)
                .await?;
            shown.output.value(&run)
        }
        JobsCommand::Delete { id, remote } => {
            Client::new(&remote)?
                .send(reqwest::Method::DELETE, &job_path(&id, ""), None)
                .await?;
            eprintln!("{id}: deleted");
            Ok(())
        }
    }
}

/// `/v1/jobs/{id}{rest}`, the id percent-encoded.
fn job_path(id: &str, rest: &str) -> String {
    let id: String = url::form_urlencoded::byte_serialize(id.as_bytes()).collect();
    format!("/v1/jobs/{id}{rest}")
}

/// A file's text; `-` is stdin.
fn read(file: &str) -> anyhow::Result<String> {
    if file == "-" {
        let mut text = String::new();
        std::io::stdin().read_to_string(&mut text)?;
        return Ok(text);
    }
    std::fs::read_to_string(file).map_err(|e| anyhow::anyhow!("reading {file}: {e}"))
}
