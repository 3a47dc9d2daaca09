//! OffsetDelete (key 47): deletes committed offsets of a group, except for topics its members
//! are subscribed to (GROUP_SUBSCRIBED_TO_TOPIC), as Kafka does for consumer groups.

use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::offset_delete_response::{
    OffsetDeleteResponsePartition, OffsetDeleteResponseTopic,
};
use kafka_protocol::messages::{OffsetDeleteRequest, OffsetDeleteResponse};

use crate::broker::BrokerContext;
use crate::group::GroupState;
use crate::internal_topic::CoordinatorHost;
use crate::protocol::Reply;

pub fn handle(
    ctx: &Arc<BrokerContext>,
    request: OffsetDeleteRequest,
    _version: i16,
) -> Reply<OffsetDeleteResponse> {
    let top =
        |e: ResponseError| Reply::Now(OffsetDeleteResponse::default().with_error_code(e.code()));
    let group_id = request.group_id.0.to_string();
    if group_id.is_empty() {
        return top(ResponseError::InvalidGroupId);
    }
    if let Err(e) = super::coordinator::check_group(ctx, &group_id) {
        return top(e);
    }
    let Some(group) = ctx.groups.get(&group_id) else {
        return top(ResponseError::GroupIdNotFound);
    };
    let mut g = ctx.groups.lock_current(ctx, &group_id, &group);
    if g.state == GroupState::Dead {
        return top(ResponseError::GroupIdNotFound);
    }
    let subscribed = if g.protocol_type.as_deref() == Some("consumer") {
        g.subscribed_topics()
    } else if g.state == GroupState::Empty {
        Some(Default::default())
    } else {
        return top(ResponseError::NonEmptyGroup);
    };
    let mut delete = Vec::new();
    let topics = request
        .topics
        .iter()
        .map(|t| {
            let name = t.name.0.to_string();
            let blocked = subscribed.as_ref().is_none_or(|s| s.contains(&name));
            let partitions = t
                .partitions
                .iter()
                .map(|p| {
                    let code = if blocked {
                        ResponseError::GroupSubscribedToTopic.code()
                    } else {
                        if g.offsets.contains_key(&(name.clone(), p.partition_index)) {
                            delete.push((name.clone(), p.partition_index));
                        }
                        0
                    };
                    OffsetDeleteResponsePartition::default()
                        .with_partition_index(p.partition_index)
                        .with_error_code(code)
                })
                .collect();
            OffsetDeleteResponseTopic::default()
                .with_name(t.name.clone())
                .with_partitions(partitions)
        })
        .collect();
    let response = OffsetDeleteResponse::default().with_topics(topics);
    if delete.is_empty() {
        return Reply::Now(response);
    }
    let (log, end) = match ctx.groups.write_tombstones(ctx, &group_id, &delete, false) {
        Ok(w) => w,
        Err(e) => {
            tracing::error!(group = %group_id, "cannot delete offsets: {e}");
            return top(super::errors::store_error(&e));
        }
    };
    for k in &delete {
        g.offsets.remove(k);
    }
    drop(g);
    let ctx = ctx.clone();
    Reply::Later(Box::pin(async move {
        if let Err(e) = ctx.wait_acknowledgeable(&log, end).await {
            tracing::error!("offset deletion not made durable: {e}");
            return OffsetDeleteResponse::default()
                .with_error_code(super::errors::store_error(&e).code());
        }
        response
    }))
}
