//! The agent's log output on stderr: the subscriber `main` installs, in
//! text for people or JSON for log pipelines (`--log-format`), every line
//! naming the agent (several agents often share one terminal or one
//! collector). Colour only on a terminal, never with `NO_COLOR`. Owns the
//! line formats; what is logged belongs to each subsystem.

use std::fmt;
use std::io::IsTerminal;

use tracing_subscriber::fmt::format::{Format, Json, JsonFields, Writer};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

use crate::config::LogFormat;

/// Text lines as tracing's default format, each starting with the agent
/// id; the thread name says which shard (`shard-N`) or `control`.
struct AgentText {
    agent_id: String,
    inner: Format,
}

impl<S, N> FormatEvent<S, N> for AgentText
where
    S: tracing::Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &tracing::Event<'_>,
    ) -> fmt::Result {
        write!(writer, "[{}] ", self.agent_id)?;
        self.inner.format_event(ctx, writer, event)
    }
}

/// JSON objects as tracing-subscriber writes them, with `agent_id` first.
struct AgentJson {
    /// `"agent_id":"...",` with the id escaped as a JSON string.
    prefix: String,
    inner: Format<Json>,
}

impl<S> FormatEvent<S, JsonFields> for AgentJson
where
    S: tracing::Subscriber + for<'a> LookupSpan<'a>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, JsonFields>,
        mut writer: Writer<'_>,
        event: &tracing::Event<'_>,
    ) -> fmt::Result {
        let mut line = String::new();
        self.inner
            .format_event(ctx, Writer::new(&mut line), event)?;
        match line.strip_prefix('{') {
            Some(rest) => write!(writer, "{{{}{rest}", self.prefix),
            None => writer.write_str(&line),
        }
    }
}

/// Whether text lines get colour: stderr is a terminal and `NO_COLOR` is
/// unset or empty (<https://no-color.org>).
pub fn colour(no_color: Option<&std::ffi::OsStr>, terminal: bool) -> bool {
    terminal && no_color.is_none_or(|v| v.is_empty())
}

/// Installs the process's subscriber: events at `RUST_LOG` (default
/// `info`) on stderr in `format`. Call once, before the agent starts.
pub fn init(format: LogFormat, agent_id: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_thread_names(true);
    match format {
        LogFormat::Text => {
            let ansi = colour(
                std::env::var_os("NO_COLOR").as_deref(),
                std::io::stderr().is_terminal(),
            );
            builder
                .with_ansi(ansi)
                .event_format(AgentText {
                    agent_id: agent_id.to_string(),
                    inner: tracing_subscriber::fmt::format()
                        .with_thread_names(true)
                        .with_ansi(ansi),
                })
                .init();
        }
        LogFormat::Json => {
            let id = serde_json::Value::String(agent_id.to_string());
            builder
                .json()
                .with_ansi(false)
                .event_format(AgentJson {
                    prefix: format!("\"agent_id\":{id},"),
                    inner: tracing_subscriber::fmt::format()
                        .json()
                        .with_thread_names(true)
                        .with_current_span(true)
                        .with_span_list(true),
                })
                .init();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colour_only_on_a_terminal_without_no_color() {
        assert!(colour(None, true));
        assert!(!colour(None, false));
        assert!(!colour(Some("1".as_ref()), true));
        assert!(colour(Some("".as_ref()), true));
    }
}
