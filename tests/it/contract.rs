//! The API contract, checked by tools that are not ours, against the real
//! service on each store: Schemathesis fuzzes every operation of
//! `openapi/openapi.json` with `--checks all`, and a Python client
//! generated from the same document by openapi-python-client runs a user's
//! script. Both come from PyPI into a virtual environment that
//! `scripts/test` makes under `target/` (or `CRONHOOK_CONTRACT_VENV`).

use crate::support as common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use common::{Backend, TestApp, TestDb};

/// Examples per operation and phase: bounded for the suite's time.
const EXAMPLES: &str = "100";
/// A fixed seed: CI runs the same cases every time (run `st` by hand with
/// other seeds to look further).
const SEED: &str = "20261202";

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn venv() -> PathBuf {
    let venv = std::env::var_os("CRONHOOK_CONTRACT_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("target/contract-venv"));
    for tool in ["st", "openapi-python-client", "python"] {
        assert!(
            venv.join("bin").join(tool).exists(),
            "{tool} is missing from {}: run the tests with `bash scripts/test`, \
             which installs Schemathesis and openapi-python-client there",
            venv.display()
        );
    }
    venv
}

fn report(what: &str, output: &Output) -> String {
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    // The summary and the failures are at the end.
    let tail: String = text
        .lines()
        .rev()
        .take(120)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect::<Vec<_>>()
        .join("\n");
    format!("{what} failed ({}):\n{tail}", output.status)
}

/// The service under test: no dispatcher, so that fuzzed targets are never
/// called (runs stay pending, which the API answers all the same).
async fn service(backend: Backend) -> TestApp {
    let db = TestDb::new(backend).await;
    let mut config = common::test_config(&db.url);
    config.no_dispatcher = true;
    TestApp::spawn_with(db, config).await
}

async fn schemathesis_finds_no_failure_of_any_kind(backend: Backend) {
    let venv = venv();
    let app = service(backend).await;
    let base = app.base.clone();
    // With a token, as a deployed service runs: every operation behind one
    // is also tried without it (Schemathesis's `ignored_auth` check).
    let token = app
        .make_token(cronhook::domain::auth::Role::Root, "default")
        .await;
    let authorization = format!("Authorization: Bearer {token}");
    let output = tokio::task::spawn_blocking(move || {
        Command::new(venv.join("bin/st"))
            .current_dir(root())
            .env("NO_COLOR", "1")
            .args(["--config-file", "tests/contract/schemathesis.toml", "run"])
            .arg("openapi/openapi.json")
            .args(["--url", &base, "--checks", "all"])
            .args(["--header", &authorization])
            .args(["--max-examples", EXAMPLES, "--seed", SEED])
            .output()
            .expect("st runs")
    })
    .await
    .unwrap();
    assert!(
        output.status.success(),
        "{}",
        report("schemathesis", &output)
    );
}

/// Generates the client once per test process.
fn client_package() -> &'static Path {
    static CLIENT: OnceLock<PathBuf> = OnceLock::new();
    CLIENT.get_or_init(|| {
        let out = root().join("target/contract-client");
        let _ = std::fs::remove_dir_all(&out);
        let output = Command::new(venv().join("bin/openapi-python-client"))
            .current_dir(root())
            .args(["generate", "--path", "openapi/openapi.json"])
            .args(["--config", "tests/contract/client-config.yml"])
            .arg("--output-path")
            .arg(&out)
            .output()
            .expect("openapi-python-client runs");
        assert!(
            output.status.success() && out.join("cronhook_client").exists(),
            "{}",
            report("openapi-python-client generate", &output)
        );
        out
    })
}

async fn a_generated_python_client_parses_every_answer(backend: Backend) {
    let client = client_package().to_path_buf();
    let python = venv().join("bin/python");
    // With its dispatcher: the script waits for a run's attempt.
    let app = TestApp::spawn(backend).await;
    let base = app.base.clone();
    let output = tokio::task::spawn_blocking(move || {
        Command::new(python)
            .current_dir(root())
            .env("PYTHONPATH", &client)
            .arg("tests/contract/client_check.py")
            .arg(&base)
            .output()
            .expect("python runs")
    })
    .await
    .unwrap();
    assert!(
        output.status.success(),
        "{}",
        report("the generated client's script", &output)
    );
}

store_tests!(
    schemathesis_finds_no_failure_of_any_kind,
    a_generated_python_client_parses_every_answer,
);
