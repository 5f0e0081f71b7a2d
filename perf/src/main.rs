//! `streamhouse-perf`: how fast StreamHouse is, measured next to the
//! physical floor of the same machine in the same run.
//!
//! Subcommands: `produce` (any settings), the seed's presets `throughput`
//! (1M records as fast as possible), `latency` (fixed rate, open loop) and
//! `concurrent` (10 producers x 100K records), and `floor` (fdatasync
//! latency, disk and loopback bandwidth), and `chaos` (a seeded fault run
//! checked against a model, see `chaos/mod.rs`). Exit code 0 when every record was
//! acknowledged, 1 when some failed, 2 for bad usage or a setup failure.

mod chaos;
mod consume;
mod embedded;
mod failover;
mod floor;
mod groups;
mod objfloor;
mod produce;
mod report;
mod security;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use streamhouse_client::Acks;

use crate::embedded::EmbeddedAgent;
use crate::produce::{ProduceOpts, ProduceReport, SendApi};

#[derive(Parser)]
#[command(
    name = "streamhouse-perf",
    version,
    about = "StreamHouse performance suite"
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Produce with explicit settings.
    Produce(RunArgs),
    /// Preset: 1,000,000 records as fast as possible.
    Throughput(RunArgs),
    /// Preset: a fixed rate (default 50,000 records/s), open loop; p50/p95/p99.
    Latency(RunArgs),
    /// Preset: 10 producers x 100,000 records.
    Concurrent(RunArgs),
    /// Preset: agents sharing metadata and object stores, one SIGKILLed
    /// mid-run; counts lost, duplicated and out-of-order records.
    Failover(FailoverArgs),
    /// A seeded fault run against a cluster of agent processes (kills,
    /// pauses, reshards, handoffs, store faults, full disks), checked
    /// against a model; exit 1 on any violation.
    Chaos(chaos::ChaosArgs),
    /// Read back: prefill a topic, then read it from the local log (hot),
    /// from object storage (cold, --cold), as a group of --members, and
    /// time produce -> consumer at a fixed rate (e2e).
    Consume(consume::ConsumeArgs),
    /// Consumer-group members one agent coordinates: N groups x M
    /// simulated members heartbeating at the default interval.
    Groups(groups::GroupsArgs),
    /// Two `--json` reports side by side, each figure with B/A, and the
    /// settings that differ.
    Compare {
        /// The first report (A).
        a: PathBuf,
        /// The second report (B).
        b: PathBuf,
    },
    /// Measure the physical floor only.
    Floor {
        /// Directory on the disk to measure.
        #[arg(long, default_value = ".")]
        dir: PathBuf,
    },
}

#[derive(Args, Debug, Clone)]
struct FailoverArgs {
    /// Records in total.
    #[arg(long, default_value_t = 1_000_000)]
    records: u64,
    /// Value size in bytes (at least 16: the sequence number).
    #[arg(long, default_value_t = 100)]
    record_size: usize,
    #[arg(long, default_value_t = 12)]
    partitions: u32,
    /// Agent processes (one shard each).
    #[arg(long, default_value_t = 3)]
    agents: usize,
    #[arg(long, value_enum, default_value_t = AckArg::Object)]
    acks: AckArg,
    /// Lease TTL of the agents, ms: bounds how long moved partitions wait.
    #[arg(long, default_value_t = 2000)]
    lease_ttl_ms: u64,
    /// Fraction of the records acknowledged before the kill.
    #[arg(long, default_value_t = 0.3)]
    kill_at: f64,
    /// Restart the killed agent on its data dir this many ms after the
    /// kill (needed for ack `durable` to lose nothing).
    #[arg(long)]
    restart_after_ms: Option<u64>,
    /// Where the agents' data dirs and shared stores go.
    #[arg(long, default_value = "./perf-data")]
    data_root: PathBuf,
}

#[derive(Clone, Copy, ValueEnum, Debug)]
enum AckArg {
    Durable,
    Object,
}

