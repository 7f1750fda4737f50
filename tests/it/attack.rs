//! The adversarial suite (issue 22): what an attacker on the loopback
//! interface tries, with and without a token, bounded in requests and
//! time, on both stores. Each test failed before its fix.

use crate::support as common;

use common::{Backend, Reply, TestApp};
use cronhook::domain::auth::Role;

async fn send(app: &TestApp, method: reqwest::Method, path: &str, token: Option<&str>) -> Reply {
    let mut request = app.client.request(method, app.url(path));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    Reply::from(request.send().await.expect("sent")).await
}

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
        let reply = send(&app, method, &path, None).await;
        assert!(
            (400..500).contains(&reply.status),
            "{path}: {}",
            reply.status
        );
    }
    let metrics = send(&app, reqwest::Method::GET, "/metrics", Some(&root)).await;
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
        let reply = send(&app, reqwest::Method::GET, "/v1/tokens", token).await;
        assert_eq!(reply.status, status);
        assert_eq!(reply.headers["cache-control"], "no-store");
        assert_eq!(reply.headers["x-content-type-options"], "nosniff");
    }
}

store_tests!(
    made_up_methods_and_paths_add_no_metric_series,
    api_answers_are_not_cached_or_sniffed,
);
