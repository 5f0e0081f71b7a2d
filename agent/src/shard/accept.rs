//! What a new socket on a shard port becomes: a plaintext or a TLS
//! connection, as the port is configured. A plaintext client on a TLS port
//! is told so (its calls answered FAILED_PRECONDITION naming the reason)
//! instead of a bare handshake failure; the TLS handshake
//! has the connection's handshake timeout. Then the connection is
//! `conn::serve`'s. Owns no state.

use std::rc::Rc;

use futures::channel::oneshot;
use glommio::net::TcpStream;

use super::conn::{self, looks_like_tls, Door, Ended, Origin};
use super::grpc::{Code, Status};
use crate::auth::cert::principal_of;

/// Serves the socket `stream` until it closes (see [`conn::serve`]).
pub async fn serve_socket(door: Rc<Door>, stream: TcpStream, stop: oneshot::Receiver<()>) -> Ended {
    let _ = stream.set_nodelay(true);
    // The client's address, for the RPCs that record who called (a group
    // member's host).
    let mut origin = Origin {
        ip: stream.peer_addr().ok().map(|a| a.ip()),
        cert_principal: None,
    };
    let Some(acceptor) = door.tls.clone() else {
        return conn::serve(door, stream, origin, stop).await;
    };
    // Telling plaintext from TLS and the TLS handshake share one deadline;
    // the HTTP/2 handshake after them has its own (`conn::serve`).
    let opened = conn::within(door.handshake_timeout, async move {
        let mut head = [0u8; 2];
        match stream.peek(&mut head).await {
            Err(e) => Err(Ended::Error(e.to_string())),
            Ok(0) => Err(Ended::Closed),
            Ok(n) if !looks_like_tls(&head[..n]) => Ok(Err(stream)),
            Ok(_) => match acceptor.accept(stream).await {
                Ok(tls) => Ok(Ok(tls)),
                Err(e) => Err(Ended::Error(format!("TLS handshake failed: {e}"))),
            },
        }
    })
    .await;
    match opened {
        None => Ended::HandshakeTimeout,
        Some(Err(ended)) => ended,
        Some(Ok(Ok(tls))) => {
            // Verified by the handshake when the port asks for one.
            origin.cert_principal = tls
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|chain| chain.first())
                .and_then(|leaf| principal_of(leaf))
                .map(Rc::from);
            conn::serve(door, tls, origin, stop).await
        }
        Some(Ok(Err(plain))) => {
            let status = Status::new(
                Code::FailedPrecondition,
                "this port requires TLS: connect with TLS (an https:// endpoint; streamctl --tls or --tls-ca)",
            );
            conn::answer_all(&door, plain, status, "a plaintext client on a TLS port").await
        }
    }
}
