//! Cluster metadata for a single broker: topics (names, stable random IDs, partition counts,
//! configs), the cluster id, and producer-id allocation. Persisted in the log directory and
//! reloaded on start; the single source of truth the handlers consult.

pub mod config_catalog;
pub mod group_config;
mod persist;
mod producer_ids;
mod store;
pub mod topic_config;
pub mod topic_name;

pub use producer_ids::ProducerIdAllocator;
pub use store::{ConfigScope, MetadataError, MetadataStore, TopicMeta};
