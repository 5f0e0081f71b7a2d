//! Start positions a consumer can seek to (`beginning`, `end`, an offset,
//! `N` before the end, the first record at or after a time), parsed the way
//! kcat and the Kafka console tools write them, and resolved to an offset
//! by asking the partition's leader. Owns no consumer state.

use std::fmt;
use std::str::FromStr;

use super::fetch::{fetch, FetchAt};
use crate::error::{Error, Result};
use crate::net::metadata::Metadata;
use crate::net::pool::ConnectionPool;

/// Where to start reading a partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Offset {
    /// The first offset still readable (`beginning`).
    Beginning,
    /// The high watermark: only records produced from now on (`end`).
    End,
    /// This offset (`N`); past the high watermark is an error.
    At(u64),
    /// `N` records before the end (`-N`), or the beginning if fewer.
    FromEnd(u64),
    /// The first record whose timestamp is at or after this many
    /// milliseconds since the Unix epoch (`@T`); the end if none is.
    /// Found by binary search over the partition's records, so exact only
    /// while timestamps grow with offsets (as producer-assigned ones do).
    Timestamp(u64),
}

impl FromStr for Offset {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Offset, String> {
        let bad = || {
            format!(
                "invalid start position {s:?}: use beginning, end, an offset N, -N (N before \
                 the end) or @T (milliseconds since the Unix epoch)"
            )
        };
        match s {
            "beginning" | "earliest" => Ok(Offset::Beginning),
            "end" | "latest" => Ok(Offset::End),
            _ => {
                if let Some(n) = s.strip_prefix('-') {
                    n.parse().map(Offset::FromEnd).map_err(|_| bad())
                } else if let Some(t) = s.strip_prefix('@') {
                    t.parse().map(Offset::Timestamp).map_err(|_| bad())
                } else {
                    s.parse().map(Offset::At).map_err(|_| bad())
                }
            }
        }
    }
}

impl fmt::Display for Offset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Offset::Beginning => f.write_str("beginning"),
            Offset::End => f.write_str("end"),
            Offset::At(n) => write!(f, "{n}"),
            Offset::FromEnd(n) => write!(f, "-{n}"),
            Offset::Timestamp(t) => write!(f, "@{t}"),
        }
    }
}

/// The partition's first readable offset and its high watermark, from its
/// leader.
///
/// # Cancellation
/// Read-only: dropping the future has no effect.
pub(super) async fn watermarks(
    metadata: &Metadata,
    pool: &ConnectionPool,
    topic: &str,
    partition: u32,
) -> Result<(u64, u64)> {
    let f = fetch(metadata, pool, probe(topic, partition, 0)).await?;
    match (f.log_start, f.high_watermark) {
        (Some(low), Some(high)) => Ok((low, high)),
        _ => Err(no_leader(topic, partition)),
    }
}

fn probe(topic: &str, partition: u32, offset: u64) -> FetchAt<'_> {
    FetchAt {
        topic,
        partition,
        offset,
        last_epoch: None,
        max_bytes: 1,
        wait_ms: 0,
        read_level: super::fetch::ReadLevel::Durable,
    }
}

fn no_leader(topic: &str, partition: u32) -> Error {
    Error::Transport {
        address: String::new(),
        message: format!("no leader of {topic}/{partition} answered; try again"),
    }
}

/// The offset `at` names in a partition.
///
/// # Cancellation
/// Read-only: dropping the future has no effect.
pub(super) async fn resolve(
    metadata: &Metadata,
    pool: &ConnectionPool,
    topic: &str,
    partition: u32,
    at: Offset,
) -> Result<u64> {
    let (low, high) = watermarks(metadata, pool, topic, partition).await?;
    match at {
        Offset::Beginning => Ok(low),
        Offset::End => Ok(high),
        Offset::FromEnd(n) => Ok(high.saturating_sub(n).max(low)),
        Offset::At(n) if n > high => Err(Error::Status {
            code: tonic::Code::OutOfRange,
            message: format!(
                "offset {n} is past the end of {topic}/{partition} (high watermark {high})"
            ),
            retry_after: None,
        }),
        Offset::At(n) => Ok(n),
        Offset::Timestamp(t) => {
            // The first offset in [lo, hi) whose record is at or after t.
            let (mut lo, mut hi) = (low, high);
            while lo < hi {
                let mid = lo + (hi - lo) / 2;
                let f = fetch(metadata, pool, probe(topic, partition, mid)).await?;
                let Some(r) = f.records.into_iter().find(|r| r.offset >= mid) else {
                    return Err(no_leader(topic, partition));
                };
                if r.timestamp >= t {
                    hi = mid;
                } else {
                    lo = r.offset + 1;
                }
            }
            Ok(lo)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_forms_kcat_uses() {
        assert_eq!("beginning".parse(), Ok(Offset::Beginning));
        assert_eq!("end".parse(), Ok(Offset::End));
        assert_eq!("42".parse(), Ok(Offset::At(42)));
        assert_eq!("-10".parse(), Ok(Offset::FromEnd(10)));
        assert_eq!(
            "@1700000000000".parse(),
            Ok(Offset::Timestamp(1_700_000_000_000))
        );
        for bad in ["", "-", "@", "x", "-x", "1.5", "@-3"] {
            let e = bad.parse::<Offset>().unwrap_err();
            assert!(e.contains("invalid start position"), "{bad}: {e}");
        }
        for o in [
            Offset::Beginning,
            Offset::End,
            Offset::At(3),
            Offset::FromEnd(2),
            Offset::Timestamp(9),
        ] {
            assert_eq!(o.to_string().parse(), Ok(o));
        }
    }
}

/// Where reading a partition starts again when its position is out of
/// range (below the log start or past the high watermark), and where a
/// group member starts a partition its group never committed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AutoOffsetReset {
    /// The first readable offset.
    Earliest,
    /// The high watermark: only records produced from now on (Kafka's
    /// default).
    #[default]
    Latest,
    /// Fail the poll: `OUT_OF_RANGE` from the agent, or for a partition a
    /// group never committed [`crate::Error::Config`] naming it.
    Error,
}

impl std::str::FromStr for AutoOffsetReset {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "earliest" | "beginning" => Ok(AutoOffsetReset::Earliest),
            "latest" | "end" => Ok(AutoOffsetReset::Latest),
            "error" | "none" => Ok(AutoOffsetReset::Error),
            _ => Err(format!(
                "invalid auto offset reset {s:?}: use earliest, latest or error"
            )),
        }
    }
}

impl AutoOffsetReset {
    /// Where reading starts again; `None` for [`AutoOffsetReset::Error`].
    pub fn start(self) -> Option<Offset> {
        match self {
            AutoOffsetReset::Earliest => Some(Offset::Beginning),
            AutoOffsetReset::Latest => Some(Offset::End),
            AutoOffsetReset::Error => None,
        }
    }
}
