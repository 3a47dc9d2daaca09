//! One partition's log: the ordered segments, log start/end offsets, producer state, the
//! append path (idempotence check, offset assignment, stamping, roll, index update), and the
//! durable-offset watch served by the flusher, the leader epoch cache and the high watermark.
//! Reads for Fetch and the timestamp lookups are in `read`, DeleteRecords and retention in
//! `retention`, compaction in `compaction`, the transaction markers in `txn`, and the follower
//! side of replication (replica appends, truncation) in `replica`.
//!
//! High watermark: by default it is the log end offset (a single replica commits what it
//! writes); in explicit mode it is what the replica manager last set, never above the log end.
//! Consumer reads stop at it, follower reads at the log end.
//!
//! Thread-safety: `PartitionLog` is `Send + Sync` and used behind `Arc`. All mutable state sits
//! behind one `std::sync::Mutex`, never held across an `.await` and held by reads only long
//! enough to pick a file and a position; the bytes are then read with `pread` outside the lock.

use crate::common::Offset;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, Weak};
use std::time::Instant;

use bytes::Bytes;
use tokio::sync::watch;

use crate::records::batch::HEADER_LEN;
use crate::records::stamp::stamp_log_append_time;
use crate::records::{stamp_base_offset_and_epoch, BatchInfo};

use super::config::{LogConfig, TimestampKind};
use super::flusher::FlushSignal;
use super::io::{is_out_of_space, FsIo};
use super::leader_epoch::LeaderEpochCache;
use super::manager::Shared;
use super::producer_state::{BatchMeta, ProducerState, SeqCheck};
use super::recovery::RecoveryReport;
use super::segment::{delete_segment_files, AppendFailure, SealedFiles, Segment};
use super::txn_state::TxnState;
use super::{LogError, LogOptions, TopicPartition};

mod compaction;
mod read;
mod replica;
mod retention;
mod txn;

pub use compaction::Cleanability;
pub use read::{ReadRegion, ReadResult};
pub use replica::ReplicaAppend;
pub(crate) use txn::parse_txn_index;

/// Result of [`PartitionLog::append`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppendOutcome {
    /// The batch was written.
    Appended {
        /// Offset assigned to the first record.
        base_offset: i64,
        /// Offset of the last record.
        last_offset: i64,
        /// Broker append time for LogAppendTime topics; -1 (CreateTime).
        log_append_time: i64,
        /// Log start offset after the append.
        log_start_offset: i64,
        /// `flush.messages` was reached: an fsync has been requested, and the producer should
        /// be answered only once it is done (Kafka flushes before answering).
        flush_forced: bool,
    },
    /// An idempotent retry of a batch already in the log; nothing was written.
    Duplicate {
        /// Offset originally assigned to the first record.
        base_offset: i64,
        /// Offset originally assigned to the last record.
        last_offset: i64,
        /// Current log start offset.
        log_start_offset: i64,
    },
}

impl AppendOutcome {
    /// Offset one past the last record of the batch (what to pass to `wait_durable`).
    pub fn end_offset(&self) -> Offset {
        match self {
            AppendOutcome::Appended { last_offset, .. }
            | AppendOutcome::Duplicate { last_offset, .. } => Offset(last_offset + 1),
        }
    }
}

/// Durable offset published by the flusher, or the failure that poisoned the partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Durable {
    pub(crate) offset: i64,
    pub(crate) failed: bool,
}

