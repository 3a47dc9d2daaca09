//! Heartbeat (key 12): keeps a member's session alive and tells it when a rebalance started
//! (REBALANCE_IN_PROGRESS) or that it must rejoin (UNKNOWN_MEMBER_ID, ILLEGAL_GENERATION,
//! FENCED_INSTANCE_ID).

use std::sync::Arc;
use std::time::Instant;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{HeartbeatRequest, HeartbeatResponse};

use crate::broker::BrokerContext;
use crate::group::GroupCoordinator;

pub fn handle(
    ctx: &Arc<BrokerContext>,
    request: HeartbeatRequest,
    version: i16,
) -> HeartbeatResponse {
    let group_id = request.group_id.0.as_str();
    let result = if group_id.is_empty() {
        Err(ResponseError::InvalidGroupId)
    } else if let Err(e) = super::coordinator::check_group(ctx, group_id) {
        Err(e)
    } else {
        match ctx.groups.get(group_id) {
            None => Err(ResponseError::UnknownMemberId),
            Some(group) => {
                let instance_id = (version >= 3)
                    .then(|| request.group_instance_id.as_ref().map(|s| s.as_str()))
                    .flatten();
                GroupCoordinator::lock_group(&group)
                    .heartbeat(
                        request.member_id.as_str(),
                        instance_id,
                        request.generation_id,
                        Instant::now(),
                    )
                    .map_err(ResponseError::from)
            }
        }
    };
    HeartbeatResponse::default().with_error_code(result.err().map_or(0, |e| e.code()))
}
