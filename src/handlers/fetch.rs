//! Fetch (key 1): reads whole batches from the logs and long-polls: when fewer than `min_bytes`
//! are available the request parks until an append to one of its partitions or `max_wait_ms`.
//! Sessions (KIP-227) are not kept: every response is a full one (session id 0), listing every
//! requested partition and no other, which is what clients require of a full response.
//!
//! Zero-copy: reads yield file regions, not bytes. [`handle_framed`] writes the response frame
//! by hand around those regions (the connection `sendfile`s them), byte for byte what the
//! crate's encoder would produce (tests/it/zero_copy.rs checks that in every version).

use crate::common::Offset;
use std::sync::Arc;
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use futures_util::future::select_all;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::fetch_response::{
    AbortedTransaction, LeaderIdAndEpoch, NodeEndpoint, PartitionData,
};
use kafka_protocol::messages::{
    BrokerId, FetchRequest, FetchResponse, ProducerId, ResponseHeader, TopicName,
};
use kafka_protocol::protocol::{Encodable, HeaderVersion};
use tokio::sync::watch;
use tokio::time::Instant;
use uuid::Uuid;

use super::check_leader_epoch;
use crate::broker::BrokerContext;
use crate::log::PartitionLog;
use crate::protocol::body::ResponseBody;
use crate::protocol::Reply;

const READ_COMMITTED: i8 = 1;

/// One requested partition, resolved once per request.
struct Wanted {
    topic_index: usize,
    partition: i32,
    fetch_offset: i64,
    max_bytes: usize,
    log: Result<Arc<PartitionLog>, ResponseError>,
    /// A follower fetch of a replica listed in `leader.replication.throttled.replicas`.
    throttled: bool,
    /// When this broker does not lead the partition (or at another epoch): the leader and
    /// epoch the metadata names, for the client to go there at once (KIP-951, v16+).
    leader_hint: Option<LeaderIdAndEpoch>,
}

/// The request reduced to what reading needs.
struct Plan {
    version: i16,
    topics: Vec<(TopicName, Uuid)>,
    wanted: Vec<Wanted>,
    max_bytes: usize,
    min_bytes: usize,
    read_committed: bool,
    /// A follower's fetch (replica id >= 0): reads go to the log end, not the high watermark.
    from_follower: bool,
    /// `leader.replication.throttled.rate`, counted for throttled replicas.
    leader_throttle: Arc<crate::replication::throttle::Rate>,
    /// The endpoints of the leaders named in `leader_hint`s (KIP-951, v16+).
    node_endpoints: Vec<NodeEndpoint>,
}

/// A segment-file region holding one partition's records.
#[derive(Debug, Clone)]
struct Region {
    file: Arc<std::fs::File>,
    position: u64,
    len: u64,
}

/// One partition's answer: every field but the records, and where the records are.
struct PartOut {
    data: PartitionData,
    region: Option<Region>,
}

/// A fetch result before encoding.
struct Fetched {
    version: i16,
    error_code: i16,
    topics: Vec<(TopicName, Uuid)>,
    per_topic: Vec<Vec<PartOut>>,
    node_endpoints: Vec<NodeEndpoint>,
}

/// Fetch answered as a hand-framed response whose records stay in the segment files (for
/// `sendfile`). An encoding failure becomes `Err`, which closes the connection.
pub fn handle_framed(
    ctx: &Arc<BrokerContext>,
    request: FetchRequest,
    version: i16,
    correlation_id: i32,
) -> Reply<Result<ResponseBody, String>> {
    map_reply(fetch(ctx, request, version), move |f| {
        to_frame(&f, correlation_id).map_err(|e| format!("cannot frame Fetch v{version}: {e}"))
    })
}

fn map_reply<A: Send + 'static, B: Send + 'static>(
    reply: Reply<A>,
    f: impl FnOnce(A) -> B + Send + 'static,
) -> Reply<B> {
    match reply {
        Reply::Now(a) => Reply::Now(f(a)),
        Reply::Later(fut) => Reply::Later(Box::pin(async move { f(fut.await) })),
        Reply::Nothing => Reply::Nothing,
        Reply::CloseConnection(why) => Reply::CloseConnection(why),
    }
}

/// The longest a Fetch is parked: Kafka clients give up on a request after
/// `request.timeout.ms` (30 s by default), so waiting longer only holds a request's state for
/// nobody, and a client asking for `i32::MAX` ms must not pin it for weeks.
const MAX_PARKED_WAIT: Duration = Duration::from_secs(30);

