//! ListOffsets at partitions' leaders: the first offset whose record is at
//! or after a time (and the earliest and latest offsets), one request per
//! leader with at most [`MAX_QUERIES`] partitions, retried by the retry
//! table. Owns no consumer state.

use std::collections::{BTreeMap, HashMap};

use streamhouse_proto as pb;
use streamhouse_proto::group_service_client::GroupServiceClient;

use crate::error::{Error, Result};
use crate::net::metadata::Metadata;
use crate::net::pool::{bounded, ConnectionPool};
use crate::retry::{classify, RetryAction};

/// Partitions one ListOffsets request names at most (the agent's limit).
pub const MAX_QUERIES: usize = 1_000;
/// Rounds of requests before the last retriable error is returned.
const MAX_ROUNDS: u32 = 6;

/// Where a time query landed in a partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OffsetAndTimestamp {
    /// The first offset whose record's timestamp is at or after the time
    /// asked; the high watermark when no record is that recent.
    pub offset: u64,
    /// That record's timestamp (ms since the Unix epoch); `None` at the
    /// high watermark, or where a bounded search in object storage stopped
    /// at a range it did not read (an offset never later than the answer).
    pub timestamp_ms: Option<i64>,
}

/// Answers `queries` (partition, time in ms; -2 the log start, -1 the end)
/// of `topic`, by partition. A partition whose leader moved is asked again
/// after a metadata refresh, up to [`MAX_ROUNDS`] rounds with backoff.
///
/// # Cancellation
/// Read-only: dropping the future has no effect.
pub(crate) async fn list_offsets(
    metadata: &Metadata,
    pool: &ConnectionPool,
    topic: &str,
    queries: &[(u32, i64)],
) -> Result<HashMap<u32, OffsetAndTimestamp>> {
    let mut answers = HashMap::with_capacity(queries.len());
    let mut left: Vec<(u32, i64)> = queries.to_vec();
    let mut round = 0;
    while !left.is_empty() {
        round += 1;
        let mut by_leader: BTreeMap<String, Vec<(u32, i64)>> = BTreeMap::new();
        for &(p, t) in &left {
            let leader = metadata.leader(pool, topic, p).await?;
            by_leader.entry(leader).or_default().push((p, t));
        }
        let mut failed = Vec::new();
        let mut last_err = None;
        for (leader, qs) in by_leader {
            for chunk in qs.chunks(MAX_QUERIES) {
                match ask(pool, &leader, topic, chunk).await {
                    Ok(found) => answers.extend(found),
                    Err(e) if classify(&e) == RetryAction::Fail || round >= MAX_ROUNDS => {
                        return Err(e)
                    }
                    Err(e) => {
                        failed.extend_from_slice(chunk);
                        last_err = Some(e);
                    }
                }
            }
        }
        if let Some(e) = last_err {
            tracing::debug!(topic, error = %e, "list offsets: asking again");
            let _ = metadata.refresh(pool, &[topic.to_owned()]).await;
            tokio::time::sleep(pool.retry().delay_after(round, &e)).await;
        }
        left = failed;
    }
    Ok(answers)
}

/// A partition's log start and high watermark: the earliest and latest
/// offsets in one ListOffsets to its leader, asked again after a metadata
/// refresh (up to [`MAX_ROUNDS`] rounds) while the leader moves.
///
/// # Cancellation
/// Read-only: dropping the future has no effect.
pub(crate) async fn watermarks(
    metadata: &Metadata,
    pool: &ConnectionPool,
    topic: &str,
    partition: u32,
) -> Result<(u64, u64)> {
    let mut round = 0;
    loop {
        round += 1;
        let leader = metadata.leader(pool, topic, partition).await?;
        match ask(pool, &leader, topic, &[(partition, -2), (partition, -1)]).await {
            Ok(found) => match found.as_slice() {
                [(_, low), (_, high)] => return Ok((low.offset, high.offset)),
                _ => {
                    return Err(Error::Protocol(format!(
                        "the ListOffsets answer for {topic}/{partition} from {leader} does \
                         not hold two offsets"
                    )))
                }
            },
            Err(e) if classify(&e) == RetryAction::Fail || round >= MAX_ROUNDS => return Err(e),
            Err(e) => {
                tracing::debug!(topic, partition, error = %e, "watermarks: asking again");
                let _ = metadata.refresh(pool, &[topic.to_owned()]).await;
                tokio::time::sleep(pool.retry().delay_after(round, &e)).await;
            }
        }
    }
}

/// One ListOffsets to `leader`.
async fn ask(
    pool: &ConnectionPool,
    leader: &str,
    topic: &str,
    queries: &[(u32, i64)],
) -> Result<Vec<(u32, OffsetAndTimestamp)>> {
    let lease = pool.get(leader).await?;
    let mut client = GroupServiceClient::new(lease.channel());
    let call = client.list_offsets(pb::ListOffsetsRequest {
        topic: topic.to_owned(),
        queries: queries
            .iter()
            .map(
                |&(partition, timestamp_ms)| pb::list_offsets_request::Query {
                    partition,
                    timestamp_ms,
                },
            )
            .collect(),
    });
    let limit = pool.config().call_timeout;
    let r = match bounded(limit, &format!("list offsets at {leader}"), call).await {
        Ok(r) => r.into_inner(),
        Err(s) => {
            let e = Error::from(s);
            if classify(&e) == RetryAction::FreshRoute {
                pool.invalidate(leader, lease.id());
            }
            return Err(e);
        }
    };
    if r.answers.len() != queries.len()
        || r.answers
            .iter()
            .zip(queries)
            .any(|(a, q)| a.partition != q.0)
    {
        return Err(Error::Protocol(format!(
            "the ListOffsets answer for {topic} from {leader} does not match its {} queries",
            queries.len()
        )));
    }
    Ok(r.answers
        .into_iter()
        .map(|a| {
            let found = OffsetAndTimestamp {
                offset: a.offset,
                timestamp_ms: (a.timestamp_ms >= 0).then_some(a.timestamp_ms),
            };
            (a.partition, found)
        })
        .collect())
}
