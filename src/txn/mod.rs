//! The transaction coordinator (Kafka transactions v1, no KIP-890): one state machine per
//! transactional id, persisted in the internal compacted topic `__transaction_state` (created
//! on first use, replayed at start), transaction markers written to every partition of a
//! transaction when it ends, and a sweeper that aborts transactions older than their timeout
//! (bumping the epoch, which fences their producer), retries markers that could not be
//! written, and forgets ids idle longer than `transactional.id.expiration.ms`.
//!
//! Concurrency: each id's state sits behind its own std mutex, never held across an `.await`.
//! A transition is decided and its record appended under the lock (so the log order is the
//! transition order), the id is marked busy, and the lock is released while the record is made
//! durable; requests meeting a busy id get CONCURRENT_TRANSACTIONS (clients retry), as Kafka
//! answers while a transition is pending. Ending a transaction keeps the id busy from
//! PrepareCommit/PrepareAbort until CompleteCommit/CompleteAbort is durable, markers included.
//!
//! Markers: one per data partition of the transaction and per `__consumer_offsets` partition
//! of the groups added with AddOffsetsToTxn, written through [`TxnHost::write_markers`]: into
//! the log when this broker leads the partition, else by WriteTxnMarkers to its leader (Kafka's
//! marker channel). A partition's marker counts once it is durable on its leader, whose group
//! coordinator then applies (commit) or drops (abort) the producer's pending transactional
//! offsets. Partitions that could not take their marker (no leader, leadership moving, a
//! broker unreachable) stay in the transaction for the retry; a deleted topic is dropped.
//!
//! The coordinator reaches the broker only through [`TxnHost`] and reports refusals as
//! [`TxnError`]; `handlers::errors` turns those into Kafka codes (per request version).

pub mod error;
pub mod records;
pub mod state;
pub mod verified;

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::sync::watch;

use crate::common::now_ms;
use crate::common::Offset;
use crate::group::GroupHost;
use crate::internal_topic::{InternalTopic, StoreError};
use crate::log::PartitionLog;
use crate::records::build::MarkerKind;
use crate::records::validate_produce_batch;
pub use error::TxnError;
use records::{TxnStatus, TXN_TOPIC};
pub use state::TxnData;

/// The coordinator epoch written into markers. Kafka uses the leader epoch of the
/// `__transaction_state` partition; a single broker never changes leader, so it is constant.
pub const COORDINATOR_EPOCH: i32 = crate::common::LEADER_EPOCH.get();

/// One transactional id: its durable state and whether a transition is in flight.
#[derive(Debug)]
pub struct TxnMeta {
    pub transactional_id: String,
    pub data: TxnData,
    /// A record is being made durable or markers are being written: other requests get
    /// CONCURRENT_TRANSACTIONS, and the sweeper leaves the id alone.
    pub busy: bool,
}

type Handle = Arc<Mutex<TxnMeta>>;

/// All transactional ids of this broker.
pub struct TransactionCoordinator {
    max_timeout_ms: i32,
    cleanup_interval: Duration,
    /// `transactional.id.expiration.ms`.
    expiration_ms: i64,
    txns: Mutex<HashMap<String, Handle>>,
    /// `__transaction_state`, created on first use.
    topic: InternalTopic,
    /// Partitions led here whose transactions other brokers coordinate, verified with them.
    verified: verified::VerifiedPartitions,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Each critical section is a small, self-contained step; a panic in one leaves state worth
    // serving rather than poisoning every later request.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A storage failure, logged with its cause here (the client only learns that it may retry:
/// Kafka maps most append errors to codes that make clients retry).
fn unavailable(what: &str, id: &str, e: impl std::fmt::Display) -> TxnError {
    tracing::error!(transactional_id = id, "{what}: {e}");
    TxnError::StoreUnavailable
}

/// A marker ending one producer's transaction, to be written into partitions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TxnMarker {
    pub producer_id: crate::common::ProducerId,
    pub producer_epoch: crate::common::ProducerEpoch,
    pub kind: MarkerKind,
    /// The epoch of the coordinator writing it (see [`COORDINATOR_EPOCH`]).
    pub coordinator_epoch: i32,
}

