//! `streamctl produce`: records from stdin, as bytes, split at a delimiter,
//! with optional keys and headers. Nothing read is ever dropped: on any
//! error, every record read before it is acknowledged or reported failed,
//! and the exit status says so.

use std::collections::{BTreeMap, VecDeque};
use std::io::{BufRead, Write};

use streamhouse_client::{Acks, Codec, Producer, ProducerRecord, SendFuture};

use crate::args::{AckArg, CompressionArg, ProduceArgs};
use crate::format::unescape;
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
pub async fn run(
    bootstrap: Vec<String>,
    a: ProduceArgs,
    out: &mut impl Write,
) -> Result<(), Failure> {
    let topic = a.topic.name().to_owned();
    let delim = unescape(&a.delimiter);
    if delim.is_empty() {
        return Err(Failure::Usage("the record delimiter (-D) is empty".into()));
    }
    let key_delim = a.key_delimiter.as_deref().map(unescape);
    if key_delim.as_ref().is_some_and(|d| d.is_empty()) {
        return Err(Failure::Usage("the key delimiter (-K) is empty".into()));
    }
    let producer = Producer::builder(bootstrap)
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
        let (key, value) = match &key_delim {
            Some(d) => match bytes.windows(d.len()).position(|w| w == d.as_slice()) {
                Some(i) => (Some(bytes[..i].to_vec()), bytes[i + d.len()..].to_vec()),
                None => (None, bytes),
            },
            None => (a.key.as_ref().map(|k| k.clone().into_bytes()), bytes),
        };
        let mut r = ProducerRecord::new(topic.clone(), value);
        if let Some(p) = a.partition {
            r = r.partition(p);
        }
        if let Some(k) = key {
            r = r.key(k);
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
        problems.push(format!(
            "reading stdin failed after {read} records: {e}; those {read} records: {} \
             acknowledged, {} failed",
            tally.acked, tally.failed
        ));
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
