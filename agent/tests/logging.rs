//! The agent's log lines as a log pipeline reads them (issue 21): written
//! to a file, text lines carry no terminal escape codes and name the agent;
//! `--log-format json` writes one JSON object per line with the agent id,
//! level, thread and message.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

/// Runs an agent with `extra` flags and stderr into a file until its
/// shards listen, then SIGTERMs it; returns what it logged.
fn log_of(extra: &[&str]) -> String {
    let dir = tempfile::tempdir_in(target_tmp()).unwrap();
    let log = dir.path().join("agent.log");
    let port = free_ports(2);
    let mut child = Command::new(agent_bin())
        .arg(format!("--listen=127.0.0.1:{port}"))
        .args(["--shards=2", "--agent-id=logger \"one\""])
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .args(extra)
        .env("RUST_LOG", "info")
        .env_remove("NO_COLOR")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .expect("spawn agent");
    let deadline = Instant::now() + Duration::from_secs(30);
    for p in [port, port + 1] {
        while std::net::TcpStream::connect(("127.0.0.1", p)).is_err() {
            assert!(Instant::now() < deadline, "agent did not listen on {p}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    // SAFETY: kill(2) on our own child.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGTERM);
    }
    let status = child.wait().expect("wait");
    assert!(status.success(), "agent exited with {status}");
    std::fs::read_to_string(&log).unwrap()
}

#[test]
fn text_lines_in_a_file_have_no_escape_codes_and_name_the_agent() {
    let text = log_of(&[]);
    assert!(text.lines().count() >= 3, "too few lines:\n{text}");
    assert!(
        !text.contains('\u{1b}'),
        "escape codes in a log file:\n{text}"
    );
    for line in text.lines() {
        assert!(
            line.starts_with("[logger \"one\"] "),
            "a line without the agent id: {line}"
        );
    }
    assert!(text.contains("agent stopped"), "{text}");
}

#[test]
fn json_lines_are_objects_with_agent_level_thread_and_message() {
    let text = log_of(&["--log-format=json"]);
    let mut threads = Vec::new();
    for line in text.lines() {
        let v: serde_json::Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("not a JSON object ({e}): {line}"));
        assert_eq!(v["agent_id"], "logger \"one\"", "{line}");
        assert!(v["level"].is_string(), "{line}");
        assert!(v["timestamp"].is_string(), "{line}");
        assert!(v["fields"]["message"].is_string(), "{line}");
        if let Some(t) = v["threadName"].as_str() {
            threads.push(t.to_string());
        }
    }
    assert!(text.lines().any(|l| l.contains("agent stopped")), "{text}");
    assert!(
        threads.iter().any(|t| t.starts_with("shard-")),
        "no line from a shard thread: {threads:?}"
    );
}

#[test]
fn an_unknown_log_format_is_refused() {
    let out = Command::new(agent_bin())
        .arg("--log-format=xml")
        .output()
        .expect("run agent");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--log-format"), "{err}");
}

/// At debug, each request is a span naming its shard, path, topic and
/// partition, and ends with an event giving its time: a slow request can be
/// followed in the log.
#[tokio::test(flavor = "multi_thread")]
async fn debug_requests_are_spans_with_their_partition_and_time() {
    use streamhouse_client::{Admin, Producer, ProducerRecord};
    let dir = tempfile::tempdir_in(target_tmp()).unwrap();
    let log = dir.path().join("agent.log");
    let port = free_ports(1);
    let addr = format!("127.0.0.1:{port}");
    let mut child = Command::new(agent_bin())
        .arg(format!("--listen={addr}"))
        .args(["--shards=1", "--log-format=json", "--data-dir"])
        .arg(dir.path().join("data"))
        .env("RUST_LOG", "info,streamhouse_agent::shard::conn=debug")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .expect("spawn agent");
    let deadline = Instant::now() + Duration::from_secs(30);
    let admin = loop {
        if let Ok(a) = Admin::connect(&addr).await {
            if a.create_topic("traced", 1).await.is_ok() {
                break a;
            }
        }
        assert!(Instant::now() < deadline, "agent never took the topic");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    drop(admin);
    let producer = Producer::builder([addr.clone()]).build().await.unwrap();
    producer
        .send(ProducerRecord::new("traced", "v").partition(0))
        .await
        .expect("produce");
    producer.close().await.unwrap();
    // SAFETY: kill(2) on our own child.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGTERM);
    }
    assert!(child.wait().expect("wait").success());
    let text = std::fs::read_to_string(&log).unwrap();
    let produce = text
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|v| {
            v["fields"]["message"] == "request answered"
                && v["span"]["path"] == "/streamhouse.ProducerService/Produce"
        })
        .unwrap_or_else(|| panic!("no answered produce request in:\n{text}"));
    assert_eq!(produce["span"]["topic"], "traced", "{produce}");
    assert_eq!(produce["span"]["partition"], 0, "{produce}");
    assert_eq!(produce["span"]["shard"], 0, "{produce}");
    assert_eq!(produce["fields"]["code"], "OK", "{produce}");
    assert!(
        produce["fields"]["elapsed_us"].as_u64().is_some(),
        "{produce}"
    );
}
