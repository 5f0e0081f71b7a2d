//! What a group consumer tells the application when its partitions change.

use streamhouse_proto::TopicPartition;

/// Called from inside [`GroupConsumer::poll`](super::GroupConsumer::poll)
/// (on the caller's task) when the assignment changes. Every method has a
/// default that does nothing.
pub trait RebalanceListener: Send {
    /// These partitions are being given up, positions intact: with
    /// auto-commit on, their positions are committed right after this
    /// returns; commit here yourself otherwise.
    fn on_revoked(&mut self, _partitions: &[TopicPartition]) {}
    /// These partitions are this member's from now on, each positioned at
    /// the group's committed offset (or the auto-offset-reset position).
    fn on_assigned(&mut self, _partitions: &[TopicPartition]) {}
    /// The member was removed from the group (its session timed out, or it
    /// was fenced) and these partitions already belong to others: nothing
    /// of them can be committed any more. It rejoins by itself.
    fn on_lost(&mut self, _partitions: &[TopicPartition]) {}
}

/// The listener used when none is set.
pub(crate) struct NoListener;

impl RebalanceListener for NoListener {}
