//! The durable metadata log and vote, in `<log.dirs>/__cluster_metadata-0/`.
//!
//! - `quorum-state`: the vote and the id of the last purged entry, JSON, replaced atomically
//!   and fsynced before openraft is told the vote is saved (a node never votes twice in a term,
//!   even across a crash).
//! - `log`: the entries, each framed as a 4-byte length, a CRC-32C of the payload and the JSON
//!   payload; appended and fdatasynced before the append is acknowledged. On open a torn or
//!   corrupt tail (a crash mid-append) is cut off, as Kafka's recovery does for a segment.
//!
//! The metadata log is small (it is snapshotted and purged), so every entry is also held in
//! memory. File work runs on the blocking pool, never on the runtime's workers.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::fs::{File, OpenOptions};
use std::ops::RangeBounds;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use openraft::storage::{LogFlushed, LogState, RaftLogReader, RaftLogStorage};
use openraft::{LogId, StorageError, StorageIOError, Vote};
use serde::{Deserialize, Serialize};

use super::{Entry, NodeIdRaft, TypeConfig};
use crate::log::io::{parent_dir, write_atomic, FsIo};

const LOG_FILE: &str = "log";
const STATE_FILE: &str = "quorum-state";
/// Bytes before each payload: length and CRC.
const FRAME_HEADER: usize = 8;

/// What `quorum-state` holds.
#[derive(Default, Serialize, Deserialize)]
struct QuorumState {
    vote: Option<Vote<NodeIdRaft>>,
    purged: Option<LogId<NodeIdRaft>>,
}

/// The log file and its in-memory copy.
#[derive(Debug)]
struct LogFile {
    io: Arc<dyn FsIo>,
    dir: PathBuf,
    file: File,
    /// Where the next frame goes.
    end: u64,
    /// Entries after the last purge, by index, with the file position of their frame.
    entries: BTreeMap<u64, (Entry, u64)>,
    vote: Option<Vote<NodeIdRaft>>,
    purged: Option<LogId<NodeIdRaft>>,
    /// Purged entries still in the file; past a bound the file is rewritten without them.
    garbage: u64,
}

/// openraft's log storage over [`LogFile`]; cloning shares the same file (the log reader).
#[derive(Clone, Debug)]
pub struct LogStore {
    inner: Arc<Mutex<LogFile>>,
}

fn io_error(e: impl std::error::Error + 'static) -> StorageError<NodeIdRaft> {
    StorageIOError::write_logs(&e).into()
}

fn frame(payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(FRAME_HEADER + payload.len());
    out.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    out.extend_from_slice(&crc32c::crc32c(payload).to_be_bytes());
    out.extend_from_slice(payload);
    out
}

