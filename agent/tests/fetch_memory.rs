//! Concurrent fetches of a partition that inflates a thousandfold (lz4 of
//! zeros) stay within the reply budgets (issue 42, defect 4). Each fetch
//! was capped at 64 MiB, but nothing bounded how many ran at once: before,
//! 24 fetches took an agent from 291 MB to 1.91 GB. Now each reserves twice
//! its `max_bytes` from `--max-reply-bytes-per-shard` and per connection
//! before reading, holds it until HTTP/2 took its reply, and a fetch that
//! does not fit gets RESOURCE_EXHAUSTED with a retry pushback.

mod common;
#[path = "common/fetch_load.rs"]
mod fetch_load;
#[path = "common/procstat.rs"]
mod procstat;
#[path = "common/raw.rs"]
mod raw;

use common::*;
use fetch_load::{empties_batch, produce_batches, spawn_fetches, tally, zeros_batch, Tally};
use procstat::status_kb;
use std::time::Duration;
use streamhouse_proto as pb;

#[tokio::test]
async fn concurrent_inflating_fetches_stay_within_the_reply_budget() {
    const FETCHES: usize = 48;
    let agent = Agent::start(1, &[]);
    let meta = agent.create_topic("bomb", 1).await;
    // 24 batches of 7 MiB of zeros: 168 MiB of records in well under 1 MiB
    // stored.
    produce_batches(&agent, &meta, zeros_batch(), 24).await;
    let before = status_kb(agent.pid(), "VmRSS:");
    let Tally {
        answered,
        refused,
        failed,
    } = tally(spawn_fetches(&agent, &meta, 64 << 20, FETCHES).await).await;
    let peak = status_kb(agent.pid(), "VmHWM:");
    eprintln!(
        "{answered} answered, {refused} refused, {} failed; RSS {} MiB before, peak {} MiB",
        failed.len(),
        before / 1024,
        peak / 1024
    );
    assert!(
        failed.is_empty(),
        "{} fetches failed: {failed:?}",
        failed.len()
    );
    assert!(answered >= 1);
    // The default reply budget is 256 MiB per shard; allocator slack on
    // top. Before: several GiB.
    assert!(
        peak < before + 512 * 1024,
        "peak RSS {} MiB, {} MiB before the fetches",
        peak / 1024,
        before / 1024
    );
}

