//! ListTransactions (key 66): the transactional ids this coordinator knows, filtered as Kafka
//! filters them — by state name (unknown names are echoed back in `unknown_state_filters`), by
//! producer id, from v1 by running longer than `duration_filter` ms, from v2 by a regular
//! expression over the id (`kafka-transactions.sh list`).

use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::list_transactions_response::TransactionState;
use kafka_protocol::messages::{
    ListTransactionsRequest, ListTransactionsResponse, ProducerId, TransactionalId,
};

use super::str_bytes;
use crate::broker::BrokerContext;
use crate::txn::records::TxnStatus;

/// Every state a filter may name.
const STATES: [TxnStatus; 8] = [
    TxnStatus::Empty,
    TxnStatus::Ongoing,
    TxnStatus::PrepareCommit,
    TxnStatus::PrepareAbort,
    TxnStatus::CompleteCommit,
    TxnStatus::CompleteAbort,
    TxnStatus::Dead,
    TxnStatus::PrepareEpochFence,
];

pub fn handle(
    ctx: &Arc<BrokerContext>,
    request: ListTransactionsRequest,
    version: i16,
) -> ListTransactionsResponse {
    let response = ListTransactionsResponse::default();
    let (known, unknown): (Vec<_>, Vec<_>) = request
        .state_filters
        .iter()
        .partition(|f| STATES.iter().any(|s| s.name() == f.as_str()));
    let pattern = match request
        .transactional_id_pattern
        .as_ref()
        .filter(|_| version >= 2)
    {
        Some(p) if !p.is_empty() => match regex::Regex::new(&format!("^(?:{})$", p.as_str())) {
            Ok(r) => Some(r),
            Err(_) => {
                return response.with_error_code(ResponseError::InvalidRegularExpression.code())
            }
        },
        _ => None,
    };
    let duration = if version >= 1 {
        request.duration_filter
    } else {
        -1
    };
    let now = crate::common::now_ms();
    let mut ids = ctx.txns.ids();
    ids.sort();
    let states = ids
        .into_iter()
        .filter_map(|id| {
            let d = ctx.txns.describe(&id)?;
            let state_ok = request.state_filters.is_empty()
                || known.iter().any(|f| f.as_str() == d.state.name());
            let producer_ok = request.producer_id_filters.is_empty()
                || request
                    .producer_id_filters
                    .contains(&ProducerId(d.producer_id));
            let duration_ok = duration < 0 || (d.start_ms >= 0 && now - d.start_ms > duration);
            let pattern_ok = pattern.as_ref().is_none_or(|r| r.is_match(&id));
            (state_ok && producer_ok && duration_ok && pattern_ok).then(|| {
                TransactionState::default()
                    .with_transactional_id(TransactionalId(str_bytes(id)))
                    .with_producer_id(ProducerId(d.producer_id))
                    .with_transaction_state(str_bytes(d.state.name().to_string()))
            })
        })
        .collect();
    response
        .with_unknown_state_filters(unknown.into_iter().cloned().collect())
        .with_transaction_states(states)
}
