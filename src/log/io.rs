//! The one seam between Gregor's durable state and the file system. Every operation whose
//! order decides what survives a crash goes through [`FsIo`]: creating a file, writing batch
//! bytes to a segment, `fsync`/`fdatasync` of a file, `fsync` of a directory, rename, removal,
//! directory creation and removal, and [`write_atomic`] (the only atomic-replace writer, used by
//! every checkpoint, `partition.metadata` and the metadata store). Plain writes into a file
//! already open (index entries, `.txnindex` entries, checkpoint bodies) and opens that create
//! nothing use `std::fs` directly: what a crash keeps of them is decided by the next fsync.
//!
//! [`OsIo`] does the real system calls. [`FaultyIo`] is the test double: it injects failures
//! (the Nth write or fsync fails, a full disk with partial writes) and models a power cut. It
//! records, per file, the bytes it held at its last fsync and, per directory, the entries it
//! held at its last directory fsync; [`FaultyIo::materialise`] writes out the disk a crash at
//! that moment would leave (everything not fsynced dropped: unsynced bytes, creations, renames,
//! removals), and [`FaultyIo::crash_after`] freezes that model at a chosen operation (later
//! operations fail with EIO), so a test can crash in the middle of any multi-step write.
//! Both are `Send + Sync` and held once per log manager and metadata store as `Arc<dyn FsIo>`;
//! the append path makes one virtual call per batch, not per byte.

use std::collections::{BTreeMap, HashMap};
use std::ffi::OsString;
use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

/// File-system operations that decide durability. Implementations must be thread-safe.
pub trait FsIo: Send + Sync + fmt::Debug {
    /// Writes `head` then `rest` at `pos` of a segment `.log` (both, or an error; a failed
    /// call may leave a prefix of the bytes written, which the caller truncates away).
    fn write_at(&self, file: &File, head: &[u8], rest: &[u8], pos: u64) -> io::Result<()>;
    /// `fdatasync(2)`: the file's bytes and length are durable when it returns.
    fn sync_data(&self, file: &File) -> io::Result<()>;
    /// `fsync(2)`.
    fn sync_all(&self, file: &File) -> io::Result<()>;
    /// `ftruncate(2)`.
    fn set_len(&self, file: &File, len: u64) -> io::Result<()>;
    /// Opens `path` with `opts`; the only way durable files are created.
    fn open(&self, path: &Path, opts: &OpenOptions) -> io::Result<File>;
    /// `fsync(2)` of a directory: entries created, renamed or removed in it become durable.
    fn sync_dir(&self, dir: &Path) -> io::Result<()>;
    /// `rename(2)`.
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
    /// `unlink(2)`.
    fn remove_file(&self, path: &Path) -> io::Result<()>;
    /// Creates a directory and its missing parents.
    fn create_dir_all(&self, dir: &Path) -> io::Result<()>;
    /// Removes a directory tree.
    fn remove_dir_all(&self, dir: &Path) -> io::Result<()>;
}

/// The real file system.
#[derive(Debug, Default, Clone, Copy)]
pub struct OsIo;

impl FsIo for OsIo {
    fn write_at(&self, file: &File, head: &[u8], rest: &[u8], pos: u64) -> io::Result<()> {
        super::segment::write_two_at(file, head, rest, pos)
    }

    fn sync_data(&self, file: &File) -> io::Result<()> {
        file.sync_data()
    }

    fn sync_all(&self, file: &File) -> io::Result<()> {
        file.sync_all()
    }

    fn set_len(&self, file: &File, len: u64) -> io::Result<()> {
        file.set_len(len)
    }

    fn open(&self, path: &Path, opts: &OpenOptions) -> io::Result<File> {
        opts.open(path)
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        File::open(dir)?.sync_all()
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        fs::rename(from, to)
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        fs::remove_file(path)
    }

    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        fs::create_dir_all(dir)
    }

    fn remove_dir_all(&self, dir: &Path) -> io::Result<()> {
        fs::remove_dir_all(dir)
    }
}

