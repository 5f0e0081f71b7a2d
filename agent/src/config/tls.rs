//! The TLS flags of the agent's configuration (`--tls-*`, flattened into
//! `AgentConfig`) and their checks. Owns parsing and validation only;
//! reading the files is `crate::tls`'s.

use std::path::PathBuf;

use clap::Args;

use crate::tls::TlsFiles;

/// TLS on the shard ports: off unless a certificate and key are given.
#[derive(Debug, Clone, Default, Args)]
pub struct TlsFlags {
    /// PEM certificate chain (leaf first): with it and --tls-key every
    /// shard port speaks TLS 1.2/1.3 only (ALPN h2) and refuses plaintext
    /// clients with a message saying so, and the admin port serves HTTPS.
    /// Read again on SIGHUP. Default: plaintext.
    #[arg(
        long,
        env = "STREAMHOUSE_TLS_CERT",
        value_name = "PEM",
        requires = "tls_key"
    )]
    pub tls_cert: Option<PathBuf>,

    /// PEM private key of --tls-cert (PKCS#8, PKCS#1 or SEC1). Read again
    /// on SIGHUP.
    #[arg(
        long,
        env = "STREAMHOUSE_TLS_KEY",
        value_name = "PEM",
        requires = "tls_cert"
    )]
    pub tls_key: Option<PathBuf>,

    /// PEM CA certificate(s) for mutual TLS: every client must present a
    /// certificate signed by one of them. Default: clients are not asked
    /// for a certificate.
    #[arg(
        long,
        env = "STREAMHOUSE_TLS_CLIENT_CA",
        value_name = "PEM",
        requires = "tls_cert"
    )]
    pub tls_client_ca: Option<PathBuf>,
}

impl TlsFlags {
    /// The files, when TLS is on.
    pub fn files(&self) -> Option<TlsFiles> {
        Some(TlsFiles {
            cert: self.tls_cert.clone()?,
            key: self.tls_key.clone()?,
            client_ca: self.tls_client_ca.clone(),
        })
    }
}
