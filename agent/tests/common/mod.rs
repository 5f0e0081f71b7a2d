//! Test harness: runs the real `streamhouse-agent` binary on free loopback
//! ports with a temporary data dir, and kills it when dropped.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use streamhouse_proto as pb;
use tonic::transport::Channel;

mod admin_http;
mod cluster;
mod files;
// Re-exported for the test crates; not every crate uses each.
#[allow(unused_imports)]
pub use admin_http::*;
#[allow(unused_imports)]
pub use cluster::*;
#[allow(unused_imports)]
pub use files::*;

/// Scratch space on the same disk as the build (O_DIRECT needs a real
/// file system, not tmpfs).
pub fn target_tmp() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .and_then(Path::parent)
        .expect("target dir")
        .join("tmp");
    std::fs::create_dir_all(&dir).expect("create target/tmp");
    dir
}

pub struct Agent {
    pub child: Option<Child>,
    pub port: u16,
    pub shards: usize,
    pub data_dir: PathBuf,
    pub extra: Vec<String>,
    /// Started as the README does: no `--shards` (one per CPU) and no
    /// `--data-dir` (the default, relative to the working dir `data_dir`).
    pub defaults: bool,
    /// Soft and hard open-file limit of the process (`ulimit -n`), if set.
    pub open_files: Option<u64>,
    /// Environment of the process besides the test's own (e.g. a fake
    /// clock, see `clock.rs`; `RUST_LOG` here wins); kept across restarts.
    pub env: Vec<(String, String)>,
    /// The file the process's log (stderr) is appended to; the test's
    /// stderr when unset.
    pub log: Option<PathBuf>,
    _tmp: Option<tempfile::TempDir>,
}

/// Whether a server on `port` answers an HTTP/2 preface with a frame: a
/// listening socket a killed agent left behind (the kernel closes sockets
/// held by its io_uring shortly after the exit) accepts but never answers.
fn answers_http2(port: u16) -> bool {
    use std::io::{Read, Write};
    let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
    let mut hello = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    hello.extend_from_slice(&[0, 0, 0, 4, 0, 0, 0, 0, 0]);
    if s.write_all(&hello).is_err() {
        return false;
    }
    let mut frame = [0u8; 9];
    s.read_exact(&mut frame).is_ok()
}

/// A base port with `n` consecutive free loopback ports (see
/// `streamhouse_agent::runtime::ports::below_ephemeral`).
pub fn free_ports(n: usize) -> u16 {
    streamhouse_agent::runtime::ports::below_ephemeral(n).expect("no free ports")
}

/// The agent binary: `STREAMHOUSE_TEST_AGENT_BIN` if set, else cargo's
/// path when this harness runs in the agent crate, else the workspace's
/// target directory (`cargo build --workspace` builds it first).
pub fn agent_bin() -> PathBuf {
    // Another build of the agent, e.g. to see a new test fail on old code.
    if let Some(p) = std::env::var_os("STREAMHOUSE_TEST_AGENT_BIN") {
        return PathBuf::from(p);
    }
    if let Some(p) = option_env!("CARGO_BIN_EXE_streamhouse-agent") {
        return PathBuf::from(p);
    }
    let exe = std::env::current_exe().expect("test executable path");
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target profile dir");
    let bin = dir.join("streamhouse-agent");
    assert!(
        bin.exists(),
        "{} is missing: run cargo build --workspace first",
        bin.display()
    );
    bin
}

impl Agent {
    pub fn start(shards: usize, extra: &[&str]) -> Agent {
        let tmp = tempfile::Builder::new()
            .prefix("sh-agent-")
            .tempdir_in(target_tmp())
            .unwrap();
        let dir = tmp.path().to_path_buf();
        let mut a = Agent::start_in(&dir, shards, extra);
        a._tmp = Some(tmp);
        a
    }

    pub fn start_in(dir: &Path, shards: usize, extra: &[&str]) -> Agent {
        Agent::start_at(free_ports(shards), dir, shards, extra)
    }

