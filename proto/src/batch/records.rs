//! The records section of a batch: walking it with every count and length
//! checked against the bytes present, decompressing it within its declared
//! size, decoding it into records, and the full check an agent runs on an
//! untrusted batch before acknowledging it. Owns no header or builder code
//! (see the parent module) and allocates nothing from an unchecked count.

use std::cell::RefCell;

use bytes::Bytes;

use super::{parse_header, validate, BatchError, BatchHeader, Codec, DecodedRecord, HEADER_LEN};

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn uvarint(&mut self) -> Result<u64, BatchError> {
        let mut v: u64 = 0;
        for shift in (0..64).step_by(7) {
            let b = *self
                .buf
                .get(self.pos)
                .ok_or(BatchError::Malformed("truncated varint"))?;
            self.pos += 1;
            v |= u64::from(b & 0x7f) << shift;
            if b < 0x80 {
                return Ok(v);
            }
        }
        Err(BatchError::Malformed("varint too long"))
    }
    fn svarint(&mut self) -> Result<i64, BatchError> {
        let u = self.uvarint()?;
        Ok(((u >> 1) as i64) ^ -((u & 1) as i64))
    }
    fn take(&mut self, n: usize) -> Result<&'a [u8], BatchError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|e| *e <= self.buf.len())
            .ok_or(BatchError::Malformed("length past end of records"))?;
        let s = &self.buf[self.pos..end];
        self.pos = end;
        Ok(s)
    }
    fn len_prefixed(&mut self) -> Result<&'a [u8], BatchError> {
        let n = usize::try_from(self.uvarint()?)
            .map_err(|_| BatchError::Malformed("length overflow"))?;
        self.take(n)
    }
}

/// The largest records section (before compression) any batch may declare,
/// in bytes: 256 MiB. Decoding never allocates more than this for one batch,
/// whatever its header says; agents cap requests well below it
/// (`--max-request-bytes`, default 8 MiB).
pub const MAX_RECORDS_LEN: usize = 256 << 20;

/// The fewest bytes one record takes in the records section (length, four
/// one-byte varints and an empty value): bounds how many records a section
/// of a given size can hold, so no untrusted count sizes an allocation.
const MIN_RECORD_BYTES: usize = 6;

/// One record of a records section, borrowed from it.
struct RawRecord<'a> {
    ts_delta: i64,
    off_delta: u64,
    key: Option<&'a [u8]>,
    value: &'a [u8],
    headers: Vec<(&'a str, &'a [u8])>,
}

/// How many records a records section holds: exactly `record_count`, or,
/// in a compacted batch, as many as it holds (none to `record_count`).
#[derive(Debug, Clone, Copy)]
enum Count {
    Exactly(u32),
    AtMost(u32),
}

/// Walks the records of an uncompressed records section, checking every
/// length against the bytes present, that each record's fields fill
/// exactly its declared length, and that nothing follows the last record.
fn walk_records<'a>(
    records: &'a [u8],
    count: Count,
    mut visit: impl FnMut(u32, RawRecord<'a>) -> Result<(), BatchError>,
) -> Result<(), BatchError> {
    let mut r = Reader {
        buf: records,
        pos: 0,
    };
    let (most, exact) = match count {
        Count::Exactly(n) => (n, true),
        Count::AtMost(n) => (n, false),
    };
    for i in 0..most {
        if r.pos == records.len() {
            if !exact {
                break;
            }
            return Err(BatchError::Malformed("fewer records than the record count"));
        }
        let rec = r.len_prefixed()?;
        let mut rr = Reader { buf: rec, pos: 0 };
        let ts_delta = rr.svarint()?;
        let off_delta = rr.uvarint()?;
        let key = match rr.uvarint()? {
            0 => None,
            tag => {
                let n = usize::try_from(tag - 1)
                    .map_err(|_| BatchError::Malformed("key length overflow"))?;
                Some(rr.take(n)?)
            }
        };
        let value = rr.len_prefixed()?;
        let nh = rr.uvarint()?;
        // Each header takes at least two bytes: the count cannot size an
        // allocation beyond what the record holds.
        let room = (rec.len() - rr.pos) / 2;
        if nh > room as u64 {
            return Err(BatchError::Malformed("more headers than the record holds"));
        }
        let mut headers = Vec::with_capacity(nh as usize);
        for _ in 0..nh {
            let k = std::str::from_utf8(rr.len_prefixed()?)
                .map_err(|_| BatchError::Malformed("header key is not UTF-8"))?;
            headers.push((k, rr.len_prefixed()?));
        }
        if rr.pos != rec.len() {
            return Err(BatchError::Malformed(
                "record fields do not fill the record's length",
            ));
        }
        visit(
            i,
            RawRecord {
                ts_delta,
                off_delta,
                key,
                value,
                headers,
            },
        )?;
    }
    if r.pos != records.len() {
        return Err(BatchError::Malformed("more records than the record count"));
    }
    Ok(())
}

