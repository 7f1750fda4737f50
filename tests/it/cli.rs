//! The operator's command line (DESIGN.md §11.9) against a running
//! service, on both stores, as a user runs it: a real crontab imported,
//! applied and pruned; jobs listed, shown, paused, resumed, run, deleted;
//! the bundle exported as the API exports it; refusals said and exit 1.

use crate::support as common;

use std::io::Write;
use std::process::{Command, Output, Stdio};

use common::{Backend, TestApp};
use cronhook::domain::auth::Role;
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_cronhook");
const CRONTAB: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/crontab");

/// Runs `cronhook args…` against `app` with `token`, `stdin` as input.
async fn cronhook(app: &TestApp, token: &str, args: &[&str], stdin: Option<&str>) -> Output {
    let (base, token) = (app.base.clone(), token.to_string());
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    let stdin = stdin.map(str::to_string);
    tokio::task::spawn_blocking(move || {
        let mut child = Command::new(BIN)
            .args(&args)
            .env("CRONHOOK_URL", base)
            .env("CRONHOOK_TOKEN", token)
            .env_remove("DATABASE_URL")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("cronhook starts");
        if let Some(text) = stdin {
            child
                .stdin
                .take()
                .unwrap()
                .write_all(text.as_bytes())
                .unwrap();
        }
        drop(child.stdin.take());
        child.wait_with_output().expect("cronhook ends")
    })
    .await
    .unwrap()
}

