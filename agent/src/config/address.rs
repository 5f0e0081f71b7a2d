//! Addresses on the command line: `HOST:PORT` where HOST is an IP
//! address, a bracketed IPv6 address or a host name (resolved once, at
//! start), and the advertised `HOST:PORT` clients are told. Pure parsing;
//! knows nothing of the agent.

use std::net::{SocketAddr, ToSocketAddrs};

/// Parses `HOST:PORT` for a listening socket; a host name is resolved and
/// its first IPv4 address taken (else its first address).
pub fn listen_address(text: &str) -> Result<SocketAddr, String> {
    if let Ok(addr) = text.parse::<SocketAddr>() {
        return Ok(addr);
    }
    let (host, port) = split_host_port(text)?;
    let found: Vec<SocketAddr> = (host, port)
        .to_socket_addrs()
        .map_err(|e| format!("{text:?}: cannot resolve {host:?}: {e}"))?
        .collect();
    found
        .iter()
        .find(|a| a.is_ipv4())
        .or(found.first())
        .copied()
        .ok_or_else(|| format!("{text:?}: {host:?} resolves to no address"))
}

/// An advertised `HOST:PORT`: what clients are told to connect to for
/// shard 0 (shard i: PORT+i). The host is kept as written (not resolved).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Advertised {
    pub host: String,
    pub port: u16,
}

/// Parses an advertised `HOST:PORT` (brackets kept around an IPv6 host).
pub fn advertised(text: &str) -> Result<Advertised, String> {
    let (host, port) = split_host_port(text)?;
    let host = if host.contains(':') {
        format!("[{host}]")
    } else {
        host.to_owned()
    };
    Ok(Advertised { host, port })
}

/// `HOST:PORT` or `[V6]:PORT` into the host (without brackets) and port.
fn split_host_port(text: &str) -> Result<(&str, u16), String> {
    let (host, port) = text
        .rsplit_once(':')
        .ok_or_else(|| format!("{text:?} is not HOST:PORT"))?;
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    if host.is_empty() {
        return Err(format!("{text:?} has no host (HOST:PORT)"));
    }
    if host.contains(':') && !text.starts_with('[') {
        return Err(format!(
            "{text:?}: write an IPv6 host in brackets, [ADDR]:PORT"
        ));
    }
    let port = port
        .parse::<u16>()
        .map_err(|_| format!("{text:?}: the port must be a number from 0 to 65535"))?;
    Ok((host, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listen_addresses_take_ips_and_host_names() {
        assert_eq!(
            listen_address("127.0.0.1:9092").unwrap(),
            "127.0.0.1:9092".parse().unwrap()
        );
        assert_eq!(
            listen_address("[::1]:80").unwrap(),
            "[::1]:80".parse().unwrap()
        );
        let local = listen_address("localhost:9092").unwrap();
        assert!(local.ip().is_loopback() && local.port() == 9092, "{local}");
        for bad in [
            "9092",
            "localhost",
            ":9092",
            "localhost:http",
            "host:70000",
            "::1:80",
        ] {
            assert!(listen_address(bad).is_err(), "{bad}");
        }
        let err = listen_address("no-such-host.invalid:9092").unwrap_err();
        assert!(err.contains("cannot resolve"), "{err}");
    }

    #[test]
    fn advertised_addresses_keep_the_host_as_written() {
        assert_eq!(
            advertised("broker-1.example.com:19092").unwrap(),
            Advertised {
                host: "broker-1.example.com".into(),
                port: 19092
            }
        );
        assert_eq!(advertised("[fd00::1]:9092").unwrap().host, "[fd00::1]");
        assert!(advertised("broker:").is_err());
        assert!(advertised("broker").is_err());
    }
}
