//! The log manager: every partition log of one log directory, their creation and deletion,
//! the flusher thread and the per-directory checkpoints.
//!
//! Thread-safety: `LogManager` is `Send + Sync` and used behind `Arc`. The partition map is
//! behind an `RwLock`; creation and deletion are serialised by a separate mutex.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{mpsc, Arc, Mutex, RwLock};
use std::thread::JoinHandle;

use super::checkpoint::{
    list_dir, read_offset_checkpoint, write_offset_checkpoint, write_partition_metadata,
    CLEANER_FILE, LOG_START_FILE, RECOVERY_POINT_FILE,
};
use super::cleaner_thread;
use super::flusher::{self, FlushSignal};
use super::io::{FsIo, OsIo};
use super::partition::PartitionLog;
use super::recovery::load_partition;
use super::segment::Segment;
use super::{LogConfig, LogError, LogOptions, TopicPartition};

const RETENTION_THREAD: &str = "gregor-log-retention";
const CLEANER_THREAD: &str = "gregor-log-cleaner";

/// State shared between the manager and its background threads.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) log_dir: PathBuf,
    pub(crate) opts: LogOptions,
    partitions: RwLock<BTreeMap<TopicPartition, Arc<PartitionLog>>>,
    pub(crate) flush: Arc<FlushSignal>,
    /// The file-system seam, shared by every partition.
    io: Arc<dyn FsIo>,
    /// Serialises checkpoint writers (flusher and shutdown).
    checkpoint_lock: Mutex<()>,
}

impl Shared {
    pub(crate) fn get(&self, tp: &TopicPartition) -> Option<Arc<PartitionLog>> {
        self.partitions
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(tp)
            .cloned()
    }

    pub(crate) fn all(&self) -> Vec<(TopicPartition, Arc<PartitionLog>)> {
        self.partitions
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
            .map(|(k, v)| (k.clone(), Arc::clone(v)))
            .collect()
    }

    /// One retention pass over every partition (see `PartitionLog::delete_old_segments`);
    /// rewrites the checkpoints if a log start offset moved. Returns the segments deleted.
    pub(crate) fn run_retention(&self, now_ms: i64, producer_expiration_ms: Option<i64>) -> usize {
        let mut deleted = 0;
        for (tp, p) in self.all() {
            match p.delete_old_segments(Some(now_ms)) {
                Ok(n) => deleted += n,
                Err(e) => tracing::error!(partition = %tp, error = %e, "retention failed"),
            }
            if let Some(expiration) = producer_expiration_ms {
                let expired = p.expire_producers(now_ms, expiration);
                if expired > 0 {
                    tracing::debug!(partition = %tp, expired, "expired idle producer ids");
                }
            }
        }
        if deleted > 0 {
            if let Err(e) = self.write_checkpoints() {
                tracing::error!(error = %e, "writing log checkpoints failed");
            }
        }
        deleted
    }

    /// Writes both checkpoints: recovery point = durable offset of every online partition.
    pub(crate) fn write_checkpoints(&self) -> Result<(), LogError> {
        let _g = self
            .checkpoint_lock
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut rp = BTreeMap::new();
        let mut ls = BTreeMap::new();
        for (tp, p) in self.all() {
            if p.is_offline() {
                continue;
            }
            rp.insert(tp.clone(), p.durable_offset().get());
            ls.insert(tp, p.log_start_offset().get());
        }
        let io = self.io.as_ref();
        write_offset_checkpoint(io, &self.log_dir.join(RECOVERY_POINT_FILE), &rp)?;
        write_offset_checkpoint(io, &self.log_dir.join(LOG_START_FILE), &ls)?;
        drop(_g);
        self.write_cleaner_checkpoint()
    }

    /// Writes `cleaner-offset-checkpoint`: the first dirty offset of every compacted partition.
    pub(crate) fn write_cleaner_checkpoint(&self) -> Result<(), LogError> {
        let _g = self
            .checkpoint_lock
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let positions: BTreeMap<TopicPartition, i64> = self
            .all()
            .into_iter()
            .filter(|(_, p)| !p.is_offline() && p.config().compact)
            .map(|(tp, p)| (tp, p.first_dirty_offset()))
            .collect();
        write_offset_checkpoint(
            self.io.as_ref(),
            &self.log_dir.join(CLEANER_FILE),
            &positions,
        )?;
        Ok(())
    }
}

