//! Group members as `streamctl consume -G` processes, for the process
//! tests of consumer groups: what each printed (and when), its stderr, a
//! producer at a set rate, and waiting until every wanted value was
//! printed. Starts no agent.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::cli::{bin, streamctl};
use streamhouse_client::{Producer, ProducerRecord};

/// Lines a consumer process printed: (partition, offset, value), and when.
pub type Printed = Arc<Mutex<Vec<(u32, u64, String, Instant)>>>;

/// What a consumer process wrote to stderr.
pub type Errors = Arc<Mutex<String>>;

/// A child process killed (and reaped) when dropped, so a failing test
/// leaves no member running.
pub struct Proc(Child);

impl std::ops::Deref for Proc {
    type Target = Child;
    fn deref(&self) -> &Child {
        &self.0
    }
}

impl std::ops::DerefMut for Proc {
    fn deref_mut(&mut self) -> &mut Child {
        &mut self.0
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A `streamctl consume -G` process printing `partition offset value`.
pub fn member(bootstrap: &str, group: &str, topic: &str, session_ms: u64) -> (Proc, Printed) {
    let (child, printed, _) = member_with_errors(bootstrap, group, topic, session_ms);
    (child, printed)
}

pub fn member_with_errors(
    bootstrap: &str,
    group: &str,
    topic: &str,
    session_ms: u64,
) -> (Proc, Printed, Errors) {
    let session = session_ms.to_string();
    let mut child = Command::new(bin())
        .args(["--bootstrap", bootstrap, "consume", topic, "-G", group])
        .args([
            "--session-timeout-ms",
            &session,
            "--commit-interval-ms",
            // A unit, as every -ms flag takes (issue 44).
            "200ms",
        ])
        .args(["-f", "%p %o %s\\n"])
        .env("STREAMCTL_LOG", "streamhouse_client::group=info")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let printed: Printed = Arc::new(Mutex::new(Vec::new()));
    let errors: Errors = Arc::new(Mutex::new(String::new()));
    let err = child.stderr.take().unwrap();
    let e = errors.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(err).lines().map_while(Result::ok) {
            let mut e = e.lock().unwrap();
            e.push_str(&line);
            e.push('\n');
        }
    });
    let out = child.stdout.take().unwrap();
    let p = printed.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            let mut f = line.splitn(3, ' ');
            let (Some(part), Some(off), Some(v)) = (f.next(), f.next(), f.next()) else {
                continue;
            };
            if let (Ok(part), Ok(off)) = (part.parse(), off.parse()) {
                p.lock()
                    .unwrap()
                    .push((part, off, v.to_owned(), Instant::now()));
            }
        }
    });
    (Proc(child), printed, errors)
}

pub fn values(p: &Printed) -> Vec<String> {
    p.lock().unwrap().iter().map(|x| x.2.clone()).collect()
}

/// Sends `n` records `{prefix}{i}` spread over the topic's partitions, at
/// about `per_sec`.
pub async fn produce(producer: &Producer, topic: &str, prefix: &str, n: usize, per_sec: usize) {
    let mut acks = Vec::new();
    let started = Instant::now();
    for i in 0..n {
        acks.push(
            producer.send(
                ProducerRecord::new(topic, format!("{prefix}{i}")).partition((i % 12) as u32),
            ),
        );
        let due = Duration::from_secs_f64(i as f64 / per_sec as f64);
        if let Some(wait) = due.checked_sub(started.elapsed()) {
            tokio::time::sleep(wait).await;
        }
    }
    for a in futures::future::join_all(acks).await {
        a.expect("send");
    }
}

pub async fn wait_for_all(members: &[&Printed], want: &BTreeSet<String>, limit: Duration) {
    let deadline = Instant::now() + limit;
    loop {
        let seen: BTreeSet<String> = members.iter().flat_map(|p| values(p)).collect();
        let missing = want.difference(&seen).count();
        if missing == 0 {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{missing} of {} records never processed",
            want.len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Committed offsets of `group`, summed over its partitions, and its
/// member count, from `group describe --format json`.
pub fn committed_and_members(b: &str, group: &str) -> (u64, usize) {
    let (code, out, err) = streamctl(b, &["group", "describe", group, "--format", "json"], "");
    assert_eq!(code, 0, "{err}");
    let j: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    let committed = j["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["committed"].as_u64().unwrap_or(0))
        .sum();
    (committed, j["members"].as_array().map_or(0, Vec::len))
}

/// Stops a member with SIGSTOP and returns once every thread of it is
/// stopped and its stdout is drained: a line read after the returned
/// instant was written after it resumed. (A line written just before the
/// stop took effect can reach the reader after `kill` returned, so the
/// instant `kill` returns is no cut.)
pub fn stop_and_drain(member: &Proc, printed: &Printed) -> Instant {
    let pid = member.id();
    unsafe { libc::kill(pid as i32, libc::SIGSTOP) };
    let deadline = Instant::now() + Duration::from_secs(10);
    while !all_threads_stopped(pid) {
        assert!(Instant::now() < deadline, "member {pid} never stopped");
        std::thread::sleep(Duration::from_millis(5));
    }
    // Its pipe holds at most what it wrote before stopping: wait until the
    // reader has seen no new line for a while.
    let mut seen = printed.lock().unwrap().len();
    let mut still_since = Instant::now();
    while still_since.elapsed() < Duration::from_millis(300) {
        std::thread::sleep(Duration::from_millis(20));
        let now = printed.lock().unwrap().len();
        if now != seen {
            seen = now;
            still_since = Instant::now();
        }
    }
    Instant::now()
}

/// Whether every thread of `pid` is in the stopped state (`T`).
fn all_threads_stopped(pid: u32) -> bool {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return false;
    };
    tasks.filter_map(Result::ok).all(|t| {
        std::fs::read_to_string(t.path().join("stat")).is_ok_and(|s| {
            // The state follows the parenthesised command name.
            s.rsplit_once(") ")
                .is_some_and(|(_, rest)| rest.starts_with('T'))
        })
    })
}
