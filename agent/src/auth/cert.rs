//! The principal a client certificate names (mutual TLS): its subject's
//! common name, else its first DNS, e-mail or URI subject alternative
//! name. The certificate was verified by the TLS handshake already; this
//! only reads it. Owns nothing else.

use x509_parser::extensions::GeneralName;
use x509_parser::prelude::{FromDer, X509Certificate};

/// Longest principal name taken from a certificate, bytes: 256.
pub const MAX_NAME: usize = 256;

/// The principal `der` (a DER certificate) names; `None` when it names
/// none (or does not parse).
pub fn principal_of(der: &[u8]) -> Option<String> {
    let (_, cert) = X509Certificate::from_der(der).ok()?;
    let cn = cert
        .subject()
        .iter_common_name()
        .find_map(|cn| cn.as_str().ok().map(str::to_owned));
    let name = cn.or_else(|| {
        let san = cert.subject_alternative_name().ok()??;
        san.value.general_names.iter().find_map(|n| match n {
            GeneralName::DNSName(s) | GeneralName::RFC822Name(s) | GeneralName::URI(s) => {
                Some((*s).to_owned())
            }
            _ => None,
        })
    })?;
    (!name.is_empty() && name.len() <= MAX_NAME).then_some(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cert(cn: Option<&str>, sans: Vec<String>) -> Vec<u8> {
        let mut params = rcgen::CertificateParams::new(sans).unwrap();
        params.distinguished_name = rcgen::DistinguishedName::new();
        if let Some(cn) = cn {
            params
                .distinguished_name
                .push(rcgen::DnType::CommonName, cn);
        }
        let key = rcgen::KeyPair::generate().unwrap();
        params.self_signed(&key).unwrap().der().to_vec()
    }

    #[test]
    fn the_common_name_then_the_first_alternative_name() {
        assert_eq!(
            principal_of(&cert(Some("billing-app"), vec!["svc.example".into()])).as_deref(),
            Some("billing-app")
        );
        assert_eq!(
            principal_of(&cert(None, vec!["svc.example".into()])).as_deref(),
            Some("svc.example")
        );
        assert_eq!(principal_of(&cert(None, vec![])), None);
        assert_eq!(principal_of(b"not a certificate"), None);
    }
}
