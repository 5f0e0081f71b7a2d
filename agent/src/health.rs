//! The agent's admin HTTP port (`--admin-listen`): `GET /health` answers
//! 200 while the process runs (liveness); `GET /ready` answers 200 once the
//! first lease round is done and the metadata store answered the last
//! heartbeat, else 503 with the reason; `GET /metrics` answers the
//! Prometheus text exposition. Plain HTTP/1.1, one request per
//! connection. Runs on the control thread; reads shared state only.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::control::Shared;

/// Serves until the listener fails.
pub(crate) async fn serve(listener: TcpListener, shared: Arc<Shared>) {
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                tokio::spawn(answer(stream, shared.clone()));
            }
            Err(e) => {
                tracing::warn!(error = %e, "admin port accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        }
    }
}

/// (status, body) for a request path.
fn route(path: &str, shared: &Shared) -> (u16, String) {
    match path {
        "/health" => (200, "ok\n".into()),
        "/metrics" => (200, shared.metrics.render()),
        "/ready" => {
            if !shared.started.load(Ordering::Acquire) {
                (503, "starting: leases not acquired yet\n".into())
            } else if let Some(e) = &*shared.meta_error.lock() {
                (503, format!("metadata store unreachable: {e}\n"))
            } else {
                (200, "ready\n".into())
            }
        }
        _ => (404, "not found: use /health, /ready or /metrics\n".into()),
    }
}

async fn answer(mut stream: TcpStream, shared: Arc<Shared>) {
    let mut buf = vec![0u8; 4096];
    let mut n = 0;
    // Read up to the end of the request head (or 4 KiB).
    while n < buf.len() {
        match stream.read(&mut buf[n..]).await {
            Ok(0) | Err(_) => break,
            Ok(k) => n += k,
        }
        if buf[..n].windows(4).any(|w| w == b"\r\n\r\n") {
            break;
        }
    }
    let head = String::from_utf8_lossy(&buf[..n]);
    let mut parts = head.split_whitespace();
    let (status, body) = match (parts.next(), parts.next()) {
        (Some("GET"), Some(path)) => route(path, &shared),
        _ => (405, "only GET is served\n".into()),
    };
    let reason = match status {
        200 => "OK",
        404 => "Not Found",
        405 => "Method Not Allowed",
        _ => "Service Unavailable",
    };
    let reply = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = stream.write_all(reply.as_bytes()).await;
    let _ = stream.shutdown().await;
}
