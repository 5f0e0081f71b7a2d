//! Group commit, alone (as a write barrier): one writer task takes every
//! frame queued (up to `max_flush_bytes`), writes it with one io_uring write
//! (buffered, or DMA with `direct_io`), runs one `fdatasync`, and only then
//! indexes the batches, moves the high watermarks and answers the appends
//! it covered. The next write is issued while that sync runs. A failed
//! write or sync fails the log (`poison`); it must not roll segments
//! itself except through `roll`.

use std::rc::Rc;
use std::time::Instant;

use futures::channel::mpsc;
use futures::StreamExt;
use glommio::io::DmaFile;

use super::alloc;
use super::commit_queue::PendingEntry;
use super::error::{io_err, LogError};
use super::faults::fault;
use super::segment_set::WriteSlot;
use super::ShardLog;
use crate::index::{IndexEntry, OffsetIndex};
use crate::segment;

/// A write issued but not yet synced.
struct Written {
    file: Rc<DmaFile>,
    entries: Vec<PendingEntry>,
    bytes: usize,
    /// Position of the write's first frame in its segment.
    frame_base: u64,
    segment: u64,
    gen: u64,
}

pub(super) fn check_written(written: usize, len: usize) -> Result<(), LogError> {
    if written == len {
        Ok(())
    } else {
        Err(LogError::Io {
            context: "writing the WAL".into(),
            message: format!("short write: {written} of {len} bytes"),
        })
    }
}

/// Waits for the sync in flight, if any.
pub(super) async fn settle(
    syncing: &mut Option<glommio::task::JoinHandle<Result<(), LogError>>>,
) -> Result<(), LogError> {
    match syncing.take() {
        Some(h) => h
            .await
            .unwrap_or_else(|| Err(LogError::Poisoned("the WAL sync task stopped".into()))),
        None => Ok(()),
    }
}

impl ShardLog {
    /// The group-commit loop. Write N+1 is issued while the sync of write N
    /// is still running (the sync only covers writes completed before it
    /// was issued, and N+1 is synced by the next one), so the disk is not
    /// idle between a sync and the next write. Syncs, and so
    /// acknowledgements, stay in write order, and a segment is sealed only
    /// once its last sync finished.
    pub(super) async fn writer(self, mut rx: mpsc::UnboundedReceiver<()>) {
        let mut syncing: Option<glommio::task::JoinHandle<Result<(), LogError>>> = None;
        loop {
            let (idle, closed, age_left) = {
                let st = self.inner.state.borrow();
                let age_left = st.segments.idle_for(self.config(), Instant::now());
                (st.commit.is_empty(), st.closed, age_left)
            };
            if idle {
                // Nothing to overlap with: let the sync in flight finish.
                if let Err(e) = settle(&mut syncing).await {
                    self.poison(e);
                    return;
                }
                if closed {
                    return;
                }
                let woke = match age_left {
                    Some(left) => {
                        futures_lite::future::or(async { Some(rx.next().await.is_some()) }, async {
                            glommio::timer::sleep(left).await;
                            None
                        })
                        .await
                    }
                    None => Some(rx.next().await.is_some()),
                };
                if woke == Some(false) {
                    return;
                }
                if woke.is_none() && self.roll_due(0) {
                    self.roll().await;
                }
                continue;
            }
            let written = match self.write_once(&mut syncing).await {
                Ok(w) => w,
                Err(e) => {
                    let _ = settle(&mut syncing).await;
                    self.poison(e);
                    return;
                }
            };
            if let Err(e) = settle(&mut syncing).await {
                self.poison(e);
                return;
            }
            let log = self.clone();
            syncing =
                Some(glommio::spawn_local(async move { log.sync_once(written).await }).detach());
        }
    }

