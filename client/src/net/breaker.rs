//! Circuit breakers, one per agent shard address: after
//! `failure_threshold` consecutive failures the circuit opens and requests
//! to that address fail at once (no connect timeout each) until
//! `cool_down` has passed; then one probe is let through (half-open): its
//! success closes the circuit, its failure opens it again. Time is passed
//! in, so the state machine is tested exactly.

use std::collections::HashMap;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::time::Instant;

/// Breaker settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BreakerConfig {
    /// Consecutive failures that open the circuit; default 3.
    pub failure_threshold: u32,
    /// How long an open circuit refuses before one probe; default 2 s.
    pub cool_down: Duration,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        BreakerConfig {
            failure_threshold: 3,
            cool_down: Duration::from_secs(2),
        }
    }
}

/// State of one circuit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    /// Requests flow.
    Closed,
    /// Requests fail at once until the cool-down ends.
    Open,
    /// One probe is in flight; others fail at once.
    HalfOpen,
}

#[derive(Debug, Default, Clone, Copy)]
struct Circuit {
    failures: u32,
    opened_at: Option<Instant>,
    probing: bool,
}

/// The breakers of every address.
#[derive(Debug, Default)]
pub struct Breakers {
    config: BreakerConfig,
    circuits: Mutex<HashMap<String, Circuit>>,
}

impl Breakers {
    /// Breakers with `config`.
    pub fn new(config: BreakerConfig) -> Self {
        Breakers {
            config,
            circuits: Mutex::new(HashMap::new()),
        }
    }

    /// Whether a request to `address` may go out at `now`. In an open
    /// circuit past its cool-down this admits the single half-open probe.
    pub fn allow(&self, address: &str, now: Instant) -> bool {
        let mut all = self.circuits.lock();
        let Some(c) = all.get_mut(address) else {
            return true;
        };
        match c.opened_at {
            None => true,
            Some(_) if c.probing => false,
            Some(at) if now.duration_since(at) >= self.config.cool_down => {
                c.probing = true;
                true
            }
            Some(_) => false,
        }
    }

    /// A request to `address` succeeded: close its circuit.
    pub fn success(&self, address: &str) {
        self.circuits.lock().remove(address);
    }

    /// A request to `address` failed at `now`.
    pub fn failure(&self, address: &str, now: Instant) {
        let mut all = self.circuits.lock();
        let c = all.entry(address.to_owned()).or_default();
        if c.probing {
            c.probing = false;
            c.opened_at = Some(now);
            return;
        }
        c.failures += 1;
        if c.failures >= self.config.failure_threshold && c.opened_at.is_none() {
            c.opened_at = Some(now);
            tracing::warn!(
                address,
                failures = c.failures,
                "circuit opened: failing requests to this address at once for {:?}",
                self.config.cool_down
            );
        }
    }

    /// State of `address`'s circuit at `now`.
    pub fn state(&self, address: &str, now: Instant) -> BreakerState {
        match self.circuits.lock().get(address) {
            None => BreakerState::Closed,
            Some(c) if c.probing => BreakerState::HalfOpen,
            Some(Circuit {
                opened_at: Some(at),
                ..
            }) if now.duration_since(*at) < self.config.cool_down => BreakerState::Open,
            Some(Circuit {
                opened_at: Some(_), ..
            }) => BreakerState::HalfOpen,
            Some(_) => BreakerState::Closed,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_after_consecutive_failures_and_half_opens_after_the_cool_down() {
        let b = Breakers::new(BreakerConfig {
            failure_threshold: 3,
            cool_down: Duration::from_secs(2),
        });
        let t0 = Instant::now();
        let a = "10.0.0.1:9092";
        assert!(b.allow(a, t0));
        b.failure(a, t0);
        b.failure(a, t0);
        b.success(a);
        b.failure(a, t0);
        b.failure(a, t0);
        assert_eq!(
            b.state(a, t0),
            BreakerState::Closed,
            "a success resets the count"
        );
        b.failure(a, t0);
        assert_eq!(b.state(a, t0), BreakerState::Open);
        assert!(!b.allow(a, t0 + Duration::from_millis(1999)));
        assert!(b.allow("other:1", t0), "other addresses are unaffected");
        // Cool-down over: exactly one probe.
        let t1 = t0 + Duration::from_secs(2);
        assert!(b.allow(a, t1));
        assert_eq!(b.state(a, t1), BreakerState::HalfOpen);
        assert!(!b.allow(a, t1));
        // The probe fails: open again from now.
        b.failure(a, t1);
        assert_eq!(b.state(a, t1), BreakerState::Open);
        assert!(!b.allow(a, t1 + Duration::from_millis(1999)));
        let t2 = t1 + Duration::from_secs(2);
        assert!(b.allow(a, t2));
        b.success(a);
        assert_eq!(b.state(a, t2), BreakerState::Closed);
        assert!(b.allow(a, t2) && b.allow(a, t2));
    }
}
