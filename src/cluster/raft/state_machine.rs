//! The metadata state machine: applies committed commands to the [`MetadataImage`] and
//! publishes each new image; snapshots are the image's records.
//!
//! The image lives only in memory. On start it is rebuilt from the last snapshot
//! (`__cluster_metadata-0/snapshot`, written atomically) and the log entries after it, which
//! openraft replays once they are known to be committed — KRaft's way of loading metadata.

use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;
use openraft::storage::{RaftSnapshotBuilder, RaftStateMachine, Snapshot, SnapshotMeta};
use openraft::{BasicNode, EntryPayload, LogId, StorageError, StorageIOError, StoredMembership};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use super::{Applied, Entry, NodeIdRaft, TypeConfig};
use crate::log::io::{write_atomic, FsIo};
use crate::metadata::{MetadataImage, MetadataRecord};

const SNAPSHOT_FILE: &str = "snapshot";

/// The snapshot file: where it stops in the log, and the image as records.
#[derive(Serialize, Deserialize)]
struct SnapshotFile {
    meta: SnapshotMeta<NodeIdRaft, BasicNode>,
    records: Vec<MetadataRecord>,
}

/// The snapshot file in `dir`, if one was written.
fn read_snapshot(dir: &Path) -> std::io::Result<Option<SnapshotFile>> {
    match std::fs::read(dir.join(SNAPSHOT_FILE)) {
        Ok(bytes) => Ok(Some(
            serde_json::from_slice(&bytes).map_err(std::io::Error::other)?,
        )),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// What every reader of the metadata shares with the state machine.
#[derive(Debug)]
pub struct Published {
    /// The image after the last applied command.
    pub image: ArcSwap<MetadataImage>,
    /// The index of the last applied entry (0 before any).
    pub applied: watch::Sender<u64>,
}

/// The last log id of the snapshot file on disk, shared by the state machine and its
/// builders, which openraft runs in a task of their own: writes of the file go one at a time,
/// and one never replaces a snapshot that reaches further (a builder that finishes after a
/// newer snapshot was installed from the leader, whose log before it is purged, would leave a
/// snapshot and log with a gap between them).
#[derive(Debug, Default)]
struct SnapshotOnDisk(Mutex<Option<LogId<NodeIdRaft>>>);

impl SnapshotOnDisk {
    /// Writes `file` unless the snapshot on disk already reaches as far.
    fn write(&self, io: &dyn FsIo, dir: &Path, file: &SnapshotFile) -> std::io::Result<()> {
        let mut on_disk = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if on_disk.is_some() && *on_disk >= file.meta.last_log_id {
            return Ok(());
        }
        let bytes = serde_json::to_vec(file).map_err(std::io::Error::other)?;
        write_atomic(io, &dir.join(SNAPSHOT_FILE), &bytes)?;
        *on_disk = file.meta.last_log_id;
        Ok(())
    }
}

/// openraft's state machine over the metadata image.
pub struct StateMachine {
    published: Arc<Published>,
    last_applied: Option<LogId<NodeIdRaft>>,
    membership: StoredMembership<NodeIdRaft, BasicNode>,
    dir: PathBuf,
    io: Arc<dyn FsIo>,
    on_disk: Arc<SnapshotOnDisk>,
}

fn storage_error(e: impl std::error::Error + 'static) -> StorageError<NodeIdRaft> {
    StorageIOError::write_state_machine(&e).into()
}

impl StateMachine {
    /// Loads the last snapshot in `dir`, if any, into a fresh published image.
    pub fn open(dir: &Path, io: Arc<dyn FsIo>) -> std::io::Result<(StateMachine, Arc<Published>)> {
        let (applied, _) = watch::channel(0);
        let published = Arc::new(Published {
            image: ArcSwap::from_pointee(MetadataImage::default()),
            applied,
        });
        let mut machine = StateMachine {
            published: Arc::clone(&published),
            last_applied: None,
            membership: StoredMembership::default(),
            dir: dir.to_path_buf(),
            io,
            on_disk: Arc::default(),
        };
        if let Some(file) = read_snapshot(dir)? {
            machine.load(&file.meta, &file.records);
            *machine.on_disk.0.lock().unwrap_or_else(|p| p.into_inner()) = file.meta.last_log_id;
        }
        Ok((machine, published))
    }

    /// Replaces the state with a snapshot's.
    fn load(&mut self, meta: &SnapshotMeta<NodeIdRaft, BasicNode>, records: &[MetadataRecord]) {
        self.last_applied = meta.last_log_id;
        self.membership = meta.last_membership.clone();
        self.published
            .image
            .store(Arc::new(MetadataImage::from_records(records)));
        let index = self.last_applied.map_or(0, |l| l.index);
        self.published.applied.send_replace(index);
    }

    fn persist_snapshot(
        &self,
        meta: &SnapshotMeta<NodeIdRaft, BasicNode>,
        records: Vec<MetadataRecord>,
    ) -> std::io::Result<()> {
        let file = SnapshotFile {
            meta: meta.clone(),
            records,
        };
        self.on_disk.write(self.io.as_ref(), &self.dir, &file)
    }
}

/// Builds a snapshot of the image as it is when the builder was made.
pub struct SnapshotBuilder {
    image: Arc<MetadataImage>,
    last_applied: Option<LogId<NodeIdRaft>>,
    membership: StoredMembership<NodeIdRaft, BasicNode>,
    dir: PathBuf,
    io: Arc<dyn FsIo>,
    on_disk: Arc<SnapshotOnDisk>,
}

impl RaftSnapshotBuilder<TypeConfig> for SnapshotBuilder {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, StorageError<NodeIdRaft>> {
        let records = self.image.to_records();
        let data = serde_json::to_vec(&records).map_err(storage_error)?;
        let snapshot_id = match self.last_applied {
            Some(l) => format!("{}-{}", l.leader_id.term, l.index),
            None => "empty".to_string(),
        };
        let meta = SnapshotMeta {
            last_log_id: self.last_applied,
            last_membership: self.membership.clone(),
            snapshot_id,
        };
        let file = SnapshotFile {
            meta: meta.clone(),
            records,
        };
        let (io, dir, on_disk) = (
            Arc::clone(&self.io),
            self.dir.clone(),
            Arc::clone(&self.on_disk),
        );
        tokio::task::spawn_blocking(move || on_disk.write(io.as_ref(), &dir, &file))
            .await
            .map_err(storage_error)?
            .map_err(storage_error)?;
        Ok(Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(data)),
        })
    }
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotBuilder = SnapshotBuilder;

    async fn applied_state(
        &mut self,
    ) -> Result<
        (
            Option<LogId<NodeIdRaft>>,
            StoredMembership<NodeIdRaft, BasicNode>,
        ),
        StorageError<NodeIdRaft>,
    > {
        Ok((self.last_applied, self.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<Applied>, StorageError<NodeIdRaft>>
    where
        I: IntoIterator<Item = Entry> + Send,
        I::IntoIter: Send,
    {
        let mut image = MetadataImage::clone(&self.published.image.load());
        let mut answers = Vec::new();
        for entry in entries {
            self.last_applied = Some(entry.log_id);
            let answer = match entry.payload {
                EntryPayload::Blank => Applied::default(),
                EntryPayload::Normal(command) => Applied {
                    rejected: image
                        .apply_command(&command, entry.log_id.leader_id.term)
                        .err(),
                },
                EntryPayload::Membership(membership) => {
                    self.membership = StoredMembership::new(Some(entry.log_id), membership);
                    Applied::default()
                }
            };
            answers.push(answer);
        }
        self.published.image.store(Arc::new(image));
        let index = self.last_applied.map_or(0, |l| l.index);
        self.published.applied.send_replace(index);
        Ok(answers)
    }

    async fn get_snapshot_builder(&mut self) -> SnapshotBuilder {
        SnapshotBuilder {
            image: self.published.image.load_full(),
            last_applied: self.last_applied,
            membership: self.membership.clone(),
            dir: self.dir.clone(),
            io: Arc::clone(&self.io),
            on_disk: Arc::clone(&self.on_disk),
        }
    }

    async fn begin_receiving_snapshot(
        &mut self,
    ) -> Result<Box<Cursor<Vec<u8>>>, StorageError<NodeIdRaft>> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<NodeIdRaft, BasicNode>,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError<NodeIdRaft>> {
        let data = snapshot.into_inner();
        let records: Vec<MetadataRecord> = serde_json::from_slice(&data).map_err(storage_error)?;
        self.persist_snapshot(meta, records.clone())
            .map_err(storage_error)?;
        self.load(meta, &records);
        Ok(())
    }

    async fn get_current_snapshot(
        &mut self,
    ) -> Result<Option<Snapshot<TypeConfig>>, StorageError<NodeIdRaft>> {
        let Some(file) = read_snapshot(&self.dir).map_err(storage_error)? else {
            return Ok(None);
        };
        let data = serde_json::to_vec(&file.records).map_err(storage_error)?;
        Ok(Some(Snapshot {
            meta: file.meta,
            snapshot: Box::new(Cursor::new(data)),
        }))
    }
}

#[cfg(test)]
mod tests {
    use openraft::CommittedLeaderId;

    use super::*;
    use crate::log::io::OsIo;

    fn log_id(term: u64, index: u64) -> LogId<NodeIdRaft> {
        LogId::new(CommittedLeaderId::new(term, 1), index)
    }

    #[tokio::test]
    async fn a_late_builder_does_not_replace_a_newer_installed_snapshot() {
        let dir = tempfile::tempdir().unwrap();
        let (mut machine, _) = StateMachine::open(dir.path(), Arc::new(OsIo)).unwrap();
        let blanks: Vec<Entry> = (1..=5)
            .map(|i| Entry {
                log_id: log_id(1, i),
                payload: EntryPayload::Blank,
            })
            .collect();
        machine.apply(blanks).await.unwrap();
        // openraft builds in a task of its own: the builder holds the image at index 5 while
        // a snapshot up to index 10 arrives from the leader and is installed.
        let mut builder = machine.get_snapshot_builder().await;
        let newer = SnapshotMeta {
            last_log_id: Some(log_id(2, 10)),
            last_membership: StoredMembership::default(),
            snapshot_id: "2-1-10".into(),
        };
        let records = vec![MetadataRecord::ClusterId("from-the-leader".into())];
        let data = serde_json::to_vec(&records).unwrap();
        machine
            .install_snapshot(&newer, Box::new(Cursor::new(data)))
            .await
            .unwrap();
        let built = builder.build_snapshot().await.unwrap();
        assert_eq!(built.meta.last_log_id, Some(log_id(1, 5)));

        let on_disk = read_snapshot(dir.path()).unwrap().unwrap();
        assert_eq!(
            on_disk.meta.last_log_id,
            Some(log_id(2, 10)),
            "still the newer one"
        );
        let (mut reopened, published) = StateMachine::open(dir.path(), Arc::new(OsIo)).unwrap();
        assert_eq!(
            reopened.applied_state().await.unwrap().0,
            Some(log_id(2, 10))
        );
        assert_eq!(*published.applied.borrow(), 10);
    }
}
