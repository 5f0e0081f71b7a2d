//! The command line's definition (clap): commands, flags, defaults and help
//! text. The completions and the man page are generated from it. Parses;
//! runs nothing.

use clap::{Args, Parser, Subcommand, ValueEnum};
use streamhouse_client::Offset;

/// StreamHouse command line: topics, produce from stdin, consume to stdout.
#[derive(Parser)]
#[command(
    name = "streamctl",
    version,
    about = "StreamHouse command line: topics, produce from stdin, consume to stdout",
    after_help = "Exit status: 0 on success (also when stdout is closed early, e.g. by `| head`), \
                  1 when an operation failed, 2 for bad usage."
)]
pub struct Cli {
    /// host:port of one or more agent shards, comma-separated.
    #[arg(
        short = 'b',
        long,
        env = "STREAMHOUSE_BOOTSTRAP",
        default_value = "127.0.0.1:9092",
        value_delimiter = ',',
        hide_env_values = true,
        global = true,
        value_parser = agent_address
    )]
    pub bootstrap: Vec<String>,
    /// Log the client's own events (connections, retries, group
    /// membership) to stderr at this level or filter: `warn`, `info`,
    /// `debug`, or e.g. `streamhouse_client::group=debug`. Default: off.
    #[arg(long, env = "STREAMCTL_LOG", value_name = "FILTER", global = true)]
    pub log: Option<String>,
    #[command(flatten)]
    pub tls: TlsArgs,
    #[command(flatten)]
    pub auth: AuthArgs,
    #[command(subcommand)]
    pub command: Command,
}

/// TLS to the agents (their `--tls-cert`); any of these turns it on.
#[derive(Args, Debug, Default)]
pub struct TlsArgs {
    /// Connect with TLS, trusting the public web roots (or --tls-ca).
    #[arg(long, env = "STREAMCTL_TLS", global = true)]
    pub tls: bool,
    /// Connect with TLS, trusting the CA certificate(s) in this PEM file
    /// instead of the public roots.
    #[arg(long, env = "STREAMCTL_TLS_CA", value_name = "PEM", global = true)]
    pub tls_ca: Option<std::path::PathBuf>,
    /// Client certificate (PEM) for agents that require one (mutual TLS);
    /// with --tls-key.
    #[arg(
        long,
        env = "STREAMCTL_TLS_CERT",
        value_name = "PEM",
        global = true,
        requires = "tls_key"
    )]
    pub tls_cert: Option<std::path::PathBuf>,
    /// The client certificate's private key (PEM); with --tls-cert.
    #[arg(
        long,
        env = "STREAMCTL_TLS_KEY",
        value_name = "PEM",
        global = true,
        requires = "tls_cert"
    )]
    pub tls_key: Option<std::path::PathBuf>,
    /// The name the agents' certificate must carry, when it is not the
    /// bootstrap host (e.g. connecting by IP address).
    #[arg(
        long,
        env = "STREAMCTL_TLS_SERVER_NAME",
        value_name = "NAME",
        global = true
    )]
    pub tls_server_name: Option<String>,
}

/// Credentials for agents started with `--auth required`.
#[derive(Args, Debug, Default)]
pub struct AuthArgs {
    /// API token sent with every call (`streamctl token create` makes
    /// one). Prefer --token-file or the environment: a command line is
    /// visible to other users of the machine.
    #[arg(
        long,
        env = "STREAMCTL_TOKEN",
        value_name = "TOKEN",
        global = true,
        hide_env_values = true,
        conflicts_with = "token_file"
    )]
    pub token: Option<String>,
    /// A file holding the API token (its first line).
    #[arg(long, env = "STREAMCTL_TOKEN_FILE", value_name = "FILE", global = true)]
    pub token_file: Option<std::path::PathBuf>,
}

impl TlsArgs {
    /// Whether any TLS flag was given.
    pub fn enabled(&self) -> bool {
        self.tls
            || self.tls_ca.is_some()
            || self.tls_cert.is_some()
            || self.tls_server_name.is_some()
    }
}