    /// Takes queued frames (up to `max_flush_bytes`) and writes them (not
    /// yet synced). Rolls the segment first when due, after `syncing`
    /// finished (a sealed segment is shipped at once, so it must be synced).
    async fn write_once(
        &self,
        syncing: &mut Option<glommio::task::JoinHandle<Result<(), LogError>>>,
    ) -> Result<Written, LogError> {
        let (mut data, entries) = self
            .inner
            .state
            .borrow_mut()
            .commit
            .take(self.config().max_flush_bytes);
        if self.roll_due(data.len()) {
            settle(syncing).await?;
            self.roll().await;
        }
        let Some(WriteSlot {
            file,
            writer,
            write_pos,
            frame_base,
            gen,
            segment: active,
        }) = self
            .inner
            .state
            .borrow_mut()
            .segments
            .next_write(Instant::now())
        else {
            return Err(LogError::Poisoned("active segment missing".into()));
        };
        for e in &entries {
            segment::seal_frame_header(&mut data[e.start..e.start + e.len], gen);
        }
        let bytes = data.len();
        // Where this write ends: O_DIRECT rewrites the previous partial
        // block and pads its own last block.
        let end = if writer.is_some() {
            write_pos + bytes as u64
        } else {
            let align = file.alignment();
            let total = (self.inner.state.borrow().segments.tail_len() + bytes) as u64;
            write_pos + total.div_ceil(align) * align
        };
        self.allocate_to(&file, end).await?;
        fault!(
            "wal-write",
            format!("writing segment {active} (write {gen})")
        );
        #[cfg(feature = "failpoints")]
        crate::sim::wrote(
            &segment::segment_path(&self.config().dir, active),
            frame_base + bytes as u64,
        );
        match &writer {
            // Buffered: the frames as they are, right after the last write.
            Some(w) => {
                let written = w
                    .write_at(data, write_pos)
                    .await
                    .map_err(io_err("writing the WAL"))?;
                check_written(written, bytes)?;
            }
            // O_DIRECT: whole blocks. The write starts with the partial last
            // block of the previous one (the same bytes again), and its own
            // partial last block is kept as the next write's start.
            // The frames are copied once, straight into the aligned buffer.
            None => {
                let align = file.alignment() as usize;
                let tail = self.inner.state.borrow_mut().segments.take_tail();
                let total = tail.len() + data.len();
                let mut buf = file.alloc_dma_buffer(total.div_ceil(align) * align);
                let out = buf.as_bytes_mut();
                out[..tail.len()].copy_from_slice(&tail);
                out[tail.len()..total].copy_from_slice(&data);
                out[total..].fill(0);
                let keep = total % align;
                let next_tail = out[total - keep..total].to_vec();
                let len = buf.len();
                let written = file
                    .write_at(buf, write_pos)
                    .await
                    .map_err(io_err("writing the WAL"))?;
                check_written(written, len)?;
                self.inner.state.borrow_mut().segments.set_tail(next_tail);
            }
        }
        self.inner.state.borrow_mut().segments.wrote(bytes as u64);
        Ok(Written {
            file,
            entries,
            bytes,
            frame_base,
            segment: active,
            gen,
        })
    }

    /// Syncs one write, then publishes it: indexes its batches, moves the
    /// high watermarks and answers the appends it made durable.
    async fn sync_once(&self, w: Written) -> Result<(), LogError> {
        let synced = Instant::now();
        fault!(
            "wal-sync",
            format!("syncing segment {} (write {})", w.segment, w.gen)
        );
        // `fdatasync` covers the file, whichever descriptor wrote to it.
        w.file
            .fdatasync()
            .await
            .map_err(io_err("syncing the WAL"))?;
        #[cfg(feature = "failpoints")]
        crate::sim::synced(
            &segment::segment_path(&self.config().dir, w.segment),
            w.frame_base + w.bytes as u64,
        );
        // A sync that reports success while the blocks the write went to
        // are not written extents (a failed unwritten-extent conversion)
        // must not acknowledge it: those bytes read back as zeros.
        if let Err(e) = alloc::check_written(&w.file, w.frame_base, w.frame_base + w.bytes as u64) {
            self.count_allocation_failure();
            return Err(LogError::Io {
                context: "checking the WAL's blocks after a sync".into(),
                message: e,
            });
        }
        {
            use std::sync::atomic::Ordering::Relaxed;
            let s = &self.inner.stats;
            s.fsync_us.observe(synced.elapsed().as_micros() as u64);
            s.commit_batches.observe(w.entries.len() as u64);
            s.wal_bytes.fetch_add(w.bytes as u64, Relaxed);
        }
        tracing::trace!(
            gen = w.gen,
            bytes = w.bytes,
            batches = w.entries.len(),
            "group commit"
        );
        let mut st = self.inner.state.borrow_mut();
        for e in &w.entries {
            if let Some(p) = st.partitions.find_mut(&e.topic, e.partition) {
                if e.record_count == 0 {
                    // A restart frame: what completed before it (appends
                    // in flight when the lease changed) is forgotten.
                    p.index = OffsetIndex::default();
                    p.log_start = e.base_offset;
                    p.high_watermark = e.base_offset;
                    continue;
                }
                let next = e.base_offset + u64::from(e.record_count);
                p.index.push(IndexEntry {
                    base_offset: e.base_offset,
                    next_offset: next,
                    segment: w.segment,
                    pos: w.frame_base + (e.start + e.batch_offset) as u64,
                    len: (e.len - e.batch_offset) as u32,
                    max_timestamp: e.max_timestamp,
                });
                p.high_watermark = next;
                let woken = p.wake_data_waiters();
                self.waiters_changed(-(woken as i64));
            }
        }
        st.commit.made_durable(w.bytes as u64, w.segment);
        Ok(())
    }

    fn poison(&self, e: LogError) {
        tracing::error!(error = %e, dir = %self.config().dir.display(), "WAL failed; refusing further appends");
        self.inner
            .stats
            .set_trouble(Some(format!("the WAL failed: {e}")));
        let mut st = self.inner.state.borrow_mut();
        st.poisoned = Some(e.to_string());
        st.commit.fail(&e);
    }
}
