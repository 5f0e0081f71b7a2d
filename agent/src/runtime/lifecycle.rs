//! Starting and stopping an agent: the data-dir lock, the catalog, the
//! control thread, one pinned glommio executor per shard, and the drain flag
//! that SIGTERM/SIGINT (or [`RunningAgent::shutdown`]) sets. Owns the shard
//! and control threads; what they do lives in `shard` and `control`.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::config::AgentConfig;
use crate::control::{self, Control};
use crate::runtime::supervisor;
use crate::topics::catalog::Catalog;

/// A started agent.
pub struct RunningAgent {
    config: Arc<AgentConfig>,
    draining: Arc<AtomicBool>,
    /// Each shard's watcher thread (see `supervisor`).
    handles: Vec<std::thread::JoinHandle<Result<bool, String>>>,
    control: Control,
    _lock: File,
}

/// How an agent ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Every shard drained and stopped.
    Clean,
    /// Some shard failed; the messages say which and why.
    Failed(Vec<String>),
}

/// Takes an exclusive lock on `data_dir/LOCK`, so two agents never write the
/// same WAL. The kernel releases it when the process dies.
fn lock_data_dir(config: &AgentConfig) -> Result<File, String> {
    let path = config.data_dir.join("LOCK");
    let f = File::create(&path).map_err(|e| format!("cannot create {}: {e}", path.display()))?;
    // SAFETY: flock on a descriptor we own; no memory is involved.
    let rc = unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if rc != 0 {
        return Err(format!(
            "data dir {} is in use by another agent (lock {} is held)",
            config.data_dir.display(),
            path.display()
        ));
    }
    Ok(f)
}

/// Binds the data dir to this agent id (`data_dir/AGENT_ID`, written on
/// first start). A WAL holds data written under this agent's leases, which
/// only this agent id can take back and commit; started under another id,
/// that data would never reach object storage. So a different id is
/// refused, with what to do instead.
fn claim_data_dir(config: &AgentConfig) -> Result<(), String> {
    let path = config.data_dir.join("AGENT_ID");
    match std::fs::read_to_string(&path) {
        Ok(owner) if owner.trim() == config.agent_id => Ok(()),
        Ok(owner) if !owner.trim().is_empty() => Err(format!(
            "data dir {} belongs to agent {:?}, not {:?}: its WAL may hold data only \
             that agent's leases can commit. Start with --agent-id {}, or give this agent \
             another data dir (remove {} only if that agent's data is no longer needed)",
            config.data_dir.display(),
            owner.trim(),
            config.agent_id,
            owner.trim(),
            path.display()
        )),
        Ok(_) => write_agent_id(&path, &config.agent_id),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            write_agent_id(&path, &config.agent_id)
        }
        Err(e) => Err(format!("cannot read {}: {e}", path.display())),
    }
}

fn write_agent_id(path: &std::path::Path, id: &str) -> Result<(), String> {
    let tmp = path.with_extension("tmp");
    let dir = path.parent().unwrap_or(std::path::Path::new("."));
    std::fs::write(&tmp, id)
        .and_then(|_| File::open(&tmp)?.sync_all())
        .and_then(|_| std::fs::rename(&tmp, path))
        .and_then(|_| File::open(dir)?.sync_all())
        .map_err(|e| format!("cannot write {}: {e}", path.display()))
}

/// Starts the agent: locks the data dir, opens the catalog, starts and
/// recovers every shard, and returns once all of them serve (or the first
/// error). With `signals`, SIGTERM and SIGINT start a drain.
pub fn start(mut config: AgentConfig, signals: bool) -> Result<RunningAgent, String> {
    config.validate()?;
    // Fixed once, here: inside a shard (pinned to one core) the default
    // would read as 1.
    config.shards = Some(config.shard_count());
    std::fs::create_dir_all(&config.data_dir)
        .map_err(|e| format!("cannot create data dir {}: {e}", config.data_dir.display()))?;
    // An absolute path: the shards' io_uring opens fail on relative ones.
    config.data_dir = std::fs::canonicalize(&config.data_dir)
        .map_err(|e| format!("cannot resolve data dir {}: {e}", config.data_dir.display()))?;
    let lock = lock_data_dir(&config)?;
    claim_data_dir(&config)?;
    let shards = config.shard_count();
    match crate::runtime::layout::recorded(&config.data_dir)? {
        Some(old) if old != shards => reshard(&config, &lock, old)?,
        Some(_) => {}
        None => crate::runtime::layout::record(&config.data_dir, shards)?,
    }
    launch(config, signals, lock, false)
}

