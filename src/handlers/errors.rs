//! The one place where domain errors become Kafka error codes. The records layer, the log, the
//! metadata store, topic administration, the internal topics and the group and transaction
//! coordinators report typed errors that name what went wrong; handlers turn them into a
//! `ResponseError` through the functions and `From` impls here, so each mapping is decided
//! once. Differences by API or version in the answer (PRODUCER_FENCED for older clients,
//! INVALID_PRODUCER_EPOCH on Produce) are decided here too.
//!
//! A partition log's storage failure is logged here (with its cause) when it is mapped, as the
//! client only learns a code; the other storage failures are logged by the caller, which knows
//! the topic, group or transactional id they concern.

use kafka_protocol::error::ResponseError;

use crate::group::GroupError;
use crate::internal_topic::{StoreError, TopicError};
use crate::log::LogError;
use crate::metadata::MetadataError;
use crate::records::RecordError;
use crate::txn::TxnError;

impl From<GroupError> for ResponseError {
    fn from(error: GroupError) -> ResponseError {
        match error {
            GroupError::UnknownMemberId => ResponseError::UnknownMemberId,
            GroupError::FencedInstanceId => ResponseError::FencedInstanceId,
            GroupError::IllegalGeneration => ResponseError::IllegalGeneration,
            GroupError::RebalanceInProgress => ResponseError::RebalanceInProgress,
            GroupError::InconsistentGroupProtocol => ResponseError::InconsistentGroupProtocol,
            GroupError::InvalidSessionTimeout => ResponseError::InvalidSessionTimeout,
            GroupError::MemberIdRequired => ResponseError::MemberIdRequired,
            // The client finds the coordinator again, as after a coordinator move.
            GroupError::GroupDead | GroupError::StoreUnavailable => {
                ResponseError::CoordinatorNotAvailable
            }
            GroupError::StaleMemberEpoch => ResponseError::StaleMemberEpoch,
            GroupError::FencedMemberEpoch => ResponseError::FencedMemberEpoch,
            GroupError::UnsupportedAssignor => ResponseError::UnsupportedAssignor,
            GroupError::InvalidRegularExpression => ResponseError::InvalidRegularExpression,
            GroupError::InvalidRequest => ResponseError::InvalidRequest,
            GroupError::UnreleasedInstanceId => ResponseError::UnreleasedInstanceId,
            GroupError::InvalidGroupId => ResponseError::InvalidGroupId,
            GroupError::GroupIdNotFound => ResponseError::GroupIdNotFound,
            GroupError::NonEmptyGroup => ResponseError::NonEmptyGroup,
            GroupError::UnknownTopicOrPartition => ResponseError::UnknownTopicOrPartition,
            GroupError::OffsetMetadataTooLarge => ResponseError::OffsetMetadataTooLarge,
            GroupError::NotCoordinator => ResponseError::NotCoordinator,
            GroupError::CoordinatorLoadInProgress => ResponseError::CoordinatorLoadInProgress,
        }
    }
}

/// The answer for the newest request versions; [`txn_error`] adapts it to older ones.
impl From<TxnError> for ResponseError {
    fn from(error: TxnError) -> ResponseError {
        match error {
            TxnError::ProducerFenced => ResponseError::ProducerFenced,
            TxnError::InvalidProducerIdMapping => ResponseError::InvalidProducerIdMapping,
            TxnError::ConcurrentTransactions => ResponseError::ConcurrentTransactions,
            TxnError::InvalidTxnState => ResponseError::InvalidTxnState,
            TxnError::InvalidRequest => ResponseError::InvalidRequest,
            TxnError::InvalidTransactionTimeout => ResponseError::InvalidTransactionTimeout,
            // Retriable for the client: Kafka maps most append errors to
            // COORDINATOR_NOT_AVAILABLE or NOT_COORDINATOR.
            TxnError::StoreUnavailable => ResponseError::CoordinatorNotAvailable,
            TxnError::NotCoordinator => ResponseError::NotCoordinator,
            TxnError::CoordinatorLoadInProgress => ResponseError::CoordinatorLoadInProgress,
            TxnError::VerificationUnavailable => ResponseError::CoordinatorNotAvailable,
        }
    }
}

