//! The control thread: one tokio runtime beside the shards that owns
//! everything slow or shared across agents — the metadata store, the object
//! store, the lease task, the uploader and reads of chunk objects. Shards
//! talk to it through a crossbeam channel (plus a wake-up) and it answers
//! through per-shard channels, so a shard never blocks on it and never takes
//! a lock it shares with another core. Must not touch shard logs directly.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::channel::mpsc;
use parking_lot::Mutex;
use tokio::sync::Notify;

use crate::admin::{Admin, Readiness};
use crate::config::AgentConfig;
use crate::messages::ToShard;
use crate::metastore::{MetaStore, OPEN_WAIT};
use crate::metrics::Registry;
use crate::objstore::ObjectStore;
use crate::runtime::tasks::TaskRegistry;
use crate::topics::catalog::Catalog;
use held::HeldLeases;
use inbox::{ControlHandle, ToControl};
use members::Members;
use remote::RemoteCache;
use state::Shared;

mod compaction;
mod debug_state;
mod dispatch;
mod groups;
mod held;
pub mod inbox;
mod key_compaction;
mod leases;
mod members;
mod membership;
pub mod remote;
mod retention;
pub(crate) mod rpc;
mod runtime_thread;
mod security;
mod state;
mod sweep;
mod topics;
pub mod uploader;

