//! `streamhouse-agent`: parses the configuration, sets up logging, and runs
//! the agent until SIGTERM/SIGINT drains it (see `lifecycle`).
//!
//! Exit codes: 0 after a clean shutdown, 1 when a shard failed while
//! running, 2 for invalid configuration or a failure to start (port in use,
//! data dir locked by another agent, corrupt WAL).

use std::process::ExitCode;

use streamhouse_agent::config::LoadError;
use streamhouse_agent::runtime::lifecycle::Outcome;
use streamhouse_agent::AgentConfig;

/// The version `--version` prints and the start-up log names: the crate
/// version and the commit it was built from (build.rs).
const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("STREAMHOUSE_COMMIT"),
    ")"
);

fn main() -> ExitCode {
    // Fail points named in FAILPOINTS (test builds only; see Cargo.toml).
    #[cfg(feature = "failpoints")]
    let _failpoints = fail::FailScenario::setup();
    let config = match AgentConfig::load_with_version(std::env::args_os(), Some(VERSION)) {
        Ok(c) => c,
        // Prints clap's message (or --help / --version) and exits: 2 for
        // errors, 0 for help and version.
        Err(LoadError::Args(e)) => e.exit(),
        Err(LoadError::File(e)) => {
            eprintln!("streamhouse-agent: {e}");
            return ExitCode::from(2);
        }
    };
    streamhouse_agent::runtime::logging::init(config.logging.log_format, &config.agent_id);
    tracing::info!(version = VERSION, "streamhouse-agent starting");
    if let Err(e) = config.validate() {
        eprintln!("streamhouse-agent: invalid configuration: {e}");
        return ExitCode::from(2);
    }
    let agent = match streamhouse_agent::start(config, true) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("streamhouse-agent: {e}");
            return ExitCode::from(2);
        }
    };
    match agent.wait() {
        Outcome::Clean => {
            tracing::info!("agent stopped");
            ExitCode::SUCCESS
        }
        Outcome::Failed(errors) => {
            for e in errors {
                tracing::error!(error = %e, "shard failed");
            }
            ExitCode::from(1)
        }
    }
}
