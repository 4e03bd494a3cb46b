//! The HTTP server's connections: accepting, limits, and hyper's own error answers.
//!
//! Each accepted connection is served by hyper (HTTP/1.1 and HTTP/2) with three bounds, so
//! that no client can hold the broker's connections (slowloris):
//! - a request's head must arrive within `server.header_read_timeout_ms`, counted from when
//!   the connection is ready for a request, so a keep-alive connection sending nothing is
//!   closed after that long too;
//! - a connection on which no byte moves for `server.idle_timeout_ms` is closed;
//! - at most `server.max_open_connections` are served at once; more clients wait in the
//!   listen backlog until one closes.
//!
//! hyper answers a request it cannot parse by itself (400, 414, 431) with an empty body;
//! [`Watched`] replaces those answers with problem+json, like every other error.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Semaphore};

use crate::config::ServerConfig;
use crate::error::{ApiError, ErrorCode, PROBLEM_JSON};

/// The bounds on connections, from `[server]`.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    /// `server.header_read_timeout_ms`.
    pub header_read_timeout: Duration,
    /// `server.idle_timeout_ms`.
    pub idle_timeout: Duration,
    /// `server.max_open_connections`.
    pub max_open: usize,
}

impl ConnectionLimits {
    /// The limits a config sets.
    pub fn from_config(server: &ServerConfig) -> Self {
        Self {
            header_read_timeout: Duration::from_millis(server.header_read_timeout_ms),
            idle_timeout: Duration::from_millis(server.idle_timeout_ms),
            max_open: server.max_open_connections.max(1),
        }
    }
}

/// Serves `router` on `listener` until `stop` turns true, then stops accepting and waits
/// for the open connections to finish their requests.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ConnectionLimits,
    mut stop: watch::Receiver<bool>,
) {
    let mut builder = Builder::new(TokioExecutor::new());
    // hyper refuses a head still incomplete once its buffer holds this much (431), but a
    // head that one read brings in whole is parsed whatever its size: the edge checks the
    // headers' size exactly (`super::edge::MAX_HEADER_BYTES`). The buffer holds a request
    // line of hyper's longest URI (64 KiB, else 414) with room to spare.
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_buf_size(super::edge::MAX_HEADER_BYTES + 32 * 1024);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(super::edge::MAX_HEADER_BYTES).unwrap_or(u32::MAX));
    let permits = Arc::new(Semaphore::new(limits.max_open));
    let graceful = GracefulShutdown::new();
    loop {
        let permit = tokio::select! {
            permit = permits.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
            _ = stop.wait_for(|s| *s) => break,
        };
        let tcp = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((tcp, _)) => tcp,
                Err(e) => {
                    // A connection reset before it was accepted is the client's; anything
                    // else (out of file descriptors) is retried after a pause.
                    if !matches!(e.kind(), io::ErrorKind::ConnectionAborted | io::ErrorKind::ConnectionReset) {
                        tracing::warn!(error = %e, "cannot accept a connection");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                    continue;
                }
            },
            _ = stop.wait_for(|s| *s) => break,
        };
        let _ = tcp.set_nodelay(true);
        let activity = Activity::new();
        let io = TokioIo::new(Watched::new(tcp, activity.clone()));
        let conn = builder
            .serve_connection(io, TowerToHyperService::new(router.clone()))
            .into_owned();
        let conn = graceful.watch(conn);
        let idle = limits.idle_timeout;
        tokio::spawn(async move {
            tokio::select! {
                _ = conn => {}
                () = activity.idle_for(idle) => {}
            }
            drop(permit);
        });
    }
    drop(listener);
    // In-flight requests finish; a client holding its connection open (a slow reader, an
    // HTTP/2 ping) does not hold the shutdown past the idle timeout.
    if tokio::time::timeout(limits.idle_timeout, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("connections still open at shutdown were closed");
    }
}

/// When a connection last moved a byte, in ms since the process's first connection.
#[derive(Debug, Clone)]
struct Activity(Arc<AtomicU64>);

fn since_start() -> u64 {
    static START: OnceLock<Instant> = OnceLock::new();
    let start = *START.get_or_init(Instant::now);
    u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX)
}

impl Activity {
    fn new() -> Self {
        Self(Arc::new(AtomicU64::new(since_start())))
    }

    fn touch(&self) {
        self.0.store(since_start(), Ordering::Relaxed);
    }

    /// Resolves once no byte has moved for `idle`.
    async fn idle_for(&self, idle: Duration) {
        let idle_ms = u64::try_from(idle.as_millis()).unwrap_or(u64::MAX);
        loop {
            let last = self.0.load(Ordering::Relaxed);
            let due = last.saturating_add(idle_ms);
            let now = since_start();
            if now >= due {
                return;
            }
            tokio::time::sleep(Duration::from_millis(due - now)).await;
        }
    }
}

