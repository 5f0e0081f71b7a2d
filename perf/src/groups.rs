//! `streamhouse-perf groups`: how many consumer-group members one agent
//! coordinates. `--groups` × `--members` simulated members, each a task
//! that joins over raw gRPC and heartbeats at the interval its coordinator
//! names, reporting what it owns as a well-behaved client does (it gives
//! revoked partitions up at once). Measures the time until every group is
//! settled, then over a steady window: heartbeats answered per second,
//! their latency, errors by code, members removed and generations bumped
//! (both 0 when the agent keeps up), and the agent's CPU and memory. Owns
//! its agent process and its clients.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Args;
use hdrhistogram::Histogram;
use parking_lot::Mutex;
use streamhouse_proto as pb;
use tonic::transport::Channel;

use crate::embedded::{cpu_seconds, peak_rss_mib, EmbeddedAgent};

type Groups = pb::group_service_client::GroupServiceClient<Channel>;

/// Longest wait for one heartbeat's answer (counted as an error past it).
const CALL_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Args, Debug, Clone)]
pub struct GroupsArgs {
    /// Consumer groups.
    #[arg(long, default_value_t = 10)]
    pub groups: usize,
    /// Members per group.
    #[arg(long, default_value_t = 1_000)]
    pub members: usize,
    /// Partitions of the one topic every group subscribes to.
    #[arg(long, default_value_t = 100)]
    pub partitions: u32,
    /// Session timeout each member asks for, ms (the agent's default
    /// heartbeat interval, 3 s, applies up to a third of it).
    #[arg(long, default_value_t = 45_000)]
    pub session_ms: u32,
    /// Length of the steady window measured once every group settled, s.
    #[arg(long, default_value_t = 60)]
    pub seconds: u64,
    /// Seconds over which the members join (spread evenly).
    #[arg(long, default_value_t = 10)]
    pub join_seconds: u64,
    /// Connections the members share.
    #[arg(long, default_value_t = 16)]
    pub connections: usize,
    /// Metadata store of the embedded agent (default: its own SQLite file).
    #[arg(long)]
    pub metadata: Option<String>,
    /// Where the embedded agent's data dir goes.
    #[arg(long, default_value = "./perf-data")]
    pub data_root: PathBuf,
}

/// What every member task adds to.
#[derive(Default)]
struct Tally {
    /// Heartbeats answered in the steady window.
    answered: AtomicU64,
    /// ms since start of the last assignment change any member saw.
    last_change_ms: AtomicI64,
    /// Members removed by the coordinator (told unknown or fenced).
    removed: AtomicU64,
    /// Generation changes seen in the steady window.
    bumps: AtomicU64,
    /// Code → (count, first message).
    errors: Mutex<BTreeMap<String, (u64, String)>>,
    latency_us: Mutex<Option<Histogram<u64>>>,
}

/// Set once the steady window starts / ends (ms since start; 0 = not yet).
#[derive(Default)]
struct Window {
    from_ms: AtomicI64,
    to_ms: AtomicI64,
}

