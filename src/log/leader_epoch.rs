//! The leader epoch cache of one partition and its durable form, Kafka's
//! `leader-epoch-checkpoint` file: for every leader epoch that wrote to this log, the offset of
//! its first batch. OffsetForLeaderEpoch answers from it, and a follower truncates to what it
//! says (KIP-101/279).
//!
//! File format (Kafka's): line 1 the version `0`, line 2 the entry count, then one
//! `<epoch> <start offset>` line per entry, oldest first. Replaced atomically through the
//! file-system seam ([`write_atomic`]); an entry is made durable before the first batch of its
//! epoch is written, so after a crash the file may name epochs whose batches were lost, never
//! the reverse: loading drops entries at or past the log end offset.
//! Pure data plus two file functions; the partition keeps the cache under its lock.

use std::io;
use std::path::Path;

use super::io::{write_atomic, FsIo};
use super::LogError;

/// File name of the checkpoint in the partition directory.
pub const LEADER_EPOCH_FILE: &str = "leader-epoch-checkpoint";

/// One cache entry: `epoch` wrote its first batch at `start_offset`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EpochEntry {
    /// The leader epoch.
    pub epoch: i32,
    /// Offset of its first batch.
    pub start_offset: i64,
}

/// See the module docs. Entries are strictly increasing in both epoch and start offset.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LeaderEpochCache {
    entries: Vec<EpochEntry>,
}

impl LeaderEpochCache {
    /// A cache holding `entries` (assumed sorted, as a loaded or built cache is).
    pub fn from_entries(entries: Vec<EpochEntry>) -> Self {
        LeaderEpochCache { entries }
    }

    /// The entries, oldest first.
    pub fn entries(&self) -> &[EpochEntry] {
        &self.entries
    }

    /// The newest epoch, if any.
    pub fn latest_epoch(&self) -> Option<i32> {
        self.entries.last().map(|e| e.epoch)
    }

    /// Records that `epoch` starts at `start_offset` if it is newer than every cached epoch;
    /// returns whether the cache changed (the caller then makes it durable). Entries of older
    /// epochs starting at or after `start_offset` cannot exist (offsets only grow), but are
    /// dropped defensively so the cache stays monotonic.
    pub fn assign(&mut self, epoch: i32, start_offset: i64) -> bool {
        if self.latest_epoch().is_some_and(|l| epoch <= l) {
            return false;
        }
        self.entries.retain(|e| e.start_offset < start_offset);
        self.entries.push(EpochEntry {
            epoch,
            start_offset,
        });
        true
    }

    /// Drops the newest entries whose start offset is at or past `end_offset` (a truncation of
    /// the log to `end_offset`, or a crash that lost their batches). Returns whether any went.
    pub fn truncate_from_end(&mut self, end_offset: i64) -> bool {
        let before = self.entries.len();
        self.entries.retain(|e| e.start_offset < end_offset);
        self.entries.len() != before
    }

    /// Forgets every entry (the log was emptied).
    pub fn clear(&mut self) {
        self.entries.clear();
    }

    /// Kafka's `endOffsetFor` as this broker answers OffsetForLeaderEpoch: the largest cached
    /// epoch at or below `epoch`, and its end offset — the start offset of the next cached
    /// epoch, or `log_end_offset` for the newest. `None` (UNDEFINED_EPOCH, offset -1) when the
    /// cache is empty or `epoch` is below every cached epoch.
    pub fn end_offset_for(&self, epoch: i32, log_end_offset: i64) -> Option<(i32, i64)> {
        let i = self.entries.partition_point(|e| e.epoch <= epoch);
        let floor = self.entries.get(i.checked_sub(1)?)?;
        let end = self
            .entries
            .get(i)
            .map_or(log_end_offset, |e| e.start_offset);
        Some((floor.epoch, end))
    }

