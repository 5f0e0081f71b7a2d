//! Consumer groups through the agent's gRPC port, with the generated stubs
//! and two real agent processes sharing their stores: which agent
//! coordinates, joins and the cooperative hand-over, commits fenced by
//! generation and ownership, session expiry, describe/list/delete, the
//! coordinator killed, and bad requests.

mod common;
#[path = "common/group_rpc.rs"]
mod group_rpc;
#[path = "common/pg.rs"]
mod pg;

use std::time::{Duration, Instant};

use common::*;
use group_rpc::*;
use streamhouse_proto as pb;
use tonic::Code;

/// Flags of agent `id`: stores under `dir`, the metadata store at
/// `metadata` when given (else SQLite under `dir`).
fn agent_args(dir: &std::path::Path, metadata: Option<&str>, id: &str) -> Vec<String> {
    let mut args = group_cluster_args(dir, id);
    if let Some(url) = metadata {
        let at = args
            .iter()
            .position(|a| a == "--metadata")
            .expect("--metadata");
        args[at + 1] = url.to_owned();
    }
    args
}

#[tokio::test]
async fn a_group_shares_a_topic_commits_fenced_and_survives_its_coordinator() {
    group_life(None).await;
}

#[tokio::test]
async fn the_same_on_postgres() {
    let url = pg::fresh_database("groups").await;
    group_life(Some(&url)).await;
}

