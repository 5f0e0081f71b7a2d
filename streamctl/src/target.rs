//! Which agents a command talks to and how: the bootstrap addresses and
//! the connection settings (TLS, the API token) every client of the
//! command shares.
//! Builds the clients; what they do is each command's.

use streamhouse_client::net::{PoolConfig, TlsConfig, Token};
use streamhouse_client::{Admin, Consumer, ConsumerBuilder, Producer, ProducerBuilder};

use crate::args::{AuthArgs, TlsArgs};
use crate::Failure;

/// The agents, and how to connect to them.
pub struct Target {
    bootstrap: Vec<String>,
    pool: PoolConfig,
}

impl Target {
    /// `bootstrap` with the TLS settings of `tls` (plaintext when none is
    /// given). A file that cannot be read is bad usage.
    pub fn new(bootstrap: &[String], tls: &TlsArgs, auth: &AuthArgs) -> Result<Target, Failure> {
        let mut pool = PoolConfig {
            token: token(auth)?,
            ..PoolConfig::default()
        };
        if tls.enabled() {
            let mut t = TlsConfig::new();
            if let Some(ca) = &tls.tls_ca {
                t = t.ca_file(ca).map_err(usage)?;
            }
            if let (Some(cert), Some(key)) = (&tls.tls_cert, &tls.tls_key) {
                t = t.identity_files(cert, key).map_err(usage)?;
            }
            if let Some(name) = &tls.tls_server_name {
                t = t.server_name(name.clone());
            }
            pool.tls = Some(t);
        }
        Ok(Target {
            bootstrap: bootstrap.to_vec(),
            pool,
        })
    }

    /// An admin client.
    ///
    /// # Cancellation
    /// Dropping the future leaves nothing behind.
    pub async fn admin(&self) -> Result<Admin, Failure> {
        Ok(Admin::with_pool(self.bootstrap.clone(), self.pool.clone()).await?)
    }

    /// A consumer's builder.
    pub fn consumer(&self) -> ConsumerBuilder {
        Consumer::builder(self.bootstrap.clone()).pool(self.pool.clone())
    }

    /// A consumer with default settings.
    ///
    /// # Cancellation
    /// Dropping the future leaves nothing behind.
    pub async fn connect_consumer(&self) -> Result<Consumer, Failure> {
        Ok(self.consumer().build().await?)
    }

    /// A producer's builder.
    pub fn producer(&self) -> ProducerBuilder {
        Producer::builder(self.bootstrap.clone()).pool(self.pool.clone())
    }
}

/// The token of `--token` or `--token-file`; an unreadable or empty file
/// is bad usage (the message names the file, never the token).
fn token(auth: &AuthArgs) -> Result<Option<Token>, Failure> {
    if let Some(t) = &auth.token {
        return Ok(Some(Token::new(t.clone())));
    }
    let Some(path) = &auth.token_file else {
        return Ok(None);
    };
    let text = std::fs::read_to_string(path)
        .map_err(|e| Failure::Usage(format!("--token-file {}: {e}", path.display())))?;
    match text.lines().next().map(str::trim).filter(|t| !t.is_empty()) {
        Some(t) => Ok(Some(Token::new(t))),
        None => Err(Failure::Usage(format!(
            "--token-file {}: the file holds no token",
            path.display()
        ))),
    }
}

fn usage(e: streamhouse_client::Error) -> Failure {
    Failure::Usage(e.to_string())
}
