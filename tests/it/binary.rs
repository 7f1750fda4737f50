//! The binary as a user runs it: default SQLite file, `migrate`,
//! `openapi`, and a graceful stop on SIGTERM with a request in flight.

use crate::support as common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_cronhook");

fn temp_dir() -> std::path::PathBuf {
    common::temp_dir("cronhook-bin")
}

/// Starts `cronhook serve` with JSON logs and returns it with the address
/// it listens on and a channel of its later log lines.
fn serve(
    dir: &std::path::Path,
    extra_env: &[(&str, &str)],
) -> (Child, String, mpsc::Receiver<String>) {
    let mut command = Command::new(BIN);
    command
        .current_dir(dir)
        .env_remove("DATABASE_URL")
        .env("CRONHOOK_LISTEN", "127.0.0.1:0")
        .env("CRONHOOK_LOG_FORMAT", "json")
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    for (k, v) in extra_env {
        command.env(k, v);
    }
    let mut child = command.spawn().expect("cronhook starts");
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let addr = loop {
        let line = rx
            .recv_timeout(Duration::from_secs(60))
            .expect("a start-up log line");
        let log: serde_json::Value = serde_json::from_str(&line).expect("JSON log lines");
        if log["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("cronhook started"))
        {
            break log["listen"].as_str().unwrap().to_string();
        }
    };
    (child, addr, rx)
}

fn terminate(child: &Child) {
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

#[test]
fn serves_on_a_fresh_sqlite_file_and_stops_gracefully_on_sigterm() {
    let dir = temp_dir();
    let (mut child, addr, logs) = serve(&dir, &[]);
    assert!(
        dir.join("cronhook.db").exists(),
        "the default store is ./cronhook.db"
    );

    // A request whose body is still arriving when SIGTERM comes.
    let body = br#"{"id": "inflight", "trigger": {"type": "date", "run_at": "2030-01-01T00:00:00Z"}, "target": {"url": "http://example.com/"}}"#;
    let mut stream = TcpStream::connect(&addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    // `Expect: 100-continue`: the server says "continue" once the handler
    // reads the body, so the request is surely in service before SIGTERM.
    write!(
        stream,
        "POST /v1/jobs HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nexpect: 100-continue\r\nconnection: close\r\n\r\n",
        body.len()
    )
    .unwrap();
    let mut interim = Vec::new();
    let mut byte = [0u8; 1];
    while !interim.ends_with(b"\r\n\r\n") {
        stream.read_exact(&mut byte).expect("an interim answer");
        interim.push(byte[0]);
    }
    assert!(
        interim.starts_with(b"HTTP/1.1 100"),
        "{}",
        String::from_utf8_lossy(&interim)
    );
    stream.write_all(&body[..10]).unwrap();
    stream.flush().unwrap();

    terminate(&child);
    loop {
        let line = logs
            .recv_timeout(Duration::from_secs(30))
            .expect("a shutdown log line");
        if line.contains("shutting down") {
            break;
        }
    }
    stream.write_all(&body[10..]).unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    assert!(response.starts_with("HTTP/1.1 201"), "{response}");

    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(0), "exit code after SIGTERM");
    std::fs::remove_dir_all(&dir).ok();
}

/// `cronhook healthcheck` (a container's HEALTHCHECK) asks the service on
/// CRONHOOK_LISTEN for `/readyz`: 0 while it is ready, 1 once it is gone.
#[test]
fn healthcheck_exits_zero_while_the_service_is_ready() {
    let dir = temp_dir();
    let (mut child, addr, _logs) = serve(&dir, &[]);
    let check = |listen: &str| {
        Command::new(BIN)
            .current_dir(&dir)
            .arg("healthcheck")
            .env("CRONHOOK_LISTEN", listen)
            .output()
            .unwrap()
    };
    let ready = check(&addr);
    assert!(
        ready.status.success(),
        "{}",
        String::from_utf8_lossy(&ready.stderr)
    );
    assert!(String::from_utf8_lossy(&ready.stdout).contains(r#""status":"ok""#));
    // Listening on every address: asked on loopback.
    let port = addr.rsplit(':').next().unwrap();
    assert!(check(&format!("0.0.0.0:{port}")).status.success());
    terminate(&child);
    child.wait().unwrap();
    let gone = check(&addr);
    assert_eq!(gone.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&gone.stderr).contains("/readyz"),
        "{}",
        String::from_utf8_lossy(&gone.stderr)
    );
    std::fs::remove_dir_all(&dir).ok();
}

/// The deployment files call commands the binary has: the image's and the
/// compose file's health checks, the env file the compose file reads, and
/// a systemd unit that `systemd-analyze verify` accepts (where it is
/// installed) once it points at this binary.
#[test]
fn the_deployment_files_call_what_the_binary_has() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let read = |path: &str| std::fs::read_to_string(root.join(path)).unwrap();
    let dockerfile = read("Dockerfile");
    assert!(dockerfile.contains(r#"CMD ["cronhook", "healthcheck"]"#));
    assert!(dockerfile.contains("VOLUME /var/lib/cronhook"));
    let compose = read("deploy/compose.yaml");
    assert!(compose.contains(r#"test: ["CMD", "cronhook", "healthcheck"]"#));
    assert!(compose.contains("env_file: cronhook.env"));
    assert!(read("deploy/cronhook.env.example").contains("CRONHOOK_ROOT_TOKEN="));
    let help = Command::new(BIN)
        .args(["healthcheck", "--help"])
        .output()
        .unwrap();
    assert!(help.status.success());
    // Its own flag only, not the service's twenty.
    let help = String::from_utf8_lossy(&help.stdout);
    assert!(help.contains("--listen"), "{help}");
    assert!(!help.contains("--max-in-flight"), "{help}");
    let unit = read("deploy/cronhook.service");
    assert!(unit.contains("ExecStart=/usr/local/bin/cronhook serve"));
    if Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .is_ok()
    {
        let dir = temp_dir();
        let path = dir.join("cronhook.service");
        std::fs::write(
            &path,
            unit.replace("/usr/local/bin/cronhook serve", &format!("{BIN} serve")),
        )
        .unwrap();
        let verified = Command::new("systemd-analyze")
            .arg("verify")
            .arg(&path)
            .output()
            .unwrap();
        let said = String::from_utf8_lossy(&verified.stderr);
        assert!(
            verified.status.success() && said.trim().is_empty(),
            "{said}"
        );
        std::fs::remove_dir_all(&dir).ok();
    }
}

/// The start-up line's fields, for a service started with these variables.
fn started_with(extra_env: &[(&str, &str)]) -> serde_json::Value {
    let dir = temp_dir();
    let mut command = Command::new(BIN);
    command
        .current_dir(&dir)
        .env_remove("DATABASE_URL")
        .env("CRONHOOK_LISTEN", "127.0.0.1:0")
        .env("CRONHOOK_LOG_FORMAT", "json")
        .env("RUST_LOG", "info")
        .envs(extra_env.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    let mut child = command.spawn().expect("cronhook starts");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut started = serde_json::Value::Null;
    for line in lines.by_ref().map_while(Result::ok) {
        let log: serde_json::Value = serde_json::from_str(&line).expect("JSON log lines");
        if log["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("cronhook started"))
        {
            started = log;
            break;
        }
    }
    // Keep reading, so the shutdown lines find an open pipe.
    std::thread::spawn(move || lines.for_each(drop));
    terminate(&child);
    assert_eq!(child.wait().unwrap().code(), Some(0));
    std::fs::remove_dir_all(&dir).ok();
    started
}

#[test]
fn boolean_variables_take_the_usual_spellings_and_listen_takes_names() {
    for (on, off) in [("1", "0"), ("true", "false"), ("yes", "no"), ("on", "off")] {
        let started = started_with(&[
            ("CRONHOOK_NO_SCHEDULER", on),
            ("CRONHOOK_NO_DISPATCHER", off),
            ("CRONHOOK_LISTEN", "localhost:0"),
        ]);
        assert_eq!(started["scheduler"], false, "{on}: {started}");
        assert_eq!(started["dispatcher"], true, "{off}: {started}");
        let listen = started["listen"].as_str().unwrap();
        assert!(
            listen.starts_with("127.0.0.1:") || listen.starts_with("[::1]:"),
            "{listen}"
        );
    }
}

#[test]
fn text_logs_have_no_colours_when_not_at_a_terminal() {
    let dir = temp_dir();
    let mut child = Command::new(BIN)
        .current_dir(&dir)
        .env_remove("DATABASE_URL")
        .env("CRONHOOK_LISTEN", "127.0.0.1:0")
        .env("CRONHOOK_LOG_FORMAT", "text")
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .spawn()
        .expect("cronhook starts");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut seen = Vec::new();
    for line in lines.by_ref().map_while(Result::ok) {
        let started = line.contains("cronhook started");
        seen.push(line);
        if started {
            break;
        }
    }
    std::thread::spawn(move || lines.for_each(drop));
    terminate(&child);
    child.wait().unwrap();
    std::fs::remove_dir_all(&dir).ok();
    assert!(!seen.is_empty());
    for line in &seen {
        assert!(!line.contains('\u{1b}'), "ANSI escape in {line:?}");
    }
}

/// `serve`'s own flags are the service's: `--log-format json` after it
/// gives JSON lines.
#[test]
fn serve_takes_the_service_s_flags_after_it() {
    let dir = temp_dir();
    let mut child = Command::new(BIN)
        .current_dir(&dir)
        .env_remove("DATABASE_URL")
        .env_remove("CRONHOOK_LOG_FORMAT")
        .env_remove("CRONHOOK_LISTEN")
        .env("RUST_LOG", "info")
        .args(["serve", "--log-format", "json", "--listen", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .spawn()
        .expect("cronhook starts");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let started = lines
        .by_ref()
        .map_while(Result::ok)
        .find(|line| line.contains("cronhook started"))
        .expect("a start-up line");
    std::thread::spawn(move || lines.for_each(drop));
    terminate(&child);
    child.wait().unwrap();
    std::fs::remove_dir_all(&dir).ok();
    let log: serde_json::Value = serde_json::from_str(&started).expect("a JSON line");
    assert!(
        log["listen"].as_str().unwrap().starts_with("127.0.0.1:"),
        "{log}"
    );
}

#[test]
fn migrate_applies_migrations_and_exits() {
    let dir = temp_dir();
    let status = Command::new(BIN)
        .current_dir(&dir)
        .env_remove("DATABASE_URL")
        .args(["migrate", "--database-url", "sqlite://migrated.db"])
        .status()
        .unwrap();
    assert!(status.success());
    assert!(dir.join("migrated.db").exists());
    std::fs::remove_dir_all(&dir).ok();
}

#[tokio::test]
async fn migrate_on_postgres() {
    let db = common::TestDb::postgres().await;
    let status = Command::new(BIN)
        .env("DATABASE_URL", &db.url)
        .env("CRONHOOK_ENCRYPTION_KEY", common::TEST_KEY)
        .arg("migrate")
        .status()
        .unwrap();
    assert!(status.success());
    use sqlx::Connection;
    let mut conn = sqlx::PgConnection::connect(&db.url).await.unwrap();
    let tables: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM information_schema.tables WHERE table_name IN ('jobs', 'runs', 'attempts')",
    )
    .fetch_one(&mut conn)
    .await
    .unwrap();
    assert_eq!(tables, 3);
}

#[test]
fn openapi_prints_the_committed_document() {
    let output = Command::new(BIN).arg("openapi").output().unwrap();
    assert!(output.status.success());
    let printed = String::from_utf8(output.stdout).unwrap();
    assert_eq!(
        printed.trim(),
        include_str!("../../openapi/openapi.json").trim()
    );
}

#[test]
fn openapi_into_a_pipe_closed_early_ends_quietly() {
    // As `cronhook openapi | head -c 1` does: the reader goes away.
    let mut child = Command::new(BIN)
        .arg("openapi")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = [0u8; 1];
    child.stdout.take().unwrap().read_exact(&mut first).unwrap();
    assert_eq!(&first, b"{");
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn a_bad_database_url_is_a_clear_error() {
    let output = Command::new(BIN)
        .env_remove("DATABASE_URL")
        .args(["migrate", "--database-url", "mysql://x"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("expected a postgres:// or sqlite:// URL"),
        "{stderr}"
    );
}

/// What an operator alerts on: a run that failed is one WARN line with the
/// job, the run, the attempts and the error in words (no Rust debug text).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_run_is_a_warn_line_with_its_error_in_words() {
    use common::receiver::{Answer, Receiver};
    let receiver = Receiver::start().await;
    receiver.script("/gone", [Answer::Status(410)]);
    let dir = temp_dir();
    let (mut child, addr, logs) = serve(&dir, &[]);
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    let created = common::client()
        .post(format!("http://{addr}/v1/jobs"))
        .json(&serde_json::json!({
            "id": "doomed",
            "trigger": {"type": "date", "run_at": now},
            "target": {"url": receiver.url("/gone")}
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    // A probe and a scrape are no INFO lines; a run that succeeds is one.
    for path in ["/healthz", "/metrics"] {
        let probed = common::client()
            .get(format!("http://{addr}{path}"))
            .send()
            .await
            .unwrap();
        assert_eq!(probed.status(), 200, "{path}");
    }
    let fine = common::client()
        .post(format!("http://{addr}/v1/jobs"))
        .json(&serde_json::json!({
            "id": "fine",
            "trigger": {"type": "date", "run_at": now},
            "target": {"url": receiver.url("/fine")}
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(fine.status(), 201);
    let failed = tokio::task::spawn_blocking(move || {
        let mut seen = Vec::new();
        let (mut failed, mut succeeded) = (None, None);
        while failed.is_none() || succeeded.is_none() {
            let line = logs
                .recv_timeout(Duration::from_secs(60))
                .unwrap_or_else(|_| {
                    panic!("no 'run failed' and 'run succeeded' lines in {seen:#?}")
                });
            let log: serde_json::Value = serde_json::from_str(&line).unwrap();
            match log["message"].as_str() {
                Some("run failed") => failed = Some(log),
                Some("run succeeded") => succeeded = Some(log),
                _ => seen.push(line),
            }
        }
        (failed.unwrap(), succeeded.unwrap(), seen, logs)
    })
    .await
    .unwrap();
    let (log, succeeded, before, logs) = failed;
    assert_eq!(succeeded["level"], "INFO", "{succeeded}");
    assert_eq!(succeeded["job_id"], "fine", "{succeeded}");
    assert_eq!(succeeded["status"], "succeeded", "{succeeded}");
    assert!(succeeded["lateness_ms"].is_number(), "{succeeded}");
    assert!(succeeded["duration_ms"].is_number(), "{succeeded}");
    for line in &before {
        let quiet = line.contains("\"/healthz\"") || line.contains("\"/metrics\"");
        assert!(
            !(quiet && line.contains("\"INFO\"")),
            "a probe or scrape logged at INFO: {line}"
        );
    }
    assert!(
        before
            .iter()
            .any(|l| l.contains("\"/v1/jobs\"") && l.contains("\"INFO\"")),
        "API requests are still INFO lines: {before:#?}"
    );
    assert_eq!(log["level"], "WARN", "{log}");
    assert_eq!(log["job_id"], "doomed", "{log}");
    assert_eq!(log["attempts"], 1, "{log}");
    assert_eq!(log["error"], "the target answered 410", "{log}");
    assert!(
        log["run_id"].as_str().is_some_and(|id| id.len() == 36),
        "{log}"
    );
    for line in before.iter().chain([&log.to_string()]) {
        for debug in ["Retry {", "Some(", "Failed,", "Outcome"] {
            assert!(!line.contains(debug), "a Rust debug string in {line}");
        }
    }
    // Keep reading, so the shutdown lines find an open pipe.
    std::thread::spawn(move || logs.iter().for_each(drop));
    terminate(&child);
    assert_eq!(child.wait().unwrap().code(), Some(0));
    std::fs::remove_dir_all(&dir).ok();
}
