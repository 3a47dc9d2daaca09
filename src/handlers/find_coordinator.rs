//! FindCoordinator (key 10): the coordinator of a group (key_type 0) or a transactional id
//! (key_type 1) is the broker leading the key's partition of the internal topic behind it
//! (`__consumer_offsets`, `__transaction_state`; see `coordinator`), named with the host and
//! port it registered. The topic is created on the first lookup (through the metadata quorum,
//! its partitions placed over the live brokers). A partition without a live leader answers
//! COORDINATOR_NOT_AVAILABLE. Other key types (share groups) are invalid. v0–3 ask for one
//! key, v4+ for a batch (`coordinator_keys`).

use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::{BrokerId, FindCoordinatorRequest, FindCoordinatorResponse};
use kafka_protocol::protocol::StrBytes;

use super::coordinator::{locate, Location};
use super::str_bytes;
use crate::broker::BrokerContext;
use crate::group::records::OFFSETS_TOPIC;
use crate::protocol::Reply;
use crate::txn::records::TXN_TOPIC;

const KEY_TYPE_GROUP: i8 = 0;
const KEY_TYPE_TRANSACTION: i8 = 1;

/// A coordinator as named to the client: node id, host, port.
struct Found {
    node: i32,
    host: StrBytes,
    port: i32,
}

/// The coordinator of one key, or the error and message to answer.
fn lookup(ctx: &BrokerContext, key: &str, key_type: i8) -> Result<Found, (ResponseError, String)> {
    let topic = match key_type {
        KEY_TYPE_GROUP if key.is_empty() => {
            return Err((
                ResponseError::InvalidRequest,
                "group id must not be empty".to_string(),
            ))
        }
        KEY_TYPE_GROUP => ctx.groups.ensure_topic(ctx).map(|_| OFFSETS_TOPIC),
        KEY_TYPE_TRANSACTION if key.is_empty() => {
            return Err((
                ResponseError::InvalidRequest,
                "transactional id must not be empty".to_string(),
            ))
        }
        KEY_TYPE_TRANSACTION => ctx.txns.ensure_topic(ctx).map(|_| TXN_TOPIC),
        other => {
            return Err((
                ResponseError::InvalidRequest,
                format!("unknown key type {other}"),
            ))
        }
    };
    let topic = topic.map_err(|e| {
        tracing::error!("cannot create the internal topic for key type {key_type}: {e}");
        (
            super::errors::store_error(&e),
            "the coordinator's internal topic is not available".to_string(),
        )
    })?;
    let unavailable = || {
        (
            ResponseError::CoordinatorNotAvailable,
            format!("no live leader for the partition of {topic} holding this key"),
        )
    };
    let Location::Led(Some(leader)) = locate(ctx, topic, key) else {
        return Err(unavailable());
    };
    if leader == ctx.node_id() {
        // Ourselves: the address clients were told in the configuration in force.
        let config = ctx.config();
        return Ok(Found {
            node: leader.get(),
            host: str_bytes(config.advertised_host.clone()),
            port: i32::from(config.advertised_port),
        });
    }
    let broker = ctx.live_broker(leader).ok_or_else(unavailable)?;
    Ok(Found {
        node: leader.get(),
        host: str_bytes(broker.host),
        port: i32::from(broker.port),
    })
}

fn answer(
    ctx: &BrokerContext,
    request: FindCoordinatorRequest,
    version: i16,
) -> FindCoordinatorResponse {
    if version >= 4 {
        let coordinators = request
            .coordinator_keys
            .iter()
            .map(|key| {
                let c = Coordinator::default().with_key(key.clone());
                match lookup(ctx, key.as_str(), request.key_type) {
                    Ok(found) => c
                        .with_node_id(BrokerId(found.node))
                        .with_host(found.host)
                        .with_port(found.port)
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
        Ok(found) => response
            .with_node_id(BrokerId(found.node))
            .with_host(found.host)
            .with_port(found.port)
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
