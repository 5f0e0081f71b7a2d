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
    Status { code: tonic::Code, message: String },
    /// No connection could be made or it broke.
    #[error("cannot reach {address}: {message}")]
    Transport { address: String, message: String },
    #[error("unknown topic {0}")]
    UnknownTopic(String),
    #[error("topic {topic} has {partitions} partitions; partition {partition} does not exist")]
    UnknownPartition {
        topic: String,
        partition: u32,
        partitions: u32,
    },
    /// `buffer_memory` stayed full for `max_block`.
    #[error("producer buffer is full: no room for the record within max_block ({0:?}); the agent is slower than the sender")]
    BufferFull(Duration),
    #[error("record of {size} bytes is larger than the limit of {limit} bytes")]
    RecordTooLarge { size: usize, limit: usize },
    /// `delivery_timeout` or the retry budget ran out; carries the last error.
    #[error("delivery failed after {attempts} attempts: {last}")]
    DeliveryFailed { attempts: u32, last: Box<Error> },
    #[error("the producer is closed")]
    Closed,
    #[error("invalid configuration: {0}")]
    Config(String),
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
        Error::Status {
            code: s.code(),
            message: s.message().to_owned(),
        }
    }
}
