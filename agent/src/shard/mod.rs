//! One shard's life on its pinned glommio executor: recover the shard's log,
//! listen on the shard's port and accept connections within the shard's
//! connection limit (each served by `conn`), apply the control
//! thread's messages, hand sealed segments to the uploader, and drain on
//! shutdown. Owns the executor's tasks and its table of open connections;
//! shares nothing mutable with other shards except the catalog (admin
//! calls only).

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::channel::{mpsc, oneshot};
use futures::StreamExt;
use glommio::net::TcpListener;
use streamhouse_storage::{LogConfig, ShardLog};

use crate::config::AgentConfig;
use crate::control::inbox::ControlHandle;
use crate::messages::ToShard;
use crate::topics::catalog::Catalog;

use budget::Budget;
use conn::Door;
use context::{ContextParts, ShardContext};
use grpc::H2Settings;

mod accept;
mod append_clock;
pub mod budget;
pub mod conn;
pub mod context;
mod describe;
pub mod grpc;
pub mod leases;
pub mod log_starts;
pub(crate) mod rpc;
mod shipping;
mod status;
mod topic_cache;
mod topics;
mod uploads;
pub mod wal_watch;

/// How long a shard retries binding a port that is in use: 3 s.
const BIND_RETRY: Duration = Duration::from_secs(3);

/// What a shard reports to the main thread once it is serving (or failed to start).
pub type Ready = std::sync::mpsc::Sender<(usize, Result<(), String>)>;

/// The shard's open connections, each with the sender that tells it to
/// drain; a connection's entry goes with its [`ConnectionSlot`].
#[derive(Default)]
struct Connections {
    /// The sender is taken when the drain tells the connection to stop.
    open: HashMap<u64, Option<oneshot::Sender<()>>>,
    next_id: u64,
}

/// One connection's place in the shard's table, its socket registration
/// and the open-connections gauge; dropping it (however the connection's
/// task ends) gives all three back.
struct ConnectionSlot {
    conns: Rc<RefCell<Connections>>,
    id: u64,
    metrics: Arc<crate::metrics::ShardMetrics>,
    sockets: Arc<crate::runtime::sockets::ShardSockets>,
    fd: std::os::fd::RawFd,
}

impl ConnectionSlot {
    fn open(
        conns: &Rc<RefCell<Connections>>,
        drain: oneshot::Sender<()>,
        metrics: &Arc<crate::metrics::ShardMetrics>,
        sockets: &Arc<crate::runtime::sockets::ShardSockets>,
        fd: std::os::fd::RawFd,
    ) -> ConnectionSlot {
        let id = {
            let mut c = conns.borrow_mut();
            c.next_id += 1;
            let id = c.next_id;
            c.open.insert(id, Some(drain));
            metrics
                .connections_open
                .store(c.open.len() as u64, Ordering::Relaxed);
            id
        };
        sockets.add(fd);
        ConnectionSlot {
            conns: conns.clone(),
            id,
            metrics: metrics.clone(),
            sockets: sockets.clone(),
            fd,
        }
    }
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        self.sockets.remove(self.fd);
        let Ok(mut c) = self.conns.try_borrow_mut() else {
            return;
        };
        c.open.remove(&self.id);
        self.metrics
            .connections_open
            .store(c.open.len() as u64, Ordering::Relaxed);
    }
}

/// What a shard is given by the agent that starts it.
pub struct ShardSetup {
    pub shard: usize,
    pub config: Arc<AgentConfig>,
    pub catalog: Arc<Catalog>,
    /// Set by SIGTERM/SIGINT or `RunningAgent::shutdown`.
    pub draining: Arc<AtomicBool>,
    pub ready: Ready,
    pub control: ControlHandle,
    /// Messages from the control thread (leases, committed chunks).
    pub messages: mpsc::UnboundedReceiver<ToShard>,
    pub metrics: Arc<crate::metrics::ShardMetrics>,
    /// Recover, ship every segment to object storage and stop, without
    /// listening: how a data dir written with another shard count is
    /// emptied before the new layout serves (see `lifecycle`).
    pub flush_only: bool,
    /// Where the shard registers its listener and connections (see
    /// `sockets`).
    pub sockets: Arc<crate::runtime::sockets::ShardSockets>,
    /// TLS for the shard's port, shared by every shard (`--tls-cert`).
    pub tls: Option<Arc<crate::tls::ServerTls>>,
    /// The credentials every call is checked against; `None` with
    /// `--auth off`.
    pub auth: Option<Arc<crate::auth::CredentialBook>>,
}

