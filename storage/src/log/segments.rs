//! Segment files: creating one (with its first allocation and a synced
//! directory), the allocation ahead of writes (see `alloc`), the sealed
//! segments and their subscriber, each partition's range inside a segment,
//! and dropping a shipped segment. Decides nothing about when to seal: that
//! is `roll`.

use std::path::Path;
use std::rc::Rc;

use futures::channel::mpsc;
use glommio::io::{DmaFile, OpenOptions};

use super::alloc;
use super::error::{io_err, LogError};
use super::faults::fault;
use super::segment_set::SegmentFile;
use super::{SealedSegment, SegmentRange, ShardLog};
use crate::segment;

/// Closes a segment's handles (after its creation failed).
pub(super) async fn close_segment(seg: SegmentFile) {
    if let Some(w) = seg.writer {
        if let Ok(w) = Rc::try_unwrap(w) {
            let _ = w.close().await;
        }
    }
    let _ = seg.file.close_rc().await;
}

pub(super) async fn sync_dir(dir: &Path) -> Result<(), LogError> {
    let d = glommio::io::Directory::open(dir)
        .await
        .map_err(io_err(format!("opening {}", dir.display())))?;
    d.sync()
        .await
        .map_err(io_err(format!("syncing {}", dir.display())))?;
    let _ = d.close().await;
    Ok(())
}

/// Bytes an unprivileged writer may still use on the filesystem of `dir`,
/// if the kernel says.
// The statvfs field types differ between platforms.
#[allow(clippy::useless_conversion)]
pub(super) fn free_bytes(dir: &Path) -> Option<u64> {
    use std::os::unix::ffi::OsStrExt;
    let path = std::ffi::CString::new(dir.as_os_str().as_bytes()).ok()?;
    // SAFETY: statvfs writes into the zeroed struct we own; the path is a
    // valid NUL-terminated string.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::statvfs(path.as_ptr(), &mut st) };
    (rc == 0).then(|| u64::from(st.f_bavail).saturating_mul(u64::from(st.f_frsize)))
}

impl ShardLog {
    /// Segments sealed so far, oldest first.
    pub fn sealed_segments(&self) -> Vec<SealedSegment> {
        self.inner.state.borrow().segments.sealed_list().to_vec()
    }

    /// Sealed segments from now on, starting with those sealed already (and
    /// not yet dropped). One subscriber at a time; a new call replaces it.
    pub fn subscribe_sealed(&self) -> mpsc::UnboundedReceiver<SealedSegment> {
        self.inner.state.borrow_mut().segments.subscribe()
    }

    /// Each partition's range inside segment `id` (from the in-memory
    /// index), ordered by topic and partition.
    pub fn segment_ranges(&self, id: u64) -> Vec<SegmentRange> {
        let st = self.inner.state.borrow();
        let mut out = Vec::new();
        for (topic, parts) in st.partitions.topics() {
            let frame_head = (segment::FRAME_FIXED + topic.len()) as u64;
            for (partition, p) in parts {
                let mut it = p.index.in_segment(id);
                let Some(first) = it.next() else { continue };
                let (mut last, mut max_timestamp) = (first, first.max_timestamp);
                let mut bytes = frame_head + u64::from(first.len);
                for e in it {
                    last = e;
                    max_timestamp = max_timestamp.max(e.max_timestamp);
                    bytes += frame_head + u64::from(e.len);
                }
                let pos = first.pos - frame_head;
                out.push(SegmentRange {
                    topic: topic.clone(),
                    partition: *partition,
                    base_offset: first.base_offset,
                    end_offset: last.next_offset,
                    pos,
                    len: last.pos + u64::from(last.len) - pos,
                    bytes,
                    max_timestamp,
                });
            }
        }
        out.sort_by(|a, b| (&a.topic, a.partition).cmp(&(&b.topic, b.partition)));
        out
    }

    /// Removes sealed segment `id` (its data now lives elsewhere): forgets
    /// its batches, moves each partition's local start past them and deletes
    /// the file. Reads below the local start get `OffsetOutOfRange`.
    pub fn drop_segment(&self, id: u64) -> Result<(), LogError> {
        let path = {
            let mut st = self.inner.state.borrow_mut();
            let forgotten = st.segments.forget(id).map_err(|()| LogError::Io {
                context: format!("dropping segment {id}"),
                message: "the segment is not sealed".into(),
            })?;
            for p in st.partitions.each_mut() {
                p.index.drop_through_segment(id);
                // With nothing durable left here, the local log starts
                // at the high watermark: batches past it are appended
                // but not yet durable (not indexed yet) and will be
                // read from here, not from object storage.
                p.log_start = p.index.first_offset().unwrap_or(p.high_watermark);
            }
            forgotten
        };
        if let Some((path, last)) = path {
            if last {
                // No active segment file exists (it could not be created):
                // the file stays, emptied, so the next segment id is never
                // used again (a new segment would be taken for the chunk
                // this one became). Emptying needs no free space.
                return std::fs::OpenOptions::new()
                    .write(true)
                    .open(&path)
                    .and_then(|f| f.set_len(0))
                    .map_err(|e| LogError::Io {
                        context: format!("emptying {}", path.display()),
                        message: e.to_string(),
                    });
            }
            std::fs::remove_file(&path).map_err(|e| LogError::Io {
                context: format!("removing {}", path.display()),
                message: e.to_string(),
            })?;
        }
        Ok(())
    }

