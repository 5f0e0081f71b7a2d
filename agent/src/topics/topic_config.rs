//! Per-topic configuration: the keys a topic may set (named as Kafka names
//! them), how each value is checked, and the value in effect (set on the
//! topic, else the cluster default the agent's flags give). Pure: no I/O;
//! the metadata store keeps the keys a topic set as text
//! (`metastore::text::encode_config`), and nothing here may panic on what
//! it reads back.

use std::collections::BTreeMap;
use std::fmt;

/// How long a record is kept, in milliseconds; `-1`: for ever.
pub const RETENTION_MS: &str = "retention.ms";
/// Most bytes a partition keeps in object storage; `-1`: no limit.
pub const RETENTION_BYTES: &str = "retention.bytes";
/// What happens to old records: `delete` (retention), `compact` (the
/// latest record per key is kept), or both (`compact,delete`).
pub const CLEANUP_POLICY: &str = "cleanup.policy";
/// How long a tombstone (a keyed record with an empty value) stays in a
/// compacted topic after it is the latest of its key, in milliseconds.
pub const DELETE_RETENTION_MS: &str = "delete.retention.ms";
/// Largest record batch a producer may send to the topic, in bytes.
pub const MAX_MESSAGE_BYTES: &str = "max.message.bytes";

/// Every key a topic may set, in the order DescribeConfigs lists them.
pub const KEYS: [&str; 5] = [
    CLEANUP_POLICY,
    DELETE_RETENTION_MS,
    MAX_MESSAGE_BYTES,
    RETENTION_BYTES,
    RETENTION_MS,
];

/// The cluster defaults: what a topic that did not set a key gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConfigDefaults {
    /// Milliseconds, `-1` for ever (default 604800000, 7 days).
    pub retention_ms: i64,
    /// Bytes per partition, `-1` without a limit (default -1).
    pub retention_bytes: i64,
    /// Bytes; also the most a topic may set: the agent's
    /// `--max-request-bytes` (default 8 MiB).
    pub max_message_bytes: u64,
}

/// A key or value a topic cannot have; answered `INVALID_ARGUMENT`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError(pub String);

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConfigError {}

/// Where a value in effect comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Topic,
    Default,
}

/// One key with its value in effect, for DescribeConfigs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub name: &'static str,
    pub value: String,
    pub source: Source,
    pub documentation: &'static str,
}

/// The keys one topic set, checked.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TopicConfig {
    set: BTreeMap<String, String>,
    /// As stored, with any keys [`TopicConfig::stored`] left out.
    raw: BTreeMap<String, String>,
    retention_ms: Option<i64>,
    retention_bytes: Option<i64>,
    max_message_bytes: Option<u64>,
    cleanup: Option<Cleanup>,
    delete_retention_ms: Option<u64>,
}

/// What a topic does with old records (`cleanup.policy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cleanup {
    /// Retention deletes records past `retention.ms` / `retention.bytes`.
    pub delete: bool,
    /// Key compaction keeps the latest record of each key.
    pub compact: bool,
}

/// `delete.retention.ms` of topics that do not set it: 86400000 (1 day,
/// as Kafka).
pub const DEFAULT_DELETE_RETENTION_MS: u64 = 86_400_000;

/// Parses `-1` or a whole number from 1 to `i64::MAX`.
fn limit_or_none(key: &str, value: &str) -> Result<i64, ConfigError> {
    match value.parse::<i64>() {
        Ok(-1) => Ok(-1),
        Ok(n) if n >= 1 => Ok(n),
        _ => Err(ConfigError(format!(
            "{key} must be -1 (no limit) or a whole number of at least 1, got {value:?}"
        ))),
    }
}

