//! Reads: durable records of a partition from its segments through the
//! offset index (every batch verified again), and waiting for data past an
//! offset (long-poll fetches). Never writes.

use std::path::PathBuf;
use std::rc::Rc;
use std::time::Duration;

use bytes::Bytes;
use futures::channel::oneshot;
use glommio::io::DmaFile;

use super::error::{io_err, LogError};
use super::partition::unknown;
use super::{ReadResult, ShardLog};
use crate::batch::{self, DecodedRecord};
use crate::index::IndexEntry;
use crate::segment::Corruption;

/// Removes the entries of data waiters that ended without an append
/// waking them (timed out, or their fetch was dropped).
struct ForgetWaiter<'a> {
    log: &'a ShardLog,
    topic: &'a str,
    partition: u32,
}

impl Drop for ForgetWaiter<'_> {
    fn drop(&mut self) {
        let Ok(mut st) = self.log.inner.state.try_borrow_mut() else {
            return;
        };
        if let Some(p) = st.partitions.find_mut(self.topic, self.partition) {
            let before = p.data_waiters.len();
            p.data_waiters.retain(|w| !w.is_canceled());
            let removed = before - p.data_waiters.len();
            drop(st);
            self.log.waiters_changed(-(removed as i64));
        }
    }
}

impl ShardLog {
    /// Reads records of a partition starting at `offset`, whole batches
    /// whose records decoded take at most `max_bytes`
    /// (`BatchHeader::decoded_bytes`), and always the first batch when any
    /// is available. Only durable records are returned. An offset at or
    /// past the high watermark gives an empty result; one before the log
    /// start is `OffsetOutOfRange`.
    pub async fn read(
        &self,
        topic: &str,
        partition: u32,
        offset: u64,
        max_bytes: usize,
    ) -> Result<ReadResult, LogError> {
        self.read_bounded(topic, partition, offset, max_bytes, usize::MAX)
            .await
    }

