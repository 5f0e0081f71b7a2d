//! `streamctl produce`: records from stdin, as bytes, split at a delimiter,
//! with optional keys and headers, or each record's own key, partition,
//! timestamp and headers read by a format (`-f`, [`crate::input_format`]). Nothing read is ever dropped: on any
//! error, every record read before it is acknowledged or reported failed,
//! and the exit status says so.

use std::collections::{BTreeMap, VecDeque};
use std::io::{BufRead, Write};

use streamhouse_client::{Acks, Codec, ProducerRecord, SendFuture};

use crate::args::{AckArg, CompressionArg, ProduceArgs};
use crate::format::{find, unescape};
use crate::input_format::InputFormat;
use crate::target::Target;
use crate::Failure;

/// Records awaited at most at once: the oldest is awaited before more are
/// read (the producer's own buffer bounds memory too).
const WINDOW: usize = 10_000;

/// Reads the next record ending in `delim` (the delimiter is dropped); the
/// last record may lack it. `None` at the end of input.
fn next_record(input: &mut impl BufRead, delim: &[u8]) -> std::io::Result<Option<Vec<u8>>> {
    let Some(&last) = delim.last() else {
        return Ok(None);
    };
    let mut buf = Vec::new();
    loop {
        let n = input.read_until(last, &mut buf)?;
        if n == 0 {
            return Ok((!buf.is_empty()).then_some(buf));
        }
        if buf.ends_with(delim) {
            buf.truncate(buf.len() - delim.len());
            return Ok(Some(buf));
        }
        if buf.last() != Some(&last) {
            // End of input without a delimiter.
            return Ok(Some(buf));
        }
    }
}

/// What the acknowledgements said.
#[derive(Default)]
struct Tally {
    last: BTreeMap<u32, u64>,
    acked: u64,
    failed: u64,
    first_error: Option<streamhouse_client::Error>,
}

impl Tally {
    async fn settle(&mut self, f: SendFuture) {
        match f.await {
            Ok(m) => {
                self.acked += 1;
                let e = self.last.entry(m.partition).or_insert(m.offset);
                *e = (*e).max(m.offset);
            }
            Err(e) => {
                self.failed += 1;
                self.first_error.get_or_insert(e);
            }
        }
    }
}

/// Runs `produce`.
///
/// # Cancellation
/// The command runs to its end; it is not cancelled.
pub async fn run(target: &Target, a: ProduceArgs, out: &mut impl Write) -> Result<(), Failure> {
    let topic = a.topic.name().to_owned();
    let delim = unescape(&a.delimiter);
    if delim.is_empty() {
        return Err(Failure::Usage("the record delimiter (-D) is empty".into()));
    }
    let key_delim = a.key_delimiter.as_deref().map(unescape);
    if key_delim.as_ref().is_some_and(|d| d.is_empty()) {
        return Err(Failure::Usage("the key delimiter (-K) is empty".into()));
    }
    let format = a
        .format
        .as_deref()
        .map(InputFormat::parse)
        .transpose()
        .map_err(Failure::Usage)?;
    if a.partition.is_some() && format.as_ref().is_some_and(InputFormat::has_partition) {
        return Err(Failure::Usage(
            "-p and a format with %p both give the partition; use one".into(),
        ));
    }
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let producer = target
        .producer()
        .acks(match a.acks {
            AckArg::Durable => Acks::Durable,
            AckArg::Object => Acks::Object,
        })
        .compression(match a.compression {
            CompressionArg::None => Codec::None,
            CompressionArg::Lz4 => Codec::Lz4,
            CompressionArg::Zstd => Codec::Zstd,
        })
        .build()
        .await?;
    let n = producer.partitions(&topic).await?;
    if let Some(p) = a.partition {
        if p >= n {
            return Err(Failure::Failed(format!(
                "topic {topic} has {n} partitions; partition {p} does not exist"
            )));
        }
    }
    let headers: Vec<(String, bytes::Bytes)> = a
        .headers
        .iter()
        .map(|(k, v)| (k.clone(), bytes::Bytes::from(v.clone())))
        .collect();
    let mut input = std::io::stdin().lock();
    let mut pending = VecDeque::new();
    let mut tally = Tally::default();
    let mut read = 0u64;
    let read_error = loop {
        let bytes = match next_record(&mut input, &delim) {
            Ok(Some(b)) => b,
            Ok(None) => break None,
            Err(e) => break Some(e),
        };
        read += 1;
        let mut r = match &format {
            Some(f) => match f.read(&bytes, now_ms) {
                Ok(fields) => match from_fields(&topic, fields, n) {
                    Ok(r) => r,
                    Err(e) => break Some(bad_record(read, e)),
                },
                Err(e) => break Some(bad_record(read, e)),
            },
            None => plain(&topic, bytes, key_delim.as_deref(), a.key.as_deref()),
        };
        if let Some(p) = a.partition {
            r = r.partition(p);
        }
        for (k, v) in &headers {
            r = r.header(k.clone(), v.clone());
        }
        pending.push_back(producer.send(r));
        if pending.len() >= WINDOW {
            if let Some(f) = pending.pop_front() {
                tally.settle(f).await;
            }
        }
    };
    for f in pending {
        tally.settle(f).await;
    }
    producer.close().await?;
    for (p, o) in &tally.last {
        writeln!(out, "partition {p}: last offset {o}")?;
    }
    let mut problems = Vec::new();
    if let Some(e) = read_error {
        // A record the format could not read is counted in `read`; a failed
        // read of stdin is not a record.
        problems.push(if e.kind() == std::io::ErrorKind::InvalidData {
            format!(
                "{e}; the {} records before it: {} acknowledged, {} failed",
                read - 1,
                tally.acked,
                tally.failed
            )
        } else {
            format!(
                "reading stdin failed after {read} records: {e}; those {read} records: {} \
                 acknowledged, {} failed",
                tally.acked, tally.failed
            )
        });
    }
    if let Some(e) = tally.first_error {
        problems.push(format!("{} of {read} records failed: {e}", tally.failed));
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(Failure::Failed(problems.join("; ")))
    }
}

