//! Recovery: rebuilding a shard log's state from its segment files (on
//! open, and when a failed log is reopened). Reads every segment with
//! O_DIRECT (what the disk holds, not what the page cache remembers of a
//! failed write), verifies every frame, truncates a torn tail of the last
//! segment, and rebuilds offsets, indexes and producer state. Creates no
//! file and touches no state of a running log; `log` assembles the result.

use std::collections::BTreeMap;
use std::rc::Rc;

use glommio::io::OpenOptions;

use super::config::LogConfig;
use super::error::{io_err, LogError};
use super::faults::fault;
use super::partition_set::{PartitionSet, Partitions};
use super::segment_set::{SegmentFile, SegmentSet};
use super::{RecoveryReport, SealedSegment};
use crate::index::IndexEntry;
use crate::producers::ProducerLru;
use crate::segment::{self, Corruption};

/// A log's state as its files hold it.
pub(super) struct Recovered {
    pub partitions: PartitionSet,
    /// Every segment found, all of them sealed now; the next active
    /// segment's id follows the last one found, and write generations
    /// continue from the highest found.
    pub segments: SegmentSet,
    pub report: RecoveryReport,
}

/// Checks that the first write found in a segment follows the last write
/// found in the segment before it. Every write to a segment was synced
/// before the next segment got its first write (a roll waits for the
/// sync), and each write has the next generation, so a later first
/// generation means synced (acknowledged) writes vanished from the end of
/// the earlier segment, e.g. blocks the disk never really allocated.
fn check_continues(
    prev: &std::path::Path,
    last_gen: u64,
    valid: u64,
    next: &std::path::Path,
    first_gen: u64,
) -> Result<(), LogError> {
    if first_gen == last_gen + 1 {
        return Ok(());
    }
    Err(LogError::Corrupt(Corruption {
        file: prev.to_path_buf(),
        position: valid,
        reason: if first_gen > last_gen + 1 {
            format!(
                "the segment's frames end with write {last_gen} but {} starts with write                  {first_gen}: writes {}..{first_gen} were synced (acknowledged) and are missing",
                next.display(),
                last_gen + 1
            )
        } else {
            format!(
                "the segment's frames end with write {last_gen} but {} starts with write                  {first_gen}, not a later one",
                next.display()
            )
        },
    }))
}

pub(super) async fn recover(config: &LogConfig) -> Result<Recovered, LogError> {
    std::fs::create_dir_all(&config.dir).map_err(|e| LogError::Io {
        context: format!("creating {}", config.dir.display()),
        message: e.to_string(),
    })?;
    let ids = segment::list_segments(&config.dir).map_err(|e| LogError::Io {
        context: format!("listing {}", config.dir.display()),
        message: e.to_string(),
    })?;
    let mut report = RecoveryReport {
        segments: ids.len(),
        ..Default::default()
    };
    let mut partitions =
        PartitionSet::new(Partitions::new(), ProducerLru::new(config.max_producers));
    let mut segments = BTreeMap::new();
    let mut sealed = Vec::new();
    let mut gen = 0;
    // The newest segment with frames before this one, when every id since
    // is present: (its path, its last write's generation, its valid bytes).
    let mut before: Option<(std::path::PathBuf, u64, u64)> = None;
    let mut previous_id: Option<u64> = None;
    for (i, id) in ids.iter().enumerate() {
        if previous_id.is_some_and(|p| p + 1 != *id) {
            // Segments in between were shipped and deleted.
            before = None;
        }
        previous_id = Some(*id);
        let path = segment::segment_path(&config.dir, *id);
        // Emptied after it was shipped (the newest segment file is kept so
        // its id is never used again): nothing to read or ship. Never
        // opened for DMA: glommio probes a device's polled-I/O support on
        // the first block of the first file it opens there, and an empty
        // file would send every later read to a ring this disk refuses.
        if std::fs::metadata(&path).is_ok_and(|m| m.len() == 0) {
            report.segments -= 1;
            if i + 1 < ids.len() {
                // A newer segment holds the id now.
                let _ = std::fs::remove_file(&path);
            }
            continue;
        }
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .dma_open(&path)
            .await
            .map_err(io_err(format!("opening {}", path.display())))?;
        let size = file
            .file_size()
            .await
            .map_err(io_err(format!("sizing {}", path.display())))?;
        fault!("wal-recovery-read", format!("reading {}", path.display()));
        let buf = {
            file.read_at(0, size as usize)
                .await
                .map_err(io_err(format!("reading {}", path.display())))?
                .to_vec()
        };
        let is_last = i + 1 == ids.len();
        let scan = segment::scan(&path, &buf, is_last)?;
        if let (Some((prev, last_gen, valid)), Some(first)) = (&before, scan.frames.first()) {
            check_continues(prev, *last_gen, *valid, &path, first.gen)?;
        }
        if let Some(last) = scan.frames.last() {
            before = Some((path.clone(), last.gen, scan.valid_len));
        }
        if scan.torn_bytes > 0 {
            tracing::warn!(
                file = %path.display(),
                valid = scan.valid_len,
                dropped = scan.torn_bytes,
                "truncating torn tail of the last WAL segment (an unacknowledged write)"
            );
            report.torn_bytes = scan.torn_bytes;
        }
        if scan.valid_len != size {
            file.truncate(scan.valid_len)
                .await
                .map_err(io_err(format!("truncating {}", path.display())))?;
            file.fdatasync()
                .await
                .map_err(io_err(format!("syncing {}", path.display())))?;
        }
        for f in &scan.frames {
            gen = gen.max(f.gen);
            let (p, lru) = partitions.add(&f.topic, f.partition);
            let h = &f.header;
            if let Some(offset) = f.restart {
                // The partition's lease changed hands here: its earlier
                // frames belong to an older lease.
                p.restart_at(offset);
                continue;
            }
            if p.index.is_empty() {
                p.log_start = h.base_offset;
            } else if h.base_offset != p.next_offset {
                return Err(LogError::Corrupt(Corruption {
                    file: path.clone(),
                    position: f.pos,
                    reason: format!(
                        "offset gap in {}/{}: expected {}, found {}",
                        f.topic, f.partition, p.next_offset, h.base_offset
                    ),
                }));
            }
            p.next_offset = h.base_offset + u64::from(h.record_count);
            p.high_watermark = p.next_offset;
            p.index.push(IndexEntry {
                base_offset: h.base_offset,
                next_offset: p.next_offset,
                segment: *id,
                pos: f.batch_pos,
                len: h.length,
                max_timestamp: h.max_timestamp,
            });
            p.remember(
                lru,
                (&f.topic, f.partition),
                h.producer,
                h.record_count,
                h.base_offset,
                0,
            );
            partitions.evict_excess();
            report.batches += 1;
        }
        sealed.push(SealedSegment {
            id: *id,
            path: path.clone(),
            len: scan.valid_len,
        });
        segments.insert(
            *id,
            SegmentFile {
                file: Rc::new(file),
                writer: None,
                path,
            },
        );
    }
    report.partitions = partitions.topics().map(|(_, ps)| ps.len()).sum();
    let active = ids.last().map_or(0, |id| id + 1);
    Ok(Recovered {
        partitions,
        segments: SegmentSet::new(segments, sealed, active, gen),
        report,
    })
}
