//! What to do after a failed produce attempt, by gRPC status code (the
//! seed's retry table). Pure decisions; the producer carries them out.

use tonic::Code;

/// How to retry a failed request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryAction {
    /// Not retriable: fail the batch.
    Fail,
    /// Retry on the same connection and route (e.g. a deadline ran out).
    SameRoute,
    /// Drop the connection, refresh metadata, retry on a fresh route (the
    /// agent is down, shutting down, or failed internally).
    FreshRoute,
    /// The partition moved: refresh metadata first, then route to the new leader.
    RefreshMetadata,
    /// The batch arrived ahead of its producer's sequence (an earlier batch
    /// of the partition is missing): retry once every earlier batch is
    /// answered, or fail if one of them failed.
    AfterEarlierBatches,
}

/// The retry action for a gRPC status code.
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seed_table() {
        assert_eq!(action_for(Code::Unavailable), RetryAction::FreshRoute);
        assert_eq!(action_for(Code::Internal), RetryAction::FreshRoute);
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
        ] {
            assert_eq!(action_for(c), RetryAction::Fail, "{c:?}");
        }
    }
}
