//! Errors → gRPC statuses, one table per source: the storage engine, the
//! control thread, the shard's lease table, and bad requests. Every answer
//! a handler refuses with is built here.

use streamhouse_storage::LogError;

use crate::messages::ControlError;

use super::grpc::{Code, Status};
use super::leases::LeaseProblem;

pub(super) fn bad(msg: impl Into<String>) -> Status {
    Status::new(Code::InvalidArgument, msg)
}

/// The gRPC status for a storage-engine error.
pub(super) fn log_status(e: LogError) -> Status {
    let code = match &e {
        LogError::UnknownPartition { .. } => Code::NotFound,
        LogError::InvalidBatch(_) => Code::InvalidArgument,
        // Ahead of the sequence: retry once the batches before it are
        // answered. Behind it and not remembered: a retry cannot help.
        LogError::Sequence(e) if e.is_ahead() => Code::Aborted,
        LogError::Sequence(_) => Code::FailedPrecondition,
        LogError::OffsetOutOfRange { .. } => Code::OutOfRange,
        LogError::Corrupt(_) | LogError::Undecodable { .. } => Code::DataLoss,
        // The write was not acknowledged and the shard recovers its WAL by
        // itself (or gives its partitions up): a retry may succeed.
        LogError::Io { .. } | LogError::Poisoned(_) => Code::Unavailable,
    };
    Status::new(code, e.to_string())
}

pub(super) fn control_status(e: ControlError) -> Status {
    let code = match &e {
        ControlError::Invalid(_) => Code::InvalidArgument,
        ControlError::Exists(_) => Code::AlreadyExists,
        ControlError::Unknown(_) => Code::NotFound,
        ControlError::OutOfRange(_) => Code::OutOfRange,
        ControlError::Unavailable(_) => Code::Unavailable,
        ControlError::Corrupt(_) => Code::DataLoss,
        ControlError::Internal(_) => Code::Internal,
        ControlError::Fenced(_) => Code::FailedPrecondition,
        ControlError::Missing(_) => Code::NotFound,
        ControlError::Exhausted(_) => Code::ResourceExhausted,
        ControlError::Superseded(_) => Code::AlreadyExists,
        ControlError::AlreadyExists(_) => Code::AlreadyExists,
        ControlError::Denied(_) => Code::PermissionDenied,
    };
    Status::new(code, e.to_string())
}

pub(super) fn lease_status(topic: &str, partition: u32, p: LeaseProblem) -> Status {
    match p {
        LeaseProblem::NotHeld => Status::new(
            Code::NotFound,
            format!("this agent does not hold the lease of {topic}/{partition}"),
        ),
        LeaseProblem::Moving => Status::new(
            Code::NotFound,
            format!("{topic}/{partition} is moving to another agent"),
        ),
        // Fenced, expired, or not renewable now (metadata store down): a
        // condition of the cluster, not of the request, so clients retry
        // (and look the leader up again).
        LeaseProblem::Lost(why) => Status::new(
            Code::Unavailable,
            format!(
                "this agent does not serve {topic}/{partition} now: its lease is lost ({why}); \
                 retry, the partition's new leader is in the metadata"
            ),
        ),
    }
}
