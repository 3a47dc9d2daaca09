//! The topic registry and its persistence.
//!
//! Topics live in `<log.dirs>/gregor-metadata.json`, replaced atomically on every change; the
//! cluster id and node id in Kafka's `meta.properties`. Creation writes metadata before partition
//! directories, deletion removes metadata before data, so after a crash a directory without a
//! topic entry is an orphan from an interrupted create/delete and is removed on start.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::persist::{read_properties, write_atomically};
use super::producer_ids::ProducerIdAllocator;

const METADATA_FILE: &str = "gregor-metadata.json";
const META_PROPERTIES: &str = "meta.properties";

/// One topic as the broker knows it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct TopicMeta {
    pub name: String,
    pub id: Uuid,
    pub partitions: i32,
    /// Topic-level configs set explicitly (Kafka names); unset ones follow the broker.
    #[serde(default)]
    pub configs: BTreeMap<String, String>,
}

#[derive(Default, Serialize, Deserialize)]
struct Persisted {
    topics: Vec<TopicMeta>,
    /// End of the last reserved producer-id block (see producer_ids.rs).
    producer_ids_reserved_until: i64,
    /// Group configs (KIP-848) by group id; a group may have them before it exists.
    #[serde(default)]
    group_configs: BTreeMap<String, BTreeMap<String, String>>,
    /// Dynamic broker configs by resource name: "" for the cluster-wide default, the node id
    /// for one broker.
    #[serde(default)]
    broker_configs: BTreeMap<String, BTreeMap<String, String>>,
}

/// Which kind of dynamic config set a store call is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigScope {
    /// A consumer group's configs (KIP-848), by group id.
    Group,
    /// Dynamic broker configs, by resource name ("" is the cluster default).
    Broker,
}

/// Metadata failures, mapped to Kafka codes by the handlers.
#[derive(Debug, thiserror::Error)]
pub enum MetadataError {
    #[error("topic `{0}` already exists")]
    TopicExists(String),
    #[error("cannot persist metadata: {0}")]
    Io(#[from] std::io::Error),
    #[error("metadata file {path} is unreadable: {reason}")]
    Corrupt { path: PathBuf, reason: String },
    #[error("log.dirs was used by another node: meta.properties says node.id={found}, configured {configured}")]
    NodeIdMismatch { found: i32, configured: i32 },
}

struct Registry {
    by_name: BTreeMap<String, TopicMeta>,
    producer_ids_reserved_until: i64,
    group_configs: BTreeMap<String, BTreeMap<String, String>>,
    broker_configs: BTreeMap<String, BTreeMap<String, String>>,
}

impl Registry {
    fn scoped(&mut self, scope: ConfigScope) -> &mut BTreeMap<String, BTreeMap<String, String>> {
        match scope {
            ConfigScope::Group => &mut self.group_configs,
            ConfigScope::Broker => &mut self.broker_configs,
        }
    }
}

/// Thread-safe topic registry. Reads take a shared lock; changes persist under the write lock so
/// the file order matches the in-memory order.
pub struct MetadataStore {
    path: PathBuf,
    cluster_id: String,
    registry: RwLock<Registry>,
    producer_ids: ProducerIdAllocator,
}

impl MetadataStore {
    /// Opens (or initialises) the metadata in `dir`. `recover_topics` supplies topics found on
    /// disk (name, id, partition count) for the case where the metadata file is missing.
    pub fn open(
        dir: &Path,
        node_id: i32,
        configured_cluster_id: Option<&str>,
        recover_topics: impl FnOnce() -> Vec<TopicMeta>,
    ) -> Result<Arc<MetadataStore>, MetadataError> {
        std::fs::create_dir_all(dir)?;
        let cluster_id = Self::load_or_init_identity(dir, node_id, configured_cluster_id)?;
        let path = dir.join(METADATA_FILE);
        let persisted = match std::fs::read(&path) {
            Ok(bytes) => {
                serde_json::from_slice::<Persisted>(&bytes).map_err(|e| MetadataError::Corrupt {
                    path: path.clone(),
                    reason: e.to_string(),
                })?
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let topics = recover_topics();
                if !topics.is_empty() {
                    tracing::warn!(
                        "{} is missing; rebuilt {} topics from partition directories",
                        path.display(),
                        topics.len()
                    );
                }
                Persisted {
                    topics,
                    ..Persisted::default()
                }
            }
            Err(e) => return Err(e.into()),
        };
        let store = MetadataStore {
            path,
            cluster_id,
            producer_ids: ProducerIdAllocator::new(persisted.producer_ids_reserved_until),
            registry: RwLock::new(Registry {
                by_name: persisted
                    .topics
                    .into_iter()
                    .map(|t| (t.name.clone(), t))
                    .collect(),
                producer_ids_reserved_until: persisted.producer_ids_reserved_until,
                group_configs: persisted.group_configs,
                broker_configs: persisted.broker_configs,
            }),
        };
        store.persist(&store.write())?;
        Ok(Arc::new(store))
    }

