//! Batches key compaction rewrote: a batch flagged [`FLAG_COMPACTED`]
//! keeps its base offset, the `record_count` offsets it spans, its
//! timestamps, producer fields and codec, but holds only the records
//! compaction kept: strictly increasing offset deltas below
//! `record_count`, perhaps none. Only agents write them (producers'
//! batches must have no flags: `check_records`); every decoder reads them.

use bytes::Bytes;

use super::{set_base_offset, BatchBuilder, BatchHeader};

/// Flags bit of a compacted batch.
pub const FLAG_COMPACTED: u16 = 1;

/// A compacted batch in the making, from the header of the batch it
/// rewrites.
#[derive(Debug)]
pub struct CompactedBatch {
    inner: BatchBuilder,
    base_offset: u64,
    span: u32,
    next: u64,
}

impl CompactedBatch {
    /// A rewrite of the batch whose header is `original`, holding no
    /// record yet.
    pub fn new(original: &BatchHeader) -> Self {
        let mut inner = BatchBuilder::new(original.codec, original.producer);
        inner.first_timestamp = original.first_timestamp;
        inner.max_timestamp = original.max_timestamp;
        inner.rewrite = Some((FLAG_COMPACTED, original.record_count));
        CompactedBatch {
            inner,
            base_offset: original.base_offset,
            span: original.record_count,
            next: original.base_offset,
        }
    }

    /// Keeps a record of the original at `offset`. Offsets must grow and
    /// stay within the original's span; `false` (nothing kept) otherwise.
    pub fn keep(
        &mut self,
        offset: u64,
        key: Option<&[u8]>,
        value: &[u8],
        timestamp: i64,
        headers: &[(String, Bytes)],
    ) -> bool {
        let end = self.base_offset + u64::from(self.span);
        if offset < self.next || offset >= end {
            return false;
        }
        self.inner
            .push_at(offset - self.base_offset, key, value, timestamp, headers);
        self.next = offset + 1;
        true
    }

    /// Records kept so far.
    pub fn kept(&self) -> u32 {
        self.inner.count
    }

    /// The encoded batch at the original's base offset, its CRC valid.
    pub fn finish(self) -> Vec<u8> {
        let base = self.base_offset;
        let mut out = self.inner.finish();
        set_base_offset(&mut out, base);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::super::{check_records, decode, encode, validate, Codec, ProducerInfo, Record};
    use super::*;

    fn original(n: u32, codec: Codec) -> Vec<u8> {
        let records: Vec<Record> = (0..n)
            .map(|i| Record {
                key: Some(Bytes::from(format!("k{}", i % 3))),
                value: Bytes::from(format!("v{i}")),
                timestamp: 1_000 + i64::from(i),
                headers: vec![("h".into(), Bytes::from_static(b"x"))],
            })
            .collect();
        let mut b = encode(&records, codec, ProducerInfo::default());
        set_base_offset(&mut b, 100);
        b
    }

    #[test]
    fn a_compacted_batch_keeps_its_span_and_the_kept_records_offsets() {
        for codec in [Codec::None, Codec::Lz4, Codec::Zstd] {
            let orig = Bytes::from(original(6, codec));
            let (h, recs) = decode(&orig).unwrap();
            let mut c = CompactedBatch::new(&h);
            for r in recs.iter().filter(|r| r.offset >= 103) {
                assert!(c.keep(
                    r.offset,
                    r.key.as_deref(),
                    &r.value,
                    r.timestamp,
                    &r.headers
                ));
            }
            assert_eq!(c.kept(), 3);
            let out = Bytes::from(c.finish());
            let v = validate(&out).unwrap();
            assert!(v.is_compacted());
            assert_eq!(
                (
                    v.base_offset,
                    v.record_count,
                    v.first_timestamp,
                    v.max_timestamp
                ),
                (100, 6, h.first_timestamp, h.max_timestamp)
            );
            let (_, kept) = decode(&out).unwrap();
            assert_eq!(kept, recs[3..].to_vec(), "{codec:?}");
            // Producers may not send one.
            assert!(check_records(&out, 1 << 20, 1 << 20).is_err());
        }
    }

    #[test]
    fn a_compacted_batch_may_hold_nothing_and_refuses_offsets_out_of_order() {
        let orig = Bytes::from(original(4, Codec::None));
        let (h, recs) = decode(&orig).unwrap();
        let mut c = CompactedBatch::new(&h);
        assert!(!c.keep(99, None, b"", 0, &[]));
        assert!(!c.keep(104, None, b"", 0, &[]));
        assert!(c.keep(102, recs[2].key.as_deref(), &recs[2].value, 1_002, &[]));
        assert!(!c.keep(102, None, b"", 0, &[]));
        let empty = Bytes::from(CompactedBatch::new(&h).finish());
        let (e, none) = decode(&empty).unwrap();
        assert!(none.is_empty() && e.record_count == 4 && e.base_offset == 100);
    }

    #[test]
    fn decoding_refuses_a_compacted_batch_whose_deltas_do_not_grow() {
        let orig = Bytes::from(original(4, Codec::None));
        let (h, recs) = decode(&orig).unwrap();
        // Flag a dense batch whose span is cut below its records.
        let mut bad = orig.to_vec();
        bad[22..24].copy_from_slice(&FLAG_COMPACTED.to_le_bytes());
        bad[24..28].copy_from_slice(&2u32.to_le_bytes());
        set_base_offset(&mut bad, h.base_offset);
        assert!(
            decode(&Bytes::from(bad)).is_err(),
            "deltas 2, 3 are past the span"
        );
        let mut c = CompactedBatch::new(&h);
        c.keep(101, None, &recs[1].value, 1_001, &[]);
        assert_eq!(decode(&Bytes::from(c.finish())).unwrap().1.len(), 1);
    }
}
