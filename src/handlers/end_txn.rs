//! EndTxn (key 26): commits or aborts a producer's transaction. The coordinator persists
//! PrepareCommit/PrepareAbort, writes a marker to every partition of the transaction (and to
//! the offsets partitions of its TxnOffsetCommits), persists CompleteCommit/CompleteAbort, and
//! only then answers. A retry of a completed EndTxn with the same outcome answers success;
//! while markers are being written, CONCURRENT_TRANSACTIONS (the client retries).

use std::sync::Arc;

use kafka_protocol::messages::{EndTxnRequest, EndTxnResponse, ProducerId};

use crate::broker::BrokerContext;
use crate::protocol::Reply;

pub fn handle(
    ctx: &Arc<BrokerContext>,
    request: EndTxnRequest,
    version: i16,
) -> Reply<EndTxnResponse> {
    // v5 (transactions v2) returns the producer id/epoch; not served, so -1 there.
    let answer = |code: i16| {
        EndTxnResponse::default()
            .with_error_code(code)
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1)
    };
    if let Err(e) = super::coordinator::check_transaction(ctx, request.transactional_id.0.as_str())
    {
        return Reply::Now(answer(e.code()));
    }
    let ctx = ctx.clone();
    Reply::Later(Box::pin(async move {
        let result = ctx
            .txns
            .end_txn(
                &ctx,
                request.transactional_id.0.as_str(),
                request.producer_id.0,
                request.producer_epoch,
                request.committed,
            )
            .await;
        // v2 added PRODUCER_FENCED.
        answer(
            result
                .err()
                .map_or(0, |e| super::errors::txn_error(e, version, 2).code()),
        )
    }))
}