    /// Like [`read`](Self::read), except that a first batch whose records
    /// decoded take more than `first_batch_limit` bytes is not decoded:
    /// the result is empty and `first_batch_needs` says how much it takes.
    /// Only durable records are returned. An offset at or past the high
    /// watermark gives an empty result; one before the log start is
    /// `OffsetOutOfRange`.
    pub async fn read_bounded(
        &self,
        topic: &str,
        partition: u32,
        offset: u64,
        max_bytes: usize,
        first_batch_limit: usize,
    ) -> Result<ReadResult, LogError> {
        let (runs, hw, log_start) = {
            let st = self.inner.state.borrow();
            let p = st
                .partitions
                .find(topic, partition)
                .ok_or_else(|| unknown(topic, partition))?;
            if offset < p.log_start {
                return Err(LogError::OffsetOutOfRange {
                    offset,
                    log_start: p.log_start,
                });
            }
            let entries = p.index.from_offset(offset, max_bytes);
            let mut runs: Vec<(Rc<DmaFile>, PathBuf, Vec<IndexEntry>)> = Vec::new();
            for e in entries {
                let extend = runs.last().is_some_and(|(_, _, r)| {
                    let last = r[r.len() - 1];
                    last.segment == e.segment
                        && e.pos >= last.pos
                        && e.pos - (last.pos + u64::from(last.len)) <= 64 << 10
                });
                if extend {
                    if let Some(r) = runs.last_mut() {
                        r.2.push(e);
                    }
                } else {
                    let Some(seg) = st.segments.file(e.segment) else {
                        return Err(LogError::Io {
                            context: format!("reading {topic}/{partition}"),
                            message: format!("segment {} is gone", e.segment),
                        });
                    };
                    runs.push((seg.file.clone(), seg.path.clone(), vec![e]));
                }
            }
            (runs, p.high_watermark, p.log_start)
        };
        let mut records = Vec::new();
        // Bytes of records decoded so far: `max_bytes` bounds the response
        // after decompression, not only the stored (compressed) bytes.
        let mut inflated = 0usize;
        'runs: for (file, path, entries) in runs {
            let first = entries[0].pos;
            let last = entries[entries.len() - 1];
            let span = (last.pos + u64::from(last.len) - first) as usize;
            let data = file
                .read_at(first, span)
                .await
                .map_err(io_err(format!("reading {}", path.display())))?;
            let data = Bytes::copy_from_slice(&data);
            for e in entries {
                let at = (e.pos - first) as usize;
                let end = at + e.len as usize;
                let corrupt = |reason: String| {
                    LogError::Corrupt(Corruption {
                        file: path.clone(),
                        position: e.pos,
                        reason,
                    })
                };
                let checked = if end > data.len() {
                    Err(corrupt(format!(
                        "batch of {topic}/{partition} at offset {} is cut short",
                        e.base_offset
                    )))
                } else {
                    let b = data.slice(at..end);
                    match batch::validate(&b) {
                        Err(err) => Err(corrupt(format!(
                            "batch of {topic}/{partition} at offset {}: {err}",
                            e.base_offset
                        ))),
                        Ok(h) if h.base_offset != e.base_offset => Err(corrupt(format!(
                            "batch base offset {} where the index says {}",
                            h.base_offset, e.base_offset
                        ))),
                        Ok(h) => Ok((b, h)),
                    }
                };
                // A bad batch ends the read: what came before it is
                // answered, and the next read starting at it gets the error.
                let (b, h) = match checked {
                    Ok(v) => v,
                    Err(_) if !records.is_empty() => break 'runs,
                    Err(err) => return Err(err),
                };
                if records.is_empty() && h.decoded_bytes() > first_batch_limit {
                    // Not decoded: the caller decides whether it can hold
                    // a batch this large.
                    return Ok(ReadResult {
                        records,
                        high_watermark: hw,
                        log_start,
                        first_batch_needs: Some(h.decoded_bytes()),
                    });
                }
                if !records.is_empty() && inflated + h.decoded_bytes() > max_bytes {
                    break 'runs;
                }
                let recs = match batch::decode(&b) {
                    Ok((_, recs)) => recs,
                    Err(_) if !records.is_empty() => break 'runs,
                    Err(err) => {
                        return Err(LogError::Undecodable {
                            topic: topic.to_owned(),
                            partition,
                            offset: e.base_offset,
                            next_offset: e.next_offset,
                            reason: err.to_string(),
                        })
                    }
                };
                inflated += h.decoded_bytes();
                let wanted = |r: &DecodedRecord| r.offset >= offset && r.offset < hw;
                if records.is_empty() {
                    // The first batch's vector becomes the answer's: no
                    // second copy of a batch that may hold a million.
                    records = recs;
                    records.retain(wanted);
                } else {
                    records.extend(recs.into_iter().filter(wanted));
                }
            }
        }
        Ok(ReadResult {
            records,
            high_watermark: hw,
            log_start,
            first_batch_needs: None,
        })
    }

    /// Waits until the partition's high watermark passes `offset`, or
    /// `timeout` elapses, or the partition is removed.
    pub async fn wait_for_data(&self, topic: &str, partition: u32, offset: u64, timeout: Duration) {
        let rx = {
            let mut st = self.inner.state.borrow_mut();
            let Some(p) = st.partitions.find_mut(topic, partition) else {
                return;
            };
            if p.high_watermark > offset {
                return;
            }
            let (tx, rx) = oneshot::channel();
            p.data_waiters.push(tx);
            self.waiters_changed(1);
            rx
        };
        // However the wait ends (data, timeout, or the caller dropping this
        // future), the guard removes its entry if no append took it.
        let _forget = ForgetWaiter {
            log: self,
            topic,
            partition,
        };
        futures_lite::future::or(
            async {
                let _ = rx.await;
            },
            glommio::timer::sleep(timeout),
        )
        .await;
    }

    /// Adjusts the gauge of registered data waiters.
    pub(super) fn waiters_changed(&self, delta: i64) {
        use std::sync::atomic::Ordering::Relaxed;
        let g = &self.inner.stats.fetch_waiters;
        if delta >= 0 {
            g.fetch_add(delta as u64, Relaxed);
        } else {
            g.fetch_sub(delta.unsigned_abs(), Relaxed);
        }
    }
}
