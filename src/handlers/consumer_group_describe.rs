//! ConsumerGroupDescribe (key 69, KIP-848): epochs, assignor, members with their current and
//! target assignments. A classic group (or an unknown one) answers GROUP_ID_NOT_FOUND, which
//! makes the Java admin fall back to DescribeGroups.

use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::consumer_group_describe_response::{
    Assignment, DescribedGroup, Member, TopicPartitions,
};
use kafka_protocol::messages::{
    ConsumerGroupDescribeRequest, ConsumerGroupDescribeResponse, TopicName,
};

use super::consumer_group_heartbeat::topic_snapshot;
use super::str_bytes;
use crate::broker::BrokerContext;
use crate::group::consumer;

/// KIP-848's member_type for a consumer-protocol member.
const MEMBER_TYPE_CONSUMER: i8 = 1;

fn assignment(a: &consumer::Assignment, names: &[consumer::TopicInfo]) -> Assignment {
    Assignment::default().with_topic_partitions(
        a.iter()
            .filter(|(_, ps)| !ps.is_empty())
            .map(|(id, ps)| {
                let name = names
                    .iter()
                    .find(|t| t.id == *id)
                    .map(|t| t.name.clone())
                    .unwrap_or_default();
                TopicPartitions::default()
                    .with_topic_id(*id)
                    .with_topic_name(TopicName(str_bytes(name)))
                    .with_partitions(ps.iter().copied().collect())
            })
            .collect(),
    )
}

pub fn handle(
    ctx: &Arc<BrokerContext>,
    request: ConsumerGroupDescribeRequest,
    version: i16,
) -> ConsumerGroupDescribeResponse {
    let topics = topic_snapshot(ctx);
    let groups = request
        .group_ids
        .into_iter()
        .map(|id| {
            let mut out = DescribedGroup::default().with_group_id(id.clone());
            if request.include_authorized_operations {
                out = out.with_authorized_operations(super::authorized_operations::GROUP);
            }
            if id.0.is_empty() {
                return out
                    .with_error_code(ResponseError::InvalidGroupId.code())
                    .with_error_message(Some(str_bytes("GroupId can't be empty.")));
            }
            if let Err(e) = super::coordinator::check_group(ctx, id.0.as_str()) {
                return out.with_error_code(e.code());
            }
            let not_found = |out: DescribedGroup, why: &str| {
                out.with_error_code(ResponseError::GroupIdNotFound.code())
                    .with_error_message(Some(str_bytes(format!("Group {} {why}.", id.0))))
            };
            let Some(group) = ctx.groups.get(id.0.as_str()) else {
                return not_found(out, "not found");
            };
            let g = ctx.groups.lock_current(ctx, id.0.as_str(), &group);
            let Some(c) = &g.kip848 else {
                return not_found(out, "is not a consumer group");
            };
            let empty = consumer::Assignment::new();
            let members = c
                .members
                .values()
                .map(|m| {
                    let mut d = Member::default()
                        .with_member_id(str_bytes(m.id.clone()))
                        .with_instance_id(m.instance_id.clone().map(str_bytes))
                        .with_rack_id(m.rack_id.clone().map(str_bytes))
                        .with_member_epoch(m.epoch)
                        .with_client_id(str_bytes(m.client_id.clone()))
                        .with_client_host(str_bytes(m.client_host.clone()))
                        .with_subscribed_topic_names(
                            m.subscribed_topic_names
                                .iter()
                                .map(|t| TopicName(str_bytes(t.clone())))
                                .collect(),
                        )
                        .with_subscribed_topic_regex(
                            m.subscribed_topic_regex.clone().map(str_bytes),
                        )
                        .with_assignment(assignment(&m.assigned, &topics))
                        .with_target_assignment(assignment(
                            c.target.get(&m.id).unwrap_or(&empty),
                            &topics,
                        ));
                    if version >= 1 {
                        d = d.with_member_type(MEMBER_TYPE_CONSUMER);
                    }
                    d
                })
                .collect();
            out.with_group_state(str_bytes(c.state_name()))
                .with_group_epoch(c.group_epoch)
                .with_assignment_epoch(c.assignment_epoch)
                .with_assignor_name(str_bytes(c.assignor.clone()))
                .with_members(members)
        })
        .collect();
    ConsumerGroupDescribeResponse::default().with_groups(groups)
}
