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
//! Each partition of `__transaction_state` is served only while this broker leads it:
//! [`TransactionCoordinator::load_partition`] rebuilds its ids from the log and completes the
//! transactions it finds between Prepare and Complete, [`TransactionCoordinator::unload_partition`]
//! drops them (their ids answer NOT_COORDINATOR here). Records and markers carry the leader
//! epoch the partition was taken over at (the coordinator epoch, as in Kafka).
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
use crate::common::{LeaderEpoch, Offset};
use crate::group::GroupHost;
use crate::internal_topic::{InternalTopic, Ownership, PartitionLoad, Serving, StoreError};
use crate::log::PartitionLog;
use crate::records::build::MarkerKind;
use crate::records::validate_produce_batch;
pub use error::TxnError;
use records::{TxnStatus, TXN_TOPIC};
pub use state::TxnData;

/// One transactional id: its durable state and whether a transition is in flight.
#[derive(Debug)]
pub struct TxnMeta {
    pub transactional_id: String,
    pub data: TxnData,
    /// A record is being made durable or markers are being written: other requests get
    /// CONCURRENT_TRANSACTIONS, and the sweeper leaves the id alone.
    pub busy: bool,
    /// Set when this broker gave up the id's partition: a transition in flight answers
    /// NOT_COORDINATOR rather than success.
    pub unloaded: bool,
}

type Handle = Arc<Mutex<TxnMeta>>;

/// All transactional ids of this broker.
pub struct TransactionCoordinator {
    max_timeout_ms: i32,
    cleanup_interval: Duration,
    /// `transactional.id.expiration.ms`.
    expiration_ms: i64,
    table: Mutex<Table>,
    /// `__transaction_state`, created on first use.
    topic: InternalTopic,
    /// Partitions led here whose transactions other brokers coordinate, verified with them.
    verified: verified::VerifiedPartitions,
}

