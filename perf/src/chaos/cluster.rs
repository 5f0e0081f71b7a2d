//! The chaos run's agents: real `streamhouse-agent` processes sharing one
//! metadata store and one object store, each with its own data dir (on a
//! small loop-mounted filesystem of its own when the run may fill disks)
//! and a fixed port range, so it comes back at the same addresses after a
//! restart with another shard count. Owns the child processes and the
//! signals sent to them; knows nothing of faults' schedule or of records.

use std::fs::OpenOptions;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use crate::chaos::clock::FakeClock;
use crate::chaos::diskfill::SmallDisk;

/// How every agent of the cluster is started.
#[derive(Debug, Clone)]
pub struct ClusterSpec {
    pub binary: PathBuf,
    /// Flags every agent gets (stores, TTL, segment settings).
    pub common: Vec<String>,
    /// Shards of a freshly started agent.
    pub shards: usize,
    /// Largest shard count a restart may choose (ports are reserved for it).
    pub max_shards: usize,
    pub lease_ttl: Duration,
    /// libfaketime's library: every agent runs on a clock of its own the
    /// nemesis can move (`None`: on the real clock).
    pub libfaketime: Option<PathBuf>,
}

/// One agent: its identity, ports, data dir and (while it runs) process.
pub struct Agent {
    pub id: String,
    pub port: u16,
    pub shards: usize,
    pub data_dir: PathBuf,
    pub log: PathBuf,
    pub disk: Option<SmallDisk>,
    /// Its wall clock, when the run moves clocks.
    clock: Option<FakeClock>,
    child: Option<Child>,
    paused: bool,
}

impl Agent {
    /// An agent not started yet, with a free port range for
    /// `spec.max_shards` shards (and its clock's offset file next to its
    /// log, when the run moves clocks).
    pub fn new(
        id: &str,
        data_dir: PathBuf,
        log: PathBuf,
        spec: &ClusterSpec,
    ) -> Result<Agent, String> {
        let port = streamhouse_agent::runtime::ports::below_ephemeral(spec.max_shards)
            .ok_or("no free port range for an agent")?;
        let clock = match &spec.libfaketime {
            Some(lib) => Some(FakeClock::new(log.with_file_name("faketime"), lib.clone())?),
            None => None,
        };
        Ok(Agent {
            id: id.to_string(),
            port,
            shards: spec.shards,
            data_dir,
            log,
            disk: None,
            clock,
            child: None,
            paused: false,
        })
    }

    /// Puts the agent's wall clock `offset_s` seconds from the real time
    /// (running or not); `Err` when the run does not move clocks.
    pub fn set_clock(&mut self, offset_s: i64) -> Result<(), String> {
        match &self.clock {
            Some(c) => c.set(offset_s),
            None => Err(format!("{} runs on the real clock", self.id)),
        }
    }

    /// host:port of every shard while it runs with its current count.
    pub fn addresses(&self) -> Vec<String> {
        (0..self.shards)
            .map(|i| format!("127.0.0.1:{}", self.port + i as u16))
            .collect()
    }

    pub fn running(&self) -> bool {
        self.child.is_some()
    }

    pub fn pid(&self) -> Option<i32> {
        self.child.as_ref().map(|c| c.id() as i32)
    }

    fn signal(&self, sig: libc::c_int) {
        if let Some(pid) = self.pid() {
            // SAFETY: kill(2) on our own child's pid.
            unsafe {
                libc::kill(pid, sig);
            }
        }
    }