fn documentation(key: &str) -> &'static str {
    match key {
        RETENTION_MS => "How long a record is kept, in milliseconds; -1 keeps records for ever",
        RETENTION_BYTES => {
            "Most bytes a partition keeps in object storage; -1 sets no limit. Whole ranges \
             are deleted, oldest first"
        }
        CLEANUP_POLICY => {
            "What happens to old records: delete (past retention), compact (only the latest \
             record of each key is kept), or compact,delete (both)"
        }
        DELETE_RETENTION_MS => {
            "How long a tombstone (a keyed record with an empty value) stays in a compacted \
             topic once it is the latest of its key, in milliseconds"
        }
        MAX_MESSAGE_BYTES => "Largest record batch a producer may send to the topic, in bytes",
        _ => "",
    }
}

impl TopicConfig {
    /// The configuration a request sets, every key and value checked:
    /// unknown keys, values of the wrong form and values past the agent's
    /// limits are refused with a message naming them.
    pub fn checked(
        set: BTreeMap<String, String>,
        defaults: &ConfigDefaults,
    ) -> Result<TopicConfig, ConfigError> {
        let mut c = TopicConfig::default();
        for (key, value) in &set {
            match key.as_str() {
                RETENTION_MS => c.retention_ms = Some(limit_or_none(key, value)?),
                RETENTION_BYTES => c.retention_bytes = Some(limit_or_none(key, value)?),
                CLEANUP_POLICY => {
                    let (delete, compact) = match value.as_str() {
                        "delete" => (true, false),
                        "compact" => (false, true),
                        "compact,delete" | "delete,compact" => (true, true),
                        _ => {
                            return Err(ConfigError(format!(
                                "cleanup.policy must be delete, compact or compact,delete, \
                                 got {value:?}"
                            )))
                        }
                    };
                    c.cleanup = Some(Cleanup { delete, compact });
                }
                DELETE_RETENTION_MS => match value.parse::<u64>() {
                    Ok(n) if i64::try_from(n).is_ok() => c.delete_retention_ms = Some(n),
                    _ => {
                        return Err(ConfigError(format!(
                            "delete.retention.ms must be a whole number of milliseconds, at \
                             least 0, got {value:?}"
                        )))
                    }
                },
                MAX_MESSAGE_BYTES => {
                    let most = defaults.max_message_bytes;
                    match value.parse::<u64>() {
                        Ok(n) if (1..=most).contains(&n) => c.max_message_bytes = Some(n),
                        _ => {
                            return Err(ConfigError(format!(
                                "max.message.bytes must be from 1 to {most} (the agent's \
                                 --max-request-bytes), got {value:?}"
                            )))
                        }
                    }
                }
                other => {
                    let shown: String = other.chars().take(64).collect();
                    return Err(ConfigError(format!(
                        "unknown topic configuration key {shown:?}; known keys: {}",
                        KEYS.join(", ")
                    )));
                }
            }
        }
        c.raw = set.clone();
        c.set = set;
        Ok(c)
    }

    /// The configuration as stored: keys or values no agent should have
    /// written (an older or newer version, a hand edit) are left out and
    /// named in the returned list, so they take the cluster default.
    pub fn stored(raw: BTreeMap<String, String>) -> (TopicConfig, Vec<String>) {
        let unlimited = ConfigDefaults {
            retention_ms: -1,
            retention_bytes: -1,
            max_message_bytes: u64::MAX,
        };
        let mut kept = BTreeMap::new();
        let mut skipped = Vec::new();
        for (k, v) in raw.clone() {
            let one = BTreeMap::from([(k.clone(), v.clone())]);
            match TopicConfig::checked(one, &unlimited) {
                Ok(_) => {
                    kept.insert(k, v);
                }
                Err(e) => skipped.push(e.0),
            }
        }
        let mut config = TopicConfig::checked(kept, &unlimited).unwrap_or_default();
        config.raw = raw;
        (config, skipped)
    }

    /// The configuration as stored, keys left out included: what a newer
    /// stored row is compared with.
    pub fn as_stored(&self) -> &BTreeMap<String, String> {
        &self.raw
    }

