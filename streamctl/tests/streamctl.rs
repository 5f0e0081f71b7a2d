//! `streamctl` against a real agent: topic admin, produce from stdin,
//! consume to stdout, kcat-style keys, headers, formats and JSON, and
//! clear errors. Inputs and outputs are compared byte for byte.

mod cli;
#[path = "../../agent/tests/common/mod.rs"]
mod common;

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use cli::*;

/// Runs streamctl with its stdout read for a few bytes and then closed,
/// as `| head -1` does.
fn read_a_little_then_close(bootstrap: &str, args: &[&str]) -> Out {
    let mut child = Command::new(bin())
        .arg("--bootstrap")
        .arg(bootstrap)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let mut first = [0u8; 3];
    stdout.read_exact(&mut first).unwrap();
    drop(stdout);
    wait_with_timeout(child, Duration::from_secs(20), args)
}

#[test]
fn round_trip_through_the_cli() {
    let agent = common::Agent::start(2, &[]);
    let b = agent.addr(0);
    let (code, out, _) = streamctl(&b, &["topic", "create", "cli", "--partitions", "3"], "");
    assert_eq!(code, 0);
    assert!(out.contains("created topic cli with 3 partitions"), "{out}");
    let (code, out, _) = streamctl(&b, &["topic", "list"], "");
    assert_eq!((code, out.trim()), (0, "topic\tpartitions\ncli\t3"));
    let (code, out, _) = streamctl(&b, &["topic", "describe", "cli"], "");
    assert_eq!(code, 0);
    // Heading, column names, 3 partitions; then the configuration's
    // column names and its 5 keys.
    assert_eq!(out.lines().count(), 2 + 3 + 1 + 5, "{out}");
    let lines: String = (0..50).map(|i| format!("line {i}\n")).collect();
    let (code, out, err) = streamctl(&b, &["produce", "cli", "--partition", "1"], &lines);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.trim(), "partition 1: last offset 49");
    let (code, out, _) = streamctl(
        &b,
        &[
            "consume",
            "cli",
            "--partition",
            "1",
            "--from-offset",
            "45",
            "-e",
        ],
        "",
    );
    assert_eq!(code, 0);
    assert_eq!(out, "line 45\nline 46\nline 47\nline 48\nline 49\n");
    let (code, out, _) = streamctl(&b, &["consume", "-t", "cli", "-p", "1", "-c", "2"], "");
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
    let (code, _, err) = streamctl(&b, &["consume", "cli", "-o", "sideways"], "");
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("invalid start position"), "{err}");
    let (code, _, err) = streamctl(&b, &["consume", "cli", "-f", "%q", "-e"], "");
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("%q"), "{err}");
    let (code, out, _) = streamctl(&b, &["topic", "delete", "cli"], "");
    assert_eq!((code, out.trim()), (0, "deleted topic cli"));
}

