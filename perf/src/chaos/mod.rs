//! `streamhouse-perf chaos`: a seeded, reproducible fault run against a
//! cluster of real agent processes, checked against a model.
//!
//! The run: start the stores' fault proxies and the agents
//! ([`cluster`], [`proxy`], [`diskfill`]), create one topic per stream,
//! start the producers ([`workload`]) and the checker's own readers
//! ([`observe`]), let the [`nemesis`] apply its schedule for `--duration`,
//! heal, check that every partition takes writes again, stop, read
//! everything back, read the chunk index from the metadata store
//! ([`chunks`]), read the `object` streams from a fresh agent that sees
//! only the object store, and judge ([`checker`]). The summary and the
//! timeline are printed ([`report`]); any violation exits 1.

pub mod checker;
pub mod chunks;
pub mod clock;
pub mod cluster;
pub mod diskfill;
pub mod nemesis;
pub mod observe;
pub mod payload;
pub mod proxy;
pub mod report;
pub mod workload;

use std::collections::HashMap;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use clap::Args;
use streamhouse_client::{Acks, Admin};
use tokio::sync::watch;

use crate::chaos::cluster::{Cluster, ClusterSpec};
use crate::chaos::nemesis::{FaultKind, ALL_FAULTS};
use crate::chaos::observe::{Channels, Leaders};
use crate::chaos::proxy::FaultProxy;
use crate::chaos::workload::{Load, StreamSpec};

/// `streamhouse-perf chaos` flags.
#[derive(Args, Debug, Clone)]
pub struct ChaosArgs {
    /// How long the nemesis runs: `90s`, `10m`, `1h` (the checks after it
    /// take about a minute more).
    #[arg(long, default_value = "2m", value_parser = parse_duration)]
    pub duration: Duration,
    /// Seed of the fault schedule (default: drawn, and printed).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Agent processes.
    #[arg(long, default_value_t = 3)]
    pub agents: usize,
    /// Shards per agent at start.
    #[arg(long, default_value_t = 2)]
    pub shards: usize,
    /// Largest shard count a reshard fault picks (at least 2).
    #[arg(long, default_value_t = 3)]
    pub max_shards: usize,
    /// Partitions per stream topic.
    #[arg(long, default_value_t = 4)]
    pub partitions: u32,
    /// Records/s per stream (four streams: ack durable and object,
    /// idempotent and not).
    #[arg(long, default_value_t = 200.0)]
    pub rate: f64,
    /// Bytes per record (at least 21: stamp and CRC).
    #[arg(long, default_value_t = 128)]
    pub record_size: usize,
    /// Lease TTL of the agents, ms.
    #[arg(long, default_value_t = 3000)]
    pub lease_ttl_ms: u64,
    /// Metadata store: default a SQLite file in the run's directory;
    /// `postgres://...` to use PostgreSQL (reached through a fault proxy).
    #[arg(long)]
    pub metadata: Option<String>,
    /// Object store: default a local directory in the run's directory;
    /// `s3://BUCKET[/PREFIX]?endpoint=URL&region=R` (reached through a
    /// fault proxy; credentials from `AWS_ACCESS_KEY_ID` /
    /// `AWS_SECRET_ACCESS_KEY`).
    #[arg(long)]
    pub object_store: Option<String>,
    /// Faults to apply (comma-separated); default every one the setup
    /// allows.
    #[arg(long, value_enum, value_delimiter = ',')]
    pub faults: Vec<FaultKind>,
    /// Agent binary (default: `streamhouse-agent` next to this program).
    #[arg(long)]
    pub agent_bin: Option<PathBuf>,
    /// libfaketime's library for clock faults (default: where Debian's
    /// `faketime` package puts it).
    #[arg(long)]
    pub libfaketime: Option<PathBuf>,
    /// Size of each agent's WAL filesystem for disk faults, MiB.
    #[arg(long, default_value_t = 192)]
    pub disk_mib: u64,
    /// Where the run's directory goes.
    #[arg(long, default_value = "./chaos-data")]
    pub data_root: PathBuf,
    /// Keep the run's directory (agent logs, stores) even without a
    /// violation.
    #[arg(long)]
    pub keep: bool,
    /// Skip reading the `object` streams back from a fresh agent that
    /// sees only the object store.
    #[arg(long)]
    pub no_object_check: bool,
    /// Write the report as JSON here.
    #[arg(long)]
    pub json: Option<PathBuf>,
}

