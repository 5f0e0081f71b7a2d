//! The sender task: dispatches closed (or lingered) batches, up to the
//! in-flight limits, one task per batch that delivers it and completes its
//! records. Picks no route and retries nothing itself (see `request`).

use std::sync::atomic::Ordering;
use std::sync::Arc;

use bytes::Bytes;
use streamhouse_proto as pb;
use tokio::time::Instant;

use super::accumulator::ClosedBatch;
use super::config::Acks;
use super::delivery::Completion;
use super::request::deliver;
use super::sequencer::{must_wait, PartitionState};
use super::state::{partition_state, Inner};
use crate::record::RecordMetadata;

/// A batch ready to go.
struct Dispatch {
    topic: String,
    partition: u32,
    /// (producer id, base sequence); (0, 0) without idempotence.
    seq: (i64, i32),
    batch: ClosedBatch<Completion>,
}

/// Dispatches closed (or lingered) batches, up to the in-flight limit per
/// partition.
pub(super) async fn sender_loop(inner: Arc<Inner>) {
    let max_in_flight = if inner.config.idempotence {
        inner.config.max_in_flight_per_partition
    } else {
        1
    };
    loop {
        let notified = inner.wake_sender.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        let (dispatch, deadline, done) = {
            let mut guard = inner.state.lock();
            let st = &mut *guard;
            let now = Instant::now();
            let flushing = st.flushing > 0 || st.shutdown;
            let mut out = Vec::new();
            let mut deadline: Option<Instant> = None;
            let pid = *inner.pid.lock();
            let idempotent = inner.config.idempotence;
            let renewing = inner.renewing_pid.load(Ordering::Acquire) > 0;
            let all = st
                .topics
                .iter_mut()
                .flat_map(|(t, v)| {
                    v.partitions
                        .iter_mut()
                        .enumerate()
                        .map(move |(p, s)| (t, p as u32, s))
                })
                .filter_map(|(t, p, s)| s.as_mut().map(|s| (t, p, s)));
            for (topic, partition, ps) in all {
                let can_send = |ps: &PartitionState| {
                    ps.in_flight.len() < max_in_flight
                        && !must_wait(ps, pid.0, idempotent, renewing)
                };
                if flushing {
                    ps.acc.close();
                } else if can_send(ps) {
                    // While every request slot is taken the open batch keeps
                    // filling (up to its size limits) instead of closing at
                    // linger: the next request then carries everything that
                    // arrived meanwhile, which keeps slow acks (ack `object`,
                    // a slow disk) from turning into many tiny requests.
                    ps.acc.expire(now);
                }
                // The leader's connections are all busy: an answer frees one.
                let mut no_capacity = false;
                while can_send(ps) {
                    let Some(mut batch) = ps.acc.pop_closed() else {
                        break;
                    };
                    let leader = inner.metadata.cached_leader(topic, partition);
                    if !leader.as_deref().is_none_or(|l| inner.pool.has_capacity(l)) {
                        ps.acc.push_front(batch);
                        no_capacity = true;
                        break;
                    }
                    let seq = if idempotent {
                        ps.next_sequence(pid, &mut batch.builder)
                    } else {
                        (0, 0)
                    };
                    ps.in_flight.push_back(seq);
                    out.push(Dispatch {
                        topic: topic.clone(),
                        partition,
                        seq,
                        batch,
                    });
                }
                // A partition that may not send (all its slots taken, or
                // holding its batches: see `must_wait`) is woken by the
                // answer that frees it, not by its linger: an expired
                // linger would otherwise spin this loop.
                if let Some(d) = ps.acc.deadline().filter(|_| can_send(ps) && !no_capacity) {
                    deadline = Some(deadline.map_or(d, |x: Instant| x.min(d)));
                }
            }
            let done = st.shutdown && st.outstanding == 0;
            (out, deadline, done)
        };
        if done {
            return;
        }
        for d in dispatch {
            tokio::spawn(send_batch(inner.clone(), d));
        }
        match deadline {
            Some(at) => {
                tokio::select! {
                    _ = &mut notified => {}
                    _ = tokio::time::sleep_until(at) => {}
                }
            }
            None => notified.await,
        }
    }
}

/// Sends one batch with retries, then resolves its records' futures.
async fn send_batch(inner: Arc<Inner>, d: Dispatch) {
    let Dispatch {
        topic,
        partition,
        seq,
        batch,
    } = d;
    let ClosedBatch {
        builder,
        completions,
        reserved,
        created,
    } = batch;
    let count = builder.len();
    let started = Instant::now();
    inner.counters.queue_ns_total.fetch_add(
        started.duration_since(created).as_nanos() as u64,
        Ordering::Relaxed,
    );
    inner.counters.batches.fetch_add(1, Ordering::Relaxed);
    let req = pb::ProduceRequest {
        topic: topic.clone(),
        partition,
        records: Vec::new(),
        ack: match inner.config.acks {
            Acks::Durable => pb::AckLevel::AckDurable,
            Acks::Object => pb::AckLevel::AckObject,
        } as i32,
        producer_id: 0,
        producer_epoch: 0,
        base_sequence: 0,
        batch: Bytes::from(builder.finish()),
        oldest_sequence: None,
    };
    let mut retried = false;
    let result = deliver(&inner, &topic, partition, seq, req, started, &mut retried).await;
    let failed = result.is_err();
    match result {
        Ok(resp) => {
            inner
                .counters
                .records_acked
                .fetch_add(u64::from(count), Ordering::Relaxed);
            let mut offset = resp.base_offset;
            let shared_topic: Arc<str> = Arc::from(topic.as_str());
            for (tx, ts) in completions {
                let n = tx.records();
                tx.complete(Ok(RecordMetadata {
                    topic: shared_topic.clone(),
                    partition,
                    offset,
                    timestamp: ts,
                }));
                offset += u64::from(n);
            }
        }
        Err(e) => {
            tracing::warn!(%topic, partition, records = count, error = %e, "batch failed");
            inner
                .counters
                .records_failed
                .fetch_add(u64::from(count), Ordering::Relaxed);
            for (tx, _) in completions {
                tx.complete(Err(e.clone()));
            }
        }
    }
    inner.memory.add_permits(reserved);
    {
        let mut st = inner.state.lock();
        if let Some(ps) = partition_state(&mut st, &topic, partition) {
            if let Some(i) = ps.in_flight.iter().position(|&x| x == seq) {
                ps.in_flight.remove(i);
            }
            if retried {
                ps.retrying = ps.retrying.saturating_sub(1);
            }
            if failed {
                ps.broken_pid = seq.0;
            }
        }
        st.outstanding -= count as usize;
        if st.outstanding == 0 {
            inner.idle.notify_waiters();
        }
    }
    inner.answered.notify_waiters();
    if failed && inner.config.idempotence {
        // The failed batch may or may not be stored; never reuse its
        // sequence numbers: take a new producer id for what follows. The
        // partition holds its next batch meanwhile.
        inner.renewing_pid.fetch_add(1, Ordering::AcqRel);
        if let Err(e) = inner.new_producer_id().await {
            tracing::warn!(error = %e, "could not obtain a new producer id");
        }
        inner.renewing_pid.fetch_sub(1, Ordering::AcqRel);
    }
    inner.wake_sender.notify_one();
}
