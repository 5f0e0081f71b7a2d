//! Choosing free ranges of consecutive loopback ports for shard listeners.
//! Owns the choice only; binding is the shard's (`shard.rs`).
//!
//! Two strategies: [`kernel_chosen`] for an agent started with
//! `--listen HOST:0` (the kernel's ephemeral choice, as for any port 0), and
//! [`below_ephemeral`] for programs that start many agents in a row (tests,
//! `streamhouse-perf --embedded`).

use std::net::{IpAddr, Ipv4Addr, TcpListener};
use std::sync::atomic::{AtomicU32, Ordering};

/// A base port with `n` consecutive free ports on `host`, starting from a
/// port the kernel picked; `None` after 100 tries.
pub fn kernel_chosen(host: IpAddr, n: usize) -> Option<u16> {
    for _ in 0..100 {
        let l = TcpListener::bind((host, 0)).ok()?;
        let base = l.local_addr().ok()?.port();
        drop(l);
        let fits = u32::from(base) + n as u32 <= 65_535;
        if fits && all_free(host, base, n) {
            return Some(base);
        }
    }
    None
}

/// A base port with `n` consecutive free loopback ports from 10000–31999,
/// below the kernel's ephemeral range (32768 and up on Linux): no outgoing
/// connection can hold one by the time an agent binds it, and a readiness
/// probe can never connect to itself. A process-wide counter (starting at a
/// point derived from the process id) keeps the agents of one process
/// apart; the bind check covers other processes. `None` after 500 tries.
pub fn below_ephemeral(n: usize) -> Option<u16> {
    const LOW: u32 = 10_000;
    const SPAN: u32 = 22_000;
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let start = std::process::id().wrapping_mul(2_654_435_761) % SPAN;
    for _ in 0..500 {
        let slot = NEXT.fetch_add(n as u32 + 1, Ordering::Relaxed);
        let base = (LOW + (start + slot) % SPAN) as u16;
        if all_free(IpAddr::V4(Ipv4Addr::LOCALHOST), base, n) {
            return Some(base);
        }
    }
    None
}

/// Whether `n` ports from `base` can be bound (with SO_REUSEADDR, as the
/// shards bind them).
fn all_free(host: IpAddr, base: u16, n: usize) -> bool {
    (0..n).all(|i| {
        u16::try_from(i)
            .ok()
            .and_then(|i| base.checked_add(i))
            .is_some_and(|p| TcpListener::bind((host, p)).is_ok())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_are_free_and_distinct_within_a_process() {
        let a = below_ephemeral(3).unwrap();
        let b = below_ephemeral(3).unwrap();
        assert!((10_000..32_000).contains(&a), "{a}");
        assert!(a.abs_diff(b) >= 3, "{a} and {b} overlap");
        // The next range would start right after b's: hold that port, and
        // it must be skipped.
        let held = TcpListener::bind(("127.0.0.1", b + 4)).unwrap();
        let c = below_ephemeral(2).unwrap();
        let p = held.local_addr().unwrap().port();
        assert!(!(c..c + 2).contains(&p), "{c} includes held port {p}");
        let k = kernel_chosen(IpAddr::V4(Ipv4Addr::LOCALHOST), 2).unwrap();
        assert!(TcpListener::bind(("127.0.0.1", k)).is_ok());
    }
}
