//! What makes the API safe to expose (DESIGN.md §8), tried from outside
//! as a client would, on both stores: tokens and roles, tenants, and the
//! browser protections of the open loopback mode.

use crate::support as common;

use common::{Backend, Reply, TestApp, send};
use cronhook::domain::auth::Role;
use serde_json::{Value, json};

fn job(id: &str) -> Value {
    json!({
        "id": id,
        "trigger": {"type": "cron", "expr": "@yearly"},
        "target": {"url": "http://127.0.0.1:9/hook"},
        "paused": true,
    })
}

/// The service with `--targets any`: these tests make tokens, which turn
/// the default targets public-only within 2 s (`attack.rs` tests that),
/// and their jobs point at loopback; without it a slow machine saw a
/// creation refused, depending on when the 2 s fell.
async fn spawn_keeping_loopback_targets(backend: Backend) -> TestApp {
    let db = common::TestDb::new(backend).await;
    let mut config = common::test_config(&db.url);
    config.targets = Some(cronhook::domain::network_policy::TargetMode::Any);
    TestApp::spawn_with(db, config).await
}

async fn get(app: &TestApp, path: &str, token: &str) -> Reply {
    send(app, reqwest::Method::GET, path, Some(token), &[], None).await
}

async fn post(app: &TestApp, path: &str, token: &str, body: Option<Value>) -> Reply {
    send(app, reqwest::Method::POST, path, Some(token), &[], body).await
}

