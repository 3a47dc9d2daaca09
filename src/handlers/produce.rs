//! Produce (key 0): validate each partition's batch (its header and CRC; the records only where
//! the topic asks for record-level work, decompressed once under a cap, see
//! `inspect_records`), append it, and answer per `acks` — 0: no response at all; 1: after the
//! write; all: after the group-commit flusher has fdatasync'ed it (unless
//! `log.flush.policy = interval`) and, for a replicated partition, once the high watermark has
//! passed it (every in-sync replica has it on disk), within the request's timeout. A batch
//! that brings the partition's unflushed messages to
//! its `flush.messages` is answered after that fsync whatever `acks` says, as in Kafka. A
//! request that needs record-level work runs on the blocking pool, and the connection reads its
//! next request only once its appends are done, so they keep their order.

use std::sync::Arc;

use crate::common::Offset;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::produce_request::PartitionProduceData;
use kafka_protocol::messages::produce_response::{
    BatchIndexAndErrorMessage, PartitionProduceResponse, TopicProduceResponse,
};
use kafka_protocol::messages::{BrokerId, ProduceRequest, ProduceResponse, TopicName};

use super::str_bytes;
use super::txn_verification::Verdicts;
use crate::broker::BrokerContext;
use crate::config::FlushPolicy;
use crate::log::AppendOutcome;
use crate::metadata::TopicMeta;
use crate::records::{self, Compression, RecordError};

/// Produce v7 is the first version allowed to carry zstd batches (KIP-110).
const FIRST_ZSTD_VERSION: i16 = 7;

/// A partition that must be durable (and, for acks=all, replicated) before the response
/// leaves.
struct DurableWait {
    led: crate::broker::Led,
    end_offset: Offset,
    topic_index: usize,
    partition_index: usize,
    /// fsync here first (acks=all under the acks-all flush policy, or `flush.messages`).
    fsync: bool,
    /// Wait for the in-sync replicas (acks=all).
    replicate: bool,
}

pub fn handle(
    ctx: &Arc<BrokerContext>,
    request: ProduceRequest,
    version: i16,
) -> crate::protocol::Reply<ProduceResponse> {
    handle_verified(ctx, request, version, &Verdicts::default())
}

