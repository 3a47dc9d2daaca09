//! FindCoordinator (key 10): this broker coordinates every group (key_type 0) and every
//! transactional id (key_type 1); the internal topic behind each (`__consumer_offsets`,
//! `__transaction_state`) is created on the first lookup. Other types (share groups) are
//! invalid. v0–3 ask for one key, v4+ for a batch (`coordinator_keys`).

use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::{BrokerId, FindCoordinatorRequest, FindCoordinatorResponse};
use kafka_protocol::protocol::StrBytes;

use super::str_bytes;
use crate::broker::BrokerContext;
use crate::group::records::OFFSETS_TOPIC;
use crate::protocol::Reply;
use crate::txn::records::TXN_TOPIC;

const KEY_TYPE_GROUP: i8 = 0;
const KEY_TYPE_TRANSACTION: i8 = 1;

/// The answer for one key: Ok(()) means "this broker".
fn lookup(ctx: &BrokerContext, key: &str, key_type: i8) -> Result<(), (ResponseError, String)> {
    match key_type {
        KEY_TYPE_GROUP if key.is_empty() => Err((
            ResponseError::InvalidRequest,
            "group id must not be empty".to_string(),
        )),
        KEY_TYPE_GROUP => ctx.groups.ensure_topic(ctx).map(|_| ()).map_err(|e| {
            tracing::error!("cannot create {OFFSETS_TOPIC}: {e}");
            (
                super::errors::store_error(&e),
                "the offsets topic is not available".to_string(),
            )
        }),
        KEY_TYPE_TRANSACTION if key.is_empty() => Err((
            ResponseError::InvalidRequest,
            "transactional id must not be empty".to_string(),
        )),
        KEY_TYPE_TRANSACTION => ctx.txns.ensure_topic(ctx).map(|_| ()).map_err(|e| {
            tracing::error!("cannot create {TXN_TOPIC}: {e}");
            (
                super::errors::store_error(&e),
                "the transaction state topic is not available".to_string(),
            )
        }),
        other => Err((
            ResponseError::InvalidRequest,
            format!("unknown key type {other}"),
        )),
    }
}

fn answer(
    ctx: &BrokerContext,
    request: FindCoordinatorRequest,
    version: i16,
) -> FindCoordinatorResponse {
    let host = str_bytes(ctx.config().advertised_host.clone());
    let port = i32::from(ctx.config().advertised_port);
    let node = BrokerId(ctx.node_id().get());
    if version >= 4 {
        let coordinators = request
            .coordinator_keys
            .iter()
            .map(|key| {
                let c = Coordinator::default().with_key(key.clone());
                match lookup(ctx, key.as_str(), request.key_type) {
                    Ok(()) => c
                        .with_node_id(node)
                        .with_host(host.clone())
                        .with_port(port)
                        .with_error_message(None),
                    Err((e, msg)) => c
                        .with_node_id(BrokerId(-1))
                        .with_host(StrBytes::default())
                        .with_port(-1)
                        .with_error_code(e.code())
                        .with_error_message(Some(str_bytes(msg))),
                }
            })
            .collect();
        return FindCoordinatorResponse::default()
            .with_error_message(None)
            .with_coordinators(coordinators);
    }
    let key_type = if version >= 1 {
        request.key_type
    } else {
        KEY_TYPE_GROUP
    };
    let response = FindCoordinatorResponse::default();
    let response = match lookup(ctx, request.key.as_str(), key_type) {
        Ok(()) => response
            .with_node_id(node)
            .with_host(host)
            .with_port(port)
            .with_error_message(None),
        Err((e, msg)) => response
            .with_node_id(BrokerId(-1))
            .with_port(-1)
            .with_error_code(e.code())
            .with_error_message((version >= 1).then(|| str_bytes(msg))),
    };
    if version == 0 {
        response.with_error_message(None)
    } else {
        response
    }
}

pub fn handle(
    ctx: &Arc<BrokerContext>,
    request: FindCoordinatorRequest,
    version: i16,
) -> Reply<FindCoordinatorResponse> {
    let ready = if version >= 1 && request.key_type == KEY_TYPE_TRANSACTION {
        ctx.txns.topic_ready()
    } else {
        ctx.groups.topic_ready()
    };
    if ready {
        return Reply::Now(answer(ctx, request, version));
    }
    // First use: creating the internal topic does file I/O and fsyncs, so leave the runtime.
    let ctx = ctx.clone();
    let keys = request.coordinator_keys.clone();
    Reply::Later(Box::pin(async move {
        let c = ctx.clone();
        match tokio::task::spawn_blocking(move || answer(&c, request, version)).await {
            Ok(r) => r,
            Err(_) => unavailable(keys, version),
        }
    }))
}

/// COORDINATOR_NOT_AVAILABLE for every key (the lookup task died).
fn unavailable(keys: Vec<StrBytes>, version: i16) -> FindCoordinatorResponse {
    let code = ResponseError::CoordinatorNotAvailable.code();
    if version >= 4 {
        let coordinators = keys
            .into_iter()
            .map(|k| {
                Coordinator::default()
                    .with_key(k)
                    .with_node_id(BrokerId(-1))
                    .with_port(-1)
                    .with_error_code(code)
                    .with_error_message(None)
            })
            .collect();
        return FindCoordinatorResponse::default()
            .with_error_message(None)
            .with_coordinators(coordinators);
    }
    FindCoordinatorResponse::default()
        .with_error_code(code)
        .with_node_id(BrokerId(-1))
        .with_port(-1)
        .with_error_message(None)
}
