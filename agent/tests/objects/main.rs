//! Object storage end to end against a real S3 server (moto, started by
//! scripts/test.sh) and the local directory store: sealed segments become
//! chunk objects, local files go, reads come back byte-equal from the
//! objects; ack `object` waits for the object; a fenced agent cannot commit
//! and stops serving; an S3 outage loses nothing; restarts upload what was
//! not committed, never twice; an empty data dir serves committed records.

#[path = "../common/mod.rs"]
mod common;
#[path = "../common/pg.rs"]
mod pg;

mod compaction;
mod credentials;
mod faults;
mod retention;
mod retries;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use streamhouse_agent::metastore::MetaStore;
use streamhouse_agent::objstore::ObjectStore;
use streamhouse_proto as pb;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tonic::Code;

/// A TCP forwarder in front of the S3 server that a test can cut (refusing
/// and dropping connections) and restore, as a network outage would.
struct Proxy {
    port: u16,
    target: SocketAddr,
    tasks: Arc<parking_lot::Mutex<Vec<tokio::task::AbortHandle>>>,
    /// While set, new connections are accepted and held: bytes in, nothing
    /// out, never closed (a stalled server).
    hold: Arc<std::sync::atomic::AtomicBool>,
}

impl Proxy {
    async fn start(target: SocketAddr) -> Proxy {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = l.local_addr().unwrap().port();
        let p = Proxy {
            port,
            target,
            tasks: Default::default(),
            hold: Default::default(),
        };
        p.serve(l);
        p
    }

    fn serve(&self, l: TcpListener) {
        let tasks = self.tasks.clone();
        let target = self.target;
        let t2 = tasks.clone();
        let hold = self.hold.clone();
        let h = tokio::spawn(async move {
            while let Ok((mut inbound, _)) = l.accept().await {
                let stall = hold.load(std::sync::atomic::Ordering::Relaxed);
                let h = tokio::spawn(async move {
                    if stall {
                        let mut sink = [0u8; 4096];
                        use tokio::io::AsyncReadExt;
                        while let Ok(n) = inbound.read(&mut sink).await {
                            if n == 0 {
                                return;
                            }
                        }
                        return;
                    }
                    if let Ok(mut out) = TcpStream::connect(target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut out).await;
                    }
                });
                t2.lock().push(h.abort_handle());
            }
        });
        tasks.lock().push(h.abort_handle());
    }

    fn cut(&self) {
        for h in self.tasks.lock().drain(..) {
            h.abort();
        }
    }

    async fn restore(&self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        let l = loop {
            match TcpListener::bind(("127.0.0.1", self.port)).await {
                Ok(l) => break l,
                Err(e) if Instant::now() > deadline => panic!("cannot rebind proxy: {e}"),
                Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        };
        self.serve(l);
    }

    /// Stalls: open connections are cut, new ones are held unanswered.
    fn stall(&self) {
        self.hold.store(true, std::sync::atomic::Ordering::Relaxed);
        let mut tasks = self.tasks.lock();
        // Keep the listener (the first task); cut the connections.
        for h in tasks.drain(1..) {
            h.abort();
        }
    }

    /// Ends a stall for new connections (held ones stay stalled).
    fn unstall(&self) {
        self.hold.store(false, std::sync::atomic::Ordering::Relaxed);
    }

    fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

/// One plain HTTP/1.1 request to the S3 server, bypassing the agent's client.
async fn http_get(endpoint: &str, path: &str) -> (u16, Vec<u8>) {
    let host = endpoint.trim_start_matches("http://");
    let mut s = TcpStream::connect(host).await.unwrap();
    let req = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).await.unwrap();
    let head_end = buf.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    let status: u16 = head.split(' ').nth(1).unwrap().parse().unwrap();
    let mut body = buf[head_end..].to_vec();
    if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        let mut out = Vec::new();
        let mut rest = &body[..];
        loop {
            let nl = rest.windows(2).position(|w| w == b"\r\n").unwrap();
            let n = usize::from_str_radix(std::str::from_utf8(&rest[..nl]).unwrap().trim(), 16)
                .unwrap();
            if n == 0 {
                break;
            }
            out.extend_from_slice(&rest[nl + 2..nl + 2 + n]);
            rest = &rest[nl + 4 + n..];
        }
        body = out;
    }
    (status, body)
}

/// Keys under `prefix` in the bucket, listed straight from the S3 server.
async fn bucket_keys(prefix: &str) -> Vec<String> {
    let (endpoint, bucket) = s3_server();
    let (status, body) = http_get(
        &endpoint,
        &format!("/{bucket}?list-type=2&max-keys=1000&prefix={prefix}"),
    )
    .await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let text = String::from_utf8(body).unwrap();
    text.split("<Key>")
        .skip(1)
        .filter_map(|s| s.split("</Key>").next())
        .map(str::to_owned)
        .collect()
}

