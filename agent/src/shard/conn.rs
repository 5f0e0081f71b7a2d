//! One client connection to a shard port, from its first byte (after TLS,
//! when the port has it: `accept`) to its close: the HTTP/2 preface check
//! (an HTTP/1.1 request gets a plain-text 505, not a bare reset; a TLS
//! client on a plaintext port is named in the log), the handshake within
//! its timeout, one local task per
//! stream with the request's memory reserved from the connection's and the
//! shard's budgets, the caller's authentication before its route runs
//! (`--auth required`: a token, or the client certificate's name), the
//! idle timeout, and GOAWAY on drain. Also the refusal
//! of a connection over the shard's limit. Owns no shard state: what a
//! request means is `dispatch`'s, how the port is run is `shard`'s.

use std::cell::Cell;
use std::pin::Pin;
use std::rc::Rc;

use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tracing::Instrument as _;

use bytes::Bytes;
use futures::channel::oneshot;
use futures::{AsyncRead, AsyncWrite};
use futures::{AsyncReadExt, AsyncWriteExt};
use glommio::net::TcpStream;
use tokio_util::compat::FuturesAsyncReadCompatExt;

use super::budget::{Budget, ReplyBudget};
use super::context::ShardContext;
use super::grpc::{self, Code, H2Settings, Status};
use super::rpc;

/// The client connection preface every HTTP/2 connection starts with.
const PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// What every connection of one shard shares.
pub struct Door {
    pub ctx: Rc<ShardContext>,
    pub settings: H2Settings,
    /// Request bytes held in memory on this shard.
    pub shard_budget: Rc<Budget>,
    /// Request bytes one connection may hold.
    pub connection_budget: usize,
    /// Reply bytes held in memory on this shard.
    pub shard_replies: Rc<Budget>,
    /// Reply bytes one connection may hold.
    pub connection_replies: usize,
    pub handshake_timeout: Duration,
    pub idle_timeout: Duration,
    pub body_timeout: Duration,
    /// TLS on this port (`--tls-cert`); plaintext when `None`.
    pub tls: Option<futures_rustls::TlsAcceptor>,
    /// Checks who each call comes from (`--auth required`); `None`: no
    /// check.
    pub auth: Option<Rc<crate::auth::Authenticator>>,
}

/// Where a connection comes from, as its socket and TLS handshake say.
#[derive(Debug, Clone, Default)]
pub struct Origin {
    /// The client's IP address (`None` when the socket could not say).
    pub ip: Option<std::net::IpAddr>,
    /// The principal its client certificate names (mutual TLS).
    pub cert_principal: Option<Rc<str>>,
}