/// The running control thread.
pub struct Control {
    handle: ControlHandle,
    shared: Arc<Shared>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Control {
    pub fn handle(&self) -> ControlHandle {
        self.handle.clone()
    }

    /// The agent's drain flag (false until SIGTERM or `shutdown`); set,
    /// the control plane takes no new leases.
    pub fn drain_flag(&self) -> Arc<AtomicBool> {
        self.shared.draining.clone()
    }

    /// Stops the lease task and uploader and joins; with `release`, gives
    /// every lease up first (everything written is in object storage, so
    /// other agents may take the partitions at once).
    pub fn shutdown(mut self, release: bool) {
        self.shared.release.store(release, Ordering::Release);
        self.shared.stop.store(true, Ordering::Release);
        self.handle.notify.notify_one();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// What the control thread starts from.
pub struct Inputs {
    pub config: Arc<AgentConfig>,
    pub catalog: Arc<Catalog>,
    pub metrics: Arc<Registry>,
    /// The shard ports' TLS; the admin port serves HTTPS with its
    /// certificate too (no client certificate asked).
    pub tls: Option<Arc<crate::tls::ServerTls>>,
    /// Users' tokens, loaded here (before the shards serve) and kept
    /// current with `--auth required`.
    pub credentials: Arc<crate::auth::CredentialBook>,
}

/// Starts the control thread: opens the metadata and object stores, loads
/// topics into `catalog`, acquires leases and queues them for the shards.
/// Returns once that is done, with one message receiver per shard.
pub fn start(inputs: Inputs) -> Result<(Control, Vec<mpsc::UnboundedReceiver<ToShard>>), String> {
    let config = inputs.config.clone();
    let shards = config.shard_count();
    let (senders, receivers): (Vec<_>, Vec<_>) = (0..shards).map(|_| mpsc::unbounded()).unzip();
    let (tx, rx) = crossbeam_channel::unbounded();
    let notify = Arc::new(Notify::new());
    let handle = ControlHandle {
        tx,
        notify: notify.clone(),
    };
    let (ready_tx, ready_rx) = std::sync::mpsc::channel::<Result<Arc<Shared>, String>>();
    let thread = runtime_thread::spawn("control", move || {
        run(inputs, senders, rx, notify, ready_tx)
    })
    .map_err(|e| format!("cannot start the control thread: {e}"))?;
    match ready_rx.recv() {
        Ok(Ok(shared)) => Ok((
            Control {
                handle,
                shared,
                thread: Some(thread),
            },
            receivers,
        )),
        Ok(Err(e)) => {
            let _ = thread.join();
            Err(e)
        }
        Err(_) => {
            let _ = thread.join();
            Err("the control thread stopped during start (see the log)".into())
        }
    }
}

async fn run(
    inputs: Inputs,
    shards: Vec<mpsc::UnboundedSender<ToShard>>,
    rx: crossbeam_channel::Receiver<ToControl>,
    notify: Arc<Notify>,
    ready: std::sync::mpsc::Sender<Result<Arc<Shared>, String>>,
) {
    let Inputs {
        config,
        catalog,
        metrics,
        tls,
        credentials,
    } = inputs;
    let meta_url = config.metadata_url();
    // For logs and messages: the password never appears in them.
    let shown_url = crate::metastore::redact_url(&meta_url);
    let meta = match MetaStore::open_at_start(&meta_url, OPEN_WAIT).await {
        Ok(m) => m,
        Err(e) => {
            let _ = ready.send(Err(format!("--metadata {shown_url}: {e}")));
            return;
        }
    };
    let renewals = match MetaStore::open_at_start(&meta_url, OPEN_WAIT).await {
        Ok(m) => m,
        Err(e) => {
            let _ = ready.send(Err(format!("--metadata {shown_url}: {e}")));
            return;
        }
    };
    let store_url = config.object_store_url();
    let store = match ObjectStore::open(&store_url) {
        Ok(s) => s.with_call_timeout(Duration::from_millis(config.object_store_timeout_ms.max(1))),
        Err(e) => {
            let _ = ready.send(Err(format!("--object-store: {e}")));
            return;
        }
    };
    tracing::info!(metadata = %shown_url, object_store = %store.describe(), "control plane open");
    let shard_ports = (0..config.shard_count())
        .map(|i| config.shard_listen(i))
        .collect();
    let members = Members::new(&config.agent_id);
    let group_settings = config.group_settings();
    let shared = Arc::new(Shared {
        cache: Mutex::new(RemoteCache::new(config.read_cache_bytes)),
        config,
        catalog,
        meta,
        renewals,
        renew_gate: tokio::sync::Mutex::new(()),
        store,
        shards: shards.into_iter().map(Mutex::new).collect(),
        leases: HeldLeases::default(),
        stop: AtomicBool::new(false),
        metrics,
        release: AtomicBool::new(false),
        members,
        moving: Mutex::new(HashSet::new()),
        readiness: Arc::new(Readiness::new(shard_ports)),
        draining: Arc::new(AtomicBool::new(false)),
        tasks: Arc::new(TaskRegistry::default()),
        groups: crate::groups::coordinator::Coordinator::new(
            group_settings,
            Box::new(crate::groups::coordinator::random_member_id),
        ),
        watermarks: Arc::new(crate::cluster::watermarks::Watermarks::default()),
        credentials,
    });
    {
        // Partitions this agent leads: exact, from their shards.
        let catalog = shared.catalog.clone();
        shared.watermarks.set_local(Box::new(move |topic, p| {
            let t = catalog.get(topic)?;
            let held = t.lease_epochs.get(p as usize)?.load(Ordering::Relaxed) != 0;
            held.then(|| {
                t.high_watermarks
                    .get(p as usize)
                    .map(|h| h.load(Ordering::Relaxed))
            })
            .flatten()
        }));
        // Lag of every committed partition: led here or elsewhere.
        let watermarks = shared.watermarks.clone();
        shared
            .metrics
            .groups
            .set_high_watermarks(Arc::new(move |topic, p| watermarks.get(topic, p)));
        let catalog = shared.catalog.clone();
        shared.metrics.set_topics(
            Arc::new(move || catalog.list()),
            shared.config.metrics_per_partition,
        );
        let readiness = shared.readiness.clone();
        shared.metrics.set_ready_check(Arc::new(move |shards| {
            readiness.not_ready_flags(shards).is_none()
        }));
    }
    if let Err(e) = shared.sync_topics().await {
        let _ = ready.send(Err(format!("cannot load topics: {e}")));
        return;
    }
    if shared.config.auth.required() {
        if let Err(e) = shared.sync_credentials().await {
            let _ = ready.send(Err(format!("cannot load users and tokens: {e}")));
            return;
        }
    }
    if let Some(addr) = shared.config.admin_listen {
        match tokio::net::TcpListener::bind(addr).await {
            Ok(l) => {
                tracing::info!(%addr, "admin HTTP: /health, /ready, /metrics, /debug/state");
                let admin = Admin {
                    readiness: shared.readiness.clone(),
                    metrics: shared.metrics.clone(),
                    debug_state: {
                        let shared = shared.clone();
                        Arc::new(move || debug_state::snapshot(&shared))
                    },
                    max_connections: shared.config.max_admin_connections,
                    read_timeout: shared.config.admin_read_timeout(),
                    tls: tls
                        .as_ref()
                        .map(|t| tokio_rustls::TlsAcceptor::from(t.http1_config())),
                };
                shared
                    .tasks
                    .spawn("admin port", crate::admin::serve(l, Arc::new(admin)));
            }
            Err(e) => {
                let _ = ready.send(Err(format!("--admin-listen {addr}: {e}")));
                return;
            }
        }
    }
    if let Err(e) = shared.heartbeat().await {
        let _ = ready.send(Err(format!("cannot register the agent: {e}")));
        return;
    }
    // Let the agents already running see this one before partitions are
    // claimed, so a joining agent takes only its share.
    shared.reclaim_own().await;
    shared.acquire_missing().await;
    shared.readiness.set_started();
    let _ = ready.send(Ok(shared.clone()));

    let renewer = match leases::start_renewals(shared.clone()) {
        Ok(h) => h,
        Err(e) => {
            tracing::error!(error = %e, "cannot start the lease renewal thread; leases are renewed on the control thread");
            None
        }
    };
    let (up_tx, up_rx) = tokio::sync::mpsc::unbounded_channel();
    shared
        .tasks
        .spawn("uploader", uploader::run(shared.clone(), up_rx));
    shared
        .tasks
        .spawn("group sweeps", groups::sweep_groups(shared.clone()));
    let r = &shared.config.retention;
    shared.tasks.spawn(
        "retention",
        retention::run_retention(shared.clone(), r.check_interval()),
    );
    shared.tasks.spawn(
        "object sweep",
        sweep::run_sweeps(shared.clone(), r.check_interval(), r.delete_grace()),
    );
    shared
        .tasks
        .spawn("group flushes", groups::flush_groups(shared.clone()));
    if shared.config.auth.required() {
        shared.tasks.spawn(
            "credential sync",
            security::sync_credentials_every(shared.clone(), shared.config.auth.refresh_every()),
        );
    }
    let tick = Duration::from_millis(
        (shared.config.lease_ttl_ms / 3)
            .min(shared.config.heartbeat_ms)
            .max(20),
    );
    let mut next_tick = tokio::time::Instant::now() + tick;
    while !shared.stop.load(Ordering::Acquire) {
        while let Ok(req) = rx.try_recv() {
            match req {
                ToControl::Upload(job) => {
                    let _ = up_tx.send(job);
                }
                other => {
                    shared.tasks.spawn("request", shared.clone().handle(other));
                }
            }
        }
        tokio::select! {
            _ = notify.notified() => {}
            _ = tokio::time::sleep_until(next_tick) => {
                next_tick = tokio::time::Instant::now() + tick;
                let s = shared.clone();
                if renewer.is_none() {
                    s.renew_all().await;
                }
                let beat = s.heartbeat().await;
                let synced = s.sync_topics().await;
                let error = beat.and(synced).err().map(|e| e.to_string());
                if let Some(e) = &error {
                    tracing::warn!(error = %e, "metadata store unreachable");
                }
                s.readiness.set_meta_error(error);
                s.rebalance();
                s.acquire_missing().await;
            }
        }
    }
    // The uploader stops here; its committer finishes what was queued
    // (its channel closes with the uploader) and ends by itself.
    shared.tasks.stop("uploader");
    if let Some(h) = renewer {
        let _ = tokio::task::spawn_blocking(move || h.join()).await;
    }
    if shared.release.load(Ordering::Acquire) {
        shared.release_all().await;
        tracing::info!("control plane stopped; leases released");
    } else {
        tracing::info!("control plane stopped; leases kept until they expire");
    }
    let left = shared.tasks.stop_all();
    if !left.is_empty() {
        tracing::debug!(?left, "control tasks stopped at shutdown");
    }
}
