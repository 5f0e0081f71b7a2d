//! Clients across a move: consumers follow a partition to its new leader,
//! retries find it at once, ack `object` answers through a hand-over, and
//! an agent back after a takeover drops its stale writes.

use super::*;

#[tokio::test]
async fn a_consumer_follows_a_partition_to_its_new_leader() {
    let mut c = Cluster::start(1);
    let admin = c.admin().await;
    admin.create_topic("follow", PARTITIONS).await.unwrap();
    c.settled("follow", 1).await;
    let p = producer(&c, Acks::Object).await;
    let first = run(&p, "follow", 12_000, || {}).await;
    let mut consumer = every_partition(&c, "follow").await;
    let mut got: BTreeMap<u32, Vec<u64>> = BTreeMap::new();
    while got.values().map(Vec::len).sum::<usize>() < 6_000 {
        poll_offsets(&mut consumer, Duration::from_millis(200), &mut got).await;
    }
    // Another agent joins: some partitions move while the consumer reads.
    c.add();
    let after = c.settled("follow", 2).await;
    assert!(after.iter().any(|l| l == "agent-1"));
    let second = run(&p, "follow", 12_000, || {}).await;
    p.close().await.unwrap();
    let want: usize = first.values().chain(second.values()).map(Vec::len).sum();
    let deadline = Instant::now() + Duration::from_secs(60);
    while got.values().map(Vec::len).sum::<usize>() < want {
        assert!(Instant::now() < deadline, "consumer stuck after the move");
        poll_offsets(&mut consumer, Duration::from_millis(200), &mut got).await;
    }
    assert_dense(&got);
}

#[tokio::test]
async fn a_consumer_polls_through_its_leaders_death_without_errors() {
    let mut c = Cluster::start(2);
    let admin = c.admin().await;
    admin.create_topic("orphan", PARTITIONS).await.unwrap();
    let leaders = c.settled("orphan", 2).await;
    let p = producer(&c, Acks::Object).await;
    let acked = run(&p, "orphan", 12_000, || {}).await;
    p.close().await.unwrap();
    let mut consumer = every_partition(&c, "orphan").await;
    // Read a little so every partition's route is cached, then kill the
    // leader of some of them: polls return what they can, never an error,
    // until the partitions are taken over and read to the end.
    let mut got: BTreeMap<u32, Vec<u64>> = BTreeMap::new();
    poll_offsets(&mut consumer, Duration::from_millis(200), &mut got).await;
    c.agents[1].kill9();
    assert!(leaders.iter().any(|l| l == "agent-1"));
    let want: usize = acked.values().map(Vec::len).sum();
    let deadline = Instant::now() + Duration::from_secs(60);
    while got.values().map(Vec::len).sum::<usize>() < want {
        assert!(Instant::now() < deadline, "consumer stuck after the kill");
        poll_offsets(&mut consumer, Duration::from_millis(100), &mut got).await;
    }
    assert_dense(&got);
}

/// A consumer assigned every partition of `topic`.
async fn every_partition(c: &Cluster, topic: &str) -> Consumer {
    let mut consumer = Consumer::connect(c.addresses()).await.unwrap();
    consumer
        .assign((0..PARTITIONS).map(|part| (topic.to_owned(), part)))
        .await
        .unwrap();
    consumer
}

/// One poll; the offsets read go to `got` by partition. A poll is never an
/// error, also while a leader dies or moves.
async fn poll_offsets(consumer: &mut Consumer, wait: Duration, got: &mut BTreeMap<u32, Vec<u64>>) {
    let recs = consumer
        .poll(wait)
        .await
        .expect("a poll during a failover is not an error");
    for r in recs {
        got.entry(r.partition).or_default().push(r.offset);
    }
}

/// Every partition read from offset 0, in order, none twice.
fn assert_dense(got: &BTreeMap<u32, Vec<u64>>) {
    for (part, offsets) in got {
        let want: Vec<u64> = (0..offsets.len() as u64).collect();
        assert_eq!(
            offsets, &want,
            "partition {part}: offsets in order, none twice"
        );
    }
}

