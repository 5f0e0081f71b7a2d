//! `streamctl`: the StreamHouse command line. Topic administration, produce
//! from stdin, consume to stdout (alone or in a consumer group), consumer
//! groups, shell completions and a man page, all
//! from one clap definition (`args.rs`). Errors are one line on stderr and
//! a non-zero exit status (1 for a failed operation, 2 for bad usage); a
//! closed stdout (`| head`) ends the command quietly with status 0.

use std::io::Write;
use std::process::ExitCode;

use clap::{CommandFactory, Parser};

mod acls;
mod args;
mod cluster;
mod consume;
mod format;
mod group;
mod input_format;
mod man;
mod produce;
mod target;
mod topic;
mod users;

use args::{Cli, Command};
use target::Target;

/// Why a command ended early.
pub enum Failure {
    /// The operation failed: exit status 1.
    Failed(String),
    /// Bad usage the argument parser could not see: exit status 2.
    Usage(String),
    /// Stdout was closed by its reader: not an error.
    BrokenPipe,
}

impl From<streamhouse_client::Error> for Failure {
    fn from(e: streamhouse_client::Error) -> Self {
        Failure::Failed(e.to_string())
    }
}

impl From<std::io::Error> for Failure {
    fn from(e: std::io::Error) -> Self {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            Failure::BrokenPipe
        } else {
            Failure::Failed(format!("writing stdout: {e}"))
        }
    }
}

impl From<serde_json::Error> for Failure {
    fn from(e: serde_json::Error) -> Self {
        match e.io_error_kind() {
            Some(std::io::ErrorKind::BrokenPipe) => Failure::BrokenPipe,
            _ => Failure::Failed(format!("writing stdout: {e}")),
        }
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(filter) = &cli.log {
        if let Err(e) = start_log(filter) {
            eprintln!("streamctl: --log {filter}: {e}");
            return ExitCode::from(2);
        }
    }
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let result = match run(cli, &mut out).await {
        Ok(()) => out.flush().map_err(Failure::from),
        Err(e) => Err(e),
    };
    match result {
        Ok(()) | Err(Failure::BrokenPipe) => ExitCode::SUCCESS,
        Err(Failure::Failed(msg)) => {
            let _ = out.flush();
            eprintln!("streamctl: {msg}");
            ExitCode::from(1)
        }
        Err(Failure::Usage(msg)) => {
            eprintln!("streamctl: {msg}");
            ExitCode::from(2)
        }
    }
}

/// Logs the client's tracing events at `filter` to stderr (stdout carries
/// records only).
fn start_log(filter: &str) -> Result<(), String> {
    let filter = tracing_subscriber::EnvFilter::try_new(filter).map_err(|e| e.to_string())?;
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .try_init()
        .map_err(|e| e.to_string())
}

async fn run(cli: Cli, out: &mut impl Write) -> Result<(), Failure> {
    let target = || Target::new(&cli.bootstrap, &cli.tls, &cli.auth);
    match cli.command {
        Command::Topic { action } => topic::run(&target()?, action, out).await,
        Command::Produce(a) => produce::run(&target()?, a, out).await,
        Command::Consume(a) => consume::run(&target()?, a, out).await,
        Command::Group { action } => group::run(&target()?, action, out).await,
        Command::Cluster { format } => cluster::run(&target()?, format, out).await,
        Command::User { action } => users::run_user(&target()?, action, out).await,
        Command::Token { action } => users::run_token(&target()?, action, out).await,
        Command::Acl { action } => acls::run(&target()?, action, out).await,
        Command::Completions { shell } => {
            clap_complete::generate(shell, &mut Cli::command(), "streamctl", out);
            Ok(())
        }
        Command::Man { command, dir } => match dir {
            Some(dir) => man::write_all(&dir, out),
            None => man::print(&command, out),
        },
    }
}