#[derive(Debug)]
pub(crate) struct Inner {
    pub(crate) segments: Vec<Segment>,
    pub(crate) log_start_offset: i64,
    pub(crate) leo: i64,
    pub(crate) producers: ProducerState,
    sealed_unsynced: Vec<SealedFiles>,
    /// `.txnindex` files written since the last flush: synced by the flusher with the log,
    /// never under this lock (recovery re-derives an entry whose file write was lost).
    pub(super) txn_index_unsynced: Vec<std::fs::File>,
    dir_dirty: bool,
    size_bytes: u64,
    /// Topic-level settings, read on every append and roll; replaced by `set_config`.
    pub(crate) config: LogConfig,
    /// When the last fsync that made data durable finished (`flush.ms` counts from here).
    last_flush: Instant,
    /// The log cleaner's position: offsets below it have been compacted at least once (Kafka's
    /// "first dirty offset", kept in `cleaner-offset-checkpoint`).
    pub(crate) first_dirty_offset: i64,
    /// Open and aborted transactions (see `txn_state`).
    pub(crate) txn: TxnState,
    /// Which leader epoch wrote from which offset; durable in `leader-epoch-checkpoint`.
    pub(crate) epochs: LeaderEpochCache,
    /// True: the high watermark is the log end offset (one replica). False: it is `hw`.
    hw_follows_leo: bool,
    /// The high watermark last set in explicit mode (kept at or below `leo`).
    hw: i64,
    /// Bumped by every truncation: a flush that started before one must not publish the log
    /// end it captured as durable.
    truncations: u64,
}

impl Inner {
    /// The high watermark now (see the module docs).
    pub(crate) fn high_watermark(&self) -> i64 {
        if self.hw_follows_leo {
            self.leo
        } else {
            self.hw.min(self.leo)
        }
    }

    /// Whether the active segment must roll before a batch of `len` bytes whose last offset is
    /// `last_offset` and whose max timestamp is `max_timestamp` (Kafka's `shouldRoll`).
    pub(super) fn needs_roll(&self, len: u64, last_offset: i64, max_timestamp: i64) -> bool {
        match self.segments.last() {
            Some(active) => {
                active.size() > 0
                    && (active.size() + len > self.config.segment_bytes
                        || last_offset - active.base_offset() > i64::from(i32::MAX)
                        || active.size() + len > u64::from(u32::MAX)
                        || active.index_full(self.config.segment_index_bytes)
                        || active.builder.first_batch_timestamp.is_some_and(|first| {
                            let roll_after = self.config.roll_ms()
                                - self.config.roll_jitter_ms(active.roll_seed);
                            max_timestamp.saturating_sub(first) > roll_after
                        }))
            }
            None => true,
        }
    }
}

/// A partition log. See the module docs for the thread-safety contract.
#[derive(Debug)]
pub struct PartitionLog {
    tp: TopicPartition,
    dir: PathBuf,
    topic_id: crate::common::TopicId,
    inner: Mutex<Inner>,
    /// The log end offset, for parked follower fetches (sent only while someone listens).
    leo_tx: watch::Sender<i64>,
    /// The high watermark, for parked consumer fetches.
    hw_tx: watch::Sender<i64>,
    durable_tx: watch::Sender<Durable>,
    offline: AtomicBool,
    flush: Arc<FlushSignal>,
    /// Every file creation, segment write, fsync, rename and removal goes through here (the
    /// file-system seam; fault injection and crash models in tests).
    io: Arc<dyn FsIo>,
    recovery: OnceLock<RecoveryReport>,
    /// Held for a whole compaction pass: passes of one partition never overlap (they would
    /// share the `.cleaned` and `.swap` file names).
    cleaning: Mutex<()>,
    /// Held by a flush from capturing its work to publishing the durable offset, and by a
    /// truncation: a flush never writes a producer snapshot of a history just truncated away.
    flushing: Mutex<()>,
    /// The log manager's checkpoint writer: a truncation rewrites the recovery-point
    /// checkpoint before it returns (set by the manager; absent for a log it does not own).
    checkpointer: OnceLock<Weak<Shared>>,
    /// Test hook: the next flush fails as if fdatasync had returned EIO.
    #[cfg(test)]
    pub(crate) fail_next_flush: AtomicBool,
}

