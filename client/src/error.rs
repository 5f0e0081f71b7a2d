//! Errors of the StreamHouse client. Owns the error type, the status codes
//! the agent answers with and the conversion from gRPC statuses; nothing
//! else. The gRPC library stays out of the public types: a caller matches
//! on [`Code`], which this crate owns.

use std::time::Duration;

/// Result type of the client.
pub type Result<T> = std::result::Result<T, Error>;

/// Everything that can go wrong in the client. New kinds may be added in a
/// minor release: match with a `_` arm.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The agent answered with a non-OK gRPC status.
    #[error("{code:?}: {message}")]
    Status {
        /// What kind of refusal (the gRPC status code).
        code: Code,
        /// The agent's message.
        message: String,
        /// The agent's `grpc-retry-pushback-ms`: the refusal is momentary
        /// (e.g. its request buffers were full) and may be retried after it.
        retry_after: Option<std::time::Duration>,
    },
    /// No connection could be made or it broke.
    #[error("cannot reach {address}: {message}")]
    Transport {
        /// host:port that failed.
        address: String,
        /// What the transport reported.
        message: String,
    },
    /// The topic does not exist.
    #[error("unknown topic {0}")]
    UnknownTopic(String),
    /// The partition does not exist in the topic.
    #[error("topic {topic} has {partitions} partitions; partition {partition} does not exist")]
    UnknownPartition {
        /// The topic.
        topic: String,
        /// The partition asked for.
        partition: u32,
        /// How many partitions the topic has.
        partitions: u32,
    },
    /// `buffer_memory` stayed full for `max_block`.
    #[error("producer buffer is full: no room for the record within max_block ({0:?}); the agent is slower than the sender")]
    BufferFull(Duration),
    /// A record is larger than the producer can ever buffer.
    #[error("record of {size} bytes is larger than the limit of {limit} bytes")]
    RecordTooLarge {
        /// The record's accounted size, bytes.
        size: usize,
        /// The limit, bytes.
        limit: usize,
    },
    /// `delivery_timeout` or the retry budget ran out; carries the last error.
    #[error("delivery failed after {attempts} attempts: {last}")]
    DeliveryFailed {
        /// Attempts made.
        attempts: u32,
        /// The error of the last attempt.
        last: Box<Error>,
    },
    /// The producer was closed before the record was sent.
    #[error("the producer is closed")]
    Closed,
    /// A setting is invalid; the message names it.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// An agent answered something the protocol does not allow (e.g.
    /// fetched records out of offset order); the message names it.
    #[error("protocol violation: {0}")]
    Protocol(String),
}

impl Error {
    /// The agent's status code, when the agent answered (for a
    /// [`DeliveryFailed`](Error::DeliveryFailed), its last attempt's).
    pub fn code(&self) -> Option<Code> {
        match self {
            Error::Status { code, .. } => Some(*code),
            Error::DeliveryFailed { last, .. } => last.code(),
            _ => None,
        }
    }
}

impl From<tonic::Status> for Error {
    fn from(s: tonic::Status) -> Self {
        let retry_after = s
            .metadata()
            .get("grpc-retry-pushback-ms")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok())
            .map(std::time::Duration::from_millis);
        Error::Status {
            code: s.code().into(),
            message: s.message().to_owned(),
            retry_after,
        }
    }
}

/// The status codes an agent answers with (gRPC's, with the meaning
/// StreamHouse gives them). New codes may be added: match with a `_` arm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Code {
    /// The call was cancelled (by the caller or a closing connection).
    Cancelled,
    /// An error the agent could not classify.
    Unknown,
    /// The request is malformed or a value is out of its limits.
    InvalidArgument,
    /// The call did not finish within its deadline.
    DeadlineExceeded,
    /// The topic, partition, group or member does not exist (here).
    NotFound,
    /// The topic or group already exists.
    AlreadyExists,
    /// The caller may not do this.
    PermissionDenied,
    /// A limit was hit (memory, connections, disk); often momentary.
    ResourceExhausted,
    /// The state does not allow it (fenced member, lost lease, ...).
    FailedPrecondition,
    /// A conflicting call raced this one; retry after earlier calls.
    Aborted,
    /// An offset outside the partition's log.
    OutOfRange,
    /// The agent does not serve this call.
    Unimplemented,
    /// The agent failed internally.
    Internal,
    /// The agent cannot serve now (moving partition, shutting down).
    Unavailable,
    /// Data was lost or corrupted.
    DataLoss,
    /// The caller did not say who it is.
    Unauthenticated,
}

impl From<tonic::Code> for Code {
    fn from(c: tonic::Code) -> Self {
        use tonic::Code as T;
        match c {
            T::Cancelled => Code::Cancelled,
            T::InvalidArgument => Code::InvalidArgument,
            T::DeadlineExceeded => Code::DeadlineExceeded,
            T::NotFound => Code::NotFound,
            T::AlreadyExists => Code::AlreadyExists,
            T::PermissionDenied => Code::PermissionDenied,
            T::ResourceExhausted => Code::ResourceExhausted,
            T::FailedPrecondition => Code::FailedPrecondition,
            T::Aborted => Code::Aborted,
            T::OutOfRange => Code::OutOfRange,
            T::Unimplemented => Code::Unimplemented,
            T::Internal => Code::Internal,
            T::Unavailable => Code::Unavailable,
            T::DataLoss => Code::DataLoss,
            T::Unauthenticated => Code::Unauthenticated,
            // OK never reaches an error; Unknown and anything newer
            // read as Unknown.
            _ => Code::Unknown,
        }
    }
}

impl std::fmt::Display for Code {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(self, f)
    }
}
