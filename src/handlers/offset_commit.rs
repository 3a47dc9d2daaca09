//! OffsetCommit (key 8): validates the committer's membership (or accepts a standalone commit,
//! generation -1, for an Empty or unknown group), writes the offsets to `__consumer_offsets`,
//! and answers only once the records are fdatasync'ed: an acknowledged commit survives a crash.

use std::sync::Arc;
use std::time::Instant;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use kafka_protocol::messages::{OffsetCommitRequest, OffsetCommitResponse, TopicName};

use super::errors;
use crate::broker::BrokerContext;
use crate::common::now_ms;
use crate::group::{check_commit, GroupCoordinator, OffsetCommit};
use crate::internal_topic::CoordinatorHost;
use crate::protocol::Reply;

/// A topic's partitions with their pre-membership verdicts (Ok: to be written).
type TopicPlan = (TopicName, Vec<(i32, Result<(), ResponseError>)>);

pub fn handle(
    ctx: &Arc<BrokerContext>,
    request: OffsetCommitRequest,
    version: i16,
) -> Reply<OffsetCommitResponse> {
    let group_id = request.group_id.0.to_string();
    let now = now_ms();
    let mut commits: Vec<OffsetCommit> = Vec::new();
    let mut plan: Vec<TopicPlan> = Vec::new();
    for topic in &request.topics {
        let name = topic.name.0.to_string();
        let mut parts = Vec::new();
        for p in &topic.partitions {
            let epoch = if version >= 6 {
                p.committed_leader_epoch
            } else {
                -1
            };
            let result = if group_id.is_empty() {
                Err(ResponseError::InvalidGroupId)
            } else {
                check_commit(
                    &ctx.metadata,
                    &name,
                    p.partition_index,
                    (p.committed_offset, epoch),
                    p.committed_metadata.as_deref(),
                    now,
                )
                .map(|c| commits.push(c))
                .map_err(ResponseError::from)
            };
            parts.push((p.partition_index, result));
        }
        plan.push((topic.name.clone(), parts));
    }
    // Membership decides for every partition that passed the checks above.
    let mut group_error: Option<ResponseError> = None;
    let mut written = None;
    if !commits.is_empty() {
        let generation = request.generation_id_or_member_epoch;
        let instance_id = (version >= 7)
            .then(|| request.group_instance_id.as_ref().map(|s| s.to_string()))
            .flatten();
        // The offsets topic exists before the group's lock is taken (creating it is file I/O),
        // and before the coordinator is checked (its partition decides which broker it is).
        if let Err(e) = ctx.groups.partition_of(ctx, &group_id) {
            tracing::error!(group = %group_id, "cannot create the offsets topic: {e}");
            group_error = Some(errors::store_error(&e));
        } else if let Err(e) = super::coordinator::check_group(ctx, &group_id) {
            group_error = Some(e);
        }
        let group = match ctx.groups.get(&group_id) {
            _ if group_error.is_some() => None,
            Some(g) => Some(g),
            None if generation < 0 => match ctx.groups.get_or_create(&group_id) {
                Ok(g) => Some(g),
                Err(e) => {
                    group_error = Some(e.into());
                    None
                }
            },
            None => None,
        };
        match group {
            _ if group_error.is_some() => {}
            None => group_error = Some(ResponseError::IllegalGeneration),
            Some(group) => {
                let accepted = {
                    let mut g = GroupCoordinator::lock_group(&group);
                    let verdict = g.validate_commit(
                        request.member_id.as_str(),
                        instance_id.as_deref(),
                        generation,
                        Instant::now(),
                    );
                    if verdict.is_ok() {
                        // Keeps the group from being deleted until these commits are applied.
                        g.commits_in_flight += 1;
                    }
                    verdict
                };
                // The append happens without the group's lock: commits are applied by log
                // position (the later record wins), so memory and a replay agree whatever
                // order concurrent commits reach the log in.
                match accepted {
                    Err(e) => group_error = Some(e.into()),
                    Ok(()) => match ctx.groups.write_commits(ctx, &group_id, &commits) {
                        Ok(w) => written = Some((w, group)),
                        Err(e) => {
                            tracing::error!(group = %group_id, "cannot write offsets: {e}");
                            // Only ends the in-flight count: the refusal is the write's.
                            let _ = ctx.groups.apply_commits(
                                &group,
                                Vec::new(),
                                crate::common::Offset(0),
                            );
                            group_error = Some(errors::store_error(&e));
                        }
                    },
                }
            }
        }
    }
    let build = move |error: Option<ResponseError>| {
        let topics = plan
            .into_iter()
            .map(|(name, parts)| {
                let partitions = parts
                    .into_iter()
                    .map(|(index, r)| {
                        let code = match r {
                            Err(e) => e.code(),
                            Ok(()) => error.map_or(0, |e| e.code()),
                        };
                        OffsetCommitResponsePartition::default()
                            .with_partition_index(index)
                            .with_error_code(code)
                    })
                    .collect();
                OffsetCommitResponseTopic::default()
                    .with_name(name)
                    .with_partitions(partitions)
            })
            .collect();
        OffsetCommitResponse::default().with_topics(topics)
    };
    let Some(((log, base, end), group)) = written else {
        return Reply::Now(build(group_error));
    };
    let ctx = ctx.clone();
    Reply::Later(Box::pin(async move {
        match ctx.wait_acknowledgeable(&log, end).await {
            // Refused if the group's partition was given up meanwhile: only a coordinator
            // that still serves the group acknowledges a commit.
            Ok(()) => match ctx.groups.apply_commits(&group, commits, base) {
                Ok(()) => build(None),
                Err(e) => build(Some(e.into())),
            },
            Err(e) => {
                tracing::error!(group = %group_id, "offsets not made durable: {e}");
                let _ = ctx.groups.apply_commits(&group, Vec::new(), base);
                build(Some(errors::store_error(&e)))
            }
        }
    }))
}
