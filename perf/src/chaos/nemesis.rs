//! The nemesis: a fault schedule drawn from the run's seed, and the loop
//! that applies it to the cluster, one fault at a time, healing each before
//! the next. The same seed, agent count and fault set give the same
//! schedule (the wall-clock moments drift with how long restarts take).
//! Owns the schedule and the timeline of what it did; reads no records.

use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::chaos::cluster::Cluster;
use crate::chaos::proxy::{FaultProxy, Mode};
use crate::chaos::workload::ms_since;

/// The kinds of fault, as named on the command line (`--faults`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum FaultKind {
    /// SIGKILL an agent, restart it on its data dir (soon, or after its
    /// leases expired).
    Kill,
    /// SIGSTOP an agent (shorter than, or past, the lease TTL), SIGCONT.
    Pause,
    /// Stop an agent (SIGKILL or SIGTERM) and restart it with another
    /// shard count.
    Reshard,
    /// SIGTERM an agent (graceful drain), restart it soon.
    Term,
    /// SIGTERM an agent and keep it away past two lease TTLs (its
    /// partitions move to the others), then start it again (they hand some
    /// back).
    Leave,
    /// Object-store proxy faults: resets, stalls, blackholes, slow bytes,
    /// HTTP 500/503 answers.
    Object,
    /// The metadata store unreachable: every connection reset, new ones
    /// refused (PostgreSQL only).
    Metadata,
    /// Fill an agent's WAL filesystem to the last block, free it later
    /// (root only: a loop-mounted ext4 per agent).
    Disk,
    /// An agent's wall clock off the real time (libfaketime): restarted
    /// with a skewed clock, or stepped while it runs; stepped back to the
    /// real time at the end. Its monotonic clock is left alone, as NTP
    /// and operators leave it.
    Clock,
}

/// Every kind, in the order `--faults` lists them by default.
pub const ALL_FAULTS: [FaultKind; 9] = [
    FaultKind::Kill,
    FaultKind::Pause,
    FaultKind::Reshard,
    FaultKind::Term,
    FaultKind::Leave,
    FaultKind::Object,
    FaultKind::Metadata,
    FaultKind::Disk,
    FaultKind::Clock,
];

/// Clock offsets a clock fault picks from, seconds either way: an hour
/// (a wrong time zone), ten minutes, half a minute, and a few seconds (about
/// the lease TTL).
const CLOCK_OFFSETS_S: [i64; 4] = [3_600, 600, 30, 4];

/// One fault of the schedule.
#[derive(Debug, Clone)]
pub struct Planned {
    /// Quiet time after the previous fault healed.
    pub gap: Duration,
    pub kind: FaultKind,
    /// Agent index (faults on a store ignore it).
    pub target: usize,
    /// How long the fault lasts (the agent's downtime for kill, term,
    /// leave and reshard).
    pub hold: Duration,
    /// Reshard: the new shard count.
    pub shards: usize,
    /// Reshard: SIGTERM (true) or SIGKILL.
    pub graceful: bool,
    /// Object: what the proxy does.
    pub mode: Mode,
    /// Clock: the wall clock's offset from the real time, seconds.
    pub clock_offset_s: i64,
    /// Clock: restart the agent on the skewed clock (true) or step the
    /// clock of the running agent.
    pub clock_at_start: bool,
}

