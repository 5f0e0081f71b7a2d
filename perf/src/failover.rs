//! The failover preset: several agent processes sharing one metadata store
//! (SQLite) and one object store (a local directory), a topic spread over
//! them, one producer sending as fast as it can, one agent SIGKILLed part
//! way. Measures records/s before, during and after the failover and the
//! time from the kill to the first acknowledgement on a moved partition;
//! then reads everything back and counts
//! acknowledged, read, lost, duplicated and out-of-order records.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use streamhouse_client::{Acks, Admin, Consumer, Producer, ProducerRecord};
use tokio::time::Instant;

use crate::embedded::EmbeddedAgent;

/// What to run.
#[derive(Debug, Clone)]
pub struct FailoverOpts {
    pub records: u64,
    pub record_size: usize,
    pub partitions: u32,
    pub agents: usize,
    pub acks: Acks,
    /// Lease TTL of the agents, ms.
    pub lease_ttl_ms: u64,
    /// Fraction of the records acknowledged before the kill.
    pub kill_at: f64,
    /// Restart the killed agent on its data dir this long after the kill
    /// (with ack `durable`, before its leases expire, so it keeps them and
    /// serves its durable but uncommitted data).
    pub restart_after: Option<Duration>,
}

/// What it measured.
#[derive(Debug, Clone, Default)]
pub struct FailoverReport {
    pub acked: u64,
    pub failed: u64,
    pub read: u64,
    pub lost: u64,
    pub duplicated: u64,
    pub out_of_order: u64,
    pub moved_partitions: usize,
    /// Kill → first acknowledgement on a moved partition after the kill.
    pub recovery_ms: Option<f64>,
    pub before_rps: f64,
    pub during_rps: f64,
    pub after_rps: f64,
}

/// Acknowledgements a stopped agent had already sent arrive within this.
const IN_TRANSIT: Duration = Duration::from_millis(20);

#[derive(Default)]
struct Acked {
    /// (partition, offset, sequence number, ack time)
    list: Vec<(u32, u64, u64, Instant)>,
    failed: u64,
    first_error: Option<String>,
}

fn payload(seq: u64, size: usize) -> Vec<u8> {
    let mut v = format!("{seq:016}").into_bytes();
    v.resize(size.max(16), b'.');
    v
}

