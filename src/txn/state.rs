//! One transactional id's state and its transitions, as pure functions: which request is
//! allowed in which state, and what the next (to be persisted) state is. Mirrors Kafka's
//! TransactionMetadata and the checks of its TransactionCoordinator (transactions v1: the
//! producer epoch is bumped only by InitProducerId and by fencing, never by EndTxn).
//!
//! No I/O and no locking here: the coordinator holds the id's mutex around these calls, writes
//! the returned [`TxnData`] to `__transaction_state`, and installs it once durable.

use std::collections::BTreeSet;

use super::error::TxnError;
use super::records::{TxnStatus, TxnValue};

/// Epochs at or above this are exhausted: the next bump moves to a new producer id
/// (Kafka's `TransactionMetadata.isEpochExhausted`: `epoch >= Short.MaxValue - 1`).
pub fn epoch_exhausted(epoch: i16) -> bool {
    epoch >= i16::MAX - 1
}

/// The durable part of a transactional id's state (what one `__transaction_state` record
/// holds, plus the previous producer id/epoch KIP-360 retries are checked against).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnData {
    pub producer_id: i64,
    /// The producer id before the last rotation (-1 if none): a retry of the InitProducerId
    /// that rotated it is recognised by it.
    pub last_producer_id: i64,
    pub producer_epoch: i16,
    /// The epoch before the last KIP-360 bump (-1 if none), for retried InitProducerId.
    pub last_producer_epoch: i16,
    pub timeout_ms: i32,
    pub state: TxnStatus,
    pub partitions: BTreeSet<(String, i32)>,
    /// When the current transaction began (its first AddPartitions), -1 if none.
    pub start_ms: i64,
    pub last_update_ms: i64,
}

impl TxnData {
    /// A new transactional id: a producer id but no epoch yet (Kafka's NO_PRODUCER_EPOCH),
    /// state Empty. Never persisted as is: InitProducerId bumps the epoch to 0 first.
    pub fn new(producer_id: i64, timeout_ms: i32, now_ms: i64) -> TxnData {
        TxnData {
            producer_id,
            last_producer_id: -1,
            producer_epoch: -1,
            last_producer_epoch: -1,
            timeout_ms,
            state: TxnStatus::Empty,
            partitions: BTreeSet::new(),
            start_ms: -1,
            last_update_ms: now_ms,
        }
    }

    /// The record value for this state.
    pub fn to_value(&self) -> TxnValue {
        let mut partitions: Vec<(String, Vec<i32>)> = Vec::new();
        for (topic, p) in &self.partitions {
            match partitions.last_mut() {
                Some((t, ids)) if t == topic => ids.push(*p),
                _ => partitions.push((topic.clone(), vec![*p])),
            }
        }
        TxnValue {
            producer_id: self.producer_id,
            producer_epoch: self.producer_epoch,
            timeout_ms: self.timeout_ms,
            status: self.state,
            partitions,
            last_update_ms: self.last_update_ms,
            start_ms: self.start_ms,
        }
    }

    /// The state a record value describes (the previous id/epoch are not stored in v0).
    pub fn from_value(v: &TxnValue) -> TxnData {
        TxnData {
            producer_id: v.producer_id,
            last_producer_id: -1,
            producer_epoch: v.producer_epoch,
            last_producer_epoch: -1,
            timeout_ms: v.timeout_ms,
            state: v.status,
            partitions: v
                .partitions
                .iter()
                .flat_map(|(t, ids)| ids.iter().map(move |p| (t.clone(), *p)))
                .collect(),
            start_ms: v.start_ms,
            last_update_ms: v.last_update_ms,
        }
    }

    /// KIP-360: may a producer presenting `(producer_id, epoch)` re-initialise this id?
    /// Yes if the id was just created, if it names the current producer id (its epoch is
    /// checked when bumping), or if it names the previous one with an exhausted epoch (a retry
    /// after a rotation). Otherwise it has been fenced.
    pub fn is_valid_producer(&self, producer_id: i64, epoch: i16) -> bool {
        self.producer_epoch == -1
            || producer_id == self.producer_id
            || (producer_id == self.last_producer_id && epoch_exhausted(epoch))
    }

