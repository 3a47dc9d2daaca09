//! OffsetFetch (key 9): committed offsets of a group (v8+: of several groups). `topics = null`
//! (v2+) asks for every committed offset of the group; a partition without a commit answers
//! offset -1 with no error. With `require_stable` (v7+), a partition that has transactional
//! offsets waiting for their transaction's end answers UNSTABLE_OFFSET_COMMIT (88), as Kafka.

use std::collections::BTreeMap;
use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions,
    OffsetFetchResponseTopic, OffsetFetchResponseTopics,
};
use kafka_protocol::messages::{OffsetFetchRequest, OffsetFetchResponse, TopicName};

use super::str_bytes;
use crate::broker::BrokerContext;
use crate::group::{Committed, GroupCoordinator};

/// One partition's answer.
struct Answer {
    partition: i32,
    committed: Option<Committed>,
    /// `require_stable` was asked and a transaction holds offsets for it.
    unstable: bool,
}

/// The offsets of one group: per topic, per partition.
type GroupOffsets = Vec<(String, Vec<Answer>)>;

fn fetch_group(
    ctx: &BrokerContext,
    group_id: &str,
    topics: Option<Vec<(String, Vec<i32>)>>,
    member: Option<(&str, i32)>,
    require_stable: bool,
) -> Result<GroupOffsets, ResponseError> {
    if group_id.is_empty() {
        return Err(ResponseError::InvalidGroupId);
    }
    super::coordinator::check_group(ctx, group_id)?;
    let group = ctx.groups.get(group_id);
    let g = group.as_ref().map(GroupCoordinator::lock_group);
    if let (Some(g), Some((id, epoch))) = (&g, member) {
        // v9+ KIP-848 members prove their membership (UNKNOWN_MEMBER_ID / STALE_MEMBER_EPOCH).
        g.validate_fetch(Some(id), epoch)?;
    }
    let lookup = |t: &str, p: i32| {
        g.as_ref()
            .and_then(|g| g.offsets.get(&(t.to_string(), p)).cloned())
    };
    let unstable = |t: &str, p: i32| {
        require_stable && g.as_ref().is_some_and(|g| g.has_pending_txn_offset(t, p))
    };
    match topics {
        Some(topics) => Ok(topics
            .into_iter()
            .map(|(t, parts)| {
                let answers = parts
                    .into_iter()
                    .map(|p| Answer {
                        partition: p,
                        committed: lookup(&t, p),
                        unstable: unstable(&t, p),
                    })
                    .collect();
                (t, answers)
            })
            .collect()),
        None => {
            let mut by_topic: BTreeMap<String, Vec<Answer>> = BTreeMap::new();
            if let Some(g) = &g {
                for ((t, p), c) in &g.offsets {
                    by_topic.entry(t.clone()).or_default().push(Answer {
                        partition: *p,
                        committed: Some(c.clone()),
                        unstable: unstable(t, *p),
                    });
                }
            }
            for answers in by_topic.values_mut() {
                answers.sort_by_key(|a| a.partition);
            }
            Ok(by_topic.into_iter().collect())
        }
    }
}

/// (offset, leader epoch, metadata, error code) of an answer.
fn offset_epoch_meta(a: &Answer) -> (i64, i32, String, i16) {
    match &a.committed {
        _ if a.unstable => (
            -1,
            -1,
            String::new(),
            ResponseError::UnstableOffsetCommit.code(),
        ),
        Some(c) => (c.offset, c.leader_epoch, c.metadata.clone(), 0),
        None => (-1, -1, String::new(), 0),
    }
}

pub fn handle(
    ctx: &Arc<BrokerContext>,
    request: OffsetFetchRequest,
    version: i16,
) -> OffsetFetchResponse {
    if version >= 8 {
        let groups = request
            .groups
            .into_iter()
            .map(|g| {
                let topics = g.topics.map(|ts| {
                    ts.into_iter()
                        .map(|t| (t.name.0.to_string(), t.partition_indexes))
                        .collect()
                });
                let group_id = g.group_id.clone();
                let out = OffsetFetchResponseGroup::default().with_group_id(group_id);
                let member = (version >= 9)
                    .then(|| g.member_id.as_ref().map(|m| (m.as_str(), g.member_epoch)))
                    .flatten();
                let stable = request.require_stable;
                match fetch_group(ctx, g.group_id.0.as_str(), topics, member, stable) {
                    Err(e) => out.with_error_code(e.code()),
                    Ok(offsets) => out.with_topics(
                        offsets
                            .into_iter()
                            .map(|(t, answers)| {
                                OffsetFetchResponseTopics::default()
                                    .with_name(TopicName(str_bytes(t)))
                                    .with_partitions(
                                        answers
                                            .iter()
                                            .map(|a| {
                                                let (o, e, m, err) = offset_epoch_meta(a);
                                                OffsetFetchResponsePartitions::default()
                                                    .with_partition_index(a.partition)
                                                    .with_committed_offset(o)
                                                    .with_committed_leader_epoch(e)
                                                    .with_metadata(Some(str_bytes(m)))
                                                    .with_error_code(err)
                                            })
                                            .collect(),
                                    )
                            })
                            .collect(),
                    ),
                }
            })
            .collect();
        return OffsetFetchResponse::default().with_groups(groups);
    }
    // v1 cannot say "all topics"; the decoder gives an empty list there, which asks for none.
    let topics = request.topics.map(|ts| {
        ts.into_iter()
            .map(|t| (t.name.0.to_string(), t.partition_indexes))
            .collect()
    });
    // require_stable exists from v7.
    let stable = version >= 7 && request.require_stable;
    match fetch_group(ctx, request.group_id.0.as_str(), topics, None, stable) {
        Err(e) => {
            let r = OffsetFetchResponse::default();
            if version >= 2 {
                r.with_error_code(e.code())
            } else {
                r
            }
        }
        Ok(offsets) => OffsetFetchResponse::default().with_topics(
            offsets
                .into_iter()
                .map(|(t, answers)| {
                    OffsetFetchResponseTopic::default()
                        .with_name(TopicName(str_bytes(t)))
                        .with_partitions(
                            answers
                                .iter()
                                .map(|a| {
                                    let (o, e, m, err) = offset_epoch_meta(a);
                                    let p = OffsetFetchResponsePartition::default()
                                        .with_partition_index(a.partition)
                                        .with_committed_offset(o)
                                        .with_metadata(Some(str_bytes(m)))
                                        .with_error_code(err);
                                    if version >= 5 {
                                        p.with_committed_leader_epoch(e)
                                    } else {
                                        p
                                    }
                                })
                                .collect(),
                        )
                })
                .collect(),
        ),
    }
}
