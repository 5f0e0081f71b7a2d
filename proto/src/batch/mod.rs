//! The record batch format: the unit producers send, the WAL stores and
//! consumers read. Owns encoding, decoding, CRC32C and compression of one
//! batch; knows nothing of files, partitions or the network.
//!
//! Layout (little-endian, byte offsets; see `docs/batch-format.md`):
//!
//! ```text
//!  0 magic            u32  "SHB1" (0x3142_4853 read as LE)
//!  4 length           u32  whole batch, header included
//!  8 crc              u32  CRC32C of bytes [12, length)
//! 12 base_offset      u64  assigned by the agent at append
//! 20 version          u8   1
//! 21 codec            u8   0 none, 1 lz4, 2 zstd
//! 22 flags            u16  bit 0: compacted (see `compacted`); others 0
//! 24 record_count     u32
//! 28 first_timestamp  i64  ms since the Unix epoch
//! 36 max_timestamp    i64
//! 44 producer_id      i64  0 = not idempotent
//! 52 producer_epoch   i16
//! 54 base_sequence    i32
//! 58 records_len      u32  length of the records section before compression
//! 62 records          (compressed with `codec`)
//! ```

use bytes::Bytes;

mod builder;
mod checked;
mod compacted;
mod crc;
mod records;

pub use builder::{encode, BatchBuilder};
pub use checked::CheckedBatch;
pub use compacted::{CompactedBatch, FLAG_COMPACTED};
pub use records::{check_records, decode, MAX_RECORDS_LEN};

/// "SHB1" as a little-endian u32.
pub const BATCH_MAGIC: u32 = u32::from_le_bytes(*b"SHB1");
/// Format version written by this code.
pub const BATCH_VERSION: u8 = 1;
/// Size of the fixed batch header in bytes.
pub const HEADER_LEN: usize = 62;
const CRC_START: usize = 12;
const BASE_OFFSET_AT: usize = 12;
const BODY_START: usize = 20;

/// Compression codec of a batch's records section.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Codec {
    #[default]
    None = 0,
    Lz4 = 1,
    Zstd = 2,
}

impl Codec {
    fn from_u8(v: u8) -> Option<Codec> {
        match v {
            0 => Some(Codec::None),
            1 => Some(Codec::Lz4),
            2 => Some(Codec::Zstd),
            _ => None,
        }
    }
}

/// Why a byte string is not a valid batch.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum BatchError {
    #[error("batch too short: {0} bytes")]
    TooShort(usize),
    #[error("bad batch magic {0:#010x}")]
    BadMagic(u32),
    #[error("batch length field {field} does not match the {actual} bytes given")]
    BadLength { field: usize, actual: usize },
    #[error("unsupported batch format version {0}")]
    BadVersion(u8),
    #[error("unknown compression codec {0}")]
    BadCodec(u8),
    #[error("batch CRC mismatch: stored {stored:#010x}, computed {computed:#010x}")]
    CrcMismatch { stored: u32, computed: u32 },
    #[error("batch holds no records")]
    Empty,
    #[error("malformed records section: {0}")]
    Malformed(&'static str),
    #[error("decompression failed: {0}")]
    Decompress(String),
    #[error(
        "records section of {records_len} bytes uncompressed exceeds the limit of {limit} bytes"
    )]
    TooLarge { records_len: usize, limit: usize },
    #[error("record {index} is {size} bytes; the limit is {limit} bytes")]
    RecordTooLarge {
        index: u32,
        size: usize,
        limit: usize,
    },
}

/// One record to encode.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Record {
    pub key: Option<Bytes>,
    pub value: Bytes,
    /// Milliseconds since the Unix epoch.
    pub timestamp: i64,
    pub headers: Vec<(String, Bytes)>,
}

/// A decoded record with its absolute offset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodedRecord {
    pub offset: u64,
    pub timestamp: i64,
    pub key: Option<Bytes>,
    pub value: Bytes,
    pub headers: Vec<(String, Bytes)>,
}

