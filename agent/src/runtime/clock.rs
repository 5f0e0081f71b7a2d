//! Time as the agent reads it: wall-clock milliseconds since the Unix
//! epoch (what is stored and shown: append times, expiry stamps for
//! people), and monotonic milliseconds since the process started (every
//! duration a decision depends on: sessions, timeouts). Callers that make
//! decisions on time (the metadata store, the lease table) take it as an
//! argument, so tests pass their own.

use std::sync::OnceLock;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Milliseconds on the monotonic clock since this process first asked:
/// no step of the wall clock moves it. Meaningless to another process.
pub fn mono_ms() -> i64 {
    static START: OnceLock<Instant> = OnceLock::new();
    let start = *START.get_or_init(Instant::now);
    i64::try_from(start.elapsed().as_millis()).unwrap_or(i64::MAX)
}
