//! The dashboard (DESIGN.md §10) in a real browser: headless Chromium,
//! driven over chromedriver (WebDriver). `scripts/test` installs Debian's
//! `chromium` and `chromium-driver` when they are missing. A screenshot of
//! each page is kept under `target/ui-screenshots/` to look at.

use crate::support as common;

use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::receiver::{Answer, Receiver};
use common::{Backend, TestApp, TestDb, eventually, test_config};
use cronhook::domain::auth::{AuthMode, Role};
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};

const DEADLINE: Duration = Duration::from_secs(60);
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const CHROMIUM: &str = "/usr/bin/chromium";

/// chromedriver and the Chromium session it drives; both end on drop.
struct Browser {
    client: Client,
    driver: Child,
    _profile: tempfile_dir::Dir,
}

mod tempfile_dir {
    /// A fresh directory for one browser profile, removed on drop.
    pub struct Dir(pub std::path::PathBuf);

    impl Dir {
        pub fn new() -> Self {
            let path = std::env::temp_dir().join(format!("cronhook-ui-{}", uuid::Uuid::now_v7()));
            std::fs::create_dir_all(&path).expect("profile directory");
            Self(path)
        }
    }

    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

impl Browser {
    async fn start() -> Self {
        Self::start_with(&[]).await
    }

