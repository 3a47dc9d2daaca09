//! ListOffsets (key 2): earliest, latest, max-timestamp, and first offset at or after a time.

use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::{ListOffsetsRequest, ListOffsetsResponse};

use super::check_leader_epoch;
use crate::broker::BrokerContext;
use crate::log::PartitionLog;

/// Special timestamps (ListOffsetsRequest's sentinel values).
const LATEST: i64 = -1;
const EARLIEST: i64 = -2;
const MAX_TIMESTAMP: i64 = -3;
const EARLIEST_LOCAL: i64 = -4;
const LATEST_TIERED: i64 = -5;
const EARLIEST_PENDING_UPLOAD: i64 = -6;

pub fn handle(
    ctx: &Arc<BrokerContext>,
    request: ListOffsetsRequest,
    version: i16,
) -> ListOffsetsResponse {
    // leader_epoch exists from v4; the codec rejects a non-default value below that.
    let epoch = |e: i32| if version >= 4 { e } else { -1 };
    // isolation_level exists from v2; 1 = read_committed.
    let read_committed = version >= 2 && request.isolation_level == 1;
    // One image for the whole request, so its partitions' answers agree.
    let image = ctx.metadata.image();
    let topics = request
        .topics
        .into_iter()
        .map(|topic| {
            let partitions = topic
                .partitions
                .iter()
                .map(|p| {
                    let answer = ListOffsetsPartitionResponse::default()
                        .with_partition_index(p.partition_index);
                    let found = ctx
                        .led_partition(&image, topic.name.0.as_str(), p.partition_index)
                        .map_err(|why| why.error())
                        .and_then(|led| {
                            check_leader_epoch(p.current_leader_epoch, led.leader_epoch)?;
                            // KIP-207: until the high watermark has reached the offset this
                            // leadership began at, it may be below what the previous leader
                            // showed; answering then could move a consumer's view backwards.
                            if led.log.high_watermark().get() < led.state.epoch_start_offset {
                                return Err(ResponseError::OffsetNotAvailable);
                            }
                            lookup(&led.log, p.timestamp, read_committed)
                                .map(|found| (found, led.leader_epoch.get()))
                        });
                    match found {
                        Ok(((timestamp, offset), leader_epoch)) => answer
                            .with_timestamp(timestamp)
                            .with_offset(offset)
                            .with_leader_epoch(epoch(leader_epoch)),
                        Err(e) => answer
                            .with_error_code(e.code())
                            .with_timestamp(-1)
                            .with_offset(-1)
                            .with_leader_epoch(-1),
                    }
                })
                .collect();
            ListOffsetsTopicResponse::default()
                .with_name(topic.name)
                .with_partitions(partitions)
        })
        .collect();
    ListOffsetsResponse::default().with_topics(topics)
}

/// (timestamp, offset) for one partition. "Latest" is the last stable offset for
/// read_committed (the high watermark while no transaction is open).
fn lookup(
    log: &PartitionLog,
    timestamp: i64,
    read_committed: bool,
) -> Result<(i64, i64), ResponseError> {
    let storage = |e: crate::log::LogError| super::errors::log_error(&e);
    Ok(match timestamp {
        LATEST if read_committed => (-1, log.last_stable_offset().get()),
        LATEST => (-1, log.high_watermark().get()),
        // No tiered storage: the earliest local offset is the earliest offset, and nothing is
        // tiered or waiting for upload, which Kafka answers with offset -1.
        EARLIEST | EARLIEST_LOCAL => (-1, log.log_start_offset().get()),
        LATEST_TIERED | EARLIEST_PENDING_UPLOAD => (-1, -1),
        MAX_TIMESTAMP => log.max_timestamp().map_err(storage)?.unwrap_or((-1, -1)),
        t if t >= 0 => log
            .offset_for_timestamp(t)
            .map_err(storage)?
            .map(|(o, ts)| (ts, o))
            .unwrap_or((-1, -1)),
        _ => return Err(ResponseError::InvalidRequest),
    })
}