/// What became of one partition's marker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MarkerOutcome {
    /// Durable on the partition's leader (its pending offsets completed there).
    Written,
    /// Not written now (no live leader, leadership moving, the leader unreachable or slow):
    /// the partition stays in the transaction and is retried shortly, once metadata may have
    /// moved, as Kafka's marker channel re-queues such partitions.
    Retry(String),
    /// The leader could not write it (a storage error there): the partition stays in the
    /// transaction and the sweeper retries it later.
    Failed(String),
    /// The topic or partition no longer exists: there is nothing left to end there.
    Gone,
}

/// The partitions of a marker write with what became of each.
pub type MarkerResults = Vec<((String, i32), MarkerOutcome)>;

/// What [`TxnHost::write_markers`] returns.
pub type MarkerFuture<'a> = Pin<Box<dyn Future<Output = MarkerResults> + Send + 'a>>;

/// A broker that runs a transaction coordinator: the coordinator, the group coordinator whose
/// pending transactional offsets its markers commit, and what both work through.
pub trait TxnHost: GroupHost {
    /// The broker's transaction coordinator.
    fn txns(&self) -> &TransactionCoordinator;

    /// Writes `marker` into each of `partitions` wherever it is led (here, or at the leader by
    /// WriteTxnMarkers) and reports each one's outcome. Never fails as a whole: a partition
    /// that could not be reached is a [`MarkerOutcome::Retry`].
    fn write_markers(&self, marker: TxnMarker, partitions: Vec<(String, i32)>) -> MarkerFuture<'_>;
}

impl<T: TxnHost + ?Sized> TxnHost for Arc<T> {
    fn txns(&self) -> &TransactionCoordinator {
        (**self).txns()
    }

    fn write_markers(&self, marker: TxnMarker, partitions: Vec<(String, i32)>) -> MarkerFuture<'_> {
        (**self).write_markers(marker, partitions)
    }
}

/// How long markers that could not be written are retried before the transaction's
/// completion is left to the sweeper, and the pause before the first retry (doubled each
/// time): long enough for a leadership change to reach the metadata, short enough that EndTxn
/// still answers within a client's request timeout.
const MARKER_RETRY_WINDOW: Duration = Duration::from_secs(3);
const MARKER_RETRY_BACKOFF: Duration = Duration::from_millis(100);

/// What the caller of [`TransactionCoordinator::transition`] wants done after the write.
#[derive(Clone, Copy, PartialEq, Eq)]
enum AfterWrite {
    /// Install the new state and let other requests in.
    Release,
    /// Install it and stay busy: markers follow.
    StayBusy,
}

impl TransactionCoordinator {
    /// A coordinator with no transactional ids yet; [`TransactionCoordinator::load`] fills it.
    pub fn new(config: &crate::config::Config) -> TransactionCoordinator {
        TransactionCoordinator {
            topic: InternalTopic::new(TXN_TOPIC, config.transaction_state_log_num_partitions),
            max_timeout_ms: config.transaction_max_timeout_ms,
            cleanup_interval: Duration::from_millis(
                config.transaction_abort_timed_out_transaction_cleanup_interval_ms,
            ),
            expiration_ms: config.transactional_id_expiration_ms,
            txns: Mutex::new(HashMap::new()),
            verified: verified::VerifiedPartitions::new(Duration::from_millis(
                u64::try_from(config.transaction_max_timeout_ms).unwrap_or(0),
            )),
        }
    }

    /// The partition count of `__transaction_state`, creating the topic if needed (file I/O
    /// and fsync the first time).
    pub fn ensure_topic(&self, ctx: &dyn TxnHost) -> Result<i32, StoreError> {
        Ok(self.topic.ensure(ctx)?)
    }

