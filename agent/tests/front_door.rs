//! The agent's front door under hostile or careless clients: real agent
//! processes, raw HTTP/2 and raw TCP where tonic cannot send the bad input.
//! Each test here reproduces a way a client could crash, wedge or exhaust
//! an agent, and checks the agent's answer instead.

mod common;
#[path = "common/raw.rs"]
mod raw;

use std::time::Duration;

use common::*;
use streamhouse_proto as pb;

/// A health check over a connection made now, within `within`.
async fn fresh_connection_answers(addr: &str, within: Duration) -> Result<(), String> {
    let attempt = async {
        let mut h2c = raw::connect(addr).await;
        let req = raw::request(addr, pb::paths::HEALTH_CHECK, &[]);
        let msg = prost::Message::encode_to_vec(&pb::health::HealthCheckRequest::default());
        raw::call(&mut h2c, req, raw::frame(0, &msg)).await
    };
    match tokio::time::timeout(within, attempt).await {
        Ok(r) if r.grpc_status.as_deref() == Some("0") => Ok(()),
        Ok(r) => Err(format!("health check answered {r:?}")),
        Err(_) => Err(format!("no answer from {addr} within {within:?}")),
    }
}

/// Issue 13, item 1: the accept loop used to re-poll its pending accept on
/// every shutdown-poll tick, and glommio's 16-bit waker count overflowed
/// after 32,767 ticks (661 s at the 20 ms default) without a new
/// connection: from then on no connection got SETTINGS and SIGTERM was
/// ignored. With a 1 ms poll the same number of ticks passes in ~35 s.
#[tokio::test(flavor = "multi_thread")]
async fn a_shard_without_new_connections_for_32768_poll_ticks_still_accepts_and_stops() {
    let mut agent = Agent::start(2, &["--shutdown-poll-ms", "1"]);
    // One connection held open per shard, as a pooled client does.
    let mut held = Vec::new();
    for shard in 0..2 {
        let mut h2c = raw::connect(&agent.addr(shard)).await;
        let req = raw::request(&agent.addr(shard), pb::paths::HEALTH_CHECK, &[]);
        let msg = prost::Message::encode_to_vec(&pb::health::HealthCheckRequest::default());
        let r = raw::call(&mut h2c, req, raw::frame(0, &msg)).await;
        assert_eq!(r.grpc_status.as_deref(), Some("0"));
        held.push(h2c);
    }
    tokio::time::sleep(Duration::from_secs(45)).await;
    for shard in 0..2 {
        fresh_connection_answers(&agent.addr(shard), Duration::from_secs(5))
            .await
            .unwrap_or_else(|e| panic!("shard {shard} after 45 s idle: {e}"));
    }
    agent.signal(libc::SIGTERM);
    assert_eq!(
        agent.wait_exit(Duration::from_secs(20)),
        Some(0),
        "SIGTERM did not stop the agent"
    );
    drop(held);
}

/// A batch with any header and records section, with a valid CRC: what a
/// careless or hostile producer can send.
fn crafted(codec: u8, flags: u16, record_count: u32, records_len: u32, records: &[u8]) -> Vec<u8> {
    use streamhouse_proto::batch::{BATCH_MAGIC, HEADER_LEN};
    let mut b = vec![0u8; HEADER_LEN];
    b.extend_from_slice(records);
    let len = b.len() as u32;
    b[0..4].copy_from_slice(&BATCH_MAGIC.to_le_bytes());
    b[4..8].copy_from_slice(&len.to_le_bytes());
    b[20] = 1;
    b[21] = codec;
    b[22..24].copy_from_slice(&flags.to_le_bytes());
    b[24..28].copy_from_slice(&record_count.to_le_bytes());
    b[58..62].copy_from_slice(&records_len.to_le_bytes());
    let crc = crc32c::crc32c(&b[12..]);
    b[8..12].copy_from_slice(&crc.to_le_bytes());
    b
}

/// One record as the batch format encodes it, with any offset delta and
/// any declared lengths.
fn raw_record(
    off_delta: u8,
    key_tag: &[u8],
    value_len: &[u8],
    value: &[u8],
    tail: &[u8],
) -> Vec<u8> {
    let mut body = vec![0u8, off_delta];
    body.extend_from_slice(key_tag);
    body.extend_from_slice(value_len);
    body.extend_from_slice(value);
    body.extend_from_slice(tail);
    let mut out = vec![body.len() as u8];
    out.extend_from_slice(&body);
    out
}

