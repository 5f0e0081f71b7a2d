//! The `AdminService` RPCs a shard answers, one unit per file: topics
//! (create, delete, list, describe, configuration, partitions), cluster
//! metadata and producer ids. Each asks the control thread for what it
//! does not know locally; answers are built by `shard::describe`.
//! (`DeleteRecords` is a records RPC: `rpc/delete_records.rs`.)

pub(super) mod alter_configs;
pub(super) mod create_partitions;
pub(super) mod create_topic;
pub(super) mod delete_topic;
pub(super) mod describe_configs;
pub(super) mod describe_topic;
pub(super) mod init_producer_id;
pub(super) mod list_topics;
pub(super) mod metadata;
