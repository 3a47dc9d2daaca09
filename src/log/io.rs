//! The seam between the log and the file system for the operations whose failure decides
//! durability: writing batch bytes to a segment, `fdatasync`, and truncating a partial write.
//! [`OsIo`] does the real system calls; [`FaultyIo`] wraps it to inject failures (the Nth write
//! or fsync fails, a full disk with partial writes) and to remember how much of each file was
//! ever made durable, so tests can build the image a crash would leave behind
//! ([`FaultyIo::crash_image`]). Both are `Send + Sync` and shared by every partition of a
//! manager.

use std::collections::HashMap;
use std::fmt;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::Path;
use std::sync::{Mutex, MutexGuard};

/// File operations on segment `.log` files. Implementations must be thread-safe.
pub trait SegmentIo: Send + Sync + fmt::Debug {
    /// Writes `head` then `rest` at `pos` (both, or an error; a failed call may leave a prefix
    /// of the bytes written, which the caller truncates away).
    fn write_at(&self, file: &File, head: &[u8], rest: &[u8], pos: u64) -> io::Result<()>;
    /// `fdatasync(2)`.
    fn sync_data(&self, file: &File) -> io::Result<()>;
    /// `ftruncate(2)`.
    fn set_len(&self, file: &File, len: u64) -> io::Result<()>;
}

/// The real file system.
#[derive(Debug, Default, Clone, Copy)]
pub struct OsIo;

impl SegmentIo for OsIo {
    fn write_at(&self, file: &File, head: &[u8], rest: &[u8], pos: u64) -> io::Result<()> {
        super::segment::write_two_at(file, head, rest, pos)
    }

    fn sync_data(&self, file: &File) -> io::Result<()> {
        file.sync_data()
    }

    fn set_len(&self, file: &File, len: u64) -> io::Result<()> {
        file.set_len(len)
    }
}

/// True for the errors that mean "no space", after which writes may succeed again.
pub fn is_out_of_space(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::ENOSPC) | Some(libc::EDQUOT))
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
    /// (device, inode) -> file length at its last successful fsync.
    durable: HashMap<(u64, u64), u64>,
}

/// A fault-injecting [`SegmentIo`] over [`OsIo`]. See the module docs.
#[derive(Debug, Default)]
pub struct FaultyIo {
    state: Mutex<FaultState>,
}

fn key(file: &File) -> io::Result<(u64, u64)> {
    let m = file.metadata()?;
    Ok((m.dev(), m.ino()))
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

    /// Makes the `n`th write from now fail with `errno` after writing `partial` bytes.
    pub fn fail_nth_write(&self, n: u64, errno: i32, partial: usize) {
        let mut s = self.lock();
        let at = s.writes + n;
        s.fail_write = Some((at, errno, partial));
    }

    /// Makes the `n`th fsync from now fail with EIO.
    pub fn fail_nth_sync(&self, n: u64) {
        let mut s = self.lock();
        let at = s.syncs + n;
        s.fail_sync = Some(at);
    }

    /// While set, every write fails with ENOSPC after writing `partial` bytes.
    pub fn set_disk_full(&self, partial: Option<usize>) {
        self.lock().disk_full = partial;
    }

    /// Length of `path` at its last successful fsync through this injector (0 if never).
    pub fn durable_len(&self, path: &Path) -> io::Result<u64> {
        let f = File::open(path)?;
        Ok(self.lock().durable.get(&key(&f)?).copied().unwrap_or(0))
    }

    /// Turns the segment files under `dir` (recursively) into what a power cut could leave:
    /// each `.log` keeps its durable prefix plus `keep(path, durable, len)` more bytes of its
    /// unsynced tail (a value the caller picks, clamped to the file), and `garbage` overwrites
    /// the rest of the kept tail when it returns true. Call after the manager is dropped.
    pub fn crash_image(
        &self,
        dir: &Path,
        keep: &mut dyn FnMut(&Path, u64, u64) -> u64,
        garbage: &mut dyn FnMut(&Path) -> bool,
    ) -> io::Result<()> {
        for entry in std::fs::read_dir(dir)? {
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
            let durable = self
                .lock()
                .durable
                .get(&key(&f)?)
                .copied()
                .unwrap_or(0)
                .min(len);
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
}

impl SegmentIo for FaultyIo {
    fn write_at(&self, file: &File, head: &[u8], rest: &[u8], pos: u64) -> io::Result<()> {
        let failure = {
            let mut s = self.lock();
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
        {
            let mut s = self.lock();
            s.syncs += 1;
            if s.fail_sync == Some(s.syncs) {
                s.fail_sync = None;
                return Err(io::Error::from_raw_os_error(libc::EIO));
            }
        }
        OsIo.sync_data(file)?;
        let len = file.metadata()?.len();
        let k = key(file)?;
        self.lock().durable.insert(k, len);
        Ok(())
    }

    fn set_len(&self, file: &File, len: u64) -> io::Result<()> {
        OsIo.set_len(file, len)?;
        // A truncation below the durable length shrinks it too.
        let k = key(file)?;
        if let Some(d) = self.lock().durable.get_mut(&k) {
            *d = (*d).min(len);
        }
        Ok(())
    }
}
