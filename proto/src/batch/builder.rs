//! Building batches: [`BatchBuilder`] record by record, [`encode`] in
//! one call, with the varint encoding of the records section. Owns the
//! writing side of the format only (the header layout is the parent
//! module's; reading is `records`).

use bytes::Bytes;

use super::{
    parse_header, BatchError, CheckedBatch, Codec, ProducerInfo, Record, BATCH_MAGIC,
    BATCH_VERSION, CRC_START, HEADER_LEN,
};

fn put_uvarint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn put_svarint(out: &mut Vec<u8>, v: i64) {
    put_uvarint(out, ((v << 1) ^ (v >> 63)) as u64);
}

fn uvarint_len(mut v: u64) -> usize {
    let mut n = 1;
    while v >= 0x80 {
        v >>= 7;
        n += 1;
    }
    n
}

/// Builds one batch record by record. `finish` produces the encoded bytes with
/// base offset 0 and a valid CRC.
#[derive(Debug)]
pub struct BatchBuilder {
    codec: Codec,
    producer: ProducerInfo,
    records: Vec<u8>,
    pub(super) count: u32,
    pub(super) first_timestamp: i64,
    pub(super) max_timestamp: i64,
    /// Set for a compacted batch: its flags and the offsets it spans (its
    /// timestamps are the original's; see `compacted`).
    pub(super) rewrite: Option<(u16, u32)>,
}

impl BatchBuilder {
    pub fn new(codec: Codec, producer: ProducerInfo) -> Self {
        BatchBuilder {
            codec,
            producer,
            records: vec![0; HEADER_LEN],
            count: 0,
            first_timestamp: 0,
            max_timestamp: 0,
            rewrite: None,
        }
    }

    /// Builder with room for `bytes` of records reserved.
    pub fn with_capacity(codec: Codec, producer: ProducerInfo, bytes: usize) -> Self {
        let mut b = Self::new(codec, producer);
        b.records.reserve(bytes);
        b
    }

