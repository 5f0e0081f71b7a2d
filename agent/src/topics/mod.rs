//! Topics as this agent knows them: the catalog loaded from the metadata
//! store ([`catalog`]), each topic's configuration and its checks
//! ([`topic_config`]), and which shard owns a partition ([`routing`]).
//! No I/O of its own.

pub mod catalog;
pub mod routing;
pub mod topic_config;
