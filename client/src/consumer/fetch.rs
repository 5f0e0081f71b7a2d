//! One partition's Fetch RPC, with the retries of the shared retry table
//! and a deadline the client enforces. Owns no consumer state: it returns
//! what the agent answered and the caller decides what moves.

use std::time::Duration;

use streamhouse_proto as pb;
use streamhouse_proto::fetch_service_client::FetchServiceClient;

use super::ConsumerRecord;
use crate::error::{Error, Result};
use crate::net::metadata::Metadata;
use crate::net::pool::{bounded, ConnectionPool};
use crate::retry::{classify, RetryAction};

/// What one fetch of a partition returned.
#[derive(Debug, Default)]
pub struct Fetched {
    /// The records, in offset order.
    pub records: Vec<ConsumerRecord>,
    /// Offset the next produced record will get; `None` when no leader
    /// answered in time (the partition simply has nothing this time).
    pub high_watermark: Option<u64>,
    /// First offset still readable.
    pub log_start: Option<u64>,
}

/// Where and how much to fetch.
pub(super) struct FetchAt<'a> {
    pub topic: &'a str,
    pub partition: u32,
    pub offset: u64,
    pub max_bytes: u32,
    pub wait_ms: u32,
}

/// One partition's fetch. A failure the retry table calls retriable
/// ([`crate::retry::classify`]: the leader cannot be reached, moved, lost
/// its lease, or asked for a pause) is retried with backoff, after a fresh
/// metadata lookup where the table says so, until `wait_ms` (at least
/// 200 ms) is over; then the partition simply has no records this time, as
/// during a failover. Other errors are returned.
///
/// # Cancellation
/// Read-only: dropping the future has no effect.
pub(super) async fn fetch(
    metadata: &Metadata,
    pool: &ConnectionPool,
    at: FetchAt<'_>,
) -> Result<Fetched> {
    let deadline =
        tokio::time::Instant::now() + Duration::from_millis(u64::from(at.wait_ms).max(200));
    let mut tries: u32 = 0;
    loop {
        tries += 1;
        let err = match from_leader(metadata, pool, &at).await {
            Ok(f) => return Ok(f),
            Err(e) => e,
        };
        let action = classify(&err);
        if action == RetryAction::Fail {
            return Err(err);
        }
        let now = tokio::time::Instant::now();
        if now >= deadline {
            tracing::debug!(topic = at.topic, at.partition, error = %err, "fetch: no answer yet");
            return Ok(Fetched::default());
        }
        if matches!(
            action,
            RetryAction::FreshRoute | RetryAction::RefreshMetadata
        ) {
            let _ = metadata.refresh(pool, &[at.topic.to_owned()]).await;
        }
        let mut backoff = Duration::from_millis(50 * u64::from(tries.min(10)));
        if let Error::Status {
            retry_after: Some(pause),
            ..
        } = &err
        {
            backoff = backoff.max(*pause);
        }
        tokio::time::sleep_until((now + backoff).min(deadline)).await;
    }
}

async fn from_leader(
    metadata: &Metadata,
    pool: &ConnectionPool,
    at: &FetchAt<'_>,
) -> Result<Fetched> {
    let leader = metadata.leader(pool, at.topic, at.partition).await?;
    let lease = pool.get(&leader).await?;
    let mut client = FetchServiceClient::new(lease.channel()).max_decoding_message_size(256 << 20);
    // The agent answers within `wait_ms`; one that is paused or cut off
    // answers nothing, so the client bounds the call itself.
    let limit = Duration::from_millis(u64::from(at.wait_ms)) + pool.config().call_timeout;
    let call = client.fetch(pb::FetchRequest {
        topic: at.topic.to_owned(),
        partition: at.partition,
        offset: at.offset,
        max_bytes: at.max_bytes,
        max_wait_ms: at.wait_ms,
    });
    match bounded(limit, &format!("fetch from {leader}"), call).await {
        Ok(r) => accept_response(at.topic, at.partition, at.offset, r.into_inner()),
        Err(s) => {
            let e = Error::from(s);
            if classify(&e) == RetryAction::FreshRoute {
                pool.invalidate(&leader, lease.id());
            }
            Err(e)
        }
    }
}

/// Checks an agent's Fetch answer before the consumer trusts it: records
/// in strictly increasing offsets, none below `asked` (the offset the
/// request named), and a log start no later than the high watermark. A
/// broken answer is [`Error::Protocol`] naming what is wrong; the
/// consumer's position does not move on it.
pub fn accept_response(
    topic: &str,
    partition: u32,
    asked: u64,
    r: pb::FetchResponse,
) -> Result<Fetched> {
    let bad = |what: String| {
        Err(Error::Protocol(format!(
            "the Fetch answer for {topic}/{partition} from offset {asked} {what}"
        )))
    };
    if r.log_start_offset > r.high_watermark {
        return bad(format!(
            "has log start {} past its high watermark {}",
            r.log_start_offset, r.high_watermark
        ));
    }
    let mut next = asked;
    for rec in &r.records {
        if rec.offset < next {
            return bad(format!(
                "returns offset {} where {next} or later was due",
                rec.offset
            ));
        }
        next = rec.offset.saturating_add(1);
    }
    Ok(Fetched {
        high_watermark: Some(r.high_watermark),
        log_start: Some(r.log_start_offset),
        records: r
            .records
            .into_iter()
            .map(|r| ConsumerRecord {
                topic: topic.to_owned(),
                partition,
                offset: r.offset,
                key: r.key,
                value: r.value,
                timestamp: r.timestamp,
                headers: r.headers.into_iter().map(|h| (h.key, h.value)).collect(),
            })
            .collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(offset: u64) -> pb::FetchedRecord {
        pb::FetchedRecord {
            offset,
            ..Default::default()
        }
    }

    fn answer(offsets: &[u64], hw: u64, start: u64) -> pb::FetchResponse {
        pb::FetchResponse {
            records: offsets.iter().map(|o| rec(*o)).collect(),
            high_watermark: hw,
            log_start_offset: start,
        }
    }

    #[test]
    fn answers_that_would_move_a_position_backwards_are_refused() {
        let ok = accept_response("t", 0, 5, answer(&[5, 6, 9], 10, 0)).unwrap();
        assert_eq!(ok.records.len(), 3);
        for (offsets, why) in [
            (&[4u64][..], "below the offset asked"),
            (&[5, 7, 6][..], "out of order"),
            (&[5, 5][..], "twice"),
        ] {
            let e = accept_response("t", 0, 5, answer(offsets, 10, 0)).unwrap_err();
            assert!(matches!(e, Error::Protocol(_)), "{why}: {e}");
        }
        assert!(accept_response("t", 0, 0, answer(&[], 3, 4)).is_err());
    }
}