    /// The keys this topic set, as given.
    pub fn set_keys(&self) -> &BTreeMap<String, String> {
        &self.set
    }

    /// This configuration with `set` applied and the keys in `delete`
    /// returned to their defaults, checked as a whole.
    pub fn altered(
        &self,
        set: &BTreeMap<String, String>,
        delete: &[String],
        defaults: &ConfigDefaults,
    ) -> Result<TopicConfig, ConfigError> {
        let mut next = self.set.clone();
        for k in delete {
            if !KEYS.contains(&k.as_str()) {
                let shown: String = k.chars().take(64).collect();
                return Err(ConfigError(format!(
                    "unknown topic configuration key {shown:?}; known keys: {}",
                    KEYS.join(", ")
                )));
            }
            if set.contains_key(k) {
                return Err(ConfigError(format!("{k} is both set and deleted")));
            }
            next.remove(k);
        }
        next.extend(set.iter().map(|(k, v)| (k.clone(), v.clone())));
        TopicConfig::checked(next, defaults)
    }

    /// What the topic does with old records (default: delete).
    pub fn cleanup(&self) -> Cleanup {
        self.cleanup.unwrap_or(Cleanup {
            delete: true,
            compact: false,
        })
    }

    /// How long a tombstone that is the latest of its key stays, ms.
    pub fn delete_retention_ms(&self) -> u64 {
        self.delete_retention_ms
            .unwrap_or(DEFAULT_DELETE_RETENTION_MS)
    }

    /// How long records are kept; `None`: for ever.
    pub fn retention_ms(&self, d: &ConfigDefaults) -> Option<u64> {
        u64::try_from(self.retention_ms.unwrap_or(d.retention_ms)).ok()
    }

    /// Most bytes a partition keeps; `None`: no limit.
    pub fn retention_bytes(&self, d: &ConfigDefaults) -> Option<u64> {
        u64::try_from(self.retention_bytes.unwrap_or(d.retention_bytes)).ok()
    }

    /// Largest record batch accepted, in bytes (never past the agent's
    /// request limit).
    pub fn max_message_bytes(&self, d: &ConfigDefaults) -> u64 {
        self.max_message_bytes
            .unwrap_or(d.max_message_bytes)
            .min(d.max_message_bytes)
    }