/// A transaction error as a request of `version` receives it: versions before
/// `first_fenced_version` (the one whose schema says "adds the support for new error code
/// PRODUCER_FENCED") get INVALID_PRODUCER_EPOCH instead, as Kafka answers older clients.
pub fn txn_error(error: TxnError, version: i16, first_fenced_version: i16) -> ResponseError {
    if error == TxnError::ProducerFenced && version < first_fenced_version {
        ResponseError::InvalidProducerEpoch
    } else {
        error.into()
    }
}

/// A transaction error as TxnOffsetCommit of `version` receives it: a stale epoch is
/// INVALID_PRODUCER_EPOCH at every version (Kafka keeps it for compatibility there), and a
/// transaction that did not add the group's offsets partition is TRANSACTION_ABORTABLE from v4
/// (which added it), else INVALID_TXN_STATE.
pub fn txn_offset_commit_error(error: TxnError, version: i16) -> ResponseError {
    match error {
        TxnError::InvalidTxnState if version >= 4 => ResponseError::TransactionAbortable,
        TxnError::ProducerFenced => ResponseError::InvalidProducerEpoch,
        other => other.into(),
    }
}

/// A transaction error as Produce receives it (KIP-588): a stale epoch is
/// INVALID_PRODUCER_EPOCH (abortable); PRODUCER_FENCED belongs to the coordinator's APIs.
///
/// A partition the remote coordinator could not confirm is NOT_ENOUGH_REPLICAS, as in Kafka:
/// retriable for every producer, and without the metadata refresh NOT_COORDINATOR would cause
/// (the partition's leader is not what moved).
pub fn produce_txn_error(error: TxnError) -> ResponseError {
    match error {
        TxnError::ProducerFenced => ResponseError::InvalidProducerEpoch,
        TxnError::VerificationUnavailable => ResponseError::NotEnoughReplicas,
        other => other.into(),
    }
}

/// A partition log's error: the producer-state refusals have codes of their own, a missing
/// offset is OFFSET_OUT_OF_RANGE, and everything else is a storage failure (logged).
pub fn log_error(error: &LogError) -> ResponseError {
    match error {
        LogError::OutOfOrderSequence { .. } => ResponseError::OutOfOrderSequenceNumber,
        LogError::InvalidProducerEpoch { .. } => ResponseError::InvalidProducerEpoch,
        LogError::OffsetOutOfRange { .. } => ResponseError::OffsetOutOfRange,
        // A newer leader has written to the log: this broker no longer leads it.
        LogError::FencedLeaderEpoch { .. } => ResponseError::NotLeaderOrFollower,
        _ => {
            tracing::error!("log failure: {error}");
            ResponseError::KafkaStorageError
        }
    }
}

/// A batch the records layer refuses, as Kafka's validator answers: too large, as sent or once
/// decompressed, is MESSAGE_TOO_LARGE (the Java producer then splits the batch and retries);
/// bad framing, CRC or compressed data CORRUPT_MESSAGE; an unknown codec
/// UNSUPPORTED_COMPRESSION_TYPE; records that break a rule INVALID_RECORD.
pub fn record_error(error: &RecordError) -> ResponseError {
    match error {
        RecordError::MessageTooLarge { .. } | RecordError::DecompressedTooLarge { .. } => {
            ResponseError::MessageTooLarge
        }
        RecordError::CorruptMessage(_) => ResponseError::CorruptMessage,
        RecordError::UnsupportedCompression(_) => ResponseError::UnsupportedCompressionType,
        RecordError::InvalidRecord(_) => ResponseError::InvalidRecord,
    }
}

/// A metadata store error: an existing name is TOPIC_ALREADY_EXISTS; failing to persist or
/// read the metadata is a storage failure.
pub fn metadata_error(error: &MetadataError) -> ResponseError {
    match error {
        MetadataError::TopicExists(_) => ResponseError::TopicAlreadyExists,
        MetadataError::Placement(_) => ResponseError::InvalidReplicationFactor,
        // The controller could not be reached or is electing: clients retry these.
        MetadataError::Quorum(_) | MetadataError::Contended { .. } => {
            ResponseError::RequestTimedOut
        }
        MetadataError::Io(_)
        | MetadataError::Corrupt { .. }
        | MetadataError::NodeIdMismatch { .. }
        | MetadataError::ClusterIdMismatch { .. } => ResponseError::KafkaStorageError,
    }
}

