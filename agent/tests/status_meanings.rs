//! Every gRPC status the agent answers, provoked on a real agent, and what
//! the client's one retry table (`streamhouse_client::retry`, used by the
//! producer and the consumer alike) does with it. The table is written from
//! the agent's status meanings (the README's status table); this test keeps
//! the two from drifting apart again (issue 15, defect 5: a status the agent
//! used for a transient lease condition was fatal in the producer and
//! retried in the consumer).

mod common;
#[path = "common/pg.rs"]
mod pg;
#[path = "common/raw.rs"]
mod raw;

use std::time::{Duration, Instant};

use common::*;
use streamhouse_client::retry::{classify, RetryAction};
use streamhouse_client::Error;
use streamhouse_proto as pb;
use tonic::Code;

/// Asserts the agent answered `code` and the retry table says `action`.
fn check(what: &str, status: tonic::Status, code: Code, action: RetryAction) {
    assert_eq!(status.code(), code, "{what}: {status:?}");
    let e = Error::from(status);
    assert_eq!(classify(&e), action, "{what}: {e}");
    eprintln!("{what}: {e} -> {action:?}");
}

/// A raw reply as the status tonic would have made of it.
fn status_of(r: &raw::RawReply) -> tonic::Status {
    let code = r
        .grpc_status
        .as_deref()
        .and_then(|c| c.parse::<i32>().ok())
        .map_or(Code::Unknown, Code::from_i32);
    tonic::Status::new(code, r.grpc_message.clone().unwrap_or_default())
}

