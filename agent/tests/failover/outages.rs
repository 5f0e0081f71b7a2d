//! Metadata store outages and hangs: no agent takes a live agent's
//! partitions, durable writes survive a takeover after one, and leases
//! are renewed while an acquisition hangs.

use super::*;

/// Issue 14 item 11: after an outage of the metadata store longer than the
/// lease TTL and the agent timeout, every heartbeat is stale because no
/// agent could write one. An agent back first must not take the partitions
/// of an agent that is alive but a moment slower.
#[tokio::test]
async fn after_a_metadata_outage_no_agent_takes_a_live_agents_partitions() {
    let url = pg::fresh_database("stale").await;
    let meta = tempfile::tempdir_in(target_tmp()).unwrap();
    let c = Cluster::start_with(2, url.clone(), meta);
    let admin = c.admin().await;
    admin.create_topic("stale", PARTITIONS).await.unwrap();
    let before = c.settled("stale", 2).await;
    let epochs = |url: String| async move {
        let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(conn);
        client
            .query("SELECT part, holder, epoch FROM leases ORDER BY part", &[])
            .await
            .unwrap()
            .iter()
            .map(|r| {
                (
                    r.get::<_, i64>(0),
                    r.get::<_, String>(1),
                    r.get::<_, i64>(2),
                )
            })
            .collect::<Vec<_>>()
    };
    // Both agents leading some partitions does not mean the first
    // rebalance is over: a hand-over still under way would finish during
    // the outage and look like a takeover. Wait until the lease rows stay
    // the same for 2 s.
    let mut held = epochs(url.clone()).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        tokio::time::sleep(Duration::from_secs(2)).await;
        let now = epochs(url.clone()).await;
        if now == held {
            break;
        }
        assert!(Instant::now() < deadline, "leases never stopped moving");
        held = now;
    }
    pg::execute(
        &url,
        "ALTER TABLE agents RENAME TO agents_away; ALTER TABLE leases RENAME TO leases_away",
    )
    .await;
    tokio::time::sleep(Duration::from_millis(3000)).await;
    // agent-1 comes back 600 ms after agent-0 (well within the 1 s agent
    // timeout): it is alive throughout.
    c.agents[1].signal(libc::SIGSTOP);
    pg::execute(
        &url,
        "ALTER TABLE agents_away RENAME TO agents; ALTER TABLE leases_away RENAME TO leases",
    )
    .await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    c.agents[1].signal(libc::SIGCONT);
    tokio::time::sleep(Duration::from_millis(3000)).await;
    let after = epochs(url.clone()).await;
    assert_eq!(
        held, after,
        "leases changed hands after the outage although both agents were alive \
         (before: {before:?})"
    );
}

