//! One shard's life on its pinned glommio executor: recover the shard's log,
//! listen on the shard's port, serve HTTP/2 connections (one local task per
//! stream), apply the control thread's messages, hand sealed segments to the
//! uploader, and drain on shutdown. Owns the executor's tasks; shares nothing
//! mutable with other shards except the catalog (admin calls only).

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::channel::{mpsc, oneshot};
use futures::StreamExt;
use glommio::net::{TcpListener, TcpStream};
use streamhouse_shard::{LogConfig, ShardLog};
use tokio_util::compat::FuturesAsyncReadCompatExt;

use crate::catalog::Catalog;
use crate::config::AgentConfig;
use crate::control::{ControlHandle, ShardMsg};
use crate::grpc::{self, Code, H2Settings, Status};
use crate::service::{ContextParts, ShardContext};

/// How often a shard looks at the shutdown flag.
const SHUTDOWN_POLL: Duration = Duration::from_millis(20);

/// What a shard reports to the main thread once it is serving (or failed to start).
pub type Ready = std::sync::mpsc::Sender<(usize, Result<(), String>)>;

/// Per-shard connection bookkeeping for draining.
#[derive(Default)]
struct Connections {
    stop: Vec<oneshot::Sender<()>>,
    open: usize,
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
    pub messages: mpsc::UnboundedReceiver<ShardMsg>,
    pub metrics: Arc<crate::metrics::ShardMetrics>,
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
    let listener =
        listen(addr).map_err(|e| fail(format!("shard {shard}: cannot listen on {addr}: {e}")))?;
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
    glommio::spawn_local(async move {
        while let Some(msg) = messages.next().await {
            c.apply(msg);
        }
    })
    .detach();
    let mut sealed = log.subscribe_sealed();
    let c = ctx.clone();
    glommio::spawn_local(async move {
        while let Some(s) = sealed.next().await {
            c.ship(s.id, s.path, s.len);
        }
    })
    .detach();
    let _ = ready.send((shard, Ok(())));
    tracing::info!(shard, %addr, "serving");

    let conns = Rc::new(RefCell::new(Connections::default()));
    let settings = H2Settings::default();
    loop {
        let next = futures_lite::future::or(async { Some(listener.accept().await) }, async {
            while !ctx.is_draining() {
                glommio::timer::sleep(SHUTDOWN_POLL).await;
            }
            None
        })
        .await;
        match next {
            Some(Ok(stream)) => {
                let (tx, rx) = oneshot::channel();
                {
                    let mut c = conns.borrow_mut();
                    c.stop.push(tx);
                    c.open += 1;
                    ctx.metrics
                        .connections_open
                        .store(c.open as u64, Ordering::Relaxed);
                }
                let ctx = ctx.clone();
                let ctx2 = ctx.clone();
                let conns = conns.clone();
                glommio::spawn_local(async move {
                    if let Err(e) = serve_connection(ctx, stream, settings, rx).await {
                        tracing::debug!(shard, error = %e, "connection ended with an error");
                    }
                    let mut c = conns.borrow_mut();
                    c.open -= 1;
                    ctx2.metrics
                        .connections_open
                        .store(c.open as u64, Ordering::Relaxed);
                })
                .detach();
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
    tracing::info!(shard, "draining");
    for tx in conns.borrow_mut().stop.drain(..) {
        let _ = tx.send(());
    }
    let deadline = Instant::now() + config.shutdown_grace();
    while (conns.borrow().open > 0 || ctx.inflight.get() > 0) && Instant::now() < deadline {
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
    log.close().await;
    tracing::info!(shard, shipped, "stopped");
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

async fn serve_connection(
    ctx: Rc<ShardContext>,
    stream: TcpStream,
    settings: H2Settings,
    stop: oneshot::Receiver<()>,
) -> Result<(), h2::Error> {
    let _ = stream.set_nodelay(true);
    let mut conn = settings
        .builder()
        .handshake::<_, Bytes>(stream.compat())
        .await?;
    let mut stop = Some(stop);
    loop {
        let next = match stop.as_mut() {
            Some(rx) => {
                futures_lite::future::or(async { Some(conn.accept().await) }, async {
                    let _ = rx.await;
                    None
                })
                .await
            }
            None => Some(conn.accept().await),
        };
        match next {
            None => {
                stop = None;
                conn.graceful_shutdown();
            }
            Some(None) => return Ok(()),
            Some(Some(Err(e))) => {
                return if e.is_io() { Ok(()) } else { Err(e) };
            }
            Some(Some(Ok((req, respond)))) => {
                let ctx = ctx.clone();
                glommio::spawn_local(handle_stream(ctx, req, respond)).detach();
            }
        }
    }
}

async fn handle_stream(
    ctx: Rc<ShardContext>,
    req: http::Request<h2::RecvStream>,
    mut respond: h2::server::SendResponse<Bytes>,
) {
    if let Err(code) = grpc::check_request(&req) {
        grpc::reply_http(&mut respond, code);
        return;
    }
    if req.uri().path() == streamhouse_proto::paths::HEALTH_CHECK {
        let mut body = req.into_body();
        match ctx.health(&mut body).await {
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
    let path = req.uri().path().to_owned();
    let timeout = grpc::parse_timeout(req.headers());
    let mut body = req.into_body();
    ctx.inflight.set(ctx.inflight.get() + 1);
    let started = Instant::now();
    let call = ctx.call(&path, &mut body);
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
    ctx.metrics
        .request_us
        .observe(started.elapsed().as_micros() as u64);
    if let Err(s) = &result {
        ctx.metrics.error(s.code);
    }
    match result {
        Ok(reply) => grpc::reply_ok(&mut respond, reply),
        Err(status) => {
            if matches!(status.code, Code::Internal | Code::DataLoss) {
                tracing::error!(shard = ctx.shard, %path, message = %status.message, "request failed");
            }
            grpc::reply_err(&mut respond, &status)
        }
    }
}

/// Binds the shard's gRPC port the way servers should: `SO_REUSEADDR`, so a
/// restart is not refused by connections of the previous run still in
/// TIME_WAIT, and no `SO_REUSEPORT` (glommio's own `bind` sets it), so a
/// second agent configured with a port already in use fails at start
/// instead of silently sharing the port and taking half its connections.
fn listen(addr: std::net::SocketAddr) -> std::io::Result<TcpListener> {
    use std::os::unix::io::{FromRawFd, IntoRawFd};
    // std's bind sets SO_REUSEADDR (only) on Unix and listens.
    let std_listener = std::net::TcpListener::bind(addr)?;
    // SAFETY: the descriptor is a bound, listening TCP socket whose
    // ownership `into_raw_fd` hands over; nothing else closes it.
    Ok(unsafe { TcpListener::from_raw_fd(std_listener.into_raw_fd()) })
}