    /// Reads or creates `meta.properties`, returning the cluster id.
    fn load_or_init_identity(
        dir: &Path,
        node_id: i32,
        configured: Option<&str>,
    ) -> Result<String, MetadataError> {
        let path = dir.join(META_PROPERTIES);
        if path.exists() {
            let props = read_properties(&path)?;
            let get = |k: &str| {
                props
                    .iter()
                    .find(|(key, _)| key == k)
                    .map(|(_, v)| v.clone())
            };
            if let Some(found) = get("node.id").and_then(|v| v.parse::<i32>().ok()) {
                if found != node_id {
                    return Err(MetadataError::NodeIdMismatch {
                        found,
                        configured: node_id,
                    });
                }
            }
            if let Some(id) = get("cluster.id") {
                return Ok(id);
            }
        }
        let cluster_id = configured
            .map(str::to_string)
            .unwrap_or_else(|| kafka_uuid_string(Uuid::new_v4()));
        let text =
            format!("#Written by gregor\nversion=1\ncluster.id={cluster_id}\nnode.id={node_id}\n");
        write_atomically(&path, text.as_bytes())?;
        Ok(cluster_id)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Registry> {
        self.registry.write().unwrap_or_else(|p| p.into_inner())
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Registry> {
        self.registry.read().unwrap_or_else(|p| p.into_inner())
    }

    fn persist(&self, registry: &Registry) -> Result<(), MetadataError> {
        let persisted = Persisted {
            topics: registry.by_name.values().cloned().collect(),
            producer_ids_reserved_until: registry.producer_ids_reserved_until,
            group_configs: registry.group_configs.clone(),
            broker_configs: registry.broker_configs.clone(),
        };
        let json = serde_json::to_vec_pretty(&persisted).map_err(|e| MetadataError::Corrupt {
            path: self.path.clone(),
            reason: e.to_string(),
        })?;
        write_atomically(&self.path, &json)?;
        Ok(())
    }

    /// The cluster id reported in Metadata and DescribeCluster.
    pub fn cluster_id(&self) -> &str {
        &self.cluster_id
    }

    pub fn topic(&self, name: &str) -> Option<TopicMeta> {
        self.read().by_name.get(name).cloned()
    }

    pub fn topic_by_id(&self, id: Uuid) -> Option<TopicMeta> {
        self.read().by_name.values().find(|t| t.id == id).cloned()
    }

    pub fn topics(&self) -> Vec<TopicMeta> {
        self.read().by_name.values().cloned().collect()
    }

    /// Registers a new topic durably, with a fresh random non-zero id.
    pub fn create_topic(
        &self,
        name: &str,
        partitions: i32,
        configs: BTreeMap<String, String>,
    ) -> Result<TopicMeta, MetadataError> {
        let mut registry = self.write();
        if registry.by_name.contains_key(name) {
            return Err(MetadataError::TopicExists(name.to_string()));
        }
        let mut id = Uuid::new_v4();
        while id.is_nil() || registry.by_name.values().any(|t| t.id == id) {
            id = Uuid::new_v4();
        }
        let topic = TopicMeta {
            name: name.to_string(),
            id,
            partitions,
            configs,
        };
        registry.by_name.insert(name.to_string(), topic.clone());
        if let Err(e) = self.persist(&registry) {
            registry.by_name.remove(name);
            return Err(e);
        }
        Ok(topic)
    }

    /// Removes a topic durably; returns what was removed.
    pub fn delete_topic(&self, name: &str) -> Result<Option<TopicMeta>, MetadataError> {
        let mut registry = self.write();
        let Some(removed) = registry.by_name.remove(name) else {
            return Ok(None);
        };
        if let Err(e) = self.persist(&registry) {
            registry.by_name.insert(name.to_string(), removed);
            return Err(e);
        }
        Ok(Some(removed))
    }

    /// Replaces a topic's explicit configs durably; `None` if the topic does not exist. On a
    /// persistence failure the old configs stay in place.
    /// The group configs set on `group` (empty if none).
    pub fn group_configs(&self, group: &str) -> BTreeMap<String, String> {
        self.configs(ConfigScope::Group, group)
    }

    /// The dynamic configs of `scope` resource `name` (empty if none).
    pub fn configs(&self, scope: ConfigScope, name: &str) -> BTreeMap<String, String> {
        let registry = self.read();
        let map = match scope {
            ConfigScope::Group => &registry.group_configs,
            ConfigScope::Broker => &registry.broker_configs,
        };
        map.get(name).cloned().unwrap_or_default()
    }

    /// The names of the `scope` resources that have dynamic configs, sorted.
    pub fn config_names(&self, scope: ConfigScope) -> Vec<String> {
        let registry = self.read();
        let map = match scope {
            ConfigScope::Group => &registry.group_configs,
            ConfigScope::Broker => &registry.broker_configs,
        };
        map.keys().cloned().collect()
    }

    /// Replaces the dynamic configs of `scope` resource `name` durably (an empty set removes
    /// the entry).
    pub fn set_configs(
        &self,
        scope: ConfigScope,
        name: &str,
        configs: BTreeMap<String, String>,
    ) -> Result<(), MetadataError> {
        let mut registry = self.write();
        let old = if configs.is_empty() {
            registry.scoped(scope).remove(name)
        } else {
            registry.scoped(scope).insert(name.to_string(), configs)
        };
        if let Err(e) = self.persist(&registry) {
            // Keep memory and file in step: undo the change that could not be written.
            match old {
                Some(v) => registry.scoped(scope).insert(name.to_string(), v),
                None => registry.scoped(scope).remove(name),
            };
            return Err(e);
        }
        Ok(())
    }

    pub fn set_topic_configs(
        &self,
        name: &str,
        configs: BTreeMap<String, String>,
    ) -> Result<Option<TopicMeta>, MetadataError> {
        self.update_topic(name, |t| t.configs = configs)
    }

    /// Raises a topic's partition count durably; `None` if the topic does not exist. The caller
    /// has checked that `partitions` is larger than the current count.
    pub fn set_partition_count(
        &self,
        name: &str,
        partitions: i32,
    ) -> Result<Option<TopicMeta>, MetadataError> {
        self.update_topic(name, |t| t.partitions = partitions)
    }

    fn update_topic(
        &self,
        name: &str,
        change: impl FnOnce(&mut TopicMeta),
    ) -> Result<Option<TopicMeta>, MetadataError> {
        let mut registry = self.write();
        let Some(old) = registry.by_name.get(name).cloned() else {
            return Ok(None);
        };
        let mut new = old.clone();
        change(&mut new);
        registry.by_name.insert(name.to_string(), new.clone());
        if let Err(e) = self.persist(&registry) {
            registry.by_name.insert(name.to_string(), old);
            return Err(e);
        }
        Ok(Some(new))
    }

    /// A producer id never handed out before, by this run or an earlier one.
    pub fn next_producer_id(&self) -> Result<i64, MetadataError> {
        self.producer_ids.next(|limit| {
            let mut registry = self.write();
            registry.producer_ids_reserved_until = limit;
            self.persist(&registry)
        })
    }

    /// True if this broker issued `id` (used to accept an epoch bump for a known producer).
    pub fn producer_id_was_issued(&self, id: i64) -> bool {
        self.producer_ids.was_issued(id)
    }
}

/// Kafka prints UUIDs (cluster ids, topic ids) as URL-safe base64 without padding.
pub fn kafka_uuid_string(id: Uuid) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let bytes = id.as_bytes();
    let mut out = String::with_capacity(22);
    let mut bits: u32 = 0;
    let mut nbits = 0;
    for &b in bytes {
        bits = (bits << 8) | u32::from(b);
        nbits += 8;
        while nbits >= 6 {
            nbits -= 6;
            out.push(ALPHABET[((bits >> nbits) & 63) as usize] as char);
        }
    }
    if nbits > 0 {
        out.push(ALPHABET[((bits << (6 - nbits)) & 63) as usize] as char);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topics_and_producer_ids_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let store = MetadataStore::open(dir.path(), 1, None, Vec::new).unwrap();
        let t = store.create_topic("a", 3, BTreeMap::new()).unwrap();
        assert!(matches!(
            store.create_topic("a", 1, BTreeMap::new()),
            Err(MetadataError::TopicExists(_))
        ));
        let first = store.next_producer_id().unwrap();
        let cluster = store.cluster_id().to_string();
        drop(store);
        let store = MetadataStore::open(dir.path(), 1, None, Vec::new).unwrap();
        assert_eq!(store.topic("a"), Some(t.clone()));
        assert_eq!(
            store.topic_by_id(t.id).map(|t| t.name),
            Some("a".to_string())
        );
        assert_eq!(store.cluster_id(), cluster);
        assert!(
            store.next_producer_id().unwrap() > first,
            "producer ids are never reused"
        );
        assert!(
            MetadataStore::open(dir.path(), 2, None, Vec::new).is_err(),
            "node id is checked"
        );
    }

    #[test]
    fn topic_configs_and_partition_counts_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let store = MetadataStore::open(dir.path(), 1, None, Vec::new).unwrap();
        store.create_topic("a", 1, BTreeMap::new()).unwrap();
        let mut c = BTreeMap::new();
        c.insert("retention.ms".to_string(), "1000".to_string());
        assert!(store.set_topic_configs("a", c.clone()).unwrap().is_some());
        assert!(store
            .set_topic_configs("absent", c.clone())
            .unwrap()
            .is_none());
        assert!(store.set_partition_count("a", 3).unwrap().is_some());
        drop(store);
        let store = MetadataStore::open(dir.path(), 1, None, Vec::new).unwrap();
        let t = store.topic("a").unwrap();
        assert_eq!((t.configs, t.partitions), (c, 3));
    }

    #[test]
    fn kafka_uuid_format() {
        let id = Uuid::from_bytes([0; 16]);
        assert_eq!(kafka_uuid_string(id), "AAAAAAAAAAAAAAAAAAAAAA");
        assert_eq!(kafka_uuid_string(Uuid::new_v4()).len(), 22);
    }
}