fn ok(output: &Output) -> String {
    assert!(
        output.status.success(),
        "exit {:?}: {}",
        output.status.code(),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout.clone()).unwrap()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

async fn an_operator_imports_a_crontab_and_runs_jobs_from_the_command_line(backend: Backend) {
    let mut app = TestApp::spawn(backend).await;
    let root = app.make_token(Role::Root, "default").await;
    app.token = Some(root.clone());

    // The crontab becomes a bundle on stdout; what it leaves out, stderr.
    let imported = cronhook(
        &app,
        &root,
        &["import", "crontab", CRONTAB, "--owner", "app-01"],
        None,
    )
    .await;
    let bundle = ok(&imported);
    let report = stderr(&imported);
    assert!(report.contains("line 25: not mapped: @reboot"), "{report}");
    assert!(report.contains("14 jobs made"), "{report}");
    assert!(bundle.starts_with("apiVersion: cronhook/v1"), "{bundle}");

    // A dry run prints the plan and writes nothing; then it is applied.
    let planned = cronhook(
        &app,
        &root,
        &["apply", "-f", "-", "--dry-run", "--prune-owner", "app-01"],
        Some(&bundle),
    )
    .await;
    let table = ok(&planned);
    assert!(table.contains("create  nightly-database-backup"), "{table}");
    assert!(
        stderr(&planned).contains("14 to create, 0 to update, 0 to delete, 0 unchanged (dry run")
    );
    assert_eq!(
        app.get("/v1/jobs").await.json()["items"],
        Value::Array(Vec::new())
    );
    let applied = cronhook(
        &app,
        &root,
        &["apply", "-f", "-", "--prune-owner", "app-01", "-o", "json"],
        Some(&bundle),
    )
    .await;
    let plan: Value = serde_json::from_str(&ok(&applied)).unwrap();
    assert_eq!(plan["create"].as_array().unwrap().len(), 14);

    // Jobs, every page, by label; as a table and as JSON.
    let listed = ok(&cronhook(
        &app,
        &root,
        &[
            "jobs",
            "list",
            "-l",
            "cronhook.io/owner=app-01",
            "-o",
            "json",
        ],
        None,
    )
    .await);
    let jobs: Value = serde_json::from_str(&listed).unwrap();
    assert_eq!(jobs.as_array().unwrap().len(), 14);
    let table = ok(&cronhook(&app, &root, &["jobs", "list"], None).await);
    let header = table.lines().next().unwrap();
    for column in ["ID", "STATE", "NEXT RUN", "TRIGGER", "LABELS"] {
        assert!(header.contains(column), "{table}");
    }
    assert!(
        table.contains("cron 0 7 * * mon-fri Europe/Berlin"),
        "{table}"
    );

    // Pause with a reason (it reaches the audit trail), resume, run, delete.
    let id = "nightly-database-backup";
    ok(&cronhook(
        &app,
        &root,
        &["jobs", "pause", id, "--reason", "db migration"],
        None,
    )
    .await);
    let shown = ok(&cronhook(&app, &root, &["jobs", "get", id, "-o", "yaml"], None).await);
    assert!(shown.contains("state: paused"), "{shown}");
    assert!(shown.contains("pause_reason: db migration"), "{shown}");
    let trail = app.get(&format!("/v1/audit?target=job/{id}")).await.json();
    assert_eq!(trail["items"][0]["action"], "job.paused");
    assert_eq!(trail["items"][0]["reason"], "db migration");
    ok(&cronhook(&app, &root, &["jobs", "resume", id], None).await);
    assert_eq!(
        app.get(&format!("/v1/jobs/{id}")).await.json()["state"],
        "scheduled"
    );
    // A monitor-only job is not run by hand: the refusal is said, exit 1.
    let refused = cronhook(&app, &root, &["jobs", "run", id], None).await;
    assert_eq!(refused.status.code(), Some(1));
    assert!(stderr(&refused).contains("409"), "{}", stderr(&refused));
    ok(&cronhook(&app, &root, &["jobs", "delete", "rotate-logs"], None).await);
    let missing = cronhook(&app, &root, &["jobs", "get", "rotate-logs"], None).await;
    assert_eq!(missing.status.code(), Some(1));
    assert!(
        stderr(&missing).contains("404 Not Found: no job with id \"rotate-logs\""),
        "{}",
        stderr(&missing)
    );

    // The export is the API's; applied again with a prune, the job
    // deleted by hand comes back and nothing else changes.
    let exported = ok(&cronhook(&app, &root, &["export"], None).await);
    assert_eq!(exported, app.get("/v1/export?format=yaml").await.text);
    let again = cronhook(
        &app,
        &root,
        &["apply", "-f", "-", "--prune-owner", "app-01", "-o", "json"],
        Some(&bundle),
    )
    .await;
    let plan: Value = serde_json::from_str(&ok(&again)).unwrap();
    assert_eq!(plan["create"], serde_json::json!(["rotate-logs"]));
    assert_eq!(plan["unchanged"].as_array().unwrap().len(), 13);

    // A job from a file; a bad one is refused by field.
    let job = "id: by-file\ntrigger: {type: interval, every_s: 60}\ntarget: {url: \"https://example.com/hook\"}\n";
    ok(&cronhook(&app, &root, &["jobs", "create", "-f", "-"], Some(job)).await);
    let bad = cronhook(&app, &root, &["jobs", "create", "-f", "-"], Some("id: bad\ntrigger: {type: cron, expr: \"61 * * * *\"}\ntarget: {url: \"https://example.com\"}\n")).await;
    assert_eq!(bad.status.code(), Some(1));
    assert!(
        stderr(&bad).contains("422 Unprocessable Entity: trigger.expr:"),
        "{}",
        stderr(&bad)
    );
    // No token: the service says why.
    let anonymous = cronhook(&app, "", &["jobs", "list"], None).await;
    assert_eq!(anonymous.status.code(), Some(1));
    assert!(stderr(&anonymous).contains("401"), "{}", stderr(&anonymous));
}

/// The README's snippet that writes APScheduler's jobs as JSON.
fn readme_snippet() -> String {
    let readme = include_str!("../../README.md");
    let start = readme
        .find("```python\nimport json\njson.dump(")
        .expect("the README has the APScheduler snippet");
    let body = &readme[start + "```python\n".len()..];
    body[..body.find("```").unwrap()].to_string()
}

/// APScheduler 3.11 itself, from PyPI (scripts/test installs it).
fn apscheduler_python() -> std::path::PathBuf {
    let venv = std::env::var_os("CRONHOOK_APSCHEDULER_VENV")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| {
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/apscheduler-venv")
        });
    let python = venv.join("bin/python");
    assert!(
        python.exists(),
        "{} is missing: run the tests with `bash scripts/test`, which installs \
         tests/apscheduler/requirements.txt there",
        python.display()
    );
    python
}