#[derive(Args, Clone, Debug)]
struct RunArgs {
    /// Records in total (default 1,000,000; presets set their own).
    #[arg(long)]
    records: Option<u64>,
    /// Value size in bytes.
    #[arg(long, default_value_t = 100)]
    record_size: usize,
    /// Partitions of the benchmark topic (created if missing).
    #[arg(long, default_value_t = 4)]
    partitions: u32,
    /// Concurrent producers (each with its own connections).
    #[arg(long)]
    producers: Option<usize>,
    /// Records per batch.
    #[arg(long, default_value_t = 10_000)]
    batch_records: usize,
    /// Bytes per batch.
    #[arg(long, default_value_t = 1 << 20)]
    batch_bytes: usize,
    /// Linger in milliseconds (default 5; the latency preset uses 1).
    #[arg(long)]
    linger: Option<u64>,
    #[arg(long, value_enum, default_value_t = AckArg::Durable)]
    acks: AckArg,
    /// Records/s over all producers (unset = as fast as possible).
    #[arg(long)]
    rate: Option<f64>,
    /// Client API: `record` (`send` per record, batched by the producer's
    /// accumulator) or `batch` (`send_batch` of `--batch-records` records
    /// per call, partitions in turn).
    #[arg(long, value_enum, default_value_t = SendApi::Record)]
    api: SendApi,
    /// Requests in flight per connection.
    #[arg(long, default_value_t = 32)]
    max_in_flight: usize,
    /// Requests in flight per partition (1 to 16).
    #[arg(long, default_value_t = 5)]
    in_flight_per_partition: usize,
    /// Connections per agent shard.
    #[arg(long, default_value_t = 2)]
    connections: usize,
    /// Topic name.
    #[arg(long, default_value = "perf")]
    topic: String,
    /// Agent to use (host:port of any shard).
    #[arg(long, conflicts_with = "embedded")]
    bootstrap: Option<String>,
    /// Start an agent process with embedded defaults on a temporary data dir.
    #[arg(long)]
    embedded: bool,
    /// Shards of the embedded agent (default: one per core).
    #[arg(long)]
    shards: Option<usize>,
    /// Where the embedded agent's data dir (and the floor's test files) go.
    #[arg(long, default_value = "./perf-data")]
    data_root: PathBuf,
    /// pid of an external agent, to report its CPU and RSS.
    #[arg(long)]
    agent_pid: Option<u32>,
    /// Object store for the embedded agent (`file:///DIR` or
    /// `s3://BUCKET[/PREFIX]?endpoint=URL&region=R`); with `--acks object`
    /// its PUT latency and bandwidth are measured after the run.
    #[arg(long)]
    object_store: Option<String>,
    /// Extra flag for the embedded agent (repeatable), e.g.
    /// `--agent-arg=--segment-age-ms=100`.
    #[arg(long, allow_hyphen_values = true)]
    agent_arg: Vec<String>,
    /// Skip the floor measurement.
    #[arg(long)]
    no_floor: bool,
    /// Write the report as JSON here (with the per-interval timeline).
    #[arg(long)]
    json: Option<PathBuf>,
    /// Write the latency distribution here, in HdrHistogram's percentile
    /// format (`.hgrm`, milliseconds), as its plotter reads it.
    #[arg(long)]
    hdr_out: Option<PathBuf>,
    /// Draw latency percentiles and throughput over time, and the latency
    /// distribution, as an SVG here.
    #[arg(long)]
    plot: Option<PathBuf>,
    /// Seconds between progress lines.
    #[arg(long, default_value_t = 5)]
    interval: u64,
    /// After the run, read the topic back and check every acknowledged
    /// record is there (use a fresh topic).
    #[arg(long)]
    verify: bool,
    #[command(flatten)]
    security: security::SecurityArgs,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // The client library's own log lines (retries, failed batches) go to
    // stderr; `RUST_LOG` selects them, warnings by default. Colour only on
    // a terminal and never with NO_COLOR (runs are often logged to files).
    use std::io::IsTerminal as _;
    let ansi = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(ansi)
        .init();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("streamhouse-perf: cannot start runtime: {e}");
            return ExitCode::from(2);
        }
    };
    match rt.block_on(run(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("streamhouse-perf: {e}");
            ExitCode::from(2)
        }
    }
}

