//! The chaos run's fault proxy: a TCP relay between the agents and a store
//! (S3 server, PostgreSQL) whose behaviour the nemesis switches at run
//! time. Owns its listener and the connections through it; knows nothing of
//! agents or of what the bytes mean, except for the HTTP error mode, which
//! reads one request head and answers it itself.

use std::net::SocketAddr;
use std::os::fd::{AsRawFd, RawFd};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// What the proxy does with the bytes, until the next switch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Relay everything.
    Pass,
    /// Reset every open connection and every new one at once (what a
    /// stopped server or a crashed middlebox looks like).
    Reset,
    /// Hold every byte in both directions (connections stay open); relay
    /// again when the mode changes.
    Stall,
    /// Swallow every byte; when the mode changes, close the connections
    /// that were swallowed (a network that dropped packets for a while).
    Blackhole,
    /// Relay [`SLOW_PIECE`] bytes per [`SLOW_PAUSE`].
    Slow,
    /// Reset open connections; answer each new connection's first request
    /// with this HTTP status and close it.
    HttpError(u16),
}

/// Bytes relayed per pause in [`Mode::Slow`]: 512 B per 20 ms, ~25 KB/s.
pub const SLOW_PIECE: usize = 512;
/// Pause between pieces in [`Mode::Slow`].
pub const SLOW_PAUSE: Duration = Duration::from_millis(20);

/// A running proxy; stops accepting when dropped (open relays end with
/// their connections).
pub struct FaultProxy {
    addr: SocketAddr,
    mode: watch::Sender<Mode>,
    task: tokio::task::JoinHandle<()>,
}

impl FaultProxy {
    /// Listens on a free loopback port and relays to `target`.
    pub async fn start(target: SocketAddr) -> Result<FaultProxy, String> {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(|e| format!("fault proxy: cannot listen: {e}"))?;
        let addr = listener.local_addr().map_err(|e| e.to_string())?;
        let (mode, rx) = watch::channel(Mode::Pass);
        let task = tokio::spawn(accept_loop(listener, target, rx));
        Ok(FaultProxy { addr, mode, task })
    }

