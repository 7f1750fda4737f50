//! Test support: a fresh database per test (PostgreSQL or SQLite), the
//! real service on 127.0.0.1:0, and an HTTP client.
#![allow(dead_code)]

pub mod process;
pub mod receiver;

use std::path::PathBuf;
use std::sync::Once;
use std::time::Duration;

use cronhook::app::{self, RunningApp};
use cronhook::config::Config;
use cronhook::domain::auth::{self, Role, Tenant};
use cronhook::domain::sealing::SealingKey;
use cronhook::store::NewToken;
use serde_json::Value;
use sqlx::Connection;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Postgres,
    Sqlite,
}

/// The PostgreSQL server tests create their databases on: `DATABASE_URL`
/// when it names one, else the local default. Tests never skip it.
pub fn postgres_server_url() -> String {
    match std::env::var("DATABASE_URL") {
        Ok(url) if url.starts_with("postgres") => url,
        _ => "postgres://postgres@127.0.0.1:5432/postgres".to_string(),
    }
}

/// A database of its own for one test.
pub struct TestDb {
    pub url: String,
    file: Option<PathBuf>,
}

impl TestDb {
    pub async fn new(backend: Backend) -> Self {
        match backend {
            Backend::Postgres => Self::postgres().await,
            Backend::Sqlite => Self::sqlite(),
        }
    }

    pub async fn postgres() -> Self {
        let server = postgres_server_url();
        let mut admin = sqlx::PgConnection::connect(&server)
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "PostgreSQL is required for the tests and does not answer at {server}: {e}\n\
                 Run the tests with `bash scripts/test`, which starts one, or set DATABASE_URL."
                )
            });
        let name = format!("cronhook_test_{}", uuid::Uuid::new_v4().simple());
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut admin)
            .await
            .expect("creating the test database");
        let mut url = url::Url::parse(&server).expect("DATABASE_URL is a URL");
        url.set_path(&name);
        Self {
            url: url.to_string(),
            file: None,
        }
    }

    /// Runs a statement on the database directly, with text parameters
    /// (`$1`…): to write what the service would refuse.
    pub async fn execute(&self, sql: &str, binds: &[&str]) {
        if self.url.starts_with("sqlite:") {
            let mut conn = sqlx::SqliteConnection::connect(&self.url).await.unwrap();
            let mut query = sqlx::query(sql);
            for b in binds {
                query = query.bind(b.to_string());
            }
            query.execute(&mut conn).await.unwrap();
        } else {
            let mut conn = sqlx::PgConnection::connect(&self.url).await.unwrap();
            let mut query = sqlx::query(sql);
            for b in binds {
                query = query.bind(b.to_string());
            }
            query.execute(&mut conn).await.unwrap();
        }
    }

    /// Runs `sql` on the database directly, beside the service: to read
    /// what the API does not show, or to write what it would refuse.
    pub async fn fetch_all<O>(&self, sql: &str) -> Vec<O>
    where
        O: for<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow>
            + for<'r> sqlx::FromRow<'r, sqlx::sqlite::SqliteRow>
            + Send
            + Unpin,
    {
        if self.url.starts_with("sqlite:") {
            let mut conn = sqlx::SqliteConnection::connect(&self.url).await.unwrap();
            sqlx::query_as(sql).fetch_all(&mut conn).await.unwrap()
        } else {
            let mut conn = sqlx::PgConnection::connect(&self.url).await.unwrap();
            sqlx::query_as(sql).fetch_all(&mut conn).await.unwrap()
        }
    }

    /// Another handle on a database a test already has (a second instance).
    pub fn existing(url: &str) -> Self {
        Self {
            url: url.to_string(),
            file: None,
        }
    }

    pub fn sqlite() -> Self {
        let file = std::env::temp_dir().join(format!(
            "cronhook-test-{}.db",
            uuid::Uuid::new_v4().simple()
        ));
        Self {
            url: format!("sqlite://{}", file.display()),
            file: Some(file),
        }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Some(file) = &self.file {
            for suffix in ["", "-wal", "-shm"] {
                let _ = std::fs::remove_file(format!("{}{suffix}", file.display()));
            }
        }
    }
}

