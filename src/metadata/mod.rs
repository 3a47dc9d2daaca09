//! Cluster metadata: topics (names, stable random IDs, partition counts, configs), dynamic
//! configs, the cluster id and producer-id allocation, held as an immutable [`MetadataImage`]
//! built from [`MetadataRecord`]s and swapped atomically on change. Persisted in the log
//! directory and reloaded on start; the single source of truth the handlers consult.

pub mod config_catalog;
pub mod group_config;
pub mod image;
mod persist;
mod producer_ids;
mod store;
pub mod topic_config;
pub mod topic_name;

pub use image::{
    BrokerRegistration, ConfigScope, MetadataCommand, MetadataImage, MetadataRecord,
    PartitionPlacement, Precondition, TopicMeta,
};
pub use producer_ids::ProducerIdAllocator;
#[cfg(test)]
pub(crate) use store::open_single_node;
pub use store::{Election, ElectionKind, MetadataError, MetadataStore, Reassignment};
