//! The text forms of the metadata store's list columns: a producer's
//! remembered batches (`producer_state.batches`), an agent's failed shards
//! (`agents.failed_shards`), its shard addresses (`agents.addresses`) and
//! a topic's configuration (`topics.config`).
//! Rows any process with database access could have written are read back
//! through here, so nothing in it may panic on any text.
//!
//! Pure: it uses std and `streamhouse_storage` only and must stay so, because
//! the fuzz crate compiles this file on its own (`fuzz/src/targets/
//! metastore_text.rs`) without building the agent.

use std::collections::BTreeMap;
use std::fmt;

use streamhouse_storage::batch::ProducerInfo;
use streamhouse_storage::producers::RememberedBatch;

/// A `producer_state.batches` entry that is not `epoch:seq:count:offset`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadEntry(pub String);

impl fmt::Display for BadEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "bad producer state entry {:?}", self.0)
    }
}

impl std::error::Error for BadEntry {}

/// Splits stored shard addresses (comma-separated); empty items are left
/// out.
pub fn split_addresses(s: &str) -> Vec<String> {
    s.split(',')
        .filter(|a| !a.is_empty())
        .map(str::to_owned)
        .collect()
}

/// `failed_shards` as stored: shard numbers joined by commas.
pub fn encode_shards(shards: &[usize]) -> String {
    shards
        .iter()
        .map(usize::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

/// The stored form back; anything unreadable is left out.
pub fn decode_shards(text: &str) -> Vec<usize> {
    text.split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect()
}

/// One range's producer batches grouped per producer id, each group in the
/// text form stored in `producer_state.batches`:
/// `epoch:base_sequence:record_count:base_offset` entries joined by commas,
/// in the order given (restoring sorts them).
pub fn encode_producers(batches: &[RememberedBatch]) -> BTreeMap<i64, String> {
    let mut out: BTreeMap<i64, String> = BTreeMap::new();
    for b in batches {
        let s = out.entry(b.producer.producer_id).or_default();
        if !s.is_empty() {
            s.push(',');
        }
        s.push_str(&format!(
            "{}:{}:{}:{}",
            b.producer.producer_epoch, b.producer.base_sequence, b.record_count, b.base_offset
        ));
    }
    out
}

/// Parses one `producer_state.batches` value of `producer_id` back; the
/// first malformed entry is the error.
pub fn decode_producers(producer_id: i64, text: &str) -> Result<Vec<RememberedBatch>, BadEntry> {
    text.split(',')
        .filter(|e| !e.is_empty())
        .map(|e| {
            let bad = || BadEntry(e.to_string());
            let f: Vec<&str> = e.split(':').collect();
            let [epoch, seq, count, offset] = f.as_slice() else {
                return Err(bad());
            };
            Ok(RememberedBatch {
                producer: ProducerInfo {
                    producer_id,
                    producer_epoch: epoch.parse().map_err(|_| bad())?,
                    base_sequence: seq.parse().map_err(|_| bad())?,
                },
                record_count: count.parse().map_err(|_| bad())?,
                base_offset: offset.parse().map_err(|_| bad())?,
            })
        })
        .collect()
}

/// A topic's configuration as stored in `topics.config`: `key=value`
/// lines in key order. Keys and values never hold `=` or a line break
/// (the agent checks them before storing).
pub fn encode_config(config: &BTreeMap<String, String>) -> String {
    config
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The stored form back; lines without `=` are left out (empty keys too).
pub fn decode_config(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter_map(|l| l.split_once('='))
        .filter(|(k, _)| !k.is_empty())
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn producer_state_round_trips_and_bad_entries_are_named() {
        let text = "3:10:5:100,3:15:2:105";
        let batches = decode_producers(7, text).expect("valid text");
        assert_eq!(batches.len(), 2);
        assert_eq!(batches[1].producer.base_sequence, 15);
        assert_eq!(
            encode_producers(&batches).get(&7).map(String::as_str),
            Some(text)
        );
        let e = decode_producers(7, "3:10:5:100,3:x:2:105").expect_err("malformed");
        assert_eq!(e.to_string(), "bad producer state entry \"3:x:2:105\"");
        assert!(decode_producers(7, "1:2:3").is_err());
    }

    #[test]
    fn lists_skip_what_they_cannot_read() {
        assert_eq!(decode_shards(&encode_shards(&[0, 3])), vec![0, 3]);
        assert_eq!(decode_shards("1,x, 2,"), vec![1, 2]);
        assert_eq!(split_addresses("a:1,,b:2"), vec!["a:1", "b:2"]);
    }

    #[test]
    fn a_topic_config_round_trips_and_skips_lines_without_a_key() {
        let c: BTreeMap<String, String> = [("retention.ms", "1000"), ("cleanup.policy", "delete")]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        assert_eq!(decode_config(&encode_config(&c)), c);
        assert_eq!(decode_config(""), BTreeMap::new());
        assert_eq!(
            decode_config("junk\n=1\na=b=c")
                .get("a")
                .map(String::as_str),
            Some("b=c")
        );
        assert_eq!(decode_config("junk\n=1\na=b=c").len(), 1);
    }
}
