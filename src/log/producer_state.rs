//! Idempotent-producer state of one partition: per producer id, the epoch and the last five
//! batches' sequence ranges and offsets, to detect duplicates, gaps and fenced epochs.
//! Not thread-safe by itself: owned by a partition under the partition lock.

use std::collections::{HashMap, VecDeque};

use super::LogError;

/// How many recent batches are remembered per producer (Kafka's in-flight request limit).
pub const MAX_REMEMBERED_BATCHES: usize = 5;

/// One remembered batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchMeta {
    /// First sequence.
    pub first_seq: i32,
    /// Last sequence.
    pub last_seq: i32,
    /// Base offset assigned.
    pub base_offset: i64,
    /// Last offset assigned.
    pub last_offset: i64,
}

#[derive(Debug, Clone)]
struct ProducerEntry {
    epoch: i16,
    batches: VecDeque<BatchMeta>,
    /// The max timestamp of the producer's last batch or marker, -1 if unknown.
    last_timestamp: i64,
    /// The coordinator epoch of the last transaction marker written for it, -1 if none.
    coordinator_epoch: i32,
}

impl ProducerEntry {
    fn new(epoch: i16) -> ProducerEntry {
        ProducerEntry {
            epoch,
            batches: VecDeque::new(),
            last_timestamp: -1,
            coordinator_epoch: -1,
        }
    }
}

/// What a snapshot and DescribeProducers know of one producer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProducerSummary {
    pub producer_id: i64,
    pub epoch: i16,
    /// The last batch (`None` if known only by a marker).
    pub last: Option<BatchMeta>,
    pub last_timestamp: i64,
    pub coordinator_epoch: i32,
}

/// Result of checking a batch against the producer state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeqCheck {
    /// Append it.
    Accept,
    /// Already appended: answer with the original offsets.
    Duplicate(BatchMeta),
}

/// Producer state of one partition.
#[derive(Debug, Default, Clone)]
pub struct ProducerState {
    producers: HashMap<i64, ProducerEntry>,
}

fn next_seq(seq: i32) -> i32 {
    if seq == i32::MAX {
        0
    } else {
        seq + 1
    }
}

impl ProducerState {
    /// Checks a batch of an idempotent producer (`producer_id >= 0`).
    pub fn check(
        &self,
        producer_id: i64,
        epoch: i16,
        first_seq: i32,
        last_seq: i32,
    ) -> Result<SeqCheck, LogError> {
        let Some(entry) = self.producers.get(&producer_id) else {
            return Ok(SeqCheck::Accept);
        };
        if epoch < entry.epoch {
            return Err(LogError::InvalidProducerEpoch {
                producer_id,
                current: entry.epoch,
                got: epoch,
            });
        }
        if epoch > entry.epoch {
            if first_seq != 0 {
                return Err(LogError::OutOfOrderSequence {
                    producer_id,
                    expected: 0,
                    got: first_seq,
                });
            }
            return Ok(SeqCheck::Accept);
        }
        if let Some(b) = entry
            .batches
            .iter()
            .find(|b| b.first_seq == first_seq && b.last_seq == last_seq)
        {
            return Ok(SeqCheck::Duplicate(*b));
        }
        match entry.batches.back() {
            Some(last) if first_seq != next_seq(last.last_seq) => {
                Err(LogError::OutOfOrderSequence {
                    producer_id,
                    expected: next_seq(last.last_seq),
                    got: first_seq,
                })
            }
            _ => Ok(SeqCheck::Accept),
        }
    }

    /// Records an appended batch whose max timestamp is `timestamp` (also used when rebuilding
    /// from the log).
    pub fn update(&mut self, producer_id: i64, epoch: i16, meta: BatchMeta, timestamp: i64) {
        let entry = self
            .producers
            .entry(producer_id)
            .or_insert_with(|| ProducerEntry::new(epoch));
        entry.last_timestamp = timestamp;
        if epoch != entry.epoch {
            entry.epoch = epoch;
            entry.batches.clear();
        }
        if entry.batches.len() == MAX_REMEMBERED_BATCHES {
            entry.batches.pop_front();
        }
        entry.batches.push_back(meta);
    }

