//! The chaos run's output: a Jepsen-style summary per stream, the
//! violations by kind, the fault timeline and the command that replays the
//! schedule; and the same as JSON. Owns formatting only.

use std::fmt::Write;

use crate::chaos::checker::Verdict;
use crate::chaos::nemesis::Event;

/// Everything the report shows.
pub struct Report<'a> {
    pub seed: u64,
    pub replay: String,
    pub duration_s: f64,
    pub skipped: Vec<String>,
    pub events: &'a [Event],
    pub verdict: &'a Verdict,
    pub chunk_ranges: usize,
}

/// The human-readable report.
pub fn describe(r: &Report) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "== fault timeline ({} faults) ==", r.events.len());
    for e in r.events {
        let _ = writeln!(s, "{}", e.line());
    }
    let _ = writeln!(s, "== streams ==");
    let _ = writeln!(
        s,
        "{:<20} {:>8} {:>8} {:>7} {:>7} {:>6} {:>8} {:>6} {:>6} {:>6} {:>6} {:>6}",
        "stream",
        "sent",
        "acked",
        "failed",
        "pending",
        "lost",
        "excused",
        "dup",
        "reord",
        "alter",
        "moved",
        "objlost"
    );
    for st in &r.verdict.streams {
        let _ = writeln!(
            s,
            "{:<20} {:>8} {:>8} {:>7} {:>7} {:>6} {:>8} {:>6} {:>6} {:>6} {:>6} {:>6}",
            st.name,
            st.sent,
            st.acknowledged,
            st.failed,
            st.pending,
            st.lost,
            st.lost_excused,
            st.duplicated,
            st.reordered,
            st.altered,
            st.wrong_offset,
            st.lost_from_objects
        );
        for e in &st.errors {
            let _ = writeln!(s, "    error seen: {e}");
        }
    }
    let _ = writeln!(
        s,
        "(excused: lost at ack durable after its agent was away past the lease TTL, the documented limit; dup and reord count as violations for idempotent streams only; {} offsets read while the faults ran hold another record at the end, excused as reads of such an abandoned tail; {} chunk-index ranges checked)",
        r.verdict.abandoned_reads, r.chunk_ranges
    );
    for k in &r.skipped {
        let _ = writeln!(s, "skipped fault {k}");
    }
    if r.verdict.total() == 0 {
        let _ = writeln!(s, "== valid: 0 violations ==");
    } else {
        let _ = writeln!(s, "== INVALID: {} violations ==", r.verdict.total());
        for (k, n) in &r.verdict.counts {
            let _ = writeln!(s, "  {n:>6}  {k}");
        }
        for v in &r.verdict.violations {
            let _ = writeln!(s, "  - {}: {}", v.kind, v.detail);
        }
    }
    let _ = write!(s, "replay: {}", r.replay);
    s
}

/// The report as JSON.
pub fn json(r: &Report) -> Vec<u8> {
    let j = serde_json::json!({
        "seed": r.seed,
        "replay": r.replay,
        "duration_s": r.duration_s,
        "valid": r.verdict.total() == 0,
        "violation_counts": r.verdict.counts,
        "violations": r.verdict.violations,
        "streams": r.verdict.streams,
        "faults": r.events,
        "skipped_faults": r.skipped,
        "chunk_ranges_checked": r.chunk_ranges,
        "abandoned_reads_excused": r.verdict.abandoned_reads,
    });
    serde_json::to_vec_pretty(&j).unwrap_or_default()
}