    /// Starts the process (with `shards` shards) and waits until every
    /// shard port accepts, at most 60 s.
    pub async fn start(&mut self, spec: &ClusterSpec, shards: usize) -> Result<(), String> {
        self.shards = shards;
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .map_err(|e| format!("{}: {e}", self.log.display()))?;
        let err = log.try_clone().map_err(|e| e.to_string())?;
        let mut cmd = Command::new(&spec.binary);
        if let Some(c) = &self.clock {
            cmd.envs(c.env());
        }
        let child = cmd
            .arg("--listen")
            .arg(format!("127.0.0.1:{}", self.port))
            .arg("--shards")
            .arg(shards.to_string())
            .arg("--data-dir")
            .arg(&self.data_dir)
            .arg("--agent-id")
            .arg(&self.id)
            .args(&spec.common)
            .env(
                "RUST_LOG",
                std::env::var("STREAMHOUSE_PERF_AGENT_LOG").unwrap_or_else(|_| "info".into()),
            )
            .stdout(log)
            .stderr(err)
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", spec.binary.display()))?;
        self.child = Some(child);
        self.paused = false;
        let deadline = Instant::now() + Duration::from_secs(60);
        for addr in self.addresses() {
            loop {
                if tokio::net::TcpStream::connect(&addr).await.is_ok() {
                    break;
                }
                if let Some(c) = self.child.as_mut() {
                    if let Ok(Some(st)) = c.try_wait() {
                        self.child = None;
                        return Err(format!(
                            "{} exited during start ({st}); see {}",
                            self.id,
                            self.log.display()
                        ));
                    }
                }
                if Instant::now() > deadline {
                    return Err(format!("{} did not listen on {addr} within 60 s", self.id));
                }
                tokio::time::sleep(Duration::from_millis(25)).await;
            }
        }
        Ok(())
    }

    /// SIGKILL, and reaps the process.
    pub fn kill(&mut self) {
        if self.paused {
            self.signal(libc::SIGCONT);
        }
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        self.paused = false;
    }

    /// SIGTERM, then waits up to `grace` for the exit (SIGKILL after it).
    /// Returns the exit status text.
    pub async fn terminate(&mut self, grace: Duration) -> String {
        if self.paused {
            self.signal(libc::SIGCONT);
            self.paused = false;
        }
        self.signal(libc::SIGTERM);
        let deadline = Instant::now() + grace;
        loop {
            let Some(c) = self.child.as_mut() else {
                return "not running".into();
            };
            match c.try_wait() {
                Ok(Some(st)) => {
                    self.child = None;
                    return st.to_string();
                }
                Ok(None) if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                _ => {
                    self.kill();
                    return format!("no exit within {} ms: SIGKILLed", grace.as_millis());
                }
            }
        }
    }

    pub fn pause(&mut self) {
        self.signal(libc::SIGSTOP);
        self.paused = true;
    }

    pub fn resume(&mut self) {
        self.signal(libc::SIGCONT);
        self.paused = false;
    }

    /// Whether the process exited by itself (it must not); reaps it.
    pub fn exited(&mut self) -> Option<String> {
        let c = self.child.as_mut()?;
        match c.try_wait() {
            Ok(Some(st)) => {
                self.child = None;
                Some(st.to_string())
            }
            _ => None,
        }
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Every agent of the run.
pub struct Cluster {
    pub spec: ClusterSpec,
    pub agents: Vec<Agent>,
}

impl Cluster {
    /// Creates `n` agents under `root` (data dirs on their own small
    /// filesystems when `disks` is `Some(MiB)`), starts them all.
    pub async fn start(
        root: &Path,
        n: usize,
        spec: ClusterSpec,
        disks: Option<u64>,
    ) -> Result<Cluster, String> {
        let mut agents = Vec::new();
        for i in 0..n {
            let id = format!("chaos-{i}");
            let dir = root.join(&id);
            std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
            let disk = match disks {
                Some(mib) => Some(SmallDisk::mount(&dir, mib)?),
                None => None,
            };
            let data_dir = match &disk {
                Some(d) => d.mount.join("data"),
                None => dir.join("data"),
            };
            let mut agent = Agent::new(&id, data_dir, dir.join("agent.log"), &spec)?;
            agent.disk = disk;
            agents.push(agent);
        }
        let mut c = Cluster { spec, agents };
        for i in 0..n {
            let shards = c.spec.shards;
            let spec = c.spec.clone();
            c.agents[i].start(&spec, shards).await?;
        }
        Ok(c)
    }

    /// Addresses of every shard of every running agent.
    pub fn bootstrap(&self) -> Vec<String> {
        self.agents
            .iter()
            .filter(|a| a.running())
            .flat_map(Agent::addresses)
            .collect()
    }

    /// Every address any agent may ever listen on (clients keep them all
    /// as bootstrap: whichever runs answers).
    pub fn all_addresses(&self) -> Vec<String> {
        self.agents
            .iter()
            .flat_map(|a| {
                (0..self.spec.max_shards).map(move |i| format!("127.0.0.1:{}", a.port + i as u16))
            })
            .collect()
    }
}