/// The ids served and the partitions they belong to, under one lock: an id exists here only
/// while its partition is loaded.
#[derive(Default)]
struct Table {
    txns: HashMap<String, Handle>,
    owned: Ownership,
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
    /// The epoch of the coordinator writing it: the leader epoch of its
    /// `__transaction_state` partition.
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

/// A failed write of the id's own state: NotCoordinator if its partition is no longer served
/// here (the client finds the new coordinator), else as [`unavailable`].
fn write_failed(what: &str, id: &str, e: StoreError) -> TxnError {
    match e {
        StoreError::NotServed(_) => {
            tracing::info!(transactional_id = id, "{what}: {e}");
            TxnError::NotCoordinator
        }
        e => unavailable(what, id, e),
    }
}

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
            table: Mutex::new(Table::default()),
            verified: verified::VerifiedPartitions::new(Duration::from_millis(
                u64::try_from(config.transaction_max_timeout_ms).unwrap_or(0),
            )),
        }
    }

    /// The partition count of `__transaction_state`, creating the topic if needed (file I/O
    /// and fsync the first time). The partitions this broker leads in a topic it just created
    /// are empty: they are served at once, with nothing to load.
    pub fn ensure_topic(&self, ctx: &dyn TxnHost) -> Result<i32, StoreError> {
        let (partitions, created) = self.topic.ensure_created(ctx)?;
        if created {
            let metadata = ctx.metadata();
            let led = crate::internal_topic::led_partitions(
                &metadata.image(),
                metadata.node_id(),
                TXN_TOPIC,
            );
            let mut table = lock(&self.table);
            for (p, epoch) in led {
                table.owned.adopt_empty(p, epoch);
            }
        }
        Ok(partitions)
    }

    /// The `__transaction_state` partition of `transactional_id`, once the topic's size is
    /// known.
    fn partition_key(&self, transactional_id: &str) -> Option<i32> {
        let partitions = self.topic.partitions();
        (partitions > 0).then(|| records::partition_for(transactional_id, partitions))
    }

    /// Whether this coordinator serves `transactional_id` now: its partition is loaded (or
    /// the transaction log does not exist yet, so no id has state anywhere).
    pub fn serving(&self, transactional_id: &str) -> Serving {
        let partition = self.partition_key(transactional_id);
        lock(&self.table).owned.serving(partition)
    }

    /// The `__transaction_state` partitions taken over, loading or loaded, with their epoch.
    pub fn owned_partitions(&self) -> std::collections::BTreeMap<i32, PartitionLoad> {
        lock(&self.table).owned.all()
    }

    /// The leader epoch to write `transactional_id`'s records (and markers) at, if its
    /// partition is served.
    fn write_epoch(&self, transactional_id: &str) -> Result<LeaderEpoch, StoreError> {
        match self.serving(transactional_id) {
            Serving::Yes(epoch) => Ok(epoch.unwrap_or(crate::common::LEADER_EPOCH)),
            Serving::Loading | Serving::No => Err(StoreError::NotServed(
                self.partition_key(transactional_id).unwrap_or(-1),
            )),
        }
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

    /// Ok if `transactional_id`'s partition is served here now.
    fn check_serving(&self, transactional_id: &str) -> Result<(), TxnError> {
        match self.serving(transactional_id) {
            Serving::Yes(_) => Ok(()),
            Serving::Loading => Err(TxnError::CoordinatorLoadInProgress),
            Serving::No => Err(TxnError::NotCoordinator),
        }
    }

    /// The handle of a known transactional id: unknown is INVALID_PRODUCER_ID_MAPPING where
    /// this broker serves the id's partition, else NOT_COORDINATOR or
    /// COORDINATOR_LOAD_IN_PROGRESS (the id may well be known to its coordinator).
    fn known(&self, transactional_id: &str) -> Result<Handle, TxnError> {
        match self.get(transactional_id) {
            Some(h) => Ok(h),
            None => self
                .check_serving(transactional_id)
                .and(Err(TxnError::InvalidProducerIdMapping)),
        }
    }

    /// A snapshot of `transactional_id`'s durable state, if known (tests, admin).
    pub fn describe(&self, transactional_id: &str) -> Option<TxnData> {
        let h = lock(&self.table).txns.get(transactional_id).cloned()?;
        let data = lock(&h).data.clone();
        Some(data)
    }

    /// Every known transactional id.
    pub fn ids(&self) -> Vec<String> {
        lock(&self.table).txns.keys().cloned().collect()
    }

    fn get(&self, transactional_id: &str) -> Option<Handle> {
        lock(&self.table).txns.get(transactional_id).cloned()
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
        let epoch = self.write_epoch(transactional_id)?;
        let key = records::key(transactional_id);
        let value = data.map(|d| records::value(&d.to_value()));
        let batch = crate::records::build::uncompressed_batch(
            &[(Some(&key), value.as_deref())],
            now_ms(),
            crate::records::build::Writer::BROKER,
        );
        let info = validate_produce_batch(&batch, usize::MAX)?;
        let outcome = crate::log::offload::append(log.clone(), batch, info, epoch).await?;
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
                return Err(write_failed("cannot write transaction state", &id, e));
            }
        };
        let durable = ctx.wait_acknowledgeable(&log, end).await;
        let mut m = lock(handle);
        if m.unloaded {
            // The partition was given up meanwhile: the new coordinator decides from the log.
            m.busy = false;
            return Err(TxnError::NotCoordinator);
        }
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
        let mut m = lock(handle);
        if result.is_err() {
            m.busy = false;
        }
        if m.unloaded {
            // Whatever was written, this broker no longer coordinates the id: the client asks
            // the new coordinator, which completes the transaction from the log.
            return Err(TxnError::NotCoordinator);
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
        let coordinator_epoch = match self.write_epoch(&id) {
            Ok(epoch) => epoch.get(),
            Err(e) => return Err(write_failed("cannot write transaction markers", &id, e)),
        };
        let marker = TxnMarker {
            producer_id: crate::common::ProducerId(data.producer_id),
            producer_epoch: crate::common::ProducerEpoch(data.producer_epoch),
            kind,
            coordinator_epoch,
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
            .map_err(|e| write_failed("cannot write transaction state", &id, e))?;
        ctx.wait_acknowledgeable(&log, end)
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
                // The handler checked a moment ago; the partition may have moved since.
                self.check_serving(transactional_id)?;
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
                    unloaded: false,
                }));
                // Another request may have created it meanwhile: keep the first. Checked
                // again under the table lock, so no id is created in a partition given up.
                let mut table = lock(&self.table);
                match table.owned.serving(self.partition_key(transactional_id)) {
                    Serving::Yes(_) => {}
                    Serving::Loading => return Err(TxnError::CoordinatorLoadInProgress),
                    Serving::No => return Err(TxnError::NotCoordinator),
                }
                table
                    .txns
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
        let handle = self.known(transactional_id)?;
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
        let handle = self.known(transactional_id)?;
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
        let handle = self.known(transactional_id)?;
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
        let handle = self.known(transactional_id)?;
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

    /// Takes over `__transaction_state` partition `partition`, led here at `epoch` (Kafka's
    /// `onElection`): rebuilds its transactional ids from the log, serves them, then completes
    /// the transactions that were between PrepareCommit/PrepareAbort and their Complete state
    /// (writing their markers; those ids answer CONCURRENT_TRANSACTIONS until done). Ongoing
    /// transactions stay open; the sweeper aborts them when they time out. Its ids answer
    /// COORDINATOR_LOAD_IN_PROGRESS while it loads. Nothing happens if the partition is already
    /// taken over; a failed load leaves it not taken over, for the next call to retry. Call
    /// after the group coordinator has loaded its partitions (completion applies pending
    /// transactional offsets).
    pub async fn load_partition(
        &self,
        ctx: &dyn TxnHost,
        partition: i32,
        epoch: LeaderEpoch,
    ) -> Result<(), StoreError> {
        let Some(topic) = ctx.metadata().topic(TXN_TOPIC) else {
            return Ok(());
        };
        // The topic exists (made by this broker or another): its size is known from here on.
        self.topic.mark_ready(topic.partitions);
        if !lock(&self.table).owned.begin(partition, epoch) {
            return Ok(());
        }
        let started = Instant::now();
        let replayed = match ctx.partition(TXN_TOPIC, partition) {
            // Reading the log is file I/O: off the runtime.
            Some(log) => tokio::task::spawn_blocking(move || {
                let mut found = HashMap::new();
                let mut records_seen = 0usize;
                replay_partition(&log, partition, &mut found, &mut records_seen)
                    .map(|()| (found, records_seen))
            })
            .await
            .unwrap_or_else(|e| Err(StoreError::Log(std::io::Error::other(e).into()))),
            None => Err(StoreError::MissingPartition(partition)),
        };
        let mut to_complete = Vec::new();
        let (loaded, records_seen) = {
            let mut table = lock(&self.table);
            let (found, records_seen) = match replayed {
                Ok(r) => r,
                Err(e) => {
                    if table.owned.get(partition) == Some(PartitionLoad::Loading(epoch)) {
                        table.owned.remove(partition);
                    }
                    return Err(e);
                }
            };
            if !table.owned.finish(partition, epoch) {
                // Given up while loading: what was read is not ours to serve.
                return Ok(());
            }
            let mut loaded = 0usize;
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
                loaded += 1;
                table.txns.insert(
                    id.clone(),
                    Arc::new(Mutex::new(TxnMeta {
                        transactional_id: id,
                        data,
                        busy,
                        unloaded: false,
                    })),
                );
            }
            (loaded, records_seen)
        };
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
            partition,
            leader_epoch = epoch.get(),
            transactional_ids = loaded,
            completed = to_complete.len(),
            records = records_seen,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "loaded transactions"
        );
        Ok(())
    }

    /// Gives up `__transaction_state` partition `partition` (Kafka's `onResignation`: this
    /// broker no longer leads it): its ids leave memory and answer NOT_COORDINATOR here; a
    /// transition or completion in flight for one of them answers NOT_COORDINATOR too, and
    /// the new coordinator finishes it from the log. Returns how many ids were dropped.
    pub fn unload_partition(&self, partition: i32) -> usize {
        let dropped: Vec<Handle> = {
            let mut table = lock(&self.table);
            table.owned.remove(partition);
            let ids: Vec<String> = table
                .txns
                .keys()
                .filter(|id| self.partition_key(id) == Some(partition))
                .cloned()
                .collect();
            ids.iter().filter_map(|id| table.txns.remove(id)).collect()
        };
        for h in &dropped {
            lock(h).unloaded = true;
        }
        tracing::info!(
            partition,
            transactional_ids = dropped.len(),
            "unloaded transactions"
        );
        dropped.len()
    }

    /// One sweep: abort Ongoing transactions past their timeout (fencing their producer) and
    /// retry the completion of transactions whose markers could not be written.
    pub async fn sweep(&self, ctx: &dyn TxnHost) {
        let now = now_ms();
        let handles: Vec<Handle> = lock(&self.table).txns.values().cloned().collect();
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
            Ok((log, end)) => ctx.wait_acknowledgeable(&log, end).await,
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
        let mut table = lock(&self.table);
        if table.txns.get(&id).is_some_and(|h| Arc::ptr_eq(h, handle)) {
            table.txns.remove(&id);
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