    /// True once `__transaction_state` is known to exist with all its partitions.
    pub fn topic_ready(&self) -> bool {
        self.topic.is_ready()
    }

    /// Partitions led here that other brokers' coordinators confirmed to be in a transaction.
    pub fn verified(&self) -> &verified::VerifiedPartitions {
        &self.verified
    }

    /// The largest transaction timeout accepted (`transaction.max.timeout.ms`).
    pub fn max_timeout_ms(&self) -> i32 {
        self.max_timeout_ms
    }

    /// A snapshot of `transactional_id`'s durable state, if known (tests, admin).
    pub fn describe(&self, transactional_id: &str) -> Option<TxnData> {
        let h = lock(&self.txns).get(transactional_id).cloned()?;
        let data = lock(&h).data.clone();
        Some(data)
    }

    /// Every known transactional id.
    pub fn ids(&self) -> Vec<String> {
        lock(&self.txns).keys().cloned().collect()
    }

    fn get(&self, transactional_id: &str) -> Option<Handle> {
        lock(&self.txns).get(transactional_id).cloned()
    }

    /// Appends `data` as `transactional_id`'s record; returns the log and the end offset to
    /// wait on.
    async fn append(
        &self,
        ctx: &dyn TxnHost,
        transactional_id: &str,
        data: &TxnData,
    ) -> Result<(Arc<PartitionLog>, Offset), StoreError> {
        self.append_record(ctx, transactional_id, Some(data)).await
    }

    /// Appends `transactional_id`'s record: its state, or a tombstone (`None`) that makes
    /// compaction and the next replay forget it. The caller owns the id (its `busy` flag), so
    /// records of one id land in the order they were decided without holding its lock here;
    /// the write itself runs on the blocking pool.
    async fn append_record(
        &self,
        ctx: &dyn TxnHost,
        transactional_id: &str,
        data: Option<&TxnData>,
    ) -> Result<(Arc<PartitionLog>, Offset), StoreError> {
        // InitProducerId creates the topic off the runtime before any id has state to write;
        // here this is a lookup.
        let partitions = self.ensure_topic(ctx)?;
        let p = records::partition_for(transactional_id, partitions);
        let log = ctx
            .partition(TXN_TOPIC, p)
            .ok_or(StoreError::MissingPartition(p))?;
        let key = records::key(transactional_id);
        let value = data.map(|d| records::value(&d.to_value()));
        let batch = crate::records::build::uncompressed_batch(
            &[(Some(&key), value.as_deref())],
            now_ms(),
            crate::records::build::Writer::BROKER,
        );
        let info = validate_produce_batch(&batch, usize::MAX)?;
        let outcome =
            crate::log::offload::append(log.clone(), batch, info, crate::common::LEADER_EPOCH)
                .await?;
        Ok((log, outcome.end_offset()))
    }

    /// One transition: under the id's lock, check the client's `producer` (id, epoch) if it
    /// presented one (Kafka checks it before anything else), refuse if busy, let `decide` pick
    /// the next state (`None`: nothing to change, the current state is the answer), append it
    /// and mark the id busy; then, without the lock, wait for durability and install it.
    /// Returns the state in force afterwards.
    async fn transition(
        &self,
        ctx: &dyn TxnHost,
        handle: &Handle,
        after: AfterWrite,
        producer: Option<(i64, i16)>,
        decide: impl FnOnce(&TxnData) -> Result<Option<TxnData>, TxnError>,
    ) -> Result<TxnData, TxnError> {
        let (next, id) = {
            let mut m = lock(handle);
            if let Some((id, epoch)) = producer {
                m.data.check_producer(id, epoch)?;
            }
            if m.busy {
                return Err(TxnError::ConcurrentTransactions);
            }
            let Some(next) = decide(&m.data)? else {
                return Ok(m.data.clone());
            };
            // Busy from here: no other transition of this id starts until this one ends, so
            // the append can happen without the lock and still land in decision order.
            m.busy = true;
            (next, m.transactional_id.clone())
        };
        let (log, end) = match self.append(ctx, &id, &next).await {
            Ok(written) => written,
            Err(e) => {
                lock(handle).busy = false;
                return Err(unavailable("cannot write transaction state", &id, e));
            }
        };
        let durable = log.wait_durable(end).await;
        let mut m = lock(handle);
        match durable {
            Ok(()) => {
                m.data = next.clone();
                m.busy = after == AfterWrite::StayBusy;
                Ok(next)
            }
            Err(e) => {
                m.busy = false;
                Err(unavailable(
                    "transaction state not made durable",
                    &m.transactional_id,
                    e,
                ))
            }
        }
    }

