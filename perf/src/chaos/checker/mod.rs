//! The checker: the model every history must fit. An acknowledged record
//! is readable at its acknowledged offset, once, unaltered, in send order
//! per partition (duplicates and reordering are allowed only for
//! non-idempotent producers); an offset never returns two different
//! records; offsets have no holes and a reader never skips one that later
//! fills; the high watermark and lease epochs never go backwards; the
//! chunk index has no overlap or gap; every partition accepts writes again
//! once the faults are healed. Records acknowledged at `durable` by an
//! agent that was then away past its lease TTL may be lost (the documented
//! limit): counted apart, and so is what readers saw of the tail such an
//! agent abandoned. Owns the judging only; it reads nothing itself.

use std::collections::{BTreeMap, HashMap, HashSet};

use streamhouse_client::Acks;

use crate::chaos::chunks::IndexFault;
use crate::chaos::nemesis::Event;
use crate::chaos::observe::{FirstRead, LeaderLog, Reads, TailLog};
use crate::chaos::workload::{Outcome, StreamLog, StreamSpec};

/// Per stream: what was sent, what the model says of it.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct StreamReport {
    pub name: String,
    pub topic: String,
    pub acks: String,
    pub idempotent: bool,
    pub sent: u64,
    pub acknowledged: u64,
    pub failed: u64,
    /// No answer by the end (neither acknowledged nor failed).
    pub pending: u64,
    pub lost: u64,
    /// Lost, acknowledged at `durable` by an agent away past its TTL.
    pub lost_excused: u64,
    /// Extra copies read back.
    pub duplicated: u64,
    /// Records read back after a record sent later to the same partition.
    pub reordered: u64,
    /// Records whose bytes are not what was sent.
    pub altered: u64,
    /// Acknowledged records found only at another offset.
    pub wrong_offset: u64,
    /// Acknowledged `object` records missing from a fresh agent that reads
    /// the object store alone.
    pub lost_from_objects: u64,
    pub errors: Vec<String>,
}

/// One break of the model.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Violation {
    pub kind: String,
    pub detail: String,
}

/// Everything the checker is given.
pub struct Inputs<'a> {
    pub streams: &'a [(StreamSpec, StreamLog)],
    pub tails: &'a [TailLog],
    pub leaders: &'a LeaderLog,
    pub events: &'a [Event],
    /// (topic, partition) → the final read, or why it failed.
    pub finals: &'a Reads,
    /// (topic, partition) → read from the object store alone (object
    /// streams only), when that phase ran.
    pub objects_only: Option<&'a Reads>,
    pub index_faults: &'a [IndexFault],
    /// Every partition must have an acknowledgement in `[from, to]` ms.
    pub live_window: (u64, u64),
    pub partitions: u32,
}

/// What the checker found.
#[derive(Debug, Default, serde::Serialize)]
pub struct Verdict {
    pub streams: Vec<StreamReport>,
    pub violations: Vec<Violation>,
    /// Violations by kind (all of them; `violations` keeps the first 20 of
    /// each kind).
    pub counts: BTreeMap<String, u64>,
    /// Offsets a reader saw while the faults ran that hold another record at
    /// the end, excused: the record seen was on a tail its leader abandoned
    /// when it was away past its TTL (lost within the documented limit, or
    /// never acknowledged there and stored again elsewhere; `check_tail`).
    pub abandoned_reads: u64,
}

impl Verdict {
    fn add(&mut self, kind: &str, detail: String) {
        let n = self.counts.entry(kind.to_string()).or_default();
        *n += 1;
        if *n <= 20 {
            self.violations.push(Violation {
                kind: kind.into(),
                detail,
            });
        }
    }

    pub fn total(&self) -> u64 {
        self.counts.values().sum()
    }
}

fn acks_name(a: Acks) -> &'static str {
    match a {
        Acks::Object => "object",
        _ => "durable",
    }
}

