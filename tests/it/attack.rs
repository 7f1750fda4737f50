//! The adversarial suite (issue 22): what an attacker on the loopback
//! interface tries, with and without a token, bounded in requests and
//! time, on both stores. Each test failed before its fix.

use crate::support as common;

use std::time::Duration;

use common::receiver::{Answer, Receiver};
use common::{Backend, Reply, TestApp, send};
use cronhook::domain::auth::Role;

/// Made-up methods and paths, sent without a token, add no series to
/// `/metrics`: its labels come from closed sets.
async fn made_up_methods_and_paths_add_no_metric_series(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let root = app.make_token(Role::Root, "default").await;
    for i in 0..300 {
        let method = reqwest::Method::from_bytes(format!("XM{i}").as_bytes()).unwrap();
        let path = if i % 2 == 0 {
            format!("/v1/jobs/j{i}")
        } else {
            format!("/nowhere/{i}")
        };
        let reply = send(&app, method, &path, None, &[], None).await;
        assert!(
            (400..500).contains(&reply.status),
            "{path}: {}",
            reply.status
        );
    }
    let metrics = send(
        &app,
        reqwest::Method::GET,
        "/metrics",
        Some(&root),
        &[],
        None,
    )
    .await;
    assert_eq!(metrics.status, 200);
    let series: Vec<&str> = metrics
        .text
        .lines()
        .filter(|l| l.starts_with("cronhook_http_requests_total{"))
        .collect();
    assert!(series.len() <= 10, "{series:#?}");
    assert!(!metrics.text.contains("XM"), "{}", metrics.text);
    assert!(!metrics.text.contains("/nowhere"), "{}", metrics.text);
    assert!(
        series
            .iter()
            .any(|l| l.contains("method=\"other\"") && l.contains("status=\"4xx\"")),
        "{series:#?}"
    );
}

/// API answers, refusals included, are neither cached nor sniffed.
async fn api_answers_are_not_cached_or_sniffed(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let root = app.make_token(Role::Root, "default").await;
    for (token, status) in [(Some(root.as_str()), 200), (None, 401)] {
        let reply = send(&app, reqwest::Method::GET, "/v1/tokens", token, &[], None).await;
        assert_eq!(reply.status, status);
        assert_eq!(reply.headers["cache-control"], "no-store");
        assert_eq!(reply.headers["x-content-type-options"], "nosniff");
    }
    // The dashboard's pages too.
    let page = send(&app, reqwest::Method::GET, "/ui/login", None, &[], None).await;
    assert_eq!(page.headers["x-content-type-options"], "nosniff");
}

/// Opens an event stream; answers the response, still streaming when 200.
async fn open_stream(app: &TestApp, token: &str) -> reqwest::Response {
    app.client
        .get(app.url("/v1/events/stream"))
        .bearer_auth(token)
        .send()
        .await
        .expect("sent")
}

/// Whether the stream ended (the service closed it) within `deadline`.
async fn ends_within(mut stream: reqwest::Response, deadline: std::time::Duration) -> bool {
    let until = tokio::time::Instant::now() + deadline;
    loop {
        match tokio::time::timeout_at(until, stream.chunk()).await {
            Err(_) => return false,
            Ok(Ok(Some(_))) => continue,
            Ok(Ok(None) | Err(_)) => return true,
        }
    }
}

