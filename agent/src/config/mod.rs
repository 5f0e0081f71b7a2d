//! Agent configuration: every command-line flag, its environment variable
//! (`STREAMHOUSE_*`), its key in the optional TOML file (`--config`), and
//! its default. Precedence: command line, then environment, then the file,
//! then the default. Owns parsing and validation only.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;

mod address;
mod auth;
mod groups;
mod load;
mod logging;
mod retention;
mod tls;
/// Sizes and durations with units (the proto crate holds the rules, as
/// streamctl takes them too).
pub use streamhouse_proto::units;

pub use address::Advertised;

pub use auth::{AuthFlags, AuthMode};
pub use groups::GroupFlags;
pub use load::LoadError;
pub use logging::{LogFlags, LogFormat};
pub use retention::RetentionFlags;
pub use tls::TlsFlags;

/// StreamHouse agent: serves Produce, Fetch and Admin gRPC calls, one shard
/// per core, each on its own port, with a durable write-ahead log per shard.
#[derive(Debug, Clone, Parser)]
#[command(name = "streamhouse-agent", version, about, long_about = None)]
pub struct AgentConfig {
    /// TOML file with any of these options, keyed by flag name without the
    /// dashes (`segment-age-ms = 500` or `segment_age_ms = 500`). Command
    /// line and environment variables take precedence over it.
    #[arg(long, env = "STREAMHOUSE_CONFIG")]
    pub config: Option<std::path::PathBuf>,

    /// Address of shard 0 (`HOST:PORT`; a host name is resolved at start);
    /// shard i listens on PORT+i.
    #[arg(long, env = "STREAMHOUSE_LISTEN", default_value = "127.0.0.1:9092", value_parser = address::listen_address)]
    pub listen: SocketAddr,

    /// Host name clients should use to reach this agent (default: the listen
    /// host, or 127.0.0.1 when listening on all interfaces); the ports stay
    /// the listen ports. See `--advertise` to change the ports too.
    #[arg(long, env = "STREAMHOUSE_ADVERTISE_HOST", conflicts_with = "advertise")]
    pub advertise_host: Option<String>,

    /// `HOST:PORT` clients should use for shard 0 (shard i: PORT+i), when
    /// they reach the agent through a port mapping (containers, NAT); the
    /// host is given to clients as written. Default: the listen address
    /// (127.0.0.1 for an unspecified listen IP).
    #[arg(long, env = "STREAMHOUSE_ADVERTISE", value_parser = address::advertised)]
    pub advertise: Option<Advertised>,

    /// Number of shards (pinned executors); default: one per CPU core.
    #[arg(long, env = "STREAMHOUSE_SHARDS")]
    pub shards: Option<usize>,