/// Issue 13, items 2 and 3: every way a batch with a valid CRC can lie
/// about its records. Before, each was acknowledged (the first made the
/// next Fetch abort the process allocating 446 GB; the others made every
/// Fetch of the partition answer DATA_LOSS, blaming the disk).
#[tokio::test]
async fn batches_whose_records_lie_are_refused_and_nothing_is_appended() {
    let agent = Agent::start(1, &["--max-record-bytes", "1024"]);
    let meta = agent.create_topic("lies", 1).await;
    let mut p = agent.producer_for(&meta, 0).await;
    let good = raw_record(0, &[0], &[3], b"abc", &[0]);
    let two = [good.clone(), raw_record(1, &[0], &[3], b"def", &[0])].concat();
    let n = |v: &[u8]| v.len() as u32;
    let lz4_garbage = vec![0xffu8; 64];
    let zstd_garbage = [0x28, 0xb5, 0x2f, 0xfd, 0xff, 0xff, 0xff, 0xff, 1, 2, 3].to_vec();
    let real_lz4 = lz4_flex::compress(&good);
    let cases: Vec<(&str, Vec<u8>, tonic::Code)> = vec![
        (
            "record_count 0xFFFFFFFF",
            crafted(0, 0, u32::MAX, n(&good), &good),
            tonic::Code::InvalidArgument,
        ),
        (
            "header only",
            crafted(0, 0, 1, 0, &[]),
            tonic::Code::InvalidArgument,
        ),
        (
            "count lower than the records",
            crafted(0, 0, 1, n(&two), &two),
            tonic::Code::InvalidArgument,
        ),
        (
            "count higher than the records",
            crafted(0, 0, 2, n(&good), &good),
            tonic::Code::InvalidArgument,
        ),
        (
            "garbage records",
            crafted(0, 0, 1, 16, &[0xff; 16]),
            tonic::Code::InvalidArgument,
        ),
        (
            "absurd record length",
            crafted(0, 0, 1, 8, &[0xff, 0xff, 0xff, 0xff, 0x0f, 0, 0, 0]),
            tonic::Code::InvalidArgument,
        ),
        (
            "absurd key length",
            {
                let r = raw_record(0, &[0xff, 0xff, 0xff, 0xff, 0x0f], &[3], b"abc", &[0]);
                crafted(0, 0, 1, n(&r), &r)
            },
            tonic::Code::InvalidArgument,
        ),
        (
            "absurd value length",
            {
                let r = raw_record(0, &[0], &[0xff, 0xff, 0xff, 0x7f], b"abc", &[0]);
                crafted(0, 0, 1, n(&r), &r)
            },
            tonic::Code::InvalidArgument,
        ),
        (
            "absurd header count",
            {
                let r = raw_record(0, &[0], &[3], b"abc", &[0xff, 0xff, 0xff, 0xff, 0x0f]);
                crafted(0, 0, 1, n(&r), &r)
            },
            tonic::Code::InvalidArgument,
        ),
        (
            "record longer than its fields",
            {
                let r = raw_record(0, &[0], &[3], b"abc", &[0, 7, 7]);
                crafted(0, 0, 1, n(&r), &r)
            },
            tonic::Code::InvalidArgument,
        ),
        (
            "offset deltas not dense",
            {
                let r = [good.clone(), good.clone()].concat();
                crafted(0, 0, 2, n(&r), &r)
            },
            tonic::Code::InvalidArgument,
        ),
        (
            "records_len lies (uncompressed)",
            crafted(0, 0, 1, n(&good) + 10, &good),
            tonic::Code::InvalidArgument,
        ),
        (
            "records_len lies (lz4)",
            crafted(1, 0, 1, n(&good) + 10, &real_lz4),
            tonic::Code::InvalidArgument,
        ),
        (
            "lz4 garbage",
            crafted(1, 0, 1, 1000, &lz4_garbage),
            tonic::Code::InvalidArgument,
        ),
        (
            "zstd garbage",
            crafted(2, 0, 1, 1000, &zstd_garbage),
            tonic::Code::InvalidArgument,
        ),
        (
            "records_len past the limit",
            crafted(1, 0, 1, u32::MAX, &real_lz4),
            tonic::Code::ResourceExhausted,
        ),
        (
            "reserved flag set",
            crafted(0, 1, 1, n(&good), &good),
            tonic::Code::InvalidArgument,
        ),
        (
            "a record over --max-record-bytes",
            {
                use streamhouse_proto::batch::{encode, Codec, ProducerInfo, Record};
                let big = Record {
                    value: vec![1u8; 2000].into(),
                    ..Default::default()
                };
                encode(&[big], Codec::None, ProducerInfo::default())
            },
            tonic::Code::ResourceExhausted,
        ),
    ];
    for (what, batch, code) in cases {
        let r = p
            .produce(pb::ProduceRequest {
                topic: "lies".into(),
                partition: 0,
                batch: batch.into(),
                ..Default::default()
            })
            .await;
        match r {
            Err(s) => assert_eq!(s.code(), code, "{what}: {}", s.message()),
            Ok(r) => panic!(
                "{what}: acknowledged at offset {}",
                r.into_inner().base_offset
            ),
        }
    }
    // Nothing was appended: the next good batch is offset 0, and it reads back.
    let ok = p
        .produce(pb::ProduceRequest {
            topic: "lies".into(),
            partition: 0,
            batch: crafted(0, 0, 1, n(&good), &good).into(),
            ..Default::default()
        })
        .await
        .expect("a good batch")
        .into_inner();
    assert_eq!(ok.base_offset, 0);
    let mut f = agent.fetcher_for(&meta, 0).await;
    let got = fetch_all(&mut f, "lies", 0).await;
    assert_eq!(got.len(), 1);
    assert_eq!(&got[0].value[..], b"abc");
}