impl PartitionLog {
    /// Builds a partition from recovered (or freshly created) segments. `segments` must be
    /// non-empty and sorted; the last one is active. `durable` is the offset known to be synced.
    #[allow(
        clippy::too_many_arguments,
        reason = "the parts recovery produced, one each"
    )]
    pub(crate) fn from_parts(
        tp: TopicPartition,
        dir: &Path,
        topic_id: crate::common::TopicId,
        opts: LogOptions,
        segments: Vec<Segment>,
        log_start_offset: i64,
        producers: ProducerState,
        durable: i64,
        flush: Arc<FlushSignal>,
        io: Arc<dyn FsIo>,
    ) -> Result<PartitionLog, LogError> {
        let leo = segments
            .last()
            .map(Segment::next_offset)
            .ok_or_else(|| LogError::Corrupt(format!("partition {tp} has no segment")))?;
        let size_bytes = segments.iter().map(Segment::size).sum();
        let config = LogConfig::from_options(&opts);
        let (leo_tx, _) = watch::channel(leo);
        let (hw_tx, _) = watch::channel(leo);
        let (durable_tx, _) = watch::channel(Durable {
            offset: durable.min(leo),
            failed: false,
        });
        Ok(PartitionLog {
            tp,
            dir: dir.to_path_buf(),
            topic_id,
            inner: Mutex::new(Inner {
                segments,
                log_start_offset: log_start_offset.min(leo),
                leo,
                producers,
                sealed_unsynced: Vec::new(),
                txn_index_unsynced: Vec::new(),
                dir_dirty: false,
                size_bytes,
                config,
                last_flush: Instant::now(),
                first_dirty_offset: log_start_offset.min(leo),
                txn: TxnState::default(),
                epochs: LeaderEpochCache::default(),
                hw_follows_leo: true,
                hw: leo,
                truncations: 0,
            }),
            leo_tx,
            hw_tx,
            durable_tx,
            offline: AtomicBool::new(false),
            flush,
            io,
            recovery: OnceLock::new(),
            cleaning: Mutex::new(()),
            flushing: Mutex::new(()),
            checkpointer: OnceLock::new(),
            #[cfg(test)]
            fail_next_flush: AtomicBool::new(false),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn offline_error(&self) -> LogError {
        LogError::StorageOffline(self.tp.to_string())
    }

    /// Marks the partition offline after a failed write or fsync and fails durability waiters.
    pub(crate) fn poison(&self) {
        self.offline.store(true, Ordering::SeqCst);
        self.durable_tx.send_modify(|d| d.failed = true);
    }

    /// Replaces the topic-level settings; the next append or roll uses them, and the flusher
    /// re-reads `flush.ms` at once.
    pub fn set_config(&self, config: LogConfig) {
        self.lock().config = config;
        self.flush.rescan();
    }

    /// The current topic-level settings.
    pub fn config(&self) -> LogConfig {
        self.lock().config.clone()
    }

    /// The partition this log belongs to.
    pub fn topic_partition(&self) -> &TopicPartition {
        &self.tp
    }

    /// The partition directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Appends one already-validated batch (the bytes exactly as the producer sent them).
    ///
    /// Under the partition lock: idempotence check (if `producer_id >= 0`), base offset = log
    /// end offset, stamps offset and `leader_epoch` into a copy of the first 16 bytes, writes that
    /// copy plus the rest of the batch to the active segment (rolling first if needed), updates
    /// the indexes, advances the log end offset and wakes `subscribe` watchers. The data is in
    /// the page cache on return; call [`PartitionLog::wait_durable`] for fsync.
    /// A write failure poisons the partition: this and every later append fail.
    pub fn append(
        &self,
        batch: &Bytes,
        info: &BatchInfo,
        leader_epoch: crate::common::LeaderEpoch,
    ) -> Result<AppendOutcome, LogError> {
        if self.offline.load(Ordering::SeqCst) {
            return Err(self.offline_error());
        }
        if batch.len() < HEADER_LEN || info.last_offset_delta < 0 {
            return Err(LogError::Corrupt("append of a malformed batch".into()));
        }
        let mut g = self.lock();
        let epoch = leader_epoch.get();
        // One comparison in the common case; a new epoch (once per leadership change) is made
        // durable below, before its first batch is written.
        let new_epoch = match g.epochs.latest_epoch() {
            Some(latest) if epoch < latest => {
                return Err(LogError::FencedLeaderEpoch { epoch, latest });
            }
            Some(latest) => epoch > latest,
            // A negative epoch (unknown) is stamped but never cached.
            None => epoch >= 0,
        };
        let idempotent = info.producer_id >= 0 && info.base_sequence >= 0;
        if idempotent {
            if let SeqCheck::Duplicate(m) = g.producers.check(
                info.producer_id,
                info.producer_epoch,
                info.base_sequence,
                info.last_sequence(),
            )? {
                return Ok(AppendOutcome::Duplicate {
                    base_offset: m.base_offset,
                    last_offset: m.last_offset,
                    log_start_offset: g.log_start_offset,
                });
            }
        }
        let base_offset = g.leo;
        let last_offset = base_offset + i64::from(info.last_offset_delta);
        let len = batch.len() as u64;
        let log_append_time = match g.config.timestamp_kind {
            TimestampKind::LogAppendTime => Some(crate::common::now_ms()),
            TimestampKind::CreateTime => None,
        };
        let max_timestamp = log_append_time.unwrap_or(info.max_timestamp);
        if g.needs_roll(len, last_offset, max_timestamp) {
            match self.roll(&mut g, base_offset) {
                Ok(()) => {}
                // Nothing changed: the active segment is still open for appends.
                Err(RollError::Create(e)) if is_out_of_space(&e) => return Err(LogError::Io(e)),
                Err(e) => {
                    drop(g);
                    self.poison();
                    return Err(LogError::Io(e.into_io()));
                }
            }
        }
        if new_epoch {
            self.record_epoch(&mut g, epoch, base_offset)?;
        }
        let interval = g.config.index_interval_bytes;
        let mut header = [0u8; HEADER_LEN];
        header.copy_from_slice(&batch[..HEADER_LEN]);
        stamp_base_offset_and_epoch(&mut header, base_offset, leader_epoch.get());
        // Only a LogAppendTime rewrite touches CRC-covered bytes; otherwise write just the
        // 16 stamped bytes and hand the rest of the producer's buffer to the kernel as is.
        let head_len = match log_append_time {
            Some(now) => {
                stamp_log_append_time(&mut header, &batch[HEADER_LEN..], now);
                HEADER_LEN
            }
            None => 16,
        };
        let Some(active) = g.segments.last_mut() else {
            drop(g);
            self.poison();
            return Err(LogError::Corrupt(format!(
                "partition {} has no active segment",
                self.tp
            )));
        };
        active.builder.set_interval(interval);
        let pos = active.size();
        let res = active.append(
            self.io.as_ref(),
            &header[..head_len],
            &batch[head_len..],
            last_offset,
            max_timestamp,
        );
        if let Err(failure) = res {
            let file = active.log_file();
            drop(g);
            return Err(match file {
                Ok(file) => self.append_failed(failure, &file, pos),
                Err(e) => {
                    self.poison();
                    LogError::Io(e)
                }
            });
        }
        if idempotent {
            g.producers.update(
                info.producer_id,
                info.producer_epoch,
                BatchMeta {
                    first_seq: info.base_sequence,
                    last_seq: info.last_sequence(),
                    base_offset,
                    last_offset,
                },
                max_timestamp,
            );
        }
        if info.is_transactional {
            if let Err(e) = g.track_txn(
                self.io.as_ref(),
                &self.dir,
                batch,
                info.producer_id,
                base_offset,
            ) {
                // The marker is in the log but its aborted-index entry is not: stop rather
                // than let read_committed consumers see aborted records later.
                drop(g);
                tracing::error!(partition = %self.tp, error = %e, "cannot record a transaction marker; partition is offline");
                self.poison();
                return Err(e);
            }
        }
        g.leo = last_offset + 1;
        g.size_bytes += len;
        let log_start_offset = g.log_start_offset;
        let unflushed = g.leo - self.durable_tx.borrow().offset;
        let flush_forced = unflushed >= g.config.flush_messages;
        let follows = g.hw_follows_leo;
        drop(g);
        self.publish_leo(last_offset + 1, follows);
        if flush_forced {
            // Fails only once the flusher has stopped, and the shutdown flush covers this.
            let _ = self.flush.request(&self.tp);
        }
        Ok(AppendOutcome::Appended {
            base_offset,
            last_offset,
            log_append_time: log_append_time.unwrap_or(-1),
            log_start_offset,
            flush_forced,
        })
    }

    /// Handles a failed segment append. Out of space while writing the batch: the partial
    /// write is truncated away and the partition stays online, so appends succeed again once
    /// space is freed (reads were never affected). Anything else, or a failed truncation,
    /// poisons the partition.
    fn append_failed(&self, failure: AppendFailure, file: &std::fs::File, pos: u64) -> LogError {
        match failure {
            AppendFailure::Write(e) if is_out_of_space(&e) => match self.io.set_len(file, pos) {
                Ok(()) => {
                    tracing::warn!(partition = %self.tp, error = %e, "append failed: out of space; partial write truncated");
                    LogError::Io(e)
                }
                Err(t) => {
                    tracing::error!(partition = %self.tp, error = %t, "cannot truncate a partial write; partition is offline");
                    self.poison();
                    LogError::Io(e)
                }
            },
            AppendFailure::Write(e) | AppendFailure::Index(e) => {
                tracing::error!(partition = %self.tp, error = %e, "log append failed; partition is offline");
                self.poison();
                LogError::Io(e)
            }
        }
    }

    /// Starts a new segment at `base_offset` and seals the active one. Caller holds the lock.
    /// The new segment is created first, so a failure to create it (a full disk) leaves the
    /// active segment writable and the partition intact.
    fn roll(&self, g: &mut Inner, base_offset: i64) -> Result<(), RollError> {
        let io = self.io.as_ref();
        let seg = match Segment::create(io, &self.dir, base_offset, g.config.index_interval_bytes) {
            Ok(seg) => seg,
            Err(e) => {
                if let Err(c) = delete_segment_files(io, &self.dir, base_offset) {
                    tracing::warn!(partition = %self.tp, error = %c, "cannot remove a half-created segment");
                }
                return Err(RollError::Create(e));
            }
        };
        if let Some(active) = g.segments.last_mut() {
            let sealed = active.seal().map_err(RollError::Seal)?;
            let snapshot = super::producer_snapshot::encode(&g.snapshot_entries());
            let path = self
                .dir
                .join(super::segment::file_name(base_offset, "snapshot"));
            g.sealed_unsynced
                .push(sealed.with_snapshot(base_offset, path, snapshot));
        }
        g.segments.push(seg);
        g.dir_dirty = true;
        tracing::debug!(partition = %self.tp, base_offset, "rolled new segment");
        Ok(())
    }

    /// Flusher side: fdatasyncs segments rolled since the last flush, the directory if segments
    /// were created, then the active segment, and publishes the log end offset captured before as
    /// durable. Returns whether an fsync was done. Called only from the flusher thread (or at
    /// shutdown after it stopped); on error the partition is poisoned.
    pub(crate) fn flush(&self) -> Result<bool, LogError> {
        if self.offline.load(Ordering::SeqCst) {
            return Err(self.offline_error());
        }
        let _flushing = self
            .flushing
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let (leo, file, sealed, txn_indexes, dir_dirty, truncations) = {
            let mut g = self.lock();
            if self.durable_tx.borrow().offset >= g.leo
                && g.sealed_unsynced.is_empty()
                && g.txn_index_unsynced.is_empty()
            {
                return Ok(false);
            }
            let file = g.segments.last().map(Segment::log_file);
            let dir_dirty = std::mem::take(&mut g.dir_dirty);
            (
                g.leo,
                file,
                std::mem::take(&mut g.sealed_unsynced),
                std::mem::take(&mut g.txn_index_unsynced),
                dir_dirty,
                g.truncations,
            )
        };
        let res = (|| -> std::io::Result<()> {
            #[cfg(test)]
            if self.fail_next_flush.swap(false, Ordering::SeqCst) {
                return Err(std::io::Error::other("injected fsync failure"));
            }
            for s in &sealed {
                s.sync(self.io.as_ref())?;
            }
            for f in &txn_indexes {
                self.io.sync_data(f)?;
            }
            if dir_dirty {
                self.io.sync_dir(&self.dir)?;
            }
            if let Some(f) = file {
                let f: Arc<std::fs::File> = f?;
                self.io.sync_data(&f)?;
            }
            Ok(())
        })();
        match res {
            Ok(()) => {
                // Counted before publishing so a woken waiter already sees it.
                self.flush.count_fsync();
                let mut g = self.lock();
                g.last_flush = Instant::now();
                // Published under the lock: a truncation since the capture lowered the durable
                // offset below `leo`, and offsets above its cut are not the ones synced.
                if g.truncations == truncations {
                    self.durable_tx.send_if_modified(|d| {
                        let advance = leo > d.offset;
                        if advance {
                            d.offset = leo;
                        }
                        advance
                    });
                }
                Ok(true)
            }
            Err(e) => {
                tracing::error!(partition = %self.tp, error = %e, "fsync failed; partition is offline");
                self.poison();
                Err(LogError::Io(e))
            }
        }
    }

    /// Flusher side, periodic scan: whether this partition has data that has waited for an
    /// fsync at least `flush.ms` since the last one, and its `flush.ms`.
    pub(crate) fn flush_due(&self, now: Instant) -> (bool, i64) {
        let g = self.lock();
        let flush_ms = g.config.flush_ms;
        if self.offline.load(Ordering::SeqCst) {
            return (false, flush_ms);
        }
        let unflushed = self.durable_tx.borrow().offset < g.leo || !g.sealed_unsynced.is_empty();
        let waited = now.saturating_duration_since(g.last_flush).as_millis();
        let due = unflushed && waited >= u128::try_from(flush_ms).unwrap_or(0);
        (due, flush_ms)
    }

    /// Waits until every offset below `end_offset` is fdatasync'ed. Registers the partition with
    /// the flusher, so concurrent waiters share one fsync (group commit). Fails with
    /// `StorageOffline` if the partition is poisoned, `ShutDown` if the flusher has stopped.
    /// The future holds no lock and is `Send`.
    pub async fn wait_durable(&self, end_offset: Offset) -> Result<(), LogError> {
        let end_offset = end_offset.get();
        let mut rx = self.durable_tx.subscribe();
        {
            let d = *rx.borrow_and_update();
            if d.failed || self.offline.load(Ordering::SeqCst) {
                return Err(self.offline_error());
            }
            if d.offset >= end_offset {
                return Ok(());
            }
        }
        self.flush.request(&self.tp)?;
        loop {
            if rx.changed().await.is_err() {
                return Err(LogError::ShutDown);
            }
            let d = *rx.borrow_and_update();
            if d.failed {
                return Err(self.offline_error());
            }
            if d.offset >= end_offset {
                return Ok(());
            }
        }
    }

    /// Offset below which everything is known to be fdatasync'ed.
    pub fn durable_offset(&self) -> Offset {
        Offset(self.durable_tx.borrow().offset)
    }

    /// Log start offset: the first offset still readable.
    pub fn log_start_offset(&self) -> Offset {
        Offset(self.lock().log_start_offset)
    }

    /// Log end offset: the offset the next batch will get.
    pub fn log_end_offset(&self) -> Offset {
        Offset(self.lock().leo)
    }

    /// High watermark: the log end offset in the default mode, else the value last set with
    /// [`PartitionLog::set_high_watermark`] (never above the log end offset).
    pub fn high_watermark(&self) -> Offset {
        Offset(self.lock().high_watermark())
    }

    /// Chooses how the high watermark moves: `true` (the default, one replica) makes it the
    /// log end offset; `false` makes it the value set by [`PartitionLog::set_high_watermark`].
    /// Switching to explicit mode keeps the current value (the log end offset if it followed
    /// it) until the next `set_high_watermark`. Wakes consumer watchers.
    pub fn set_high_watermark_mode(&self, follows_log_end: bool) {
        let hw = {
            let mut g = self.lock();
            if g.hw_follows_leo && !follows_log_end {
                g.hw = g.leo;
            }
            g.hw_follows_leo = follows_log_end;
            g.high_watermark()
        };
        self.hw_tx.send_replace(hw);
    }

    /// Sets the high watermark (explicit mode; ignored while it follows the log end offset),
    /// clamped to the log end offset. It may go down only through this call or a truncation;
    /// the replica manager keeps it monotonic while leading. Wakes consumer watchers when it
    /// changes.
    pub fn set_high_watermark(&self, hw: Offset) {
        let changed = {
            let mut g = self.lock();
            if g.hw_follows_leo {
                return;
            }
            let hw = hw.get().clamp(0, g.leo);
            let changed = g.hw != hw;
            g.hw = hw;
            changed.then_some(hw)
        };
        if let Some(hw) = changed {
            self.hw_tx.send_replace(hw);
        }
    }

    /// A watch of the high watermark, for parked consumer fetches: fires when it moves (on
    /// every append in the default mode).
    pub fn subscribe(&self) -> watch::Receiver<i64> {
        self.hw_tx.subscribe()
    }

    /// A watch of the log end offset, for parked follower fetches: fires on every append and
    /// truncation from the moment it is taken.
    pub fn subscribe_log_end(&self) -> watch::Receiver<i64> {
        let rx = self.leo_tx.subscribe();
        // Appends skip the send while nobody listens, so the value may be stale: refresh it
        // now (at worst one spurious wake-up). An append after the subscription sees it.
        let leo = self.lock().leo;
        self.leo_tx.send_if_modified(|v| {
            let stale = *v != leo;
            *v = leo;
            stale
        });
        rx
    }

    /// Tells watchers about a new log end offset (after an append).
    fn publish_leo(&self, leo: i64, hw_follows_leo: bool) {
        if hw_follows_leo {
            self.hw_tx.send_replace(leo);
        }
        // No lock and no wake-up while no follower fetch is parked; a subscriber taken after
        // this check refreshes the value itself (`subscribe_log_end`).
        if self.leo_tx.receiver_count() > 0 {
            self.leo_tx.send_replace(leo);
        }
    }

    /// The newest leader epoch that wrote to this log (`None` for an empty log never written).
    pub fn latest_epoch(&self) -> Option<i32> {
        self.lock().epochs.latest_epoch()
    }

    /// OffsetForLeaderEpoch: the largest cached epoch at or below `epoch` and its end offset
    /// (the start of the next cached epoch, or the log end offset for the newest); `None`
    /// (UNDEFINED_EPOCH, -1) when `epoch` is below every cached epoch or the cache is empty.
    pub fn end_offset_for_epoch(&self, epoch: i32) -> Option<(i32, Offset)> {
        let g = self.lock();
        g.epochs
            .end_offset_for(epoch, g.leo)
            .map(|(e, o)| (e, Offset(o)))
    }

    /// The leader epoch cache entries as (epoch, start offset), oldest first (tests, admin).
    pub fn epoch_entries(&self) -> Vec<(i32, Offset)> {
        self.lock()
            .epochs
            .entries()
            .iter()
            .map(|e| (e.epoch, Offset(e.start_offset)))
            .collect()
    }

    /// Kafka's `maybeAssignEpochStartOffset`, for a broker becoming leader: records, durably,
    /// that `epoch` starts at the current log end offset, so OffsetForLeaderEpoch answers for
    /// it before its first append. No-op if `epoch` is already the latest; `FencedLeaderEpoch`
    /// if it is older.
    pub fn begin_leader_epoch(&self, epoch: crate::common::LeaderEpoch) -> Result<(), LogError> {
        if self.offline.load(Ordering::SeqCst) {
            return Err(self.offline_error());
        }
        let mut g = self.lock();
        let epoch = epoch.get();
        match g.epochs.latest_epoch() {
            Some(latest) if epoch < latest => Err(LogError::FencedLeaderEpoch { epoch, latest }),
            Some(latest) if epoch == latest => Ok(()),
            _ => {
                let leo = g.leo;
                self.record_epoch(&mut g, epoch, leo)
            }
        }
    }

    /// Records that `epoch` starts at `start_offset` and makes the checkpoint durable, under
    /// the lock (rare: once per leadership change), before the first batch of the epoch is
    /// written. Out of space leaves the cache and the partition as they were; any other
    /// failure poisons the partition.
    pub(super) fn record_epoch(
        &self,
        g: &mut MutexGuard<'_, Inner>,
        epoch: i32,
        start_offset: i64,
    ) -> Result<(), LogError> {
        let mut next = g.epochs.clone();
        if !next.assign(epoch, start_offset) {
            return Ok(());
        }
        match next.write(self.io.as_ref(), &self.dir) {
            Ok(()) => {
                g.epochs = next;
                Ok(())
            }
            Err(e) if is_out_of_space(&e) => Err(LogError::Io(e)),
            Err(e) => {
                tracing::error!(partition = %self.tp, error = %e, "cannot write the leader epoch checkpoint; partition is offline");
                self.poison();
                Err(LogError::Io(e))
            }
        }
    }

    /// Installs the leader epoch cache recovery loaded.
    pub(crate) fn set_epoch_cache(&self, epochs: LeaderEpochCache) {
        self.lock().epochs = epochs;
    }

    /// Lets truncations rewrite the log directory's checkpoints (set once by the manager).
    pub(crate) fn set_checkpointer(&self, shared: Weak<Shared>) {
        let _ = self.checkpointer.set(shared);
    }

    /// Total bytes of all segment `.log` files.
    pub fn size_bytes(&self) -> u64 {
        self.lock().size_bytes
    }

    /// The topic id from `partition.metadata`.
    pub fn topic_id(&self) -> crate::common::TopicId {
        self.topic_id
    }

    /// Base offsets of the segments, oldest first (for tests and admin tools).
    pub fn segment_base_offsets(&self) -> Vec<i64> {
        self.lock()
            .segments
            .iter()
            .map(Segment::base_offset)
            .collect()
    }

    /// Offset index entries of the segment with `base_offset` (for tests and checks).
    pub fn index_entries(&self, base_offset: i64) -> Option<Vec<(i32, u32)>> {
        self.lock()
            .segments
            .iter()
            .find(|s| s.base_offset() == base_offset)
            .map(|s| s.index.entries().to_vec())
    }

    /// What recovery did when this log was opened (default for a newly created log).
    pub fn recovery_report(&self) -> RecoveryReport {
        self.recovery.get().cloned().unwrap_or_default()
    }

    pub(crate) fn set_recovery_report(&self, report: RecoveryReport) {
        let _ = self.recovery.set(report);
    }

    /// Whether a previous storage error has taken the partition offline.
    pub fn is_offline(&self) -> bool {
        self.offline.load(Ordering::SeqCst)
    }
}

/// Why a roll failed.
enum RollError {
    /// The new segment could not be created; nothing changed.
    Create(std::io::Error),
    /// Sealing the old segment failed after the new one was created.
    Seal(std::io::Error),
}

impl RollError {
    fn into_io(self) -> std::io::Error {
        match self {
            RollError::Create(e) | RollError::Seal(e) => e,
        }
    }
}
