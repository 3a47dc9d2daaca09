//! Per-partition transaction state: which producers have a transaction open here (and the
//! offset it began at), and the aborted transactions read_committed consumers must skip.
//!
//! The last stable offset (LSO) is the first offset of the oldest open transaction, or the high
//! watermark when none is open: read_committed consumers read only below it. A transaction
//! opens at its producer's first transactional batch in the partition and closes at the
//! producer's marker (a control batch); an aborted one is remembered as (producer id, first
//! offset, last offset = the marker's offset), Kafka's aborted-transaction index entry.
//! Pure data: the partition keeps it under its lock.

use std::collections::BTreeMap;

use crate::records::build::MarkerKind;

/// One aborted transaction of one producer in this partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AbortedTxn {
    /// The producer whose records in `first_offset..=last_offset` are aborted.
    pub producer_id: i64,
    /// Offset of the transaction's first batch.
    pub first_offset: i64,
    /// Offset of the abort marker.
    pub last_offset: i64,
}

/// See the module docs.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct TxnState {
    /// Open transactions: producer id → offset of its first batch.
    open: BTreeMap<i64, i64>,
    /// Aborted transactions in marker order (so sorted by `last_offset`).
    aborted: Vec<AbortedTxn>,
}

impl TxnState {
    /// Accounts for a transactional data batch at `base_offset`.
    pub fn on_data(&mut self, producer_id: i64, base_offset: i64) {
        self.open.entry(producer_id).or_insert(base_offset);
    }

    /// Accounts for `producer_id`'s marker at `offset`; returns the aborted transaction it
    /// closes, if it is an abort. A marker without an open transaction (a retried EndTxn, or
    /// a transaction that wrote nothing here) aborts nothing.
    pub fn on_marker(
        &mut self,
        producer_id: i64,
        offset: i64,
        kind: MarkerKind,
    ) -> Option<AbortedTxn> {
        let first_offset = self.open.remove(&producer_id)?;
        match kind {
            MarkerKind::Commit => None,
            MarkerKind::Abort => {
                let t = AbortedTxn {
                    producer_id,
                    first_offset,
                    last_offset: offset,
                };
                self.aborted.push(t);
                Some(t)
            }
        }
    }

    /// Restores an aborted transaction read from disk (in marker order).
    pub fn restore_aborted(&mut self, t: AbortedTxn) {
        self.aborted.push(t);
    }

    /// First offset of the oldest open transaction.
    pub fn first_unstable_offset(&self) -> Option<i64> {
        self.open.values().min().copied()
    }

    /// The last stable offset for a high watermark of `high_watermark`.
    pub fn last_stable_offset(&self, high_watermark: i64) -> i64 {
        self.first_unstable_offset()
            .map_or(high_watermark, |o| o.min(high_watermark))
    }

    /// Aborted transactions that overlap offsets `from..to` (what a read_committed Fetch of
    /// that range returns), oldest first.
    pub fn aborted_between(&self, from: i64, to: i64) -> Vec<AbortedTxn> {
        // Sorted by last_offset: skip those that ended before `from`.
        let start = self.aborted.partition_point(|t| t.last_offset < from);
        self.aborted[start..]
            .iter()
            .filter(|t| t.first_offset < to)
            .copied()
            .collect()
    }

    /// Forgets aborted transactions wholly below `log_start_offset` (their records are gone).
    pub fn trim_before(&mut self, log_start_offset: i64) {
        self.aborted.retain(|t| t.last_offset >= log_start_offset);
    }

    /// Open transactions as (producer id, first offset).
    pub fn open_transactions(&self) -> Vec<(i64, i64)> {
        self.open.iter().map(|(p, o)| (*p, *o)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lso_follows_the_oldest_open_transaction() {
        let mut s = TxnState::default();
        assert_eq!(s.last_stable_offset(10), 10);
        s.on_data(7, 10);
        s.on_data(7, 12); // same transaction
        s.on_data(8, 11);
        assert_eq!(s.last_stable_offset(20), 10);
        assert_eq!(s.on_marker(7, 20, MarkerKind::Commit), None);
        assert_eq!(s.last_stable_offset(21), 11);
        let aborted = s.on_marker(8, 21, MarkerKind::Abort).unwrap();
        assert_eq!(
            aborted,
            AbortedTxn {
                producer_id: 8,
                first_offset: 11,
                last_offset: 21
            }
        );
        assert_eq!(s.last_stable_offset(22), 22);
        assert_eq!(s.on_marker(8, 22, MarkerKind::Abort), None, "nothing open");
    }

    #[test]
    fn aborted_between_returns_overlapping_transactions() {
        let mut s = TxnState::default();
        for (pid, first, last) in [(1, 0, 5), (2, 3, 9), (3, 10, 12)] {
            s.on_data(pid, first);
            s.on_marker(pid, last, MarkerKind::Abort);
        }
        let ids = |v: Vec<AbortedTxn>| v.iter().map(|t| t.producer_id).collect::<Vec<_>>();
        assert_eq!(ids(s.aborted_between(0, 100)), vec![1, 2, 3]);
        assert_eq!(ids(s.aborted_between(6, 10)), vec![2]);
        assert_eq!(ids(s.aborted_between(6, 11)), vec![2, 3]);
        assert_eq!(ids(s.aborted_between(13, 20)), Vec::<i64>::new());
        s.trim_before(6);
        assert_eq!(ids(s.aborted_between(0, 100)), vec![2, 3]);
    }
}
