//! The socket descriptors a shard's executor holds (its listener and its
//! client connections), registered as they open and close, so that the
//! shard's watcher can shut them down when the executor dies: glommio leaves
//! a panicked executor's io_uring open, and the sockets with requests in
//! flight on it would otherwise stay open for ever (the port bound, clients
//! waiting on connections nobody serves). Owns only the registry; shuts
//! down only descriptors that still are TCP sockets on the shard's port.

use std::collections::HashSet;
use std::os::fd::RawFd;

use parking_lot::Mutex;

/// One shard's open sockets.
pub struct ShardSockets {
    port: u16,
    fds: Mutex<HashSet<RawFd>>,
}

impl ShardSockets {
    /// The registry of the shard listening on `port`.
    pub fn new(port: u16) -> ShardSockets {
        ShardSockets {
            port,
            fds: Mutex::new(HashSet::new()),
        }
    }

    pub fn add(&self, fd: RawFd) {
        self.fds.lock().insert(fd);
    }

    pub fn remove(&self, fd: RawFd) {
        self.fds.lock().remove(&fd);
    }

    /// Shuts down (both directions) every registered descriptor that is
    /// still a TCP socket whose local port is the shard's, and forgets them
    /// all. A listener stops listening (its port can be bound again), a
    /// connection is reset for its client. Returns how many were shut down.
    pub fn shut_down_all(&self) -> usize {
        let fds: Vec<RawFd> = self.fds.lock().drain().collect();
        fds.into_iter()
            .filter(|fd| local_port(*fd) == Some(self.port))
            // SAFETY: shutdown takes any descriptor; on one that is not a
            // socket it fails without effect.
            .filter(|fd| unsafe { libc::shutdown(*fd, libc::SHUT_RDWR) } == 0)
            .count()
    }
}

/// The local TCP port of socket `fd`, if it is a TCP socket.
fn local_port(fd: RawFd) -> Option<u16> {
    // SAFETY: getsockname writes at most `len` bytes into the storage we
    // own and sets `len`; any descriptor is accepted.
    let mut addr: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    let rc = unsafe {
        libc::getsockname(
            fd,
            (&mut addr as *mut libc::sockaddr_storage).cast(),
            &mut len,
        )
    };
    if rc != 0 {
        return None;
    }
    let mut ty: libc::c_int = 0;
    let mut ty_len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: getsockopt writes one c_int into `ty`.
    let rc = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_TYPE,
            (&mut ty as *mut libc::c_int).cast(),
            &mut ty_len,
        )
    };
    if rc != 0 || ty != libc::SOCK_STREAM {
        return None;
    }
    match i32::from(addr.ss_family) {
        libc::AF_INET => {
            // SAFETY: the family says the storage holds a sockaddr_in.
            let a: &libc::sockaddr_in =
                unsafe { &*(&addr as *const libc::sockaddr_storage).cast() };
            Some(u16::from_be(a.sin_port))
        }
        libc::AF_INET6 => {
            // SAFETY: the family says the storage holds a sockaddr_in6.
            let a: &libc::sockaddr_in6 =
                unsafe { &*(&addr as *const libc::sockaddr_storage).cast() };
            Some(u16::from_be(a.sin6_port))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;

    #[test]
    fn only_the_shards_own_sockets_are_shut_down() {
        let ours = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = ours.local_addr().unwrap().port();
        let theirs = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let file = tempfile::tempfile().unwrap();
        let s = ShardSockets::new(port);
        s.add(ours.as_raw_fd());
        s.add(theirs.as_raw_fd());
        s.add(file.as_raw_fd());
        assert_eq!(s.shut_down_all(), 1);
        // The port can be bound again although `ours` is still open.
        let again = std::net::TcpListener::bind(("127.0.0.1", port));
        assert!(again.is_ok(), "{again:?}");
        assert!(theirs.set_nonblocking(true).is_ok());
        assert!(theirs
            .accept()
            .is_err_and(|e| e.kind() == std::io::ErrorKind::WouldBlock));
        assert_eq!(s.shut_down_all(), 0, "forgotten once shut down");
    }
}