#[tokio::test]
async fn an_agent_back_after_a_takeover_drops_its_stale_unshipped_writes() {
    // Segments stay open for a minute (ack `object` and hand-overs still
    // seal at once): with the default 500 ms, a loaded machine could seal
    // and ship part of the "stale" writes before the SIGKILL, and those are
    // then rightly committed and served.
    let mut c = Cluster::start_aged(2, 2000, 60_000);
    let admin = c.admin().await;
    admin.create_topic("back", PARTITIONS).await.unwrap();
    let leaders = c.settled("back", 2).await;
    let part = leaders.iter().position(|l| l == "agent-0").unwrap() as u32;
    let committed = producer(&c, Acks::Object).await;
    for i in 0..10 {
        committed
            .send(ProducerRecord::new("back", format!("first-{i}")).partition(part))
            .await
            .unwrap();
    }
    // Durable on agent-0 only, then agent-0 dies before shipping them.
    let p = producer(&c, Acks::Durable).await;
    // More than the new leader will write, so the stale tail outruns it.
    for i in 0..20 {
        p.send(ProducerRecord::new("back", format!("stale-{i}")).partition(part))
            .await
            .unwrap();
    }
    c.agents[0].kill9();
    // agent-1 takes the partition over and writes after the committed end.
    c.settled("back", 1).await;
    for i in 0..5 {
        committed
            .send(ProducerRecord::new("back", format!("second-{i}")).partition(part))
            .await
            .unwrap();
    }
    // agent-0 comes back on its data dir; the partition returns to it.
    c.agents[0].spawn();
    let again = c.settled("back", 2).await;
    assert_eq!(again[part as usize], "agent-0");
    for i in 0..10 {
        committed
            .send(ProducerRecord::new("back", format!("third-{i}")).partition(part))
            .await
            .unwrap();
    }
    committed.close().await.unwrap();
    p.close().await.unwrap();
    let mut consumer = Consumer::connect(c.addresses()).await.unwrap();
    consumer.assign([("back".to_owned(), part)]).await.unwrap();
    let mut got = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while got.len() < 25 {
        assert!(Instant::now() < deadline, "read {} of 25", got.len());
        got.extend(consumer.poll(Duration::from_millis(200)).await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    got.extend(consumer.poll(Duration::from_millis(200)).await.unwrap());
    let values: Vec<String> = got
        .iter()
        .map(|r| String::from_utf8(r.value.to_vec()).unwrap())
        .collect();
    let want: Vec<String> = [("first", 10), ("second", 5), ("third", 10)]
        .iter()
        .flat_map(|(s, n)| (0..*n).map(move |i| format!("{s}-{i}")))
        .collect();
    assert_eq!(
        values, want,
        "committed records once, in order; stale ones gone"
    );
    for (i, r) in got.iter().enumerate() {
        assert_eq!(r.offset, i as u64);
    }
}

#[tokio::test]
async fn a_retry_goes_to_the_new_leader_once_it_is_known_not_after_its_backoff() {
    // Backoff of 30 s: with the retry only after its backoff, the record
    // below would take at least 22.5 s (30 s - 25% jitter). Going to the
    // new leader once the metadata names it takes about the lease TTL.
    let mut c = Cluster::start_ttl(2, 1000);
    let admin = c.admin().await;
    admin.create_topic("reroute", 2).await.unwrap();
    let leaders = c.settled("reroute", 2).await;
    let p = Producer::builder(c.addresses())
        // `object`: the first record must outlive its agent's disk.
        .acks(Acks::Object)
        .retries(100)
        .backoff(streamhouse_client::backoff::BackoffConfig {
            base: Duration::from_secs(30),
            max: Duration::from_secs(30),
            jitter: 0.25,
        })
        .delivery_timeout(Duration::from_secs(120))
        .request_timeout(Duration::from_secs(2))
        .build()
        .await
        .unwrap();
    let moved = leaders.iter().position(|l| l == "agent-0").unwrap() as u32;
    let first = p
        .send(ProducerRecord::new("reroute", "before").partition(moved))
        .await
        .unwrap();
    c.agents[0].kill9();
    let t = Instant::now();
    let after = p
        .send(ProducerRecord::new("reroute", "after").partition(moved))
        .await
        .unwrap();
    let took = t.elapsed();
    assert!(
        took < Duration::from_secs(15),
        "the retry waited {took:?} instead of following the partition to its new leader"
    );
    assert_eq!(after.offset, first.offset + 1, "nothing lost or doubled");
    let now_led_by = c.settled("reroute", 1).await;
    assert_eq!(now_led_by[moved as usize], "agent-1");
    p.close().await.unwrap();
}

/// Issue 14 item 9: ack-`object` requests in flight while their partition is
/// handed to a joining agent. A batch that was committed is answered with
/// its offsets; a request answered with an error left nothing in the log
/// (so an application that retries it does not duplicate it).
#[tokio::test]
async fn ack_object_during_a_handoff_answers_every_stored_batch_with_its_offsets() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    let mut c = Cluster::start(1);
    let admin = c.admin().await;
    admin.create_topic("handoff", PARTITIONS).await.unwrap();
    c.settled("handoff", 1).await;
    let meta = c.agents[0].describe_topic("handoff").await;
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for part in 0..PARTITIONS {
        for sender in 0..2 {
            let mut client = c.agents[0].producer_for(&meta, part).await;
            let stop = stop.clone();
            tasks.push(tokio::spawn(async move {
                let mut answers = Vec::new();
                for i in 0.. {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    let values: Vec<String> = (0..5)
                        .map(|j| format!("p{part}-s{sender}-b{i}-r{j}"))
                        .collect();
                    let mut req = produce_req("handoff", part, &values);
                    req.ack = streamhouse_proto::AckLevel::AckObject as i32;
                    let answer = match client.produce(req).await {
                        Ok(r) => Ok(r.into_inner().base_offset),
                        Err(e) => {
                            // Refused (moving, moved): wait as a client would.
                            tokio::time::sleep(Duration::from_millis(20)).await;
                            Err((e.code(), e.message().to_owned()))
                        }
                    };
                    answers.push((values, answer));
                }
                (part, answers)
            }));
        }
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    c.add();
    c.settled("handoff", 2).await;
    tokio::time::sleep(Duration::from_millis(1000)).await;
    stop.store(true, Ordering::Relaxed);
    let mut answers: BTreeMap<u32, Vec<_>> = BTreeMap::new();
    for t in tasks {
        let (part, a) = t.await.unwrap();
        answers.entry(part).or_default().extend(a);
    }
    let leaders = c.settled("handoff", 2).await;
    let mut refused = 0;
    let mut moved = 0;
    for (part, list) in &answers {
        let leader = &c.agents[if leaders[*part as usize] == "agent-0" {
            0
        } else {
            1
        }];
        let mut f = streamhouse_proto::fetch_service_client::FetchServiceClient::new(
            leader.channel(0).await,
        );
        let stored: BTreeMap<Vec<u8>, u64> = fetch_all(&mut f, "handoff", *part)
            .await
            .into_iter()
            .map(|r| (r.value.to_vec(), r.offset))
            .collect();
        for (values, answer) in list {
            match answer {
                Ok(base) => {
                    for (i, v) in values.iter().enumerate() {
                        assert_eq!(
                            stored.get(v.as_bytes()),
                            Some(&(base + i as u64)),
                            "acknowledged {v} is not at its offset"
                        );
                    }
                }
                Err((code, msg)) => {
                    refused += 1;
                    moved += usize::from(leaders[*part as usize] != "agent-0");
                    for v in values {
                        assert!(
                            !stored.contains_key(v.as_bytes()),
                            "{v} was answered {code:?} ({msg}) but is stored"
                        );
                    }
                }
            }
        }
    }
    eprintln!("{refused} requests refused during the handoff ({moved} on moved partitions)");
}