/// Judges one run.
pub fn check(i: &Inputs) -> Verdict {
    let mut v = Verdict::default();
    let mut gone = HashSet::new();
    for (spec, log) in i.streams {
        let r = check_stream(i, spec, log, &mut v, &mut gone);
        v.streams.push(r);
    }
    let acked = acked_at(i.streams);
    for t in i.tails {
        check_tail(i, t, &gone, &acked, &mut v);
    }
    for (at, topic, p, before, now) in &i.leaders.epoch_backwards {
        v.add(
            "epoch went backwards",
            format!("{topic}/{p} at {at} ms: lease epoch {now} after {before}"),
        );
    }
    for f in i.index_faults {
        v.add(
            &format!("chunk index {}", f.what),
            format!("{}/{}: {}", f.topic, f.partition, f.detail),
        );
    }
    for e in i
        .events
        .iter()
        .filter(|e| e.what.starts_with("exited by itself"))
    {
        v.add(
            "agent exited by itself",
            format!(
                "{} at {} ms: {}",
                e.agent.as_deref().unwrap_or("?"),
                e.start_ms,
                e.what
            ),
        );
    }
    v
}

/// Records whose loss the model allows: (stream, seq) of records lost
/// after an agent was away past its TTL (acknowledged at `durable`, or
/// never acknowledged). A reader may have seen them before they went.
type Gone = HashSet<(u8, u64)>;

fn check_stream(
    i: &Inputs,
    spec: &StreamSpec,
    log: &StreamLog,
    v: &mut Verdict,
    gone: &mut Gone,
) -> StreamReport {
    let mut r = StreamReport {
        name: spec.name.clone(),
        topic: spec.topic.clone(),
        acks: acks_name(spec.acks).into(),
        idempotent: spec.idempotent,
        sent: log.sent.len() as u64,
        failed: log.failed,
        errors: log.errors.clone(),
        ..StreamReport::default()
    };
    // Where each sequence number was read back, and what each offset holds.
    let mut at: HashMap<u64, Vec<(u32, u64)>> = HashMap::new();
    let mut by_offset: HashMap<(u32, u64), u64> = HashMap::new();
    for p in 0..i.partitions {
        let key = (spec.topic.clone(), p);
        let records = match i.finals.get(&key) {
            Some(Ok(rs)) => rs,
            Some(Err(e)) => {
                v.add("final read failed", e.clone());
                continue;
            }
            None => continue,
        };
        let mut expect = 0u64;
        let mut max_seq: Option<u64> = None;
        for s in records {
            if s.offset != expect {
                v.add(
                    "offsets missing",
                    format!(
                        "{}/{p}: offsets [{expect}, {}) were never served by the final read",
                        spec.topic, s.offset
                    ),
                );
            }
            expect = s.offset + 1;
            match s.stamp {
                Some(st) if st.stream == spec.id && st.partition == p => {
                    let places = at.entry(st.seq).or_default();
                    places.push((p, s.offset));
                    by_offset.insert((p, s.offset), st.seq);
                    if places.len() > 1 {
                        r.duplicated += 1;
                        if spec.idempotent {
                            v.add(
                                "duplicated",
                                format!(
                                    "{}/{p}: seq {} at offsets {:?}",
                                    spec.topic, st.seq, places
                                ),
                            );
                        }
                    } else if max_seq.is_some_and(|m| st.seq < m) {
                        r.reordered += 1;
                        if spec.idempotent {
                            v.add(
                                "reordered",
                                format!(
                                    "{}/{p}: seq {} at offset {} after seq {}",
                                    spec.topic,
                                    st.seq,
                                    s.offset,
                                    max_seq.unwrap_or(0)
                                ),
                            );
                        }
                    }
                    max_seq = Some(max_seq.map_or(st.seq, |m| m.max(st.seq)));
                }
                other => {
                    r.altered += 1;
                    v.add(
                        "altered",
                        format!(
                            "{}/{p} offset {}: {}",
                            spec.topic,
                            s.offset,
                            match other {
                                None => "not an intact record".to_string(),
                                Some(st) => format!(
                                    "a record of stream {} partition {} seq {}",
                                    st.stream, st.partition, st.seq
                                ),
                            }
                        ),
                    );
                }
            }
        }
    }
    let (live_from, live_to) = i.live_window;
    let mut live = vec![false; i.partitions as usize];
    for (seq, s) in log.sent.iter().enumerate() {
        let seq = seq as u64;
        let (offset, ack_ms) = match s.outcome {
            Outcome::Acked { offset, at_ms } => (offset, at_ms),
            Outcome::Pending | Outcome::Failed => {
                if matches!(s.outcome, Outcome::Pending) {
                    r.pending += 1;
                }
                if !at.contains_key(&seq) && away_past_ttl(i, &spec.topic, s.partition) {
                    gone.insert((spec.id, seq));
                }
                continue;
            }
        };
        r.acknowledged += 1;
        if (live_from..=live_to).contains(&ack_ms) {
            if let Some(l) = live.get_mut(s.partition as usize) {
                *l = true;
            }
        }
        if by_offset.get(&(s.partition, offset)) == Some(&seq) {
            continue;
        }
        if at.contains_key(&seq) {
            r.wrong_offset += 1;
            v.add(
                "acknowledged offset holds another record",
                format!("{}/{}: seq {seq} acknowledged at offset {offset} at {ack_ms} ms, read back at {:?}", spec.topic, s.partition, at[&seq]),
            );
            continue;
        }
        if spec.acks != Acks::Object && excused(i, &spec.topic, s.partition, ack_ms) {
            r.lost_excused += 1;
            gone.insert((spec.id, seq));
            continue;
        }
        r.lost += 1;
        v.add(
            &format!("lost (ack {})", acks_name(spec.acks)),
            format!(
                "{}/{}: seq {seq} sent at {} ms, acknowledged at offset {offset} at {ack_ms} ms, is not there{}",
                spec.topic,
                s.partition,
                s.at_ms,
                next_fault(i, ack_ms)
            ),
        );
    }
    for (p, ok) in live.iter().enumerate() {
        if !ok {
            v.add(
                "unavailable after the faults healed",
                format!(
                    "{}/{p}: no acknowledgement between {live_from} and {live_to} ms",
                    spec.topic
                ),
            );
        }
    }
    if spec.acks == Acks::Object {
        if let Some(objs) = i.objects_only {
            check_objects_only(i, spec, log, objs, &mut r, v);
        }
    }
    r
}

