//! The agent as a gRPC server: real process, real sockets, tonic clients.

mod common;

use std::time::{Duration, Instant};

use common::*;
use streamhouse_proto as pb;
use tonic::Code;

#[tokio::test]
async fn offsets_are_contiguous_per_partition_across_shards() {
    let agent = Agent::start(2, &[]);
    let meta = agent.create_topic("orders", 6).await;
    assert_eq!(meta.partitions.len(), 6);
    let shards: std::collections::HashSet<u32> = meta.partitions.iter().map(|p| p.shard).collect();
    assert_eq!(shards.len(), 2, "partitions spread over both shards");
    for p in 0..6u32 {
        let mut c = agent.producer_for(&meta, p).await;
        let mut expect = 0;
        for round in 0..5 {
            let n = 1 + round * 3;
            let values: Vec<String> = (0..n).map(|i| format!("p{p}-r{round}-{i}")).collect();
            let r = c
                .produce(produce_req("orders", p, &values))
                .await
                .unwrap()
                .into_inner();
            assert_eq!(r.base_offset, expect, "partition {p} round {round}");
            assert_eq!(r.record_count, n);
            expect += u64::from(n);
        }
        let mut f = agent.fetcher_for(&meta, p).await;
        let got = fetch_all(&mut f, "orders", p).await;
        assert_eq!(got.len() as u64, expect);
        for (i, r) in got.iter().enumerate() {
            assert_eq!(r.offset, i as u64);
            assert!(String::from_utf8_lossy(&r.value).starts_with(&format!("p{p}-")));
        }
    }
    let d = agent
        .admin()
        .await
        .describe_topic(pb::DescribeTopicRequest {
            name: "orders".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(d
        .partitions
        .iter()
        .all(|p| p.high_watermark == 1 + 4 + 7 + 10 + 13));
}

#[tokio::test]
async fn wrong_shard_gets_not_found_naming_the_right_address() {
    let agent = Agent::start(2, &[]);
    let meta = agent.create_topic("t", 2).await;
    let p = &meta.partitions[0];
    let wrong = 1 - p.shard as usize;
    let mut c = pb::producer_service_client::ProducerServiceClient::new(agent.channel(wrong).await);
    let err = c
        .produce(produce_req("t", 0, &["x".into()]))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    assert!(
        err.message().contains(&p.leader_address),
        "{}",
        err.message()
    );
    assert_eq!(p.leader_address, agent.addr(p.shard as usize));
}

#[tokio::test]
async fn validation_errors_have_the_right_status() {
    let agent = Agent::start(
        1,
        &["--max-record-bytes", "1000", "--max-request-bytes", "65536"],
    );
    let meta = agent.create_topic("v", 2).await;
    let mut c = agent.producer_for(&meta, 0).await;
    let cases: Vec<(pb::ProduceRequest, Code, &str)> = vec![
        (
            produce_req("nope", 0, &["x".into()]),
            Code::NotFound,
            "unknown topic",
        ),
        (
            produce_req("v", 7, &["x".into()]),
            Code::NotFound,
            "unknown partition",
        ),
        (
            produce_req("", 0, &["x".into()]),
            Code::InvalidArgument,
            "topic name is empty",
        ),
        (
            produce_req("v", 0, &[]),
            Code::InvalidArgument,
            "empty batch",
        ),
        (
            produce_req("v", 0, &["y".repeat(1001)]),
            Code::ResourceExhausted,
            "limit",
        ),
        (
            produce_req("v", 0, &vec!["z".repeat(900); 100]),
            Code::ResourceExhausted,
            "exceeds the limit",
        ),
        (
            pb::ProduceRequest {
                batch: vec![1, 2, 3].into(),
                ..produce_req("v", 0, &[])
            },
            Code::InvalidArgument,
            "invalid batch",
        ),
        (
            pb::ProduceRequest {
                ack: 7,
                ..produce_req("v", 0, &["x".into()])
            },
            Code::InvalidArgument,
            "ack level",
        ),
    ];
    for (req, code, text) in cases {
        let e = c.produce(req).await.unwrap_err();
        assert_eq!(e.code(), code, "{e:?}");
        assert!(
            e.message().contains(text),
            "{:?} lacks {text:?}",
            e.message()
        );
    }
    let mut admin = agent.admin().await;
    let e = admin
        .create_topic(pb::CreateTopicRequest {
            name: "v".into(),
            partitions: 1,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::AlreadyExists);
    let e = admin
        .create_topic(pb::CreateTopicRequest {
            name: "bad name".into(),
            partitions: 1,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    let e = admin
        .create_topic(pb::CreateTopicRequest {
            name: "zero".into(),
            partitions: 0,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    // The agent still works after every error.
    let r = c
        .produce(produce_req("v", 0, &["ok".into()]))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.base_offset, 0);
}

/// The original (seed) schema: only fields 1-3 of the request, 1-2 of the reply.
#[derive(Clone, PartialEq, prost::Message)]
struct SeedProduceRequest {
    #[prost(string, tag = "1")]
    topic: String,
    #[prost(uint32, tag = "2")]
    partition: u32,
    #[prost(message, repeated, tag = "3")]
    records: Vec<SeedRecord>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct SeedRecord {
    #[prost(bytes = "vec", optional, tag = "1")]
    key: Option<Vec<u8>>,
    #[prost(bytes = "vec", tag = "2")]
    value: Vec<u8>,
    #[prost(uint64, tag = "3")]
    timestamp: u64,
}

#[derive(Clone, PartialEq, prost::Message)]
struct SeedProduceResponse {
    #[prost(uint64, tag = "1")]
    base_offset: u64,
    #[prost(uint32, tag = "2")]
    record_count: u32,
}

#[tokio::test]
async fn seed_era_client_still_works() {
    let agent = Agent::start(1, &[]);
    agent.create_topic("seed", 1).await;
    let mut grpc = tonic::client::Grpc::new(agent.channel(0).await);
    for round in 0..2u64 {
        grpc.ready().await.unwrap();
        let req = SeedProduceRequest {
            topic: "seed".into(),
            partition: 0,
            records: (0..3)
                .map(|i| SeedRecord {
                    key: Some(format!("k{i}").into_bytes()),
                    value: format!("v{i}").into_bytes(),
                    timestamp: 1_700_000_000_000,
                })
                .collect(),
        };
        let resp: tonic::Response<SeedProduceResponse> = grpc
            .unary(
                tonic::Request::new(req),
                http::uri::PathAndQuery::from_static("/streamhouse.ProducerService/Produce"),
                tonic_prost::ProstCodec::default(),
            )
            .await
            .unwrap();
        assert_eq!(resp.get_ref().base_offset, round * 3);
        assert_eq!(resp.get_ref().record_count, 3);
    }
    let meta = agent.create_topic("other", 1).await;
    let _ = meta;
    let mut f = pb::fetch_service_client::FetchServiceClient::new(agent.channel(0).await);
    let got = fetch_all(&mut f, "seed", 0).await;
    assert_eq!(got.len(), 6);
    assert_eq!(got[4].key.as_deref(), Some(&b"k1"[..]));
    assert_eq!(got[4].timestamp, 1_700_000_000_000);
}

#[tokio::test]
async fn unknown_methods_are_unimplemented_and_deadlines_are_honoured() {
    let agent = Agent::start(1, &[]);
    let meta = agent.create_topic("w", 1).await;
    let mut grpc = tonic::client::Grpc::new(agent.channel(0).await);
    grpc.ready().await.unwrap();
    let r: Result<tonic::Response<SeedProduceResponse>, _> = grpc
        .unary(
            tonic::Request::new(SeedProduceRequest::default()),
            http::uri::PathAndQuery::from_static("/streamhouse.Nope/Nothing"),
            tonic_prost::ProstCodec::default(),
        )
        .await;
    assert_eq!(r.unwrap_err().code(), Code::Unimplemented);

    // A raw HTTP/2 client: the server honours grpc-timeout itself, and
    // refuses a non-gRPC content type with HTTP 415.
    let tcp = tokio::net::TcpStream::connect(agent.addr(0)).await.unwrap();
    let (h2c, conn) = h2::client::handshake(tcp).await.unwrap();
    tokio::spawn(conn);
    let mut h2c = h2c.ready().await.unwrap();
    let fetch = pb::FetchRequest {
        topic: "w".into(),
        partition: 0,
        offset: 0,
        max_bytes: 0,
        max_wait_ms: 5_000,
        ..Default::default()
    };
    let mut body = vec![0u8];
    body.extend_from_slice(&(prost::Message::encoded_len(&fetch) as u32).to_be_bytes());
    body.extend_from_slice(&prost::Message::encode_to_vec(&fetch));
    let req = http::Request::post(format!(
        "http://{}/streamhouse.FetchService/Fetch",
        agent.addr(0)
    ))
    .header("content-type", "application/grpc")
    .header("te", "trailers")
    .header("grpc-timeout", "200m")
    .body(())
    .unwrap();
    let started = std::time::Instant::now();
    let (resp, mut send) = h2c.send_request(req, false).unwrap();
    send.send_data(body.into(), true).unwrap();
    let resp = resp.await.unwrap();
    assert!(started.elapsed() < Duration::from_secs(3));
    assert_eq!(resp.headers().get("grpc-status").unwrap(), "4");
    let req = http::Request::post(format!(
        "http://{}/streamhouse.FetchService/Fetch",
        agent.addr(0)
    ))
    .header("content-type", "text/plain")
    .body(())
    .unwrap();
    let (resp, _) = h2c.send_request(req, true).unwrap();
    assert_eq!(
        resp.await.unwrap().status(),
        http::StatusCode::UNSUPPORTED_MEDIA_TYPE
    );
    let f = agent.fetcher_for(&meta, 0).await;

    // A waiting fetch is woken by a produce.
    let mut f2 = f.clone();
    let waiter = tokio::spawn(async move {
        f2.fetch(pb::FetchRequest {
            topic: "w".into(),
            partition: 0,
            offset: 0,
            max_bytes: 0,
            max_wait_ms: 10_000,
            ..Default::default()
        })
        .await
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut c = agent.producer_for(&meta, 0).await;
    c.produce(produce_req("w", 0, &["wake".into()]))
        .await
        .unwrap();
    let got = tokio::time::timeout(Duration::from_secs(5), waiter)
        .await
        .expect("fetch woke")
        .unwrap()
        .unwrap()
        .into_inner();
    assert_eq!(&got.records[0].value[..], b"wake");
}

#[tokio::test]
async fn idempotent_retries_get_original_offsets_and_gaps_are_refused() {
    let agent = Agent::start(1, &[]);
    let meta = agent.create_topic("idem", 1).await;
    let mut admin = agent.admin().await;
    let pid = admin
        .init_producer_id(pb::InitProducerIdRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert!(pid.producer_id > 0);
    let mut c = agent.producer_for(&meta, 0).await;
    let req = |seq: i32, n: usize| pb::ProduceRequest {
        producer_id: pid.producer_id,
        producer_epoch: pid.producer_epoch,
        base_sequence: seq,
        ..produce_req(
            "idem",
            0,
            &(0..n).map(|i| format!("s{seq}-{i}")).collect::<Vec<_>>(),
        )
    };
    let a = c.produce(req(0, 4)).await.unwrap().into_inner();
    let b = c.produce(req(4, 4)).await.unwrap().into_inner();
    let again = c.produce(req(0, 4)).await.unwrap().into_inner();
    assert_eq!((a.base_offset, b.base_offset), (0, 4));
    assert!(again.duplicate);
    assert_eq!(again.base_offset, 0);
    let gap = c.produce(req(100, 1)).await.unwrap_err();
    assert_eq!(gap.code(), Code::Aborted);
    assert!(gap.message().contains("out-of-order"), "{}", gap.message());
    let mut f = agent.fetcher_for(&meta, 0).await;
    assert_eq!(fetch_all(&mut f, "idem", 0).await.len(), 8);
}

/// Issue 14 item 13: `InitProducerId` always answered epoch 0, so producer
/// epoch fencing could never trigger. Re-initialising an id now bumps its
/// epoch; batches of the older instance are refused (`FAILED_PRECONDITION`)
/// and so is a re-initialisation by it.
#[tokio::test]
async fn reinitialising_a_producer_id_bumps_its_epoch_and_fences_the_old_instance() {
    let agent = Agent::start(1, &[]);
    let meta = agent.create_topic("epochs", 1).await;
    let mut admin = agent.admin().await;
    let first = admin
        .init_producer_id(pb::InitProducerIdRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(first.producer_epoch, 0);
    let mut c = agent.producer_for(&meta, 0).await;
    let req = |epoch: i32, seq: i32, tag: &str| pb::ProduceRequest {
        producer_id: first.producer_id,
        producer_epoch: epoch,
        base_sequence: seq,
        ..produce_req("epochs", 0, &[format!("{tag}-{seq}")])
    };
    c.produce(req(0, 0, "old")).await.unwrap();
    let second = admin
        .init_producer_id(pb::InitProducerIdRequest {
            producer_id: first.producer_id,
            producer_epoch: 0,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (second.producer_id, second.producer_epoch),
        (first.producer_id, 1),
        "the same id at the next epoch"
    );
    c.produce(req(1, 0, "new")).await.unwrap();
    let zombie = c.produce(req(0, 1, "old")).await.unwrap_err();
    assert_eq!(
        zombie.code(),
        Code::FailedPrecondition,
        "{}",
        zombie.message()
    );
    assert!(zombie.message().contains("fenced"), "{}", zombie.message());
    let again = admin
        .init_producer_id(pb::InitProducerIdRequest {
            producer_id: first.producer_id,
            producer_epoch: 0,
        })
        .await
        .unwrap_err();
    assert_eq!(
        again.code(),
        Code::FailedPrecondition,
        "{}",
        again.message()
    );
    let unknown = admin
        .init_producer_id(pb::InitProducerIdRequest {
            producer_id: first.producer_id + 1000,
            producer_epoch: 0,
        })
        .await
        .unwrap_err();
    assert_eq!(
        unknown.code(),
        Code::InvalidArgument,
        "{}",
        unknown.message()
    );
}

#[tokio::test]
async fn sigterm_drains_in_flight_requests_and_exits_zero() {
    let mut agent = Agent::start(2, &[]);
    let meta = agent.create_topic("drain", 4).await;
    let mut tasks = Vec::new();
    for p in 0..4u32 {
        let mut c = agent.producer_for(&meta, p).await;
        tasks.push(tokio::spawn(async move {
            let mut acked = Vec::new();
            let mut refused = 0;
            for i in 0..100_000u32 {
                match c
                    .produce(produce_req("drain", p, &[format!("{p}-{i}")]))
                    .await
                {
                    Ok(r) => acked.push(r.into_inner().base_offset),
                    Err(e) => {
                        assert!(
                            matches!(
                                e.code(),
                                Code::Unavailable | Code::Unknown | Code::Cancelled
                            ),
                            "unexpected {e:?}"
                        );
                        refused += 1;
                        if refused > 3 {
                            break;
                        }
                    }
                }
            }
            (p, acked)
        }));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    agent.signal(libc::SIGTERM);
    let code = agent.wait_exit(Duration::from_secs(20));
    assert_eq!(code, Some(0), "agent exit code");
    let mut acked = Vec::new();
    for t in tasks {
        acked.push(t.await.unwrap());
    }
    agent.spawn();
    for (p, offsets) in acked {
        assert!(!offsets.is_empty());
        let mut f = agent.fetcher_for(&meta, p).await;
        let got = fetch_all(&mut f, "drain", p).await;
        for o in &offsets {
            let r = &got[*o as usize];
            assert_eq!(r.offset, *o);
        }
        assert!(got.len() >= offsets.len());
    }
}

#[test]
fn a_second_agent_on_the_same_data_dir_is_refused() {
    let agent = Agent::start(1, &[]);
    let out = std::process::Command::new(agent_bin())
        .arg("--listen")
        .arg(format!("127.0.0.1:{}", free_ports(1)))
        .arg("--shards")
        .arg("1")
        .arg("--data-dir")
        .arg(&agent.data_dir)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("in use by another agent"), "{err}");
}

#[test]
fn a_second_agent_on_a_port_in_use_is_refused() {
    let agent = Agent::start(1, &[]);
    let other = tempfile::tempdir_in(target_tmp()).unwrap();
    let mut second = std::process::Command::new(agent_bin())
        .args(["--listen", &agent.addr(0), "--shards", "1", "--data-dir"])
        .arg(other.path())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(st) = second.try_wait().unwrap() {
            break st;
        }
        if Instant::now() > deadline {
            let _ = second.kill();
            let _ = second.wait();
            panic!(
                "a second agent on {} started and shares the port",
                agent.addr(0)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut err = String::new();
    std::io::Read::read_to_string(&mut second.stderr.take().unwrap(), &mut err).unwrap();
    assert_eq!(status.code(), Some(2), "{err}");
    assert!(err.contains("cannot listen on"), "{err}");
}

#[test]
fn an_agent_binds_a_port_whose_old_connections_are_in_time_wait() {
    use std::io::Read;
    // A plain server on the port closes its side of a connection first,
    // which leaves the connection in TIME_WAIT on that port for a minute.
    let port = free_ports(1);
    let server = std::net::TcpListener::bind(("127.0.0.1", port)).unwrap();
    let mut client = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    let (accepted, _) = server.accept().unwrap();
    drop(accepted);
    let mut rest = Vec::new();
    client.read_to_end(&mut rest).unwrap();
    drop(client);
    drop(server);
    let dir = tempfile::tempdir_in(target_tmp()).unwrap();
    let agent = Agent::start_at(port, dir.path(), 1, &[]);
    assert!(std::net::TcpStream::connect(agent.addr(0)).is_ok());
}

#[test]
fn invalid_configuration_names_the_field() {
    let out = std::process::Command::new(agent_bin())
        .args(["--shards", "0"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--shards"));
}