/// Streams past a token's or a tenant's cap are refused with 429; a
/// revoked token's streams close, and give their places back.
async fn streams_are_capped_and_closed_when_their_token_is_revoked(backend: Backend) {
    let db = common::TestDb::new(backend).await;
    let mut config = common::test_config(&db.url);
    config.max_streams_per_token = 2;
    config.max_streams_per_tenant = 3;
    let app = TestApp::spawn_with(db, config).await;
    let first = app.make_token(Role::Read, "team-a").await;
    let second = app.make_token(Role::Read, "team-a").await;

    let mut held = Vec::new();
    for _ in 0..2 {
        let stream = open_stream(&app, &first).await;
        assert_eq!(stream.status(), 200);
        held.push(stream);
    }
    let refused = Reply::from(open_stream(&app, &first).await).await;
    let detail = refused.problem(429);
    assert!(detail.contains("--max-streams-per-token"), "{detail}");
    assert_eq!(refused.headers["retry-after"], "5");

    let third = open_stream(&app, &second).await;
    assert_eq!(third.status(), 200, "another token of the tenant");
    let detail = Reply::from(open_stream(&app, &second).await)
        .await
        .problem(429);
    assert!(detail.contains("--max-streams-per-tenant"), "{detail}");

    // Revoked in the store, as another instance would: its streams end
    // within the token cache's second (10 s allowed), and free their places.
    let store = app.store();
    let id = store
        .find_token(&cronhook::domain::auth::token_hash(&first))
        .await
        .unwrap()
        .expect("made")
        .id;
    assert!(store.revoke_token(&id).await.unwrap());
    for stream in held {
        assert!(
            ends_within(stream, std::time::Duration::from_secs(10)).await,
            "a revoked token's stream stays open"
        );
    }
    assert!(
        !ends_within(third, std::time::Duration::from_millis(1500)).await,
        "another token's stream is left alone"
    );
    let again = open_stream(&app, &second).await;
    assert_eq!(again.status(), 200, "the places are free again");
}

/// A paused job whose target is on loopback.
fn loopback_job(id: &str) -> serde_json::Value {
    serde_json::json!({
        "id": id,
        "trigger": {"type": "cron", "expr": "@yearly"},
        "target": {"url": "http://127.0.0.1:9/hook"},
        "paused": true,
    })
}

/// `any` is only the open loopback service's default: once a token is
/// made, webhook targets are public-only (behind a reverse proxy, a
/// tenant's token could otherwise reach the host's own services); an
/// explicit `--targets any` stays.
async fn a_token_makes_the_default_targets_public_only(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    assert_eq!(app.post("/v1/jobs", loopback_job("open")).await.status, 201);
    let root = app.make_token(Role::Root, "default").await;
    let detail = common::eventually(
        std::time::Duration::from_secs(30),
        "loopback targets refused",
        || async {
            let reply = create_as(&app, &root, loopback_job("closed")).await;
            (reply.status == 422).then(|| reply.problem(422))
        },
    )
    .await;
    assert!(detail.contains("loopback address"), "{detail}");

    let db = common::TestDb::new(backend).await;
    let mut config = common::test_config(&db.url);
    config.targets = Some(cronhook::domain::network_policy::TargetMode::Any);
    let explicit = TestApp::spawn_with(db, config).await;
    let root = explicit.make_token(Role::Root, "default").await;
    assert_eq!(
        create_as(&explicit, &root, loopback_job("chosen"))
            .await
            .status,
        201,
        "--targets any is a choice"
    );
}

/// A request naming `tenant`, as the open API takes it.
async fn as_tenant(
    app: &TestApp,
    method: reqwest::Method,
    tenant: &str,
    path: &str,
    body: Option<serde_json::Value>,
) -> Reply {
    send(
        app,
        method,
        path,
        None,
        &[("cronhook-tenant", tenant)],
        body,
    )
    .await
}

/// Creates a job with `token`.
async fn create_as(app: &TestApp, token: &str, body: serde_json::Value) -> Reply {
    send(
        app,
        reqwest::Method::POST,
        "/v1/jobs",
        Some(token),
        &[],
        Some(body),
    )
    .await
}