/// Draws `n` faults of the given kinds from `seed`.
pub fn plan(
    seed: u64,
    n: usize,
    kinds: &[FaultKind],
    agents: usize,
    shards: usize,
    max_shards: usize,
    ttl: Duration,
) -> Vec<Planned> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut current = vec![shards; agents];
    let ms = |d: Duration| d.as_millis() as u64;
    let mut out = Vec::with_capacity(n);
    if kinds.is_empty() || agents == 0 {
        return out;
    }
    for _ in 0..n {
        let kind = kinds[rng.gen_range(0..kinds.len())];
        let target = rng.gen_range(0..agents);
        let gap = Duration::from_millis(rng.gen_range(1_000..4_000));
        // Downtimes are clearly below or clearly past the TTL, so the
        // checker knows which guarantee applies.
        let short = Duration::from_millis(rng.gen_range(100..=ms(ttl) / 3));
        let long = ttl + Duration::from_millis(rng.gen_range(1_000..=ms(ttl) + 1_000));
        let past_ttl = rng.gen_bool(0.35);
        let mut p = Planned {
            gap,
            kind,
            target,
            hold: if past_ttl { long } else { short },
            shards: current[target],
            graceful: false,
            mode: Mode::Pass,
            clock_offset_s: 0,
            clock_at_start: false,
        };
        match kind {
            FaultKind::Reshard => {
                let choices: Vec<usize> =
                    (1..=max_shards).filter(|s| *s != current[target]).collect();
                if let Some(s) = choices.get(rng.gen_range(0..choices.len().max(1))) {
                    p.shards = *s;
                }
                current[target] = p.shards;
                p.graceful = rng.gen_bool(0.3);
                p.hold = short;
            }
            FaultKind::Term => p.hold = short,
            FaultKind::Leave => p.hold = 2 * ttl + Duration::from_millis(rng.gen_range(0..3_000)),
            FaultKind::Object => {
                p.mode = match rng.gen_range(0..6) {
                    0 => Mode::Reset,
                    1 => Mode::Stall,
                    2 => Mode::Blackhole,
                    3 => Mode::Slow,
                    4 => Mode::HttpError(503),
                    _ => Mode::HttpError(500),
                };
                p.hold = Duration::from_millis(rng.gen_range(1_000..10_000));
            }
            FaultKind::Metadata => p.hold = Duration::from_millis(rng.gen_range(500..=2 * ms(ttl))),
            FaultKind::Disk => p.hold = Duration::from_millis(rng.gen_range(2_000..10_000)),
            FaultKind::Clock => {
                let magnitude = CLOCK_OFFSETS_S[rng.gen_range(0..CLOCK_OFFSETS_S.len())];
                p.clock_offset_s = if rng.gen_bool(0.5) {
                    magnitude
                } else {
                    -magnitude
                };
                p.clock_at_start = rng.gen_bool(0.4);
                p.hold = Duration::from_millis(rng.gen_range(2_000..=ms(ttl) * 3));
            }
            FaultKind::Kill | FaultKind::Pause => {}
        }
        out.push(p);
    }
    out
}

/// What the nemesis did, for the timeline.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Event {
    pub start_ms: u64,
    pub end_ms: u64,
    pub kind: FaultKind,
    /// Agent id, when the fault hit one.
    pub agent: Option<String>,
    pub what: String,
    /// The agent was away (killed or paused) for longer than the lease TTL.
    pub past_ttl: bool,
    /// A step of the fault that did not work (e.g. a restart that failed).
    pub error: Option<String>,
}

impl Event {
    /// One line of the timeline.
    pub fn line(&self) -> String {
        format!(
            "{:>8.1} s - {:>8.1} s  {:<9} {:<9} {}{}",
            self.start_ms as f64 / 1000.0,
            self.end_ms as f64 / 1000.0,
            format!("{:?}", self.kind).to_lowercase(),
            self.agent.as_deref().unwrap_or("-"),
            self.what,
            self.error
                .as_ref()
                .map_or(String::new(), |x| format!("  [error: {x}]"))
        )
    }
}

/// The stores the nemesis can reach through their proxies.
pub struct Stores<'a> {
    pub object: Option<&'a FaultProxy>,
    pub metadata: Option<&'a FaultProxy>,
}

/// Grace for a SIGTERM drain before the nemesis SIGKILLs.
const TERM_GRACE: Duration = Duration::from_secs(20);

