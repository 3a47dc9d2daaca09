//! The transaction coordinator's marker channel (Kafka's TransactionMarkerChannelManager):
//! writes the COMMIT/ABORT marker of a transaction into each of its partitions wherever the
//! partition is led. Partitions this broker leads are written here (the WriteTxnMarkers
//! handler's own path, `handlers::write_txn_markers::write_led`); the others are grouped by
//! leader and sent to each leader's client listener as one WriteTxnMarkers request, all
//! leaders at once.
//!
//! Each partition's outcome is classified as Kafka's completion handler does: written; to be
//! retried (no live leader, NOT_LEADER_OR_FOLLOWER and the other retriable codes, a connection
//! that failed or timed out), which leaves it in the transaction for the coordinator's retry
//! after metadata moves; or gone (the topic or partition no longer exists in this broker's
//! metadata), which drops it.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::write_txn_markers_request::{
    WritableTxnMarker, WritableTxnMarkerTopic,
};
use kafka_protocol::messages::{ProducerId, TopicName, WriteTxnMarkersRequest};
use kafka_protocol::protocol::Request;

use crate::broker::{BrokerContext, NotServed};
use crate::common::NodeId;
use crate::records::build::MarkerKind;
use crate::txn::{MarkerOutcome, MarkerResults, TxnMarker};

/// The WriteTxnMarkers version sent (the only one Kafka 4.x and Gregor serve).
const VERSION: i16 = 1;

/// Longest wait for a connection to a leader.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Longest wait for a leader's answer: it answers once the markers are durable there, which
/// normally takes one group-commit interval.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);

/// Writes `marker` into `partitions` (see the module docs); one outcome per partition.
pub async fn write_markers(
    ctx: &BrokerContext,
    marker: TxnMarker,
    partitions: Vec<(String, i32)>,
) -> MarkerResults {
    // One image for the routing, so each partition goes to exactly one place.
    let image = ctx.metadata.image();
    let mut results: MarkerResults = Vec::new();
    let mut local = Vec::new();
    let mut remote: BTreeMap<NodeId, Vec<(String, i32)>> = BTreeMap::new();
    for tp in partitions {
        match ctx.led_partition(&image, &tp.0, tp.1) {
            Ok(_) => local.push(tp),
            Err(NotServed::Unknown) => results.push((tp, MarkerOutcome::Gone)),
            Err(NotServed::NotLeader {
                leader: Some(leader),
                ..
            }) if leader != ctx.node_id() => remote.entry(leader).or_default().push(tp),
            // No live leader, or led here but not ready yet (the publisher is catching up).
            Err(NotServed::NotLeader { .. }) => results.push((
                tp,
                MarkerOutcome::Retry("no live leader for the partition".into()),
            )),
        }
    }
    let written_here = async {
        let outcomes = crate::handlers::write_txn_markers::write_led(ctx, &image, marker, &local)
            .await
            .into_iter()
            .map(|r| match r {
                Ok(()) => MarkerOutcome::Written,
                Err(e) => outcome_of(e, "here".to_string()),
            });
        local
            .iter()
            .cloned()
            .zip(outcomes)
            .collect::<MarkerResults>()
    };
    let sent = futures_util::future::join_all(
        remote
            .into_iter()
            .map(|(leader, tps)| send(ctx, leader, marker, tps)),
    );
    let (here, elsewhere) = tokio::join!(written_here, sent);
    results.extend(here);
    results.extend(elsewhere.into_iter().flatten());
    results
}

/// Sends `marker` for `partitions` to `leader` and classifies each partition's answer.
async fn send(
    ctx: &BrokerContext,
    leader: NodeId,
    marker: TxnMarker,
    partitions: Vec<(String, i32)>,
) -> MarkerResults {
    let all = |partitions: Vec<(String, i32)>, why: String| -> MarkerResults {
        partitions
            .into_iter()
            .map(|tp| (tp, MarkerOutcome::Retry(why.clone())))
            .collect()
    };
    let Some(addr) = ctx
        .metadata
        .image()
        .broker(leader)
        .map(|b| format!("{}:{}", b.host, b.port))
    else {
        return all(partitions, format!("broker {leader} is not registered"));
    };
    let request = request(marker, &partitions);
    let client_id = format!("broker-{}-txn-marker-sender", ctx.node_id());
    let response = match call(&addr, client_id, &request, VERSION, REQUEST_TIMEOUT).await {
        Ok(r) => r,
        Err(e) => return all(partitions, format!("broker {leader} at {addr}: {e}")),
    };
    let codes: HashMap<(String, i32), i16> = response
        .markers
        .iter()
        .filter(|m| m.producer_id.0 == marker.producer_id.get())
        .flat_map(|m| m.topics.iter())
        .flat_map(|t| {
            t.partitions
                .iter()
                .map(|p| ((t.name.0.to_string(), p.partition_index), p.error_code))
        })
        .collect();
    partitions
        .into_iter()
        .map(|tp| {
            let outcome = match codes.get(&tp) {
                None => MarkerOutcome::Retry(format!("broker {leader} did not answer for it")),
                Some(0) => MarkerOutcome::Written,
                Some(&code) => classify(ctx, &tp, leader, code),
            };
            (tp, outcome)
        })
        .collect()
}