impl LogStore {
    /// Opens (or creates) the log in `dir`, cutting off a torn tail.
    pub fn open(dir: &Path, io: Arc<dyn FsIo>) -> std::io::Result<LogStore> {
        if !dir.exists() {
            io.create_dir_all(dir)?;
            // The directory's own entry must be durable too, or a power cut can take the
            // whole log with it, the vote included (a node could then vote twice in a term).
            io.sync_dir(parent_dir(dir))?;
        }
        let state: QuorumState = match std::fs::read(dir.join(STATE_FILE)) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(std::io::Error::other)?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => QuorumState::default(),
            Err(e) => return Err(e),
        };
        let path = dir.join(LOG_FILE);
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(e),
        };
        let mut entries = BTreeMap::new();
        let mut pos = 0usize;
        let mut garbage = 0;
        while let Some(header) = bytes.get(pos..pos + FRAME_HEADER) {
            let len = u32::from_be_bytes([header[0], header[1], header[2], header[3]]) as usize;
            let crc = u32::from_be_bytes([header[4], header[5], header[6], header[7]]);
            let Some(payload) = bytes.get(pos + FRAME_HEADER..pos + FRAME_HEADER + len) else {
                break;
            };
            if crc32c::crc32c(payload) != crc {
                break;
            }
            let Ok(entry) = serde_json::from_slice::<Entry>(payload) else {
                break;
            };
            if state.purged.is_some_and(|p| entry.log_id.index <= p.index) {
                garbage += 1;
            } else {
                // A later frame for an index replaces an earlier one only after a truncation,
                // which cuts the file; keep the last to be safe.
                entries.insert(entry.log_id.index, (entry, pos as u64));
            }
            pos += FRAME_HEADER + len;
        }
        let existed = path.exists();
        let file = io.open(
            &path,
            OpenOptions::new().read(true).write(true).create(true),
        )?;
        if !existed {
            // The new file's name must survive a crash before anything in it counts.
            io.sync_dir(dir)?;
        }
        if (pos as u64) < bytes.len() as u64 {
            tracing::warn!(
                path = %path.display(),
                valid = pos,
                len = bytes.len(),
                "cutting a torn tail off the metadata log"
            );
            io.set_len(&file, pos as u64)?;
            io.sync_data(&file)?;
        }
        Ok(LogStore {
            inner: Arc::new(Mutex::new(LogFile {
                io,
                dir: dir.to_path_buf(),
                file,
                end: pos as u64,
                entries,
                vote: state.vote,
                purged: state.purged,
                garbage,
            })),
        })
    }

    /// True if nothing was ever logged here (no entry, no purge): a voter that has never
    /// joined a cluster, which may initialize one.
    pub fn is_new(&self) -> bool {
        let log = self.lock();
        log.entries.is_empty() && log.purged.is_none()
    }

    fn lock(&self) -> MutexGuard<'_, LogFile> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs `work` on the file on the blocking pool.
    async fn blocking<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut LogFile) -> std::io::Result<T> + Send + 'static,
    ) -> Result<T, StorageError<NodeIdRaft>> {
        let inner = Arc::clone(&self.inner);
        tokio::task::spawn_blocking(move || {
            let mut log = inner.lock().unwrap_or_else(|p| p.into_inner());
            work(&mut log)
        })
        .await
        .map_err(io_error)?
        .map_err(io_error)
    }
}

impl LogFile {
    fn save_state(&self) -> std::io::Result<()> {
        let state = QuorumState {
            vote: self.vote,
            purged: self.purged,
        };
        let bytes = serde_json::to_vec(&state).map_err(std::io::Error::other)?;
        write_atomic(self.io.as_ref(), &self.dir.join(STATE_FILE), &bytes)
    }

    fn append(&mut self, entries: Vec<Entry>) -> std::io::Result<()> {
        let mut buffer = Vec::new();
        let mut placed = Vec::with_capacity(entries.len());
        for entry in entries {
            let payload = serde_json::to_vec(&entry).map_err(std::io::Error::other)?;
            placed.push((entry, self.end + buffer.len() as u64));
            buffer.extend_from_slice(&frame(&payload));
        }
        self.io.write_at(&self.file, &buffer, &[], self.end)?;
        self.io.sync_data(&self.file)?;
        self.end += buffer.len() as u64;
        for (entry, pos) in placed {
            self.entries.insert(entry.log_id.index, (entry, pos));
        }
        Ok(())
    }

    /// Removes entries from `index` on (a new leader's log replaces them).
    fn truncate(&mut self, index: u64) -> std::io::Result<()> {
        let Some((_, pos)) = self.entries.range(index..).next().map(|(_, e)| e.clone()) else {
            return Ok(());
        };
        self.io.set_len(&self.file, pos)?;
        self.io.sync_data(&self.file)?;
        self.end = pos;
        self.entries.split_off(&index);
        Ok(())
    }

    /// Forgets entries up to `log_id` (they are in a snapshot); rewrites the file once enough
    /// of it is dead.
    fn purge(&mut self, log_id: LogId<NodeIdRaft>) -> std::io::Result<()> {
        self.purged = Some(log_id);
        self.save_state()?;
        let kept = self.entries.split_off(&(log_id.index + 1));
        self.garbage += self.entries.len() as u64;
        self.entries = kept;
        if self.garbage > 1000 && self.garbage > self.entries.len() as u64 {
            self.rewrite()?;
        }
        Ok(())
    }

