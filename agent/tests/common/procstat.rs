//! A process's memory as Linux reports it in `/proc/PID/status`: what the
//! memory tests compare with their bounds.

#![allow(dead_code)]

/// Kilobytes of a status field (`VmHWM:`, the peak resident set;
/// `VmRSS:`, the current one). Panics when the process is gone.
pub fn status_kb(pid: i32, field: &str) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_else(|e| panic!("/proc/{pid}/status: {e}"));
    s.lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("{field} missing from /proc/{pid}/status"))
}
