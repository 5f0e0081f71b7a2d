//! Key compaction's decisions (`cleanup.policy=compact`): which record is
//! the latest of its key in a partition ([`Latest`], built from every
//! record read), and each batch rewritten to keep only those
//! ([`clean_frame`]): a record stays when it is the latest of its key and
//! is not a tombstone (a keyed record with an empty value) older than the
//! topic's `delete.retention.ms`; records without a key always stay.
//! Offsets never change: a batch keeps its base offset and span, with the
//! records dropped left out (`batch::CompactedBatch`), and a batch that
//! loses nothing is copied verbatim. Pure: no I/O.

use std::collections::HashMap;

use bytes::Bytes;
use streamhouse_proto::batch::{self, CompactedBatch};
use streamhouse_storage::segment;

/// Offset of the latest record of each key seen, and whether it is a
/// tombstone.
#[derive(Debug, Default)]
pub struct Latest {
    by_key: HashMap<Bytes, (u64, bool)>,
    /// Bytes of the keys held (the map's memory, roughly).
    key_bytes: usize,
}

impl Latest {
    /// Notes every keyed record of a batch (offsets grow across calls).
    pub fn note(&mut self, batch: &Bytes) -> Result<(), String> {
        let (_, records) = batch::decode(batch).map_err(|e| e.to_string())?;
        for r in records {
            if let Some(k) = r.key {
                let len = k.len();
                if self
                    .by_key
                    .insert(k, (r.offset, r.value.is_empty()))
                    .is_none()
                {
                    self.key_bytes += len;
                }
            }
        }
        Ok(())
    }

    /// Keys noted.
    pub fn len(&self) -> usize {
        self.by_key.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_key.is_empty()
    }

    /// Bytes of the keys noted.
    pub fn key_bytes(&self) -> usize {
        self.key_bytes
    }

    /// Whether the latest record of some key is a tombstone (one that
    /// will go once `delete.retention.ms` has passed).
    pub fn has_tombstones(&self) -> bool {
        self.by_key.values().any(|(_, tombstone)| *tombstone)
    }

    /// Whether the record at `offset` with `key` stays.
    fn keeps(&self, offset: u64, key: Option<&Bytes>, tombstone: bool, expired: bool) -> bool {
        match key {
            None => true,
            Some(k) => {
                let latest = self.by_key.get(k).is_none_or(|&(at, _)| at == offset);
                latest && !(tombstone && expired)
            }
        }
    }
}

/// Each frame of a range's own frames (as `own_frames` returned them,
/// checked): its bytes and where its batch starts in them.
pub fn frames(own: &[u8]) -> impl Iterator<Item = (&[u8], usize)> {
    let mut pos = 0;
    std::iter::from_fn(move || {
        let f = segment::parse_frame(own, pos).ok()?;
        let (start, end) = (pos, pos + f.len as usize);
        pos = end;
        Some((&own[start..end], (f.batch_pos as usize) - start))
    })
}

/// What cleaning one frame came to.
#[derive(Debug, PartialEq, Eq)]
pub enum Cleaned {
    /// Every record stays: the frame is copied as it is.
    Whole,
    /// The frame rewritten (a compacted batch), with how many records it
    /// dropped.
    Rewritten { frame: Vec<u8>, dropped: u32 },
}

