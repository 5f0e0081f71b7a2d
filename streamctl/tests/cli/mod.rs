//! Running `streamctl` in tests: the binary, its output, a time limit.

use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

pub struct Out {
    pub code: i32,
    pub stdout: Vec<u8>,
    pub stderr: String,
}

impl Out {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }
}

/// The binary under test; `STREAMHOUSE_TEST_STREAMCTL_BIN` points the tests
/// at another build (e.g. an older one, to see a test fail there).
pub fn bin() -> String {
    std::env::var("STREAMHOUSE_TEST_STREAMCTL_BIN")
        .unwrap_or_else(|_| env!("CARGO_BIN_EXE_streamctl").to_owned())
}

pub fn streamctl_bytes(bootstrap: &str, args: &[&str], stdin: &[u8]) -> Out {
    let mut child = Command::new(bin())
        .arg("--bootstrap")
        .arg(bootstrap)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    let data = stdin.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = input.write_all(&data);
    });
    let out = wait_with_timeout(child, Duration::from_secs(60), args);
    writer.join().unwrap();
    out
}

pub fn wait_with_timeout(mut child: std::process::Child, limit: Duration, args: &[&str]) -> Out {
    let stdout = child.stdout.take();
    let mut stderr = child.stderr.take().unwrap();
    let o = std::thread::spawn(move || {
        let mut v = Vec::new();
        if let Some(mut stdout) = stdout {
            let _ = stdout.read_to_end(&mut v);
        }
        v
    });
    let e = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let started = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            panic!("streamctl {args:?} did not finish within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Out {
        code: status.code().unwrap_or(-1),
        stdout: o.join().unwrap(),
        stderr: e.join().unwrap(),
    }
}

pub fn streamctl(bootstrap: &str, args: &[&str], stdin: &str) -> (i32, String, String) {
    let o = streamctl_bytes(bootstrap, args, stdin.as_bytes());
    (o.code, o.text(), o.stderr)
}