/// How many recent batches an agent remembers per idempotent producer and
/// partition (Kafka keeps 5): the most requests a producer may keep in
/// flight per partition. 16, because one partition's throughput still grew
/// from 5 to 16 in flight (docs/BENCHMARKS.md). Here, not in the engine,
/// because clients build against the batch format alone.
pub const REMEMBERED_BATCHES: usize = 16;

/// Idempotent-producer fields of a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ProducerInfo {
    /// 0 = not idempotent.
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub base_sequence: i32,
}

/// The fixed header of a batch, parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchHeader {
    pub length: u32,
    pub crc: u32,
    pub base_offset: u64,
    pub codec: Codec,
    /// Bit 0: [`FLAG_COMPACTED`]; the others are 0.
    pub flags: u16,
    /// Offsets the batch spans from `base_offset`: its records, or, in a
    /// compacted batch, the records it held before compaction.
    pub record_count: u32,
    pub first_timestamp: i64,
    pub max_timestamp: i64,
    pub producer: ProducerInfo,
    pub records_len: u32,
}

/// Memory one decoded record takes beyond its key, value and header bytes
/// on its way into a reply (the decoded struct and the reply's), bytes.
pub const DECODED_RECORD_OVERHEAD: usize = 128;

impl BatchHeader {
    /// What decoding this batch for a reply holds in memory, bytes: its
    /// records section plus [`DECODED_RECORD_OVERHEAD`] per record. Readers
    /// bound this by their byte limits, so empty records (7 bytes each in
    /// the batch) cannot inflate a reply past them.
    pub fn decoded_bytes(&self) -> usize {
        self.records_len as usize + self.record_count as usize * DECODED_RECORD_OVERHEAD
    }

    /// Whether key compaction rewrote the batch: it holds fewer records
    /// than the `record_count` offsets it spans (perhaps none).
    pub fn is_compacted(&self) -> bool {
        self.flags & FLAG_COMPACTED != 0
    }

    /// Offset of the last record (of the last offset the batch spans).
    pub fn last_offset(&self) -> u64 {
        self.base_offset + u64::from(self.record_count.max(1)) - 1
    }
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(a)
}

/// Parses the fixed header without checking the CRC. `buf` must start at the
/// batch; it may be longer than the batch.
pub fn parse_header(buf: &[u8]) -> Result<BatchHeader, BatchError> {
    if buf.len() < HEADER_LEN {
        return Err(BatchError::TooShort(buf.len()));
    }
    let magic = u32_at(buf, 0);
    if magic != BATCH_MAGIC {
        return Err(BatchError::BadMagic(magic));
    }
    let length = u32_at(buf, 4);
    if (length as usize) < HEADER_LEN {
        return Err(BatchError::BadLength {
            field: length as usize,
            actual: buf.len(),
        });
    }
    if buf[20] != BATCH_VERSION {
        return Err(BatchError::BadVersion(buf[20]));
    }
    let codec = Codec::from_u8(buf[21]).ok_or(BatchError::BadCodec(buf[21]))?;
    Ok(BatchHeader {
        length,
        crc: u32_at(buf, 8),
        base_offset: u64_at(buf, 12),
        codec,
        flags: u16::from_le_bytes([buf[22], buf[23]]),
        record_count: u32_at(buf, 24),
        first_timestamp: u64_at(buf, 28) as i64,
        max_timestamp: u64_at(buf, 36) as i64,
        producer: ProducerInfo {
            producer_id: u64_at(buf, 44) as i64,
            producer_epoch: i16::from_le_bytes([buf[52], buf[53]]),
            base_sequence: u32_at(buf, 54) as i32,
        },
        records_len: u32_at(buf, 58),
    })
}