/// Resident memory of a process, in bytes.
fn rss_bytes(pid: i32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

/// Issue 13, item 4: streams that each send most of an 8 MiB message and
/// never end. Before, the agent gave back flow-control credit as bytes
/// arrived and buffered them all (128 streams took RSS from 33 MB to
/// 1.09 GB); now a message is reserved from the connection's and the
/// shard's budgets before its credit is given back, a stream that does not
/// fit is answered RESOURCE_EXHAUSTED at once, and one whose body stalls
/// is answered DEADLINE_EXCEEDED after the body timeout, its bytes freed.
#[tokio::test(flavor = "multi_thread")]
async fn held_open_request_bodies_cannot_grow_memory_without_bound() {
    let agent = Agent::start(1, &[]);
    let meta = agent.create_topic("held", 1).await;
    let addr = agent.addr(0);
    let before = rss_bytes(agent.pid());
    let declared = (8 << 20) - 1024 - 5;
    // One 1 MiB chunk, shared by every stream (Bytes clones share memory).
    let chunk = bytes::Bytes::from(vec![7u8; 1 << 20]);
    let mut conns = Vec::new();
    let mut replies = Vec::new();
    for _ in 0..2 {
        let mut h2c = raw::connect(&addr).await;
        for _ in 0..128 {
            let req = raw::request(&addr, pb::paths::PRODUCE, &[]);
            let (resp, mut send) = h2c.send_request(req, false).expect("send request");
            let mut prefix = vec![0u8];
            prefix.extend_from_slice(&(declared as u32).to_be_bytes());
            send.send_data(prefix.into(), false).expect("prefix");
            // All but the last 64 KiB of the message, and never the end.
            let mut left = declared - (64 << 10);
            while left > 0 {
                let n = left.min(chunk.len());
                send.send_data(chunk.slice(..n), false).expect("data");
                left -= n;
            }
            replies.push((resp, send));
        }
        conns.push(h2c);
    }
    let mut peak = 0;
    for _ in 0..30 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        peak = peak.max(rss_bytes(agent.pid()));
    }
    let grown = peak.saturating_sub(before);
    eprintln!(
        "agent RSS {} MB before, peak {} MB holding 256 unfinished 8 MiB requests",
        before >> 20,
        peak >> 20
    );
    assert!(
        grown < 400 << 20,
        "agent RSS grew by {} MB holding 256 unfinished 8 MiB requests",
        grown >> 20
    );
    // The agent still serves, and the streams that did not fit were told so.
    let mut p = agent.producer_for(&meta, 0).await;
    p.produce(produce_req("held", 0, &["still here".into()]))
        .await
        .expect("a produce while the streams are held");
    let mut exhausted = 0;
    let mut deadline = 0;
    for (resp, _send) in replies {
        let r = raw::read_reply(resp).await;
        match r.grpc_status.as_deref() {
            Some("8") => {
                assert_eq!(
                    r.pushback.as_deref(),
                    Some("100"),
                    "a momentary refusal: {r:?}"
                );
                exhausted += 1
            }
            Some("4") => deadline += 1,
            other => panic!("a held stream got {other:?}: {r:?}"),
        }
    }
    assert!(
        exhausted > 200,
        "{exhausted} streams refused with RESOURCE_EXHAUSTED"
    );
    assert!(deadline > 0, "the streams that fit timed out");
    drop(conns);
}

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
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
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

