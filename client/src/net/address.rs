//! Checking an agent address (`host:port`) before connecting, so a slip
//! gets a message saying what to change rather than the resolver's or the
//! transport's error, and describing a transport error once (its causes
//! often repeat the same text).

/// Checks that `address` is `host:port` (`[v6]:port` for an IPv6
/// literal): no scheme, a host, a numeric port. The error says what to
/// change.
///
/// # Errors
/// A message saying what to change: a missing port, a scheme to drop, an empty
/// host.
pub fn check(address: &str) -> Result<(), String> {
    if let Some((scheme, rest)) = address.split_once("://") {
        return Err(format!(
            "drop the scheme: give host:port ({rest}), not {scheme}://"
        ));
    }
    let Some((host, port)) = address.rsplit_once(':') else {
        return Err(format!(
            "missing port: give host:port (e.g. {address}:9092)"
        ));
    };
    // A bare IPv6 literal (`::1`) has colons but no port.
    if host.contains(':') && !(host.starts_with('[') && host.ends_with(']')) {
        return Err(format!(
            "missing port: give [address]:port for IPv6 (e.g. [{address}]:9092)"
        ));
    }
    if host.is_empty() || host == "[]" {
        return Err("missing host: give host:port".into());
    }
    if port.is_empty() {
        return Err(format!("missing port: give host:port (e.g. {host}:9092)"));
    }
    if port.parse::<u16>().is_err() {
        return Err(format!("port {port:?} is not a number from 0 to 65535"));
    }
    Ok(())
}

/// `e` and its causes, each once: `a: b: c`, where a cause whose text is
/// the one before it (transports often wrap an error in one that prints
/// the same) is left out.
pub fn describe(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut last = s.clone();
    let mut src = e.source();
    while let Some(inner) = src {
        let text = inner.to_string();
        if text != last && !last.ends_with(&text) {
            s.push_str(": ");
            s.push_str(&text);
        }
        last = text;
        src = inner.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_say_what_to_change() {
        assert_eq!(check("127.0.0.1:9092"), Ok(()));
        assert_eq!(check("agent-0.internal:9092"), Ok(()));
        assert_eq!(check("[::1]:9092"), Ok(()));
        let e = check("nohost").unwrap_err();
        assert!(e.starts_with("missing port"), "{e}");
        let e = check("http://127.0.0.1:1").unwrap_err();
        assert!(
            e.starts_with("drop the scheme") && e.contains("(127.0.0.1:1)"),
            "{e}"
        );
        assert!(check("::1").unwrap_err().contains("IPv6"));
        assert!(check(":9092").unwrap_err().starts_with("missing host"));
        assert!(check("h:").unwrap_err().starts_with("missing port"));
        assert!(check("h:99999").unwrap_err().contains("not a number"));
    }

    #[derive(Debug)]
    struct E(&'static str, Option<Box<E>>);
    impl std::fmt::Display for E {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str(self.0)
        }
    }
    impl std::error::Error for E {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            self.1.as_deref().map(|e| e as _)
        }
    }

    #[test]
    fn a_cause_repeating_its_wrapper_is_said_once() {
        let chain = E(
            "transport error",
            Some(Box::new(E(
                "tcp connect error",
                Some(Box::new(E(
                    "tcp connect error",
                    Some(Box::new(E("Connection refused (os error 111)", None))),
                ))),
            ))),
        );
        assert_eq!(
            describe(&chain),
            "transport error: tcp connect error: Connection refused (os error 111)"
        );
    }
}
