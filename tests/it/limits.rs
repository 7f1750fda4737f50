//! The API server's limits (DESIGN.md §8), from a raw socket: a half-sent
//! request does not hold its connection past the header timeout, and no
//! more than `--max-connections` are served at once.

use crate::support as common;

use std::time::Duration;

use common::{Backend, TestApp, TestDb, eventually};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Generous: the header timeout is 10 s.
const DEADLINE: Duration = Duration::from_secs(40);

fn addr(app: &TestApp) -> String {
    app.base.trim_start_matches("http://").to_string()
}

/// Reads until the server closes the connection; what it sent.
async fn until_closed(stream: &mut TcpStream) -> String {
    let mut answer = Vec::new();
    let read = tokio::time::timeout(DEADLINE, stream.read_to_end(&mut answer)).await;
    assert!(
        read.is_ok(),
        "the server kept the connection open past {DEADLINE:?}"
    );
    String::from_utf8_lossy(&answer).into_owned()
}

async fn a_half_sent_request_is_closed_within_the_header_timeout(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    // Headers that never end, and a client that trickles bytes to keep the
    // connection busy: both are closed, counted from the first byte.
    let mut silent = TcpStream::connect(addr(&app)).await.unwrap();
    silent
        .write_all(b"GET /v1/jobs HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        .await
        .unwrap();
    let mut trickling = TcpStream::connect(addr(&app)).await.unwrap();
    trickling
        .write_all(b"GET /v1/jobs HTTP/1.1\r\n")
        .await
        .unwrap();
    let trickle = tokio::spawn(async move {
        for _ in 0..60 {
            tokio::time::sleep(Duration::from_millis(500)).await;
            if trickling.write_all(b"X-Slow: 1\r\n").await.is_err() {
                return true;
            }
        }
        false
    });
    // Meanwhile the API answers everyone else.
    assert_eq!(app.get("/healthz").await.status, 200);
    let answer = until_closed(&mut silent).await;
    assert!(!answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(
        tokio::time::timeout(DEADLINE, trickle)
            .await
            .unwrap()
            .unwrap(),
        "the trickling connection was closed"
    );
    // A connection that never sends anything is closed as well.
    let mut mute = TcpStream::connect(addr(&app)).await.unwrap();
    until_closed(&mut mute).await;
    assert_eq!(app.get("/healthz").await.status, 200);
}

async fn no_more_than_max_connections_are_served_at_once(backend: Backend) {
    let db = TestDb::new(backend).await;
    let mut config = common::test_config(&db.url);
    config.max_connections = 2;
    let app = TestApp::spawn_with(db, config).await;
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut stream = TcpStream::connect(addr(&app)).await.unwrap();
        stream
            .write_all(b"GET /v1/jobs HTTP/1.1\r\n")
            .await
            .unwrap();
        held.push(stream);
    }
    // Every slot is taken: a health check is still answered at once, and
    // anything else refused with 503 rather than kept waiting.
    let health = tokio::time::timeout(DEADLINE, app.get("/healthz"))
        .await
        .expect("a health check is answered while every slot is taken");
    assert_eq!(health.status, 200);
    let busy = tokio::time::timeout(DEADLINE, common::client().get(app.url("/v1/jobs")).send())
        .await
        .expect("answered, not queued")
        .expect("an answer");
    let busy = common::Reply::from(busy).await;
    assert_eq!(
        busy.problem(503),
        "every connection is taken; try again shortly (--max-connections)"
    );
    assert_eq!(busy.headers["retry-after"], "1");

    // Silent connections past the limit do not starve the health checks.
    let mut silent = Vec::new();
    for _ in 0..50 {
        silent.push(TcpStream::connect(addr(&app)).await.unwrap());
    }
    let health = tokio::time::timeout(DEADLINE, common::client().get(app.url("/readyz")).send())
        .await
        .expect("a readiness check is answered past silent connections")
        .expect("an answer");
    assert_eq!(health.status(), 200);
    drop(silent);

    // Slots freed: served again.
    drop(held);
    eventually(DEADLINE, "the API serving again", || async {
        let reply = common::client()
            .get(app.url("/v1/jobs"))
            .send()
            .await
            .ok()?;
        (reply.status() == 200).then_some(())
    })
    .await;
}

store_tests!(
    a_half_sent_request_is_closed_within_the_header_timeout,
    no_more_than_max_connections_are_served_at_once,
);
