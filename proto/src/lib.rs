//! StreamHouse wire protocol: the protobuf messages and gRPC service stubs
//! generated from `proto/producer.proto`, and the record batch format
//! ([`batch`]) that Produce requests and Fetch answers carry, which the WAL
//! stores unchanged, gRPC's message framing ([`framing`]), and
//! [`TopicPartition`] with its grouped protocol form
//! ([`topic_partition`]), and sizes and durations with units as flags take
//! them ([`units`]). Knows nothing of files or sockets.

pub mod batch;
pub mod framing;
pub mod topic_partition;
pub mod units;

pub use topic_partition::TopicPartition;

/// Generated messages and tonic clients/servers of package `streamhouse`.
#[allow(clippy::all)]
pub mod streamhouse {
    tonic::include_proto!("streamhouse");
}

pub use streamhouse::*;

/// The standard gRPC health-checking protocol.
#[allow(clippy::all)]
pub mod health {
    tonic::include_proto!("grpc.health.v1");
}

/// gRPC method paths served by every agent shard.
pub mod paths {
    pub const PRODUCE: &str = "/streamhouse.ProducerService/Produce";
    pub const FETCH: &str = "/streamhouse.FetchService/Fetch";
    pub const CREATE_TOPIC: &str = "/streamhouse.AdminService/CreateTopic";
    pub const DELETE_TOPIC: &str = "/streamhouse.AdminService/DeleteTopic";
    pub const LIST_TOPICS: &str = "/streamhouse.AdminService/ListTopics";
    pub const DESCRIBE_TOPIC: &str = "/streamhouse.AdminService/DescribeTopic";
    pub const METADATA: &str = "/streamhouse.AdminService/Metadata";
    pub const INIT_PRODUCER_ID: &str = "/streamhouse.AdminService/InitProducerId";
    pub const DESCRIBE_CONFIGS: &str = "/streamhouse.AdminService/DescribeConfigs";
    pub const ALTER_CONFIGS: &str = "/streamhouse.AdminService/AlterConfigs";
    pub const DELETE_RECORDS: &str = "/streamhouse.AdminService/DeleteRecords";
    pub const CREATE_PARTITIONS: &str = "/streamhouse.AdminService/CreatePartitions";
    pub const HEALTH_CHECK: &str = "/grpc.health.v1.Health/Check";
    pub const CREATE_USER: &str = "/streamhouse.AdminService/CreateUser";
    pub const DELETE_USER: &str = "/streamhouse.AdminService/DeleteUser";
    pub const LIST_USERS: &str = "/streamhouse.AdminService/ListUsers";
    pub const CREATE_TOKEN: &str = "/streamhouse.AdminService/CreateToken";
    pub const REVOKE_TOKEN: &str = "/streamhouse.AdminService/RevokeToken";
    pub const LIST_TOKENS: &str = "/streamhouse.AdminService/ListTokens";
    pub const ADD_ACL: &str = "/streamhouse.AdminService/AddAcl";
    pub const REMOVE_ACL: &str = "/streamhouse.AdminService/RemoveAcl";
    pub const LIST_ACLS: &str = "/streamhouse.AdminService/ListAcls";
    pub const FIND_COORDINATOR: &str = "/streamhouse.GroupService/FindCoordinator";
    pub const GROUP_HEARTBEAT: &str = "/streamhouse.GroupService/Heartbeat";
    pub const COMMIT_OFFSETS: &str = "/streamhouse.GroupService/CommitOffsets";
    pub const FETCH_OFFSETS: &str = "/streamhouse.GroupService/FetchOffsets";
    pub const LIST_GROUPS: &str = "/streamhouse.GroupService/ListGroups";
    pub const DESCRIBE_GROUP: &str = "/streamhouse.GroupService/DescribeGroup";
    pub const DELETE_GROUP: &str = "/streamhouse.GroupService/DeleteGroup";
    pub const LIST_OFFSETS: &str = "/streamhouse.GroupService/ListOffsets";
}