/// `90s`, `10m`, `1h`, `500ms` or plain seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, unit) = match s.find(|c: char| !c.is_ascii_digit() && c != '.') {
        Some(i) => s.split_at(i),
        None => (s, "s"),
    };
    let n: f64 = num
        .parse()
        .map_err(|_| format!("`{s}`: expected a duration like 90s, 10m or 1h"))?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "s" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        _ => return Err(format!("`{s}`: unknown unit `{unit}` (ms, s, m, h)")),
    };
    if !secs.is_finite() || secs <= 0.0 {
        return Err(format!("`{s}`: must be positive"));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// Makes a store URL that points at the proxy listening on the address.
type Rewrite = Box<dyn Fn(SocketAddr) -> String>;

/// The host:port of an `s3://...?endpoint=http://HOST:PORT` URL, and the
/// URL with the endpoint replaced by `proxy`.
fn s3_through(url: &str, run: &str) -> Result<(SocketAddr, Rewrite), String> {
    let (head, query) = url
        .split_once('?')
        .ok_or("--object-store s3://... needs ?endpoint=URL")?;
    let mut endpoint = None;
    let mut rest = Vec::new();
    for kv in query.split('&') {
        match kv.strip_prefix("endpoint=") {
            Some(e) => endpoint = Some(e.to_string()),
            None => rest.push(kv.to_string()),
        }
    }
    let endpoint = endpoint.ok_or("--object-store s3://... needs endpoint=URL")?;
    let hostport = endpoint
        .strip_prefix("http://")
        .ok_or("the chaos proxy relays plain http:// S3 endpoints only")?
        .trim_end_matches('/');
    let target = hostport
        .to_socket_addrs()
        .map_err(|e| format!("{hostport}: {e}"))?
        .next()
        .ok_or_else(|| format!("{hostport}: no address"))?;
    // Each run writes under its own prefix.
    let head = format!("{}/chaos-{run}", head.trim_end_matches('/'));
    let rest = rest.join("&");
    Ok((
        target,
        Box::new(move |p: SocketAddr| {
            let sep = if rest.is_empty() { "" } else { "&" };
            format!("{head}?endpoint=http://{p}{sep}{rest}")
        }),
    ))
}

/// `postgres://user@HOST:PORT/db` → its address, and the URL with `proxy`
/// in its place.
fn pg_through(url: &str) -> Result<(SocketAddr, String, String), String> {
    let rest = url
        .strip_prefix("postgres://")
        .or_else(|| url.strip_prefix("postgresql://"))
        .ok_or("--metadata must be postgres://... (SQLite is the default)")?;
    let (auth, after) = match rest.rfind('@') {
        Some(i) => (&rest[..=i], &rest[i + 1..]),
        None => ("", rest),
    };
    let (hostport, path) = match after.find(['/', '?']) {
        Some(i) => after.split_at(i),
        None => (after, ""),
    };
    let hostport = if hostport.contains(':') {
        hostport.to_string()
    } else {
        format!("{hostport}:5432")
    };
    let target = hostport
        .to_socket_addrs()
        .map_err(|e| format!("{hostport}: {e}"))?
        .next()
        .ok_or_else(|| format!("{hostport}: no address"))?;
    Ok((target, format!("postgres://{auth}"), path.to_string()))
}

/// The streams of a run, on topics tagged with `run`.
fn streams(run: &str) -> Vec<StreamSpec> {
    let mut v = Vec::new();
    for (i, (acks, idem)) in [
        (Acks::Durable, true),
        (Acks::Durable, false),
        (Acks::Object, true),
        (Acks::Object, false),
    ]
    .into_iter()
    .enumerate()
    {
        let name = format!(
            "{}-{}",
            if acks == Acks::Object {
                "object"
            } else {
                "durable"
            },
            if idem { "idempotent" } else { "plain" }
        );
        v.push(StreamSpec {
            id: i as u8,
            topic: format!("chaos{run}-{name}"),
            name,
            acks,
            idempotent: idem,
        });
    }
    v
}

/// Runs the whole thing; `Ok(true)` when the model held.
pub async fn run(a: ChaosArgs, argv: Vec<String>) -> Result<bool, String> {
    if a.agents < 2 || a.shards == 0 || a.max_shards < 2 || a.partitions == 0 || a.rate <= 0.0 {
        return Err("chaos needs --agents >= 2, --max-shards >= 2, positive --shards, --partitions and --rate".into());
    }
    let seed = a.seed.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64 % 1_000_000_000)
    });
    let run = format!(
        "{}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() % 100_000_000)
    );
    let dir = a.data_root.join(format!("run-{run}"));
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let ttl = Duration::from_millis(a.lease_ttl_ms.max(500));

    // Which faults this setup can apply.
    let mut kinds: Vec<FaultKind> = if a.faults.is_empty() {
        ALL_FAULTS.to_vec()
    } else {
        a.faults.clone()
    };
    let mut skipped = Vec::new();
    if a.object_store
        .as_deref()
        .is_none_or(|u| !u.starts_with("s3://"))
        && kinds.contains(&FaultKind::Object)
    {
        skipped.push("object: needs an S3 object store (--object-store s3://...)".to_string());
        kinds.retain(|k| *k != FaultKind::Object);
    }
    if a.metadata.is_none() && kinds.contains(&FaultKind::Metadata) {
        skipped.push("metadata: needs PostgreSQL (--metadata postgres://...)".to_string());
        kinds.retain(|k| *k != FaultKind::Metadata);
    }
    let disks = if kinds.contains(&FaultKind::Disk) {
        match diskfill::available() {
            Ok(()) => Some(a.disk_mib),
            Err(why) => {
                skipped.push(format!("disk: {why}"));
                kinds.retain(|k| *k != FaultKind::Disk);
                None
            }
        }
    } else {
        None
    };
    let libfaketime = if kinds.contains(&FaultKind::Clock) {
        match clock::library(a.libfaketime.as_deref()) {
            Ok(lib) => Some(lib),
            Err(why) => {
                skipped.push(format!("clock: {why}"));
                kinds.retain(|k| *k != FaultKind::Clock);
                None
            }
        }
    } else {
        None
    };
    for s in &skipped {
        println!("chaos: skipping fault {s}");
    }

    // Stores, through their proxies.
    let (meta_url, meta_direct, meta_proxy) = match &a.metadata {
        None => {
            let u = format!("sqlite://{}", dir.join("meta.db").display());
            (u.clone(), u, None)
        }
        Some(u) => {
            let (target, head, path) = pg_through(u)?;
            let px = FaultProxy::start(target).await?;
            (format!("{head}{}{path}", px.addr()), u.clone(), Some(px))
        }
    };
    let (object_url, object_proxy) = match &a.object_store {
        Some(u) if u.starts_with("s3://") => {
            let (target, rewrite) = s3_through(u, &run)?;
            let px = FaultProxy::start(target).await?;
            (rewrite(px.addr()), Some(px))
        }
        Some(u) => (u.clone(), None),
        None => (format!("file://{}", dir.join("objects").display()), None),
    };
    let binary = a
        .agent_bin
        .clone()
        .unwrap_or_else(crate::embedded::agent_binary);
    let spec = ClusterSpec {
        binary,
        common: vec![
            format!("--metadata={meta_url}"),
            format!("--object-store={object_url}"),
            format!("--lease-ttl-ms={}", ttl.as_millis()),
            "--heartbeat-ms=300".into(),
            format!("--agent-timeout-ms={}", ttl.as_millis()),
            "--segment-age-ms=1000".into(),
            format!("--segment-bytes={}", 4 << 20),
            "--shutdown-grace-ms=15000".into(),
        ],
        shards: a.shards,
        max_shards: a.max_shards.max(a.shards),
        lease_ttl: ttl,
        libfaketime,
    };
    let schedule = nemesis::plan(
        seed,
        10_000,
        &kinds,
        a.agents,
        a.shards,
        spec.max_shards,
        ttl,
    );
    let mut replay: Vec<String> = Vec::new();
    let mut it = argv.into_iter();
    while let Some(x) = it.next() {
        if x == "--seed" {
            it.next();
        } else if !x.starts_with("--seed=") {
            replay.push(x);
        }
    }
    replay.push(format!("--seed={seed}"));
    let replay = replay.join(" ");
    println!(
        "chaos: seed {seed}, {} agents x {} shards (up to {}), {} partitions x 4 streams at {} records/s each, lease TTL {} ms, faults {:?}, for {} s",
        a.agents,
        a.shards,
        spec.max_shards,
        a.partitions,
        a.rate,
        ttl.as_millis(),
        kinds,
        a.duration.as_secs()
    );
    println!(
        "chaos: run directory {} (agent logs: */agent.log)",
        dir.display()
    );
    println!("chaos: replay with: {replay}");

    let mut cluster = Cluster::start(&dir, a.agents, spec.clone(), disks).await?;
    let addrs = cluster.all_addresses();
    let streams = streams(&run);
    let admin = Admin::connect(cluster.bootstrap())
        .await
        .map_err(|e| format!("admin: {e}"))?;
    for s in &streams {
        admin
            .create_topic(&s.topic, a.partitions)
            .await
            .map_err(|e| format!("creating {}: {e}", s.topic))?;
    }
    let ch = Channels::default();
    let leaders: Leaders = Default::default();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        observe::refresh_leaders(&ch, &addrs, &leaders).await;
        let known = leaders
            .lock()
            .iter()
            .filter(|((t, _), l)| streams.iter().any(|s| &s.topic == t) && !l.address.is_empty())
            .count();
        if known == streams.len() * a.partitions as usize {
            break;
        }
        if Instant::now() > deadline {
            return Err("the stream topics' partitions got no leaders within 60 s".into());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    let t0 = Instant::now();
    let (stop_tx, stop_rx) = watch::channel(false);
    let topics: Vec<String> = streams.iter().map(|s| s.topic.clone()).collect();
    let poller = tokio::spawn(observe::poll_leaders(
        ch.clone(),
        addrs.clone(),
        topics,
        leaders.clone(),
        t0,
        Duration::from_millis(250),
        stop_rx.clone(),
    ));
    let mut tails = Vec::new();
    for s in &streams {
        for p in 0..a.partitions {
            tails.push(tokio::spawn(observe::tail(
                ch.clone(),
                leaders.clone(),
                s.topic.clone(),
                p,
                t0,
                stop_rx.clone(),
            )));
        }
    }
    let load = Load {
        partitions: a.partitions,
        rate: a.rate,
        record_size: a.record_size.max(payload::MIN_SIZE),
    };
    let mut producers = Vec::new();
    for s in &streams {
        producers.push(tokio::spawn(workload::produce(
            s.clone(),
            addrs.clone(),
            load.clone(),
            t0,
            stop_rx.clone(),
            Duration::from_secs(60),
        )));
    }

    let events = nemesis::run(
        &mut cluster,
        nemesis::Stores {
            object: object_proxy.as_ref(),
            metadata: meta_proxy.as_ref(),
        },
        &schedule,
        t0,
        a.duration,
        &mut |m| println!("{m}"),
    )
    .await;
    let healed = workload::ms_since(t0);
    println!(
        "chaos: {} faults applied; healed at {:.1} s; checking that every partition takes writes",
        events.len(),
        healed as f64 / 1000.0
    );
    // Every partition must take writes again, after time for leases to
    // expire and move.
    let allowance = (2 * ttl).max(Duration::from_secs(5)) + Duration::from_secs(10);
    let window = Duration::from_secs(15);
    tokio::time::sleep(allowance + window).await;
    let live_window = (
        healed + allowance.as_millis() as u64,
        healed + (allowance + window).as_millis() as u64,
    );
    let _ = stop_tx.send(true);
    let mut logs = Vec::new();
    for (s, h) in streams.iter().zip(producers) {
        let log = h.await.map_err(|e| format!("producer task: {e}"))??;
        logs.push((s.clone(), log));
    }
    let mut tail_logs = Vec::new();
    for h in tails {
        tail_logs.push(h.await.map_err(|e| format!("reader task: {e}"))?);
    }
    let leader_log = poller.await.map_err(|e| format!("poller task: {e}"))?;

    println!("chaos: reading everything back");
    observe::refresh_leaders(&ch, &addrs, &leaders).await;
    let mut finals = HashMap::new();
    for s in &streams {
        for p in 0..a.partitions {
            let r = observe::read_all(&ch, &addrs, &leaders, &s.topic, p, Duration::from_secs(60))
                .await;
            finals.insert((s.topic.clone(), p), r);
        }
    }
    let index = chunks::read(&meta_direct, &format!("chaos{run}-")).await?;
    let index_faults = chunks::check(&index);

    let objects_only = if a.no_object_check {
        None
    } else {
        println!("chaos: SIGKILL every agent; reading the object streams from a fresh agent on an empty data dir");
        Some(read_objects_only(&mut cluster, &dir, &streams, a.partitions).await?)
    };
    drop(cluster);

    let verdict = checker::check(&checker::Inputs {
        streams: &logs,
        tails: &tail_logs,
        leaders: &leader_log,
        events: &events,
        finals: &finals,
        objects_only: objects_only.as_ref(),
        index_faults: &index_faults,
        live_window,
        partitions: a.partitions,
    });
    let rep = report::Report {
        seed,
        replay: replay.clone(),
        duration_s: a.duration.as_secs_f64(),
        skipped,
        events: &events,
        verdict: &verdict,
        chunk_ranges: index.values().map(Vec::len).sum(),
    };
    println!("{}", report::describe(&rep));
    if let Some(path) = &a.json {
        std::fs::write(path, report::json(&rep)).map_err(|e| format!("{}: {e}", path.display()))?;
    }
    let clean = verdict.total() == 0;
    if clean && !a.keep {
        let _ = std::fs::remove_dir_all(&dir);
    } else {
        println!("chaos: run directory kept: {}", dir.display());
    }
    Ok(clean)
}

