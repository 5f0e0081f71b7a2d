//! The metadata store in trouble and leases coming back: retriable
//! errors during an outage, the first ready 200, topic lookups, and a
//! crash after a lease came back.

use super::*;

/// During a metadata-store outage longer than the lease TTL the agent
/// cannot renew its leases: produce answers a status clients retry
/// (`UNAVAILABLE`), and a send issued meanwhile is delivered once the
/// store is back.
#[tokio::test]
async fn lease_trouble_during_a_metadata_outage_is_retriable() {
    let url = pg::fresh_database("renew").await;
    let agent = Agent::start(1, &["--metadata", &url, "--lease-ttl-ms", "1500"]);
    let meta = agent.create_topic(TOPIC, 1).await;
    let producer = streamhouse_client::Producer::builder([agent.addr(0)])
        .retries(10_000)
        .delivery_timeout(Duration::from_secs(60))
        .build()
        .await
        .unwrap();
    let first = producer
        .send(streamhouse_client::ProducerRecord::new(TOPIC, "first").partition(0))
        .await
        .unwrap();

    pg::execute(&url, "ALTER TABLE leases RENAME TO leases_away").await;
    let mut c = agent.producer_for(&meta, 0).await;
    let deadline = Instant::now() + Duration::from_secs(15);
    let refused = loop {
        match c.produce(produce_req(TOPIC, 0, &["probe".into()])).await {
            Ok(_) => {}
            Err(s) => break s,
        }
        assert!(Instant::now() < deadline, "the lease never ran out");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(
        refused.code(),
        tonic::Code::Unavailable,
        "a lease that cannot be renewed is a retriable condition: {}",
        refused.message()
    );
    let during =
        producer.send(streamhouse_client::ProducerRecord::new(TOPIC, "during").partition(0));
    tokio::time::sleep(Duration::from_secs(2)).await;
    pg::execute(&url, "ALTER TABLE leases_away RENAME TO leases").await;
    let m = tokio::time::timeout(Duration::from_secs(30), during)
        .await
        .expect("the send issued during the outage never finished")
        .expect("a send issued during the outage is delivered once the store is back");
    assert!(m.offset > first.offset);
    let mut f = agent.fetcher_for(&meta, 0).await;
    let got = fetch_all(&mut f, TOPIC, 0).await;
    assert_eq!(got.iter().filter(|r| &r.value[..] == b"during").count(), 1);
    assert_eq!(&got[m.offset as usize].value[..], b"during");
}

/// Issue 14 item 12: `/ready` answers 200 only once every shard port takes
/// connections; a client started on the first 200 connects at once. Polled
/// from the moment the process starts, five starts in a row.
#[tokio::test]
async fn the_first_ready_200_means_every_shard_port_accepts() {
    for round in 0..5 {
        let dir = tempfile::tempdir_in(target_tmp()).unwrap();
        let (port, admin) = (free_ports(2), free_ports(1));
        let mut child = std::process::Command::new(agent_bin())
            .args(["--shards", "2", "--listen"])
            .arg(format!("127.0.0.1:{port}"))
            .arg("--admin-listen")
            .arg(format!("127.0.0.1:{admin}"))
            .arg("--data-dir")
            .arg(dir.path())
            .env("RUST_LOG", "warn")
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            assert!(Instant::now() < deadline, "never ready");
            let answer = async {
                use tokio::io::{AsyncReadExt, AsyncWriteExt};
                let mut s = tokio::net::TcpStream::connect(("127.0.0.1", admin))
                    .await
                    .ok()?;
                s.write_all(b"GET /ready HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                    .await
                    .ok()?;
                let mut buf = String::new();
                s.read_to_string(&mut buf).await.ok()?;
                Some(buf.starts_with("HTTP/1.1 200"))
            };
            if answer.await == Some(true) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        for shard in 0..2u16 {
            std::net::TcpStream::connect(("127.0.0.1", port + shard)).unwrap_or_else(|e| {
                panic!("round {round}: /ready said 200 but shard {shard} refused: {e}")
            });
        }
        let _ = child.kill();
        let _ = child.wait();
    }
}

/// Issue 14 item 13: while the metadata store cannot answer, a topic this
/// agent has not seen yet is "cannot look topics up" (`UNAVAILABLE`,
/// retried by clients), not "unknown topic" (`NOT_FOUND`).
#[tokio::test]
async fn a_topic_lookup_during_a_metadata_outage_is_unavailable_not_unknown() {
    let url = pg::fresh_database("lookup").await;
    let agent = Agent::start(1, &["--metadata", &url]);
    agent.create_topic(TOPIC, 1).await;
    pg::execute(&url, "ALTER TABLE topics RENAME TO topics_away").await;
    let mut c = pb::producer_service_client::ProducerServiceClient::new(agent.channel(0).await);
    let e = c
        .produce(produce_req("not-seen-yet", 0, &["x".into()]))
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::Unavailable, "{}", e.message());
    let e = agent
        .admin()
        .await
        .describe_topic(pb::DescribeTopicRequest {
            name: "not-seen-yet".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::Unavailable, "{}", e.message());
    pg::execute(&url, "ALTER TABLE topics_away RENAME TO topics").await;
    let e = c
        .produce(produce_req("not-seen-yet", 0, &["x".into()]))
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::NotFound, "{}", e.message());
}

/// Issue 14 item 4: after a partition's lease went to another holder and
/// came back, the partition restarts at the committed end while its older,
/// never committed batches still sit in the WAL. A crash before they are
/// dropped must not make recovery refuse the WAL (the offsets jump back)
/// nor serve them: the restart serves exactly the batches of the new lease.
#[tokio::test]
async fn a_crash_after_a_lease_came_back_serves_only_the_new_leases_batches() {
    use streamhouse_agent::metastore::MetaStore;
    let meta_dir = tempfile::tempdir_in(target_tmp()).unwrap();
    let meta_url = format!("sqlite://{}", meta_dir.path().join("meta.db").display());
    let args = [
        "--metadata",
        &meta_url,
        "--lease-ttl-ms",
        "1500",
        "--segment-age-ms",
        "600000",
    ];
    let mut agent = Agent::start(1, &args);
    let meta = agent.create_topic(TOPIC, 1).await;
    let mut c = agent.producer_for(&meta, 0).await;
    let old: Vec<String> = (0..50).map(|i| format!("old-lease-{i}")).collect();
    c.produce(produce_req(TOPIC, 0, &old)).await.unwrap();

    // Another holder takes the lease (as if it had watched the renewals
    // stand still) and gives it back at once: the agent is fenced, then acquires it again at a new
    // epoch and continues at the committed end (0), not after its WAL.
    let m = MetaStore::open(&meta_url).await.unwrap();
    let key = m.topics().await.unwrap()[0].key();
    let g = take_over(&m, &key, 0, "intruder").await;
    m.release_lease(&key, 0, "intruder", g.epoch).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let lease = m.lease(&key, 0).await.unwrap().unwrap();
        if lease.holder == "agent-1" && lease.epoch > g.epoch {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the agent never took its lease back"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let new: Vec<String> = (0..5).map(|i| format!("new-lease-{i}")).collect();
    let deadline = Instant::now() + Duration::from_secs(15);
    let base = loop {
        match c.produce(produce_req(TOPIC, 0, &new)).await {
            Ok(r) => break r.into_inner().base_offset,
            Err(e) => assert!(Instant::now() < deadline, "{e:?}"),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(base, 0, "the new lease continues at the committed end");

    agent.kill9();
    agent.spawn();
    let mut f = agent.fetcher_for(&meta, 0).await;
    let got: Vec<Vec<u8>> = fetch_all(&mut f, TOPIC, 0)
        .await
        .into_iter()
        .map(|r| r.value.to_vec())
        .collect();
    let want: Vec<Vec<u8>> = new.iter().map(|v| v.as_bytes().to_vec()).collect();
    assert_eq!(got, want, "after the crash, only the new lease's batches");
}