/// (key, last-modified) of every object under `prefix`: a second PUT of
/// the same key shows as a newer time.
async fn bucket_versions(prefix: &str) -> Vec<(String, String)> {
    let (endpoint, bucket) = s3_server();
    let (_, body) = http_get(
        &endpoint,
        &format!("/{bucket}?list-type=2&max-keys=1000&prefix={prefix}"),
    )
    .await;
    let text = String::from_utf8(body).unwrap();
    text.split("<Contents>")
        .skip(1)
        .map(|c| {
            let field = |name: &str| {
                c.split(&format!("<{name}>"))
                    .nth(1)
                    .and_then(|s| s.split(&format!("</{name}>")).next())
                    .unwrap_or_default()
                    .to_owned()
            };
            (field("Key"), field("LastModified"))
        })
        .collect()
}

/// The whole object `key` (a full key, prefix included), read with a
/// signed request (the server refuses anonymous reads).
async fn object(key: &str) -> Vec<u8> {
    let (endpoint, bucket) = s3_server();
    let store = ObjectStore::open(&format!(
        "s3://{bucket}?endpoint={endpoint}&region=us-east-1"
    ))
    .unwrap();
    let size = store.size(key).await.unwrap().expect("object exists");
    store.get_range(key, 0, size).await.unwrap().to_vec()
}

fn s3_args(endpoint: &str, prefix: &str, meta: &str) -> Vec<String> {
    let (_, bucket) = s3_server();
    vec![
        "--object-store".into(),
        format!("s3://{bucket}/{prefix}?endpoint={endpoint}&region=us-east-1"),
        "--metadata".into(),
        meta.into(),
    ]
}

fn target_of(endpoint: &str) -> SocketAddr {
    endpoint.trim_start_matches("http://").parse().unwrap()
}

/// Sends `batches` batches of 50 records to each partition with `ack`;
/// returns what each partition was sent, in order.
async fn send(
    agent: &Agent,
    meta: &pb::TopicMetadata,
    tag: &str,
    batches: usize,
    ack: pb::AckLevel,
) -> BTreeMap<u32, Vec<String>> {
    let mut sent = BTreeMap::new();
    for p in 0..meta.partitions.len() as u32 {
        let mut c = agent.producer_for(meta, p).await;
        let v: &mut Vec<String> = sent.entry(p).or_default();
        for b in 0..batches {
            let values: Vec<String> = (0..50)
                .map(|i| format!("{tag}-p{p}-b{b}-r{i}-{}", "z".repeat(i)))
                .collect();
            let mut req = produce_req(&meta.name, p, &values);
            req.ack = ack as i32;
            c.produce(req).await.expect("produce");
            v.extend(values);
        }
    }
    sent
}

async fn assert_reads(agent: &Agent, meta: &pb::TopicMetadata, sent: &BTreeMap<u32, Vec<String>>) {
    for (p, want) in sent {
        let mut f = agent.fetcher_for(meta, *p).await;
        let got = fetch_all(&mut f, &meta.name, *p).await;
        assert_eq!(got.len(), want.len(), "partition {p}: record count");
        for (i, (r, w)) in got.iter().zip(want).enumerate() {
            assert_eq!(r.offset, i as u64);
            assert_eq!(&r.value[..], w.as_bytes(), "partition {p} offset {i}");
        }
    }
}

/// Files in the agent's shard dirs that hold `needle`.
fn local_files_with(agent: &Agent, needle: &[u8]) -> usize {
    let mut n = 0;
    for e in std::fs::read_dir(&agent.data_dir).unwrap().flatten() {
        if !e.file_name().to_string_lossy().starts_with("shard-") {
            continue;
        }
        for f in std::fs::read_dir(e.path()).unwrap().flatten() {
            let data = std::fs::read(f.path()).unwrap_or_default();
            if data.windows(needle.len()).any(|w| w == needle) {
                n += 1;
            }
        }
    }
    n
}

