//! CreatePartitions (key 37, v0–3): raises a topic's partition count (never lowers it), with
//! optional manual assignments (the replicas of each new partition, on registered brokers),
//! otherwise placed over the live brokers; `validate_only` stops after the checks. New partitions get the topic's configs before they become visible.

use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::create_partitions_request::CreatePartitionsTopic;
use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::{CreatePartitionsRequest, CreatePartitionsResponse};

use super::errors;
use super::str_bytes;
use crate::broker::BrokerContext;
use crate::common::NodeId;
use crate::internal_topic::TopicError;

/// Most partitions one topic may have on this single broker; a guard against requests that
/// would create millions of directories.
pub const MAX_PARTITIONS_PER_TOPIC: i32 = 100_000;

type Failure = (ResponseError, String);

pub fn handle(
    ctx: &Arc<BrokerContext>,
    request: CreatePartitionsRequest,
    _version: i16,
) -> CreatePartitionsResponse {
    let duplicates = super::repeated_names(request.topics.iter().map(|t| t.name.0.as_str()));
    let results = request
        .topics
        .into_iter()
        .map(|topic| {
            let name = topic.name.clone();
            let result = if duplicates.contains(name.0.as_str()) {
                Err(super::repeated_name_error())
            } else {
                create_one(ctx, &topic, request.validate_only)
            };
            let r = CreatePartitionsTopicResult::default().with_name(name);
            match result {
                Ok(()) => r.with_error_message(None),
                Err((e, m)) => r
                    .with_error_code(e.code())
                    .with_error_message(Some(str_bytes(m))),
            }
        })
        .collect();
    CreatePartitionsResponse::default().with_results(results)
}

fn create_one(
    ctx: &BrokerContext,
    topic: &CreatePartitionsTopic,
    validate_only: bool,
) -> Result<(), Failure> {
    let name = topic.name.0.as_str();
    let meta = ctx.metadata.topic(name).ok_or_else(|| {
        (
            ResponseError::UnknownTopicOrPartition,
            format!("topic `{name}` does not exist"),
        )
    })?;
    let current = meta.partitions;
    if topic.count < current {
        return Err((
            ResponseError::InvalidPartitions,
            format!(
                "topic currently has {current} partitions, which is higher than the requested {}",
                topic.count
            ),
        ));
    }
    if topic.count == current {
        return Err((
            ResponseError::InvalidPartitions,
            format!("topic already has {current} partitions"),
        ));
    }
    if topic.count > MAX_PARTITIONS_PER_TOPIC {
        return Err((
            ResponseError::InvalidPartitions,
            format!("at most {MAX_PARTITIONS_PER_TOPIC} partitions per topic"),
        ));
    }
    let mut manual = None;
    if let Some(assignments) = &topic.assignments {
        let added = i64::from(topic.count) - i64::from(current);
        if assignments.len() as i64 != added {
            return Err((
                ResponseError::InvalidReplicaAssignment,
                format!(
                    "{} assignments given for {added} new partitions",
                    assignments.len()
                ),
            ));
        }
        let image = ctx.metadata.image();
        let mut replicas = Vec::with_capacity(assignments.len());
        for a in assignments {
            let ids: Vec<NodeId> = a.broker_ids.iter().map(|b| NodeId(b.0)).collect();
            let mut distinct = ids.clone();
            distinct.sort();
            distinct.dedup();
            let unknown = ids.iter().find(|id| image.broker(**id).is_none());
            if ids.is_empty() || distinct.len() != ids.len() || unknown.is_some() {
                return Err((
                    ResponseError::InvalidReplicaAssignment,
                    format!(
                        "replicas {ids:?}: each new partition needs distinct, registered brokers"
                    ),
                ));
            }
            replicas.push(ids);
        }
        manual = Some(replicas);
    }
    if validate_only {
        // A dry run answers what the real request would, open-file budget included.
        let added = usize::try_from(topic.count - current).unwrap_or(0);
        ctx.check_partition_limit(added)
            .map_err(|e| (errors::topic_error(&e), e.to_string()))?;
        return Ok(());
    }
    match ctx.add_partitions(name, topic.count, manual) {
        Ok(Some(_)) => Ok(()),
        Ok(None) => Err((
            ResponseError::UnknownTopicOrPartition,
            format!("topic `{name}` does not exist"),
        )),
        Err(e) => {
            if !matches!(e, TopicError::PartitionLimit { .. }) {
                tracing::error!(topic = name, "adding partitions failed: {e}");
            }
            Err((errors::topic_error(&e), e.to_string()))
        }
    }
}
