//! WAL frame parsing and the recovery scan over arbitrary segment files.
//! Input byte 0 chooses the mode: raw bytes as a segment file, or frames
//! the harness builds from the input (valid headers, CRCs and batches,
//! then a cut and a flipped byte chosen by the input), so the scan is
//! exercised past its CRC checks. `is_last` (torn tail allowed) is bit 1.
//! Must hold: a scan never panics; an accepted scan's frames lie inside
//! the valid length, in order; the valid and torn lengths add up to the
//! file, or nothing is torn and only zeros (unwritten space) follow the
//! valid length.

use std::path::Path;

use streamhouse_proto::batch::{self, HEADER_LEN};
use streamhouse_storage::segment;

use super::Cursor;

pub fn run(data: &[u8]) {
    let mut c = Cursor::new(data);
    let mode = c.u8();
    let is_last = mode & 2 != 0;
    let buf = if mode & 1 == 0 {
        c.rest().to_vec()
    } else {
        build(&mut c)
    };
    check(&buf, is_last);
}

fn check(buf: &[u8], is_last: bool) {
    if !buf.is_empty() {
        let _ = segment::parse_frame(buf, 0);
    }
    let Ok(scan) = segment::scan(Path::new("fuzz.wal"), buf, is_last) else {
        return;
    };
    let valid = usize::try_from(scan.valid_len).unwrap_or(usize::MAX);
    if scan.torn_bytes == 0 {
        // A clean end: what follows the valid frames is unwritten (zeros).
        assert!(valid <= buf.len(), "valid length past the file");
        assert!(
            buf[valid..].iter().all(|b| *b == 0),
            "bytes after the valid length that are neither zeros nor torn"
        );
    } else {
        assert_eq!(scan.valid_len + scan.torn_bytes, buf.len() as u64);
    }
    let mut end = 0u64;
    for f in &scan.frames {
        assert!(f.pos >= end, "frames overlap");
        end = f.pos + u64::from(f.len);
        assert!(end <= scan.valid_len, "a frame past the valid length");
    }
}

/// Frames from the input: per frame a topic (up to 16 bytes), partition,
/// generation step and a batch (made valid when long enough), then one cut
/// and one flipped byte.
fn build(c: &mut Cursor) -> Vec<u8> {
    let mut out = Vec::new();
    let mut gen = 0u64;
    let frames = c.u8() % 8;
    for _ in 0..frames {
        let topic_len = usize::from(c.u8() % 17);
        let topic = String::from_utf8_lossy(c.bytes(topic_len)).into_owned();
        let partition = u32::from(c.u8() % 4);
        gen += u64::from(c.u8() % 3);
        let restart = c.u8().is_multiple_of(8);
        let mut frame = if restart {
            segment::restart_frame(&topic, partition, u64::from(c.u32()))
        } else {
            let batch_len = usize::from(c.u16() % 2048);
            let mut b = c.bytes(batch_len).to_vec();
            if b.len() >= HEADER_LEN {
                b[0..4].copy_from_slice(&batch::BATCH_MAGIC.to_le_bytes());
                let len = b.len() as u32;
                b[4..8].copy_from_slice(&len.to_le_bytes());
                b[20] = batch::BATCH_VERSION;
                b[21] %= 3;
                batch::set_base_offset(&mut b, u64::from(c.u16()));
            }
            let mut f = segment::frame_header(&topic, partition, b.len());
            f.extend_from_slice(&b);
            f
        };
        segment::seal_frame_header(&mut frame, gen);
        out.extend_from_slice(&frame);
    }
    if !out.is_empty() {
        let cut = usize::from(c.u16());
        if cut < out.len() && c.u8().is_multiple_of(2) {
            out.truncate(cut);
        }
        let flip = usize::from(c.u16());
        let bit = c.u8();
        if let Some(b) = out.get_mut(flip) {
            *b ^= bit;
        }
    }
    out.extend_from_slice(c.rest());
    out
}
