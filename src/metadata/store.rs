//! The metadata store: the current [`MetadataImage`], its persistence, and the node identity.
//!
//! Readers take the current image (an `Arc`, swapped atomically) and never wait for a writer.
//! Writers are serialised by one mutex: each builds the next image beside the current one from
//! [`MetadataRecord`]s, persists it to `<log.dirs>/gregor-metadata.json` (replaced atomically,
//! fsynced), and only then publishes it, so nobody sees a change that a crash could undo.
//! The cluster id and node id live in Kafka's `meta.properties`. Creation writes metadata before
//! partition directories, deletion removes metadata before data, so after a crash a directory
//! without a topic entry is an orphan from an interrupted create/delete and is removed on start.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::image::{ConfigScope, MetadataImage, MetadataRecord, TopicMeta};
use super::persist::read_properties;
use super::producer_ids::ProducerIdAllocator;
use crate::common::{NodeId, ProducerId, TopicId};
use crate::log::io::{write_atomic, FsIo, OsIo};

const METADATA_FILE: &str = "gregor-metadata.json";
const META_PROPERTIES: &str = "meta.properties";

/// The on-disk snapshot of an image. The field names are the file format of earlier versions,
/// so existing data directories load unchanged.
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

impl Persisted {
    fn from_image(image: &MetadataImage) -> Persisted {
        let mut persisted = Persisted {
            producer_ids_reserved_until: image.producer_ids_reserved_until(),
            ..Persisted::default()
        };
        for record in image.to_records() {
            match record {
                MetadataRecord::Topic(t) => persisted.topics.push(t),
                MetadataRecord::Configs {
                    scope: ConfigScope::Group,
                    name,
                    configs,
                } => {
                    persisted.group_configs.insert(name, configs);
                }
                MetadataRecord::Configs {
                    scope: ConfigScope::Broker,
                    name,
                    configs,
                } => {
                    persisted.broker_configs.insert(name, configs);
                }
                _ => {}
            }
        }
        persisted
    }

    fn into_records(self) -> Vec<MetadataRecord> {
        let mut records: Vec<MetadataRecord> =
            self.topics.into_iter().map(MetadataRecord::Topic).collect();
        for (scope, map) in [
            (ConfigScope::Group, self.group_configs),
            (ConfigScope::Broker, self.broker_configs),
        ] {
            records.extend(
                map.into_iter()
                    .map(|(name, configs)| MetadataRecord::Configs {
                        scope,
                        name,
                        configs,
                    }),
            );
        }
        records.push(MetadataRecord::ProducerIdBlock {
            reserved_until: self.producer_ids_reserved_until,
        });
        records
    }
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
    NodeIdMismatch { found: NodeId, configured: NodeId },
}

/// The metadata of this node. See the module docs for the read/write discipline.
pub struct MetadataStore {
    path: PathBuf,
    cluster_id: String,
    image: ArcSwap<MetadataImage>,
    /// Serialises writers (build, persist, publish); readers never take it.
    writer: Mutex<()>,
    producer_ids: ProducerIdAllocator,
    /// The file-system seam every metadata file is written through.
    io: Arc<dyn FsIo>,
}

impl MetadataStore {
    /// Opens (or initialises) the metadata in `dir`. `recover_topics` supplies topics found on
    /// disk (name, id, partition count) for the case where the metadata file is missing.
    pub fn open(
        dir: &Path,
        node_id: NodeId,
        configured_cluster_id: Option<&str>,
        recover_topics: impl FnOnce() -> Vec<TopicMeta>,
    ) -> Result<Arc<MetadataStore>, MetadataError> {
        Self::open_with_io(
            dir,
            node_id,
            configured_cluster_id,
            recover_topics,
            Arc::new(OsIo),
        )
    }

    /// [`MetadataStore::open`] with every file written through `io` (crash tests).
    pub fn open_with_io(
        dir: &Path,
        node_id: NodeId,
        configured_cluster_id: Option<&str>,
        recover_topics: impl FnOnce() -> Vec<TopicMeta>,
        io: Arc<dyn FsIo>,
    ) -> Result<Arc<MetadataStore>, MetadataError> {
        io.create_dir_all(dir)?;
        let cluster_id =
            Self::load_or_init_identity(io.as_ref(), dir, node_id, configured_cluster_id)?;
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
        let image = MetadataImage::from_records(&persisted.into_records());
        let store = MetadataStore {
            path,
            cluster_id,
            producer_ids: ProducerIdAllocator::new(image.producer_ids_reserved_until()),
            image: ArcSwap::from_pointee(MetadataImage::default()),
            writer: Mutex::new(()),
            io,
        };
        store.persist(&image)?;
        store.image.store(Arc::new(image));
        Ok(Arc::new(store))
    }

