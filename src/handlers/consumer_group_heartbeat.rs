//! ConsumerGroupHeartbeat (key 68, KIP-848): joins, heartbeats and leaves of consumer-protocol
//! group members. The coordinator owns the assignment (see `group::consumer`); answers carry
//! the member epoch, the heartbeat interval and, when it changed, the member's assignment by
//! topic id. A live classic group of the same id answers GROUP_ID_NOT_FOUND, as Kafka does
//! without online migration.

use std::sync::Arc;
use std::time::Instant;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::consumer_group_heartbeat_response::{Assignment, TopicPartitions};
use kafka_protocol::messages::{ConsumerGroupHeartbeatRequest, ConsumerGroupHeartbeatResponse};

use super::str_bytes;
use crate::broker::BrokerContext;
use crate::group::consumer::{self, ConsumerGroup, HeartbeatParams, TopicInfo};
use crate::group::records::OFFSETS_TOPIC;
use crate::group::{GroupCoordinator, GroupError, GroupState};

/// The topics a subscription may match: everything but the internal offsets topic.
pub fn topic_snapshot(ctx: &BrokerContext) -> Vec<TopicInfo> {
    let mut topics: Vec<TopicInfo> = ctx
        .metadata
        .topics()
        .into_iter()
        .filter(|t| t.name != OFFSETS_TOPIC)
        .map(|t| TopicInfo {
            name: t.name.clone(),
            id: t.id.uuid(),
            partitions: t.partitions,
        })
        .collect();
    topics.sort_by(|a, b| a.name.cmp(&b.name));
    topics
}

fn error_response(e: ResponseError, message: String) -> ConsumerGroupHeartbeatResponse {
    ConsumerGroupHeartbeatResponse::default()
        .with_error_code(e.code())
        .with_error_message(Some(str_bytes(message)))
        .with_member_epoch(-1)
}

pub fn handle(
    ctx: &Arc<BrokerContext>,
    request: ConsumerGroupHeartbeatRequest,
    version: i16,
    client_id: &str,
    client_host: &str,
) -> ConsumerGroupHeartbeatResponse {
    // The group's state is written under its lock: the offsets topic must exist first.
    ctx.groups.prepare_store(ctx);
    let group_id = request.group_id.0.to_string();
    if group_id.is_empty() {
        return error_response(
            ResponseError::InvalidRequest,
            "GroupId can't be empty.".into(),
        );
    }
    if let Err(e) = super::coordinator::check_group(ctx, &group_id) {
        return error_response(
            e,
            format!("this broker is not the coordinator of {group_id}"),
        );
    }
    let params = HeartbeatParams {
        member_id: request.member_id.to_string(),
        member_epoch: request.member_epoch,
        instance_id: request.instance_id.as_ref().map(|s| s.to_string()),
        rack_id: request.rack_id.as_ref().map(|s| s.to_string()),
        rebalance_timeout_ms: request.rebalance_timeout_ms,
        subscribed_topic_names: request
            .subscribed_topic_names
            .as_ref()
            .map(|v| v.iter().map(|t| t.0.to_string()).collect()),
        subscribed_topic_regex: if version >= 1 {
            request
                .subscribed_topic_regex
                .as_ref()
                .map(|s| s.to_string())
        } else {
            None
        },
        server_assignor: request.server_assignor.as_ref().map(|s| s.to_string()),
        owned: request.topic_partitions.as_ref().map(|tps| {
            let mut a = consumer::Assignment::new();
            for tp in tps {
                a.entry(tp.topic_id)
                    .or_default()
                    .extend(tp.partitions.iter().copied());
            }
            a
        }),
        client_id: client_id.to_string(),
        client_host: client_host.to_string(),
        server_generates_member_id: version == 0,
    };
    let leaving = params.member_epoch < 0;
    let group = if leaving || params.member_epoch > 0 {
        match ctx.groups.get(&group_id) {
            Some(g) => g,
            None => {
                return error_response(
                    ResponseError::UnknownMemberId,
                    format!("Group {group_id} has no member {}.", params.member_id),
                )
            }
        }
    } else {
        match ctx.groups.get_or_create(&group_id) {
            Ok(g) => g,
            Err(e) => return error_response(e.into(), e.to_string()),
        }
    };
    let topics = topic_snapshot(ctx);
    let mut g = GroupCoordinator::lock_group(&group);
    if g.state == GroupState::Dead {
        return error_response(
            GroupError::GroupDead.into(),
            "The group is being deleted.".into(),
        );
    }
    if g.kip848.is_none() {
        if !g.is_empty() || g.state != GroupState::Empty {
            return error_response(
                ResponseError::GroupIdNotFound,
                format!("Group {group_id} is not a consumer group."),
            );
        }
        if leaving || params.member_epoch > 0 {
            return error_response(
                ResponseError::UnknownMemberId,
                format!("Group {group_id} has no member {}.", params.member_id),
            );
        }
        g.kip848 = Some(ConsumerGroup::new(g.generation));
        g.protocol_type = Some("consumer".to_string());
        g.protocol = None;
        g.leader = None;
    }
    let interval = ctx
        .groups
        .config_for(ctx, &group_id)
        .consumer_heartbeat_interval_ms;
    let result = match g.kip848.as_mut() {
        Some(c) => c.heartbeat(params, &topics, Instant::now()),
        None => return error_response(ResponseError::UnknownServerError, String::new()),
    };
    g.sync_kip848_state();
    ctx.groups.persist_if_dirty(ctx, &mut g);
    drop(g);
    match result {
        Err(e) => {
            let mut r = error_response(e.error.into(), e.message);
            if e.error == GroupError::UnknownMemberId || e.error == GroupError::FencedMemberEpoch {
                r = r.with_heartbeat_interval_ms(interval);
            }
            r
        }
        Ok(r) => ConsumerGroupHeartbeatResponse::default()
            .with_member_id(Some(str_bytes(r.member_id)))
            .with_member_epoch(r.member_epoch)
            .with_heartbeat_interval_ms(interval)
            .with_assignment(r.assignment.map(|a| {
                Assignment::default().with_topic_partitions(
                    a.into_iter()
                        .map(|(id, ps)| {
                            TopicPartitions::default()
                                .with_topic_id(id)
                                .with_partitions(ps.into_iter().collect())
                        })
                        .collect(),
                )
            })),
    }
}