async fn tokens_are_required_once_one_was_made(backend: Backend) {
    let mut app = TestApp::spawn(backend).await;
    // Loopback, no token: open, as the first run promises.
    assert_eq!(app.get("/v1/jobs").await.status, 200);

    // The first token over the API must be root: otherwise nobody could
    // manage tokens any more.
    let refused = app
        .post("/v1/tokens", json!({"role": "write", "tenant": "team-a"}))
        .await
        .problem(409);
    assert!(refused.contains("root token first"), "{refused}");

    let made = app
        .post("/v1/tokens", json!({"role": "root", "name": "ops"}))
        .await;
    assert_eq!(made.status, 201, "{}", made.text);
    let made = made.json();
    let root = made["token"].as_str().unwrap().to_string();
    assert!(root.starts_with("chk_") && root.len() == 47, "{root}");
    assert_eq!(made["role"], "root");
    assert_eq!(made["tenant"], "default");
    assert_eq!(made["name"], "ops");

    // Now the API wants it: 401 with a Bearer challenge, as problem+json.
    let missing = app.get("/v1/jobs").await;
    let detail = missing.problem(401);
    assert!(detail.contains("Authorization: Bearer"), "{detail}");
    assert_eq!(
        missing.headers["www-authenticate"],
        "Bearer realm=\"cronhook\""
    );
    for bad in ["chk_not-a-token", "Basic abc", &format!("{root}x")] {
        let reply = send(
            &app,
            reqwest::Method::GET,
            "/v1/jobs",
            None,
            &[("authorization", &format!("Bearer {bad}"))],
            None,
        )
        .await;
        reply.problem(401);
    }
    assert_eq!(get(&app, "/v1/jobs", &root).await.status, 200);
    // Health and the documents stay open.
    for open in ["/healthz", "/readyz", "/openapi.json", "/docs/"] {
        assert_eq!(app.get(open).await.status, 200, "{open}");
    }

    // Listed without their text or hash; last use recorded.
    let listed = common::eventually(
        std::time::Duration::from_secs(30),
        "last_used_at recorded",
        || async {
            let list = get(&app, "/v1/tokens", &root).await.json();
            let token = list["items"][0].clone();
            token["last_used_at"].is_string().then_some(list)
        },
    )
    .await;
    assert_eq!(listed["items"].as_array().unwrap().len(), 1);
    let text = listed.to_string();
    assert!(!text.contains(&root[4..]), "{text}");
    assert!(!text.contains("hash"), "{text}");

    // Revoked: refused at once here. The service does not open again,
    // though no token works: one was made, and only an explicit
    // `--auth none` opens it (issue 22). Nor can an anonymous caller make
    // itself a root token.
    let id = made["id"].as_str().unwrap();
    let revoked = send(
        &app,
        reqwest::Method::DELETE,
        &format!("/v1/tokens/{id}"),
        Some(&root),
        &[],
        None,
    )
    .await;
    assert_eq!(revoked.status, 204, "{}", revoked.text);
    get(&app, "/v1/jobs", &root).await.problem(401);
    app.get("/v1/jobs").await.problem(401);
    app.post("/v1/tokens", json!({"role": "root"}))
        .await
        .problem(401);
    app.restart().await;
    app.get("/v1/jobs").await.problem(401);

    // A token made in the store (`cronhook token create`) lets its holder in.
    let fresh = app.make_token(Role::Root, "default").await;
    let again = send(
        &app,
        reqwest::Method::DELETE,
        &format!("/v1/tokens/{id}"),
        Some(&fresh),
        &[],
        None,
    )
    .await;
    again.problem(404);
    let list = get(&app, "/v1/tokens", &fresh).await.json();
    assert!(list["items"][0]["revoked_at"].is_string(), "{list}");

    // CRONHOOK_ROOT_TOKEN revoked, then the service started again with it:
    // it stays revoked, and the service stays closed.
    let (env_token, _) = cronhook::domain::auth::generate_token();
    app.config.root_token = Some(env_token.clone());
    app.restart().await;
    let listed = get(&app, "/v1/tokens", &env_token).await.json();
    let env_id = listed["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "CRONHOOK_ROOT_TOKEN" && t["revoked_at"].is_null())
        .map(|t| t["id"].as_str().unwrap().to_string())
        .expect("registered");
    let revoked = send(
        &app,
        reqwest::Method::DELETE,
        &format!("/v1/tokens/{env_id}"),
        Some(&fresh),
        &[],
        None,
    )
    .await;
    assert_eq!(revoked.status, 204, "{}", revoked.text);
    app.restart().await;
    get(&app, "/v1/jobs", &env_token).await.problem(401);
    app.get("/v1/jobs").await.problem(401);
}

async fn roles_grant_what_they_say(backend: Backend) {
    let app = spawn_keeping_loopback_targets(backend).await;
    let root = app.make_token(Role::Root, "default").await;
    let write = app.make_token(Role::Write, "team-a").await;
    let read = app.make_token(Role::Read, "team-a").await;

    let created = post(&app, "/v1/jobs", &write, Some(job("report"))).await;
    assert_eq!(created.status, 201, "{}", created.text);

    // read: GET only, never a secret.
    assert_eq!(get(&app, "/v1/jobs", &read).await.status, 200);
    assert_eq!(get(&app, "/v1/jobs/report", &read).await.status, 200);
    assert_eq!(get(&app, "/v1/jobs/report/runs", &read).await.status, 200);
    assert_eq!(get(&app, "/v1/runs", &read).await.status, 200);
    let preview = json!({"trigger": {"type": "cron", "expr": "@daily"}});
    assert_eq!(
        post(&app, "/v1/triggers/preview", &read, Some(preview.clone()))
            .await
            .status,
        200
    );
    let weak = get(&app, "/v1/jobs/report/secret", &read)
        .await
        .problem(403);
    assert!(
        weak.contains("needs a write or root token; this one is read"),
        "{weak}"
    );
    post(&app, "/v1/jobs", &read, Some(job("other")))
        .await
        .problem(403);
    post(&app, "/v1/jobs/report/run", &read, None)
        .await
        .problem(403);
    post(&app, "/v1/jobs/report/pause", &read, None)
        .await
        .problem(403);
    post(&app, "/v1/jobs/report/secret/rotate", &read, None)
        .await
        .problem(403);
    send(
        &app,
        reqwest::Method::DELETE,
        "/v1/jobs/report",
        Some(&read),
        &[],
        None,
    )
    .await
    .problem(403);
    send(
        &app,
        reqwest::Method::PATCH,
        "/v1/jobs/report",
        Some(&read),
        &[],
        Some(json!({"name": "x"})),
    )
    .await
    .problem(403);

    // write: its tenant's jobs and secrets; not tokens, not instances.
    assert_eq!(
        get(&app, "/v1/jobs/report/secret", &write).await.status,
        200
    );
    assert_eq!(
        post(&app, "/v1/jobs/report/run", &write, None).await.status,
        201
    );
    for root_only in ["/v1/tokens", "/v1/instances"] {
        let detail = get(&app, root_only, &write).await.problem(403);
        assert!(detail.contains("needs a root token"), "{detail}");
    }
    post(&app, "/v1/tokens", &write, Some(json!({"role": "root"})))
        .await
        .problem(403);

    // root: everything, tenant `default` unless it names one.
    assert_eq!(get(&app, "/v1/instances", &root).await.status, 200);
    assert_eq!(
        get(&app, "/v1/tokens", &root).await.json()["items"]
            .as_array()
            .unwrap()
            .len(),
        3
    );
    let bad = post(&app, "/v1/tokens", &root, Some(json!({"role": "admin"})))
        .await
        .problem(422);
    assert!(bad.starts_with("role:"), "{bad}");
    let bad = post(
        &app,
        "/v1/tokens",
        &root,
        Some(json!({"role": "read", "tenant": "a/b"})),
    )
    .await
    .problem(422);
    assert!(bad.starts_with("tenant:"), "{bad}");
}

async fn each_tenant_sees_only_its_own(backend: Backend) {
    let app = spawn_keeping_loopback_targets(backend).await;
    let root = app.make_token(Role::Root, "default").await;
    let a = app.make_token(Role::Write, "team-a").await;
    let b = app.make_token(Role::Write, "team-b").await;

    // Ids are unique per tenant: both may have "shared".
    for token in [&a, &b] {
        let created = post(&app, "/v1/jobs", token, Some(job("shared"))).await;
        assert_eq!(created.status, 201, "{}", created.text);
    }
    assert_eq!(
        post(&app, "/v1/jobs", &a, Some(job("a-only"))).await.status,
        201
    );
    let run = post(&app, "/v1/jobs/a-only/run", &a, None).await;
    assert_eq!(run.status, 201, "{}", run.text);
    let run_id = run.json()["id"].as_str().unwrap().to_string();
    let a_secret = get(&app, "/v1/jobs/shared/secret", &a).await.json()["secret"].clone();
    let b_secret = get(&app, "/v1/jobs/shared/secret", &b).await.json()["secret"].clone();
    assert_ne!(a_secret, b_secret);

    // B: another tenant's job is a plain 404 on every endpoint.
    let ids = |reply: Reply| -> Vec<String> {
        reply.json()["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|j| j["id"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(ids(get(&app, "/v1/jobs", &b).await), ["shared"]);
    let not_found = |reply: Reply| {
        let detail = reply.problem(404);
        assert!(
            detail.contains("a-only") || detail.contains(&run_id),
            "{detail}"
        );
    };
    not_found(get(&app, "/v1/jobs/a-only", &b).await);
    not_found(get(&app, "/v1/jobs/a-only/runs", &b).await);
    not_found(get(&app, "/v1/jobs/a-only/secret", &b).await);
    not_found(post(&app, "/v1/jobs/a-only/secret/rotate", &b, None).await);
    not_found(post(&app, "/v1/jobs/a-only/pause", &b, None).await);
    not_found(post(&app, "/v1/jobs/a-only/resume", &b, None).await);
    not_found(post(&app, "/v1/jobs/a-only/run", &b, None).await);
    not_found(
        send(
            &app,
            reqwest::Method::PATCH,
            "/v1/jobs/a-only",
            Some(&b),
            &[],
            Some(json!({"name": "x"})),
        )
        .await,
    );
    not_found(
        send(
            &app,
            reqwest::Method::DELETE,
            "/v1/jobs/a-only",
            Some(&b),
            &[],
            None,
        )
        .await,
    );
    not_found(get(&app, &format!("/v1/runs/{run_id}"), &b).await);
    assert_eq!(get(&app, "/v1/runs", &b).await.json()["items"], json!([]));
    assert_eq!(
        get(&app, "/v1/runs?job_id=a-only", &b).await.json()["items"],
        json!([])
    );
    // PUT makes B a job of its own; A's is untouched.
    let put = send(
        &app,
        reqwest::Method::PUT,
        "/v1/jobs/a-only",
        Some(&b),
        &[],
        Some(job("a-only")),
    )
    .await;
    assert_eq!(put.status, 201, "{}", put.text);
    assert_eq!(
        get(&app, "/v1/jobs/a-only/runs", &a).await.json()["items"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        get(&app, "/v1/jobs/a-only/runs", &b).await.json()["items"],
        json!([])
    );
    // The same Idempotency-Key in two tenants makes two jobs.
    for token in [&a, &b] {
        let reply = send(
            &app,
            reqwest::Method::POST,
            "/v1/jobs",
            Some(token),
            &[("idempotency-key", "k-1")],
            Some(job("keyed")),
        )
        .await;
        assert_eq!(reply.status, 201, "{}", reply.text);
    }
    assert_eq!(
        get(&app, &format!("/v1/runs/{run_id}"), &a).await.status,
        200
    );

    // A token acts on its own tenant only; root names any.
    let detail = send(
        &app,
        reqwest::Method::GET,
        "/v1/jobs",
        Some(&a),
        &[("cronhook-tenant", "team-b")],
        None,
    )
    .await
    .problem(403);
    assert!(detail.contains("acts only on its own tenant"), "{detail}");
    let own = send(
        &app,
        reqwest::Method::GET,
        "/v1/jobs",
        Some(&a),
        &[("cronhook-tenant", "team-a")],
        None,
    )
    .await;
    assert_eq!(own.status, 200);
    assert_eq!(
        ids(get(&app, "/v1/jobs", &root).await),
        Vec::<String>::new(),
        "root acts on default"
    );
    let as_b = send(
        &app,
        reqwest::Method::GET,
        "/v1/jobs",
        Some(&root),
        &[("cronhook-tenant", "team-b")],
        None,
    )
    .await;
    assert_eq!(ids(as_b), ["a-only", "keyed", "shared"]);
    let bad = send(
        &app,
        reqwest::Method::GET,
        "/v1/jobs",
        Some(&root),
        &[("cronhook-tenant", "a b")],
        None,
    )
    .await
    .problem(422);
    assert!(bad.starts_with("cronhook-tenant:"), "{bad}");

    // Deleting B's job leaves A's of the same id.
    let deleted = send(
        &app,
        reqwest::Method::DELETE,
        "/v1/jobs/shared",
        Some(&b),
        &[],
        None,
    )
    .await;
    assert_eq!(deleted.status, 204);
    assert_eq!(get(&app, "/v1/jobs/shared", &a).await.status, 200);
}

async fn browsers_cannot_drive_the_open_api(backend: Backend) {
    let db = common::TestDb::new(backend).await;
    let mut config = common::test_config(&db.url);
    config.allowed_hosts = vec!["cron.internal".into()];
    let app = TestApp::spawn_with(db, config).await;
    let port = app.base.rsplit(':').next().unwrap().to_string();
    app.post("/v1/jobs", job("report")).await;

    // DNS rebinding: a name that is not ours gets 421, even for a GET.
    for path in ["/v1/jobs", "/v1/jobs/report/secret", "/docs/"] {
        let evil = format!("evil.example:{port}");
        let reply = send(
            &app,
            reqwest::Method::GET,
            path,
            None,
            &[("host", &evil)],
            None,
        )
        .await;
        let detail = reply.problem(421);
        assert!(detail.contains("--allowed-hosts"), "{detail}");
    }
    for host in [
        format!("localhost:{port}"),
        format!("127.0.0.1:{port}"),
        format!("cron.internal:{port}"),
    ] {
        let reply = send(
            &app,
            reqwest::Method::GET,
            "/v1/jobs",
            None,
            &[("host", &host)],
            None,
        )
        .await;
        assert_eq!(reply.status, 200, "{host}: {}", reply.text);
    }
    let health = send(
        &app,
        reqwest::Method::GET,
        "/healthz",
        None,
        &[("host", "evil.example")],
        None,
    )
    .await;
    assert_eq!(health.status, 200);

    // CSRF: another origin, or what the browser says is cross-site.
    let own_origin = format!("http://127.0.0.1:{port}");
    let cross_site: [&[(&str, &str)]; 3] = [
        &[("origin", "http://evil.example")],
        &[("origin", "null")],
        &[("sec-fetch-site", "cross-site")],
    ];
    for headers in cross_site {
        for path in [
            "/v1/jobs/report/secret/rotate?grace_s=0",
            "/v1/jobs/report/pause",
            "/v1/jobs/report/run",
        ] {
            let reply = send(&app, reqwest::Method::POST, path, None, headers, None).await;
            let detail = reply.problem(403);
            assert!(
                detail.starts_with("a cross-site request may not change anything"),
                "{detail}"
            );
        }
    }
    let same = send(
        &app,
        reqwest::Method::POST,
        "/v1/jobs/report/pause",
        None,
        &[("origin", &own_origin)],
        None,
    )
    .await;
    assert_eq!(same.status, 200, "{}", same.text);
    // A cross-origin GET is not a change (and reads nothing a page can see
    // without CORS).
    let read = send(
        &app,
        reqwest::Method::GET,
        "/v1/jobs",
        None,
        &[("origin", "http://evil.example")],
        None,
    )
    .await;
    assert_eq!(read.status, 200);

    // Bodies are JSON only: the text/plain and form posts a page can send
    // without a preflight are refused.
    let before = app.get("/v1/jobs/report/secret").await.json();
    for content_type in [
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
    ] {
        let reply = app
            .client
            .post(app.url("/v1/jobs/report/secret/rotate?grace_s=0"))
            .header("content-type", content_type)
            .body("x=1")
            .send()
            .await
            .unwrap();
        Reply::from(reply).await.problem(415);
    }
    assert_eq!(
        app.get("/v1/jobs/report/secret").await.json(),
        before,
        "nothing rotated"
    );

    // With tokens on, any Host is served (a proxy's name). A token made
    // outside this process (the CLI, another instance) counts within a
    // second.
    let root = app.make_token(Role::Root, "default").await;
    common::eventually(
        std::time::Duration::from_secs(30),
        "tokens required",
        || async {
            let proxied = send(
                &app,
                reqwest::Method::GET,
                "/v1/jobs",
                Some(&root),
                &[("host", "cron.example.com")],
                None,
            )
            .await;
            (proxied.status == 200).then_some(())
        },
    )
    .await;
    let unproxied = send(
        &app,
        reqwest::Method::GET,
        "/v1/jobs",
        None,
        &[("host", "cron.example.com")],
        None,
    )
    .await;
    unproxied.problem(401);
}

async fn views_never_show_secret_values(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let created = app
        .post(
            "/v1/jobs",
            json!({
                "id": "hidden",
                "trigger": {"type": "cron", "expr": "@yearly"},
                "target": {"url": "https://hooks:pw-123@example.com/x",
                           "headers": {"Authorization": "Bearer t-123", "X-Api-Key": "k-123",
                                       "Cookie": "c-123", "X-Team": "data"}},
            }),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.text);
    for body in [
        created.json(),
        app.get("/v1/jobs/hidden").await.json(),
        app.get("/v1/jobs").await.json()["items"][0].clone(),
    ] {
        let text = body.to_string();
        for secret in ["pw-123", "t-123", "k-123", "c-123"] {
            assert!(!text.contains(secret), "{text}");
        }
        assert_eq!(body["target"]["url"], "https://hooks:***@example.com/x");
        assert_eq!(body["target"]["headers"], json!({"x-team": "data"}));
        assert_eq!(
            body["target"]["sensitive_headers"],
            json!(["authorization", "cookie", "x-api-key"])
        );
    }
    // A patch that leaves the target alone keeps the secrets; the webhook
    // still carries them (checked in tests/delivery.rs).
    let patched = app
        .patch("/v1/jobs/hidden", json!({"name": "renamed"}))
        .await;
    assert_eq!(patched.status, 200);
    assert_eq!(
        patched.json()["target"]["sensitive_headers"],
        json!(["authorization", "cookie", "x-api-key"])
    );
}

store_tests!(
    tokens_are_required_once_one_was_made,
    roles_grant_what_they_say,
    each_tenant_sees_only_its_own,
    browsers_cannot_drive_the_open_api,
    views_never_show_secret_values,
);
