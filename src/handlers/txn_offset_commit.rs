//! TxnOffsetCommit (key 28): offsets a transactional producer commits for a consumer group as
//! part of its transaction (consume-transform-produce). They are written to the group's
//! `__consumer_offsets` partition as a transactional batch of the producer (the normal offset
//! commit key and value), stay pending, and become the group's committed offsets only when the
//! transaction's commit marker is written; an abort drops them. Answered once the batch is
//! fdatasync'ed.
//!
//! Checks, in Kafka's order: unknown partitions and oversized metadata per partition; an empty
//! group id; the producer owns the transaction and added the group's offsets partition to it
//! (AddOffsetsToTxn first); the member and generation claims (v3+) when given.

use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::txn_offset_commit_response::{
    TxnOffsetCommitResponsePartition, TxnOffsetCommitResponseTopic,
};
use kafka_protocol::messages::{TopicName, TxnOffsetCommitRequest, TxnOffsetCommitResponse};

use super::errors;
use super::txn_verification::Verdicts;
use crate::broker::BrokerContext;
use crate::common::now_ms;
use crate::group::records::OFFSETS_TOPIC;
use crate::group::{check_commit, GroupCoordinator, OffsetCommit};
use crate::internal_topic::CoordinatorHost;
use crate::protocol::Reply;

/// A topic's partitions with their per-partition verdicts (Ok: to be written).
type TopicPlan = (TopicName, Vec<(i32, Result<(), ResponseError>)>);

fn build(plan: Vec<TopicPlan>, error: Option<ResponseError>) -> TxnOffsetCommitResponse {
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
                    TxnOffsetCommitResponsePartition::default()
                        .with_partition_index(index)
                        .with_error_code(code)
                })
                .collect();
            TxnOffsetCommitResponseTopic::default()
                .with_name(name)
                .with_partitions(partitions)
        })
        .collect();
    TxnOffsetCommitResponse::default().with_topics(topics)
}

pub fn handle(
    ctx: &Arc<BrokerContext>,
    request: TxnOffsetCommitRequest,
    version: i16,
) -> Reply<TxnOffsetCommitResponse> {
    let group_id = request.group_id.0.to_string();
    let now = now_ms();
    let mut commits: Vec<OffsetCommit> = Vec::new();
    let mut plan: Vec<TopicPlan> = Vec::new();
    for topic in &request.topics {
        let name = topic.name.0.to_string();
        let mut parts = Vec::new();
        for p in &topic.partitions {
            let epoch = if version >= 2 {
                p.committed_leader_epoch
            } else {
                -1
            };
            let result = check_commit(
                &ctx.metadata,
                &name,
                p.partition_index,
                (p.committed_offset, epoch),
                p.committed_metadata.as_deref(),
                now,
            )
            .map(|c| commits.push(c))
            .map_err(ResponseError::from);
            parts.push((p.partition_index, result));
        }
        plan.push((topic.name.clone(), parts));
    }
    if commits.is_empty() {
        return Reply::Now(build(plan, None));
    }
    if group_id.is_empty() {
        return Reply::Now(build(plan, Some(ResponseError::InvalidGroupId)));
    }
    let ctx = ctx.clone();
    Reply::Later(Box::pin(async move {
        let error = commit(&ctx, &request, version, &group_id, &commits).await;
        build(plan, error.err())
    }))
}

