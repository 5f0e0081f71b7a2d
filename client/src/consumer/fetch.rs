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
    /// The records read before the asked offset under the epoch named in
    /// the request are gone from `end_offset` on (see [`Diverged`]).
    pub diverged: Option<Diverged>,
    /// Where to fetch next when it is past the last record answered (key
    /// compaction removed the records in between; perhaps `records` is
    /// empty).
    pub next_offset: Option<u64>,
}

/// The partition's leader has no records of the consumer's last epoch from
/// `end_offset` on: a leader that died before shipping them was replaced,
/// and its successor wrote other records at those offsets. Continue at
/// `end_offset`, whose previous record has leader epoch `epoch`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Diverged {
    /// Where the new leader continued: the consumer's next offset.
    pub end_offset: u64,
    /// Leader epoch of the record before `end_offset` (`None` at 0 or when
    /// unknown).
    pub epoch: Option<u64>,
}

/// Where and how much to fetch.
/// Which records a consumer reads.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ReadLevel {
    /// Every record the leader made durable (default, the lowest latency).
    /// A leader that dies before shipping can take some back; the consumer
    /// then goes back to where the new leader continued and counts it in
    /// `truncations()`.
    #[default]
    Durable,
    /// Only records committed to object storage: none is ever taken back.
    /// Records arrive about one ack-`object` latency after they are
    /// written (a segment seal, its upload and commit), and the high
    /// watermark the consumer sees is the committed end.
    Object,
}

pub(super) struct FetchAt<'a> {
    pub topic: &'a str,
    pub partition: u32,
    pub offset: u64,
    /// Leader epoch of the record before `offset`, when known.
    pub last_epoch: Option<u64>,
    pub max_bytes: u32,
    pub wait_ms: u32,
    pub read_level: ReadLevel,
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
        let backoff = pool.retry().delay_after(tries, &err);
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
        last_fetched_epoch: at.last_epoch,
        read_level: match at.read_level {
            ReadLevel::Durable => pb::ReadLevel::Durable,
            ReadLevel::Object => pb::ReadLevel::Object,
        } as i32,
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
/// request named), a log start no later than the high watermark, epochs
/// in offset order starting at the first record, and a divergence only
/// below `asked` and without records. A broken answer is
/// [`Error::Protocol`] naming what is wrong; the consumer's position does
/// not move on it.
///
/// # Errors
/// [`Error::Protocol`] naming what the answer breaks (records out of order or
/// outside the range asked, epochs out of order, a divergence that is not below
/// the offset asked).
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
    if r.next_offset != 0 && (r.next_offset < next || r.next_offset > r.high_watermark) {
        return bad(format!(
            "says to fetch next at {}, before the offset {next} it answered up to or past \
             its high watermark {}",
            r.next_offset, r.high_watermark
        ));
    }
    if let Some(d) = &r.diverging {
        if d.end_offset >= asked || !r.records.is_empty() {
            return bad(format!(
                "says the log diverges at {} (it must be below the offset asked, with no records)",
                d.end_offset
            ));
        }
    }
    if let (Some(first), Some(e)) = (r.records.first(), r.epochs.first()) {
        if e.start_offset != first.offset
            || r.epochs
                .windows(2)
                .any(|w| w[1].start_offset <= w[0].start_offset)
        {
            return bad("names record epochs out of order".into());
        }
    }
    let next_offset = Some(r.next_offset).filter(|n| *n > 0);
    let diverged = r.diverging.map(|d| Diverged {
        end_offset: d.end_offset,
        epoch: Some(d.epoch).filter(|e| *e > 0),
    });
    let mut spans = r.epochs.into_iter().peekable();
    let mut epoch = None;
    let records = r
        .records
        .into_iter()
        .map(|r| {
            while let Some(s) = spans.next_if(|s| s.start_offset <= r.offset) {
                epoch = Some(s.epoch).filter(|e| *e > 0);
            }
            ConsumerRecord {
                topic: topic.to_owned(),
                partition,
                offset: r.offset,
                key: r.key,
                value: r.value,
                timestamp: r.timestamp,
                headers: r.headers.into_iter().map(|h| (h.key, h.value)).collect(),
                leader_epoch: epoch,
            }
        })
        .collect();
    Ok(Fetched {
        high_watermark: Some(r.high_watermark),
        log_start: Some(r.log_start_offset),
        records,
        diverged,
        next_offset,
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
            ..Default::default()
        }
    }

    fn span(start_offset: u64, epoch: u64) -> pb::EpochStart {
        pb::EpochStart {
            start_offset,
            epoch,
        }
    }

    #[test]
    fn records_carry_the_epochs_the_answer_names() {
        let mut a = answer(&[5, 6, 9, 10], 11, 0);
        a.epochs = vec![span(5, 0), span(6, 2), span(10, 3)];
        let f = accept_response("t", 0, 5, a).unwrap();
        let epochs: Vec<_> = f.records.iter().map(|r| r.leader_epoch).collect();
        assert_eq!(epochs, vec![None, Some(2), Some(2), Some(3)]);
        let mut bad = answer(&[5, 6], 7, 0);
        bad.epochs = vec![span(6, 2)];
        assert!(
            accept_response("t", 0, 5, bad).is_err(),
            "first record not covered"
        );
    }

    #[test]
    fn a_divergence_must_lie_below_the_offset_asked() {
        let mut a = answer(&[], 9, 0);
        a.diverging = Some(pb::DivergingEpoch {
            epoch: 4,
            end_offset: 7,
        });
        let f = accept_response("t", 0, 8, a.clone()).unwrap();
        assert_eq!(
            f.diverged,
            Some(Diverged {
                end_offset: 7,
                epoch: Some(4)
            })
        );
        assert!(accept_response("t", 0, 7, a.clone()).is_err());
        a.records = vec![rec(8)];
        assert!(accept_response("t", 0, 8, a).is_err());
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