/// The key every test's secrets are sealed with.
pub const TEST_KEY: &str = "dGhlLWNyb25ob29rLXRlc3Qta2V5LTMyLWJ5dGVzLi4=";

/// Now, written as the API writes an instant.
pub fn now_text() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

/// An instant as the API answered it.
pub fn instant(v: &Value) -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::parse_from_rfc3339(v.as_str().expect("an instant"))
        .unwrap()
        .to_utc()
}

/// A filter for one job's runs, newest first.
pub fn runs_of(
    job: &cronhook::domain::job::JobId,
    cursor: Option<cronhook::store::RunCursor>,
    limit: u32,
) -> cronhook::store::RunFilter {
    cronhook::store::RunFilter {
        job_id: Some(job.clone()),
        cursor,
        limit,
        ..Default::default()
    }
}

/// A new directory of its own under the system's temporary one.
pub fn temp_dir(prefix: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("{prefix}-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

pub fn test_key() -> SealingKey {
    SealingKey::from_base64(TEST_KEY).expect("the test key")
}

pub fn default_tenant() -> Tenant {
    Tenant::default_tenant()
}

pub fn install_crypto() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

pub fn client() -> reqwest::Client {
    install_crypto();
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .no_proxy()
        .build()
        .expect("test client")
}

/// A client that answers redirects instead of following them.
pub fn no_redirects() -> reqwest::Client {
    install_crypto();
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("test client")
}

/// The service, started on 127.0.0.1:0 against its own database.
pub struct TestApp {
    pub base: String,
    pub client: reqwest::Client,
    /// Sent as `Authorization: Bearer …` with every request, when set.
    pub token: Option<String>,
    pub db: TestDb,
    pub config: Config,
    running: Option<RunningApp>,
}

pub fn test_config(db_url: &str) -> Config {
    let mut config = Config::for_database(db_url);
    config.listen = "127.0.0.1:0".parse().unwrap();
    config.shutdown_timeout_s = 10;
    // Longer than the default 3 s: on a busy test machine a heartbeat can be
    // late by seconds, and an instance that thinks itself dead stops sending
    // (and its runs get an extra, interrupted attempt). The fail-over tests
    // set the default again.
    config.instance_timeout_s = 10;
    config.store.encryption_key = Some(TEST_KEY.to_string());
    config
}

impl TestApp {
    pub async fn spawn(backend: Backend) -> Self {
        let db = TestDb::new(backend).await;
        let config = test_config(&db.url);
        Self::spawn_with(db, config).await
    }

    pub async fn spawn_with(db: TestDb, config: Config) -> Self {
        cronhook::telemetry::init_for_tests();
        let running = app::start(config.clone()).await.expect("starting the app");
        Self {
            base: format!("http://{}", running.local_addr),
            client: client(),
            token: None,
            db,
            config,
            running: Some(running),
        }
    }

    /// Stops the service at once, as a crash would: no draining, no
    /// lease released.
    pub fn kill(&mut self) {
        if let Some(running) = self.running.take() {
            running.abort();
        }
    }

    /// Stops the service (gracefully) and starts it again on the same
    /// database, as a restart would.
    pub async fn restart(&mut self) {
        if let Some(running) = self.running.take() {
            running.shutdown().await;
        }
        let running = app::start(self.config.clone())
            .await
            .expect("restarting the app");
        self.base = format!("http://{}", running.local_addr);
        self.running = Some(running);
    }

    pub async fn stop(&mut self) {
        if let Some(running) = self.running.take() {
            running.shutdown().await;
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn store(&self) -> cronhook::store::DynStore {
        self.running.as_ref().expect("running").store.clone()
    }

    /// Makes a token in the service's store, as `cronhook token create`
    /// does; returns its text.
    pub async fn make_token(&self, role: Role, tenant: &str) -> String {
        let (text, hash) = auth::generate_token();
        self.store()
            .create_token(&NewToken {
                id: auth::generate_token_id(),
                name: None,
                tenant: Tenant::parse(tenant).expect("a tenant name"),
                role,
                scopes: Vec::new(),
                hash,
            })
            .await
            .expect("token created");
        text
    }

    pub async fn request(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Reply {
        let mut request = self.client.request(method, self.url(path));
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        Reply::from(request.send().await.expect("request sent")).await
    }

    pub async fn get(&self, path: &str) -> Reply {
        self.request(reqwest::Method::GET, path, None).await
    }

    /// Creates a job through the API; it must answer 201.
    pub async fn create_job(&self, body: Value) -> Value {
        let reply = self.post("/v1/jobs", body).await;
        assert_eq!(reply.status, 201, "{}", reply.text);
        reply.json()
    }

    pub async fn post(&self, path: &str, body: Value) -> Reply {
        self.request(reqwest::Method::POST, path, Some(body)).await
    }

    pub async fn post_empty(&self, path: &str) -> Reply {
        self.request(reqwest::Method::POST, path, None).await
    }

    pub async fn put(&self, path: &str, body: Value) -> Reply {
        self.request(reqwest::Method::PUT, path, Some(body)).await
    }

    pub async fn patch(&self, path: &str, body: Value) -> Reply {
        self.request(reqwest::Method::PATCH, path, Some(body)).await
    }

    pub async fn delete(&self, path: &str) -> Reply {
        self.request(reqwest::Method::DELETE, path, None).await
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(running) = self.running.take() {
            running.shutdown_token().cancel();
        }
    }
}

/// A request with a token (or none), and headers.
pub async fn send(
    app: &TestApp,
    method: reqwest::Method,
    path: &str,
    token: Option<&str>,
    headers: &[(&str, &str)],
    body: Option<Value>,
) -> Reply {
    let mut request = app.client.request(method, app.url(path));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    Reply::from(request.send().await.expect("sent")).await
}

/// A response, read whole.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub content_type: String,
    pub headers: reqwest::header::HeaderMap,
    pub text: String,
}

impl Reply {
    pub async fn from(response: reqwest::Response) -> Self {
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let content_type = headers
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        let text = response.text().await.unwrap_or_default();
        Self {
            status,
            content_type,
            headers,
            text,
        }
    }

    pub fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text))
    }

    /// Asserts a problem+json answer with this status; returns its detail.
    /// A refusal's `field` and `detail`, checked as [`Self::problem`].
    pub fn problem_field(&self, status: u16) -> (String, String) {
        let detail = self.problem(status);
        let field = self.json()["field"]
            .as_str()
            .expect("the problem names its field")
            .to_string();
        (field, detail)
    }

    pub fn problem(&self, status: u16) -> String {
        assert_eq!(self.status, status, "{}", self.text);
        assert_eq!(
            self.content_type, "application/problem+json",
            "{}",
            self.text
        );
        let body = self.json();
        assert_eq!(body["status"], status, "{}", self.text);
        body["detail"]
            .as_str()
            .expect("problem has a detail")
            .to_string()
    }
}

/// Creates a job straight through a store, as `POST /v1/jobs` would.
pub async fn create_job(store: &dyn cronhook::store::Store, body: Value) -> cronhook::store::Job {
    use cronhook::domain::job::{JobInput, ParseContext};
    use cronhook::domain::lifecycle::JobCommand;
    let ctx = ParseContext {
        now: chrono::Utc::now(),
        network_policy: Default::default(),
        binding: None,
    };
    let spec = serde_json::from_value::<JobInput>(body)
        .expect("a job body")
        .parse(ctx.clone())
        .expect("a valid job");
    let id = spec.id.clone().expect("the body names an id");
    let command = JobCommand::Create {
        spec,
        secret: cronhook::domain::signing::generate_secret(),
    };
    store
        .save_job(&default_tenant(), &id, &command, ctx, None)
        .await
        .expect("created")
        .0
}

/// Polls `check` until it returns `Some`, or panics after `deadline`.
pub async fn eventually<T, F, Fut>(deadline: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let start = tokio::time::Instant::now();
    loop {
        if let Some(value) = check().await {
            return value;
        }
        if start.elapsed() > deadline {
            panic!("timed out after {deadline:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Job `job`'s newest run with its attempts, once it has finished.
pub async fn finished_run(app: &TestApp, job: &str) -> Value {
    eventually(Duration::from_secs(60), "a finished run", || async {
        let runs = app.get(&format!("/v1/jobs/{job}/runs")).await.json();
        let id = runs["items"].as_array()?.first()?["id"]
            .as_str()?
            .to_string();
        let run = app.get(&format!("/v1/runs/{id}")).await.json();
        run["finished_at"].is_string().then_some(run)
    })
    .await
}

/// Run `id`, read through `base` (a `TestApp`'s or a `ServiceProcess`'s),
/// once `holds` is true of it.
pub async fn run_when(
    client: &reqwest::Client,
    base: &str,
    id: &str,
    what: &str,
    holds: impl Fn(&Value) -> bool,
) -> Value {
    eventually(Duration::from_secs(60), what, || async {
        let run: Value = client
            .get(format!("{base}/v1/runs/{id}"))
            .send()
            .await
            .ok()?
            .json()
            .await
            .ok()?;
        holds(&run).then_some(run)
    })
    .await
}

/// The first request `receiver` got on `path`, once it has one.
pub async fn first_request(receiver: &receiver::Receiver, path: &str) -> receiver::Received {
    eventually(Duration::from_secs(60), "the request", || async {
        receiver.received(path).into_iter().next()
    })
    .await
}

/// Runs each listed test once per store: `store_tests!(a, b)` makes
/// `postgres::a`, `sqlite::a`, … from `async fn a(backend: Backend)`.
#[macro_export]
macro_rules! store_tests {
    ($($name:ident),* $(,)?) => {
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::support::Backend::Postgres).await
                }
            )*
        }
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::support::Backend::Sqlite).await
                }
            )*
        }
    };
}