/// A TCP stream that records activity and rewrites hyper's bodiless error answers.
struct Watched {
    tcp: TcpStream,
    activity: Activity,
    /// A replacement answer being written, and how much of it is written.
    replacing: Option<(Vec<u8>, usize)>,
}

impl Watched {
    fn new(tcp: TcpStream, activity: Activity) -> Self {
        Self {
            tcp,
            activity,
            replacing: None,
        }
    }
}

impl AsyncRead for Watched {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.tcp).poll_read(cx, buf);
        if buf.filled().len() > before {
            this.activity.touch();
        }
        polled
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.replacing.is_none() {
            if let Some(answer) = problem_for_automatic_answer(buf) {
                this.replacing = Some((answer, 0));
            }
        }
        if let Some((answer, written)) = &mut this.replacing {
            // hyper hands its whole answer in one buffer (the stream is not vectored, so
            // hyper flattens); it is reported written once the replacement is.
            while *written < answer.len() {
                match Pin::new(&mut this.tcp).poll_write(cx, &answer[*written..]) {
                    Poll::Ready(Ok(0)) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                    Poll::Ready(Ok(n)) => {
                        *written += n;
                        this.activity.touch();
                    }
                    Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                    Poll::Pending => return Poll::Pending,
                }
            }
            this.replacing = None;
            return Poll::Ready(Ok(buf.len()));
        }
        let polled = Pin::new(&mut this.tcp).poll_write(cx, buf);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            this.activity.touch();
        }
        polled
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().tcp).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().tcp).poll_shutdown(cx)
    }
}

/// When `buf` is exactly one of hyper's automatic answers to an unreadable request (a
/// 400, 414 or 431 head with `content-length: 0`, no `content-type` and nothing after it),
/// the same answer as problem+json. The broker's own answers always carry a content type.
fn problem_for_automatic_answer(buf: &[u8]) -> Option<Vec<u8>> {
    if buf.len() > 512 || !buf.starts_with(b"HTTP/1.") || !buf.ends_with(b"\r\n\r\n") {
        return None;
    }
    let (code, detail) = match buf.get(9..12)? {
        b"400" => (
            ErrorCode::MalformedRequest,
            "the request is not valid HTTP/1.1 (request line or a header)",
        ),
        b"414" => (
            ErrorCode::UriTooLong,
            "the request line is longer than the broker reads",
        ),
        b"431" => (
            ErrorCode::HeadersTooLarge,
            "the request's headers are larger than the broker reads",
        ),
        _ => return None,
    };
    let head = std::str::from_utf8(buf).ok()?;
    let mut lines = head.trim_end().split("\r\n");
    let status_line = lines.next()?;
    let headers: Vec<&str> = lines.collect();
    let lower = |line: &str| line.to_ascii_lowercase();
    if headers
        .iter()
        .any(|h| lower(h).starts_with("content-type:"))
        || !headers.iter().any(|h| lower(h) == "content-length: 0")
    {
        return None;
    }
    let body = ApiError::new(code, detail).body();
    let mut answer = format!(
        "{status_line}\r\ncontent-type: {PROBLEM_JSON}\r\ncontent-length: {}\r\n",
        body.len()
    );
    for header in headers {
        if !lower(header).starts_with("content-length:") {
            answer.push_str(header);
            answer.push_str("\r\n");
        }
    }
    answer.push_str("\r\n");
    let mut answer = answer.into_bytes();
    answer.extend_from_slice(&body);
    Some(answer)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hyper_answers_become_problems_and_others_are_left_alone() {
        let hyper = b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-length: 0\r\ndate: Wed, 02 Dec 2026 13:00:00 GMT\r\n\r\n";
        let answer = String::from_utf8(problem_for_automatic_answer(hyper).unwrap_or_default())
            .unwrap_or_default();
        assert!(answer.starts_with("HTTP/1.1 431 Request Header Fields Too Large\r\n"));
        assert!(answer.contains("content-type: application/problem+json\r\n"));
        assert!(answer.contains("date: Wed, 02 Dec 2026"));
        assert!(answer.contains("\"code\":\"request.headers_too_large\""));
        assert!(!answer.contains("content-length: 0\r\n"));
        // The broker's own 400 carries a content type and a body: untouched.
        let own = b"HTTP/1.1 400 Bad Request\r\ncontent-type: application/problem+json\r\ncontent-length: 2\r\n\r\n{}";
        assert!(problem_for_automatic_answer(own).is_none());
        let own_head = b"HTTP/1.1 400 Bad Request\r\ncontent-type: application/problem+json\r\ncontent-length: 0\r\n\r\n";
        assert!(problem_for_automatic_answer(own_head).is_none());
        assert!(
            problem_for_automatic_answer(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n").is_none()
        );
        assert!(problem_for_automatic_answer(b"{\"HTTP/1.1 400\"}").is_none());
    }
}