#[tokio::test(flavor = "multi_thread")]
async fn every_status_the_agent_answers_gets_the_retry_action_of_its_meaning() {
    let url = pg::fresh_database("statuses").await;
    let mut flags = vec![
        "--metadata",
        &url,
        "--lease-ttl-ms",
        "1500",
        "--segment-age-ms",
        "100",
        "--max-record-bytes",
        "65536",
    ];
    flags.extend(raw::SMALL_BUFFERS);
    let mut agent = Agent::start(2, &flags);
    let meta = agent.create_topic("s", 2).await;
    let mut admin = agent.admin().await;
    let on = |p: u32| meta.partitions[p as usize].shard as usize;
    let mut c0 = agent.producer_for(&meta, 0).await;
    let mut f0 = agent.fetcher_for(&meta, 0).await;
    let fetch = |topic: &str, offset: u64| fetch_req(topic, 0, offset);

    // NOT_FOUND: an unknown topic; a partition another shard owns.
    let e = f0.fetch(fetch("no-such-topic", 0)).await.unwrap_err();
    check(
        "unknown topic",
        e,
        Code::NotFound,
        RetryAction::RefreshMetadata,
    );
    let mut wrong =
        pb::producer_service_client::ProducerServiceClient::new(agent.channel(1 - on(0)).await);
    let e = wrong
        .produce(produce_req("s", 0, &["x".into()]))
        .await
        .unwrap_err();
    check(
        "another shard's partition",
        e,
        Code::NotFound,
        RetryAction::RefreshMetadata,
    );

    // INVALID_ARGUMENT, ALREADY_EXISTS, RESOURCE_EXHAUSTED (a size limit).
    let e = c0
        .produce(produce_req("", 0, &["x".into()]))
        .await
        .unwrap_err();
    check(
        "empty topic name",
        e,
        Code::InvalidArgument,
        RetryAction::Fail,
    );
    let e = admin
        .create_topic(pb::CreateTopicRequest {
            name: "s".into(),
            partitions: 2,
            ..Default::default()
        })
        .await
        .unwrap_err();
    check("topic exists", e, Code::AlreadyExists, RetryAction::Fail);
    let e = c0
        .produce(produce_req("s", 0, &["v".repeat(100_000)]))
        .await
        .unwrap_err();
    check(
        "record over --max-record-bytes",
        e,
        Code::ResourceExhausted,
        RetryAction::Fail,
    );

    // FAILED_PRECONDITION: a fenced producer epoch. ABORTED: a batch
    // ahead of its sequence.
    let pid = admin
        .init_producer_id(pb::InitProducerIdRequest::default())
        .await
        .unwrap()
        .into_inner();
    let idem = |epoch: i32, seq: i32| pb::ProduceRequest {
        producer_id: pid.producer_id,
        producer_epoch: epoch,
        base_sequence: seq,
        ..produce_req("s", 0, &[format!("e{epoch}-{seq}")])
    };
    c0.produce(idem(0, 0)).await.unwrap();
    admin
        .init_producer_id(pb::InitProducerIdRequest {
            producer_id: pid.producer_id,
            producer_epoch: 0,
        })
        .await
        .unwrap();
    c0.produce(idem(1, 0)).await.unwrap();
    let e = c0.produce(idem(0, 1)).await.unwrap_err();
    check(
        "fenced producer epoch",
        e,
        Code::FailedPrecondition,
        RetryAction::Fail,
    );
    let e = c0.produce(idem(1, 50)).await.unwrap_err();
    check(
        "batch ahead of its sequence",
        e,
        Code::Aborted,
        RetryAction::AfterEarlierBatches,
    );

    // OUT_OF_RANGE: past the high watermark.
    let e = f0.fetch(fetch("s", 1000)).await.unwrap_err();
    check(
        "offset past the end",
        e,
        Code::OutOfRange,
        RetryAction::Fail,
    );

    // UNIMPLEMENTED: an unknown method.
    let addr0 = agent.addr(on(0));
    let mut h2c = raw::connect(&addr0).await;
    let r = raw::call(
        &mut h2c,
        raw::request(&addr0, "/streamhouse.Nope/Nothing", &[]),
        raw::frame(0, b""),
    )
    .await;
    check(
        "unknown method",
        status_of(&r),
        Code::Unimplemented,
        RetryAction::Fail,
    );

    // RESOURCE_EXHAUSTED with a pushback (the shard's request buffers are
    // full: one raw stream holds them) and DEADLINE_EXCEEDED (that stream's
    // body never arrives).
    let (held, _send) = raw::hold_shard_buffers(&mut h2c, &addr0).await;
    let e = f0.fetch(fetch("s", 0)).await.unwrap_err();
    assert!(
        e.metadata().get("grpc-retry-pushback-ms").is_some(),
        "{e:?}"
    );
    check(
        "request buffers full",
        e,
        Code::ResourceExhausted,
        RetryAction::SameRoute,
    );
    let r = raw::read_reply(held).await;
    check(
        "request body timeout",
        status_of(&r),
        Code::DeadlineExceeded,
        RetryAction::SameRoute,
    );

    // DATA_LOSS: a stored batch whose bytes changed in its chunk object.
    let values: Vec<String> = (0..20).map(|i| format!("rot-{i:04}")).collect();
    let mut c1 = agent.producer_for(&meta, 1).await;
    c1.produce(produce_req("s", 1, &values)).await.unwrap();
    // Read only from the object once the shard dropped its copy.
    flip_in_object(&agent.data_dir, on(1), b"rot-0007", b'R').await;
    let mut f1 = agent.fetcher_for(&meta, 1).await;
    let e = f1
        .fetch(pb::FetchRequest {
            partition: 1,
            ..fetch("s", 0)
        })
        .await
        .unwrap_err();
    check(
        "a stored batch fails its CRC",
        e,
        Code::DataLoss,
        RetryAction::Fail,
    );

    // UNAVAILABLE: the metadata store cannot answer a topic lookup; a lease
    // that cannot be renewed.
    pg::execute(&url, "ALTER TABLE topics RENAME TO topics_away").await;
    let e = c0
        .produce(produce_req("not-seen-yet", 0, &["x".into()]))
        .await
        .unwrap_err();
    check(
        "metadata store unreachable",
        e,
        Code::Unavailable,
        RetryAction::FreshRoute,
    );
    pg::execute(&url, "ALTER TABLE topics_away RENAME TO topics").await;
    pg::execute(&url, "ALTER TABLE leases RENAME TO leases_away").await;
    let deadline = Instant::now() + Duration::from_secs(15);
    let e = loop {
        match c0.produce(produce_req("s", 0, &["probe".into()])).await {
            Ok(_) => {}
            Err(s) => break s,
        }
        assert!(Instant::now() < deadline, "the lease never ran out");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    check(
        "lease not renewable",
        e,
        Code::Unavailable,
        RetryAction::FreshRoute,
    );
    pg::execute(&url, "ALTER TABLE leases_away RENAME TO leases").await;
    let deadline = Instant::now() + Duration::from_secs(15);
    let end = loop {
        match c1.produce(produce_req("s", 1, &["back".into()])).await {
            Ok(r) => break r.into_inner().base_offset + 1,
            Err(s) => assert!(
                Instant::now() < deadline,
                "the lease never came back: {s:?}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };

    // The agent dies with a call in flight: whatever the transport makes of
    // it is retried elsewhere.
    let mut f1 = agent.fetcher_for(&meta, 1).await;
    let pending = tokio::spawn(async move {
        f1.fetch(pb::FetchRequest {
            partition: 1,
            max_wait_ms: 10_000,
            ..fetch("s", end)
        })
        .await
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    agent.kill9();
    let r = pending.await.unwrap();
    let e = Error::from(r.expect_err("the agent died"));
    assert!(classify(&e).is_retriable(), "a dead agent: {e}");
    eprintln!("agent killed mid-call: {e} -> {:?}", classify(&e));
}