    pub fn len(&self) -> u32 {
        self.count
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Sets the idempotent-producer fields written by `finish` (producers
    /// assign sequences when a batch closes, not when it opens).
    pub fn set_producer(&mut self, producer: ProducerInfo) {
        self.producer = producer;
    }

    /// Size of the records section so far, before compression.
    pub fn records_bytes(&self) -> usize {
        self.records.len() - HEADER_LEN
    }

    /// Appends a record; its offset is the next one in the batch.
    pub fn push(
        &mut self,
        key: Option<&[u8]>,
        value: &[u8],
        timestamp: i64,
        headers: &[(String, Bytes)],
    ) {
        self.push_at(u64::from(self.count), key, value, timestamp, headers);
    }

    /// Appends a record at offset delta `off_delta` (in a dense batch, the
    /// record count so far).
    pub(super) fn push_at(
        &mut self,
        off_delta: u64,
        key: Option<&[u8]>,
        value: &[u8],
        timestamp: i64,
        headers: &[(String, Bytes)],
    ) {
        if self.rewrite.is_none() {
            if self.count == 0 {
                self.first_timestamp = timestamp;
                self.max_timestamp = timestamp;
            }
            self.max_timestamp = self.max_timestamp.max(timestamp);
        }
        let ts_delta = timestamp.wrapping_sub(self.first_timestamp);
        let mut body_len = 0usize;
        let zz = ((ts_delta << 1) ^ (ts_delta >> 63)) as u64;
        body_len += uvarint_len(zz);
        body_len += uvarint_len(off_delta);
        let key_tag = key.map_or(0, |k| k.len() as u64 + 1);
        body_len += uvarint_len(key_tag) + key.map_or(0, <[u8]>::len);
        body_len += uvarint_len(value.len() as u64) + value.len();
        body_len += uvarint_len(headers.len() as u64);
        for (k, v) in headers {
            body_len += uvarint_len(k.len() as u64) + k.len();
            body_len += uvarint_len(v.len() as u64) + v.len();
        }
        let r = &mut self.records;
        r.reserve(body_len + 5);
        put_uvarint(r, body_len as u64);
        put_svarint(r, ts_delta);
        put_uvarint(r, off_delta);
        put_uvarint(r, key_tag);
        if let Some(k) = key {
            r.extend_from_slice(k);
        }
        put_uvarint(r, value.len() as u64);
        r.extend_from_slice(value);
        put_uvarint(r, headers.len() as u64);
        for (k, v) in headers {
            put_uvarint(r, k.len() as u64);
            r.extend_from_slice(k.as_bytes());
            put_uvarint(r, v.len() as u64);
            r.extend_from_slice(v);
        }
        self.count += 1;
    }

    /// Encodes the batch (base offset 0). Uncompressed batches are finished
    /// in place: the header was reserved at the front, so nothing is copied.
    pub fn finish(self) -> Vec<u8> {
        // Level 1: fast.
        self.finish_with(|body| zstd::bulk::compress(body, 1))
    }

    /// [`finish`](Self::finish) as a [`CheckedBatch`], for a writer that
    /// hands what it built straight to a log: nothing is checked again.
    /// [`BatchError::Empty`] when no record was pushed.
    pub fn finish_checked(self) -> Result<CheckedBatch, BatchError> {
        let out = self.finish();
        let header = parse_header(&out)?;
        if header.record_count == 0 {
            return Err(BatchError::Empty);
        }
        Ok(CheckedBatch::built(header, Bytes::from(out)))
    }

    /// [`finish`](Self::finish) with the zstd compressor given: when it
    /// fails, the batch is stored uncompressed (its header says so), never
    /// as an empty body.
    pub(super) fn finish_with(
        mut self,
        zstd: impl FnOnce(&[u8]) -> std::io::Result<Vec<u8>>,
    ) -> Vec<u8> {
        let records_len = (self.records.len() - HEADER_LEN) as u32;
        let compressed = match self.codec {
            Codec::None => None,
            Codec::Lz4 => Some(lz4_flex::compress(&self.records[HEADER_LEN..])),
            Codec::Zstd => match zstd(&self.records[HEADER_LEN..]) {
                Ok(c) => Some(c),
                Err(_) => {
                    self.codec = Codec::None;
                    None
                }
            },
        };
        let mut out = match compressed {
            None => self.records,
            Some(compressed) => {
                let mut out = Vec::with_capacity(HEADER_LEN + compressed.len());
                out.resize(HEADER_LEN, 0);
                out.extend_from_slice(&compressed);
                out
            }
        };
        let length = out.len() as u32;
        let mut h = [0u8; HEADER_LEN];
        h[0..4].copy_from_slice(&BATCH_MAGIC.to_le_bytes());
        h[4..8].copy_from_slice(&length.to_le_bytes());
        // 8..12 crc and 12..20 base offset stay zero here.
        h[20] = BATCH_VERSION;
        h[21] = self.codec as u8;
        let (flags, count) = self.rewrite.unwrap_or((0, self.count));
        h[22..24].copy_from_slice(&flags.to_le_bytes());
        h[24..28].copy_from_slice(&count.to_le_bytes());
        h[28..36].copy_from_slice(&self.first_timestamp.to_le_bytes());
        h[36..44].copy_from_slice(&self.max_timestamp.to_le_bytes());
        h[44..52].copy_from_slice(&self.producer.producer_id.to_le_bytes());
        h[52..54].copy_from_slice(&self.producer.producer_epoch.to_le_bytes());
        h[54..58].copy_from_slice(&self.producer.base_sequence.to_le_bytes());
        h[58..62].copy_from_slice(&records_len.to_le_bytes());
        out[..HEADER_LEN].copy_from_slice(&h);
        let crc = crc32c::crc32c(&out[CRC_START..]);
        out[8..12].copy_from_slice(&crc.to_le_bytes());
        out
    }
}

/// Encodes a whole batch from records in one call.
pub fn encode(records: &[Record], codec: Codec, producer: ProducerInfo) -> Vec<u8> {
    let mut b = BatchBuilder::new(codec, producer);
    for r in records {
        b.push(r.key.as_deref(), &r.value, r.timestamp, &r.headers);
    }
    b.finish()
}
