//! SyncGroup (key 14): the leader hands in the assignment, every member gets its own back.
//! Followers that arrive first are parked until the leader's assignment completes the round.

use std::sync::Arc;
use std::time::Instant;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{SyncGroupRequest, SyncGroupResponse};

use super::str_bytes;
use crate::broker::BrokerContext;
use crate::group::{GroupCoordinator, GroupError, Pending, SyncResult};
use crate::protocol::Reply;

fn response(result: SyncResult, version: i16) -> SyncGroupResponse {
    let r = SyncGroupResponse::default()
        .with_error_code(result.error.map_or(0, |e| ResponseError::from(e).code()))
        .with_assignment(result.assignment);
    if version >= 5 {
        r.with_protocol_type(result.protocol_type.map(str_bytes))
            .with_protocol_name(result.protocol_name.map(str_bytes))
    } else {
        r
    }
}

pub fn handle(
    ctx: &Arc<BrokerContext>,
    request: SyncGroupRequest,
    version: i16,
) -> Reply<SyncGroupResponse> {
    // The group's state is written under its lock: the offsets topic must exist first.
    ctx.groups.prepare_store(ctx);
    let fail = |e: GroupError| Reply::Now(response(SyncResult::error(e), version));
    let group_id = request.group_id.0.to_string();
    if group_id.is_empty() {
        return fail(GroupError::InvalidGroupId);
    }
    if let Err(e) = super::coordinator::check_group(ctx, &group_id) {
        let refused = SyncResult::error(GroupError::InvalidGroupId);
        return Reply::Now(response(refused, version).with_error_code(e.code()));
    }
    let Some(group) = ctx.groups.get(&group_id) else {
        return fail(GroupError::UnknownMemberId);
    };
    let instance_id = (version >= 3)
        .then(|| request.group_instance_id.as_ref().map(|s| s.to_string()))
        .flatten();
    let (protocol_type, protocol_name) = if version >= 5 {
        (
            request.protocol_type.as_ref().map(|s| s.to_string()),
            request.protocol_name.as_ref().map(|s| s.to_string()),
        )
    } else {
        (None, None)
    };
    let assignments = request
        .assignments
        .into_iter()
        .map(|a| (a.member_id.to_string(), a.assignment))
        .collect();
    let pending = {
        let mut g = GroupCoordinator::lock_group(&group);
        let p = g.sync(
            request.member_id.as_str(),
            instance_id.as_deref(),
            request.generation_id,
            protocol_type.as_deref(),
            protocol_name.as_deref(),
            assignments,
            Instant::now(),
        );
        ctx.groups.persist_if_dirty(ctx, &mut g);
        p
    };
    match pending {
        Pending::Now(result) => Reply::Now(response(result, version)),
        Pending::Later(rx) => Reply::Later(Box::pin(async move {
            let result = rx
                .await
                .unwrap_or_else(|_| SyncResult::error(GroupError::GroupDead));
            response(result, version)
        })),
    }
}
