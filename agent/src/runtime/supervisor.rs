//! One shard's executor thread and its restarts. A shard whose executor
//! panics is reported `Failed` to the control thread (its leases are kept
//! and renewed, no new ones are taken for it), started again on a fresh
//! executor after a pause (recovery replays its WAL, so nothing it
//! acknowledged is lost) with a new inbox, to which the control thread
//! hands the shard's leases again, and reported `Healthy` once it serves.
//! A shard that does not serve again within [`GIVE_UP_AFTER`] is reported
//! `Dead`: its leases are no longer renewed, so other agents take its
//! partitions; restarts go on. Owns the thread that joins the executor;
//! what a shard does lives in `shard`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::channel::mpsc;
use glommio::{LocalExecutorBuilder, Placement};

use crate::config::AgentConfig;
use crate::control::inbox::{ControlHandle, ToControl};
use crate::messages::{ShardHealth, ToShard};
use crate::metrics::ShardMetrics;
use crate::shard::{self, Ready, ShardSetup};
use crate::topics::catalog::Catalog;

/// First pause before a panicked shard is started again: 1 s, doubling
/// with each restart that follows another within [`CALM`], up to
/// [`MAX_PAUSE`].
const FIRST_PAUSE: Duration = Duration::from_millis(1000);
/// Longest pause between restarts: 30 s.
const MAX_PAUSE: Duration = Duration::from_secs(30);
/// A shard that served this long since its last restart starts over at
/// [`FIRST_PAUSE`]: 5 min.
const CALM: Duration = Duration::from_secs(300);
/// How long a restarted shard may take to recover its WAL and listen: 10 min.
const START_WITHIN: Duration = Duration::from_secs(600);
/// A shard not serving again this long after its panic is reported `Dead`:
/// 60 s.
const GIVE_UP_AFTER: Duration = Duration::from_secs(60);

/// What every start of one shard is made from.
pub struct Supervised {
    pub shard: usize,
    pub core: usize,
    pub config: Arc<AgentConfig>,
    pub catalog: Arc<Catalog>,
    pub draining: Arc<AtomicBool>,
    pub control: ControlHandle,
    pub metrics: Arc<ShardMetrics>,
    pub flush_only: bool,
    pub sockets: Arc<crate::runtime::sockets::ShardSockets>,
    pub tls: Option<Arc<crate::tls::ServerTls>>,
    /// The credentials every call is checked against (`--auth required`).
    pub auth: Option<Arc<crate::auth::CredentialBook>>,
}

impl Supervised {
    fn setup(&self, ready: Ready, messages: mpsc::UnboundedReceiver<ToShard>) -> ShardSetup {
        ShardSetup {
            shard: self.shard,
            config: self.config.clone(),
            catalog: self.catalog.clone(),
            draining: self.draining.clone(),
            ready,
            control: self.control.clone(),
            messages,
            metrics: self.metrics.clone(),
            flush_only: self.flush_only,
            sockets: self.sockets.clone(),
            tls: self.tls.clone(),
            auth: self.auth.clone(),
        }
    }

    fn spawn(
        &self,
        ready: Ready,
        messages: mpsc::UnboundedReceiver<ToShard>,
    ) -> Result<glommio::ExecutorJoinHandle<Result<bool, String>>, String> {
        let setup = self.setup(ready, messages);
        LocalExecutorBuilder::new(Placement::Fixed(self.core))
            .name(&format!("shard-{}", self.shard))
            .spawn(move || shard::run(setup))
            .map_err(|e| format!("cannot start shard {}: {e}", self.shard))
    }
}

/// Starts shard `s.shard` and a thread that restarts it whenever its
/// executor panics while the agent is not draining. The first start
/// reports on `ready` like any shard's; the returned thread ends with the
/// shard's own result once it stops for good (drained, failed to start the
/// first time, or panicked while draining).
pub fn start(
    s: Supervised,
    ready: Ready,
    inbox: mpsc::UnboundedReceiver<ToShard>,
) -> Result<std::thread::JoinHandle<Result<bool, String>>, String> {
    let first = s.spawn(ready, inbox)?;
    std::thread::Builder::new()
        .name(format!("shard-{}-watch", s.shard))
        .spawn(move || watch(s, first))
        .map_err(|e| format!("cannot start the watcher of a shard: {e}"))
}

fn watch(
    s: Supervised,
    mut running: glommio::ExecutorJoinHandle<Result<bool, String>>,
) -> Result<bool, String> {
    let mut pause = FIRST_PAUSE;
    let mut started = Instant::now();
    loop {
        let why = match running.join() {
            Ok(result) => return result,
            Err(panic) => format!("{panic}"),
        };
        if s.draining.load(Ordering::Acquire) || s.flush_only {
            return Err(format!("shard {} panicked: {why}", s.shard));
        }
        s.metrics.restarts.fetch_add(1, Ordering::Relaxed);
        // Its io_uring stays open with the sockets it was serving: shut
        // them down, so its port can be bound again and its clients see
        // their connections end.
        let shut = s.sockets.shut_down_all();
        tracing::error!(shard = s.shard, panic = %why, ?pause, sockets_shut_down = shut, "the shard's executor panicked; starting it again");
        s.control.send(ToControl::ShardHealth {
            shard: s.shard,
            health: ShardHealth::Failed,
        });
        if started.elapsed() >= CALM {
            pause = FIRST_PAUSE;
        }
        let panicked = Instant::now();
        let mut dead = false;
        loop {
            if !dead && panicked.elapsed() >= GIVE_UP_AFTER {
                dead = true;
                tracing::error!(shard = s.shard, "the shard has not served for {GIVE_UP_AFTER:?} after a panic; its leases are left to expire");
                s.control.send(ToControl::ShardHealth {
                    shard: s.shard,
                    health: ShardHealth::Dead,
                });
            }
            std::thread::sleep(pause);
            pause = (pause * 2).min(MAX_PAUSE);
            if s.draining.load(Ordering::Acquire) {
                return Err(format!("shard {} panicked: {why}", s.shard));
            }
            match restart(&s) {
                Ok(h) => {
                    running = h;
                    started = Instant::now();
                    break;
                }
                Err(e) => {
                    tracing::error!(shard = s.shard, error = %e, next = ?pause, "the shard did not start again; retrying")
                }
            }
        }
    }
}

/// Starts the shard on a fresh executor with a new inbox, waits until it
/// serves, and reports it `Healthy`.
fn restart(s: &Supervised) -> Result<glommio::ExecutorJoinHandle<Result<bool, String>>, String> {
    let (tx, rx) = mpsc::unbounded();
    // The control thread sends to the new inbox from now on; what it sends
    // before the shard serves waits there and is applied first.
    s.control.send(ToControl::ShardRestarted {
        shard: s.shard,
        inbox: tx,
    });
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let h = s.spawn(ready_tx, rx)?;
    match ready_rx.recv_timeout(START_WITHIN) {
        Ok((_, Ok(()))) => {
            tracing::warn!(shard = s.shard, "the shard serves again after a panic");
            s.control.send(ToControl::ShardHealth {
                shard: s.shard,
                health: ShardHealth::Healthy,
            });
            Ok(h)
        }
        Ok((_, Err(e))) => {
            let _ = h.join();
            Err(e)
        }
        // Its executor is left to itself (joining could wait for ever).
        Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
            drop(h);
            Err(format!("the shard did not start within {START_WITHIN:?}"))
        }
        Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
            let why = h
                .join()
                .err()
                .map_or_else(|| "it stopped".into(), |p| p.to_string());
            Err(format!("the shard ended while starting: {why}"))
        }
    }
}
