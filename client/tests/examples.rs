//! The crate's examples (`client/examples/`), run as their own processes
//! against a real agent, with their output checked against what the agent
//! holds: an example that stops working, or teaches something the client
//! does not do, fails here.

#[path = "../../agent/tests/common/mod.rs"]
mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use streamhouse_client::{Admin, Consumer, Producer, TopicPartition};

/// An example's binary, built by `cargo test --all-targets` next to the
/// test binaries; built here (as the suite builds it) when it is missing
/// or older than its source, e.g. when this test was run alone.
fn example(name: &str) -> PathBuf {
    static BUILD: Mutex<()> = Mutex::new(());
    let exe = std::env::current_exe().expect("test executable path");
    let dir = exe
        .parent()
        .and_then(|d| d.parent())
        .expect("target profile dir")
        .join("examples");
    let bin = dir.join(name);
    let source = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("examples")
        .join(format!("{name}.rs"));
    let modified = |p: &PathBuf| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    let _one = BUILD.lock().unwrap_or_else(|e| e.into_inner());
    if modified(&bin) < modified(&source) {
        let status = Command::new(env!("CARGO"))
            .args(["build", "-q", "--workspace", "--all-features", "--examples"])
            .status()
            .expect("cargo");
        assert!(status.success(), "building the examples failed");
    }
    bin
}

/// A running example: its output lines as they come; killed when dropped
/// so a failing test leaves no process behind.
struct Running {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
}

