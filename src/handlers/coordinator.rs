//! Which broker coordinates a group or a transactional id, decided in one place for
//! FindCoordinator and for every group and transaction request. As in Kafka, the coordinator
//! of a key is the leader of the key's partition of the internal topic (`__consumer_offsets`
//! for groups, `__transaction_state` for transactional ids): its state lives in that
//! partition's log, and the log exists only on the broker the partition is placed on. A request
//! sent to any other broker is refused with NOT_COORDINATOR before any state is touched, so the
//! client finds the coordinator again.

use kafka_protocol::error::ResponseError;

use crate::broker::BrokerContext;
use crate::common::NodeId;
use crate::group::records::{partition_for, OFFSETS_TOPIC};
use crate::txn::records::TXN_TOPIC;

/// Why this broker does not serve a key's coordinator requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotCoordinator {
    /// Another broker leads the key's partition, or none does right now.
    Elsewhere,
    /// This broker leads the partition but its log is not made here yet (the metadata
    /// publisher is catching up): retriable, as Kafka's loading coordinator.
    Loading,
}

/// Where a key's coordinator is, per this broker's metadata image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// The internal topic does not exist yet: nothing is stored for any key anywhere.
    NoTopic,
    /// The leader of the key's partition, if it has a live one.
    Led(Option<NodeId>),
}

/// The coordinator of `key` in internal topic `topic`, per the current image.
pub fn locate(ctx: &BrokerContext, topic: &str, key: &str) -> Location {
    let image = ctx.metadata.image();
    let Some(meta) = image.topic(topic) else {
        return Location::NoTopic;
    };
    let partition = partition_for(key, meta.partitions);
    let leader = image
        .partition_state(meta, partition)
        .and_then(|state| state.leader);
    Location::Led(leader)
}

/// Ok if this broker coordinates `key` of `topic` now.
fn check(ctx: &BrokerContext, topic: &str, key: &str) -> Result<(), NotCoordinator> {
    let image = ctx.metadata.image();
    let Some(meta) = image.topic(topic) else {
        // No broker stores anything for any key yet. The requests that create state make the
        // topic first and then ask again; the others find nothing here, as anywhere.
        return Ok(());
    };
    let partition = partition_for(key, meta.partitions);
    if meta.leader(partition) != Some(ctx.node_id()) {
        return Err(NotCoordinator::Elsewhere);
    }
    match ctx.partition(topic, partition) {
        Some(_) => Ok(()),
        None => Err(NotCoordinator::Loading),
    }
}

/// Ok if this broker coordinates group `group_id`; else the error to answer.
pub fn check_group(ctx: &BrokerContext, group_id: &str) -> Result<(), ResponseError> {
    check(ctx, OFFSETS_TOPIC, group_id).map_err(super::errors::not_coordinator)
}

/// Ok if this broker coordinates transactional id `transactional_id`; else the error to answer.
pub fn check_transaction(ctx: &BrokerContext, transactional_id: &str) -> Result<(), ResponseError> {
    check(ctx, TXN_TOPIC, transactional_id).map_err(super::errors::not_coordinator)
}
