//! DeleteTopics (key 20): by name (v0–5) or by name or id (v6+); data leaves the disk.

use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::{DeleteTopicsRequest, DeleteTopicsResponse, TopicName};
use uuid::Uuid;

use super::str_bytes;
use crate::broker::BrokerContext;
use crate::metadata::topic_name;

pub fn handle(
    ctx: &Arc<BrokerContext>,
    request: DeleteTopicsRequest,
    version: i16,
) -> DeleteTopicsResponse {
    let wanted: Vec<(Option<TopicName>, Uuid)> = if version >= 6 {
        request
            .topics
            .into_iter()
            .map(|t| (t.name, t.topic_id))
            .collect()
    } else {
        request
            .topic_names
            .into_iter()
            .map(|n| (Some(n), Uuid::nil()))
            .collect()
    };
    let responses = wanted
        .into_iter()
        .map(|(name, id)| delete_one(ctx, name, id))
        .collect();
    DeleteTopicsResponse::default().with_responses(responses)
}

fn delete_one(ctx: &BrokerContext, name: Option<TopicName>, id: Uuid) -> DeletableTopicResult {
    let topic = match &name {
        Some(n) => ctx.metadata.topic(n.0.as_str()),
        None => ctx.metadata.topic_by_id(id.into()),
    };
    let result = DeletableTopicResult::default()
        .with_name(name.clone())
        .with_topic_id(id);
    let Some(topic) = topic else {
        let error = if name.is_some() {
            ResponseError::UnknownTopicOrPartition
        } else {
            ResponseError::UnknownTopicId
        };
        return result.with_error_code(error.code());
    };
    let result = result
        .with_name(Some(TopicName(str_bytes(topic.name.clone()))))
        .with_topic_id(topic.id.uuid());
    if topic_name::is_internal(&topic.name) {
        // Committed offsets and group state live there; losing them silently would be worse.
        return result
            .with_error_code(ResponseError::InvalidTopicException.code())
            .with_error_message(Some(str_bytes("internal topics cannot be deleted")));
    }
    match ctx.delete_topic(&topic.name) {
        Ok(Some(_)) => result,
        Ok(None) => result.with_error_code(ResponseError::UnknownTopicOrPartition.code()),
        Err(e) => {
            tracing::error!(topic = %topic.name, "delete failed: {e}");
            result
                .with_error_code(super::errors::topic_error(&e).code())
                .with_error_message(Some(str_bytes(e.to_string())))
        }
    }
}