    /// Writes the markers of a transaction in PrepareCommit/PrepareAbort (the id is busy,
    /// owned by the caller), applies or drops its pending offsets, and persists the
    /// CompleteCommit/CompleteAbort state. On failure the id stays in its Prepare state, not
    /// busy, and the sweeper tries again (Kafka retries markers until they are written).
    /// Markers that cannot be written are retried for `retry_window` (zero: one attempt)
    /// before the completion is left to the sweeper.
    async fn complete(
        &self,
        ctx: &dyn TxnHost,
        handle: &Handle,
        retry_window: Duration,
    ) -> Result<(), TxnError> {
        let result = self
            .write_markers_and_complete(ctx, handle, retry_window)
            .await;
        if result.is_err() {
            lock(handle).busy = false;
        }
        result
    }

    async fn write_markers_and_complete(
        &self,
        ctx: &dyn TxnHost,
        handle: &Handle,
        retry_window: Duration,
    ) -> Result<(), TxnError> {
        let (id, data) = {
            let m = lock(handle);
            (m.transactional_id.clone(), m.data.clone())
        };
        let kind = match data.state {
            TxnStatus::PrepareCommit => MarkerKind::Commit,
            TxnStatus::PrepareAbort => MarkerKind::Abort,
            // Nothing to complete (a caller raced with another completion).
            _ => {
                lock(handle).busy = false;
                return Ok(());
            }
        };
        // Every marker is attempted even if one fails; a partition whose marker is durable
        // leaves the (in-memory) set, so a retry writes only the missing ones, as Kafka's
        // marker channel does. Replay after a restart rewrites them all, which is harmless: a
        // marker without an open transaction in a partition ends nothing there.
        let marker = TxnMarker {
            producer_id: crate::common::ProducerId(data.producer_id),
            producer_epoch: crate::common::ProducerEpoch(data.producer_epoch),
            kind,
            coordinator_epoch: COORDINATOR_EPOCH,
        };
        let started = Instant::now();
        let mut backoff = MARKER_RETRY_BACKOFF;
        for attempt in 1.. {
            let pending: Vec<(String, i32)> =
                lock(handle).data.partitions.iter().cloned().collect();
            if pending.is_empty() {
                break;
            }
            let mut retry = Vec::new();
            let mut failed = Vec::new();
            for (tp, outcome) in ctx.write_markers(marker, pending).await {
                match outcome {
                    MarkerOutcome::Written => {}
                    MarkerOutcome::Gone => {
                        // Kafka drops markers for partitions that no longer exist.
                        tracing::warn!(transactional_id = %id, topic = %tp.0, partition = tp.1, "no partition for transaction marker; skipped");
                    }
                    MarkerOutcome::Retry(why) => {
                        retry.push(format!("{}-{}: {why}", tp.0, tp.1));
                        continue;
                    }
                    MarkerOutcome::Failed(why) => {
                        failed.push(format!("{}-{}: {why}", tp.0, tp.1));
                        continue;
                    }
                }
                lock(handle).data.partitions.remove(&tp);
            }
            if !failed.is_empty() {
                // A storage failure does not clear in a moment: the sweeper retries.
                failed.extend(retry);
                return Err(unavailable(
                    "cannot write transaction markers",
                    &id,
                    failed.join("; "),
                ));
            }
            if retry.is_empty() {
                break;
            }
            if started.elapsed() + backoff > retry_window {
                return Err(unavailable(
                    "transaction markers not written (retried later)",
                    &id,
                    retry.join("; "),
                ));
            }
            tracing::debug!(transactional_id = %id, attempt, "transaction markers to retry: {}", retry.join("; "));
            tokio::time::sleep(backoff).await;
            backoff *= 2;
        }
        let next = data.completed(now_ms());
        // The id is busy (owned by this completion), so no lock is needed around the write.
        let (log, end) = self
            .append(ctx, &id, &next)
            .await
            .map_err(|e| unavailable("cannot write transaction state", &id, e))?;
        log.wait_durable(end)
            .await
            .map_err(|e| unavailable("transaction state not made durable", &id, e))?;
        let mut m = lock(handle);
        m.data = next;
        m.busy = false;
        tracing::debug!(transactional_id = %id, outcome = ?kind, "transaction completed");
        Ok(())
    }