/// The declared records section size of `h`, refused above `limit` (and
/// above [`MAX_RECORDS_LEN`]) before anything is allocated for it.
fn section_len(h: &BatchHeader, limit: usize) -> Result<usize, BatchError> {
    let len = h.records_len as usize;
    let limit = limit.min(MAX_RECORDS_LEN);
    if len > limit {
        return Err(BatchError::TooLarge {
            records_len: len,
            limit,
        });
    }
    Ok(len)
}

/// Decompresses a records section into at most `len` bytes.
fn decompress(compressed: &[u8], codec: Codec, len: usize) -> Result<Vec<u8>, BatchError> {
    let out = match codec {
        Codec::None => Ok(compressed.to_vec()),
        Codec::Lz4 => lz4_flex::decompress(compressed, len).map_err(|e| e.to_string()),
        Codec::Zstd => zstd::bulk::decompress(compressed, len).map_err(|e| e.to_string()),
    };
    out.map_err(BatchError::Decompress)
}

/// What [`check_records`] keeps per thread between calls: the buffer it
/// inflates compressed sections into and a zstd context, so checking a
/// compressed batch allocates nothing once warm.
#[derive(Default)]
struct Inflater {
    buf: Vec<u8>,
    zstd: Option<zstd::bulk::Decompressor<'static>>,
}

/// An [`Inflater`] whose buffer grew past this many bytes (16 MiB) is
/// freed after use: a thread keeps at most this much between checks.
const INFLATER_KEEP_BYTES: usize = 16 << 20;

thread_local! {
    static INFLATER: RefCell<Inflater> = RefCell::new(Inflater::default());
}

/// Runs `f` on the records section `compressed` inflated with `codec`
/// into at most `len` bytes, in this thread's [`Inflater`] (an
/// uncompressed section as it is).
fn with_inflated<T>(
    compressed: &[u8],
    codec: Codec,
    len: usize,
    f: impl FnOnce(&[u8]) -> Result<T, BatchError>,
) -> Result<T, BatchError> {
    if codec == Codec::None {
        return f(compressed);
    }
    INFLATER.with(|cell| {
        let Ok(mut inf) = cell.try_borrow_mut() else {
            // Called from inside `f` (nothing does today): inflate apart.
            return f(&decompress(compressed, codec, len)?);
        };
        let inf = &mut *inf;
        if inf.buf.len() < len {
            inf.buf.resize(len, 0);
        }
        let out = &mut inf.buf[..len];
        let n = match codec {
            Codec::None => Ok(0), // returned above
            Codec::Lz4 => {
                lz4_flex::block::decompress_into(compressed, out).map_err(|e| e.to_string())
            }
            Codec::Zstd => {
                let z = match inf.zstd.take() {
                    Some(z) => Ok(z),
                    None => zstd::bulk::Decompressor::new(),
                };
                z.map_err(|e| e.to_string()).and_then(|mut z| {
                    let n = z.decompress_to_buffer(compressed, out);
                    inf.zstd = Some(z);
                    n.map_err(|e| e.to_string())
                })
            }
        };
        let result = match n {
            Ok(n) => f(&inf.buf[..n]),
            Err(e) => Err(BatchError::Decompress(e)),
        };
        if inf.buf.len() > INFLATER_KEEP_BYTES {
            inf.buf = Vec::new();
        }
        result
    })
}

/// Checks an (uncompressed) records section against its header: the size
/// `records_len` promised, and room for `record_count` records (unless
/// compacted).
fn check_section(section: &[u8], h: &BatchHeader) -> Result<(), BatchError> {
    if section.len() != h.records_len as usize {
        return Err(BatchError::Malformed(
            "records_len does not match the records section",
        ));
    }
    // A compacted batch spans more offsets than it holds records.
    if !h.is_compacted() && section.len() / MIN_RECORD_BYTES < h.record_count as usize {
        return Err(BatchError::Malformed(
            "record count is larger than the records section can hold",
        ));
    }
    Ok(())
}

