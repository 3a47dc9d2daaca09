//! Vocabulary shared by every layer: the clock, identifiers and the newtypes that cross module
//! boundaries (offsets, epochs, ids).
//!
//! This module sits at the bottom of the crate's import graph: it imports nothing from the
//! crate, so the log, the metadata store, the coordinators and the protocol handlers can all
//! depend on it without reaching into one another (before it existed, the transaction
//! coordinator took the leader epoch from `handlers` and the clock from `log::partition`).

pub mod clock;
pub mod ids;
pub mod types;

pub use clock::now_ms;
pub use ids::TopicId;
pub use types::{LeaderEpoch, NodeId, Offset, PartitionIndex, ProducerEpoch, ProducerId};

/// The leader epoch of every partition this broker leads. A single node is the only replica of
/// each partition and never loses leadership, so the epoch never moves; with replication it
/// will come from the partition's record in the metadata image instead of this constant.
pub const LEADER_EPOCH: LeaderEpoch = LeaderEpoch(0);
