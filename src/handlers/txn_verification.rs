//! KIP-890 part 1 verification when the transaction coordinator is another broker: before a
//! partition leader accepts a producer's first transactional batch (or the group coordinator
//! its first TxnOffsetCommit) it asks the transactional id's coordinator, with
//! AddPartitionsToTxn v4 `verify_only`, whether the partition is in the producer's ongoing
//! transaction (Kafka's AddPartitionsToTxnManager). A confirmed partition is remembered
//! (`txn::verified`) until the transaction's marker is written here, so later batches of the
//! same transaction need no round trip. When this broker is the coordinator, the check is the
//! local one.
//!
//! A coordinator that cannot be reached confirms nothing: the batch is refused as outside the
//! transaction (INVALID_TXN_STATE), which the producer answers by aborting, never by leaving a
//! transaction open here that no marker would close.

use std::collections::BTreeMap;
use std::time::Duration;

use kafka_protocol::messages::add_partitions_to_txn_request::{
    AddPartitionsToTxnTopic, AddPartitionsToTxnTransaction,
};
use kafka_protocol::messages::{
    AddPartitionsToTxnRequest, ProduceRequest, ProducerId, TopicName, TransactionalId,
};

use super::coordinator::{locate, Location};
use crate::broker::BrokerContext;
use crate::common::NodeId;
use crate::records::BatchHeader;
use crate::txn::records::TXN_TOPIC;
use crate::txn::TxnError;

/// The AddPartitionsToTxn version sent: the first with batched transactions and `verify_only`.
const VERSION: i16 = 4;

/// Longest wait for the coordinator's answer (the producer's request waits on it).
const TIMEOUT: Duration = Duration::from_secs(10);

/// Where the check of a transactional id runs.
enum Coordinator {
    /// This broker coordinates it (or nobody does yet: the local check refuses).
    Here,
    /// Another broker does; `None` while it has no live leader.
    Elsewhere(Option<NodeId>),
}

fn coordinator(ctx: &BrokerContext, transactional_id: &str) -> Coordinator {
    match locate(ctx, TXN_TOPIC, transactional_id) {
        Location::Led(Some(leader)) if leader == ctx.node_id() => Coordinator::Here,
        Location::NoTopic => Coordinator::Here,
        Location::Led(leader) => Coordinator::Elsewhere(leader),
    }
}

/// True if this broker checks `transactional_id`'s transactions itself.
pub fn coordinated_here(ctx: &BrokerContext, transactional_id: &str) -> bool {
    matches!(coordinator(ctx, transactional_id), Coordinator::Here)
}

/// Ok if `partition` is in the ongoing transaction of `producer_id`/`producer_epoch` under
/// `transactional_id`: checked by the local coordinator, or confirmed earlier by the remote
/// one (see [`verify`]).
pub fn check(
    ctx: &BrokerContext,
    transactional_id: &str,
    producer_id: i64,
    producer_epoch: i16,
    (topic, partition): (&str, i32),
) -> Result<(), TxnError> {
    match coordinator(ctx, transactional_id) {
        Coordinator::Here => ctx.txns.check_in_transaction(
            transactional_id,
            producer_id,
            producer_epoch,
            (topic, partition),
        ),
        Coordinator::Elsewhere(_) => {
            if ctx
                .txns
                .verified()
                .contains(producer_id, producer_epoch, topic, partition)
            {
                Ok(())
            } else {
                Err(TxnError::InvalidTxnState)
            }
        }
    }
}

/// Partitions of one producer's transaction still to be confirmed by a remote coordinator.
pub struct Pending {
    coordinator: Option<NodeId>,
    transactional_id: String,
    producer_id: i64,
    producer_epoch: i16,
    partitions: Vec<(String, i32)>,
    /// Add them to the transaction rather than only verify (TxnOffsetCommit v5, which adds the
    /// offsets partition itself).
    add: bool,
}

