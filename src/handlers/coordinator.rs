//! Which broker coordinates a group or a transactional id, decided in one place for
//! FindCoordinator and for every group and transaction request, and the coordinators' share of
//! the metadata publisher's work. As in Kafka, the coordinator of a key is the leader of the
//! key's partition of the internal topic (`__consumer_offsets` for groups,
//! `__transaction_state` for transactional ids): its state lives in that partition's log. A
//! request sent to any other broker is refused with NOT_COORDINATOR before any state is
//! touched, so the client finds the coordinator again; one sent while the leader is still
//! loading the partition gets COORDINATOR_LOAD_IN_PROGRESS.
//!
//! [`sync_coordinators`] is Kafka's `onElection` / `onResignation`: after each metadata change
//! (and at start-up) it loads the internal partitions this broker has come to lead and unloads
//! those it no longer leads (or now leads at another leader epoch, which another broker may
//! have written meanwhile).

use std::collections::BTreeMap;
use std::sync::Arc;

use kafka_protocol::error::ResponseError;

use crate::broker::BrokerContext;
use crate::common::{LeaderEpoch, NodeId};
use crate::group::records::{partition_for, OFFSETS_TOPIC};
use crate::internal_topic::{led_partitions, PartitionLoad, Serving, StoreError};
use crate::metadata::MetadataImage;
use crate::txn::records::TXN_TOPIC;

/// Why this broker does not serve a key's coordinator requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotCoordinator {
    /// Another broker leads the key's partition, or none does right now.
    Elsewhere,
    /// This broker leads the partition but has not loaded it yet (the metadata publisher is
    /// catching up, or the log is being read): retriable, as Kafka's loading coordinator.
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

/// Ok if this broker coordinates `key` of `topic` now: it leads the key's partition in the
/// current image and its coordinator has loaded that partition at the image's leader epoch.
fn check(ctx: &BrokerContext, topic: &str, key: &str) -> Result<(), NotCoordinator> {
    let image = ctx.metadata.image();
    let Some(meta) = image.topic(topic) else {
        // No broker stores anything for any key yet. The requests that create state make the
        // topic first and then ask again; the others find nothing here, as anywhere.
        return Ok(());
    };
    let partition = partition_for(key, meta.partitions);
    let Some(placement) = meta.placement(partition) else {
        return Err(NotCoordinator::Elsewhere);
    };
    if placement.leader != ctx.node_id() {
        return Err(NotCoordinator::Elsewhere);
    }
    let serving = if topic == OFFSETS_TOPIC {
        ctx.groups.serving(key)
    } else {
        ctx.txns.serving(key)
    };
    match serving {
        Serving::Yes(Some(epoch)) if epoch == placement.leader_epoch => Ok(()),
        // Not taken over yet, or taken over at an older epoch and about to be reloaded.
        Serving::Yes(_) | Serving::Loading | Serving::No => Err(NotCoordinator::Loading),
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

/// A partition that could not be loaded by [`sync_coordinators`]; it stays unserved (its keys
/// answer COORDINATOR_LOAD_IN_PROGRESS here) until a later call loads it.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error("consumer groups: {0}")]
    Groups(StoreError),
    #[error("transactions: {0}")]
    Transactions(StoreError),
}

/// The partitions of `owned` to give up: no longer led here, or led at another epoch.
fn lost(owned: &BTreeMap<i32, PartitionLoad>, led: &BTreeMap<i32, LeaderEpoch>) -> Vec<i32> {
    owned
        .iter()
        .filter(|(p, state)| {
            let (PartitionLoad::Loading(epoch) | PartitionLoad::Loaded(epoch)) = state;
            led.get(p) != Some(epoch)
        })
        .map(|(p, _)| *p)
        .collect()
}

/// [`sync_coordinators_with`] the current metadata image.
pub async fn sync_coordinators(ctx: &Arc<BrokerContext>) -> Result<(), SyncError> {
    let image = ctx.metadata.image();
    sync_coordinators_with(ctx, &image).await
}

/// Makes both coordinators serve exactly the internal partitions this broker leads in `image`:
/// unloads the ones lost (Kafka's `onResignation`), then loads the ones gained
/// (`onElection`), groups before transactions, since completing a transaction found prepared
/// applies its offsets to the groups. Call it after every applied metadata change, once the
/// partition logs and their replication roles match `image` (the same image: a partition must
/// not be loaded while its log is still following another leader), and at start-up before
/// serving. Loads run one after another; a partition whose load fails stays unserved (its keys
/// answer COORDINATOR_LOAD_IN_PROGRESS) and the first failure is returned; the next call
/// retries it.
pub async fn sync_coordinators_with(
    ctx: &Arc<BrokerContext>,
    image: &MetadataImage,
) -> Result<(), SyncError> {
    let led_offsets = led_partitions(image, ctx.node_id(), OFFSETS_TOPIC);
    let led_txns = led_partitions(image, ctx.node_id(), TXN_TOPIC);
    for p in lost(&ctx.txns.owned_partitions(), &led_txns) {
        ctx.txns.unload_partition(p);
    }
    for p in lost(&ctx.groups.owned_partitions(), &led_offsets) {
        ctx.groups.unload_partition(p);
    }
    let mut first_error = None;
    let owned = ctx.groups.owned_partitions();
    let gained: Vec<(i32, LeaderEpoch)> = led_offsets
        .into_iter()
        .filter(|(p, _)| !owned.contains_key(p))
        .collect();
    if !gained.is_empty() {
        let c = Arc::clone(ctx);
        // Replaying a log is file I/O: off the runtime.
        let loaded = tokio::task::spawn_blocking(move || {
            let mut first = None;
            for (p, epoch) in gained {
                if let Err(e) = c.groups.load_partition(c.as_ref(), p, epoch) {
                    tracing::warn!(partition = p, "cannot load consumer groups: {e}");
                    first.get_or_insert(e);
                }
            }
            first
        })
        .await
        .unwrap_or_else(|e| Some(StoreError::Log(std::io::Error::other(e).into())));
        if let Some(e) = loaded {
            first_error = Some(SyncError::Groups(e));
        }
    }
    let owned = ctx.txns.owned_partitions();
    for (p, epoch) in led_txns {
        if owned.contains_key(&p) {
            continue;
        }
        if let Err(e) = ctx.txns.load_partition(ctx.as_ref(), p, epoch).await {
            tracing::warn!(partition = p, "cannot load transactions: {e}");
            first_error.get_or_insert(SyncError::Transactions(e));
        }
    }
    match first_error {
        Some(e) => Err(e),
        None => Ok(()),
    }
}
