//! `streamhouse-perf compare A.json B.json`: two `--json` reports side by
//! side, each figure with B/A, and the settings that differ (a comparison
//! across different settings is named as such, not hidden).

use std::fmt::Write as _;

use serde_json::Value;

/// Figures compared, as (label, JSON pointer).
const FIGURES: [(&str, &str); 12] = [
    ("records/s", "/records_per_s"),
    ("MB/s", "/mb_per_s"),
    ("latency avg ms", "/latency_ms/avg"),
    ("latency p50 ms", "/latency_ms/p50"),
    ("latency p95 ms", "/latency_ms/p95"),
    ("latency p99 ms", "/latency_ms/p99"),
    ("latency p99.9 ms", "/latency_ms/p999"),
    ("latency max ms", "/latency_ms/max"),
    ("request avg ms", "/request_avg_ms"),
    ("agent CPU s", "/agent_cpu_s"),
    ("agent peak RSS MiB", "/agent_peak_rss_mib"),
    ("floor fdatasync p50 ms", "/floor/fdatasync_p50_ms"),
];

/// Reads a report written by `--json`.
pub fn load(path: &std::path::Path) -> Result<Value, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    serde_json::from_slice(&bytes).map_err(|e| format!("{}: not a report: {e}", path.display()))
}

/// The side-by-side table of `a` and `b`, labelled `names`.
pub fn table(a: &Value, b: &Value, names: (&str, &str)) -> String {
    let mut out = String::new();
    let (wa, wb) = (names.0.len().max(12), names.1.len().max(12));
    let _ = writeln!(
        out,
        "{:<24} {:>wa$} {:>wb$} {:>8}",
        "", names.0, names.1, "B/A"
    );
    for (label, pointer) in FIGURES {
        let (x, y) = (a.pointer(pointer), b.pointer(pointer));
        if x.is_none_or(Value::is_null) && y.is_none_or(Value::is_null) {
            continue;
        }
        let num = |v: Option<&Value>| v.and_then(Value::as_f64);
        let show = |v: Option<f64>| v.map_or("-".to_owned(), |v| format!("{v:.2}"));
        let ratio = match (num(x), num(y)) {
            (Some(x), Some(y)) if x != 0.0 => format!("{:.2}", y / x),
            _ => "-".to_owned(),
        };
        let _ = writeln!(
            out,
            "{label:<24} {:>wa$} {:>wb$} {ratio:>8}",
            show(num(x)),
            show(num(y))
        );
    }
    let settings = |v: &Value| {
        v.get("settings")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default()
    };
    let (sa, sb) = (settings(a), settings(b));
    let mut keys: Vec<&String> = sa.keys().chain(sb.keys()).collect();
    keys.sort();
    keys.dedup();
    let differ: Vec<String> = keys
        .into_iter()
        .filter(|k| sa.get(*k) != sb.get(*k))
        .map(|k| {
            let show = |v: Option<&Value>| v.map_or("-".to_owned(), Value::to_string);
            format!("{k}: {} vs {}", show(sa.get(k)), show(sb.get(k)))
        })
        .collect();
    if differ.is_empty() {
        let _ = writeln!(out, "settings: the same");
    } else {
        let _ = writeln!(out, "settings differ: {}", differ.join(", "));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figures_line_up_with_their_ratio_and_different_settings_are_named() {
        let a = serde_json::json!({
            "records_per_s": 1000.0, "latency_ms": {"p99": 4.0},
            "settings": {"acks": "Durable", "record_size": 100}
        });
        let b = serde_json::json!({
            "records_per_s": 1500.0, "latency_ms": {"p99": 2.0},
            "settings": {"acks": "Object", "record_size": 100}
        });
        let t = table(&a, &b, ("before", "after"));
        let row = |label: &str| t.lines().find(|l| l.starts_with(label)).unwrap().to_owned();
        assert!(
            row("records/s").ends_with("1000.00      1500.00     1.50"),
            "{t}"
        );
        assert!(row("latency p99 ms").ends_with("0.50"), "{t}");
        assert!(
            !t.contains("latency max"),
            "absent figures are left out: {t}"
        );
        assert!(
            t.contains("settings differ: acks: \"Durable\" vs \"Object\""),
            "{t}"
        );
    }
}
