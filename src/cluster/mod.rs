//! The cluster: the metadata quorum every broker's [`crate::metadata::MetadataImage`] is fed
//! from, and the controller-side duties that run on it (broker registration, heartbeats and
//! fencing, placement of partitions).
//!
//! The quorum is reached through the [`MetadataQuorum`] trait; [`raft::RaftQuorum`] implements
//! it on openraft, so the consensus itself is a tested library's, and the library can be
//! swapped without touching the rest of the broker. A node with no cluster configuration is a
//! one-voter quorum on the same code path.

pub mod controller;
pub mod placement;
pub mod quorum;
pub mod raft;
mod rpc;

pub use quorum::{Committed, MetadataQuorum, QuorumError, QuorumStatus, VoterStatus};
