//! An internal compacted topic created on first use (`__consumer_offsets`,
//! `__transaction_state`), as Kafka creates them: the first request that needs the topic
//! creates it with every partition log, and later callers learn its partition count without
//! touching the metadata store. Thread-safe.

use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::Mutex;

use crate::broker::{BrokerContext, TopicError};

/// See the module docs.
#[derive(Debug)]
pub struct InternalTopic {
    name: &'static str,
    /// Partitions to create it with (`offsets.topic.num.partitions`, ...).
    wanted_partitions: i32,
    /// Serialises the creation.
    create_lock: Mutex<()>,
    /// Partitions once the topic exists with all its logs (0: not yet). Metadata alone is not
    /// enough: `create_topic` records the topic before its partitions exist.
    ready_partitions: AtomicI32,
}

impl InternalTopic {
    /// The topic `name`, to be created with `wanted_partitions` partitions.
    pub fn new(name: &'static str, wanted_partitions: i32) -> Self {
        InternalTopic {
            name,
            wanted_partitions,
            create_lock: Mutex::new(()),
            ready_partitions: AtomicI32::new(0),
        }
    }

    /// The topic's partition count, creating it (`cleanup.policy=compact`) if needed: file I/O
    /// and fsyncs the first time.
    pub fn ensure(&self, ctx: &BrokerContext) -> Result<i32, TopicError> {
        let ready = self.ready_partitions.load(Ordering::Acquire);
        if ready > 0 {
            return Ok(ready);
        }
        // Whoever creates the topic holds this lock until every partition log exists.
        let _guard = self
            .create_lock
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let partitions = match ctx.metadata.topic(self.name) {
            Some(t) => t.partitions,
            None => {
                let configs = [("cleanup.policy".to_string(), "compact".to_string())]
                    .into_iter()
                    .collect();
                ctx.create_topic(self.name, self.wanted_partitions, configs)?
                    .partitions
            }
        };
        self.ready_partitions.store(partitions, Ordering::Release);
        Ok(partitions)
    }

    /// Records that the topic exists with `partitions` logs (found at start-up).
    pub fn mark_ready(&self, partitions: i32) {
        self.ready_partitions.store(partitions, Ordering::Release);
    }

    /// True once the topic is known to exist with all its partitions.
    pub fn is_ready(&self) -> bool {
        self.ready_partitions.load(Ordering::Acquire) > 0
    }
}
