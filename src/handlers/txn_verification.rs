//! KIP-890 part 1 verification when the transaction coordinator is another broker: before a
//! partition leader accepts a producer's first transactional batch (or the group coordinator
//! its first TxnOffsetCommit) it asks the transactional id's coordinator, with
//! AddPartitionsToTxn v4 `verify_only`, whether the partition is in the producer's ongoing
//! transaction (Kafka's AddPartitionsToTxnManager). A confirmed partition is remembered
//! (`txn::verified`) until the transaction's marker is written here, so later batches of the
//! same transaction need no round trip. When this broker is the coordinator, the check is the
//! local one.
//!
//! A partition is accepted only once confirmed, so nothing is ever left open here that no
//! marker would close. What an unconfirmed one is answered depends on why (see [`Verdicts`]):
//! a coordinator that refused it gives its reason (a partition outside the transaction is
//! INVALID_TXN_STATE, and the producer aborts), one that could not be asked, or was busy with
//! the id, gives a retriable error, as Kafka does: a coordinator moving during a failover must
//! not make transactional producers fatal.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use kafka_protocol::error::ResponseError;
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

/// Why a remote coordinator did not confirm partitions it was asked about, by partition.
/// Empty when nothing was asked (local coordinator, or everything confirmed before).
#[derive(Debug, Default)]
pub struct Verdicts {
    unconfirmed: HashMap<(String, i32), TxnError>,
}

impl Verdicts {
    /// Every partition of `pending` gets `error` (the coordinator could not be asked).
    fn all(pending: &Pending, error: TxnError) -> Verdicts {
        Verdicts {
            unconfirmed: pending
                .partitions
                .iter()
                .map(|p| (p.clone(), error))
                .collect(),
        }
    }

    /// The refusal of `(topic, partition)`, if it was asked about and not confirmed.
    fn of(&self, topic: &str, partition: i32) -> Option<TxnError> {
        self.unconfirmed
            .get(&(topic.to_string(), partition))
            .copied()
    }
}

/// A coordinator's answer for one partition as the error its batch gets: its refusals keep
/// their meaning; "cannot tell now" (moving, loading, or a transition of the id in flight)
/// is retriable.
fn verdict(code: i16) -> Option<TxnError> {
    match ResponseError::try_from_code(code) {
        None => None,
        Some(ResponseError::InvalidProducerEpoch | ResponseError::ProducerFenced) => {
            Some(TxnError::ProducerFenced)
        }
        Some(ResponseError::InvalidProducerIdMapping) => Some(TxnError::InvalidProducerIdMapping),
        Some(
            ResponseError::ConcurrentTransactions
            | ResponseError::CoordinatorLoadInProgress
            | ResponseError::CoordinatorNotAvailable
            | ResponseError::NotCoordinator
            | ResponseError::RequestTimedOut,
        ) => Some(TxnError::VerificationUnavailable),
        // INVALID_TXN_STATE, TRANSACTION_ABORTABLE, and anything else it refuses with.
        Some(_) => Some(TxnError::InvalidTxnState),
    }
}

/// Ok if `partition` is in the ongoing transaction of `producer_id`/`producer_epoch` under
/// `transactional_id`: checked by the local coordinator, or confirmed earlier by the remote
/// one (see [`verify`]); otherwise the verdict of the request's verification, if it asked.
pub fn check(
    ctx: &BrokerContext,
    verdicts: &Verdicts,
    transactional_id: &str,
    (producer_id, producer_epoch): (i64, i16),
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
                Err(verdicts
                    .of(topic, partition)
                    .unwrap_or(TxnError::InvalidTxnState))
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

/// Asks the coordinator about `pending` and remembers each partition it confirms; the others
/// are returned with the reason [`check`] gives for them. A coordinator that cannot be asked
/// confirms nothing (logged), and its partitions are retriable.
pub async fn verify(ctx: &BrokerContext, pending: Pending) -> Verdicts {
    let unavailable = TxnError::VerificationUnavailable;
    let Some(leader) = pending.coordinator else {
        tracing::debug!(transactional_id = %pending.transactional_id, "no live transaction coordinator to verify with");
        return Verdicts::all(&pending, unavailable);
    };
    let Some(addr) = ctx
        .metadata
        .image()
        .broker(leader)
        .map(|b| format!("{}:{}", b.host, b.port))
    else {
        return Verdicts::all(&pending, unavailable);
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
            return Verdicts::all(&pending, unavailable);
        }
    };
    if let Some(error) = verdict(response.error_code) {
        tracing::debug!(transactional_id = %pending.transactional_id, code = response.error_code, "transaction coordinator {leader} refused verification");
        return Verdicts::all(&pending, error);
    }
    // A partition missing from the answer was not confirmed: the coordinator has not told.
    let mut verdicts = Verdicts::all(&pending, unavailable);
    for result in &response.results_by_transaction {
        if result.transactional_id.0.as_str() != pending.transactional_id {
            continue;
        }
        for topic in &result.topic_results {
            for p in &topic.results_by_partition {
                let key = (topic.name.0.to_string(), p.partition_index);
                if !verdicts.unconfirmed.contains_key(&key) {
                    continue; // not asked: its answer confirms nothing
                }
                match verdict(p.partition_error_code) {
                    None => {
                        ctx.txns.verified().insert(
                            pending.producer_id,
                            pending.producer_epoch,
                            &key.0,
                            key.1,
                        );
                        verdicts.unconfirmed.remove(&key);
                    }
                    Some(error) => {
                        verdicts.unconfirmed.insert(key, error);
                    }
                }
            }
        }
    }
    verdicts
}