    /// Directory for the write-ahead logs (and the default metadata and object stores).
    #[arg(
        long,
        env = "STREAMHOUSE_DATA_DIR",
        default_value = "./streamhouse-data"
    )]
    pub data_dir: PathBuf,

    /// Identifier of this agent in metadata responses.
    #[arg(long, env = "STREAMHOUSE_AGENT_ID", default_value = "agent-1")]
    pub agent_id: String,

    /// Create a topic on its first Produce instead of answering NOT_FOUND.
    #[arg(long, env = "STREAMHOUSE_AUTO_CREATE_TOPICS", default_value_t = false)]
    pub auto_create_topics: bool,

    /// Partitions of an auto-created topic.
    #[arg(long, env = "STREAMHOUSE_DEFAULT_PARTITIONS", default_value_t = 1)]
    pub default_partitions: u32,

    /// Largest request message accepted, in bytes (default 8 MiB).
    #[arg(long, env = "STREAMHOUSE_MAX_REQUEST_BYTES", default_value_t = 8 << 20, value_parser = crate::config::units::bytes::<usize>)]
    pub max_request_bytes: usize,

    /// Largest single record (key + value + headers) accepted, in bytes (default 8 MiB).
    #[arg(long, env = "STREAMHOUSE_MAX_RECORD_BYTES", default_value_t = 8 << 20, value_parser = crate::config::units::bytes::<usize>)]
    pub max_record_bytes: usize,

    /// A WAL segment is sealed at this size, in bytes (default 64 MiB).
    #[arg(long, env = "STREAMHOUSE_SEGMENT_BYTES", default_value_t = 64 << 20, value_parser = crate::config::units::bytes::<u64>)]
    pub segment_bytes: u64,

    /// Write the WAL with O_DIRECT instead of buffered writes (default
    /// off). Every acknowledged write is covered by `fdatasync` either
    /// way; buffered appends sync faster on ext4 (docs/BENCHMARKS.md).
    #[arg(long, env = "STREAMHOUSE_WAL_DIRECT_IO", default_value_t = false)]
    pub wal_direct_io: bool,

    /// How far ahead of its writes the active WAL segment's blocks are
    /// allocated, in bytes (default 0: off; else at least 1 MiB):
    /// zero-filled, synced and checked to be written extents before any
    /// batch goes there, so writes go on while the disk cannot allocate
    /// until that headroom is used up. It writes the WAL twice. Without it
    /// every write's blocks are still checked after its sync, before its
    /// acknowledgement.
    #[arg(long, env = "STREAMHOUSE_WAL_PREALLOCATE_BYTES", default_value_t = 0, value_parser = crate::config::units::bytes::<u64>)]
    pub wal_preallocate_bytes: u64,

    /// A WAL segment is sealed (and shipped to the object store) once its
    /// data is this old, in milliseconds (default 10000): bounds how far
    /// object storage lags behind durable writes.
    #[arg(long, env = "STREAMHOUSE_SEGMENT_AGE_MS", default_value_t = 10_000, value_parser = crate::config::units::millis::<u64>)]
    pub segment_age_ms: u64,

    /// While an ack-`object` request waits on the active segment, the
    /// segment is sealed once its data is this old, in milliseconds
    /// (default 100): bounds ack-`object` latency without many small
    /// objects when nobody waits.
    #[arg(long, env = "STREAMHOUSE_OBJECT_ACK_SEAL_MS", default_value_t = 100, value_parser = crate::config::units::millis::<u64>)]
    pub object_ack_seal_ms: u64,

    /// On SIGTERM/SIGINT, how long in-flight requests may take before the
    /// agent exits anyway, in milliseconds (default 10000).
    #[arg(long, env = "STREAMHOUSE_SHUTDOWN_GRACE_MS", default_value_t = 10_000, value_parser = crate::config::units::millis::<u64>)]
    pub shutdown_grace_ms: u64,

    /// When the data dir was written with another shard count, how long
    /// the agent may take at start to ship the old layout's WAL to object
    /// storage before serving with the new count, in milliseconds (default
    /// 600000). If it cannot, it exits (code 2) and keeps the old WAL.
    #[arg(
        long,
        env = "STREAMHOUSE_RESHARD_TIMEOUT_MS",
        default_value_t = 600_000,
        value_parser = crate::config::units::millis::<u64>
    )]
    pub reshard_timeout_ms: u64,

    /// Where sealed chunks go: `file:///DIR` or
    /// `s3://BUCKET[/PREFIX]?endpoint=URL&region=R` (credentials from the
    /// AWS chain: docs/SECURITY.md; path-style addressing with a custom
    /// endpoint). Default: file://DATA_DIR/objects.
    #[arg(long, env = "STREAMHOUSE_OBJECT_STORE")]
    pub object_store: Option<String>,

    /// Metadata store: `sqlite:///PATH` or `postgres://USER@HOST:PORT/DB[?sslmode=...]`
    /// (TLS options: docs/SECURITY.md). Default: sqlite://DATA_DIR/metadata.db.
    #[arg(long, env = "STREAMHOUSE_METADATA")]
    pub metadata: Option<String>,

    /// Partition lease time to live, in milliseconds (default 10000); leases
    /// are renewed every third of it.
    #[arg(long, env = "STREAMHOUSE_LEASE_TTL_MS", default_value_t = 10_000, value_parser = crate::config::units::millis::<u64>)]
    pub lease_ttl_ms: u64,

    /// Most bytes of sealed segments per shard waiting for upload before
    /// produce answers RESOURCE_EXHAUSTED (default 1 GiB).
    #[arg(long, env = "STREAMHOUSE_MAX_UPLOAD_BACKLOG_BYTES", default_value_t = 1 << 30, value_parser = crate::config::units::bytes::<u64>)]
    pub max_upload_backlog_bytes: u64,

    /// How often the agent writes its heartbeat to the metadata store, in
    /// milliseconds (default 1000).
    #[arg(long, env = "STREAMHOUSE_HEARTBEAT_MS", default_value_t = 1000, value_parser = crate::config::units::millis::<u64>)]
    pub heartbeat_ms: u64,

    /// An agent whose last heartbeat is older than this is dead and its
    /// partitions are reassigned (taken over once their leases expire), in
    /// milliseconds (default 5000).
    #[arg(long, env = "STREAMHOUSE_AGENT_TIMEOUT_MS", default_value_t = 5000, value_parser = crate::config::units::millis::<u64>)]
    pub agent_timeout_ms: u64,

    /// Consumer-group limits and timeouts (`--group-*`).
    #[command(flatten)]
    pub groups: GroupFlags,

    /// Topic configuration defaults (`--default-retention-*`).
    #[command(flatten)]
    pub retention: RetentionFlags,

    #[command(flatten)]
    pub logging: LogFlags,

    /// TLS on the shard ports (`--tls-*`).
    #[command(flatten)]
    pub tls: TlsFlags,

    /// Authentication of clients (`--auth`, `--superusers`, ...).
    #[command(flatten)]
    pub auth: AuthFlags,

    /// HTTP address for `/health` (liveness), `/ready` (leases acquired,
    /// metadata store reachable, shards writable) and `/metrics`
    /// (Prometheus text or OpenMetrics, docs/METRICS.md); off by default.
    #[arg(long, env = "STREAMHOUSE_ADMIN_LISTEN", value_parser = address::listen_address)]
    pub admin_listen: Option<SocketAddr>,

    /// `/metrics` gives the per-topic produce and fetch families a series
    /// per partition (labels `topic`, `partition`) instead of one per
    /// topic; off by default (up to 10,000 partitions per topic make many
    /// series).
    #[arg(long, env = "STREAMHOUSE_METRICS_PER_PARTITION")]
    pub metrics_per_partition: bool,

    /// Most client connections per shard port (default 1024). Lowered at
    /// start when the open-file limit cannot hold them all with the
    /// descriptors the log and the stores need (see docs/LIMITS.md); a
    /// connection over the limit gets an HTTP/2 GOAWAY and is closed.
    #[arg(
        long,
        env = "STREAMHOUSE_MAX_CONNECTIONS_PER_SHARD",
        default_value_t = 1024
    )]
    pub max_connections_per_shard: usize,

    /// Most connections to the admin port at once (default 64); more are
    /// closed at once.
    #[arg(long, env = "STREAMHOUSE_MAX_ADMIN_CONNECTIONS", default_value_t = 64)]
    pub max_admin_connections: usize,

    /// A shard connection without open streams for this long is closed
    /// with a GOAWAY, in milliseconds (default 600000 = 10 min).
    #[arg(
        long,
        env = "STREAMHOUSE_CONNECTION_IDLE_TIMEOUT_MS",
        default_value_t = 600_000,
        value_parser = crate::config::units::millis::<u64>
    )]
    pub connection_idle_timeout_ms: u64,

    /// A new connection must complete the HTTP/2 handshake (preface and
    /// SETTINGS) within this, in milliseconds (default 10000).
    #[arg(
        long,
        env = "STREAMHOUSE_HANDSHAKE_TIMEOUT_MS",
        default_value_t = 10_000,
        value_parser = crate::config::units::millis::<u64>
    )]
    pub handshake_timeout_ms: u64,

    /// A request's whole message must arrive within this after its headers,
    /// in milliseconds (default 30000); else DEADLINE_EXCEEDED and its
    /// buffer is freed.
    #[arg(
        long,
        env = "STREAMHOUSE_REQUEST_BODY_TIMEOUT_MS",
        default_value_t = 30_000,
        value_parser = crate::config::units::millis::<u64>
    )]
    pub request_body_timeout_ms: u64,

    /// Most bytes of request messages held in memory per shard (default
    /// 256 MiB); a request that does not fit gets RESOURCE_EXHAUSTED.
    #[arg(long, env = "STREAMHOUSE_MAX_BUFFERED_BYTES_PER_SHARD", default_value_t = 256 << 20)]
    pub max_buffered_bytes_per_shard: usize,

    /// Most bytes of request messages held in memory per connection
    /// (default 64 MiB); at least `--max-request-bytes` + 5.
    #[arg(long, env = "STREAMHOUSE_MAX_BUFFERED_BYTES_PER_CONNECTION", default_value_t = 64 << 20)]
    pub max_buffered_bytes_per_connection: usize,

    /// Most bytes of replies built from reads held in memory per shard
    /// (default 256 MiB): a fetch reserves twice its `max_bytes` (the
    /// records read, then the encoded reply) before it reads and returns
    /// it once HTTP/2 took the reply's last byte. A fetch that does not fit
    /// gets RESOURCE_EXHAUSTED with a retry pushback.
    #[arg(long, env = "STREAMHOUSE_MAX_REPLY_BYTES_PER_SHARD", default_value_t = 256 << 20)]
    pub max_reply_bytes_per_shard: usize,

    /// Most bytes of replies built from reads held in memory per
    /// connection (default 128 MiB); at least 2 MiB. A fetch's `max_bytes`
    /// is lowered to half of the smaller reply budget.
    #[arg(long, env = "STREAMHOUSE_MAX_REPLY_BYTES_PER_CONNECTION", default_value_t = 128 << 20)]
    pub max_reply_bytes_per_connection: usize,

    /// The admin port closes a connection whose request head has not
    /// arrived within this, or that stays idle between requests this long,
    /// in milliseconds (default 5000).
    #[arg(
        long,
        env = "STREAMHOUSE_ADMIN_READ_TIMEOUT_MS",
        default_value_t = 5_000,
        value_parser = crate::config::units::millis::<u64>
    )]
    pub admin_read_timeout_ms: u64,

    /// Most idempotent producers a shard remembers (default 100000); past
    /// it the least recently used is forgotten, and its next batch is taken
    /// as a new producer's (see docs/LIMITS.md).
    #[arg(
        long,
        env = "STREAMHOUSE_MAX_PRODUCERS_PER_SHARD",
        default_value_t = 100_000
    )]
    pub max_producers_per_shard: usize,

    /// How often a shard looks at the shutdown flag, in milliseconds
    /// (default 20). A test knob: a small value makes hours of an idle
    /// accept loop pass in seconds.
    #[arg(
        long,
        env = "STREAMHOUSE_SHUTDOWN_POLL_MS",
        default_value_t = 20,
        hide = true,
        value_parser = crate::config::units::millis::<u64>
    )]
    pub shutdown_poll_ms: u64,

    /// Timeout of every object-store call, in milliseconds (default
    /// 10000), plus 1 s per 8 MiB the call moves: a stalled request fails
    /// and is retried instead of waiting out the HTTP client's minute.
    #[arg(
        long,
        env = "STREAMHOUSE_OBJECT_STORE_TIMEOUT_MS",
        default_value_t = 10_000,
        value_parser = crate::config::units::millis::<u64>
    )]
    pub object_store_timeout_ms: u64,

    /// Memory for chunk ranges read from object storage, in bytes (default 64 MiB).
    #[arg(long, env = "STREAMHOUSE_READ_CACHE_BYTES", default_value_t = 64 << 20, value_parser = crate::config::units::bytes::<usize>)]
    pub read_cache_bytes: usize,
}

