//! [`CheckedBatch`]: a batch checked once, carried with its parsed header
//! to the log, which copies it into its pending buffer with the base
//! offset and CRC patched there. Owns no record walking (see `records`)
//! and no file or network code.

use bytes::Bytes;

use super::crc::crc_after_change;
use super::records::check_records;
use super::{validate, BatchError, BatchHeader, BASE_OFFSET_AT, BODY_START};

/// A batch whose bytes were checked once, with the header that check
/// parsed. Made only by [`CheckedBatch::check`] (everything an agent checks
/// before acknowledging an untrusted batch), [`CheckedBatch::validated`]
/// (header, length and CRC: enough to store a batch from a trusted
/// writer) or [`BatchBuilder::finish_checked`](super::BatchBuilder::finish_checked);
/// so holding one means its header matches its bytes and its CRC is right.
#[derive(Debug, Clone)]
pub struct CheckedBatch {
    header: BatchHeader,
    bytes: Bytes,
}

impl CheckedBatch {
    /// Checks one untrusted batch completely (see [`check_records`]):
    /// header, CRC, reserved flags, a records section of at most
    /// `max_records_len` bytes uncompressed and no record over
    /// `max_record_bytes`. Keeps `bytes` without copying them.
    pub fn check(
        bytes: Bytes,
        max_records_len: usize,
        max_record_bytes: usize,
    ) -> Result<CheckedBatch, BatchError> {
        let header = check_records(&bytes, max_records_len, max_record_bytes)?;
        Ok(CheckedBatch { header, bytes })
    }

    /// Checks header, length, CRC and that the batch holds a record (see
    /// [`validate`]), not the records section: for batches from a trusted
    /// writer.
    pub fn validated(bytes: Bytes) -> Result<CheckedBatch, BatchError> {
        let header = validate(&bytes)?;
        Ok(CheckedBatch { header, bytes })
    }

    /// A batch this crate's builder made: its header is parsed, not
    /// checked again.
    pub(super) fn built(header: BatchHeader, bytes: Bytes) -> CheckedBatch {
        CheckedBatch { header, bytes }
    }

    /// The header parsed when the batch was checked.
    pub fn header(&self) -> &BatchHeader {
        &self.header
    }

    /// The batch's bytes, as checked.
    pub fn bytes(&self) -> &Bytes {
        &self.bytes
    }

    /// Length of the whole batch in bytes.
    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    /// Always false: a checked batch holds at least its header.
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// Appends the batch to `out` with its base offset set to
    /// `base_offset`: one copy, and the CRC moved from the change of the
    /// 8 offset bytes alone (no second pass over the body).
    pub fn append_rebased(&self, out: &mut Vec<u8>, base_offset: u64) {
        let start = out.len();
        out.extend_from_slice(&self.bytes);
        let batch = &mut out[start..];
        let mut old = [0u8; 8];
        old.copy_from_slice(&batch[BASE_OFFSET_AT..BODY_START]);
        let new = base_offset.to_le_bytes();
        let after = (batch.len() - BODY_START) as u32;
        let crc = crc_after_change(self.header.crc, old, new, after);
        batch[BASE_OFFSET_AT..BODY_START].copy_from_slice(&new);
        batch[8..12].copy_from_slice(&crc.to_le_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::super::{encode, validate, Codec, ProducerInfo, Record};
    use super::*;

    fn one(codec: Codec) -> Bytes {
        let r = Record {
            key: Some(Bytes::from_static(b"k")),
            value: Bytes::from(vec![9u8; 500]),
            timestamp: 7,
            headers: vec![],
        };
        Bytes::from(encode(&[r.clone(), r], codec, ProducerInfo::default()))
    }

    #[test]
    fn a_rebased_copy_validates_with_its_new_offset() {
        for codec in [Codec::None, Codec::Lz4, Codec::Zstd] {
            let b = CheckedBatch::check(one(codec), 1 << 20, 1 << 20).unwrap();
            let mut out = b"frame head".to_vec();
            b.append_rebased(&mut out, 1 << 40);
            let h = validate(&out[10..]).unwrap();
            assert_eq!(h.base_offset, 1 << 40);
            assert_eq!(h.record_count, 2);
        }
    }

    #[test]
    fn check_refuses_what_check_records_refuses() {
        let mut bad = one(Codec::None).to_vec();
        bad[70] ^= 1;
        assert!(matches!(
            CheckedBatch::check(Bytes::from(bad), 1 << 20, 1 << 20),
            Err(BatchError::CrcMismatch { .. })
        ));
        assert!(matches!(
            CheckedBatch::check(one(Codec::Lz4), 1 << 20, 10),
            Err(BatchError::RecordTooLarge { .. })
        ));
    }
}
