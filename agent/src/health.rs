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
//! thread; reads shared state only.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::control::Shared;

/// Largest request head read, bytes.
const MAX_HEAD: usize = 4096;
/// How long `/ready` waits for a shard port's SETTINGS.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);
/// ... and then for a GOAWAY that would say the shard is full.
const GOAWAY_WAIT: Duration = Duration::from_millis(200);

/// Serves until the listener fails.
pub(crate) async fn serve(listener: TcpListener, shared: Arc<Shared>) {
    let open = Arc::new(AtomicUsize::new(0));
    let limit = shared.config.max_admin_connections;
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
                open.fetch_add(1, Ordering::Relaxed);
                let (shared, open) = (shared.clone(), open.clone());
                tokio::spawn(async move {
                    answer(stream, &shared).await;
                    open.fetch_sub(1, Ordering::Relaxed);
                });
            }
            Err(e) => {
                tracing::warn!(error = %e, "admin port accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// (status, body) for a request path (without its query string).
async fn route(path: &str, shared: &Shared) -> (u16, String) {
    match path {
        "/health" => (200, "ok\n".into()),
        "/metrics" => (200, shared.metrics.render()),
        "/ready" => match not_ready(shared).await {
            Some(why) => (503, why),
            None => (200, "ready\n".into()),
        },
        _ => (404, "not found: use /health, /ready or /metrics\n".into()),
    }
}

/// Why the agent is not ready, if it is not.
async fn not_ready(shared: &Shared) -> Option<String> {
    if !shared.started.load(Ordering::Acquire) {
        return Some("starting: leases not acquired yet\n".into());
    }
    if let Some(e) = &*shared.meta_error.lock() {
        return Some(format!("metadata store unreachable: {e}\n"));
    }
    for (i, m) in shared.metrics.shards.iter().enumerate() {
        let trouble = m.log.lock().as_ref().and_then(|l| l.trouble());
        if let Some(why) = trouble {
            return Some(format!("shard {i} cannot write: {why}\n"));
        }
    }
    for i in 0..shared.config.shard_count() {
        let mut addr = shared.config.shard_listen(i);
        if addr.ip().is_unspecified() {
            addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
        }
        if let Err(why) = probe(addr).await {
            return Some(format!(
                "shard {i} does not accept connections on {addr}: {why}\n"
            ));
        }
    }
    None
}

/// Connects to a shard port and waits for the server's SETTINGS frame; a
/// GOAWAY right after it means the shard is at its connection limit.
async fn probe(addr: std::net::SocketAddr) -> Result<(), String> {
    let attempt = async {
        let mut s = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
        let mut hello = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
        hello.extend_from_slice(&[0, 0, 0, 4, 0, 0, 0, 0, 0]);
        s.write_all(&hello).await.map_err(|e| e.to_string())?;
        let mut head = [0u8; 9];
        s.read_exact(&mut head).await.map_err(|e| e.to_string())?;
        if head[3] != 4 {
            return Err(format!("first frame is of type {}, not SETTINGS", head[3]));
        }
        let len = u32::from_be_bytes([0, head[0], head[1], head[2]]) as usize;
        let mut payload = vec![0u8; len.min(1 << 10)];
        s.read_exact(&mut payload)
            .await
            .map_err(|e| e.to_string())?;
        let next = tokio::time::timeout(GOAWAY_WAIT, s.read_exact(&mut head)).await;
        if matches!(next, Ok(Ok(_))) && head[3] == 7 {
            return Err("it is at its connection limit (--max-connections-per-shard)".into());
        }
        Ok(())
    };
    tokio::time::timeout(PROBE_TIMEOUT, attempt)
        .await
        .unwrap_or_else(|_| {
            Err(format!(
                "no HTTP/2 SETTINGS within {} ms",
                PROBE_TIMEOUT.as_millis()
            ))
        })
}

/// Reads the request head (up to [`MAX_HEAD`] bytes, within the read
/// timeout) and answers it.
async fn answer(mut stream: TcpStream, shared: &Shared) {
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
    if tokio::time::timeout(shared.config.admin_read_timeout(), read)
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
    let (status, body) = match (method, path) {
        (Some("GET" | "HEAD"), Some(path)) => route(path, shared).await,
        _ => (405, "only GET and HEAD are served\n".into()),
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
        "HTTP/1.1 {status} {reason}\r\nContent-Type: text/plain\r\n{allow}Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    if method != Some("HEAD") {
        reply.push_str(&body);
    }
    let _ = stream.write_all(reply.as_bytes()).await;
    let _ = stream.shutdown().await;
}