/// A leader's refusal of one partition's marker, as Kafka's marker channel treats it.
fn classify(ctx: &BrokerContext, tp: &(String, i32), leader: NodeId, code: i16) -> MarkerOutcome {
    let error = ResponseError::try_from_code(code);
    match error {
        // The leader does not know the partition: gone if our own metadata agrees (deleted),
        // else the leader is behind (a partition just created) and a retry will find it.
        Some(ResponseError::UnknownTopicOrPartition) => {
            let exists = ctx
                .metadata
                .image()
                .topic(&tp.0)
                .is_some_and(|t| t.placement(tp.1).is_some());
            if exists {
                MarkerOutcome::Retry(format!("broker {leader}: UnknownTopicOrPartition"))
            } else {
                MarkerOutcome::Gone
            }
        }
        // Kafka drops these: the partition could never have held the transaction's records.
        Some(ResponseError::UnsupportedForMessageFormat | ResponseError::UnsupportedVersion) => {
            tracing::warn!(topic = %tp.0, partition = tp.1, "broker {leader} cannot take a transaction marker: {error:?}");
            MarkerOutcome::Gone
        }
        Some(e) => outcome_of(e, format!("broker {leader}")),
        None => MarkerOutcome::Retry(format!("broker {leader}: error {code}")),
    }
}

/// A refusal by the leader (`at`): a storage error is a failure for the sweeper to retry;
/// NOT_LEADER_OR_FOLLOWER, NOT_ENOUGH_REPLICAS(_AFTER_APPEND), REQUEST_TIMED_OUT, the fencing
/// codes and the rest are retried shortly, as the leadership may be moving.
fn outcome_of(error: ResponseError, at: String) -> MarkerOutcome {
    match error {
        ResponseError::KafkaStorageError => MarkerOutcome::Failed(format!("{at}: {error:?}")),
        _ => MarkerOutcome::Retry(format!("{at}: {error:?}")),
    }
}

/// The WriteTxnMarkers request for `marker` in `partitions`, grouped by topic.
fn request(marker: TxnMarker, partitions: &[(String, i32)]) -> WriteTxnMarkersRequest {
    let mut topics: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
    for (topic, partition) in partitions {
        topics.entry(topic.as_str()).or_default().push(*partition);
    }
    let topics = topics
        .into_iter()
        .map(|(name, partition_indexes)| {
            WritableTxnMarkerTopic::default()
                .with_name(TopicName(crate::handlers::str_bytes(name)))
                .with_partition_indexes(partition_indexes)
        })
        .collect();
    WriteTxnMarkersRequest::default().with_markers(vec![WritableTxnMarker::default()
        .with_producer_id(ProducerId(marker.producer_id.get()))
        .with_producer_epoch(marker.producer_epoch.get())
        .with_transaction_result(marker.kind == MarkerKind::Commit)
        .with_topics(topics)
        .with_coordinator_epoch(marker.coordinator_epoch)])
}

/// Sends `request` to the broker at `addr` on a connection of its own and waits up to
/// `timeout` for the answer.
pub(crate) async fn call<R: Request>(
    addr: &str,
    client_id: String,
    request: &R,
    version: i16,
    timeout: Duration,
) -> Result<R::Response, String> {
    let mut client =
        crate::replication::client::BrokerClient::connect(addr, client_id, CONNECT_TIMEOUT)
            .await
            .map_err(|e| e.to_string())?;
    client
        .send(request, version, timeout)
        .await
        .map_err(|e| e.to_string())
}
