//! Produce (key 0): validate each partition's batch (header only, no per-record work), append
//! it, and answer per `acks` — 0: no response at all; 1: after the write; all: after the
//! group-commit flusher has fdatasync'ed it (unless `log.flush.policy = interval`). A batch that
//! brings the partition's unflushed messages to its `flush.messages` is answered after that
//! fsync whatever `acks` says, as in Kafka.

use crate::common::Offset;
use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::produce_request::PartitionProduceData;
use kafka_protocol::messages::produce_response::{
    BatchIndexAndErrorMessage, PartitionProduceResponse, TopicProduceResponse,
};
use kafka_protocol::messages::{ProduceRequest, ProduceResponse, TopicName};

use super::str_bytes;
use crate::broker::BrokerContext;
use crate::config::FlushPolicy;
use crate::log::{AppendOutcome, PartitionLog};
use crate::metadata::TopicMeta;
use crate::records::{self, Compression, RecordError};

/// In-sync replicas of every partition: one broker, one replica.
const IN_SYNC_REPLICAS: i32 = 1;

/// Produce v7 is the first version allowed to carry zstd batches (KIP-110).
const FIRST_ZSTD_VERSION: i16 = 7;

/// A partition that must be durable before the response leaves.
struct DurableWait {
    log: Arc<PartitionLog>,
    end_offset: Offset,
    topic_index: usize,
    partition_index: usize,
}