/// Issue 15, defect 6: a line that is not UTF-8 failed the whole command
/// ("stream did not contain valid UTF-8") and the lines read before it were
/// silently dropped. Values are bytes: every record arrives as sent, byte
/// for byte, keys (-K) and headers (-H) included.
#[test]
fn binary_values_keys_and_headers_round_trip_byte_for_byte() {
    let agent = common::Agent::start(1, &[]);
    let b = agent.addr(0);
    assert_eq!(streamctl(&b, &["topic", "create", "bin"], "").0, 0);
    let input: &[u8] =
        b"k1:plain text\nk2:\xff\xfe not utf-8 \x00\x01\nno key here\n:empty key\nk5:a:b\n";
    let o = streamctl_bytes(
        &b,
        &["produce", "bin", "-K", ":", "-H", "src=cli", "-H", "n=2"],
        input,
    );
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert_eq!(o.text().trim(), "partition 0: last offset 4");

    // Values only (the default format): exactly what was sent after the key.
    let o = streamctl_bytes(&b, &["consume", "bin", "-e"], b"");
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert_eq!(
        o.stdout,
        b"plain text\n\xff\xfe not utf-8 \x00\x01\nno key here\nempty key\na:b\n".to_vec()
    );

    // A kcat-style format string.
    let o = streamctl_bytes(
        &b,
        &["consume", "bin", "-e", "-f", "%p|%o|%k|%K|%v|%S|%h\\n"],
        b"",
    );
    assert_eq!(o.code, 0, "{}", o.stderr);
    let want: &[u8] = b"0|0|k1|2|plain text|10|src=cli,n=2\n\
0|1|k2|2|\xff\xfe not utf-8 \x00\x01|15|src=cli,n=2\n\
0|2||-1|no key here|11|src=cli,n=2\n\
0|3||0|empty key|9|src=cli,n=2\n\
0|4|k5|2|a:b|3|src=cli,n=2\n";
    assert_eq!(
        o.stdout,
        want.to_vec(),
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );

    // JSON lines: text as text, other bytes as base64.
    let o = streamctl_bytes(&b, &["consume", "bin", "-e", "-J"], b"");
    assert_eq!(o.code, 0, "{}", o.stderr);
    let lines: Vec<serde_json::Value> = o
        .stdout
        .split(|&c| c == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| serde_json::from_slice(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 5);
    assert_eq!(lines[0]["key"], "k1");
    assert_eq!(lines[0]["value"], "plain text");
    assert!(lines[0].get("value_encoding").is_none());
    assert_eq!(lines[0]["headers"][0]["key"], "src");
    assert_eq!(lines[0]["headers"][0]["value"], "cli");
    assert_eq!(lines[1]["value_encoding"], "base64");
    use base64::Engine;
    let raw = base64::engine::general_purpose::STANDARD
        .decode(lines[1]["value"].as_str().unwrap())
        .unwrap();
    assert_eq!(raw, b"\xff\xfe not utf-8 \x00\x01");
    assert!(lines[2]["key"].is_null());
    assert_eq!(lines[3]["key"], "");
    for (i, l) in lines.iter().enumerate() {
        assert_eq!(l["offset"], i as u64);
        assert_eq!(l["topic"], "bin");
        assert!(l["timestamp"].as_u64().unwrap() > 1_600_000_000_000);
    }

    // A custom record delimiter; a last record without one is kept.
    let o = streamctl_bytes(&b, &["produce", "bin", "-D", "\\0"], b"x\x00y\ny\x00z");
    assert_eq!(o.code, 0, "{}", o.stderr);
    let o = streamctl_bytes(&b, &["consume", "bin", "-o", "5", "-e", "-f", "[%s]"], b"");
    assert_eq!(o.stdout, b"[x][y\ny][z]".to_vec());
}

/// Issue 15, defect 7: `--count N` waited for ever when the partition held
/// fewer records; a closed stdout (`| head -1`) printed "Broken pipe" and
/// exited 1; a start past the end printed nothing and exited 0. Now: `-e`
/// ends at the end whatever `-c` says, following (the default) waits for
/// new records, a closed stdout ends quietly with 0, and a start past the
/// end is an error.
#[test]
fn ends_follows_and_pipes_like_other_unix_tools() {
    let agent = common::Agent::start(1, &[]);
    let b = agent.addr(0);
    assert_eq!(
        streamctl(&b, &["topic", "create", "few", "-p", "2"], "").0,
        0
    );
    let five: String = (0..5).map(|i| format!("r{i}\n")).collect();
    assert_eq!(streamctl(&b, &["produce", "few", "-p", "0"], &five).0, 0);

    // Fewer records than -c: -e ends at the end.
    let started = Instant::now();
    let (code, out, err) = streamctl(&b, &["consume", "few", "-p", "0", "-c", "10", "-e"], "");
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, five);
    assert!(started.elapsed() < Duration::from_secs(20));

    // Every partition by default; start positions.
    assert_eq!(streamctl(&b, &["produce", "few", "-p", "1"], "p1\n").0, 0);
    let (_, out, _) = streamctl(&b, &["consume", "few", "-e", "-f", "%p:%s\\n"], "");
    let mut lines: Vec<&str> = out.lines().collect();
    lines.sort();
    assert_eq!(lines, ["0:r0", "0:r1", "0:r2", "0:r3", "0:r4", "1:p1"]);
    let (_, out, _) = streamctl(&b, &["consume", "few", "-p", "0", "-o", "-2", "-e"], "");
    assert_eq!(out, "r3\nr4\n");
    let (_, out, _) = streamctl(&b, &["consume", "few", "-p", "0", "-o", "end", "-e"], "");
    assert_eq!(out, "");
    let (_, out, _) = streamctl(&b, &["consume", "few", "-p", "0", "-o", "3", "-e"], "");
    assert_eq!(out, "r3\nr4\n");

    // By time: everything produced after this instant.
    std::thread::sleep(Duration::from_millis(20));
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis();
    std::thread::sleep(Duration::from_millis(20));
    assert_eq!(streamctl(&b, &["produce", "few", "-p", "0"], "late\n").0, 0);
    let at = format!("@{t}");
    let (code, out, err) = streamctl(&b, &["consume", "few", "-p", "0", "-o", &at, "-e"], "");
    assert_eq!((code, out.as_str()), (0, "late\n"), "{err}");
    // The same instant as an RFC 3339 date; a time ago (everything).
    let date =
        humantime::format_rfc3339_millis(std::time::UNIX_EPOCH + Duration::from_millis(t as u64));
    let at = format!("@{date}");
    let (code, out, err) = streamctl(&b, &["consume", "few", "-p", "0", "-o", &at, "-e"], "");
    assert_eq!((code, out.as_str()), (0, "late\n"), "{at}: {err}");
    let (code, out, err) = streamctl(&b, &["consume", "few", "-p", "0", "-o", "@-1h", "-e"], "");
    assert_eq!((code, out), (0, format!("{five}late\n")), "{err}");
    let (code, _, err) = streamctl(&b, &["consume", "few", "-o", "@last-week"], "");
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("is not a time"), "{err}");

    // A start past the end is an error naming the end.
    let (code, out, err) = streamctl(&b, &["consume", "few", "-p", "0", "-o", "100", "-e"], "");
    assert_eq!(code, 1);
    assert_eq!(out, "");
    assert!(
        err.contains("offset 100 is past the end of few/0 (high watermark 6)"),
        "{err}"
    );

    // Follow mode (the default): a record produced later is printed, and
    // -c ends it.
    let child = Command::new(bin())
        .args([
            "--bootstrap",
            &b,
            "consume",
            "few",
            "-p",
            "1",
            "-o",
            "end",
            "-c",
            "1",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(
        streamctl(&b, &["produce", "few", "-p", "1"], "followed\n").0,
        0
    );
    let o = wait_with_timeout(child, Duration::from_secs(20), &["follow"]);
    assert_eq!(
        (o.code, o.text().as_str()),
        (0, "followed\n"),
        "{}",
        o.stderr
    );

    // A reader that goes away (| head -1): quiet, status 0.
    let many: String = (0..20_000)
        .map(|i| format!("record number {i}\n"))
        .collect();
    assert_eq!(streamctl(&b, &["produce", "few", "-p", "0"], &many).0, 0);
    let o = read_a_little_then_close(&b, &["consume", "few", "-p", "0", "-e"]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert_eq!(o.stderr, "", "nothing on stderr for a closed pipe");
}

/// Defects 6 and 7 with the flags streamctl always had (so this test runs
/// against an older build too): a line that is not UTF-8 is sent and the
/// lines around it too; a start past the end is an error; a closed stdout
/// ends the command quietly with status 0.
#[test]
fn bytes_a_start_past_the_end_and_a_closed_pipe_with_the_original_flags() {
    let agent = common::Agent::start(1, &[]);
    let b = agent.addr(0);
    assert_eq!(streamctl(&b, &["topic", "create", "old"], "").0, 0);
    let o = streamctl_bytes(
        &b,
        &["produce", "old", "--partition", "0"],
        b"before\n\xff\xfe\nafter\n",
    );
    assert_eq!(o.code, 0, "{}", o.stderr);
    let o = streamctl_bytes(
        &b,
        &["consume", "old", "--partition", "0", "--count", "3"],
        b"",
    );
    assert_eq!(
        (o.code, o.stdout),
        (0, b"before\n\xff\xfe\nafter\n".to_vec()),
        "{}",
        o.stderr
    );

    let (code, out, err) = streamctl(
        &b,
        &["consume", "old", "--partition", "0", "--from-offset", "100"],
        "",
    );
    assert_eq!((code, out.as_str()), (1, ""), "a start past the end: {err}");
    assert!(err.contains("past the end"), "{err}");

    let many: String = (0..20_000)
        .map(|i| format!("record number {i}\n"))
        .collect();
    assert_eq!(
        streamctl(&b, &["produce", "old", "--partition", "0"], &many).0,
        0
    );
    let o = read_a_little_then_close(&b, &["consume", "old", "--partition", "0"]);
    assert_eq!((o.code, o.stderr.as_str()), (0, ""), "a closed pipe");
}

#[test]
fn topics_as_json_and_generated_help() {
    let agent = common::Agent::start(1, &[]);
    let b = agent.addr(0);
    assert_eq!(
        streamctl(&b, &["topic", "create", "js", "-p", "2"], "").0,
        0
    );
    let (code, out, _) = streamctl(&b, &["topic", "list", "--format", "json"], "");
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(v[0]["name"], "js");
    assert_eq!(v[0]["partitions"].as_array().unwrap().len(), 2);
    let (code, out, _) = streamctl(&b, &["topic", "describe", "js", "--format", "json"], "");
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(v["partitions"][1]["partition"], 1);
    assert_eq!(v["partitions"][1]["high_watermark"], 0);

    let (code, out, _) = streamctl(&b, &["completions", "bash"], "");
    assert_eq!(code, 0);
    assert!(
        out.contains("_streamctl()") && out.contains("--key-delimiter"),
        "{out}"
    );
    let (code, out, _) = streamctl(&b, &["man"], "");
    assert_eq!(code, 0);
    assert!(
        out.starts_with(".ie") || out.contains(".TH streamctl"),
        "{out}"
    );

    // --log shows the client's own events on stderr; stdout stays data.
    let (code, out, err) = streamctl(&b, &["--log", "debug", "topic", "list"], "");
    assert_eq!((code, out.trim()), (0, "topic\tpartitions\njs\t2"), "{err}");
    assert!(err.contains("DEBUG"), "{err}");
    let (code, _, err) = streamctl(&b, &["--log", "a=b=c", "topic", "list"], "");
    assert_eq!(code, 2, "{err}");
    assert!(err.starts_with("streamctl: --log a=b=c:"), "{err}");

    // docs/CLI.md holds the help of every command as the binary prints it.
    let docs =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/CLI.md")).unwrap();
    for cmd in [
        &["--help"][..],
        &["topic", "--help"],
        &["produce", "--help"],
        &["consume", "--help"],
        &["group", "--help"],
        &["group", "reset-offsets", "--help"],
        &["token", "create", "--help"],
        &["acl", "add", "--help"],
    ] {
        let (code, help, _) = streamctl(&b, cmd, "");
        assert_eq!(code, 0);
        assert!(
            docs.contains(help.trim()),
            "docs/CLI.md lacks the current `streamctl {}` output; regenerate it with \
             scripts/cli-docs.sh",
            cmd.join(" ")
        );
    }
}

/// `--read-level object` prints only what reached object storage.
#[test]
fn read_level_object_prints_only_committed_records() {
    let agent = common::Agent::start(1, &["--segment-age-ms", "600000"]);
    let b = agent.addr(0);
    assert_eq!(streamctl(&b, &["topic", "create", "rl"], "").0, 0);
    let shipped: String = (0..10).map(|i| format!("s{i}\n")).collect();
    let (code, _, err) = streamctl(&b, &["produce", "rl", "--acks", "object"], &shipped);
    assert_eq!(code, 0, "{err}");
    let local: String = (0..5).map(|i| format!("l{i}\n")).collect();
    assert_eq!(streamctl(&b, &["produce", "rl"], &local).0, 0);
    let (code, all, _) = streamctl(&b, &["consume", "rl", "-e"], "");
    assert_eq!((code, all.lines().count()), (0, 15));
    let (code, committed, err) =
        streamctl(&b, &["consume", "rl", "-e", "--read-level", "object"], "");
    assert_eq!(code, 0, "{err}");
    assert_eq!(committed, shipped);
}

/// Topic configuration from the command line (issue 19): set at creation
/// with -c, shown by describe with where each value comes from, changed
/// and returned to the default by alter; bad keys exit 1 with the agent's
/// reason, a malformed KEY=VALUE exits 2.
#[test]
fn topic_configs_are_set_shown_and_altered() {
    let agent = common::Agent::start(1, &[]);
    let b = agent.addr(0);
    let (code, _, err) = streamctl(
        &b,
        &["topic", "create", "cfg", "-c", "retention.ms=60000"],
        "",
    );
    assert_eq!(code, 0, "{err}");
    let (code, out, _) = streamctl(&b, &["topic", "describe", "cfg"], "");
    assert_eq!(code, 0);
    assert!(out.contains("retention.ms=60000\ttopic\n"), "{out}");
    assert!(out.contains("retention.bytes=-1\tdefault\n"), "{out}");
    assert!(out.contains("cleanup.policy=delete\tdefault\n"), "{out}");

    let (code, out, err) = streamctl(
        &b,
        &[
            "topic",
            "alter",
            "cfg",
            "--config",
            "retention.bytes=1000000",
            "--delete-config",
            "retention.ms",
        ],
        "",
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("altered topic cfg\n"), "{out}");
    assert!(out.contains("retention.bytes=1000000\ttopic\n"), "{out}");
    assert!(out.contains("retention.ms=604800000\tdefault\n"), "{out}");

    let (code, out, _) = streamctl(&b, &["topic", "describe", "cfg", "--format", "json"], "");
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(v["name"], "cfg");
    let bytes = v["configs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "retention.bytes")
        .cloned()
        .unwrap();
    assert_eq!(bytes["value"], "1000000");
    assert_eq!(bytes["source"], "topic");

    let (code, _, err) = streamctl(&b, &["topic", "alter", "cfg", "-c", "segment.ms=5"], "");
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("unknown topic configuration key"), "{err}");
    let (code, _, err) = streamctl(&b, &["topic", "alter", "cfg", "-c", "retention.ms"], "");
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("expected KEY=VALUE"), "{err}");
    let (code, _, err) = streamctl(&b, &["topic", "alter", "cfg"], "");
    assert_eq!(code, 2, "{err}");

    // The oldest records of a partition go; the log start never moves back.
    let lines: String = (0..5).map(|i| format!("r{i}\n")).collect();
    let (code, _, err) = streamctl(&b, &["produce", "cfg", "-p", "0"], &lines);
    assert_eq!(code, 0, "{err}");
    let (code, out, err) = streamctl(
        &b,
        &["topic", "delete-records", "cfg", "-p", "0", "-o", "3"],
        "",
    );
    assert_eq!(
        (code, out.as_str()),
        (0, "cfg/0 now starts at offset 3\n"),
        "{err}"
    );
    let (code, out, err) = streamctl(
        &b,
        &["consume", "cfg", "-p", "0", "-o", "beginning", "-e"],
        "",
    );
    assert_eq!((code, out.as_str()), (0, "r3\nr4\n"), "{err}");
    let (code, _, err) = streamctl(
        &b,
        &["topic", "delete-records", "cfg", "-p", "0", "-o", "9"],
        "",
    );
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("past the high watermark"), "{err}");

    // Partitions are added, never removed.
    let (code, out, err) = streamctl(&b, &["topic", "alter", "cfg", "-p", "3"], "");
    assert_eq!(
        (code, out.as_str()),
        (0, "topic cfg has 3 partitions\n"),
        "{err}"
    );
    let (code, _, err) = streamctl(&b, &["topic", "alter", "cfg", "-p", "2"], "");
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("has 3 partitions already"), "{err}");
}

