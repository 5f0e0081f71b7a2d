//! How an outcome reaches the caller: a future per record, a callback, or
//! one future for a `send_batch` call ([`Outcome`]). Knows nothing of
//! requests or retries.

use tokio::sync::oneshot;

use crate::error::Result;
use crate::record::{BatchMetadata, RecordMetadata};

/// How an outcome reaches the caller: per record, or once for the
/// `count` records of a `send_batch` call.
pub(super) enum Outcome {
    Future(oneshot::Sender<Result<RecordMetadata>>),
    Callback(Box<dyn FnOnce(Result<RecordMetadata>) + Send>),
    Batch {
        tx: oneshot::Sender<Result<BatchMetadata>>,
        count: u32,
    },
}

impl Outcome {
    /// `r` names the first record this outcome covers.
    pub(super) fn complete(self, r: Result<RecordMetadata>) {
        match self {
            Outcome::Future(tx) => {
                let _ = tx.send(r);
            }
            Outcome::Callback(f) => f(r),
            Outcome::Batch { tx, count } => {
                let _ = tx.send(r.map(|m| BatchMetadata {
                    topic: m.topic,
                    partition: m.partition,
                    base_offset: m.offset,
                    record_count: count,
                    timestamp: m.timestamp,
                }));
            }
        }
    }

    /// How many records this outcome covers.
    pub(super) fn records(&self) -> u32 {
        match self {
            Outcome::Batch { count, .. } => *count,
            _ => 1,
        }
    }
}

/// A record's notification and its timestamp.
pub(super) type Completion = (Outcome, i64);