/// A record without a format: the bytes are the value; the key is split
/// off at `key_delim` or is `key` for every record.
fn plain(
    topic: &str,
    bytes: Vec<u8>,
    key_delim: Option<&[u8]>,
    key: Option<&str>,
) -> ProducerRecord {
    let (key, value) = match key_delim {
        Some(d) => match find(&bytes, d) {
            Some(i) => (Some(bytes[..i].to_vec()), bytes[i + d.len()..].to_vec()),
            None => (None, bytes),
        },
        None => (key.map(|k| k.as_bytes().to_vec()), bytes),
    };
    let mut r = ProducerRecord::new(topic.to_owned(), value);
    if let Some(k) = key {
        r = r.key(k);
    }
    r
}

/// A record from the fields a format read; its partition must exist
/// (`partitions` of them).
fn from_fields(
    topic: &str,
    f: crate::input_format::Fields,
    partitions: u32,
) -> Result<ProducerRecord, String> {
    let mut r = ProducerRecord::new(topic.to_owned(), f.value);
    if let Some(k) = f.key {
        r = r.key(k);
    }
    if let Some(p) = f.partition {
        if p >= partitions {
            return Err(format!(
                "topic {topic} has {partitions} partitions; partition {p} does not exist"
            ));
        }
        r = r.partition(p);
    }
    if let Some(t) = f.timestamp {
        r = r.timestamp(t);
    }
    for (k, v) in f.headers {
        r = r.header(k, v);
    }
    Ok(r)
}

/// Input record `n` (from 1) that the format could not read.
fn bad_record(n: u64, why: String) -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::InvalidData,
        format!("record {n} does not match the format: {why}"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(input: &[u8], delim: &[u8]) -> Vec<Vec<u8>> {
        let mut r = std::io::Cursor::new(input.to_vec());
        let mut out = Vec::new();
        while let Some(rec) = next_record(&mut r, delim).unwrap() {
            out.push(rec);
        }
        out
    }

    #[test]
    fn records_split_at_the_delimiter_as_bytes() {
        assert_eq!(
            split(b"a\n\xff\xfe\n\nc", b"\n"),
            vec![b"a".to_vec(), b"\xff\xfe".to_vec(), vec![], b"c".to_vec()]
        );
        assert_eq!(
            split(b"a||b|c||", b"||"),
            vec![b"a".to_vec(), b"b|c".to_vec()]
        );
        assert_eq!(split(b"", b"\n"), Vec::<Vec<u8>>::new());
        assert_eq!(split(b"x|", b"||"), vec![b"x|".to_vec()]);
    }
}
