//! TLS to PostgreSQL: the `sslmode`, `sslrootcert`, `sslcert` and `sslkey`
//! options of the metadata URL, read the way libpq reads them, and the
//! rustls client configuration they make. Owns the parsing of those options
//! and the certificate checks; the connection itself is `postgres::connect`'s.
//!
//! | `sslmode` | TLS | server certificate checked |
//! |---|---|---|
//! | `disable` | never | — |
//! | `prefer` (the default) | when the server offers it | only with `sslrootcert`, chain only |
//! | `require` | always | only with `sslrootcert`, chain only |
//! | `verify-ca` | always | chains to `sslrootcert` |
//! | `verify-full` | always | chains to `sslrootcert` and names the host |
//!
//! `sslrootcert=system` trusts the Mozilla root set built into the agent;
//! `sslcert` and `sslkey` (PEM) present a client certificate.

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::{CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use tokio_postgres_rustls::MakeRustlsConnect;

/// The URL options this module takes out before tokio-postgres reads the
/// rest (it knows none of them but `sslmode`, and not all of its values).
const OPTIONS: [&str; 4] = ["sslmode", "sslrootcert", "sslcert", "sslkey"];

/// How much TLS the connection asks for (`sslmode`, default `prefer`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    Disable,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

impl FromStr for SslMode {
    type Err = String;

    fn from_str(s: &str) -> Result<SslMode, String> {
        Ok(match s {
            "disable" => SslMode::Disable,
            "prefer" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            other => {
                return Err(format!(
                    "sslmode={other} is not supported: use disable, prefer, require, \
                     verify-ca or verify-full"
                ))
            }
        })
    }
}

/// A metadata URL read: tokio-postgres's configuration and the TLS to
/// connect with (none for `sslmode=disable`).
pub struct Target {
    pub config: tokio_postgres::Config,
    pub tls: Option<MakeRustlsConnect>,
    /// TLS is possible but the server's certificate is not checked
    /// (`prefer` or `require` without `sslrootcert`): worth a warning.
    pub unverified: bool,
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Target")
            .field("tls", &self.tls.is_some())
            .field("unverified", &self.unverified)
            .finish_non_exhaustive()
    }
}

/// The TLS options of a metadata URL.
#[derive(Debug, Default, PartialEq, Eq)]
struct Options {
    mode: Option<String>,
    root_cert: Option<String>,
    cert: Option<PathBuf>,
    key: Option<PathBuf>,
}

/// Reads `url` (a `postgres://` URL or libpq's `key=value` form). The error
/// says which option is wrong and why; it never holds the password.
pub fn target(url: &str) -> Result<Target, String> {
    let (rest, options) = take_options(url)?;
    let mut config = tokio_postgres::Config::from_str(&rest)
        .map_err(|e| format!("invalid metadata URL: {e}"))?;
    let mode = match &options.mode {
        Some(m) => m.parse()?,
        None => SslMode::Prefer,
    };
    config.ssl_mode(match mode {
        SslMode::Disable => tokio_postgres::config::SslMode::Disable,
        SslMode::Prefer => tokio_postgres::config::SslMode::Prefer,
        _ => tokio_postgres::config::SslMode::Require,
    });
    if mode == SslMode::Disable {
        return Ok(Target {
            config,
            tls: None,
            unverified: false,
        });
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let roots = match options.root_cert.as_deref() {
        None => None,
        Some("system") => Some(RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        }),
        Some(path) => Some(read_roots(Path::new(path))?),
    };
    let verifier: Arc<dyn ServerCertVerifier> = match (mode, roots) {
        (SslMode::VerifyCa | SslMode::VerifyFull, None) => {
            return Err(format!(
                "sslmode={} needs sslrootcert: the CA file the server's certificate \
                 must chain to (or sslrootcert=system for the public roots)",
                options.mode.as_deref().unwrap_or_default()
            ))
        }
        (SslMode::VerifyFull, Some(roots)) => webpki(roots, &provider)?,
        (_, roots) => Arc::new(Lenient {
            chain: roots.map(|r| webpki(r, &provider)).transpose()?,
            provider: provider.clone(),
        }),
    };
    let unverified = options.root_cert.is_none();
    let builder = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| format!("TLS: {e}"))?
        .dangerous()
        .with_custom_certificate_verifier(verifier);
    let client = match (&options.cert, &options.key) {
        (None, None) => builder.with_no_client_auth(),
        (Some(cert), Some(key)) => {
            let certs = crate::tls::read_certs(cert)?;
            let key = PrivateKeyDer::from_pem_file(key)
                .map_err(|e| format!("sslkey {}: no usable PEM private key: {e}", key.display()))?;
            builder
                .with_client_auth_cert(certs, key)
                .map_err(|e| format!("sslcert and sslkey: {e} (is the key the certificate's?)"))?
        }
        _ => return Err("sslcert and sslkey go together: give both or neither".into()),
    };
    Ok(Target {
        config,
        tls: Some(MakeRustlsConnect::new(client)),
        unverified,
    })
}

