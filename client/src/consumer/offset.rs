//! Start positions a consumer can seek to (`beginning`, `end`, an offset,
//! `N` before the end, the first record at or after a time), parsed the way
//! kcat and the Kafka console tools write them, and resolved to an offset
//! by asking the partition's leader. Owns no consumer state.

use std::fmt;
use std::str::FromStr;

use super::list_offsets::list_offsets;
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
    /// Found by the partition's leader through its time indexes (local log
    /// and object storage): the first such record in offset order.
    Timestamp(u64),
}

impl FromStr for Offset {
    type Err = String;
    /// Parses a start position, times relative to now ([`Offset::parse_at`]).
    fn from_str(s: &str) -> std::result::Result<Offset, String> {
        Offset::parse_at(s, now_ms())
    }
}

impl Offset {
    /// Parses a start position as kcat and rpk write them: `beginning`
    /// (`earliest`), `end` (`latest`), `N`, `-N` (N before the end), or
    /// `@T` where T is a time as [`parse_time_ms`] reads it, relative to
    /// `now_ms` (ms since the Unix epoch).
    ///
    /// # Errors
    /// A message naming the accepted forms when `s` is none of them.
    pub fn parse_at(s: &str, now_ms: u64) -> std::result::Result<Offset, String> {
        let bad = |why: String| {
            format!(
                "invalid start position {s:?}: {why}use beginning, end, an offset N, -N (N before \
                 the end) or @TIME (ms since the Unix epoch, an RFC 3339 date such as \
                 @2026-12-05T00:00:00Z, or a time ago such as @-1h)"
            )
        };
        match s {
            "beginning" | "earliest" => Ok(Offset::Beginning),
            "end" | "latest" => Ok(Offset::End),
            _ => {
                if let Some(n) = s.strip_prefix('-') {
                    n.parse()
                        .map(Offset::FromEnd)
                        .map_err(|_| bad(String::new()))
                } else if let Some(t) = s.strip_prefix('@') {
                    parse_time_ms(t, now_ms)
                        .map(Offset::Timestamp)
                        .map_err(|e| bad(format!("{e}; ")))
                } else {
                    s.parse().map(Offset::At).map_err(|_| bad(String::new()))
                }
            }
        }
    }
}

/// A time in ms since the Unix epoch, written as rpk and kcat users write
/// one: plain ms since the epoch (`1733356800000`), an RFC 3339 date
/// (`2026-12-05T00:00:00Z`, `2026-12-05T01:00:00+01:00`; a bare
/// `2026-12-05` is midnight UTC), or a time before `now_ms` (`-1h`,
/// `-15m`, `-2h30m`, `-500ms`).
///
/// # Errors
/// A message naming the accepted forms when `s` is none of them, or when the
/// time is before the Unix epoch.
pub fn parse_time_ms(s: &str, now_ms: u64) -> std::result::Result<u64, String> {
    if let Some(ago) = s.strip_prefix('-') {
        let d = humantime::parse_duration(ago)
            .map_err(|e| format!("{s:?} is not a duration ago ({e})"))?;
        let ms = u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        return Ok(now_ms.saturating_sub(ms));
    }
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        return s
            .parse()
            .map_err(|_| format!("{s:?} is too large for ms since the Unix epoch"));
    }
    let date = if s.len() == 10 {
        format!("{s}T00:00:00Z")
    } else {
        s.to_owned()
    };
    let b = date.as_bytes();
    let zoned = b.len() > 6 && matches!(b[b.len() - 6], b'+' | b'-') && b[b.len() - 3] == b':';
    let t = if zoned {
        offset_date(&date)
    } else {
        humantime::parse_rfc3339_weak(&date).map_err(|e| e.to_string())
    }
    .map_err(|e| format!("{s:?} is not a time ({e})"))?;
    match t.duration_since(std::time::UNIX_EPOCH) {
        Ok(d) => Ok(u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
        Err(_) => Err(format!("{s:?} is before the Unix epoch")),
    }
}

/// An RFC 3339 time with a numeric UTC offset (`+01:00`; humantime reads
/// only `Z`): the local time shifted back to UTC.
fn offset_date(s: &str) -> std::result::Result<std::time::SystemTime, String> {
    let bad = || "expected YYYY-MM-DDTHH:MM:SS[.frac](Z|±HH:MM)".to_string();
    let split = s.len().checked_sub(6).ok_or_else(bad)?;
    let (local, zone) = s.split_at(split);
    let sign = match zone.as_bytes().first() {
        Some(b'+') => 1i64,
        Some(b'-') => -1i64,
        _ => return Err(bad()),
    };
    let (h, m) = zone[1..].split_once(':').ok_or_else(bad)?;
    let h: i64 = h.parse().map_err(|_| bad())?;
    let m: i64 = m.parse().map_err(|_| bad())?;
    if h > 23 || m > 59 {
        return Err(bad());
    }
    let base = humantime::parse_rfc3339_weak(&format!("{local}Z")).map_err(|e| e.to_string())?;
    let shift = std::time::Duration::from_secs(((h * 60 + m) * 60) as u64);
    let t = if sign > 0 {
        base.checked_sub(shift)
    } else {
        base.checked_add(shift)
    };
    t.ok_or_else(bad)
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
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
    super::list_offsets::watermarks(metadata, pool, topic, partition).await
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
            code: crate::Code::OutOfRange,
            message: format!(
                "offset {n} is past the end of {topic}/{partition} (high watermark {high})"
            ),
            retry_after: None,
        }),
        Offset::At(n) => Ok(n),
        Offset::Timestamp(t) => {
            let t = i64::try_from(t)
                .map_err(|_| Error::Config(format!("time {t} ms is past the largest timestamp")))?;
            let found = list_offsets(metadata, pool, topic, &[(partition, t)]).await?;
            match found.get(&partition) {
                Some(a) => Ok(a.offset.clamp(low, high.max(low))),
                None => Err(no_leader(topic, partition)),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_times_as_dates_durations_ago_and_ms() {
        let now = 1_765_000_000_000; // 2025-12-06T05:46:40Z
        let at = |s: &str| Offset::parse_at(s, now);
        assert_eq!(at("@-1h"), Ok(Offset::Timestamp(now - 3_600_000)));
        assert_eq!(at("@-2h30m"), Ok(Offset::Timestamp(now - 9_000_000)));
        assert_eq!(at("@-500ms"), Ok(Offset::Timestamp(now - 500)));
        assert_eq!(
            at("@2026-12-05T00:00:00Z"),
            Ok(Offset::Timestamp(1_796_428_800_000))
        );
        assert_eq!(at("@2026-12-05"), Ok(Offset::Timestamp(1_796_428_800_000)));
        assert_eq!(
            at("@2026-12-05T01:00:00.250+01:00"),
            Ok(Offset::Timestamp(1_796_428_800_250))
        );
        assert_eq!(
            at("@2026-12-04T19:00:00-05:00"),
            Ok(Offset::Timestamp(1_796_428_800_000))
        );
        assert_eq!(parse_time_ms("-100d", 5), Ok(0));
        for bad in [
            "@-1x",
            "@2026-12-05T00:00:00+25:00",
            "@1969-12-31T00:00:00Z",
            "@-",
        ] {
            let e = at(bad).unwrap_err();
            assert!(e.contains("invalid start position"), "{bad}: {e}");
        }
    }

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
        for bad in [
            "",
            "-",
            "@",
            "x",
            "-x",
            "1.5",
            "@-3",
            "@2026-13-01",
            "@yesterday",
        ] {
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