pub async fn run(root: &Path, o: &FailoverOpts) -> Result<FailoverReport, String> {
    std::fs::create_dir_all(root).map_err(|e| format!("{}: {e}", root.display()))?;
    let shared = tempfile::Builder::new()
        .prefix("streamhouse-failover-")
        .tempdir_in(root)
        .map_err(|e| e.to_string())?;
    let common = vec![
        format!(
            "--metadata=sqlite://{}",
            shared.path().join("meta.db").display()
        ),
        format!(
            "--object-store=file://{}",
            shared.path().join("objects").display()
        ),
        format!("--lease-ttl-ms={}", o.lease_ttl_ms),
        "--heartbeat-ms=200".into(),
        format!("--agent-timeout-ms={}", (o.lease_ttl_ms / 2).max(500)),
        "--segment-age-ms=1000".into(),
    ];
    let mut agents = Vec::new();
    for i in 0..o.agents {
        let mut extra = common.clone();
        extra.push(format!("--agent-id=agent-{i}"));
        agents.push(EmbeddedAgent::start(root, 1, &extra)?);
    }
    let addrs: Vec<String> = agents.iter().map(EmbeddedAgent::bootstrap).collect();
    let admin = Admin::connect(&addrs[0]).await.map_err(|e| e.to_string())?;
    admin
        .create_topic("failover", o.partitions)
        .await
        .map_err(|e| e.to_string())?;
    // Wait until every agent leads some partitions.
    let deadline = Instant::now() + Duration::from_secs(30);
    let leaders = loop {
        let t = admin
            .describe_topic("failover")
            .await
            .map_err(|e| e.to_string())?;
        let l: Vec<String> = t
            .partitions
            .iter()
            .map(|p| p.leader_agent_id.clone())
            .collect();
        let distinct: HashSet<&String> = l.iter().collect();
        if l.iter().all(|x| !x.is_empty()) && distinct.len() == o.agents {
            break l;
        }
        if Instant::now() > deadline {
            return Err("partitions did not spread over the agents".into());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let victim = 1.min(o.agents - 1);
    let moved: HashSet<u32> = leaders
        .iter()
        .enumerate()
        .filter(|(_, l)| **l == format!("agent-{victim}"))
        .map(|(p, _)| p as u32)
        .collect();
    let producer = Producer::builder(addrs.clone())
        .acks(o.acks)
        .retries(100_000)
        .delivery_timeout(Duration::from_secs(120))
        .request_timeout(Duration::from_secs(2))
        .build()
        .await
        .map_err(|e| e.to_string())?;
    let acked = Arc::new(Mutex::new(Acked::default()));
    let kill_after = (o.records as f64 * o.kill_at) as u64;
    let started = Instant::now();
    let mut killed_at = None;
    // SIGSTOP first: from that instant the agent answers nothing; acks it
    // had already written reach the client within the grace below; then
    // SIGKILL.
    let kill = |agents: &mut Vec<EmbeddedAgent>, n: usize| {
        let at = Instant::now();
        // SAFETY: kill(2) on our own child's pid.
        unsafe {
            libc::kill(agents[victim].pid() as i32, libc::SIGSTOP);
        }
        std::thread::sleep(IN_TRANSIT);
        agents[victim].kill();
        println!(
            "failover: SIGKILLed agent-{victim} (leading {} of {} partitions) after {n} acknowledged records",
            moved.len(),
            o.partitions,
        );
        at
    };
    // Records sent and not yet answered, at most: without this bound the
    // whole run can be queued (and acknowledged) before the kill, leaving
    // nothing to send to a moved partition afterwards and the failover
    // unmeasured. Half of what is left after the kill point, up to 5,000.
    let ahead = ((o.records - kill_after) / 2).clamp(1, 5_000);
    for seq in 0..o.records {
        loop {
            let answered = {
                let a = acked.lock();
                a.list.len() as u64 + a.failed
            };
            if seq < answered + ahead {
                break;
            }
            if killed_at.is_none() && answered >= kill_after {
                killed_at = Some(kill(&mut agents, answered as usize));
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        // Every partition gets every `partitions`-th record, so the dead
        // leader's partitions keep receiving records through the failover.
        let partition = (seq % u64::from(o.partitions)) as u32;
        let a = acked.clone();
        producer
            .send_with_callback(
                ProducerRecord::new("failover", payload(seq, o.record_size)).partition(partition),
                move |r| {
                    let mut a = a.lock();
                    match r {
                        Ok(m) => a.list.push((m.partition, m.offset, seq, Instant::now())),
                        Err(e) => {
                            a.failed += 1;
                            a.first_error.get_or_insert(e.to_string());
                        }
                    }
                },
            )
            .await;
        if seq % 1024 == 1023 {
            tokio::task::yield_now().await;
        }
        let n = acked.lock().list.len();
        if killed_at.is_none() && n as u64 >= kill_after {
            killed_at = Some(kill(&mut agents, n));
        }
    }
    while killed_at.is_none() {
        let n = acked.lock().list.len();
        if n as u64 >= kill_after || n as u64 + acked.lock().failed >= o.records {
            killed_at = Some(kill(&mut agents, n));
        } else {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
    if let (Some(after), Some(at)) = (o.restart_after, killed_at) {
        tokio::time::sleep_until(at + after).await;
        agents[victim].restart()?;
        println!("failover: restarted agent-{victim} on its data dir");
    }
    producer.flush().await.map_err(|e| e.to_string())?;
    let finished = Instant::now();
    producer.close().await.map_err(|e| e.to_string())?;
    let killed_at = killed_at.unwrap_or(finished);
    let a = std::mem::take(&mut *acked.lock());
    let mut report = FailoverReport {
        acked: a.list.len() as u64,
        failed: a.failed,
        moved_partitions: moved.len(),
        ..Default::default()
    };
    if let Some(e) = &a.first_error {
        println!("failover: first error: {e}");
    }
    // Acknowledgements the stopped agent had sent may still be read by a
    // busy client a little after the kill, so time the first ack on a moved
    // partition from when no other agent could have sent it yet: a new
    // leader only once the dead one's lease expired (at least half a TTL
    // after the kill, as leases are renewed several times per TTL), the
    // restarted agent only once it was started again.
    let earliest = killed_at
        + o.restart_after
            .unwrap_or(Duration::from_millis(o.lease_ttl_ms / 2))
            .max(IN_TRANSIT);
    report.recovery_ms = a
        .list
        .iter()
        .filter(|(p, _, _, t)| moved.contains(p) && *t > earliest)
        .map(|(_, _, _, t)| t.duration_since(killed_at))
        .min()
        .map(|d| d.as_secs_f64() * 1e3);
    // Throughput: before the kill, from the kill until the first moved
    // partition recovered, and after that.
    let recovered = killed_at
        + report
            .recovery_ms
            .map_or(Duration::ZERO, |ms| Duration::from_secs_f64(ms / 1e3));
    let rate = |from: Instant, to: Instant| {
        let n = a.list.iter().filter(|x| x.3 >= from && x.3 < to).count() as f64;
        n / to.duration_since(from).as_secs_f64().max(1e-3)
    };
    report.before_rps = rate(started, killed_at);
    report.during_rps = rate(killed_at, recovered);
    report.after_rps = rate(recovered, finished + Duration::from_millis(1));

    // Read everything back from the surviving agents.
    let live: Vec<String> = addrs
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != victim || o.restart_after.is_some())
        .map(|(_, a)| a.clone())
        .collect();
    // A record acknowledged at `durable` by an agent killed for good may be
    // lost, and its offset then reused: keep every (offset, seq) pair.
    let mut want: BTreeMap<u32, Vec<(u64, u64)>> = BTreeMap::new();
    for (p, off, seq, _) in &a.list {
        want.entry(*p).or_default().push((*off, *seq));
    }
    let mut consumer = Consumer::builder(live)
        .max_bytes_per_partition(8 << 20)
        .build()
        .await
        .map_err(|e| e.to_string())?;
    for p in 0..o.partitions {
        consumer
            .assign([("failover".to_owned(), p)])
            .await
            .map_err(|e| e.to_string())?;
        let acked_here = want.get(&p).cloned().unwrap_or_default();
        let need = acked_here.iter().map(|(o, _)| o + 1).max().unwrap_or(0);
        let mut seen = HashSet::new();
        let mut last: Option<u64> = None;
        let mut next = 0u64;
        let mut idle = 0;
        while next < need && idle < 50 {
            let recs = consumer
                .poll(Duration::from_millis(100))
                .await
                .map_err(|e| e.to_string())?;
            if recs.is_empty() {
                idle += 1;
            }
            for r in recs {
                next = r.offset + 1;
                report.read += 1;
                let seq: u64 = std::str::from_utf8(&r.value[..16.min(r.value.len())])
                    .ok()
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(u64::MAX);
                if !seen.insert(seq) {
                    report.duplicated += 1;
                }
                if last.is_some_and(|l| seq < l) {
                    report.out_of_order += 1;
                }
                last = Some(seq);
            }
        }
        report.lost += acked_here.iter().filter(|(_, s)| !seen.contains(s)).count() as u64;
    }
    drop(agents);
    Ok(report)
}

/// Human-readable lines.
pub fn describe(r: &FailoverReport) -> String {
    format!(
        "failover: {} acknowledged, {} failed, {} read, {} lost, {} duplicated, {} out of order; \
         {} partitions moved; kill → first ack on a moved partition {}; \
         records/s before {:.0}, during {:.0}, after {:.0}",
        r.acked,
        r.failed,
        r.read,
        r.lost,
        r.duplicated,
        r.out_of_order,
        r.moved_partitions,
        r.recovery_ms
            .map_or("n/a".to_string(), |ms| format!("{ms:.0} ms")),
        r.before_rps,
        r.during_rps,
        r.after_rps
    )
}