/// Replaces `path` with `content` atomically and durably: write `<path>.tmp`, fsync it, rename
/// it over `path`, fsync the directory. A crash leaves the old or the new content, never a torn
/// file. Callers serialise writers of the same path.
pub fn write_atomic(io: &dyn FsIo, path: &Path, content: &[u8]) -> io::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    {
        let mut f = create_truncated(io, &tmp)?;
        f.write_all(content)?;
        io.sync_all(&f)?;
    }
    io.rename(&tmp, path)?;
    io.sync_dir(parent_dir(path))
}

/// Opens `path` through `io` for reading and writing, created if missing and emptied if not:
/// how every new segment, index, snapshot, cleaned log and temporary file starts.
pub(crate) fn create_truncated(io: &dyn FsIo, path: &Path) -> io::Result<File> {
    io.open(
        path,
        OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true),
    )
}

/// The directory holding `path` ("." for a bare file name).
pub(crate) fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// Removes one file through `io`; a file already gone is fine.
pub(crate) fn remove_if_exists(io: &dyn FsIo, path: &Path) -> io::Result<()> {
    match io.remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// True for the errors that mean "no space", after which writes may succeed again.
pub fn is_out_of_space(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::ENOSPC) | Some(libc::EDQUOT))
}

/// A durable directory entry in the crash model: a file or a directory, by model id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Entry {
    File(u64),
    Dir(u64),
}

#[derive(Debug, Default)]
struct FaultState {
    writes: u64,
    syncs: u64,
    /// (n, errno, bytes written before failing): the nth write (1-based) fails.
    fail_write: Option<(u64, i32, usize)>,
    /// The nth fsync (1-based) fails with EIO.
    fail_sync: Option<u64>,
    /// Every write fails with ENOSPC after writing this many bytes, until cleared.
    disk_full: Option<usize>,
    /// Operations through the seam so far.
    ops: u64,
    /// The operation (1-based) at which the power goes: it and everything after fail.
    crash_at: Option<u64>,
    crashed: bool,
    /// (device, inode) -> model id of the file or directory the inode holds now. A file
    /// created through the seam gets a fresh id, so a reused inode number never inherits the
    /// durable state of a deleted file (which a crash may bring back under its old name).
    ids: HashMap<(u64, u64), u64>,
    next_id: u64,
    /// Model id -> bytes of the file at its last fsync.
    files: HashMap<u64, Vec<u8>>,
    /// Model id -> entries of the directory at its last fsync.
    dirs: HashMap<u64, BTreeMap<OsString, Entry>>,
}

impl FaultState {
    fn id_of(&mut self, key: (u64, u64)) -> u64 {
        if let Some(id) = self.ids.get(&key) {
            return *id;
        }
        self.fresh(key)
    }

    fn fresh(&mut self, key: (u64, u64)) -> u64 {
        self.next_id += 1;
        self.ids.insert(key, self.next_id);
        self.next_id
    }

    fn write_out(&self, dir_id: Option<u64>, out: &Path, depth: usize) -> io::Result<()> {
        fs::create_dir_all(out)?;
        let Some(entries) = dir_id.and_then(|id| self.dirs.get(&id)) else {
            return Ok(());
        };
        if depth > 64 {
            return Err(io::Error::other("crash model: directories nested too deep"));
        }
        for (name, entry) in entries {
            let path = out.join(name);
            match entry {
                Entry::File(id) => {
                    fs::write(&path, self.files.get(id).map_or(&[][..], Vec::as_slice))?
                }
                Entry::Dir(id) => self.write_out(Some(*id), &path, depth + 1)?,
            }
        }
        Ok(())
    }
}

/// A fault-injecting, crash-modelling [`FsIo`] over the real file system. See the module docs.
/// Every durable file and directory must be created through it (a file created behind its
/// back may sit on a reused inode number and be mistaken for an older one).
#[derive(Debug, Default)]
pub struct FaultyIo {
    state: Mutex<FaultState>,
}

fn key_of(m: &fs::Metadata) -> (u64, u64) {
    (m.dev(), m.ino())
}

fn crashed() -> io::Error {
    io::Error::from_raw_os_error(libc::EIO)
}

impl FaultyIo {
    /// A fault injector that injects nothing until told to.
    pub fn new() -> FaultyIo {
        FaultyIo::default()
    }

