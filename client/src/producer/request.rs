//! One batch's produce request with retries: an attempt against the
//! partition's leader, classifying its error, backing off, retrying at once
//! when the metadata names a new leader, and the circuit breakers' view of
//! each attempt.

use std::sync::atomic::Ordering;
use std::time::Duration;

use streamhouse_proto as pb;
use streamhouse_proto::producer_service_client::ProducerServiceClient;
use tokio::time::Instant;

use super::state::{partition_state, Inner};
use crate::error::{Error, Result};
use crate::net::breaker::BreakerState;
use crate::net::pool::bounded;
use crate::retry::{classify, RetryAction};

pub(super) async fn deliver(
    inner: &Inner,
    topic: &str,
    partition: u32,
    seq: (i64, i32),
    mut req: pb::ProduceRequest,
    started: Instant,
    retried: &mut bool,
) -> Result<pb::ProduceResponse> {
    let deadline = started + inner.config.delivery_timeout;
    let mut attempt: u32 = 0;
    loop {
        attempt += 1;
        if seq.0 != 0 {
            let mut st = inner.state.lock();
            req.oldest_sequence =
                partition_state(&mut st, topic, partition).and_then(|ps| ps.oldest(seq.0));
        }
        // The route this attempt takes ("" while the partition has none).
        let mut tried = String::new();
        let err = match attempt_once(inner, topic, partition, &req, deadline, &mut tried).await {
            Ok(resp) => return Ok(resp),
            Err(e) => e,
        };
        let mut action = classify(&err);
        // A retry goes only once every earlier batch of the partition is
        // answered: during a failure they recover one after another, in
        // order, as with one request in flight; a batch after one that
        // failed for good fails too.
        let mut waited = false;
        if action != RetryAction::Fail && !*retried {
            *retried = true;
            let mut st = inner.state.lock();
            if let Some(ps) = partition_state(&mut st, topic, partition) {
                ps.retrying += 1;
            }
        }
        if action != RetryAction::Fail && seq.0 != 0 {
            match tokio::time::timeout_at(deadline, wait_for_earlier(inner, topic, partition, seq))
                .await
            {
                Ok(Earlier::NoneUnanswered) => {}
                Ok(Earlier::Answered) => waited = true,
                Ok(Earlier::OneFailed) | Err(_) => action = RetryAction::Fail,
            }
        }
        let now = Instant::now();
        if action == RetryAction::Fail || attempt > inner.config.retries || now >= deadline {
            return Err(if attempt > 1 {
                Error::DeliveryFailed {
                    attempts: attempt,
                    last: Box::new(err),
                }
            } else {
                err
            });
        }
        inner.counters.retries.fetch_add(1, Ordering::Relaxed);
        tracing::debug!(%topic, partition, attempt, error = %err, ?action, "retrying batch");
        if action == RetryAction::AfterEarlierBatches || waited {
            continue;
        }
        // Back off, but retry as soon as the metadata names another leader
        // for the partition: after a failover the new leader is known the
        // moment its lease is taken, while the backoff may have grown to
        // seconds. After a timeout the same leader is used again unless the
        // metadata names a new one.
        let delay = inner.retry.delay_after(attempt, &err);
        wait_for_route(
            inner,
            topic,
            partition,
            &tried,
            (Instant::now() + delay).min(deadline),
        )
        .await;
    }
}

/// How often a retry backing off asks for the partition's route again;
/// 100 ms. Only the oldest unanswered batch of a partition retries at a
/// time, so this is at most one metadata request per partition in trouble.
const ROUTE_POLL: Duration = Duration::from_millis(100);

/// Waits until `until`, or less: returns once the metadata names a leader
/// for the partition other than `failed` (the route that just failed, ""
/// if it had none) whose circuit is not open. Refreshes the metadata first
/// and then every [`ROUTE_POLL`].
async fn wait_for_route(inner: &Inner, topic: &str, partition: u32, failed: &str, until: Instant) {
    loop {
        let _ = inner
            .metadata
            .refresh(&inner.pool, &[topic.to_owned()])
            .await;
        let moved = inner
            .metadata
            .cached_leader(topic, partition)
            .is_some_and(|l| {
                !l.is_empty()
                    && l != failed
                    && inner.pool.breakers.state(&l, Instant::now()) != BreakerState::Open
            });
        let now = Instant::now();
        if moved || now >= until {
            return;
        }
        tokio::time::sleep_until((now + ROUTE_POLL).min(until)).await;
    }
}

async fn attempt_once(
    inner: &Inner,
    topic: &str,
    partition: u32,
    req: &pb::ProduceRequest,
    deadline: Instant,
    tried: &mut String,
) -> Result<pb::ProduceResponse> {
    let leader = inner.metadata.leader(&inner.pool, topic, partition).await?;
    tried.clone_from(&leader);
    let lease = inner.pool.get(&leader).await?;
    let mut client = ProducerServiceClient::new(lease.channel())
        .max_encoding_message_size(64 << 20)
        .max_decoding_message_size(64 << 20);
    let mut request = tonic::Request::new(req.clone());
    let left = deadline.saturating_duration_since(Instant::now());
    let timeout = inner
        .config
        .request_timeout
        .min(left)
        .max(Duration::from_millis(1));
    // `grpc-timeout` tells the agent; the client enforces it too, since an
    // agent that is paused or cut off answers nothing at all.
    request.set_timeout(timeout);
    let t0 = Instant::now();
    inner.counters.requests.fetch_add(1, Ordering::Relaxed);
    let result = bounded(
        timeout,
        &format!("produce to {leader}"),
        client.produce(request),
    )
    .await;
    inner
        .counters
        .request_ns_total
        .fetch_add(t0.elapsed().as_nanos() as u64, Ordering::Relaxed);
    match result {
        Ok(r) => {
            inner.pool.breakers.success(&leader);
            Ok(r.into_inner())
        }
        Err(s) => {
            let e = Error::from(s);
            match classify(&e) {
                RetryAction::FreshRoute => inner.pool.invalidate(&leader, lease.id()),
                // A hung agent: count it against its circuit, so a dead
                // agent costs a few timeouts, not one per request.
                RetryAction::SameRoute if e.code() == Some(crate::Code::DeadlineExceeded) => {
                    inner.pool.breakers.failure(&leader, Instant::now())
                }
                // The agent answered: it is alive (this also ends a
                // half-open probe, which would otherwise stay open).
                _ => inner.pool.breakers.success(&leader),
            }
            Err(e)
        }
    }
}

/// What [`wait_for_earlier`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Earlier {
    /// The batch was already its partition's oldest unanswered one.
    NoneUnanswered,
    /// Earlier batches were unanswered; now all are answered.
    Answered,
    /// An earlier batch failed for good: this one can never follow it.
    OneFailed,
}

/// Before a retry: waits until every earlier batch of the partition under
/// the same producer id is answered.
async fn wait_for_earlier(inner: &Inner, topic: &str, partition: u32, seq: (i64, i32)) -> Earlier {
    let mut waited = false;
    loop {
        let answered = inner.answered.notified();
        tokio::pin!(answered);
        answered.as_mut().enable();
        {
            let mut st = inner.state.lock();
            let Some(ps) = partition_state(&mut st, topic, partition) else {
                return Earlier::OneFailed;
            };
            if ps.is_oldest(seq.0, seq.1) {
                return if ps.broken_pid == seq.0 {
                    Earlier::OneFailed
                } else if waited {
                    Earlier::Answered
                } else {
                    Earlier::NoneUnanswered
                };
            }
        }
        answered.await;
        waited = true;
    }
}