/// The records section of the batch `shared` whose header is `h`,
/// decompressed if needed, checked with [`check_section`].
fn records_section(shared: &Bytes, h: &BatchHeader, limit: usize) -> Result<Bytes, BatchError> {
    let len = section_len(h, limit)?;
    let records = match h.codec {
        Codec::None => shared.slice(HEADER_LEN..),
        codec => Bytes::from(decompress(&shared[HEADER_LEN..], codec, len)?),
    };
    check_section(&records, h)?;
    Ok(records)
}

/// Decodes every record of a batch. `shared` must hold exactly the batch;
/// values borrow from it when the batch is uncompressed. Every length and
/// count is checked against the bytes present (a lying header is an error,
/// never a huge allocation); call `validate` first to check the CRC.
pub fn decode(shared: &Bytes) -> Result<(BatchHeader, Vec<DecodedRecord>), BatchError> {
    let h = parse_header(shared)?;
    if h.length as usize != shared.len() {
        return Err(BatchError::BadLength {
            field: h.length as usize,
            actual: shared.len(),
        });
    }
    let records = records_section(shared, &h, MAX_RECORDS_LEN)?;
    // Bounded by the section's size, not by the header's count.
    let room = (records.len() / MIN_RECORD_BYTES).min(h.record_count as usize);
    let mut out = Vec::with_capacity(room);
    let count = if h.is_compacted() {
        Count::AtMost(h.record_count)
    } else {
        Count::Exactly(h.record_count)
    };
    // A compacted batch's deltas grow strictly (below the span, as the
    // walk's bound on the count does not ensure).
    let mut next_delta = 0u64;
    walk_records(&records, count, |_, r| {
        if h.is_compacted() {
            if r.off_delta < next_delta || r.off_delta >= u64::from(h.record_count) {
                return Err(BatchError::Malformed(
                    "a compacted batch's offset deltas do not grow within its span",
                ));
            }
            next_delta = r.off_delta + 1;
        }
        out.push(DecodedRecord {
            offset: h.base_offset.wrapping_add(r.off_delta),
            timestamp: h.first_timestamp.wrapping_add(r.ts_delta),
            key: r.key.map(|k| records.slice_ref(k)),
            value: records.slice_ref(r.value),
            headers: r
                .headers
                .into_iter()
                .map(|(k, v)| (k.to_owned(), records.slice_ref(v)))
                .collect(),
        });
        Ok(())
    })?;
    Ok((h, out))
}

/// Checks one untrusted batch completely, as an agent must before it
/// acknowledges it: everything `validate` checks (magic, length, version,
/// codec, CRC, at least one record), reserved flags zero, a records section
/// of at most `max_records_len` bytes uncompressed whose decompressed size
/// equals `records_len`, exactly `record_count` records with dense offset
/// deltas 0, 1, 2, ... and every length within bounds, and no record
/// (key + value + headers) over `max_record_bytes`. Keeps nothing;
/// allocates at most the decompressed section.
pub fn check_records(
    buf: &[u8],
    max_records_len: usize,
    max_record_bytes: usize,
) -> Result<BatchHeader, BatchError> {
    let h = validate(buf)?;
    let flags = u16::from_le_bytes([buf[22], buf[23]]);
    if flags != 0 {
        return Err(BatchError::Malformed("reserved flags are set"));
    }
    let len = section_len(&h, max_records_len)?;
    let compressed = &buf[HEADER_LEN..];
    let check = |section: &[u8]| {
        check_section(section, &h)?;
        walk_records(section, Count::Exactly(h.record_count), |i, r| {
            dense(i, &r)?;
            let size = r.key.map_or(0, <[u8]>::len)
                + r.value.len()
                + r.headers
                    .iter()
                    .map(|(k, v)| k.len() + v.len())
                    .sum::<usize>();
            if size > max_record_bytes {
                return Err(BatchError::RecordTooLarge {
                    index: i,
                    size,
                    limit: max_record_bytes,
                });
            }
            Ok(())
        })
    };
    match h.codec {
        // Uncompressed: walk the caller's bytes, no copy.
        Codec::None => check(compressed)?,
        codec => with_inflated(compressed, codec, len, check)?,
    }
    Ok(h)
}

fn dense(i: u32, r: &RawRecord<'_>) -> Result<(), BatchError> {
    if r.off_delta != u64::from(i) {
        return Err(BatchError::Malformed("offset deltas are not dense"));
    }
    Ok(())
}
