//! The `direct` transport: the same Producer, Consumer and Admin API against
//! an agent inside the test process, on a local data dir.

#[path = "../../agent/tests/common/mod.rs"]
mod common;

use std::time::Duration;

use streamhouse_client::ProducerRecord;

async fn read_all(dir: &std::path::Path, topic: &str, partitions: u32) -> Vec<String> {
    let mut c = streamhouse_direct::consumer(dir).await.unwrap();
    c.assign((0..partitions).map(|p| (topic.to_owned(), p)))
        .await
        .unwrap();
    let mut out = Vec::new();
    loop {
        let recs = c.poll(Duration::from_millis(50)).await.unwrap();
        if recs.is_empty() {
            return out;
        }
        out.extend(
            recs.into_iter()
                .map(|r| String::from_utf8_lossy(&r.value).into_owned()),
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn same_api_in_process_and_durable_across_restarts() {
    let tmp = tempfile::tempdir_in(common::target_tmp()).unwrap();
    let dir = tmp.path().to_path_buf();
    {
        let admin = streamhouse_direct::admin(&dir).await.unwrap();
        admin.create_topic("local", 2).await.unwrap();
        let producer = streamhouse_direct::producer(&dir)
            .await
            .unwrap()
            .build()
            .await
            .unwrap();
        let futs: Vec<_> = (0..1000u32)
            .map(|i| producer.send(ProducerRecord::new("local", format!("d{i}")).partition(i % 2)))
            .collect();
        for (i, f) in futs.into_iter().enumerate() {
            let m = f.await.unwrap();
            assert_eq!(m.offset, (i / 2) as u64);
        }
        producer.close().await.unwrap();
        // The producer, admin and consumer share one in-process agent.
        assert_eq!(read_all(&dir, "local", 2).await.len(), 1000);
    }
    // Every client is gone, so the agent stopped and released the data dir;
    // a new one recovers the WAL.
    let lock = std::fs::File::open(dir.join("LOCK")).unwrap();
    // SAFETY: flock on a descriptor we own.
    let rc = unsafe {
        libc::flock(
            std::os::fd::AsRawFd::as_raw_fd(&lock),
            libc::LOCK_EX | libc::LOCK_NB,
        )
    };
    assert_eq!(rc, 0, "the in-process agent still holds the data dir");
    drop(lock);
    let got = read_all(&dir, "local", 2).await;
    // Every record once, each partition's in order (the partitions' answers
    // may interleave either way).
    let n = |v: &String| v[1..].parse::<u32>().unwrap();
    let mut all: Vec<u32> = got.iter().map(n).collect();
    for parity in 0..2 {
        let part: Vec<u32> = all.iter().copied().filter(|i| i % 2 == parity).collect();
        assert!(
            part.windows(2).all(|w| w[0] < w[1]),
            "partition {parity} out of order"
        );
    }
    all.sort_unstable();
    assert_eq!(all, (0..1000).collect::<Vec<u32>>());
}
