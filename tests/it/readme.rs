//! The README is the one page a user needs, so its commands must work as
//! written: every `curl` example answers 2xx from a started service, and
//! every `cargo run` line names a binary that runs.

use crate::support as common;

use std::path::Path;
use std::process::Command;

use common::{Backend, TestApp, TestDb};

const README: &str = include_str!("../../README.md");
const CARGO_TOML: &str = include_str!("../../Cargo.toml");

/// The commands of the README's `sh` blocks, in order: continued lines
/// joined, comments dropped.
fn commands() -> Vec<String> {
    let mut commands = Vec::new();
    let mut in_block = false;
    let mut pending = String::new();
    for line in README.lines() {
        if line.trim_start().starts_with("```") {
            in_block = line.trim() == "```sh";
            continue;
        }
        if !in_block {
            continue;
        }
        let line = match line.find("  # ") {
            Some(i) if !line[..i].contains('\'') || line[..i].matches('\'').count() % 2 == 0 => {
                &line[..i]
            }
            _ => line,
        };
        let line = line.trim_end();
        if let Some(head) = line.strip_suffix('\\') {
            pending.push_str(head);
            pending.push(' ');
            continue;
        }
        pending.push_str(line);
        let command = std::mem::take(&mut pending).trim().to_string();
        if !command.is_empty() {
            commands.push(command);
        }
    }
    commands
}

/// The README's commands read as `bash` reads them (quotes spanning
/// lines included): what `bash -n` accepts, one string per command.
fn curl_commands() -> Vec<String> {
    let mut out = Vec::new();
    let mut open = String::new();
    for command in commands() {
        if !open.is_empty() {
            open.push('\n');
        }
        open.push_str(&command);
        // A quote left open continues on the next line.
        if open.matches('\'').count() % 2 == 1 {
            continue;
        }
        let whole = std::mem::take(&mut open);
        if whole.starts_with("curl ") {
            out.push(whole);
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_curl_example_answers_2xx() {
    assert!(
        Command::new("curl").arg("--version").output().is_ok(),
        "curl is needed to run the README's examples"
    );
    // As a user would run it, but on a port of its own, delivering nothing.
    let db = TestDb::new(Backend::Sqlite).await;
    let mut config = common::test_config(&db.url);
    config.no_dispatcher = true;
    let app = TestApp::spawn_with(db, config).await;
    let examples = curl_commands();
    assert!(examples.len() >= 8, "{examples:#?}");
    // The examples that use a token come last: the first of them makes it
    // (as `cronhook token create` does), which turns authentication on.
    let mut token = None;
    for example in examples {
        let mut command = example.replace("http://127.0.0.1:8080", &app.base);
        // A stream never ends: it is read for a moment (curl still prints
        // the status it got).
        if command.contains("/v1/events/stream") {
            command.push_str(" --max-time 3");
        }
        if command.contains("$CRONHOOK_TOKEN") && token.is_none() {
            token = Some(
                app.make_token(cronhook::domain::auth::Role::Root, "default")
                    .await,
            );
        }
        if command.contains("<run-id>") {
            let runs = app.get("/v1/runs?limit=1").await.json();
            let id = runs["items"][0]["id"].as_str().expect("a run to show");
            command = command.replace("<run-id>", id);
        }
        let output = Command::new("bash")
            .arg("-c")
            .arg(format!("{command} -o /dev/null -w '%{{http_code}}'"))
            .env("CRONHOOK_TOKEN", token.as_deref().unwrap_or(""))
            .output()
            .unwrap();
        let status = String::from_utf8_lossy(&output.stdout).to_string();
        assert!(
            status.starts_with('2'),
            "README example answered {status:?}: {example}\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

/// `default-run` in Cargo.toml, if set.
fn default_run() -> Option<&'static str> {
    CARGO_TOML.lines().find_map(|line| {
        let value = line.trim().strip_prefix("default-run")?.trim();
        Some(value.strip_prefix('=')?.trim().trim_matches('"'))
    })
}

fn binary(name: &str) -> &'static str {
    match name {
        "cronhook" => env!("CARGO_BIN_EXE_cronhook"),
        other => panic!("the README runs a binary this package does not have: {other}"),
    }
}

#[test]
fn every_cargo_run_line_names_a_binary_that_runs() {
    let lines: Vec<String> = commands()
        .into_iter()
        .filter(|c| c.contains("cargo run"))
        .collect();
    assert!(lines.len() >= 4, "{lines:#?}");
    let dir = std::env::temp_dir().join(format!("cronhook-readme-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    for line in lines {
        let (before, after) = line.split_once("cargo run").unwrap();
        let after = after.split('>').next().unwrap();
        let (flags, args) = match after.split_once(" -- ") {
            Some((flags, args)) => (flags, args.split_whitespace().collect::<Vec<_>>()),
            None => (after, Vec::new()),
        };
        let flags: Vec<&str> = flags.split_whitespace().collect();
        let named = flags
            .iter()
            .position(|f| *f == "--bin")
            .map(|i| flags[i + 1]);
        let name = named.or(default_run()).unwrap_or_else(|| {
            panic!("`{line}` names no binary and Cargo.toml sets no default-run")
        });
        let exe = binary(name);
        // A line that points at a server of its own (DATABASE_URL=…) or
        // starts the service is only checked for its binary.
        if before.trim().is_empty() && !args.is_empty() {
            let output = Command::new(exe)
                .current_dir(&dir)
                .env_remove("DATABASE_URL")
                .args(&args)
                .output()
                .unwrap();
            assert!(
                output.status.success(),
                "`{line}` failed: {}",
                String::from_utf8_lossy(&output.stderr)
            );
            if args == ["openapi"] {
                let printed: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
                let committed: serde_json::Value =
                    serde_json::from_str(include_str!("../../openapi/openapi.json")).unwrap();
                assert_eq!(printed, committed, "`{line}` prints another document");
            }
        }
    }
    assert!(
        Path::new(&dir).join("cronhook.db").exists(),
        "migrate made the default store"
    );
    std::fs::remove_dir_all(&dir).ok();
}