    /// InitProducerId for a transactional id in Empty/CompleteCommit/CompleteAbort: the next
    /// state (Empty) with the epoch bumped, or a new producer id (`new_producer_id`) when the
    /// epoch is exhausted. `expected` is the KIP-360 (producer id, epoch) the client presented.
    /// The caller has already handled Ongoing (fence first) and Prepare* (retry later).
    pub fn prepare_init(
        &self,
        expected: Option<(i64, i16)>,
        timeout_ms: i32,
        now_ms: i64,
        new_producer_id: impl FnOnce() -> Result<i64, TxnError>,
    ) -> Result<TxnData, TxnError> {
        if let Some((pid, epoch)) = expected {
            if !self.is_valid_producer(pid, epoch) {
                return Err(TxnError::ProducerFenced);
            }
        }
        match self.state {
            TxnStatus::Empty | TxnStatus::CompleteCommit | TxnStatus::CompleteAbort => {}
            TxnStatus::PrepareCommit | TxnStatus::PrepareAbort | TxnStatus::Ongoing => {
                return Err(TxnError::ConcurrentTransactions)
            }
            TxnStatus::Dead | TxnStatus::PrepareEpochFence => {
                return Err(TxnError::ConcurrentTransactions)
            }
        }
        let mut next = TxnData {
            state: TxnStatus::Empty,
            partitions: BTreeSet::new(),
            start_ms: -1,
            last_update_ms: now_ms,
            timeout_ms,
            ..self.clone()
        };
        let rotate = epoch_exhausted(self.producer_epoch)
            && expected.is_none_or(|(_, e)| e == self.producer_epoch);
        if rotate {
            next.last_producer_id = self.producer_id;
            next.producer_id = new_producer_id()?;
            next.producer_epoch = 0;
            next.last_producer_epoch = if expected.is_some() {
                self.producer_epoch
            } else {
                -1
            };
            return Ok(next);
        }
        let bumped = self.producer_epoch.saturating_add(1);
        match expected {
            None => {
                next.producer_epoch = bumped;
                next.last_producer_epoch = -1;
            }
            Some((_, e)) if self.producer_epoch == -1 || e == self.producer_epoch => {
                next.producer_epoch = bumped;
                next.last_producer_epoch = self.producer_epoch;
            }
            // A retry of the InitProducerId that bumped to the current epoch: same answer.
            Some((_, e)) if e == self.last_producer_epoch && e >= 0 => {}
            Some(_) => return Err(TxnError::ProducerFenced),
        }
        Ok(next)
    }

    /// Checks a client's (producer id, epoch) against this id, as AddPartitionsToTxn,
    /// AddOffsetsToTxn and EndTxn do (strict epoch equality: clients never bump it there).
    pub fn check_producer(&self, producer_id: i64, epoch: i16) -> Result<(), TxnError> {
        if producer_id != self.producer_id {
            return Err(TxnError::InvalidProducerIdMapping);
        }
        if epoch != self.producer_epoch {
            return Err(TxnError::ProducerFenced);
        }
        Ok(())
    }

    /// AddPartitionsToTxn / AddOffsetsToTxn: `Ok(None)` if every partition is already in the
    /// ongoing transaction (nothing to write), else the Ongoing state with them added.
    pub fn prepare_add(
        &self,
        producer_id: i64,
        epoch: i16,
        partitions: &[(String, i32)],
        now_ms: i64,
    ) -> Result<Option<TxnData>, TxnError> {
        self.check_producer(producer_id, epoch)?;
        match self.state {
            TxnStatus::PrepareCommit | TxnStatus::PrepareAbort => {
                return Err(TxnError::ConcurrentTransactions)
            }
            TxnStatus::Dead | TxnStatus::PrepareEpochFence => {
                return Err(TxnError::InvalidTxnState)
            }
            TxnStatus::Ongoing if partitions.iter().all(|p| self.partitions.contains(p)) => {
                return Ok(None)
            }
            _ => {}
        }
        let mut next = self.clone();
        if self.state != TxnStatus::Ongoing {
            next.start_ms = now_ms;
            next.partitions.clear();
        }
        next.state = TxnStatus::Ongoing;
        next.partitions.extend(partitions.iter().cloned());
        next.last_update_ms = now_ms;
        Ok(Some(next))
    }

