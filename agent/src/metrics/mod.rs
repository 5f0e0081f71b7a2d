//! The agent's metrics, served on `/metrics` of the admin port. Shards
//! ([`shard`]), the control thread ([`control`]) and the group coordinator
//! ([`groups`]) each write only their own counters; a scrape reads them
//! through `prometheus-client` collectors, one family per metric with a
//! `shard` label where a shard owns it, base units (`_seconds`,
//! `_bytes`), `_total` counters and a `# HELP` on every family. Answers
//! the Prometheus text format (0.0.4) or OpenMetrics 1.0, as the scraper's
//! `Accept` header asks ([`Format::negotiate`]). docs/METRICS.md lists
//! every family.

mod control;
mod encode;
pub mod groups;
mod shard;
mod topics;

use std::fmt;
use std::sync::Arc;

use parking_lot::Mutex;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{prometheus_text, text, DescriptorEncoder};

pub use control::ControlMetrics;
pub use shard::ShardMetrics;
pub use topics::TopicsSource;

/// An exposition format a scraper can ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// The Prometheus text format, version 0.0.4 (the default).
    Prometheus,
    /// OpenMetrics 1.0 text.
    OpenMetrics,
}

impl Format {
    /// The format an `Accept` header prefers: OpenMetrics when it names
    /// `application/openmetrics-text` with a weight above 0 at least as
    /// high as any text/plain or wildcard entry, else the Prometheus text
    /// format (also for no header at all).
    pub fn negotiate(accept: Option<&str>) -> Format {
        let Some(accept) = accept else {
            return Format::Prometheus;
        };
        let (mut open_metrics, mut other) = (0.0f32, 0.0f32);
        for entry in accept.split(',') {
            let mut parts = entry.split(';').map(str::trim);
            let media = parts.next().unwrap_or("").to_ascii_lowercase();
            let q = parts
                .filter_map(|p| p.strip_prefix("q="))
                .find_map(|q| q.parse::<f32>().ok())
                .unwrap_or(1.0);
            if media == "application/openmetrics-text" {
                open_metrics = open_metrics.max(q);
            } else if matches!(media.as_str(), "text/plain" | "text/*" | "*/*") {
                other = other.max(q);
            }
        }
        if open_metrics > 0.0 && open_metrics >= other {
            Format::OpenMetrics
        } else {
            Format::Prometheus
        }
    }

    /// The `Content-Type` of an answer in this format.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Prometheus => prometheus_text::CONTENT_TYPE,
            Format::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
        }
    }
}

/// Whether the agent is ready, from the shards' metrics and flags kept
/// elsewhere: `true` when ready.
pub type ReadyCheck = Arc<dyn Fn(&[Arc<ShardMetrics>]) -> bool + Send + Sync>;

/// Every metric of one agent.
pub struct Registry {
    pub shards: Vec<Arc<ShardMetrics>>,
    pub control: Arc<ControlMetrics>,
    /// Groups this agent coordinates.
    pub groups: Arc<groups::GroupMetrics>,
    ready: Arc<Mutex<Option<ReadyCheck>>>,
    topics: Arc<Mutex<topics::TopicsSlot>>,
    exposition: prometheus_client::registry::Registry,
}

impl Registry {
    /// The metrics of an agent with `shards` shards, all zero.
    pub fn new(shards: usize) -> Registry {
        let shards: Vec<Arc<ShardMetrics>> = (0..shards).map(|_| Arc::default()).collect();
        let control = Arc::<ControlMetrics>::default();
        let groups = Arc::<groups::GroupMetrics>::default();
        let ready = Arc::new(Mutex::new(None));
        let topics = Arc::new(Mutex::new(topics::TopicsSlot::default()));
        let mut exposition = prometheus_client::registry::Registry::default();
        exposition.register_collector(Box::new(ReadyCollector {
            check: ready.clone(),
            shards: shards.clone(),
        }));
        exposition.register_collector(Box::new(shard::ShardsCollector::new(shards.clone())));
        exposition.register_collector(Box::new(control::ControlCollector(control.clone())));
        exposition.register_collector(Box::new(groups::GroupsCollector(groups.clone())));
        exposition.register_collector(Box::new(topics::TopicsCollector(topics.clone())));
        Registry {
            shards,
            control,
            groups,
            ready,
            topics,
            exposition,
        }
    }