    /// Writes the live entries to a new file that replaces the old one atomically.
    fn rewrite(&mut self) -> std::io::Result<()> {
        let mut bytes = Vec::new();
        let mut positions = Vec::with_capacity(self.entries.len());
        for (index, (entry, _)) in &self.entries {
            let payload = serde_json::to_vec(entry).map_err(std::io::Error::other)?;
            positions.push((*index, bytes.len() as u64));
            bytes.extend_from_slice(&frame(&payload));
        }
        let path = self.dir.join(LOG_FILE);
        write_atomic(self.io.as_ref(), &path, &bytes)?;
        self.file = self
            .io
            .open(&path, OpenOptions::new().read(true).write(true))?;
        self.end = bytes.len() as u64;
        for (index, pos) in positions {
            if let Some(slot) = self.entries.get_mut(&index) {
                slot.1 = pos;
            }
        }
        self.garbage = 0;
        Ok(())
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + Send>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, StorageError<NodeIdRaft>> {
        Ok(self
            .lock()
            .entries
            .range(range)
            .map(|(_, (e, _))| e.clone())
            .collect())
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError<NodeIdRaft>> {
        let log = self.lock();
        let last = log
            .entries
            .values()
            .next_back()
            .map(|(e, _)| e.log_id)
            .or(log.purged);
        Ok(LogState {
            last_purged_log_id: log.purged,
            last_log_id: last,
        })
    }

    async fn get_log_reader(&mut self) -> LogStore {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<NodeIdRaft>) -> Result<(), StorageError<NodeIdRaft>> {
        let vote = *vote;
        self.blocking(move |log| {
            let before = log.vote;
            log.vote = Some(vote);
            log.save_state().inspect_err(|_| log.vote = before)
        })
        .await
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<NodeIdRaft>>, StorageError<NodeIdRaft>> {
        Ok(self.lock().vote)
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: LogFlushed<TypeConfig>,
    ) -> Result<(), StorageError<NodeIdRaft>>
    where
        I: IntoIterator<Item = Entry> + Send,
        I::IntoIter: Send,
    {
        let entries: Vec<Entry> = entries.into_iter().collect();
        if entries.is_empty() {
            // A heartbeat: nothing to write, and an fsync here would put the disk's latency
            // on every heartbeat (and past openraft's RPC timeout on a busy disk).
            callback.log_io_completed(Ok(()));
            return Ok(());
        }
        let result = self.blocking(move |log| log.append(entries)).await;
        match result {
            Ok(()) => {
                callback.log_io_completed(Ok(()));
                Ok(())
            }
            Err(e) => {
                callback.log_io_completed(Err(std::io::Error::other(e.to_string())));
                Err(e)
            }
        }
    }

    async fn truncate(
        &mut self,
        log_id: LogId<NodeIdRaft>,
    ) -> Result<(), StorageError<NodeIdRaft>> {
        self.blocking(move |log| log.truncate(log_id.index)).await
    }

    async fn purge(&mut self, log_id: LogId<NodeIdRaft>) -> Result<(), StorageError<NodeIdRaft>> {
        self.blocking(move |log| log.purge(log_id)).await
    }
}

#[cfg(test)]
mod tests {
    use openraft::{CommittedLeaderId, EntryPayload};

    use super::*;
    use crate::log::io::FaultyIo;

    /// What a power cut now would leave of `root`, opened as a log again.
    fn after_power_cut(io: &FaultyIo, root: &Path, out: &Path) -> LogStore {
        io.materialise(root, out).unwrap();
        LogStore::open(&out.join("meta"), Arc::new(FaultyIo::new())).unwrap()
    }

    #[tokio::test]
    async fn a_new_log_survives_a_power_cut_with_its_vote_and_entries() {
        let root = tempfile::tempdir().unwrap();
        let io = Arc::new(FaultyIo::new());
        io.assume_durable(root.path()).unwrap();
        let mut log = LogStore::open(&root.path().join("meta"), io.clone()).unwrap();
        let vote = Vote::new(3, 2);
        log.save_vote(&vote).await.unwrap();
        let entry = Entry {
            log_id: LogId::new(CommittedLeaderId::new(3, 2), 1),
            payload: EntryPayload::Blank,
        };
        log.blocking(move |f| f.append(vec![entry])).await.unwrap();

        let out = tempfile::tempdir().unwrap();
        let mut reopened = after_power_cut(&io, root.path(), out.path());
        assert_eq!(
            reopened.read_vote().await.unwrap(),
            Some(vote),
            "a saved vote survives, so the node cannot vote again in term 3"
        );
        let state = reopened.get_log_state().await.unwrap();
        assert_eq!(
            state.last_log_id.map(|l| l.index),
            Some(1),
            "the synced append too"
        );
    }
}
