//! Topic configuration (issue 19): keys set at creation and changed later,
//! stored in the metadata store (so they survive a restart and reach other
//! agents), every key described with its value in effect and its source,
//! bad keys and values refused with INVALID_ARGUMENT naming them, and
//! `max.message.bytes` enforced on produce.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::*;
use streamhouse_client::{Admin, ConfigEntry, ConfigSource, Producer, ProducerRecord};
use tonic::Code;

/// Value and source of every key, by name.
fn by_name(entries: &[ConfigEntry]) -> BTreeMap<String, (String, ConfigSource)> {
    entries
        .iter()
        .map(|e| (e.name.clone(), (e.value.clone(), e.source)))
        .collect()
}

fn pair(value: &str, source: ConfigSource) -> (String, ConfigSource) {
    (value.to_owned(), source)
}

#[tokio::test(flavor = "multi_thread")]
async fn keys_set_at_creation_and_altered_are_described_and_survive_a_restart() {
    let mut agent = Agent::start(2, &["--default-retention-ms=3600000"]);
    let admin = Admin::connect(agent.addr(0)).await.unwrap();
    admin
        .create_topic_with_configs(
            "kept",
            2,
            [("retention.bytes", "1048576"), ("cleanup.policy", "delete")],
        )
        .await
        .expect("create with configs");
    let described = by_name(&admin.describe_configs("kept").await.unwrap());
    assert_eq!(described.len(), 5, "{described:?}");
    assert_eq!(
        described["retention.bytes"],
        pair("1048576", ConfigSource::Topic)
    );
    assert_eq!(
        described["cleanup.policy"],
        pair("delete", ConfigSource::Topic)
    );
    assert_eq!(
        described["retention.ms"],
        pair("3600000", ConfigSource::Default),
        "the agent's --default-retention-ms"
    );
    assert_eq!(
        described["max.message.bytes"],
        pair(&(8u64 << 20).to_string(), ConfigSource::Default)
    );

    let now = admin
        .alter_configs("kept", [("retention.ms", "60000")], &["retention.bytes"])
        .await
        .expect("alter");
    let now = by_name(&now);
    assert_eq!(now["retention.ms"], pair("60000", ConfigSource::Topic));
    assert_eq!(now["retention.bytes"], pair("-1", ConfigSource::Default));
    assert_eq!(now["cleanup.policy"], pair("delete", ConfigSource::Topic));
    // Another shard of the agent sees the change at once.
    let other = Admin::connect(agent.addr(1)).await.unwrap();
    assert_eq!(by_name(&other.describe_configs("kept").await.unwrap()), now);

    agent.signal(libc::SIGTERM);
    assert_eq!(agent.wait_exit(Duration::from_secs(30)), Some(0));
    agent.spawn();
    let admin = Admin::connect(agent.addr(0)).await.unwrap();
    assert_eq!(
        by_name(&admin.describe_configs("kept").await.unwrap()),
        now,
        "after a restart"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_keys_and_values_are_refused_and_change_nothing() {
    let agent = Agent::start(1, &[]);
    let admin = Admin::connect(agent.addr(0)).await.unwrap();
    for (key, value, says) in [
        (
            "segment.ms",
            "1000",
            "unknown topic configuration key \"segment.ms\"",
        ),
        ("retention.ms", "soon", "retention.ms must be"),
        ("retention.bytes", "0", "retention.bytes must be"),
        (
            "cleanup.policy",
            "gc",
            "must be delete, compact or compact,delete",
        ),
        ("delete.retention.ms", "-1", "delete.retention.ms must be"),
        ("max.message.bytes", "9000000", "--max-request-bytes"),
    ] {
        let e = admin
            .create_topic_with_configs("refused", 1, [(key, value)])
            .await
            .expect_err("a bad configuration");
        assert_eq!(
            e.code(),
            Some(streamhouse_client::Code::InvalidArgument),
            "{key}={value}: {e}"
        );
        assert!(e.to_string().contains(says), "{key}={value}: {e}");
    }
    let e = admin
        .describe_topic("refused")
        .await
        .expect_err("not created");
    assert_eq!(e.code(), Some(streamhouse_client::Code::NotFound), "{e}");

    admin
        .create_topic_with_configs("kept", 1, [("retention.ms", "5000")])
        .await
        .unwrap();
    let before = admin.describe_configs("kept").await.unwrap();
    // One bad key refuses the whole change.
    let e = admin
        .alter_configs(
            "kept",
            [("retention.bytes", "100"), ("retention.ms", "-7")],
            &[],
        )
        .await
        .expect_err("a bad value");
    assert_eq!(
        e.code(),
        Some(streamhouse_client::Code::InvalidArgument),
        "{e}"
    );
    let e = admin
        .alter_configs("kept", [("retention.ms", "100")], &["retention.ms"])
        .await
        .expect_err("set and deleted");
    assert!(e.to_string().contains("both set and deleted"), "{e}");
    let e = admin
        .alter_configs::<&str, &str>("kept", [], &["nope"])
        .await
        .expect_err("unknown key");
    assert_eq!(
        e.code(),
        Some(streamhouse_client::Code::InvalidArgument),
        "{e}"
    );
    assert_eq!(admin.describe_configs("kept").await.unwrap(), before);

    for e in [
        admin
            .describe_configs("missing")
            .await
            .expect_err("unknown"),
        admin
            .alter_configs("missing", [("retention.ms", "1")], &[])
            .await
            .expect_err("unknown"),
    ] {
        assert_eq!(e.code(), Some(streamhouse_client::Code::NotFound), "{e}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_batch_over_the_topics_max_message_bytes_is_refused() {
    let agent = Agent::start(1, &[]);
    let admin = Admin::connect(agent.addr(0)).await.unwrap();
    admin
        .create_topic_with_configs("small", 1, [("max.message.bytes", "2000")])
        .await
        .unwrap();
    let producer = Producer::builder([agent.addr(0)]).build().await.unwrap();
    producer
        .send(ProducerRecord::new("small", vec![b'x'; 1000]).partition(0))
        .await
        .expect("a batch under the limit");
    let e = producer
        .send(ProducerRecord::new("small", vec![b'x'; 3000]).partition(0))
        .await
        .expect_err("a batch over the limit");
    assert_eq!(
        e.code(),
        Some(streamhouse_client::Code::ResourceExhausted),
        "{e}"
    );
    assert!(e.to_string().contains("max.message.bytes"), "{e}");
    // Raised, the same record goes through.
    admin
        .alter_configs("small", [("max.message.bytes", "4000")], &[])
        .await
        .unwrap();
    producer
        .send(ProducerRecord::new("small", vec![b'x'; 3000]).partition(0))
        .await
        .expect("under the raised limit");
    producer.close().await.unwrap();
}

/// A change made through one agent reaches another sharing the metadata
/// store at its next topic sync.
#[tokio::test(flavor = "multi_thread")]
async fn another_agent_takes_a_change_at_its_next_sync() {
    let dir = tempfile::tempdir_in(target_tmp()).unwrap();
    let [a, b] = two_agents(dir.path(), "1000");
    let admin_a = Admin::connect(a.addr(0)).await.unwrap();
    admin_a.create_topic("shared", 1).await.unwrap();
    // b knows the topic (and its configuration) before the change.
    let admin_b = Admin::connect(b.addr(0)).await.unwrap();
    let before = by_name(&admin_b.describe_configs("shared").await.unwrap());
    assert_eq!(before["retention.ms"].1, ConfigSource::Default);
    admin_a
        .alter_configs("shared", [("retention.ms", "120000")], &[])
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let seen = admin_b.describe_configs("shared").await;
        if let Ok(entries) = &seen {
            if by_name(entries)["retention.ms"] == pair("120000", ConfigSource::Topic) {
                break;
            }
        }
        assert!(Instant::now() < deadline, "agent b still answers {seen:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// CreatePartitions (issue 19): partitions are added, never removed; the
/// new ones are led and take writes at once on the answering agent, hold
/// across a restart, and reach another agent at its next sync.
#[tokio::test(flavor = "multi_thread")]
async fn partitions_are_added_and_served() {
    let dir = tempfile::tempdir_in(target_tmp()).unwrap();
    let [mut a, b] = two_agents(dir.path(), "1000");
    let admin = Admin::connect(a.addr(0)).await.unwrap();
    admin.create_topic("grow", 2).await.unwrap();
    let t = admin
        .create_partitions("grow", 5)
        .await
        .expect("add partitions");
    assert_eq!(t.partitions.len(), 5);
    for (code, count, says) in [
        (Code::InvalidArgument, 3, "has 5 partitions already"),
        (Code::InvalidArgument, 5, "has 5 partitions already"),
        (Code::InvalidArgument, 10_001, "at most 10000"),
    ] {
        let e = admin
            .create_partitions("grow", count)
            .await
            .expect_err("refused");
        assert_eq!(e.code(), Some(code.into()), "{e}");
        assert!(e.to_string().contains(says), "{e}");
    }
    let e = admin
        .create_partitions("nope", 3)
        .await
        .expect_err("unknown");
    assert_eq!(e.code(), Some(streamhouse_client::Code::NotFound), "{e}");

    // Every new partition is led (by either agent) and takes a record.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let t = admin.describe_topic("grow").await.unwrap();
        if t.partitions.iter().all(|p| !p.leader_address.is_empty()) {
            break;
        }
        assert!(Instant::now() < deadline, "new partitions never led: {t:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let producer = Producer::builder([a.addr(0), b.addr(0)])
        .build()
        .await
        .unwrap();
    for p in 0..5 {
        producer
            .send(ProducerRecord::new("grow", format!("p{p}")).partition(p))
            .await
            .unwrap_or_else(|e| panic!("partition {p}: {e}"));
    }
    producer.close().await.unwrap();
    let other = Admin::connect(b.addr(0)).await.unwrap();
    assert_eq!(
        other.describe_topic("grow").await.unwrap().partitions.len(),
        5
    );

    a.signal(libc::SIGTERM);
    assert_eq!(a.wait_exit(Duration::from_secs(30)), Some(0));
    a.spawn();
    let admin = Admin::connect(a.addr(0)).await.unwrap();
    assert_eq!(
        admin.describe_topic("grow").await.unwrap().partitions.len(),
        5
    );
}