/// [`handle`] once another broker, coordinating the request's transaction, was asked about
/// its partitions: `verdicts` says why those it did not confirm are refused.
pub fn handle_verified(
    ctx: &Arc<BrokerContext>,
    request: ProduceRequest,
    version: i16,
    verdicts: &Verdicts,
) -> crate::protocol::Reply<ProduceResponse> {
    use crate::protocol::Reply;
    let acks = request.acks;
    let timeout_ms = request.timeout_ms;
    let transactional_id = request
        .transactional_id
        .as_ref()
        .map(|t| t.0.as_str().to_string());
    let txn = Transactional {
        id: transactional_id.as_deref(),
        verdicts,
    };
    let mut waits = Vec::new();
    let mut any_error = false;
    // -1 (all), 0 and 1 are the only meanings Kafka defines for acks.
    let valid_acks = (-1..=1).contains(&acks);
    let mut responses = Vec::with_capacity(request.topic_data.len());
    // One image for the whole request: lookups never wait for a metadata write.
    let image = ctx.metadata.image();
    for (topic_index, topic) in request.topic_data.into_iter().enumerate() {
        let meta = if version >= 13 {
            image.topic_by_id(topic.topic_id.into())
        } else {
            image.topic(topic.name.0.as_str())
        };
        let unknown = if version >= 13 {
            ResponseError::UnknownTopicId
        } else {
            ResponseError::UnknownTopicOrPartition
        };
        let mut partitions = Vec::with_capacity(topic.partition_data.len());
        for (partition_index, data) in topic.partition_data.into_iter().enumerate() {
            let index = data.index;
            let result = if !valid_acks {
                Err(Rejected::from((ResponseError::InvalidRequiredAcks, None)))
            } else {
                match &meta {
                    Some(meta) => produce_one(ctx, &image, meta, data, version, acks, &txn),
                    None => Err(Rejected::from((unknown, None))),
                }
            };
            let answer = PartitionProduceResponse::default().with_index(index);
            let answer = match result {
                Ok((outcome, led)) => {
                    let (base, last, start, append_time, flush_forced) = match outcome {
                        AppendOutcome::Appended {
                            base_offset,
                            last_offset,
                            log_start_offset,
                            log_append_time,
                            flush_forced,
                        } => (
                            base_offset,
                            last_offset,
                            log_start_offset,
                            log_append_time,
                            flush_forced,
                        ),
                        AppendOutcome::Duplicate {
                            base_offset,
                            last_offset,
                            log_start_offset,
                        } => (base_offset, last_offset, log_start_offset, -1, false),
                    };
                    // `flush.messages` reached: Kafka answers after that fsync, whatever acks.
                    let fsync = flush_forced
                        || (acks == -1 && ctx.config().flush_policy == FlushPolicy::AcksAll);
                    let replicate = acks == -1 && !led.state.is_single_replica();
                    if fsync || replicate {
                        waits.push(DurableWait {
                            led,
                            end_offset: Offset(last).next(),
                            topic_index,
                            partition_index,
                            fsync,
                            replicate,
                        });
                    }
                    answer
                        .with_base_offset(base)
                        .with_log_append_time_ms(append_time)
                        .with_log_start_offset(start)
                }
                Err(rejected) => {
                    any_error = true;
                    // v8+ (KIP-467): the offending records, so clients fail only those.
                    let record_errors = if version >= 8 {
                        rejected
                            .records
                            .into_iter()
                            .map(|(index, why)| {
                                BatchIndexAndErrorMessage::default()
                                    .with_batch_index(index)
                                    .with_batch_index_error_message(Some(str_bytes(why)))
                            })
                            .collect()
                    } else {
                        Vec::new()
                    };
                    answer
                        .with_error_code(rejected.error.code())
                        .with_base_offset(-1)
                        .with_log_append_time_ms(-1)
                        .with_log_start_offset(-1)
                        .with_error_message(rejected.message.map(str_bytes))
                        .with_record_errors(record_errors)
                }
            };
            partitions.push(answer);
        }
        let mut response = TopicProduceResponse::default().with_partition_responses(partitions);
        if version >= 13 {
            response = response.with_topic_id(topic.topic_id);
        } else {
            response = response.with_name(TopicName(topic.name.0));
        }
        responses.push(response);
    }
    let response = with_leader_hints(
        &image,
        ProduceResponse::default().with_responses(responses),
        version,
    );
    if acks == 0 {
        return if any_error {
            // Kafka closes the connection so that the producer notices and refreshes metadata.
            Reply::CloseConnection("acks=0 produce failed".to_string())
        } else {
            Reply::Nothing
        };
    }
    if waits.is_empty() {
        return Reply::Now(response);
    }
    let timeout = std::time::Duration::from_millis(u64::try_from(timeout_ms).unwrap_or(0));
    Reply::Later(Box::pin(async move {
        let mut response = response;
        for wait in waits {
            let error = wait_for(&wait, timeout).await.err();
            if let Some(error) = error {
                if let Some(p) = response
                    .responses
                    .get_mut(wait.topic_index)
                    .and_then(|t| t.partition_responses.get_mut(wait.partition_index))
                {
                    p.error_code = error.code();
                    p.base_offset = -1;
                }
            }
        }
        response
    }))
}

/// Waits until `wait`'s records are as safe as the request asked: fsynced here, then on every
/// in-sync replica. An ISR that shrank below `min.insync.replicas` meanwhile is
/// NOT_ENOUGH_REPLICAS_AFTER_APPEND (written, but not as safely as asked), as in Kafka.
async fn wait_for(wait: &DurableWait, timeout: std::time::Duration) -> Result<(), ResponseError> {
    let log = &wait.led.log;
    if wait.fsync {
        if let Err(e) = log.wait_durable(wait.end_offset).await {
            tracing::error!("produce not made durable: {e}");
            return Err(ResponseError::KafkaStorageError);
        }
    }
    if wait.replicate {
        use crate::replication::{wait_replicated, ReplicationWaitError};
        match wait_replicated(&wait.led.state, wait.end_offset, timeout).await {
            Ok(()) => {}
            Err(ReplicationWaitError::NotLeader) => return Err(ResponseError::NotLeaderOrFollower),
            Err(ReplicationWaitError::Timeout) => return Err(ResponseError::RequestTimedOut),
        }
        let min_insync = log.config().min_insync_replicas;
        if i32::try_from(wait.led.state.isr().len()).unwrap_or(i32::MAX) < min_insync {
            return Err(ResponseError::NotEnoughReplicasAfterAppend);
        }
    }
    Ok(())
}