    fn lock(&self) -> MutexGuard<'_, FaultState> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Counts one operation; fails it (and every later one) once the crash point is reached.
    fn tick(&self) -> io::Result<MutexGuard<'_, FaultState>> {
        let mut s = self.lock();
        s.ops += 1;
        if s.crash_at.is_some_and(|at| s.ops >= at) {
            s.crashed = true;
        }
        if s.crashed {
            return Err(crashed());
        }
        Ok(s)
    }

    /// Makes the `n`th write from now fail with `errno` after writing `partial` bytes.
    pub fn fail_nth_write(&self, n: u64, errno: i32, partial: usize) {
        let mut s = self.lock();
        let at = s.writes + n;
        s.fail_write = Some((at, errno, partial));
    }

    /// Makes the `n`th file fsync from now fail with EIO.
    pub fn fail_nth_sync(&self, n: u64) {
        let mut s = self.lock();
        let at = s.syncs + n;
        s.fail_sync = Some(at);
    }

    /// While set, every write fails with ENOSPC after writing `partial` bytes.
    pub fn set_disk_full(&self, partial: Option<usize>) {
        self.lock().disk_full = partial;
    }

    /// Operations done through this seam so far (a test picks crash points below it).
    pub fn ops(&self) -> u64 {
        self.lock().ops
    }

    /// The power goes at the `n`th operation from now (`n >= 1`): that operation and all later
    /// ones fail with EIO and change nothing, and the durable state stays as it was.
    pub fn crash_after(&self, n: u64) {
        let mut s = self.lock();
        let at = s.ops + n.max(1);
        s.crash_at = Some(at);
    }

    /// The power goes now.
    pub fn crash_now(&self) {
        self.lock().crashed = true;
    }

    /// Whether the power has gone.
    pub fn crashed(&self) -> bool {
        self.lock().crashed
    }

    /// Takes everything now under `root` as durable, as after a clean shutdown: a test that
    /// starts from a disk written without this injector calls it first.
    pub fn assume_durable(&self, root: &Path) -> io::Result<()> {
        let mut s = self.lock();
        let mut stack = vec![root.to_path_buf()];
        while let Some(dir) = stack.pop() {
            let mut entries = BTreeMap::new();
            for e in fs::read_dir(&dir)? {
                let e = e?;
                let m = fs::symlink_metadata(e.path())?;
                let id = s.fresh(key_of(&m));
                if m.is_dir() {
                    stack.push(e.path());
                    entries.insert(e.file_name(), Entry::Dir(id));
                } else {
                    s.files.insert(id, fs::read(e.path())?);
                    entries.insert(e.file_name(), Entry::File(id));
                }
            }
            let id = s.id_of(key_of(&fs::metadata(&dir)?));
            s.dirs.insert(id, entries);
        }
        Ok(())
    }

    /// Writes into `out` (created if needed) what a crash now would leave of the tree rooted at
    /// `root`: the entries of each directory as of its last fsync, each file with its bytes as
    /// of its last fsync (empty if never fsynced). `root` itself is taken to exist.
    pub fn materialise(&self, root: &Path, out: &Path) -> io::Result<()> {
        let key = key_of(&fs::metadata(root)?);
        let s = self.lock();
        let id = s.ids.get(&key).copied();
        s.write_out(id, out, 0)
    }

    /// Length of `path` at its last successful fsync through this injector (0 if never).
    pub fn durable_len(&self, path: &Path) -> io::Result<u64> {
        let key = key_of(&fs::metadata(path)?);
        let s = self.lock();
        Ok(s.ids
            .get(&key)
            .and_then(|id| s.files.get(id))
            .map_or(0, |b| b.len() as u64))
    }

    /// Turns the segment files under `dir` (recursively) into what a power cut could leave:
    /// each `.log` keeps its durable prefix plus `keep(path, durable, len)` more bytes of its
    /// unsynced tail (a value the caller picks, clamped to the file), and `garbage` overwrites
    /// the rest of the kept tail when it returns true. Call after the manager is dropped.
    /// (A model of `.log` bytes only; [`FaultyIo::materialise`] models every file.)
    pub fn crash_image(
        &self,
        dir: &Path,
        keep: &mut dyn FnMut(&Path, u64, u64) -> u64,
        garbage: &mut dyn FnMut(&Path) -> bool,
    ) -> io::Result<()> {
        for entry in fs::read_dir(dir)? {
            let entry = entry?;
            let path = entry.path();
            if entry.file_type()?.is_dir() {
                self.crash_image(&path, keep, garbage)?;
                continue;
            }
            if path.extension().and_then(|e| e.to_str()) != Some("log") {
                continue;
            }
            let f = OpenOptions::new().read(true).write(true).open(&path)?;
            let len = f.metadata()?.len();
            let durable = self.durable_len(&path)?.min(len);
            let extra = keep(&path, durable, len).min(len - durable);
            let cut = durable + extra;
            f.set_len(cut)?;
            if extra > 0 && garbage(&path) {
                let junk: Vec<u8> = (0..extra)
                    .map(|i| (i as u8).wrapping_mul(31) ^ 0xa5)
                    .collect();
                f.write_all_at(&junk, durable)?;
            }
        }
        Ok(())
    }

    /// Records `file`'s current bytes as durable. The real fsync is skipped: the model, not the
    /// disk, is what a test's crash keeps, and tests stay fast.
    fn record_sync(&self, file: &File) -> io::Result<()> {
        {
            let mut s = self.tick()?;
            s.syncs += 1;
            if s.fail_sync == Some(s.syncs) {
                s.fail_sync = None;
                return Err(io::Error::from_raw_os_error(libc::EIO));
            }
        }
        // Through /proc: the descriptor may be write-only or the file already unlinked.
        let bytes = fs::read(format!("/proc/self/fd/{}", file.as_raw_fd()))?;
        let key = key_of(&file.metadata()?);
        let mut s = self.lock();
        if s.crashed {
            return Err(crashed());
        }
        let id = s.id_of(key);
        s.files.insert(id, bytes);
        Ok(())
    }
}