/// Lease renewal keeps its deadline while other metadata work is slow.
/// agent-0 dies; agent-1 starts taking its partitions, but their lease rows
/// are locked by another transaction for longer than the lease TTL, so each
/// acquisition hangs. agent-1's own partitions must keep serving throughout
/// (their leases renewed on time), and once the lock is gone agent-1 leads
/// every partition.
#[tokio::test]
async fn leases_are_renewed_while_an_acquisition_hangs() {
    let url = pg::fresh_database("slowacq").await;
    let meta = tempfile::tempdir_in(target_tmp()).unwrap();
    let mut c = Cluster::start_with(2, url.clone(), meta);
    let admin = c.admin().await;
    admin.create_topic("slow", PARTITIONS).await.unwrap();
    let leaders = c.settled("slow", 2).await;
    let theirs: Vec<i64> = (0..PARTITIONS as i64)
        .filter(|p| leaders[*p as usize] == "agent-0")
        .collect();
    let mine = (0..PARTITIONS)
        .find(|p| leaders[*p as usize] == "agent-1")
        .unwrap();

    // Asked first: with the acquisitions hanging, agent-1's other metadata
    // calls (Describe) wait behind them on its main connection.
    let meta = c.agents[1].describe_topic("slow").await;
    let mut client = c.agents[1].producer_for(&meta, mine).await;

    // Another session locks agent-0's lease rows and keeps them locked.
    let (locker, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    locker.batch_execute("BEGIN").await.unwrap();
    let list: Vec<String> = theirs.iter().map(i64::to_string).collect();
    locker
        .batch_execute(&format!(
            "SELECT * FROM leases WHERE part IN ({}) FOR UPDATE",
            list.join(",")
        ))
        .await
        .unwrap();
    c.agents[0].kill9();

    // Past agent-0's lease expiry agent-1 tries to take its partitions
    // and hangs on the locks; its own partition must keep taking writes.
    let until = Instant::now() + Duration::from_secs(7);
    let mut n = 0;
    while Instant::now() < until {
        tokio::time::timeout(
            Duration::from_secs(5),
            client.produce(produce_req("slow", mine, &[format!("w{n}")])),
        )
        .await
        .unwrap_or_else(|_| panic!("write {n} hung"))
        .unwrap_or_else(|e| {
            panic!("write {n} to agent-1's own partition failed while an acquisition hung: {e:?}")
        });
        n += 1;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    locker.batch_execute("ROLLBACK").await.unwrap();
    // Then it takes them: nothing it did meanwhile (uploads, commits,
    // renewals) may have wedged its metadata calls.
    let t = Instant::now();
    c.settled("slow", 1).await;
    assert!(t.elapsed() < Duration::from_secs(20), "{:?}", t.elapsed());
}

/// Found by the chaos run (seed 1): agent-1 is stopped past its TTL and
/// agent-0 takes its partitions over and acknowledges `durable` writes to
/// them that it has not shipped yet. The metadata store is then away for
/// longer than the TTL while agent-1 comes back. Once the store returns,
/// agent-0's lease on agent-1's partition has expired, but agent-0 is alive
/// and still holds those writes: agent-1, the partition's owner, must wait
/// for agent-0 to renew and hand the partition back, not take the expired
/// lease at a new epoch and continue at the committed end.
#[tokio::test]
async fn after_a_metadata_outage_a_taken_over_partition_keeps_its_durable_writes() {
    let url = pg::fresh_database("takenback").await;
    let meta = tempfile::tempdir_in(target_tmp()).unwrap();
    // Segments stay open for a minute, so the writes below are only in
    // agent-0's WAL when the store goes away (a hand-over still seals).
    let c = Cluster::start_full(2, url.clone(), meta, 2000, 60_000);
    let admin = c.admin().await;
    admin.create_topic("back", PARTITIONS).await.unwrap();
    let leaders = c.settled("back", 2).await;
    let part = leaders.iter().position(|l| l == "agent-1").unwrap() as u32;
    c.agents[1].signal(libc::SIGSTOP);
    c.settled("back", 1).await;
    // Only agent-0 answers now.
    let p = Producer::builder(vec![c.agents[0].addr(0)])
        .acks(Acks::Durable)
        .build()
        .await
        .unwrap();
    let mut acked = Vec::new();
    for i in 0..20 {
        let m = p
            .send(ProducerRecord::new("back", format!("taken-{i}")).partition(part))
            .await
            .unwrap();
        acked.push((m.offset, format!("taken-{i}")));
    }
    pg::execute(
        &url,
        "ALTER TABLE agents RENAME TO agents_away; ALTER TABLE leases RENAME TO leases_away",
    )
    .await;
    c.agents[1].signal(libc::SIGCONT);
    tokio::time::sleep(Duration::from_millis(3000)).await;
    pg::execute(
        &url,
        "ALTER TABLE agents_away RENAME TO agents; ALTER TABLE leases_away RENAME TO leases",
    )
    .await;
    let again = c.settled("back", 2).await;
    assert_eq!(again[part as usize], "agent-1", "the partition went home");
    p.close().await.unwrap();
    let mut consumer = Consumer::connect(c.addresses()).await.unwrap();
    consumer.assign([("back".to_owned(), part)]).await.unwrap();
    let mut got = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(15);
    while got.len() < acked.len() && Instant::now() < deadline {
        got.extend(consumer.poll(Duration::from_millis(200)).await.unwrap());
    }
    let read: Vec<(u64, String)> = got
        .iter()
        .map(|r| (r.offset, String::from_utf8_lossy(&r.value).into_owned()))
        .collect();
    assert_eq!(
        read, acked,
        "every write acknowledged at `durable` by agent-0, at its offset"
    );
}
