//! streamctl over TLS (issue 20): `--tls-ca` trusts the agent's CA,
//! `--tls-cert`/`--tls-key` present a client certificate for mutual TLS;
//! without them a TLS port's refusal is said, exit 1.

#[path = "../../agent/tests/common/certs.rs"]
mod certs;
mod cli;
#[path = "../../agent/tests/common/mod.rs"]
mod common;

use certs::{write_leaf, Ca};
use cli::*;

#[test]
fn streamctl_speaks_tls_and_mutual_tls() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("StreamHouse test CA");
    let clients = Ca::new("client CA");
    let (cert, key) = write_leaf(dir.path(), "server", &ca.issue(&["127.0.0.1"], false));
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, ca.pem()).unwrap();
    let clients_file = dir.path().join("clients.pem");
    std::fs::write(&clients_file, clients.pem()).unwrap();
    let agent = common::Agent::start(
        1,
        &[
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
            "--tls-client-ca",
            clients_file.to_str().unwrap(),
        ],
    );
    let b = agent.addr(0);
    let (me_cert, me_key) = write_leaf(dir.path(), "me", &clients.issue(&["streamctl"], false));
    let tls = [
        "--tls-ca",
        ca_file.to_str().unwrap(),
        "--tls-cert",
        me_cert.to_str().unwrap(),
        "--tls-key",
        me_key.to_str().unwrap(),
    ];
    let with = |args: &[&'static str]| -> Vec<String> {
        tls.iter().chain(args).map(|s| s.to_string()).collect()
    };
    let (code, out, err) = run(&b, &with(&["topic", "create", "t"]), "");
    assert_eq!(code, 0, "{out}{err}");
    let (code, _, err) = run(&b, &with(&["produce", "t"]), "a\nb\n");
    assert_eq!(code, 0, "{err}");
    let (code, out, err) = run(&b, &with(&["consume", "t", "-e"]), "");
    assert_eq!((code, out.as_str()), (0, "a\nb\n"), "{err}");

    // Plaintext: the port's refusal, said once.
    let (code, _, err) = streamctl(&b, &["topic", "list"], "");
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("this port requires TLS"), "{err}");
    // TLS without the client certificate the port requires.
    let (code, _, err) = streamctl(
        &b,
        &["--tls-ca", ca_file.to_str().unwrap(), "topic", "list"],
        "",
    );
    assert_eq!(code, 1, "{err}");
    // A CA file that cannot be read is bad usage.
    let (code, _, err) = streamctl(
        &b,
        &["--tls-ca", "/nonexistent/ca.pem", "topic", "list"],
        "",
    );
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("/nonexistent/ca.pem"), "{err}");
}

fn run(bootstrap: &str, args: &[String], stdin: &str) -> (i32, String, String) {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    streamctl(bootstrap, &args, stdin)
}
