//! What to do after a failed request: the one retry table of the client,
//! shared by the producer and the consumer, written from the agent's status
//! meanings (the README's status table). Pure decisions; the callers carry
//! them out.

use crate::Code;

use crate::error::Error;

/// How to retry a failed request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryAction {
    /// Not retriable: a retry would get the same answer (bad input, a
    /// fenced producer, an offset out of range, stored data that fails its
    /// check, an unknown method).
    Fail,
    /// Retry on the same connection and route, after the agent's pushback
    /// if it sent one (a deadline ran out; its request buffers were full).
    SameRoute,
    /// Drop the connection, refresh metadata, retry on a fresh route (the
    /// agent is down, shutting down, lost the partition's lease, cannot
    /// reach its metadata or object store, its WAL failed, or the
    /// connection broke).
    FreshRoute,
    /// The partition is led elsewhere, or moving: refresh metadata first,
    /// then route to the leader it names.
    RefreshMetadata,
    /// The batch arrived ahead of its producer's sequence (an earlier batch
    /// of the partition is missing): retry once every earlier batch is
    /// answered, or fail if one of them failed. Only produce gets it.
    AfterEarlierBatches,
}

impl RetryAction {
    /// Whether asking again can succeed.
    pub fn is_retriable(self) -> bool {
        self != RetryAction::Fail
    }
}

/// The retry action for a gRPC status code, by what the agent means by it:
///
/// | code | agent's meaning | action |
/// |---|---|---|
/// | `UNAVAILABLE` | shutting down; lease lost, expired or not renewable; metadata or object store unreachable; WAL failed | [`FreshRoute`](RetryAction::FreshRoute) |
/// | `INTERNAL` | a bug on that agent | `FreshRoute` |
/// | `UNKNOWN`, `CANCELLED` | the call broke in transport, or the agent saw the request stream fail | `FreshRoute` |
/// | `DEADLINE_EXCEEDED` | `grpc-timeout` or the body timeout ran out | [`SameRoute`](RetryAction::SameRoute) |
/// | `NOT_FOUND` | partition on another shard or agent, moving, or an unknown topic | [`RefreshMetadata`](RetryAction::RefreshMetadata) (an unknown topic then fails in the metadata lookup) |
/// | `ABORTED` | batch ahead of its sequence | [`AfterEarlierBatches`](RetryAction::AfterEarlierBatches) |
/// | `RESOURCE_EXHAUSTED` | over a size limit or the upload backlog; momentary when it carries `grpc-retry-pushback-ms` (see [`classify`]) | [`Fail`](RetryAction::Fail) |
/// | everything else (`INVALID_ARGUMENT`, `FAILED_PRECONDITION`, `OUT_OF_RANGE`, `DATA_LOSS`, `UNIMPLEMENTED`, `ALREADY_EXISTS`, ...) | a retry gets the same answer | `Fail` |
pub fn action_for(code: Code) -> RetryAction {
    match code {
        Code::Unavailable | Code::Internal | Code::Unknown | Code::Cancelled => {
            RetryAction::FreshRoute
        }
        Code::Aborted => RetryAction::AfterEarlierBatches,
        Code::DeadlineExceeded => RetryAction::SameRoute,
        Code::NotFound => RetryAction::RefreshMetadata,
        _ => RetryAction::Fail,
    }
}

/// The retry action for any client error: a status by [`action_for`],
/// except that one carrying the agent's `grpc-retry-pushback-ms` (a
/// momentary refusal: its request buffers were full) is
/// [`SameRoute`](RetryAction::SameRoute) after that pause; a broken or
/// refused connection is [`FreshRoute`](RetryAction::FreshRoute);
/// everything else (an unknown topic or partition, bad configuration, a
/// closed producer, a full buffer) is [`Fail`](RetryAction::Fail).
pub fn classify(e: &Error) -> RetryAction {
    match e {
        Error::Status {
            retry_after: Some(_),
            ..
        } => RetryAction::SameRoute,
        Error::Status { code, .. } => action_for(*code),
        Error::Transport { .. } => RetryAction::FreshRoute,
        Error::DeliveryFailed { last, .. } => classify(last),
        _ => RetryAction::Fail,
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn status(code: Code, retry_after: Option<Duration>) -> Error {
        Error::Status {
            code,
            message: String::new(),
            retry_after,
        }
    }

    #[test]
    fn the_table() {
        assert_eq!(action_for(Code::Unavailable), RetryAction::FreshRoute);
        assert_eq!(action_for(Code::Internal), RetryAction::FreshRoute);
        assert_eq!(action_for(Code::Unknown), RetryAction::FreshRoute);
        assert_eq!(action_for(Code::Cancelled), RetryAction::FreshRoute);
        assert_eq!(action_for(Code::DeadlineExceeded), RetryAction::SameRoute);
        assert_eq!(action_for(Code::NotFound), RetryAction::RefreshMetadata);
        assert_eq!(action_for(Code::Aborted), RetryAction::AfterEarlierBatches);
        for c in [
            Code::InvalidArgument,
            Code::FailedPrecondition,
            Code::ResourceExhausted,
            Code::OutOfRange,
            Code::DataLoss,
            Code::Unimplemented,
            Code::AlreadyExists,
            Code::PermissionDenied,
            Code::Unauthenticated,
        ] {
            assert_eq!(action_for(c), RetryAction::Fail, "{c:?}");
        }
    }

    #[test]
    fn pushback_transport_and_client_errors() {
        let pushback = Some(Duration::from_millis(100));
        assert_eq!(
            classify(&status(Code::ResourceExhausted, pushback)),
            RetryAction::SameRoute
        );
        assert_eq!(
            classify(&status(Code::ResourceExhausted, None)),
            RetryAction::Fail
        );
        let transport = Error::Transport {
            address: "a:1".into(),
            message: "refused".into(),
        };
        assert_eq!(classify(&transport), RetryAction::FreshRoute);
        assert_eq!(
            classify(&Error::UnknownTopic("t".into())),
            RetryAction::Fail
        );
        assert_eq!(classify(&Error::Closed), RetryAction::Fail);
        assert_eq!(
            classify(&Error::BufferFull(Duration::from_secs(1))),
            RetryAction::Fail
        );
    }
}
