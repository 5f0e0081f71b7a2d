//! The route table: every RPC the agent serves, once, with where it runs.
//! A path not listed is `UNIMPLEMENTED`. The hottest paths come first
//! (the lookup walks the table in order).

use crate::control::rpc::{acls, groups, users};

use super::admin::{
    alter_configs, create_partitions, create_topic, delete_topic, describe_configs, describe_topic,
    init_producer_id, list_topics, metadata,
};
use super::{delete_records, fetch, health, list_offsets, produce, Route};

/// Every route, by method path.
pub(super) static ROUTES: &[Route] = &[
    // Records: ProducerService, FetchService, GroupService's ListOffsets,
    // AdminService's DeleteRecords.
    Route::shard::<produce::Produce>(),
    Route::shard::<fetch::Fetch>(),
    Route::shard::<list_offsets::ListOffsets>(),
    Route::shard::<delete_records::DeleteRecords>(),
    // AdminService: topics, cluster metadata, producer ids.
    Route::shard::<create_topic::CreateTopic>(),
    Route::shard::<delete_topic::DeleteTopic>(),
    Route::shard::<list_topics::ListTopics>(),
    Route::shard::<describe_topic::DescribeTopic>(),
    Route::shard::<metadata::Metadata>(),
    Route::shard::<init_producer_id::InitProducerId>(),
    Route::shard::<describe_configs::DescribeConfigs>(),
    Route::shard::<alter_configs::AlterConfigs>(),
    Route::shard::<create_partitions::CreatePartitions>(),
    // GroupService, answered on the control thread.
    Route::control::<groups::heartbeat::GroupHeartbeat>(),
    Route::control::<groups::commit_offsets::CommitOffsets>(),
    Route::control::<groups::find_coordinator::FindCoordinator>(),
    Route::control::<groups::fetch_offsets::FetchOffsets>(),
    Route::control::<groups::list_groups::ListGroups>(),
    Route::control::<groups::describe_group::DescribeGroup>(),
    Route::control::<groups::delete_group::DeleteGroup>(),
    // AdminService's users and tokens, answered on the control thread.
    Route::control::<users::create_user::CreateUser>(),
    Route::control::<users::delete_user::DeleteUser>(),
    Route::control::<users::list_users::ListUsers>(),
    Route::control::<users::create_token::CreateToken>(),
    Route::control::<users::revoke_token::RevokeToken>(),
    Route::control::<users::list_tokens::ListTokens>(),
    Route::control::<acls::add_acl::AddAcl>(),
    Route::control::<acls::remove_acl::RemoveAcl>(),
    Route::control::<acls::list_acls::ListAcls>(),
    // grpc.health.v1, answered while draining.
    Route::shard::<health::HealthCheck>(),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_path_is_listed_once() {
        let mut paths: Vec<&str> = ROUTES.iter().map(|r| r.path).collect();
        paths.sort_unstable();
        let n = paths.len();
        paths.dedup();
        assert_eq!(paths.len(), n, "a path is listed twice");
    }

    /// Every `rpc` the `.proto` files declare, as `/package.Service/Method`.
    fn declared() -> Vec<String> {
        let files = [
            include_str!("../../../../proto/proto/producer.proto"),
            include_str!("../../../../proto/proto/groups.proto"),
            include_str!("../../../../proto/proto/health.proto"),
        ];
        let mut out = Vec::new();
        for f in files {
            let (mut package, mut service) = ("", "");
            for line in f.lines().map(str::trim) {
                if let Some(p) = line.strip_prefix("package ") {
                    package = p.trim_end_matches(';');
                } else if let Some(s) = line.strip_prefix("service ") {
                    service = s.trim_end_matches('{').trim();
                } else if let Some(r) = line.strip_prefix("rpc ") {
                    let method = r.split('(').next().unwrap_or_default().trim();
                    out.push(format!("/{package}.{service}/{method}"));
                }
            }
        }
        out
    }

    #[test]
    fn every_declared_rpc_has_a_route_and_no_route_is_undeclared() {
        let declared = declared();
        assert!(declared.len() >= 21, "{declared:?}");
        for path in &declared {
            assert!(super::super::route(path).is_some(), "{path} has no route");
        }
        for r in ROUTES {
            assert!(
                declared.iter().any(|d| d == r.path),
                "{} is routed but no .proto declares it",
                r.path
            );
        }
    }
}