    /// An agent whose shards listen on `port`, `port + 1`, ...
    pub fn start_at(port: u16, dir: &Path, shards: usize, extra: &[&str]) -> Agent {
        let mut a = Agent {
            child: None,
            port,
            shards,
            data_dir: dir.to_path_buf(),
            extra: extra.iter().map(|s| s.to_string()).collect(),
            defaults: false,
            open_files: None,
            env: Vec::new(),
            log: None,
            _tmp: None,
        };
        a.spawn();
        a
    }

    /// Like [`Agent::start`], with `env` added to the process's
    /// environment (this start and every restart).
    pub fn start_with_env(shards: usize, extra: &[&str], env: Vec<(String, String)>) -> Agent {
        Agent::start_logged(shards, extra, env, None)
    }

    /// Like [`Agent::start_with_env`], its log appended to `log`.
    pub fn start_logged(
        shards: usize,
        extra: &[&str],
        env: Vec<(String, String)>,
        log: Option<PathBuf>,
    ) -> Agent {
        let mut a = Agent::unstarted(shards, extra);
        a.env = env;
        a.log = log;
        a.spawn();
        a
    }

    /// An agent in a new temporary directory, not started yet.
    fn unstarted(shards: usize, extra: &[&str]) -> Agent {
        let tmp = tempfile::Builder::new()
            .prefix("sh-agent-")
            .tempdir_in(target_tmp())
            .unwrap();
        Agent {
            child: None,
            port: free_ports(shards),
            shards,
            data_dir: tmp.path().to_path_buf(),
            extra: extra.iter().map(|s| s.to_string()).collect(),
            defaults: false,
            open_files: None,
            env: Vec::new(),
            log: None,
            _tmp: Some(tmp),
        }
    }

    /// Like [`Agent::start`], with `FAILPOINTS` set to `failpoints` for
    /// this agent's process only (fail points exist in test builds of the
    /// agent). A restart by [`Agent::spawn`] runs without them. (Set on
    /// the child alone: agents other tests start meanwhile never see them.)
    pub fn start_with_failpoints(shards: usize, extra: &[&str], failpoints: &str) -> Agent {
        let mut a = Agent::unstarted(shards, extra);
        a.env.push(("FAILPOINTS".into(), failpoints.into()));
        a.spawn();
        a.env.pop();
        a
    }

    /// Like [`Agent::start`], under `ulimit -n open_files` (soft and hard).
    pub fn start_with_open_files(shards: usize, extra: &[&str], open_files: u64) -> Agent {
        let mut a = Agent::unstarted(shards, extra);
        a.open_files = Some(open_files);
        a.spawn();
        a
    }

    /// An agent on embedded defaults (see [`Agent::defaults`]), working in
    /// a new temporary directory; only the listen port is given.
    pub fn start_with_defaults() -> Agent {
        let tmp = tempfile::Builder::new()
            .prefix("sh-defaults-")
            .tempdir_in(target_tmp())
            .unwrap();
        let shards = std::thread::available_parallelism().map_or(1, |n| n.get());
        let mut a = Agent {
            child: None,
            port: free_ports(shards),
            shards,
            data_dir: tmp.path().to_path_buf(),
            extra: Vec::new(),
            defaults: true,
            open_files: None,
            env: Vec::new(),
            log: None,
            _tmp: Some(tmp),
        };
        a.spawn();
        a
    }

