//! AddPartitionsToTxn (key 24): adds partitions to a producer's transaction before it writes
//! to them, so the coordinator knows where to write the markers. v0–3 carry one transaction
//! (what clients send); v4–5 carry a batch of them, each either added or, with `verify_only`,
//! only checked (the broker-side verification of KIP-890 part 1).
//!
//! Unknown partitions get UNKNOWN_TOPIC_OR_PARTITION and the others of the same transaction
//! OPERATION_NOT_ATTEMPTED, as Kafka answers; a coordinator error applies to every partition.

use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::add_partitions_to_txn_request::AddPartitionsToTxnTopic;
use kafka_protocol::messages::add_partitions_to_txn_response::{
    AddPartitionsToTxnPartitionResult, AddPartitionsToTxnResult, AddPartitionsToTxnTopicResult,
};
use kafka_protocol::messages::{
    AddPartitionsToTxnRequest, AddPartitionsToTxnResponse, TopicName, TransactionalId,
};

use crate::broker::BrokerContext;
use crate::protocol::Reply;

/// One transaction of the request, with the verdict for each partition.
struct Txn {
    id: TransactionalId,
    producer_id: i64,
    producer_epoch: i16,
    verify_only: bool,
    /// (topic, partitions) in request order.
    topics: Vec<(TopicName, Vec<i32>)>,
}

impl Txn {
    fn partitions(&self) -> Vec<(String, i32)> {
        self.topics
            .iter()
            .flat_map(|(t, ps)| ps.iter().map(move |p| (t.0.to_string(), *p)))
            .collect()
    }
}

fn topics(list: &[AddPartitionsToTxnTopic]) -> Vec<(TopicName, Vec<i32>)> {
    list.iter()
        .map(|t| (t.name.clone(), t.partitions.clone()))
        .collect()
}

/// Per-partition error codes for `txn` (in `txn.partitions()` order).
async fn run(ctx: &BrokerContext, txn: &Txn, version: i16) -> Vec<i16> {
    let partitions = txn.partitions();
    if let Err(e) = super::coordinator::check_transaction(ctx, txn.id.0.as_str()) {
        return vec![e.code(); partitions.len()];
    }
    // Known to the cluster's metadata, wherever it is led: the markers go to its leader.
    let image = ctx.metadata.image();
    let unknown: Vec<bool> = partitions
        .iter()
        .map(|(t, p)| image.topic(t).and_then(|m| m.placement(*p)).is_none())
        .collect();
    if unknown.iter().any(|u| *u) {
        return unknown
            .iter()
            .map(|u| {
                if *u {
                    ResponseError::UnknownTopicOrPartition.code()
                } else {
                    ResponseError::OperationNotAttempted.code()
                }
            })
            .collect();
    }
    let id = txn.id.0.as_str();
    if txn.verify_only {
        // v5 introduced TRANSACTION_ABORTABLE for a partition missing from the transaction.
        let missing = if version >= 5 {
            ResponseError::TransactionAbortable
        } else {
            ResponseError::InvalidTxnState
        };
        return match ctx.txns.verify_partitions(
            id,
            txn.producer_id,
            txn.producer_epoch,
            &partitions,
        ) {
            Ok(found) => found
                .into_iter()
                .map(|f| if f { 0 } else { missing.code() })
                .collect(),
            Err(e) => vec![ResponseError::from(e).code(); partitions.len()],
        };
    }
    let code = match ctx
        .txns
        .add_partitions(ctx, id, txn.producer_id, txn.producer_epoch, &partitions)
        .await
    {
        Ok(()) => 0,
        // v2 added PRODUCER_FENCED.
        Err(e) => super::errors::txn_error(e, version, 2).code(),
    };
    vec![code; partitions.len()]
}

/// The per-topic results of `txn` from `codes` (in `txn.partitions()` order).
fn results(txn: &Txn, codes: &[i16]) -> Vec<AddPartitionsToTxnTopicResult> {
    let mut codes = codes.iter();
    txn.topics
        .iter()
        .map(|(name, ps)| {
            let results_by_partition = ps
                .iter()
                .map(|p| {
                    AddPartitionsToTxnPartitionResult::default()
                        .with_partition_index(*p)
                        .with_partition_error_code(codes.next().copied().unwrap_or(0))
                })
                .collect();
            AddPartitionsToTxnTopicResult::default()
                .with_name(name.clone())
                .with_results_by_partition(results_by_partition)
        })
        .collect()
}

pub fn handle(
    ctx: &Arc<BrokerContext>,
    request: AddPartitionsToTxnRequest,
    version: i16,
) -> Reply<AddPartitionsToTxnResponse> {
    let ctx = ctx.clone();
    if version <= 3 {
        let txn = Txn {
            id: request.v3_and_below_transactional_id,
            producer_id: request.v3_and_below_producer_id.0,
            producer_epoch: request.v3_and_below_producer_epoch,
            verify_only: false,
            topics: topics(&request.v3_and_below_topics),
        };
        return Reply::Later(Box::pin(async move {
            let codes = run(&ctx, &txn, version).await;
            AddPartitionsToTxnResponse::default()
                .with_results_by_topic_v3_and_below(results(&txn, &codes))
        }));
    }
    let txns: Vec<Txn> = request
        .transactions
        .into_iter()
        .map(|t| Txn {
            id: t.transactional_id,
            producer_id: t.producer_id.0,
            producer_epoch: t.producer_epoch,
            verify_only: t.verify_only,
            topics: topics(&t.topics),
        })
        .collect();
    Reply::Later(Box::pin(async move {
        let mut out = Vec::with_capacity(txns.len());
        for txn in &txns {
            let codes = run(&ctx, txn, version).await;
            out.push(
                AddPartitionsToTxnResult::default()
                    .with_transactional_id(txn.id.clone())
                    .with_topic_results(results(txn, &codes)),
            );
        }
        AddPartitionsToTxnResponse::default().with_results_by_transaction(out)
    }))
}
