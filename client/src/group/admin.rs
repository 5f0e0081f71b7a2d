//! Consumer-group administration on [`Admin`]: list, describe, delete, the
//! committed offsets, and setting them (only while the group has no
//! members). Any agent answers these.

use std::collections::BTreeMap;
use std::future::Future;

use crate::net::AgentChannel;
use streamhouse_proto as pb;

use super::TopicPartition;
use crate::admin::Admin;
use crate::error::Result;
use crate::net::pool::bounded;

type GroupClient = pb::group_service_client::GroupServiceClient<AgentChannel>;

impl Admin {
    async fn group_call<T, F, Fut>(&self, what: &str, f: F) -> Result<T>
    where
        F: FnOnce(GroupClient) -> Fut,
        Fut: Future<Output = std::result::Result<tonic::Response<T>, tonic::Status>>,
    {
        let c = GroupClient::new(self.channel().await?);
        Ok(bounded(self.call_timeout(), what, f(c)).await?.into_inner())
    }

    /// Every consumer group: id, state (`empty`, `stable`, `reconciling`)
    /// and members.
    ///
    /// # Errors
    /// [`Error::Transport`](crate::Error::Transport) when no agent answers; [`Error::Status`](crate::Error::Status) when the
    /// agent cannot read the metadata store.
    ///
    /// # Cancellation
    /// Read-only: dropping the future has no effect.
    pub async fn list_groups(&self) -> Result<Vec<pb::GroupSummary>> {
        let r = self
            .group_call("ListGroups", |mut c| async move {
                c.list_groups(pb::ListGroupsRequest {}).await
            })
            .await?;
        Ok(r.groups)
    }

    /// A group's members, assignment and committed offsets (`NOT_FOUND`
    /// for an unknown group).
    ///
    /// # Errors
    /// [`Error::Status`](crate::Error::Status) with [`Code::NotFound`](crate::Code::NotFound) for an
    /// unknown group; [`Error::Transport`](crate::Error::Transport) when no agent answers.
    ///
    /// # Cancellation
    /// Read-only: dropping the future has no effect.
    pub async fn describe_group(&self, group: &str) -> Result<pb::DescribeGroupResponse> {
        let req = pb::DescribeGroupRequest {
            group_id: group.into(),
        };
        self.group_call("DescribeGroup", |mut c| async move {
            c.describe_group(req).await
        })
        .await
    }

    /// Deletes a group without members, with its committed offsets.
    ///
    /// # Errors
    /// [`Error::Status`](crate::Error::Status) with [`Code::NotFound`](crate::Code::NotFound) for an
    /// unknown group,
    /// [`Code::FailedPrecondition`](crate::Code::FailedPrecondition) while it
    /// has members; [`Error::Transport`](crate::Error::Transport) when no agent answers.
    ///
    /// # Cancellation
    /// A request already sent is not withdrawn.
    pub async fn delete_group(&self, group: &str) -> Result<()> {
        let req = pb::DeleteGroupRequest {
            group_id: group.into(),
        };
        self.group_call(
            "DeleteGroup",
            |mut c| async move { c.delete_group(req).await },
        )
        .await?;
        Ok(())
    }

    /// The group's committed offsets, per partition.
    ///
    /// # Errors
    /// [`Error::Status`](crate::Error::Status) when the coordinator refuses; [`Error::Transport`](crate::Error::Transport)
    /// when no agent answers.
    ///
    /// # Cancellation
    /// Read-only: dropping the future has no effect.
    pub async fn group_offsets(&self, group: &str) -> Result<BTreeMap<TopicPartition, u64>> {
        let req = pb::FetchOffsetsRequest {
            group_id: group.into(),
            partitions: Vec::new(),
        };
        let r = self
            .group_call(
                "FetchOffsets",
                |mut c| async move { c.fetch_offsets(req).await },
            )
            .await?;
        Ok(super::committed_of(r))
    }

    /// The agent that coordinates `group` and its shard's address.
    ///
    /// # Errors
    /// [`Error::Transport`](crate::Error::Transport) when no agent answers; [`Error::Status`](crate::Error::Status) when no
    /// agent holds the group's coordination now.
    ///
    /// # Cancellation
    /// Read-only: dropping the future has no effect.
    pub async fn group_coordinator(&self, group: &str) -> Result<(String, String)> {
        let find = pb::FindCoordinatorRequest {
            group_id: group.into(),
        };
        let r = self
            .group_call("FindCoordinator", |mut c| async move {
                c.find_coordinator(find).await
            })
            .await?;
        Ok((r.agent_id, r.address))
    }

    /// Sets committed offsets of a group that has no members (creating
    /// the group if needed); `FAILED_PRECONDITION` while it has members.
    /// Keyed by [`TopicPartition`] or `(topic, partition)`. Sent to the
    /// group's coordinator.
    ///
    /// # Errors
    /// [`Error::Status`](crate::Error::Status) with
    /// [`Code::FailedPrecondition`](crate::Code::FailedPrecondition) while the
    /// group has members,
    /// [`Code::InvalidArgument`](crate::Code::InvalidArgument) for an offset
    /// outside its partition; [`Error::Transport`](crate::Error::Transport) when no agent answers.
    ///
    /// # Cancellation
    /// A request already sent is not withdrawn.
    pub async fn set_group_offsets<K>(&self, group: &str, offsets: &BTreeMap<K, u64>) -> Result<()>
    where
        K: Clone + Into<TopicPartition>,
    {
        let (_, address) = self.group_coordinator(group).await?;
        let lease = self.pool_get(&address).await?;
        let mut c = GroupClient::new(lease);
        let req = pb::CommitOffsetsRequest {
            group_id: group.into(),
            member_id: String::new(),
            member_epoch: -1,
            offsets: offsets
                .iter()
                .map(|(k, o)| (k.clone().into(), o))
                .map(|(tp, o): (TopicPartition, _)| pb::OffsetEntry {
                    topic: tp.topic,
                    partition: tp.partition,
                    offset: *o,
                    metadata: "set by an administrator".into(),
                    // Unknown: a member starting here reads from `o` on.
                    leader_epoch: None,
                })
                .collect(),
        };
        bounded(self.call_timeout(), "CommitOffsets", c.commit_offsets(req)).await?;
        Ok(())
    }
}
