//! One module per Kafka API: each turns a decoded request into a response for the negotiated
//! version, consulting the broker's services. Failures become Kafka error codes here, once.

pub mod alter_configs;
pub mod api_versions;
pub mod create_partitions;
pub mod create_topics;
pub mod delete_groups;
pub mod delete_records;
pub mod delete_topics;
pub mod describe_cluster;
pub mod describe_configs;
pub mod describe_groups;
pub mod describe_log_dirs;
pub mod fetch;
pub mod find_coordinator;
pub mod heartbeat;
pub mod init_producer_id;
pub mod join_group;
pub mod leave_group;
pub mod list_groups;
pub mod list_offsets;
pub mod metadata;
pub mod offset_commit;
pub mod offset_delete;
pub mod offset_fetch;
pub mod offset_for_leader_epoch;
pub mod produce;
pub mod sync_group;

use kafka_protocol::error::ResponseError;
use kafka_protocol::protocol::StrBytes;

/// The leader epoch of every partition. A single broker never changes leader, so the epoch is
/// constant; 0 (not -1) keeps clients' epoch validation (KIP-320) switched on and satisfied.
pub const LEADER_EPOCH: i32 = 0;

/// Kafka's "no error" code.
pub const NONE: i16 = 0;

/// The wire code for `error`.
pub fn code(error: ResponseError) -> i16 {
    error.code()
}

/// A `StrBytes` from any string.
pub fn str_bytes(s: impl Into<String>) -> StrBytes {
    StrBytes::from_string(s.into())
}

/// Checks a client's `current_leader_epoch` against ours (-1 means "do not check").
pub fn check_leader_epoch(current_leader_epoch: i32) -> Result<(), ResponseError> {
    match current_leader_epoch {
        -1 => Ok(()),
        e if e == LEADER_EPOCH => Ok(()),
        e if e > LEADER_EPOCH => Err(ResponseError::UnknownLeaderEpoch),
        _ => Err(ResponseError::FencedLeaderEpoch),
    }
}
