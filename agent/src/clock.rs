//! Wall-clock time as the agent reads it: milliseconds since the Unix
//! epoch, for lease expiry, heartbeats and append times. Callers that make
//! decisions on time (the metadata store, the lease table) take it as an
//! argument, so tests pass their own.

use std::time::{SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}
