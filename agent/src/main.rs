//! `streamhouse-agent`: parses the configuration, sets up logging, and runs
//! the agent until SIGTERM/SIGINT drains it (see `lifecycle`).
//!
//! Exit codes: 0 after a clean shutdown, 1 when a shard failed while
//! running, 2 for invalid configuration or a failure to start (port in use,
//! data dir locked by another agent, corrupt WAL).

use std::fmt;
use std::process::ExitCode;

use streamhouse_agent::config::LoadError;
use streamhouse_agent::lifecycle::Outcome;
use streamhouse_agent::AgentConfig;
use tracing_subscriber::fmt::format::{Format, Writer};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

/// Log lines as tracing's default format, each starting with the agent id
/// (several agents often share one terminal or one log collector). The
/// thread name says which shard (`shard-N`) or the `control` thread.
struct AgentFormat {
    agent_id: String,
    inner: Format,
}

impl<S, N> FormatEvent<S, N> for AgentFormat
where
    S: tracing::Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &tracing::Event<'_>,
    ) -> fmt::Result {
        write!(writer, "[{}] ", self.agent_id)?;
        self.inner.format_event(ctx, writer, event)
    }
}

fn main() -> ExitCode {
    // Fail points named in FAILPOINTS (test builds only; see Cargo.toml).
    #[cfg(feature = "failpoints")]
    let _failpoints = fail::FailScenario::setup();
    let config = match AgentConfig::load(std::env::args_os()) {
        Ok(c) => c,
        // Prints clap's message (or --help / --version) and exits: 2 for
        // errors, 0 for help and version.
        Err(LoadError::Args(e)) => e.exit(),
        Err(LoadError::File(e)) => {
            eprintln!("streamhouse-agent: {e}");
            return ExitCode::from(2);
        }
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_thread_names(true)
        .event_format(AgentFormat {
            agent_id: config.agent_id.clone(),
            inner: tracing_subscriber::fmt::format().with_thread_names(true),
        })
        .init();
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
