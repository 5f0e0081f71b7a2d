//! The consumer-group RPCs (`GroupService`), one unit per file; each
//! answers from `crate::groups::coordinator` through the control thread's
//! group state. Heartbeats and commits are refused for a group this agent
//! does not coordinate (`Shared::coordinated_here`).

pub(crate) mod commit_offsets;
pub(crate) mod delete_group;
pub(crate) mod describe_group;
pub(crate) mod fetch_offsets;
pub(crate) mod find_coordinator;
pub(crate) mod heartbeat;
pub(crate) mod list_groups;