impl Running {
    fn start(name: &str, args: &[&str]) -> Running {
        let mut child = Command::new(example(name))
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start example");
        let out = child.stdout.take().expect("stdout");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                sink.lock().unwrap().push(line);
            }
        });
        Running { child, lines }
    }

    fn lines(&self) -> Vec<String> {
        self.lines.lock().unwrap().clone()
    }

    /// Waits (polling, up to `limit`) for a line starting with `prefix`.
    async fn wait_for(&self, prefix: &str, limit: Duration) {
        let until = Instant::now() + limit;
        while !self.lines().iter().any(|l| l.starts_with(prefix)) {
            assert!(
                Instant::now() < until,
                "no line starting with {prefix:?} within {limit:?}; got {:?}",
                self.lines()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits for the exit (up to `limit`); asserts it succeeded and returns
    /// every line printed.
    async fn finish(mut self, limit: Duration) -> Vec<String> {
        let until = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                assert!(status.success(), "exited with {status}: {:?}", self.lines());
                break;
            }
            assert!(Instant::now() < until, "still running after {limit:?}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // The reader thread sees the pipe close right after the exit.
        tokio::time::sleep(Duration::from_millis(100)).await;
        self.lines()
    }

    fn signal(&self, sig: i32) {
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(self.child.id() as i32, sig) };
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn high_watermarks(bootstrap: &str, topic: &str, partitions: u32) -> Vec<u64> {
    let c = Consumer::connect(bootstrap).await.unwrap();
    let mut out = Vec::new();
    for p in 0..partitions {
        out.push(c.watermarks(topic, p).await.unwrap().1);
    }
    out
}

/// (partition, offset) of each `<topic>/<p> @ <offset>` line.
fn read_positions(lines: &[String]) -> Vec<(u32, u64)> {
    lines
        .iter()
        .filter_map(|l| {
            let rest = l.strip_prefix("record ").unwrap_or(l);
            let (tp, rest) = rest.split_once(" @ ")?;
            let partition = tp.rsplit_once('/')?.1.parse().ok()?;
            let offset = rest.split(':').next()?.trim().parse().ok()?;
            Some((partition, offset))
        })
        .collect()
}

#[tokio::test]
async fn batches_then_consumer_read_every_record_and_stop_at_the_end() {
    let agent = common::Agent::start(1, &[]);
    let b = agent.addr(0);
    Admin::connect(&b)
        .await
        .unwrap()
        .create_topic("orders", 3)
        .await
        .unwrap();

    let out = Running::start("batches", &[&b, "orders", "4", "250"])
        .finish(Duration::from_secs(60))
        .await;
    assert!(
        out.contains(&"acknowledged 12 batches, 3000 records".to_string()),
        "{out:?}"
    );
    assert_eq!(high_watermarks(&b, "orders", 3).await, vec![1000; 3]);

    // The consumer example reads to the end the agent reports and stops:
    // every record once, in order per partition.
    let out = Running::start("consumer", &[&b, "orders"])
        .finish(Duration::from_secs(60))
        .await;
    assert_eq!(out.last().map(String::as_str), Some("read 3000 records"));
    let mut per: BTreeMap<u32, Vec<u64>> = BTreeMap::new();
    for (p, o) in read_positions(&out) {
        per.entry(p).or_default().push(o);
    }
    for p in 0..3 {
        assert_eq!(per[&p], (0..1000).collect::<Vec<u64>>(), "partition {p}");
    }
}

#[tokio::test]
async fn stream_reads_the_records_asked_for_from_an_offset() {
    let agent = common::Agent::start(1, &[]);
    let b = agent.addr(0);
    Admin::connect(&b)
        .await
        .unwrap()
        .create_topic("s", 2)
        .await
        .unwrap();
    let p = Producer::builder(&b).build().await.unwrap();
    p.send_batch("s", 1, (0..20).map(|i| format!("v{i}")))
        .await
        .unwrap();
    p.close().await.unwrap();

    let out = Running::start("stream", &[&b, "s", "1", "10", "5"])
        .finish(Duration::from_secs(60))
        .await;
    let want: Vec<String> = (10..15)
        .map(|i| format!("1 @ {i}: v{i}"))
        .chain(["streamed 5 records".to_string()])
        .collect();
    assert_eq!(out, want);
}

#[tokio::test]
async fn graceful_shutdown_on_sigint_loses_nothing_it_accepted() {
    let agent = common::Agent::start(1, &[]);
    let b = agent.addr(0);
    Admin::connect(&b)
        .await
        .unwrap()
        .create_topic("events", 2)
        .await
        .unwrap();
    let run = Running::start("graceful_shutdown", &[&b, "events"]);
    run.wait_for("producing", Duration::from_secs(30)).await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    run.signal(libc::SIGINT);
    let out = run.finish(Duration::from_secs(60)).await;
    let last = out.last().cloned().unwrap_or_default();
    let nums: Vec<u64> = last
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|n| n.parse().ok())
        .collect();
    let [sent, acked, failed] = nums[..] else {
        panic!("unexpected last line {last:?}");
    };
    assert!(sent > 0, "{last}");
    assert_eq!((acked, failed), (sent, 0), "{last}");
    let held: u64 = high_watermarks(&b, "events", 2).await.iter().sum();
    assert_eq!(held, acked, "the topic holds what the example counted");
}

#[tokio::test]
async fn group_consumers_share_the_partitions_and_commit_all_they_processed() {
    let agent = common::Agent::start(1, &[]);
    let b = agent.addr(0);
    let admin = Admin::connect(&b).await.unwrap();
    admin.create_topic("work", 4).await.unwrap();
    let producer = Producer::builder(&b).build().await.unwrap();
    for p in 0..4 {
        producer
            .send_batch("work", p, (0..250).map(|i| format!("a{i}")))
            .await
            .unwrap();
    }

    // One member takes all four partitions and reads what is there; a
    // second joins, the first gives two up; then more records come.
    let first = Running::start("group_consumer", &[&b, "work", "billing", "4000"]);
    first.wait_for("assigned", Duration::from_secs(30)).await;
    let second = Running::start("group_consumer", &[&b, "work", "billing", "4000"]);
    second.wait_for("assigned", Duration::from_secs(30)).await;
    first.wait_for("revoked", Duration::from_secs(30)).await;
    for p in 0..4 {
        producer
            .send_batch("work", p, (0..250).map(|i| format!("b{i}")))
            .await
            .unwrap();
    }
    producer.close().await.unwrap();

    let one = first.finish(Duration::from_secs(60)).await;
    let two = second.finish(Duration::from_secs(60)).await;
    assert_eq!(one.last().map(String::as_str), Some("closed"), "{one:?}");
    assert_eq!(two.last().map(String::as_str), Some("closed"), "{two:?}");

    // Between them every record was processed (a record may be processed
    // twice across a rebalance: at-least-once), and both took part.
    let seen: BTreeSet<(u32, u64)> = read_positions(&one)
        .into_iter()
        .chain(read_positions(&two))
        .collect();
    let missed: Vec<(u32, u64)> = (0..4)
        .flat_map(|p| (0..500).map(move |o| (p, o)))
        .filter(|r| !seen.contains(r))
        .collect();
    assert!(
        missed.is_empty(),
        "{} records never processed, first {:?}",
        missed.len(),
        &missed[..missed.len().min(5)]
    );
    assert!(
        !read_positions(&two).is_empty(),
        "the second member read nothing: {two:?}"
    );

    // The group committed exactly up to the end: nothing skipped, nothing
    // left to re-read.
    let committed = admin.group_offsets("billing").await.unwrap();
    let want: BTreeMap<TopicPartition, u64> = (0..4)
        .map(|p| (TopicPartition::new("work", p), 500))
        .collect();
    assert_eq!(committed, want);
}

#[tokio::test]
async fn producer_sends_a_thousand_keyed_records() {
    let agent = common::Agent::start(1, &[]);
    let b = agent.addr(0);
    Admin::connect(&b)
        .await
        .unwrap()
        .create_topic("orders", 4)
        .await
        .unwrap();
    let out = Running::start("producer", &[&b, "orders"])
        .finish(Duration::from_secs(60))
        .await;
    assert!(
        out.last()
            .is_some_and(|l| l.starts_with("sent 1000 records")),
        "{out:?}"
    );
    let held: u64 = high_watermarks(&b, "orders", 4).await.iter().sum();
    assert_eq!(held, 1000);
}