/// SIGKILLs every agent (what they had not shipped stays behind), starts
/// one fresh agent on an empty data dir with the same stores, and reads the
/// `object` streams through it.
async fn read_objects_only(
    cluster: &mut Cluster,
    dir: &std::path::Path,
    streams: &[StreamSpec],
    partitions: u32,
) -> Result<observe::Reads, String> {
    for ag in cluster.agents.iter_mut() {
        ag.kill();
    }
    let fresh_dir = dir.join("fresh-reader");
    std::fs::create_dir_all(&fresh_dir).map_err(|e| e.to_string())?;
    let mut reader = cluster::Agent::new(
        "chaos-fresh-reader",
        fresh_dir.join("data"),
        fresh_dir.join("agent.log"),
        &cluster.spec,
    )?;
    let spec = cluster.spec.clone();
    reader.start(&spec, 1).await?;
    let addrs = reader.addresses();
    let ch = Channels::default();
    let leaders: Leaders = Default::default();
    // The dead agents' leases expire after one TTL; then the reader takes
    // them all.
    let deadline = Instant::now() + spec.lease_ttl * 4 + Duration::from_secs(30);
    let mut out = HashMap::new();
    for s in streams.iter().filter(|s| s.acks == Acks::Object) {
        for p in 0..partitions {
            loop {
                observe::refresh_leaders(&ch, &addrs, &leaders).await;
                let mine = leaders
                    .lock()
                    .get(&(s.topic.clone(), p))
                    .is_some_and(|l| l.agent == "chaos-fresh-reader");
                if mine || Instant::now() > deadline {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            let r = observe::read_all(&ch, &addrs, &leaders, &s.topic, p, Duration::from_secs(30))
                .await;
            out.insert((s.topic.clone(), p), r);
        }
    }
    reader.kill();
    Ok(out)
}