    /// Starts (again) the agent process on the same ports and data dir.
    pub fn spawn(&mut self) {
        let mut cmd = Command::new(agent_bin());
        cmd.arg("--listen").arg(format!("127.0.0.1:{}", self.port));
        if self.defaults {
            cmd.current_dir(&self.data_dir);
        } else {
            cmd.arg("--shards")
                .arg(self.shards.to_string())
                .arg("--data-dir")
                .arg(&self.data_dir);
        }
        if let Some(n) = self.open_files {
            use std::os::unix::process::CommandExt;
            // SAFETY: only setrlimit, async-signal-safe, between fork and exec.
            unsafe {
                cmd.pre_exec(move || {
                    let lim = libc::rlimit {
                        rlim_cur: n,
                        rlim_max: n,
                    };
                    if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
        }
        let stderr = match &self.log {
            Some(path) => Stdio::from(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                    .expect("open the agent's log file"),
            ),
            None => Stdio::inherit(),
        };
        let child = cmd
            .args(&self.extra)
            // STREAMHOUSE_TEST_AGENT_LOG raises the agents' log level when
            // a test needs looking into.
            .env(
                "RUST_LOG",
                std::env::var("STREAMHOUSE_TEST_AGENT_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .expect("spawn agent");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        for i in 0..self.shards {
            loop {
                if answers_http2(self.port + i as u16) {
                    break;
                }
                if let Some(Ok(Some(st))) = self.child.as_mut().map(|c| c.try_wait()) {
                    panic!("agent exited during start: {st}");
                }
                assert!(Instant::now() < deadline, "agent did not start");
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }

    pub fn addr(&self, shard: usize) -> String {
        format!("127.0.0.1:{}", self.port + shard as u16)
    }

    pub fn url(&self, shard: usize) -> String {
        format!("http://{}", self.addr(shard))
    }

    pub fn pid(&self) -> i32 {
        self.child.as_ref().map(|c| c.id() as i32).unwrap_or(0)
    }

    pub fn signal(&self, sig: i32) {
        unsafe {
            libc::kill(self.pid(), sig);
        }
    }

    /// SIGKILLs the agent and waits until its ports are closed: a killed
    /// process's listening sockets can outlive it briefly (the kernel tears
    /// its io_uring instances down after the exit), and a restart probing
    /// the ports meanwhile would find the dead agent's.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
            let deadline = Instant::now() + Duration::from_secs(10);
            while (0..self.shards)
                .any(|i| std::net::TcpStream::connect(("127.0.0.1", self.port + i as u16)).is_ok())
                && Instant::now() < deadline
            {
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    }

    /// Waits for the process to exit; returns its exit code.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<i32> {
        let deadline = Instant::now() + timeout;
        let c = self.child.as_mut()?;
        loop {
            if let Ok(Some(st)) = c.try_wait() {
                self.child = None;
                return st.code();
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub async fn channel(&self, shard: usize) -> Channel {
        Channel::from_shared(self.url(shard))
            .unwrap()
            .connect()
            .await
            .expect("connect")
    }

    pub async fn admin(&self) -> pb::admin_service_client::AdminServiceClient<Channel> {
        pb::admin_service_client::AdminServiceClient::new(self.channel(0).await)
    }

    pub async fn create_topic(&self, name: &str, partitions: u32) -> pb::TopicMetadata {
        self.admin()
            .await
            .create_topic(pb::CreateTopicRequest {
                name: name.into(),
                partitions,
                ..Default::default()
            })
            .await
            .expect("create topic")
            .into_inner()
            .topic
            .unwrap()
    }

    /// A topic's metadata as this agent describes it.
    pub async fn describe_topic(&self, name: &str) -> pb::TopicMetadata {
        self.admin()
            .await
            .describe_topic(pb::DescribeTopicRequest { name: name.into() })
            .await
            .expect("describe topic")
            .into_inner()
    }

    /// The agent id leading every partition of `topic`, as this agent
    /// sees it ("" for a partition nobody leads).
    pub async fn leaders(&self, topic: &str) -> Vec<String> {
        self.describe_topic(topic)
            .await
            .partitions
            .iter()
            .map(|p| p.leader_agent_id.clone())
            .collect()
    }

    /// Once every partition of `topic` is led and both `leader` and `other`
    /// lead some, the first partition `leader` leads (within 30 s).
    pub async fn first_partition_led_by(&self, topic: &str, leader: &str, other: &str) -> u32 {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let l = self.leaders(topic).await;
            if l.iter().all(|x| !x.is_empty()) && l.iter().any(|x| x == other) {
                if let Some(p) = l.iter().position(|x| x == leader) {
                    return p as u32;
                }
            }
            assert!(Instant::now() < deadline, "partitions never spread: {l:?}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Sends one record `value` to `topic`/`partition` on this agent in a
    /// task of its own (a 30 s deadline), for a test to answer later.
    pub async fn produce_in_background(
        &self,
        topic: &str,
        partition: u32,
        value: &str,
    ) -> tokio::task::JoinHandle<Result<tonic::Response<pb::ProduceResponse>, tonic::Status>> {
        let meta = self.describe_topic(topic).await;
        let mut client = self.producer_for(&meta, partition).await;
        let req = produce_req(topic, partition, &[value.to_string()]);
        tokio::spawn(async move {
            let mut req = tonic::Request::new(req);
            req.set_timeout(Duration::from_secs(30));
            client.produce(req).await
        })
    }

    /// Producer client for the shard that owns `topic`/`partition`.
    pub async fn producer_for(
        &self,
        meta: &pb::TopicMetadata,
        partition: u32,
    ) -> pb::producer_service_client::ProducerServiceClient<Channel> {
        let shard = meta.partitions[partition as usize].shard as usize;
        pb::producer_service_client::ProducerServiceClient::new(self.channel(shard).await)
            .max_decoding_message_size(64 << 20)
            .max_encoding_message_size(64 << 20)
    }

    pub async fn fetcher_for(
        &self,
        meta: &pb::TopicMetadata,
        partition: u32,
    ) -> pb::fetch_service_client::FetchServiceClient<Channel> {
        let shard = meta.partitions[partition as usize].shard as usize;
        pb::fetch_service_client::FetchServiceClient::new(self.channel(shard).await)
            .max_decoding_message_size(128 << 20)
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        self.kill9();
    }
}

pub fn record(value: impl Into<Vec<u8>>) -> pb::produce_request::Record {
    pb::produce_request::Record {
        key: None,
        value: value.into().into(),
        timestamp: 0,
        headers: vec![],
    }
}

pub fn produce_req(topic: &str, partition: u32, values: &[String]) -> pb::ProduceRequest {
    pb::ProduceRequest {
        topic: topic.into(),
        partition,
        records: values
            .iter()
            .map(|v| record(v.as_bytes().to_vec()))
            .collect(),
        ..Default::default()
    }
}

/// Borrows owned arguments for [`Agent::start`] and its kin.
pub fn as_strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

/// A Fetch of `topic`/`partition` from `offset` with the agent's default
/// byte limit and no wait.
pub fn fetch_req(topic: &str, partition: u32, offset: u64) -> pb::FetchRequest {
    pb::FetchRequest {
        topic: topic.into(),
        partition,
        offset,
        max_bytes: 0,
        max_wait_ms: 0,
        ..Default::default()
    }
}

/// Reads every record of a partition from offset 0 to the high watermark.
pub async fn fetch_all(
    client: &mut pb::fetch_service_client::FetchServiceClient<Channel>,
    topic: &str,
    partition: u32,
) -> Vec<pb::FetchedRecord> {
    let mut out = Vec::new();
    let mut offset = 0;
    loop {
        let r = client
            .fetch(pb::FetchRequest {
                max_bytes: 4 << 20,
                ..fetch_req(topic, partition, offset)
            })
            .await
            .expect("fetch")
            .into_inner();
        if r.records.is_empty() {
            assert!(offset >= r.high_watermark);
            return out;
        }
        offset = r.records.last().unwrap().offset + 1;
        out.extend(r.records);
    }
}

/// URL of the test PostgreSQL (scripts/test.sh starts one).
pub fn postgres_url() -> String {
    std::env::var("STREAMHOUSE_TEST_POSTGRES_URL").unwrap_or_else(|_| {
        panic!("STREAMHOUSE_TEST_POSTGRES_URL is not set: run the suite with scripts/test.sh")
    })
}

/// The URL of a SQLite metadata store in `dir` (`meta.db`).
#[allow(dead_code)] // not every test crate that includes this uses it
pub fn sqlite_url(dir: &Path) -> String {
    format!("sqlite://{}", dir.join("meta.db").display())
}

/// Endpoint and bucket of the test S3 server (scripts/test.sh starts one).
pub fn s3_server() -> (String, String) {
    let get = |k: &str| {
        std::env::var(k)
            .unwrap_or_else(|_| panic!("{k} is not set: run the suite with scripts/test.sh"))
    };
    (
        get("STREAMHOUSE_TEST_S3_ENDPOINT"),
        get("STREAMHOUSE_TEST_S3_BUCKET"),
    )
}

/// A name no other test run uses: `prefix-PID-NANOS`.
pub fn unique(prefix: &str) -> String {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{prefix}-{}-{t}", std::process::id())
}