/// How long a Fetch with `max_wait_ms` may wait for data: negative is zero, and no longer than
/// [`MAX_PARKED_WAIT`].
fn parked_wait(max_wait_ms: i32) -> Duration {
    Duration::from_millis(u64::try_from(max_wait_ms).unwrap_or(0)).min(MAX_PARKED_WAIT)
}

fn fetch(ctx: &Arc<BrokerContext>, request: FetchRequest, version: i16) -> Reply<Fetched> {
    if version >= 7 && request.session_id != 0 {
        // We never hand out session ids, so any incremental fetch names an unknown session.
        return Reply::Now(Fetched {
            version,
            error_code: ResponseError::FetchSessionIdNotFound.code(),
            topics: Vec::new(),
            per_topic: Vec::new(),
            node_endpoints: Vec::new(),
        });
    }
    let plan = resolve(ctx, &request, version);
    // Subscribe before the first read so an append between the read and the wait is not missed.
    let mut watches: Vec<watch::Receiver<i64>> = plan
        .wanted
        .iter()
        .filter_map(|w| {
            w.log.as_ref().ok().map(|l| {
                if plan.from_follower {
                    l.subscribe_log_end()
                } else {
                    l.subscribe()
                }
            })
        })
        .collect();
    let (response, bytes, had_error) = read_all(&plan);
    let max_wait = parked_wait(request.max_wait_ms);
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
    // One image for the whole request: lookups never wait for a metadata write.
    let image = ctx.metadata.image();
    // The replica id moved into a tagged ReplicaState in v15.
    let replica_id = if version >= 15 {
        request.replica_state.replica_id.0
    } else {
        request.replica_id.0
    };
    let follower = (replica_id >= 0).then_some(crate::common::NodeId(replica_id));
    let mut leaders = std::collections::BTreeMap::new();
    for (topic_index, topic) in request.topics.iter().enumerate() {
        let (name, meta) = if version >= 13 {
            let meta = image.topic_by_id(topic.topic_id.into());
            (meta.map(|m| m.name.clone()), meta)
        } else {
            let name = topic.topic.0.as_str().to_string();
            let meta = image.topic(&name);
            (Some(name), meta)
        };
        topics.push((topic.topic.clone(), topic.topic_id));
        for p in &topic.partitions {
            let led = match (&name, &meta) {
                (_, None) if version >= 13 => Err(ResponseError::UnknownTopicId),
                (Some(name), Some(_)) => ctx
                    .led_partition(&image, name, p.partition)
                    .map_err(|why| why.error()),
                _ => Err(ResponseError::UnknownTopicOrPartition),
            };
            let log = led.and_then(|led| {
                check_leader_epoch(p.current_leader_epoch, led.leader_epoch)?;
                // Until the high watermark has reached the offset this leadership began at
                // (a new leader, or one restarted with an older checkpoint), it may be below
                // what consumers were already shown: answer as KIP-207 does for ListOffsets
                // (retriable; clients fetch again shortly) rather than move their view back.
                if follower.is_none()
                    && led.log.high_watermark().get() < led.state.epoch_start_offset
                {
                    return Err(ResponseError::OffsetNotAvailable);
                }
                if let Some(follower) = follower {
                    // Its fetch offset is its durable log end: progress toward the high
                    // watermark, and maybe its way back into the ISR.
                    ctx.replicas
                        .follower_fetched(&led.state, follower, p.fetch_offset);
                }
                Ok(led.log)
            });
            let throttled = follower.is_some()
                && meta.is_some_and(|m| {
                    crate::replication::throttle::is_throttled(
                        m,
                        p.partition,
                        ctx.node_id(),
                        crate::replication::throttle::Side::Leader,
                    )
                });
            let leader_hint = match &log {
                Err(
                    ResponseError::NotLeaderOrFollower
                    | ResponseError::FencedLeaderEpoch
                    | ResponseError::UnknownLeaderEpoch,
                ) if version >= 16 => {
                    meta.and_then(|m| image.live_leader(m, p.partition))
                        .map(|(broker, epoch)| {
                            leaders.insert(broker.id, broker.clone());
                            LeaderIdAndEpoch::default()
                                .with_leader_id(BrokerId(broker.id.get()))
                                .with_leader_epoch(epoch.get())
                        })
                }
                _ => None,
            };
            wanted.push(Wanted {
                topic_index,
                partition: p.partition,
                fetch_offset: p.fetch_offset,
                max_bytes: p.partition_max_bytes.max(0) as usize,
                log,
                throttled,
                leader_hint,
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
        read_committed: follower.is_none() && request.isolation_level == READ_COMMITTED,
        from_follower: follower.is_some(),
        leader_throttle: Arc::clone(&ctx.replicas.leader_throttle),
        node_endpoints: leaders
            .into_values()
            .map(|b| {
                NodeEndpoint::default()
                    .with_node_id(BrokerId(b.id.get()))
                    .with_host(super::str_bytes(b.host))
                    .with_port(i32::from(b.port))
                    .with_rack(b.rack.map(super::str_bytes))
            })
            .collect(),
    }
}

/// Reads every wanted partition once: (result, record bytes included, any partition error).
fn read_all(plan: &Plan) -> (Fetched, usize, bool) {
    let mut total = 0usize;
    let mut had_error = false;
    let mut per_topic: Vec<Vec<PartOut>> = plan.topics.iter().map(|_| Vec::new()).collect();
    for w in &plan.wanted {
        let mut region = None;
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
                    .with_current_leader(w.leader_hint.clone().unwrap_or_default())
            }
            Ok(log) => {
                let budget = w.max_bytes.min(plan.max_bytes.saturating_sub(total));
                // KIP-74: the first partition with data returns at least one whole batch, even
                // above the limits, so a large batch can never wedge a consumer.
                let min_one = total == 0;
                let result = if (budget == 0 && !min_one)
                    || (w.throttled && plan.leader_throttle.exceeded())
                {
                    Ok(None)
                } else if plan.from_follower {
                    log.read_region_to_log_end(Offset(w.fetch_offset), budget, min_one)
                        .map(Some)
                } else {
                    log.read_region(Offset(w.fetch_offset), budget, min_one, plan.read_committed)
                        .map(Some)
                };
                let hw = log.high_watermark();
                let start = log.log_start_offset();
                let data = data
                    .with_high_watermark(hw.get())
                    .with_last_stable_offset(log.last_stable_offset().get())
                    .with_log_start_offset(start.get());
                match result {
                    Ok(Some(read)) => {
                        if let Some(file) = read.file {
                            total += usize::try_from(read.len).unwrap_or(usize::MAX);
                            if w.throttled {
                                plan.leader_throttle.record(read.len);
                            }
                            region = Some(Region {
                                file,
                                position: read.position,
                                len: read.len,
                            });
                        }
                        let data = data
                            .with_high_watermark(read.high_watermark.get())
                            .with_last_stable_offset(read.last_stable_offset.get())
                            .with_log_start_offset(read.log_start_offset.get())
                            .with_records(Some(Bytes::new()));
                        if plan.read_committed && read.len > 0 {
                            // The aborted transactions the returned batches may hold, so the
                            // consumer can drop their records.
                            let aborted = log
                                .aborted_transactions(
                                    Offset(w.fetch_offset),
                                    read.last_stable_offset,
                                )
                                .into_iter()
                                .map(|t| {
                                    AbortedTransaction::default()
                                        .with_producer_id(ProducerId(t.producer_id))
                                        .with_first_offset(t.first_offset)
                                })
                                .collect();
                            data.with_aborted_transactions(Some(aborted))
                        } else {
                            data
                        }
                    }
                    Ok(None) => data.with_records(Some(Bytes::new())),
                    Err(e) => {
                        had_error = true;
                        data.with_error_code(super::errors::log_error(&e).code())
                    }
                }
            }
        };
        per_topic[w.topic_index].push(PartOut { data, region });
    }
    let fetched = Fetched {
        version: plan.version,
        error_code: 0,
        topics: plan.topics.clone(),
        per_topic,
        node_endpoints: plan.node_endpoints.clone(),
    };
    (fetched, total, had_error)
}

/// The response frame for `f`, size prefix included, written by hand around the record
/// regions. Layout (Kafka's FetchResponse schema): header; throttle_time_ms; from v7
/// error_code and session_id; the topics array (compact from v12), each with its name (topic
/// id from v13) and partitions array; tagged-field sections from v12. Each partition's fields
/// are encoded by the crate with empty records, whose encoding is then replaced by the real
/// length prefix and the file region.
fn to_frame(f: &Fetched, correlation_id: i32) -> anyhow::Result<ResponseBody> {
    let v = f.version;
    let flexible = v >= 12;
    let mut parts = ResponseBody::new();
    let mut buf = BytesMut::with_capacity(256);
    ResponseHeader::default()
        .with_correlation_id(correlation_id)
        .encode(&mut buf, FetchResponse::header_version(v))?;
    buf.put_i32(0); // throttle_time_ms
    if v >= 7 {
        buf.put_i16(f.error_code);
        buf.put_i32(0); // session_id
    }
    put_len(&mut buf, f.per_topic.len(), flexible)?;
    for ((name, id), partitions) in f.topics.iter().zip(&f.per_topic) {
        if v >= 13 {
            buf.put_slice(id.as_bytes());
        } else {
            let name = name.0.as_bytes();
            if flexible {
                put_varint(&mut buf, u32::try_from(name.len() + 1)?);
            } else {
                buf.put_i16(i16::try_from(name.len())?);
            }
            buf.put_slice(name);
        }
        put_len(&mut buf, partitions.len(), flexible)?;
        for p in partitions {
            let Some(region) = &p.region else {
                p.data.encode(&mut buf, v)?;
                continue;
            };
            anyhow::ensure!(
                p.data.unknown_tagged_fields.is_empty()
                    && p.data.diverging_epoch == Default::default()
                    && p.data.current_leader == Default::default()
                    && p.data.snapshot_id == Default::default(),
                "partition data with tagged fields cannot be spliced"
            );
            let mut fields = BytesMut::new();
            p.data
                .clone()
                .with_records(Some(Bytes::new()))
                .encode(&mut fields, v)?;
            // Empty records encode as a 4-byte zero length (1-byte varint 1 when flexible),
            // followed when flexible by the partition's empty tagged-field section (0).
            let tail = if flexible { 2 } else { 4 };
            anyhow::ensure!(fields.len() >= tail, "partition data too short");
            buf.put_slice(&fields[..fields.len() - tail]);
            let len = usize::try_from(region.len)?;
            if flexible {
                put_varint(&mut buf, u32::try_from(len + 1)?);
            } else {
                buf.put_i32(i32::try_from(len)?);
            }
            parts.push_bytes(std::mem::take(&mut buf).freeze());
            parts.push_file(Arc::clone(&region.file), region.position, region.len);
            if flexible {
                buf.put_u8(0); // the partition's tagged fields
            }
        }
        if flexible {
            buf.put_u8(0); // the topic's tagged fields
        }
    }
    if v >= 16 {
        buf.put_slice(&response_tagged_fields(v, &f.node_endpoints)?);
    } else if flexible {
        buf.put_u8(0); // the response's tagged fields
    }
    parts.push_bytes(buf.freeze());
    let size = i32::try_from(parts.len())?;
    let mut framed = ResponseBody::new();
    framed.push_bytes(Bytes::copy_from_slice(&size.to_be_bytes()));
    for c in parts.chunks() {
        match c {
            crate::protocol::body::Chunk::Bytes(b) => framed.push_bytes(b.clone()),
            crate::protocol::body::Chunk::File {
                file,
                position,
                len,
            } => framed.push_file(Arc::clone(file), *position, *len),
        }
    }
    Ok(framed)
}

/// The response-level tagged-field section at `v` (16+): the leaders' endpoints (KIP-951), or
/// none. Encoded by the crate as the tail of an otherwise empty response, after its fixed
/// fields (throttle_time_ms, error_code, session_id) and its empty topics array.
fn response_tagged_fields(v: i16, endpoints: &[NodeEndpoint]) -> anyhow::Result<Bytes> {
    const FIXED_FIELDS: usize = 4 + 2 + 4 + 1;
    let mut buf = BytesMut::new();
    FetchResponse::default()
        .with_node_endpoints(endpoints.to_vec())
        .encode(&mut buf, v)?;
    anyhow::ensure!(buf.len() > FIXED_FIELDS, "empty FetchResponse too short");
    Ok(buf.split_off(FIXED_FIELDS).freeze())
}

/// An array length: INT32 count, or UNSIGNED_VARINT count + 1 when flexible.
fn put_len(buf: &mut BytesMut, n: usize, flexible: bool) -> anyhow::Result<()> {
    if flexible {
        put_varint(buf, u32::try_from(n + 1)?);
    } else {
        buf.put_i32(i32::try_from(n)?);
    }
    Ok(())
}

/// Kafka's UNSIGNED_VARINT: 7 bits per byte, low bits first, high bit = more follows.
fn put_varint(buf: &mut BytesMut, mut n: u32) {
    while n >= 0x80 {
        buf.put_u8((n as u8 & 0x7f) | 0x80);
        n >>= 7;
    }
    buf.put_u8(n as u8);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parked_wait_is_bounded() {
        assert_eq!(parked_wait(-5), Duration::ZERO);
        assert_eq!(parked_wait(0), Duration::ZERO);
        assert_eq!(parked_wait(500), Duration::from_millis(500));
        assert_eq!(parked_wait(i32::MAX), MAX_PARKED_WAIT);
    }
}
