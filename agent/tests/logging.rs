//! The agent's log lines as a log pipeline reads them (issue 21): written
//! to a file, text lines carry no terminal escape codes and name the agent;
//! `--log-format json` writes one JSON object per line with the agent id,
//! level, thread and message; the metadata store's password is not in it.

mod common;
#[path = "common/pg.rs"]
mod pg;

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

/// The metadata store's password stays out of the log (the suite's
/// PostgreSQL trusts loopback, so any password connects).
#[tokio::test]
async fn the_metadata_password_is_not_logged() {
    let url = pg::fresh_database("logged").await.replacen(
        "://postgres@",
        "://postgres:hunter2-never-logged@",
        1,
    );
    assert!(url.contains("hunter2"), "unexpected test URL {url}");
    let text = log_of(&["--metadata", &url]);
    assert!(text.contains("control plane open"), "{text}");
    assert!(text.contains("postgres:***@"), "{text}");
    assert!(!text.contains("hunter2-never-logged"), "{text}");
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

/// An agent logging JSON at `rust_log` into a file, with a one-partition
/// topic `traced` it has taken and one record produced to it.
struct Traced {
    child: std::process::Child,
    log: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

impl Traced {
    async fn start(rust_log: &str, extra: &[&str]) -> Traced {
        use streamhouse_client::{Admin, Producer, ProducerRecord};
        let dir = tempfile::tempdir_in(target_tmp()).unwrap();
        let log = dir.path().join("agent.log");
        let port = free_ports(1);
        let addr = format!("127.0.0.1:{port}");
        let child = Command::new(agent_bin())
            .arg(format!("--listen={addr}"))
            .args(["--shards=1", "--log-format=json", "--data-dir"])
            .arg(dir.path().join("data"))
            .args(extra)
            .env("RUST_LOG", rust_log)
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
        Traced {
            child,
            log,
            _dir: dir,
        }
    }

    /// SIGTERMs the agent and returns its log lines as JSON objects.
    fn stop(mut self) -> (String, Vec<serde_json::Value>) {
        // SAFETY: kill(2) on our own child.
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGTERM);
        }
        assert!(self.child.wait().expect("wait").success());
        let text = std::fs::read_to_string(&self.log).unwrap();
        let lines = text
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect();
        (text, lines)
    }
}

/// The first line whose message is `message` inside a span named `span`.
fn event_in<'a>(
    lines: &'a [serde_json::Value],
    text: &str,
    span: &str,
    message: &str,
) -> &'a serde_json::Value {
    lines
        .iter()
        .find(|v| v["fields"]["message"] == message && v["span"]["name"] == span)
        .unwrap_or_else(|| panic!("no '{message}' in a '{span}' span in:\n{text}"))
}

/// At debug, each request is a span naming its shard, path, topic and
/// partition, and ends with an event giving its time: a slow request can be
/// followed in the log.
#[tokio::test(flavor = "multi_thread")]
async fn debug_requests_are_spans_with_their_partition_and_time() {
    let agent = Traced::start("info,streamhouse_agent::shard::conn=debug", &[]).await;
    let (text, lines) = agent.stop();
    let produce = lines
        .iter()
        .find(|v| {
            v["fields"]["message"] == "request answered"
                && v["span"]["path"] == "/streamhouse.ProducerService/Produce"
        })
        .unwrap_or_else(|| panic!("no answered produce request in:\n{text}"));
    assert_eq!(produce["span"]["name"], "request", "{produce}");
    assert_eq!(produce["span"]["topic"], "traced", "{produce}");
    assert_eq!(produce["span"]["partition"], 0, "{produce}");
    assert_eq!(produce["span"]["shard"], 0, "{produce}");
    assert_eq!(produce["fields"]["code"], "OK", "{produce}");
    assert!(
        produce["fields"]["elapsed_us"].as_u64().is_some(),
        "{produce}"
    );
}

/// At debug, the control thread's work is spans too: a chunk's upload and
/// commit (shard, segment, object key), a lease's acquisition (topic,
/// incarnation, partition) and each renewal round, each ending with an event giving
/// its outcome and time.
#[tokio::test(flavor = "multi_thread")]
async fn debug_uploads_and_leases_are_spans_with_their_time() {
    let agent = Traced::start(
        "info,streamhouse_agent::control=debug",
        &["--segment-age-ms=100", "--lease-ttl-ms=900"],
    )
    .await;
    // Long enough for the segment to be sealed and shipped and for a few
    // renewal rounds (every 300 ms).
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let (text, lines) = agent.stop();
    let stored = event_in(&lines, &text, "chunk_upload", "chunk stored");
    assert_eq!(stored["span"]["shard"], 0, "{stored}");
    assert!(stored["span"]["segment"].as_u64().is_some(), "{stored}");
    let key = stored["span"]["key"].as_str().expect("a key");
    assert!(!key.is_empty(), "{stored}");
    assert!(stored["fields"]["bytes"].as_u64() > Some(0), "{stored}");
    assert!(stored["fields"]["put_ms"].as_u64().is_some(), "{stored}");
    let committed = event_in(&lines, &text, "chunk_commit", "chunk committed");
    assert_eq!(committed["span"]["shard"], 0, "{committed}");
    assert_eq!(committed["fields"]["key"], key, "{committed}");
    assert!(committed["fields"]["total_ms"].as_u64().is_some());
    let acquired = event_in(&lines, &text, "lease_acquire", "lease acquisition ended");
    assert_eq!(acquired["span"]["topic"], "traced", "{acquired}");
    assert!(acquired["span"]["incarnation"].as_u64().is_some());
    assert_eq!(acquired["span"]["partition"], 0, "{acquired}");
    assert_eq!(acquired["fields"]["outcome"], "acquired", "{acquired}");
    assert!(acquired["fields"]["elapsed_ms"].as_u64().is_some());
    let renewed = event_in(&lines, &text, "lease_renewal", "lease renewal round ended");
    assert_eq!(renewed["span"]["leases"], 1, "{renewed}");
    assert_eq!(renewed["fields"]["renewed"], 1, "{renewed}");
    assert_eq!(renewed["fields"]["failed"], 0, "{renewed}");
}