async fn run(cli: Cli) -> Result<ExitCode, String> {
    let (args, preset) = match cli.command {
        Cmd::Floor { dir } => {
            let f = floor::measure(&dir).map_err(|e| format!("floor on {}: {e}", dir.display()))?;
            println!("{}", floor::describe(&f));
            return Ok(ExitCode::SUCCESS);
        }
        Cmd::Compare { a, b } => {
            let (ra, rb) = (report::compare::load(&a)?, report::compare::load(&b)?);
            let name = |p: &PathBuf| p.display().to_string();
            print!(
                "{}",
                report::compare::table(&ra, &rb, (&name(&a), &name(&b)))
            );
            return Ok(ExitCode::SUCCESS);
        }
        Cmd::Consume(c) => return consume::run(c).await,
        Cmd::Groups(g) => return groups::run(g).await,
        Cmd::Chaos(c) => {
            let argv: Vec<String> = std::env::args().collect();
            return Ok(if chaos::run(c, argv).await? {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            });
        }
        Cmd::Failover(f) => {
            if f.agents < 2 || f.partitions == 0 || f.records == 0 {
                return Err(
                    "failover needs --agents >= 2 and positive --partitions and --records".into(),
                );
            }
            let opts = failover::FailoverOpts {
                records: f.records,
                record_size: f.record_size,
                partitions: f.partitions,
                agents: f.agents,
                acks: match f.acks {
                    AckArg::Durable => Acks::Durable,
                    AckArg::Object => Acks::Object,
                },
                lease_ttl_ms: f.lease_ttl_ms,
                kill_at: f.kill_at.clamp(0.0, 1.0),
                restart_after: f.restart_after_ms.map(Duration::from_millis),
            };
            println!(
                "failover: {} records x {} B, {} partitions, {} agents (1 shard each, shared SQLite and local object store), acks {:?}, lease TTL {} ms",
                f.records, f.record_size, f.partitions, f.agents, f.acks, f.lease_ttl_ms
            );
            let r = failover::run(&f.data_root, &opts).await?;
            println!("{}", failover::describe(&r));
            let clean = r.lost == 0 && r.duplicated == 0 && r.out_of_order == 0 && r.failed == 0;
            if r.recovery_ms.is_none() {
                eprintln!(
                    "failover: not measured: no record sent to a moved partition was acknowledged after the kill"
                );
            }
            return Ok(if clean && r.recovery_ms.is_some() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            });
        }
        Cmd::Produce(a) => (a, "produce"),
        Cmd::Throughput(a) => (a, "throughput"),
        Cmd::Latency(a) => (a, "latency"),
        Cmd::Concurrent(a) => (a, "concurrent"),
    };
    let linger = args
        .linger
        .unwrap_or(if preset == "latency" { 1 } else { 5 });
    let (records, producers, rate) = match preset {
        "latency" => (
            args.records.unwrap_or(500_000),
            args.producers.unwrap_or(1),
            args.rate.or(Some(50_000.0)),
        ),
        "concurrent" => (
            args.records.unwrap_or(1_000_000),
            args.producers.unwrap_or(10),
            args.rate,
        ),
        _ => (
            args.records.unwrap_or(1_000_000),
            args.producers.unwrap_or(1),
            args.rate,
        ),
    };
    if producers == 0 || records == 0 || args.partitions == 0 || args.batch_records == 0 {
        return Err(
            "--records, --producers, --partitions and --batch-records must be positive".into(),
        );
    }
    let opts = ProduceOpts {
        topic: args.topic.clone(),
        records,
        record_size: args.record_size,
        partitions: args.partitions,
        producers,
        batch_records: args.batch_records,
        batch_bytes: args.batch_bytes,
        linger: Duration::from_millis(linger),
        acks: match args.acks {
            AckArg::Durable => Acks::Durable,
            AckArg::Object => Acks::Object,
        },
        rate,
        api: args.api,
        max_in_flight: args.max_in_flight,
        in_flight_per_partition: args.in_flight_per_partition,
        connections: args.connections,
        interval: Duration::from_secs(args.interval.max(1)),
        pool: args.security.pool()?,
    };
    let shards = args
        .shards
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let secured = args.security.secure_embedded(&args.data_root)?;
    let agent = if args.embedded || args.bootstrap.is_none() {
        let mut extra = args.agent_arg.clone();
        extra.extend(secured.iter().flat_map(|s| s.agent_args.clone()));
        if let Some(url) = &args.object_store {
            extra.push(format!("--object-store={url}"));
        }
        Some(EmbeddedAgent::start(&args.data_root, shards, &extra)?)
    } else {
        None
    };
    let bootstrap = match (&agent, &args.bootstrap) {
        (Some(a), _) => a.bootstrap(),
        (None, Some(b)) => b.clone(),
        (None, None) => return Err("give --bootstrap or --embedded".into()),
    };
    let pid = agent.as_ref().map(EmbeddedAgent::pid).or(args.agent_pid);
    let mut opts = opts;
    if let Some(s) = &secured {
        opts.pool = s.user_pool(&bootstrap, &opts.topic).await?;
    }
    println!(
        "{preset}: {records} records x {} B, {producers} producer(s), api {:?}, {} partitions, batch {} records / {} bytes, linger {} ms, {} in flight per partition, acks {:?}, rate {}, {}, agent {bootstrap}{}",
        opts.record_size,
        opts.api,
        opts.partitions,
        opts.batch_records,
        opts.batch_bytes,
        linger,
        opts.in_flight_per_partition,
        args.acks,
        rate.map_or("unlimited".to_string(), |r| format!("{r} records/s")),
        args.security.label(),
        if agent.is_some() { format!(" (embedded, {shards} shards)") } else { String::new() }
    );
    let cpu0 = pid.and_then(embedded::cpu_seconds);
    let mut report = produce::run(&bootstrap, &opts).await?;
    if args.verify {
        let n = produce::read_back(&bootstrap, &opts.pool, &opts.topic, opts.partitions).await?;
        println!(
            "verify: {n} records read back, {} acknowledged",
            report.acked
        );
        report.read_back = Some(n);
    }
    let cpu = match (pid.and_then(embedded::cpu_seconds), cpu0) {
        (Some(a), Some(b)) => Some(a - b),
        _ => None,
    };
    let rss = pid.and_then(embedded::peak_rss_mib);
    drop(agent);
    // The floor is measured right after the run, on the same disk: before
    // it, deleting its test files would make the disk discard blocks while
    // the run syncs.
    let floor = if args.no_floor {
        None
    } else {
        std::fs::create_dir_all(&args.data_root).map_err(|e| e.to_string())?;
        let f = floor::measure(&args.data_root).map_err(|e| format!("floor: {e}"))?;
        println!("{}", floor::describe(&f));
        Some(f)
    };
    let object_floor = if args.no_floor || !matches!(args.acks, AckArg::Object) {
        None
    } else {
        let url = args
            .object_store
            .clone()
            .unwrap_or_else(|| format!("file://{}", args.data_root.join("object-floor").display()));
        let f = objfloor::measure(&url)
            .await
            .map_err(|e| format!("object store floor: {e}"))?;
        println!("{}", objfloor::describe(&f));
        println!(
            "ratio: ack-object p50 / PUT p50 = {:.1}x",
            report.p50_ms / f.put_p50_ms.max(1e-6)
        );
        Some(f)
    };
    print_report(&report, &opts, floor.as_ref(), cpu, rss);
    if let (Some(path), Some(h)) = (&args.hdr_out, &report.latency) {
        std::fs::write(path, report::hgrm::render(h))
            .map_err(|e| format!("--hdr-out {}: {e}", path.display()))?;
    }
    if let (Some(path), Some(h)) = (&args.plot, &report.latency) {
        let title = format!(
            "streamhouse-perf {preset}: {} records of {} B at {}, acks {:?}, batch {} records / {} B, linger {} ms",
            report.acked,
            opts.record_size,
            opts.rate.map_or("full speed".to_owned(), |r| format!("{r} records/s")),
            opts.acks,
            opts.batch_records,
            opts.batch_bytes,
            opts.linger.as_millis()
        );
        report::plot::write(path, &title, &report.timeline, h)?;
    }
    if let Some(path) = &args.json {
        let mut j = json_report(preset, &report, &opts, floor.as_ref(), cpu, rss);
        j["settings"]["security"] = args.security.label().into();
        if let Some(f) = &object_floor {
            j["object_floor"] = serde_json::json!({
                "store": f.store, "put_p50_ms": f.put_p50_ms,
                "put_p99_ms": f.put_p99_ms, "put_mb_s": f.put_mb_s,
            });
        }
        std::fs::write(
            path,
            serde_json::to_vec_pretty(&j).map_err(|e| e.to_string())?,
        )
        .map_err(|e| format!("writing {}: {e}", path.display()))?;
    }
    if report.read_back.is_some_and(|n| n != report.acked) {
        eprintln!(
            "streamhouse-perf: read back a different number of records than were acknowledged"
        );
        return Ok(ExitCode::from(1));
    }
    if report.failed > 0 || report.acked != report.sent {
        eprintln!(
            "streamhouse-perf: {} of {} records failed; first error: {}",
            report.sent - report.acked,
            report.sent,
            report.first_error.as_deref().unwrap_or("none")
        );
        return Ok(ExitCode::from(1));
    }
    Ok(ExitCode::SUCCESS)
}

