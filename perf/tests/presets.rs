//! Tiny runs of every preset against a real agent: the report's counts must
//! agree (sent = acknowledged = read back) and the exit code must be 0.

#[path = "../../agent/tests/common/mod.rs"]
mod common;

use std::process::Command;

use common::target_tmp;

fn run(preset: &str, extra: &[&str]) -> serde_json::Value {
    let root = tempfile::tempdir_in(target_tmp()).unwrap();
    let json = root.path().join("report.json");
    let out = Command::new(env!("CARGO_BIN_EXE_streamhouse-perf"))
        .arg(preset)
        .args([
            "--embedded",
            "--records",
            "10000",
            "--no-floor",
            "--verify",
            "--interval",
            "1",
        ])
        .arg("--data-root")
        .arg(root.path())
        .arg("--json")
        .arg(&json)
        .args(extra)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{preset}: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("10000 records sent"), "{stdout}");
    assert!(stdout.contains("ms 99.9th."), "{stdout}");
    serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap()
}

fn check_counts(j: &serde_json::Value) {
    assert_eq!(j["sent"], 10000);
    assert_eq!(j["acked"], 10000);
    assert_eq!(j["failed"], 0);
    assert_eq!(j["read_back"], 10000);
    assert!(j["records_per_s"].as_f64().unwrap() > 0.0);
    assert!(j["latency_ms"]["p99"].as_f64().unwrap() >= j["latency_ms"]["p50"].as_f64().unwrap());
    assert!(j["agent_cpu_s"].as_f64().is_some());
}

#[test]
fn throughput_preset() {
    check_counts(&run("throughput", &[]));
}

/// `--secure`: the embedded agent serves TLS with `--auth required`, and
/// the run goes through as a user with a token and topic rules only.
#[test]
fn throughput_preset_over_tls_with_a_token() {
    let j = run("throughput", &["--secure"]);
    check_counts(&j);
    assert_eq!(j["settings"]["security"], "tls+token");
    assert_eq!(run("throughput", &[])["settings"]["security"], "plaintext");
}

#[test]
fn latency_preset_runs_at_the_fixed_rate() {
    let j = run("latency", &["--rate", "20000"]);
    check_counts(&j);
    // 10,000 records at 20,000/s take about half a second, not less.
    assert!(j["elapsed_s"].as_f64().unwrap() >= 0.45, "{j}");
}

#[test]
fn concurrent_preset_uses_ten_producers() {
    let j = run("concurrent", &[]);
    check_counts(&j);
    assert_eq!(j["settings"]["producers"], 10);
}

#[test]
fn batch_api_sends_one_request_per_call() {
    let j = run(
        "throughput",
        &[
            "--api",
            "batch",
            "--batch-records",
            "1000",
            "--partitions",
            "3",
        ],
    );
    check_counts(&j);
    assert_eq!(j["settings"]["api"], "Batch");
    assert_eq!(j["batches"], 10, "{j}");
}

#[test]
fn produce_with_explicit_settings() {
    let j = run(
        "produce",
        &[
            "--batch-records",
            "100",
            "--partitions",
            "3",
            "--record-size",
            "10",
        ],
    );
    check_counts(&j);
    assert!(j["batches"].as_u64().unwrap() >= 100);
}

#[test]
fn failover_preset_loses_nothing_with_ack_object() {
    let root = tempfile::tempdir_in(target_tmp()).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_streamhouse-perf"))
        .args(["failover", "--records", "10000", "--kill-at", "0.5"])
        .arg("--data-root")
        .arg(root.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("SIGKILLed agent-1"), "{stdout}");
    // Issue 44: the failover is always measured (a run that cannot measure
    // it fails), with records sent to the moved partitions after the kill.
    let recovery = stdout
        .split("kill → first ack on a moved partition ")
        .nth(1)
        .and_then(|rest| rest.split(" ms").next())
        .and_then(|ms| ms.parse::<f64>().ok());
    assert!(recovery.is_some_and(|ms| ms > 0.0), "{stdout}");
    assert!(
        stdout.contains(
            "10000 acknowledged, 0 failed, 10000 read, 0 lost, 0 duplicated, 0 out of order"
        ),
        "{stdout}"
    );
}

