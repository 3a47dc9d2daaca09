//! DescribeProducers (key 61): the active producers of partitions — id, epoch, last sequence
//! and the first offset of each one's open transaction (`kafka-transactions.sh
//! describe-producers`, the tool for finding hanging transactions).

use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_producers_response::{
    PartitionResponse, ProducerState, TopicResponse,
};
use kafka_protocol::messages::{DescribeProducersRequest, DescribeProducersResponse, ProducerId};

use crate::broker::BrokerContext;

pub fn handle(
    ctx: &Arc<BrokerContext>,
    request: DescribeProducersRequest,
    _version: i16,
) -> DescribeProducersResponse {
    let topics = request
        .topics
        .into_iter()
        .map(|t| {
            let partitions = t
                .partition_indexes
                .iter()
                .map(|&p| {
                    let answer = PartitionResponse::default().with_partition_index(p);
                    let Some(log) = ctx.partition(t.name.0.as_str(), p) else {
                        return answer
                            .with_error_code(ResponseError::UnknownTopicOrPartition.code());
                    };
                    let producers = log
                        .active_producers()
                        .into_iter()
                        .map(|e| {
                            ProducerState::default()
                                .with_producer_id(ProducerId(e.producer_id))
                                .with_producer_epoch(i32::from(e.epoch))
                                .with_last_sequence(e.last_sequence)
                                .with_last_timestamp(e.timestamp)
                                .with_coordinator_epoch(e.coordinator_epoch)
                                .with_current_txn_start_offset(e.current_txn_first_offset)
                        })
                        .collect();
                    answer.with_active_producers(producers)
                })
                .collect();
            TopicResponse::default()
                .with_name(t.name)
                .with_partitions(partitions)
        })
        .collect();
    DescribeProducersResponse::default().with_topics(topics)
}
