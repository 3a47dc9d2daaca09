//! The process-wide allocator: the system allocator, except that very large requests are served
//! by anonymous `mmap(MAP_NORESERVE)`.
//!
//! Why: `kafka-protocol` 0.18 calls `Vec::with_capacity(n)` with an array count read off the wire
//! before it knows whether the frame holds `n` elements. A hostile count of `0x7fffffff` asks for
//! hundreds of gigabytes; the system allocator fails, and Rust *aborts* the process on allocation
//! failure (not a catchable panic). Reserving such a block as untouched virtual memory instead lets
//! the decoder run on, hit the end of the frame, and return an ordinary decode error: the pages are
//! never touched, so they never become resident. Frames are capped by `socket.request.max.bytes`
//! and decoding is synchronous, so at most one such reservation per worker thread exists at once.
//!
//! Limits: under `vm.overcommit_memory=2` the kernel refuses even `MAP_NORESERVE` mappings larger
//! than the commit limit; [`overcommit_is_strict`] lets start-up warn about that.

#![allow(
    unsafe_code,
    reason = "a global allocator is unsafe by nature: raw pointers, mmap and munmap"
)]

use std::alloc::{GlobalAlloc, Layout, System};

/// Allocations at or above this size go to `mmap`. Far above anything legitimate: frames are
/// capped at `socket.request.max.bytes` (100 MiB by default) and batches stay opaque bytes.
const HUGE_ALLOCATION: usize = 1 << 30;

/// The allocator installed by the `gregor` binary (and the test harnesses).
pub struct GuardedAllocator;

impl GuardedAllocator {
    fn is_huge(layout: &Layout) -> bool {
        // mmap returns page-aligned memory; anything needing stronger alignment stays on System.
        layout.size() >= HUGE_ALLOCATION && layout.align() <= 4096
    }

    unsafe fn map(size: usize) -> *mut u8 {
        // SAFETY: an anonymous private mapping with no address hint has no preconditions.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                size,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                -1,
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            std::ptr::null_mut()
        } else {
            ptr.cast()
        }
    }
}

// SAFETY: every block is returned to the allocator that produced it, decided by the same
// size/alignment test on the layout the caller passes back.
unsafe impl GlobalAlloc for GuardedAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if Self::is_huge(&layout) {
            // SAFETY: `map` has no preconditions; a null result reports failure as `alloc` must.
            unsafe { Self::map(layout.size()) }
        } else {
            // SAFETY: the caller's layout contract is passed on unchanged.
            unsafe { System.alloc(layout) }
        }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if Self::is_huge(&layout) {
            // SAFETY: as in `alloc`; fresh anonymous mappings are zero-filled by the kernel.
            unsafe { Self::map(layout.size()) }
        } else {
            // SAFETY: the caller's layout contract is passed on unchanged.
            unsafe { System.alloc_zeroed(layout) }
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if Self::is_huge(&layout) {
            // SAFETY: ptr/size describe a mapping made by `map` above.
            unsafe { libc::munmap(ptr.cast(), layout.size()) };
        } else {
            // SAFETY: a layout that is not huge was allocated by `System` (see `alloc`).
            unsafe { System.dealloc(ptr, layout) }
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: the caller guarantees new_size is valid for layout.align().
        let new_layout = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
        if !Self::is_huge(&layout) && !Self::is_huge(&new_layout) {
            // SAFETY: both layouts are on `System`'s side of the test, so `ptr` came from it.
            return unsafe { System.realloc(ptr, layout, new_size) };
        }
        // SAFETY: `new_layout` is valid (see above) and has a non-zero size as `realloc` requires.
        let new_ptr = unsafe { self.alloc(new_layout) };
        if !new_ptr.is_null() {
            let keep = layout.size().min(new_size);
            // SAFETY: both blocks are live and at least `keep` bytes long, and distinct (the new
            // one was just allocated); the old block is freed with the layout it was made with.
            unsafe {
                std::ptr::copy_nonoverlapping(ptr, new_ptr, keep);
                self.dealloc(ptr, layout);
            }
        }
        new_ptr
    }
}

/// True when the kernel is in strict overcommit mode, where the guard above cannot help.
pub fn overcommit_is_strict() -> bool {
    std::fs::read_to_string("/proc/sys/vm/overcommit_memory")
        .map(|s| s.trim() == "2")
        .unwrap_or(false)
}
