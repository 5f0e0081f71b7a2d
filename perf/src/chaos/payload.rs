//! The bytes of one chaos record: which stream wrote it, to which
//! partition, its sequence number, padding derived from the sequence
//! number, and a CRC32C over all of it, so the checker can tell a record
//! that was altered from one that is merely somewhere else. Owns the
//! encoding only.

/// Leading bytes of every chaos record.
const MAGIC: &[u8; 4] = b"SHX1";
/// Magic, stream, partition, sequence number.
const HEADER: usize = 4 + 1 + 4 + 8;
/// Smallest record: the header and the CRC.
pub const MIN_SIZE: usize = HEADER + 4;

/// What a record says about itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Stamp {
    pub stream: u8,
    pub partition: u32,
    pub seq: u64,
}

/// A record of `size` bytes (at least [`MIN_SIZE`]).
pub fn encode(s: Stamp, size: usize) -> Vec<u8> {
    let size = size.max(MIN_SIZE);
    let mut v = Vec::with_capacity(size);
    v.extend_from_slice(MAGIC);
    v.push(s.stream);
    v.extend_from_slice(&s.partition.to_le_bytes());
    v.extend_from_slice(&s.seq.to_le_bytes());
    let pad = size - MIN_SIZE;
    v.extend((0..pad).map(|i| (s.seq as usize).wrapping_mul(31).wrapping_add(i) as u8));
    let crc = crc32c::crc32c(&v);
    v.extend_from_slice(&crc.to_le_bytes());
    v
}

/// The stamp of an intact record; `None` for bytes that are not one
/// (altered, truncated, or never written by the chaos run).
pub fn decode(v: &[u8]) -> Option<Stamp> {
    if v.len() < MIN_SIZE || &v[..4] != MAGIC {
        return None;
    }
    let (body, crc) = v.split_at(v.len() - 4);
    if crc32c::crc32c(body).to_le_bytes() != crc {
        return None;
    }
    let s = Stamp {
        stream: body[4],
        partition: u32::from_le_bytes(body[5..9].try_into().ok()?),
        seq: u64::from_le_bytes(body[9..17].try_into().ok()?),
    };
    // The padding is derived from the sequence number: a record whose
    // header and CRC were both rewritten consistently still fails here.
    let pad_ok = body[HEADER..]
        .iter()
        .enumerate()
        .all(|(i, b)| *b == (s.seq as usize).wrapping_mul(31).wrapping_add(i) as u8);
    pad_ok.then_some(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_refuses_any_flipped_byte() {
        let s = Stamp {
            stream: 3,
            partition: 7,
            seq: 123_456,
        };
        let v = encode(s, 64);
        assert_eq!(v.len(), 64);
        assert_eq!(decode(&v), Some(s));
        for i in 0..v.len() {
            let mut w = v.clone();
            w[i] ^= 0x10;
            assert_eq!(decode(&w), None, "flip at {i} went unnoticed");
        }
        assert_eq!(decode(&v[..v.len() - 1]), None);
        assert_eq!(encode(s, 0).len(), MIN_SIZE);
    }
}