/// KIP-951 (v10+): each partition refused with NOT_LEADER_OR_FOLLOWER names its current
/// leader and epoch, and the response carries those leaders' endpoints, so the producer
/// retries at the right broker without a metadata round trip.
fn with_leader_hints(
    image: &crate::metadata::MetadataImage,
    mut response: ProduceResponse,
    version: i16,
) -> ProduceResponse {
    use kafka_protocol::messages::produce_response::{LeaderIdAndEpoch, NodeEndpoint};
    if version < 10 {
        return response;
    }
    let not_leader = ResponseError::NotLeaderOrFollower.code();
    let mut leaders = std::collections::BTreeMap::new();
    for topic in &mut response.responses {
        let meta = if version >= 13 {
            image.topic_by_id(topic.topic_id.into())
        } else {
            image.topic(topic.name.0.as_str())
        };
        for p in &mut topic.partition_responses {
            if p.error_code != not_leader {
                continue;
            }
            let Some((broker, epoch)) = meta.and_then(|m| image.live_leader(m, p.index)) else {
                continue;
            };
            p.current_leader = LeaderIdAndEpoch::default()
                .with_leader_id(BrokerId(broker.id.get()))
                .with_leader_epoch(epoch.get());
            leaders.insert(broker.id, broker.clone());
        }
    }
    response.node_endpoints = leaders
        .into_values()
        .map(|b| {
            NodeEndpoint::default()
                .with_node_id(BrokerId(b.id.get()))
                .with_host(str_bytes(b.host))
                .with_port(i32::from(b.port))
                .with_rack(b.rack.map(str_bytes))
        })
        .collect();
    response
}

type Failure = (ResponseError, Option<String>);

/// A partition's batch refused: the code and message, and for record-level validation
/// (KIP-467) each offending record's index in the batch with its reason.
struct Rejected {
    error: ResponseError,
    message: Option<String>,
    records: Vec<(i32, String)>,
}

impl From<Failure> for Rejected {
    fn from((error, message): Failure) -> Rejected {
        Rejected {
            error,
            message,
            records: Vec::new(),
        }
    }
}

impl Rejected {
    /// A refusal naming the offending records; the message is the first one's reason, as
    /// Kafka's is.
    fn records(error: ResponseError, records: Vec<(i32, String)>) -> Rejected {
        Rejected {
            error,
            message: records.first().map(|(_, why)| why.clone()),
            records,
        }
    }
}

/// The request's transactional id, if any, and what its verification found.
struct Transactional<'a> {
    id: Option<&'a str>,
    verdicts: &'a Verdicts,
}

