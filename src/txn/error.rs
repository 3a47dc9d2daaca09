//! Why the transaction coordinator refused a request: one variant per condition of the
//! transaction state machine. The Kafka error code each one is sent as (and, for
//! [`TxnError::ProducerFenced`], the older code a request version predating it gets) is decided
//! once, in `handlers::errors`; nothing in `txn` names a protocol error.

/// See the module docs. Plain data: storage causes are logged where they happen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TxnError {
    /// A newer epoch (or producer id) of this transactional id exists: the caller is a zombie.
    #[error("producer fenced by a newer epoch")]
    ProducerFenced,
    /// The transactional id is unknown, or owned by another producer id.
    #[error("producer id does not match the transactional id")]
    InvalidProducerIdMapping,
    /// A transition of this id is in flight (or its transaction is being completed): retry.
    #[error("another transition of this transactional id is in progress")]
    ConcurrentTransactions,
    /// The request does not fit the transaction's state (EndTxn without a transaction,
    /// TxnOffsetCommit for a group not added, ...).
    #[error("invalid transaction state for this request")]
    InvalidTxnState,
    /// An empty transactional id.
    #[error("empty transactional id")]
    InvalidRequest,
    /// A transaction timeout outside `(0, transaction.max.timeout.ms]`.
    #[error("transaction timeout out of range")]
    InvalidTransactionTimeout,
    /// `__transaction_state`, a marker or the producer-id block could not be written.
    #[error("the transaction log cannot be written")]
    StoreUnavailable,
    /// This broker does not (or no longer) coordinate the transactional id: its partition of
    /// `__transaction_state` is led elsewhere.
    #[error("not the coordinator of this transactional id")]
    NotCoordinator,
    /// The id's partition is being loaded here: retry shortly.
    #[error("the transactional id's partition is loading")]
    CoordinatorLoadInProgress,
    /// Another broker coordinates the transaction and could not confirm the partition (not
    /// reachable, moving, or busy with this id): the caller retries; nothing was refused.
    #[error("the transaction coordinator could not verify the partition")]
    VerificationUnavailable,
}
