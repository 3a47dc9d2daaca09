//! InitProducerId (key 22): producer ids for idempotent and transactional producers. Ids come
//! from the metadata store and are never reused, even across restarts. An idempotent producer
//! that presents its current id and epoch (KIP-360, v3+) gets the epoch bumped, and starts its
//! sequences at 0. A transactional producer (a `transactional_id`) is served by the
//! transaction coordinator, which fences older instances of the same id by bumping its epoch.

use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{InitProducerIdRequest, InitProducerIdResponse, ProducerId};

use crate::broker::BrokerContext;
use crate::protocol::Reply;

fn failed(error: ResponseError) -> InitProducerIdResponse {
    InitProducerIdResponse::default()
        .with_producer_id(ProducerId(-1))
        .with_producer_epoch(-1)
        .with_error_code(error.code())
}

pub fn handle(
    ctx: &Arc<BrokerContext>,
    request: InitProducerIdRequest,
    version: i16,
) -> Reply<InitProducerIdResponse> {
    let (current_id, current_epoch) = (request.producer_id.0, request.producer_epoch);
    let Some(transactional_id) = request.transactional_id.as_ref().map(|t| t.0.to_string()) else {
        return Reply::Now(idempotent(ctx, current_id, current_epoch));
    };
    // KIP-360: both or neither (Kafka refuses one without the other).
    if version >= 3 && ((current_id >= 0) != (current_epoch >= 0)) {
        return Reply::Now(failed(ResponseError::InvalidRequest));
    }
    let expected = (version >= 3 && current_id >= 0).then_some((current_id, current_epoch));
    let timeout_ms = request.transaction_timeout_ms;
    // First transactional use creates `__transaction_state` (file I/O and fsyncs): this runs on
    // the blocking pool (see `protocol::run_blocking`), so it happens here, before the async
    // part (FindCoordinator usually did it already).
    if let Err(e) = ctx.txns.ensure_topic(ctx) {
        tracing::error!("cannot create the transaction state topic: {e}");
        return Reply::Now(failed(super::errors::store_error(&e)));
    }
    if let Err(e) = super::coordinator::check_transaction(ctx, &transactional_id) {
        return Reply::Now(failed(e));
    }
    let ctx = ctx.clone();
    Reply::Later(Box::pin(async move {
        match ctx
            .txns
            .init_producer_id(&ctx, &transactional_id, timeout_ms, expected)
            .await
        {
            Ok((id, epoch)) => InitProducerIdResponse::default()
                .with_producer_id(ProducerId(id))
                .with_producer_epoch(epoch),
            // v4 added PRODUCER_FENCED.
            Err(e) => failed(super::errors::txn_error(e, version, 4)),
        }
    }))
}

/// The idempotent (non-transactional) path.
fn idempotent(ctx: &BrokerContext, current_id: i64, current_epoch: i16) -> InitProducerIdResponse {
    let response = InitProducerIdResponse::default()
        .with_producer_id(ProducerId(-1))
        .with_producer_epoch(-1);
    if current_id >= 0 && current_epoch >= 0 {
        if !ctx
            .metadata
            .producer_id_was_issued(crate::common::ProducerId(current_id))
        {
            return response.with_error_code(ResponseError::InvalidProducerIdMapping.code());
        }
        if current_epoch < i16::MAX - 1 {
            return response
                .with_producer_id(ProducerId(current_id))
                .with_producer_epoch(current_epoch + 1);
        }
        // Epoch exhausted: fall through to a fresh id.
    }
    match ctx.metadata.next_producer_id() {
        Ok(id) => response
            .with_producer_id(ProducerId(id.get()))
            .with_producer_epoch(0),
        Err(e) => {
            tracing::error!("cannot allocate a producer id: {e}");
            response.with_error_code(super::errors::metadata_error(&e).code())
        }
    }
}
