//! The agent's admin HTTP port (`--admin-listen`): `GET /health` answers
//! 200 while the process runs (liveness); `GET /ready` answers 200 once the
//! first lease round is done, the metadata store answered the last
//! heartbeat, every shard's log can write and every shard port answers a
//! new connection with SETTINGS (not with a GOAWAY: at its connection
//! limit), else 503 with the reason; `GET /metrics` answers the
//! Prometheus text exposition. `HEAD` answers the same without a body; a
//! query string is ignored. Plain HTTP/1.1, one request per connection, at
//! most `--max-admin-connections` at once, each closed if its request head
//! has not arrived within `--admin-read-timeout-ms`. Runs on the control
//! thread; reads the [`Readiness`] flags and the metrics registry only,
//! never the control plane's state.

mod readiness;

pub use readiness::Readiness;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::metrics::{Format, Registry};

/// What the admin port serves from, and its limits.
pub struct Admin {
    pub readiness: Arc<Readiness>,
    pub metrics: Arc<Registry>,
    /// Connections served at once (`--max-admin-connections`).
    pub max_connections: usize,
    /// How long a request head may take to arrive (`--admin-read-timeout-ms`).
    pub read_timeout: Duration,
}

/// Counts one open admin connection for as long as it lives.
struct Open(Arc<AtomicUsize>);

impl Open {
    fn new(count: &Arc<AtomicUsize>) -> Self {
        count.fetch_add(1, Ordering::Relaxed);
        Open(count.clone())
    }
}

impl Drop for Open {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Largest request head read, bytes.
const MAX_HEAD: usize = 4096;

/// Serves until the listener fails.
pub(crate) async fn serve(listener: TcpListener, admin: Arc<Admin>) {
    let open = Arc::new(AtomicUsize::new(0));
    let limit = admin.max_connections;
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                if open.load(Ordering::Relaxed) >= limit {
                    // Over the limit: a short answer if the socket takes it
                    // at once, then close; never wait on this client.
                    let _ = stream.try_write(
                        b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\
                          Connection: close\r\n\r\n",
                    );
                    continue;
                }
                let (admin, guard) = (admin.clone(), Open::new(&open));
                tokio::spawn(async move {
                    answer(stream, &admin).await;
                    drop(guard);
                });
            }
            Err(e) => {
                tracing::warn!(error = %e, "admin port accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// (status, content type, body) for a request path (without its query
/// string) and the request's `Accept` header.
async fn route(path: &str, accept: Option<&str>, admin: &Admin) -> (u16, &'static str, String) {
    const TEXT: &str = "text/plain; charset=utf-8";
    match path {
        "/health" => (200, TEXT, "ok\n".into()),
        "/metrics" => {
            let format = Format::negotiate(accept);
            (200, format.content_type(), admin.metrics.render(format))
        }
        "/ready" => match admin.readiness.not_ready(&admin.metrics).await {
            Some(why) => (503, TEXT, why),
            None => (200, TEXT, "ready\n".into()),
        },
        _ => (
            404,
            TEXT,
            "not found: use /health, /ready or /metrics\n".into(),
        ),
    }
}

/// Reads the request head (up to [`MAX_HEAD`] bytes, within the read
/// timeout) and answers it.
async fn answer(mut stream: TcpStream, admin: &Admin) {
    let mut buf = vec![0u8; MAX_HEAD];
    let mut n = 0;
    let read = async {
        while n < buf.len() {
            match stream.read(&mut buf[n..]).await {
                Ok(0) | Err(_) => break,
                Ok(k) => n += k,
            }
            if buf[..n].windows(4).any(|w| w == b"\r\n\r\n") {
                break;
            }
        }
    };
    if tokio::time::timeout(admin.read_timeout, read)
        .await
        .is_err()
    {
        let _ = stream
            .write_all(
                b"HTTP/1.1 408 Request Timeout\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            )
            .await;
        let _ = stream.shutdown().await;
        return;
    }
    let head = String::from_utf8_lossy(&buf[..n]);
    let mut parts = head.split_whitespace();
    let (method, target) = (parts.next(), parts.next());
    let path = target.map(|t| t.split(['?', '#']).next().unwrap_or(t));
    let accept = head.lines().skip(1).find_map(|l| {
        let (name, value) = l.split_once(':')?;
        name.trim()
            .eq_ignore_ascii_case("accept")
            .then(|| value.trim())
    });
    let (status, content_type, body) = match (method, path) {
        (Some("GET" | "HEAD"), Some(path)) => route(path, accept, admin).await,
        _ => (
            405,
            "text/plain; charset=utf-8",
            "only GET and HEAD are served\n".into(),
        ),
    };
    let reason = match status {
        200 => "OK",
        404 => "Not Found",
        405 => "Method Not Allowed",
        _ => "Service Unavailable",
    };
    let allow = if status == 405 {
        "Allow: GET, HEAD\r\n"
    } else {
        ""
    };
    let mut reply = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}\r\n{allow}Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    if method != Some("HEAD") {
        reply.push_str(&body);
    }
    let _ = stream.write_all(reply.as_bytes()).await;
    let _ = stream.shutdown().await;
}
