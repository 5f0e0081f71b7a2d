//! [`GroupConsumerBuilder`]: a group member's settings, checked before it
//! connects; `build` starts the member. Owns nothing once built.

use std::sync::Arc;
use std::time::Duration;

use super::config::{AutoOffsetReset, GroupConfig};
use super::consumer::GroupConsumer;
use super::link::CoordinatorLink;
use super::listener::{NoListener, RebalanceListener};
use crate::consumer::ConsumerBuilder;
use crate::error::{Error, Result};

/// Builds a [`GroupConsumer`]: `Consumer::builder(bootstrap).group(G)`.
pub struct GroupConsumerBuilder {
    inner: ConsumerBuilder,
    config: GroupConfig,
    listener: Box<dyn RebalanceListener>,
}

impl ConsumerBuilder {
    /// Consumes as a member of group `group_id` (partitions assigned by
    /// the group's coordinator, offsets committed to the group).
    pub fn group(self, group_id: impl Into<String>) -> GroupConsumerBuilder {
        GroupConsumerBuilder {
            inner: self,
            config: GroupConfig::new(group_id.into()),
            listener: Box::new(NoListener),
        }
    }
}

impl GroupConsumerBuilder {
    /// The topics to consume (required).
    pub fn subscribe<I, S>(mut self, topics: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.config.topics = topics.into_iter().map(Into::into).collect();
        self
    }
    /// Static membership (`group_instance_id`); default none.
    pub fn instance_id(mut self, id: impl Into<String>) -> Self {
        self.config.instance_id = Some(id.into());
        self
    }
    /// Default "streamhouse-consumer".
    pub fn client_id(mut self, id: impl Into<String>) -> Self {
        self.config.client_id = id.into();
        self
    }
    /// Default 45 s.
    pub fn session_timeout(mut self, d: Duration) -> Self {
        self.config.session_timeout = d;
        self
    }
    /// Default 60 s.
    pub fn rebalance_timeout(mut self, d: Duration) -> Self {
        self.config.rebalance_timeout = d;
        self
    }
    /// "cooperative-sticky" (default), "range" or "roundrobin".
    pub fn assignor(mut self, name: impl Into<String>) -> Self {
        self.config.assignor = name.into();
        self
    }
    /// Default on.
    pub fn auto_commit(mut self, on: bool) -> Self {
        self.config.auto_commit = on;
        self
    }
    /// Default 5 s.
    pub fn auto_commit_interval(mut self, d: Duration) -> Self {
        self.config.auto_commit_interval = d;
        self
    }
    /// Where a partition starts when the group never committed it, or when
    /// its committed offset is out of range (see
    /// [`ConsumerBuilder::auto_offset_reset`]); default
    /// [`AutoOffsetReset::Latest`].
    pub fn auto_offset_reset(mut self, r: AutoOffsetReset) -> Self {
        self.config.auto_offset_reset = r;
        self
    }
    /// Told of every assignment change, from inside `poll`.
    pub fn listener(mut self, l: impl RebalanceListener + 'static) -> Self {
        self.listener = Box::new(l);
        self
    }

    /// Connects and starts heartbeating (joining the group); partitions
    /// arrive with the first polls.
    ///
    /// # Errors
    /// [`Error::Config`] for an empty group id, no subscribed topic or a
    /// zero `auto_commit_interval`; as
    /// [`ConsumerBuilder::build`] otherwise.
    /// The member joins in the background: a refused join comes out of
    /// [`GroupConsumer::poll`].
    ///
    /// # Cancellation
    /// Dropping the future leaves nothing behind (the member has not
    /// joined yet).
    pub async fn build(self) -> Result<GroupConsumer> {
        let c = &self.config;
        if c.group_id.is_empty() {
            return Err(Error::Config("group id is empty".into()));
        }
        if c.topics.is_empty() {
            return Err(Error::Config("subscribe to at least one topic".into()));
        }
        if c.auto_commit && c.auto_commit_interval.is_zero() {
            return Err(Error::Config("auto_commit_interval must be above 0".into()));
        }
        let bootstrap = self.inner.bootstrap.clone();
        let pool = self.inner.pool.clone();
        // A committed offset out of range (the log lost the tail it named,
        // or retention passed it) starts where the group's policy says.
        let consumer = self
            .inner
            .auto_offset_reset(self.config.auto_offset_reset)
            .build()
            .await?;
        let link = Arc::new(CoordinatorLink::new(c.group_id.clone(), bootstrap, pool));
        Ok(GroupConsumer::start(
            consumer,
            self.config,
            link,
            self.listener,
        ))
    }
}