    /// EndTxn from a client: `Ok(None)` for a retry of a completed EndTxn with the same
    /// outcome (answered with success), else the PrepareCommit/PrepareAbort state.
    pub fn prepare_end(
        &self,
        producer_id: i64,
        epoch: i16,
        commit: bool,
        now_ms: i64,
    ) -> Result<Option<TxnData>, TxnError> {
        self.check_producer(producer_id, epoch)?;
        match (self.state, commit) {
            (TxnStatus::Ongoing, _) => Ok(Some(self.prepared(commit, now_ms))),
            (TxnStatus::CompleteCommit, true) | (TxnStatus::CompleteAbort, false) => Ok(None),
            (TxnStatus::PrepareCommit, true) | (TxnStatus::PrepareAbort, false) => {
                Err(TxnError::ConcurrentTransactions)
            }
            _ => Err(TxnError::InvalidTxnState),
        }
    }

    /// The coordinator's own abort of an Ongoing transaction (timeout, or InitProducerId
    /// from a new producer instance): PrepareAbort with the epoch bumped, so the old producer
    /// is fenced by the markers and by every later request (Kafka's prepareFenceProducerEpoch
    /// followed by an abort). An epoch at `i16::MAX` cannot be bumped and stays.
    pub fn prepare_fence_abort(&self, now_ms: i64) -> TxnData {
        let mut next = self.prepared(false, now_ms);
        if self.producer_epoch < i16::MAX {
            next.producer_epoch = self.producer_epoch + 1;
        }
        // The previous epoch is kept (Kafka's fence changes only the epoch).
        next
    }

    fn prepared(&self, commit: bool, now_ms: i64) -> TxnData {
        TxnData {
            state: if commit {
                TxnStatus::PrepareCommit
            } else {
                TxnStatus::PrepareAbort
            },
            last_update_ms: now_ms,
            ..self.clone()
        }
    }

    /// After every marker is durable: CompleteCommit/CompleteAbort, no partitions.
    pub fn completed(&self, now_ms: i64) -> TxnData {
        TxnData {
            state: if self.state == TxnStatus::PrepareCommit {
                TxnStatus::CompleteCommit
            } else {
                TxnStatus::CompleteAbort
            },
            partitions: BTreeSet::new(),
            last_update_ms: now_ms,
            ..self.clone()
        }
    }

    /// True for an id without an open transaction whose last update is `expiration_ms` old
    /// (Kafka's transactional.id.expiration.ms): it may be forgotten.
    pub fn expired(&self, now_ms: i64, expiration_ms: i64) -> bool {
        matches!(
            self.state,
            TxnStatus::Empty | TxnStatus::CompleteCommit | TxnStatus::CompleteAbort
        ) && self.last_update_ms.saturating_add(expiration_ms) <= now_ms
    }

