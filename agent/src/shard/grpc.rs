//! gRPC over HTTP/2 on one shard: connection setup, request framing
//! (5-byte length prefix), `grpc-timeout`, and replies with `grpc-status`
//! trailers. Owns the wire details; knows nothing of topics or logs (`dispatch`
//! and the handlers decide what a request means).

use std::rc::Rc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use h2::server::SendResponse;
use h2::RecvStream;
use http::{HeaderMap, HeaderValue, Request, Response};
use prost::Message;
use streamhouse_proto::framing::{self, PrefixError, PREFIX_LEN};

use super::budget::{Budget, Exhausted, ReplyBudget, Reservation};
pub use crate::grpc_status::{Code, Status};

/// How long a client is told to wait before retrying a request refused
/// because the request buffers were full: 100 ms.
pub const BUFFER_PUSHBACK: Duration = Duration::from_millis(100);

/// Settings of the HTTP/2 server side of a connection.
#[derive(Debug, Clone, Copy)]
pub struct H2Settings {
    /// Per-stream receive window, bytes; default 4 MiB.
    pub stream_window: u32,
    /// Per-connection receive window, bytes; default 32 MiB.
    pub connection_window: u32,
    /// Largest frame accepted, bytes; default 64 KiB.
    pub max_frame: u32,
    /// Concurrent streams per connection; default 1024.
    pub max_streams: u32,
}

impl Default for H2Settings {
    fn default() -> Self {
        H2Settings {
            stream_window: 4 << 20,
            connection_window: 32 << 20,
            max_frame: 64 << 10,
            max_streams: 1024,
        }
    }
}

impl H2Settings {
    pub fn builder(&self) -> h2::server::Builder {
        let mut b = h2::server::Builder::new();
        b.initial_window_size(self.stream_window)
            .initial_connection_window_size(self.connection_window)
            .max_frame_size(self.max_frame)
            .max_concurrent_streams(self.max_streams)
            .max_send_buffer_size(1 << 20);
        b
    }
}

/// Checks that a request is a gRPC call (POST, `application/grpc` content
/// type). Returns the HTTP status to answer with when it is not.
pub fn check_request(req: &Request<RecvStream>) -> Result<(), http::StatusCode> {
    if req.method() != http::Method::POST {
        return Err(http::StatusCode::METHOD_NOT_ALLOWED);
    }
    let ct = req
        .headers()
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if ct == "application/grpc"
        || ct.starts_with("application/grpc+proto")
        || ct.starts_with("application/grpc;")
    {
        Ok(())
    } else {
        Err(http::StatusCode::UNSUPPORTED_MEDIA_TYPE)
    }
}

/// The `grpc-timeout` header's value ("100m", "5S", ...), if it has a
/// valid one.
pub fn parse_timeout(headers: &HeaderMap) -> Option<Duration> {
    framing::parse_timeout(headers.get("grpc-timeout")?.to_str().ok()?)
}