/// Why a connection ended, for the debug log.
#[derive(Debug)]
pub enum Ended {
    /// The client closed it, or it was closed after GOAWAY.
    Closed,
    /// Not HTTP/2 (an HTTP/1.1 request was answered with 505).
    NotHttp2,
    /// The preface and SETTINGS did not arrive within the timeout.
    HandshakeTimeout,
    /// A plaintext client on a TLS port (told so with a GOAWAY), or a TLS
    /// client on a plaintext port (closed).
    WrongSecurity(&'static str),
    Error(String),
}

/// Serves one connection (plaintext or TLS) from `origin` until it closes.
/// `stop` fires on drain: the connection then sends GOAWAY and ends once
/// its streams are answered.
pub async fn serve<S>(
    door: Rc<Door>,
    stream: S,
    origin: Origin,
    stop: oneshot::Receiver<()>,
) -> Ended
where
    S: AsyncRead + AsyncWrite + Unpin + 'static,
{
    let mut conn = match handshake(&door, stream).await {
        Ok(c) => c,
        Err(e) => return e,
    };
    let budget = Budget::new(door.connection_budget);
    let replies = Budget::new(door.connection_replies);
    let open = Rc::new(Cell::new(0usize));
    let last_active = Rc::new(Cell::new(Instant::now()));
    let mut stop = Some(stop);
    let mut closing = false;
    loop {
        // The timer fires once per idle period (never per tick), so the
        // connection's pending read is re-polled at most that often; while
        // streams are open the connection is not idle and waits a whole
        // period again.
        let idle_left = if open.get() > 0 {
            door.idle_timeout
        } else {
            door.idle_timeout
                .saturating_sub(last_active.get().elapsed())
                .max(Duration::from_millis(10))
        };
        let accept = async { Event::Stream(conn.accept().await.map(|r| r.map(Box::new))) };
        let idle = async {
            if closing {
                std::future::pending::<()>().await;
            }
            glommio::timer::sleep(idle_left).await;
            Event::IdleCheck
        };
        let drain = async {
            match stop.as_mut() {
                Some(rx) => {
                    let _ = rx.await;
                    Event::Drain
                }
                None => std::future::pending().await,
            }
        };
        let next = futures_lite::future::or(accept, futures_lite::future::or(drain, idle)).await;
        match next {
            Event::Drain => {
                stop = None;
                closing = true;
                conn.graceful_shutdown();
            }
            Event::IdleCheck => {
                if open.get() == 0 && last_active.get().elapsed() >= door.idle_timeout {
                    tracing::debug!(shard = door.ctx.shard, "closing an idle connection");
                    closing = true;
                    conn.graceful_shutdown();
                }
            }
            Event::Stream(None) => return Ended::Closed,
            Event::Stream(Some(Err(e))) => {
                return if e.is_io() {
                    Ended::Closed
                } else {
                    Ended::Error(e.to_string())
                };
            }
            Event::Stream(Some(Ok(start))) => {
                let (req, respond) = *start;
                open.set(open.get() + 1);
                let (door, budget, open, last_active, origin) = (
                    door.clone(),
                    (budget.clone(), replies.clone()),
                    open.clone(),
                    last_active.clone(),
                    origin.clone(),
                );
                glommio::spawn_local(async move {
                    handle_stream(&door, budget, &origin, req, respond).await;
                    open.set(open.get() - 1);
                    last_active.set(Instant::now());
                })
                .detach();
            }
        }
    }
}

enum Event {
    Stream(Option<Result<Box<StreamStart>, h2::Error>>),
    Drain,
    IdleCheck,
}

type StreamStart = (
    http::Request<h2::RecvStream>,
    h2::server::SendResponse<Bytes>,
);

/// An HTTP/2 server connection over `T`.
type H2<T> = h2::server::Connection<Rewind<tokio_util::compat::Compat<T>>, Bytes>;

/// The HTTP/2 preface check and handshake, within the handshake timeout.
async fn handshake<S>(door: &Door, mut stream: S) -> Result<H2<S>, Ended>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let handshake = async {
        let preface = read_preface(&mut stream).await?;
        let io = Rewind {
            pre: Bytes::from(preface),
            inner: stream.compat(),
        };
        door.settings
            .builder()
            .handshake::<_, Bytes>(io)
            .await
            .map_err(|e| Ended::Error(format!("handshake failed: {e}")))
    };
    within(door.handshake_timeout, handshake)
        .await
        .unwrap_or(Err(Ended::HandshakeTimeout))
}

/// `fut`'s output, or `None` once `limit` passed first (`fut` is dropped).
pub async fn within<T>(limit: Duration, fut: impl std::future::Future<Output = T>) -> Option<T> {
    futures_lite::future::or(async { Some(fut.await) }, async {
        glommio::timer::sleep(limit).await;
        None
    })
    .await
}

/// Answers every request of a connection with `status` and closes it: a
/// plaintext client on a TLS port gets a gRPC error saying so (gRPC
/// clients do not show a GOAWAY's reason). The connection lasts at most
/// the handshake timeout.
pub async fn answer_all<S>(door: &Door, stream: S, status: Status, why: &'static str) -> Ended
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut conn = match handshake(door, stream).await {
        Ok(c) => c,
        Err(e) => return e,
    };
    let answer = async {
        while let Some(Ok((_req, mut respond))) = conn.accept().await {
            grpc::reply_err(&mut respond, &status);
            conn.graceful_shutdown();
        }
    };
    within(door.handshake_timeout, answer).await;
    Ended::WrongSecurity(why)
}