#[derive(Subcommand)]
pub enum Command {
    /// Create, list, describe and delete topics.
    Topic {
        #[command(subcommand)]
        action: TopicCmd,
    },
    /// Send one record per line (or per -D delimiter) of stdin; values are
    /// bytes, sent as read. Prints the last offset per partition.
    Produce(ProduceArgs),
    /// Print records to stdout, from every partition unless -p; follows the
    /// topic (waits for new records) until interrupted, unless -e or -c.
    Consume(ConsumeArgs),
    /// List, describe (with lag), delete consumer groups; reset their
    /// offsets.
    Group {
        #[command(subcommand)]
        action: GroupCmd,
    },
    /// Show the cluster: live agents with their shard addresses and how
    /// many partitions each leads, then every partition's leader, shard
    /// and lease epoch.
    Cluster {
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
    /// Create, list and delete users (a superuser's calls on agents with
    /// `--auth required`).
    User {
        #[command(subcommand)]
        action: UserCmd,
    },
    /// Create, list and revoke API tokens (a superuser's calls on agents
    /// with `--auth required`).
    Token {
        #[command(subcommand)]
        action: TokenCmd,
    },
    /// Add, remove and list access rules (a superuser's calls on agents
    /// with `--auth required`).
    Acl {
        #[command(subcommand)]
        action: AclCmd,
    },
    /// Print a shell completion script (e.g. `streamctl completions bash >
    /// /etc/bash_completion.d/streamctl`).
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print a man page, roff: streamctl's, or a command's (`streamctl man
    /// topic create > streamctl-topic-create.1`); or write every page into
    /// a directory (`streamctl man --dir /usr/local/share/man/man1`).
    Man {
        /// The command whose page to print, e.g. `consume` or `topic
        /// create` (default: streamctl's own).
        command: Vec<String>,
        /// Write the pages of streamctl and every command into DIR
        /// (streamctl.1, streamctl-consume.1, streamctl-topic-create.1, ...)
        /// instead of printing one.
        #[arg(long, value_name = "DIR", conflicts_with = "command")]
        dir: Option<std::path::PathBuf>,
    },
}

#[derive(Subcommand)]
pub enum UserCmd {
    /// Create a user (1 to 128 bytes of letters, digits and `._@-`).
    Create {
        /// The user's name.
        name: String,
    },
    /// List users: name, tokens held, created.
    List {
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
    /// Delete a user and revoke its tokens.
    Delete {
        /// The user's name.
        name: String,
    },
}

#[derive(Subcommand)]
pub enum AclCmd {
    /// Allow (or with --deny, deny) a principal an operation on a topic,
    /// a group or the cluster. Deny wins; without an allow a call is
    /// refused.
    Add(AclRuleArgs),
    /// Remove the rule equal to the one given.
    Remove(AclRuleArgs),
    /// List rules: principal, permission, operation, resource, pattern.
    List {
        /// Only this principal's rules.
        #[arg(long)]
        principal: Option<String>,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
}

/// One access rule on the command line.
#[derive(Args, Debug)]
#[command(group(clap::ArgGroup::new("resource").required(true).args(["topic", "group", "cluster"])))]
pub struct AclRuleArgs {
    /// The user or certificate name, or `*` for every authenticated
    /// principal.
    #[arg(long)]
    pub principal: String,
    /// A topic name (`*`: every topic), or with --prefix a prefix.
    #[arg(long)]
    pub topic: Option<String>,
    /// A consumer group name (`*`: every group), or with --prefix a
    /// prefix.
    #[arg(long)]
    pub group: Option<String>,
    /// The cluster (for `create`: creating any topic).
    #[arg(long)]
    pub cluster: bool,
    /// The name is a prefix: the rule covers every name starting with it.
    #[arg(long)]
    pub prefix: bool,
    /// produce, consume, describe, create, delete, alter or all.
    #[arg(long)]
    pub operation: String,
    /// A deny rule instead of an allow.
    #[arg(long)]
    pub deny: bool,
}

#[derive(Subcommand)]
pub enum TokenCmd {
    /// Make a token for a user and print it, alone on stdout: it is shown
    /// only now (the agents keep only its hash).
    Create {
        /// The user it authenticates as.
        user: String,
        /// What the token is for, shown by `token list` (at most 256 bytes).
        #[arg(long, default_value = "")]
        description: String,
    },
    /// List tokens: id, user, created, description (never the token).
    List {
        /// Only this user's tokens.
        #[arg(long)]
        user: Option<String>,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
    /// Revoke a token by id: refused at once by the agent asked, by the
    /// others within their --auth-refresh-ms.
    Revoke {
        /// The token's id (`token list`).
        id: String,
    },
}

#[derive(Subcommand)]
pub enum GroupCmd {
    /// List groups: id, state, members.
    List {
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
    /// Show a group's members and, per partition, the committed offset,
    /// the high watermark, the lag and the owning member.
    Describe {
        /// Group id.
        group: String,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
    /// Delete a group without members and its committed offsets.
    Delete {
        /// Group id.
        group: String,
    },
    /// Set a group's committed offsets for every partition of a topic
    /// (only while the group has no members). Prints the plan; applies it
    /// only with --execute.
    ResetOffsets(ResetArgs),
}

#[derive(Args)]
#[command(group(clap::ArgGroup::new("to").required(true)))]
pub struct ResetArgs {
    /// Group id.
    pub group: String,
    /// The topic whose partitions are reset.
    #[arg(short = 't', long)]
    pub topic: String,
    /// To each partition's first readable offset.
    #[arg(long, group = "to")]
    pub to_earliest: bool,
    /// To each partition's high watermark.
    #[arg(long, group = "to")]
    pub to_latest: bool,
    /// To the first record at or after this time: an RFC 3339 date
    /// (2026-12-05T00:00:00Z), a time ago (-1h, -15m) or ms since the Unix
    /// epoch.
    #[arg(long, group = "to", value_name = "TIME", value_parser = parse_time)]
    pub to_datetime: Option<u64>,
    /// The committed offset (or the first readable one) plus N (negative
    /// goes back), kept within the partition.
    #[arg(long, group = "to", value_name = "N", allow_hyphen_values = true)]
    pub shift_by: Option<i64>,
    /// To this offset, kept within the partition.
    #[arg(long, group = "to", value_name = "N")]
    pub to_offset: Option<u64>,
    /// Apply the plan (without it, only print it).
    #[arg(long)]
    pub execute: bool,
}

#[derive(Subcommand)]
pub enum TopicCmd {
    /// Create a topic.
    Create {
        /// Topic name.
        name: String,
        /// Number of partitions.
        #[arg(short = 'p', long, default_value_t = 1)]
        partitions: u32,
        /// A configuration key to set, as KEY=VALUE (repeatable):
        /// retention.ms, retention.bytes, cleanup.policy (delete, compact,
        /// compact,delete), delete.retention.ms, max.message.bytes.
        #[arg(short = 'c', long = "config", value_name = "KEY=VALUE", value_parser = key_value)]
        configs: Vec<(String, String)>,
        /// Succeed when the topic exists already (its partitions and
        /// configuration are left as they are, whatever these flags say).
        #[arg(long)]
        if_not_exists: bool,
    },
    /// Change a topic's configuration (set keys, or return them to the
    /// cluster defaults; all or none) or add partitions.
    #[command(arg_required_else_help = true)]
    Alter {
        /// Topic name.
        name: String,
        /// A configuration key to set, as KEY=VALUE (repeatable).
        #[arg(
            short = 'c',
            long = "config",
            value_name = "KEY=VALUE",
            value_parser = key_value,
            required_unless_present_any = ["delete_configs", "partitions"]
        )]
        configs: Vec<(String, String)>,
        /// A configuration key to return to the cluster default (repeatable).
        #[arg(long = "delete-config", value_name = "KEY")]
        delete_configs: Vec<String>,
        /// Raise the partition count to N (never lowers it; keyed records
        /// may map to other partitions from then on).
        #[arg(short = 'p', long, value_name = "N")]
        partitions: Option<u32>,
    },
    /// List topics: name and partition count.
    List {
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
    /// Show a topic's partitions (leader, shard, lease epoch, high
    /// watermark) and its configuration (value and where it comes from).
    Describe {
        /// Topic name.
        name: String,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
    /// Delete a topic and its records.
    Delete {
        /// Topic name.
        name: String,
    },
    /// Delete a partition's oldest records: its log start moves to OFFSET
    /// (never back; without --offset, to the high watermark) and reads
    /// below it are out of range. As Kafka's delete-records.
    DeleteRecords {
        /// Topic name.
        name: String,
        /// Partition.
        #[arg(short = 'p', long)]
        partition: u32,
        /// Delete the records before this offset (default: every record
        /// written so far).
        #[arg(short = 'o', long, value_name = "OFFSET")]
        offset: Option<u64>,
    },
}

/// Parses `KEY=VALUE` (the value may hold `=`).
fn key_value(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_owned(), v.to_owned())),
        _ => Err(format!("expected KEY=VALUE, got {s:?}")),
    }
}

/// The topic, as the first argument or with -t.
#[derive(Args)]
pub struct TopicArg {
    /// Topic name.
    #[arg(value_name = "TOPIC", required_unless_present = "topic_flag")]
    topic: Option<String>,
    /// Topic name (as kcat's -t).
    #[arg(
        short = 't',
        long = "topic",
        value_name = "TOPIC",
        conflicts_with = "topic"
    )]
    topic_flag: Option<String>,
}

impl TopicArg {
    pub fn name(&self) -> &str {
        self.topic
            .as_deref()
            .or(self.topic_flag.as_deref())
            .unwrap_or_default()
    }
}

#[derive(Args)]
pub struct ProduceArgs {
    #[command(flatten)]
    pub topic: TopicArg,
    /// Partition for every record (default: by key, or spread).
    #[arg(short = 'p', long)]
    pub partition: Option<u32>,
    /// Key for every record (records are then partitioned by it).
    #[arg(short = 'k', long, conflicts_with = "key_delimiter")]
    pub key: Option<String>,
    /// Split each record at the first DELIM: key before it, value after
    /// (a record without DELIM has no key). Escapes as for -D.
    #[arg(short = 'K', long, value_name = "DELIM")]
    pub key_delimiter: Option<String>,
    /// Header for every record, KEY=VALUE; repeat for more.
    #[arg(short = 'H', long = "header", value_name = "KEY=VALUE", value_parser = parse_header)]
    pub headers: Vec<(String, String)>,
    /// Record delimiter; escapes \n \r \t \0 \\ are understood.
    #[arg(short = 'D', long, value_name = "DELIM", default_value = "\\n")]
    pub delimiter: String,
    /// Read each record's own fields with this format (as consume -f
    /// prints them): %k key (empty: none), %v or %s value, %p partition,
    /// %T timestamp (ms since the Unix epoch, an RFC 3339 date or a time
    /// ago such as -1h), %h headers (k=v,k2=v2), %% a percent sign;
    /// escapes as for -D. Each field ends where the text after it first
    /// appears; the last takes the rest of the record, so put the value
    /// last. Example: -f '%k %T %h %v'. A record that does not match stops
    /// the run (exit 1) after the ones before it are acknowledged. -H
    /// headers are added to each record's own.
    #[arg(short = 'f', long, value_name = "FORMAT", conflicts_with_all = ["key", "key_delimiter"])]
    pub format: Option<String>,
    /// Durability each record waits for.
    #[arg(long, value_enum, default_value_t = AckArg::Durable)]
    pub acks: AckArg,
    /// Batch compression.
    #[arg(short = 'z', long, value_enum, default_value_t = CompressionArg::None)]
    pub compression: CompressionArg,
}

#[derive(Args)]
pub struct ConsumeArgs {
    #[command(flatten)]
    pub topic: TopicArg,
    /// Partition to read; repeat for more (default: every partition).
    #[arg(short = 'p', long)]
    pub partition: Vec<u32>,
    /// Where to start in each partition: beginning, end, an offset N, -N
    /// (N records before the end) or @TIME (the first record at or after
    /// TIME: an RFC 3339 date such as @2026-12-05T00:00:00Z, a time ago
    /// such as @-1h, or ms since the Unix epoch). An offset past the end is
    /// an error.
    #[arg(
        short = 'o',
        long = "offset",
        alias = "from-offset",
        value_name = "START",
        default_value = "beginning",
        allow_hyphen_values = true
    )]
    pub offset: Offset,
    /// Exit after this many records (in all).
    #[arg(short = 'c', long)]
    pub count: Option<u64>,
    /// Which records to read: every durable one (lowest latency; one a
    /// leader loses before shipping can be taken back) or only those
    /// committed to object storage (never taken back; about one
    /// ack-object latency later).
    #[arg(long, value_enum, default_value_t = ReadLevelArg::Durable)]
    pub read_level: ReadLevelArg,
    /// Consume as a member of this consumer group: partitions assigned by
    /// the group, offsets committed to it; -o beginning or end then says
    /// where a partition the group never committed starts; -p is not
    /// allowed. SIGINT, SIGTERM, -c, -e and errors all commit what was
    /// printed and leave the group before exiting.
    #[arg(short = 'G', long, conflicts_with = "partition")]
    pub group: Option<String>,
    /// With -G: the member's session timeout (silent this long and its
    /// partitions move to other members): ms, or with a unit (45s, 1m);
    /// default 45000.
    #[arg(long, requires = "group", default_value_t = 45_000, value_name = "MS",
          value_parser = streamhouse_client::proto::units::millis::<u64>)]
    pub session_timeout_ms: u64,
    /// With -G: how often what was printed is committed: ms, or with a
    /// unit (5s, 500ms); default 5000.
    #[arg(long, requires = "group", default_value_t = 5_000, value_name = "MS",
          value_parser = streamhouse_client::proto::units::millis::<u64>)]
    pub commit_interval_ms: u64,
    /// Exit once every partition is read to its end (instead of following);
    /// with -G, once every partition the group gives this member is.
    #[arg(short = 'e', long = "exit")]
    pub exit_at_end: bool,
    /// Output format per record: %t topic, %p partition, %o offset, %k key,
    /// %K key length (-1 without a key), %s or %v value, %S value length,
    /// %T timestamp (ms), %h headers (k=v,...), %% a percent sign; escapes
    /// \n \r \t \0 \\. Default: the value and a newline.
    #[arg(short = 'f', long, value_name = "FORMAT", conflicts_with = "json")]
    pub format: Option<String>,
    /// One JSON object per record and line: topic, partition, offset,
    /// timestamp, key, value, headers. Bytes that are not UTF-8 are given
    /// as base64, marked by key_encoding / value_encoding "base64".
    #[arg(short = 'J', long)]
    pub json: bool,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum AckArg {
    /// fsynced in the agent's write-ahead log.
    Durable,
    /// In object storage and committed.
    Object,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum ReadLevelArg {
    /// Every record made durable in the leader's write-ahead log.
    Durable,
    /// Only records committed to object storage.
    Object,
}

impl From<ReadLevelArg> for streamhouse_client::ReadLevel {
    fn from(l: ReadLevelArg) -> Self {
        match l {
            ReadLevelArg::Durable => streamhouse_client::ReadLevel::Durable,
            ReadLevelArg::Object => streamhouse_client::ReadLevel::Object,
        }
    }
}

#[derive(Clone, Copy, ValueEnum)]
pub enum CompressionArg {
    None,
    Lz4,
    Zstd,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Text,
    Json,
}

/// An agent address, `host:port`: a slip (no port, a scheme) is bad
/// usage, with a message saying what to change.
fn agent_address(s: &str) -> Result<String, String> {
    streamhouse_client::net::address::check(s.trim()).map(|()| s.trim().to_owned())
}

fn parse_header(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_owned(), v.to_owned())),
        _ => Err(format!("header {s:?} is not KEY=VALUE")),
    }
}

/// A time as `--to-datetime` takes it, relative to now.
fn parse_time(s: &str) -> Result<u64, String> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    streamhouse_client::parse_time_ms(s, now)
}
