//! Errors of the StreamHouse client. Owns the error type and the conversion
//! from gRPC statuses; nothing else.

use std::time::Duration;

/// Result type of the client.
pub type Result<T> = std::result::Result<T, Error>;

/// Everything that can go wrong in the client.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The agent answered with a non-OK gRPC status.
    #[error("{code:?}: {message}")]
    Status {
        /// The gRPC status code.
        code: tonic::Code,
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
    /// The gRPC code, when the agent answered.
    pub fn code(&self) -> Option<tonic::Code> {
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
            code: s.code(),
            message: s.message().to_owned(),
            retry_after,
        }
    }
}
