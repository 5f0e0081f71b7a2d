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
