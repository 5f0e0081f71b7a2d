//! The checker's own tests: a clean history passes, and each break of the
//! model is named.

use super::*;
use crate::chaos::nemesis::FaultKind;
use crate::chaos::observe::{FirstRead, Seen};
use crate::chaos::payload::Stamp;
use crate::chaos::workload::Sent;

fn spec(idempotent: bool, acks: Acks) -> StreamSpec {
    StreamSpec {
        id: 0,
        name: "s".into(),
        topic: "t".into(),
        acks,
        idempotent,
    }
}

/// Six records to partition 0, acknowledged at offsets 0..6 at 1000 +
/// 100 * seq ms.
fn log() -> StreamLog {
    StreamLog {
        sent: (0..6)
            .map(|seq| Sent {
                partition: 0,
                at_ms: 1000 + 100 * seq,
                outcome: Outcome::Acked {
                    offset: seq,
                    at_ms: 1000 + 100 * seq,
                },
            })
            .collect(),
        ..StreamLog::default()
    }
}

fn read(seqs: &[u64]) -> Vec<Seen> {
    seqs.iter()
        .enumerate()
        .map(|(o, seq)| Seen {
            offset: o as u64,
            stamp: Some(Stamp {
                stream: 0,
                partition: 0,
                seq: *seq,
            }),
        })
        .collect()
}

fn judge(spec: StreamSpec, finals: Vec<Seen>, events: &[Event], leaders: &LeaderLog) -> Verdict {
    let streams = vec![(spec, log())];
    let mut f = HashMap::new();
    f.insert(("t".to_string(), 0), Ok(finals));
    check(&Inputs {
        streams: &streams,
        tails: &[],
        leaders,
        events,
        finals: &f,
        objects_only: None,
        index_faults: &[],
        live_window: (1000, 2000),
        partitions: 1,
    })
}

#[test]
fn a_clean_history_is_valid_and_every_break_is_named() {
    let none = LeaderLog::default();
    let v = judge(
        spec(true, Acks::Durable),
        read(&[0, 1, 2, 3, 4, 5]),
        &[],
        &none,
    );
    assert_eq!(v.total(), 0, "{:?}", v.violations);

    let v = judge(
        spec(true, Acks::Durable),
        read(&[0, 1, 2, 3, 4]),
        &[],
        &none,
    );
    assert_eq!(v.counts.get("lost (ack durable)"), Some(&1));

    let v = judge(
        spec(true, Acks::Object),
        read(&[0, 1, 3, 2, 4, 5]),
        &[],
        &none,
    );
    assert!(v.counts.contains_key("reordered"), "{:?}", v.counts);
    assert!(v
        .counts
        .contains_key("acknowledged offset holds another record"));

    let v = judge(
        spec(true, Acks::Durable),
        read(&[0, 1, 2, 3, 4, 5, 5]),
        &[],
        &none,
    );
    assert_eq!(v.counts.get("duplicated"), Some(&1));
    // A non-idempotent producer may duplicate: counted, not a violation.
    let v = judge(
        spec(false, Acks::Durable),
        read(&[0, 1, 2, 3, 4, 5, 5]),
        &[],
        &none,
    );
    assert_eq!(v.total(), 0);
    assert_eq!(v.streams[0].duplicated, 1);
}

#[test]
fn durable_loss_is_excused_only_after_the_leader_was_away_past_its_ttl() {
    let mut leaders = LeaderLog::default();
    leaders
        .changes
        .insert(("t".into(), 0), vec![(0, "a1".into(), 1)]);
    let away = |past_ttl| Event {
        start_ms: 1550,
        end_ms: 6000,
        kind: FaultKind::Pause,
        agent: Some("a1".into()),
        what: "SIGSTOP".into(),
        past_ttl,
        error: None,
    };
    // Offsets 5.. were written by the paused leader and lost; the new
    // leader continued at 5 with records of its own.
    let lost_tail = read(&[0, 1, 2, 3, 4]);
    let v = judge(
        spec(true, Acks::Durable),
        lost_tail.clone(),
        &[away(true)],
        &leaders,
    );
    assert_eq!(v.total(), 0, "{:?}", v.violations);
    assert_eq!(v.streams[0].lost_excused, 1);
    let v = judge(
        spec(true, Acks::Durable),
        lost_tail.clone(),
        &[away(false)],
        &leaders,
    );
    assert_eq!(v.counts.get("lost (ack durable)"), Some(&1));
    // Never excused at ack object.
    let v = judge(spec(true, Acks::Object), lost_tail, &[away(true)], &leaders);
    assert_eq!(v.counts.get("lost (ack object)"), Some(&1));
}

