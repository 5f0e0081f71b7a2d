//! The request decoding the agent does on a shard port: the unary gRPC
//! message prefix (flag and declared length against the request limit),
//! the protobuf message of each RPC, the batch a Produce carries (checked
//! as the agent checks it before appending), and the `grpc-timeout`
//! header. Input byte 0 picks the RPC; byte 1 the part of the rest that is
//! a `grpc-timeout` value.
//! Must hold: nothing panics; a declared length over the limit is refused.

use bytes::Bytes;
use prost::Message;
use streamhouse_proto as pb;
use streamhouse_proto::framing;

/// The agent's default request limit (`--max-request-bytes`, 64 MiB) and
/// record limit (`--max-record-bytes`, 8 MiB).
const LIMIT: usize = 64 << 20;
const MAX_RECORD: usize = 8 << 20;

pub fn run(data: &[u8]) {
    let [kind, split, rest @ ..] = data else {
        return;
    };
    let cut = usize::from(*split).min(rest.len());
    let (timeout, body) = rest.split_at(cut);
    if let Ok(v) = http::HeaderValue::from_bytes(timeout) {
        if let Ok(text) = v.to_str() {
            let _ = framing::parse_timeout(text);
        }
    }
    let Some((flag, len)) = framing::split_prefix(body) else {
        return;
    };
    let prefix = framing::check_prefix(flag, len, LIMIT);
    if len > LIMIT {
        assert!(prefix.is_err(), "a message over the limit was accepted");
    }
    if prefix.is_err() {
        return;
    }
    let msg = Bytes::copy_from_slice(&body[framing::PREFIX_LEN..]);
    match kind % 9 {
        0 => {
            if let Ok(req) = pb::ProduceRequest::decode(msg) {
                let _ = streamhouse_proto::batch::check_records(&req.batch, LIMIT, MAX_RECORD);
                for r in &req.records {
                    let _ = (
                        r.key.as_ref().map(Bytes::len),
                        r.value.len(),
                        r.headers.len(),
                    );
                }
            }
        }
        1 => drop(pb::FetchRequest::decode(msg)),
        2 => drop(pb::CreateTopicRequest::decode(msg)),
        3 => drop(pb::DeleteTopicRequest::decode(msg)),
        4 => drop(pb::ListTopicsRequest::decode(msg)),
        5 => drop(pb::DescribeTopicRequest::decode(msg)),
        6 => drop(pb::MetadataRequest::decode(msg)),
        7 => drop(pb::InitProducerIdRequest::decode(msg)),
        _ => drop(pb::health::HealthCheckRequest::decode(msg)),
    }
}