impl AgentConfig {
    /// Checks values that clap cannot; the error names the field.
    pub fn validate(&self) -> Result<(), String> {
        if self.shards == Some(0) {
            return Err("--shards must be at least 1".into());
        }
        let shards = self.shard_count();
        if u32::from(self.listen.port()) + shards as u32 > 65_536 {
            return Err(format!(
                "--listen port {} leaves no room for {shards} shard ports",
                self.listen.port()
            ));
        }
        if let Some(a) = &self.advertise {
            if a.port == 0 {
                return Err("--advertise needs a port other than 0".into());
            }
            if u32::from(a.port) + shards as u32 > 65_536 {
                return Err(format!(
                    "--advertise port {} leaves no room for {shards} shard ports",
                    a.port
                ));
            }
        }
        if self.default_partitions == 0 {
            return Err("--default-partitions must be at least 1".into());
        }
        if self.max_request_bytes < 1024 {
            return Err("--max-request-bytes must be at least 1024".into());
        }
        if self.max_request_bytes > streamhouse_proto::batch::MAX_RECORDS_LEN {
            return Err(format!(
                "--max-request-bytes must be at most {} (256 MiB)",
                streamhouse_proto::batch::MAX_RECORDS_LEN
            ));
        }
        if self.max_buffered_bytes_per_connection < self.max_request_bytes + 5 {
            return Err(format!(
                "--max-buffered-bytes-per-connection must be at least --max-request-bytes + 5 ({})",
                self.max_request_bytes + 5
            ));
        }
        if self.max_buffered_bytes_per_shard < self.max_buffered_bytes_per_connection {
            return Err(
                "--max-buffered-bytes-per-shard must be at least --max-buffered-bytes-per-connection"
                    .into(),
            );
        }
        if self.max_reply_bytes_per_connection < 2 << 20 {
            return Err("--max-reply-bytes-per-connection must be at least 2 MiB (2097152)".into());
        }
        if self.max_reply_bytes_per_shard < self.max_reply_bytes_per_connection {
            return Err(
                "--max-reply-bytes-per-shard must be at least --max-reply-bytes-per-connection"
                    .into(),
            );
        }
        if self.max_connections_per_shard == 0 || self.max_admin_connections == 0 {
            return Err(
                "--max-connections-per-shard and --max-admin-connections must be at least 1".into(),
            );
        }
        for (flag, v) in [
            (
                "--connection-idle-timeout-ms",
                self.connection_idle_timeout_ms,
            ),
            ("--handshake-timeout-ms", self.handshake_timeout_ms),
            ("--request-body-timeout-ms", self.request_body_timeout_ms),
            ("--admin-read-timeout-ms", self.admin_read_timeout_ms),
        ] {
            if v == 0 {
                return Err(format!("{flag} must be at least 1"));
            }
        }
        if self.segment_bytes < 64 << 10 {
            return Err("--segment-bytes must be at least 65536".into());
        }
        if self.wal_preallocate_bytes != 0 && self.wal_preallocate_bytes < 1 << 20 {
            return Err("--wal-preallocate-bytes must be 0 (off) or at least 1048576".into());
        }
        if self.segment_age_ms == 0 {
            return Err("--segment-age-ms must be at least 1".into());
        }
        if self.lease_ttl_ms < 300 {
            return Err("--lease-ttl-ms must be at least 300".into());
        }
        self.groups.validate()?;
        self.retention.validate()?;
        if self.agent_id.is_empty() || self.agent_id.contains(',') {
            return Err("--agent-id must be non-empty and must not contain ','".into());
        }
        Ok(())
    }

