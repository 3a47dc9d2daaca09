//! WriteTxnMarkers (key 27, v1, inter-broker): a transaction coordinator asks the leader of
//! some partitions to end a producer's transaction in them. Per marker and partition: refused
//! with UNKNOWN_TOPIC_OR_PARTITION or NOT_LEADER_OR_FOLLOWER where this broker does not lead
//! it, else the COMMIT/ABORT control batch is appended and the answer waits until it is
//! durable; a `__consumer_offsets` partition then has the local group coordinator apply or
//! drop the producer's pending transactional offsets.
//!
//! [`write_led`] is that per-partition work, shared with the coordinator's own markers for the
//! partitions it leads (`marker_channel`), so a marker is written the same way whoever asks.

use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::write_txn_markers_response::{
    WritableTxnMarkerPartitionResult, WritableTxnMarkerResult, WritableTxnMarkerTopicResult,
};
use kafka_protocol::messages::{WriteTxnMarkersRequest, WriteTxnMarkersResponse};

use crate::broker::BrokerContext;
use crate::group::records::OFFSETS_TOPIC;
use crate::internal_topic::{CoordinatorHost, StoreError};
use crate::log::PartitionLog;
use crate::metadata::MetadataImage;
use crate::protocol::Reply;
use crate::records::build::MarkerKind;
use crate::txn::TxnMarker;

pub fn handle(
    ctx: &Arc<BrokerContext>,
    request: WriteTxnMarkersRequest,
    _version: i16,
) -> Reply<WriteTxnMarkersResponse> {
    let ctx = Arc::clone(ctx);
    Reply::Later(Box::pin(async move {
        // One image for the whole request, so every partition is judged against the same
        // leadership.
        let image = ctx.metadata.image();
        let mut markers = Vec::new();
        for m in request.markers {
            let marker = TxnMarker {
                producer_id: crate::common::ProducerId(m.producer_id.0),
                producer_epoch: crate::common::ProducerEpoch(m.producer_epoch),
                kind: if m.transaction_result {
                    MarkerKind::Commit
                } else {
                    MarkerKind::Abort
                },
                coordinator_epoch: m.coordinator_epoch,
            };
            let partitions: Vec<(String, i32)> = m
                .topics
                .iter()
                .flat_map(|t| {
                    t.partition_indexes
                        .iter()
                        .map(|p| (t.name.0.to_string(), *p))
                })
                .collect();
            let mut results = write_led(&ctx, &image, marker, &partitions)
                .await
                .into_iter();
            let topics = m
                .topics
                .into_iter()
                .map(|t| {
                    let partitions = t
                        .partition_indexes
                        .iter()
                        .map(|p| {
                            let code = results
                                .next()
                                .map_or(ResponseError::UnknownServerError.code(), |r| {
                                    r.err().map_or(0, |e| e.code())
                                });
                            WritableTxnMarkerPartitionResult::default()
                                .with_partition_index(*p)
                                .with_error_code(code)
                        })
                        .collect();
                    WritableTxnMarkerTopicResult::default()
                        .with_name(t.name)
                        .with_partitions(partitions)
                })
                .collect();
            markers.push(
                WritableTxnMarkerResult::default()
                    .with_producer_id(m.producer_id)
                    .with_topics(topics),
            );
        }
        WriteTxnMarkersResponse::default().with_markers(markers)
    }))
}

/// Writes `marker` into each of `partitions` that this broker leads per `image`: the appends
/// first, then one wait for durability over all of them (the flusher syncs them together),
/// then the pending offsets of `__consumer_offsets` partitions. One result per partition, in
/// order; a partition not led here is refused before anything is written to it.
pub async fn write_led(
    ctx: &BrokerContext,
    image: &MetadataImage,
    marker: TxnMarker,
    partitions: &[(String, i32)],
) -> Vec<Result<(), ResponseError>> {
    let mut results: Vec<Result<(), ResponseError>> = Vec::new();
    let mut waits = Vec::new();
    for (i, (topic, partition)) in partitions.iter().enumerate() {
        let appended = match ctx.led_partition(image, topic, *partition) {
            Ok(led) => append(led.log, marker).await,
            Err(why) => Err(why.error()),
        };
        match appended {
            Ok(wait) => {
                results.push(Ok(()));
                waits.push((i, wait));
            }
            Err(e) => results.push(Err(e)),
        }
    }
    for (i, (log, end)) in waits {
        // Durable here and, where the partition has other replicas, on its in-sync replicas
        // (the coordinators' acks=all).
        if let Err(e) = CoordinatorHost::wait_acknowledgeable(ctx, &log, end).await {
            let tp = log.topic_partition();
            tracing::warn!(topic = %tp.topic, partition = %tp.partition, "transaction marker not acknowledgeable: {e}");
            if let Some(r) = results.get_mut(i) {
                *r = Err(marker_wait_error(&e));
            }
            continue;
        }
        let Some((topic, partition)) = partitions.get(i) else {
            continue;
        };
        // The transaction is over here: a late batch of it must be verified again (and is
        // then refused by its coordinator).
        ctx.txns
            .verified()
            .remove(marker.producer_id.get(), topic, *partition);
        if topic == OFFSETS_TOPIC {
            // The group coordinator sees the marker: the producer's pending offsets in this
            // partition's groups are committed or dropped.
            ctx.groups.complete_txn(
                *partition,
                marker.producer_id.get(),
                marker.kind == MarkerKind::Commit,
            );
        }
    }
    results
}

/// Appends `marker` to `log` after Kafka's checks of the producer's state there; returns the
/// log and the end offset to wait on.
async fn append(
    log: Arc<PartitionLog>,
    marker: TxnMarker,
) -> Result<(Arc<PartitionLog>, crate::common::Offset), ResponseError> {
    if marker.producer_id.get() < 0 || marker.producer_epoch.get() < 0 {
        return Err(ResponseError::InvalidRequest);
    }
    if let Some(known) = log
        .active_producers()
        .into_iter()
        .find(|p| p.producer_id == marker.producer_id.get())
    {
        // A marker from a coordinator older than the one that last wrote here is a zombie's
        // (Kafka's TRANSACTION_COORDINATOR_FENCED); one of an older producer epoch ends a
        // transaction that is already over (INVALID_PRODUCER_EPOCH).
        if marker.coordinator_epoch < known.coordinator_epoch {
            return Err(ResponseError::TransactionCoordinatorFenced);
        }
        if marker.producer_epoch.get() < known.epoch {
            return Err(ResponseError::InvalidProducerEpoch);
        }
    }
    let outcome = crate::log::offload::append_txn_marker(
        Arc::clone(&log),
        marker.producer_id,
        marker.producer_epoch,
        marker.kind,
        marker.coordinator_epoch,
    )
    .await
    .map_err(|e| super::errors::log_error(&e))?;
    Ok((log, outcome.end_offset()))
}

/// Why a marker could not be acknowledged, as the coordinator's marker channel reads it: the
/// leadership moved (retried at the new leader) or the storage failed here.
fn marker_wait_error(error: &StoreError) -> ResponseError {
    match error {
        StoreError::NotServed(_) => ResponseError::NotLeaderOrFollower,
        StoreError::Log(e) => super::errors::log_error(e),
        _ => ResponseError::KafkaStorageError,
    }
}