/// Applies `schedule` until `duration` has passed since `t0`; every fault
/// is healed before this returns. Agents found exited by themselves are
/// recorded (an `error` event) and started again. Cancelling it leaves the
/// current fault in place.
pub async fn run(
    cluster: &mut Cluster,
    stores: Stores<'_>,
    schedule: &[Planned],
    t0: Instant,
    duration: Duration,
    say: &mut dyn FnMut(&str),
) -> Vec<Event> {
    let mut events = Vec::new();
    let ttl = cluster.spec.lease_ttl;
    for p in schedule {
        tokio::time::sleep(p.gap).await;
        if t0.elapsed() >= duration {
            break;
        }
        let start_ms = ms_since(t0);
        let n = cluster.agents.len();
        let spec = cluster.spec.clone();
        let agent = &mut cluster.agents[p.target % n];
        let id = agent.id.clone();
        let mut error = None;
        let mut on_agent = true;
        let mut past_ttl = false;
        let what = match p.kind {
            FaultKind::Kill => {
                agent.kill();
                tokio::time::sleep(p.hold).await;
                past_ttl = p.hold > ttl;
                let shards = agent.shards;
                error = agent.start(&spec, shards).await.err();
                format!("SIGKILL, restarted after {} ms", p.hold.as_millis())
            }
            FaultKind::Pause => {
                agent.pause();
                tokio::time::sleep(p.hold).await;
                agent.resume();
                past_ttl = p.hold > ttl;
                format!("SIGSTOP for {} ms, SIGCONT", p.hold.as_millis())
            }
            FaultKind::Reshard => {
                let from = agent.shards;
                let how = if p.graceful {
                    format!("SIGTERM ({})", agent.terminate(TERM_GRACE).await)
                } else {
                    agent.kill();
                    "SIGKILL".to_string()
                };
                tokio::time::sleep(p.hold).await;
                error = agent.start(&spec, p.shards).await.err();
                format!(
                    "{how}, restarted with {} shards instead of {from}",
                    p.shards
                )
            }
            FaultKind::Term | FaultKind::Leave => {
                let st = agent.terminate(TERM_GRACE).await;
                tokio::time::sleep(p.hold).await;
                let shards = agent.shards;
                error = agent.start(&spec, shards).await.err();
                if p.kind == FaultKind::Leave {
                    format!(
                        "left (SIGTERM: {st}), joined again after {} ms",
                        p.hold.as_millis()
                    )
                } else {
                    format!("SIGTERM ({st}), restarted after {} ms", p.hold.as_millis())
                }
            }
            FaultKind::Object => {
                on_agent = false;
                match stores.object {
                    Some(px) => {
                        px.set(p.mode);
                        tokio::time::sleep(p.hold).await;
                        px.set(Mode::Pass);
                        format!(
                            "object store proxy {:?} for {} ms",
                            p.mode,
                            p.hold.as_millis()
                        )
                    }
                    None => {
                        say(
                            "object-store faults need an S3 object store (--object-store s3://...)",
                        );
                        continue;
                    }
                }
            }
            FaultKind::Metadata => {
                on_agent = false;
                match stores.metadata {
                    Some(px) => {
                        px.set(Mode::Reset);
                        tokio::time::sleep(p.hold).await;
                        px.set(Mode::Pass);
                        format!("metadata store unreachable for {} ms", p.hold.as_millis())
                    }
                    None => {
                        say("metadata-store faults need PostgreSQL (--metadata postgres://...)");
                        continue;
                    }
                }
            }
            FaultKind::Disk => {
                match &agent.disk {
                    Some(d) => match d.fill() {
                        Ok(bytes) => {
                            tokio::time::sleep(p.hold).await;
                            error = d.free().err();
                            format!(
                                "WAL filesystem filled ({} MiB written) for {} ms, then freed",
                                bytes >> 20,
                                p.hold.as_millis()
                            )
                        }
                        Err(e) => {
                            let _ = d.free();
                            error = Some(e);
                            "WAL filesystem fill failed".into()
                        }
                    },
                    None => {
                        say("disk faults need root and mkfs.ext4 (a loop-mounted filesystem per agent)");
                        continue;
                    }
                }
            }
            FaultKind::Clock => {
                let offset = p.clock_offset_s;
                let how = if p.clock_at_start {
                    // Down for a moment only (well inside the TTL): the
                    // point is the clock it comes back with.
                    agent.kill();
                    let set = agent.set_clock(offset);
                    let shards = agent.shards;
                    error = set.and(agent.start(&spec, shards).await).err();
                    "SIGKILL, restarted with its wall clock"
                } else {
                    error = agent.set_clock(offset).err();
                    "wall clock stepped"
                };
                tokio::time::sleep(p.hold).await;
                if let Err(e) = agent.set_clock(0) {
                    error.get_or_insert(e);
                }
                format!(
                    "{how} {offset:+} s for {} ms, then stepped back to the real time",
                    p.hold.as_millis()
                )
            }
        };
        let e = Event {
            start_ms,
            end_ms: ms_since(t0),
            kind: p.kind,
            agent: on_agent.then_some(id),
            what,
            past_ttl,
            error,
        };
        say(&e.line());
        events.push(e);
        // An agent that exited by itself is a finding; start it again so
        // the run goes on.
        for a in cluster.agents.iter_mut() {
            if let Some(st) = a.exited() {
                let at = ms_since(t0);
                let shards = a.shards;
                let restart = a.start(&spec, shards).await.err();
                let e = Event {
                    start_ms: at,
                    end_ms: ms_since(t0),
                    kind: p.kind,
                    agent: Some(a.id.clone()),
                    what: format!("exited by itself ({st}); started again"),
                    past_ttl: false,
                    error: Some(restart.unwrap_or_else(|| format!("exited by itself: {st}"))),
                };
                say(&e.line());
                events.push(e);
            }
        }
    }
    events
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_seed_gives_one_schedule_and_reshards_change_the_count() {
        let ttl = Duration::from_secs(3);
        let a = plan(7, 200, &ALL_FAULTS, 3, 2, 3, ttl);
        let b = plan(7, 200, &ALL_FAULTS, 3, 2, 3, ttl);
        let c = plan(8, 200, &ALL_FAULTS, 3, 2, 3, ttl);
        let key = |v: &[Planned]| {
            v.iter()
                .map(|p| format!("{:?}{}{:?}{}", p.kind, p.target, p.hold, p.shards))
                .collect::<Vec<_>>()
        };
        assert_eq!(key(&a), key(&b));
        assert_ne!(key(&a), key(&c));
        let mut current = [2usize; 3];
        for p in a.iter().filter(|p| p.kind == FaultKind::Reshard) {
            assert_ne!(
                p.shards, current[p.target],
                "a reshard that keeps the count"
            );
            assert!((1..=3).contains(&p.shards));
            current[p.target] = p.shards;
        }
        for p in a
            .iter()
            .filter(|p| matches!(p.kind, FaultKind::Kill | FaultKind::Pause))
        {
            assert!(
                p.hold <= ttl / 3 || p.hold > ttl,
                "{:?} is too close to the TTL",
                p.hold
            );
        }
    }

    #[test]
    fn clock_faults_move_clocks_both_ways_at_start_and_while_running() {
        let ttl = Duration::from_secs(3);
        let a = plan(11, 400, &[FaultKind::Clock], 3, 2, 3, ttl);
        assert!(a.iter().all(|p| p.kind == FaultKind::Clock));
        assert!(a
            .iter()
            .all(|p| p.clock_offset_s != 0 && CLOCK_OFFSETS_S.contains(&p.clock_offset_s.abs())));
        assert!(a.iter().any(|p| p.clock_offset_s > 0) && a.iter().any(|p| p.clock_offset_s < 0));
        assert!(a.iter().any(|p| p.clock_at_start) && a.iter().any(|p| !p.clock_at_start));
        assert!(a
            .iter()
            .all(|p| p.hold >= Duration::from_secs(2) && p.hold <= 3 * ttl));
    }
}
