//! `streamctl` against a real agent: topic admin, produce from stdin,
//! consume to stdout, and clear errors.

#[path = "../../agent/tests/common/mod.rs"]
mod common;

use std::io::Write;
use std::process::{Command, Stdio};

fn streamctl(bootstrap: &str, args: &[&str], stdin: &str) -> (i32, String, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_streamctl"))
        .arg("--bootstrap")
        .arg(bootstrap)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn round_trip_through_the_cli() {
    let agent = common::Agent::start(2, &[]);
    let b = agent.addr(0);
    let (code, out, _) = streamctl(&b, &["topic", "create", "cli", "--partitions", "3"], "");
    assert_eq!(code, 0);
    assert!(out.contains("created topic cli with 3 partitions"), "{out}");
    let (code, out, _) = streamctl(&b, &["topic", "list"], "");
    assert_eq!((code, out.trim()), (0, "cli\t3"));
    let (code, out, _) = streamctl(&b, &["topic", "describe", "cli"], "");
    assert_eq!(code, 0);
    assert_eq!(out.lines().count(), 2 + 3, "{out}");
    let lines: String = (0..50).map(|i| format!("line {i}\n")).collect();
    let (code, out, err) = streamctl(&b, &["produce", "cli", "--partition", "1"], &lines);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.trim(), "partition 1: last offset 49");
    let (code, out, _) = streamctl(
        &b,
        &["consume", "cli", "--partition", "1", "--from-offset", "45"],
        "",
    );
    assert_eq!(code, 0);
    assert_eq!(out, "line 45\nline 46\nline 47\nline 48\nline 49\n");
    let (code, out, _) = streamctl(
        &b,
        &["consume", "cli", "--partition", "1", "--count", "2"],
        "",
    );
    assert_eq!((code, out.as_str()), (0, "line 0\nline 1\n"));

    // Errors: one line, non-zero exit.
    let (code, _, err) = streamctl(&b, &["topic", "create", "cli", "--partitions", "3"], "");
    assert_eq!(code, 1);
    assert!(
        err.starts_with("streamctl: ") && err.contains("already exists"),
        "{err}"
    );
    assert_eq!(err.trim().lines().count(), 1);
    let (code, _, err) = streamctl(&b, &["produce", "cli", "--partition", "9"], "x\n");
    assert_eq!(code, 1);
    assert!(err.contains("partition 9 does not exist"), "{err}");
    let (code, _, err) = streamctl(&b, &["consume", "nope", "--partition", "0"], "");
    assert_eq!(code, 1);
    assert!(err.contains("unknown topic nope"), "{err}");
    let (code, _, err) = streamctl("127.0.0.1:1", &["topic", "list"], "");
    assert_eq!(code, 1);
    assert!(err.contains("cannot reach 127.0.0.1:1"), "{err}");
    let (code, _, _) = streamctl(&b, &["topic", "frobnicate"], "");
    assert_eq!(code, 2);
    let (code, out, _) = streamctl(&b, &["topic", "delete", "cli"], "");
    assert_eq!((code, out.trim()), (0, "deleted topic cli"));
}
