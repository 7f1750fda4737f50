//! The HTTP server: the API's router on hyper, with the limits a service
//! exposed to a network needs (DESIGN.md §8). A connection must deliver a
//! request's headers within 10 s of its first byte (or of connecting), so a
//! half-sent request never holds it; one silent for 60 s between requests
//! is closed; a request is answered within 30 s; at most
//! `--max-connections` are open at once. Past them a connection is served
//! only if its first line asks for `/healthz`, `/readyz` or `/metrics`
//! within a second (one request, then closed), and answered 503 at once
//! otherwise: idle connections and streams cannot starve the health
//! checks, and nothing queues unanswered (issue 22).

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tower::Service;

/// The server's limits.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// From a request's first byte (or the connection's start) to its
    /// complete headers.
    pub header_read: Duration,
    /// From complete headers to the response's head.
    pub request: Duration,
    /// Silence between requests on a kept-alive connection.
    pub idle: Duration,
    pub max_connections: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            header_read: Duration::from_secs(10),
            request: Duration::from_secs(30),
            idle: Duration::from_secs(60),
            max_connections: 1024,
        }
    }
}

/// Connections past `max_connections` waiting at once to show their
/// first line; more are refused at once.
const OVERFLOW: usize = 4096;

/// How long a connection past `max_connections` has to show its first line.
const FIRST_LINE_WITHIN: Duration = Duration::from_secs(1);

/// Such a connection's limits, once it asked for a health path: one quick
/// request, then it is closed.
const HEALTH_LIMITS: Limits = Limits {
    header_read: Duration::from_secs(2),
    request: Duration::from_secs(5),
    idle: Duration::from_secs(1),
    max_connections: OVERFLOW,
};

/// The paths served past `max_connections`.
fn served_past_the_limit(path: &str) -> bool {
    matches!(path, "/healthz" | "/readyz" | "/metrics")
}

/// Whether `stream`'s first line, shown within [`FIRST_LINE_WITHIN`], asks
/// for a health path. Peeks: the bytes stay for the server to read.
async fn asks_for_health(stream: &TcpStream) -> bool {
    let first_line = async {
        let mut buf = [0u8; 512];
        loop {
            let n = stream.peek(&mut buf).await?;
            if n == 0 {
                return Ok::<_, io::Error>(None);
            }
            if let Some(end) = buf[..n].windows(2).position(|w| w == b"\r\n") {
                return Ok(Some(String::from_utf8_lossy(&buf[..end]).into_owned()));
            }
            if n == buf.len() {
                return Ok(None);
            }
            // The rest of the line is on its way.
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    match tokio::time::timeout(FIRST_LINE_WITHIN, first_line).await {
        Ok(Ok(Some(line))) => line
            .split(' ')
            .nth(1)
            .map(|target| target.split('?').next().unwrap_or(target))
            .is_some_and(served_past_the_limit),
        _ => false,
    }
}

/// What a connection past `max_connections` is told, unless it asked for
/// a health path.
fn full() -> Vec<u8> {
    let body = crate::api::busy_body();
    format!(
        "HTTP/1.1 503 Service Unavailable\r\nretry-after: 1\r\ncontent-type: application/problem+json\r\n\
         connection: close\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// What one connection is doing, as its watchdog sees it.
struct Activity {
    start: Instant,
    /// Milliseconds from `start` to the last byte read or written.
    last_io_ms: AtomicU64,
    /// Milliseconds from `start` to the first byte of headers not yet
    /// complete, plus one (0: none pending).
    head_since_ms: AtomicU64,
    /// Requests whose headers arrived and whose response head has not yet
    /// gone out.
    in_service: AtomicU32,
}

impl Activity {
    fn new() -> Arc<Self> {
        Arc::new(Self {
            start: Instant::now(),
            last_io_ms: AtomicU64::new(0),
            // A new connection owes its first request's headers at once.
            head_since_ms: AtomicU64::new(1),
            in_service: AtomicU32::new(0),
        })
    }

    /// Milliseconds since the connection started: the clock the rules
    /// below are given.
    fn now_ms(&self) -> u64 {
        self.start.elapsed().as_millis() as u64
    }

    fn io(&self, now: u64) {
        self.last_io_ms.store(now, Ordering::Relaxed);
    }

    fn read(&self, now: u64) {
        self.io(now);
        // Bytes between requests are the next request's headers.
        if self.in_service.load(Ordering::Relaxed) == 0 {
            let _ = self.head_since_ms.compare_exchange(
                0,
                now + 1,
                Ordering::Relaxed,
                Ordering::Relaxed,
            );
        }
    }

    fn headers_complete(&self, now: u64) {
        self.in_service.fetch_add(1, Ordering::Relaxed);
        self.head_since_ms.store(0, Ordering::Relaxed);
        self.io(now);
    }

    fn responded(&self, now: u64) {
        self.in_service.fetch_sub(1, Ordering::Relaxed);
        self.io(now);
    }

    /// Why the connection should be closed at `now`, if it should.
    fn overdue(&self, now: u64, limits: &Limits) -> Option<&'static str> {
        let head = self.head_since_ms.load(Ordering::Relaxed);
        if head > 0 && now.saturating_sub(head - 1) > limits.header_read.as_millis() as u64 {
            return Some("request headers not complete within the header timeout");
        }
        let quiet = now.saturating_sub(self.last_io_ms.load(Ordering::Relaxed));
        if self.in_service.load(Ordering::Relaxed) == 0
            && head == 0
            && quiet > limits.idle.as_millis() as u64
        {
            return Some("idle past the keep-alive timeout");
        }
        None
    }
}

/// A TCP stream that tells its connection's [`Activity`] of every byte.
struct Watched {
    stream: TcpStream,
    activity: Arc<Activity>,
}

impl AsyncRead for Watched {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.stream).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.activity.read(self.activity.now_ms());
        }
        polled
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.stream).poll_write(cx, buf);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.io(self.activity.now_ms());
        }
        polled
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