/// A topic creation, change or deletion that failed: the broker's partition limit is
/// INVALID_PARTITIONS (the request asked for more than the broker can hold), the rest as
/// [`metadata_error`], and a log that could not be created or removed is a storage failure.
pub fn topic_error(error: &TopicError) -> ResponseError {
    match error {
        TopicError::PartitionLimit { .. } => ResponseError::InvalidPartitions,
        TopicError::Metadata(e) => metadata_error(e),
        TopicError::Log(_) => ResponseError::KafkaStorageError,
    }
}

/// A topic that Metadata's auto-creation could not create (an existing topic is handled by the
/// caller, which describes it): KAFKA_STORAGE_ERROR whatever the cause, the partition limit
/// included, so the client retries its Metadata request rather than give up on the topic.
pub fn auto_create_error(_error: &TopicError) -> ResponseError {
    ResponseError::KafkaStorageError
}

/// A group or transaction request sent to a broker that does not coordinate its key:
/// NOT_COORDINATOR (16) when another broker does (or none does right now), so the client looks
/// the coordinator up again; COORDINATOR_LOAD_IN_PROGRESS (14) when this broker leads the key's
/// partition but has not made its log yet. Both are retriable.
pub fn not_coordinator(reason: super::coordinator::NotCoordinator) -> ResponseError {
    match reason {
        super::coordinator::NotCoordinator::Elsewhere => ResponseError::NotCoordinator,
        super::coordinator::NotCoordinator::Loading => ResponseError::CoordinatorLoadInProgress,
    }
}

