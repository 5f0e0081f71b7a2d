//! TLS to the agents ([`TlsConfig`]): which certificate authority to
//! trust, the client's own certificate for mutual TLS, and the name the
//! agents' certificate must carry. Owns the settings and turning them into
//! the transport's; connecting is the pool's.

use std::path::Path;

use tonic::transport::{Certificate, ClientTlsConfig, Identity};

use crate::error::{Error, Result};

/// TLS settings for every connection of a client ([`PoolConfig::tls`]).
/// Without a CA, the agents' certificates must chain to the public web
/// roots bundled with the client (Mozilla's).
///
/// ```no_run
/// # fn f() -> streamhouse_client::Result<()> {
/// use streamhouse_client::net::{PoolConfig, TlsConfig};
/// let pool = PoolConfig {
///     tls: Some(TlsConfig::new().ca_file("ca.pem")?.identity_files("me.pem", "me.key")?),
///     ..PoolConfig::default()
/// };
/// # Ok(()) }
/// ```
///
/// [`PoolConfig::tls`]: crate::net::PoolConfig::tls
#[derive(Clone, Default)]
pub struct TlsConfig {
    ca: Option<Vec<u8>>,
    identity: Option<(Vec<u8>, Vec<u8>)>,
    server_name: Option<String>,
}

impl std::fmt::Debug for TlsConfig {
    // The key stays out of logs and panics.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsConfig")
            .field("ca", &self.ca.as_ref().map(|_| "set"))
            .field("identity", &self.identity.as_ref().map(|_| "set"))
            .field("server_name", &self.server_name)
            .finish()
    }
}

impl TlsConfig {
    /// TLS trusting the bundled public roots, no client certificate.
    pub fn new() -> TlsConfig {
        TlsConfig::default()
    }

    /// Trusts the CA certificate(s) in `pem` instead of the public roots.
    pub fn ca_pem(mut self, pem: impl Into<Vec<u8>>) -> TlsConfig {
        self.ca = Some(pem.into());
        self
    }

    /// [`ca_pem`](Self::ca_pem) read from a file.
    ///
    /// # Errors
    /// [`Error::Config`] naming the file when it cannot be read.
    pub fn ca_file(self, path: impl AsRef<Path>) -> Result<TlsConfig> {
        Ok(self.ca_pem(read(path.as_ref(), "CA certificate")?))
    }

    /// Presents this certificate chain and key (PEM) to agents that ask for
    /// one (mutual TLS, the agent's `--tls-client-ca`).
    pub fn identity_pem(mut self, cert: impl Into<Vec<u8>>, key: impl Into<Vec<u8>>) -> TlsConfig {
        self.identity = Some((cert.into(), key.into()));
        self
    }

    /// [`identity_pem`](Self::identity_pem) read from files.
    ///
    /// # Errors
    /// [`Error::Config`] naming the file that cannot be read.
    pub fn identity_files(
        self,
        cert: impl AsRef<Path>,
        key: impl AsRef<Path>,
    ) -> Result<TlsConfig> {
        let c = read(cert.as_ref(), "client certificate")?;
        let k = read(key.as_ref(), "client key")?;
        Ok(self.identity_pem(c, k))
    }

    /// The name the agents' certificate must carry, when it is not the
    /// host of the address connected to (default: that host).
    pub fn server_name(mut self, name: impl Into<String>) -> TlsConfig {
        self.server_name = Some(name.into());
        self
    }

    /// The transport's settings.
    pub(crate) fn client_config(&self) -> ClientTlsConfig {
        let mut c = ClientTlsConfig::new();
        c = match &self.ca {
            Some(pem) => c.ca_certificate(Certificate::from_pem(pem)),
            None => c.with_webpki_roots(),
        };
        if let Some((cert, key)) = &self.identity {
            c = c.identity(Identity::from_pem(cert, key));
        }
        if let Some(name) = &self.server_name {
            c = c.domain_name(name.clone());
        }
        c
    }
}

fn read(path: &Path, what: &str) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| Error::Config(format!("{what} {}: {e}", path.display())))
}