/// Runs shard `shard` until shutdown. Returns whether everything it wrote
/// was committed to object storage before it stopped (then its leases may
/// be released at once), or an error message if it could not start.
pub async fn run(setup: ShardSetup) -> Result<bool, String> {
    let ShardSetup {
        shard,
        config,
        catalog,
        draining,
        ready,
        control,
        mut messages,
        metrics,
        flush_only,
        sockets,
        tls,
        auth,
    } = setup;
    let fail = |e: String| {
        let _ = ready.send((shard, Err(e.clone())));
        e
    };
    let dir = config.data_dir.join(format!("shard-{shard}"));
    let log_id = log_id(&dir).map_err(|e| fail(format!("shard {shard}: {e}")))?;
    let mut log_cfg = LogConfig::new(dir);
    log_cfg.segment_bytes = config.segment_bytes;
    log_cfg.direct_io = config.wal_direct_io;
    log_cfg.preallocate_bytes = config.wal_preallocate_bytes;
    log_cfg.max_producers = config.max_producers_per_shard;
    log_cfg.segment_age = config.segment_age();
    log_cfg.hurried_age = Duration::from_millis(config.object_ack_seal_ms.max(1));
    let (log, report) = ShardLog::open(log_cfg)
        .await
        .map_err(|e| fail(format!("shard {shard}: recovering the WAL failed: {e}")))?;
    tracing::info!(
        shard,
        segments = report.segments,
        batches = report.batches,
        partitions = report.partitions,
        torn_bytes = report.torn_bytes,
        "WAL recovered"
    );
    let addr = config.shard_listen(shard);
    let listener = if flush_only {
        None
    } else {
        Some(
            listen(addr, &sockets)
                .map_err(|e| fail(format!("shard {shard}: cannot listen on {addr}: {e}")))?,
        )
    };
    *metrics.log.lock() = Some(log.stats());
    let ctx = ShardContext::new(ContextParts {
        shard,
        config: config.clone(),
        catalog,
        log: log.clone(),
        draining,
        control,
        log_id,
        metrics,
    });
    // Leases acquired before the shard started: apply them before serving.
    while let Ok(msg) = messages.try_recv() {
        ctx.apply(msg);
    }
    let c = ctx.clone();
    ctx.tasks.spawn_local("control inbox", async move {
        while let Some(msg) = messages.next().await {
            c.apply(msg);
        }
    });
    let mut sealed = log.subscribe_sealed();
    let c = ctx.clone();
    ctx.tasks.spawn_local("shipping", async move {
        while let Some(s) = sealed.next().await {
            c.ship(s.id, s.path, s.len);
        }
    });
    let _ = ready.send((shard, Ok(())));
    let Some((listener, listener_fd)) = listener else {
        let shipped = ctx
            .ship_everything(Instant::now() + config.reshard_timeout())
            .await;
        log.close().await;
        ctx.tasks.stop_all();
        tracing::info!(shard, shipped, "old layout shipped");
        return Ok(shipped);
    };
    tracing::info!(shard, %addr, "serving");
    ctx.tasks
        .spawn_local("wal watch", wal_watch::watch(ctx.clone()));

    let conns = Rc::new(RefCell::new(Connections::default()));
    let door = Rc::new(Door {
        ctx: ctx.clone(),
        settings: H2Settings::default(),
        shard_budget: Budget::new(config.max_buffered_bytes_per_shard),
        connection_budget: config.max_buffered_bytes_per_connection,
        shard_replies: Budget::new(config.max_reply_bytes_per_shard),
        connection_replies: config.max_reply_bytes_per_connection,
        handshake_timeout: config.handshake_timeout(),
        idle_timeout: config.connection_idle_timeout(),
        body_timeout: config.request_body_timeout(),
        tls: tls.map(|t| futures_rustls::TlsAcceptor::from(t.config())),
        auth: auth.map(crate::auth::Authenticator::new),
    });
    let limit = config.max_connections_per_shard;
    // The shutdown flag is polled by its own task, which fires `stop` once.
    // The accept below is polled only when a connection arrives or `stop`
    // fires, never per poll tick: re-polling a pending glommio accept adds
    // a waker each time, and its 16-bit count overflowed after 32,767 ticks
    // (11 minutes without a new connection), wedging the port.
    let (stop_tx, mut stop) = oneshot::channel::<()>();
    let poll = Duration::from_millis(config.shutdown_poll_ms.max(1));
    let watcher = ctx.clone();
    ctx.tasks.spawn_local("drain watch", async move {
        while !watcher.is_draining() {
            glommio::timer::sleep(poll).await;
        }
        let _ = stop_tx.send(());
    });
    loop {
        let next = futures_lite::future::or(async { Some(listener.accept().await) }, async {
            let _ = (&mut stop).await;
            None
        })
        .await;
        match next {
            Some(Ok(stream)) => {
                if conns.borrow().open.len() >= limit {
                    ctx.metrics
                        .connections_refused
                        .fetch_add(1, Ordering::Relaxed);
                    tracing::debug!(shard, limit, "connection over the limit refused");
                    ctx.tasks.spawn_local(
                        "refuse connection",
                        conn::refuse(
                            stream,
                            "too many connections to this shard (--max-connections-per-shard)",
                        ),
                    );
                    continue;
                }
                let (tx, rx) = oneshot::channel();
                let fd = std::os::fd::AsRawFd::as_raw_fd(&stream);
                let slot = ConnectionSlot::open(&conns, tx, &ctx.metrics, &sockets, fd);
                let door = door.clone();
                ctx.tasks.spawn_local("connection", async move {
                    let _slot = slot;
                    let ended = accept::serve_socket(door, stream, rx).await;
                    tracing::debug!(shard, ?ended, "connection ended");
                });
            }
            Some(Err(e)) => {
                tracing::warn!(shard, error = %e, "accept failed");
                glommio::timer::sleep(Duration::from_millis(10)).await;
            }
            None => break,
        }
    }

    // Drain: stop accepting, tell every connection to send GOAWAY, wait for
    // in-flight requests, then make sure everything queued is durable.
    drop(listener);
    sockets.remove(listener_fd);
    tracing::info!(shard, "draining");
    for tx in conns.borrow_mut().open.values_mut() {
        if let Some(tx) = tx.take() {
            let _ = tx.send(());
        }
    }
    let deadline = Instant::now() + config.shutdown_grace();
    // Connections get half the grace period to answer their streams and
    // close (a client that never acknowledges the GOAWAY must not use up
    // the time shipping needs); requests in flight get all of it.
    let conns_deadline = Instant::now() + config.shutdown_grace() / 2;
    while Instant::now() < deadline
        && (ctx.inflight.get() > 0
            || (!conns.borrow().open.is_empty() && Instant::now() < conns_deadline))
    {
        glommio::timer::sleep(Duration::from_millis(5)).await;
    }
    if ctx.inflight.get() > 0 {
        tracing::warn!(
            shard,
            inflight = ctx.inflight.get(),
            "grace period over with requests in flight"
        );
    }
    // Seal and ship what is left, within the grace period: only then may
    // another agent take the partitions without waiting for lease expiry.
    let shipped = ctx.ship_everything(deadline).await;
    if !shipped {
        tracing::warn!(
            shard,
            "grace period over before every segment reached object storage; \
             leases are kept until they expire (restart on this data dir to ship the rest)"
        );
    }
    // A failed log has nothing left to make durable: close returns at
    // once; still, never wait past the grace period.
    let left = deadline.saturating_duration_since(Instant::now()) + Duration::from_millis(100);
    let closed = futures_lite::future::or(
        async {
            log.close().await;
            true
        },
        async {
            glommio::timer::sleep(left).await;
            false
        },
    )
    .await;
    if !closed {
        tracing::warn!(shard, "the WAL did not close within the grace period");
    }
    let left = ctx.tasks.stop_all();
    tracing::info!(shard, shipped, ?left, "stopped");
    Ok(shipped)
}