/// An internal topic (`__consumer_offsets`, `__transaction_state`) that could not be created,
/// read or written: the client retries against the coordinator; NOT_COORDINATOR when the
/// partition is no longer served here (the coordinator moved), as Kafka answers an append
/// refused for leadership. Not logged here: callers log it with the group or transactional
/// id it concerned.
pub fn store_error(error: &StoreError) -> ResponseError {
    match error {
        StoreError::NotServed(_) => ResponseError::NotCoordinator,
        // A newer leader of the internal partition has written: the coordinator moved.
        StoreError::Log(LogError::FencedLeaderEpoch { .. }) => ResponseError::NotCoordinator,
        _ => ResponseError::CoordinatorNotAvailable,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every domain error's code, as literal numbers from Kafka's `Errors.java`, so a change
    /// of mapping (or of the crate's table) shows here.
    #[test]
    fn group_errors_map_to_kafka_codes() {
        let table: [(GroupError, i16); 22] = [
            (GroupError::UnknownMemberId, 25),
            (GroupError::FencedInstanceId, 82),
            (GroupError::IllegalGeneration, 22),
            (GroupError::RebalanceInProgress, 27),
            (GroupError::InconsistentGroupProtocol, 23),
            (GroupError::InvalidSessionTimeout, 26),
            (GroupError::MemberIdRequired, 79),
            (GroupError::GroupDead, 15),
            (GroupError::StoreUnavailable, 15),
            (GroupError::StaleMemberEpoch, 113),
            (GroupError::FencedMemberEpoch, 110),
            (GroupError::UnsupportedAssignor, 112),
            (GroupError::InvalidRegularExpression, 128),
            (GroupError::InvalidRequest, 42),
            (GroupError::UnreleasedInstanceId, 111),
            (GroupError::InvalidGroupId, 24),
            (GroupError::GroupIdNotFound, 69),
            (GroupError::NonEmptyGroup, 68),
            (GroupError::UnknownTopicOrPartition, 3),
            (GroupError::OffsetMetadataTooLarge, 12),
            (GroupError::NotCoordinator, 16),
            (GroupError::CoordinatorLoadInProgress, 14),
        ];
        for (error, code) in table {
            assert_eq!(ResponseError::from(error).code(), code, "{error:?}");
        }
    }

    #[test]
    fn txn_errors_map_to_kafka_codes_by_version() {
        let table: [(TxnError, i16); 10] = [
            (TxnError::ProducerFenced, 90),
            (TxnError::InvalidProducerIdMapping, 49),
            (TxnError::ConcurrentTransactions, 51),
            (TxnError::InvalidTxnState, 48),
            (TxnError::InvalidRequest, 42),
            (TxnError::InvalidTransactionTimeout, 50),
            (TxnError::StoreUnavailable, 15),
            (TxnError::NotCoordinator, 16),
            (TxnError::CoordinatorLoadInProgress, 14),
            (TxnError::VerificationUnavailable, 15),
        ];
        for (error, code) in table {
            assert_eq!(txn_error(error, 2, 2).code(), code, "{error:?}");
        }
        // Before the version that knows PRODUCER_FENCED: INVALID_PRODUCER_EPOCH (47).
        assert_eq!(txn_error(TxnError::ProducerFenced, 1, 2).code(), 47);
        assert_eq!(txn_error(TxnError::InvalidTxnState, 1, 2).code(), 48);
        // TxnOffsetCommit: always 47 for a fenced producer; TRANSACTION_ABORTABLE (120) from v4.
        assert_eq!(
            txn_offset_commit_error(TxnError::ProducerFenced, 5).code(),
            47
        );
        assert_eq!(
            txn_offset_commit_error(TxnError::InvalidTxnState, 4).code(),
            120
        );
        assert_eq!(
            txn_offset_commit_error(TxnError::InvalidTxnState, 3).code(),
            48
        );
        assert_eq!(
            txn_offset_commit_error(TxnError::ConcurrentTransactions, 5).code(),
            51
        );
        // Produce: 47 for a fenced producer, the coordinator's code otherwise.
        assert_eq!(produce_txn_error(TxnError::ProducerFenced).code(), 47);
        assert_eq!(produce_txn_error(TxnError::InvalidTxnState).code(), 48);
        assert_eq!(
            produce_txn_error(TxnError::InvalidProducerIdMapping).code(),
            49
        );
    }

    #[test]
    fn storage_errors_map_to_kafka_codes() {
        let io = || std::io::Error::other("disk on fire");
        let log: [(LogError, i16); 5] = [
            (
                LogError::OutOfOrderSequence {
                    producer_id: 1,
                    expected: 2,
                    got: 3,
                },
                45,
            ),
            (
                LogError::InvalidProducerEpoch {
                    producer_id: 1,
                    current: 2,
                    got: 1,
                },
                47,
            ),
            (
                LogError::OffsetOutOfRange {
                    offset: 9,
                    log_start_offset: 0,
                    log_end_offset: 5,
                },
                1,
            ),
            (LogError::Io(io()), 56),
            (LogError::StorageOffline("t-0".into()), 56),
        ];
        for (error, code) in &log {
            assert_eq!(log_error(error).code(), *code, "{error:?}");
        }
        assert_eq!(
            metadata_error(&MetadataError::TopicExists("t".into())).code(),
            36
        );
        assert_eq!(metadata_error(&MetadataError::Io(io())).code(), 56);
        let limit = TopicError::PartitionLimit {
            adding: 2,
            total: 10,
            limit: 9,
        };
        assert_eq!(topic_error(&limit).code(), 37);
        let exists = TopicError::Metadata(MetadataError::TopicExists("t".into()));
        assert_eq!(topic_error(&exists).code(), 36);
        assert_eq!(topic_error(&TopicError::Log(LogError::Io(io()))).code(), 56);
        assert_eq!(auto_create_error(&limit).code(), 56);
        assert_eq!(store_error(&StoreError::MissingPartition(3)).code(), 15);
        assert_eq!(store_error(&StoreError::NotServed(3)).code(), 16);
        use crate::handlers::coordinator::NotCoordinator;
        assert_eq!(not_coordinator(NotCoordinator::Elsewhere).code(), 16);
        assert_eq!(not_coordinator(NotCoordinator::Loading).code(), 14);
        let records: [(RecordError, i16); 5] = [
            (RecordError::CorruptMessage("crc".into()), 2),
            (RecordError::MessageTooLarge { size: 9, max: 8 }, 10),
            (RecordError::DecompressedTooLarge { limit: 8 }, 10),
            (RecordError::UnsupportedCompression(7), 76),
            (RecordError::InvalidRecord("count".into()), 87),
        ];
        for (error, code) in &records {
            assert_eq!(record_error(error).code(), *code, "{error:?}");
        }
    }
}
