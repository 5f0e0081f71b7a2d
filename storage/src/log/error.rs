//! The shard log's errors ([`LogError`], [`ReopenError`]) and the helper
//! that turns a glommio I/O error into one. Imports nothing of the log.

use crate::batch::BatchError;
use crate::producers::SeqError;
use crate::segment::Corruption;

/// Errors of the shard log.
#[derive(Debug, Clone, thiserror::Error)]
pub enum LogError {
    #[error("unknown partition {topic}/{partition}")]
    UnknownPartition { topic: String, partition: u32 },
    #[error("invalid batch: {0}")]
    InvalidBatch(#[from] BatchError),
    #[error(transparent)]
    Sequence(#[from] SeqError),
    #[error("offset {offset} is out of range: the log starts at {log_start}")]
    OffsetOutOfRange { offset: u64, log_start: u64 },
    #[error(transparent)]
    Corrupt(#[from] Corruption),
    /// A batch whose CRC holds but whose records do not decode (accepted by
    /// an agent that checked only the header): readers get this for the
    /// batch and can read on from `next_offset`.
    #[error(
        "batch of {topic}/{partition} at offsets {offset}..{next_offset} cannot be decoded \
         ({reason}); it was stored without its records being checked; \
         read on from offset {next_offset}"
    )]
    Undecodable {
        topic: String,
        partition: u32,
        offset: u64,
        next_offset: u64,
        reason: String,
    },
    #[error("I/O error {context}: {message}")]
    Io { context: String, message: String },
    #[error(
        "the shard's WAL failed ({0}); it refuses writes until it is recovered (retried every \
         second)"
    )]
    Poisoned(String),
}

pub(super) fn io_err(
    context: impl Into<String>,
) -> impl FnOnce(glommio::GlommioError<()>) -> LogError {
    let context = context.into();
    move |e| LogError::Io {
        context,
        message: e.to_string(),
    }
}

/// Why [`ShardLog::reopen`](super::ShardLog::reopen) did not bring a failed log back.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ReopenError {
    /// The segments could not be read back; nothing changed.
    #[error("cannot read the WAL back: {0}")]
    Unreadable(LogError),
    /// Every segment was read back and is sealed now (so it can be
    /// shipped), but no new active segment could be created.
    #[error("cannot start a new WAL segment: {0}")]
    NoActive(LogError),
}
