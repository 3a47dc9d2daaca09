//! CreateTopics (key 19): validates names, partition counts, replication factors, assignments and
//! configs as Kafka does, then creates (unless validate_only).

use std::collections::BTreeMap;
use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::create_topics_request::{CreatableReplicaAssignment, CreatableTopic};
use kafka_protocol::messages::create_topics_response::{
    CreatableTopicConfigs, CreatableTopicResult,
};
use kafka_protocol::messages::{CreateTopicsRequest, CreateTopicsResponse};

use super::errors;
use super::str_bytes;
use crate::broker::BrokerContext;
use crate::common::NodeId;
use crate::metadata::{config_catalog, topic_config, topic_name};

pub fn handle(
    ctx: &Arc<BrokerContext>,
    request: CreateTopicsRequest,
    _version: i16,
) -> CreateTopicsResponse {
    let duplicates = super::repeated_names(request.topics.iter().map(|t| t.name.0.as_str()));
    let results = request
        .topics
        .into_iter()
        .map(|topic| {
            let name = topic.name.clone();
            let result = if duplicates.contains(name.0.as_str()) {
                Err(super::repeated_name_error())
            } else {
                create_one(ctx, topic, request.validate_only)
            };
            match result {
                Ok(done) => done.with_name(name),
                Err((error, message)) => CreatableTopicResult::default()
                    .with_name(name)
                    .with_error_code(error.code())
                    .with_error_message(Some(str_bytes(message)))
                    .with_num_partitions(-1)
                    .with_replication_factor(-1),
            }
        })
        .collect();
    CreateTopicsResponse::default().with_topics(results)
}

type Failure = (ResponseError, String);

fn create_one(
    ctx: &BrokerContext,
    topic: CreatableTopic,
    validate_only: bool,
) -> Result<CreatableTopicResult, Failure> {
    let name = topic.name.0.as_str().to_string();
    topic_name::validate(&name).map_err(|why| (ResponseError::InvalidTopicException, why))?;
    if ctx.metadata.topic(&name).is_some() {
        return Err((
            ResponseError::TopicAlreadyExists,
            format!("topic `{name}` already exists"),
        ));
    }
    let partitions = partition_count(ctx, &topic)?;
    let replication_factor = replication_factor(ctx, &topic)?;
    let mut configs = BTreeMap::new();
    for config in &topic.configs {
        let key = config.name.as_str();
        let value = config.value.as_ref().map(|v| v.as_str());
        topic_config::validate(key, value).map_err(|why| (ResponseError::InvalidConfig, why))?;
        if let Some(value) = value {
            configs.insert(key.to_string(), value.to_string());
        }
    }
    // Every topic config with its effective value and source, as DescribeConfigs shows them.
    let layers = ctx.config_layers();
    let described: Vec<CreatableTopicConfigs> = config_catalog::TOPIC_CONFIGS
        .iter()
        .map(|d| {
            let r = config_catalog::resolve(&layers, &configs, d);
            CreatableTopicConfigs::default()
                .with_name(str_bytes(d.name))
                .with_value(Some(str_bytes(r.value.value)))
                .with_read_only(false)
                .with_config_source(r.value.source)
                .with_is_sensitive(false)
        })
        .collect();
    let done = |id| {
        // Success carries a null message, not "": clients test the message for null.
        CreatableTopicResult::default()
            .with_error_message(None)
            .with_topic_id(id)
            .with_num_partitions(partitions)
            .with_replication_factor(replication_factor)
            .with_configs(Some(described.clone()))
    };
    if validate_only {
        // A dry run answers what the real request would, open-file budget included.
        ctx.check_partition_limit(usize::try_from(partitions).unwrap_or(0))
            .map_err(|e| (errors::topic_error(&e), e.to_string()))?;
        return Ok(done(uuid::Uuid::nil()));
    }
    let replicas = assignment(ctx, &topic)?;
    match ctx.create_topic_with(
        &name,
        partitions,
        usize::try_from(replication_factor).unwrap_or(1),
        replicas,
        configs,
    ) {
        Ok(created) => Ok(done(created.id.uuid())),
        Err(e) => {
            let code = errors::topic_error(&e);
            if code == ResponseError::KafkaStorageError {
                tracing::error!(topic = %name, "create failed: {e}");
            }
            // The messages name the topic (`topic `t` already exists`) or the limit.
            Err((code, e.to_string()))
        }
    }
}

