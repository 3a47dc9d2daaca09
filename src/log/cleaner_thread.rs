//! The log cleaner thread (`log.cleaner.enable`): picks the compacted partitions that need a
//! pass — dirty ratio above `min.cleanable.dirty.ratio`, or a dirty record older than
//! `max.compaction.lag.ms` — overdue ones first, then the dirtiest, compacts each
//! (`PartitionLog::compact_within`), and records the cleaner's positions in
//! `cleaner-offset-checkpoint`. When no partition needs cleaning it sleeps
//! `log.cleaner.backoff.ms`. One thread, as Kafka's default `log.cleaner.threads = 1`.

use std::sync::{mpsc, Arc};
use std::time::Duration;

use super::manager::Shared;
use super::PartitionLog;
use crate::common::now_ms;

/// Body of the cleaner thread; returns when `stop` receives a message or its sender is
/// dropped.
pub(crate) fn run(shared: Arc<Shared>, backoff: Duration, budget: usize, stop: mpsc::Receiver<()>) {
    loop {
        let worked = run_once(&shared, now_ms(), budget, || {
            !matches!(stop.try_recv(), Err(mpsc::TryRecvError::Empty))
        });
        let wait = if worked > 0 { Duration::ZERO } else { backoff };
        if !matches!(
            stop.recv_timeout(wait),
            Err(mpsc::RecvTimeoutError::Timeout)
        ) {
            return;
        }
    }
}

/// One round: cleans every partition that needs it (checking `stopping` between partitions)
/// and rewrites the cleaner checkpoint if any was cleaned. Returns the partitions cleaned.
pub(crate) fn run_once(
    shared: &Shared,
    now_ms: i64,
    budget: usize,
    stopping: impl Fn() -> bool,
) -> usize {
    let mut due: Vec<(bool, f64, Arc<PartitionLog>)> = shared
        .all()
        .into_iter()
        .filter_map(|(_, p)| {
            let c = p.cleanability(now_ms)?;
            c.needs_cleaning()
                .then(|| (c.overdue, c.dirty_ratio(), Arc::clone(&p)))
        })
        .collect();
    // Overdue partitions first, then the dirtiest (Kafka's "filthiest log" order).
    due.sort_by(|a, b| b.0.cmp(&a.0).then(b.1.total_cmp(&a.1)));
    let mut cleaned = 0;
    for (_, ratio, p) in due {
        if stopping() {
            break;
        }
        match p.compact_within(now_ms, budget) {
            Ok(rewritten) => {
                tracing::debug!(partition = %p.topic_partition(), dirty_ratio = ratio, rewritten, "cleaned partition");
                cleaned += 1;
            }
            Err(e) => {
                tracing::error!(partition = %p.topic_partition(), error = %e, "compaction failed")
            }
        }
    }
    if cleaned > 0 {
        if let Err(e) = shared.write_cleaner_checkpoint() {
            tracing::error!(error = %e, "writing the cleaner checkpoint failed");
        }
    }
    cleaned
}
