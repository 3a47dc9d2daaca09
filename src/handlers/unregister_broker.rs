//! UnregisterBroker (key 64): removes a broker's registration for good (a broker that was
//! decommissioned). Its partitions stay placed on it, and show as offline, until they are
//! reassigned. Committed through the metadata quorum like every admin write; a broker that
//! starts again registers anew.

use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{UnregisterBrokerRequest, UnregisterBrokerResponse};

use super::str_bytes;
use crate::broker::BrokerContext;
use crate::common::NodeId;

pub fn handle(
    ctx: &Arc<BrokerContext>,
    request: UnregisterBrokerRequest,
    _version: i16,
) -> UnregisterBrokerResponse {
    let id = NodeId(request.broker_id.0);
    let failed = |error: ResponseError, message: String| {
        UnregisterBrokerResponse::default()
            .with_error_code(error.code())
            .with_error_message(Some(str_bytes(message)))
    };
    match ctx.metadata.unregister_broker(id) {
        Ok(true) => {
            tracing::info!(broker = %id, "unregistered broker");
            UnregisterBrokerResponse::default()
        }
        Ok(false) => failed(
            ResponseError::BrokerIdNotRegistered,
            format!("broker {id} is not registered"),
        ),
        Err(e) => failed(super::errors::metadata_error(&e), e.to_string()),
    }
}