    /// Aborts `handle`'s Ongoing transaction on the coordinator's own initiative, bumping the
    /// epoch so the producer that opened it is fenced (transaction timeout, or a new producer
    /// instance calling InitProducerId).
    async fn fence_and_abort(
        &self,
        ctx: &dyn TxnHost,
        handle: &Handle,
        retry_window: Duration,
    ) -> Result<(), TxnError> {
        let now = now_ms();
        self.transition(ctx, handle, AfterWrite::StayBusy, None, |d| {
            if d.state != TxnStatus::Ongoing {
                return Err(TxnError::ConcurrentTransactions);
            }
            Ok(Some(d.prepare_fence_abort(now)))
        })
        .await?;
        self.complete(ctx, handle, retry_window).await
    }

    /// InitProducerId with a transactional id: the (producer id, epoch) the producer must use.
    /// A new id gets a fresh producer id at epoch 0; a known one gets its epoch bumped (a new
    /// producer id once the epoch is exhausted), after aborting a transaction still open.
    /// `expected` is the (producer id, epoch) of a KIP-360 request (v3+), if it carried one.
    pub async fn init_producer_id(
        &self,
        ctx: &dyn TxnHost,
        transactional_id: &str,
        timeout_ms: i32,
        expected: Option<(i64, i16)>,
    ) -> Result<(i64, i16), TxnError> {
        if transactional_id.is_empty() {
            return Err(TxnError::InvalidRequest);
        }
        if timeout_ms <= 0 || timeout_ms > self.max_timeout_ms {
            return Err(TxnError::InvalidTransactionTimeout);
        }
        self.ensure_topic(ctx)
            .map_err(|e| unavailable("cannot create the transaction log", transactional_id, e))?;
        let handle = match self.get(transactional_id) {
            Some(h) => h,
            None => {
                let pid = ctx
                    .metadata()
                    .next_producer_id()
                    .map(|id| id.get())
                    .map_err(|e| {
                        unavailable("cannot allocate a producer id", transactional_id, e)
                    })?;
                let fresh = Arc::new(Mutex::new(TxnMeta {
                    transactional_id: transactional_id.to_string(),
                    data: TxnData::new(pid, timeout_ms, now_ms()),
                    busy: false,
                }));
                // Another request may have created it meanwhile: keep the first.
                lock(&self.txns)
                    .entry(transactional_id.to_string())
                    .or_insert(fresh)
                    .clone()
            }
        };
        // An Ongoing transaction is aborted first (with a fencing bump); then the epoch is
        // bumped for the caller. Kafka answers the first round with CONCURRENT_TRANSACTIONS and
        // lets the client retry; doing both here gives the same end state in one round trip.
        let ongoing = {
            let m = lock(&handle);
            if m.busy {
                return Err(TxnError::ConcurrentTransactions);
            }
            if let Some((pid, epoch)) = expected {
                // KIP-360 validation comes before any fencing.
                if !m.data.is_valid_producer(pid, epoch) {
                    return Err(TxnError::ProducerFenced);
                }
            }
            m.data.state == TxnStatus::Ongoing
        };
        if ongoing {
            self.fence_and_abort(ctx, &handle, MARKER_RETRY_WINDOW)
                .await?;
        }
        let now = now_ms();
        let ids = ctx.metadata();
        let next = self
            .transition(ctx, &handle, AfterWrite::Release, None, |d| {
                d.prepare_init(expected, timeout_ms, now, || {
                    ids.next_producer_id().map(|id| id.get()).map_err(|e| {
                        unavailable("cannot allocate a producer id", transactional_id, e)
                    })
                })
                .map(Some)
            })
            .await?;
        Ok((next.producer_id, next.producer_epoch))
    }