    /// A browser with more flags (a window size, a dark system theme).
    async fn start_with(extra: &[&str]) -> Self {
        assert!(
            std::path::Path::new(CHROMEDRIVER).exists() && std::path::Path::new(CHROMIUM).exists(),
            "the dashboard tests need Debian's chromium and chromium-driver; scripts/test installs them"
        );
        let profile = tempfile_dir::Dir::new();
        // The flags the machine needs: headless as root, and no background
        // connections to a network that is closed.
        let args = [
            "--headless=new".to_string(),
            "--no-sandbox".into(),
            "--disable-gpu".into(),
            "--disable-dev-shm-usage".into(),
            "--disable-quic".into(),
            "--no-first-run".into(),
            "--disable-background-networking".into(),
            "--disable-component-update".into(),
            "--disable-sync".into(),
            "--window-size=1280,900".into(),
            format!("--user-data-dir={}", profile.0.display()),
        ];
        let args: Vec<String> = args
            .into_iter()
            .filter(|a| {
                !(a.starts_with("--window-size")
                    && extra.iter().any(|e| e.starts_with("--window-size")))
            })
            .chain(extra.iter().map(|e| e.to_string()))
            .collect();
        let mut capabilities = serde_json::Map::new();
        capabilities.insert(
            "goog:chromeOptions".into(),
            json!({"binary": CHROMIUM, "args": args}),
        );
        // chromedriver is given a port that was free a moment ago; if
        // another socket took it meanwhile, chromedriver exits, and starts
        // again on another.
        let deadline = tokio::time::Instant::now() + DEADLINE;
        loop {
            let mut driver = start_chromedriver();
            let url = format!("http://127.0.0.1:{}", driver.1);
            while tokio::time::Instant::now() < deadline {
                let connector = hyper_util::client::legacy::connect::HttpConnector::new();
                let session = ClientBuilder::new(connector)
                    .capabilities(capabilities.clone())
                    .connect(&url)
                    .await;
                if let Ok(client) = session {
                    return Self {
                        client,
                        driver: driver.0,
                        _profile: profile,
                    };
                }
                if driver.0.try_wait().ok().flatten().is_some() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            if tokio::time::Instant::now() >= deadline {
                stop_group(&mut driver.0);
                panic!("chromedriver did not start a session within {DEADLINE:?}");
            }
        }
    }

    async fn open(&self, app: &TestApp, path: &str) {
        self.client.goto(&app.url(path)).await.expect("page opens");
    }

    /// The visible text of the page's `<main>`.
    async fn main_text(&self) -> String {
        match self.client.find(Locator::Css("main")).await {
            Ok(main) => main.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        }
    }

    /// Waits until the page's `<main>` holds `text`.
    async fn wait_for_text(&self, text: &str) {
        eventually(DEADLINE, &format!("the page to show {text:?}"), || async {
            self.main_text().await.contains(text).then_some(())
        })
        .await;
    }

    async fn text_of(&self, css: &str) -> String {
        let found = self.client.find(Locator::Css(css)).await;
        let element = found.unwrap_or_else(|e| panic!("no {css} on the page: {e}"));
        element.text().await.expect("its text")
    }

    async fn count(&self, css: &str) -> usize {
        self.client
            .find_all(Locator::Css(css))
            .await
            .map(|found| found.len())
            .unwrap_or(0)
    }

    async fn click(&self, css: &str) {
        self.click_found(css, Locator::Css(css)).await;
    }

    /// Clicks the button labelled `label`.
    async fn press(&self, label: &str) {
        let xpath =
            format!("//button[normalize-space()='{label}'] | //a[normalize-space()='{label}']");
        self.click_found(&format!("the button {label:?}"), Locator::XPath(&xpath))
            .await;
    }

    /// Finds and clicks, again while the element is missing or was just
    /// replaced: a live update swaps a page's part (buttons included) when
    /// an event arrives, which may fall between the find and the click.
    async fn click_found(&self, what: &str, locator: Locator<'_>) {
        eventually(DEADLINE, &format!("clicking {what}"), || async {
            let element = self.client.find(locator).await.ok()?;
            element.click().await.ok()
        })
        .await;
    }

    /// Replaces the text of the input or textarea `css`.
    async fn fill(&self, css: &str, text: &str) {
        let element = self.client.find(Locator::Css(css)).await.expect(css);
        element.clear().await.expect("cleared");
        element.send_keys(text).await.expect("typed");
    }

    async fn choose(&self, css: &str, value: &str) {
        let element = self.client.find(Locator::Css(css)).await.expect(css);
        element.select_by_value(value).await.expect("chosen");
    }

    async fn value_of(&self, css: &str) -> String {
        let element = self.client.find(Locator::Css(css)).await.expect(css);
        element
            .prop("value")
            .await
            .ok()
            .flatten()
            .unwrap_or_default()
    }

    async fn has_button(&self, label: &str) -> bool {
        let xpath =
            format!("//button[normalize-space()='{label}'] | //a[normalize-space()='{label}']");
        self.client.find(Locator::XPath(&xpath)).await.is_ok()
    }

    async fn screenshot(&self, name: &str) {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/ui-screenshots");
        std::fs::create_dir_all(&dir).expect("screenshot directory");
        let png = self.client.screenshot().await.expect("screenshot");
        std::fs::write(dir.join(format!("{name}.png")), png).expect("screenshot written");
    }

    async fn path(&self) -> String {
        self.client
            .current_url()
            .await
            .map(|u| u.path().to_string())
            .unwrap_or_default()
    }
}

/// chromedriver on a port that is free now, in its own process group,
/// which the browser it starts joins: a test that fails before closing the
/// session leaves nothing behind.
fn start_chromedriver() -> (Child, u16) {
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let driver = Command::new(CHROMEDRIVER)
        .process_group(0)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromedriver starts");
    (driver, port)
}

/// Kills chromedriver and the browser it started (its process group).
fn stop_group(driver: &mut Child) {
    let group = format!("-{}", driver.id());
    let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
    let _ = driver.wait();
}

impl Drop for Browser {
    fn drop(&mut self) {
        stop_group(&mut self.driver);
    }
}

use common::now_text as now;

async fn job_state(app: &TestApp, id: &str) -> String {
    app.get(&format!("/v1/jobs/{id}")).await.json()["state"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

async fn runs_of(app: &TestApp, id: &str) -> Vec<Value> {
    app.get(&format!("/v1/jobs/{id}/runs")).await.json()["items"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// With tokens off (loopback, no token yet): every action a person takes.
#[tokio::test]
async fn a_person_finds_pauses_runs_redrives_and_deletes_jobs_in_a_browser() {
    let receiver = Receiver::start().await;
    receiver.script("/flaky", [Answer::Status(500)]);
    let app = TestApp::spawn(Backend::Sqlite).await;
    for job in [
        json!({"id": "nightly-report", "name": "Nightly report",
               "trigger": {"type": "cron", "expr": "30 2 * * *", "timezone": "America/New_York"},
               "target": {"url": receiver.url("/ok")}, "labels": {"team": "data"}}),
        json!({"id": "flaky", "trigger": {"type": "date", "run_at": now()},
               "target": {"url": receiver.url("/flaky")}, "retry": {"max_attempts": 1}}),
        json!({"id": "doomed", "trigger": {"type": "interval", "every_s": 5400},
               "target": {"url": receiver.url("/ok")}}),
    ] {
        assert_eq!(app.post("/v1/jobs", job).await.status, 201);
    }
    let browser = Browser::start().await;

    // Jobs: all three, with the trigger in words; search narrows them.
    browser.open(&app, "/ui").await;
    browser.wait_for_text("At 02:30. (America/New_York)").await;
    assert_eq!(browser.count("tr[data-job]").await, 3);
    browser.wait_for_text("every 1 h 30 min").await;
    browser.screenshot("jobs").await;
    browser
        .client
        .find(Locator::Css("#q"))
        .await
        .unwrap()
        .send_keys("nightly")
        .await
        .unwrap();
    browser.press("Filter").await;
    eventually(DEADLINE, "the search to narrow the list", || async {
        (browser.count("tr[data-job]").await == 1).then_some(())
    })
    .await;
    assert!(browser.main_text().await.contains("Nightly report"));

    // Labels: a job's label links to the jobs that carry it (§11.9).
    browser
        .open(&app, "/ui?selector=team%20notin%20(data)")
        .await;
    eventually(DEADLINE, "the selector to leave two jobs", || async {
        (browser.count("tr[data-job]").await == 2).then_some(())
    })
    .await;
    browser.open(&app, "/ui").await;
    browser.click("tr[data-job='nightly-report'] a.label").await;
    eventually(DEADLINE, "the label's link to pick one job", || async {
        (browser.count("tr[data-job]").await == 1).then_some(())
    })
    .await;
    assert_eq!(browser.value_of("#selector").await, "team=data");

    // One job: the next ten fire times in UTC and New York time.
    browser.click("tr[data-job='nightly-report'] a").await;
    browser.wait_for_text("Next fire times").await;
    assert_eq!(browser.path().await, "/ui/jobs/nightly-report");
    assert_eq!(browser.count("table.fire-times tbody tr").await, 10);
    browser.wait_for_text("America/New_York").await;
    browser.screenshot("job").await;

    // Pause from the page: the API sees it.
    browser.press("Pause").await;
    eventually(DEADLINE, "the job paused", || async {
        (job_state(&app, "nightly-report").await == "paused").then_some(())
    })
    .await;
    browser.wait_for_text("Resume").await;
    assert!(browser.main_text().await.contains("paused"));

    // Live: a run made through the API appears without a reload.
    eventually(DEADLINE, "the page's event stream to open", || async {
        let status = browser
            .client
            .find(Locator::Css("#live-status"))
            .await
            .ok()?;
        (status.text().await.ok()? == "live").then_some(())
    })
    .await;
    browser
        .client
        .execute("window.notReloaded = true;", vec![])
        .await
        .unwrap();
    assert_eq!(browser.count("tr[data-run]").await, 0);
    assert_eq!(
        app.post_empty("/v1/jobs/nightly-report/run").await.status,
        201
    );
    eventually(DEADLINE, "the run to appear live, succeeded", || async {
        let text = browser.main_text().await;
        (browser.count("tr[data-run]").await == 1 && text.contains("succeeded")).then_some(())
    })
    .await;
    let kept = browser
        .client
        .execute("return window.notReloaded === true;", vec![])
        .await
        .unwrap();
    assert_eq!(kept, json!(true), "the page changed without a reload");
    // Run now from the page: a second run.
    browser.press("Run now").await;
    eventually(DEADLINE, "a second run", || async {
        (runs_of(&app, "nightly-report").await.len() == 2
            && browser.count("tr[data-run]").await == 2)
            .then_some(())
    })
    .await;
    browser.press("Resume").await;
    eventually(DEADLINE, "the job resumed", || async {
        (job_state(&app, "nightly-report").await == "scheduled").then_some(())
    })
    .await;

    // Failed runs across jobs; the run's attempt; redrive.
    eventually(DEADLINE, "flaky's run to fail", || async {
        let runs = runs_of(&app, "flaky").await;
        runs.first().filter(|r| r["status"] == "failed").cloned()
    })
    .await;
    browser.open(&app, "/ui/failed").await;
    browser.wait_for_text("flaky").await;
    assert_eq!(browser.count("tr[data-run]").await, 1);
    browser.screenshot("failed").await;
    browser.click("tr[data-run] a").await;
    browser.wait_for_text("the target answered 500").await;
    assert!(browser.path().await.starts_with("/ui/runs/"));
    browser.screenshot("run").await;
    browser.press("Redrive (send again)").await;
    let run = eventually(DEADLINE, "the redriven run to succeed", || async {
        let runs = runs_of(&app, "flaky").await;
        runs.first().filter(|r| r["status"] == "succeeded").cloned()
    })
    .await;
    assert_eq!(
        runs_of(&app, "flaky").await.len(),
        1,
        "the same run, sent again"
    );
    browser.wait_for_text("succeeded").await;
    assert_eq!(
        browser.path().await,
        format!("/ui/runs/{}", run["id"].as_str().unwrap())
    );
    assert_eq!(browser.count("table.attempts tbody tr").await, 2);

    // Delete, after a confirmation.
    browser.open(&app, "/ui/jobs/doomed").await;
    browser.press("Delete…").await;
    browser.wait_for_text("cannot be undone").await;
    assert_eq!(
        app.get("/v1/jobs/doomed").await.status,
        200,
        "not before confirming"
    );
    browser.press("Delete the job").await;
    eventually(DEADLINE, "the job deleted", || async {
        (app.get("/v1/jobs/doomed").await.status == 404).then_some(())
    })
    .await;
    assert_eq!(browser.path().await, "/ui");

    // Rotate and show the secret.
    browser.open(&app, "/ui/jobs/nightly-report").await;
    browser.press("Show secret").await;
    browser.wait_for_text("whsec_").await;
    let shown = browser.text_of("#secret").await;
    browser.open(&app, "/ui/jobs/nightly-report").await;
    browser.press("Rotate secret").await;
    browser.wait_for_text("The previous secret signs too").await;
    let rotated = browser.text_of("#secret").await;
    assert_ne!(shown, rotated);
    assert!(browser.main_text().await.contains(&shown));

    // A phone's width: the jobs table scrolls inside its box.
    browser.client.set_window_size(390, 844).await.unwrap();
    browser.open(&app, "/ui").await;
    browser.wait_for_text("Nightly report").await;
    let overflow = browser
        .client
        .execute(
            "return document.documentElement.scrollWidth <= window.innerWidth + 1;",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(
        overflow,
        json!(true),
        "no sideways scrolling of the whole page"
    );
    browser.screenshot("jobs-phone").await;
    browser.client.clone().close().await.unwrap();
}

/// With tokens on: a login, a read token that sees no actions, tenants
/// apart, cookies the API ignores, and forms refused without the token.
#[tokio::test]
async fn a_read_token_sees_no_actions_and_a_tenant_only_its_own_jobs() {
    let receiver = Receiver::start().await;
    let db = TestDb::new(Backend::Postgres).await;
    let mut config = test_config(&db.url);
    config.auth = AuthMode::Required;
    // The receiver is on loopback: allowed by choice, as tokens make
    // public-only the default.
    config.targets = Some(cronhook::domain::network_policy::TargetMode::Any);
    let mut app = TestApp::spawn_with(db, config).await;
    let root = app.make_token(Role::Root, "default").await;
    let writer = app.make_token(Role::Write, "team-a").await;
    let reader = app.make_token(Role::Read, "team-a").await;
    app.token = Some(writer.clone());
    let job = |id: &str| {
        json!({"id": id, "trigger": {"type": "cron", "expr": "0 9 * * mon-fri", "timezone": "Europe/Berlin"},
               "target": {"url": receiver.url("/ok")}})
    };
    assert_eq!(app.post("/v1/jobs", job("team-a-job")).await.status, 201);
    app.token = Some(root.clone());
    assert_eq!(app.post("/v1/jobs", job("default-job")).await.status, 201);

    let browser = Browser::start().await;
    browser.open(&app, "/ui").await;
    browser.wait_for_text("Sign in").await;
    assert_eq!(browser.path().await, "/ui/login");
    browser.screenshot("login").await;
    let sign_in = |token: String| {
        let browser = &browser;
        async move {
            let field = browser.client.find(Locator::Css("#token")).await.unwrap();
            field.clear().await.unwrap();
            field.send_keys(&token).await.unwrap();
            browser.press("Sign in").await;
        }
    };
    sign_in(format!("{reader}x")).await;
    browser.wait_for_text("unknown or revoked token").await;
    sign_in(reader.clone()).await;
    browser.wait_for_text("team-a-job").await;
    assert_eq!(browser.path().await, "/ui");
    assert!(
        !browser.main_text().await.contains("default-job"),
        "another tenant's job"
    );
    let cookies = browser.client.get_all_cookies().await.unwrap();
    let session = cookies
        .iter()
        .find(|c| c.name() == "cronhook_session")
        .expect("a session cookie");
    assert_eq!(session.http_only(), Some(true));
    assert!(
        session.value().starts_with("chs_") && session.value() != reader,
        "the cookie holds a session id, not the token"
    );
    assert_eq!(
        session.same_site().map(|s| s.to_string()),
        Some("Strict".to_string())
    );

    // Read: the job, no action, no secret.
    browser.click("tr[data-job='team-a-job'] a").await;
    browser.wait_for_text("Next fire times").await;
    browser.screenshot("job-read-only").await;
    for label in [
        "Pause",
        "Run now",
        "Rotate secret",
        "Show secret",
        "Delete…",
    ] {
        assert!(
            !browser.has_button(label).await,
            "a read token sees no {label:?}"
        );
    }
    assert_eq!(browser.count("main form[method='post']").await, 0);
    browser.open(&app, "/ui/jobs/team-a-job/secret").await;
    browser.wait_for_text("needs a write or root token").await;
    browser.open(&app, "/ui/jobs/default-job").await;
    browser.wait_for_text("no job with id").await;

    // The cookie works on /ui only; a form without the page's CSRF token
    // is refused; the API never reads the cookie.
    let plain = common::client();
    let with_cookie = |path: &str, token: &str| {
        plain
            .post(app.url(path))
            .header(
                "cookie",
                format!("cronhook_session={token}; cronhook_csrf=abc"),
            )
            .header("content-type", "application/x-www-form-urlencoded")
            .body("csrf=not-abc")
    };
    // No other site may frame a page of buttons, or run script in it.
    let page = plain.get(app.url("/ui/login")).send().await.unwrap();
    assert_eq!(page.headers()["x-frame-options"], "DENY");
    let policy = page.headers()["content-security-policy"].to_str().unwrap();
    assert!(policy.contains("frame-ancestors 'none'") && policy.contains("default-src 'self'"));
    // A writer's session, opened over plain HTTP.
    let (login, _) = common::ui_sign_in(&app, &writer, &[]).await;
    let line = common::set_cookie(&login, "cronhook_session").expect("a session");
    let writer_session = common::cookie_value(&line);
    let forged = with_cookie("/ui/jobs/team-a-job/pause", &writer_session)
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 403);
    assert!(forged.text().await.unwrap().contains("CSRF"));
    let api = plain
        .get(app.url("/v1/jobs"))
        .header("cookie", format!("cronhook_session={writer_session}"))
        .send()
        .await
        .unwrap();
    assert_eq!(api.status(), 401);
    app.token = Some(writer.clone());
    assert_eq!(job_state(&app, "team-a-job").await, "scheduled");

    // A write token acts; sign out ends the session.
    browser.open(&app, "/ui").await;
    browser.press("Sign out").await;
    browser.wait_for_text("API token").await;
    browser.open(&app, "/ui").await;
    assert_eq!(browser.path().await, "/ui/login");
    sign_in(writer.clone()).await;
    browser.wait_for_text("team-a-job").await;
    browser.open(&app, "/ui/jobs/team-a-job").await;
    browser.press("Pause").await;
    eventually(DEADLINE, "the job paused", || async {
        (job_state(&app, "team-a-job").await == "paused").then_some(())
    })
    .await;
    browser.client.clone().close().await.unwrap();
    app.stop().await;
}

/// A job made, changed and copied in the form (issue 29): the next fire
/// times and the request appear as the trigger is typed (the page's
/// script asks the server), a refusal shows at its field, and what was
/// saved is what the API reads back.
async fn a_person_creates_edits_and_clones_a_job_in_a_browser(backend: Backend) {
    let receiver = Receiver::start().await;
    let app = TestApp::spawn(backend).await;
    let browser = Browser::start().await;
    browser.open(&app, "/ui").await;
    browser.press("New job").await;
    browser
        .wait_for_text("Type a trigger to see when it fires.")
        .await;
    browser.fill("#id", "berlin-report").await;
    browser.fill("#expr", "30 2 * * *").await;
    browser.fill("#timezone", "Europe/Berlin").await;
    browser.fill("#url", &receiver.url("/report")).await;
    browser.choose("#body_kind", "json").await;
    browser.fill("#body", r#"{"report": "daily"}"#).await;
    // 02:30 in Berlin, whichever offset the date has.
    browser.wait_for_text("T02:30:00+0").await;
    browser
        .wait_for_text("content-type: application/json")
        .await;
    browser
        .wait_for_text("cronhook-job-id: berlin-report")
        .await;
    browser.screenshot("job-new").await;
    browser.press("Create job").await;
    eventually(DEADLINE, "the job's page", || async {
        (browser.path().await == "/ui/jobs/berlin-report").then_some(())
    })
    .await;
    let job = app.get("/v1/jobs/berlin-report").await.json();
    assert_eq!(
        (
            &job["trigger"]["expr"],
            &job["trigger"]["timezone"],
            &job["target"]["body"]
        ),
        (
            &json!("30 2 * * *"),
            &json!("Europe/Berlin"),
            &json!({"report": "daily"})
        ),
        "{job}"
    );

    // Edit: a bad zone is shown at its field and changes nothing.
    browser.press("Edit").await;
    browser.wait_for_text("Edit berlin-report").await;
    assert_eq!(browser.value_of("#id").await, "berlin-report");
    browser.fill("#timezone", "Mars/Olympus").await;
    browser.press("Save job").await;
    browser.wait_for_text("unknown time zone").await;
    assert!(
        browser
            .text_of("#timezone-error")
            .await
            .contains("Mars/Olympus"),
        "the error sits at the time zone"
    );
    browser.screenshot("job-edit-error").await;
    let job = app.get("/v1/jobs/berlin-report").await.json();
    assert_eq!(job["trigger"]["timezone"], "Europe/Berlin");
    browser.fill("#timezone", "Asia/Tokyo").await;
    browser.fill("#expr", "0 9 * * *").await;
    browser.fill("#name", "Tokyo report").await;
    browser.press("Save job").await;
    eventually(DEADLINE, "the saved job", || async {
        let job = app.get("/v1/jobs/berlin-report").await.json();
        (job["trigger"]["timezone"] == "Asia/Tokyo").then_some(())
    })
    .await;
    let job = app.get("/v1/jobs/berlin-report").await.json();
    assert_eq!(
        (
            &job["trigger"]["expr"],
            &job["name"],
            &job["target"]["body"]
        ),
        (
            &json!("0 9 * * *"),
            &json!("Tokyo report"),
            &json!({"report": "daily"})
        ),
        "{job}"
    );

    // Clone: the same job under a new id.
    browser.open(&app, "/ui/jobs/berlin-report").await;
    browser.press("Clone").await;
    browser.wait_for_text("New job").await;
    assert_eq!(browser.value_of("#id").await, "");
    assert_eq!(browser.value_of("#name").await, "Tokyo report (copy)");
    browser.fill("#id", "tokyo-report").await;
    browser.press("Create job").await;
    eventually(DEADLINE, "the clone", || async {
        let clone = app.get("/v1/jobs/tokyo-report").await;
        (clone.status == 200).then(|| clone.json())
    })
    .await;
    let clone = app.get("/v1/jobs/tokyo-report").await.json();
    assert_eq!(clone["trigger"], job["trigger"]);
    assert_eq!(clone["target"], job["target"]);
}

store_tests!(
    a_job_page_draws_its_chain,
    a_held_run_page_shows_its_gate,
    a_person_follows_and_cancels_a_long_run_in_a_browser,
    a_person_creates_edits_and_clones_a_job_in_a_browser,
    a_person_pauses_and_deletes_the_jobs_a_label_picks,
    the_overview_counts_runs_by_outcome_and_lateness,
);

/// A job's page draws the jobs before and after it in chains (§11.8),
/// each a link.
async fn a_job_page_draws_its_chain(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let job = |id: &str, chain: Value| {
        json!({"id": id, "trigger": {"type": "date", "run_at": "2099-01-01T00:00:00Z"},
               "target": {"url": "https://example.com/hook"}, "chain": chain})
    };
    app.create_job(job("publish", json!({}))).await;
    app.create_job(job(
        "transform",
        json!({"on_success": [{"job": "publish", "delay_s": 30}]}),
    ))
    .await;
    app.create_job(job(
        "extract",
        json!({"on_complete": [{"job": "transform"}]}),
    ))
    .await;
    let browser = Browser::start().await;
    browser.open(&app, "/ui/jobs/transform").await;
    browser.wait_for_text("Chain").await;
    assert_eq!(browser.count("svg.chain-graph a").await, 2);
    let graph = browser.text_of("svg.chain-graph").await;
    for word in [
        "extract",
        "transform",
        "publish",
        "on complete",
        "on success +30 s",
    ] {
        assert!(graph.contains(word), "{word} in {graph:?}");
    }
    browser.screenshot("job-chain").await;
    browser
        .click("svg.chain-graph a[href='/ui/jobs/publish']")
        .await;
    eventually(DEADLINE, "the child's page", || async {
        (browser.path().await == "/ui/jobs/publish").then_some(())
    })
    .await;
    browser.wait_for_text("Chain").await;
}

/// A run held by its gate (§11.8) says for which job it waits, and until
/// when; the job's page lists what it requires.
async fn a_held_run_page_shows_its_gate(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let job = |id: &str| {
        json!({"id": id, "trigger": {"type": "date", "run_at": "2099-01-01T00:00:00Z"},
               "target": {"url": "https://example.com/hook"}})
    };
    app.create_job(job("extract")).await;
    let mut load = job("load");
    load["next_run_at"] = json!("now");
    load["requires"] = json!([{"job": "extract", "succeeded_within_s": 7200,
                               "mode": "wait", "wait_max_s": 3600}]);
    app.create_job(load).await;
    let run = eventually(DEADLINE, "the held run", || async {
        let runs = app.get("/v1/jobs/load/runs").await.json();
        let run = runs["items"].as_array()?.first()?.clone();
        (run["wait_reason"] == "dependency:extract").then_some(run)
    })
    .await;
    let browser = Browser::start().await;
    browser
        .open(&app, &format!("/ui/runs/{}", run["id"].as_str().unwrap()))
        .await;
    browser.wait_for_text("Held by its gate").await;
    let gate = browser.text_of("section.gate").await;
    for words in ["Waiting for job extract to succeed", "2 h", "wait"] {
        assert!(gate.contains(words), "{words} in {gate:?}");
    }
    // It waits until its fire time and `wait_max_s`.
    let fired = chrono::DateTime::parse_from_rfc3339(run["scheduled_for"].as_str().unwrap())
        .unwrap()
        .with_timezone(&chrono::Utc);
    let until = (fired + chrono::TimeDelta::hours(1)).format("%Y-%m-%d %H:%M:%S UTC");
    assert!(gate.contains(&until.to_string()), "{until} in {gate:?}");
    assert_eq!(browser.count("table.gate tr.waited").await, 1);
    browser.screenshot("run-held-by-gate").await;
    browser.open(&app, "/ui/jobs/load").await;
    browser.wait_for_text("Requires").await;
    let page = browser.text_of("dl.settings").await;
    assert!(
        page.contains("extract succeeded within 2 h; else wait up to 1 h"),
        "{page}"
    );
}

/// A callback run's page (§11.7) shows what its receiver reported
/// (progress, message, the next heartbeat due) and cancels it: the
/// receiver gets the cancel request, the page says `cancelling`.
async fn a_person_follows_and_cancels_a_long_run_in_a_browser(backend: Backend) {
    let receiver = Receiver::start().await;
    let app = TestApp::spawn(backend).await;
    app.create_job(json!({
        "id": "nightly-etl", "trigger": {"type": "interval", "every_s": 3600},
        "next_run_at": "now", "target": {"url": receiver.url("/etl")},
        "completion": {"mode": "callback", "timeout_s": 3600, "heartbeat_s": 600}
    }))
    .await;
    let request = common::first_request(&receiver, "/etl").await;
    let run_id = request.header("webhook-id").to_string();
    let token = request.header("cronhook-callback-token").to_string();
    common::run_when(&app.client, &app.base, &run_id, "the run accepted", |run| {
        run["accepted_at"].is_string()
    })
    .await;
    let beat = common::send(
        &app,
        reqwest::Method::POST,
        &format!("/v1/runs/{run_id}/heartbeat"),
        Some(&token),
        &[],
        Some(json!({"progress": 42, "message": "loading orders"})),
    )
    .await;
    assert_eq!(beat.status, 204, "{}", beat.text);

    let browser = Browser::start().await;
    browser.open(&app, &format!("/ui/runs/{run_id}")).await;
    browser.wait_for_text("Work reported by the receiver").await;
    browser.wait_for_text("loading orders").await;
    browser.wait_for_text("42 %").await;
    browser.wait_for_text("Next heartbeat due").await;
    browser
        .wait_for_text("cronhook-callback-token: crt_<this run's token>")
        .await;
    browser.screenshot("run-long").await;
    browser.press("Cancel this run").await;
    browser.wait_for_text("cancelling").await;
    eventually(DEADLINE, "the cancel request", || async {
        receiver
            .received("/etl")
            .iter()
            .any(|r| r.header("cronhook-event") == "cancel")
            .then_some(())
    })
    .await;
    assert!(!browser.has_button("Cancel this run").await);
    browser.open(&app, "/ui/jobs/nightly-etl").await;
    browser
        .wait_for_text("by callback: fails after 3600 s")
        .await;
}

/// The overview (§10) reads the runs on both stores: a sent run counts,
/// with its lateness, in the hour it was made.
async fn the_overview_counts_runs_by_outcome_and_lateness(backend: Backend) {
    let receiver = Receiver::start().await;
    let app = TestApp::spawn(backend).await;
    app.create_job(
        json!({"id": "sent", "trigger": {"type": "date", "run_at": now()},
                          "target": {"url": receiver.url("/ok")}}),
    )
    .await;
    eventually(DEADLINE, "the run of sent", || async {
        let run = runs_of(&app, "sent").await.first()?.clone();
        (run["status"] == "succeeded").then_some(())
    })
    .await;
    let page = app.get("/ui/overview").await;
    assert_eq!(page.status, 200, "{}", page.text);
    assert!(
        page.text.contains(r#"id="runs-succeeded">1<"#),
        "{}",
        page.text
    );
    assert!(
        page.text.contains(r#"<dd id="lateness">+"#),
        "{}",
        page.text
    );
    assert_eq!(
        page.text.matches("<tr data-hour=").count(),
        1,
        "{}",
        page.text
    );
}

/// The jobs a label filter picks are paused, and deleted after a look at
/// the list, together (§11.9), on both stores.
async fn a_person_pauses_and_deletes_the_jobs_a_label_picks(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    for (id, labels) in [
        ("etl-a", json!({"team": "data"})),
        ("etl-b", json!({"team": "data"})),
        ("site", json!({"team": "web"})),
    ] {
        let job = json!({"id": id, "trigger": {"type": "interval", "every_s": 3600},
                         "target": {"url": "http://127.0.0.1:9/hook"}, "labels": labels});
        assert_eq!(app.post("/v1/jobs", job).await.status, 201);
    }
    let browser = Browser::start().await;
    browser.open(&app, "/ui").await;
    browser.wait_for_text("site").await;
    assert!(!browser.has_button("Pause all").await, "no filter, no bulk");
    browser.open(&app, "/ui?selector=team%3Ddata").await;
    browser.wait_for_text("etl-b").await;
    browser.screenshot("jobs-by-label").await;
    browser.press("Pause all").await;
    browser
        .wait_for_text("pause: 2 changed, 0 unchanged.")
        .await;
    for (id, state) in [
        ("etl-a", "paused"),
        ("etl-b", "paused"),
        ("site", "scheduled"),
    ] {
        assert_eq!(job_state(&app, id).await, state, "{id}");
    }
    browser.press("Back to the jobs").await;
    browser.wait_for_text("etl-a").await;
    // One change to every job the labels pick: a merge patch.
    browser.click("#bulk-patch-toggle").await;
    browser.fill("#bulk-patch", r#"{"max_instances": 3}"#).await;
    browser.screenshot("bulk-patch").await;
    browser.press("Change all").await;
    browser
        .wait_for_text("patch: 2 changed, 0 unchanged.")
        .await;
    for (id, most) in [("etl-a", 3), ("etl-b", 3), ("site", 1)] {
        let job = app.get(&format!("/v1/jobs/{id}")).await.json();
        assert_eq!(job["max_instances"], most, "{id}: {job}");
    }
    browser.press("Back to the jobs").await;
    browser.wait_for_text("etl-a").await;
    browser.press("Delete all…").await;
    browser
        .wait_for_text("Delete these 2 jobs and their runs?")
        .await;
    browser.screenshot("bulk-delete").await;
    assert_eq!(
        app.get("/v1/jobs/etl-a").await.status,
        200,
        "a dry run first"
    );
    browser.press("Delete 2 jobs").await;
    browser.wait_for_text("delete: 2 changed").await;
    let left = app.get("/v1/jobs").await.json();
    assert_eq!(left["items"].as_array().unwrap().len(), 1);
    assert_eq!(left["items"][0]["id"], "site");

    // The trail shows what the dashboard did, job by job.
    browser.open(&app, "/ui/audit").await;
    browser.wait_for_text("job.deleted").await;
    let rows = browser
        .client
        .execute(
            "return [...document.querySelectorAll('tr[data-audit]')].map(r => \
             [...r.cells].slice(2, 4).map(c => c.textContent.trim()).join(' '))",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(
        rows,
        json!([
            "job.deleted etl-b",
            "job.deleted etl-a",
            "job.updated etl-b",
            "job.updated etl-a",
            "job.paused etl-b",
            "job.paused etl-a",
            "job.created site",
            "job.created etl-b",
            "job.created etl-a"
        ])
    );
    browser.screenshot("audit").await;
    browser.open(&app, "/ui/jobs/site").await;
    browser.wait_for_text("Audit trail").await;
    browser.open(&app, "/ui/audit?target=job%2Fsite").await;
    browser.wait_for_text("Audit trail of site").await;
    let shown = browser
        .client
        .execute(
            "return document.querySelectorAll('tr[data-audit]').length",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(shown, json!(1));

    // Jobs ticked in the list are acted on together, whatever their labels.
    for id in ["x-1", "x-2"] {
        let job = json!({"id": id, "trigger": {"type": "interval", "every_s": 3600},
                         "target": {"url": "http://127.0.0.1:9/hook"}});
        assert_eq!(app.post("/v1/jobs", job).await.status, 201);
    }
    browser.open(&app, "/ui").await;
    browser.wait_for_text("x-2").await;
    browser.click("input[name='ids'][value='x-1']").await;
    browser.click("input[name='ids'][value='site']").await;
    browser.screenshot("jobs-selected").await;
    browser.press("Pause selected").await;
    browser
        .wait_for_text("pause: 2 changed, 0 unchanged.")
        .await;
    for (id, state) in [("x-1", "paused"), ("site", "paused"), ("x-2", "scheduled")] {
        assert_eq!(job_state(&app, id).await, state, "{id}");
    }
    browser.open(&app, "/ui").await;
    browser.wait_for_text("x-2").await;
    browser.click("input[name='ids'][value='x-1']").await;
    browser.click("input[name='ids'][value='x-2']").await;
    browser.press("Delete selected…").await;
    browser
        .wait_for_text("Delete these 2 jobs and their runs?")
        .await;
    assert_eq!(app.get("/v1/jobs/x-1").await.status, 200, "a dry run first");
    browser.press("Delete 2 jobs").await;
    browser.wait_for_text("delete: 2 changed").await;
    let left = app.get("/v1/jobs").await.json();
    assert_eq!(left["items"].as_array().unwrap().len(), 1);
}

/// The subscriptions, the event log and (for root) the tokens each have a
/// page (issue 29), read from the store the API writes.
#[tokio::test]
async fn subscriptions_events_and_tokens_have_their_pages() {
    let receiver = Receiver::start().await;
    let db = TestDb::new(Backend::Sqlite).await;
    let mut config = test_config(&db.url);
    config.auth = AuthMode::Required;
    config.targets = Some(cronhook::domain::network_policy::TargetMode::Any);
    let mut app = TestApp::spawn_with(db, config).await;
    let root = app.make_token(Role::Root, "default").await;
    let reader = app.make_token(Role::Read, "default").await;
    app.token = Some(root.clone());
    let made = app
        .post(
            "/v1/subscriptions",
            json!({"url": receiver.url("/events"), "types": ["run.succeeded"]}),
        )
        .await;
    assert_eq!(made.status, 201, "{}", made.text);
    let subscription = made.json()["id"].as_str().unwrap().to_string();
    app.create_job(
        json!({"id": "once", "trigger": {"type": "date", "run_at": now()},
                          "target": {"url": receiver.url("/ok")}}),
    )
    .await;
    eventually(DEADLINE, "the event delivered", || async {
        (!receiver.received("/events").is_empty()).then_some(())
    })
    .await;

    let browser = Browser::start().await;
    let sign_in = |token: String| {
        let browser = &browser;
        let app = &app;
        async move {
            browser.open(app, "/ui/login").await;
            browser.fill("#token", &token).await;
            browser.press("Sign in").await;
            browser.wait_for_text("Jobs").await;
        }
    };
    sign_in(root.clone()).await;
    browser.open(&app, "/ui/subscriptions").await;
    browser.wait_for_text(&subscription).await;
    assert_eq!(browser.count("tr[data-subscription]").await, 1);
    let row = browser.text_of("tr[data-subscription]").await;
    assert!(
        row.contains("run.succeeded") && row.contains("UTC · 200"),
        "{row}"
    );
    browser.screenshot("subscriptions").await;

    browser.open(&app, "/ui/events").await;
    browser.wait_for_text("run.succeeded").await;
    let shown = browser.count("tr[data-event]").await;
    let listed = app.get("/v1/events?limit=500").await.json();
    assert_eq!(shown, listed["items"].as_array().unwrap().len());
    browser.screenshot("events").await;
    browser.open(&app, "/ui/events?type=job.created").await;
    browser.wait_for_text("job.created").await;
    assert_eq!(browser.count("tr[data-event]").await, 1);
    assert!(browser.text_of("tr[data-event]").await.contains("once"));

    browser.open(&app, "/ui/tokens").await;
    browser.wait_for_text("Last used").await;
    assert_eq!(browser.count("tr[data-token]").await, 2);
    browser.screenshot("tokens").await;
    let page = browser.main_text().await;
    assert!(
        !page.contains(&root) && !page.contains(&reader),
        "never a token's text"
    );

    // A read token has no tokens page, nor a link to it.
    browser.press("Sign out").await;
    sign_in(reader).await;
    assert!(!browser.has_button("Tokens").await);
    browser.open(&app, "/ui/tokens").await;
    browser.wait_for_text("needs a root token").await;
}

/// Bad input to the form and the new pages is a 4xx page that says why,
/// never a 500; a post without the page's CSRF token makes nothing.
#[tokio::test]
async fn bad_input_to_the_form_and_new_pages_is_a_4xx_that_says_why() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let plain = common::no_redirects();
    for (path, status, says) in [
        ("/ui/events?before=nope", 400, "bad query"),
        ("/ui/events?type=run.bogus", 400, "run.bogus"),
        ("/ui/new-job?from=missing", 404, "missing"),
        ("/ui/jobs/missing/edit", 404, "missing"),
    ] {
        let answer = plain.get(app.url(path)).send().await.unwrap();
        assert_eq!(answer.status(), status, "{path}");
        let text = answer.text().await.unwrap();
        assert!(text.contains(says), "{path}: {text}");
    }
    let form = "id=made&trigger_type=cron&expr=*+*+*+*+*&url=http%3A%2F%2Fx.test%2F&action=save";
    for (path, body) in [
        ("/ui/new-job", form.to_string()),
        ("/ui/job-preview", form.to_string()),
        ("/ui/new-job", "csrf=%ZZ".to_string()),
    ] {
        let answer = plain
            .post(app.url(path))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body.clone())
            .send()
            .await
            .unwrap();
        let status = answer.status().as_u16();
        assert!((400..500).contains(&status), "{path} {body}: {status}");
    }
    assert_eq!(app.get("/v1/jobs/made").await.status, 404);
}

/// Every page, light and dark (the system's theme), at 1280 px and on a
/// 375 px phone without scrolling sideways (a wide table scrolls in its
/// own box); a screenshot of each in target/ui-screenshots (issue 29).
#[tokio::test]
async fn every_page_in_light_and_dark_fits_a_phone() {
    let receiver = Receiver::start().await;
    let app = TestApp::spawn(Backend::Sqlite).await;
    let id = "a-job-with-a-rather-long-identifier-for-a-narrow-screen";
    app.create_job(json!({
        "id": id,
        "trigger": {"type": "cron", "expr": "*/5 * * * *", "timezone": "Europe/Berlin"},
        "target": {"url": receiver.url("/ok")}
    }))
    .await;
    app.create_job(
        json!({"id": "once", "trigger": {"type": "date", "run_at": now()},
                          "target": {"url": receiver.url("/ok")}}),
    )
    .await;
    let run = eventually(DEADLINE, "the run of once", || async {
        let run = runs_of(&app, "once").await.first()?.clone();
        (run["status"] == "succeeded").then(|| run["id"].as_str().unwrap().to_string())
    })
    .await;
    // The overview counts the run and how late it went out (§10).
    let overview = app.get("/ui/overview").await;
    assert_eq!(overview.status, 200, "{}", overview.text);
    let figure = |id: &str| -> String {
        let from = overview.text.find(&format!("id=\"{id}\">")).expect(id) + id.len() + 6;
        overview.text[from..].split('<').next().unwrap().to_string()
    };
    assert!(
        figure("runs-succeeded").parse::<u32>().unwrap() >= 1,
        "{}",
        overview.text
    );
    assert!(
        figure("lateness").ends_with(" ms") || figure("lateness").ends_with(" s"),
        "{}",
        figure("lateness")
    );
    assert!(
        overview.text.contains("<rect class=\"succeeded\""),
        "{}",
        overview.text
    );
    // A run's page shows the request that went.
    let page = app.get(&format!("/ui/runs/{run}")).await;
    for shown in [
        format!("POST {}", receiver.url("/ok")),
        format!("webhook-id: {run}"),
        "cronhook-job-id: once".to_string(),
    ] {
        assert!(page.text.contains(&shown), "{shown}: {}", page.text);
    }
    let job = format!("/ui/jobs/{id}");
    let pages = [
        ("/ui/overview".to_string(), "Runs per hour", "overview"),
        ("/ui".to_string(), "Jobs", "jobs"),
        (job.clone(), "Next fire times", "job"),
        (format!("{job}/edit"), "The request a run sends", "job-edit"),
        (format!("{job}/backfill"), "occurrences", "backfill"),
        (format!("{job}/secret"), "whsec_", "secret"),
        (format!("{job}/delete"), "Delete job", "delete"),
        (
            "/ui/new-job".to_string(),
            "The request a run sends",
            "job-new",
        ),
        (format!("/ui/runs/{run}"), "Attempts", "run"),
        ("/ui/failed".to_string(), "Failed runs", "failed"),
        ("/ui/alerts".to_string(), "Alerts", "alerts"),
        ("/ui/flows".to_string(), "Flow keys", "flows"),
        ("/ui/agenda".to_string(), "Agenda", "agenda"),
        ("/ui/events".to_string(), "job.created", "events"),
        (
            "/ui/subscriptions".to_string(),
            "No subscriptions yet",
            "subscriptions",
        ),
        ("/ui/tokens".to_string(), "No tokens", "tokens"),
        ("/ui/audit".to_string(), "job.created", "audit"),
    ];
    for (width, dark) in [(375, true), (375, false), (1280, true), (1280, false)] {
        let size = format!("--window-size={width},812");
        let mut flags = vec![size.as_str()];
        if dark {
            flags.push("--force-dark-mode");
        }
        let browser = Browser::start_with(&flags).await;
        let theme = if dark { "dark" } else { "light" };
        for (path, shows, name) in &pages {
            browser.open(&app, path).await;
            browser.wait_for_text(shows).await;
            let background = browser
                .client
                .execute(
                    "return getComputedStyle(document.documentElement).backgroundColor",
                    vec![],
                )
                .await
                .unwrap();
            let expected = if dark {
                "rgb(20, 23, 29)"
            } else {
                "rgb(255, 255, 255)"
            };
            assert_eq!(background, json!(expected), "{path} in {theme}");
            let overflow = browser
                .client
                .execute(
                    "return document.documentElement.scrollWidth - window.innerWidth",
                    vec![],
                )
                .await
                .unwrap();
            assert!(
                overflow.as_i64().unwrap() <= 0,
                "{path} scrolls sideways by {overflow} px at {width} px"
            );
            browser.screenshot(&format!("{name}-{width}-{theme}")).await;
        }
        browser.client.clone().close().await.unwrap();
    }
}