async fn wait_until<F: std::future::Future<Output = bool>>(
    what: &str,
    timeout: Duration,
    mut f: impl FnMut() -> F,
) {
    let deadline = Instant::now() + timeout;
    while !f().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn committed_end(meta_url: &str, topic: &pb::TopicMetadata, p: u32) -> u64 {
    let m = MetaStore::open(meta_url).await.unwrap();
    let t = m
        .topics()
        .await
        .unwrap()
        .into_iter()
        .find(|t| t.name == topic.name)
        .unwrap();
    m.committed_end(&t.key(), p).await.unwrap()
}

/// Produce, roll, upload, delete local, fetch from the objects: byte-equal;
/// then a new agent on an empty data dir serves the same records.
async fn round_trip(store_args: Vec<String>, meta_url: &str, prefix: Option<&str>) {
    let mut args = store_args.clone();
    args.extend(["--segment-age-ms".into(), "100".into()]);
    let agent = Agent::start(2, &as_strs(&args));
    let meta = agent.create_topic("trip", 3).await;
    let sent = send(&agent, &meta, "trip", 20, pb::AckLevel::AckDurable).await;
    for (p, values) in &sent {
        let want = values.len() as u64;
        wait_until(
            "every partition to be committed",
            Duration::from_secs(30),
            || {
                let (meta_url, meta) = (meta_url.to_owned(), meta.clone());
                async move { committed_end(&meta_url, &meta, *p).await == want }
            },
        )
        .await;
    }
    let last = sent[&2].last().unwrap().clone();
    wait_until(
        "local segments to be shipped and deleted",
        Duration::from_secs(30),
        || {
            let n = local_files_with(&agent, last.as_bytes());
            async move { n == 0 }
        },
    )
    .await;
    if let Some(prefix) = prefix {
        let keys = bucket_keys(prefix).await;
        assert!(!keys.is_empty(), "no chunk objects under {prefix}");
        let mut found = false;
        for k in &keys {
            found |= object(k)
                .await
                .windows(last.len())
                .any(|w| w == last.as_bytes());
        }
        assert!(found, "the last record is in a chunk object");
    }
    assert_reads(&agent, &meta, &sent).await;
    drop(agent);

    // Same metadata and object store, empty data dir.
    let fresh = Agent::start(1, &as_strs(&store_args));
    let meta2 = fresh
        .admin()
        .await
        .describe_topic(pb::DescribeTopicRequest {
            name: "trip".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_reads(&fresh, &meta2, &sent).await;
    for p in 0..3 {
        assert_eq!(
            committed_end(meta_url, &meta2, p).await,
            sent[&p].len() as u64
        );
    }
    // It continues the partitions after the committed offsets.
    let more = send(&fresh, &meta2, "more", 1, pb::AckLevel::AckObject).await;
    let mut f = fresh.fetcher_for(&meta2, 0).await;
    let all = fetch_all(&mut f, "trip", 0).await;
    assert_eq!(all.len(), sent[&0].len() + more[&0].len());
}

#[tokio::test]
async fn s3_round_trip_is_byte_equal_and_survives_an_empty_data_dir() {
    let (endpoint, _) = s3_server();
    let prefix = unique("trip");
    let meta_dir = tempfile::tempdir_in(target_tmp()).unwrap();
    let meta_url = format!("sqlite://{}", meta_dir.path().join("meta.db").display());
    round_trip(
        s3_args(&endpoint, &prefix, &meta_url),
        &meta_url,
        Some(&prefix),
    )
    .await;
}

#[tokio::test]
async fn local_store_round_trip_with_postgres_metadata() {
    let dir = tempfile::tempdir_in(target_tmp()).unwrap();
    // A fresh database per run keeps topic names free.
    let meta_url = pg::fresh_database("trip").await;
    let args = vec![
        "--object-store".into(),
        format!("file://{}", dir.path().join("objects").display()),
        "--metadata".into(),
        meta_url.clone(),
    ];
    round_trip(args, &meta_url, None).await;
}

#[tokio::test]
async fn ack_object_is_answered_only_once_the_object_exists() {
    let (endpoint, _) = s3_server();
    let prefix = unique("ackobj");
    let meta_dir = tempfile::tempdir_in(target_tmp()).unwrap();
    let meta_url = format!("sqlite://{}", meta_dir.path().join("meta.db").display());
    // Default segment age (10 s): a waiting ack-`object` request must get
    // its segment sealed early.
    let args = s3_args(&endpoint, &prefix, &meta_url);
    let agent = Agent::start(1, &as_strs(&args));
    let meta = agent.create_topic("acks", 1).await;
    let mut c = agent.producer_for(&meta, 0).await;
    for round in 0..3 {
        let values: Vec<String> = (0..10).map(|i| format!("ack-object-{round}-{i}")).collect();
        let mut req = produce_req("acks", 0, &values);
        req.ack = pb::AckLevel::AckObject as i32;
        let started = Instant::now();
        let r = c.produce(req).await.unwrap().into_inner();
        let took = started.elapsed();
        // Right after the answer the bucket holds the batch.
        let mut found = false;
        for k in bucket_keys(&prefix).await {
            found |= object(&k)
                .await
                .windows(values[9].len())
                .any(|w| w == values[9].as_bytes());
        }
        assert!(
            found,
            "round {round}: acknowledged after {took:?} but not in the bucket"
        );
        assert!(
            took < Duration::from_secs(5),
            "round {round}: took {took:?}"
        );
        assert_eq!(r.base_offset, round * 10);
        assert!(committed_end(&meta_url, &meta, 0).await >= r.base_offset + 10);
    }
}

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap().flatten() {
        let dst = to.join(e.file_name());
        if e.path().is_dir() {
            copy_dir(&e.path(), &dst);
        } else if e.file_name() != "LOCK" {
            std::fs::copy(e.path(), &dst).unwrap();
        }
    }
}