    /// Address the agents connect to instead of the store's.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Switches the mode for open and new connections.
    pub fn set(&self, mode: Mode) {
        self.mode.send_replace(mode);
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn accept_loop(listener: TcpListener, target: SocketAddr, mode: watch::Receiver<Mode>) {
    loop {
        let Ok((client, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        let mode = mode.clone();
        tokio::spawn(async move {
            let _ = client.set_nodelay(true);
            let current = *mode.borrow();
            match current {
                Mode::Reset => reset(client.as_raw_fd()),
                Mode::HttpError(status) => answer_http(client, status).await,
                _ => {
                    let Ok(upstream) = TcpStream::connect(target).await else {
                        reset(client.as_raw_fd());
                        return;
                    };
                    let _ = upstream.set_nodelay(true);
                    relay(client, upstream, mode).await;
                }
            }
        });
    }
}

/// Makes the next close of `fd` send a TCP reset (`SO_LINGER` 0).
fn reset(fd: RawFd) {
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: setsockopt on a socket this task owns, with a valid pointer
    // and length.
    unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&linger as *const libc::linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        );
    }
}

/// Reads one request head (at most 64 KiB) and answers `status`.
async fn answer_http(mut client: TcpStream, status: u16) {
    let mut head = Vec::new();
    let mut buf = [0u8; 4096];
    let read = async {
        while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 64 << 10 {
            match client.read(&mut buf).await {
                Ok(0) | Err(_) => return false,
                Ok(n) => head.extend_from_slice(&buf[..n]),
            }
        }
        true
    };
    if !matches!(
        tokio::time::timeout(Duration::from_secs(5), read).await,
        Ok(true)
    ) {
        return;
    }
    let reason = if status == 503 {
        "Service Unavailable"
    } else {
        "Internal Server Error"
    };
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>{}</Code><Message>fault proxy</Message></Error>",
        if status == 503 { "SlowDown" } else { "InternalError" }
    );
    let answer = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: application/xml\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = client.write_all(answer.as_bytes()).await;
    let _ = client.shutdown().await;
}

async fn relay(client: TcpStream, upstream: TcpStream, mode: watch::Receiver<Mode>) {
    let fds = (client.as_raw_fd(), upstream.as_raw_fd());
    let (cr, cw) = client.into_split();
    let (ur, uw) = upstream.into_split();
    let up = pump(cr, uw, mode.clone());
    let down = pump(ur, cw, mode);
    tokio::pin!(up, down);
    // Either direction ending with a reset resets both sockets; a clean
    // end of one direction waits for the other.
    let ended = tokio::select! {
        e = &mut up => match e { End::Reset => End::Reset, End::Eof => down.await },
        e = &mut down => match e { End::Reset => End::Reset, End::Eof => up.await },
    };
    if ended == End::Reset {
        reset(fds.0);
        reset(fds.1);
    }
}

#[derive(Debug, PartialEq, Eq)]
enum End {
    Eof,
    Reset,
}

async fn pump(
    mut from: OwnedReadHalf,
    mut to: OwnedWriteHalf,
    mut mode: watch::Receiver<Mode>,
) -> End {
    let mut buf = vec![0u8; 64 << 10];
    let mut swallowed = false;
    loop {
        let current = *mode.borrow_and_update();
        match current {
            Mode::Reset | Mode::HttpError(_) => return End::Reset,
            Mode::Stall => {
                if mode.changed().await.is_err() {
                    return End::Reset;
                }
            }
            Mode::Blackhole => {
                swallowed = true;
                tokio::select! {
                    r = from.read(&mut buf) => if matches!(r, Ok(0) | Err(_)) { return End::Reset },
                    c = mode.changed() => if c.is_err() { return End::Reset },
                }
            }
            Mode::Pass | Mode::Slow => {
                if swallowed {
                    return End::Reset;
                }
                let n = tokio::select! {
                    r = from.read(&mut buf) => match r {
                        Ok(0) => {
                            let _ = to.shutdown().await;
                            return End::Eof;
                        }
                        Ok(n) => n,
                        Err(_) => return End::Reset,
                    },
                    c = mode.changed() => {
                        if c.is_err() { return End::Reset }
                        continue;
                    }
                };
                if current == Mode::Slow {
                    for piece in buf[..n].chunks(SLOW_PIECE) {
                        tokio::time::sleep(SLOW_PAUSE).await;
                        if to.write_all(piece).await.is_err() {
                            return End::Reset;
                        }
                    }
                } else if to.write_all(&buf[..n]).await.is_err() {
                    return End::Reset;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn echo_server() -> SocketAddr {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = l.accept().await {
                tokio::spawn(async move {
                    let mut b = [0u8; 1024];
                    while let Ok(n) = s.read(&mut b).await {
                        if n == 0 || s.write_all(&b[..n]).await.is_err() {
                            break;
                        }
                    }
                });
            }
        });
        addr
    }

    async fn roundtrip(s: &mut TcpStream, msg: &[u8]) -> std::io::Result<Vec<u8>> {
        s.write_all(msg).await?;
        let mut b = vec![0u8; msg.len()];
        s.read_exact(&mut b).await?;
        Ok(b)
    }

    #[tokio::test]
    async fn relays_stalls_resets_and_answers_http_errors() {
        let p = FaultProxy::start(echo_server().await).await.unwrap();
        let mut s = TcpStream::connect(p.addr()).await.unwrap();
        assert_eq!(roundtrip(&mut s, b"hello").await.unwrap(), b"hello");

        p.set(Mode::Stall);
        tokio::time::sleep(Duration::from_millis(20)).await;
        s.write_all(b"held").await.unwrap();
        let mut b = [0u8; 4];
        let r = tokio::time::timeout(Duration::from_millis(200), s.read_exact(&mut b)).await;
        assert!(r.is_err(), "a stalled proxy relayed bytes");
        p.set(Mode::Pass);
        tokio::time::timeout(Duration::from_secs(2), s.read_exact(&mut b))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(&b, b"held");

        p.set(Mode::Reset);
        let r = tokio::time::timeout(Duration::from_secs(2), roundtrip(&mut s, b"x")).await;
        assert!(matches!(r, Ok(Err(_))), "open connection not reset: {r:?}");
        let mut fresh = TcpStream::connect(p.addr()).await.unwrap();
        assert!(roundtrip(&mut fresh, b"y").await.is_err());

        p.set(Mode::HttpError(503));
        let mut h = TcpStream::connect(p.addr()).await.unwrap();
        h.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let mut answer = String::new();
        h.read_to_string(&mut answer).await.unwrap();
        assert!(answer.starts_with("HTTP/1.1 503 "), "{answer}");

        p.set(Mode::Pass);
        let mut again = TcpStream::connect(p.addr()).await.unwrap();
        assert_eq!(roundtrip(&mut again, b"back").await.unwrap(), b"back");
    }
}