/// The value of cookie `name` a response sets, with its attributes.
pub fn set_cookie(response: &reqwest::Response, name: &str) -> Option<String> {
    response
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|c| c.starts_with(&format!("{name}=")))
        .map(str::to_string)
}

/// Signs in to the dashboard over plain HTTP, as a browser would: the
/// login page's CSRF cookie, then the form. Answers the login's response
/// and the CSRF cookie's value.
pub async fn ui_sign_in(
    app: &TestApp,
    token: &str,
    headers: &[(&str, &str)],
) -> (reqwest::Response, String) {
    let plain = no_redirects();
    let page = plain.get(app.url("/ui/login")).send().await.unwrap();
    let csrf = set_cookie(&page, "cronhook_csrf").expect("a CSRF cookie");
    let csrf = csrf["cronhook_csrf=".len()..]
        .split(';')
        .next()
        .unwrap()
        .to_string();
    let mut login = plain
        .post(app.url("/ui/login"))
        .header("cookie", format!("cronhook_csrf={csrf}"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("csrf={csrf}&token={token}"));
    for (name, value) in headers {
        login = login.header(*name, *value);
    }
    (login.send().await.unwrap(), csrf)
}

/// The value a `set-cookie` line gives its cookie.
pub fn cookie_value(line: &str) -> String {
    line.split(';')
        .next()
        .and_then(|pair| pair.split_once('='))
        .map(|(_, v)| v.to_string())
        .unwrap_or_default()
}
