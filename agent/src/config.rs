//! Agent configuration: every command-line flag, its environment variable
//! (`STREAMHOUSE_*`) and its default. Owns parsing and validation only.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;

/// StreamHouse agent: serves Produce, Fetch and Admin gRPC calls, one shard
/// per core, each on its own port, with a durable write-ahead log per shard.
#[derive(Debug, Clone, Parser)]
#[command(name = "streamhouse-agent", version, about, long_about = None)]
pub struct AgentConfig {
    /// Address of shard 0; shard i listens on PORT+i.
    #[arg(long, env = "STREAMHOUSE_LISTEN", default_value = "127.0.0.1:9092")]
    pub listen: SocketAddr,

    /// Host name clients should use to reach this agent (default: the listen
    /// host, or 127.0.0.1 when listening on all interfaces).
    #[arg(long, env = "STREAMHOUSE_ADVERTISE_HOST")]
    pub advertise_host: Option<String>,

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
    #[arg(long, env = "STREAMHOUSE_MAX_REQUEST_BYTES", default_value_t = 8 << 20)]
    pub max_request_bytes: usize,

    /// Largest single record (key + value + headers) accepted, in bytes (default 8 MiB).
    #[arg(long, env = "STREAMHOUSE_MAX_RECORD_BYTES", default_value_t = 8 << 20)]
    pub max_record_bytes: usize,

    /// A WAL segment is sealed at this size, in bytes (default 64 MiB).
    #[arg(long, env = "STREAMHOUSE_SEGMENT_BYTES", default_value_t = 64 << 20)]
    pub segment_bytes: u64,

    /// A WAL segment is sealed (and shipped to the object store) once its
    /// data is this old, in milliseconds (default 10000): bounds how far
    /// object storage lags behind durable writes.
    #[arg(long, env = "STREAMHOUSE_SEGMENT_AGE_MS", default_value_t = 10_000)]
    pub segment_age_ms: u64,

    /// While an ack-`object` request waits on the active segment, the
    /// segment is sealed once its data is this old, in milliseconds
    /// (default 100): bounds ack-`object` latency without many small
    /// objects when nobody waits.
    #[arg(long, env = "STREAMHOUSE_OBJECT_ACK_SEAL_MS", default_value_t = 100)]
    pub object_ack_seal_ms: u64,

    /// On SIGTERM/SIGINT, how long in-flight requests may take before the
    /// agent exits anyway, in milliseconds (default 10000).
    #[arg(long, env = "STREAMHOUSE_SHUTDOWN_GRACE_MS", default_value_t = 10_000)]
    pub shutdown_grace_ms: u64,

    /// Where sealed chunks go: `file:///DIR` or
    /// `s3://BUCKET[/PREFIX]?endpoint=URL&region=R` (credentials from
    /// AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY; path-style addressing with
    /// a custom endpoint). Default: file://DATA_DIR/objects.
    #[arg(long, env = "STREAMHOUSE_OBJECT_STORE")]
    pub object_store: Option<String>,

    /// Metadata store: `sqlite:///PATH` or `postgres://USER@HOST:PORT/DB`.
    /// Default: sqlite://DATA_DIR/metadata.db.
    #[arg(long, env = "STREAMHOUSE_METADATA")]
    pub metadata: Option<String>,

    /// Partition lease time to live, in milliseconds (default 10000); leases
    /// are renewed every third of it.
    #[arg(long, env = "STREAMHOUSE_LEASE_TTL_MS", default_value_t = 10_000)]
    pub lease_ttl_ms: u64,

    /// Most bytes of sealed segments per shard waiting for upload before
    /// produce answers RESOURCE_EXHAUSTED (default 1 GiB).
    #[arg(long, env = "STREAMHOUSE_MAX_UPLOAD_BACKLOG_BYTES", default_value_t = 1 << 30)]
    pub max_upload_backlog_bytes: u64,

    /// How often the agent writes its heartbeat to the metadata store, in
    /// milliseconds (default 1000).
    #[arg(long, env = "STREAMHOUSE_HEARTBEAT_MS", default_value_t = 1000)]
    pub heartbeat_ms: u64,

    /// An agent whose last heartbeat is older than this is dead and its
    /// partitions are reassigned (taken over once their leases expire), in
    /// milliseconds (default 5000).
    #[arg(long, env = "STREAMHOUSE_AGENT_TIMEOUT_MS", default_value_t = 5000)]
    pub agent_timeout_ms: u64,

    /// HTTP address for `/health` (liveness) and `/ready` (leases acquired,
    /// metadata store reachable); off by default.
    #[arg(long, env = "STREAMHOUSE_ADMIN_LISTEN")]
    pub admin_listen: Option<SocketAddr>,

    /// Memory for chunk ranges read from object storage, in bytes (default 64 MiB).
    #[arg(long, env = "STREAMHOUSE_READ_CACHE_BYTES", default_value_t = 64 << 20)]
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
        if self.default_partitions == 0 {
            return Err("--default-partitions must be at least 1".into());
        }
        if self.max_request_bytes < 1024 {
            return Err("--max-request-bytes must be at least 1024".into());
        }
        if self.segment_bytes < 64 << 10 {
            return Err("--segment-bytes must be at least 65536".into());
        }
        if self.segment_age_ms == 0 {
            return Err("--segment-age-ms must be at least 1".into());
        }
        if self.lease_ttl_ms < 300 {
            return Err("--lease-ttl-ms must be at least 300".into());
        }
        if self.agent_id.is_empty() || self.agent_id.contains(',') {
            return Err("--agent-id must be non-empty and must not contain ','".into());
        }
        Ok(())
    }

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
}
