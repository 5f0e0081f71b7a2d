//! Agents killed, stopped, stalled, restarted and joining: every
//! acknowledged record is read back once, partitions move and come back.

use super::*;

#[tokio::test]
async fn sigkill_with_ack_object_loses_and_duplicates_nothing() {
    let mut c = Cluster::start(3);
    let admin = c.admin().await;
    admin.create_topic("fo", PARTITIONS).await.unwrap();
    let leaders = c.settled("fo", 3).await;
    let p = producer(&c, Acks::Object).await;
    let victim = 1;
    let killed_at = std::sync::Arc::new(parking_lot::Mutex::new(None));
    let k = killed_at.clone();
    let pid = c.agents[victim].pid();
    let acked = run(&p, "fo", 1_000_000, move || {
        unsafe { libc::kill(pid, libc::SIGKILL) };
        *k.lock() = Some(Instant::now());
    })
    .await;
    p.close().await.unwrap();
    c.agents[victim].kill9();
    let moved = leaders
        .iter()
        .filter(|l| **l == format!("agent-{victim}"))
        .count();
    assert!(moved > 0, "the victim led some partitions");
    let total: usize = acked.values().map(Vec::len).sum();
    assert_eq!(total, 1_000_000);
    verify(&c, "fo", &acked).await;
    let after = c.settled("fo", 2).await;
    assert!(!after.contains(&format!("agent-{victim}")));
}

#[tokio::test]
async fn sigkill_with_postgres_metadata_loses_and_duplicates_nothing() {
    let url = pg::fresh_database("failover").await;
    let mut c = Cluster::start_with(3, url, tempfile::tempdir_in(target_tmp()).unwrap());
    let admin = c.admin().await;
    admin.create_topic("fpg", PARTITIONS).await.unwrap();
    c.settled("fpg", 3).await;
    let p = producer(&c, Acks::Object).await;
    let pid = c.agents[0].pid();
    let acked = run(&p, "fpg", 200_000, move || unsafe {
        libc::kill(pid, libc::SIGKILL);
    })
    .await;
    p.close().await.unwrap();
    c.agents[0].kill9();
    assert_eq!(acked.values().map(Vec::len).sum::<usize>(), 200_000);
    verify(&c, "fpg", &acked).await;
}