    /// The consumer-group coordinator's settings from the `--group-*` flags.
    pub fn group_settings(&self) -> crate::groups::settings::GroupSettings {
        self.groups.settings()
    }

    /// What topics get for the configuration keys they do not set.
    pub fn topic_defaults(&self) -> crate::topics::topic_config::ConfigDefaults {
        self.retention.defaults(self.max_request_bytes)
    }

    /// Shards to run: `--shards`, else the CPUs this thread may use (the
    /// agent fixes it at start, before any thread is pinned).
    pub fn shard_count(&self) -> usize {
        self.shards.unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1)
        })
    }

    /// Listen address of shard `i`.
    pub fn shard_listen(&self, i: usize) -> SocketAddr {
        let mut a = self.listen;
        a.set_port(self.listen.port() + i as u16);
        a
    }

    /// host:port clients use for shard `i`.
    pub fn shard_address(&self, i: usize) -> String {
        if let Some(a) = &self.advertise {
            return format!("{}:{}", a.host, u32::from(a.port) + i as u32);
        }
        let host = match &self.advertise_host {
            Some(h) => h.clone(),
            None if self.listen.ip().is_unspecified() => "127.0.0.1".into(),
            None => self.listen.ip().to_string(),
        };
        format!("{host}:{}", self.listen.port() + i as u16)
    }

    /// The metadata store URL, with the embedded default.
    pub fn metadata_url(&self) -> String {
        self.metadata
            .clone()
            .unwrap_or_else(|| format!("sqlite://{}", self.data_dir.join("metadata.db").display()))
    }

    /// The object store URL, with the embedded default.
    pub fn object_store_url(&self) -> String {
        self.object_store
            .clone()
            .unwrap_or_else(|| format!("file://{}", self.data_dir.join("objects").display()))
    }

    pub fn segment_age(&self) -> Duration {
        Duration::from_millis(self.segment_age_ms)
    }

    pub fn shutdown_grace(&self) -> Duration {
        Duration::from_millis(self.shutdown_grace_ms)
    }

    pub fn reshard_timeout(&self) -> Duration {
        Duration::from_millis(self.reshard_timeout_ms)
    }

    pub fn connection_idle_timeout(&self) -> Duration {
        Duration::from_millis(self.connection_idle_timeout_ms)
    }

    pub fn handshake_timeout(&self) -> Duration {
        Duration::from_millis(self.handshake_timeout_ms)
    }

    pub fn request_body_timeout(&self) -> Duration {
        Duration::from_millis(self.request_body_timeout_ms)
    }

    pub fn admin_read_timeout(&self) -> Duration {
        Duration::from_millis(self.admin_read_timeout_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(text: &str) -> tempfile::NamedTempFile {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        std::io::Write::write_all(&mut f, text.as_bytes()).unwrap();
        f
    }

    /// Sizes and durations take units on the command line and in the
    /// file (plain numbers keep their flag's unit); a bad unit names the
    /// flag.
    #[test]
    fn sizes_and_durations_take_units() {
        let f = file("segment-bytes = \"1MiB\"\nshutdown_grace_ms = \"2s\"\nheartbeat-ms = 250\n");
        let path = f.path().to_str().unwrap().to_owned();
        let c = AgentConfig::load([
            "agent",
            "--config",
            &path,
            "--segment-age-ms",
            "5s",
            "--read-cache-bytes",
            "16MiB",
            "--default-retention-ms",
            "7d",
            "--default-retention-bytes",
            "-1",
            "--group-heartbeat-ms",
            "100ms",
        ])
        .unwrap();
        assert_eq!(c.segment_bytes, 1 << 20);
        assert_eq!(c.shutdown_grace_ms, 2_000);
        assert_eq!(c.heartbeat_ms, 250, "a plain number is in the flag's unit");
        assert_eq!(c.segment_age_ms, 5_000);
        assert_eq!(c.read_cache_bytes, 16 << 20);
        assert_eq!(c.retention.default_retention_ms, 604_800_000);
        assert_eq!(c.retention.default_retention_bytes, -1);
        assert_eq!(c.groups.group_heartbeat_ms, 100);
        match AgentConfig::load(["agent", "--segment-bytes", "64XB"]) {
            Err(LoadError::Args(e)) => {
                let e = e.to_string();
                assert!(
                    e.contains("--segment-bytes") && e.contains("unknown unit"),
                    "{e}"
                );
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn file_then_env_then_command_line() {
        let f = file(
            "segment-age-ms = 500\nheartbeat_ms = 300\nagent-id = \"from-file\"\n\
             auto-create-topics = true\nlease-ttl-ms = 4000\n",
        );
        let path = f.path().to_str().unwrap().to_owned();
        // Only this test touches this variable.
        std::env::set_var("STREAMHOUSE_LEASE_TTL_MS", "7000");
        let c = AgentConfig::load(["agent", "--config", &path, "--heartbeat-ms", "900"]).unwrap();
        std::env::remove_var("STREAMHOUSE_LEASE_TTL_MS");
        assert_eq!(c.segment_age_ms, 500, "from the file");
        assert_eq!(c.agent_id, "from-file");
        assert!(c.auto_create_topics);
        assert_eq!(c.heartbeat_ms, 900, "the command line beats the file");
        assert_eq!(c.lease_ttl_ms, 7000, "the environment beats the file");
        assert_eq!(c.shutdown_grace_ms, 10_000, "defaults stay");

        let bad = file("segment-age-ms = 5\nno-such-option = 1\n");
        let p = bad.path().to_str().unwrap().to_owned();
        match AgentConfig::load(["agent", &format!("--config={p}")]) {
            Err(LoadError::File(e)) => assert!(e.contains("no-such-option"), "{e}"),
            other => panic!("{other:?}"),
        }
        let bad = file("shards = \"many\"\n");
        let p = bad.path().to_str().unwrap().to_owned();
        match AgentConfig::load(["agent", "--config", &p]) {
            Err(LoadError::Args(e)) => assert!(e.to_string().contains("--shards"), "{e}"),
            other => panic!("{other:?}"),
        }
        let bad = file("auto-create-topics = \"yes\"\n");
        let p = bad.path().to_str().unwrap().to_owned();
        assert!(matches!(
            AgentConfig::load(["agent", "--config", &p]),
            Err(LoadError::File(_))
        ));
        assert!(matches!(
            AgentConfig::load(["agent", "--config", "/nonexistent/streamhouse.toml"]),
            Err(LoadError::File(_))
        ));
    }
}
