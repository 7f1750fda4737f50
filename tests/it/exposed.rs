//! The binary on a non-loopback address, as an operator runs it
//! (DESIGN.md §8): it refuses to start open, `cronhook token …` and
//! `CRONHOOK_ROOT_TOKEN` make the tokens it then requires, its targets
//! default to public-only, and its key guards the stored secrets.

use crate::support as common;

use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::process::{BIN, ServiceProcess};
use common::{Backend, TestDb, eventually};
use serde_json::json;

fn temp_dir() -> std::path::PathBuf {
    common::temp_dir("cronhook-exposed")
}

/// Runs `cronhook args…` to its end (60 s at most: a command that should
/// fail must not start serving instead).
fn run(dir: &std::path::Path, database_url: &str, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut child = Command::new(BIN)
        .current_dir(dir)
        .args(args)
        .env("DATABASE_URL", database_url)
        .env("CRONHOOK_LOG_FORMAT", "json")
        .env("CRONHOOK_ENCRYPTION_KEY", common::TEST_KEY)
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("cronhook runs");
    let started = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > Duration::from_secs(60) {
            child.kill().unwrap();
            panic!("cronhook {args:?} did not exit");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

async fn status(base: &str, path: &str, token: Option<&str>) -> u16 {
    let mut request = common::client().get(format!("{base}{path}"));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    request.send().await.unwrap().status().as_u16()
}

async fn an_open_non_loopback_service_refuses_to_start(backend: Backend) {
    let db = TestDb::new(backend).await;
    let dir = temp_dir();
    let listen = [("CRONHOOK_LISTEN", "0.0.0.0:0")];
    let refused = run(&dir, &db.url, &["serve"], &listen);
    assert!(!refused.status.success());
    let why = stderr(&refused);
    assert!(why.contains("needs an API token first"), "{why}");
    assert!(why.contains("cronhook token create --role root"), "{why}");
    let refused = run(&dir, &db.url, &["serve", "--auth", "none"], &listen);
    assert!(!refused.status.success());
    assert!(
        stderr(&refused).contains("--auth none is refused"),
        "{}",
        stderr(&refused)
    );
    std::fs::remove_dir_all(&dir).ok();
}

async fn tokens_made_on_the_command_line_open_it(backend: Backend) {
    let db = TestDb::new(backend).await;
    let dir = temp_dir();
    let made = run(
        &dir,
        &db.url,
        &["token", "create", "--role", "root", "--name", "ops"],
        &[],
    );
    assert!(made.status.success(), "{}", stderr(&made));
    let root = stdout(&made).trim().to_string();
    assert!(root.starts_with("chk_"), "{root}");
    assert!(
        stderr(&made).contains("it is shown only now"),
        "{}",
        stderr(&made)
    );
    let reader = stdout(&run(
        &dir,
        &db.url,
        &["token", "create", "--role", "read", "--tenant", "team-a"],
        &[],
    ))
    .trim()
    .to_string();
    let listed = stdout(&run(&dir, &db.url, &["token", "list"], &[]));
    assert!(
        listed.contains(" root ") && listed.contains(" ops") && listed.contains("team-a"),
        "{listed}"
    );
    assert!(!listed.contains(&root[4..]), "{listed}");
    // The columns line up: each row's role starts under the header's.
    let lines: Vec<&str> = listed.lines().collect();
    let column = lines[0].find("role").unwrap();
    for line in &lines[1..] {
        let role = &line[column..column + 4];
        assert!(role == "root" || role == "read", "{listed}");
    }
    let bad = run(&dir, &db.url, &["token", "create", "--role", "admin"], &[]);
    assert!(!bad.status.success());

    let mut service = ServiceProcess::start(&db.url, &[], &[("CRONHOOK_LISTEN", "0.0.0.0:0")]);
    let base = service.base.replace("0.0.0.0", "127.0.0.1");
    assert_eq!(status(&base, "/v1/jobs", None).await, 401);
    assert_eq!(status(&base, "/v1/jobs", Some(&root)).await, 200);
    assert_eq!(status(&base, "/v1/jobs", Some(&reader)).await, 200);
    assert_eq!(status(&base, "/healthz", None).await, 200);

    // Off loopback, targets default to public-only.
    let refused = common::client()
        .post(format!("{base}/v1/jobs"))
        .bearer_auth(&root)
        .json(&json!({"trigger": {"type": "interval", "every_s": 60},
                      "target": {"url": "http://127.0.0.1:9/internal"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status().as_u16(), 422);
    let detail = refused.text().await.unwrap();
    assert!(
        detail.contains("refused by --targets public-only"),
        "{detail}"
    );

    // Revoked on the command line: refused within a second or so.
    let id = listed
        .lines()
        .find(|l| l.contains("team-a"))
        .and_then(|l| l.split_whitespace().next())
        .unwrap()
        .to_string();
    let revoked = run(&dir, &db.url, &["token", "revoke", &id], &[]);
    assert!(revoked.status.success(), "{}", stderr(&revoked));
    eventually(
        Duration::from_secs(30),
        "the revoked token refused",
        || async { (status(&base, "/v1/jobs", Some(&reader)).await == 401).then_some(()) },
    )
    .await;
    let again = run(&dir, &db.url, &["token", "revoke", &id], &[]);
    assert!(!again.status.success());
    assert!(
        stderr(&again).contains("no unrevoked token"),
        "{}",
        stderr(&again)
    );
    service.stop();
    std::fs::remove_dir_all(&dir).ok();
}

async fn a_container_starts_in_one_command_with_its_root_token(backend: Backend) {
    let db = TestDb::new(backend).await;
    let dir = temp_dir();
    let generate = || {
        stdout(&run(&dir, &db.url, &["token", "generate"], &[]))
            .trim()
            .to_string()
    };
    let (first, second) = (generate(), generate());
    assert_ne!(first, second);

    let mut service = ServiceProcess::start(
        &db.url,
        &[],
        &[
            ("CRONHOOK_LISTEN", "0.0.0.0:0"),
            ("CRONHOOK_ROOT_TOKEN", &first),
        ],
    );
    let base = service.base.replace("0.0.0.0", "127.0.0.1");
    assert_eq!(status(&base, "/v1/tokens", Some(&first)).await, 200);
    assert_eq!(status(&base, "/v1/jobs", None).await, 401);
    service.stop();

    // A new value rotates it: the old one is revoked.
    let mut service = ServiceProcess::start(
        &db.url,
        &[],
        &[
            ("CRONHOOK_LISTEN", "0.0.0.0:0"),
            ("CRONHOOK_ROOT_TOKEN", &second),
        ],
    );
    let base = service.base.replace("0.0.0.0", "127.0.0.1");
    assert_eq!(status(&base, "/v1/jobs", Some(&second)).await, 200);
    assert_eq!(status(&base, "/v1/jobs", Some(&first)).await, 401);
    service.stop();

    // From a file (a mounted secret), trailing newline and all.
    let third = generate();
    let file = dir.join("root-token");
    std::fs::write(&file, format!("{third}\n")).unwrap();
    let file = file.to_str().unwrap();
    let mut service = ServiceProcess::start(
        &db.url,
        &["--root-token-file", file],
        &[("CRONHOOK_LISTEN", "0.0.0.0:0")],
    );
    let base = service.base.replace("0.0.0.0", "127.0.0.1");
    assert_eq!(status(&base, "/v1/jobs", Some(&third)).await, 200);
    service.stop();
    // Never on the command line, where the process list shows it.
    let listed = run(&dir, &db.url, &["serve", "--root-token", &third], &[]);
    assert!(!listed.status.success());
    assert!(
        stderr(&listed).contains("unexpected argument '--root-token'"),
        "{}",
        stderr(&listed)
    );

    let bad = run(
        &dir,
        &db.url,
        &["serve"],
        &[
            ("CRONHOOK_LISTEN", "127.0.0.1:0"),
            ("CRONHOOK_ROOT_TOKEN", "hunter2"),
        ],
    );
    assert!(!bad.status.success());
    assert!(
        stderr(&bad).contains("CRONHOOK_ROOT_TOKEN must be a token"),
        "{}",
        stderr(&bad)
    );
    std::fs::remove_dir_all(&dir).ok();
}

async fn another_key_refuses_to_start(backend: Backend) {
    let db = TestDb::new(backend).await;
    let dir = temp_dir();
    let key = stdout(&run(&dir, &db.url, &["keygen"], &[]))
        .trim()
        .to_string();
    assert_eq!(key.len(), 44, "{key}");
    assert!(run(&dir, &db.url, &["migrate"], &[]).status.success());
    let refused = run(
        &dir,
        &db.url,
        &["migrate"],
        &[("CRONHOOK_ENCRYPTION_KEY", &key)],
    );
    assert!(!refused.status.success());
    let why = stderr(&refused);
    assert!(
        why.contains("sealed with the key whose fingerprint is"),
        "{why}"
    );
    assert!(why.contains("nothing was changed"), "{why}");
    let malformed = run(
        &dir,
        &db.url,
        &["migrate"],
        &[("CRONHOOK_ENCRYPTION_KEY", "short")],
    );
    assert!(
        stderr(&malformed).contains("CRONHOOK_ENCRYPTION_KEY is not base64"),
        "{}",
        stderr(&malformed)
    );
    std::fs::remove_dir_all(&dir).ok();
}

store_tests!(
    an_open_non_loopback_service_refuses_to_start,
    tokens_made_on_the_command_line_open_it,
    a_container_starts_in_one_command_with_its_root_token,
    another_key_refuses_to_start,
);

/// On PostgreSQL the key file is in the service's directory: `cronhook
/// token …` run from another one fails saying where the key is, and
/// leaves no stray key file behind (issue 29).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_command_run_elsewhere_says_where_the_key_is_and_leaves_none() {
    let db = TestDb::new(Backend::Postgres).await;
    let token = |dir: &std::path::Path| {
        Command::new(BIN)
            .current_dir(dir)
            .args(["token", "list"])
            .env("DATABASE_URL", &db.url)
            .env_remove("CRONHOOK_ENCRYPTION_KEY")
            .output()
            .expect("cronhook runs")
    };
    let home = temp_dir();
    let first = token(&home);
    assert!(first.status.success(), "{}", stderr(&first));
    assert!(home.join("cronhook.key").exists(), "the first use makes it");
    let elsewhere = temp_dir();
    let refused = token(&elsewhere);
    assert!(!refused.status.success());
    let why = stderr(&refused);
    assert!(
        why.contains("no key file was found at ./cronhook.key"),
        "{why}"
    );
    assert!(why.contains("set CRONHOOK_ENCRYPTION_KEY"), "{why}");
    assert!(
        !elsewhere.join("cronhook.key").exists(),
        "a stray key file was left"
    );
    assert!(token(&home).status.success());
    std::fs::remove_dir_all(&home).ok();
    std::fs::remove_dir_all(&elsewhere).ok();
}

/// Without CRONHOOK_ENCRYPTION_KEY, the key is a file beside the SQLite
/// database, readable by its owner only, and the secrets stored are sealed.
#[test]
fn the_key_file_is_made_beside_the_sqlite_database() {
    let dir = temp_dir();
    std::fs::create_dir_all(dir.join("data")).unwrap();
    let migrate = || {
        Command::new(BIN)
            .current_dir(&dir)
            .env_remove("CRONHOOK_ENCRYPTION_KEY")
            .args(["migrate", "--database-url", "sqlite://data/jobs.db"])
            .output()
            .unwrap()
    };
    let output = migrate();
    assert!(output.status.success(), "{}", stderr(&output));
    let key = dir.join("data/cronhook.key");
    assert!(key.exists());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode =
            |path: &std::path::Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&key), 0o600);
        // The database too: it holds the sealed secrets and the tokens' hashes.
        assert_eq!(mode(&dir.join("data/jobs.db")), 0o600);
        // A key file others can read is warned about.
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
        let output = migrate();
        assert!(output.status.success(), "{}", stderr(&output));
        assert!(
            stderr(&output).contains("can be read by others than its owner"),
            "{}",
            stderr(&output)
        );
    }
    assert!(!dir.join("cronhook.key").exists());
    std::fs::remove_dir_all(&dir).ok();
}

/// On a fresh machine `token create` makes the key file, and says so; the
/// token alone goes to stdout, so `$(cronhook token create)` is the token.
#[test]
fn token_create_prints_only_the_token_on_stdout() {
    let dir = temp_dir();
    std::fs::create_dir_all(&dir).unwrap();
    let output = Command::new(BIN)
        .current_dir(&dir)
        .env_remove("CRONHOOK_ENCRYPTION_KEY")
        .env_remove("RUST_LOG")
        .args(["token", "create", "--role", "root"])
        .args(["--database-url", "sqlite://fresh.db"])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    let printed = stdout(&output);
    assert!(
        printed.lines().count() == 1 && cronhook::domain::auth::is_token(printed.trim()),
        "stdout: {printed:?}"
    );
    assert!(
        stderr(&output).contains("made a new encryption key"),
        "{}",
        stderr(&output)
    );
    std::fs::remove_dir_all(&dir).ok();
}