impl FsIo for FaultyIo {
    fn write_at(&self, file: &File, head: &[u8], rest: &[u8], pos: u64) -> io::Result<()> {
        let failure = {
            let mut s = self.tick()?;
            s.writes += 1;
            match (s.fail_write, s.disk_full) {
                (Some((n, errno, partial)), _) if n == s.writes => {
                    s.fail_write = None;
                    Some((errno, partial))
                }
                (_, Some(partial)) => Some((libc::ENOSPC, partial)),
                _ => None,
            }
        };
        if let Some((errno, partial)) = failure {
            // A short write before the error, as a file system that runs out of blocks does.
            let mut all = Vec::with_capacity(head.len() + rest.len());
            all.extend_from_slice(head);
            all.extend_from_slice(rest);
            let n = partial.min(all.len().saturating_sub(1));
            file.write_all_at(&all[..n], pos)?;
            return Err(io::Error::from_raw_os_error(errno));
        }
        OsIo.write_at(file, head, rest, pos)
    }

    fn sync_data(&self, file: &File) -> io::Result<()> {
        self.record_sync(file)
    }

    fn sync_all(&self, file: &File) -> io::Result<()> {
        self.record_sync(file)
    }

    fn set_len(&self, file: &File, len: u64) -> io::Result<()> {
        drop(self.tick()?);
        OsIo.set_len(file, len)
    }

