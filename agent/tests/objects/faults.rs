//! Object storage and ownership faults: a fenced agent cannot commit,
//! an S3 outage loses nothing with a bounded backlog, a stalled request
//! is retried at once, a restart uploads what was not committed, once.

use super::*;

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

    // Another agent takes partition 0 over (as if it had watched our
    // renewals stand still for a TTL).
    let m = MetaStore::open(&meta_url).await.unwrap();
    let key = m
        .topics()
        .await
        .unwrap()
        .into_iter()
        .find(|t| t.name == "fence")
        .unwrap()
        .key();
    let g = take_over(&m, &key, 0, "intruder").await;
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
    let e = f.fetch(fetch_req("fence", 0, 0)).await.unwrap_err();
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