/// A background thread that runs until its stop sender is dropped.
#[derive(Debug, Default)]
struct Background(Mutex<Option<(mpsc::Sender<()>, JoinHandle<()>)>>);

impl Background {
    /// Starts `body` on a thread called `name`, replacing (and stopping) any running one.
    /// `body` must return once its receiver gets a message or is disconnected.
    fn start(
        &self,
        name: &str,
        body: impl FnOnce(mpsc::Receiver<()>) + Send + 'static,
    ) -> Result<(), LogError> {
        self.stop(name);
        let (tx, rx) = mpsc::channel::<()>();
        let handle = std::thread::Builder::new()
            .name(name.into())
            .spawn(move || body(rx))?;
        *self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some((tx, handle));
        Ok(())
    }

    fn stop(&self, name: &str) {
        let running = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        if let Some((tx, handle)) = running {
            drop(tx);
            if handle.join().is_err() {
                tracing::error!(thread = name, "background thread panicked");
            }
        }
    }
}

/// All partition logs of one log directory. See the module docs for thread-safety.
#[derive(Debug)]
pub struct LogManager {
    shared: Arc<Shared>,
    flusher: Mutex<Option<JoinHandle<()>>>,
    /// The retention thread.
    retention: Background,
    /// The log cleaner thread (compaction).
    cleaner: Background,
    admin: Mutex<()>,
}

/// The directory of the cluster's metadata log (Kafka's name), which is not a partition log.
pub const METADATA_LOG_DIR: &str = "__cluster_metadata-0";

/// Parses a partition directory name `<topic>-<partition>`.
fn parse_partition_dir(name: &str) -> Option<TopicPartition> {
    if name == METADATA_LOG_DIR {
        return None;
    }
    let (topic, p) = name.rsplit_once('-')?;
    let partition: i32 = p.parse().ok()?;
    if topic.is_empty() || partition < 0 || !p.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(TopicPartition::new(topic, partition))
}

fn random_hex() -> String {
    format!("{:016x}", crate::common::clock::random_u64())
}

impl LogManager {
    /// Opens every partition directory under `log_dir` (creating `log_dir` if needed),
    /// recovering each, removes stray `-delete` / `.deleted` directories, and starts the flusher
    /// thread. A malformed checkpoint file is ignored with a warning (everything is scanned).
    pub fn open(log_dir: &Path, opts: LogOptions) -> Result<Arc<LogManager>, LogError> {
        Self::open_with_io(log_dir, opts, Arc::new(OsIo))
    }

    /// [`LogManager::open`] with every file-system operation going through `io` (fault
    /// injection and crash models in tests; [`OsIo`] otherwise).
    pub fn open_with_io(
        log_dir: &Path,
        opts: LogOptions,
        io: Arc<dyn FsIo>,
    ) -> Result<Arc<LogManager>, LogError> {
        io.create_dir_all(log_dir)?;
        let ckpt = |name: &str| {
            read_offset_checkpoint(&log_dir.join(name)).unwrap_or_else(|e| {
                tracing::warn!(file = name, error = %e, "ignoring unreadable checkpoint");
                BTreeMap::new()
            })
        };
        let recovery_points = ckpt(RECOVERY_POINT_FILE);
        let log_starts = ckpt(LOG_START_FILE);
        let cleaner_positions = ckpt(CLEANER_FILE);
        let flush = Arc::new(FlushSignal::default());
        let mut partitions = BTreeMap::new();
        for (name, is_dir) in list_dir(log_dir)? {
            if !is_dir {
                continue;
            }
            let path = log_dir.join(&name);
            if name.ends_with("-delete") || name.ends_with(".deleted") {
                tracing::info!(dir = %path.display(), "removing partition left from a deletion");
                io.remove_dir_all(&path)?;
                continue;
            }
            let Some(tp) = parse_partition_dir(&name) else {
                if name == METADATA_LOG_DIR {
                    continue;
                }
                tracing::warn!(dir = %path.display(), "skipping directory that is not a partition");
                continue;
            };
            let (log, _report) = load_partition(
                &path,
                tp.clone(),
                recovery_points.get(&tp).copied(),
                log_starts.get(&tp).copied(),
                &opts,
                Arc::clone(&flush),
                Arc::clone(&io),
            )?;
            if let Some(offset) = cleaner_positions.get(&tp) {
                log.set_first_dirty_offset(*offset);
            }
            partitions.insert(tp, Arc::new(log));
        }
        let shared = Arc::new(Shared {
            log_dir: log_dir.to_path_buf(),
            opts,
            partitions: RwLock::new(partitions),
            flush,
            io,
            checkpoint_lock: Mutex::new(()),
        });
        for (_, p) in shared.all() {
            p.set_checkpointer(Arc::downgrade(&shared));
        }
        let s2 = Arc::clone(&shared);
        let handle = std::thread::Builder::new()
            .name("gregor-log-flusher".into())
            .spawn(move || flusher::run(s2))?;
        Ok(Arc::new(LogManager {
            shared,
            flusher: Mutex::new(Some(handle)),
            retention: Background::default(),
            cleaner: Background::default(),
            admin: Mutex::new(()),
        }))
    }