/// A tenant past its quota of jobs or subscriptions is refused with 429,
/// naming the flag; other tenants, and changes to what it holds, are not.
async fn a_tenant_past_its_quota_is_refused(backend: Backend) {
    use reqwest::Method;
    let db = common::TestDb::new(backend).await;
    let mut config = common::test_config(&db.url);
    config.max_jobs_per_tenant = 2;
    config.max_subscriptions_per_tenant = 1;
    let app = TestApp::spawn_with(db, config).await;
    for id in ["a1", "a2"] {
        let made = as_tenant(&app, Method::POST, "a", "/v1/jobs", Some(loopback_job(id))).await;
        assert_eq!(made.status, 201, "{}", made.text);
    }
    let refused = as_tenant(
        &app,
        Method::POST,
        "a",
        "/v1/jobs",
        Some(loopback_job("a3")),
    )
    .await;
    let detail = refused.problem(429);
    assert!(
        detail.contains("its quota (2: --max-jobs-per-tenant"),
        "{detail}"
    );
    assert_eq!(refused.headers["retry-after"], "5");
    // What it holds may still change; another tenant is not held back.
    let mut changed = loopback_job("a1");
    changed["name"] = serde_json::json!("renamed");
    let replaced = as_tenant(&app, Method::PUT, "a", "/v1/jobs/a1", Some(changed)).await;
    assert_eq!(replaced.status, 200, "{}", replaced.text);
    let other = as_tenant(
        &app,
        Method::POST,
        "b",
        "/v1/jobs",
        Some(loopback_job("b1")),
    )
    .await;
    assert_eq!(other.status, 201);
    // Nor does a bundle get past it, whose jobs are counted together.
    let three = serde_json::json!({"apiVersion": "cronhook/v1", "kind": "Bundle",
        "jobs": [loopback_job("c1"), loopback_job("c2"), loopback_job("c3")]});
    let refused = as_tenant(&app, Method::POST, "c", "/v1/apply", Some(three)).await;
    assert_eq!(refused.status, 429, "{}", refused.text);
    let held = as_tenant(&app, Method::GET, "c", "/v1/jobs", None).await;
    assert_eq!(held.json()["items"], serde_json::json!([]), "{}", held.text);
    // One deleted, one more fits.
    let deleted = as_tenant(&app, Method::DELETE, "a", "/v1/jobs/a2", None).await;
    assert_eq!(deleted.status, 204);
    let made = as_tenant(
        &app,
        Method::POST,
        "a",
        "/v1/jobs",
        Some(loopback_job("a3")),
    )
    .await;
    assert_eq!(made.status, 201, "{}", made.text);

    let subscription =
        serde_json::json!({"url": "http://127.0.0.1:9/events", "types": ["run.failed"]});
    let made = as_tenant(
        &app,
        Method::POST,
        "a",
        "/v1/subscriptions",
        Some(subscription.clone()),
    )
    .await;
    assert_eq!(made.status, 201, "{}", made.text);
    let refused = as_tenant(
        &app,
        Method::POST,
        "a",
        "/v1/subscriptions",
        Some(subscription),
    )
    .await;
    let detail = refused.problem(429);
    assert!(
        detail.contains("its quota (1: --max-subscriptions-per-tenant"),
        "{detail}"
    );
}

/// One tenant's jobs to a target that never answers hold every slot of
/// --max-in-flight: another tenant's run goes out at once, in the reserve
/// beyond them, while they hang.
/// (Before: they held every slot, and the other run waited for their
/// timeouts.)
async fn a_tenant_holds_at_most_its_share_of_the_slots(backend: Backend) {
    use reqwest::Method;
    let receiver = Receiver::start().await;
    receiver.script("/slow", std::iter::repeat_n(Answer::Hang, 8));
    let db = common::TestDb::new(backend).await;
    let mut config = common::test_config(&db.url);
    config.max_in_flight = 4;
    let app = TestApp::spawn_with(db, config).await;
    let job = |id: &str, path: &str| {
        serde_json::json!({
            "id": id,
            "trigger": {"type": "cron", "expr": "@yearly"},
            "target": {"url": receiver.url(path), "timeout_s": 300},
            "retry": {"max_attempts": 1},
        })
    };
    for n in 0..8 {
        let id = format!("slow-{n}");
        let made = as_tenant(&app, Method::POST, "a", "/v1/jobs", Some(job(&id, "/slow"))).await;
        assert_eq!(made.status, 201, "{}", made.text);
        let run = as_tenant(&app, Method::POST, "a", &format!("/v1/jobs/{id}/run"), None).await;
        assert_eq!(run.status, 201, "{}", run.text);
    }
    common::eventually(Duration::from_secs(30), "a's slots taken", || async {
        (receiver.received("/slow").len() >= 4).then_some(())
    })
    .await;
    let made = as_tenant(
        &app,
        Method::POST,
        "b",
        "/v1/jobs",
        Some(job("fast", "/fast")),
    )
    .await;
    assert_eq!(made.status, 201, "{}", made.text);
    let run = as_tenant(&app, Method::POST, "b", "/v1/jobs/fast/run", None).await;
    assert_eq!(run.status, 201, "{}", run.text);
    let asked = chrono::Utc::now();
    let got = common::eventually(Duration::from_secs(60), "b's run sent", || async {
        receiver.received("/fast").pop()
    })
    .await;
    eprintln!(
        "b's run went out {} ms after it was asked for",
        (got.at - asked).num_milliseconds()
    );
    assert_eq!(
        receiver.received("/slow").len(),
        4,
        "a, alone, held its 4 slots, none of the reserve"
    );
}