async fn an_apscheduler_program_s_jobs_move_with_their_policies(backend: Backend) {
    let mut app = TestApp::spawn(backend).await;
    let root = app.make_token(Role::Root, "default").await;
    app.token = Some(root.clone());
    let dir = common::temp_dir("cronhook-aps");
    let program = format!(
        r#"
from apscheduler.schedulers.background import BackgroundScheduler
def send_report(): pass
def sync(): pass
scheduler = BackgroundScheduler(timezone="UTC")
scheduler.add_job(send_report, "cron", hour="*/4", id="report", misfire_grace_time=900,
                  coalesce=True, max_instances=2, timezone="Europe/Berlin")
scheduler.add_job(sync, "interval", minutes=30, id="sync", coalesce=False)
scheduler.add_job(sync, "cron", day_of_week="0-4", hour=9, minute=30, id="weekdays")
scheduler.add_job(sync, "cron", day="3rd fri", id="third-friday")
scheduler.add_job(sync, "cron", day="last", id="month-end")
scheduler.add_job(sync, "date", run_date="2030-01-01 10:00:00", id="once")
scheduler.add_job(sync, "cron", week="1", id="first-week")
scheduler.start(paused=True)
scheduler.pause_job("month-end")
{snippet}
scheduler.shutdown()
"#,
        snippet = readme_snippet()
    );
    let python = apscheduler_python();
    let written = std::process::Command::new(python)
        .arg("-c")
        .arg(&program)
        .current_dir(&dir)
        .output()
        .expect("python runs");
    assert!(
        written.status.success(),
        "{}",
        String::from_utf8_lossy(&written.stderr)
    );
    let jobs_json = dir.join("jobs.json");

    let imported = cronhook(
        &app,
        &root,
        &[
            "import",
            "apscheduler",
            jobs_json.to_str().unwrap(),
            "--url-template",
            "https://worker.example.com/jobs/{id}",
            "--owner",
            "billing",
        ],
        None,
    )
    .await;
    let bundle = ok(&imported);
    let report = stderr(&imported);
    assert!(report.contains("not mapped: week:"), "{report}");
    assert!(report.contains("6 jobs made"), "{report}");
    ok(&cronhook(
        &app,
        &root,
        &["apply", "-f", "-", "--prune-owner", "billing"],
        Some(&bundle),
    )
    .await);

    let job = |id: &'static str| {
        let app = &app;
        async move { app.get(&format!("/v1/jobs/{id}")).await.json() }
    };
    let report = job("report").await;
    assert_eq!(report["trigger"]["expr"], "0 */4 * * *");
    assert_eq!(report["trigger"]["timezone"], "Europe/Berlin");
    assert_eq!(report["misfire_grace_s"], 900);
    assert_eq!(report["max_instances"], 2);
    assert_eq!(
        report["target"]["url"],
        "https://worker.example.com/jobs/report"
    );
    assert_eq!(report["labels"]["cronhook.io/owner"], "billing");
    let sync = job("sync").await;
    assert_eq!(sync["trigger"]["every_s"], 1800);
    assert_eq!(sync["coalesce"], false);
    assert_eq!(job("weekdays").await["trigger"]["expr"], "30 9 * * mon-fri");
    assert_eq!(
        job("third-friday").await["trigger"]["expr"],
        "0 0 * * fri#3"
    );
    let month_end = job("month-end").await;
    assert_eq!(month_end["trigger"]["expr"], "0 0 L * *");
    assert_eq!(month_end["state"], "paused");
    let once = job("once").await;
    assert_eq!(once["trigger"]["run_at"], "2030-01-01T10:00:00Z");
    assert_eq!(once["next_run_at"], "2030-01-01T10:00:00Z");
    assert_eq!(app.get("/v1/jobs/first-week").await.status, 404);
}

store_tests!(
    an_operator_imports_a_crontab_and_runs_jobs_from_the_command_line,
    an_apscheduler_program_s_jobs_move_with_their_policies,
);
