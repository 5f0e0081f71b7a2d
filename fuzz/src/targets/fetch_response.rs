//! The client's handling of a Fetch answer: the protobuf decode tonic does,
//! then the consumer's check before it trusts the records
//! (`consumer::accept_response`). Input bytes 0..8 are the offset asked
//! for; the rest is the answer message.
//! Must hold: nothing panics; an accepted answer's records are in strictly
//! increasing offsets from the one asked for, and its log start is no
//! later than its high watermark.

use prost::Message;
use streamhouse_client::consumer::accept_response;
use streamhouse_proto as pb;

use super::Cursor;

pub fn run(data: &[u8]) {
    let mut c = Cursor::new(data);
    let asked = u64::from(c.u32()) | (u64::from(c.u32()) << 32);
    let Ok(resp) = pb::FetchResponse::decode(c.rest()) else {
        return;
    };
    let Ok(f) = accept_response("t", 0, asked, resp) else {
        return;
    };
    let mut next = asked;
    for r in &f.records {
        assert!(
            r.offset >= next,
            "offset {} accepted where {next} was due",
            r.offset
        );
        next = r.offset + 1;
    }
    assert!(f.log_start <= f.high_watermark);
}