/// Issue 13, item 5: under `ulimit -n 256`, 300 idle connections to the
/// shard ports and the admin port used to take every descriptor, the next
/// segment roll failed with EMFILE, and from then on every Produce got
/// INTERNAL "the log is failed ... restart the shard". Now connections are
/// limited to what the descriptors hold (with a reserve for the log), the
/// ones over the limit get a GOAWAY, and writes go on.
#[tokio::test(flavor = "multi_thread")]
async fn idle_connections_under_a_low_open_file_limit_cannot_disable_writes() {
    let admin = free_ports(1);
    let admin_flag = format!("127.0.0.1:{admin}");
    let agent = Agent::start_with_open_files(
        2,
        &["--segment-bytes", "65536", "--admin-listen", &admin_flag],
        256,
    );
    let meta = agent.create_topic("fds", 2).await;
    let mut producers = [
        agent.producer_for(&meta, 0).await,
        agent.producer_for(&meta, 1).await,
    ];
    let mut idle = Vec::new();
    for i in 0..300 {
        let port = match i % 3 {
            0 => agent.port,
            1 => agent.port + 1,
            _ => admin,
        };
        if let Ok(s) = std::net::TcpStream::connect(("127.0.0.1", port)) {
            idle.push((port, s));
        }
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    // ~600 KB per partition: several segment rolls on each shard while the
    // flood holds its connections.
    for round in 0..100 {
        for (p, producer) in producers.iter_mut().enumerate() {
            producer
                .produce(hundred_byte_records("fds", p as u32, 50))
                .await
                .unwrap_or_else(|s| panic!("round {round}, partition {p}: {s:?}"));
        }
    }
    // The last connection to shard 0 was over the limit: SETTINGS, then
    // GOAWAY (ENHANCE_YOUR_CALM) with the reason, then the close.
    let (_, last) = idle
        .iter_mut()
        .rev()
        .find(|(port, _)| *port == agent.port)
        .expect("a connection to shard 0");
    last.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut frames = Vec::new();
    let _ = std::io::Read::read_to_end(last, &mut frames);
    assert!(frames.len() >= 26, "refusal frames: {frames:?}");
    assert_eq!((frames[3], frames[12]), (4, 7), "SETTINGS then GOAWAY");
    assert_eq!(&frames[22..26], &[0, 0, 0, 0x0b]);
    drop(idle);
    let (code, body) = admin_until(admin, "/ready", 200).await;
    assert_eq!(code, 200, "{body}");
    let metrics = admin_until(admin, "/metrics", 200).await.1;
    assert!(
        sample(
            &metrics,
            "streamhouse_connections_refused_total{shard=\"0\"}"
        ) > 0.0
    );
    for p in 0..2u32 {
        let mut f = agent.fetcher_for(&meta, p).await;
        assert_eq!(fetch_all(&mut f, "fds", p).await.len(), 100 * 50);
    }
}

/// Issue 13, item 5 (the other half): a segment roll that cannot create
/// its file (here: the shard directory made immutable) used to fail the
/// log for good. Now appends stay on the active segment, `/ready` says why
/// it is degraded, and once files can be created again the roll succeeds
/// and `/ready` is 200 again.
#[tokio::test(flavor = "multi_thread")]
async fn a_failed_segment_roll_is_retried_and_ready_says_why() {
    let (agent, admin) = start_with_admin(1, &["--segment-bytes", "65536"]);
    let meta = agent.create_topic("roll", 1).await;
    let mut p = agent.producer_for(&meta, 0).await;
    assert_eq!(admin_until(admin, "/ready", 200).await.0, 200);
    let dir = agent.data_dir.join("shard-0");
    let chattr = |flag: &str| {
        let st = std::process::Command::new("chattr")
            .arg(flag)
            .arg(&dir)
            .status()
            .expect("chattr");
        assert!(st.success(), "chattr {flag} failed");
    };
    chattr("+i");
    let mut written = 0;
    for round in 0..30 {
        let r = p.produce(hundred_byte_records("roll", 0, 50)).await;
        if let Err(s) = r {
            chattr("-i");
            panic!("round {round} while the directory is immutable: {s:?}");
        }
        written += 50;
    }
    let (code, body) = admin_until(admin, "/ready", 503).await;
    chattr("-i");
    assert_eq!(code, 503, "{body}");
    assert!(body.contains("shard 0 cannot write"), "{body}");
    // The roll is retried: more writes go through and readiness returns.
    for _ in 0..20 {
        p.produce(hundred_byte_records("roll", 0, 50))
            .await
            .expect("produce after the directory is writable again");
        written += 50;
    }
    let (code, body) = admin_until(admin, "/ready", 200).await;
    assert_eq!(code, 200, "{body}");
    let mut f = agent.fetcher_for(&meta, 0).await;
    assert_eq!(fetch_all(&mut f, "roll", 0).await.len(), written);
}

/// Issue 13, item 6: Fetch `max_bytes` bounded only the stored (compressed)
/// bytes, so lz4 batches of ~33 KB that each inflate to 8 MiB made a 1 MiB
/// fetch answer hundreds of MiB. Now the decompressed records count: a
/// fetch answers at most `max_bytes` of them (at least one batch).
#[tokio::test]
async fn fetch_max_bytes_bounds_the_decompressed_records() {
    use streamhouse_proto::batch::{encode, Codec, ProducerInfo, Record};
    let agent = Agent::start(1, &[]);
    let meta = agent.create_topic("bombs", 1).await;
    let mut p = agent.producer_for(&meta, 0).await;
    let bomb = encode(
        &[Record {
            key: None,
            value: bytes::Bytes::from(vec![0u8; (8 << 20) - 1024]),
            timestamp: 1,
            headers: vec![],
        }],
        Codec::Lz4,
        ProducerInfo::default(),
    );
    assert!(bomb.len() < 64 << 10, "compressed to {} bytes", bomb.len());
    for _ in 0..12 {
        p.produce(pb::ProduceRequest {
            topic: "bombs".into(),
            partition: 0,
            batch: bomb.clone().into(),
            ..Default::default()
        })
        .await
        .expect("produce");
    }
    let mut f = agent.fetcher_for(&meta, 0).await;
    for (offset, max_bytes) in [(0, 1 << 20), (3, 1 << 20), (0, 20 << 20)] {
        let r = f
            .fetch(pb::FetchRequest {
                topic: "bombs".into(),
                partition: 0,
                offset,
                max_bytes,
                max_wait_ms: 0,
            })
            .await
            .expect("fetch")
            .into_inner();
        let bytes: usize = r.records.iter().map(|r| r.value.len()).sum();
        let want = (max_bytes as usize / (8 << 20)).max(1);
        assert_eq!(
            r.records.len(),
            want,
            "max_bytes {max_bytes} answered {} records, {} MiB",
            r.records.len(),
            bytes >> 20
        );
        assert_eq!(r.records[0].offset, offset);
    }
}

/// Issue 13, item 7: Produce accepted any producer id and remembered each
/// for a day (120,000 random ids: +47 MB RSS). Now a shard remembers at
/// most `--max-producers-per-shard`, forgetting the least recently used:
/// a forgotten producer's next batch is taken as a new producer's, and a
/// recent producer's retry is still a duplicate.
#[tokio::test]
async fn the_producer_table_is_bounded_and_forgets_the_least_recently_used() {
    let (agent, admin) = start_with_admin(1, &["--max-producers-per-shard", "100"]);
    let meta = agent.create_topic("ids", 1).await;
    let mut p = agent.producer_for(&meta, 0).await;
    let req = |id: i64, seq: i32| pb::ProduceRequest {
        producer_id: id,
        base_sequence: seq,
        ..produce_req("ids", 0, &[format!("from {id}")])
    };
    let mut last_offset = 0;
    for id in 1..=1000i64 {
        last_offset = p
            .produce(req(id * 7919, 0))
            .await
            .expect("produce")
            .into_inner()
            .base_offset;
    }
    let (_, metrics) = admin_until(admin, "/metrics", 200).await;
    let remembered = sample(&metrics, "streamhouse_producers_remembered{shard=\"0\"}");
    assert!(remembered <= 100.0, "{remembered} producers remembered");
    // The most recent producer's retry is recognised...
    let retry = p
        .produce(req(1000 * 7919, 0))
        .await
        .expect("retry")
        .into_inner();
    assert!(
        retry.duplicate,
        "a recent producer's retry was appended again"
    );
    assert_eq!(retry.base_offset, last_offset);
    // ... and a forgotten one goes on as a new producer.
    let next = p
        .produce(req(7919, 1))
        .await
        .expect("a forgotten producer's next batch");
    assert!(!next.into_inner().duplicate);
}

/// Issue 13, item 8: gRPC framing mistakes get INVALID_ARGUMENT (a length
/// prefix shorter than the body used to be UNIMPLEMENTED "only unary
/// calls"; a reserved flag bit used to be "compressed"), and the refusal of
/// a compressed message says which encoding to use instead.
#[tokio::test]
async fn grpc_framing_mistakes_get_clear_statuses() {
    let agent = Agent::start(1, &[]);
    agent.create_topic("frames", 1).await;
    let addr = agent.addr(0);
    let h2c = raw::connect(&addr).await;
    let msg = prost::Message::encode_to_vec(&produce_req("frames", 0, &["x".into()]));
    let call = |body: Vec<u8>| {
        let req = raw::request(&addr, pb::paths::PRODUCE, &[]);
        let mut h2c = h2c.clone();
        async move { raw::call(&mut h2c, req, body).await }
    };
    // The prefix declares fewer bytes than the body holds.
    let mut short = raw::frame(0, &msg);
    short[4] -= 1;
    let r = call(short).await;
    assert_eq!(r.grpc_status.as_deref(), Some("3"), "{r:?}");
    // ... or more than it holds.
    let mut long = raw::frame(0, &msg);
    long[4] += 1;
    let r = call(long).await;
    assert_eq!(r.grpc_status.as_deref(), Some("3"), "{r:?}");
    // A reserved flag bit.
    let r = call(raw::frame(0x80, &msg)).await;
    assert_eq!(r.grpc_status.as_deref(), Some("3"), "{r:?}");
    // Compressed: UNIMPLEMENTED, saying what the agent accepts.
    let r = call(raw::frame(1, &msg)).await;
    assert_eq!(r.grpc_status.as_deref(), Some("12"), "{r:?}");
    assert_eq!(r.accept_encoding.as_deref(), Some("identity"), "{r:?}");
    // And a correct call on the same connection still works.
    let r = call(raw::frame(0, &msg)).await;
    assert_eq!(r.grpc_status.as_deref(), Some("0"), "{r:?}");
    drop(h2c);
}

/// Issue 13, item 8: an HTTP/1.1 request on a shard port used to get a
/// bare connection reset; now a plain-text 505 saying what the port speaks.
#[tokio::test]
async fn http1_on_a_shard_port_gets_a_clean_refusal() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let agent = Agent::start(1, &[]);
    let mut s = tokio::net::TcpStream::connect(agent.addr(0)).await.unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = String::new();
    tokio::time::timeout(Duration::from_secs(5), s.read_to_string(&mut buf))
        .await
        .expect("an answer")
        .expect("a clean close, not a reset");
    assert!(buf.starts_with("HTTP/1.1 505 "), "{buf:?}");
    assert!(buf.contains("HTTP/2"), "{buf:?}");
}

