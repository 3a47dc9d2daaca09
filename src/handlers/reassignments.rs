//! AlterPartitionReassignments (key 45, v0–1) and ListPartitionReassignments (key 46, v0):
//! `kafka-reassign-partitions`. A reassignment adds the target replicas at once (they start
//! fetching as followers), and the controller drops the replicas being removed once every
//! target replica is in the ISR (KIP-455); a null replica list cancels the one in progress.
//! v1's `allow_replication_factor_change = false` (KIP-860) refuses a target of another size.

use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::alter_partition_reassignments_response::{
    ReassignablePartitionResponse, ReassignableTopicResponse,
};
use kafka_protocol::messages::list_partition_reassignments_response::{
    OngoingPartitionReassignment, OngoingTopicReassignment,
};
use kafka_protocol::messages::{
    AlterPartitionReassignmentsRequest, AlterPartitionReassignmentsResponse,
    ListPartitionReassignmentsRequest, ListPartitionReassignmentsResponse, TopicName,
};

use super::{broker_ids, str_bytes};
use crate::broker::BrokerContext;
use crate::common::NodeId;
use crate::metadata::Reassignment;

pub fn alter(
    ctx: &Arc<BrokerContext>,
    request: AlterPartitionReassignmentsRequest,
    version: i16,
) -> AlterPartitionReassignmentsResponse {
    let allow_rf_change = version < 1 || request.allow_replication_factor_change;
    let responses = request
        .topics
        .into_iter()
        .map(|topic| {
            let name = topic.name.0.to_string();
            let partitions = topic
                .partitions
                .into_iter()
                .map(|p| {
                    let target = p
                        .replicas
                        .map(|r| r.iter().map(|b| NodeId(b.0)).collect::<Vec<_>>());
                    let outcome = reassign(ctx, &name, p.partition_index, target, allow_rf_change);
                    let answer = ReassignablePartitionResponse::default()
                        .with_partition_index(p.partition_index);
                    match outcome {
                        Ok(()) => answer.with_error_message(None),
                        Err((e, message)) => answer
                            .with_error_code(e.code())
                            .with_error_message(Some(str_bytes(message))),
                    }
                })
                .collect();
            ReassignableTopicResponse::default()
                .with_name(topic.name)
                .with_partitions(partitions)
        })
        .collect();
    AlterPartitionReassignmentsResponse::default()
        .with_allow_replication_factor_change(allow_rf_change)
        .with_responses(responses)
}

fn reassign(
    ctx: &BrokerContext,
    topic: &str,
    partition: i32,
    target: Option<Vec<NodeId>>,
    allow_rf_change: bool,
) -> Result<(), (ResponseError, String)> {
    if let (Some(target), false) = (&target, allow_rf_change) {
        let current = ctx
            .metadata
            .image()
            .topic(topic)
            .and_then(|t| t.placement(partition))
            .map(|p| p.original_replicas().len());
        if current.is_some_and(|n| n != target.len()) {
            return Err((
                ResponseError::InvalidReplicationFactor,
                "the target changes the replication factor, which the request does not allow"
                    .into(),
            ));
        }
    }
    match ctx.metadata.reassign(topic, partition, target) {
        Ok(Reassignment::Started | Reassignment::Cancelled) => Ok(()),
        Ok(Reassignment::NoneInProgress) => Err((
            ResponseError::NoReassignmentInProgress,
            "no reassignment of this partition is in progress".into(),
        )),
        Ok(Reassignment::UnknownPartition) => Err((
            ResponseError::UnknownTopicOrPartition,
            "no such topic or partition".into(),
        )),
        Ok(Reassignment::InvalidTarget(why)) => Err((ResponseError::InvalidReplicaAssignment, why)),
        Err(e) => Err((super::errors::metadata_error(&e), e.to_string())),
    }
}

pub fn list(
    ctx: &Arc<BrokerContext>,
    request: ListPartitionReassignmentsRequest,
    _version: i16,
) -> ListPartitionReassignmentsResponse {
    let image = ctx.metadata.image();
    let wanted: Vec<(String, Option<Vec<i32>>)> = match request.topics {
        Some(topics) => topics
            .into_iter()
            .map(|t| (t.name.0.to_string(), Some(t.partition_indexes)))
            .collect(),
        None => image.topics().map(|t| (t.name.clone(), None)).collect(),
    };
    let topics = wanted
        .into_iter()
        .filter_map(|(name, partitions)| {
            let topic = image.topic(&name)?;
            let indexes: Vec<i32> = partitions.unwrap_or_else(|| (0..topic.partitions).collect());
            let ongoing: Vec<OngoingPartitionReassignment> = indexes
                .into_iter()
                .filter_map(|p| {
                    let placement = topic.placement(p).filter(|pl| pl.is_reassigning())?;
                    Some(
                        OngoingPartitionReassignment::default()
                            .with_partition_index(p)
                            .with_replicas(broker_ids(&placement.replicas))
                            .with_adding_replicas(broker_ids(&placement.adding))
                            .with_removing_replicas(broker_ids(&placement.removing)),
                    )
                })
                .collect();
            (!ongoing.is_empty()).then(|| {
                OngoingTopicReassignment::default()
                    .with_name(TopicName(str_bytes(name)))
                    .with_partitions(ongoing)
            })
        })
        .collect();
    ListPartitionReassignmentsResponse::default().with_topics(topics)
}