    fn open(&self, path: &Path, opts: &OpenOptions) -> io::Result<File> {
        let s = self.tick()?;
        let existed = fs::symlink_metadata(path).is_ok();
        let f = opts.open(path)?;
        if !existed {
            let key = key_of(&f.metadata()?);
            let mut s = s;
            s.fresh(key);
        }
        Ok(f)
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        let mut s = self.tick()?;
        let key = key_of(&fs::metadata(dir)?);
        let mut entries = BTreeMap::new();
        for e in fs::read_dir(dir)? {
            let e = e?;
            let m = fs::symlink_metadata(e.path())?;
            let id = s.id_of(key_of(&m));
            let entry = if m.is_dir() {
                Entry::Dir(id)
            } else {
                Entry::File(id)
            };
            entries.insert(e.file_name(), entry);
        }
        let id = s.id_of(key);
        s.dirs.insert(id, entries);
        Ok(())
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        drop(self.tick()?);
        OsIo.rename(from, to)
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        drop(self.tick()?);
        OsIo.remove_file(path)
    }

    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        let mut s = self.tick()?;
        let mut missing = Vec::new();
        let mut at = Some(dir);
        while let Some(p) = at.filter(|p| !p.as_os_str().is_empty() && !p.exists()) {
            missing.push(p.to_path_buf());
            at = p.parent();
        }
        OsIo.create_dir_all(dir)?;
        for p in missing {
            let key = key_of(&fs::metadata(&p)?);
            s.fresh(key);
        }
        Ok(())
    }

    fn remove_dir_all(&self, dir: &Path) -> io::Result<()> {
        drop(self.tick()?);
        OsIo.remove_dir_all(dir)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_tree(root: &Path) -> BTreeMap<String, Vec<u8>> {
        let mut out = BTreeMap::new();
        let mut stack = vec![root.to_path_buf()];
        while let Some(d) = stack.pop() {
            for e in fs::read_dir(&d).unwrap() {
                let e = e.unwrap();
                let rel = e.path().strip_prefix(root).unwrap().display().to_string();
                if e.file_type().unwrap().is_dir() {
                    out.insert(format!("{rel}/"), Vec::new());
                    stack.push(e.path());
                } else {
                    out.insert(rel, fs::read(e.path()).unwrap());
                }
            }
        }
        out
    }

    fn image(io: &FaultyIo, root: &Path) -> BTreeMap<String, Vec<u8>> {
        let out = tempfile::tempdir().unwrap();
        io.materialise(root, out.path()).unwrap();
        read_tree(out.path())
    }

    #[test]
    fn a_crash_keeps_only_what_was_fsynced() {
        let root = tempfile::tempdir().unwrap();
        let io = FaultyIo::new();
        let r = root.path();
        let create = OpenOptions::new().write(true).create(true).clone();
        let mut a = io.open(&r.join("a"), &create).unwrap();
        a.write_all(b"one").unwrap();
        assert!(
            image(&io, r).is_empty(),
            "entry not durable before the dir fsync"
        );
        io.sync_dir(r).unwrap();
        assert_eq!(
            image(&io, r)["a"],
            b"",
            "data not durable before the file fsync"
        );
        io.sync_data(&a).unwrap();
        a.write_all(b"two").unwrap();
        assert_eq!(image(&io, r)["a"], b"one", "unsynced bytes dropped");
        // A rename is durable only with the directory fsync.
        io.rename(&r.join("a"), &r.join("b")).unwrap();
        assert_eq!(image(&io, r).keys().collect::<Vec<_>>(), ["a"]);
        io.sync_dir(r).unwrap();
        assert_eq!(image(&io, r)["b"], b"one");
        // So is a removal; a new file on the old inode number does not inherit its bytes.
        drop(a);
        io.remove_file(&r.join("b")).unwrap();
        let c = io.open(&r.join("c"), &create).unwrap();
        assert_eq!(image(&io, r)["b"], b"one");
        io.sync_dir(r).unwrap();
        assert_eq!(image(&io, r)["c"], b"");
        drop(c);
        // Subdirectories need their own fsync; write_atomic does everything.
        io.create_dir_all(&r.join("d/e")).unwrap();
        write_atomic(&io, &r.join("d/e/f"), b"x").unwrap();
        assert!(!image(&io, r).contains_key("d/"));
        io.sync_dir(r).unwrap();
        io.sync_dir(&r.join("d")).unwrap();
        assert_eq!(image(&io, r)["d/e/f"], b"x");
    }

    #[test]
    fn a_crash_point_freezes_the_model() {
        let root = tempfile::tempdir().unwrap();
        let r = root.path();
        let io = FaultyIo::new();
        write_atomic(&io, &r.join("f"), b"old").unwrap();
        // write_atomic is four operations: open, sync, rename, sync dir. Crash at the last.
        io.crash_after(4);
        assert!(write_atomic(&io, &r.join("f"), b"new").is_err());
        assert!(io.crashed());
        assert_eq!(
            fs::read(r.join("f")).unwrap(),
            b"new",
            "the rename happened"
        );
        assert_eq!(image(&io, r)["f"], b"old", "but was not durable");
        assert!(io.sync_dir(r).is_err(), "nothing runs after the crash");
    }
}