    /// Records a transaction marker written with `epoch`: a newer epoch (the coordinator bumped
    /// it, e.g. after a timeout) fences the producer's older epoch in this partition, as Kafka
    /// does; its sequence numbers start again at 0.
    /// The marker's coordinator epoch and timestamp become the producer's latest.
    pub fn observe_marker(
        &mut self,
        producer_id: i64,
        epoch: i16,
        coordinator_epoch: i32,
        timestamp: i64,
    ) {
        let entry = self
            .producers
            .entry(producer_id)
            .or_insert_with(|| ProducerEntry::new(epoch));
        entry.coordinator_epoch = coordinator_epoch;
        entry.last_timestamp = timestamp;
        if epoch > entry.epoch {
            entry.epoch = epoch;
            entry.batches.clear();
        }
    }

    /// Every producer's summary, by producer id, for a snapshot or DescribeProducers.
    pub fn summaries(&self) -> Vec<ProducerSummary> {
        let mut out: Vec<_> = self
            .producers
            .iter()
            .map(|(pid, e)| ProducerSummary {
                producer_id: *pid,
                epoch: e.epoch,
                last: e.batches.back().copied(),
                last_timestamp: e.last_timestamp,
                coordinator_epoch: e.coordinator_epoch,
            })
            .collect();
        out.sort_by_key(|s| s.producer_id);
        out
    }

    /// Restores a producer read from a snapshot.
    pub fn restore(&mut self, summary: ProducerSummary) {
        self.producers.insert(
            summary.producer_id,
            ProducerEntry {
                epoch: summary.epoch,
                batches: summary.last.into_iter().collect(),
                last_timestamp: summary.last_timestamp,
                coordinator_epoch: summary.coordinator_epoch,
            },
        );
    }

    /// Forgets the producers `keep` does not want (expiry, eviction); returns how many went.
    pub fn retain(&mut self, mut keep: impl FnMut(&ProducerSummary) -> bool) -> usize {
        let before = self.producers.len();
        self.producers.retain(|pid, e| {
            keep(&ProducerSummary {
                producer_id: *pid,
                epoch: e.epoch,
                last: e.batches.back().copied(),
                last_timestamp: e.last_timestamp,
                coordinator_epoch: e.coordinator_epoch,
            })
        });
        before - self.producers.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(first: i32, last: i32, base: i64) -> BatchMeta {
        BatchMeta {
            first_seq: first,
            last_seq: last,
            base_offset: base,
            last_offset: base + i64::from(last - first),
        }
    }

    #[test]
    fn sequence_rules() {
        let mut s = ProducerState::default();
        assert_eq!(s.check(1, 0, 17, 20).unwrap(), SeqCheck::Accept);
        s.update(1, 0, meta(0, 4, 100), 0);
        assert_eq!(s.check(1, 0, 5, 9).unwrap(), SeqCheck::Accept);
        assert_eq!(
            s.check(1, 0, 0, 4).unwrap(),
            SeqCheck::Duplicate(meta(0, 4, 100))
        );
        assert!(matches!(
            s.check(1, 0, 6, 9),
            Err(LogError::OutOfOrderSequence { expected: 5, .. })
        ));
        assert!(matches!(
            s.check(1, 1, 3, 4),
            Err(LogError::OutOfOrderSequence { expected: 0, .. })
        ));
        assert_eq!(s.check(1, 1, 0, 4).unwrap(), SeqCheck::Accept);
        s.update(1, 1, meta(0, 0, 200), 0);
        assert!(matches!(
            s.check(1, 0, 1, 1),
            Err(LogError::InvalidProducerEpoch { current: 1, .. })
        ));
    }

    #[test]
    fn window_keeps_five_and_wraps() {
        let mut s = ProducerState::default();
        for i in 0..7 {
            s.update(9, 0, meta(i, i, i64::from(i)), 0);
        }
        assert!(matches!(
            s.check(9, 0, 0, 0),
            Err(LogError::OutOfOrderSequence { .. })
        ));
        assert!(matches!(
            s.check(9, 0, 2, 2).unwrap(),
            SeqCheck::Duplicate(_)
        ));
        s.update(9, 0, meta(i32::MAX - 1, i32::MAX, 50), 0);
        assert_eq!(s.check(9, 0, 0, 3).unwrap(), SeqCheck::Accept);
    }
}
