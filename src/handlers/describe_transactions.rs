//! DescribeTransactions (key 65): the coordinator's view of transactional ids — state (Kafka's
//! names), timeout, start time, producer id and epoch, and the partitions in the transaction.
//! An unknown id answers TRANSACTIONAL_ID_NOT_FOUND, as Kafka (`kafka-transactions.sh
//! describe`).

use std::collections::BTreeMap;
use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_transactions_response::{TopicData, TransactionState};
use kafka_protocol::messages::{
    DescribeTransactionsRequest, DescribeTransactionsResponse, ProducerId, TopicName,
};

use super::str_bytes;
use crate::broker::BrokerContext;

pub fn handle(
    ctx: &Arc<BrokerContext>,
    request: DescribeTransactionsRequest,
    _version: i16,
) -> DescribeTransactionsResponse {
    let states = request
        .transactional_ids
        .into_iter()
        .map(|id| {
            let answer = TransactionState::default().with_transactional_id(id.clone());
            if let Err(e) = super::coordinator::check_transaction(ctx, id.0.as_str()) {
                return answer
                    .with_error_code(e.code())
                    .with_transaction_state(str_bytes(String::new()))
                    .with_producer_id(ProducerId(-1))
                    .with_producer_epoch(-1)
                    .with_transaction_start_time_ms(-1);
            }
            let Some(d) = ctx.txns.describe(id.0.as_str()) else {
                return answer
                    .with_error_code(ResponseError::TransactionalIdNotFound.code())
                    .with_transaction_state(str_bytes(String::new()))
                    .with_producer_id(ProducerId(-1))
                    .with_producer_epoch(-1)
                    .with_transaction_start_time_ms(-1);
            };
            let mut by_topic: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
            for (topic, p) in &d.partitions {
                by_topic.entry(topic).or_default().push(*p);
            }
            let topics = by_topic
                .into_iter()
                .map(|(t, ps)| {
                    TopicData::default()
                        .with_topic(TopicName(str_bytes(t.to_string())))
                        .with_partitions(ps)
                })
                .collect();
            answer
                .with_transaction_state(str_bytes(d.state.name().to_string()))
                .with_transaction_timeout_ms(d.timeout_ms)
                .with_transaction_start_time_ms(d.start_ms)
                .with_producer_id(ProducerId(d.producer_id))
                .with_producer_epoch(d.producer_epoch)
                .with_topics(topics)
        })
        .collect();
    DescribeTransactionsResponse::default().with_transaction_states(states)
}
