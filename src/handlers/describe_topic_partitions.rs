//! DescribeTopicPartitions (key 75, v0, KIP-966): what 4.x `kafka-topics --describe` asks for
//! instead of Metadata — topics (all, or those named) with their partitions, leaders, replicas
//! and ISR, sorted by name and paginated by a partition budget and a cursor, as Kafka does.

use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_topic_partitions_response::{
    Cursor, DescribeTopicPartitionsResponsePartition, DescribeTopicPartitionsResponseTopic,
};
use kafka_protocol::messages::{
    DescribeTopicPartitionsRequest, DescribeTopicPartitionsResponse, TopicName,
};

use super::{authorized_operations, str_bytes, PartitionView};
use crate::broker::BrokerContext;
use crate::metadata::{topic_name, TopicMeta};

/// Kafka's `max.request.partition.size.limit` default: the most partitions one response holds.
const MAX_PARTITIONS_PER_RESPONSE: i32 = 2000;

pub fn handle(
    ctx: &Arc<BrokerContext>,
    request: DescribeTopicPartitionsRequest,
    _version: i16,
) -> DescribeTopicPartitionsResponse {
    let mut names: Vec<String> = if request.topics.is_empty() {
        ctx.metadata
            .image()
            .topics()
            .map(|t| t.name.clone())
            .collect()
    } else {
        request
            .topics
            .iter()
            .map(|t| t.name.0.to_string())
            .collect()
    };
    names.sort();
    names.dedup();
    let (cursor_topic, cursor_partition) = match &request.cursor {
        Some(c) => (Some(c.topic_name.0.to_string()), c.partition_index.max(0)),
        None => (None, 0),
    };
    let mut budget = if request.response_partition_limit > 0 {
        request
            .response_partition_limit
            .min(MAX_PARTITIONS_PER_RESPONSE)
    } else {
        MAX_PARTITIONS_PER_RESPONSE
    };
    let mut topics = Vec::new();
    let mut next_cursor = None;
    for name in names.iter().filter(|n| {
        cursor_topic
            .as_ref()
            .is_none_or(|c| n.as_str() >= c.as_str())
    }) {
        let Some(topic) = ctx.metadata.topic(name) else {
            topics.push(unknown(name));
            continue;
        };
        let first = if cursor_topic.as_deref() == Some(name.as_str()) {
            cursor_partition
        } else {
            0
        };
        if budget == 0 {
            next_cursor = Some(cursor(name, first));
            break;
        }
        let end = topic.partitions.min(first.saturating_add(budget));
        topics.push(describe(ctx, &topic, first, end));
        budget -= (end - first).max(0);
        if end < topic.partitions {
            next_cursor = Some(cursor(name, end));
            break;
        }
    }
    DescribeTopicPartitionsResponse::default()
        .with_topics(topics)
        .with_next_cursor(next_cursor)
}

fn cursor(topic: &str, partition: i32) -> Cursor {
    Cursor::default()
        .with_topic_name(TopicName(str_bytes(topic)))
        .with_partition_index(partition)
}

fn unknown(name: &str) -> DescribeTopicPartitionsResponseTopic {
    DescribeTopicPartitionsResponseTopic::default()
        .with_error_code(ResponseError::UnknownTopicOrPartition.code())
        .with_name(Some(TopicName(str_bytes(name))))
        .with_is_internal(topic_name::is_internal(name))
}

/// Partitions `first..end` of `topic`, with leaders, replicas and ISR from the image.
fn describe(
    ctx: &BrokerContext,
    topic: &TopicMeta,
    first: i32,
    end: i32,
) -> DescribeTopicPartitionsResponseTopic {
    let image = ctx.metadata.image();
    let partitions = (first..end)
        .filter_map(|index| image.partition_state(topic, index).map(|s| (index, s)))
        .map(|(index, state)| {
            let view = PartitionView::of(&state);
            DescribeTopicPartitionsResponsePartition::default()
                .with_partition_index(index)
                .with_error_code(view.error_code)
                .with_leader_id(view.leader)
                .with_leader_epoch(view.leader_epoch)
                .with_replica_nodes(view.replicas)
                .with_isr_nodes(view.isr)
                .with_offline_replicas(view.offline)
                // No eligible leader replicas (KIP-966) beyond the ISR with one replica each.
                .with_eligible_leader_replicas(Some(Vec::new()))
                .with_last_known_elr(Some(Vec::new()))
        })
        .collect();
    DescribeTopicPartitionsResponseTopic::default()
        .with_name(Some(TopicName(str_bytes(topic.name.clone()))))
        .with_topic_id(topic.id.uuid())
        .with_is_internal(topic_name::is_internal(&topic.name))
        .with_partitions(partitions)
        .with_topic_authorized_operations(authorized_operations::TOPIC)
}
