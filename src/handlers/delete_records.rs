//! DeleteRecords (key 21, v0–2): moves each partition's log start offset up to the requested
//! offset (-1 = the high watermark), deletes the segments wholly below it at once and
//! checkpoints the new log start offsets before answering, so a restart never regresses them.

use crate::common::Offset;
use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::delete_records_response::{
    DeleteRecordsPartitionResult, DeleteRecordsTopicResult,
};
use kafka_protocol::messages::{DeleteRecordsRequest, DeleteRecordsResponse};

use crate::broker::BrokerContext;

pub fn handle(
    ctx: &Arc<BrokerContext>,
    request: DeleteRecordsRequest,
    _version: i16,
) -> DeleteRecordsResponse {
    let mut moved = false;
    let topics = request
        .topics
        .into_iter()
        .map(|topic| {
            let partitions = topic
                .partitions
                .iter()
                .map(|p| {
                    let result = DeleteRecordsPartitionResult::default()
                        .with_partition_index(p.partition_index);
                    let outcome = ctx
                        .partition(topic.name.0.as_str(), p.partition_index)
                        .ok_or(ResponseError::UnknownTopicOrPartition)
                        .and_then(|log| {
                            log.delete_records_before(Offset(p.offset))
                                .map_err(|e| super::errors::log_error(&e))
                        });
                    match outcome {
                        Ok(low) => {
                            moved = true;
                            result.with_low_watermark(low.get())
                        }
                        Err(e) => result.with_error_code(e.code()).with_low_watermark(-1),
                    }
                })
                .collect();
            DeleteRecordsTopicResult::default()
                .with_name(topic.name)
                .with_partitions(partitions)
        })
        .collect();
    if moved {
        if let Err(e) = ctx.logs.checkpoint() {
            tracing::error!("cannot checkpoint log start offsets after DeleteRecords: {e}");
        }
    }
    DeleteRecordsResponse::default().with_topics(topics)
}