/// Cleans one frame of `topic/partition` (`frame`: header and batch,
/// whose batch starts at `batch_at`) by `latest`: tombstones stamped
/// before `tombstone_cutoff_ms` that are the latest of their key go too.
pub fn clean_frame(
    frame: &Bytes,
    batch_at: usize,
    topic: &str,
    partition: u32,
    latest: &Latest,
    tombstone_cutoff_ms: i64,
) -> Result<Cleaned, String> {
    let batch = frame.slice(batch_at..);
    let (h, records) = batch::decode(&batch).map_err(|e| e.to_string())?;
    let stays = |r: &batch::DecodedRecord| {
        latest.keeps(
            r.offset,
            r.key.as_ref(),
            r.value.is_empty(),
            r.timestamp < tombstone_cutoff_ms,
        )
    };
    if records.iter().all(stays) {
        return Ok(Cleaned::Whole);
    }
    let mut c = CompactedBatch::new(&h);
    let mut dropped = 0;
    for r in &records {
        if !stays(r) {
            dropped += 1;
            continue;
        }
        if !c.keep(
            r.offset,
            r.key.as_deref(),
            &r.value,
            r.timestamp,
            &r.headers,
        ) {
            return Err(format!(
                "a record at offset {} does not fit its batch at {}",
                r.offset, h.base_offset
            ));
        }
    }
    let body = c.finish();
    let mut out = segment::frame_header(topic, partition, body.len());
    out.extend_from_slice(&body);
    // The generation is the original frame's (bytes 12..20).
    let gen = frame
        .get(12..20)
        .and_then(|g| <[u8; 8]>::try_from(g).ok())
        .map_or(0, u64::from_le_bytes);
    segment::seal_frame_header(&mut out, gen);
    Ok(Cleaned::Rewritten {
        frame: out,
        dropped,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use streamhouse_proto::batch::{Codec, ProducerInfo, Record};

    /// A sealed frame of `t#1/0` at `base`: records (key, value, ts).
    fn frame(base: u64, recs: &[(Option<&str>, &str, i64)]) -> (Vec<u8>, usize) {
        let records: Vec<Record> = recs
            .iter()
            .map(|(k, v, ts)| Record {
                key: k.map(|k| Bytes::from(k.to_owned())),
                value: Bytes::from(v.to_string()),
                timestamp: *ts,
                headers: Vec::new(),
            })
            .collect();
        let mut b = batch::encode(&records, Codec::Lz4, ProducerInfo::default());
        batch::set_base_offset(&mut b, base);
        let mut f = segment::frame_header("t#1", 0, b.len());
        let at = f.len();
        f.extend_from_slice(&b);
        segment::seal_frame_header(&mut f, 7);
        (f, at)
    }

    fn values(frame: &[u8]) -> Vec<(u64, String)> {
        let f = segment::parse_frame(frame, 0).unwrap();
        let b = Bytes::copy_from_slice(&frame[f.batch_pos as usize..]);
        batch::decode(&b)
            .unwrap()
            .1
            .into_iter()
            .map(|r| (r.offset, String::from_utf8(r.value.to_vec()).unwrap()))
            .collect()
    }

    #[test]
    fn only_the_latest_of_each_key_stays_at_its_offset() {
        let (a, a_at) = frame(
            0,
            &[
                (Some("k1"), "a", 10),
                (Some("k2"), "b", 11),
                (None, "n", 12),
            ],
        );
        let (b, b_at) = frame(3, &[(Some("k1"), "c", 13), (Some("k3"), "", 14)]);
        let mut latest = Latest::default();
        for (f, at) in [(&a, a_at), (&b, b_at)] {
            latest.note(&Bytes::copy_from_slice(&f[at..])).unwrap();
        }
        assert_eq!(latest.len(), 3);
        let Cleaned::Rewritten {
            frame: out,
            dropped,
        } = clean_frame(&Bytes::from(a.clone()), a_at, "t#1", 0, &latest, 0).unwrap()
        else {
            panic!("k1's first value goes")
        };
        assert_eq!(dropped, 1);
        assert_eq!(values(&out), vec![(1, "b".into()), (2, "n".into())]);
        let parsed = segment::parse_frame(&out, 0).unwrap();
        assert_eq!(
            (parsed.header.base_offset, parsed.header.record_count),
            (0, 3)
        );
        // The tombstone of k3 stays while it is young, goes once expired.
        assert_eq!(
            clean_frame(&Bytes::from(b.clone()), b_at, "t#1", 0, &latest, 14).unwrap(),
            Cleaned::Whole
        );
        let Cleaned::Rewritten { frame: out, .. } =
            clean_frame(&Bytes::from(b.clone()), b_at, "t#1", 0, &latest, 15).unwrap()
        else {
            panic!("the expired tombstone goes")
        };
        assert_eq!(values(&out), vec![(3, "c".into())]);
    }

    #[test]
    fn a_batch_whose_records_all_go_keeps_its_span_empty() {
        let (a, at) = frame(10, &[(Some("k"), "1", 1), (Some("k"), "2", 2)]);
        let (b, b_at) = frame(12, &[(Some("k"), "3", 3)]);
        let mut latest = Latest::default();
        latest.note(&Bytes::copy_from_slice(&a[at..])).unwrap();
        latest.note(&Bytes::copy_from_slice(&b[b_at..])).unwrap();
        let Cleaned::Rewritten {
            frame: out,
            dropped,
        } = clean_frame(&Bytes::from(a.clone()), at, "t#1", 0, &latest, 0).unwrap()
        else {
            panic!("both go")
        };
        assert_eq!(dropped, 2);
        assert!(values(&out).is_empty());
        let h = segment::parse_frame(&out, 0).unwrap().header;
        assert!(h.is_compacted() && h.base_offset == 10 && h.record_count == 2);
    }
}