/// Issue 13, item 8: the admin port answers HEAD, ignores query strings,
/// and closes a connection whose request head does not arrive in time.
#[tokio::test]
async fn the_admin_port_answers_head_ignores_queries_and_times_out_slow_heads() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (_agent, admin) = start_with_admin(1, &["--admin-read-timeout-ms", "500"]);
    let (code, _) = admin_until(admin, "/health?verbose=1", 200).await;
    assert_eq!(code, 200);
    let (code, body) = admin_until(admin, "/ready?x=y", 200).await;
    assert_eq!(code, 200, "{body}");
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", admin))
        .await
        .unwrap();
    s.write_all(b"HEAD /health HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut head = String::new();
    s.read_to_string(&mut head).await.unwrap();
    assert!(head.starts_with("HTTP/1.1 200 "), "{head:?}");
    assert!(head.ends_with("\r\n\r\n"), "HEAD has no body: {head:?}");
    // A client that connects and sends half a request head is cut off.
    let mut slow = tokio::net::TcpStream::connect(("127.0.0.1", admin))
        .await
        .unwrap();
    slow.write_all(b"GET /health HT").await.unwrap();
    let mut rest = String::new();
    let r = tokio::time::timeout(Duration::from_secs(5), slow.read_to_string(&mut rest)).await;
    assert!(r.is_ok(), "the admin port kept a stalled request open");
    assert!(rest.starts_with("HTTP/1.1 408 "), "{rest:?}");
}

