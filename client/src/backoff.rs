//! The client's one retry policy: exponential backoff with jitter
//! ([`Backoff`]) and [`RetryPolicy`], which the producer's batches, the
//! consumer's fetches and ListOffsets rounds and the group coordinator link
//! all wait with (each with its own settings). Owns the delay arithmetic;
//! randomness comes from an injected source so tests are exact.

use std::time::Duration;

use parking_lot::Mutex;

use crate::error::Error;

/// Backoff settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BackoffConfig {
    /// Delay before the first retry; default 100 ms.
    pub base: Duration,
    /// Largest delay, jitter included; default 5 s.
    pub max: Duration,
    /// Relative jitter: each delay is scaled by a factor drawn uniformly from
    /// [1 - jitter, 1 + jitter]; default 0.25 (±25%).
    pub jitter: f64,
}

impl Default for BackoffConfig {
    fn default() -> Self {
        BackoffConfig {
            base: Duration::from_millis(100),
            max: Duration::from_secs(5),
            jitter: 0.25,
        }
    }
}

/// A source of uniform samples in [0, 1).
pub type Rng = Box<dyn FnMut() -> f64 + Send>;

/// The default randomness: a thread-local generator.
pub fn thread_rng() -> Rng {
    Box::new(rand::random::<f64>)
}

/// Produces retry delays: `base * 2^(attempt-1)`, jittered, capped at `max`.
pub struct Backoff {
    config: BackoffConfig,
    rng: Rng,
}

impl Backoff {
    /// Backoff drawing jitter from `rng`.
    pub fn new(config: BackoffConfig, rng: Rng) -> Self {
        Backoff { config, rng }
    }

    /// Delay before retry number `attempt` (1 for the first retry).
    pub fn delay(&mut self, attempt: u32) -> Duration {
        let exp = attempt.saturating_sub(1).min(30);
        let raw = self.config.base.as_secs_f64() * f64::from(1u32 << exp);
        let capped = raw.min(self.config.max.as_secs_f64());
        let u = (self.rng)().clamp(0.0, 1.0);
        let factor = 1.0 + self.config.jitter * (2.0 * u - 1.0);
        Duration::from_secs_f64((capped * factor).min(self.config.max.as_secs_f64()))
    }
}

/// How long to wait before a retry: [`Backoff`] behind a lock, so every
/// task of a client shares one policy, and never shorter than the pause an
/// agent asked for (`retry_after`, from a `RESOURCE_EXHAUSTED` answer).
pub struct RetryPolicy {
    config: BackoffConfig,
    backoff: Mutex<Backoff>,
}

impl std::fmt::Debug for RetryPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RetryPolicy")
            .field("config", &self.config)
            .finish()
    }
}

impl RetryPolicy {
    /// A policy with `config`, drawing jitter from `rng`.
    pub fn new(config: BackoffConfig, rng: Rng) -> Self {
        RetryPolicy {
            config,
            backoff: Mutex::new(Backoff::new(config, rng)),
        }
    }

    /// The settings.
    pub fn config(&self) -> &BackoffConfig {
        &self.config
    }

    /// Delay before retry number `attempt` (1 for the first retry) after
    /// `err`: the backoff's, or the pause the agent asked for if longer.
    pub fn delay_after(&self, attempt: u32, err: &Error) -> Duration {
        let delay = self.backoff.lock().delay(attempt);
        match err {
            Error::Status {
                retry_after: Some(pause),
                ..
            } => delay.max(*pause),
            _ => delay,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixed(values: Vec<f64>) -> Rng {
        let mut it = values.into_iter().cycle();
        Box::new(move || it.next().unwrap_or(0.5))
    }

    #[test]
    fn exact_sequence_with_a_fixed_rng() {
        // u = 0.5 means no jitter; 0.0 is -25%; 1.0 is +25% (capped at max).
        let mut b = Backoff::new(BackoffConfig::default(), fixed(vec![0.5, 0.0, 1.0]));
        let ms: Vec<u128> = (1..=8).map(|a| b.delay(a).as_millis()).collect();
        assert_eq!(ms, vec![100, 150, 500, 800, 1200, 4000, 5000, 3750]);
    }

    #[test]
    fn jitter_stays_within_bounds() {
        let mut b = Backoff::new(BackoffConfig::default(), thread_rng());
        for _ in 0..1000 {
            let d = b.delay(2).as_millis();
            assert!((150..=250).contains(&d), "{d}");
        }
    }

    #[test]
    fn a_policy_waits_at_least_the_pause_the_agent_asked_for() {
        let p = RetryPolicy::new(BackoffConfig::default(), fixed(vec![0.5]));
        let refused = Error::Status {
            code: crate::Code::ResourceExhausted,
            message: "busy".into(),
            retry_after: Some(Duration::from_secs(2)),
        };
        assert_eq!(p.delay_after(1, &refused), Duration::from_secs(2));
        let other = Error::Closed;
        assert_eq!(p.delay_after(2, &other), Duration::from_millis(200));
    }
}