    /// The partition log of `tp`, if it exists.
    pub fn get(&self, tp: &TopicPartition) -> Option<Arc<PartitionLog>> {
        self.shared.get(tp)
    }

    /// All partition logs, ordered by topic and partition.
    pub fn all(&self) -> Vec<(TopicPartition, Arc<PartitionLog>)> {
        self.shared.all()
    }

    /// The broker-wide defaults a partition starts from (before topic overrides).
    pub fn default_config(&self) -> LogConfig {
        LogConfig::from_options(&self.shared.opts)
    }

    /// The log directory.
    pub fn log_dir(&self) -> &Path {
        &self.shared.log_dir
    }

    /// Creates the partition directory, `partition.metadata` and an empty first segment.
    /// Idempotent if the partition exists with the same topic id; `TopicIdMismatch` otherwise.
    pub fn create(
        &self,
        tp: &TopicPartition,
        topic_id: crate::common::TopicId,
    ) -> Result<Arc<PartitionLog>, LogError> {
        self.create_with_config(tp, topic_id, None)
    }

    /// [`LogManager::create`] with the topic's settings in place before the partition becomes
    /// visible, so no append ever sees the defaults. An existing partition gets `config` too.
    pub fn create_with_config(
        &self,
        tp: &TopicPartition,
        topic_id: crate::common::TopicId,
        config: Option<LogConfig>,
    ) -> Result<Arc<PartitionLog>, LogError> {
        let _admin = self
            .admin
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(p) = self.get(tp) {
            if p.topic_id() == topic_id {
                if let Some(c) = config {
                    p.set_config(c);
                }
                return Ok(p);
            }
            return Err(LogError::TopicIdMismatch { tp: tp.to_string() });
        }
        let dir = self.shared.log_dir.join(tp.dir_name());
        let io = self.shared.io.as_ref();
        io.create_dir_all(&dir)?;
        write_partition_metadata(io, &dir, topic_id)?;
        let seg = Segment::create(io, &dir, 0, self.shared.opts.index_interval_bytes)?;
        io.sync_dir(&dir)?;
        io.sync_dir(&self.shared.log_dir)?;
        let log = Arc::new(PartitionLog::from_parts(
            tp.clone(),
            &dir,
            topic_id,
            self.shared.opts.clone(),
            vec![seg],
            0,
            Default::default(),
            0,
            Arc::clone(&self.shared.flush),
            Arc::clone(&self.shared.io),
        )?);
        if let Some(c) = config {
            log.set_config(c);
        }
        log.set_checkpointer(Arc::downgrade(&self.shared));
        self.shared
            .partitions
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(tp.clone(), Arc::clone(&log));
        Ok(log)
    }

    /// Removes the partition: renames its directory to `<topic>-<p>.<random hex>-delete`, drops it
    /// from the map (its durability waiters fail), then removes the directory from disk. A crash
    /// in between leaves a `-delete` directory that the next `open` removes.
    pub fn delete(&self, tp: &TopicPartition) -> Result<(), LogError> {
        let _admin = self
            .admin
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let p = self
            .get(tp)
            .ok_or_else(|| LogError::UnknownPartition(tp.to_string()))?;
        let from = p.dir().to_path_buf();
        let to = self
            .shared
            .log_dir
            .join(format!("{}.{}-delete", tp.dir_name(), random_hex()));
        let io = self.shared.io.as_ref();
        io.rename(&from, &to)?;
        io.sync_dir(&self.shared.log_dir)?;
        self.shared
            .partitions
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(tp);
        p.poison();
        // Cached descriptors would keep the deleted files' space allocated.
        super::fd_cache::global().forget_dir(&from);
        io.remove_dir_all(&to)?;
        Ok(())
    }

