//! Partitions led here that another broker's transaction coordinator confirmed to be in a
//! producer's ongoing transaction (KIP-890 part 1 verification across brokers). The leader
//! asks the coordinator once per transaction and partition and remembers the answer until the
//! transaction's marker is written here, as Kafka's leader keeps a verification entry in the
//! partition's producer state: a late batch of an ended transaction then has to be verified
//! again, and is refused. Thread-safe; entries older than the longest transaction timeout are
//! dropped, so a marker that never comes (a deleted topic) does not keep one forever.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// (producer id, topic, partition) → (producer epoch verified, when).
type Entries = HashMap<(i64, String, i32), (i16, Instant)>;

/// See the module docs.
#[derive(Debug)]
pub struct VerifiedPartitions {
    entries: Mutex<Entries>,
    /// How long an entry may live: `transaction.max.timeout.ms` (no transaction is open longer).
    max_age: Duration,
}

impl VerifiedPartitions {
    /// An empty set whose entries live at most `max_age`.
    pub fn new(max_age: Duration) -> VerifiedPartitions {
        VerifiedPartitions {
            entries: Mutex::new(HashMap::new()),
            max_age,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Entries> {
        // Each critical section is one map operation; a panic cannot leave it half done.
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records that `producer_id` at `epoch` has `topic`/`partition` in its transaction.
    pub fn insert(&self, producer_id: i64, epoch: i16, topic: &str, partition: i32) {
        let now = Instant::now();
        let mut entries = self.lock();
        entries.retain(|_, (_, at)| now.duration_since(*at) < self.max_age);
        entries.insert((producer_id, topic.to_string(), partition), (epoch, now));
    }

    /// True if `producer_id` at exactly `epoch` was verified for `topic`/`partition` and its
    /// marker has not been written here since.
    pub fn contains(&self, producer_id: i64, epoch: i16, topic: &str, partition: i32) -> bool {
        self.lock()
            .get(&(producer_id, topic.to_string(), partition))
            .is_some_and(|(e, at)| *e == epoch && at.elapsed() < self.max_age)
    }

    /// The marker of `producer_id`'s transaction was written to `topic`/`partition`: its next
    /// transaction there is verified anew.
    pub fn remove(&self, producer_id: i64, topic: &str, partition: i32) {
        self.lock()
            .remove(&(producer_id, topic.to_string(), partition));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_entry_holds_for_its_epoch_until_the_marker() {
        let v = VerifiedPartitions::new(Duration::from_secs(60));
        assert!(!v.contains(7, 0, "t", 1));
        v.insert(7, 3, "t", 1);
        assert!(v.contains(7, 3, "t", 1));
        assert!(!v.contains(7, 2, "t", 1), "another epoch");
        assert!(!v.contains(7, 3, "t", 0), "another partition");
        assert!(!v.contains(8, 3, "t", 1), "another producer");
        v.remove(7, "t", 1);
        assert!(!v.contains(7, 3, "t", 1), "the marker ends it");
    }

    #[test]
    fn entries_expire() {
        let v = VerifiedPartitions::new(Duration::ZERO);
        v.insert(7, 3, "t", 1);
        assert!(!v.contains(7, 3, "t", 1));
    }
}
