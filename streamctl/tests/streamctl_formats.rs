//! `produce -f`: each input line carries its own key, partition, timestamp
//! and headers (issue 44), read back with `consume -f` as it was written;
//! a line that does not match stops the run with its number, after the
//! lines before it are stored.

mod cli;
#[path = "../../agent/tests/common/mod.rs"]
mod common;

use cli::*;

#[test]
fn each_line_carries_its_own_key_partition_timestamp_and_headers() {
    let agent = common::Agent::start(1, &[]);
    let b = agent.addr(0);
    assert_eq!(
        streamctl(&b, &["topic", "create", "f", "--partitions", "3"], "").0,
        0
    );
    let input = "\
alice 2 1700000000000 trace=a1,source=web the first, with spaces
bob 0 2026-12-05T00:00:00Z  second
 1 1700000000002 only=header third (no key)
";
    let (code, out, err) = streamctl(&b, &["produce", "f", "-f", "%k %p %T %h %v"], input);
    assert_eq!(code, 0, "{out}{err}");

    let (code, out, err) = streamctl(&b, &["consume", "f", "-e", "-f", "%p|%k|%T|%h|%s\\n"], "");
    assert_eq!(code, 0, "{err}");
    let mut lines: Vec<&str> = out.lines().collect();
    lines.sort();
    assert_eq!(
        lines,
        [
            "0|bob|1796428800000||second",
            "1||1700000000002|only=header|third (no key)",
            "2|alice|1700000000000|trace=a1,source=web|the first, with spaces",
        ]
    );

    // What consume -f printed, produce -f reads back the same way.
    let (code, _, err) = streamctl(&b, &["topic", "create", "g", "--partitions", "3"], "");
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = streamctl(&b, &["produce", "g", "-f", "%p|%k|%T|%h|%s"], &out);
    assert_eq!(code, 0, "{err}");
    let (_, again, _) = streamctl(&b, &["consume", "g", "-e", "-f", "%p|%k|%T|%h|%s\\n"], "");
    let mut again: Vec<&str> = again.lines().collect();
    again.sort();
    assert_eq!(again, lines);
}

#[test]
fn a_line_that_does_not_match_stops_the_run_after_the_ones_before_it() {
    let agent = common::Agent::start(1, &[]);
    let b = agent.addr(0);
    assert_eq!(
        streamctl(&b, &["topic", "create", "m", "--partitions", "1"], "").0,
        0
    );
    let input = "k1 a\nk2 b\nk3 c\nno-separator\nk5 e\n";
    let (code, _, err) = streamctl(&b, &["produce", "m", "-f", "%k %v"], input);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains(
            "record 4 does not match the format: no \" \" after byte 0 to end the key (%k)"
        ) && err.contains("the 3 records before it: 3 acknowledged, 0 failed"),
        "{err}"
    );
    let (_, out, _) = streamctl(&b, &["consume", "m", "-e", "-f", "%k=%s\\n"], "");
    assert_eq!(out, "k1=a\nk2=b\nk3=c\n");

    // Bad formats and conflicting flags are bad usage, before any record.
    for (args, says) in [
        (vec!["-f", "%k%v"], "two fields in a row"),
        (
            vec!["-f", "%o %v"],
            "%o (the offset) cannot be read from input",
        ),
        (vec!["-f", "%p %v", "-p", "0"], "-p and a format with %p"),
        (vec!["-f", "%k %v", "-k", "x"], "cannot be used with"),
    ] {
        let mut all = vec!["produce", "m"];
        all.extend(args);
        let (code, _, err) = streamctl(&b, &all, "x y\n");
        assert_eq!(code, 2, "{all:?}: {err}");
        assert!(err.contains(says), "{all:?}: {err}");
    }
    let (_, out, _) = streamctl(&b, &["consume", "m", "-e"], "");
    assert_eq!(out.lines().count(), 3, "nothing more was produced: {out}");
}
