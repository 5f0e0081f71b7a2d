//! Object storage end to end against a real S3 server (moto, started by
//! scripts/test.sh) and the local directory store: sealed segments become
//! chunk objects, local files go, reads come back byte-equal from the
//! objects; ack `object` waits for the object; a fenced agent cannot commit
//! and stops serving; an S3 outage loses nothing; restarts upload what was
//! not committed, never twice; an empty data dir serves committed records.

mod common;
#[path = "common/pg.rs"]
mod pg;

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

fn as_strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
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

#[tokio::test]
async fn a_fenced_agent_cannot_commit_and_stops_serving() {
    let meta_dir = tempfile::tempdir_in(target_tmp()).unwrap();
    let meta_url = format!("sqlite://{}", meta_dir.path().join("meta.db").display());
    let args = [
        "--metadata",
        &meta_url,
        "--segment-age-ms",
        "100",
        "--lease-ttl-ms",
        "3000",
    ];
    let agent = Agent::start(1, &args);
    let meta = agent.create_topic("fence", 2).await;
    let before = send(&agent, &meta, "before", 2, pb::AckLevel::AckObject).await;
    let committed = committed_end(&meta_url, &meta, 0).await;
    assert_eq!(committed, before[&0].len() as u64);

    // Another agent takes partition 0 over (its clock says our lease expired).
    let m = MetaStore::open(&meta_url).await.unwrap();
    let key = m
        .topics()
        .await
        .unwrap()
        .into_iter()
        .find(|t| t.name == "fence")
        .unwrap()
        .key();
    let far = streamhouse_agent::clock::now_ms() + 3_600_000;
    let g = m
        .acquire_lease(&key, 0, "intruder", far, 3_600_000)
        .await
        .unwrap();
    assert_eq!(g.epoch, 2);

    // The stale agent may still accept a durable write until it notices,
    // but it can never commit it, and it soon refuses the partition.
    let mut c = agent.producer_for(&meta, 0).await;
    let deadline = Instant::now() + Duration::from_secs(15);
    let err = loop {
        let mut req = produce_req("fence", 0, &["late".to_string()]);
        req.ack = pb::AckLevel::AckDurable as i32;
        match c.produce(req).await {
            Ok(_) => {}
            Err(e) => break e,
        }
        assert!(Instant::now() < deadline, "the fenced agent kept serving");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    // Retriable: the client looks the new leader up and sends it there.
    assert_eq!(err.code(), Code::Unavailable, "{err:?}");
    assert!(err.message().contains("lease"), "{}", err.message());
    let mut f = agent.fetcher_for(&meta, 0).await;
    let e = f
        .fetch(pb::FetchRequest {
            topic: "fence".into(),
            partition: 0,
            offset: 0,
            max_bytes: 0,
            max_wait_ms: 0,
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::Unavailable);
    // Give the uploader time to try: nothing after the takeover is committed.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(committed_end(&meta_url, &meta, 0).await, committed);
    // The other partition is unaffected.
    let mut c1 = agent.producer_for(&meta, 1).await;
    let mut req = produce_req("fence", 1, &["after".to_string()]);
    req.ack = pb::AckLevel::AckObject as i32;
    c1.produce(req).await.unwrap();
    assert_eq!(
        committed_end(&meta_url, &meta, 1).await,
        before[&1].len() as u64 + 1
    );
}

// The proxy runs on the test's runtime, which `Agent::spawn` blocks while
// it waits for the ports: a second worker keeps the proxy moving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_s3_outage_loses_nothing_and_backlog_is_bounded() {
    let (endpoint, _) = s3_server();
    let proxy = Proxy::start(target_of(&endpoint)).await;
    let prefix = unique("outage");
    let meta_dir = tempfile::tempdir_in(target_tmp()).unwrap();
    let meta_url = format!("sqlite://{}", meta_dir.path().join("meta.db").display());
    let mut args = s3_args(&proxy.endpoint(), &prefix, &meta_url);
    args.extend([
        "--segment-age-ms".into(),
        "100".into(),
        "--segment-bytes".into(),
        "65536".into(),
        "--max-upload-backlog-bytes".into(),
        "1000000".into(),
    ]);
    let agent = Agent::start(1, &as_strs(&args));
    let meta = agent.create_topic("outage", 2).await;
    let mut acked: BTreeMap<u32, Vec<(u64, String)>> = BTreeMap::new();
    let mut clients = Vec::new();
    for p in 0..2 {
        clients.push(agent.producer_for(&meta, p).await);
    }
    let mut exhausted = 0;
    for round in 0..260usize {
        let ph = match round {
            0..=19 => "before",
            20..=199 => "outage",
            _ => "after",
        };
        if round == 20 {
            proxy.cut();
        }
        if round == 200 {
            proxy.restore().await;
        }
        for (p, c) in clients.iter_mut().enumerate() {
            let values: Vec<String> = (0..40)
                .map(|i| format!("{ph}-{round}-{p}-{i}-{}", "o".repeat(60)))
                .collect();
            let deadline = Instant::now() + Duration::from_secs(60);
            loop {
                match c.produce(produce_req("outage", p as u32, &values)).await {
                    Ok(r) => {
                        let base = r.into_inner().base_offset;
                        let list = acked.entry(p as u32).or_default();
                        list.extend(
                            values
                                .iter()
                                .enumerate()
                                .map(|(i, v)| (base + i as u64, v.clone())),
                        );
                        break;
                    }
                    Err(e) if e.code() == Code::ResourceExhausted => {
                        assert!(ph != "before", "back-pressure before the outage: {e:?}");
                        exhausted += 1;
                        if ph == "outage" {
                            break;
                        }
                        // After the outage: retry until the backlog drains.
                        assert!(Instant::now() < deadline, "the backlog never drained");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                    Err(e) => panic!("round {round}: {e:?}"),
                }
            }
        }
        if ph == "outage" {
            tokio::time::sleep(Duration::from_millis(15)).await;
        }
    }
    assert!(exhausted > 0, "the backlog limit never pushed back");
    // Everything drains to S3 once it is back.
    for p in 0..2u32 {
        let want = acked[&p].last().unwrap().0 + 1;
        wait_until("the backlog to drain", Duration::from_secs(60), || {
            let meta_url = meta_url.clone();
            let meta = meta.clone();
            async move { committed_end(&meta_url, &meta, p).await >= want }
        })
        .await;
    }
    drop(agent);
    // Read it all back from S3 alone: a new agent on an empty data dir.
    let fresh = Agent::start(1, &as_strs(&s3_args(&endpoint, &prefix, &meta_url)));
    for (p, want) in &acked {
        let mut f = fresh.fetcher_for(&meta, *p).await;
        let got = fetch_all(&mut f, "outage", *p).await;
        for (offset, v) in want {
            let r = got
                .get(*offset as usize)
                .unwrap_or_else(|| panic!("lost {p}/{offset}"));
            assert_eq!(r.offset, *offset);
            assert_eq!(&r.value[..], v.as_bytes());
        }
    }
}

// The proxy runs on the test's runtime, which `Agent::spawn` blocks while
// it waits for the ports: a second worker keeps the proxy moving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_uploads_uncommitted_segments_and_never_twice() {
    let (endpoint, _) = s3_server();
    let proxy = Proxy::start(target_of(&endpoint)).await;
    proxy.cut();
    let prefix = unique("restart");
    let meta_dir = tempfile::tempdir_in(target_tmp()).unwrap();
    let meta_url = format!("sqlite://{}", meta_dir.path().join("meta.db").display());
    let mut args = s3_args(&proxy.endpoint(), &prefix, &meta_url);
    args.extend(["--segment-age-ms".into(), "100".into()]);
    let mut agent = Agent::start(1, &as_strs(&args));
    let meta = agent.create_topic("again", 2).await;
    // S3 is unreachable: durable writes still succeed and seal locally.
    let sent = send(&agent, &meta, "again", 10, pb::AckLevel::AckDurable).await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(committed_end(&meta_url, &meta, 0).await, 0);
    agent.kill9();
    let backup = tempfile::tempdir_in(target_tmp()).unwrap();
    copy_dir(&agent.data_dir, backup.path());

    // Restarted with S3 back: the sealed segments are uploaded and committed.
    proxy.restore().await;
    agent.spawn();
    for p in 0..2u32 {
        let want = sent[&p].len() as u64;
        wait_until(
            "the restarted agent to commit",
            Duration::from_secs(30),
            || {
                let (meta_url, meta) = (meta_url.clone(), meta.clone());
                async move { committed_end(&meta_url, &meta, p).await >= want }
            },
        )
        .await;
    }
    let last = sent[&1].last().unwrap().clone();
    wait_until("local segments to go", Duration::from_secs(30), || {
        let n = local_files_with(&agent, last.as_bytes());
        async move { n == 0 }
    })
    .await;
    // Listing times have one-second resolution: let a second pass by so a
    // second PUT would show.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let versions = bucket_versions(&prefix).await;
    assert!(!versions.is_empty());
    agent.kill9();

    // A crash between commit and deleting the local files: restore the old
    // files. The restart must not commit or upload them a second time.
    std::fs::remove_dir_all(&agent.data_dir).unwrap();
    copy_dir(backup.path(), &agent.data_dir);
    agent.spawn();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    wait_until(
        "the already-committed local files to go",
        Duration::from_secs(30),
        || {
            let n = local_files_with(&agent, last.as_bytes());
            async move { n == 0 }
        },
    )
    .await;
    assert_eq!(
        bucket_versions(&prefix).await,
        versions,
        "no object was written twice"
    );
    for p in 0..2u32 {
        assert_eq!(
            committed_end(&meta_url, &meta, p).await,
            sent[&p].len() as u64
        );
    }
    assert_reads(&agent, &meta, &sent).await;
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

#[tokio::test]
async fn a_new_owner_recognises_retries_of_batches_committed_in_older_ranges() {
    takeover_then_retry(false).await;
}

#[tokio::test]
async fn without_stored_producer_state_a_new_owner_recognises_retries_of_the_last_range() {
    // Chunks committed before producer state was stored (schema v1) leave
    // none: the new owner reads the batches of each partition's last
    // committed range instead.
    takeover_then_retry(true).await;
}

/// Two producers commit a batch each (ack `object`, so in two ranges); the
/// agent stops; another, on an empty data dir, takes the partition; both
/// retry. With `forget_producer_state` the stored producer state is deleted
/// before the takeover; then only the last range's batch is checked.
async fn takeover_then_retry(forget_producer_state: bool) {
    let shared = tempfile::tempdir_in(target_tmp()).unwrap();
    let store_args = [
        "--object-store".to_string(),
        format!("file://{}", shared.path().join("objects").display()),
        "--metadata".into(),
        format!("sqlite://{}", shared.path().join("meta.db").display()),
    ];
    let with_id = |id: &str| {
        let mut a = store_args.to_vec();
        a.extend(["--agent-id".into(), id.into()]);
        a
    };
    let mut first = Agent::start(1, &as_strs(&with_id("first")));
    let meta = first.create_topic("owners", 1).await;
    let mut admin = first.admin().await;
    let mut pids = Vec::new();
    for _ in 0..2 {
        pids.push(
            admin
                .init_producer_id(pb::InitProducerIdRequest::default())
                .await
                .unwrap()
                .into_inner(),
        );
    }
    // Two producers, one batch each; ack `object` puts each batch in its
    // own committed range, the second producer's in the last one.
    let req = |k: usize| {
        let values: Vec<String> = (0..4).map(|i| format!("owner-{k}-{i}")).collect();
        pb::ProduceRequest {
            producer_id: pids[k].producer_id,
            producer_epoch: pids[k].producer_epoch,
            base_sequence: 0,
            ack: pb::AckLevel::AckObject as i32,
            ..produce_req("owners", 0, &values)
        }
    };
    let mut c = first.producer_for(&meta, 0).await;
    let originals: Vec<u64> = [
        c.produce(req(0)).await.unwrap().into_inner().base_offset,
        c.produce(req(1)).await.unwrap().into_inner().base_offset,
    ]
    .to_vec();
    assert_eq!(originals, vec![0, 4]);
    // The first agent stops (releasing its lease); another one, on an empty
    // data dir, takes the partition from the metadata and object store.
    first.signal(libc::SIGTERM);
    assert_eq!(first.wait_exit(Duration::from_secs(20)), Some(0));
    if forget_producer_state {
        let db = rusqlite::Connection::open(shared.path().join("meta.db")).unwrap();
        let rows = db.execute("DELETE FROM producer_state", []).unwrap();
        assert_eq!(rows, 2, "one row per producer was stored");
    }
    let second = Agent::start(1, &as_strs(&with_id("second")));
    let mut c = second.producer_for(&meta, 0).await;
    // The producers retry their batch (as after a lost answer): each is
    // recognised and answered with its original offsets, not appended.
    let first_checked = usize::from(forget_producer_state);
    for (k, original) in originals.iter().enumerate().skip(first_checked) {
        let again = c.produce(req(k)).await.unwrap().into_inner();
        assert!(again.duplicate, "producer {k}'s retry was appended again");
        assert_eq!(again.base_offset, *original);
    }
    let mut f = second.fetcher_for(&meta, 0).await;
    assert_eq!(fetch_all(&mut f, "owners", 0).await.len(), 8);
}

/// Issue 14 item 7: an S3 request that stalls (the server accepts it and
/// never answers) is given up after `--object-store-timeout-ms` and retried;
/// an ack-`object` write issued during the stall is answered soon after the
/// stall ends, not after the HTTP client's own minute.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_s3_request_is_retried_without_waiting_a_minute() {
    let (endpoint, _) = s3_server();
    let proxy = Proxy::start(target_of(&endpoint)).await;
    let prefix = unique("stall");
    let meta_dir = tempfile::tempdir_in(target_tmp()).unwrap();
    let meta_url = format!("sqlite://{}", meta_dir.path().join("meta.db").display());
    let mut args = s3_args(&proxy.endpoint(), &prefix, &meta_url);
    args.extend(["--object-store-timeout-ms".into(), "1000".into()]);
    let agent = Agent::start(1, &as_strs(&args));
    let meta = agent.create_topic("stall", 1).await;
    send(&agent, &meta, "warm", 1, pb::AckLevel::AckObject).await;

    proxy.stall();
    let mut c = agent.producer_for(&meta, 0).await;
    let write = tokio::spawn(async move {
        let mut req = produce_req("stall", 0, &["during-the-stall".to_string()]);
        req.ack = pb::AckLevel::AckObject as i32;
        c.produce(req).await
    });
    tokio::time::sleep(Duration::from_millis(2500)).await;
    proxy.unstall();
    let resumed = Instant::now();
    let answer = tokio::time::timeout(Duration::from_secs(20), write)
        .await
        .expect("the ack-object write was still waiting 20 s after the stall ended")
        .unwrap();
    assert!(answer.is_ok(), "{answer:?}");
    eprintln!("answered {:?} after the stall ended", resumed.elapsed());
    assert!(committed_end(&meta_url, &meta, 0).await >= 51);
}