    /// Creates segment `id` and makes it the active one.
    pub(super) async fn create_segment(&self, id: u64) -> Result<(), LogError> {
        let seg = self.open_segment(id).await?;
        self.activate(id, seg);
        Ok(())
    }

    /// Creates the file of segment `id` with its handles, changing nothing
    /// else: on an error the file is removed again, so a later attempt can
    /// create it afresh.
    pub(super) async fn open_segment(&self, id: u64) -> Result<SegmentFile, LogError> {
        let path = segment::segment_path(&self.config().dir, id);
        fault!("wal-create-segment", format!("creating {}", path.display()));
        // Start the file with one zeroed block (a clean end of data to
        // recovery): glommio probes polled-I/O support by reading the first
        // block, and on an empty file that probe cannot tell, which would send
        // later reads to a poll ring this disk does not support.
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .and_then(|mut f| std::io::Write::write_all(&mut f, &[0u8; 4096]))
            .map_err(|e| {
                let _ = std::fs::remove_file(&path);
                LogError::Io {
                    context: format!("creating {}", path.display()),
                    message: e.to_string(),
                }
            })?;
        let opened = match self.open_handles(&path).await {
            Ok(seg) => seg,
            Err(e) => {
                let _ = std::fs::remove_file(&path);
                return Err(e);
            }
        };
        let first = if self.config().preallocate_bytes > 0 {
            alloc::allocate(&opened.file, 0, alloc::STEP).await
        } else {
            Ok(())
        };
        if let Err(e) = first {
            self.count_allocation_failure();
            close_segment(opened).await;
            let _ = std::fs::remove_file(&path);
            return Err(LogError::Io {
                context: format!("allocating {}", path.display()),
                message: e,
            });
        }
        Ok(opened)
    }

    async fn open_handles(&self, path: &Path) -> Result<SegmentFile, LogError> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .dma_open(path)
            .await
            .map_err(io_err(format!("creating {}", path.display())))?;
        let writer = if self.config().direct_io {
            None
        } else {
            let w = OpenOptions::new()
                .write(true)
                .buffered_open(path)
                .await
                .map_err(io_err(format!("opening {} for writing", path.display())));
            match w {
                Ok(w) => Some(Rc::new(w)),
                Err(e) => {
                    let _ = file.close().await;
                    return Err(e);
                }
            }
        };
        let seg = SegmentFile {
            file: Rc::new(file),
            writer,
            path: path.to_path_buf(),
        };
        if let Err(e) = sync_dir(&self.config().dir).await {
            close_segment(seg).await;
            return Err(e);
        }
        Ok(seg)
    }

    pub(super) fn activate(&self, id: u64, seg: SegmentFile) {
        let mut st = self.inner.state.borrow_mut();
        st.segments.activate(id, seg, alloc::STEP);
    }

    pub(super) fn count_allocation_failure(&self) {
        self.inner
            .stats
            .allocation_failures
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    /// Makes sure `[0, end)` of the active segment is allocated before a
    /// write reaches `end`: waits for the allocation in progress, and
    /// allocates what is still missing itself. Then starts allocating the
    /// headroom after `end` in the background if little is left.
    pub(super) async fn allocate_to(&self, file: &Rc<DmaFile>, end: u64) -> Result<(), LogError> {
        let ahead = self.config().preallocate_bytes;
        if ahead == 0 {
            return Ok(());
        }
        if end > self.inner.state.borrow().segments.alloc.allocated {
            self.finish_extending().await;
            let from = self.inner.state.borrow().segments.alloc.allocated;
            if end > from {
                let to = alloc::target(end, ahead);
                if let Err(e) = alloc::allocate(file, from, to).await {
                    self.count_allocation_failure();
                    return Err(LogError::Io {
                        context: "allocating WAL blocks before a write".into(),
                        message: e,
                    });
                }
                self.inner.state.borrow_mut().segments.alloc.allocated = to;
            }
        }
        let mut st = self.inner.state.borrow_mut();
        let a = &mut st.segments.alloc;
        if a.extending.is_none() && alloc::low(a.allocated, end, ahead) {
            let (file, from, to) = (file.clone(), a.allocated, alloc::target(end, ahead));
            a.extending = Some(
                glommio::spawn_local(
                    async move { alloc::allocate(&file, from, to).await.map(|()| to) },
                )
                .detach(),
            );
        }
        Ok(())
    }

    /// Waits for the background allocation of the active segment, if any,
    /// and records how far it got (before a write that needs it, and before
    /// the segment is sealed and truncated).
    pub(super) async fn finish_extending(&self) {
        let pending = self
            .inner
            .state
            .borrow_mut()
            .segments
            .alloc
            .extending
            .take();
        let Some(h) = pending else { return };
        match h.await {
            Some(Ok(to)) => {
                let mut st = self.inner.state.borrow_mut();
                let a = &mut st.segments.alloc;
                a.allocated = a.allocated.max(to);
            }
            Some(Err(e)) => {
                self.count_allocation_failure();
                tracing::warn!(error = %e, "allocating WAL blocks ahead failed");
            }
            None => {}
        }
    }
}
