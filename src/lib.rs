//! Gregor: a Kafka-compatible message broker.
//!
//! Layers, top to bottom: `server` (sockets, framing, response order) → `protocol` (headers,
//! versions, dispatch) → `handlers` (one Kafka API each) → domain services: `metadata` (topics,
//! ids), `log` (partition logs on disk), `group` (consumer groups, committed offsets) and `txn`
//! (the transaction coordinator), with `records` as pure functions over batch bytes.
//! [`Broker`] starts the whole thing in-process.

pub mod alloc_guard;
pub mod broker;
pub mod cluster;
pub mod common;
pub mod config;
pub mod group;
pub mod handlers;
pub mod internal_topic;
pub mod log;
pub mod logging;
pub mod marker_channel;
pub mod metadata;
pub mod protocol;
pub mod records;
pub mod replication;
pub mod server;
pub mod txn;

pub use broker::{Broker, BrokerContext};
pub use config::Config;