/// Serves `router` on `listener` until `shutdown`, then lets the requests
/// in flight finish (the caller bounds how long).
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: Limits,
    shutdown: CancellationToken,
) {
    let router = router.layer(tower_http::timeout::TimeoutLayer::with_status_code(
        axum::http::StatusCode::REQUEST_TIMEOUT,
        limits.request,
    ));
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let overflow = Arc::new(Semaphore::new(OVERFLOW));
    let graceful = GracefulShutdown::new();
    // HTTP/1.1 only; the watchdog below enforces the timeouts.
    let builder = http1::Builder::new();
    loop {
        let (stream, peer) = tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors, say: let some close.
                    tracing::warn!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let (slot, past_the_limit) = match slots.clone().try_acquire_owned() {
            Ok(slot) => (slot, false),
            Err(_) => match overflow.clone().try_acquire_owned() {
                Ok(slot) => (slot, true),
                Err(_) => {
                    tokio::spawn(refuse(stream));
                    continue;
                }
            },
        };
        let (router, builder, watcher) = (router.clone(), builder.clone(), graceful.watcher());
        tokio::spawn(async move {
            let limits = if past_the_limit {
                if !asks_for_health(&stream).await {
                    drop(slot);
                    return refuse(stream).await;
                }
                HEALTH_LIMITS
            } else {
                limits
            };
            let activity = Activity::new();
            let io = TokioIo::new(Watched {
                stream,
                activity: activity.clone(),
            });
            let service = Counted {
                inner: router,
                activity: activity.clone(),
                health_only: past_the_limit,
            };
            let service =
                hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
                    // Who sent it, for the audit trail (§11.9).
                    request
                        .extensions_mut()
                        .insert(axum::extract::ConnectInfo(peer));
                    let mut service = service.clone();
                    async move { service.call(request).await }
                });
            let connection = watcher.watch(builder.serve_connection(io, service));
            let watchdog = async {
                loop {
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    if let Some(why) = activity.overdue(activity.now_ms(), &limits) {
                        return why;
                    }
                }
            };
            tokio::select! {
                _ = connection => {}
                why = watchdog => tracing::debug!(reason = why, "connection closed"),
            }
            drop(slot);
        });
    }
    drop(listener);
    graceful.shutdown().await;
}

/// Answers a connection past `max_connections` 503 at once, and closes it.
async fn refuse(mut stream: TcpStream) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    tracing::debug!("refused a connection: every connection is taken");
    // The answer, then a second at most to read what the client sent, so
    // that closing does not reset the connection before it read the answer.
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        stream.write_all(&full()).await?;
        stream.shutdown().await?;
        let mut sink = [0u8; 1024];
        while stream.read(&mut sink).await? > 0 {}
        Ok::<_, io::Error>(())
    })
    .await;
}

/// The router, counting each request from complete headers to response;
/// past `max_connections`, only the health paths.
#[derive(Clone)]
struct Counted {
    inner: Router,
    activity: Arc<Activity>,
    health_only: bool,
}

impl Counted {
    async fn call(
        &mut self,
        request: hyper::Request<Incoming>,
    ) -> Result<axum::response::Response, std::convert::Infallible> {
        self.activity.headers_complete(self.activity.now_ms());
        let mut response = if self.health_only && !served_past_the_limit(request.uri().path()) {
            Ok(crate::api::busy())
        } else {
            self.inner.call(request.map(axum::body::Body::new)).await
        };
        if self.health_only
            && let Ok(response) = &mut response
        {
            // One request per connection past the limit.
            response.headers_mut().insert(
                axum::http::header::CONNECTION,
                axum::http::HeaderValue::from_static("close"),
            );
        }
        self.activity.responded(self.activity.now_ms());
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> Limits {
        Limits {
            header_read: Duration::from_millis(100),
            request: Duration::from_secs(1),
            idle: Duration::from_millis(300),
            max_connections: 2,
        }
    }

    #[test]
    fn a_connection_owes_its_headers_within_the_header_timeout() {
        let l = limits();
        let a = Activity::new();
        assert_eq!(a.overdue(0, &l), None);
        assert!(a.overdue(150, &l).is_some(), "nothing sent at all");

        let a = Activity::new();
        a.read(0);
        a.headers_complete(10);
        assert_eq!(a.overdue(260, &l), None, "in service: no timeout");
        a.responded(260);
        assert_eq!(a.overdue(460, &l), None, "idle, within keep-alive");
        a.read(460); // half a request
        assert_eq!(a.overdue(550, &l), None);
        assert_eq!(
            a.overdue(610, &l),
            Some("request headers not complete within the header timeout")
        );
    }

    #[test]
    fn a_trickled_request_is_timed_from_its_first_byte() {
        let l = limits();
        let a = Activity::new();
        a.read(0);
        a.headers_complete(5);
        a.responded(5);
        a.read(50);
        // A byte every 40 ms keeps the connection busy, not the request.
        for t in [90, 130, 170] {
            a.read(t);
        }
        assert!(a.overdue(170, &l).is_some());
    }

    #[test]
    fn an_idle_kept_alive_connection_is_closed_after_the_idle_timeout() {
        let l = limits();
        let a = Activity::new();
        a.read(0);
        a.headers_complete(0);
        a.responded(0);
        assert_eq!(a.overdue(250, &l), None);
        assert_eq!(a.overdue(350, &l), Some("idle past the keep-alive timeout"));
    }
}