/// Ships the WAL a data dir holds from `old` shards to object storage, so
/// that every acknowledged record stays readable at its offsets (and new
/// writes continue after them) once the configured count serves: starts
/// the agent with the old count without listening, lets every shard ship
/// and commit all its segments, releases the leases, and only then records
/// the new count and removes the surplus WAL directories. If anything is
/// left unshipped within `--reshard-timeout-ms`, the old WAL stays as it was
/// and the start fails, naming the old count.
fn reshard(config: &AgentConfig, lock: &File, old: usize) -> Result<(), String> {
    let new = config.shard_count();
    tracing::warn!(
        old_shards = old,
        new_shards = new,
        data_dir = %config.data_dir.display(),
        "the data dir was written with another shard count: shipping its WAL to object \
         storage before serving with the new count"
    );
    let mut flush = config.clone();
    flush.shards = Some(old);
    flush.admin_listen = None;
    let lock = lock
        .try_clone()
        .map_err(|e| format!("cannot share the data-dir lock: {e}"))?;
    let agent = launch(flush, false, lock, true)
        .map_err(|e| refuse_reshard(config, old, &format!("the old layout did not start: {e}")))?;
    agent.draining.store(true, Ordering::Relaxed);
    let (outcome, shipped) = agent.finish();
    if let Outcome::Failed(errors) = outcome {
        return Err(refuse_reshard(config, old, &errors.join("; ")));
    }
    if !shipped {
        return Err(refuse_reshard(
            config,
            old,
            &format!(
                "its WAL was not all in object storage within --reshard-timeout-ms ({} ms)",
                config.reshard_timeout_ms
            ),
        ));
    }
    crate::runtime::layout::record(&config.data_dir, new)?;
    crate::runtime::layout::remove_shards_from(&config.data_dir, new, old)?;
    tracing::info!(
        old_shards = old,
        new_shards = new,
        "the old layout's WAL is in object storage"
    );
    Ok(())
}

fn refuse_reshard(config: &AgentConfig, old: usize, why: &str) -> String {
    format!(
        "cannot change the shard count of data dir {} from {old} to {}: {why}. Its WAL is \
         kept as it was: fix the object store or metadata store and start again, or start \
         with --shards {old}",
        config.data_dir.display(),
        config.shard_count()
    )
}