/// The first fault that started after `ms` (or within 300 ms before
/// it, an acknowledgement still in flight), to point at a cause.
fn next_fault(i: &Inputs, ms: u64) -> String {
    i.events
        .iter()
        .find(|e| e.start_ms + 300 >= ms)
        .map_or(String::new(), |e| {
            format!(
                " (next fault: {:?} {} at {} ms: {})",
                e.kind,
                e.agent.as_deref().unwrap_or("-"),
                e.start_ms,
                e.what
            )
        })
}

/// An ack-`durable` record lost because the agent that led its partition
/// was away past its TTL soon after acknowledging it.
fn excused(i: &Inputs, topic: &str, partition: u32, ack_ms: u64) -> bool {
    leader_away(
        i,
        topic,
        partition,
        (ack_ms.saturating_sub(2_000), ack_ms),
        |e| e.start_ms + 200 >= ack_ms && e.start_ms <= ack_ms + 60_000,
    )
}

/// Whether an agent that led the partition at some time was away past
/// its TTL at some time.
fn away_past_ttl(i: &Inputs, topic: &str, partition: u32) -> bool {
    leader_away(i, topic, partition, (0, u64::MAX), |_| true)
}

/// Whether an agent that led the partition at some point within `led`
/// (ms) was away past its TTL in a fault that `when` accepts.
fn leader_away(
    i: &Inputs,
    topic: &str,
    partition: u32,
    led: (u64, u64),
    when: impl Fn(&Event) -> bool,
) -> bool {
    let leaders = i.leaders.leaders_between(topic, partition, led.0, led.1);
    i.events
        .iter()
        .any(|e| e.past_ttl && when(e) && e.agent.as_ref().is_some_and(|a| leaders.contains(a)))
}

fn check_objects_only(
    i: &Inputs,
    spec: &StreamSpec,
    log: &StreamLog,
    objs: &Reads,
    r: &mut StreamReport,
    v: &mut Verdict,
) {
    let mut held: HashMap<(u32, u64), u64> = HashMap::new();
    for p in 0..i.partitions {
        match objs.get(&(spec.topic.clone(), p)) {
            Some(Ok(rs)) => {
                for s in rs {
                    if let Some(st) = s.stamp {
                        held.insert((p, s.offset), st.seq);
                    }
                }
            }
            Some(Err(e)) => v.add("object-store read failed", e.clone()),
            None => {}
        }
    }
    for (seq, s) in log.sent.iter().enumerate() {
        if let Outcome::Acked { offset, at_ms } = s.outcome {
            if held.get(&(s.partition, offset)) != Some(&(seq as u64)) {
                r.lost_from_objects += 1;
                v.add(
                    "lost from object storage (ack object)",
                    format!("{}/{}: seq {seq} acknowledged at offset {offset} at {at_ms} ms is not in the object store", spec.topic, s.partition),
                );
            }
        }
    }
}