/// `cluster` shows the agents and every partition's leader, as `kcat -L`
/// does; `topic create --if-not-exists` succeeds on a topic that exists
/// (without it, creating one again fails).
#[test]
fn the_cluster_view_and_create_if_not_exists() {
    let agent = common::Agent::start(2, &[]);
    let b = agent.addr(0);
    assert_eq!(
        streamctl(&b, &["topic", "create", "cl", "-p", "3"], "").0,
        0
    );
    let (code, out, err) = streamctl(&b, &["topic", "create", "cl", "-p", "5"], "");
    assert_ne!(code, 0, "{out}");
    assert!(err.contains("exists"), "{err}");
    let (code, out, err) = streamctl(
        &b,
        &["topic", "create", "cl", "-p", "5", "--if-not-exists"],
        "",
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.trim(), "topic cl exists with 3 partitions");

    // Leaders are taken within a lease round.
    let deadline = Instant::now() + Duration::from_secs(20);
    let out = loop {
        let (code, out, err) = streamctl(&b, &["cluster"], "");
        assert_eq!(code, 0, "{err}");
        if out
            .lines()
            .filter(|l| l.starts_with("cl\t"))
            .all(|l| !l.contains("\t-\t"))
        {
            break out;
        }
        assert!(Instant::now() < deadline, "{out}");
        std::thread::sleep(Duration::from_millis(200));
    };
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "1 agents", "{out}");
    assert_eq!(lines[1], "agent\tshards\tpartitions_led\taddresses");
    let fields: Vec<&str> = lines[2].split('\t').collect();
    assert_eq!(&fields[1..3], &["2", "3"], "{out}");
    assert_eq!(fields[3].split(',').count(), 2, "{out}");
    assert_eq!(lines[3], "1 topics, 3 partitions");
    let partitions: Vec<&str> = lines[5..].to_vec();
    assert_eq!(partitions.len(), 3, "{out}");
    for (i, l) in partitions.iter().enumerate() {
        let f: Vec<&str> = l.split('\t').collect();
        assert_eq!(
            (f[0], f[1], f[2]),
            ("cl", i.to_string().as_str(), fields[0]),
            "{out}"
        );
        assert!(
            f[5].parse::<u64>().is_ok_and(|e| e >= 1),
            "a lease epoch: {l}"
        );
    }

    let (code, out, _) = streamctl(&b, &["cluster", "--format", "json"], "");
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(
        v["agents"][0]["shard_addresses"].as_array().map(Vec::len),
        Some(2)
    );
    assert_eq!(
        v["topics"][0]["partitions"].as_array().map(Vec::len),
        Some(3)
    );
}
