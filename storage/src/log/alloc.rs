//! Whether the WAL's blocks are really on disk, and their allocation ahead
//! of writes. A batch is acknowledged after `fdatasync`; if the blocks it
//! was written to were allocated by that same write, the sync also has to
//! record the allocation (on ext4: convert unwritten extents), and when the
//! disk under the filesystem fails there the kernel may report the sync as
//! successful while the extents stay unwritten, so the acknowledged batch
//! would read back as zeros. So after every sync, before the acknowledgement,
//! [`check_written`] asks `FIEMAP` whether the write's range is written
//! extents; if not, the write fails and is never acknowledged. With
//! `LogConfig::preallocate_bytes` on, ranges are also filled with zeros,
//! synced and checked ahead of the writes ([`allocate`]), so batches only
//! overwrite blocks that exist. Owns nothing but those zero writes; must not
//! touch bytes below the range it is given.

use std::os::fd::AsRawFd;

use glommio::io::DmaFile;

/// Allocation granule: ranges are allocated in whole MiB.
pub(super) const STEP: u64 = 1 << 20;

/// Where allocation should reach once a segment's writes end at `end`:
/// `end` plus a headroom that grows with the segment (a segment that fills
/// slowly and is sealed by age allocates little), at least one [`STEP`] and
/// at most `max_ahead`, rounded up to a whole [`STEP`].
pub(super) fn target(end: u64, max_ahead: u64) -> u64 {
    let ahead = end.clamp(STEP, max_ahead.max(STEP));
    (end + ahead).div_ceil(STEP) * STEP
}

/// Whether allocation ending at `allocated` should grow now that writes end
/// at `end`: less than half the headroom [`target`] wants is left.
pub(super) fn low(allocated: u64, end: u64, max_ahead: u64) -> bool {
    let want = target(end, max_ahead) - end;
    allocated < end + want / 2
}

/// Fills `[from, to)` of `file` with zeros, syncs it, and checks that the
/// range is backed by written extents. `from` and `to` are multiples of
/// [`STEP`]. On an error the range must be treated as not allocated.
pub(super) async fn allocate(file: &DmaFile, from: u64, to: u64) -> Result<(), String> {
    let mut pos = from;
    while pos < to {
        let len = (to - pos).min(STEP) as usize;
        let mut buf = file.alloc_dma_buffer(len);
        buf.as_bytes_mut().fill(0);
        let written = file
            .write_at(buf, pos)
            .await
            .map_err(|e| format!("writing zeros at {pos}: {e}"))?;
        if written != len {
            return Err(format!("short write of zeros at {pos}: {written} of {len}"));
        }
        pos += len as u64;
    }
    file.fdatasync()
        .await
        .map_err(|e| format!("syncing allocated blocks: {e}"))?;
    check_written(file, from, to)
}

/// `FIEMAP` extent flags that mean the range is not (yet) plain written
/// data on disk.
const NOT_WRITTEN: u32 = 0x2 /* UNKNOWN */ | 0x4 /* DELALLOC */ | 0x800 /* UNWRITTEN */;
const FIEMAP_EXTENT_LAST: u32 = 0x1;
const FS_IOC_FIEMAP: libc::c_ulong = 0xC020_660B;
const EXTENTS: usize = 32;

#[repr(C)]
#[derive(Clone, Copy, Default)]
struct FiemapExtent {
    logical: u64,
    physical: u64,
    length: u64,
    reserved64: [u64; 2],
    flags: u32,
    reserved: [u32; 3],
}

#[repr(C)]
struct Fiemap {
    start: u64,
    length: u64,
    flags: u32,
    mapped_extents: u32,
    extent_count: u32,
    reserved: u32,
    extents: [FiemapExtent; EXTENTS],
}

/// Checks with `FIEMAP` that every byte of `[from, to)` lies in a written
/// extent. A filesystem without `FIEMAP` passes (nothing to check with).
pub(super) fn check_written(file: &DmaFile, from: u64, to: u64) -> Result<(), String> {
    let mut covered = from;
    while covered < to {
        let mut map = Fiemap {
            start: covered,
            length: to - covered,
            flags: 0,
            mapped_extents: 0,
            extent_count: EXTENTS as u32,
            reserved: 0,
            extents: [FiemapExtent::default(); EXTENTS],
        };
        // SAFETY: FS_IOC_FIEMAP reads and writes the `Fiemap` we own, whose
        // layout is the kernel's `struct fiemap` followed by room for
        // `extent_count` extents.
        let rc = unsafe { libc::ioctl(file.as_raw_fd(), FS_IOC_FIEMAP as _, &mut map) };
        if rc != 0 {
            let e = std::io::Error::last_os_error();
            return match e.raw_os_error() {
                Some(libc::EOPNOTSUPP) | Some(libc::ENOTTY) => Ok(()),
                _ => Err(format!("mapping allocated blocks: {e}")),
            };
        }
        let n = (map.mapped_extents as usize).min(EXTENTS);
        if n == 0 {
            return Err(format!(
                "bytes {covered}..{to} have no blocks after syncing"
            ));
        }
        for x in &map.extents[..n] {
            if x.logical > covered {
                return Err(format!(
                    "bytes {covered}..{} have no blocks after syncing",
                    x.logical
                ));
            }
            if x.flags & NOT_WRITTEN != 0 {
                return Err(format!(
                    "bytes {}..{} are not written extents after syncing (flags {:#x}): the \
                     disk did not take the allocation",
                    x.logical,
                    x.logical + x.length,
                    x.flags
                ));
            }
            covered = covered.max(x.logical + x.length);
            if x.flags & FIEMAP_EXTENT_LAST != 0 && covered < to {
                return Err(format!(
                    "bytes {covered}..{to} have no blocks after syncing"
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `fallocate` leaves unwritten extents (on ext4, xfs): the check must
    /// refuse them, and accept the range once zeros were written and synced.
    #[test]
    fn unwritten_extents_are_refused_and_written_ones_accepted() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("seg");
        glommio::LocalExecutorBuilder::default()
            .spawn(move || async move {
                let file = glommio::io::OpenOptions::new()
                    .read(true)
                    .write(true)
                    .create(true)
                    .dma_open(&path)
                    .await
                    .unwrap();
                file.pre_allocate(2 * STEP, false).await.unwrap();
                match check_written(&file, 0, 2 * STEP) {
                    Err(e) => assert!(e.contains("not written"), "{e}"),
                    // A filesystem without unwritten extents or FIEMAP has
                    // nothing to refuse.
                    Ok(()) => eprintln!("skipped: no unwritten extents here"),
                }
                allocate(&file, 0, 2 * STEP).await.unwrap();
                check_written(&file, 0, 2 * STEP).unwrap();
                file.close().await.unwrap();
            })
            .unwrap()
            .join()
            .unwrap();
    }

    #[test]
    fn headroom_grows_with_the_segment_within_bounds() {
        let max = 8 * STEP;
        assert_eq!(target(0, max), STEP);
        assert_eq!(target(100, max), 2 * STEP);
        assert_eq!(target(3 * STEP, max), 6 * STEP);
        assert_eq!(target(40 * STEP, max), 48 * STEP);
        assert!(low(STEP, STEP / 2, max));
        assert!(!low(2 * STEP, 100, max));
    }
}