/// Waits, if need be, until the minute has at least 10 s left: a test of
/// a per-minute count must not straddle two minutes.
async fn early_in_a_minute() {
    common::eventually(
        Duration::from_secs(20),
        "10 s left in the minute",
        || async { (chrono::Utc::now().timestamp().rem_euclid(60) < 50).then_some(()) },
    )
    .await;
}

/// Root sets one tenant's quotas; they bind that tenant only, and say so
/// in their refusals. Runs made past the minute's quota: a run-now is a
/// 429 until the minute ends.
async fn root_sets_a_tenant_s_quotas(backend: Backend) {
    use reqwest::Method;
    let app = TestApp::spawn(backend).await;
    let set = serde_json::json!({"jobs": 1, "runs_per_minute": 2});
    let reply = app.put("/v1/tenants/a/quotas", set).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let quotas = reply.json();
    assert_eq!(quotas["jobs"], 1);
    assert_eq!(quotas["runs_per_minute"], 2);
    assert_eq!(quotas["subscriptions"], 100, "unset: the default");
    assert_eq!(app.get("/v1/tenants/a/quotas").await.json(), quotas);
    assert_eq!(
        app.get("/v1/tenants/b/quotas").await.json()["jobs"],
        100_000
    );

    for (body, field) in [
        (serde_json::json!({"jobs": 0}), "jobs"),
        (
            serde_json::json!({"runs_per_minute": -1}),
            "runs_per_minute",
        ),
        (serde_json::json!({"catchup_max": 1001}), "catchup_max"),
    ] {
        let refused = app.put("/v1/tenants/a/quotas", body).await;
        let detail = refused.problem(422);
        assert!(detail.contains(field), "{detail}");
    }
    let refused = app
        .put("/v1/tenants/a%20b/quotas", serde_json::json!({}))
        .await;
    assert!(refused.problem(422).contains("tenant"), "{}", refused.text);

    let mut job = loopback_job("a1");
    job["max_instances"] = serde_json::json!(10);
    let made = as_tenant(&app, Method::POST, "a", "/v1/jobs", Some(job)).await;
    assert_eq!(made.status, 201, "{}", made.text);
    let refused = as_tenant(
        &app,
        Method::POST,
        "a",
        "/v1/jobs",
        Some(loopback_job("a2")),
    )
    .await;
    assert!(
        refused.problem(429).contains("its quota (1"),
        "{}",
        refused.text
    );
    let other = as_tenant(
        &app,
        Method::POST,
        "b",
        "/v1/jobs",
        Some(loopback_job("b1")),
    )
    .await;
    assert_eq!(other.status, 201, "another tenant keeps the defaults");

    early_in_a_minute().await;
    for _ in 0..2 {
        let run = as_tenant(&app, Method::POST, "a", "/v1/jobs/a1/run", None).await;
        assert_eq!(run.status, 201, "{}", run.text);
    }
    let refused = as_tenant(&app, Method::POST, "a", "/v1/jobs/a1/run", None).await;
    assert!(
        refused.problem(429).contains("made 2 runs this minute"),
        "{}",
        refused.text
    );
    let wait: u32 = refused.headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&wait), "until the minute ends: {wait}");
    let other = as_tenant(&app, Method::POST, "b", "/v1/jobs/b1/run", None).await;
    assert_eq!(other.status, 201, "{}", other.text);
}

