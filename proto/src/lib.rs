//! StreamHouse wire protocol: the protobuf messages and gRPC service stubs
//! generated from `proto/producer.proto`. Owns nothing but the generated code
//! and a few constants; no behaviour lives here.

#![allow(clippy::all)]

/// Generated messages and tonic clients/servers of package `streamhouse`.
pub mod streamhouse {
    tonic::include_proto!("streamhouse");
}

pub use streamhouse::*;

/// The standard gRPC health-checking protocol.
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
    pub const HEALTH_CHECK: &str = "/grpc.health.v1.Health/Check";
}
