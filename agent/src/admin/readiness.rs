//! Whether the agent is ready to serve (`GET /ready`): the flags the
//! control thread sets (first lease round done, last metadata call's
//! error) and a probe of every shard port. Owns those flags; must not
//! reach into the control plane or a shard.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::metrics::{Registry, ShardMetrics};

/// How long `/ready` waits for a shard port's SETTINGS.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);
/// ... and then for a GOAWAY that would say the shard is full.
const GOAWAY_WAIT: Duration = Duration::from_millis(200);

/// What `/ready` is decided from.
pub struct Readiness {
    /// The first lease round is done.
    started: AtomicBool,
    /// Why the last metadata store call failed; `None` when it succeeded.
    meta_error: Mutex<Option<String>>,
    /// Each shard's listening address, probed with an HTTP/2 preface.
    shard_ports: Vec<SocketAddr>,
}

impl Readiness {
    /// Not ready until [`Readiness::set_started`]; probes `shard_ports`
    /// (an unspecified address is probed on 127.0.0.1).
    pub fn new(shard_ports: Vec<SocketAddr>) -> Self {
        Readiness {
            started: AtomicBool::new(false),
            meta_error: Mutex::new(None),
            shard_ports,
        }
    }

    /// The first lease round is done.
    pub fn set_started(&self) {
        self.started.store(true, Ordering::Release);
    }

    /// Records the outcome of the last metadata store round (`None`: it
    /// worked).
    pub fn set_meta_error(&self, error: Option<String>) {
        *self.meta_error.lock() = error;
    }

    /// Why the agent is not ready, by its flags alone (no port probed):
    /// starting, metadata store unreachable, or a shard's log cannot write.
    /// What `streamhouse_ready` on `/metrics` shows.
    pub fn not_ready_flags(&self, shards: &[Arc<ShardMetrics>]) -> Option<String> {
        if !self.started.load(Ordering::Acquire) {
            return Some("starting: leases not acquired yet\n".into());
        }
        if let Some(e) = &*self.meta_error.lock() {
            return Some(format!("metadata store unreachable: {e}\n"));
        }
        for (i, m) in shards.iter().enumerate() {
            let trouble = m.log.lock().as_ref().and_then(|l| l.trouble());
            if let Some(why) = trouble {
                return Some(format!("shard {i} cannot write: {why}\n"));
            }
        }
        None
    }

    /// Why the agent is not ready, if it is not: its flags, then a probe of
    /// every shard port.
    pub(crate) async fn not_ready(&self, metrics: &Registry) -> Option<String> {
        if let Some(why) = self.not_ready_flags(&metrics.shards) {
            return Some(why);
        }
        for (i, addr) in self.shard_ports.iter().enumerate() {
            let mut addr = *addr;
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
}

/// Connects to a shard port and waits for the server's SETTINGS frame; a
/// GOAWAY right after it means the shard is at its connection limit.
async fn probe(addr: SocketAddr) -> Result<(), String> {
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