    /// Starts the retention thread: a pass every `interval` (`log.retention.check.interval.ms`).
    /// Calling it again replaces the thread.
    /// Each round also forgets producer ids idle for `producer_expiration_ms`
    /// (`producer.id.expiration.ms`).
    pub fn start_retention(
        &self,
        interval: std::time::Duration,
        producer_expiration_ms: i64,
    ) -> Result<(), LogError> {
        let shared = Arc::clone(&self.shared);
        self.retention.start(RETENTION_THREAD, move |rx| {
            // Any message or a dropped sender stops the thread.
            while let Err(mpsc::RecvTimeoutError::Timeout) = rx.recv_timeout(interval) {
                shared.run_retention(crate::common::now_ms(), Some(producer_expiration_ms));
            }
        })
    }

    /// Starts the log cleaner thread (see `cleaner_thread`): it sleeps `backoff`
    /// (`log.cleaner.backoff.ms`) when no partition needs cleaning and gives each pass a key
    /// map of about `dedupe_buffer` bytes. Calling it again replaces the thread.
    pub fn start_cleaner(
        &self,
        backoff: std::time::Duration,
        dedupe_buffer: usize,
    ) -> Result<(), LogError> {
        let shared = Arc::clone(&self.shared);
        self.cleaner.start(CLEANER_THREAD, move |rx| {
            cleaner_thread::run(shared, backoff, dedupe_buffer, rx)
        })
    }

    /// One cleaner round now (tests, admin): compacts every partition that needs it with a key
    /// map of about `dedupe_buffer` bytes; returns the partitions cleaned.
    pub fn run_cleaner(&self, dedupe_buffer: usize) -> usize {
        cleaner_thread::run_once(&self.shared, crate::common::now_ms(), dedupe_buffer, || {
            false
        })
    }

    /// One retention pass now (tests, admin); returns the segments deleted.
    pub fn run_retention(&self) -> usize {
        self.shared.run_retention(crate::common::now_ms(), None)
    }

    fn stop_background(&self) {
        self.cleaner.stop(CLEANER_THREAD);
        self.retention.stop(RETENTION_THREAD);
    }

    fn stop_flusher(&self) {
        self.shared.flush.stop();
        let handle = self
            .flusher
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        if let Some(h) = handle {
            if h.join().is_err() {
                tracing::error!("log flusher thread panicked");
            }
        }
    }

    /// Stops the flusher, flushes every partition and writes both checkpoints. Call on graceful
    /// shutdown; later `wait_durable` calls fail with `ShutDown`. Safe to call more than once.
    pub fn shutdown(&self) -> Result<(), LogError> {
        self.stop_background();
        self.stop_flusher();
        let mut first_err = None;
        for (_, p) in self.all() {
            if p.is_offline() {
                continue;
            }
            match p.flush() {
                Ok(true) => {}
                Ok(false) => {}
                Err(e) => {
                    first_err.get_or_insert(e);
                }
            }
        }
        self.shared.write_checkpoints()?;
        match first_err {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Number of partition fdatasync rounds the flusher has done (metrics and tests).
    pub fn fsync_count(&self) -> u64 {
        self.shared.flush.fsync_count()
    }

    /// Writes both checkpoints now (normally done by the flusher every
    /// `checkpoint_interval_ms` and at shutdown).
    pub fn checkpoint(&self) -> Result<(), LogError> {
        self.shared.write_checkpoints()
    }

    /// Recovery points as they would be checkpointed now, by partition.
    pub fn recovery_points(&self) -> HashMap<TopicPartition, i64> {
        self.all()
            .into_iter()
            .map(|(tp, p)| (tp, p.durable_offset().get()))
            .collect()
    }
}

impl Drop for LogManager {
    /// Stops the flusher thread without a final flush or checkpoint (that is `shutdown`'s job).
    fn drop(&mut self) {
        self.stop_background();
        self.stop_flusher();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partition_dir_names() {
        assert_eq!(
            parse_partition_dir("orders-3"),
            Some(TopicPartition::new("orders", 3))
        );
        assert_eq!(
            parse_partition_dir("my-topic-12"),
            Some(TopicPartition::new("my-topic", 12))
        );
        assert_eq!(parse_partition_dir("orders"), None);
        // Topic names may end with a dash.
        assert_eq!(
            parse_partition_dir("orders--1"),
            Some(TopicPartition::new("orders-", 1))
        );
        assert_eq!(parse_partition_dir("-1"), None);
        assert_eq!(parse_partition_dir("x-+1"), None);
    }
}