/// Where each acknowledged record was acknowledged: (stream, seq) →
/// (partition, offset).
type AckedAt = HashMap<(u8, u64), (u32, u64)>;

fn acked_at(streams: &[(StreamSpec, StreamLog)]) -> AckedAt {
    let mut out = HashMap::new();
    for (spec, log) in streams {
        for (seq, s) in log.sent.iter().enumerate() {
            if let Outcome::Acked { offset, .. } = s.outcome {
                out.insert((spec.id, seq as u64), (s.partition, offset));
            }
        }
    }
    out
}

fn check_tail(i: &Inputs, t: &TailLog, gone: &Gone, acked: &AckedAt, v: &mut Verdict) {
    let name = format!("{}/{}", t.topic, t.partition);
    // What a reader saw at an offset may be replaced when the record was
    // lost within the documented limit (`gone`), or when it was never
    // acknowledged at that offset and was read from a leader that was
    // away past its TTL right after: the tail that leader had not shipped
    // was abandoned, and the producer's retry stored the record again at
    // the new leader (the same rule as an excused loss, at the read's
    // time instead of the acknowledgement's).
    let allowed = |off: u64, first: Option<&FirstRead>| {
        let Some(FirstRead {
            at_ms,
            stamp: Some(s),
        }) = first
        else {
            return false;
        };
        gone.contains(&(s.stream, s.seq))
            || (s.partition == t.partition
                && acked.get(&(s.stream, s.seq)) != Some(&(t.partition, off))
                && excused(i, &t.topic, t.partition, *at_ms))
    };
    for (at, off, first, later) in &t.changed {
        if !allowed(*off, t.seen.get(off)) {
            v.add(
                "offset returned two different records",
                format!("{name} offset {off} at {at} ms: {later:?}, earlier {first:?}"),
            );
        }
    }
    let after_pause = |at: u64| {
        leader_away(i, &t.topic, t.partition, (0, at), |e| {
            e.start_ms <= at && at <= e.end_ms + 120_000
        })
    };
    for (at, before, now) in t.hw_backwards.iter().filter(|h| !after_pause(h.0)) {
        v.add(
            "high watermark went backwards",
            format!("{name} at {at} ms: {now} after {before}"),
        );
    }
    let finals: HashMap<u64, Option<crate::chaos::payload::Stamp>> =
        match i.finals.get(&(t.topic.clone(), t.partition)) {
            Some(Ok(rs)) => rs.iter().map(|s| (s.offset, s.stamp)).collect(),
            _ => return,
        };
    for (at, from, to) in &t.gaps {
        if (*from..*to).any(|o| finals.contains_key(&o)) {
            v.add(
                "a reader skipped offsets that later filled",
                format!("{name}: a fetch at {at} ms from {from} returned {to} first; the final read has records in between"),
            );
        }
    }
    for (off, first) in &t.seen {
        if let Some(now) = finals.get(off) {
            if *now == first.stamp {
                continue;
            }
            if allowed(*off, Some(first)) {
                v.abandoned_reads += 1;
            } else {
                v.add(
                    "offset returned two different records",
                    format!(
                        "{name} offset {off}: read {:?} at {} ms while the faults ran, {now:?} at the end",
                        first.stamp, first.at_ms
                    ),
                );
            }
        }
    }
    let end = finals.keys().max().map_or(0, |m| m + 1);
    let vanished = t
        .seen
        .iter()
        .filter(|(o, first)| **o >= end && !allowed(**o, Some(first)))
        .count();
    if vanished > 0 {
        v.add(
            "records vanished",
            format!(
                "{name}: {vanished} offsets read while the faults ran are past the final end {end}"
            ),
        );
    }
}

#[cfg(test)]
mod tests;
