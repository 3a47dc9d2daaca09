//! One module per Kafka API: each turns a decoded request into a response for the negotiated
//! version, consulting the broker's services. Failures become Kafka error codes here, once.

pub mod acls;
pub mod add_offsets_to_txn;
pub mod add_partitions_to_txn;
pub mod alter_configs;
pub mod api_versions;
pub mod consumer_group_describe;
pub mod consumer_group_heartbeat;
pub mod coordinator;
pub mod create_partitions;
pub mod create_topics;
pub mod delete_groups;
pub mod delete_records;
pub mod delete_topics;
pub mod describe_cluster;
pub mod describe_configs;
pub mod describe_groups;
pub mod describe_log_dirs;
pub mod describe_producers;
pub mod describe_quorum;
pub mod describe_topic_partitions;
pub mod describe_transactions;
pub mod elect_leaders;
pub mod end_txn;
pub mod errors;
pub mod fetch;
pub mod find_coordinator;
pub mod heartbeat;
pub mod init_producer_id;
pub mod join_group;
pub mod leave_group;
pub mod list_config_resources;
pub mod list_groups;
pub mod list_offsets;
pub mod list_transactions;
pub mod metadata;
pub mod offset_commit;
pub mod offset_delete;
pub mod offset_fetch;
pub mod offset_for_leader_epoch;
pub mod produce;
pub mod reassignments;
pub mod sync_group;
pub mod txn_offset_commit;
pub mod txn_verification;
pub mod unregister_broker;
pub mod write_txn_markers;

use kafka_protocol::error::ResponseError;
use kafka_protocol::protocol::StrBytes;

/// The leader epoch every partition reports, as the wire's `i32`. 0 (not -1) keeps clients'
/// epoch validation (KIP-320) switched on and satisfied.
pub const LEADER_EPOCH: i32 = crate::common::LEADER_EPOCH.get();

/// A partition as Metadata and DescribeTopicPartitions report it, in protocol terms.
pub struct PartitionView {
    /// LEADER_NOT_AVAILABLE while no live broker leads it.
    pub error_code: i16,
    pub leader: kafka_protocol::messages::BrokerId,
    pub leader_epoch: i32,
    pub replicas: Vec<kafka_protocol::messages::BrokerId>,
    pub isr: Vec<kafka_protocol::messages::BrokerId>,
    pub offline: Vec<kafka_protocol::messages::BrokerId>,
}

impl PartitionView {
    /// The view of `state`.
    pub fn of(state: &crate::metadata::image::PartitionState) -> PartitionView {
        PartitionView {
            error_code: if state.leader.is_some() {
                0
            } else {
                ResponseError::LeaderNotAvailable.code()
            },
            leader: kafka_protocol::messages::BrokerId(state.leader.map_or(-1, |l| l.get())),
            leader_epoch: state.leader_epoch.get(),
            replicas: broker_ids(&state.replicas),
            isr: broker_ids(&state.isr),
            offline: broker_ids(&state.offline),
        }
    }
}

/// Broker ids as the protocol carries them.
pub fn broker_ids(ids: &[crate::common::NodeId]) -> Vec<kafka_protocol::messages::BrokerId> {
    ids.iter()
        .map(|id| kafka_protocol::messages::BrokerId(id.get()))
        .collect()
}

/// A `StrBytes` from any string.
pub fn str_bytes(s: impl Into<String>) -> StrBytes {
    StrBytes::from_string(s.into())
}

/// Checks a client's `current_leader_epoch` against the partition's `current` one (-1 means
/// "do not check"): newer than ours is UNKNOWN_LEADER_EPOCH (our metadata is behind), older is
/// FENCED_LEADER_EPOCH (the client's is).
pub fn check_leader_epoch(
    current_leader_epoch: i32,
    current: crate::common::LeaderEpoch,
) -> Result<(), ResponseError> {
    use crate::common::LeaderEpoch;
    match LeaderEpoch(current_leader_epoch) {
        LeaderEpoch::UNKNOWN => Ok(()),
        e if e == current => Ok(()),
        e if e > current => Err(ResponseError::UnknownLeaderEpoch),
        _ => Err(ResponseError::FencedLeaderEpoch),
    }
}

/// Kafka's ACL operation codes (AclOperation) as bit positions in "authorized operations"
/// fields. Without an authorizer Kafka reports every operation a resource type supports, and
/// clients decode the bitfield, so it must hold only real operation codes.
pub mod authorized_operations {
    const READ: i32 = 3;
    const WRITE: i32 = 4;
    const CREATE: i32 = 5;
    const DELETE: i32 = 6;
    const ALTER: i32 = 7;
    const DESCRIBE: i32 = 8;
    const CLUSTER_ACTION: i32 = 9;
    const DESCRIBE_CONFIGS: i32 = 10;
    const ALTER_CONFIGS: i32 = 11;
    const IDEMPOTENT_WRITE: i32 = 12;

    /// The value meaning "not requested" (the field's default).
    pub const NOT_REQUESTED: i32 = i32::MIN;

    const fn bits(ops: &[i32]) -> i32 {
        let mut mask = 0;
        let mut i = 0;
        while i < ops.len() {
            mask |= 1 << ops[i];
            i += 1;
        }
        mask
    }

    /// Everything a topic supports.
    pub const TOPIC: i32 = bits(&[
        READ,
        WRITE,
        CREATE,
        DELETE,
        ALTER,
        DESCRIBE,
        DESCRIBE_CONFIGS,
        ALTER_CONFIGS,
    ]);
    /// Everything the cluster resource supports.
    pub const CLUSTER: i32 = bits(&[
        CREATE,
        CLUSTER_ACTION,
        DESCRIBE_CONFIGS,
        ALTER_CONFIGS,
        IDEMPOTENT_WRITE,
        ALTER,
        DESCRIBE,
    ]);
    /// Everything a consumer group supports.
    pub const GROUP: i32 = bits(&[READ, DESCRIBE, DELETE]);
}

/// Names that occur more than once among `names`. Kafka rejects every occurrence of such a
/// name in CreateTopics/CreatePartitions rather than picking one.
pub fn repeated_names<'a>(
    names: impl Iterator<Item = &'a str>,
) -> std::collections::HashSet<String> {
    let mut seen = std::collections::HashSet::new();
    names
        .filter(|n| !seen.insert(*n))
        .map(str::to_string)
        .collect()
}

/// The error given to each occurrence of a repeated name.
pub fn repeated_name_error() -> (ResponseError, String) {
    (
        ResponseError::InvalidRequest,
        "topic appears more than once in the request".to_string(),
    )
}
