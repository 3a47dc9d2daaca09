//! DescribeGroups (key 15): state, protocol and members of classic groups. Member metadata and
//! assignments are echoed as the opaque bytes the members sent, and only for a Stable group (as
//! Kafka does). An unknown group, or a KIP-848 consumer group, is described as Dead with no
//! members.

use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_groups_response::{DescribedGroup, DescribedGroupMember};
use kafka_protocol::messages::{DescribeGroupsRequest, DescribeGroupsResponse};

use super::str_bytes;
use crate::broker::BrokerContext;
use crate::group::GroupState;

pub fn handle(
    ctx: &Arc<BrokerContext>,
    request: DescribeGroupsRequest,
    version: i16,
) -> DescribeGroupsResponse {
    let groups = request
        .groups
        .into_iter()
        .map(|id| {
            let mut out = DescribedGroup::default()
                .with_group_id(id.clone())
                .with_group_state(str_bytes(GroupState::Dead.name()));
            if version >= 3 && request.include_authorized_operations {
                out = out.with_authorized_operations(super::authorized_operations::GROUP);
            }
            if id.0.is_empty() {
                return out.with_error_code(ResponseError::InvalidGroupId.code());
            }
            if let Err(e) = super::coordinator::check_group(ctx, id.0.as_str()) {
                return out.with_error_code(e.code());
            }
            let Some(group) = ctx.groups.get(id.0.as_str()) else {
                return out;
            };
            let g = ctx.groups.lock_current(ctx, id.0.as_str(), &group);
            if g.kip848.is_some() {
                // Kafka describes only classic groups here; below v6 anything else is
                // reported like an unknown group (Dead, no error). ConsumerGroupDescribe
                // covers consumer-protocol groups.
                return out;
            }
            let stable = g.state == GroupState::Stable;
            let protocol = g.protocol.clone().unwrap_or_default();
            let members = g
                .members
                .values()
                .map(|m| {
                    let mut d = DescribedGroupMember::default()
                        .with_member_id(str_bytes(m.id.clone()))
                        .with_client_id(str_bytes(m.client_id.clone()))
                        .with_client_host(str_bytes(m.client_host.clone()));
                    if version >= 4 {
                        d = d.with_group_instance_id(m.instance_id.clone().map(str_bytes));
                    }
                    if stable {
                        let meta = m
                            .protocols
                            .iter()
                            .find(|(n, _)| *n == protocol)
                            .map(|(_, b)| b.clone())
                            .unwrap_or_default();
                        d = d
                            .with_member_metadata(meta)
                            .with_member_assignment(m.assignment.clone());
                    }
                    d
                })
                .collect();
            out.with_group_state(str_bytes(g.state.name()))
                .with_protocol_type(str_bytes(g.protocol_type.clone().unwrap_or_default()))
                .with_protocol_data(str_bytes(if stable { protocol } else { String::new() }))
                .with_members(members)
        })
        .collect();
    DescribeGroupsResponse::default().with_groups(groups)
}
