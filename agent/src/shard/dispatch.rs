//! Method path → handler: decodes the request (its size bounded by
//! `--max-request-bytes`), calls the handler of its RPC family
//! (`produce`, `fetch`, `list_offsets`, `admin`, `groups`) and encodes the reply. Owns no state and
//! no policy; an unknown method is `UNIMPLEMENTED`.

use bytes::Bytes;
use streamhouse_proto as pb;

use super::context::ShardContext;
use super::grpc::{decode, encode_reply, read_message, Body, Code, Status};

impl ShardContext {
    /// Dispatches one unary call by method path. Cancelling it (the
    /// client's stream reset, or its deadline) drops the handler where it
    /// waits; a batch handed to the log is still written.
    pub async fn call(&self, path: &str, body: &mut Body) -> Result<Bytes, Status> {
        let limit = self.config.max_request_bytes;
        match path {
            pb::paths::PRODUCE => {
                let req: pb::ProduceRequest =
                    decode(read_message(body, limit).await?, "ProduceRequest")?;
                record_partition(&req.topic, req.partition);
                self.produce(req).await.map(|r| encode_reply(&r))
            }
            pb::paths::FETCH => {
                let req: pb::FetchRequest =
                    decode(read_message(body, limit).await?, "FetchRequest")?;
                record_partition(&req.topic, req.partition);
                self.fetch(req, &mut body.reply)
                    .await
                    .map(|r| encode_reply(&r))
            }
            pb::paths::CREATE_TOPIC => {
                self.create_topic(decode(
                    read_message(body, limit).await?,
                    "CreateTopicRequest",
                )?)
                .await
            }
            pb::paths::DELETE_TOPIC => {
                self.delete_topic(decode(
                    read_message(body, limit).await?,
                    "DeleteTopicRequest",
                )?)
                .await
            }
            pb::paths::LIST_TOPICS => {
                self.list_topics(decode(
                    read_message(body, limit).await?,
                    "ListTopicsRequest",
                )?)
                .await
            }
            pb::paths::DESCRIBE_TOPIC => {
                let req = decode(read_message(body, limit).await?, "DescribeTopicRequest")?;
                self.describe_topic(req).await
            }
            pb::paths::METADATA => {
                self.metadata(decode(read_message(body, limit).await?, "MetadataRequest")?)
                    .await
            }
            pb::paths::INIT_PRODUCER_ID => {
                let req = decode(read_message(body, limit).await?, "InitProducerIdRequest")?;
                self.init_producer_id(req).await
            }
            pb::paths::DESCRIBE_CONFIGS => {
                let req = decode(read_message(body, limit).await?, "DescribeConfigsRequest")?;
                self.describe_configs(req).await
            }
            pb::paths::ALTER_CONFIGS => {
                let req = decode(read_message(body, limit).await?, "AlterConfigsRequest")?;
                self.alter_configs(req).await
            }
            pb::paths::CREATE_PARTITIONS => {
                let req = decode(read_message(body, limit).await?, "CreatePartitionsRequest")?;
                self.create_partitions(req).await
            }
            pb::paths::DELETE_RECORDS => {
                let req: pb::DeleteRecordsRequest =
                    decode(read_message(body, limit).await?, "DeleteRecordsRequest")?;
                record_partition(&req.topic, req.partition);
                self.delete_records(req).await
            }
            pb::paths::LIST_OFFSETS => {
                let req = decode(read_message(body, limit).await?, "ListOffsetsRequest")?;
                self.list_offsets(req).await.map(|r| encode_reply(&r))
            }
            p if super::groups::is_group_path(p) => self.group_call(p, body).await,
            other => Err(Status::new(
                Code::Unimplemented,
                format!("unknown method {other}"),
            )),
        }
    }
}

/// Names the partition a request is for on the current request span.
fn record_partition(topic: &str, partition: u32) {
    let span = tracing::Span::current();
    span.record("topic", topic);
    span.record("partition", partition);
}