    /// The checkpoint file's bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut s = format!("0\n{}\n", self.entries.len());
        for e in &self.entries {
            s.push_str(&format!("{} {}\n", e.epoch, e.start_offset));
        }
        s.into_bytes()
    }

    /// Parses checkpoint bytes; `Corrupt` names what is wrong. Entries must increase in epoch
    /// and start offset.
    pub fn decode(bytes: &[u8]) -> Result<LeaderEpochCache, LogError> {
        let bad = |m: &str| LogError::Corrupt(format!("{LEADER_EPOCH_FILE}: {m}"));
        let text = std::str::from_utf8(bytes).map_err(|_| bad("not text"))?;
        let mut lines = text.lines();
        if lines.next().map(str::trim) != Some("0") {
            return Err(bad("unsupported version"));
        }
        let count: usize = lines
            .next()
            .and_then(|l| l.trim().parse().ok())
            .ok_or_else(|| bad("bad entry count"))?;
        // The count comes from disk: grow the vector by the lines actually there.
        let mut entries: Vec<EpochEntry> = Vec::new();
        for _ in 0..count {
            let line = lines
                .next()
                .ok_or_else(|| bad("fewer entries than the count"))?;
            let mut parts = line.split_whitespace();
            let (Some(e), Some(o), None) = (parts.next(), parts.next(), parts.next()) else {
                return Err(bad("malformed entry"));
            };
            let epoch: i32 = e.parse().map_err(|_| bad("bad epoch"))?;
            let start_offset: i64 = o.parse().map_err(|_| bad("bad offset"))?;
            if entries
                .last()
                .is_some_and(|p| p.epoch >= epoch || p.start_offset > start_offset)
            {
                return Err(bad("entries out of order"));
            }
            entries.push(EpochEntry {
                epoch,
                start_offset,
            });
        }
        if lines.any(|l| !l.trim().is_empty()) {
            return Err(bad("more entries than the count"));
        }
        Ok(LeaderEpochCache { entries })
    }

    /// Replaces the partition's checkpoint with this cache, atomically and durably (temp file,
    /// fsync, rename, directory fsync).
    pub fn write(&self, io: &dyn FsIo, dir: &Path) -> io::Result<()> {
        write_atomic(io, &dir.join(LEADER_EPOCH_FILE), &self.encode())
    }

    /// The cache of a partition being opened with log start `log_start` and log end `leo`:
    /// the checkpoint's entries below `leo`; without a checkpoint (a log written before
    /// replication, where every batch carries epoch 0), `[(0, log_start)]` for a non-empty
    /// log. A damaged checkpoint is treated as missing, with a warning.
    pub fn load(dir: &Path, log_start: i64, leo: i64) -> Result<LeaderEpochCache, LogError> {
        let path = dir.join(LEADER_EPOCH_FILE);
        let loaded = match std::fs::read(&path) {
            Ok(bytes) => match LeaderEpochCache::decode(&bytes) {
                Ok(c) => Some(c),
                Err(e) => {
                    tracing::warn!(file = %path.display(), error = %e, "ignoring a damaged leader epoch checkpoint");
                    None
                }
            },
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => return Err(e.into()),
        };
        Ok(match loaded {
            Some(mut c) => {
                c.truncate_from_end(leo);
                c
            }
            None if leo > log_start => LeaderEpochCache::from_entries(vec![EpochEntry {
                epoch: 0,
                start_offset: log_start,
            }]),
            None => LeaderEpochCache::default(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::io::OsIo;
    use super::*;

    fn cache(e: &[(i32, i64)]) -> LeaderEpochCache {
        LeaderEpochCache::from_entries(
            e.iter()
                .map(|&(epoch, start_offset)| EpochEntry {
                    epoch,
                    start_offset,
                })
                .collect(),
        )
    }

    #[test]
    fn end_offset_for_follows_kafka() {
        let c = cache(&[(1, 0), (3, 10), (6, 25)]);
        assert_eq!(c.end_offset_for(0, 40), None, "below every epoch");
        assert_eq!(c.end_offset_for(1, 40), Some((1, 10)));
        assert_eq!(c.end_offset_for(2, 40), Some((1, 10)), "floor epoch");
        assert_eq!(c.end_offset_for(3, 40), Some((3, 25)));
        assert_eq!(c.end_offset_for(5, 40), Some((3, 25)));
        assert_eq!(c.end_offset_for(6, 40), Some((6, 40)), "latest: log end");
        assert_eq!(c.end_offset_for(9, 40), Some((6, 40)));
        assert_eq!(LeaderEpochCache::default().end_offset_for(0, 5), None);
    }

    #[test]
    fn assign_and_truncate() {
        let mut c = LeaderEpochCache::default();
        assert!(c.assign(2, 0));
        assert!(!c.assign(2, 5), "same epoch");
        assert!(!c.assign(1, 7), "older epoch");
        assert!(c.assign(4, 9));
        assert_eq!(c.latest_epoch(), Some(4));
        assert!(!c.truncate_from_end(10));
        assert!(c.truncate_from_end(9));
        assert_eq!(c, cache(&[(2, 0)]));
        assert!(c.truncate_from_end(0));
        assert_eq!(c.latest_epoch(), None);
    }

    #[test]
    fn file_round_trip_and_garbage() {
        let dir = tempfile::tempdir().unwrap();
        let c = cache(&[(0, 0), (5, 120)]);
        c.write(&OsIo, dir.path()).unwrap();
        let text = std::fs::read_to_string(dir.path().join(LEADER_EPOCH_FILE)).unwrap();
        assert_eq!(text, "0\n2\n0 0\n5 120\n");
        assert_eq!(LeaderEpochCache::load(dir.path(), 0, 500).unwrap(), c);
        // Entries at or past the log end are dropped (their batches did not survive).
        assert_eq!(
            LeaderEpochCache::load(dir.path(), 0, 120).unwrap(),
            cache(&[(0, 0)])
        );
        for t in [
            "",
            "1\n0\n",
            "0\nx\n",
            "0\n2\n1 0\n",
            "0\n1\n1\n",
            "0\n2\n3 0\n2 5\n",
            "0\n2\n1 9\n2 5\n",
            "0\n0\n1 2\n",
        ] {
            assert!(LeaderEpochCache::decode(t.as_bytes()).is_err(), "{t:?}");
        }
    }

    #[test]
    fn missing_file_defaults_to_epoch_zero_for_a_non_empty_log() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(
            LeaderEpochCache::load(dir.path(), 7, 30).unwrap(),
            cache(&[(0, 7)])
        );
        assert_eq!(
            LeaderEpochCache::load(dir.path(), 30, 30).unwrap(),
            LeaderEpochCache::default()
        );
    }
}