fn print_report(
    r: &ProduceReport,
    o: &ProduceOpts,
    floor: Option<&floor::Floor>,
    cpu: Option<f64>,
    rss: Option<f64>,
) {
    println!("{}", produce::final_line(r, o.record_size));
    println!(
        "requests: {} ({} batches, {} retries), {:.2} ms avg request latency, {:.0} records/request",
        r.requests,
        r.batches,
        r.retries,
        r.request_avg_ms,
        r.acked as f64 / r.requests.max(1) as f64
    );
    if let Some(cpu) = cpu {
        println!(
            "agent: {cpu:.2} CPU s ({:.2} us/record){}",
            cpu * 1e6 / r.acked.max(1) as f64,
            rss.map_or(String::new(), |m| format!(", peak RSS {m:.0} MiB"))
        );
    }
    if let Some(f) = floor {
        println!(
            "vs floor: p50 latency / fdatasync p50 = {:.2}x; {:.1} MB/s / synced appends {:.0} MB/s = {:.1}%, / disk {:.0} MB/s = {:.1}%",
            r.p50_ms / f.fdatasync_p50_ms.max(1e-9),
            r.mb_per_s,
            f.synced_append_mb_s,
            100.0 * r.mb_per_s / f.synced_append_mb_s.max(1e-9),
            f.disk_write_mb_s,
            100.0 * r.mb_per_s / f.disk_write_mb_s.max(1e-9)
        );
    }
}