    /// Every key with its value in effect and where it comes from.
    pub fn describe(&self, d: &ConfigDefaults) -> Vec<Entry> {
        KEYS.iter()
            .map(|&name| {
                let (value, source) = match self.set.get(name) {
                    Some(v) => (v.clone(), Source::Topic),
                    None => (
                        match name {
                            RETENTION_MS => d.retention_ms.to_string(),
                            RETENTION_BYTES => d.retention_bytes.to_string(),
                            MAX_MESSAGE_BYTES => d.max_message_bytes.to_string(),
                            DELETE_RETENTION_MS => DEFAULT_DELETE_RETENTION_MS.to_string(),
                            _ => "delete".to_owned(),
                        },
                        Source::Default,
                    ),
                };
                Entry {
                    name,
                    value,
                    source,
                    documentation: documentation(name),
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: ConfigDefaults = ConfigDefaults {
        retention_ms: 604_800_000,
        retention_bytes: -1,
        max_message_bytes: 8 << 20,
    };

    fn set(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn set_keys_win_over_the_defaults() {
        let c = TopicConfig::checked(
            set(&[("retention.ms", "60000"), ("retention.bytes", "1000")]),
            &D,
        )
        .unwrap();
        assert_eq!(c.retention_ms(&D), Some(60_000));
        assert_eq!(c.retention_bytes(&D), Some(1000));
        assert_eq!(c.max_message_bytes(&D), 8 << 20);
        let none = TopicConfig::default();
        assert_eq!(none.retention_ms(&D), Some(604_800_000));
        assert_eq!(none.retention_bytes(&D), None);
        let forever = TopicConfig::checked(set(&[("retention.ms", "-1")]), &D).unwrap();
        assert_eq!(forever.retention_ms(&D), None);
    }

    #[test]
    fn cleanup_policies_and_tombstone_retention() {
        let none = TopicConfig::default();
        assert_eq!(
            (none.cleanup().delete, none.cleanup().compact),
            (true, false)
        );
        assert_eq!(none.delete_retention_ms(), 86_400_000);
        for (v, delete, compact) in [
            ("delete", true, false),
            ("compact", false, true),
            ("compact,delete", true, true),
            ("delete,compact", true, true),
        ] {
            let c = TopicConfig::checked(set(&[("cleanup.policy", v)]), &D).unwrap();
            assert_eq!((c.cleanup().delete, c.cleanup().compact), (delete, compact));
        }
        let c = TopicConfig::checked(set(&[("delete.retention.ms", "0")]), &D).unwrap();
        assert_eq!(c.delete_retention_ms(), 0);
    }

    #[test]
    fn bad_keys_and_values_are_refused_with_their_name() {
        for (k, v, says) in [
            ("retention.ms", "0", "retention.ms must be"),
            ("retention.ms", "-2", "retention.ms must be"),
            ("retention.ms", "1h", "retention.ms must be"),
            ("retention.bytes", "", "retention.bytes must be"),
            (
                "cleanup.policy",
                "gc",
                "must be delete, compact or compact,delete",
            ),
            ("delete.retention.ms", "-5", "at least 0"),
            ("max.message.bytes", "0", "max.message.bytes must be"),
            ("max.message.bytes", "8388609", "--max-request-bytes"),
            (
                "segment.ms",
                "1",
                "unknown topic configuration key \"segment.ms\"",
            ),
        ] {
            let e = TopicConfig::checked(set(&[(k, v)]), &D).unwrap_err();
            assert!(e.0.contains(says), "{k}={v}: {e}");
        }
    }

    #[test]
    fn altering_sets_and_deletes_keys_all_or_nothing() {
        let c = TopicConfig::checked(set(&[("retention.ms", "1000")]), &D).unwrap();
        let next = c
            .altered(
                &set(&[("retention.bytes", "5")]),
                &["retention.ms".into()],
                &D,
            )
            .unwrap();
        assert_eq!(next.set_keys(), &set(&[("retention.bytes", "5")]));
        assert!(c.altered(&set(&[("retention.ms", "x")]), &[], &D).is_err());
        assert!(c.altered(&BTreeMap::new(), &["nope".into()], &D).is_err());
        assert!(c
            .altered(&set(&[("retention.ms", "5")]), &["retention.ms".into()], &D)
            .is_err());
    }

    #[test]
    fn stored_keys_no_agent_writes_are_left_out() {
        let (c, skipped) = TopicConfig::stored(set(&[
            ("retention.ms", "500"),
            ("retention.bytes", "lots"),
            ("future.key", "1"),
        ]));
        assert_eq!(c.retention_ms(&D), Some(500));
        assert_eq!(c.retention_bytes(&D), None);
        assert_eq!(skipped.len(), 2, "{skipped:?}");
        assert_eq!(c.set_keys().len(), 1);
        assert_eq!(c.as_stored().len(), 3);
    }

    #[test]
    fn describe_lists_every_key_with_its_source() {
        let c = TopicConfig::checked(set(&[("retention.ms", "1000")]), &D).unwrap();
        let d = c.describe(&D);
        assert_eq!(d.len(), KEYS.len());
        let ms = d.iter().find(|e| e.name == RETENTION_MS).unwrap();
        assert_eq!((ms.value.as_str(), ms.source), ("1000", Source::Topic));
        let bytes = d.iter().find(|e| e.name == RETENTION_BYTES).unwrap();
        assert_eq!(
            (bytes.value.as_str(), bytes.source),
            ("-1", Source::Default)
        );
    }
}