/// Quotas are root's: a write token of the tenant cannot raise its own.
async fn only_root_sets_quotas(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let write = app.make_token(Role::Write, "a").await;
    let reply = send(
        &app,
        reqwest::Method::PUT,
        "/v1/tenants/a/quotas",
        Some(&write),
        &[],
        Some(serde_json::json!({"jobs": 1000000})),
    )
    .await;
    assert_eq!(reply.status, 403, "{}", reply.text);
}

/// A webhook URL's secret lives in its path or query (Slack, Discord): the
/// whole URL is sealed at rest, and a read token is shown only its scheme
/// and host; a write token sees the URL it set.
async fn a_target_url_is_sealed_and_masked_for_read_tokens(backend: Backend) {
    use reqwest::Method;
    let app = TestApp::spawn(backend).await;
    let secret_url = "https://hooks.example.com/services/T000/B000/XXSECRETXX?token=qq123";
    let job = serde_json::json!({
        "id": "slack",
        "trigger": {"type": "cron", "expr": "@yearly"},
        "target": {"url": secret_url},
        "paused": true,
    });
    assert_eq!(app.post("/v1/jobs", job).await.status, 201);
    let subscription = serde_json::json!({"url": secret_url, "types": ["run.failed"]});
    let made = app.post("/v1/subscriptions", subscription).await;
    assert_eq!(made.status, 201, "{}", made.text);
    let subscription_id = made.json()["id"].as_str().unwrap().to_string();

    let root = app.make_token(Role::Root, "default").await;
    let read = app.make_token(Role::Read, "default").await;
    let get = |token: String, path: String| {
        let app = &app;
        async move {
            send(app, Method::GET, &path, Some(&token), &[], None)
                .await
                .json()
        }
    };
    let full = get(root.clone(), "/v1/jobs/slack".into()).await;
    assert_eq!(full["target"]["url"], secret_url, "the writer sees its URL");
    let masked = get(read.clone(), "/v1/jobs/slack".into()).await;
    assert_eq!(masked["target"]["url"], "https://hooks.example.com/***");
    let listed = get(read.clone(), "/v1/jobs".into()).await;
    assert_eq!(
        listed["items"][0]["target"]["url"],
        "https://hooks.example.com/***"
    );
    let one = get(read.clone(), format!("/v1/subscriptions/{subscription_id}")).await;
    assert_eq!(one["url"], "https://hooks.example.com/***");
    let all = get(read, "/v1/subscriptions".into()).await;
    assert_eq!(all["items"][0]["url"], "https://hooks.example.com/***");
    let full = get(root, "/v1/subscriptions".into()).await;
    assert_eq!(full["items"][0]["url"], secret_url);

    let db = common::TestDb::existing(&app.db.url);
    let jobs: Vec<(String, Option<String>)> = db
        .fetch_all("SELECT target_url, target_secrets FROM jobs")
        .await;
    let subscriptions: Vec<(String, Option<String>)> = db
        .fetch_all("SELECT target_url, target_secrets FROM subscriptions")
        .await;
    for (url, sealed) in jobs.iter().chain(&subscriptions) {
        assert_eq!(url, "https://hooks.example.com/***");
        let sealed = sealed.as_deref().unwrap_or("");
        for secret in ["XXSECRETXX", "qq123", "services"] {
            assert!(!sealed.contains(secret), "{sealed}");
        }
    }
}