/// Two agents on shared stores (the metadata store at `metadata`, else
/// SQLite): coordination, hand-over, fencing, expiry, the coordinator
/// killed.
async fn group_life(metadata: Option<&str>) {
    let stores = tempfile::tempdir_in(target_tmp()).unwrap();
    let a0 = agent_args(stores.path(), metadata, "agent-0");
    let a1 = agent_args(stores.path(), metadata, "agent-1");
    let mut agents = vec![
        Agent::start(1, &as_strs(&a0)),
        Agent::start(1, &as_strs(&a1)),
    ];
    agents[0].create_topic("orders", 6).await;
    // Records in every partition, so the commits below are within the log.
    let producer = streamhouse_client::Producer::builder([agents[0].addr(0), agents[1].addr(0)])
        .build()
        .await
        .unwrap();
    for p in 0..6u32 {
        for i in 0..50 {
            producer
                .send(
                    streamhouse_client::ProducerRecord::new("orders", format!("o{i}")).partition(p),
                )
                .await
                .unwrap();
        }
    }
    producer.close().await.unwrap();
    let group = "billing";
    // Both agents name the same coordinator once they see each other.
    let deadline = Instant::now() + Duration::from_secs(10);
    let coord = loop {
        let mut answers = Vec::new();
        for a in &agents {
            let r = groups_at(&a.addr(0))
                .await
                .find_coordinator(pb::FindCoordinatorRequest {
                    group_id: group.into(),
                })
                .await
                .expect("find coordinator")
                .into_inner();
            answers.push((r.agent_id, r.address));
        }
        if answers[0] == answers[1] && answers.len() == 2 {
            let seen = groups_at(&agents[0].addr(0))
                .await
                .find_coordinator(pb::FindCoordinatorRequest {
                    group_id: "other-group".into(),
                })
                .await;
            assert!(seen.is_ok());
            break answers.remove(0);
        }
        assert!(Instant::now() < deadline, "agents disagree: {answers:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let (coord_i, other_i) = if coord.0 == "agent-0" { (0, 1) } else { (1, 0) };
    // The other agent refuses the group's heartbeats, naming the coordinator.
    let mut wrong = groups_at(&agents[other_i].addr(0)).await;
    let e = wrong
        .heartbeat(beat(group, &Member::default(), "orders"))
        .await
        .expect_err("not the coordinator");
    assert_eq!(e.code(), Code::Unavailable, "{e:?}");
    assert!(e.message().contains(&coord.0), "{}", e.message());

    let mut c = groups_at(&coord.1).await;
    let mut ms = vec![Member::default(), Member::default()];
    settle(&mut c, group, &mut ms, "orders", &[3, 3]).await;
    // A third joins: the hand-over is cooperative, nobody owns a partition twice.
    ms.push(Member::default());
    settle(&mut c, group, &mut ms, "orders", &[2, 2, 2]).await;
    let (t, p) = ms[0].owned.iter().next().cloned().expect("a partition");
    c.commit_offsets(commit(group, &ms[0], &t, p, 41))
        .await
        .expect("commit");
    // Not its partition, or an old generation: refused.
    let (t1, p1) = ms[1].owned.iter().next().cloned().expect("a partition");
    let e = c
        .commit_offsets(commit(group, &ms[0], &t1, p1, 7))
        .await
        .expect_err("not the owner");
    assert_eq!(e.code(), Code::FailedPrecondition, "{e:?}");
    let mut stale = ms[0].clone();
    stale.epoch -= 1;
    let e = c
        .commit_offsets(commit(group, &stale, &t, p, 7))
        .await
        .expect_err("stale generation");
    assert_eq!(e.code(), Code::FailedPrecondition, "{e:?}");
    assert!(e.message().contains("rejoin"), "{}", e.message());
    // Any agent answers what the group committed.
    let offsets = groups_at(&agents[other_i].addr(0))
        .await
        .fetch_offsets(pb::FetchOffsetsRequest {
            group_id: group.into(),
            partitions: vec![],
        })
        .await
        .expect("fetch offsets")
        .into_inner()
        .offsets;
    assert_eq!(offsets.len(), 1, "{offsets:?}");
    assert_eq!((offsets[0].partition, offsets[0].offset), (p, Some(41)));

    // Member 2 falls silent: after its session its partitions go to the others,
    // and its commits are refused.
    let silent = ms.remove(2);
    tokio::time::sleep(Duration::from_millis(u64::from(SESSION_MS) / 2)).await;
    for m in ms.iter_mut() {
        heartbeat(&mut c, group, m, "orders").await;
    }
    tokio::time::sleep(Duration::from_millis(u64::from(SESSION_MS) / 2 + 300)).await;
    settle(&mut c, group, &mut ms, "orders", &[3, 3]).await;
    let (ts, ps) = silent.owned.iter().next().cloned().expect("a partition");
    let e = c
        .commit_offsets(commit(group, &silent, &ts, ps, 1))
        .await
        .expect_err("removed member");
    assert_eq!(e.code(), Code::FailedPrecondition, "{e:?}");

    let d = c
        .describe_group(pb::DescribeGroupRequest {
            group_id: group.into(),
        })
        .await
        .expect("describe")
        .into_inner();
    assert_eq!(d.members.len(), 2);
    assert_eq!(d.state, "stable");
    assert_eq!(d.assignor, "cooperative-sticky");
    assert_eq!(d.partitions.len(), 6);
    assert!(d.partitions.iter().all(|x| !x.member_id.is_empty()));
    let listed = c
        .list_groups(pb::ListGroupsRequest {})
        .await
        .unwrap()
        .into_inner();
    assert!(listed
        .groups
        .iter()
        .any(|g| g.group_id == group && g.members == 2));
    let e = c
        .delete_group(pb::DeleteGroupRequest {
            group_id: group.into(),
        })
        .await
        .expect_err("members present");
    assert_eq!(e.code(), Code::FailedPrecondition, "{e:?}");

    // The coordinator dies: the other agent takes the group over with
    // everything it committed; the members rejoin there.
    agents[coord_i].kill9();
    let survivor = &agents[other_i];
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut c2 = groups_at(&survivor.addr(0)).await;
    loop {
        let r = c2
            .find_coordinator(pb::FindCoordinatorRequest {
                group_id: group.into(),
            })
            .await;
        if r.is_ok_and(|r| r.into_inner().address == survivor.addr(0)) {
            break;
        }
        assert!(Instant::now() < deadline, "the group did not move");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    settle(&mut c2, group, &mut ms, "orders", &[3, 3]).await;
    let offsets = c2
        .fetch_offsets(pb::FetchOffsetsRequest {
            group_id: group.into(),
            partitions: vec![pb::TopicPartitions {
                topic: t.clone(),
                partitions: vec![p, (p + 1) % 6],
            }],
        })
        .await
        .unwrap()
        .into_inner()
        .offsets;
    assert_eq!(offsets[0].offset, Some(41));
    assert_eq!(offsets[1].offset, None, "never committed");
    // Everyone leaves; then the group can be deleted, offsets and all.
    for m in &ms {
        let mut leave = beat(group, m, "orders");
        leave.member_epoch = -1;
        c2.heartbeat(leave).await.expect("leave");
    }
    c2.delete_group(pb::DeleteGroupRequest {
        group_id: group.into(),
    })
    .await
    .expect("delete");
    let e = c2
        .describe_group(pb::DescribeGroupRequest {
            group_id: group.into(),
        })
        .await
        .expect_err("gone");
    assert_eq!(e.code(), Code::NotFound, "{e:?}");
}

#[tokio::test]
async fn bad_group_requests_get_invalid_argument() {
    let a = Agent::start(1, &[]);
    a.create_topic("t", 1).await;
    let mut c = groups_at(&a.addr(0)).await;
    let ok = beat("g", &Member::default(), "t");
    for (what, req) in [
        (
            "empty group id",
            pb::GroupHeartbeatRequest {
                group_id: String::new(),
                ..ok.clone()
            },
        ),
        (
            "session 10 ms",
            pb::GroupHeartbeatRequest {
                session_timeout_ms: 10,
                ..ok.clone()
            },
        ),
        (
            "unknown assignor",
            pb::GroupHeartbeatRequest {
                assignor: "best".into(),
                ..ok.clone()
            },
        ),
        (
            "group id of 300 bytes",
            pb::GroupHeartbeatRequest {
                group_id: "g".repeat(300),
                ..ok.clone()
            },
        ),
    ] {
        let e = c.heartbeat(req).await.expect_err(what);
        assert_eq!(e.code(), Code::InvalidArgument, "{what}: {e:?}");
    }
    let mut m = Member::default();
    heartbeat(&mut c, "g", &mut m, "t").await;
    let mut bad = commit("g", &m, "t", 0, 1);
    bad.offsets[0].metadata = "x".repeat(5000);
    let e = c.commit_offsets(bad).await.expect_err("metadata too long");
    assert_eq!(e.code(), Code::InvalidArgument, "{e:?}");
    let e = c
        .commit_offsets(commit("g", &m, "nope", 0, 1))
        .await
        .expect_err("unknown topic");
    assert_eq!(e.code(), Code::NotFound, "{e:?}");
    let e = c
        .commit_offsets(commit("g", &m, "t", 5, 1))
        .await
        .expect_err("no such partition");
    assert_eq!(e.code(), Code::InvalidArgument, "{e:?}");
    // An offset no log can reach was stored clamped, and the group could
    // never read the partition again.
    let e = c
        .commit_offsets(commit("g", &m, "t", 0, u64::MAX))
        .await
        .expect_err("offset 2^64-1");
    assert_eq!(e.code(), Code::InvalidArgument, "{e:?}");
    assert!(e.message().contains("beyond any log's end"), "{e:?}");
    let mut zero = commit("g", &m, "t", 0, 1);
    zero.offsets[0].leader_epoch = Some(0);
    let e = c.commit_offsets(zero).await.expect_err("epoch 0");
    assert_eq!(e.code(), Code::InvalidArgument, "{e:?}");
    // Past the partition's end (it holds no record): refused, naming it.
    let e = c
        .commit_offsets(commit("g", &m, "t", 0, 1))
        .await
        .expect_err("past the end");
    assert_eq!(e.code(), Code::InvalidArgument, "{e:?}");
    assert!(e.message().contains("past its high watermark 0"), "{e:?}");
    // A leader epoch is kept with the offset it was committed with.
    let mut with_epoch = commit("g", &m, "t", 0, 0);
    with_epoch.offsets[0].leader_epoch = Some(7);
    c.commit_offsets(with_epoch).await.unwrap();
    let got = c
        .fetch_offsets(pb::FetchOffsetsRequest {
            group_id: "g".into(),
            partitions: Vec::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        got.offsets
            .iter()
            .map(|o| (o.offset, o.leader_epoch))
            .collect::<Vec<_>>(),
        vec![(Some(0), Some(7))]
    );
}

#[tokio::test]
async fn group_members_generation_committed_offsets_and_lag_are_metrics() {
    let admin_port = free_ports(1);
    let listen = format!("127.0.0.1:{admin_port}");
    let a = Agent::start(
        1,
        &["--admin-listen", &listen, "--group-heartbeat-ms", "200"],
    );
    let meta = a.create_topic("m", 1).await;
    let values: Vec<String> = (0..8).map(|i| format!("v{i}")).collect();
    a.producer_for(&meta, 0)
        .await
        .produce(produce_req("m", 0, &values))
        .await
        .expect("produce");
    let mut c = groups_at(&a.addr(0)).await;
    let mut m = Member::default();
    settle(&mut c, "metered", std::slice::from_mut(&mut m), "m", &[1]).await;
    c.commit_offsets(commit("metered", &m, "m", 0, 5))
        .await
        .expect("commit");
    let (code, text) = get(admin_port, "/metrics").await;
    assert_eq!(code, 200);
    assert_eq!(
        sample(&text, "streamhouse_group_members{group=\"metered\"}"),
        1.0
    );
    assert!(sample(&text, "streamhouse_group_generation{group=\"metered\"}") >= 1.0);
    let labels = "{group=\"metered\",topic=\"m\",partition=\"0\"}";
    assert_eq!(
        sample(
            &text,
            &format!("streamhouse_group_committed_offset{labels}")
        ),
        5.0
    );
    assert_eq!(
        sample(&text, &format!("streamhouse_group_lag{labels}")),
        3.0
    );
    // A second member is a rebalance.
    let before = sample(&text, "streamhouse_group_rebalances_total");
    let mut ms = vec![m, Member::default()];
    settle(&mut c, "metered", &mut ms, "m", &[1, 0]).await;
    let (_, text) = get(admin_port, "/metrics").await;
    assert!(sample(&text, "streamhouse_group_rebalances_total") > before);
    assert_eq!(
        sample(&text, "streamhouse_group_members{group=\"metered\"}"),
        2.0
    );
}
