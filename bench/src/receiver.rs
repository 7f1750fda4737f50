//! The benchmark's webhook receiver: answers 204 (at once, or after 1.5 s
//! under [`SLOW_PREFIX`]) and records when each request arrived, which
//! occurrence and run it was for.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::StatusCode;
use chrono::{DateTime, Utc};

/// Paths under this answer after [`SLOW_ANSWER`]: requests stay in flight.
pub const SLOW_PREFIX: &str = "/slow";
pub const SLOW_ANSWER: Duration = Duration::from_millis(1500);

/// The loopback addresses the receiver also listens on (127.0.0.1 to
/// 127.0.0.50, one port): to the service, that many hosts.
pub const HOSTS: usize = 50;

/// The `i`-th of the receiver's addresses, modulo [`HOSTS`].
pub fn host_address(i: usize) -> std::net::Ipv4Addr {
    std::net::Ipv4Addr::new(127, 0, 0, 1 + (i % HOSTS) as u8)
}

#[derive(Debug, Clone)]
pub struct Hit {
    pub path: String,
    pub job_id: String,
    /// `webhook-id`: the run, the same on every attempt.
    pub run_id: String,
    pub scheduled_for: Option<DateTime<Utc>>,
    pub received: DateTime<Utc>,
}

#[derive(Clone, Default)]
pub struct Receiver {
    hits: Arc<Mutex<Vec<Hit>>>,
}

impl Receiver {
    /// Serves on 127.0.0.1, on a runtime of its own threads so that its
    /// timing does not depend on the harness's work.
    pub fn start() -> (Self, SocketAddr) {
        let receiver = Receiver::default();
        let std_listener = std::net::TcpListener::bind("127.0.0.1:0").expect("receiver binds");
        std_listener.set_nonblocking(true).unwrap();
        let addr = std_listener.local_addr().unwrap();
        // The same port on the other loopback addresses (Linux routes all
        // of 127.0.0.0/8 to lo).
        let others: Vec<std::net::TcpListener> = (1..HOSTS)
            .map(|i| std::net::TcpListener::bind((host_address(i), addr.port())))
            .collect::<Result<_, _>>()
            .expect("receiver binds its other loopback addresses");
        let state = receiver.clone();
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .thread_name("receiver")
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                let app = axum::Router::new().fallback(record).with_state(state);
                let mut served = tokio::task::JoinSet::new();
                for listener in std::iter::once(std_listener).chain(others) {
                    listener.set_nonblocking(true).unwrap();
                    let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                    served.spawn(axum::serve(listener, app.clone()).into_future());
                }
                served.join_all().await;
            });
        });
        (receiver, addr)
    }

    /// Forgets every request so far: each scenario, and each repeat of
    /// one, counts only its own.
    pub fn clear(&self) {
        self.hits.lock().unwrap().clear();
    }

    pub fn hits(&self, path_prefix: &str) -> Vec<Hit> {
        self.hits
            .lock()
            .unwrap()
            .iter()
            .filter(|h| h.path.starts_with(path_prefix))
            .cloned()
            .collect()
    }

    pub fn count(&self, path_prefix: &str) -> usize {
        self.hits
            .lock()
            .unwrap()
            .iter()
            .filter(|h| h.path.starts_with(path_prefix))
            .count()
    }
}

async fn record(State(receiver): State<Receiver>, request: Request) -> StatusCode {
    let hit = describe(&request);
    drop(request);
    let slow = hit.path.starts_with(SLOW_PREFIX);
    receiver.hits.lock().unwrap().push(hit);
    if slow {
        tokio::time::sleep(SLOW_ANSWER).await;
    }
    StatusCode::NO_CONTENT
}

/// What the scenarios need of a request, read as it arrives.
fn describe(request: &Request) -> Hit {
    let received = Utc::now();
    let header = |name: &str| {
        request
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    Hit {
        path: request.uri().path().to_string(),
        job_id: header("cronhook-job-id").unwrap_or_default(),
        run_id: header("webhook-id").unwrap_or_default(),
        scheduled_for: header("cronhook-scheduled-for")
            .and_then(|t| DateTime::parse_from_rfc3339(&t).ok())
            .map(|t| t.to_utc()),
        received,
    }
}