fn produce_one(
    ctx: &BrokerContext,
    image: &crate::metadata::MetadataImage,
    topic: &TopicMeta,
    data: PartitionProduceData,
    version: i16,
    acks: i16,
    txn: &Transactional<'_>,
) -> Result<(AppendOutcome, crate::broker::Led), Rejected> {
    let led = ctx
        .led_partition(image, &topic.name, data.index)
        .map_err(|why| (why.error(), None))?;
    let log = &led.log;
    let config = log.config();
    // Kafka checks the in-sync replica count before it looks at the records, and refuses an
    // acks=all write it could not make as durable as `min.insync.replicas` asks (creating
    // such a topic is allowed; producing to it with acks=all is not).
    // The ISR of the request's image, as Metadata shows it (the leader's own view follows the
    // same image once the publisher has applied it).
    let isr_len = topic
        .placement(data.index)
        .map_or_else(|| led.state.isr().len(), |p| p.isr().len());
    let in_sync = i32::try_from(isr_len).unwrap_or(i32::MAX);
    if acks == -1 && config.min_insync_replicas > in_sync {
        return Err(Rejected::from((
            ResponseError::NotEnoughReplicas,
            Some(format!(
                "min.insync.replicas is {} but the partition has {in_sync} in-sync replica(s)",
                config.min_insync_replicas
            )),
        )));
    }
    let Some(batch) = data.records else {
        return Err(Rejected::from((
            ResponseError::InvalidRecord,
            Some("no record batch".to_string()),
        )));
    };
    let info =
        records::validate_produce_batch(&batch, config.max_message_bytes).map_err(record_error)?;
    if info.compression == Compression::Zstd && version < FIRST_ZSTD_VERSION {
        return Err(Rejected::from((
            ResponseError::UnsupportedCompressionType,
            Some("zstd needs Produce v7 or later".to_string()),
        )));
    }
    if info.is_transactional {
        // Kafka's rule: transactional records come from a transactional producer.
        let Some(txn_id) = txn.id.filter(|_| info.producer_id >= 0) else {
            return Err(Rejected::from((
                ResponseError::InvalidRecord,
                Some("a transactional batch needs a transactional id and a producer id".into()),
            )));
        };
        // The partition must be in the producer's ongoing transaction (Kafka's verification,
        // KIP-890 part 1): otherwise no marker would ever close it here and the partition's
        // last stable offset would hang.
        super::txn_verification::check(
            ctx,
            txn.verdicts,
            txn_id,
            (info.producer_id, info.producer_epoch),
            (&topic.name, data.index),
        )
        .map_err(|e| {
            let message = (e == crate::txn::TxnError::InvalidTxnState)
                .then(|| "the partition is not in the producer's transaction".to_string());
            (super::errors::produce_txn_error(e), message)
        })?;
    }
    let (batch, info) = inspect_records(batch, info, &config)?;
    let outcome = log
        .append(&batch, &info, led.leader_epoch)
        .map_err(|e| (super::errors::log_error(&e), Some(e.to_string())))?;
    Ok((outcome, led))
}

/// A batch the records layer refuses, with its code (see `errors::record_error`) and reason.
fn record_error(e: RecordError) -> Rejected {
    Rejected::from((super::errors::record_error(&e), Some(e.to_string())))
}

/// Which record-level steps a batch needs (see [`inspect_records`]), from its header alone.
struct RecordWork {
    /// Keys must be present (compacted topic).
    keys: bool,
    /// Record timestamps must be checked against the topic's bounds.
    timestamps: bool,
    /// maxTimestamp is below baseTimestamp and must be recomputed.
    repair: bool,
    /// The topic's codec, if it differs from the batch's.
    recompress_to: Option<Compression>,
}

impl RecordWork {
    fn of(info: &records::BatchInfo, config: &crate::log::LogConfig, now: i64) -> RecordWork {
        let create_time = config.timestamp_kind == crate::log::TimestampKind::CreateTime;
        let too_new = info.max_timestamp.saturating_sub(now) > config.timestamp_after_max_ms;
        RecordWork {
            keys: config.compact,
            timestamps: create_time && (too_new || config.timestamp_before_max_ms != i64::MAX),
            repair: info.max_timestamp < info.base_timestamp,
            recompress_to: config
                .compression
                .filter(|codec| *codec != info.compression),
        }
    }

    fn any(&self) -> bool {
        self.keys || self.timestamps || self.repair || self.recompress_to.is_some()
    }
}

/// True if a partition of `request` needs record-level work (decompression, a pass over the
/// records): such a request is handled on the blocking pool. Most produces need none and are
/// handled inline, which keeps the hop to another thread (measured at about half the cost of a
/// pipelined acks=1 produce in a debug build) off the hot path. Reads the batch headers only,
/// without checking them (the handler does).
pub fn needs_record_work(ctx: &BrokerContext, request: &ProduceRequest, version: i16) -> bool {
    let image = ctx.metadata.image();
    let now = crate::common::now_ms();
    request.topic_data.iter().any(|topic| {
        let meta = if version >= 13 {
            image.topic_by_id(topic.topic_id.into())
        } else {
            image.topic(topic.name.0.as_str())
        };
        let Some(meta) = meta else {
            return false;
        };
        topic.partition_data.iter().any(|data| {
            let Some(log) = ctx.partition(&meta.name, data.index) else {
                return false;
            };
            let Some(header) = data.records.as_deref().and_then(records::BatchHeader::new) else {
                return false;
            };
            let info = records::BatchInfo::from_header(&header);
            RecordWork::of(&info, &log.config(), now).any()
        })
    })
}

