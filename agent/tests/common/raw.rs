#![allow(dead_code)]
//! A raw HTTP/2 gRPC client for tests that must send what tonic cannot:
//! lying length prefixes, reserved flag bits, bodies that never end.

use std::time::Duration;

use bytes::Bytes;

/// What the agent answered to one raw call.
#[derive(Debug, Default)]
pub struct RawReply {
    /// The HTTP status of the response headers.
    pub http: u16,
    /// `grpc-status` (from the headers of a trailers-only reply, or the trailers).
    pub grpc_status: Option<String>,
    pub grpc_message: Option<String>,
    /// `grpc-accept-encoding`, if the agent sent one.
    pub accept_encoding: Option<String>,
    /// `grpc-retry-pushback-ms`, if the agent sent one.
    pub pushback: Option<String>,
    /// The response body (gRPC-framed).
    pub body: Vec<u8>,
}

/// A gRPC frame: flag byte, big-endian length, message.
pub fn frame(flag: u8, msg: &[u8]) -> Vec<u8> {
    let mut out = vec![flag];
    out.extend_from_slice(&(msg.len() as u32).to_be_bytes());
    out.extend_from_slice(msg);
    out
}

/// An h2 connection to `addr`, its driver spawned on the test runtime.
pub async fn connect(addr: &str) -> h2::client::SendRequest<Bytes> {
    let tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let (h2c, conn) = tokio::time::timeout(Duration::from_secs(5), h2::client::handshake(tcp))
        .await
        .expect("HTTP/2 handshake timed out")
        .expect("HTTP/2 handshake");
    tokio::spawn(async move {
        let _ = conn.await;
    });
    h2c.ready().await.expect("connection ready")
}

/// A POST of `path` with gRPC headers (plus `extra`).
pub fn request(addr: &str, path: &str, extra: &[(&str, &str)]) -> http::Request<()> {
    let mut b = http::Request::post(format!("http://{addr}{path}"))
        .header("content-type", "application/grpc")
        .header("te", "trailers");
    for (k, v) in extra {
        b = b.header(*k, *v);
    }
    b.body(()).expect("request")
}

/// Sends one call with `body` as the whole request body and reads the reply.
pub async fn call(
    h2c: &mut h2::client::SendRequest<Bytes>,
    req: http::Request<()>,
    body: Vec<u8>,
) -> RawReply {
    let (resp, mut send) = h2c.send_request(req, false).expect("send request");
    send.send_data(body.into(), true).expect("send body");
    read_reply(resp).await
}

/// Reads a response: headers, body and trailers.
pub async fn read_reply(resp: h2::client::ResponseFuture) -> RawReply {
    let resp = tokio::time::timeout(Duration::from_secs(60), resp)
        .await
        .expect("no reply within 60 s")
        .expect("response");
    let header =
        |h: &http::HeaderMap, k: &str| h.get(k).and_then(|v| v.to_str().ok()).map(|s| s.to_owned());
    let mut out = RawReply {
        http: resp.status().as_u16(),
        grpc_status: header(resp.headers(), "grpc-status"),
        grpc_message: header(resp.headers(), "grpc-message"),
        accept_encoding: header(resp.headers(), "grpc-accept-encoding"),
        pushback: header(resp.headers(), "grpc-retry-pushback-ms"),
        body: Vec::new(),
    };
    let mut body = resp.into_body();
    while let Some(chunk) = body.data().await {
        let Ok(chunk) = chunk else { break };
        let _ = body.flow_control().release_capacity(chunk.len());
        out.body.extend_from_slice(&chunk);
    }
    if let Ok(Some(t)) = body.trailers().await {
        out.grpc_status = out.grpc_status.or(header(&t, "grpc-status"));
        out.grpc_message = out.grpc_message.or(header(&t, "grpc-message"));
    }
    out
}

/// Agent flags for a shard whose request buffers one unfinished 1 MiB
/// request fills: 1 MiB requests, buffers of 1 MiB + a frame prefix per
/// connection and per shard, bodies given 1.5 s to arrive.
pub const SMALL_BUFFERS: [&str; 8] = [
    "--max-request-bytes",
    "1048576",
    "--max-buffered-bytes-per-connection",
    "1048581",
    "--max-buffered-bytes-per-shard",
    "1048581",
    "--request-body-timeout-ms",
    "1500",
];

/// On an agent started with [`SMALL_BUFFERS`]: opens a produce stream on
/// `h2c` that announces a 1 MiB message and sends none of it, so the
/// shard's whole budget is held until the body timeout. Returns the
/// stream's reply (`DEADLINE_EXCEEDED` once it times out) and its sender,
/// to be kept until then.
pub async fn hold_shard_buffers(
    h2c: &mut h2::client::SendRequest<Bytes>,
    addr: &str,
) -> (h2::client::ResponseFuture, h2::SendStream<Bytes>) {
    let req = request(addr, streamhouse_proto::paths::PRODUCE, &[]);
    let (resp, mut send) = h2c.send_request(req, false).expect("send request");
    let mut prefix = vec![0u8];
    prefix.extend_from_slice(&(1_048_576u32).to_be_bytes());
    send.send_data(prefix.into(), false).expect("send prefix");
    // Let the agent take the announced bytes from its budget.
    tokio::time::sleep(Duration::from_millis(200)).await;
    (resp, send)
}

/// Opens `streams` Produce calls on `h2c`, each declaring a message of
/// `declared` bytes and sending all of it but the last 64 KiB, never the
/// end: request bodies held open. Returns each call's reply and its send
/// half (keep the send half while the body is to stay open).
pub fn hold_produce_bodies(
    h2c: &mut h2::client::SendRequest<Bytes>,
    addr: &str,
    streams: usize,
    declared: usize,
) -> Vec<(h2::client::ResponseFuture, h2::SendStream<Bytes>)> {
    // One 1 MiB chunk, shared by every stream (Bytes clones share memory).
    let chunk = Bytes::from(vec![7u8; 1 << 20]);
    let mut held = Vec::with_capacity(streams);
    for _ in 0..streams {
        let req = request(addr, streamhouse_proto::paths::PRODUCE, &[]);
        let (resp, mut send) = h2c.send_request(req, false).expect("send request");
        let mut prefix = vec![0u8];
        prefix.extend_from_slice(&(declared as u32).to_be_bytes());
        send.send_data(prefix.into(), false).expect("prefix");
        let mut left = declared - (64 << 10);
        while left > 0 {
            let n = left.min(chunk.len());
            send.send_data(chunk.slice(..n), false).expect("data");
            left -= n;
        }
        held.push((resp, send));
    }
    held
}