/// Checks magic, length, version, codec, record count and CRC of exactly one
/// batch. Returns the parsed header.
pub fn validate(buf: &[u8]) -> Result<BatchHeader, BatchError> {
    let h = parse_header(buf)?;
    if h.length as usize != buf.len() {
        return Err(BatchError::BadLength {
            field: h.length as usize,
            actual: buf.len(),
        });
    }
    let computed = crc32c::crc32c(&buf[CRC_START..]);
    if computed != h.crc {
        return Err(BatchError::CrcMismatch {
            stored: h.crc,
            computed,
        });
    }
    if h.record_count == 0 {
        return Err(BatchError::Empty);
    }
    Ok(h)
}

/// Sets the base offset of an encoded batch and recomputes its CRC over
/// the whole body (so it also reseals a batch whose other fields were
/// edited). The log, which only moves the offset, patches the CRC from
/// the change instead: [`CheckedBatch::append_rebased`].
pub fn set_base_offset(buf: &mut [u8], base_offset: u64) {
    buf[BASE_OFFSET_AT..BODY_START].copy_from_slice(&base_offset.to_le_bytes());
    let crc = crc32c::crc32c(&buf[CRC_START..]);
    buf[8..12].copy_from_slice(&crc.to_le_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn rec(key: Option<&str>, value: &str, ts: i64) -> Record {
        Record {
            key: key.map(|k| Bytes::copy_from_slice(k.as_bytes())),
            value: Bytes::copy_from_slice(value.as_bytes()),
            timestamp: ts,
            headers: vec![],
        }
    }

    #[test]
    fn round_trip_every_codec() {
        for codec in [Codec::None, Codec::Lz4, Codec::Zstd] {
            let recs = vec![
                rec(Some("k"), "hello", 1000),
                rec(None, "world", 990),
                rec(Some(""), "", 2000),
            ];
            let mut b = encode(&recs, codec, ProducerInfo::default());
            validate(&b).unwrap();
            set_base_offset(&mut b, 42);
            let h = validate(&b).unwrap();
            assert_eq!(h.base_offset, 42);
            assert_eq!(h.max_timestamp, 2000);
            let (_, out) = decode(&Bytes::from(b)).unwrap();
            assert_eq!(out.len(), 3);
            for (i, (o, r)) in out.iter().zip(&recs).enumerate() {
                assert_eq!(o.offset, 42 + i as u64);
                assert_eq!(o.key, r.key);
                assert_eq!(o.value, r.value);
                assert_eq!(o.timestamp, r.timestamp);
            }
        }
    }

    /// Issue 14 item 13: a zstd failure used to leave an empty records
    /// section under a header claiming the records; now the batch is
    /// stored uncompressed and every record decodes.
    #[test]
    fn a_failed_zstd_compression_stores_the_batch_uncompressed() {
        let mut b = BatchBuilder::new(Codec::Zstd, ProducerInfo::default());
        b.push(Some(b"k"), b"hello", 5, &[]);
        b.push(None, b"world", 6, &[]);
        let out = b.finish_with(|_| Err(std::io::Error::other("out of memory")));
        let h = validate(&out).unwrap();
        assert_eq!(h.codec, Codec::None);
        let (_, recs) = decode(&Bytes::from(out)).unwrap();
        let values: Vec<&[u8]> = recs.iter().map(|r| &r.value[..]).collect();
        assert_eq!(values, [&b"hello"[..], &b"world"[..]]);
    }

    #[test]
    fn every_single_bit_flip_is_detected() {
        let mut recs = vec![];
        for i in 0..5 {
            recs.push(Record {
                key: Some(Bytes::from(format!("key{i}"))),
                value: Bytes::from(vec![i as u8; 30]),
                timestamp: 1_700_000_000_000 + i,
                headers: vec![("h".into(), Bytes::from_static(b"v"))],
            });
        }
        let mut b = encode(&recs, Codec::None, ProducerInfo::default());
        set_base_offset(&mut b, 7);
        for byte in 0..b.len() {
            for bit in 0..8 {
                let mut c = b.clone();
                c[byte] ^= 1 << bit;
                assert!(
                    validate(&c).is_err(),
                    "flip of byte {byte} bit {bit} went unnoticed"
                );
            }
        }
    }

    #[test]
    fn truncated_batches_are_rejected() {
        let b = encode(&[rec(None, "abc", 1)], Codec::None, ProducerInfo::default());
        for n in 0..b.len() {
            assert!(validate(&b[..n]).is_err());
        }
    }

    #[test]
    fn empty_batch_is_rejected() {
        let b = BatchBuilder::new(Codec::None, ProducerInfo::default()).finish();
        assert_eq!(validate(&b), Err(BatchError::Empty));
    }

    /// A batch with a valid CRC whose header lies about its records.
    fn lying(codec: Codec, count: Option<u32>, records_len: Option<u32>) -> Vec<u8> {
        let mut b = encode(&[rec(None, "abc", 1)], codec, ProducerInfo::default());
        if let Some(c) = count {
            b[24..28].copy_from_slice(&c.to_le_bytes());
        }
        if let Some(l) = records_len {
            b[58..62].copy_from_slice(&l.to_le_bytes());
        }
        set_base_offset(&mut b, 0);
        b
    }

    #[test]
    fn lying_counts_and_lengths_are_errors_not_allocations() {
        for codec in [Codec::None, Codec::Lz4, Codec::Zstd] {
            for (count, len) in [
                (Some(u32::MAX), None),
                (Some(2), None),
                (None, Some(u32::MAX)),
                (None, Some(3)),
                (None, Some(1 << 20)),
            ] {
                let b = lying(codec, count, len);
                validate(&b).expect("the CRC is valid");
                assert!(
                    check_records(&b, 8 << 20, 8 << 20).is_err(),
                    "{codec:?} {count:?} {len:?}"
                );
                assert!(
                    decode(&Bytes::from(b)).is_err(),
                    "{codec:?} {count:?} {len:?}"
                );
            }
        }
        let too_big = lying(Codec::Lz4, None, Some(9 << 20));
        assert!(matches!(
            check_records(&too_big, 8 << 20, 8 << 20),
            Err(BatchError::TooLarge { .. })
        ));
    }

    proptest! {
        #[test]
        fn prop_round_trip(
            records in proptest::collection::vec(
                (proptest::option::of(proptest::collection::vec(any::<u8>(), 0..40)),
                 proptest::collection::vec(any::<u8>(), 0..300),
                 any::<i64>(),
                 proptest::collection::vec(("[a-z]{0,5}", proptest::collection::vec(any::<u8>(), 0..10)), 0..3)),
                1..40),
            codec in prop_oneof![Just(Codec::None), Just(Codec::Lz4), Just(Codec::Zstd)],
            base in 0u64..u64::MAX / 2,
            pid in any::<i64>(), epoch in any::<i16>(), seq in any::<i32>(),
        ) {
            let recs: Vec<Record> = records.into_iter().map(|(k, v, ts, hs)| Record {
                key: k.map(Bytes::from),
                value: Bytes::from(v),
                timestamp: ts,
                headers: hs.into_iter().map(|(k, v)| (k, Bytes::from(v))).collect(),
            }).collect();
            let producer = ProducerInfo { producer_id: pid, producer_epoch: epoch, base_sequence: seq };
            let mut b = encode(&recs, codec, producer);
            set_base_offset(&mut b, base);
            let h = validate(&b).unwrap();
            prop_assert_eq!(check_records(&b, MAX_RECORDS_LEN, usize::MAX).unwrap(), h);
            prop_assert_eq!(h.producer, producer);
            prop_assert_eq!(h.record_count as usize, recs.len());
            let (_, out) = decode(&Bytes::from(b)).unwrap();
            for (i, (o, r)) in out.iter().zip(&recs).enumerate() {
                prop_assert_eq!(o.offset, base + i as u64);
                prop_assert_eq!(&o.key, &r.key);
                prop_assert_eq!(&o.value, &r.value);
                prop_assert_eq!(o.timestamp, r.timestamp);
                prop_assert_eq!(&o.headers, &r.headers);
            }
        }
    }
}
