//! `examples/receivers/`: the Python, Node and Rust receivers a user
//! copies, each run as a real process against the service, verifying a
//! job with a JSON body, one with a string body and one with none, and
//! refusing a request signed with another secret. Their libraries come
//! from PyPI, npm and crates.io; `scripts/test` installs the first two.

use crate::support as common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{Backend, TestApp, eventually};
use serde_json::{Value, json};

const DEADLINE: Duration = Duration::from_secs(60);
const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const OTHER: &str = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";

fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/receivers")
}

/// A receiver process and the lines it printed.
struct ReceiverProcess {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
    url: String,
}

impl ReceiverProcess {
    fn start(mut command: Command) -> Self {
        let mut child = command
            .env("WEBHOOK_SECRET", SECRET)
            .env("PORT", "0")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("{command:?} starts: {e}"));
        let stdout = child.stdout.take().unwrap();
        let lines = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let kept = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(addr) = line.strip_prefix("listening on ") {
                    let _ = tx.send(addr.to_string());
                }
                kept.lock().unwrap().push(line);
            }
        });
        let addr = rx
            .recv_timeout(DEADLINE)
            .unwrap_or_else(|_| panic!("{command:?} says where it listens"));
        Self {
            child,
            lines,
            url: format!("http://{addr}"),
        }
    }

    fn printed(&self, prefix: &str) -> Option<String> {
        let lines = self.lines.lock().unwrap();
        lines.iter().find(|l| l.starts_with(prefix)).cloned()
    }
}

impl Drop for ReceiverProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn python() -> Command {
    let venv = std::env::var_os("CRONHOOK_RECEIVERS_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target/receivers-venv"));
    let python = venv.join("bin/python");
    assert!(
        python.exists(),
        "{} is missing: run the tests with `bash scripts/test`, which installs \
         examples/receivers/python/requirements.txt there",
        python.display()
    );
    let mut command = Command::new(python);
    command.arg(examples().join("python/receiver.py"));
    command
}

fn node() -> Command {
    let dir = examples().join("node");
    assert!(
        dir.join("node_modules/standardwebhooks").exists(),
        "examples/receivers/node has no node_modules: run the tests with \
         `bash scripts/test`, which runs `npm ci` there"
    );
    let mut command = Command::new("node");
    command.current_dir(&dir).arg("receiver.mjs");
    command
}

/// `cargo test --all-targets` (the test command) builds the example beside
/// this test binary; a narrower run builds it here.
fn rust() -> Command {
    let exe = std::env::current_exe().unwrap();
    let built = exe
        .parent()
        .and_then(Path::parent)
        .map(|dir| dir.join("examples/receiver"))
        .unwrap();
    if !built.exists() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = Command::new(cargo)
            .args(["build", "--example", "receiver"])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .status()
            .expect("cargo runs");
        assert!(status.success(), "the Rust receiver builds");
    }
    Command::new(built)
}

fn job(id: &str, target: Value, secret: &str) -> Value {
    json!({
        "id": id,
        "trigger": {"type": "date", "run_at": chrono::Utc::now().to_rfc3339()},
        "target": target,
        "secret": secret,
        "retry": {"max_attempts": 1},
    })
}

/// The job's one run once it ended, with its attempts.
async fn finished(app: &TestApp, id: &str) -> Value {
    eventually(DEADLINE, "the job's run ended", || async {
        let runs = app.get(&format!("/v1/jobs/{id}/runs")).await.json();
        let run = runs["items"].as_array()?.first()?.clone();
        let run = app
            .get(&format!("/v1/runs/{}", run["id"].as_str()?))
            .await
            .json();
        matches!(run["status"].as_str(), Some("succeeded" | "failed")).then_some(run)
    })
    .await
}

async fn verifies_every_body_kind(backend: Backend, receiver: ReceiverProcess) {
    let app = TestApp::spawn(backend).await;
    let url = &receiver.url;
    let jobs = [
        (
            "json",
            json!({"url": format!("{url}/json"), "body": {"report": "daily"}}),
        ),
        (
            "text",
            json!({"url": format!("{url}/text"), "body": "plain words"}),
        ),
        (
            "empty",
            json!({"url": format!("{url}/empty"), "method": "GET"}),
        ),
    ];
    for (kind, target) in &jobs {
        app.create_job(job(kind, target.clone(), SECRET)).await;
    }
    app.create_job(job(
        "forged",
        json!({"url": format!("{url}/forged")}),
        OTHER,
    ))
    .await;
    for (kind, _) in &jobs {
        let run = finished(&app, kind).await;
        assert_eq!(run["status"], "succeeded", "{kind}: {run}");
        assert_eq!(run["attempts"][0]["status_code"], 204, "{run}");
        let id = run["id"].as_str().unwrap();
        assert_eq!(
            receiver.printed(&format!("verified {id}")).as_deref(),
            Some(format!("verified {id} {kind}").as_str())
        );
    }
    let forged = finished(&app, "forged").await;
    assert_eq!(forged["status"], "failed", "{forged}");
    assert_eq!(forged["attempts"][0]["status_code"], 401, "{forged}");
    let id = forged["id"].as_str().unwrap();
    assert!(receiver.printed(&format!("rejected {id}")).is_some());
    assert!(receiver.printed(&format!("verified {id}")).is_none());
}

async fn the_python_receiver_verifies_json_text_and_empty_bodies(backend: Backend) {
    verifies_every_body_kind(backend, ReceiverProcess::start(python())).await;
}

async fn the_node_receiver_verifies_json_text_and_empty_bodies(backend: Backend) {
    verifies_every_body_kind(backend, ReceiverProcess::start(node())).await;
}

async fn the_rust_receiver_verifies_json_text_and_empty_bodies(backend: Backend) {
    verifies_every_body_kind(backend, ReceiverProcess::start(rust())).await;
}

store_tests!(
    the_python_receiver_verifies_json_text_and_empty_bodies,
    the_node_receiver_verifies_json_text_and_empty_bodies,
    the_rust_receiver_verifies_json_text_and_empty_bodies,
);