#[test]
fn failover_preset_reports_loss_of_durable_acks_without_restart() {
    // A durable ack survives a crash and restart, not the loss of the agent:
    // the preset must see and report what an agent killed for good lost.
    let root = tempfile::tempdir_in(target_tmp()).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_streamhouse-perf"))
        .args([
            "failover",
            "--records",
            "20000",
            "--acks",
            "durable",
            "--kill-at",
            "0.5",
        ])
        .arg("--data-root")
        .arg(root.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout
        .lines()
        .find(|l| l.contains("acknowledged,"))
        .unwrap_or_else(|| panic!("{stdout}"));
    let lost: u64 = line
        .split(", ")
        .find(|f| f.ends_with(" lost"))
        .and_then(|f| f.trim_end_matches(" lost").parse().ok())
        .unwrap_or_else(|| panic!("{line}"));
    let read: u64 = line
        .split(", ")
        .find(|f| f.ends_with(" read"))
        .and_then(|f| f.trim_end_matches(" read").parse().ok())
        .unwrap_or_else(|| panic!("{line}"));
    assert_eq!(read + lost, 20000, "{line}");
    assert_eq!(out.status.success(), lost == 0, "{line}");
}

/// Issue 21: a run leaves its latency distribution (`.hgrm`), a picture
/// (SVG) and a timeline in its JSON; `compare` lays two reports side by
/// side.
#[test]
fn a_run_writes_its_distribution_a_picture_and_compares_with_another() {
    let root = tempfile::tempdir_in(target_tmp()).unwrap();
    let hgrm = root.path().join("run.hgrm");
    let svg = root.path().join("run.svg");
    let a = run(
        "throughput",
        &[
            "--hdr-out",
            hgrm.to_str().unwrap(),
            "--plot",
            svg.to_str().unwrap(),
        ],
    );
    check_counts(&a);
    let text = std::fs::read_to_string(&hgrm).unwrap();
    assert!(
        text.starts_with("       Value     Percentile TotalCount"),
        "{text}"
    );
    let last_row = text
        .lines()
        .take_while(|l| !l.starts_with('#'))
        .last()
        .unwrap()
        .to_owned();
    let fields: Vec<&str> = last_row.split_whitespace().collect();
    assert_eq!(fields[1..], ["1.000000000000", "10000"], "{text}");
    assert!(text.contains("Total count    =        10000]"), "{text}");
    let picture = std::fs::read_to_string(&svg).unwrap();
    assert!(picture.starts_with("<svg") && picture.contains("Latency by percentile"));
    assert!(
        picture.contains("10000 records of 100 B"),
        "the title states the settings"
    );
    let timeline = a["timeline"].as_array().unwrap();
    assert!(!timeline.is_empty(), "{a}");
    let counted: f64 = timeline.windows(2).fold(0.0, |n, w| {
        n + w[1]["records_per_s"].as_f64().unwrap()
            * (w[1]["at_s"].as_f64().unwrap() - w[0]["at_s"].as_f64().unwrap())
    }) + timeline[0]["records_per_s"].as_f64().unwrap()
        * timeline[0]["at_s"].as_f64().unwrap();
    assert!(
        (counted - 10000.0).abs() < 1.0,
        "the timeline accounts for every record: {counted}"
    );

    let b = run("produce", &["--record-size", "10"]);
    check_counts(&b);
    let (a_json, b_json) = (root.path().join("a.json"), root.path().join("b.json"));
    std::fs::write(&a_json, serde_json::to_vec(&a).unwrap()).unwrap();
    std::fs::write(&b_json, serde_json::to_vec(&b).unwrap()).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_streamhouse-perf"))
        .arg("compare")
        .arg(&a_json)
        .arg(&b_json)
        .output()
        .unwrap();
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{table}");
    assert!(table.lines().any(|l| l.starts_with("records/s")), "{table}");
    assert!(table.contains("record_size: 100 vs 10"), "{table}");
    let bad = Command::new(env!("CARGO_BIN_EXE_streamhouse-perf"))
        .arg("compare")
        .arg(&a_json)
        .arg(root.path().join("missing.json"))
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("missing.json"));
}
