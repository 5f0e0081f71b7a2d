//! The agent's front door under hostile or careless clients: real agent
//! processes, raw HTTP/2 and raw TCP where tonic cannot send the bad input.
//! Each test here reproduces a way a client could crash, wedge or exhaust
//! an agent, and checks the agent's answer instead.

#[path = "../common/mod.rs"]
mod common;
#[path = "../common/raw.rs"]
mod raw;

mod batches;
mod ports;
mod resources;

use std::time::Duration;

use common::*;
use streamhouse_proto as pb;

/// An agent with `extra` flags and an admin port; returns it with the
/// admin port.
fn start_with_admin(shards: usize, extra: &[&str]) -> (Agent, u16) {
    let admin = free_ports(1);
    let admin_flag = format!("127.0.0.1:{admin}");
    let mut args = vec!["--admin-listen", admin_flag.as_str()];
    args.extend_from_slice(extra);
    (Agent::start(shards, &args), admin)
}

/// `count` records of 100 bytes.
fn hundred_byte_records(topic: &str, partition: u32, count: usize) -> pb::ProduceRequest {
    let values: Vec<String> = (0..count).map(|i| format!("{i:0100}")).collect();
    produce_req(topic, partition, &values)
}

/// GET `path` on the admin port until it answers `want` (or 15 s pass);
/// returns the last answer.
async fn admin_until(port: u16, path: &str, want: u16) -> (u16, String) {
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    loop {
        let got = tokio::time::timeout(Duration::from_secs(5), try_get(port, path)).await;
        if let Ok(Some((code, body))) = got {
            if code == want || std::time::Instant::now() > deadline {
                return (code, body);
            }
        } else if std::time::Instant::now() > deadline {
            return (0, "no answer".into());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A plain HTTP/1.1 request on the admin port; `None` when the connection
/// was closed without an answer.
async fn try_get(port: u16, path: &str) -> Option<(u16, String)> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .ok()?;
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes())
        .await
        .ok()?;
    let mut buf = String::new();
    s.read_to_string(&mut buf).await.ok()?;
    let status = buf.split(' ').nth(1)?.parse().ok()?;
    Some((
        status,
        buf.split("\r\n\r\n").nth(1).unwrap_or_default().to_owned(),
    ))
}
