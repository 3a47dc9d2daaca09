//! The metadata image: an immutable, self-contained view of the cluster metadata (topics by
//! name and by id, dynamic configs, the producer-id reservation) and the records that change it.
//!
//! This is KRaft's model in miniature: every change is a [`MetadataRecord`], and an image is
//! what applying the committed records, in order, to an empty image gives. Readers (Produce,
//! Fetch, Metadata, ...) hold an `Arc<MetadataImage>` and never wait for a writer; the store
//! builds the next image beside the current one, persists it, and swaps it in. When the Raft
//! quorum arrives, the same records travel through its log and every broker applies them to its
//! own image with [`MetadataImage::apply`].

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use crate::common::TopicId;
use serde::{Deserialize, Serialize};

/// One topic as the cluster knows it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct TopicMeta {
    pub name: String,
    pub id: TopicId,
    pub partitions: i32,
    /// Topic-level configs set explicitly (Kafka names); unset ones follow the broker.
    #[serde(default)]
    pub configs: BTreeMap<String, String>,
}

/// Which kind of dynamic config set a record or a lookup is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ConfigScope {
    /// A consumer group's configs (KIP-848), by group id.
    Group,
    /// Dynamic broker configs, by resource name ("" is the cluster default).
    Broker,
}

/// One change to the metadata. Applying a record is total and deterministic: the writer checks
/// preconditions (a topic name is free, a topic exists) before it emits the record, so replaying
/// the same records always gives the same image.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub enum MetadataRecord {
    /// A new topic (or, replayed over an existing name, its replacement).
    Topic(TopicMeta),
    /// A topic removed.
    RemoveTopic { name: String },
    /// A topic's explicit configs replaced as a whole.
    TopicConfigs {
        name: String,
        configs: BTreeMap<String, String>,
    },
    /// A topic's partition count raised.
    PartitionCount { name: String, partitions: i32 },
    /// A group's or broker's dynamic configs replaced as a whole (empty removes them).
    Configs {
        scope: ConfigScope,
        name: String,
        configs: BTreeMap<String, String>,
    },
    /// Producer ids below `reserved_until` are reserved (handed out or skipped), never reused.
    ProducerIdBlock { reserved_until: i64 },
}

/// The metadata at one point of the record sequence. Cloning is cheap relative to a write
/// (topics are shared `Arc`s), which is what lets the store build the next image beside the
/// current one.
#[derive(Clone, Debug, Default)]
pub struct MetadataImage {
    topics: BTreeMap<String, Arc<TopicMeta>>,
    topic_names_by_id: HashMap<TopicId, String>,
    producer_ids_reserved_until: i64,
    group_configs: BTreeMap<String, BTreeMap<String, String>>,
    broker_configs: BTreeMap<String, BTreeMap<String, String>>,
}

impl MetadataImage {
    /// The topic called `name`.
    pub fn topic(&self, name: &str) -> Option<&Arc<TopicMeta>> {
        self.topics.get(name)
    }

    /// The topic whose id is `id`.
    pub fn topic_by_id(&self, id: TopicId) -> Option<&Arc<TopicMeta>> {
        self.topic_names_by_id
            .get(&id)
            .and_then(|name| self.topics.get(name))
    }

    /// Every topic, by name.
    pub fn topics(&self) -> impl Iterator<Item = &Arc<TopicMeta>> {
        self.topics.values()
    }

    /// True if some topic already has `id`.
    pub fn has_topic_id(&self, id: TopicId) -> bool {
        self.topic_names_by_id.contains_key(&id)
    }

    /// The dynamic configs of `scope` resource `name` (empty if none).
    pub fn configs(&self, scope: ConfigScope, name: &str) -> BTreeMap<String, String> {
        self.scoped(scope).get(name).cloned().unwrap_or_default()
    }

    /// The names of the `scope` resources that have dynamic configs, sorted.
    pub fn config_names(&self, scope: ConfigScope) -> Vec<String> {
        self.scoped(scope).keys().cloned().collect()
    }

    /// The end of the last reserved producer-id block.
    pub fn producer_ids_reserved_until(&self) -> i64 {
        self.producer_ids_reserved_until
    }

    fn scoped(&self, scope: ConfigScope) -> &BTreeMap<String, BTreeMap<String, String>> {
        match scope {
            ConfigScope::Group => &self.group_configs,
            ConfigScope::Broker => &self.broker_configs,
        }
    }

    fn scoped_mut(
        &mut self,
        scope: ConfigScope,
    ) -> &mut BTreeMap<String, BTreeMap<String, String>> {
        match scope {
            ConfigScope::Group => &mut self.group_configs,
            ConfigScope::Broker => &mut self.broker_configs,
        }
    }

