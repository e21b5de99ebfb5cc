//! The process's allocator: the system's, asking Linux for transparent huge
//! pages on large blocks.
//!
//! Detection holds the events in memory (close to 1 GiB on 10 million
//! events) and builds hash tables of millions of groups; with 4 KiB pages the
//! kernel takes a fault per page as they are first written. Where
//! transparent huge pages are in `madvise` mode, as on most distributions, a
//! block is only given 2 MiB pages if it asks. glibc can ask for every block
//! (`GLIBC_TUNABLES=glibc.malloc.hugetlb=1`), but only from the environment
//! the process starts in.

use std::alloc::{GlobalAlloc, Layout, System};

/// Blocks at least this large are advised: a smaller one seldom holds a whole
/// aligned 2 MiB page.
const ADVISE_FROM: usize = 4 << 20;

/// [`System`], plus `madvise(MADV_HUGEPAGE)` on blocks of [`ADVISE_FROM`] bytes or more.
pub struct HugePages;

#[cfg(target_os = "linux")]
fn advise(ptr: *mut u8, size: usize) {
    const PAGE: usize = 4096;
    let start = (ptr as usize).next_multiple_of(PAGE);
    let end = (ptr as usize + size) & !(PAGE - 1);
    if !ptr.is_null() && end > start {
        // SAFETY: [start, end) lies inside the block just allocated; the
        // advice changes how its pages are backed, not their contents. A
        // failure (THP off, an old kernel) leaves 4 KiB pages: ignored.
        unsafe {
            libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_HUGEPAGE);
        }
    }
}

#[cfg(not(target_os = "linux"))]
fn advise(_ptr: *mut u8, _size: usize) {}

/// `block`, advised if it is [`ADVISE_FROM`] bytes or more.
fn advised(block: *mut u8, size: usize) -> *mut u8 {
    if size >= ADVISE_FROM {
        advise(block, size);
    }
    block
}

// SAFETY: every call is forwarded to `System` with its arguments unchanged.
unsafe impl GlobalAlloc for HugePages {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded as is.
        advised(unsafe { System.alloc(layout) }, layout.size())
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded as is.
        advised(unsafe { System.alloc_zeroed(layout) }, layout.size())
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded as is.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: forwarded as is.
        advised(unsafe { System.realloc(ptr, layout, new_size) }, new_size)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn large_and_small_blocks_keep_their_contents() {
        let a = HugePages;
        for size in [64, ADVISE_FROM, ADVISE_FROM * 3 + 1] {
            let layout = Layout::from_size_align(size, 64).unwrap();
            // SAFETY: a non-zero layout; the block is written within its size
            // and freed with the layout it was allocated with.
            unsafe {
                let p = a.alloc_zeroed(layout);
                assert!(!p.is_null());
                assert!((0..size).step_by(4093).all(|i| *p.add(i) == 0));
                p.write_bytes(7, size);
                let q = a.realloc(p, layout, size * 2);
                assert!((0..size).step_by(4093).all(|i| *q.add(i) == 7));
                a.dealloc(q, Layout::from_size_align(size * 2, 64).unwrap());
            }
        }
    }

    /// The `VmFlags` of the mapping holding `addr`, from /proc/self/smaps.
    #[cfg(target_os = "linux")]
    fn vm_flags(addr: usize) -> String {
        let smaps = std::fs::read_to_string("/proc/self/smaps").unwrap();
        let mut inside = false;
        for line in smaps.lines() {
            if let Some((range, _)) = line.split_once(' ')
                && let Some((from, to)) = range.split_once('-')
                && let (Ok(from), Ok(to)) = (
                    usize::from_str_radix(from, 16),
                    usize::from_str_radix(to, 16),
                )
            {
                inside = (from..to).contains(&addr);
            } else if inside && let Some(flags) = line.strip_prefix("VmFlags:") {
                return flags.to_string();
            }
        }
        panic!("no mapping holds {addr:#x}");
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn large_blocks_ask_for_huge_pages() {
        if !std::path::Path::new("/sys/kernel/mm/transparent_hugepage").exists() {
            eprintln!("skipped: this kernel has no transparent huge pages");
            return;
        }
        let layout = Layout::from_size_align(3 * ADVISE_FROM, 64).unwrap();
        // SAFETY: a non-zero layout, freed with the layout it was allocated with.
        unsafe {
            let p = HugePages.alloc(layout);
            let middle = p as usize + ADVISE_FROM;
            // "hg": VM_HUGEPAGE, what madvise(MADV_HUGEPAGE) sets.
            assert!(vm_flags(middle).split_whitespace().any(|f| f == "hg"));
            HugePages.dealloc(p, layout);
        }
    }
}
