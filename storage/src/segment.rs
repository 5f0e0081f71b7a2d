//! WAL segment files: the frame that wraps each batch on disk, segment file
//! naming, and the scan that recovery runs over a segment's bytes. Owns the
//! on-disk frame layout and the torn-tail rule; does no I/O itself.
//!
//! Frame layout (little-endian):
//!
//! ```text
//!  0 magic       u32  "SHW1"
//!  4 frame_len   u32  whole frame, header and batch
//!  8 header_crc  u32  CRC32C of bytes [12, 26 + topic_len)
//! 12 flush_gen   u64  number of the group-commit write that carried the frame
//! 20 partition   u32
//! 24 topic_len   u16
//! 26 topic       UTF-8
//!  . batch       (batch format, its own CRC)
//! ```
//!
//! A **restart frame** (magic "SHR1", same header) carries, instead of a
//! batch, one u64: the offset at which its partition continues. It is
//! written when a partition's lease changed hands (or its local log was
//! behind object storage), before any batch of the new lease: recovery then
//! forgets the partition's earlier frames instead of mixing records of two
//! leases (or refusing the WAL for the offset jump).
//!
//! Each group commit writes frames with a new `flush_gen`, and at most
//! [`UNSYNCED_WRITES`] writes are unsynced at any time (the one being synced
//! and the next one, issued while that sync runs). Pages of unsynced writes
//! may reach the disk in any order, so when recovery finds a bad frame in the
//! last segment, the only acceptable cause is a torn unsynced write: no valid
//! frame may follow it from a generation more than `UNSYNCED_WRITES` after
//! the last good frame. Anything else is corruption of synced data and is
//! reported.

use std::path::{Path, PathBuf};

use crate::batch::{self, BatchHeader};

/// Most group-commit writes that can be written but not yet synced at once:
/// the log issues write `n + 1` while the sync of write `n` runs, and write
/// `n + 2` only after that sync finished.
pub const UNSYNCED_WRITES: u64 = 2;

/// "SHW1" as a little-endian u32.
pub const FRAME_MAGIC: u32 = u32::from_le_bytes(*b"SHW1");
/// "SHR1" as a little-endian u32: a restart frame.
pub const RESTART_MAGIC: u32 = u32::from_le_bytes(*b"SHR1");
/// Frame header length without the topic.
pub const FRAME_FIXED: usize = 26;
/// Extension of WAL segment files.
pub const SEGMENT_EXT: &str = "wal";

/// Path of segment `id` in `dir`.
pub fn segment_path(dir: &Path, id: u64) -> PathBuf {
    dir.join(format!("{id:020}.{SEGMENT_EXT}"))
}

/// Segment ids present in `dir`, ascending.
pub fn list_segments(dir: &Path) -> std::io::Result<Vec<u64>> {
    let mut ids = Vec::new();
    for e in std::fs::read_dir(dir)? {
        let e = e?;
        let name = e.file_name();
        let Some(name) = name.to_str() else { continue };
        if let Some(stem) = name.strip_suffix(&format!(".{SEGMENT_EXT}")) {
            if let Ok(id) = stem.parse::<u64>() {
                ids.push(id);
            }
        }
    }
    ids.sort_unstable();
    Ok(ids)
}

/// Encodes the frame header for `batch_len` bytes of batch. The flush
/// generation and header CRC are filled in by [`seal_frame_header`].
pub fn frame_header(topic: &str, partition: u32, batch_len: usize) -> Vec<u8> {
    let mut h = Vec::with_capacity(FRAME_FIXED + topic.len());
    put_frame_header(&mut h, topic, partition, batch_len);
    h
}

/// [`frame_header`] appended to `h` (the log's pending buffer), with no
/// buffer of its own.
pub fn put_frame_header(h: &mut Vec<u8>, topic: &str, partition: u32, batch_len: usize) {
    let frame_len = FRAME_FIXED + topic.len() + batch_len;
    h.extend_from_slice(&FRAME_MAGIC.to_le_bytes());
    h.extend_from_slice(&(frame_len as u32).to_le_bytes());
    h.extend_from_slice(&0u32.to_le_bytes());
    h.extend_from_slice(&0u64.to_le_bytes());
    h.extend_from_slice(&partition.to_le_bytes());
    h.extend_from_slice(&(topic.len() as u16).to_le_bytes());
    h.extend_from_slice(topic.as_bytes());
}

