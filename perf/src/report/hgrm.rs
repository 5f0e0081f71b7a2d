//! The percentile distribution of a latency histogram in the text format
//! HdrHistogram's `outputPercentileDistribution` writes and its plotter
//! (and `hdr-plot`) read: value in milliseconds, percentile as a fraction,
//! cumulative count and 1/(1−percentile), then `#[...]` summary lines.

use std::fmt::Write as _;

use hdrhistogram::Histogram;

/// Quantile steps per halving of the distance to 100% (HdrHistogram's
/// usual 5).
const TICKS_PER_HALF_DISTANCE: u32 = 5;

/// The `.hgrm` text of `h`, whose values are microseconds.
pub fn render(h: &Histogram<u64>) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:>12} {:>14} {:>10} {:>14}\n",
        "Value", "Percentile", "TotalCount", "1/(1-Percentile)"
    );
    let mut total = 0u64;
    for v in h.iter_quantiles(TICKS_PER_HALF_DISTANCE) {
        total += v.count_since_last_iteration();
        let value_ms = h.highest_equivalent(v.value_iterated_to()) as f64 / 1000.0;
        let q = v.quantile_iterated_to();
        if q < 1.0 {
            let _ = writeln!(
                out,
                "{value_ms:>12.3} {q:>2.12} {total:>10} {:>14.2}",
                1.0 / (1.0 - q)
            );
        } else {
            let _ = writeln!(out, "{value_ms:>12.3} {q:>2.12} {total:>10}");
        }
    }
    let _ = writeln!(
        out,
        "#[Mean    = {:>12.3}, StdDeviation   = {:>12.3}]",
        h.mean() / 1000.0,
        h.stdev() / 1000.0
    );
    let _ = writeln!(
        out,
        "#[Max     = {:>12.3}, Total count    = {:>12}]",
        h.max() as f64 / 1000.0,
        h.len()
    );
    let _ = writeln!(
        out,
        "#[Buckets = {:>12}, SubBuckets     = {:>12}]",
        h.buckets(),
        h.distinct_values()
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_distribution_rises_to_every_record_and_states_its_summary() {
        let mut h = Histogram::<u64>::new_with_bounds(1, 600_000_000, 3).unwrap();
        for us in 1..=10_000u64 {
            h.record(us).unwrap();
        }
        let text = render(&h);
        let rows: Vec<Vec<f64>> = text
            .lines()
            .skip(2)
            .take_while(|l| !l.starts_with('#'))
            .map(|l| l.split_whitespace().map(|f| f.parse().unwrap()).collect())
            .collect();
        assert!(rows.len() > 20, "{text}");
        for w in rows.windows(2) {
            assert!(
                w[1][0] >= w[0][0] && w[1][1] >= w[0][1] && w[1][2] >= w[0][2],
                "{text}"
            );
        }
        let last = rows.last().unwrap();
        assert_eq!((last[1], last[2]), (1.0, 10_000.0), "{text}");
        assert!((last[0] - 10.0).abs() < 0.02, "max about 10 ms: {text}");
        let median = rows.iter().find(|r| r[1] >= 0.5).unwrap();
        assert!((median[0] - 5.0).abs() < 0.01, "{text}");
        assert!(text.contains("Total count    =        10000]"), "{text}");
    }
}
