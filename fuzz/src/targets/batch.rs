//! The batch decoder and the agent's full check of an untrusted batch.
//! Input byte 0 chooses whether the harness first makes the length field
//! and CRC right (so the fuzzer gets past them into the records section).
//! Must hold: `check_records` accepting a batch means `decode` reads
//! exactly `record_count` records with offsets base, base + 1, ..., and
//! the log's copy of it at another base offset (CRC moved from the
//! change, `CheckedBatch::append_rebased`) validates with that offset.

use bytes::Bytes;
use streamhouse_proto::batch::{self, HEADER_LEN};

/// Limits as the agent's defaults: 8 MiB per record, 64 MiB per section.
const MAX_RECORD: usize = 8 << 20;
const MAX_SECTION: usize = 64 << 20;

pub fn run(data: &[u8]) {
    let Some((mode, rest)) = data.split_first() else {
        return;
    };
    let mut buf = rest.to_vec();
    if mode & 1 == 1 && buf.len() >= HEADER_LEN {
        let len = buf.len() as u32;
        buf[4..8].copy_from_slice(&len.to_le_bytes());
        let base = u64::from_le_bytes(buf[12..20].try_into().unwrap_or([0; 8]));
        batch::set_base_offset(&mut buf, base);
    }
    let _ = batch::parse_header(&buf);
    let _ = batch::validate(&buf);
    let checked = batch::check_records(&buf, MAX_SECTION, MAX_RECORD);
    let whole = Bytes::from(buf);
    if let Ok(c) = batch::CheckedBatch::check(whole.clone(), MAX_SECTION, MAX_RECORD) {
        let moved_to = c.header().base_offset ^ (u64::from(*mode) << 40) ^ 12_345;
        let mut out = vec![0xAB; usize::from(*mode & 7)];
        c.append_rebased(&mut out, moved_to);
        match batch::validate(&out[usize::from(*mode & 7)..]) {
            Ok(h) => assert_eq!(h.base_offset, moved_to),
            Err(e) => panic!("a checked batch moved to {moved_to} no longer validates: {e}"),
        }
    }
    let decoded = batch::decode(&whole);
    if let Ok(h) = checked {
        let (dh, records) = match decoded {
            Ok(d) => d,
            Err(e) => panic!("check_records accepted a batch that decode refuses: {e}"),
        };
        assert_eq!(dh.record_count, h.record_count);
        assert_eq!(records.len(), h.record_count as usize);
        for (i, r) in records.iter().enumerate() {
            assert_eq!(r.offset, h.base_offset.wrapping_add(i as u64));
        }
    }
}
