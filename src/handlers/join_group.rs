//! JoinGroup (key 11): enter or re-enter a classic group. The answer usually waits for the
//! rebalance to finish (every known member rejoined, or the rebalance timeout passed), so it is
//! parked on a oneshot the group completes; the connection keeps serving other requests.

use std::sync::Arc;
use std::time::Instant;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::join_group_response::JoinGroupResponseMember;
use kafka_protocol::messages::{JoinGroupRequest, JoinGroupResponse};

use super::str_bytes;
use crate::broker::BrokerContext;
use crate::group::{GroupCoordinator, GroupError, JoinParams, JoinResult, Pending};
use crate::protocol::Reply;

/// Encodes `result` for `version`, setting only fields that version has.
fn response(result: JoinResult, version: i16) -> JoinGroupResponse {
    let members = result
        .members
        .into_iter()
        .map(|m| {
            let r = JoinGroupResponseMember::default()
                .with_member_id(str_bytes(m.member_id))
                .with_metadata(m.metadata);
            if version >= 5 {
                r.with_group_instance_id(m.instance_id.map(str_bytes))
            } else {
                r
            }
        })
        .collect();
    let mut r = JoinGroupResponse::default()
        .with_error_code(result.error.map_or(0, |e| ResponseError::from(e).code()))
        .with_generation_id(result.generation)
        .with_leader(str_bytes(result.leader))
        .with_member_id(str_bytes(result.member_id))
        .with_members(members);
    if version >= 7 {
        r = r
            .with_protocol_type(result.protocol_type.map(str_bytes))
            .with_protocol_name(result.protocol_name.map(str_bytes));
    } else {
        // Before v7 the name is a non-nullable string: "" when there is none.
        r = r.with_protocol_name(Some(str_bytes(result.protocol_name.unwrap_or_default())));
    }
    if version >= 9 {
        r = r.with_skip_assignment(result.skip_assignment);
    }
    r
}

pub fn handle(
    ctx: &Arc<BrokerContext>,
    request: JoinGroupRequest,
    version: i16,
    client_id: &str,
    client_host: &str,
) -> Reply<JoinGroupResponse> {
    // The group's state is written under its lock: the offsets topic must exist first.
    ctx.groups.prepare_store(ctx);
    let member_id = request.member_id.to_string();
    let fail =
        |e: GroupError| Reply::Now(response(JoinResult::error(e, member_id.clone()), version));
    let group_id = request.group_id.0.to_string();
    if group_id.is_empty() {
        return fail(GroupError::InvalidGroupId);
    }
    if let Err(e) = super::coordinator::check_group(ctx, &group_id) {
        let refused = JoinResult::error(GroupError::InvalidGroupId, member_id.clone());
        return Reply::Now(response(refused, version).with_error_code(e.code()));
    }
    let instance_id = if version >= 5 {
        request.group_instance_id.as_ref().map(|s| s.to_string())
    } else {
        None
    };
    if instance_id.as_deref() == Some("") {
        return fail(GroupError::InvalidGroupId);
    }
    let cfg = ctx.groups.config();
    if request.session_timeout_ms < cfg.min_session_timeout_ms
        || request.session_timeout_ms > cfg.max_session_timeout_ms
    {
        // Checked before the group is created, so a refused join leaves nothing behind.
        return fail(GroupError::InvalidSessionTimeout);
    }
    let group = match ctx.groups.get(&group_id) {
        Some(g) => g,
        // Kafka: a member id for a group that does not exist is stale.
        None if !member_id.is_empty() => return fail(GroupError::UnknownMemberId),
        None => match ctx.groups.get_or_create(&group_id) {
            Ok(g) => g,
            Err(e) => return fail(e),
        },
    };
    let params = JoinParams {
        member_id: member_id.clone(),
        instance_id,
        client_id: client_id.to_string(),
        client_host: client_host.to_string(),
        session_timeout_ms: request.session_timeout_ms,
        // v0 has no rebalance timeout; Kafka uses the session timeout.
        rebalance_timeout_ms: if version >= 1 {
            request.rebalance_timeout_ms
        } else {
            request.session_timeout_ms
        },
        protocol_type: request.protocol_type.to_string(),
        protocols: request
            .protocols
            .into_iter()
            .map(|p| (p.name.to_string(), p.metadata))
            .collect(),
        require_known_member: version >= 4,
        supports_skip_assignment: version >= 9,
    };
    let pending = {
        let mut g = GroupCoordinator::lock_group(&group);
        let p = g.join(params, ctx.groups.config(), Instant::now());
        ctx.groups.persist_if_dirty(ctx, &mut g);
        p
    };
    match pending {
        Pending::Now(result) => Reply::Now(response(result, version)),
        Pending::Later(rx) => Reply::Later(Box::pin(async move {
            let result = rx
                .await
                .unwrap_or_else(|_| JoinResult::error(GroupError::GroupDead, member_id));
            response(result, version)
        })),
    }
}
