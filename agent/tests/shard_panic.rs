//! A shard whose executor panics comes back by itself: the agent starts it
//! again, recovery replays its WAL, it gets its partitions back, and every
//! acknowledged record stays readable at its offset; the other shards serve
//! throughout. The panic is injected with a fail point (FAILPOINTS, in
//! test builds of the agent), so this file holds one test: the variable is
//! set for the whole test process.

mod common;

use std::time::{Duration, Instant};

use common::*;

const TOPIC: &str = "panicky";

#[tokio::test]
async fn a_panicked_shard_is_restarted_and_keeps_every_acknowledged_record() {
    // The 11th produce (over the whole agent) panics its shard, once.
    let admin = free_ports(1);
    let admin_arg = format!("127.0.0.1:{admin}");
    let mut agent = Agent::start_with_failpoints(
        2,
        &["--admin-listen", &admin_arg, "--shutdown-grace-ms", "5000"],
        "shard-produce=10*off->1*panic",
    );
    let meta = agent.create_topic(TOPIC, 4).await;
    let shard0 = meta.partitions[0].shard;
    let other = (1..4u32)
        .find(|p| meta.partitions[*p as usize].shard != shard0)
        .expect("a partition on the other shard");

    let mut c = agent.producer_for(&meta, 0).await;
    let mut acked = Vec::new();
    let values = |tag: &str| -> Vec<String> { (0..100).map(|i| format!("{tag}-{i}")).collect() };
    for b in 0..10 {
        let v = values(&format!("before{b}"));
        let r = c
            .produce(produce_req(TOPIC, 0, &v))
            .await
            .expect("produce before the panic")
            .into_inner();
        assert_eq!(r.base_offset, acked.len() as u64);
        acked.extend(v);
    }
    let refused = c
        .produce(produce_req(TOPIC, 0, &values("panics")))
        .await
        .expect_err("the fail point made the shard panic");
    eprintln!(
        "the panicking produce: {:?} {}",
        refused.code(),
        refused.message()
    );

    // The other shard serves meanwhile.
    let mut o = agent.producer_for(&meta, other).await;
    o.produce(produce_req(TOPIC, other, &values("other")))
        .await
        .expect("a produce to the other shard right after the panic");

    // The shard comes back by itself: writes continue at the next offset.
    let deadline = Instant::now() + Duration::from_secs(30);
    let url = agent.url(shard0 as usize);
    let next = loop {
        let v = values("after");
        let sent = match tonic::transport::Channel::from_shared(url.clone())
            .unwrap()
            .connect()
            .await
        {
            Ok(ch) => {
                let mut c =
                    streamhouse_proto::producer_service_client::ProducerServiceClient::new(ch);
                c.produce(produce_req(TOPIC, 0, &v)).await
            }
            Err(e) => Err(tonic::Status::unavailable(format!("connect: {e}"))),
        };
        match sent {
            Ok(r) => {
                let base = r.into_inner().base_offset;
                acked.extend(v);
                break base;
            }
            Err(s) => assert!(
                Instant::now() < deadline,
                "the shard did not come back: {:?} {}",
                s.code(),
                s.message()
            ),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(
        next, 1000,
        "offsets continue after the acknowledged batches"
    );

    let mut f = agent.fetcher_for(&meta, 0).await;
    let got = fetch_all(&mut f, TOPIC, 0).await;
    assert_eq!(got.len(), acked.len());
    for (r, (i, v)) in got.iter().zip(acked.iter().enumerate()) {
        assert_eq!(r.offset, i as u64);
        assert_eq!(&r.value[..], v.as_bytes(), "0/{i} differs");
    }

    let (_, metrics) = get(admin, "/metrics").await;
    let restarts = sample(
        &metrics,
        &format!("streamhouse_shard_restarts_total{{shard=\"{shard0}\"}}"),
    );
    assert_eq!(restarts, 1.0);
    assert_eq!(get(admin, "/ready").await.0, 200, "ready again");

    // A drained agent exits cleanly after the restart, having shipped
    // everything (so it released its leases).
    drop((c, o, f));
    agent.signal(libc::SIGTERM);
    assert_eq!(agent.wait_exit(Duration::from_secs(20)), Some(0));
}
