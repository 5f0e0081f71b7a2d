//! The `direct` transport: an agent running inside this process on a
//! local data dir, reached over loopback gRPC, so a Producer, Consumer or
//! Admin of `streamhouse-client` behaves exactly as against a remote agent.
//! One agent per data dir is shared by every client of this process and
//! stops when the last of them is dropped (each client holds it:
//! `ProducerBuilder::hold`). Owns that registry only; a crate of its own so
//! the client crate never depends on the agent.
//!
//! ```no_run
//! # async fn f() -> streamhouse_client::Result<()> {
//! let admin = streamhouse_direct::admin("data").await?;
//! admin.create_topic("local", 2).await?;
//! let producer = streamhouse_direct::producer("data").await?.build().await?;
//! # Ok(()) }
//! ```

use std::any::Any;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock, Weak};

use clap::Parser;
use parking_lot::Mutex;
use streamhouse_agent::{AgentConfig, RunningAgent};

use streamhouse_client::{
    Admin, Consumer, ConsumerBuilder, Error, Producer, ProducerBuilder, Result,
};

/// An in-process agent shared by the clients using one data dir.
pub struct DirectAgent {
    bootstrap: String,
    agent: Mutex<Option<RunningAgent>>,
}

impl DirectAgent {
    /// host:port of the agent's first shard.
    pub fn bootstrap(&self) -> &str {
        &self.bootstrap
    }
}

impl Drop for DirectAgent {
    fn drop(&mut self) {
        if let Some(agent) = self.agent.lock().take() {
            let _ = agent.shutdown();
        }
    }
}

type Registry = Mutex<HashMap<PathBuf, Weak<DirectAgent>>>;

fn registry() -> &'static Registry {
    static R: OnceLock<Registry> = OnceLock::new();
    R.get_or_init(|| Mutex::new(HashMap::new()))
}

/// The in-process agent for `data_dir`, started (and recovered) if it is not
/// running yet. Blocking: call from `spawn_blocking` in async code.
pub fn open(data_dir: &Path) -> Result<Arc<DirectAgent>> {
    std::fs::create_dir_all(data_dir)
        .map_err(|e| Error::Config(format!("cannot create {}: {e}", data_dir.display())))?;
    let dir = data_dir
        .canonicalize()
        .map_err(|e| Error::Config(format!("{}: {e}", data_dir.display())))?;
    let mut reg = registry().lock();
    if let Some(a) = reg.get(&dir).and_then(Weak::upgrade) {
        return Ok(a);
    }
    let dir_arg = dir.to_string_lossy().into_owned();
    let config = AgentConfig::try_parse_from([
        "streamhouse-agent",
        "--listen",
        "127.0.0.1:0",
        "--shards",
        "1",
        "--data-dir",
        &dir_arg,
    ])
    .map_err(|e| Error::Config(e.to_string()))?;
    let agent = streamhouse_agent::start(config, false).map_err(Error::Config)?;
    let bootstrap = agent
        .addresses()
        .into_iter()
        .next()
        .ok_or_else(|| Error::Config("the in-process agent has no shard".into()))?;
    let a = Arc::new(DirectAgent {
        bootstrap,
        agent: Mutex::new(Some(agent)),
    });
    reg.insert(dir, Arc::downgrade(&a));
    Ok(a)
}

/// [`open`] from async code; returns the bootstrap address and the handle
/// type-erased for a client to hold.
///
/// # Cancellation
/// The agent is started on a blocking thread, which runs to its end even if
/// the future is dropped; an agent it started stays registered for the
/// next caller only while a handle to it lives (none does then), so it is
/// stopped again.
pub async fn open_async(
    data_dir: impl Into<PathBuf>,
) -> Result<(String, Arc<dyn Any + Send + Sync>)> {
    let data_dir = data_dir.into();
    let a = tokio::task::spawn_blocking(move || open(&data_dir))
        .await
        .map_err(|e| Error::Config(format!("starting the in-process agent: {e}")))??;
    Ok((a.bootstrap().to_owned(), a))
}

/// A producer builder for the in-process agent on `data_dir` (started if
/// no client of this process runs one there), holding it.
///
/// # Cancellation
/// As [`open_async`].
pub async fn producer(data_dir: impl Into<PathBuf>) -> Result<ProducerBuilder> {
    let (bootstrap, handle) = open_async(data_dir).await?;
    Ok(Producer::builder([bootstrap]).hold(handle))
}

/// A consumer builder for the in-process agent on `data_dir`, holding it.
///
/// # Cancellation
/// As [`open_async`].
pub async fn consumer_builder(data_dir: impl Into<PathBuf>) -> Result<ConsumerBuilder> {
    let (bootstrap, handle) = open_async(data_dir).await?;
    Ok(Consumer::builder([bootstrap]).hold(handle))
}

/// A consumer of the in-process agent on `data_dir`, holding it.
///
/// # Cancellation
/// As [`open_async`]; a consumer not yet returned is dropped.
pub async fn consumer(data_dir: impl Into<PathBuf>) -> Result<Consumer> {
    consumer_builder(data_dir).await?.build().await
}

/// An admin client of the in-process agent on `data_dir`, holding it.
///
/// # Cancellation
/// As [`open_async`].
pub async fn admin(data_dir: impl Into<PathBuf>) -> Result<Admin> {
    let (bootstrap, handle) = open_async(data_dir).await?;
    Ok(Admin::connect(bootstrap).await?.hold(handle))
}
