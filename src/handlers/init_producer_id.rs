//! InitProducerId (key 22): producer ids for idempotent producers. Ids come from the metadata
//! store and are never reused, even across restarts. An idempotent producer that presents its
//! current id and epoch (KIP-360, v3+) gets the epoch bumped, and starts its sequences at 0.

use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{InitProducerIdRequest, InitProducerIdResponse, ProducerId};

use crate::broker::BrokerContext;

pub fn handle(
    ctx: &Arc<BrokerContext>,
    request: InitProducerIdRequest,
    _version: i16,
) -> InitProducerIdResponse {
    let response = InitProducerIdResponse::default()
        .with_producer_id(ProducerId(-1))
        .with_producer_epoch(-1);
    if request.transactional_id.is_some() {
        // Transactions need a coordinator that does not exist yet; the transactional APIs are
        // not advertised, so a client reaching this asked for something unavailable.
        tracing::info!(
            "InitProducerId with a transactional id: transactions are not supported yet"
        );
        return response.with_error_code(ResponseError::InvalidRequest.code());
    }
    let (current_id, current_epoch) = (request.producer_id.0, request.producer_epoch);
    if current_id >= 0 && current_epoch >= 0 {
        if !ctx.metadata.producer_id_was_issued(current_id) {
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
            .with_producer_id(ProducerId(id))
            .with_producer_epoch(0),
        Err(e) => {
            tracing::error!("cannot allocate a producer id: {e}");
            response.with_error_code(ResponseError::KafkaStorageError.code())
        }
    }
}
