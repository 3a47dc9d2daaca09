//! Fetch (key 1): reads whole batches from the logs and long-polls: when fewer than `min_bytes`
//! are available the request parks until an append to one of its partitions or `max_wait_ms`.
//! Sessions (KIP-227) are not kept: every response is a full one (session id 0), listing every
//! requested partition and no other, which is what clients require of a full response.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::future::select_all;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
use kafka_protocol::messages::{BrokerId, FetchRequest, FetchResponse, TopicName};
use tokio::sync::watch;
use tokio::time::Instant;
use uuid::Uuid;

use super::check_leader_epoch;
use crate::broker::BrokerContext;
use crate::log::{LogError, PartitionLog};
use crate::protocol::Reply;

const READ_COMMITTED: i8 = 1;

/// One requested partition, resolved once per request.
struct Wanted {
    topic_index: usize,
    partition: i32,
    fetch_offset: i64,
    max_bytes: usize,
    log: Result<Arc<PartitionLog>, ResponseError>,
}

/// The request reduced to what reading needs.
struct Plan {
    version: i16,
    topics: Vec<(TopicName, Uuid)>,
    wanted: Vec<Wanted>,
    max_bytes: usize,
    min_bytes: usize,
    read_committed: bool,
}

pub fn handle(
    ctx: &Arc<BrokerContext>,
    request: FetchRequest,
    version: i16,
) -> Reply<FetchResponse> {
    if version >= 7 && request.session_id != 0 {
        // We never hand out session ids, so any incremental fetch names an unknown session.
        return Reply::Now(
            FetchResponse::default().with_error_code(ResponseError::FetchSessionIdNotFound.code()),
        );
    }
    let plan = resolve(ctx, &request, version);
    // Subscribe before the first read so an append between the read and the wait is not missed.
    let mut watches: Vec<watch::Receiver<i64>> = plan
        .wanted
        .iter()
        .filter_map(|w| w.log.as_ref().ok().map(|l| l.subscribe()))
        .collect();
    let (response, bytes, had_error) = read_all(&plan);
    let max_wait = Duration::from_millis(request.max_wait_ms.max(0) as u64);
    if bytes >= plan.min_bytes || had_error || max_wait.is_zero() || watches.is_empty() {
        return Reply::Now(response);
    }
    let deadline = Instant::now() + max_wait;
    Reply::Later(Box::pin(async move {
        loop {
            if watches.is_empty() {
                // Every partition went away (deleted): nothing can wake us but the deadline.
                tokio::time::sleep_until(deadline).await;
                return read_all(&plan).0;
            }
            let woken = {
                let changed = select_all(watches.iter_mut().map(|w| Box::pin(w.changed())));
                tokio::time::timeout_at(deadline, changed)
                    .await
                    .map(|(result, index, _)| (result.is_ok(), index))
            };
            match woken {
                Err(_) => return read_all(&plan).0,
                // A closed watch (its partition was deleted) would fire forever: drop it.
                Ok((false, index)) => {
                    watches.swap_remove(index);
                    continue;
                }
                Ok((true, _)) => {}
            }
            let (response, bytes, had_error) = read_all(&plan);
            if bytes >= plan.min_bytes || had_error || Instant::now() >= deadline {
                return response;
            }
        }
    }))
}

fn resolve(ctx: &BrokerContext, request: &FetchRequest, version: i16) -> Plan {
    let mut topics = Vec::with_capacity(request.topics.len());
    let mut wanted = Vec::new();
    for (topic_index, topic) in request.topics.iter().enumerate() {
        let (name, meta) = if version >= 13 {
            let meta = ctx.metadata.topic_by_id(topic.topic_id);
            (meta.as_ref().map(|m| m.name.clone()), meta)
        } else {
            let name = topic.topic.0.as_str().to_string();
            let meta = ctx.metadata.topic(&name);
            (Some(name), meta)
        };
        topics.push((topic.topic.clone(), topic.topic_id));
        for p in &topic.partitions {
            let log = match (&name, &meta) {
                (_, None) if version >= 13 => Err(ResponseError::UnknownTopicId),
                (Some(name), Some(_)) => ctx
                    .partition(name, p.partition)
                    .ok_or(ResponseError::UnknownTopicOrPartition),
                _ => Err(ResponseError::UnknownTopicOrPartition),
            };
            let log = log.and_then(|l| check_leader_epoch(p.current_leader_epoch).map(|_| l));
            wanted.push(Wanted {
                topic_index,
                partition: p.partition,
                fetch_offset: p.fetch_offset,
                max_bytes: p.partition_max_bytes.max(0) as usize,
                log,
            });
        }
    }
    Plan {
        version,
        topics,
        wanted,
        // max_bytes exists from v3; every version we serve has it.
        max_bytes: request.max_bytes.max(0) as usize,
        min_bytes: request.min_bytes.max(0) as usize,
        read_committed: request.isolation_level == READ_COMMITTED,
    }
}

/// Reads every wanted partition once: (response, record bytes included, any partition error).
fn read_all(plan: &Plan) -> (FetchResponse, usize, bool) {
    let mut total = 0usize;
    let mut had_error = false;
    let mut per_topic: Vec<Vec<PartitionData>> = plan.topics.iter().map(|_| Vec::new()).collect();
    for w in &plan.wanted {
        let data = PartitionData::default()
            .with_partition_index(w.partition)
            .with_preferred_read_replica(BrokerId(-1))
            .with_aborted_transactions(if plan.read_committed {
                Some(Vec::new())
            } else {
                None
            });
        let data = match &w.log {
            Err(e) => {
                had_error = true;
                data.with_error_code(e.code())
                    .with_high_watermark(-1)
                    .with_last_stable_offset(-1)
                    .with_log_start_offset(-1)
            }
            Ok(log) => {
                let budget = w.max_bytes.min(plan.max_bytes.saturating_sub(total));
                // KIP-74: the first partition with data returns at least one whole batch, even
                // above the limits, so a large batch can never wedge a consumer.
                let min_one = total == 0;
                let result = if budget == 0 && !min_one {
                    Ok(None)
                } else {
                    log.read(w.fetch_offset, budget, min_one).map(Some)
                };
                let hw = log.high_watermark();
                let start = log.log_start_offset();
                let data = data
                    .with_high_watermark(hw)
                    .with_last_stable_offset(hw)
                    .with_log_start_offset(start);
                match result {
                    Ok(Some(read)) => {
                        total += read.records.len();
                        data.with_high_watermark(read.high_watermark)
                            .with_last_stable_offset(read.high_watermark)
                            .with_log_start_offset(read.log_start_offset)
                            .with_records(Some(read.records))
                    }
                    Ok(None) => data.with_records(Some(Bytes::new())),
                    Err(LogError::OffsetOutOfRange { .. }) => {
                        had_error = true;
                        data.with_error_code(ResponseError::OffsetOutOfRange.code())
                    }
                    Err(e) => {
                        had_error = true;
                        tracing::error!("fetch read failed: {e}");
                        data.with_error_code(ResponseError::KafkaStorageError.code())
                    }
                }
            }
        };
        per_topic[w.topic_index].push(data);
    }
    let responses = plan
        .topics
        .iter()
        .zip(per_topic)
        .map(|((name, id), partitions)| {
            let topic = FetchableTopicResponse::default().with_partitions(partitions);
            if plan.version >= 13 {
                topic.with_topic_id(*id)
            } else {
                topic.with_topic(name.clone())
            }
        })
        .collect();
    (
        FetchResponse::default().with_responses(responses),
        total,
        had_error,
    )
}