    /// Reads or creates `meta.properties`, returning the cluster id.
    fn load_or_init_identity(
        io: &dyn FsIo,
        dir: &Path,
        node_id: NodeId,
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
            if let Some(found) = get("node.id")
                .and_then(|v| v.parse::<i32>().ok())
                .map(NodeId)
            {
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
            .unwrap_or_else(|| crate::common::ids::uuid_to_kafka_string(Uuid::new_v4()));
        let text =
            format!("#Written by gregor\nversion=1\ncluster.id={cluster_id}\nnode.id={node_id}\n");
        write_atomic(io, &path, text.as_bytes())?;
        Ok(cluster_id)
    }

    fn persist(&self, image: &MetadataImage) -> Result<(), MetadataError> {
        let json = serde_json::to_vec_pretty(&Persisted::from_image(image)).map_err(|e| {
            MetadataError::Corrupt {
                path: self.path.clone(),
                reason: e.to_string(),
            }
        })?;
        write_atomic(self.io.as_ref(), &self.path, &json)?;
        Ok(())
    }

    /// Commits the records `decide` returns for the current image: the next image is built
    /// beside the current one, persisted, then published. Readers keep the current image
    /// throughout; on an error nothing changes.
    fn commit<T>(
        &self,
        decide: impl FnOnce(&MetadataImage) -> Result<(Vec<MetadataRecord>, T), MetadataError>,
    ) -> Result<T, MetadataError> {
        let _writer = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        let current = self.image.load_full();
        let (records, answer) = decide(&current)?;
        if records.is_empty() {
            return Ok(answer);
        }
        let mut next = MetadataImage::clone(&current);
        for record in &records {
            next.apply(record);
        }
        self.persist(&next)?;
        self.image.store(Arc::new(next));
        Ok(answer)
    }

    /// The current image: an immutable snapshot, never blocked by writers. Take it once per
    /// request when several lookups must agree with each other.
    pub fn image(&self) -> Arc<MetadataImage> {
        self.image.load_full()
    }

    /// The cluster id reported in Metadata and DescribeCluster.
    pub fn cluster_id(&self) -> &str {
        &self.cluster_id
    }

    /// The topic named `name`, from the current image.
    pub fn topic(&self, name: &str) -> Option<Arc<TopicMeta>> {
        self.image.load().topic(name).cloned()
    }

    /// The topic with id `id`, from the current image.
    pub fn topic_by_id(&self, id: TopicId) -> Option<Arc<TopicMeta>> {
        self.image.load().topic_by_id(id).cloned()
    }

    /// Every topic in the current image.
    pub fn topics(&self) -> Vec<Arc<TopicMeta>> {
        self.image.load().topics().cloned().collect()
    }

    /// Registers a new topic durably, with a fresh random non-zero id.
    pub fn create_topic(
        &self,
        name: &str,
        partitions: i32,
        configs: BTreeMap<String, String>,
    ) -> Result<Arc<TopicMeta>, MetadataError> {
        self.commit(|image| {
            if image.topic(name).is_some() {
                return Err(MetadataError::TopicExists(name.to_string()));
            }
            let mut id = TopicId::random();
            while id.is_nil() || image.has_topic_id(id) {
                id = TopicId::random();
            }
            let topic = TopicMeta {
                name: name.to_string(),
                id,
                partitions,
                configs,
            };
            Ok((vec![MetadataRecord::Topic(topic.clone())], Arc::new(topic)))
        })
    }

    /// Removes a topic durably; returns what was removed.
    pub fn delete_topic(&self, name: &str) -> Result<Option<Arc<TopicMeta>>, MetadataError> {
        self.commit(|image| {
            Ok(match image.topic(name) {
                Some(t) => (
                    vec![MetadataRecord::RemoveTopic {
                        name: name.to_string(),
                    }],
                    Some(Arc::clone(t)),
                ),
                None => (Vec::new(), None),
            })
        })
    }

    /// The group configs set on `group` (empty if none).
    pub fn group_configs(&self, group: &str) -> BTreeMap<String, String> {
        self.configs(ConfigScope::Group, group)
    }

    /// The dynamic configs of `scope` resource `name` (empty if none).
    pub fn configs(&self, scope: ConfigScope, name: &str) -> BTreeMap<String, String> {
        self.image.load().configs(scope, name)
    }

    /// The names of the `scope` resources that have dynamic configs, sorted.
    pub fn config_names(&self, scope: ConfigScope) -> Vec<String> {
        self.image.load().config_names(scope)
    }

    /// Replaces the dynamic configs of `scope` resource `name` durably (an empty set removes
    /// the entry).
    pub fn set_configs(
        &self,
        scope: ConfigScope,
        name: &str,
        configs: BTreeMap<String, String>,
    ) -> Result<(), MetadataError> {
        self.commit(|_| {
            Ok((
                vec![MetadataRecord::Configs {
                    scope,
                    name: name.to_string(),
                    configs,
                }],
                (),
            ))
        })
    }

    /// Replaces a topic's explicit configs durably; `None` if the topic does not exist. On a
    /// persistence failure the old configs stay in place.
    pub fn set_topic_configs(
        &self,
        name: &str,
        configs: BTreeMap<String, String>,
    ) -> Result<Option<Arc<TopicMeta>>, MetadataError> {
        self.update_topic(
            name,
            MetadataRecord::TopicConfigs {
                name: name.to_string(),
                configs,
            },
        )
    }

    /// Raises a topic's partition count durably; `None` if the topic does not exist. The caller
    /// has checked that `partitions` is larger than the current count.
    pub fn set_partition_count(
        &self,
        name: &str,
        partitions: i32,
    ) -> Result<Option<Arc<TopicMeta>>, MetadataError> {
        self.update_topic(
            name,
            MetadataRecord::PartitionCount {
                name: name.to_string(),
                partitions,
            },
        )
    }

    fn update_topic(
        &self,
        name: &str,
        record: MetadataRecord,
    ) -> Result<Option<Arc<TopicMeta>>, MetadataError> {
        self.commit(|image| {
            let Some(old) = image.topic(name) else {
                return Ok((Vec::new(), None));
            };
            let mut scratch = MetadataImage::default();
            scratch.apply(&MetadataRecord::Topic(TopicMeta::clone(old)));
            scratch.apply(&record);
            let new = scratch.topic(name).cloned();
            Ok((vec![record], new))
        })
    }

    /// A producer id never handed out before, by this run or an earlier one.
    pub fn next_producer_id(&self) -> Result<ProducerId, MetadataError> {
        // Lock order: the allocator's lock, then the writer's (nothing takes them the other way).
        self.producer_ids
            .next(|limit| {
                self.commit(|_| {
                    Ok((
                        vec![MetadataRecord::ProducerIdBlock {
                            reserved_until: limit,
                        }],
                        (),
                    ))
                })
            })
            .map(ProducerId)
    }

    /// True if this broker issued `id` (used to accept an epoch bump for a known producer).
    pub fn producer_id_was_issued(&self, id: ProducerId) -> bool {
        self.producer_ids.was_issued(id.get())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A writer parked inside a commit (as one would be during a slow fsync of the snapshot)
    /// holds the writer's lock; readers still get the current image at once, and see the new
    /// topic only after the commit publishes it.
    #[test]
    fn readers_do_not_wait_for_a_writer() {
        use std::sync::mpsc;
        use std::time::{Duration, Instant};
        let dir = tempfile::tempdir().unwrap();
        let store = MetadataStore::open(dir.path(), NodeId(1), None, Vec::new).unwrap();
        store.create_topic("before", 1, BTreeMap::new()).unwrap();
        let (inside, wait_inside) = mpsc::channel();
        let (release, wait_release) = mpsc::channel::<()>();
        let writer = {
            let store = Arc::clone(&store);
            std::thread::spawn(move || {
                store.commit(|image| {
                    inside.send(()).unwrap();
                    wait_release.recv().unwrap();
                    let mut topic = image.topic("before").unwrap().as_ref().clone();
                    topic.name = "after".into();
                    topic.id = TopicId::random();
                    Ok((vec![MetadataRecord::Topic(topic)], ()))
                })
            })
        };
        wait_inside.recv().unwrap();
        let asked = Instant::now();
        for _ in 0..1000 {
            assert!(store.topic("before").is_some());
            assert!(store.topic("after").is_none());
            assert_eq!(store.image().topics().count(), 1);
        }
        assert!(
            asked.elapsed() < Duration::from_secs(1),
            "{:?}",
            asked.elapsed()
        );
        release.send(()).unwrap();
        writer.join().unwrap().unwrap();
        assert!(store.topic("after").is_some());
    }

    #[test]
    fn topics_and_producer_ids_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let store = MetadataStore::open(dir.path(), NodeId(1), None, Vec::new).unwrap();
        let t = store.create_topic("a", 3, BTreeMap::new()).unwrap();
        assert!(matches!(
            store.create_topic("a", 1, BTreeMap::new()),
            Err(MetadataError::TopicExists(_))
        ));
        let first = store.next_producer_id().unwrap();
        let cluster = store.cluster_id().to_string();
        drop(store);
        let store = MetadataStore::open(dir.path(), NodeId(1), None, Vec::new).unwrap();
        assert_eq!(store.topic("a"), Some(t.clone()));
        assert_eq!(
            store.topic_by_id(t.id).map(|t| t.name.clone()),
            Some("a".to_string())
        );
        assert_eq!(store.cluster_id(), cluster);
        assert!(
            store.next_producer_id().unwrap() > first,
            "producer ids are never reused"
        );
        assert!(
            MetadataStore::open(dir.path(), NodeId(2), None, Vec::new).is_err(),
            "node id is checked"
        );
    }

    #[test]
    fn topic_configs_and_partition_counts_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let store = MetadataStore::open(dir.path(), NodeId(1), None, Vec::new).unwrap();
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
        let store = MetadataStore::open(dir.path(), NodeId(1), None, Vec::new).unwrap();
        let t = store.topic("a").unwrap();
        assert_eq!((t.configs.clone(), t.partitions), (c, 3));
    }

    #[test]
    fn kafka_uuid_format() {
        let id = Uuid::from_bytes([0; 16]);
        assert_eq!(
            crate::common::ids::uuid_to_kafka_string(id),
            "AAAAAAAAAAAAAAAAAAAAAA"
        );
        assert_eq!(
            crate::common::ids::uuid_to_kafka_string(Uuid::new_v4()).len(),
            22
        );
    }
}
