//! The agent's admin HTTP port (`--admin-listen`), served by hyper's
//! HTTP/1.1 server on the control thread: `GET /health` answers 200 while
//! the process runs (liveness); `GET /ready` answers 200 once the first
//! lease round is done, the metadata store answered the last heartbeat,
//! every shard's log can write and every shard port answers a new
//! connection with SETTINGS (not with a GOAWAY: at its connection limit),
//! else 503 with the reason; `GET /metrics` answers the metrics in the
//! Prometheus text format or OpenMetrics, as `Accept` asks; `GET
//! /debug/state` a JSON snapshot for operators (shards, their upload
//! backlog, every lease held), built by the control plane. `HEAD` answers
//! the same without a body; a query string is ignored; other methods get
//! 405 with `Allow`. Connections are kept alive; at most
//! `--max-admin-connections` at once (more get a 503 and are closed), and
//! one whose next request head has not arrived within
//! `--admin-read-timeout-ms` is closed. Reads the [`Readiness`] flags, the
//! metrics registry and the debug snapshot it is handed, never the control
//! plane's state itself.

mod readiness;

pub use readiness::Readiness;

use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{header, Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;

use crate::metrics::{Format, Registry};

/// What the admin port serves from, and its limits.
pub struct Admin {
    pub readiness: Arc<Readiness>,
    pub metrics: Arc<Registry>,
    /// The `/debug/state` snapshot (the control plane builds it; the admin
    /// port only calls it).
    pub debug_state: Arc<dyn Fn() -> serde_json::Value + Send + Sync>,
    /// Connections served at once (`--max-admin-connections`).
    pub max_connections: usize,
    /// How long a request head may take to arrive, and how long a kept-alive
    /// connection may wait for its next one (`--admin-read-timeout-ms`).
    /// The TLS handshake has as long.
    pub read_timeout: Duration,
    /// HTTPS with the shard ports' certificate (`--tls-cert`); plain HTTP
    /// when `None`.
    pub tls: Option<tokio_rustls::TlsAcceptor>,
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
const MAX_HEAD: usize = 8192;

/// Serves until the listener fails. Cancelling it stops accepting;
/// connections already open finish on their own tasks.
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
                    match admin.tls.clone() {
                        None => serve_http(stream, &admin).await,
                        Some(tls) => {
                            let shake =
                                tokio::time::timeout(admin.read_timeout, tls.accept(stream)).await;
                            match shake {
                                Ok(Ok(s)) => serve_http(s, &admin).await,
                                Ok(Err(e)) => {
                                    tracing::debug!(error = %e, "admin TLS handshake failed")
                                }
                                Err(_) => tracing::debug!("admin TLS handshake timed out"),
                            }
                        }
                    }
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

/// Serves HTTP/1.1 requests on one connection until it closes.
async fn serve_http<S>(stream: S, admin: &Arc<Admin>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(|req| {
        let admin = admin.clone();
        async move { Ok::<_, Infallible>(answer(req, &admin).await) }
    });
    let served = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(admin.read_timeout)
        .max_buf_size(MAX_HEAD)
        .serve_connection(TokioIo::new(stream), service)
        .await;
    if let Err(e) = served {
        tracing::debug!(error = %e, "admin connection ended");
    }
}

/// The answer to one request.
async fn answer(req: Request<Incoming>, admin: &Admin) -> Response<Full<Bytes>> {
    const TEXT: &str = "text/plain; charset=utf-8";
    let (status, content_type, body) = match (req.method(), req.uri().path()) {
        (&Method::GET | &Method::HEAD, "/health") => (StatusCode::OK, TEXT, "ok\n".to_owned()),
        (&Method::GET | &Method::HEAD, "/ready") => {
            match admin.readiness.not_ready(&admin.metrics).await {
                Some(why) => (StatusCode::SERVICE_UNAVAILABLE, TEXT, why),
                None => (StatusCode::OK, TEXT, "ready\n".to_owned()),
            }
        }
        (&Method::GET | &Method::HEAD, "/metrics") => {
            let accept = req
                .headers()
                .get(header::ACCEPT)
                .and_then(|v| v.to_str().ok());
            let format = Format::negotiate(accept);
            (
                StatusCode::OK,
                format.content_type(),
                admin.metrics.render(format),
            )
        }
        (&Method::GET | &Method::HEAD, "/debug/state") => {
            let state = (admin.debug_state)();
            let mut body = serde_json::to_string_pretty(&state).unwrap_or_default();
            body.push('\n');
            (StatusCode::OK, "application/json", body)
        }
        (&Method::GET | &Method::HEAD, _) => (
            StatusCode::NOT_FOUND,
            TEXT,
            "not found: use /health, /ready, /metrics or /debug/state\n".to_owned(),
        ),
        _ => (
            StatusCode::METHOD_NOT_ALLOWED,
            TEXT,
            "only GET and HEAD are served\n".to_owned(),
        ),
    };
    let mut builder = Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, content_type);
    if status == StatusCode::METHOD_NOT_ALLOWED {
        builder = builder.header(header::ALLOW, "GET, HEAD");
    }
    // hyper leaves the body out of a HEAD answer and keeps Content-Length.
    builder
        .body(Full::new(Bytes::from(body)))
        .unwrap_or_else(|_| Response::new(Full::new(Bytes::new())))
}