/// Issue 13, item 8: the topic names "." and ".." are refused (as Kafka
/// does); before, both were created.
#[tokio::test]
async fn reserved_topic_names_are_refused() {
    let agent = Agent::start(1, &[]);
    for name in [".", ".."] {
        let r = agent
            .admin()
            .await
            .create_topic(pb::CreateTopicRequest {
                name: name.into(),
                partitions: 1,
            })
            .await;
        assert_eq!(
            r.map(|_| ()).unwrap_err().code(),
            tonic::Code::InvalidArgument,
            "topic {name:?}"
        );
    }
}

/// Issue 13, item 8: a Fetch past the high watermark is OUT_OF_RANGE (as
/// the README says; before, it waited and answered nothing), while one at
/// the watermark long-polls.
#[tokio::test]
async fn a_fetch_past_the_high_watermark_is_out_of_range() {
    let agent = Agent::start(1, &[]);
    let meta = agent.create_topic("hw", 1).await;
    let mut p = agent.producer_for(&meta, 0).await;
    p.produce(produce_req("hw", 0, &["a".into(), "b".into()]))
        .await
        .unwrap();
    let mut f = agent.fetcher_for(&meta, 0).await;
    let fetch = |offset, max_wait_ms| pb::FetchRequest {
        topic: "hw".into(),
        partition: 0,
        offset,
        max_bytes: 0,
        max_wait_ms,
    };
    let past = f.fetch(fetch(3, 0)).await.unwrap_err();
    assert_eq!(past.code(), tonic::Code::OutOfRange, "{past:?}");
    let started = std::time::Instant::now();
    let at = f
        .fetch(fetch(2, 300))
        .await
        .expect("a fetch at the watermark");
    assert!(at.into_inner().records.is_empty());
    assert!(started.elapsed() >= Duration::from_millis(250), "it waited");
}