/// Reads the 24-byte HTTP/2 preface. Anything else ends the connection; an
/// HTTP/1.x request line first gets a plain-text 505 saying what the port
/// speaks.
async fn read_preface<S: AsyncRead + AsyncWrite + Unpin>(s: &mut S) -> Result<Vec<u8>, Ended> {
    let mut buf = vec![0u8; PREFACE.len()];
    let mut n = 0;
    while n < buf.len() {
        let k = s
            .read(&mut buf[n..])
            .await
            .map_err(|e| Ended::Error(e.to_string()))?;
        if k == 0 {
            return Err(Ended::Closed);
        }
        n += k;
        if buf[..n] != PREFACE[..n] {
            if looks_like_http1(&buf[..n]) {
                let body = "this port serves gRPC over HTTP/2 only (h2c, prior knowledge); \
                            HTTP/1.1 is not supported\n";
                let reply = format!(
                    "HTTP/1.1 505 HTTP Version Not Supported\r\nContent-Type: text/plain\r\n\
                     Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = s.write_all(reply.as_bytes()).await;
                let _ = s.flush().await;
                linger_close(s).await;
                return Err(Ended::NotHttp2);
            }
            if looks_like_tls(&buf[..n]) {
                return Err(Ended::WrongSecurity(
                    "a TLS client on a plaintext port (start the agent with --tls-cert and --tls-key, or connect without TLS)",
                ));
            }
            return Err(Ended::Error("not an HTTP/2 connection preface".into()));
        }
    }
    Ok(buf)
}

/// Closes the sending side, then reads (and drops) what the client still
/// sends for up to a second, so closing with unread input does not turn
/// the answer just written into a reset.
async fn linger_close<S: AsyncRead + AsyncWrite + Unpin>(s: &mut S) {
    let _ = s.close().await;
    let drain = async {
        let mut sink = [0u8; 4096];
        let mut total = 0usize;
        while total < 64 << 10 {
            match s.read(&mut sink).await {
                Ok(0) | Err(_) => break,
                Ok(n) => total += n,
            }
        }
    };
    futures_lite::future::or(drain, glommio::timer::sleep(Duration::from_secs(1))).await;
}

/// A TLS connection starts with a handshake record: type 22, version 3.x.
pub fn looks_like_tls(head: &[u8]) -> bool {
    head.first() == Some(&0x16) && head.get(1).is_none_or(|v| *v == 3)
}

/// An HTTP/1.x request line starts with an upper-case method and a space.
fn looks_like_http1(head: &[u8]) -> bool {
    let method = head.iter().take_while(|b| b.is_ascii_uppercase()).count();
    method > 0 && (head.len() == method || head[method] == b' ')
}

/// The HTTP/2 frames a connection over the shard's limit gets before it is
/// closed: the server's (empty) SETTINGS, then GOAWAY with
/// ENHANCE_YOUR_CALM and a reason.
pub fn refusal_frames(reason: &str) -> Vec<u8> {
    let mut out = Vec::new();
    // SETTINGS: length 0, type 4, no flags, stream 0.
    out.extend_from_slice(&[0, 0, 0, 4, 0, 0, 0, 0, 0]);
    let debug = reason.as_bytes();
    let len = 8 + debug.len();
    out.extend_from_slice(&(len as u32).to_be_bytes()[1..]);
    // GOAWAY: type 7, no flags, stream 0, last stream 0, ENHANCE_YOUR_CALM.
    out.extend_from_slice(&[7, 0, 0, 0, 0, 0]);
    out.extend_from_slice(&0u32.to_be_bytes());
    out.extend_from_slice(&0x0bu32.to_be_bytes());
    out.extend_from_slice(debug);
    out
}

/// Sends [`refusal_frames`] and closes, without waiting on a client that
/// does not read (the frames fit any socket buffer).
pub async fn refuse(stream: TcpStream, reason: &str) {
    let mut s = stream;
    let frames = refusal_frames(reason);
    let write = async {
        let _ = s.write_all(&frames).await;
        let _ = s.flush().await;
    };
    futures_lite::future::or(write, glommio::timer::sleep(Duration::from_secs(1))).await;
    let _ = s.close().await;
}

async fn handle_stream(
    door: &Door,
    (connection_budget, connection_replies): (Rc<Budget>, Rc<Budget>),
    origin: &Origin,
    req: http::Request<h2::RecvStream>,
    mut respond: h2::server::SendResponse<Bytes>,
) {
    let ctx = &door.ctx;
    if let Err(code) = grpc::check_request(&req) {
        grpc::reply_http(&mut respond, code);
        return;
    }
    let path = req.uri().path().to_owned();
    let timeout = grpc::parse_timeout(req.headers());
    let (head, stream) = req.into_parts();
    let mut body = grpc::Body {
        stream,
        budgets: vec![
            ("requests on this shard", door.shard_budget.clone()),
            ("requests on this connection", connection_budget),
        ],
        reply: ReplyBudget::new(vec![
            ("replies on this shard", door.shard_replies.clone()),
            ("replies on this connection", connection_replies),
        ]),
        timeout: door.body_timeout,
        held: None,
        peer: origin.ip,
        access: None,
    };
    let Some(route) = rpc::route(&path) else {
        grpc::reply_err(&mut respond, &rpc::unknown_method(&path));
        return;
    };
    if let (Some(auth), false) = (&door.auth, route.anonymous) {
        let authorization = head.headers.get(http::header::AUTHORIZATION);
        match auth
            .authenticate(
                authorization.map(|v| v.as_bytes()),
                origin.cert_principal.as_deref(),
            )
            .await
        {
            Ok(a) => body.access = Some(a),
            Err(status) => {
                ctx.metrics.error(status.code);
                grpc::reply_err(&mut respond, &status);
                return;
            }
        }
    }
    if route.while_draining {
        match rpc::dispatch(ctx, route, &mut body).await {
            Ok(reply) => grpc::reply_ok(&mut respond, reply),
            Err(status) => grpc::reply_err(&mut respond, &status),
        }
        return;
    }
    if ctx.is_draining() {
        grpc::reply_err(
            &mut respond,
            &Status::new(Code::Unavailable, "agent is shutting down"),
        );
        return;
    }
    ctx.inflight.set(ctx.inflight.get() + 1);
    let started = Instant::now();
    // With RUST_LOG at debug, every request is a span (topic and partition
    // recorded once decoded) and ends with an event giving its time.
    let span = tracing::debug_span!(
        "request",
        shard = ctx.shard,
        path = %path,
        topic = tracing::field::Empty,
        partition = tracing::field::Empty,
    );
    let call = rpc::dispatch(ctx, route, &mut body).instrument(span.clone());
    let result = match timeout {
        Some(t) => {
            futures_lite::future::or(call, async move {
                glommio::timer::sleep(t).await;
                Err(Status::new(
                    Code::DeadlineExceeded,
                    format!("deadline of {} ms exceeded", t.as_millis()),
                ))
            })
            .await
        }
        None => call.await,
    };
    ctx.inflight.set(ctx.inflight.get() - 1);
    let elapsed_us = started.elapsed().as_micros() as u64;
    ctx.metrics.request_us.observe(elapsed_us);
    span.in_scope(|| match &result {
        Ok(_) => tracing::debug!(elapsed_us, code = "OK", "request answered"),
        Err(s) => {
            tracing::debug!(elapsed_us, code = ?s.code, message = %s.message, "request answered")
        }
    });
    if let Err(s) = &result {
        ctx.metrics.error(s.code);
    }
    match result {
        Ok(reply) => grpc::send_ok(&mut respond, reply, door.body_timeout).await,
        Err(status) => {
            if matches!(status.code, Code::Internal | Code::DataLoss) {
                tracing::error!(shard = ctx.shard, %path, message = %status.message, "request failed");
            }
            grpc::reply_err(&mut respond, &status)
        }
    }
    // The request's reservation is returned only now: its bytes were held
    // until the reply was built; the reply's, once HTTP/2 took its bytes.
    drop(body);
}

/// A stream whose first bytes were already read (the preface): they are
/// read again first.
struct Rewind<T> {
    pre: Bytes,
    inner: T,
}

impl<T: tokio::io::AsyncRead + Unpin> tokio::io::AsyncRead for Rewind<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        if !self.pre.is_empty() {
            let n = self.pre.len().min(buf.remaining());
            let head = self.pre.split_to(n);
            buf.put_slice(&head);
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<T: tokio::io::AsyncWrite + Unpin> tokio::io::AsyncWrite for Rewind<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http1_request_lines_are_recognised() {
        assert!(looks_like_http1(b"GET / HTTP/1.1\r\n"));
        assert!(looks_like_http1(b"POST"));
        assert!(!looks_like_http1(b"\x16\x03\x01"));
    }

    #[test]
    fn the_refusal_is_settings_then_goaway_with_its_reason() {
        let f = refusal_frames("too many");
        assert_eq!(&f[..9], &[0, 0, 0, 4, 0, 0, 0, 0, 0]);
        assert_eq!(&f[9..12], &[0, 0, 16]);
        assert_eq!(f[12], 7);
        assert_eq!(&f[22..26], &[0, 0, 0, 0x0b]);
        assert_eq!(&f[26..], b"too many");
    }
}