/// A whole restart frame (generation and CRC still to seal): `partition`
/// of `topic` continues at `offset`.
pub fn restart_frame(topic: &str, partition: u32, offset: u64) -> Vec<u8> {
    let mut f = frame_header(topic, partition, 8);
    f[0..4].copy_from_slice(&RESTART_MAGIC.to_le_bytes());
    f.extend_from_slice(&offset.to_le_bytes());
    f
}

/// Writes `gen` into a frame at the start of `frame` and computes its header CRC.
/// (A restart frame's CRC also covers its offset.)
pub fn seal_frame_header(frame: &mut [u8], gen: u64) {
    frame[12..20].copy_from_slice(&gen.to_le_bytes());
    let crc = crc32c::crc32c(&frame[12..crc_end(frame)]);
    frame[8..12].copy_from_slice(&crc.to_le_bytes());
}

/// End of the bytes a frame's header CRC covers: the header with its topic,
/// and for a restart frame its offset too.
fn crc_end(frame: &[u8]) -> usize {
    let topic_len = u16::from_le_bytes([frame[24], frame[25]]) as usize;
    let restart = frame[0..4] == RESTART_MAGIC.to_le_bytes();
    FRAME_FIXED + topic_len + if restart { 8 } else { 0 }
}

/// A valid frame found by a scan.
#[derive(Debug, Clone)]
pub struct ScannedFrame {
    /// Position of the frame in the segment.
    pub pos: u64,
    pub len: u32,
    pub gen: u64,
    pub topic: String,
    pub partition: u32,
    /// Position of the batch inside the segment.
    pub batch_pos: u64,
    /// The batch's header; for a restart frame, an empty header whose
    /// `base_offset` is the restart offset.
    pub header: BatchHeader,
    /// `Some(offset)` for a restart frame: the partition continues there.
    pub restart: Option<u64>,
}

/// Why bytes at a position are not a valid frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FrameProblem {
    /// Zero bytes from here to the end: clean end of data.
    ZeroTail,
    /// Not a valid frame, with the reason.
    Invalid(String),
}

/// Parses and fully validates (header CRC and batch CRC) the frame at `pos`.
pub fn parse_frame(buf: &[u8], pos: usize) -> Result<ScannedFrame, FrameProblem> {
    let rest = &buf[pos..];
    if rest.iter().all(|b| *b == 0) {
        return Err(FrameProblem::ZeroTail);
    }
    let bad = |s: String| Err(FrameProblem::Invalid(s));
    if rest.len() < FRAME_FIXED {
        return bad(format!(
            "{} trailing bytes, shorter than a frame header",
            rest.len()
        ));
    }
    let magic = u32::from_le_bytes([rest[0], rest[1], rest[2], rest[3]]);
    let restart = magic == RESTART_MAGIC;
    if magic != FRAME_MAGIC && !restart {
        return bad(format!("bad frame magic {magic:#010x}"));
    }
    let len = u32::from_le_bytes([rest[4], rest[5], rest[6], rest[7]]) as usize;
    let topic_len = u16::from_le_bytes([rest[24], rest[25]]) as usize;
    let body_ok = if restart {
        len == FRAME_FIXED + topic_len + 8
    } else {
        len >= FRAME_FIXED + topic_len + batch::HEADER_LEN
    };
    if !body_ok || len > rest.len() {
        return bad(format!(
            "frame length {len} does not fit ({} bytes left)",
            rest.len()
        ));
    }
    let stored = u32::from_le_bytes([rest[8], rest[9], rest[10], rest[11]]);
    let computed = crc32c::crc32c(&rest[12..crc_end(rest)]);
    if stored != computed {
        return bad(format!(
            "frame header CRC mismatch: stored {stored:#010x}, computed {computed:#010x}"
        ));
    }
    let topic = match std::str::from_utf8(&rest[FRAME_FIXED..FRAME_FIXED + topic_len]) {
        Ok(t) => t.to_owned(),
        Err(_) => return bad("topic is not UTF-8".into()),
    };
    let batch_start = FRAME_FIXED + topic_len;
    let (header, restart) = if restart {
        let mut at = [0u8; 8];
        at.copy_from_slice(&rest[batch_start..len]);
        let offset = u64::from_le_bytes(at);
        let header = BatchHeader {
            length: 0,
            crc: 0,
            base_offset: offset,
            codec: batch::Codec::None,
            flags: 0,
            record_count: 0,
            first_timestamp: 0,
            max_timestamp: 0,
            producer: batch::ProducerInfo::default(),
            records_len: 0,
        };
        (header, Some(offset))
    } else {
        match batch::validate(&rest[batch_start..len]) {
            Ok(h) => (h, None),
            Err(e) => return bad(format!("batch of {topic}: {e}")),
        }
    };
    let mut gen = [0u8; 8];
    gen.copy_from_slice(&rest[12..20]);
    Ok(ScannedFrame {
        pos: pos as u64,
        len: len as u32,
        gen: u64::from_le_bytes(gen),
        topic,
        partition: u32::from_le_bytes([rest[20], rest[21], rest[22], rest[23]]),
        batch_pos: (pos + batch_start) as u64,
        header,
        restart,
    })
}

