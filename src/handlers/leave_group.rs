//! LeaveGroup (key 13): members leave (v0–2: one member id; v3+: a batch of member id and/or
//! group.instance.id), and the rest of the group rebalances.

use std::sync::Arc;
use std::time::Instant;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::leave_group_response::MemberResponse;
use kafka_protocol::messages::{LeaveGroupRequest, LeaveGroupResponse};

use crate::broker::BrokerContext;
use crate::group::GroupCoordinator;

pub fn handle(
    ctx: &Arc<BrokerContext>,
    request: LeaveGroupRequest,
    version: i16,
) -> LeaveGroupResponse {
    // The group's state is written under its lock: the offsets topic must exist first.
    ctx.groups.prepare_store(ctx);
    let group_id = request.group_id.0.to_string();
    let leavers: Vec<(String, Option<String>)> = if version >= 3 {
        request
            .members
            .iter()
            .map(|m| {
                (
                    m.member_id.to_string(),
                    m.group_instance_id.as_ref().map(|s| s.to_string()),
                )
            })
            .collect()
    } else {
        vec![(request.member_id.to_string(), None)]
    };
    let (top, results): (Option<ResponseError>, Vec<Option<ResponseError>>) = if group_id.is_empty()
    {
        (Some(ResponseError::InvalidGroupId), Vec::new())
    } else if let Err(e) = super::coordinator::check_group(ctx, &group_id) {
        (Some(e), Vec::new())
    } else {
        match ctx.groups.get(&group_id) {
            None => (
                None,
                leavers
                    .iter()
                    .map(|_| Some(ResponseError::UnknownMemberId))
                    .collect(),
            ),
            Some(group) => {
                let mut g = GroupCoordinator::lock_group(&group);
                let now = Instant::now();
                let results = leavers
                    .iter()
                    .map(|(member, instance)| {
                        g.leave(member, instance.as_deref(), ctx.groups.config(), now)
                            .err()
                            .map(ResponseError::from)
                    })
                    .collect();
                ctx.groups.persist_if_dirty(ctx, &mut g);
                (None, results)
            }
        }
    };
    if version < 3 {
        // One member: its result is the request's result.
        let error = top.or_else(|| results.first().copied().flatten());
        return LeaveGroupResponse::default().with_error_code(error.map_or(0, |e| e.code()));
    }
    let members = leavers
        .into_iter()
        .zip(results.into_iter().chain(std::iter::repeat(None)))
        .map(|((member_id, instance_id), error)| {
            MemberResponse::default()
                .with_member_id(member_id.into())
                .with_group_instance_id(instance_id.map(Into::into))
                .with_error_code(error.map_or(0, |e| e.code()))
        })
        .collect();
    LeaveGroupResponse::default()
        .with_error_code(top.map_or(0, |e| e.code()))
        .with_members(if top.is_some() { Vec::new() } else { members })
}