    /// Where the per-topic families read the topics from; with
    /// `per_partition`, a series per partition instead of per topic.
    pub fn set_topics(&self, source: TopicsSource, per_partition: bool) {
        *self.topics.lock() = topics::TopicsSlot {
            source: Some(source),
            per_partition,
        };
    }

    /// Where `streamhouse_ready` comes from (0 until this is set).
    pub fn set_ready_check(&self, check: ReadyCheck) {
        *self.ready.lock() = Some(check);
    }

    /// Every family in `format`.
    pub fn render(&self, format: Format) -> String {
        let mut out = String::new();
        let written = match format {
            Format::Prometheus => prometheus_text::encode(&mut out, &self.exposition),
            Format::OpenMetrics => text::encode(&mut out, &self.exposition),
        };
        if let Err(e) = written {
            // Writing into a String fails only if a collector does; say so
            // in the body rather than serve half an exposition silently.
            tracing::error!(error = %e, "metrics exposition failed");
            out.push_str("# the exposition failed; see the agent's log\n");
        }
        out
    }
}

/// `streamhouse_ready`: 1 while the agent is ready by its flags.
struct ReadyCollector {
    check: Arc<Mutex<Option<ReadyCheck>>>,
    shards: Vec<Arc<ShardMetrics>>,
}

impl fmt::Debug for ReadyCollector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ReadyCollector")
    }
}

impl Collector for ReadyCollector {
    fn encode(&self, mut enc: DescriptorEncoder<'_>) -> fmt::Result {
        let check = self.check.lock().clone();
        let ready = check.is_some_and(|c| c(&self.shards));
        encode::single(
            &mut enc,
            "streamhouse_ready",
            "1 while the agent is ready: first lease round done, metadata store answering, every shard's log writable (/ready also probes the shard ports).",
            None,
            encode::Value::IntGauge(u64::from(ready)),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_headers_choose_the_format() {
        for (accept, want) in [
            (None, Format::Prometheus),
            (Some("text/plain"), Format::Prometheus),
            (Some("*/*"), Format::Prometheus),
            (Some("application/openmetrics-text"), Format::OpenMetrics),
            // What Prometheus 2.x sends.
            (
                Some(
                    "application/openmetrics-text;version=1.0.0,application/openmetrics-text;\
                     version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1",
                ),
                Format::OpenMetrics,
            ),
            (
                Some("text/plain;version=0.0.4,application/openmetrics-text;q=0.5"),
                Format::Prometheus,
            ),
            (Some("application/openmetrics-text;q=0"), Format::Prometheus),
        ] {
            assert_eq!(Format::negotiate(accept), want, "{accept:?}");
        }
    }

    #[test]
    fn every_family_appears_once_with_help_and_type_on_two_shards() {
        let r = Registry::new(2);
        r.shards[1].error(crate::grpc_status::Code::InvalidArgument);
        r.control.upload_us.observe(1_500);
        for format in [Format::Prometheus, Format::OpenMetrics] {
            let out = r.render(format);
            let mut types = std::collections::BTreeSet::new();
            for l in out.lines().filter(|l| l.starts_with("# TYPE ")) {
                let name = l.split(' ').nth(2).unwrap_or_default();
                assert!(
                    types.insert(name.to_string()),
                    "second TYPE for {name}:\n{out}"
                );
            }
            let helps = out.lines().filter(|l| l.starts_with("# HELP ")).count();
            assert_eq!(helps, types.len(), "{out}");
            assert!(
                out.contains(
                    "streamhouse_request_errors_total{shard=\"1\",code=\"INVALID_ARGUMENT\"} 1"
                ),
                "{out}"
            );
            assert!(
                out.contains("streamhouse_upload_duration_seconds_sum 0.0015"),
                "{out}"
            );
            assert!(
                out.contains("streamhouse_produce_bytes_total{shard=\"0\"} 0"),
                "{out}"
            );
            assert_eq!(
                out.ends_with("# EOF\n"),
                format == Format::OpenMetrics,
                "{out}"
            );
        }
    }
}
