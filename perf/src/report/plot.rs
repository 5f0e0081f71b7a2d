//! An SVG picture of a produce run (the `plotters` crate, SVG backend):
//! latency percentiles per interval over time, throughput over time, and
//! the latency distribution by percentile on a log scale of 1/(1−p), as
//! HdrHistogram's plots draw it.

use hdrhistogram::Histogram;
use plotters::prelude::*;

use crate::produce::Tick;

/// Width and height of the picture, pixels.
const SIZE: (u32, u32) = (1000, 1050);

/// Writes the SVG of `timeline` and `latency` (µs) titled `title` to
/// `path`.
pub fn write(
    path: &std::path::Path,
    title: &str,
    timeline: &[Tick],
    latency: &Histogram<u64>,
) -> Result<(), String> {
    let root = SVGBackend::new(path, SIZE).into_drawing_area();
    draw(&root, title, timeline, latency).map_err(|e| format!("{}: {e}", path.display()))?;
    root.present()
        .map_err(|e| format!("{}: {e}", path.display()))
}

type Area<'a> = DrawingArea<SVGBackend<'a>, plotters::coord::Shift>;
type Drawn = Result<(), Box<dyn std::error::Error>>;

fn draw(root: &Area<'_>, title: &str, timeline: &[Tick], latency: &Histogram<u64>) -> Drawn {
    root.fill(&WHITE)?;
    let root = root.titled(title, ("sans-serif", 20))?;
    let parts = root.split_evenly((3, 1));
    let end = timeline.last().map_or(1.0, |t| t.at_s).max(1e-3);

    let top = headroom(timeline.iter().map(|t| t.max_ms), 1e-3);
    let mut chart =
        frame(&parts[0], "Latency per interval", 60).build_cartesian_2d(0.0..end, 0.0..top)?;
    chart
        .configure_mesh()
        .x_desc("seconds")
        .y_desc("ms")
        .draw()?;
    for (name, colour, value) in [
        ("p50", BLUE, (|t: &Tick| t.p50_ms) as fn(&Tick) -> f64),
        ("p99", RED, |t: &Tick| t.p99_ms),
        ("max", BLACK, |t: &Tick| t.max_ms),
    ] {
        chart
            .draw_series(LineSeries::new(
                timeline.iter().map(|t| (t.at_s, value(t))),
                colour.stroke_width(2),
            ))?
            .label(name)
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], colour));
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()?;

    let top = headroom(timeline.iter().map(|t| t.records_per_s), 1.0);
    let mut chart = frame(&parts[1], "Throughput", 80).build_cartesian_2d(0.0..end, 0.0..top)?;
    chart
        .configure_mesh()
        .x_desc("seconds")
        .y_desc("records/s")
        .draw()?;
    chart.draw_series(LineSeries::new(
        timeline.iter().map(|t| (t.at_s, t.records_per_s)),
        GREEN.stroke_width(2),
    ))?;

    // x = 1/(1-p): 2 is the median, 100 the 99th percentile.
    let points: Vec<(f64, f64)> = latency
        .iter_quantiles(5)
        .map(|v| (v.quantile_iterated_to(), v.value_iterated_to()))
        .filter(|(q, _)| *q < 1.0)
        .map(|(q, us)| {
            (
                (1.0 / (1.0 - q)).min(1e6),
                latency.highest_equivalent(us) as f64 / 1000.0,
            )
        })
        .collect();
    let right = points.iter().map(|p| p.0).fold(10.0, f64::max);
    let top = headroom(points.iter().map(|p| p.1), 1e-3);
    let mut chart = frame(&parts[2], "Latency by percentile", 60)
        .build_cartesian_2d((1.0..right).log_scale(), 0.0..top)?;
    chart
        .configure_mesh()
        .x_desc("percentile")
        .y_desc("ms")
        .x_label_formatter(&|x| percentile_label(*x))
        .draw()?;
    chart.draw_series(LineSeries::new(points, MAGENTA.stroke_width(2)))?;
    Ok(())
}

/// A chart's frame on `area`: its caption and room for the axis labels
/// (`y_labels` pixels for the y axis's).
fn frame<'a, 'b>(
    area: &'a Area<'b>,
    caption: &str,
    y_labels: u32,
) -> ChartBuilder<'a, 'b, SVGBackend<'b>> {
    let mut builder = ChartBuilder::on(area);
    builder
        .caption(caption, ("sans-serif", 16))
        .margin(10)
        .x_label_area_size(35)
        .y_label_area_size(y_labels);
    builder
}

/// The top of a y axis: 5% above the largest of `values`, and at least
/// `floor`.
fn headroom(values: impl Iterator<Item = f64>, floor: f64) -> f64 {
    values.fold(0.0, f64::max).max(floor) * 1.05
}

/// The percentile at x = 1/(1-p): "50%", "99%", "99.9%".
fn percentile_label(x: f64) -> String {
    let p = 100.0 * (1.0 - 1.0 / x.max(1.0));
    let digits = (x.log10().floor() as i32 - 2).max(0) as usize;
    format!("{p:.digits$}%")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_labelled_where_they_fall() {
        assert_eq!(percentile_label(2.0), "50%");
        assert_eq!(percentile_label(10.0), "90%");
        assert_eq!(percentile_label(100.0), "99%");
        assert_eq!(percentile_label(1000.0), "99.9%");
        assert_eq!(percentile_label(10000.0), "99.99%");
    }

    #[test]
    fn a_run_is_drawn_as_svg_lines() {
        let mut h = Histogram::<u64>::new_with_bounds(1, 600_000_000, 3).unwrap();
        for us in 1..=5_000u64 {
            h.record(us * 3).unwrap();
        }
        let timeline: Vec<Tick> = (1..=5)
            .map(|i| Tick {
                at_s: f64::from(i),
                records_per_s: 1000.0 * f64::from(i),
                avg_ms: 2.0,
                p50_ms: 1.5,
                p99_ms: 9.0,
                max_ms: 15.0,
            })
            .collect();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("run.svg");
        write(&path, "test run", &timeline, &h).unwrap();
        let svg = std::fs::read_to_string(&path).unwrap();
        assert!(svg.starts_with("<svg"), "{}", &svg[..200.min(svg.len())]);
        for text in [
            "test run",
            "Latency per interval",
            "Throughput",
            "99.9%",
            "p99",
        ] {
            assert!(svg.contains(text), "{text} missing");
        }
        assert!(svg.matches("<polyline").count() >= 5, "one line per series");
    }
}
