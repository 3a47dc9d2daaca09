//! AddOffsetsToTxn (key 25): adds the `__consumer_offsets` partition of a consumer group to a
//! producer's transaction, so its TxnOffsetCommit offsets get the transaction's marker (and
//! become committed offsets only if it commits). Creates the offsets topic if needed.

use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{AddOffsetsToTxnRequest, AddOffsetsToTxnResponse};

use super::errors;
use crate::broker::BrokerContext;
use crate::group::records::OFFSETS_TOPIC;
use crate::protocol::Reply;

pub fn handle(
    ctx: &Arc<BrokerContext>,
    request: AddOffsetsToTxnRequest,
    version: i16,
) -> Reply<AddOffsetsToTxnResponse> {
    let ctx = ctx.clone();
    Reply::Later(Box::pin(async move {
        let code = match add(&ctx, &request, version).await {
            Ok(()) => 0,
            Err(e) => e.code(),
        };
        AddOffsetsToTxnResponse::default().with_error_code(code)
    }))
}

async fn add(
    ctx: &Arc<BrokerContext>,
    request: &AddOffsetsToTxnRequest,
    version: i16,
) -> Result<(), ResponseError> {
    super::coordinator::check_transaction(ctx, request.transactional_id.0.as_str())?;
    let group_id = request.group_id.0.to_string();
    let partition = if ctx.groups.topic_ready() {
        ctx.groups.partition_of(ctx, &group_id)
    } else {
        // Creating the offsets topic does file I/O and fsyncs: keep it off the runtime.
        let c = ctx.clone();
        let g = group_id.clone();
        tokio::task::spawn_blocking(move || c.groups.partition_of(&c, &g))
            .await
            .map_err(|_| ResponseError::CoordinatorNotAvailable)?
    }
    .map_err(|e| {
        tracing::error!(group = %group_id, "cannot create {OFFSETS_TOPIC}: {e}");
        errors::store_error(&e)
    })?;
    ctx.txns
        .add_partitions(
            ctx,
            request.transactional_id.0.as_str(),
            request.producer_id.0,
            request.producer_epoch,
            &[(OFFSETS_TOPIC.to_string(), partition)],
        )
        .await
        // v2 added PRODUCER_FENCED.
        .map_err(|e| errors::txn_error(e, version, 2))
}