pub fn handle(
    ctx: &Arc<BrokerContext>,
    request: ProduceRequest,
    version: i16,
) -> crate::protocol::Reply<ProduceResponse> {
    use crate::protocol::Reply;
    let acks = request.acks;
    let transactional_id = request
        .transactional_id
        .as_ref()
        .map(|t| t.0.as_str().to_string());
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
                    Some(meta) => {
                        produce_one(ctx, meta, data, version, acks, transactional_id.as_deref())
                    }
                    None => Err(Rejected::from((unknown, None))),
                }
            };
            let answer = PartitionProduceResponse::default().with_index(index);
            let answer = match result {
                Ok((outcome, log)) => {
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
                    if flush_forced
                        || (acks == -1 && ctx.config().flush_policy == FlushPolicy::AcksAll)
                    {
                        waits.push(DurableWait {
                            log,
                            end_offset: Offset(last).next(),
                            topic_index,
                            partition_index,
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
    let response = ProduceResponse::default().with_responses(responses);
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
    Reply::Later(Box::pin(async move {
        let mut response = response;
        for wait in waits {
            if let Err(e) = wait.log.wait_durable(wait.end_offset).await {
                tracing::error!("produce not made durable: {e}");
                if let Some(p) = response
                    .responses
                    .get_mut(wait.topic_index)
                    .and_then(|t| t.partition_responses.get_mut(wait.partition_index))
                {
                    p.error_code = ResponseError::KafkaStorageError.code();
                    p.base_offset = -1;
                }
            }
        }
        response
    }))
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

/// `transactional_id`: the request's, if any.
fn produce_one(
    ctx: &BrokerContext,
    topic: &TopicMeta,
    data: PartitionProduceData,
    version: i16,
    acks: i16,
    transactional_id: Option<&str>,
) -> Result<(AppendOutcome, Arc<PartitionLog>), Rejected> {
    let log = ctx
        .partition(&topic.name, data.index)
        .ok_or((ResponseError::UnknownTopicOrPartition, None))?;
    let config = log.config();
    // Kafka checks the in-sync replica count before it looks at the records, and refuses an
    // acks=all write it could not make as durable as `min.insync.replicas` asks (creating
    // such a topic is allowed; producing to it with acks=all is not).
    if acks == -1 && config.min_insync_replicas > IN_SYNC_REPLICAS {
        return Err(Rejected::from((
            ResponseError::NotEnoughReplicas,
            Some(format!(
                "min.insync.replicas is {} but the partition has {IN_SYNC_REPLICAS} in-sync replica",
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
    let info = records::validate_produce_batch(&batch, config.max_message_bytes).map_err(|e| {
        let code = match &e {
            RecordError::MessageTooLarge { .. } => ResponseError::MessageTooLarge,
            RecordError::CorruptMessage(_) => ResponseError::CorruptMessage,
            RecordError::UnsupportedCompression(_) => ResponseError::UnsupportedCompressionType,
            _ => ResponseError::InvalidRecord,
        };
        (code, Some(e.to_string()))
    })?;
    if info.compression == Compression::Zstd && version < FIRST_ZSTD_VERSION {
        return Err(Rejected::from((
            ResponseError::UnsupportedCompressionType,
            Some("zstd needs Produce v7 or later".to_string()),
        )));
    }
    if info.is_transactional {
        // Kafka's rule: transactional records come from a transactional producer.
        let Some(txn_id) = transactional_id.filter(|_| info.producer_id >= 0) else {
            return Err(Rejected::from((
                ResponseError::InvalidRecord,
                Some("a transactional batch needs a transactional id and a producer id".into()),
            )));
        };
        // The partition must be in the producer's ongoing transaction (Kafka's verification,
        // KIP-890 part 1): otherwise no marker would ever close it here and the partition's
        // last stable offset would hang.
        ctx.txns
            .check_in_transaction(
                txn_id,
                info.producer_id,
                info.producer_epoch,
                (&topic.name, data.index),
            )
            .map_err(|e| {
                let message = (e == crate::txn::TxnError::InvalidTxnState)
                    .then(|| "the partition is not in the producer's transaction".to_string());
                (super::errors::produce_txn_error(e), message)
            })?;
    }
    if config.compact {
        // Compaction keeps the latest record per key, so a compacted topic refuses records
        // without one, as Kafka does. With recompression below, the only places Produce
        // decodes records.
        reject_keyless(&batch)?;
    }
    let (batch, info) = if info.max_timestamp < info.base_timestamp {
        repair_max_timestamp(&batch)?
    } else {
        (batch, info)
    };
    check_timestamps(&batch, &info, &config)?;
    let (batch, info) = match config.compression {
        Some(codec) if codec != info.compression => {
            let corrupt = |e: RecordError| (ResponseError::CorruptMessage, Some(e.to_string()));
            let out = records::rebuild::recompress(
                &batch,
                codec,
                config.compression_level(codec),
                records::DEFAULT_DECOMPRESS_LIMIT,
            )
            .map_err(corrupt)?;
            let info = records::validate_produce_batch(&out, usize::MAX).map_err(corrupt)?;
            (bytes::Bytes::from(out), info)
        }
        _ => (batch, info),
    };
    let outcome = log
        .append(&batch, &info, crate::common::LEADER_EPOCH)
        .map_err(|e| (super::errors::log_error(&e), Some(e.to_string())))?;
    Ok((outcome, log))
}

/// INVALID_TIMESTAMP, naming each offending record, if a CreateTime record lies outside
/// `message.timestamp.after.max.ms` / `before.max.ms` of the broker's clock. The batch's max
/// timestamp bounds the future side exactly; the past side needs each record, so records are
/// decoded only when `before.max.ms` is set below its unlimited default or a record is known
/// to be too new.
fn check_timestamps(
    batch: &[u8],
    info: &records::BatchInfo,
    config: &crate::log::LogConfig,
) -> Result<(), Rejected> {
    if config.timestamp_kind == crate::log::TimestampKind::LogAppendTime {
        return Ok(());
    }
    let now = crate::common::now_ms();
    let too_new = |ts: i64| ts.saturating_sub(now) > config.timestamp_after_max_ms;
    let too_old = |ts: i64| now.saturating_sub(ts) > config.timestamp_before_max_ms;
    if !too_new(info.max_timestamp) && config.timestamp_before_max_ms == i64::MAX {
        return Ok(());
    }
    let bad = |ts: i64| {
        format!(
            "timestamp {ts} is out of range (message.timestamp.after.max.ms = {}, before.max.ms = {})",
            config.timestamp_after_max_ms, config.timestamp_before_max_ms
        )
    };
    let offending = offending_records(batch, |r| {
        (too_new(r.timestamp) || too_old(r.timestamp)).then(|| bad(r.timestamp))
    })?;
    if offending.is_empty() {
        return Ok(());
    }
    Err(Rejected::records(
        ResponseError::InvalidTimestamp,
        offending,
    ))
}

/// Each record of `batch` that `check` finds wrong, as (index in the batch, reason).
fn offending_records(
    batch: &[u8],
    check: impl Fn(&records::RecordInfo<'_>) -> Option<String>,
) -> Result<Vec<(i32, String)>, Rejected> {
    let corrupt =
        |e: RecordError| Rejected::from((ResponseError::CorruptMessage, Some(e.to_string())));
    let recs = records::records(batch, records::DEFAULT_DECOMPRESS_LIMIT).map_err(corrupt)?;
    let mut out = Vec::new();
    for (index, r) in recs.iter().enumerate() {
        let r = r.map_err(corrupt)?;
        if let Some(why) = check(&r) {
            out.push((i32::try_from(index).unwrap_or(i32::MAX), why));
        }
    }
    Ok(out)
}

/// A batch whose maxTimestamp is below its baseTimestamp cannot be right: old sarama versions
/// leave it at -1. Kafka's validator recomputes it from the records, and the time index and
/// ListOffsets-by-time depend on it, so such batches — and only they — are decoded here, then
/// stored with the true maximum and a fresh CRC.
fn repair_max_timestamp(
    batch: &bytes::Bytes,
) -> Result<(bytes::Bytes, records::BatchInfo), Failure> {
    let corrupt = |e: RecordError| (ResponseError::CorruptMessage, Some(e.to_string()));
    let recs = records::records(batch, records::DEFAULT_DECOMPRESS_LIMIT).map_err(corrupt)?;
    let mut max = i64::MIN;
    for r in recs.iter() {
        max = max.max(r.map_err(corrupt)?.timestamp);
    }
    let mut fixed = batch.to_vec();
    records::set_max_timestamp(&mut fixed, max);
    let info = records::validate_produce_batch(&fixed, usize::MAX).map_err(corrupt)?;
    Ok((bytes::Bytes::from(fixed), info))
}

/// INVALID_RECORD, naming each keyless record, if any record of `batch` has a null key.
fn reject_keyless(batch: &[u8]) -> Result<(), Rejected> {
    let offending = offending_records(batch, |r| {
        r.key
            .is_none()
            .then(|| "compacted topic cannot accept a record without a key".to_string())
    })?;
    if offending.is_empty() {
        return Ok(());
    }
    Err(Rejected::records(ResponseError::InvalidRecord, offending))
}