fn partition_count(ctx: &BrokerContext, topic: &CreatableTopic) -> Result<i32, Failure> {
    if !topic.assignments.is_empty() {
        if topic.num_partitions != -1 || topic.replication_factor != -1 {
            return Err((
                ResponseError::InvalidRequest,
                "both manual assignments and num_partitions/replication_factor were given".into(),
            ));
        }
        let mut indexes: Vec<i32> = topic
            .assignments
            .iter()
            .map(|a| a.partition_index)
            .collect();
        indexes.sort_unstable();
        if indexes.iter().enumerate().any(|(i, &p)| p != i as i32) {
            return Err((
                ResponseError::InvalidReplicaAssignment,
                "partitions must be numbered 0..n without gaps".into(),
            ));
        }
        assignment(ctx, topic)?;
        return Ok(topic.assignments.len() as i32);
    }
    match topic.num_partitions {
        -1 => Ok(ctx.config().num_partitions),
        n if n > 0 => Ok(n),
        n => Err((
            ResponseError::InvalidPartitions,
            format!("number of partitions must be larger than 0 (got {n})"),
        )),
    }
}

/// The replicas of each partition of a manual assignment, checked as Kafka checks them: every
/// partition has the same number of replicas, none twice, all on registered brokers.
fn assignment(
    ctx: &BrokerContext,
    topic: &CreatableTopic,
) -> Result<Option<Vec<Vec<NodeId>>>, Failure> {
    if topic.assignments.is_empty() {
        return Ok(None);
    }
    let image = ctx.metadata.image();
    let mut by_partition: Vec<&CreatableReplicaAssignment> = topic.assignments.iter().collect();
    by_partition.sort_by_key(|a| a.partition_index);
    let width = by_partition[0].broker_ids.len();
    let mut replicas = Vec::with_capacity(by_partition.len());
    for a in by_partition {
        let ids: Vec<NodeId> = a.broker_ids.iter().map(|b| NodeId(b.0)).collect();
        let bad = |why: String| Err((ResponseError::InvalidReplicaAssignment, why));
        if ids.is_empty() || ids.len() != width {
            return bad("all partitions should have the same number of replicas".into());
        }
        let mut distinct = ids.clone();
        distinct.sort();
        distinct.dedup();
        if distinct.len() != ids.len() {
            return bad(format!(
                "partition {} lists a broker twice",
                a.partition_index
            ));
        }
        if let Some(missing) = ids.iter().find(|id| image.broker(**id).is_none()) {
            return bad(format!("broker {missing} is not registered"));
        }
        replicas.push(ids);
    }
    Ok(Some(replicas))
}

fn replication_factor(ctx: &BrokerContext, topic: &CreatableTopic) -> Result<i16, Failure> {
    if let Some(first) = topic.assignments.first() {
        return Ok(i16::try_from(first.broker_ids.len()).unwrap_or(i16::MAX));
    }
    let rf = match topic.replication_factor {
        -1 => ctx.config().default_replication_factor,
        n => n,
    };
    if rf <= 0 {
        return Err((
            ResponseError::InvalidReplicationFactor,
            format!("replication factor must be larger than 0 (got {rf})"),
        ));
    }
    let live = ctx.metadata.image().live_brokers().count();
    if usize::try_from(rf).unwrap_or(usize::MAX) > live {
        return Err((
            ResponseError::InvalidReplicationFactor,
            format!(
                "Unable to replicate the partition {rf} time(s): the target replication factor \
                 of {rf} cannot be reached because only {live} broker(s) are registered."
            ),
        ));
    }
    Ok(rf)
}
