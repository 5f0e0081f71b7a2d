//! The authentication flags of the agent's configuration (`--auth`,
//! `--superusers`, `--bootstrap-token-file`, `--auth-refresh-ms`,
//! flattened into `AgentConfig`) and reading the bootstrap token. Owns
//! parsing only; checking credentials is `crate::auth`'s.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, ValueEnum};

/// Whether requests must say who they come from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, ValueEnum)]
pub enum AuthMode {
    /// Anyone who reaches a port may call anything (the quick start).
    #[default]
    Off,
    /// Every call but the health check needs a token or a client
    /// certificate; users and tokens are managed by superusers only.
    Required,
}

/// Authentication of clients.
#[derive(Debug, Clone, Default, Args)]
pub struct AuthFlags {
    /// `required`: every call except the gRPC health check must carry a
    /// token (`authorization: Bearer <token>`) or come over mutual TLS
    /// with a client certificate (its common name is the principal);
    /// others get UNAUTHENTICATED. Default `off`.
    #[arg(long, env = "STREAMHOUSE_AUTH", value_enum, default_value_t = AuthMode::Off)]
    pub auth: AuthMode,

    /// Principals allowed everything, the user and token RPCs included
    /// (comma-separated user or certificate names). Default: none.
    #[arg(
        long,
        env = "STREAMHOUSE_SUPERUSERS",
        value_delimiter = ',',
        value_name = "NAMES"
    )]
    pub superusers: Vec<String>,

    /// A file holding a token (one line, at least 32 characters) that
    /// authenticates as the superuser `bootstrap`: how the first users and
    /// tokens are made on a cluster that requires authentication. Remove
    /// it once they exist. Default: none.
    #[arg(long, env = "STREAMHOUSE_BOOTSTRAP_TOKEN_FILE", value_name = "FILE")]
    pub bootstrap_token_file: Option<PathBuf>,

    /// How often each agent reloads users and tokens from the metadata
    /// store when they changed (one query when they did not): a token
    /// revoked on another agent stops working here within this, open
    /// connections included; default 1000 ms (units accepted).
    #[arg(long, env = "STREAMHOUSE_AUTH_REFRESH_MS", default_value_t = 1000, value_parser = crate::config::units::millis::<u64>)]
    pub auth_refresh_ms: u64,
}

/// Shortest bootstrap token accepted, characters.
pub const MIN_BOOTSTRAP_TOKEN: usize = 32;

impl AuthFlags {
    /// Whether calls must be authenticated.
    pub fn required(&self) -> bool {
        self.auth == AuthMode::Required
    }

    /// The reload interval (at least 10 ms).
    pub fn refresh_every(&self) -> Duration {
        Duration::from_millis(self.auth_refresh_ms.max(10))
    }

    /// The bootstrap token from its file, if one is configured. The error
    /// names the file, never its content.
    pub fn bootstrap_token(&self) -> Result<Option<String>, String> {
        let Some(path) = &self.bootstrap_token_file else {
            return Ok(None);
        };
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("--bootstrap-token-file {}: {e}", path.display()))?;
        let token = text.trim();
        if token.chars().count() < MIN_BOOTSTRAP_TOKEN || token.contains(char::is_whitespace) {
            return Err(format!(
                "--bootstrap-token-file {}: the token must be one line of at least \
                 {MIN_BOOTSTRAP_TOKEN} characters without spaces",
                path.display()
            ));
        }
        Ok(Some(token.to_owned()))
    }
}
