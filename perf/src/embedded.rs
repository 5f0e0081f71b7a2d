//! An agent process started and stopped by the perf tool (`--embedded`):
//! embedded defaults, a fresh data dir, free loopback ports. Also reads the
//! agent's CPU time and peak RSS from /proc. Owns that child process.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running agent started by the perf tool.
pub struct EmbeddedAgent {
    child: Child,
    pub port: u16,
    shards: usize,
    extra: Vec<String>,
    _tmp: tempfile::TempDir,
}

/// The agent binary next to this executable, or on PATH.
pub fn agent_binary() -> PathBuf {
    if let Ok(exe) = std::env::current_exe() {
        for dir in exe.ancestors().skip(1).take(2) {
            let p = dir.join("streamhouse-agent");
            if p.exists() {
                return p;
            }
        }
    }
    PathBuf::from("streamhouse-agent")
}

fn spawn(dir: &Path, port: u16, shards: usize, extra: &[String]) -> Result<Child, String> {
    let bin = agent_binary();
    let mut child = Command::new(&bin)
        .arg("--listen")
        .arg(format!("127.0.0.1:{port}"))
        .arg("--shards")
        .arg(shards.to_string())
        .arg("--data-dir")
        .arg(dir)
        .args(extra)
        // The agents' own log filter: `STREAMHOUSE_PERF_AGENT_LOG`, default
        // warnings only (their lines are prefixed with the agent id).
        .env(
            "RUST_LOG",
            std::env::var("STREAMHOUSE_PERF_AGENT_LOG").unwrap_or_else(|_| "warn".into()),
        )
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", bin.display()))?;
    let deadline = Instant::now() + Duration::from_secs(30);
    for i in 0..shards as u16 {
        while std::net::TcpStream::connect(("127.0.0.1", port + i)).is_err() {
            if let Ok(Some(st)) = child.try_wait() {
                return Err(format!("agent exited during start: {st}"));
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                return Err("agent did not start within 30 s".into());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    Ok(child)
}

impl EmbeddedAgent {
    /// Starts an agent with `shards` shards in a new directory under `parent`.
    pub fn start(parent: &Path, shards: usize, extra: &[String]) -> Result<EmbeddedAgent, String> {
        std::fs::create_dir_all(parent)
            .map_err(|e| format!("creating {}: {e}", parent.display()))?;
        let tmp = tempfile::Builder::new()
            .prefix("streamhouse-perf-")
            .tempdir_in(parent)
            .map_err(|e| format!("temp dir in {}: {e}", parent.display()))?;
        let port =
            streamhouse_agent::runtime::ports::below_ephemeral(shards).ok_or("no free ports")?;
        let child = spawn(tmp.path(), port, shards, extra)?;
        Ok(EmbeddedAgent {
            child,
            port,
            shards,
            extra: extra.to_vec(),
            _tmp: tmp,
        })
    }

    /// Starts the agent again on the same data dir and ports (after `kill`).
    pub fn restart(&mut self) -> Result<(), String> {
        self.child = spawn(self._tmp.path(), self.port, self.shards, &self.extra)?;
        Ok(())
    }

    /// The agent's data dir.
    pub fn data_dir(&self) -> PathBuf {
        self._tmp.path().to_path_buf()
    }

    pub fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGKILLs the agent.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for EmbeddedAgent {
    fn drop(&mut self) {
        // SAFETY: plain kill(2) on our own child's pid.
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.kill();
    }
}

/// CPU seconds (user + system) used so far by process `pid`.
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name, which is in parentheses.
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = f.get(11)?.parse().ok()?;
    let stime: f64 = f.get(12)?.parse().ok()?;
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    Some((utime + stime) / hz)
}

/// Peak resident set size of process `pid`, MiB.
pub fn peak_rss_mib(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}