#[test]
fn a_partition_that_takes_no_write_after_the_faults_is_unavailable() {
    let streams = vec![(spec(true, Acks::Durable), log())];
    let mut f = HashMap::new();
    f.insert(("t".to_string(), 0), Ok(read(&[0, 1, 2, 3, 4, 5])));
    let v = check(&Inputs {
        streams: &streams,
        tails: &[],
        leaders: &LeaderLog::default(),
        events: &[],
        finals: &f,
        objects_only: None,
        index_faults: &[],
        live_window: (5000, 9000),
        partitions: 1,
    });
    assert_eq!(
        v.counts.get("unavailable after the faults healed"),
        Some(&1)
    );
}

/// Leader `a1` acknowledged seq 0..=3 at offsets 0..=3 and wrote seq 4 at
/// offset 4, which a tailer read at 1500 ms; `a1` was then killed (past
/// the TTL or not) before answering seq 4 or shipping offsets 3 and 4.
/// `a2` continued at the committed end 3: the retry of seq 4 landed at 3,
/// seq 5 at 4.
fn abandoned_tail(past_ttl: bool) -> Verdict {
    let acked = |offset, at_ms| Outcome::Acked { offset, at_ms };
    let sent = |partition, at_ms, outcome| Sent {
        partition,
        at_ms,
        outcome,
    };
    let log = StreamLog {
        sent: vec![
            sent(0, 1000, acked(0, 1000)),
            sent(0, 1100, acked(1, 1100)),
            sent(0, 1200, acked(2, 1200)),
            sent(0, 1300, acked(3, 1300)),
            sent(0, 1400, acked(3, 7000)),
            sent(0, 1500, acked(4, 7100)),
        ],
        ..StreamLog::default()
    };
    let streams = vec![(spec(true, Acks::Durable), log)];
    let mut leaders = LeaderLog::default();
    leaders.changes.insert(
        ("t".into(), 0),
        vec![(0, "a1".into(), 1), (6000, "a2".into(), 2)],
    );
    let events = [Event {
        start_ms: 1550,
        end_ms: 6000,
        kind: FaultKind::Kill,
        agent: Some("a1".into()),
        what: "SIGKILL".into(),
        past_ttl,
        error: None,
    }];
    let first = |seq: u64| FirstRead {
        at_ms: 1000 + 100 * seq,
        stamp: Some(Stamp {
            stream: 0,
            partition: 0,
            seq,
        }),
    };
    let tail = TailLog {
        topic: "t".into(),
        partition: 0,
        seen: (0..5).map(|seq| (seq, first(seq))).collect(),
        ..TailLog::default()
    };
    let mut f = HashMap::new();
    f.insert(("t".to_string(), 0), Ok(read(&[0, 1, 2, 4, 5])));
    check(&Inputs {
        streams: &streams,
        tails: &[tail],
        leaders: &leaders,
        events: &events,
        finals: &f,
        objects_only: None,
        index_faults: &[],
        live_window: (1000, 8000),
        partitions: 1,
    })
}

#[test]
fn a_read_of_a_tail_abandoned_past_the_ttl_is_excused_and_only_then() {
    let v = abandoned_tail(true);
    assert_eq!(v.total(), 0, "{:?}", v.violations);
    assert_eq!(v.streams[0].lost_excused, 1);
    assert_eq!(v.abandoned_reads, 2);
    // The same history without the agent away past its TTL: the loss of
    // seq 3 and both replaced offsets are violations.
    let v = abandoned_tail(false);
    assert_eq!(
        v.counts.get("lost (ack durable)"),
        Some(&1),
        "{:?}",
        v.counts
    );
    assert_eq!(
        v.counts.get("offset returned two different records"),
        Some(&2),
        "{:?}",
        v.counts
    );
}