pub async fn run(a: GroupsArgs) -> Result<ExitCode, String> {
    if a.groups == 0 || a.members == 0 || a.connections == 0 {
        return Err("--groups, --members and --connections must be positive".into());
    }
    let mut extra = Vec::new();
    if let Some(m) = &a.metadata {
        extra.push(format!("--metadata={m}"));
    }
    let agent = EmbeddedAgent::start(&a.data_root, 1, &extra)?;
    let b = agent.bootstrap();
    let admin = streamhouse_client::Admin::connect(b.as_str())
        .await
        .map_err(|e| e.to_string())?;
    admin
        .create_topic("perf-groups", a.partitions)
        .await
        .map_err(|e| e.to_string())?;
    let mut channels = Vec::new();
    for _ in 0..a.connections {
        let ch = Channel::from_shared(format!("http://{b}"))
            .map_err(|e| e.to_string())?
            .connect()
            .await
            .map_err(|e| format!("connect {b}: {e}"))?;
        channels.push(Groups::new(ch));
    }
    let total = a.groups * a.members;
    println!(
        "groups: {} groups x {} members = {total} members on one agent (1 shard, metadata {}), one topic of {} partitions, session {} ms, joins spread over {} s, {} connections; client in the same process",
        a.groups,
        a.members,
        a.metadata.as_deref().unwrap_or("SQLite (embedded)"),
        a.partitions,
        a.session_ms,
        a.join_seconds,
        a.connections
    );
    let start = Instant::now();
    let tally = Arc::new(Tally {
        latency_us: Mutex::new(Histogram::new_with_bounds(1, 60_000_000, 3).ok()),
        ..Tally::default()
    });
    let window = Arc::new(Window::default());
    let cpu0 = cpu_seconds(agent.pid()).unwrap_or(0.0);
    let mut tasks = Vec::with_capacity(total);
    for i in 0..total {
        let client = channels[i % channels.len()].clone();
        let group = format!("perf-g{}", i % a.groups);
        let delay = Duration::from_millis(a.join_seconds * 1000 * i as u64 / total as u64);
        let (tally, window, session) = (tally.clone(), window.clone(), a.session_ms);
        tasks.push(tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            member(client, group, i, session, start, tally, window).await;
        }));
    }
    // Settled: no assignment changed for 3 heartbeat intervals (9 s at
    // the default) after the last join.
    // The interval members are told: the agent's default 3 s, at most a
    // third of the session.
    let interval_ms = u64::from(a.session_ms / 3).min(3_000);
    let quiet = Duration::from_millis(interval_ms * 3);
    let give_up = start + Duration::from_secs(a.join_seconds) + Duration::from_secs(600);
    loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let since_change =
            start.elapsed().as_millis() as i64 - tally.last_change_ms.load(Ordering::Relaxed);
        if start.elapsed() > Duration::from_secs(a.join_seconds)
            && since_change > quiet.as_millis() as i64
        {
            break;
        }
        if Instant::now() > give_up {
            println!("groups: never settled within 10 minutes");
            break;
        }
    }
    let settled = Duration::from_millis(tally.last_change_ms.load(Ordering::Relaxed) as u64);
    let cpu1 = cpu_seconds(agent.pid()).unwrap_or(0.0);
    let from = start.elapsed();
    window
        .from_ms
        .store(from.as_millis() as i64, Ordering::Relaxed);
    tokio::time::sleep(Duration::from_secs(a.seconds)).await;
    let to = start.elapsed();
    window.to_ms.store(to.as_millis() as i64, Ordering::Relaxed);
    let cpu2 = cpu_seconds(agent.pid()).unwrap_or(0.0);
    for t in &tasks {
        t.abort();
    }
    let secs = (to - from).as_secs_f64();
    let answered = tally.answered.load(Ordering::Relaxed);
    println!(
        "  joined and settled: last assignment change {:.1} s after the first join (agent CPU {:.1} s)",
        settled.as_secs_f64(),
        cpu1 - cpu0
    );
    println!(
        "  steady {secs:.0} s: {answered} heartbeats answered, {:.0}/s (the members need {:.0}/s at a {} ms interval); agent CPU {:.0}% of a core, peak RSS {:.0} MiB",
        answered as f64 / secs,
        total as f64 * 1000.0 / interval_ms.max(1) as f64,
        interval_ms,
        100.0 * (cpu2 - cpu1) / secs,
        peak_rss_mib(agent.pid()).unwrap_or(0.0)
    );
    if let Some(h) = tally.latency_us.lock().as_ref() {
        println!(
            "  heartbeat latency: p50 {:.2} ms, p99 {:.2} ms, p99.9 {:.2} ms, max {:.2} ms",
            h.value_at_quantile(0.5) as f64 / 1000.0,
            h.value_at_quantile(0.99) as f64 / 1000.0,
            h.value_at_quantile(0.999) as f64 / 1000.0,
            h.max() as f64 / 1000.0
        );
    }
    let removed = tally.removed.load(Ordering::Relaxed);
    let bumps = tally.bumps.load(Ordering::Relaxed);
    let errors = tally.errors.lock().clone();
    println!("  members removed: {removed}; generation changes seen in the steady window: {bumps}; errors: {errors:?}");
    Ok(if removed == 0 && bumps == 0 && errors.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// One member: joins, then heartbeats at the interval it is told until
/// aborted, rejoining when removed.
async fn member(
    mut c: Groups,
    group: String,
    i: usize,
    session_ms: u32,
    start: Instant,
    tally: Arc<Tally>,
    window: Arc<Window>,
) {
    let id = format!("perf-member-{i:06}");
    let (mut epoch, mut owned, mut owned_changed) = (0i64, Vec::new(), false);
    let mut interval = Duration::from_secs(3);
    let in_window = |w: &Window| {
        let now = start.elapsed().as_millis() as i64;
        let from = w.from_ms.load(Ordering::Relaxed);
        let to = w.to_ms.load(Ordering::Relaxed);
        from > 0 && now >= from && (to == 0 || now < to)
    };
    loop {
        let req = pb::GroupHeartbeatRequest {
            group_id: group.clone(),
            member_id: id.clone(),
            member_epoch: epoch,
            client_id: "perf".into(),
            topics: vec!["perf-groups".into()],
            topics_changed: epoch == 0,
            owned: owned.clone(),
            owned_changed,
            session_timeout_ms: session_ms,
            ..Default::default()
        };
        let sent = Instant::now();
        let r = match tokio::time::timeout(CALL_TIMEOUT, c.heartbeat(req)).await {
            Ok(r) => r,
            Err(_) => Err(tonic::Status::deadline_exceeded("no answer within 10 s")),
        };
        let counted = in_window(&window);
        if counted {
            if let Some(h) = tally.latency_us.lock().as_mut() {
                let _ = h.record(sent.elapsed().as_micros() as u64);
            }
        }
        match r {
            Ok(r) => {
                let r = r.into_inner();
                if counted {
                    tally.answered.fetch_add(1, Ordering::Relaxed);
                    if epoch != 0 && r.member_epoch != epoch {
                        tally.bumps.fetch_add(1, Ordering::Relaxed);
                    }
                }
                owned_changed = r.assignment != owned;
                if owned_changed || r.member_epoch != epoch {
                    tally
                        .last_change_ms
                        .fetch_max(start.elapsed().as_millis() as i64, Ordering::Relaxed);
                }
                epoch = r.member_epoch;
                owned = r.assignment;
                if r.heartbeat_interval_ms > 0 {
                    interval = Duration::from_millis(u64::from(r.heartbeat_interval_ms));
                }
            }
            Err(s) => {
                tally
                    .errors
                    .lock()
                    .entry(format!("{:?}", s.code()))
                    .or_insert_with(|| (0, s.message().to_owned()))
                    .0 += 1;
                if matches!(
                    s.code(),
                    tonic::Code::FailedPrecondition | tonic::Code::NotFound
                ) {
                    tally.removed.fetch_add(1, Ordering::Relaxed);
                    (epoch, owned, owned_changed) = (0, Vec::new(), false);
                }
            }
        }
        tokio::time::sleep(interval.saturating_sub(sent.elapsed())).await;
    }
}