/// Result of scanning one segment.
#[derive(Debug)]
pub struct SegmentScan {
    pub frames: Vec<ScannedFrame>,
    /// Bytes of valid data; the segment is truncated here.
    pub valid_len: u64,
    /// Bytes dropped as a torn tail (0 when the segment ended cleanly).
    pub torn_bytes: u64,
}

/// Corruption of synced data: file and position named.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("corrupt WAL segment {file} at byte {position}: {reason}")]
pub struct Corruption {
    pub file: PathBuf,
    pub position: u64,
    pub reason: String,
}

/// Scans a segment's bytes. `is_last` says whether a torn final write is
/// possible in it (only the newest segment can have one).
pub fn scan(file: &Path, buf: &[u8], is_last: bool) -> Result<SegmentScan, Corruption> {
    let mut frames: Vec<ScannedFrame> = Vec::new();
    let mut pos = 0usize;
    while pos < buf.len() {
        match parse_frame(buf, pos) {
            Ok(f) => {
                pos += f.len as usize;
                frames.push(f);
            }
            Err(FrameProblem::ZeroTail) => break,
            Err(FrameProblem::Invalid(reason)) => {
                let corrupt = |reason: String| Corruption {
                    file: file.to_path_buf(),
                    position: pos as u64,
                    reason,
                };
                if !is_last {
                    return Err(corrupt(reason));
                }
                let last_gen = frames.last().map_or(0, |f| f.gen);
                if let Some(later) = later_generation(buf, pos + 1, last_gen + UNSYNCED_WRITES) {
                    return Err(corrupt(format!(
                        "{reason}; a valid frame of a later write follows at byte {later}"
                    )));
                }
                return Ok(SegmentScan {
                    frames,
                    valid_len: pos as u64,
                    torn_bytes: (buf.len() - pos) as u64,
                });
            }
        }
    }
    Ok(SegmentScan {
        frames,
        valid_len: pos as u64,
        torn_bytes: 0,
    })
}