/// Verifies, writes and waits for `commits`; the error applies to every partition written.
async fn commit(
    ctx: &Arc<BrokerContext>,
    request: &TxnOffsetCommitRequest,
    version: i16,
    group_id: &str,
    commits: &[OffsetCommit],
) -> Result<(), ResponseError> {
    let (producer_id, producer_epoch) = (request.producer_id.0, request.producer_epoch);
    let partition = if ctx.groups.topic_ready() {
        ctx.groups.partition_of(ctx, group_id)
    } else {
        // Creating the offsets topic does file I/O and fsyncs: keep it off the runtime.
        let c = ctx.clone();
        let g = group_id.to_string();
        tokio::task::spawn_blocking(move || c.groups.partition_of(&c, &g))
            .await
            .map_err(|_| ResponseError::CoordinatorNotAvailable)?
    }
    .map_err(|e| {
        tracing::error!(group = %group_id, "cannot create {OFFSETS_TOPIC}: {e}");
        errors::store_error(&e)
    })?;
    // With the topic known, its partition names the coordinator: refuse before any state.
    super::coordinator::check_group(ctx, group_id)?;
    let transactional_id = request.transactional_id.0.as_str();
    let ids = (producer_id, producer_epoch);
    let mut verdicts = Verdicts::default();
    if !super::txn_verification::coordinated_here(ctx, transactional_id) {
        // Another broker coordinates the transaction: it confirms (v5: adds) the partition.
        let offsets = (OFFSETS_TOPIC, partition);
        let add = version >= 5;
        if let Some(pending) =
            super::txn_verification::pending_for_offsets(ctx, transactional_id, ids, offsets, add)
        {
            verdicts = super::txn_verification::verify(ctx, pending).await;
        }
    } else if version >= 5 {
        // v5 is the transactions-v2 form: it adds the group's offsets partition to the
        // transaction itself (Kafka 4.0 treats v5 as an implicit AddOffsetsToTxn).
        ctx.txns
            .add_partitions(
                ctx,
                transactional_id,
                producer_id,
                producer_epoch,
                &[(OFFSETS_TOPIC.to_string(), partition)],
            )
            .await
            .map_err(|e| errors::txn_offset_commit_error(e, version))?;
    }
    // Kafka (KIP-890 part 1 verification) refuses offsets for a transaction that did not add
    // the group's offsets partition (see `errors::txn_offset_commit_error` for the codes).
    super::txn_verification::check(
        ctx,
        &verdicts,
        transactional_id,
        ids,
        (OFFSETS_TOPIC, partition),
    )
    .map_err(|e| errors::txn_offset_commit_error(e, version))?;
    let (member_id, instance_id, generation) = if version >= 3 {
        (
            request.member_id.to_string(),
            request.group_instance_id.as_ref().map(|s| s.to_string()),
            request.generation_id,
        )
    } else {
        (String::new(), None, -1)
    };
    // Kafka creates the group if it does not exist: a producer may commit for any group.
    let group = ctx
        .groups
        .get_or_create(group_id)
        .map_err(ResponseError::from)?;
    // The append is file I/O: it runs on the blocking pool, under the group lock so the log
    // order is the acceptance order (a page-cache write; the fsync is awaited below).
    let write = {
        let (ctx, group_id, commits) = (ctx.clone(), group_id.to_string(), commits.to_vec());
        let group = group.clone();
        move || {
            let mut g = GroupCoordinator::lock_group(&group);
            g.validate_txn_commit(&member_id, instance_id.as_deref(), generation)?;
            ctx.groups
                .write_txn_commits(&ctx, &mut g, producer_id, producer_epoch, &commits)
                .map_err(|e| {
                    tracing::error!(group = %group_id, "cannot write transactional offsets: {e}");
                    errors::store_error(&e)
                })
        }
    };
    let (log, end) = tokio::task::spawn_blocking(write)
        .await
        .map_err(|_| ResponseError::CoordinatorNotAvailable)??;
    if let Err(e) = ctx.wait_acknowledgeable(&log, end).await {
        tracing::error!(group = %group_id, "transactional offsets not made durable: {e}");
        ctx.groups.drop_txn_commits(group_id, producer_id);
        return Err(errors::store_error(&e));
    }
    if GroupCoordinator::lock_group(&group).unloaded {
        // The group's partition was given up meanwhile: not acknowledged here.
        return Err(ResponseError::NotCoordinator);
    }
    Ok(())
}
