//! TLS for the agent's shard ports and admin port: the server
//! configurations built from PEM files (certificate chain, private key and, for mutual TLS, the CA
//! client certificates must chain to), TLS 1.2 and 1.3 only, ALPN `h2`,
//! and the certificate swapped in place on SIGHUP so new connections get
//! the new one while open ones go on. Owns the rustls configuration only:
//! sockets and what runs over them are the shard's (`shard::conn`).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::RwLock;
use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use rustls::{RootCertStore, ServerConfig};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// The PEM files TLS is made of (`--tls-cert`, `--tls-key`,
/// `--tls-client-ca`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// The certificate chain, leaf first.
    pub cert: PathBuf,
    /// The leaf's private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
    /// With it, a client must present a certificate this CA signed
    /// (mutual TLS); without it, clients are not asked for one.
    pub client_ca: Option<PathBuf>,
}

/// The server side of TLS, shared by every shard: its configuration and
/// the certificate it serves, which [`reload`](Self::reload) replaces.
#[derive(Debug)]
pub struct ServerTls {
    files: TlsFiles,
    provider: Arc<CryptoProvider>,
    current: Arc<CurrentCert>,
    config: Arc<ServerConfig>,
    http1: Arc<ServerConfig>,
}

impl ServerTls {
    /// Reads `files` and builds the configuration. The error names the
    /// file and what is wrong with it.
    pub fn load(files: TlsFiles) -> Result<ServerTls, String> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let key = certified_key(&files, &provider)?;
        let current = Arc::new(CurrentCert(RwLock::new(Arc::new(key))));
        // TLS 1.3 and 1.2 only, on both ports.
        let versions = || {
            ServerConfig::builder_with_provider(provider.clone())
                .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
                .map_err(|e| format!("TLS: {e}"))
        };
        let builder = match &files.client_ca {
            Some(ca) => {
                let mut roots = RootCertStore::empty();
                for cert in read_certs(ca)? {
                    roots.add(cert).map_err(|e| {
                        format!("{}: not a usable CA certificate: {e}", ca.display())
                    })?;
                }
                let verifier =
                    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                        .build()
                        .map_err(|e| format!("{}: {e}", ca.display()))?;
                versions()?.with_client_cert_verifier(verifier)
            }
            None => versions()?.with_no_client_auth(),
        };
        let mut config = builder.with_cert_resolver(current.clone());
        config.alpn_protocols = vec![b"h2".to_vec()];
        // The admin port: HTTP/1.1, and no client certificate asked
        // (health probes and scrapers seldom have one).
        let mut http1 = versions()?
            .with_no_client_auth()
            .with_cert_resolver(current.clone());
        http1.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(ServerTls {
            files,
            provider,
            current,
            config: Arc::new(config),
            http1: Arc::new(http1),
        })
    }

    /// The configuration a shard's acceptor uses.
    pub fn config(&self) -> Arc<ServerConfig> {
        self.config.clone()
    }

    /// The admin port's configuration: the same certificate, HTTP/1.1,
    /// no client certificate.
    pub fn http1_config(&self) -> Arc<ServerConfig> {
        self.http1.clone()
    }

    /// Reads the certificate and key again and serves them to new
    /// connections from now on; open connections keep theirs. On error
    /// the old certificate stays (the client CA is read at start only).
    pub fn reload(&self) -> Result<(), String> {
        let key = certified_key(&self.files, &self.provider)?;
        *self.current.0.write() = Arc::new(key);
        Ok(())
    }
}

/// The certificate served now.
#[derive(Debug)]
struct CurrentCert(RwLock<Arc<CertifiedKey>>);

impl ResolvesServerCert for CurrentCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.read().clone())
    }
}

/// Every PEM certificate in `path`; the error names the file.
pub(crate) fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| format!("{}: {e}", path.display()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{}: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!("{}: no PEM certificate in it", path.display()));
    }
    Ok(certs)
}

fn certified_key(files: &TlsFiles, provider: &CryptoProvider) -> Result<CertifiedKey, String> {
    let certs = read_certs(&files.cert)?;
    let key = PrivateKeyDer::from_pem_file(&files.key)
        .map_err(|e| format!("{}: no usable PEM private key: {e}", files.key.display()))?;
    CertifiedKey::from_der(certs, key, provider).map_err(|e| {
        format!(
            "{} and {}: {e} (is the key the certificate's?)",
            files.cert.display(),
            files.key.display()
        )
    })
}

/// Starts a thread that reloads `tls` on every SIGHUP, logging the outcome
/// (a failed reload keeps the certificate served before).
pub fn reload_on_sighup(tls: Arc<ServerTls>) -> Result<(), String> {
    let mut signals = signal_hook::iterator::Signals::new([signal_hook::consts::SIGHUP])
        .map_err(|e| format!("cannot install the SIGHUP handler: {e}"))?;
    std::thread::Builder::new()
        .name("tls-reload".into())
        .spawn(move || {
            for _ in signals.forever() {
                match tls.reload() {
                    Ok(()) => tracing::info!(
                        cert = %tls.files.cert.display(),
                        "SIGHUP: TLS certificate reloaded; new connections get it"
                    ),
                    Err(e) => tracing::error!(
                        error = %e,
                        "SIGHUP: TLS certificate not reloaded; the one loaded before is still served"
                    ),
                }
            }
        })
        .map_err(|e| format!("cannot start the TLS reload thread: {e}"))?;
    Ok(())
}
