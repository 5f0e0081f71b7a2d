//! `streamhouse-agent`: parses the configuration, opens the catalog, starts
//! one pinned glommio executor per shard, and turns SIGTERM/SIGINT into a
//! drain. Owns process lifecycle and exit codes only.
//!
//! Exit codes: 0 after a clean shutdown, 1 when a shard failed while
//! running, 2 for invalid configuration or a failure to start.

mod catalog;
mod config;
mod grpc;
mod routing;
mod service;
mod shard;

use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use glommio::{LocalExecutorBuilder, Placement};

use crate::catalog::Catalog;
use crate::config::AgentConfig;

fn main() -> ExitCode {
    let config = AgentConfig::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    if let Err(e) = config.validate() {
        eprintln!("streamhouse-agent: invalid configuration: {e}");
        return ExitCode::from(2);
    }
    match run(config) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("streamhouse-agent: {e}");
            ExitCode::from(2)
        }
    }
}

fn run(config: AgentConfig) -> Result<ExitCode, String> {
    std::fs::create_dir_all(&config.data_dir)
        .map_err(|e| format!("cannot create data dir {}: {e}", config.data_dir.display()))?;
    let catalog = Arc::new(Catalog::open(&config.data_dir).map_err(|e| e.to_string())?);
    let config = Arc::new(config);
    let draining = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register(sig, draining.clone())
            .map_err(|e| format!("cannot install signal handler: {e}"))?;
    }

    let shards = config.shard_count();
    let cores: Vec<usize> = core_affinity::get_core_ids()
        .map(|ids| ids.into_iter().map(|c| c.id).collect())
        .filter(|v: &Vec<usize>| !v.is_empty())
        .unwrap_or_else(|| vec![0]);
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let mut handles = Vec::with_capacity(shards);
    for i in 0..shards {
        let (config, catalog, draining, ready) = (
            config.clone(),
            catalog.clone(),
            draining.clone(),
            ready_tx.clone(),
        );
        let handle = LocalExecutorBuilder::new(Placement::Fixed(cores[i % cores.len()]))
            .name(&format!("shard-{i}"))
            .spawn(move || shard::run(i, config, catalog, draining, ready))
            .map_err(|e| format!("cannot start shard {i}: {e}"))?;
        handles.push(handle);
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
    if let Some(e) = failure {
        draining.store(true, Ordering::Relaxed);
        for h in handles {
            let _ = h.join();
        }
        return Err(e);
    }
    let addrs: Vec<String> = (0..shards).map(|i| config.shard_address(i)).collect();
    tracing::info!(
        agent = %config.agent_id,
        shards,
        data_dir = %config.data_dir.display(),
        "StreamHouse agent ready on {}",
        addrs.join(", ")
    );

    let mut code = ExitCode::SUCCESS;
    for (i, h) in handles.into_iter().enumerate() {
        match h.join() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tracing::error!(shard = i, error = %e, "shard failed");
                code = ExitCode::from(1);
            }
            Err(e) => {
                tracing::error!(shard = i, error = %e, "shard panicked");
                code = ExitCode::from(1);
            }
        }
    }
    tracing::info!("agent stopped");
    Ok(code)
}
