//! What a new socket on a shard port becomes: a plaintext or a TLS
//! connection, as the port is configured. A plaintext client on a TLS port
//! is told so (its calls answered FAILED_PRECONDITION naming the reason)
//! instead of a bare handshake failure; the TLS handshake
//! has the connection's handshake timeout. Then the connection is
//! `conn::serve`'s. Owns no state.

use std::rc::Rc;

use futures::channel::oneshot;
use glommio::net::TcpStream;

use super::conn::{self, looks_like_tls, Door, Ended};
use super::grpc::{Code, Status};

/// Serves the socket `stream` until it closes (see [`conn::serve`]).
pub async fn serve_socket(door: Rc<Door>, stream: TcpStream, stop: oneshot::Receiver<()>) -> Ended {
    let _ = stream.set_nodelay(true);
    // The client's address, for the RPCs that record who called (a group
    // member's host).
    let peer = stream.peer_addr().ok().map(|a| a.ip());
    let Some(acceptor) = door.tls.clone() else {
        return conn::serve(door, stream, peer, stop).await;
    };
    let timeout = door.handshake_timeout;
    let mut head = [0u8; 2];
    let peeked = futures_lite::future::or(async { Some(stream.peek(&mut head).await) }, async {
        glommio::timer::sleep(timeout).await;
        None
    })
    .await;
    match peeked {
        None => return Ended::HandshakeTimeout,
        Some(Err(e)) => return Ended::Error(e.to_string()),
        Some(Ok(0)) => return Ended::Closed,
        Some(Ok(n)) if !looks_like_tls(&head[..n]) => {
            let status = Status::new(
                Code::FailedPrecondition,
                "this port requires TLS: connect with TLS (an https:// endpoint; streamctl --tls or --tls-ca)",
            );
            return conn::answer_all(&door, stream, status, "a plaintext client on a TLS port")
                .await;
        }
        Some(Ok(_)) => {}
    }
    let handshake =
        futures_lite::future::or(async { Some(acceptor.accept(stream).await) }, async {
            glommio::timer::sleep(timeout).await;
            None
        })
        .await;
    match handshake {
        None => Ended::HandshakeTimeout,
        Some(Err(e)) => Ended::Error(format!("TLS handshake failed: {e}")),
        Some(Ok(tls)) => conn::serve(door, tls, peer, stop).await,
    }
}