/// The id naming this log's chunk objects, created once per log directory
/// (a wiped data dir gets a new one, so object keys never collide).
fn log_id(dir: &std::path::Path) -> Result<String, String> {
    let path = dir.join("LOG_ID");
    match std::fs::read_to_string(&path) {
        Ok(s) if !s.trim().is_empty() => return Ok(s.trim().to_owned()),
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
    }
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let id = format!("{:016x}", rand::random::<u64>());
    let tmp = dir.join("LOG_ID.tmp");
    std::fs::write(&tmp, &id)
        .and_then(|_| std::fs::File::open(&tmp)?.sync_all())
        .and_then(|_| std::fs::rename(&tmp, &path))
        .and_then(|_| std::fs::File::open(dir)?.sync_all())
        .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    Ok(id)
}

/// Binds the shard's gRPC port the way servers should: `SO_REUSEADDR`, so a
/// restart is not refused by connections of the previous run still in
/// TIME_WAIT, and no `SO_REUSEPORT` (glommio's own `bind` sets it), so a
/// second agent configured with a port already in use fails at start
/// instead of silently sharing the port and taking half its connections.
///
/// A port still held by the listening socket of an agent that just died is
/// retried for up to [`BIND_RETRY`]: the kernel closes a killed process's
/// io_uring-held sockets shortly after it exits, and an immediate restart
/// must not fail on that.
fn listen(
    addr: std::net::SocketAddr,
    sockets: &crate::runtime::sockets::ShardSockets,
) -> std::io::Result<(TcpListener, std::os::fd::RawFd)> {
    use std::os::unix::io::{FromRawFd, IntoRawFd};
    let deadline = Instant::now() + BIND_RETRY;
    // std's bind sets SO_REUSEADDR (only) on Unix and listens.
    let std_listener = loop {
        match std::net::TcpListener::bind(addr) {
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(20));
            }
            other => break other?,
        }
    };
    let fd = std_listener.into_raw_fd();
    sockets.add(fd);
    // SAFETY: the descriptor is a bound, listening TCP socket whose
    // ownership `into_raw_fd` hands over; nothing else closes it.
    Ok((unsafe { TcpListener::from_raw_fd(fd) }, fd))
}
