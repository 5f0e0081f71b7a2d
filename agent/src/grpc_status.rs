//! The gRPC status vocabulary: the codes the agent answers with and a
//! status with its message and retry pushback. Plain data, imported by the
//! shards (which answer with it) and the metrics (which count it); imports
//! no module of the crate.

use std::time::Duration;

/// gRPC status codes used by the agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Code {
    Cancelled = 1,
    InvalidArgument = 3,
    DeadlineExceeded = 4,
    NotFound = 5,
    AlreadyExists = 6,
    PermissionDenied = 7,
    ResourceExhausted = 8,
    FailedPrecondition = 9,
    Aborted = 10,
    OutOfRange = 11,
    Unimplemented = 12,
    Internal = 13,
    Unavailable = 14,
    DataLoss = 15,
    Unauthenticated = 16,
}

/// A non-OK gRPC status with its message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    pub code: Code,
    pub message: String,
    /// Sent as `grpc-retry-pushback-ms` (gRPC's retry pushback): the
    /// refusal is momentary and the call may be retried after this.
    pub retry_after: Option<Duration>,
}

impl Status {
    pub fn new(code: Code, message: impl Into<String>) -> Self {
        Status {
            code,
            message: message.into(),
            retry_after: None,
        }
    }

    /// The same status, telling the client to retry after `delay`.
    pub fn retry_after(mut self, delay: Duration) -> Self {
        self.retry_after = Some(delay);
        self
    }
}
