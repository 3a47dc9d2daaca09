//! DeleteGroups (key 42): deletes Empty groups and their offsets (tombstones in
//! `__consumer_offsets`, fdatasync'ed before the answer); a group with members gets
//! NON_EMPTY_GROUP, an unknown one GROUP_ID_NOT_FOUND.

use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::delete_groups_response::DeletableGroupResult;
use kafka_protocol::messages::{DeleteGroupsRequest, DeleteGroupsResponse};

use crate::broker::BrokerContext;
use crate::internal_topic::CoordinatorHost;
use crate::protocol::Reply;

pub fn handle(
    ctx: &Arc<BrokerContext>,
    request: DeleteGroupsRequest,
    _version: i16,
) -> Reply<DeleteGroupsResponse> {
    let mut results = Vec::new();
    let mut waits = Vec::new();
    for id in request.groups_names {
        let outcome = if id.0.is_empty() {
            Err(ResponseError::InvalidGroupId)
        } else if let Err(e) = super::coordinator::check_group(ctx, id.0.as_str()) {
            Err(e)
        } else {
            ctx.groups
                .delete_group(ctx, id.0.as_str())
                .map_err(ResponseError::from)
        };
        let code = match outcome {
            Ok(Some(wait)) => {
                waits.push(wait);
                0
            }
            Ok(None) => 0,
            Err(e) => e.code(),
        };
        results.push(
            DeletableGroupResult::default()
                .with_group_id(id)
                .with_error_code(code),
        );
    }
    let response = DeleteGroupsResponse::default().with_results(results);
    if waits.is_empty() {
        return Reply::Now(response);
    }
    let ctx = ctx.clone();
    Reply::Later(Box::pin(async move {
        for (log, end) in waits {
            if let Err(e) = ctx.wait_acknowledgeable(&log, end).await {
                // The group is already gone from memory; a crash now could bring it back.
                tracing::error!("group deletion not made durable: {e}");
            }
        }
        response
    }))
}
