//! A real HTTP receiver for webhooks, in the test process: it records
//! every request and answers as each path's script says.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};

/// How the receiver answers one request.
#[derive(Debug, Clone)]
pub enum Answer {
    Status(u16),
    /// A status with extra headers.
    WithHeaders(u16, Vec<(&'static str, String)>),
    /// Answers after a while.
    After(Duration, u16),
    /// A status with this body.
    Body(u16, Vec<u8>),
    /// Never answers (until the client gives up).
    Hang,
    /// Answers once the test opens the gate, so a test holds a request in
    /// flight for exactly as long as it needs, not for a guessed duration.
    Gated(Gate, u16),
}

/// Opened once by the test; every request held by it then answers.
#[derive(Debug, Clone)]
pub struct Gate(Arc<tokio::sync::Semaphore>);

impl Default for Gate {
    fn default() -> Self {
        Gate(Arc::new(tokio::sync::Semaphore::new(0)))
    }
}

impl Gate {
    pub fn open(&self) {
        self.0.close();
    }

    async fn wait(&self) {
        // A closed semaphore is the open gate: acquire fails at once.
        let _ = self.0.acquire().await;
    }
}

#[derive(Debug, Clone)]
pub struct Received {
    pub method: String,
    pub path: String,
    /// The query string, if any (without `?`).
    pub query: Option<String>,
    pub headers: HeaderMap,
    pub body: Bytes,
    pub at: DateTime<Utc>,
}

impl Received {
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }
}

#[derive(Default)]
struct Shared {
    received: Mutex<Vec<Received>>,
    scripts: Mutex<HashMap<String, VecDeque<Answer>>>,
    /// Per path: requests open now, and the most ever open at once.
    open: Mutex<HashMap<String, (usize, usize)>>,
}

/// One open request on a path, counted until its handler ends (answered,
/// or dropped when the client gives up).
struct Open {
    shared: Arc<Shared>,
    path: String,
}

impl Open {
    fn new(shared: &Arc<Shared>, path: &str) -> Self {
        let mut open = shared.open.lock().unwrap();
        let (now, most) = open.entry(path.to_string()).or_default();
        *now += 1;
        *most = (*most).max(*now);
        Self {
            shared: shared.clone(),
            path: path.to_string(),
        }
    }
}

impl Drop for Open {
    fn drop(&mut self) {
        if let Some((now, _)) = self.shared.open.lock().unwrap().get_mut(&self.path) {
            *now -= 1;
        }
    }
}

pub struct Receiver {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    _server: tokio::task::JoinHandle<()>,
}

impl Receiver {
    pub async fn start() -> Self {
        Self::serve("127.0.0.1", Arc::default()).await
    }

    /// A receiver on another loopback address (127.0.0.2: another host
    /// to the service, on the same machine).
    pub async fn start_on(ip: &str) -> Self {
        Self::serve(ip, Arc::default()).await
    }

    /// The same receiver on another port: what either port gets is
    /// recorded, scripted and counted together.
    pub async fn another_port(&self) -> Self {
        Self::serve(&self.addr.ip().to_string(), self.shared.clone()).await
    }

    async fn serve(ip: &str, shared: Arc<Shared>) -> Self {
        let app = axum::Router::new()
            .fallback(receive)
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind((ip, 0)).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self {
            addr,
            shared,
            _server: server,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// The next answers on `path`, in order; after them, 200.
    pub fn script(&self, path: &str, answers: impl IntoIterator<Item = Answer>) {
        self.shared
            .scripts
            .lock()
            .unwrap()
            .entry(path.to_string())
            .or_default()
            .extend(answers);
    }

    pub fn received(&self, path: &str) -> Vec<Received> {
        self.shared
            .received
            .lock()
            .unwrap()
            .iter()
            .filter(|r| r.path == path)
            .cloned()
            .collect()
    }

    pub fn all(&self) -> Vec<Received> {
        self.shared.received.lock().unwrap().clone()
    }

    /// The most requests on `path` the receiver had open at once.
    pub fn most_open_at_once(&self, path: &str) -> usize {
        self.shared
            .open
            .lock()
            .unwrap()
            .get(path)
            .map_or(0, |(_, most)| *most)
    }
}

async fn receive(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let body = axum::body::to_bytes(body, 10 * 1024 * 1024)
        .await
        .unwrap_or_default();
    let path = parts.uri.path().to_string();
    let _open = Open::new(&shared, &path);
    shared.received.lock().unwrap().push(Received {
        method: parts.method.to_string(),
        path: path.clone(),
        query: parts.uri.query().map(str::to_string),
        headers: parts.headers,
        body,
        at: Utc::now(),
    });
    let answer = shared
        .scripts
        .lock()
        .unwrap()
        .get_mut(&path)
        .and_then(VecDeque::pop_front);
    let status = |code: u16| StatusCode::from_u16(code).unwrap();
    match answer.unwrap_or(Answer::Status(200)) {
        Answer::Status(code) => (status(code), format!("answer {code}")).into_response(),
        Answer::WithHeaders(code, headers) => {
            let mut response = (status(code), format!("answer {code}")).into_response();
            for (name, value) in headers {
                response.headers_mut().insert(name, value.parse().unwrap());
            }
            response
        }
        Answer::Body(code, body) => (status(code), body).into_response(),
        Answer::After(wait, code) => {
            tokio::time::sleep(wait).await;
            (status(code), format!("answer {code} after {wait:?}")).into_response()
        }
        Answer::Hang => {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            StatusCode::OK.into_response()
        }
        Answer::Gated(gate, code) => {
            gate.wait().await;
            (status(code), format!("answer {code} once opened")).into_response()
        }
    }
}
