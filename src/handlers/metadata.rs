//! Metadata (key 3): the live brokers, cluster id, controller, and topics with their
//! partitions' leaders, replicas and ISR, all from one metadata image — creating unknown
//! topics on request when `auto.create.topics.enable` allows, as Kafka does.

use std::collections::BTreeMap;
use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{BrokerId, MetadataRequest, MetadataResponse, TopicName};
use uuid::Uuid;

use super::{authorized_operations, str_bytes, PartitionView};
use crate::broker::BrokerContext;
use crate::internal_topic::TopicError;
use crate::metadata::{topic_name, MetadataError, TopicMeta};

pub fn handle(
    ctx: &Arc<BrokerContext>,
    request: MetadataRequest,
    version: i16,
) -> MetadataResponse {
    // v0–3 have no flag and always allow auto-creation.
    let allow_auto_create = version < 4 || request.allow_auto_topic_creation;
    let topics = match request.topics {
        // v1+: null means every topic; v0: an empty list means every topic.
        None => all_topics(ctx),
        Some(list) if list.is_empty() && version == 0 => all_topics(ctx),
        Some(list) => list
            .into_iter()
            // A non-zero id wins over the name, as in Kafka: the Java client's by-id request
            // leaves the name at its schema default, the empty string, not null.
            .map(|wanted| match wanted.name {
                Some(name) if wanted.topic_id.is_nil() => {
                    topic_by_name(ctx, name, allow_auto_create)
                }
                _ => topic_by_id(ctx, wanted.topic_id),
            })
            .collect(),
    };
    // Authorized-operation fields exist from v8 (cluster: v8–10 only); the codec rejects them
    // elsewhere, and "not requested" must stay the sentinel.
    let topics = if version >= 8 && request.include_topic_authorized_operations {
        topics
            .into_iter()
            .map(|t| t.with_topic_authorized_operations(authorized_operations::TOPIC))
            .collect()
    } else {
        topics
    };
    let cluster_operations =
        if (8..=10).contains(&version) && request.include_cluster_authorized_operations {
            authorized_operations::CLUSTER
        } else {
            authorized_operations::NOT_REQUESTED
        };
    MetadataResponse::default()
        .with_cluster_authorized_operations(cluster_operations)
        .with_brokers(
            ctx.metadata
                .image()
                .live_brokers()
                .map(|b| {
                    MetadataResponseBroker::default()
                        .with_node_id(BrokerId(b.id.get()))
                        .with_host(str_bytes(b.host.clone()))
                        .with_port(i32::from(b.port))
                        .with_rack(b.rack.clone().map(str_bytes))
                })
                .collect(),
        )
        .with_cluster_id(Some(str_bytes(ctx.metadata.cluster_id())))
        // The Java admin client sends CreateTopics to the controller and waits until one is
        // named; any broker commits admin writes through the quorum.
        .with_controller_id(BrokerId(ctx.controller_id().get()))
        .with_topics(topics)
}

fn all_topics(ctx: &BrokerContext) -> Vec<MetadataResponseTopic> {
    ctx.metadata
        .topics()
        .iter()
        .map(|t| describe(ctx, t))
        .collect()
}

fn topic_by_name(
    ctx: &BrokerContext,
    name: TopicName,
    allow_auto_create: bool,
) -> MetadataResponseTopic {
    let text = name.0.as_str().to_string();
    if let Some(topic) = ctx.metadata.topic(&text) {
        return describe(ctx, &topic);
    }
    let failed = |error: ResponseError| {
        MetadataResponseTopic::default()
            .with_name(Some(name.clone()))
            .with_error_code(error.code())
    };
    if let Err(why) = topic_name::validate(&text) {
        tracing::debug!(topic = %text, "metadata for invalid topic name: {why}");
        return failed(ResponseError::InvalidTopicException);
    }
    if !(allow_auto_create && ctx.config().auto_create_topics_enable) {
        return failed(ResponseError::UnknownTopicOrPartition);
    }
    // Created through the quorum before answering, so the answer has the full topic (its
    // leaders' logs follow on their brokers within moments).
    match ctx.create_topic(&text, ctx.config().num_partitions, BTreeMap::new()) {
        Ok(topic) => describe(ctx, &topic),
        // Another request created it in between: describe what exists.
        Err(TopicError::Metadata(MetadataError::TopicExists(_))) => match ctx.metadata.topic(&text)
        {
            Some(topic) => describe(ctx, &topic),
            None => failed(ResponseError::LeaderNotAvailable),
        },
        Err(e) => {
            tracing::error!(topic = %text, "auto-creation failed: {e}");
            failed(super::errors::auto_create_error(&e))
        }
    }
}

fn topic_by_id(ctx: &BrokerContext, id: Uuid) -> MetadataResponseTopic {
    match ctx.metadata.topic_by_id(id.into()) {
        Some(topic) => describe(ctx, &topic),
        None => MetadataResponseTopic::default()
            .with_topic_id(id)
            .with_error_code(ResponseError::UnknownTopicId.code()),
    }
}

fn describe(ctx: &BrokerContext, topic: &TopicMeta) -> MetadataResponseTopic {
    let image = ctx.metadata.image();
    let partitions = (0..topic.partitions)
        .filter_map(|index| image.partition_state(topic, index).map(|s| (index, s)))
        .map(|(index, state)| {
            let view = PartitionView::of(&state);
            MetadataResponsePartition::default()
                .with_partition_index(index)
                .with_error_code(view.error_code)
                .with_leader_id(view.leader)
                .with_leader_epoch(view.leader_epoch)
                .with_replica_nodes(view.replicas)
                .with_isr_nodes(view.isr)
                .with_offline_replicas(view.offline)
        })
        .collect();
    MetadataResponseTopic::default()
        .with_name(Some(TopicName(str_bytes(topic.name.clone()))))
        .with_topic_id(topic.id.uuid())
        .with_is_internal(topic_name::is_internal(&topic.name))
        .with_partitions(partitions)
}
