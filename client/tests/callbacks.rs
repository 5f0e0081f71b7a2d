//! Producer callbacks run outside every lock of the producer: a callback
//! may call `send` on every path that completes a record (issue 15,
//! defect 2: failures found while appending, a failed metadata lookup and
//! a full buffer used to complete records while the producer's state mutex
//! was held, so a callback that sent again deadlocked the producer).

#[path = "../../agent/tests/common/mod.rs"]
mod common;

use std::sync::mpsc;
use std::time::Duration;

use streamhouse_client::{Admin, Producer, ProducerRecord, RecordMetadata, Result};

/// What a callback reports: the path, the outcome it was given, and the
/// future of the record it sent from inside the callback.
type Report = (
    &'static str,
    Result<RecordMetadata>,
    streamhouse_client::SendFuture,
);

/// A callback for `path` that sends one more record from inside itself.
fn resend(
    producer: &Producer,
    path: &'static str,
    reports: &mpsc::Sender<Report>,
) -> impl FnOnce(Result<RecordMetadata>) + Send + 'static {
    let p = producer.clone();
    let tx = reports.clone();
    move |outcome| {
        let inner = p
            .send(ProducerRecord::new("cb", format!("sent from the {path} callback")).partition(0));
        let _ = tx.send((path, outcome, inner));
    }
}

/// The paths, in the order the scenario takes them.
const PATHS: [&str; 6] = [
    "success",
    "unknown partition",
    "unknown topic",
    "refused by the agent",
    "delivery timeout",
    "buffer full",
];

#[test]
fn a_callback_may_send_on_every_path() {
    // The scenario runs on a thread of its own and reports each path it
    // finished; this thread only watches. A deadlocked producer blocks the
    // scenario (its next `send` waits on the producer's mutex), never this
    // thread, which then fails the test instead of hanging.
    let agent = common::Agent::start(1, &["--max-record-bytes", "65536"]);
    let pid = agent.pid();
    let (done_tx, done) = mpsc::channel::<&'static str>();
    let scenario = std::thread::spawn(move || scenario(agent, done_tx));
    for path in PATHS {
        match done.recv_timeout(Duration::from_secs(30)) {
            Ok(p) => assert_eq!(p, path),
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                let e = scenario.join().expect_err("the scenario ended early");
                std::panic::resume_unwind(e);
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {
                eprintln!("the {path} path never finished: the producer deadlocked in a callback");
                // The scenario's workers wait on the producer's mutex for
                // ever: unwinding would wait for them. Stop here, loudly.
                unsafe {
                    libc::kill(pid, libc::SIGKILL);
                }
                std::process::exit(1);
            }
        }
    }
    scenario.join().unwrap();
}

fn scenario(agent: common::Agent, done: mpsc::Sender<&'static str>) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .unwrap();
    let (tx, rx) = mpsc::channel::<Report>();
    let b = agent.addr(0);
    let (producer, tight, full) = rt.block_on(async {
        Admin::connect(&b)
            .await
            .unwrap()
            .create_topic("cb", 2)
            .await
            .unwrap();
        let producer = Producer::builder([b.clone()]).build().await.unwrap();
        let tight = Producer::builder([b.clone()])
            .buffer_memory(64 << 10)
            .batch_max_bytes(16 << 10)
            .max_block(Duration::from_millis(300))
            .delivery_timeout(Duration::from_millis(800))
            .request_timeout(Duration::from_millis(300))
            .build()
            .await
            .unwrap();
        let full = Producer::builder([b.clone()])
            .buffer_memory(64 << 10)
            .batch_max_bytes(16 << 10)
            .max_block(Duration::from_millis(300))
            .request_timeout(Duration::from_secs(20))
            .build()
            .await
            .unwrap();
        (producer, tight, full)
    });
    let wait = |want: &'static str| -> Report {
        let r = rx.recv().expect("a callback report");
        assert_eq!(r.0, want);
        done.send(want).unwrap();
        r
    };
    let mut inner = Vec::new();

    let r = resend(&producer, "success", &tx);
    rt.block_on(producer.send_with_callback(ProducerRecord::new("cb", "ok").partition(0), r));
    let (_, outcome, f) = wait("success");
    assert!(outcome.is_ok(), "{outcome:?}");
    inner.push(f);

    let r = resend(&producer, "unknown partition", &tx);
    rt.block_on(producer.send_with_callback(ProducerRecord::new("cb", "x").partition(99), r));
    let (_, outcome, f) = wait("unknown partition");
    assert!(outcome
        .unwrap_err()
        .to_string()
        .contains("partition 99 does not exist"));
    inner.push(f);

    let r = resend(&producer, "unknown topic", &tx);
    rt.block_on(producer.send_with_callback(ProducerRecord::new("no-such-topic", "x"), r));
    let (_, outcome, f) = wait("unknown topic");
    assert!(outcome.is_err());
    inner.push(f);

    // (Alone in its partition: the agent refuses a batch with a record
    // over its limit as a whole.)
    let r = resend(&producer, "refused by the agent", &tx);
    rt.block_on(producer.send_with_callback(
        ProducerRecord::new("cb", vec![b'v'; 100_000]).partition(1),
        r,
    ));
    let (_, outcome, f) = wait("refused by the agent");
    assert_eq!(
        outcome.unwrap_err().code(),
        Some(streamhouse_client::Code::ResourceExhausted)
    );
    inner.push(f);

    // A stopped agent: the tight producer's delivery timeout runs out; the
    // full producer's buffer stays full past max_block.
    agent.signal(libc::SIGSTOP);
    let r = resend(&tight, "delivery timeout", &tx);
    rt.block_on(tight.send_with_callback(ProducerRecord::new("cb", "late").partition(0), r));
    let (_, outcome, f) = wait("delivery timeout");
    assert!(outcome.is_err());
    inner.push(f);
    let value = vec![b'f'; 1000];
    let mut held = Vec::new();
    for _ in 0..100 {
        held.push(full.send(ProducerRecord::new("cb", value.clone()).partition(0)));
    }
    let r = resend(&full, "buffer full", &tx);
    rt.block_on(full.send_with_callback(ProducerRecord::new("cb", value.clone()).partition(0), r));
    let (_, outcome, f) = wait("buffer full");
    assert!(
        outcome
            .as_ref()
            .unwrap_err()
            .to_string()
            .contains("buffer is full"),
        "{outcome:?}"
    );
    inner.push(f);
    agent.signal(libc::SIGCONT);

    // Every record sent from a callback is delivered (or, from the tight
    // producer while it is still full, refused with a clear error).
    rt.block_on(async {
        for (i, f) in inner.into_iter().enumerate() {
            match tokio::time::timeout(Duration::from_secs(30), f).await {
                Ok(Ok(_)) => {}
                Ok(Err(e)) if i >= 4 => eprintln!("record {i} from a callback: {e}"),
                other => panic!("record {i} sent from a callback: {other:?}"),
            }
        }
        drop(held);
        producer.close().await.unwrap();
        tight.close().await.unwrap();
        full.close().await.unwrap();
    });
    drop(agent);
    rt.shutdown_timeout(Duration::from_secs(1));
}
