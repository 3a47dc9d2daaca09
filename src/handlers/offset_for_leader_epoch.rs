//! OffsetForLeaderEpoch (key 23): clients validate their position after a leader change
//! (KIP-320), and followers find where their log diverges from the leader's (KIP-101/279):
//! the end offset of the largest epoch at or below the one asked for, from the leader's epoch
//! cache (`leader-epoch-checkpoint`).

use std::sync::Arc;

use kafka_protocol::messages::offset_for_leader_epoch_response::{
    EpochEndOffset, OffsetForLeaderTopicResult,
};
use kafka_protocol::messages::{OffsetForLeaderEpochRequest, OffsetForLeaderEpochResponse};

use super::check_leader_epoch;
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
                    let led = match ctx.led_partition(&image, topic.topic.0.as_str(), p.partition) {
                        Ok(led) => led,
                        Err(why) => {
                            return answer
                                .with_error_code(why.error().code())
                                .with_leader_epoch(-1)
                                .with_end_offset(-1)
                        }
                    };
                    if let Err(e) = check_leader_epoch(p.current_leader_epoch, led.leader_epoch) {
                        return answer
                            .with_error_code(e.code())
                            .with_leader_epoch(-1)
                            .with_end_offset(-1);
                    }
                    match led.log.end_offset_for_epoch(p.leader_epoch) {
                        Some((epoch, end)) if p.leader_epoch >= 0 => {
                            answer.with_leader_epoch(epoch).with_end_offset(end.get())
                        }
                        // An epoch below every epoch of this log (or none asked): Kafka answers
                        // UNDEFINED_EPOCH(_OFFSET).
                        _ => answer.with_leader_epoch(-1).with_end_offset(-1),
                    }
                })
                .collect();
            OffsetForLeaderTopicResult::default()
                .with_topic(topic.topic)
                .with_partitions(partitions)
        })
        .collect();
    OffsetForLeaderEpochResponse::default().with_topics(topics)
}
