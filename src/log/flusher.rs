//! The group-commit flusher: one std thread per [`LogManager`](super::LogManager). Producers
//! waiting for durability register their partition here; the thread drains the dirty set, gives
//! each partition one fdatasync covering everything appended so far, and publishes the durable
//! offset, so many waiters share one fsync. It also flushes every partition every
//! `flush_interval_ms` and writes the recovery-point checkpoint every `checkpoint_interval_ms`.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::manager::Shared;
use super::{LogError, PartitionLog, TopicPartition};

#[derive(Debug, Default)]
struct FlushState {
    dirty: BTreeSet<TopicPartition>,
    stop: bool,
}

/// The handle partitions use to ask the flusher for work. Thread-safe.
#[derive(Debug, Default)]
pub struct FlushSignal {
    state: Mutex<FlushState>,
    cv: Condvar,
    fsyncs: AtomicU64,
}

fn lock(m: &Mutex<FlushState>) -> MutexGuard<'_, FlushState> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl FlushSignal {
    /// Marks `tp` dirty and wakes the flusher. Fails once the flusher has stopped.
    pub(crate) fn request(&self, tp: &TopicPartition) -> Result<(), LogError> {
        let mut st = lock(&self.state);
        if st.stop {
            return Err(LogError::ShutDown);
        }
        if !st.dirty.contains(tp) {
            st.dirty.insert(tp.clone());
        }
        self.cv.notify_one();
        Ok(())
    }

    /// Asks the flusher thread to exit.
    pub(crate) fn stop(&self) {
        lock(&self.state).stop = true;
        self.cv.notify_all();
    }

    /// Number of partition fdatasync rounds performed (one per flushed partition per round).
    pub fn fsync_count(&self) -> u64 {
        self.fsyncs.load(Ordering::Relaxed)
    }

    /// Counts one partition fsync round (called by the partition before publishing).
    pub(crate) fn count_fsync(&self) {
        self.fsyncs.fetch_add(1, Ordering::Relaxed);
    }

    /// Flushes one partition, counting the fsync and logging failures (the partition poisons
    /// itself on error and fails its waiters).
    pub(crate) fn flush_partition(&self, p: &PartitionLog) {
        if p.is_offline() {
            return;
        }
        match p.flush() {
            Ok(_) => {}
            Err(e) => {
                tracing::error!(partition = %p.topic_partition(), error = %e, "log flush failed; partition is offline")
            }
        }
    }
}

/// Body of the flusher thread. Returns when [`FlushSignal::stop`] is called.
pub(crate) fn run(shared: Arc<Shared>) {
    let signal = Arc::clone(&shared.flush);
    let flush_every = Duration::from_millis(shared.opts.flush_interval_ms.max(1));
    let ckpt_every = Duration::from_millis(shared.opts.checkpoint_interval_ms.max(1));
    let mut next_flush = Instant::now() + flush_every;
    let mut next_ckpt = Instant::now() + ckpt_every;
    loop {
        let dirty = {
            let mut st = lock(&signal.state);
            loop {
                if st.stop {
                    return;
                }
                if !st.dirty.is_empty() {
                    break std::mem::take(&mut st.dirty);
                }
                let now = Instant::now();
                let deadline = next_flush.min(next_ckpt);
                if now >= deadline {
                    break BTreeSet::new();
                }
                st = signal
                    .cv
                    .wait_timeout(st, deadline - now)
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .0;
            }
        };
        for tp in &dirty {
            if let Some(p) = shared.get(tp) {
                signal.flush_partition(&p);
            }
        }
        let now = Instant::now();
        if now >= next_flush {
            for (_, p) in shared.all() {
                signal.flush_partition(&p);
            }
            next_flush = now + flush_every;
        }
        if now >= next_ckpt {
            if let Err(e) = shared.write_checkpoints() {
                tracing::error!(error = %e, "writing log checkpoints failed");
            }
            next_ckpt = now + ckpt_every;
        }
    }
}