    /// AddPartitionsToTxn (and AddOffsetsToTxn, with the group's offsets partition): adds
    /// `partitions` to the producer's transaction, starting it if needed.
    pub async fn add_partitions(
        &self,
        ctx: &dyn TxnHost,
        transactional_id: &str,
        producer_id: i64,
        producer_epoch: i16,
        partitions: &[(String, i32)],
    ) -> Result<(), TxnError> {
        if transactional_id.is_empty() {
            return Err(TxnError::InvalidRequest);
        }
        let handle = self
            .get(transactional_id)
            .ok_or(TxnError::InvalidProducerIdMapping)?;
        let now = now_ms();
        let producer = Some((producer_id, producer_epoch));
        self.transition(ctx, &handle, AfterWrite::Release, producer, |d| {
            d.prepare_add(producer_id, producer_epoch, partitions, now)
        })
        .await
        .map(|_| ())
    }

    /// AddPartitionsToTxn v4+ with `verify_only`: for each partition, whether it is in the
    /// producer's ongoing transaction. Errors apply to the whole transaction.
    pub fn verify_partitions(
        &self,
        transactional_id: &str,
        producer_id: i64,
        producer_epoch: i16,
        partitions: &[(String, i32)],
    ) -> Result<Vec<bool>, TxnError> {
        let handle = self
            .get(transactional_id)
            .ok_or(TxnError::InvalidProducerIdMapping)?;
        let m = lock(&handle);
        m.data.check_producer(producer_id, producer_epoch)?;
        if matches!(
            m.data.state,
            TxnStatus::PrepareCommit | TxnStatus::PrepareAbort
        ) {
            return Err(TxnError::ConcurrentTransactions);
        }
        let ongoing = m.data.state == TxnStatus::Ongoing;
        Ok(partitions
            .iter()
            .map(|p| ongoing && m.data.partitions.contains(p))
            .collect())
    }

    /// Checks that `producer_id`/`producer_epoch` own `transactional_id`'s current transaction
    /// and that it includes `partition` (TxnOffsetCommit's check that AddOffsetsToTxn came
    /// first).
    pub fn check_in_transaction(
        &self,
        transactional_id: &str,
        producer_id: i64,
        producer_epoch: i16,
        partition: (&str, i32),
    ) -> Result<(), TxnError> {
        let handle = self
            .get(transactional_id)
            .ok_or(TxnError::InvalidProducerIdMapping)?;
        let m = lock(&handle);
        m.data.check_producer(producer_id, producer_epoch)?;
        let key = (partition.0.to_string(), partition.1);
        if m.data.state != TxnStatus::Ongoing || !m.data.partitions.contains(&key) {
            return Err(TxnError::InvalidTxnState);
        }
        Ok(())
    }