    /// True for an Ongoing transaction open longer than its timeout at `now_ms`.
    pub fn timed_out(&self, now_ms: i64) -> bool {
        self.state == TxnStatus::Ongoing
            && self.start_ms >= 0
            && self.start_ms.saturating_add(i64::from(self.timeout_ms)) < now_ms
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fresh() -> TxnData {
        TxnData::new(100, 60_000, 1)
    }

    fn no_new_id() -> Result<i64, TxnError> {
        panic!("no new producer id expected")
    }

    fn parts(list: &[(&str, i32)]) -> Vec<(String, i32)> {
        list.iter().map(|(t, p)| (t.to_string(), *p)).collect()
    }

    #[test]
    fn first_init_gives_epoch_zero_then_bumps() {
        let a = fresh().prepare_init(None, 1000, 5, no_new_id).unwrap();
        assert_eq!(
            (a.producer_id, a.producer_epoch, a.state),
            (100, 0, TxnStatus::Empty)
        );
        assert_eq!(a.timeout_ms, 1000);
        let b = a.prepare_init(None, 1000, 6, no_new_id).unwrap();
        assert_eq!(b.producer_epoch, 1);
    }

    #[test]
    fn kip360_checks_the_presented_producer() {
        let a = fresh().prepare_init(None, 1000, 5, no_new_id).unwrap(); // epoch 0
        let b = a.prepare_init(Some((100, 0)), 1000, 6, no_new_id).unwrap();
        assert_eq!((b.producer_epoch, b.last_producer_epoch), (1, 0));
        // A retry presenting the previous epoch gets the same answer.
        let retry = b.prepare_init(Some((100, 0)), 1000, 7, no_new_id).unwrap();
        assert_eq!(retry.producer_epoch, 1);
        // Another producer id, or an unrelated epoch, is fenced.
        assert_eq!(
            b.prepare_init(Some((7, 1)), 1000, 7, no_new_id),
            Err(TxnError::ProducerFenced)
        );
        let c = b.prepare_init(None, 1000, 8, no_new_id).unwrap(); // epoch 2
        assert_eq!(
            c.prepare_init(Some((100, 0)), 1000, 9, no_new_id),
            Err(TxnError::ProducerFenced)
        );
    }

    #[test]
    fn exhausted_epoch_rotates_the_producer_id() {
        let mut d = fresh();
        d.producer_epoch = i16::MAX - 1;
        let next = d.prepare_init(None, 1000, 5, || Ok(200)).unwrap();
        assert_eq!((next.producer_id, next.producer_epoch), (200, 0));
        assert_eq!(next.last_producer_id, 100);
        // A retry presenting the old id with its exhausted epoch is still valid.
        assert!(next.is_valid_producer(100, i16::MAX - 1));
    }

    #[test]
    fn add_partitions_starts_and_extends_a_transaction() {
        let e = fresh().prepare_init(None, 1000, 5, no_new_id).unwrap();
        assert_eq!(
            e.prepare_add(100, 1, &parts(&[("t", 0)]), 10),
            Err(TxnError::ProducerFenced)
        );
        assert_eq!(
            e.prepare_add(101, 0, &parts(&[("t", 0)]), 10),
            Err(TxnError::InvalidProducerIdMapping)
        );
        let o = e
            .prepare_add(100, 0, &parts(&[("t", 0)]), 10)
            .unwrap()
            .unwrap();
        assert_eq!((o.state, o.start_ms), (TxnStatus::Ongoing, 10));
        assert_eq!(o.prepare_add(100, 0, &parts(&[("t", 0)]), 11), Ok(None));
        let o2 = o
            .prepare_add(100, 0, &parts(&[("u", 1)]), 12)
            .unwrap()
            .unwrap();
        assert_eq!(o2.partitions.len(), 2);
        assert_eq!(
            o2.start_ms, 10,
            "the transaction started at its first partition"
        );
        let v = o2.to_value();
        assert_eq!(TxnData::from_value(&v).partitions, o2.partitions);
    }

    #[test]
    fn end_txn_follows_kafkas_state_rules() {
        let e = fresh().prepare_init(None, 1000, 5, no_new_id).unwrap();
        assert_eq!(
            e.prepare_end(100, 0, true, 6),
            Err(TxnError::InvalidTxnState)
        );
        let o = e
            .prepare_add(100, 0, &parts(&[("t", 0)]), 10)
            .unwrap()
            .unwrap();
        let pc = o.prepare_end(100, 0, true, 11).unwrap().unwrap();
        assert_eq!(pc.state, TxnStatus::PrepareCommit);
        assert_eq!(
            pc.prepare_end(100, 0, true, 12),
            Err(TxnError::ConcurrentTransactions)
        );
        assert_eq!(
            pc.prepare_end(100, 0, false, 12),
            Err(TxnError::InvalidTxnState)
        );
        let cc = pc.completed(13);
        assert_eq!(cc.state, TxnStatus::CompleteCommit);
        assert!(cc.partitions.is_empty());
        assert_eq!(cc.prepare_end(100, 0, true, 14), Ok(None), "retried commit");
        assert_eq!(
            cc.prepare_end(100, 0, false, 14),
            Err(TxnError::InvalidTxnState)
        );
        assert_eq!(
            cc.prepare_end(100, 1, true, 14),
            Err(TxnError::ProducerFenced)
        );
    }

    #[test]
    fn fencing_bumps_the_epoch_and_times_out() {
        let e = fresh().prepare_init(None, 1000, 5, no_new_id).unwrap();
        let o = e
            .prepare_add(100, 0, &parts(&[("t", 0)]), 10)
            .unwrap()
            .unwrap();
        assert!(!o.timed_out(1010));
        assert!(o.timed_out(1011));
        assert!(!o.expired(i64::MAX, 0), "an open transaction never expires");
        assert!(e.expired(5 + 100, 100) && !e.expired(5 + 99, 100));
        let f = o.prepare_fence_abort(1011);
        assert_eq!((f.state, f.producer_epoch), (TxnStatus::PrepareAbort, 1));
        assert_eq!(f.completed(1012).state, TxnStatus::CompleteAbort);
        assert_eq!(
            f.completed(1012).prepare_end(100, 0, false, 1013),
            Err(TxnError::ProducerFenced),
            "the old producer is fenced"
        );
    }
}
