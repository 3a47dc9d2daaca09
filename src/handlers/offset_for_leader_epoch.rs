//! OffsetForLeaderEpoch (key 23): clients validate their position after a leader change
//! (KIP-320). One broker, one epoch: the end offset of epoch 0 is the log end offset.

use std::sync::Arc;

use kafka_protocol::messages::offset_for_leader_epoch_response::{
    EpochEndOffset, OffsetForLeaderTopicResult,
};
use kafka_protocol::messages::{OffsetForLeaderEpochRequest, OffsetForLeaderEpochResponse};

use super::{check_leader_epoch, LEADER_EPOCH};
use crate::broker::BrokerContext;

pub fn handle(
    ctx: &Arc<BrokerContext>,
    request: OffsetForLeaderEpochRequest,
    _version: i16,
) -> OffsetForLeaderEpochResponse {
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
                    let answer = EpochEndOffset::default().with_partition(p.partition);
                    let log = match ctx.led_partition(&image, topic.topic.0.as_str(), p.partition) {
                        Ok(log) => log,
                        Err(why) => {
                            return answer
                                .with_error_code(why.error().code())
                                .with_leader_epoch(-1)
                                .with_end_offset(-1)
                        }
                    };
                    if let Err(e) = check_leader_epoch(p.current_leader_epoch) {
                        return answer
                            .with_error_code(e.code())
                            .with_leader_epoch(-1)
                            .with_end_offset(-1);
                    }
                    if p.leader_epoch > LEADER_EPOCH || p.leader_epoch < 0 {
                        // An epoch this log never had: Kafka answers UNDEFINED_EPOCH(_OFFSET).
                        return answer.with_leader_epoch(-1).with_end_offset(-1);
                    }
                    answer
                        .with_leader_epoch(LEADER_EPOCH)
                        .with_end_offset(log.log_end_offset().get())
                })
                .collect();
            OffsetForLeaderTopicResult::default()
                .with_topic(topic.topic)
                .with_partitions(partitions)
        })
        .collect();
    OffsetForLeaderEpochResponse::default().with_topics(topics)
}