/// Issue 13, items 4 and 8: entries of ended connections leave the
/// shard's connection table, idle connections are closed after the idle
/// timeout (with a GOAWAY), a connection that never sends the HTTP/2
/// preface is closed after the handshake timeout, and the waiters of long
/// polls that timed out on an idle partition are removed.
#[tokio::test(flavor = "multi_thread")]
async fn ended_connections_and_long_polls_leave_nothing_behind() {
    let (agent, admin) = start_with_admin(
        1,
        &[
            "--connection-idle-timeout-ms",
            "1500",
            "--handshake-timeout-ms",
            "500",
        ],
    );
    let meta = agent.create_topic("quiet", 1).await;
    let open = |m: &str| sample(m, "streamhouse_connections_open{shard=\"0\"}");
    let waiters = |m: &str| sample(m, "streamhouse_fetch_waiters{shard=\"0\"}");
    // 40 long polls that time out on an idle partition.
    let f = agent.fetcher_for(&meta, 0).await;
    let mut polls = Vec::new();
    for _ in 0..40 {
        let mut f = f.clone();
        polls.push(tokio::spawn(async move {
            f.fetch(pb::FetchRequest {
                topic: "quiet".into(),
                partition: 0,
                offset: 0,
                max_bytes: 0,
                max_wait_ms: 200,
            })
            .await
        }));
    }
    for p in polls {
        assert!(p
            .await
            .unwrap()
            .expect("long poll")
            .into_inner()
            .records
            .is_empty());
    }
    let (_, m) = admin_until(admin, "/metrics", 200).await;
    assert_eq!(waiters(&m), 0.0, "long-poll waiters left behind");
    // 30 connections opened and closed: none stays in the table.
    for _ in 0..30 {
        let h2c = raw::connect(&agent.addr(0)).await;
        drop(h2c);
    }
    // An idle connection (handshake done, no stream) is closed by the agent.
    let tcp = tokio::net::TcpStream::connect(agent.addr(0)).await.unwrap();
    let (_h2c, conn) = h2::client::handshake(tcp).await.unwrap();
    let closed = tokio::time::timeout(Duration::from_secs(10), conn).await;
    assert!(
        closed.is_ok(),
        "an idle connection was kept past its idle timeout"
    );
    // A connection that never sends the HTTP/2 preface is closed after the
    // handshake timeout.
    let mut silent = tokio::net::TcpStream::connect(agent.addr(0)).await.unwrap();
    let mut buf = Vec::new();
    let read = tokio::io::AsyncReadExt::read_to_end(&mut silent, &mut buf);
    let ended = tokio::time::timeout(Duration::from_secs(5), read).await;
    assert!(
        ended.is_ok(),
        "a connection without a handshake was kept open"
    );
    drop(f);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (_, m) = admin_until(admin, "/metrics", 200).await;
    assert_eq!(open(&m), 0.0, "connections left in the table:\n{m}");
}

/// Writes, into a stopped agent's WAL, what an agent that checked only a
/// batch's header and CRC accepted: a one-record batch claiming 3 records,
/// then a good batch. Returns the partition's log key.
fn store_a_lying_batch(shard_dir: std::path::PathBuf) -> String {
    use streamhouse_proto::batch::{encode, set_base_offset, Codec, ProducerInfo, Record};
    let rec = |v: &str| Record {
        value: bytes::Bytes::from(v.to_owned()),
        timestamp: 1,
        ..Default::default()
    };
    glommio::LocalExecutorBuilder::default()
        .spawn(move || async move {
            let (log, _) =
                streamhouse_shard::ShardLog::open(streamhouse_shard::LogConfig::new(shard_dir))
                    .await
                    .expect("open the WAL");
            let (key, partition, _) = log.partitions().into_iter().next().expect("a partition");
            let mut lying = encode(&[rec("lie")], Codec::None, ProducerInfo::default());
            lying[24..28].copy_from_slice(&3u32.to_le_bytes());
            set_base_offset(&mut lying, 0);
            log.append(&key, partition, lying).await.expect("append");
            let after = encode(
                &[rec("after-0"), rec("after-1")],
                Codec::None,
                ProducerInfo::default(),
            );
            log.append(&key, partition, after).await.expect("append");
            log.close().await;
            key
        })
        .expect("executor")
        .join()
        .expect("join")
}

/// Reads of the partition `store_a_lying_batch` wrote: before, at and
/// after the lying batch (offsets 0-1, 2-4, 5-6).
async fn read_around_the_lying_batch(
    mut f: pb::fetch_service_client::FetchServiceClient<tonic::transport::Channel>,
    from: &str,
) {
    let fetch = |offset| pb::FetchRequest {
        topic: "stored".into(),
        partition: 0,
        offset,
        max_bytes: 0,
        max_wait_ms: 0,
    };
    let r = f.fetch(fetch(0)).await.expect("fetch from 0").into_inner();
    let values: Vec<&[u8]> = r.records.iter().map(|r| &r.value[..]).collect();
    assert_eq!(values, [&b"before-0"[..], b"before-1"], "{from}");
    let bad = f.fetch(fetch(2)).await.expect_err("the lying batch");
    assert_eq!(bad.code(), tonic::Code::DataLoss, "{from}: {bad:?}");
    assert!(
        bad.message().contains("cannot be decoded"),
        "{from}: {bad:?}"
    );
    let r = f.fetch(fetch(5)).await.expect("fetch past it").into_inner();
    let values: Vec<&[u8]> = r.records.iter().map(|r| &r.value[..]).collect();
    assert_eq!(values, [&b"after-0"[..], b"after-1"], "{from}");
}

