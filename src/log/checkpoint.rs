//! Small metadata files and directory operations: the per-log-dir offset checkpoints
//! (`recovery-point-offset-checkpoint`, `log-start-offset-checkpoint`) in Kafka's text format,
//! `partition.metadata` and directory listing. Files are replaced with [`write_atomic`] through
//! the file-system seam. Stateless functions; callers serialise writers of the same file.

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::Path;

use super::io::{write_atomic, FsIo};
use super::{LogError, TopicPartition};
use crate::common::TopicId;

/// File name of the recovery-point checkpoint.
pub const RECOVERY_POINT_FILE: &str = "recovery-point-offset-checkpoint";
/// File name of the log-start-offset checkpoint.
pub const LOG_START_FILE: &str = "log-start-offset-checkpoint";
/// Kafka's name for the log cleaner's positions (first dirty offset per compacted partition).
pub const CLEANER_FILE: &str = "cleaner-offset-checkpoint";
/// File name of the partition metadata file.
pub const PARTITION_METADATA_FILE: &str = "partition.metadata";

/// Formats an offset checkpoint: `0\n<count>\n<topic> <partition> <offset>\n...`.
pub fn format_offset_checkpoint(entries: &BTreeMap<TopicPartition, i64>) -> String {
    let mut s = format!("0\n{}\n", entries.len());
    for (tp, off) in entries {
        s.push_str(&format!("{} {} {}\n", tp.topic, tp.partition, off));
    }
    s
}

/// Parses an offset checkpoint; errors name what is wrong.
pub fn parse_offset_checkpoint(text: &str) -> Result<BTreeMap<TopicPartition, i64>, LogError> {
    let bad = |m: &str| LogError::Corrupt(format!("offset checkpoint: {m}"));
    let mut lines = text.lines();
    if lines.next().map(str::trim) != Some("0") {
        return Err(bad("unsupported version"));
    }
    let count: usize = lines
        .next()
        .and_then(|l| l.trim().parse().ok())
        .ok_or_else(|| bad("bad entry count"))?;
    let mut out = BTreeMap::new();
    for _ in 0..count {
        let line = lines
            .next()
            .ok_or_else(|| bad("fewer entries than the count"))?;
        let mut parts = line.split(' ');
        let (Some(topic), Some(p), Some(o), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(bad("malformed entry"));
        };
        let partition: i32 = p.parse().map_err(|_| bad("bad partition"))?;
        let offset: i64 = o.parse().map_err(|_| bad("bad offset"))?;
        out.insert(TopicPartition::new(topic, partition), offset);
    }
    if lines.any(|l| !l.trim().is_empty()) {
        return Err(bad("more entries than the count"));
    }
    Ok(out)
}

/// Writes an offset checkpoint atomically.
pub fn write_offset_checkpoint(
    io: &dyn FsIo,
    path: &Path,
    entries: &BTreeMap<TopicPartition, i64>,
) -> io::Result<()> {
    write_atomic(io, path, format_offset_checkpoint(entries).as_bytes())
}

/// Reads an offset checkpoint; a missing file is an empty map.
pub fn read_offset_checkpoint(path: &Path) -> Result<BTreeMap<TopicPartition, i64>, LogError> {
    match fs::read_to_string(path) {
        Ok(s) => parse_offset_checkpoint(&s),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(BTreeMap::new()),
        Err(e) => Err(LogError::Io(e)),
    }
}

/// Writes `partition.metadata` (`"version: 0\ntopic_id: <id>\n"`) atomically.
pub(crate) fn write_partition_metadata(
    io: &dyn FsIo,
    dir: &Path,
    topic_id: TopicId,
) -> io::Result<()> {
    let text = format!("version: 0\ntopic_id: {topic_id}\n");
    write_atomic(io, &dir.join(PARTITION_METADATA_FILE), text.as_bytes())
}

/// Reads the topic id from `partition.metadata`; `None` if the file is missing or malformed.
pub(crate) fn read_partition_metadata(dir: &Path) -> io::Result<Option<TopicId>> {
    let text = match fs::read_to_string(dir.join(PARTITION_METADATA_FILE)) {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) if e.kind() == io::ErrorKind::InvalidData => return Ok(None),
        Err(e) => return Err(e),
    };
    Ok(text
        .lines()
        .find_map(|l| l.strip_prefix("topic_id:"))
        .and_then(|v| TopicId::parse(v.trim())))
}

/// Entries of a directory as (file name, is_dir); names that are not UTF-8 are skipped.
pub(crate) fn list_dir(dir: &Path) -> io::Result<Vec<(String, bool)>> {
    let mut out = Vec::new();
    for e in fs::read_dir(dir)? {
        let e = e?;
        if let Ok(name) = e.file_name().into_string() {
            out.push((name, e.file_type()?.is_dir()));
        }
    }
    out.sort();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::super::io::OsIo;
    use super::*;

    #[test]
    fn offset_checkpoint_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(RECOVERY_POINT_FILE);
        let mut m = BTreeMap::new();
        m.insert(TopicPartition::new("orders", 0), 42);
        m.insert(TopicPartition::new("my.topic-x", 12), 0);
        write_offset_checkpoint(&OsIo, &path, &m).unwrap();
        let text = fs::read_to_string(&path).unwrap();
        assert!(text.starts_with("0\n2\n"));
        assert!(text.contains("orders 0 42\n"));
        assert_eq!(read_offset_checkpoint(&path).unwrap(), m);
        assert!(read_offset_checkpoint(&dir.path().join("missing"))
            .unwrap()
            .is_empty());
    }

    #[test]
    fn offset_checkpoint_rejects_garbage() {
        for t in [
            "",
            "1\n0\n",
            "0\nx\n",
            "0\n2\na 0 1\n",
            "0\n1\na b 1\n",
            "0\n1\na 0 1 2\n",
            "0\n0\nextra 1 2\n",
        ] {
            assert!(parse_offset_checkpoint(t).is_err(), "{t:?}");
        }
        assert!(parse_offset_checkpoint("0\n0\n").unwrap().is_empty());
    }

    #[test]
    fn partition_metadata_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let id = TopicId::from_bytes([7u8; 16]);
        write_partition_metadata(&OsIo, dir.path(), id).unwrap();
        let text = fs::read_to_string(dir.path().join(PARTITION_METADATA_FILE)).unwrap();
        assert_eq!(text, format!("version: 0\ntopic_id: {id}\n"));
        assert_eq!(read_partition_metadata(dir.path()).unwrap(), Some(id));
    }
}
