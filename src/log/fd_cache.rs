//! A bounded cache of read-only descriptors for sealed segment files. Sealed segments do not
//! keep their `.log` open; reads get the descriptor here, opened on demand and closed when the
//! least recently used entries are evicted beyond the capacity. An entry is reused only while
//! the path still names the same inode (checked with a `stat`), so a deleted, renamed-over or
//! recreated file is never read through a stale descriptor; an evicted or forgotten `Arc<File>`
//! stays valid for readers that still hold it. One cache per process; thread-safe.

use std::collections::HashMap;
use std::fs::File;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

/// Default number of cached descriptors.
pub const DEFAULT_CAPACITY: usize = 1024;

#[derive(Debug)]
struct Entry {
    file: Arc<File>,
    id: (u64, u64),
    used: u64,
}

#[derive(Debug, Default)]
struct Inner {
    map: HashMap<PathBuf, Entry>,
    tick: u64,
}

/// The descriptor cache. See the module docs.
#[derive(Debug)]
pub struct FdCache {
    capacity: AtomicUsize,
    inner: Mutex<Inner>,
}

/// The process-wide cache.
pub fn global() -> &'static FdCache {
    static CACHE: OnceLock<FdCache> = OnceLock::new();
    CACHE.get_or_init(|| FdCache::new(DEFAULT_CAPACITY))
}

impl FdCache {
    /// A cache holding at most `capacity` descriptors (at least 1).
    pub fn new(capacity: usize) -> FdCache {
        FdCache {
            capacity: AtomicUsize::new(capacity.max(1)),
            inner: Mutex::new(Inner::default()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Changes the capacity; evicts down to it.
    pub fn set_capacity(&self, capacity: usize) {
        self.capacity.store(capacity.max(1), Ordering::SeqCst);
        let mut g = self.lock();
        self.evict(&mut g);
    }

    /// Descriptors currently cached.
    pub fn len(&self) -> usize {
        self.lock().map.len()
    }

    /// True if nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A read-only descriptor of `path`.
    pub fn get(&self, path: &Path) -> io::Result<Arc<File>> {
        let meta = std::fs::metadata(path)?;
        let id = (meta.dev(), meta.ino());
        {
            let mut g = self.lock();
            g.tick += 1;
            let tick = g.tick;
            if let Some(e) = g.map.get_mut(path) {
                if e.id == id {
                    e.used = tick;
                    return Ok(Arc::clone(&e.file));
                }
            }
        }
        // Opened outside the lock; the inode is taken from the descriptor itself.
        let file = Arc::new(File::open(path)?);
        let m = file.metadata()?;
        let mut g = self.lock();
        g.tick += 1;
        let used = g.tick;
        g.map.insert(
            path.to_path_buf(),
            Entry {
                file: Arc::clone(&file),
                id: (m.dev(), m.ino()),
                used,
            },
        );
        self.evict(&mut g);
        Ok(file)
    }

    /// Drops the descriptor of `path` (the file is being deleted or replaced), so the cache
    /// does not keep a deleted file's space allocated.
    pub fn forget(&self, path: &Path) {
        self.lock().map.remove(path);
    }

    /// Drops every descriptor under directory `dir`.
    pub fn forget_dir(&self, dir: &Path) {
        self.lock().map.retain(|p, _| !p.starts_with(dir));
    }

    fn evict(&self, g: &mut Inner) {
        let cap = self.capacity.load(Ordering::SeqCst);
        while g.map.len() > cap {
            let Some(oldest) = g
                .map
                .iter()
                .min_by_key(|(_, e)| e.used)
                .map(|(p, _)| p.clone())
            else {
                break;
            };
            g.map.remove(&oldest);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_lru_and_never_stale() {
        let dir = tempfile::tempdir().unwrap();
        let cache = FdCache::new(2);
        let p = |i: u32| dir.path().join(format!("{i}.log"));
        for i in 0..3 {
            std::fs::write(p(i), format!("file {i}")).unwrap();
        }
        let a = cache.get(&p(0)).unwrap();
        cache.get(&p(1)).unwrap();
        assert!(Arc::ptr_eq(&a, &cache.get(&p(0)).unwrap()), "a hit");
        cache.get(&p(2)).unwrap();
        assert_eq!(cache.len(), 2, "bounded");
        // 1 was least recently used: evicted; 0 still cached.
        assert!(Arc::ptr_eq(&a, &cache.get(&p(0)).unwrap()));
        // A file replaced under the same name is reopened, not served stale.
        std::fs::write(p(9), "new content").unwrap();
        std::fs::rename(p(9), p(0)).unwrap();
        let b = cache.get(&p(0)).unwrap();
        assert!(!Arc::ptr_eq(&a, &b));
        let mut s = String::new();
        use std::io::Read;
        (&*b).read_to_string(&mut s).unwrap();
        assert_eq!(s, "new content");
        cache.forget_dir(dir.path());
        assert!(cache.is_empty());
    }
}