/// The body of one request with what bounds it: the byte budgets its
/// message is reserved from (shard and connection), and how long it may
/// take to arrive.
pub struct Body {
    pub stream: RecvStream,
    /// Budgets the message is reserved from, each named for errors.
    pub budgets: Vec<(&'static str, Rc<Budget>)>,
    /// The whole message must have arrived within this after the request
    /// started (`--request-body-timeout-ms`).
    pub timeout: Duration,
    /// The reservation of the message read, held until the request is
    /// answered (dropping the body returns it).
    pub held: Option<Reservation>,
    /// What the reply may hold in memory (reads reserve from it).
    pub reply: ReplyBudget,
    /// The client's IP address (`None` when the socket could not say).
    pub peer: Option<std::net::IpAddr>,
    /// Who the request authenticated as and the rules it is checked
    /// against (`None` with `--auth off`: no check).
    pub access: Option<crate::auth::Access>,
}

/// A request or reply refused by a full byte budget: RESOURCE_EXHAUSTED
/// with a retry pushback of [`BUFFER_PUSHBACK`], refused at once rather
/// than made to wait.
pub fn over_budget(e: Exhausted) -> Status {
    Status::new(Code::ResourceExhausted, e.to_string()).retry_after(BUFFER_PUSHBACK)
}

/// Reads the single gRPC message of a unary call, refusing more than `limit`
/// bytes of message, a message that does not fit the body's budgets, and a
/// body that does not arrive within its timeout. Flow-control credit is
/// given back only for bytes already reserved, so a client cannot make the
/// agent buffer more than the budgets hold.
pub async fn read_message(body: &mut Body, limit: usize) -> Result<Bytes, Status> {
    let timeout = body.timeout;
    futures_lite::future::or(read_reserved(body, limit), async move {
        glommio::timer::sleep(timeout).await;
        Err(Status::new(
            Code::DeadlineExceeded,
            format!(
                "the request body did not arrive within {} ms",
                timeout.as_millis()
            ),
        ))
    })
    .await
}

async fn read_reserved(body: &mut Body, limit: usize) -> Result<Bytes, Status> {
    // The whole message usually arrives as one chunk: keep it without copying.
    let mut first: Option<Bytes> = None;
    let mut rest = BytesMut::new();
    let mut expected: Option<usize> = None;
    // Bytes received before the message was reserved (its prefix arrives
    // first): their credit is given back once it is.
    let mut unreleased = 0usize;
    while let Some(chunk) = body.stream.data().await {
        let chunk = chunk
            .map_err(|e| Status::new(Code::Cancelled, format!("request stream failed: {e}")))?;
        let n = chunk.len();
        match first.take() {
            None if rest.is_empty() => first = Some(chunk),
            other => {
                if let Some(f) = other {
                    rest.extend_from_slice(&f);
                }
                rest.extend_from_slice(&chunk);
            }
        }
        let have: &[u8] = first.as_deref().unwrap_or(&rest);
        if expected.is_none() {
            let Some((flag, len)) = framing::split_prefix(have) else {
                unreleased += n;
                continue;
            };
            check_prefix(flag, len, limit)?;
            // A full budget refuses at once rather than waiting: a stream
            // waiting for room would hold connection flow-control window
            // that the streams holding the budget need to finish.
            let held = Reservation::take(&body.budgets, len + PREFIX_LEN).map_err(over_budget)?;
            body.held = Some(held);
            expected = Some(len);
            let _ = body.stream.flow_control().release_capacity(unreleased + n);
        } else {
            let _ = body.stream.flow_control().release_capacity(n);
        }
        if let Some(len) = expected {
            if have.len() > len + PREFIX_LEN {
                return Err(Status::new(
                    Code::InvalidArgument,
                    format!(
                        "the request body holds more than the {len} bytes its gRPC length \
                         prefix declares; a unary call takes exactly one message"
                    ),
                ));
            }
        }
    }
    let all = first.unwrap_or_else(|| rest.freeze());
    match expected {
        Some(len) if all.len() == len + PREFIX_LEN => Ok(all.slice(PREFIX_LEN..)),
        Some(len) => Err(Status::new(
            Code::InvalidArgument,
            format!(
                "the request body ended after {} of the {len} message bytes its gRPC length \
                 prefix declares",
                all.len().saturating_sub(PREFIX_LEN)
            ),
        )),
        None => Err(Status::new(
            Code::InvalidArgument,
            "request body ended before a complete gRPC message",
        )),
    }
}

/// Checks a unary gRPC message's prefix against `limit` bytes
/// ([`framing::check_prefix`]), as the status to answer with.
pub fn check_prefix(flag: u8, len: usize, limit: usize) -> Result<(), Status> {
    framing::check_prefix(flag, len, limit).map_err(|e| {
        let code = match e {
            PrefixError::Compressed => Code::Unimplemented,
            PrefixError::ReservedFlag(_) => Code::InvalidArgument,
            PrefixError::TooLarge { .. } => Code::ResourceExhausted,
        };
        Status::new(code, e.to_string())
    })
}

fn grpc_headers() -> Response<()> {
    let mut r = Response::new(());
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/grpc"),
    );
    // Messages are never compressed: said on every reply, so a client
    // whose compressed message was refused knows what to send instead.
    r.headers_mut()
        .insert("grpc-accept-encoding", HeaderValue::from_static("identity"));
    r
}