/// The record-level work a topic asks for, done in one pass over the records, decompressed
/// once (with output capped at a multiple of `max.message.bytes`, see
/// `records::decompress_limit`), or not at all when the header says enough:
/// - a compacted topic refuses records without a key (INVALID_RECORD, as Kafka does);
/// - a CreateTime record outside `message.timestamp.after.max.ms` / `before.max.ms` of the
///   broker's clock is refused (INVALID_TIMESTAMP). The batch's max timestamp bounds the
///   future side exactly, so records are read for this only when `before.max.ms` is set below
///   its unlimited default or the batch is known to hold a record too new;
/// - a maxTimestamp below the baseTimestamp (old sarama versions leave it at -1) is repaired
///   from the records, as Kafka's validator does: the time index and ListOffsets-by-time
///   depend on it;
/// - a topic `compression.type` other than the batch's codec recompresses the records.
///
/// Rejections name each offending record (KIP-467). When a request needs any of this, the whole
/// handler runs on the blocking pool (see [`needs_record_work`]). Returns the batch to append
/// and its header info.
fn inspect_records(
    batch: bytes::Bytes,
    info: records::BatchInfo,
    config: &crate::log::LogConfig,
) -> Result<(bytes::Bytes, records::BatchInfo), Rejected> {
    let now = crate::common::now_ms();
    let work = RecordWork::of(&info, config, now);
    if !work.any() {
        return Ok((batch, info));
    }
    let RecordWork {
        repair,
        recompress_to,
        ..
    } = work;
    let create_time = config.timestamp_kind == crate::log::TimestampKind::CreateTime;
    let too_new = |ts: i64| ts.saturating_sub(now) > config.timestamp_after_max_ms;
    let too_old = |ts: i64| now.saturating_sub(ts) > config.timestamp_before_max_ms;
    let rebuilt = {
        let recs = records::records(&batch, records::decompress_limit(config.max_message_bytes))
            .map_err(record_error)?;
        let mut keyless = Vec::new();
        let mut out_of_range = Vec::new();
        let mut max = i64::MIN;
        for (index, r) in recs.iter().enumerate() {
            let r = r.map_err(record_error)?;
            let index = i32::try_from(index).unwrap_or(i32::MAX);
            if config.compact && r.key.is_none() {
                keyless.push((
                    index,
                    "compacted topic cannot accept a record without a key".to_string(),
                ));
            }
            if create_time && (too_new(r.timestamp) || too_old(r.timestamp)) {
                out_of_range.push((
                    index,
                    format!(
                        "timestamp {} is out of range (message.timestamp.after.max.ms = {}, before.max.ms = {})",
                        r.timestamp, config.timestamp_after_max_ms, config.timestamp_before_max_ms
                    ),
                ));
            }
            max = max.max(r.timestamp);
        }
        if !keyless.is_empty() {
            return Err(Rejected::records(ResponseError::InvalidRecord, keyless));
        }
        if !out_of_range.is_empty() {
            return Err(Rejected::records(
                ResponseError::InvalidTimestamp,
                out_of_range,
            ));
        }
        let repaired = repair.then(|| {
            let mut fixed = batch.to_vec();
            records::set_max_timestamp(&mut fixed, max);
            fixed
        });
        match recompress_to {
            Some(codec) => Some(
                records::rebuild::recompress_records(
                    repaired.as_deref().unwrap_or(&batch),
                    recs.body(),
                    codec,
                    config.compression_level(codec),
                )
                .map_err(record_error)?,
            ),
            None => repaired,
        }
    };
    match rebuilt {
        Some(out) => {
            // Header checks and CRC of the rewritten batch; no decompression.
            let info = records::validate_produce_batch(&out, usize::MAX).map_err(record_error)?;
            Ok((bytes::Bytes::from(out), info))
        }
        None => Ok((batch, info)),
    }
}
#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::{LogConfig, LogOptions};
    use crate::records::compression::DECOMPRESSIONS;
    use crate::records::testutil::build_batch;

    fn decompressions() -> usize {
        DECOMPRESSIONS.with(std::cell::Cell::get)
    }

    /// A batch that needs every record-level step — keys checked (compacted topic), timestamps
    /// checked (before.max.ms set), max timestamp repaired, recompressed (topic codec lz4) —
    /// is decompressed once, and the result carries all of them.
    #[test]
    fn record_level_work_decompresses_a_batch_once() {
        let now = crate::common::now_ms();
        let recs = vec![
            (Some(&b"a"[..]), Some(&b"1"[..]), vec![], now - 5),
            (Some(&b"b"[..]), Some(&b"2"[..]), vec![], now - 1),
        ];
        let mut batch = build_batch(&recs, Compression::Gzip, -1, -1, -1);
        // maxTimestamp -1, as old sarama versions send it.
        records::set_max_timestamp(&mut batch, -1);
        let info = records::validate_produce_batch(&batch, usize::MAX).unwrap();
        let mut config = LogConfig::from_options(&LogOptions::default());
        config.compact = true;
        config.compression = Some(Compression::Lz4);
        config.timestamp_before_max_ms = 3_600_000;
        let before = decompressions();
        let Ok((out, out_info)) = inspect_records(bytes::Bytes::from(batch), info, &config) else {
            panic!("the batch is valid");
        };
        assert_eq!(decompressions() - before, 1);
        assert_eq!(out_info.compression, Compression::Lz4);
        assert_eq!(out_info.max_timestamp, now - 1);
        let stored = records::records(&out, 1 << 20).unwrap();
        let keys: Vec<_> = stored
            .iter()
            .map(|r| r.unwrap().key.map(<[u8]>::to_vec))
            .collect();
        assert_eq!(keys, vec![Some(b"a".to_vec()), Some(b"b".to_vec())]);
        // A keyless record and an old one: both reported, still from one decompression.
        let recs = vec![
            (None, Some(&b"1"[..]), vec![], now - 7_200_000),
            (Some(&b"b"[..]), Some(&b"2"[..]), vec![], now),
        ];
        let batch = build_batch(&recs, Compression::Zstd, -1, -1, -1);
        let info = records::validate_produce_batch(&batch, usize::MAX).unwrap();
        let before = decompressions();
        let Err(rejected) = inspect_records(bytes::Bytes::from(batch), info, &config) else {
            panic!("a keyless record on a compacted topic is refused");
        };
        assert_eq!(decompressions() - before, 1);
        assert_eq!(rejected.error, ResponseError::InvalidRecord);
        assert_eq!(rejected.records.len(), 1);
    }

    /// The decompressed size is capped at a multiple of the topic's `max.message.bytes`: a
    /// small batch of zeros that would expand past it gets MESSAGE_TOO_LARGE, and a topic
    /// with no record-level work does not decompress at all.
    #[test]
    fn a_batch_expanding_past_the_topic_cap_is_too_large() {
        let zeros = vec![0u8; 1 << 20];
        let recs = vec![(Some(&b"k"[..]), Some(&zeros[..]), vec![], 1)];
        let batch = build_batch(&recs, Compression::Zstd, -1, -1, -1);
        let info = records::validate_produce_batch(&batch, usize::MAX).unwrap();
        let mut config = LogConfig::from_options(&LogOptions::default());
        config.max_message_bytes = 10_000;
        assert!(batch.len() < config.max_message_bytes);
        let before = decompressions();
        let plain = inspect_records(bytes::Bytes::from(batch.clone()), info, &config);
        assert!(plain.is_ok());
        assert_eq!(
            decompressions(),
            before,
            "no record-level work, no decompression"
        );
        config.compact = true;
        let Err(rejected) = inspect_records(bytes::Bytes::from(batch), info, &config) else {
            panic!("1 MiB of records is past 64 x 10000 bytes");
        };
        assert_eq!(rejected.error, ResponseError::MessageTooLarge);
    }
}