    /// Applies one record. Records about topics that do not exist change nothing (the writer
    /// never emits them; a replay of a log cut mid-way must still not fail).
    pub fn apply(&mut self, record: &MetadataRecord) {
        match record {
            MetadataRecord::Topic(topic) => {
                if let Some(old) = self.topics.get(&topic.name) {
                    self.topic_names_by_id.remove(&old.id);
                }
                self.topic_names_by_id.insert(topic.id, topic.name.clone());
                self.topics
                    .insert(topic.name.clone(), Arc::new(topic.clone()));
            }
            MetadataRecord::RemoveTopic { name } => {
                if let Some(old) = self.topics.remove(name) {
                    self.topic_names_by_id.remove(&old.id);
                }
            }
            MetadataRecord::TopicConfigs { name, configs } => {
                self.update_topic(name, |t| t.configs = configs.clone());
            }
            MetadataRecord::PartitionCount { name, partitions } => {
                self.update_topic(name, |t| t.partitions = *partitions);
            }
            MetadataRecord::Configs {
                scope,
                name,
                configs,
            } => {
                let map = self.scoped_mut(*scope);
                if configs.is_empty() {
                    map.remove(name);
                } else {
                    map.insert(name.clone(), configs.clone());
                }
            }
            MetadataRecord::ProducerIdBlock { reserved_until } => {
                // Reservations only grow: a stale record cannot make ids reusable.
                self.producer_ids_reserved_until =
                    self.producer_ids_reserved_until.max(*reserved_until);
            }
        }
    }

    fn update_topic(&mut self, name: &str, change: impl FnOnce(&mut TopicMeta)) {
        if let Some(topic) = self.topics.get_mut(name) {
            change(Arc::make_mut(topic));
        }
    }

    /// The records that rebuild this image from an empty one (what a snapshot holds).
    pub fn to_records(&self) -> Vec<MetadataRecord> {
        let mut records: Vec<MetadataRecord> = self
            .topics
            .values()
            .map(|t| MetadataRecord::Topic(TopicMeta::clone(t)))
            .collect();
        for (scope, map) in [
            (ConfigScope::Group, &self.group_configs),
            (ConfigScope::Broker, &self.broker_configs),
        ] {
            records.extend(map.iter().map(|(name, configs)| MetadataRecord::Configs {
                scope,
                name: name.clone(),
                configs: configs.clone(),
            }));
        }
        records.push(MetadataRecord::ProducerIdBlock {
            reserved_until: self.producer_ids_reserved_until,
        });
        records
    }

    /// The image the records give, applied in order to an empty image.
    pub fn from_records<'a>(records: impl IntoIterator<Item = &'a MetadataRecord>) -> Self {
        let mut image = MetadataImage::default();
        for record in records {
            image.apply(record);
        }
        image
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn topic(name: &str, partitions: i32) -> TopicMeta {
        TopicMeta {
            name: name.to_string(),
            id: TopicId::random(),
            partitions,
            configs: BTreeMap::new(),
        }
    }

    #[test]
    fn topics_are_found_by_name_and_by_id() {
        let a = topic("a", 1);
        let mut image = MetadataImage::default();
        image.apply(&MetadataRecord::Topic(a.clone()));
        assert_eq!(image.topic("a").map(|t| t.id), Some(a.id));
        assert_eq!(image.topic_by_id(a.id).map(|t| t.name.as_str()), Some("a"));
        image.apply(&MetadataRecord::PartitionCount {
            name: "a".into(),
            partitions: 4,
        });
        assert_eq!(image.topic_by_id(a.id).map(|t| t.partitions), Some(4));
        image.apply(&MetadataRecord::RemoveTopic { name: "a".into() });
        assert!(image.topic("a").is_none());
        assert!(image.topic_by_id(a.id).is_none(), "the id index follows");
    }

    #[test]
    fn an_older_image_is_not_changed_by_applying_to_a_clone() {
        let mut image = MetadataImage::default();
        image.apply(&MetadataRecord::Topic(topic("a", 1)));
        let before = Arc::new(image.clone());
        image.apply(&MetadataRecord::PartitionCount {
            name: "a".into(),
            partitions: 9,
        });
        assert_eq!(before.topic("a").map(|t| t.partitions), Some(1));
        assert_eq!(image.topic("a").map(|t| t.partitions), Some(9));
    }

    #[test]
    fn records_round_trip_through_a_snapshot() {
        let mut image = MetadataImage::default();
        let mut configs = BTreeMap::new();
        configs.insert("retention.ms".to_string(), "5".to_string());
        for r in [
            MetadataRecord::Topic(topic("a", 2)),
            MetadataRecord::Topic(topic("b", 3)),
            MetadataRecord::TopicConfigs {
                name: "b".into(),
                configs: configs.clone(),
            },
            MetadataRecord::Configs {
                scope: ConfigScope::Group,
                name: "g".into(),
                configs: configs.clone(),
            },
            MetadataRecord::ProducerIdBlock {
                reserved_until: 2000,
            },
            MetadataRecord::ProducerIdBlock {
                reserved_until: 1000,
            },
        ] {
            image.apply(&r);
        }
        assert_eq!(image.producer_ids_reserved_until(), 2000, "never lowered");
        let rebuilt = MetadataImage::from_records(&image.to_records());
        assert_eq!(rebuilt.to_records(), image.to_records());
        assert_eq!(rebuilt.configs(ConfigScope::Group, "g"), configs);
        assert_eq!(rebuilt.topic("b").map(|t| t.configs.clone()), Some(configs));
    }
}