/// Starts the shards and the control thread on a locked, claimed data dir.
/// With `flush_only`, the shards ship their WAL and stop instead of serving.
fn launch(
    mut config: AgentConfig,
    signals: bool,
    lock: File,
    flush_only: bool,
) -> Result<RunningAgent, String> {
    let shards = config.shard_count();
    if config.listen.port() == 0 {
        let base = crate::runtime::ports::kernel_chosen(config.listen.ip(), shards)
            .ok_or("no free ports for the shards")?;
        config.listen.set_port(base);
    }
    let open_files = crate::runtime::limits::open_file_limit(signals);
    let fit = crate::runtime::limits::plan(
        open_files,
        shards,
        config.max_connections_per_shard,
        config.max_admin_connections,
    );
    if fit.per_shard < config.max_connections_per_shard || fit.admin < config.max_admin_connections
    {
        tracing::warn!(
            open_files,
            reserved = crate::runtime::limits::reserved_descriptors(open_files, shards),
            max_connections_per_shard = fit.per_shard,
            max_admin_connections = fit.admin,
            "the open-file limit cannot hold the configured connection limits with the \
             descriptors the log and the stores need: lowered (raise `ulimit -n` to keep them)"
        );
    }
    config.max_connections_per_shard = fit.per_shard;
    config.max_admin_connections = fit.admin;
    let catalog = Arc::new(Catalog::new());
    let config = Arc::new(config);
    let registry = Arc::new(crate::metrics::Registry::new(config.shard_count()));
    let tls = match config.tls.files() {
        Some(files) => {
            let tls = crate::tls::ServerTls::load(files).map_err(|e| format!("TLS: {e}"))?;
            Some(Arc::new(tls))
        }
        None => None,
    };
    let credentials = Arc::new(crate::auth::CredentialBook::new(
        config.auth.superusers.iter().cloned(),
        config.auth.bootstrap_token()?,
    ));
    let (control, mut inboxes) = control::start(control::Inputs {
        config: config.clone(),
        catalog: catalog.clone(),
        metrics: registry.clone(),
        tls: tls.clone(),
        credentials: credentials.clone(),
    })?;
    let draining = control.drain_flag();
    if signals {
        for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
            signal_hook::flag::register(sig, draining.clone())
                .map_err(|e| format!("cannot install signal handler: {e}"))?;
        }
        if let Some(tls) = &tls {
            crate::tls::reload_on_sighup(tls.clone())?;
        }
    }
    let cores: Vec<usize> = core_affinity::get_core_ids()
        .map(|ids| ids.into_iter().map(|c| c.id).collect())
        .filter(|v: &Vec<usize>| !v.is_empty())
        .unwrap_or_else(|| vec![0]);
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let mut handles = Vec::with_capacity(shards);
    for i in 0..shards {
        let (cfg, cat, drain, ready, ctl, m) = (
            config.clone(),
            catalog.clone(),
            draining.clone(),
            ready_tx.clone(),
            control.handle(),
            registry.shards[i].clone(),
        );
        let inbox = inboxes.remove(0);
        let supervised = supervisor::Supervised {
            shard: i,
            core: cores[i % cores.len()],
            config: cfg,
            catalog: cat,
            draining: drain,
            control: ctl,
            metrics: m,
            flush_only,
            sockets: Arc::new(crate::runtime::sockets::ShardSockets::new(
                config.shard_listen(i).port(),
            )),
            tls: tls.clone(),
            auth: config.auth.required().then(|| credentials.clone()),
        };
        match supervisor::start(supervised, ready, inbox) {
            Ok(h) => handles.push(h),
            Err(e) => {
                draining.store(true, Ordering::Relaxed);
                for h in handles {
                    let _ = h.join();
                }
                control.shutdown(false);
                return Err(e);
            }
        }
    }
    drop(ready_tx);
    let mut started = 0;
    let mut failure = None;
    while started < shards {
        match ready_rx.recv_timeout(Duration::from_secs(600)) {
            Ok((_, Ok(()))) => started += 1,
            Ok((_, Err(e))) => {
                failure = Some(e);
                break;
            }
            Err(_) => {
                failure = Some("shards did not start".into());
                break;
            }
        }
    }
    let agent = RunningAgent {
        config,
        draining,
        handles,
        control,
        _lock: lock,
    };
    if let Some(e) = failure {
        agent.shutdown();
        return Err(e);
    }
    if flush_only {
        return Ok(agent);
    }
    tracing::info!(
        agent = %agent.config.agent_id,
        shards,
        data_dir = %agent.config.data_dir.display(),
        "StreamHouse agent ready on {}",
        agent.addresses().join(", ")
    );
    Ok(agent)
}

impl RunningAgent {
    /// host:port of every shard, index = shard number.
    pub fn addresses(&self) -> Vec<String> {
        (0..self.config.shard_count())
            .map(|i| self.config.shard_address(i))
            .collect()
    }

    /// Starts a drain (as SIGTERM does) and waits for every shard to stop.
    pub fn shutdown(self) -> Outcome {
        self.draining.store(true, Ordering::Relaxed);
        self.wait()
    }

    /// Waits until every shard has stopped (after a signal or `shutdown`).
    pub fn wait(self) -> Outcome {
        self.finish().0
    }

    /// As [`wait`](Self::wait), also saying whether every shard shipped
    /// all it had written to object storage.
    fn finish(self) -> (Outcome, bool) {
        let mut failures = Vec::new();
        let mut shipped = true;
        for (i, h) in self.handles.into_iter().enumerate() {
            match h.join() {
                Ok(Ok(all)) => shipped &= all,
                Ok(Err(e)) => failures.push(format!("shard {i}: {e}")),
                Err(_) => failures.push(format!("the watcher of shard {i} panicked")),
            }
        }
        let shipped = shipped && failures.is_empty();
        self.control.shutdown(shipped);
        if failures.is_empty() {
            (Outcome::Clean, shipped)
        } else {
            (Outcome::Failed(failures), shipped)
        }
    }
}