/// Issue 13, item 3 (stored data): an agent whose log, or whose chunk
/// objects, already hold a batch whose records lie must never abort on it:
/// reads before it answer the records before it, a read at it is
/// DATA_LOSS naming the offset to read on from, reads after it work. On
/// today's main the read of a partition with such a batch aborted or
/// answered DATA_LOSS "corrupt WAL segment" for every read covering it.
#[tokio::test(flavor = "multi_thread")]
async fn stored_batches_whose_records_lie_are_data_loss_for_themselves_only() {
    let shared = tempfile::Builder::new()
        .prefix("sh-stored-")
        .tempdir_in(target_tmp())
        .unwrap();
    let meta_flag = format!("sqlite://{}", shared.path().join("meta.db").display());
    let objects_flag = format!("file://{}", shared.path().join("objects").display());
    let flags = [
        "--metadata",
        &meta_flag,
        "--object-store",
        &objects_flag,
        "--lease-ttl-ms",
        "1000",
    ];
    let mut a = Agent::start(1, &flags);
    let meta = a.create_topic("stored", 1).await;
    let mut p = a.producer_for(&meta, 0).await;
    p.produce(produce_req(
        "stored",
        0,
        &["before-0".into(), "before-1".into()],
    ))
    .await
    .unwrap();
    drop(p);
    a.kill9();
    store_a_lying_batch(a.data_dir.join("shard-0"));
    a.spawn();
    read_around_the_lying_batch(a.fetcher_for(&meta, 0).await, "after a restart").await;
    // SIGTERM ships the log to object storage; a second agent on an empty
    // data dir then reads the partition from the chunk objects.
    a.signal(libc::SIGTERM);
    assert_eq!(a.wait_exit(Duration::from_secs(30)), Some(0));
    let mut with_id = flags.to_vec();
    with_id.extend(["--agent-id", "agent-2"]);
    let b = Agent::start(1, &with_id);
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let mut f = b.fetcher_for(&meta, 0).await;
        let r = f
            .fetch(pb::FetchRequest {
                topic: "stored".into(),
                partition: 0,
                offset: 0,
                max_bytes: 0,
                max_wait_ms: 0,
            })
            .await;
        if r.is_ok() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "agent-2 never served: {r:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    read_around_the_lying_batch(
        b.fetcher_for(&meta, 0).await,
        "on another agent, from object storage",
    )
    .await;
}

/// Issue 13, items 1, 5 and 8: `/ready` answers 503 while a shard cannot
/// take a new connection (here: at its connection limit; the wedge of item
/// 1 was another way) and 200 again once it can. Before, `/ready` looked
/// at leases and the metadata store only and stayed 200 while no shard
/// answered.
#[tokio::test(flavor = "multi_thread")]
async fn ready_is_503_while_a_shard_cannot_take_a_connection() {
    let (agent, admin) = start_with_admin(1, &["--max-connections-per-shard", "2"]);
    assert_eq!(admin_until(admin, "/ready", 200).await.0, 200);
    let held = [
        raw::connect(&agent.addr(0)).await,
        raw::connect(&agent.addr(0)).await,
    ];
    let (code, body) = admin_until(admin, "/ready", 503).await;
    assert_eq!(code, 503, "{body}");
    assert!(
        body.contains("shard 0 does not accept connections"),
        "{body}"
    );
    assert!(body.contains("connection limit"), "{body}");
    drop(held);
    let (code, body) = admin_until(admin, "/ready", 200).await;
    assert_eq!(code, 200, "{body}");
}

/// Issue 13, item 4 (the client's side): a request refused because the
/// agent's request buffers are full carries `grpc-retry-pushback-ms`, and
/// the project's producer retries it after that pause instead of failing
/// the record. Here one raw stream holds the whole (small) shard budget
/// until its body times out; a `send` meanwhile still succeeds.
#[tokio::test(flavor = "multi_thread")]
async fn a_producer_retries_a_request_refused_for_full_buffers() {
    use streamhouse_client::{Admin, Producer, ProducerRecord};
    let agent = Agent::start(1, &raw::SMALL_BUFFERS);
    let admin = Admin::connect(&agent.addr(0)).await.unwrap();
    admin.create_topic("pushback", 1).await.unwrap();
    let producer = Producer::builder([agent.addr(0)])
        .retries(10)
        .build()
        .await
        .unwrap();
    // Warm up: metadata and connections are in place.
    producer
        .send(ProducerRecord::new("pushback", "first").partition(0))
        .await
        .unwrap();
    let addr = agent.addr(0);
    let mut h2c = raw::connect(&addr).await;
    let (resp, _send) = raw::hold_shard_buffers(&mut h2c, &addr).await;
    let started = std::time::Instant::now();
    let m = producer
        .send(ProducerRecord::new("pushback", "second").partition(0))
        .await
        .expect("the send is retried until the buffer has room");
    assert_eq!(m.offset, 1);
    assert!(
        started.elapsed() >= Duration::from_millis(500),
        "it had to wait"
    );
    let held = raw::read_reply(resp).await;
    assert_eq!(held.grpc_status.as_deref(), Some("4"), "{held:?}");
    producer.close().await.unwrap();
}