fn json_report(
    preset: &str,
    r: &ProduceReport,
    o: &ProduceOpts,
    floor: Option<&floor::Floor>,
    cpu: Option<f64>,
    rss: Option<f64>,
) -> serde_json::Value {
    serde_json::json!({
        "preset": preset,
        "settings": {
            "records": o.records, "record_size": o.record_size, "partitions": o.partitions,
            "producers": o.producers, "batch_records": o.batch_records, "batch_bytes": o.batch_bytes,
            "linger_ms": o.linger.as_millis() as u64, "acks": format!("{:?}", o.acks),
            "api": format!("{:?}", o.api),
            "rate": o.rate, "max_in_flight": o.max_in_flight,
            "in_flight_per_partition": o.in_flight_per_partition, "connections": o.connections,
        },
        "sent": r.sent, "acked": r.acked, "failed": r.failed,
        "elapsed_s": r.elapsed_s, "records_per_s": r.records_per_s, "mb_per_s": r.mb_per_s,
        "latency_ms": { "avg": r.avg_ms, "max": r.max_ms, "p50": r.p50_ms, "p95": r.p95_ms, "p99": r.p99_ms, "p999": r.p999_ms },
        "requests": r.requests, "batches": r.batches, "retries": r.retries, "request_avg_ms": r.request_avg_ms,
        "agent_cpu_s": cpu, "agent_peak_rss_mib": rss, "read_back": r.read_back,
        "timeline": r.timeline,
        "floor": floor.map(|f| serde_json::json!({
            "fdatasync_p50_ms": f.fdatasync_p50_ms, "fdatasync_p99_ms": f.fdatasync_p99_ms,
            "disk_write_mb_s": f.disk_write_mb_s, "synced_append_mb_s": f.synced_append_mb_s,
            "loopback_mb_s": f.loopback_mb_s,
        })),
    })
}