/// What a Produce request needs confirmed before its transactional batches can be checked:
/// `None` when there is nothing to ask (no transactional id, a local coordinator, every
/// partition already confirmed). Looks only at batch headers.
pub fn pending_for_produce(
    ctx: &BrokerContext,
    request: &ProduceRequest,
    version: i16,
) -> Option<Pending> {
    let transactional_id = request.transactional_id.as_ref()?.0.as_str();
    let Coordinator::Elsewhere(leader) = coordinator(ctx, transactional_id) else {
        return None;
    };
    let image = ctx.metadata.image();
    let mut producer: Option<(i64, i16)> = None;
    let mut partitions = Vec::new();
    for topic in &request.topic_data {
        let meta = if version >= 13 {
            image.topic_by_id(topic.topic_id.into())
        } else {
            image.topic(topic.name.0.as_str())
        };
        let Some(meta) = meta else { continue };
        for data in &topic.partition_data {
            let Some(header) = data.records.as_deref().and_then(BatchHeader::new) else {
                continue;
            };
            if !header.is_transactional() || header.is_control() {
                continue;
            }
            let this = (header.producer_id(), header.producer_epoch());
            // One producer per request (Kafka's rule); a batch of another is refused by the
            // check, unconfirmed.
            if *producer.get_or_insert(this) != this {
                continue;
            }
            if !ctx
                .txns
                .verified()
                .contains(this.0, this.1, &meta.name, data.index)
            {
                partitions.push((meta.name.clone(), data.index));
            }
        }
    }
    let (producer_id, producer_epoch) = producer?;
    if partitions.is_empty() {
        return None;
    }
    Some(Pending {
        coordinator: leader,
        transactional_id: transactional_id.to_string(),
        producer_id,
        producer_epoch,
        partitions,
        add: false,
    })
}

/// What TxnOffsetCommit needs confirmed for the group's offsets partition (added to the
/// transaction when `add`), or `None` if the coordinator is local or it is confirmed already.
pub fn pending_for_offsets(
    ctx: &BrokerContext,
    transactional_id: &str,
    (producer_id, producer_epoch): (i64, i16),
    (topic, partition): (&str, i32),
    add: bool,
) -> Option<Pending> {
    let Coordinator::Elsewhere(leader) = coordinator(ctx, transactional_id) else {
        return None;
    };
    if ctx
        .txns
        .verified()
        .contains(producer_id, producer_epoch, topic, partition)
    {
        return None;
    }
    Some(Pending {
        coordinator: leader,
        transactional_id: transactional_id.to_string(),
        producer_id,
        producer_epoch,
        partitions: vec![(topic.to_string(), partition)],
        add,
    })
}

/// Asks the coordinator about `pending` and remembers each partition it confirms. Failures
/// confirm nothing (logged); [`check`] then refuses those partitions.
pub async fn verify(ctx: &BrokerContext, pending: Pending) {
    let Some(leader) = pending.coordinator else {
        tracing::debug!(transactional_id = %pending.transactional_id, "no live transaction coordinator to verify with");
        return;
    };
    let Some(addr) = ctx
        .metadata
        .image()
        .broker(leader)
        .map(|b| format!("{}:{}", b.host, b.port))
    else {
        return;
    };
    let mut topics: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
    for (topic, partition) in &pending.partitions {
        topics.entry(topic.as_str()).or_default().push(*partition);
    }
    let request = AddPartitionsToTxnRequest::default().with_transactions(vec![
        AddPartitionsToTxnTransaction::default()
            .with_transactional_id(TransactionalId(super::str_bytes(
                pending.transactional_id.as_str(),
            )))
            .with_producer_id(ProducerId(pending.producer_id))
            .with_producer_epoch(pending.producer_epoch)
            .with_verify_only(!pending.add)
            .with_topics(
                topics
                    .into_iter()
                    .map(|(name, partitions)| {
                        AddPartitionsToTxnTopic::default()
                            .with_name(TopicName(super::str_bytes(name)))
                            .with_partitions(partitions)
                    })
                    .collect(),
            ),
    ]);
    let client_id = format!("broker-{}-txn-verifier", ctx.node_id());
    let response = match crate::marker_channel::call(&addr, client_id, &request, VERSION, TIMEOUT)
        .await
    {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!(transactional_id = %pending.transactional_id, "cannot verify with transaction coordinator {leader} at {addr}: {e}");
            return;
        }
    };
    if response.error_code != 0 {
        tracing::debug!(transactional_id = %pending.transactional_id, code = response.error_code, "transaction coordinator {leader} refused verification");
        return;
    }
    for result in &response.results_by_transaction {
        if result.transactional_id.0.as_str() != pending.transactional_id {
            continue;
        }
        for topic in &result.topic_results {
            for p in &topic.results_by_partition {
                if p.partition_error_code == 0 {
                    ctx.txns.verified().insert(
                        pending.producer_id,
                        pending.producer_epoch,
                        topic.name.0.as_str(),
                        p.partition_index,
                    );
                }
            }
        }
    }
}