/// Percent-encodes a grpc-message value as the gRPC spec asks.
fn encode_message(msg: &str) -> HeaderValue {
    let mut out = String::with_capacity(msg.len());
    for b in msg.bytes() {
        if (0x20..0x7f).contains(&b) && b != b'%' {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    HeaderValue::from_str(&out).unwrap_or_else(|_| HeaderValue::from_static("error"))
}

/// Sends a successful unary reply: headers, the length-prefixed message
/// (see [`encode_reply`]), and `grpc-status: 0` trailers.
pub fn reply_ok(respond: &mut SendResponse<Bytes>, framed: Bytes) {
    let Ok(mut stream) = respond.send_response(grpc_headers(), false) else {
        return;
    };
    if stream.send_data(framed, false).is_err() {
        return;
    }
    let mut trailers = HeaderMap::new();
    trailers.insert("grpc-status", HeaderValue::from_static("0"));
    let _ = stream.send_trailers(trailers);
}

/// Sends a reply as [`reply_ok`] does, but hands its message to HTTP/2 only
/// as the peer's flow-control window takes it (at most HTTP/2's send
/// buffer ahead), returning once the last byte was handed over: what the
/// reply reserved is held until then. A peer that takes nothing for
/// `stall` gets the stream reset (`CANCEL`).
pub async fn send_ok(respond: &mut SendResponse<Bytes>, mut framed: Bytes, stall: Duration) {
    let Ok(mut stream) = respond.send_response(grpc_headers(), false) else {
        return;
    };
    while !framed.is_empty() {
        stream.reserve_capacity(framed.len());
        let room = futures_lite::future::or(
            async { futures::future::poll_fn(|cx| stream.poll_capacity(cx)).await },
            async {
                glommio::timer::sleep(stall).await;
                Some(Err(h2::Error::from(h2::Reason::CANCEL)))
            },
        )
        .await;
        match room {
            Some(Ok(0)) => {}
            Some(Ok(n)) => {
                let chunk = framed.split_to(n.min(framed.len()));
                if stream.send_data(chunk, false).is_err() {
                    return;
                }
            }
            Some(Err(_)) | None => {
                stream.send_reset(h2::Reason::CANCEL);
                return;
            }
        }
    }
    let mut trailers = HeaderMap::new();
    trailers.insert("grpc-status", HeaderValue::from_static("0"));
    let _ = stream.send_trailers(trailers);
}

/// Sends an error as a trailers-only reply.
pub fn reply_err(respond: &mut SendResponse<Bytes>, status: &Status) {
    let mut r = grpc_headers();
    r.headers_mut().insert(
        "grpc-status",
        HeaderValue::from_str(&(status.code as u8).to_string())
            .unwrap_or(HeaderValue::from_static("13")),
    );
    r.headers_mut()
        .insert("grpc-message", encode_message(&status.message));
    if let Some(d) = status.retry_after {
        if let Ok(v) = HeaderValue::from_str(&d.as_millis().to_string()) {
            r.headers_mut().insert("grpc-retry-pushback-ms", v);
        }
    }
    let _ = respond.send_response(r, true);
}

/// Answers a non-gRPC request with a bare HTTP status.
pub fn reply_http(respond: &mut SendResponse<Bytes>, code: http::StatusCode) {
    let mut r = Response::new(());
    *r.status_mut() = code;
    let _ = respond.send_response(r, true);
}

/// Encodes a reply message with its 5-byte gRPC prefix
/// ([`framing::frame_message`]).
pub fn encode_reply(msg: &impl Message) -> Bytes {
    framing::frame_message(msg)
}

pub fn decode<M: Message + Default>(bytes: Bytes, what: &str) -> Result<M, Status> {
    M::decode(bytes)
        .map_err(|e| Status::new(Code::InvalidArgument, format!("malformed {what}: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeouts_parse() {
        let mut h = HeaderMap::new();
        h.insert("grpc-timeout", HeaderValue::from_static("250m"));
        assert_eq!(parse_timeout(&h), Some(Duration::from_millis(250)));
        h.insert("grpc-timeout", HeaderValue::from_static("3S"));
        assert_eq!(parse_timeout(&h), Some(Duration::from_secs(3)));
        h.insert("grpc-timeout", HeaderValue::from_static("3x"));
        assert_eq!(parse_timeout(&h), None);
    }

    #[test]
    fn messages_are_percent_encoded() {
        assert_eq!(encode_message("a 100% é"), "a 100%25 %C3%A9");
    }
}