    /// EndTxn: commits or aborts the producer's transaction. Answers once the markers are in
    /// every partition and CompleteCommit/CompleteAbort is durable; a retry of a completed
    /// EndTxn with the same outcome succeeds without doing anything.
    pub async fn end_txn(
        &self,
        ctx: &dyn TxnHost,
        transactional_id: &str,
        producer_id: i64,
        producer_epoch: i16,
        commit: bool,
    ) -> Result<(), TxnError> {
        if transactional_id.is_empty() {
            return Err(TxnError::InvalidRequest);
        }
        let handle = self
            .get(transactional_id)
            .ok_or(TxnError::InvalidProducerIdMapping)?;
        let now = now_ms();
        let next = self
            .transition(
                ctx,
                &handle,
                AfterWrite::StayBusy,
                Some((producer_id, producer_epoch)),
                |d| d.prepare_end(producer_id, producer_epoch, commit, now),
            )
            .await?;
        if !matches!(
            next.state,
            TxnStatus::PrepareCommit | TxnStatus::PrepareAbort
        ) {
            // A retried EndTxn of a completed transaction: `transition` wrote nothing and left
            // the id as it was.
            return Ok(());
        }
        self.complete(ctx, &handle, MARKER_RETRY_WINDOW).await
    }

    /// Rebuilds the transactional ids of the `__transaction_state` partitions this broker
    /// holds, then completes the
    /// transactions that were between PrepareCommit/PrepareAbort and their Complete state
    /// (writing their markers). Ongoing transactions stay open; the sweeper aborts them when
    /// they time out. Call after the group coordinator has loaded (completion applies
    /// pending transactional offsets).
    pub async fn load(&self, ctx: &dyn TxnHost) -> Result<(), StoreError> {
        let Some(topic) = ctx.metadata().topic(TXN_TOPIC) else {
            return Ok(());
        };
        // The broker reconciled logs with metadata before us: every partition log placed on
        // this broker exists; the others belong to the brokers coordinating their ids.
        self.topic.mark_ready(topic.partitions);
        let started = Instant::now();
        let mut found: HashMap<String, TxnData> = HashMap::new();
        let mut records_seen = 0usize;
        for p in 0..topic.partitions {
            let Some(log) = ctx.partition(TXN_TOPIC, p) else {
                continue;
            };
            replay_partition(&log, p, &mut found, &mut records_seen)?;
        }
        let mut to_complete = Vec::new();
        {
            let mut map = lock(&self.txns);
            for (id, mut data) in found {
                match data.state {
                    TxnStatus::Dead => continue,
                    // Kafka never persists it; if met, the transaction is still open.
                    TxnStatus::PrepareEpochFence => data.state = TxnStatus::Ongoing,
                    TxnStatus::PrepareCommit | TxnStatus::PrepareAbort => {
                        to_complete.push(id.clone())
                    }
                    _ => {}
                }
                let busy = matches!(
                    data.state,
                    TxnStatus::PrepareCommit | TxnStatus::PrepareAbort
                );
                map.insert(
                    id.clone(),
                    Arc::new(Mutex::new(TxnMeta {
                        transactional_id: id,
                        data,
                        busy,
                    })),
                );
            }
        }
        let loaded = lock(&self.txns).len();
        for id in &to_complete {
            if let Some(h) = self.get(id) {
                // One attempt: leaders elsewhere may still be starting; the sweeper retries.
                if let Err(e) = self.complete(ctx, &h, Duration::ZERO).await {
                    // Left in its Prepare state; the sweeper retries.
                    tracing::warn!(transactional_id = %id, "cannot complete transaction at load: {e:?}");
                }
            }
        }
        tracing::info!(
            transactional_ids = loaded,
            completed = to_complete.len(),
            records = records_seen,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "loaded transactions"
        );
        Ok(())
    }