/// A reply its client never reads holds its reservation only until the
/// body timeout: then the agent resets the stream (CANCEL) and the budget
/// serves the next fetch. Raw HTTP/2, since tonic always reads.
#[tokio::test(flavor = "multi_thread")]
async fn a_reply_never_read_is_reset_and_its_reservation_returned() {
    use prost::Message;
    let agent = Agent::start(
        1,
        &[
            "--max-reply-bytes-per-shard=8388608",
            "--max-reply-bytes-per-connection=8388608",
            "--request-body-timeout-ms=2000",
        ],
    );
    let meta = agent.create_topic("unread", 1).await;
    let mut producer = agent.producer_for(&meta, 0).await;
    for _ in 0..4 {
        producer
            .produce(produce_req("unread", 0, &["x".repeat(1 << 20)]))
            .await
            .expect("produce");
    }
    // max_bytes 4 MiB: twice that is the whole shard budget.
    let fetch = pb::FetchRequest {
        topic: "unread".into(),
        partition: 0,
        offset: 0,
        max_bytes: 4 << 20,
        ..Default::default()
    };
    let addr = agent.addr(0);
    let mut h2c = raw::connect(&addr).await;
    let req = raw::request(&addr, pb::paths::FETCH, &[]);
    let (resp, mut send) = h2c.send_request(req, false).expect("send request");
    send.send_data(raw::frame(0, &fetch.encode_to_vec()).into(), true)
        .expect("send body");
    let resp = tokio::time::timeout(Duration::from_secs(10), resp)
        .await
        .expect("reply headers in time")
        .expect("reply headers");
    assert_eq!(resp.status(), 200);
    let started = std::time::Instant::now();
    // While the reply waits for window, its reservation holds the budget.
    let mut tonic_fetch = agent.fetcher_for(&meta, 0).await;
    let refused = tonic_fetch
        .fetch(fetch.clone())
        .await
        .expect_err("a fetch while the unread reply holds the budget");
    assert_eq!(
        refused.code(),
        tonic::Code::ResourceExhausted,
        "{refused:?}"
    );
    // Read what the initial window let through, never giving credit back:
    // the stream must end in a reset.
    let mut body = resp.into_body();
    let mut got = 0usize;
    let reason = loop {
        match tokio::time::timeout(Duration::from_secs(15), body.data()).await {
            Err(_) => panic!("no reset 15 s after the window closed ({got} bytes read)"),
            Ok(Some(Ok(chunk))) => got += chunk.len(),
            Ok(Some(Err(e))) => break e.reason(),
            Ok(None) => panic!("the reply ended after {got} bytes without a reset"),
        }
    };
    assert_eq!(reason, Some(h2::Reason::CANCEL), "{got} bytes read");
    assert!(got < 4 << 20, "{got} bytes of a reply never given window");
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(1500),
        "reset after {waited:?}, before the body timeout"
    );
    // The reservation is back: the same fetch is answered now.
    let r = tonic_fetch
        .fetch(fetch)
        .await
        .expect("a fetch after the reset")
        .into_inner();
    assert!(!r.records.is_empty());
    drop(h2c);
}

/// A partition of 8 batches of a million empty records (about 7 MiB of
/// records each, a few KiB stored, over 130 MB each once decoded), fetched
/// `fetches` times at once with `max_bytes`, a connection each. Returns
/// (answered, refused, RSS before and peak in KiB); any other answer fails.
async fn fetch_tiny_records(fetches: usize, max_bytes: u32) -> (usize, usize, u64, u64) {
    let agent = Agent::start(1, &[]);
    let meta = agent.create_topic("tiny", 1).await;
    produce_batches(&agent, &meta, empties_batch(), 8).await;
    let before = status_kb(agent.pid(), "VmRSS:");
    let Tally {
        answered,
        refused,
        failed,
    } = tally(spawn_fetches(&agent, &meta, max_bytes, fetches).await).await;
    let peak = status_kb(agent.pid(), "VmHWM:");
    eprintln!(
        "max_bytes {max_bytes}: {answered} answered, {refused} refused, {} failed; RSS {} MiB before, peak {} MiB",
        failed.len(),
        before / 1024,
        peak / 1024
    );
    assert!(failed.is_empty(), "{failed:?}");
    (answered, refused, before, peak)
}

/// Empty records take about 7 bytes each in a batch but over a hundred
/// once decoded for a reply: `max_bytes` must bound what the decoded
/// records hold, not only their encoded bytes (before: 8 fetches of 64 MiB
/// peaked at 1,070 MiB).
#[tokio::test]
async fn fetches_of_tiny_records_stay_within_the_reply_budget() {
    let (answered, _, before, peak) = fetch_tiny_records(8, 64 << 20).await;
    assert!(answered >= 1);
    assert!(peak < before + 512 * 1024, "peak RSS {} MiB", peak / 1024);
}

/// A fetch always answers its first batch whole, however small its
/// `max_bytes`: a batch that decodes to more is read only once the reply
/// budgets hold twice its size (at most all of them), so fetches asking
/// for 1 byte cannot decode many such batches at once.
#[tokio::test]
async fn fetches_for_one_byte_of_huge_batches_stay_within_the_reply_budget() {
    let (answered, _, before, peak) = fetch_tiny_records(96, 1).await;
    assert!(answered >= 1);
    assert!(peak < before + 512 * 1024, "peak RSS {} MiB", peak / 1024);
}