#[tokio::test]
async fn sigkill_and_restart_with_ack_durable_keeps_every_record() {
    // Leases long enough that the restart surely comes before they expire,
    // however loaded the machine: the premise of this test.
    let mut c = Cluster::start_ttl(3, 10_000);
    let admin = c.admin().await;
    admin.create_topic("fd", PARTITIONS).await.unwrap();
    c.settled("fd", 3).await;
    let p = producer(&c, Acks::Durable).await;
    let victim = 2;
    let pid = c.agents[victim].pid();
    let acked = {
        let restart = std::sync::Arc::new(parking_lot::Mutex::new(false));
        let r = restart.clone();
        let acked_fut = run(&p, "fd", 300_000, move || {
            unsafe { libc::kill(pid, libc::SIGKILL) };
            *r.lock() = true;
        });
        // Restart the victim on its data dir while its leases still hold.
        let restarter = async {
            while !*restart.lock() {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        };
        let (acked, ()) = tokio::join!(acked_fut, async {
            restarter.await;
            let a = &mut c.agents[victim];
            let _ = a.wait_exit(Duration::from_secs(5));
            a.child = None;
            a.spawn();
        });
        acked
    };
    p.close().await.unwrap();
    let total: usize = acked.values().map(Vec::len).sum();
    assert_eq!(total, 300_000);
    verify(&c, "fd", &acked).await;
}

#[tokio::test]
async fn a_restarted_agent_ships_partitions_that_moved_while_it_was_down() {
    // Nothing is shipped before the kill (segments stay open a minute), and
    // leases outlive the restart.
    let mut c = Cluster::start_aged(2, 10_000, 60_000);
    let admin = c.admin().await;
    admin.create_topic("moved", PARTITIONS).await.unwrap();
    let before = c.settled("moved", 2).await;
    let p = producer(&c, Acks::Durable).await;
    let acked = run(&p, "moved", 12_000, || {}).await;
    // agent-0 dies with all its acknowledged records only on its disk; a new
    // agent joins while it is down, so some of its partitions now belong to
    // the newcomer, then agent-0 comes back on its data dir.
    c.agents[0].kill9();
    c.add();
    c.agents[0].spawn();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let after = c.settled("moved", 3).await;
        let moved = before
            .iter()
            .zip(&after)
            .filter(|(b, a)| *b == "agent-0" && *a == "agent-2")
            .count();
        if moved > 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "none of agent-0's partitions went to agent-2"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    p.close().await.unwrap();
    verify(&c, "moved", &acked).await;
}

#[tokio::test]
async fn a_joining_agent_takes_only_its_share_without_producer_errors() {
    let mut c = Cluster::start(3);
    let admin = c.admin().await;
    admin.create_topic("join", PARTITIONS).await.unwrap();
    let before = c.settled("join", 3).await;
    let p = producer(&c, Acks::Durable).await;
    let acked = {
        let first = run(&p, "join", 50_000, || {}).await;
        c.add();
        let after = c.settled("join", 4).await;
        for (i, (b, a)) in before.iter().zip(&after).enumerate() {
            assert!(
                a == b || a == "agent-3",
                "partition {i} moved from {b} to {a}"
            );
        }
        let second = run(&p, "join", 50_000, || {}).await;
        let mut all = first;
        for (k, v) in second {
            all.entry(k).or_default().extend(v);
        }
        all
    };
    p.close().await.unwrap();
    // The second run's sequence numbers restart at 0: verify offsets only.
    let total: usize = acked.values().map(Vec::len).sum();
    assert_eq!(total, 100_000);
    for (part, list) in &acked {
        let offsets: HashSet<u64> = list.iter().map(|(o, _)| *o).collect();
        assert_eq!(
            offsets.len(),
            list.len(),
            "partition {part}: an offset acknowledged twice"
        );
        assert_eq!(*offsets.iter().max().unwrap() + 1, list.len() as u64);
    }
}

#[tokio::test]
async fn a_stopped_agent_whose_lease_expired_is_fenced_and_clients_move() {
    // PostgreSQL: an agent stopped inside an SQLite transaction would hold
    // the shared file's lock and stop every other agent (README, "Known
    // limitations"), which is not what this test is about.
    let url = pg::fresh_database("stopped").await;
    let c = Cluster::start_with(3, url, tempfile::tempdir_in(target_tmp()).unwrap());
    let admin = c.admin().await;
    admin.create_topic("stop", PARTITIONS).await.unwrap();
    let leaders = c.settled("stop", 3).await;
    let victim = 0;
    let part = leaders
        .iter()
        .position(|l| *l == format!("agent-{victim}"))
        .expect("the victim leads a partition") as u32;
    let meta = admin.describe_topic("stop").await.unwrap();
    let old_epoch = meta.partitions[part as usize].lease_epoch;
    // Committed to object storage before the stop.
    let committed = producer(&c, Acks::Object).await;
    for i in 0..20 {
        committed
            .send(ProducerRecord::new("stop", format!("early-{i}")).partition(part))
            .await
            .unwrap();
    }
    committed.close().await.unwrap();
    let p = producer(&c, Acks::Durable).await;
    // Durable-acknowledged on the victim, not yet sealed or committed.
    for i in 0..5 {
        p.send(ProducerRecord::new("stop", format!("stranded-{i}")).partition(part))
            .await
            .unwrap();
    }
    c.agents[victim].signal(libc::SIGSTOP);
    let stopped = Instant::now();
    // Another agent takes the partition once the lease expires.
    let deadline = Instant::now() + Duration::from_secs(30);
    let new_leader = loop {
        let m = meta_of(&c, "stop").await;
        let pm = &m.partitions[part as usize];
        if !pm.leader_agent_id.is_empty() && pm.leader_agent_id != format!("agent-{victim}") {
            assert!(pm.lease_epoch > old_epoch, "takeover bumps the epoch");
            break pm.leader_agent_id.clone();
        }
        assert!(Instant::now() < deadline, "no takeover");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    // The lease (2 s) was last renewed up to one renewal interval (a third
    // of it) before the stop, so it expires 1.33 s to 2 s after it.
    assert!(
        stopped.elapsed() >= Duration::from_millis(1300),
        "taken before expiry"
    );
    // The producer moves to the new leader.
    for i in 0..100 {
        p.send(ProducerRecord::new("stop", format!("late-{i}")).partition(part))
            .await
            .unwrap();
    }
    c.agents[victim].signal(libc::SIGCONT);
    // The woken agent refuses the partition and cannot commit what it held.
    let mut direct = c.agents[victim]
        .producer_for(&meta_of(&c, "stop").await, 0)
        .await;
    let e = direct
        .produce(produce_req("stop", part, &["zombie".to_string()]))
        .await
        .unwrap_err();
    assert!(
        matches!(e.code(), tonic::Code::Unavailable | tonic::Code::NotFound),
        "{e:?}"
    );
    tokio::time::sleep(Duration::from_millis(2000)).await;
    p.close().await.unwrap();
    let mut consumer = Consumer::connect(c.addresses()).await.unwrap();
    consumer.assign([("stop".to_owned(), part)]).await.unwrap();
    let mut got = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let recs = consumer.poll(Duration::from_millis(300)).await.unwrap();
        if recs.is_empty() && got.len() >= 120 {
            break;
        }
        got.extend(recs);
        assert!(Instant::now() < deadline, "read {} records", got.len());
    }
    let values: Vec<String> = got
        .iter()
        .map(|r| String::from_utf8(r.value.to_vec()).unwrap())
        .collect();
    for (i, r) in got.iter().enumerate() {
        assert_eq!(r.offset, i as u64);
    }
    assert!(
        values
            .iter()
            .all(|v| !v.starts_with("stranded") && v != "zombie"),
        "the fenced agent's uncommitted writes never became visible"
    );
    let late: Vec<&String> = values.iter().filter(|v| v.starts_with("late")).collect();
    assert_eq!(
        late.len(),
        100,
        "leader {new_leader} has every record sent to it"
    );
    assert_eq!(values.iter().filter(|v| v.starts_with("early")).count(), 20);
}

#[tokio::test]
async fn sigterm_ships_everything_and_releases_leases_at_once() {
    // Leases of a minute: a takeover by expiry would take that long.
    let mut c = Cluster::start_ttl(2, 60_000);
    let admin = c.admin().await;
    admin.create_topic("term", PARTITIONS).await.unwrap();
    c.settled("term", 2).await;
    let p = producer(&c, Acks::Durable).await;
    let acked = run(&p, "term", 100_000, || {}).await;
    p.close().await.unwrap();
    let t = Instant::now();
    c.agents[0].signal(libc::SIGTERM);
    assert_eq!(c.agents[0].wait_exit(Duration::from_secs(30)), Some(0));
    let leaders = c.settled("term", 1).await;
    assert!(leaders.iter().all(|l| l == "agent-1"));
    assert!(
        t.elapsed() < Duration::from_secs(20),
        "took {:?}: the leases were not released",
        t.elapsed()
    );
    verify(&c, "term", &acked).await;
}

#[tokio::test]
async fn a_stalled_agent_does_not_hold_up_partitions_elsewhere() {
    // Long leases: the stalled agent keeps its partitions for the test.
    // PostgreSQL, for the reason given in the test above.
    let url = pg::fresh_database("stalled").await;
    let meta = tempfile::tempdir_in(target_tmp()).unwrap();
    let c = Cluster::start_full(2, url, meta, 60_000, 500);
    let admin = c.admin().await;
    admin.create_topic("hol", PARTITIONS).await.unwrap();
    let leaders = c.settled("hol", 2).await;
    let stalled: Vec<u32> = (0..PARTITIONS)
        .filter(|p| leaders[*p as usize] == "agent-0")
        .collect();
    let healthy: Vec<u32> = (0..PARTITIONS)
        .filter(|p| leaders[*p as usize] == "agent-1")
        .collect();
    let p = producer(&c, Acks::Durable).await;
    // Warm the connections to both agents.
    for part in 0..PARTITIONS {
        p.send(ProducerRecord::new("hol", "warm").partition(part))
            .await
            .unwrap();
    }
    c.agents[0].signal(libc::SIGSTOP);
    let pending: Vec<_> = stalled
        .iter()
        .map(|part| p.send(ProducerRecord::new("hol", "stuck").partition(*part)))
        .collect();
    let t = Instant::now();
    let healthy_sends: Vec<_> = healthy
        .iter()
        .flat_map(|part| {
            (0..100).map(|i| p.send(ProducerRecord::new("hol", format!("ok-{i}")).partition(*part)))
        })
        .collect();
    for f in healthy_sends {
        f.await.unwrap();
    }
    let took = t.elapsed();
    c.agents[0].signal(libc::SIGCONT);
    assert!(
        took < Duration::from_secs(5),
        "partitions of the healthy agent waited {took:?} behind the stalled one"
    );
    for f in pending {
        f.await.unwrap();
    }
    p.close().await.unwrap();
}
