//! A compacted object's bytes and index rows: each source range's own
//! frames (those of its partition, restart frames left out), copied
//! verbatim (header CRC and batch CRC unchanged, each checked on the way),
//! one after another; its rows are the sources' ranges at their new
//! places, neighbours of one lease epoch merged up to
//! [`MAX_MERGED_RANGE_BYTES`]. A source whose frames do not cover exactly
//! its offsets is refused: the rewrite never changes what a reader gets.

use streamhouse_storage::segment::{self, FrameProblem};

use crate::metastore::compaction::{CompactedFrom, RewrittenRange};

/// Longest index row a merge makes, bytes: 4 MiB (a read from object
/// storage fetches one row whole).
pub const MAX_MERGED_RANGE_BYTES: u64 = 4 << 20;

/// The own frames of `topic/partition` in `data`, the bytes of `src`'s
/// span in its object, checked: each frame valid, their batches in offset
/// order from `src.base_offset` to `src.end_offset` without a gap.
pub fn own_frames(
    topic: &str,
    partition: u32,
    src: &CompactedFrom,
    data: &[u8],
) -> Result<Vec<u8>, String> {
    let at = |pos: usize| format!("{} at byte {}", src.chunk_key, src.pos + pos as u64);
    let mut out = Vec::with_capacity(usize::try_from(src.bytes).unwrap_or(0));
    let (mut pos, mut next) = (0usize, src.base_offset);
    while pos < data.len() {
        let f = match segment::parse_frame(data, pos) {
            Ok(f) => f,
            Err(FrameProblem::ZeroTail) => break,
            Err(FrameProblem::Invalid(why)) => return Err(format!("{}: {why}", at(pos))),
        };
        let end = pos + f.len as usize;
        if f.restart.is_none() && f.topic == topic && f.partition == partition {
            if f.header.base_offset != next {
                return Err(format!(
                    "{}: a batch at offset {} where {next} was due",
                    at(pos),
                    f.header.base_offset
                ));
            }
            next += u64::from(f.header.record_count);
            out.extend_from_slice(&data[pos..end]);
        }
        pos = end;
    }
    if next != src.end_offset {
        return Err(format!(
            "{}: the range {}..{} holds batches up to {next} only",
            src.chunk_key, src.base_offset, src.end_offset
        ));
    }
    Ok(out)
}

/// A compacted object in the making: its bytes and its index rows.
#[derive(Debug, Default)]
pub struct Rewrite {
    pub data: Vec<u8>,
    pub rows: Vec<RewrittenRange>,
}

impl Rewrite {
    /// Appends a source range's own frames (from [`own_frames`]).
    pub fn push(&mut self, src: &CompactedFrom, frames: &[u8]) {
        let pos = self.data.len() as u64;
        let len = frames.len() as u64;
        self.data.extend_from_slice(frames);
        if let Some(last) = self.rows.last_mut() {
            let merge = last.end_offset == src.base_offset
                && last.epoch == src.epoch
                && last.len + len <= MAX_MERGED_RANGE_BYTES;
            if merge {
                last.end_offset = src.end_offset;
                last.len += len;
                last.max_timestamp = last
                    .max_timestamp
                    .zip(src.max_timestamp)
                    .map(|(a, b)| a.max(b));
                return;
            }
        }
        self.rows.push(RewrittenRange {
            base_offset: src.base_offset,
            end_offset: src.end_offset,
            pos,
            len,
            epoch: src.epoch,
            max_timestamp: src.max_timestamp,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use streamhouse_proto::batch::{self, Codec, ProducerInfo, Record};

    /// A sealed frame of `topic/partition` holding `n` records from `base`.
    fn frame(topic: &str, partition: u32, base: u64, n: u32) -> Vec<u8> {
        let records: Vec<Record> = (0..n)
            .map(|i| Record {
                timestamp: 1_000 + i64::from(i),
                key: None,
                value: format!("{topic}-{partition}-{}", base + u64::from(i)).into(),
                headers: Vec::new(),
            })
            .collect();
        let mut b = batch::encode(&records, Codec::None, ProducerInfo::default());
        batch::set_base_offset(&mut b, base);
        let mut f = segment::frame_header(topic, partition, b.len());
        f.extend_from_slice(&b);
        segment::seal_frame_header(&mut f, 1);
        f
    }

    fn src(base: u64, end: u64, epoch: u64) -> CompactedFrom {
        CompactedFrom {
            base_offset: base,
            end_offset: end,
            chunk_key: "chunks/0".into(),
            pos: 0,
            len: 0,
            bytes: 0,
            epoch,
            max_timestamp: Some(end as i64),
            object_size: 0,
            object_live: 0,
        }
    }

    #[test]
    fn own_frames_keep_the_partitions_batches_verbatim_and_skip_the_rest() {
        let (a, b) = (frame("t#1", 0, 5, 3), frame("t#1", 0, 8, 2));
        let mut data = a.clone();
        data.extend(frame("t#1", 1, 0, 4));
        let mut restart = segment::restart_frame("t#1", 0, 8);
        segment::seal_frame_header(&mut restart, 1);
        data.extend(restart);
        data.extend(b.clone());
        let got = own_frames("t#1", 0, &src(5, 10, 1), &data).unwrap();
        assert_eq!(got, [a, b].concat());
    }

    #[test]
    fn own_frames_refuse_gaps_short_ranges_and_bad_bytes() {
        let mut data = frame("t#1", 0, 0, 3);
        data.extend(frame("t#1", 0, 4, 1));
        assert!(own_frames("t#1", 0, &src(0, 5, 1), &data)
            .unwrap_err()
            .contains("offset 4 where 3 was due"));
        let data = frame("t#1", 0, 0, 3);
        assert!(own_frames("t#1", 0, &src(0, 5, 1), &data)
            .unwrap_err()
            .contains("up to 3 only"));
        let mut data = frame("t#1", 0, 0, 3);
        let last = data.len() - 1;
        data[last] ^= 0xff;
        assert!(own_frames("t#1", 0, &src(0, 3, 1), &data).is_err());
    }

    #[test]
    fn neighbours_of_one_epoch_share_a_row() {
        let mut w = Rewrite::default();
        w.push(&src(0, 10, 1), &[1; 100]);
        w.push(&src(10, 20, 1), &[2; 50]);
        w.push(&src(20, 30, 2), &[3; 10]);
        w.push(&src(40, 50, 2), &[4; 10]);
        let rows: Vec<_> = w
            .rows
            .iter()
            .map(|r| (r.base_offset, r.end_offset, r.pos, r.len, r.max_timestamp))
            .collect();
        assert_eq!(
            rows,
            vec![
                (0, 20, 0, 150, Some(20)),
                (20, 30, 150, 10, Some(30)),
                (40, 50, 160, 10, Some(50))
            ]
        );
        assert_eq!(w.data.len(), 170);
    }
}