    /// One sweep: abort Ongoing transactions past their timeout (fencing their producer) and
    /// retry the completion of transactions whose markers could not be written.
    pub async fn sweep(&self, ctx: &dyn TxnHost) {
        let now = now_ms();
        let handles: Vec<Handle> = lock(&self.txns).values().cloned().collect();
        for h in handles {
            enum Todo {
                Expire,
                Abort,
                Complete,
            }
            let todo = {
                let mut m = lock(&h);
                if m.busy {
                    None
                } else if m.data.expired(now, self.expiration_ms) {
                    m.busy = true;
                    Some(Todo::Expire)
                } else if m.data.timed_out(now) {
                    Some(Todo::Abort)
                } else if matches!(
                    m.data.state,
                    TxnStatus::PrepareCommit | TxnStatus::PrepareAbort
                ) {
                    m.busy = true;
                    Some(Todo::Complete)
                } else {
                    None
                }
            };
            let id = lock(&h).transactional_id.clone();
            let result = match todo {
                None => continue,
                Some(Todo::Abort) => {
                    tracing::info!(transactional_id = %id, "aborting timed-out transaction");
                    self.fence_and_abort(ctx, &h, Duration::ZERO).await
                }
                Some(Todo::Complete) => self.complete(ctx, &h, Duration::ZERO).await,
                Some(Todo::Expire) => self.expire(ctx, &h).await,
            };
            if let Err(e) = result {
                tracing::warn!(transactional_id = %id, "transaction sweep: {e:?}");
            }
        }
    }
}

impl TransactionCoordinator {
    /// Forgets an idle transactional id (the caller marked it busy): a tombstone in
    /// `__transaction_state`, then out of the table once durable. Its state becomes Dead, so
    /// a request still holding the old handle is refused rather than reviving it.
    async fn expire(&self, ctx: &dyn TxnHost, handle: &Handle) -> Result<(), TxnError> {
        let id = lock(handle).transactional_id.clone();
        let written = self.append_record(ctx, &id, None).await;
        let durable = match written {
            Ok((log, end)) => log.wait_durable(end).await.map_err(StoreError::from),
            Err(e) => Err(e),
        };
        if let Err(e) = durable {
            lock(handle).busy = false;
            return Err(unavailable("cannot expire transactional id", &id, e));
        }
        {
            let mut m = lock(handle);
            m.data.state = TxnStatus::Dead;
            m.busy = false;
        }
        let mut map = lock(&self.txns);
        if map.get(&id).is_some_and(|h| Arc::ptr_eq(h, handle)) {
            map.remove(&id);
        }
        tracing::info!(transactional_id = %id, "expired idle transactional id");
        Ok(())
    }
}

/// Reads one `__transaction_state` partition from its start, keeping each id's last state
/// (a tombstone forgets the id).
fn replay_partition(
    log: &PartitionLog,
    p: i32,
    found: &mut HashMap<String, TxnData>,
    records_seen: &mut usize,
) -> Result<(), StoreError> {
    log.for_each_batch(|h, batch| {
        if h.is_control() {
            return;
        }
        let recs = match crate::records::records(batch, 64 << 20) {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(
                    partition = p,
                    "skipping unreadable transaction log batch: {e}"
                );
                return;
            }
        };
        for rec in recs.iter() {
            let rec = match rec {
                Ok(r) => r,
                Err(e) => {
                    tracing::warn!(partition = p, "skipping bad transaction log record: {e}");
                    break;
                }
            };
            *records_seen += 1;
            let Some(key) = rec.key else { continue };
            let id = match records::decode_key(key) {
                Ok(id) => id,
                Err(e) => {
                    tracing::warn!(partition = p, "skipping transaction log key: {e}");
                    continue;
                }
            };
            match rec.value {
                None => {
                    found.remove(&id);
                }
                Some(v) => match records::decode_value(v) {
                    Ok(v) => {
                        found.insert(id, TxnData::from_value(&v));
                    }
                    Err(e) => {
                        tracing::warn!(transactional_id = %id, "skipping transaction log value: {e}")
                    }
                },
            }
        }
    })?;
    Ok(())
}

/// Runs the coordinator's timeout sweep every
/// `transaction.abort.timed.out.transaction.cleanup.interval.ms` until `shutdown` turns true.
pub async fn run_sweeper<H: TxnHost + 'static>(ctx: Arc<H>, mut shutdown: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(ctx.txns().cleanup_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => ctx.txns().sweep(&*ctx).await,
            changed = shutdown.changed() => {
                if changed.is_err() || *shutdown.borrow() {
                    return;
                }
            }
        }
    }
}