/// The dashboard's cookie holds a session id, never the API token: kept
/// as a hash, ended by sign-out (the copied id opens nothing after) and by
/// revoking its token, `Secure` behind HTTPS, its forms bound to its own
/// CSRF token.
async fn dashboard_sessions_are_server_side(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let writer = app.make_token(Role::Write, "default").await;
    let (login, _) = common::ui_sign_in(&app, &writer, &[]).await;
    assert_eq!(login.status(), 303);
    let line = common::set_cookie(&login, "cronhook_session").expect("a session cookie");
    let session = common::cookie_value(&line);
    assert!(
        session.starts_with("chs_") && !session.contains(&writer),
        "{line}"
    );
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/ui", "Max-Age=43200"] {
        assert!(line.contains(attribute), "{line}");
    }
    assert!(!line.contains("Secure"), "plain HTTP: {line}");
    let stored: Vec<(String,)> = common::TestDb::existing(&app.db.url)
        .fetch_all("SELECT hash FROM ui_sessions")
        .await;
    assert_eq!(stored.len(), 1);
    assert_ne!(stored[0].0, session, "only its hash is kept");

    let plain = common::no_redirects();
    let page = |cookie: String| {
        let plain = plain.clone();
        let url = app.url("/ui");
        async move {
            plain
                .get(url)
                .header("cookie", cookie)
                .send()
                .await
                .unwrap()
                .status()
        }
    };
    assert_eq!(page(format!("cronhook_session={session}")).await, 200);
    assert_eq!(
        page(format!("cronhook_session={writer}")).await,
        303,
        "a token in the cookie opens nothing"
    );
    // A form with a CSRF token of its own making is refused, even with a
    // matching double-submit cookie.
    let forged = plain
        .post(app.url("/ui/logout"))
        .header(
            "cookie",
            format!("cronhook_session={session}; cronhook_csrf=abc"),
        )
        .header("content-type", "application/x-www-form-urlencoded")
        .body("csrf=abc")
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 403);
    assert_eq!(page(format!("cronhook_session={session}")).await, 200);

    // Sign-out with the page's own token ends it for good.
    let html = plain
        .get(app.url("/ui"))
        .header("cookie", format!("cronhook_session={session}"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let csrf = html
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("a form's CSRF token")
        .to_string();
    let out = plain
        .post(app.url("/ui/logout"))
        .header("cookie", format!("cronhook_session={session}"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("csrf={csrf}"))
        .send()
        .await
        .unwrap();
    assert_eq!(out.status(), 303);
    assert_eq!(page(format!("cronhook_session={session}")).await, 303);

    // Behind HTTPS the cookie is Secure; revoking the token ends its
    // sessions.
    let (login, _) = common::ui_sign_in(&app, &writer, &[("x-forwarded-proto", "https")]).await;
    let line = common::set_cookie(&login, "cronhook_session").unwrap();
    assert!(line.contains("Secure"), "{line}");
    let session = common::cookie_value(&line);
    assert_eq!(page(format!("cronhook_session={session}")).await, 200);
    let id = app
        .store()
        .list_tokens()
        .await
        .unwrap()
        .into_iter()
        .find(|t| t.role == Role::Write)
        .unwrap()
        .id;
    assert!(app.store().revoke_token(&id).await.unwrap());
    common::eventually(Duration::from_secs(10), "the session ended", || async {
        (page(format!("cronhook_session={session}")).await == 303).then_some(())
    })
    .await;
}

/// `--cookie-secure`: the session and CSRF cookies are `Secure` even on a
/// request that does not say it came over HTTPS (a proxy that terminates
/// TLS and forwards no such header).
async fn cookie_secure_marks_every_dashboard_cookie_secure(backend: Backend) {
    let db = common::TestDb::new(backend).await;
    let mut config = common::test_config(&db.url);
    config.cookie_secure = true;
    let app = TestApp::spawn_with(db, config).await;
    let writer = app.make_token(Role::Write, "default").await;
    let page = common::no_redirects()
        .get(app.url("/ui/login"))
        .send()
        .await
        .unwrap();
    let csrf = common::set_cookie(&page, "cronhook_csrf").expect("a CSRF cookie");
    assert!(csrf.contains("Secure"), "{csrf}");
    let (login, _) = common::ui_sign_in(&app, &writer, &[]).await;
    assert_eq!(login.status(), 303);
    let line = common::set_cookie(&login, "cronhook_session").expect("a session cookie");
    assert!(line.contains("Secure"), "{line}");
}

store_tests!(
    dashboard_sessions_are_server_side,
    cookie_secure_marks_every_dashboard_cookie_secure,
    a_target_url_is_sealed_and_masked_for_read_tokens,
    root_sets_a_tenant_s_quotas,
    only_root_sets_quotas,
    a_tenant_holds_at_most_its_share_of_the_slots,
    a_tenant_past_its_quota_is_refused,
    a_token_makes_the_default_targets_public_only,
    made_up_methods_and_paths_add_no_metric_series,
    api_answers_are_not_cached_or_sniffed,
    streams_are_capped_and_closed_when_their_token_is_revoked,
);
