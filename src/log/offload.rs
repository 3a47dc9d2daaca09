//! Log writes for async callers, run on tokio's blocking pool.
//!
//! An append is a write into the page cache (the fsync comes later, from the flusher), but it is
//! still a system call on a file that can stall behind writeback or a full disk; the
//! coordinators, which are async, hand it to the blocking pool rather than doing it on a runtime
//! worker that also serves other connections.

use std::sync::Arc;

use bytes::Bytes;

use super::{AppendOutcome, LogError, PartitionLog};
use crate::records::build::MarkerKind;
use crate::records::BatchInfo;

/// A blocking-pool task that did not finish (the runtime is shutting down): the write may or
/// may not have happened, which callers already handle as for any failed append.
fn lost(e: tokio::task::JoinError) -> LogError {
    LogError::Io(std::io::Error::other(format!("log write task lost: {e}")))
}

/// [`PartitionLog::append`] on the blocking pool.
pub async fn append(
    log: Arc<PartitionLog>,
    batch: Bytes,
    info: BatchInfo,
    leader_epoch: crate::common::LeaderEpoch,
) -> Result<AppendOutcome, LogError> {
    tokio::task::spawn_blocking(move || log.append(&batch, &info, leader_epoch))
        .await
        .map_err(lost)?
}

/// [`PartitionLog::append_txn_marker`] on the blocking pool.
pub async fn append_txn_marker(
    log: Arc<PartitionLog>,
    producer_id: crate::common::ProducerId,
    producer_epoch: crate::common::ProducerEpoch,
    kind: MarkerKind,
    coordinator_epoch: i32,
) -> Result<AppendOutcome, LogError> {
    tokio::task::spawn_blocking(move || {
        log.append_txn_marker(producer_id, producer_epoch, kind, coordinator_epoch)
    })
    .await
    .map_err(lost)?
}