/// Position of a valid frame at or after `from` whose generation is greater
/// than `max_gen`, if any.
fn later_generation(buf: &[u8], from: usize, max_gen: u64) -> Option<usize> {
    let magic = FRAME_MAGIC.to_le_bytes();
    let mut i = from;
    while i + FRAME_FIXED <= buf.len() {
        if buf[i..i + 4] == magic {
            if let Ok(f) = parse_frame(buf, i) {
                if f.gen > max_gen {
                    return Some(i);
                }
            }
        }
        i += 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::{encode, Codec, ProducerInfo, Record};

    fn frame(topic: &str, value: &[u8], gen: u64) -> Vec<u8> {
        let b = encode(
            &[Record {
                value: bytes::Bytes::copy_from_slice(value),
                ..Default::default()
            }],
            Codec::None,
            ProducerInfo::default(),
        );
        let mut f = frame_header(topic, 3, b.len());
        f.extend_from_slice(&b);
        seal_frame_header(&mut f, gen);
        f
    }

    #[test]
    fn a_restart_frame_round_trips_and_its_offset_is_checked() {
        let mut f = restart_frame("t#1", 7, 1234);
        seal_frame_header(&mut f, 9);
        let parsed = parse_frame(&f, 0).unwrap();
        assert_eq!(parsed.restart, Some(1234));
        assert_eq!(
            (parsed.partition, parsed.gen, parsed.len as usize),
            (7, 9, f.len())
        );
        let last = f.len() - 1;
        f[last] ^= 1;
        assert!(matches!(parse_frame(&f, 0), Err(FrameProblem::Invalid(_))));
    }

    fn log(gens: &[u64]) -> (Vec<u8>, Vec<usize>) {
        let mut buf = Vec::new();
        let mut starts = Vec::new();
        for (i, g) in gens.iter().enumerate() {
            starts.push(buf.len());
            buf.extend(frame("t", format!("v{i}").as_bytes(), *g));
        }
        (buf, starts)
    }

    #[test]
    fn clean_segment_with_zero_padding() {
        let (mut buf, _) = log(&[1, 1, 2]);
        let n = buf.len();
        buf.resize(n + 4000, 0);
        let s = scan(Path::new("x"), &buf, true).unwrap();
        assert_eq!(s.frames.len(), 3);
        assert_eq!(s.valid_len, n as u64);
        assert_eq!(s.torn_bytes, 0);
        assert_eq!(s.frames[1].partition, 3);
    }

    #[test]
    fn torn_tail_is_truncated() {
        let (buf, starts) = log(&[1, 2, 3]);
        for cut in starts[2] + 1..buf.len() {
            let s = scan(Path::new("x"), &buf[..cut], true).unwrap();
            assert_eq!(s.frames.len(), 2);
            assert_eq!(s.valid_len, starts[2] as u64);
        }
    }

    #[test]
    fn torn_write_with_later_frames_of_same_write_is_truncated() {
        // The last write (gen 3) carried two frames; the first is damaged.
        let (mut buf, starts) = log(&[1, 2, 3, 3]);
        buf[starts[2] + 40] ^= 0xff;
        let s = scan(Path::new("x"), &buf, true).unwrap();
        assert_eq!(s.frames.len(), 2);
    }

    #[test]
    fn both_unsynced_writes_may_be_torn_but_not_an_older_one() {
        // Gen 3 was being synced and gen 4 written when the power went: a
        // damaged gen-3 frame followed by intact gen-4 frames is a torn tail.
        let (mut buf, starts) = log(&[1, 2, 3, 4, 4]);
        buf[starts[2] + 40] ^= 0xff;
        let s = scan(Path::new("x"), &buf, true).unwrap();
        assert_eq!(s.frames.len(), 2);
        assert_eq!(s.valid_len, starts[2] as u64);
        // Gen 5 cannot have been written before gen 3 was synced: the
        // damaged frame held synced data.
        let (mut buf, starts) = log(&[1, 2, 3, 4, 5]);
        buf[starts[2] + 40] ^= 0xff;
        let e = scan(Path::new("x"), &buf, true).unwrap_err();
        assert_eq!(e.position, starts[2] as u64);
    }

    #[test]
    fn mid_file_corruption_is_an_error_naming_the_position() {
        let (mut buf, starts) = log(&[1, 2, 3, 4]);
        buf[starts[1] + 40] ^= 0x01;
        let e = scan(Path::new("seg.wal"), &buf, true).unwrap_err();
        assert_eq!(e.position, starts[1] as u64);
        assert!(e.to_string().contains("seg.wal"), "{e}");
        // In a sealed segment any bad frame is corruption.
        let (mut buf, starts) = log(&[1, 2]);
        buf[starts[1] + 40] ^= 0x01;
        assert!(scan(Path::new("s"), &buf, false).is_err());
    }
}
