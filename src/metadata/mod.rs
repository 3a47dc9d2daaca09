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

pub use image::{ConfigScope, MetadataImage, MetadataRecord, TopicMeta};
pub use producer_ids::ProducerIdAllocator;
pub use store::{MetadataError, MetadataStore};