/// Splits the TLS options out of `url`, returning the rest for
/// tokio-postgres.
fn take_options(url: &str) -> Result<(String, Options), String> {
    let mut options = Options::default();
    let mut take = |key: &str, value: String| -> Result<bool, String> {
        match key {
            "sslmode" => options.mode = Some(value),
            "sslrootcert" => options.root_cert = Some(value),
            "sslcert" => options.cert = Some(value.into()),
            "sslkey" => options.key = Some(value.into()),
            _ => return Ok(false),
        }
        Ok(true)
    };
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        let Some((base, query)) = url.split_once('?') else {
            return Ok((url.to_owned(), options));
        };
        let mut kept = Vec::new();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            if !take(key, percent_decode(value)?)? {
                kept.push(pair);
            }
        }
        let rest = if kept.is_empty() {
            base.to_owned()
        } else {
            format!("{base}?{}", kept.join("&"))
        };
        return Ok((rest, options));
    }
    let mut kept = Vec::new();
    for word in url.split_whitespace() {
        match word.split_once('=') {
            Some((key, value)) if OPTIONS.contains(&key) => {
                if value.starts_with('\'') {
                    return Err(format!("{key}: give the value without quotes"));
                }
                take(key, value.to_owned())?;
            }
            _ => kept.push(word),
        }
    }
    Ok((kept.join(" "), options))
}

/// `%XX` escapes of a URL query value decoded.
fn percent_decode(value: &str) -> Result<String, String> {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| format!("{value:?}: a % not followed by two hex digits"))?;
            out.push(hex);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| format!("{value:?}: not UTF-8 once decoded"))
}

fn read_roots(path: &Path) -> Result<RootCertStore, String> {
    let mut roots = RootCertStore::empty();
    for cert in crate::tls::read_certs(path).map_err(|e| format!("sslrootcert {e}"))? {
        roots.add(cert).map_err(|e| {
            format!(
                "sslrootcert {}: not a usable CA certificate: {e}",
                path.display()
            )
        })?;
    }
    Ok(roots)
}

fn webpki(
    roots: RootCertStore,
    provider: &Arc<CryptoProvider>,
) -> Result<Arc<WebPkiServerVerifier>, String> {
    WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .map_err(|e| format!("sslrootcert: {e}"))
}

/// `verify-ca` (with `chain`): the chain is checked, the name in it is
/// not. `prefer` and `require` without `sslrootcert` (no `chain`, libpq's
/// meaning): encrypted, but any certificate is taken. Either way the
/// handshake's signatures are checked against the certificate presented.
#[derive(Debug)]
struct Lenient {
    chain: Option<Arc<WebPkiServerVerifier>>,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for Lenient {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let Some(chain) = &self.chain else {
            return Ok(ServerCertVerified::assertion());
        };
        // The name is checked last, after the chain: a name error means
        // the chain held.
        match chain.verify_server_cert(end_entity, intermediates, server_name, ocsp, now) {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let algorithms = &self.provider.signature_verification_algorithms;
        rustls::crypto::verify_tls12_signature(message, cert, dss, algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let algorithms = &self.provider.signature_verification_algorithms;
        rustls::crypto::verify_tls13_signature(message, cert, dss, algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tls_options_come_out_of_a_url_and_the_rest_stays() {
        let (rest, o) = take_options(
            "postgres://u:pw@h:5432/db?sslmode=verify-full&application_name=x\
             &sslrootcert=%2Fetc%2Fca%20dir%2Fca.pem",
        )
        .unwrap();
        assert_eq!(rest, "postgres://u:pw@h:5432/db?application_name=x");
        assert_eq!(o.mode.as_deref(), Some("verify-full"));
        assert_eq!(o.root_cert.as_deref(), Some("/etc/ca dir/ca.pem"));
        let (rest, o) = take_options("postgres://h/db?sslmode=disable").unwrap();
        assert_eq!(
            (rest.as_str(), o.mode.as_deref()),
            ("postgres://h/db", Some("disable"))
        );
        let (rest, o) =
            take_options("host=h dbname=db sslmode=require sslcert=/c.pem sslkey=/k.pem").unwrap();
        assert_eq!(rest, "host=h dbname=db");
        assert_eq!(o.cert, Some(PathBuf::from("/c.pem")));
        assert_eq!(o.key, Some(PathBuf::from("/k.pem")));
        assert!(take_options("postgres://h/db?sslrootcert=%zz").is_err());
    }

    #[test]
    fn bad_options_are_refused_with_what_is_wrong() {
        let err = |url: &str| target(url).unwrap_err();
        assert!(err("postgres://h/db?sslmode=allow").contains("use disable, prefer"));
        assert!(err("postgres://h/db?sslmode=verify-full").contains("needs sslrootcert"));
        assert!(
            err("postgres://h/db?sslmode=verify-ca&sslrootcert=/nonexistent/ca.pem")
                .contains("/nonexistent/ca.pem")
        );
        assert!(err("postgres://h/db?sslmode=require&sslcert=/c.pem").contains("go together"));
        assert!(!err("postgres://u:hunter2@h/db?sslmode=nope").contains("hunter2"));
    }

    #[test]
    fn the_mode_decides_tls_and_verification() {
        let t = target("postgres://h/db?sslmode=disable").unwrap();
        assert!(t.tls.is_none());
        let t = target("postgres://h/db").unwrap();
        assert!(t.tls.is_some() && t.unverified);
        assert_eq!(
            t.config.get_ssl_mode(),
            tokio_postgres::config::SslMode::Prefer
        );
        let t = target("postgres://h/db?sslmode=verify-full&sslrootcert=system").unwrap();
        assert!(t.tls.is_some() && !t.unverified);
        assert_eq!(
            t.config.get_ssl_mode(),
            tokio_postgres::config::SslMode::Require
        );
    }
}
