//! The process's memory policy for large columns (indicator outputs, candle columns), which
//! binaries opt into with one line:
//! `#[global_allocator] static ALLOC: trademind::memory::ColumnAllocator = ColumnAllocator;`
//!
//! Why: writing a column of 1M rows (8 MB) onto fresh pages costs a page fault per 4 KiB page,
//! about 1.5 µs each on the project's 2-core machines, 3 ms per column, more than an
//! indicator's whole loop. Two settings remove most of it, as numpy does for the arrays TA-Lib
//! writes into:
//! - allocations of 4 MiB and more are marked for transparent huge pages (`MADV_HUGEPAGE`),
//!   so a fresh column takes one fault per 2 MiB where the system has them enabled;
//! - glibc's malloc keeps freed memory up to [`KEEP_FREED`] for reuse instead of handing it back
//!   to the kernel (by default it adapts its thresholds to the first large blocks freed and then
//!   trims the heap after every call that freed more than two columns, so the next call faults
//!   on every page again), and serves blocks up to [`HEAP_LIMIT`] from that heap.
//!
//! Neither changes what a program computes: contents, addresses' validity and results are the
//! same; only how pages are backed and when they are returned to the kernel.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::Once;

/// Allocations at least this large get the huge-page hint (numpy's threshold).
const LARGE: usize = 4 << 20;
/// Free memory glibc keeps at the top of its heap before returning any to the kernel.
pub const KEEP_FREED: usize = 256 << 20;
/// Blocks up to this size come from glibc's heap (recycled); larger ones are mapped afresh.
/// 32 MiB is glibc's largest allowed value on 64-bit systems.
pub const HEAP_LIMIT: usize = 32 << 20;

/// The system allocator with the policy above (Linux with glibc; elsewhere only the system
/// allocator).
pub struct ColumnAllocator;

static CONFIGURE: Once = Once::new();

/// Set glibc's thresholds, once, before the first large block is allocated.
fn configure() {
    CONFIGURE.call_once(|| {
        #[cfg(all(target_os = "linux", target_env = "gnu"))]
        // SAFETY: `mallopt` only sets malloc tuning parameters; both values are in range
        // (a failure leaves glibc's defaults, which is harmless).
        unsafe {
            libc::mallopt(libc::M_MMAP_THRESHOLD, HEAP_LIMIT as libc::c_int);
            libc::mallopt(libc::M_TRIM_THRESHOLD, KEEP_FREED as libc::c_int);
        }
    });
}

/// Ask Linux to back the whole 2 MiB pages inside `[ptr, ptr + size)` with huge pages.
fn advise_huge_pages(ptr: *mut u8, size: usize) {
    #[cfg(target_os = "linux")]
    {
        const HUGE: usize = 2 << 20;
        let start = ptr as usize;
        let (first, last) = (start.next_multiple_of(HUGE), (start + size) & !(HUGE - 1));
        if last > first {
            // SAFETY: `[first, last)` lies inside the block just allocated, page-aligned;
            // MADV_HUGEPAGE changes how its pages are backed, never their contents,
            // permissions or address. A failure is harmless (no huge pages).
            unsafe {
                libc::madvise(
                    first as *mut libc::c_void,
                    last - first,
                    libc::MADV_HUGEPAGE,
                );
            }
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = (ptr, size);
}

// SAFETY: every method forwards to `System` with the same arguments and returns its result;
// the extra calls neither allocate through this allocator nor touch the block's contents.
unsafe impl GlobalAlloc for ColumnAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if layout.size() < LARGE {
            return unsafe { System.alloc(layout) };
        }
        configure();
        let ptr = unsafe { System.alloc(layout) };
        if !ptr.is_null() {
            advise_huge_pages(ptr, layout.size());
        }
        ptr
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if layout.size() < LARGE {
            return unsafe { System.alloc_zeroed(layout) };
        }
        configure();
        let ptr = unsafe { System.alloc_zeroed(layout) };
        if !ptr.is_null() {
            advise_huge_pages(ptr, layout.size());
        }
        ptr
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if new_size < LARGE {
            return unsafe { System.realloc(ptr, layout, new_size) };
        }
        configure();
        let new = unsafe { System.realloc(ptr, layout, new_size) };
        if !new.is_null() {
            advise_huge_pages(new, new_size);
        }
        new
    }
}

#[cfg(all(test, target_os = "linux", target_env = "gnu"))]
mod tests {
    use super::*;

    const COLUMN: usize = 8 << 20;

    /// Minor page faults this thread has taken so far.
    fn minor_faults() -> i64 {
        // SAFETY: `getrusage` writes one `rusage` through the valid pointer it is given.
        let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
        let rc = unsafe { libc::getrusage(libc::RUSAGE_THREAD, &mut usage) };
        assert_eq!(rc, 0, "getrusage");
        usage.ru_minflt
    }

    /// Write one byte in every 4 KiB page of the block, as a kernel writing a column does.
    fn touch(ptr: *mut u8, size: usize) {
        for offset in (0..size).step_by(4096) {
            // SAFETY: `offset < size`, inside the block the caller owns.
            unsafe { ptr.add(offset).write_volatile(1) };
        }
    }

    /// The `VmFlags` of the mapping that holds `address`, from `/proc/self/smaps`.
    fn vm_flags(address: usize) -> String {
        let smaps = std::fs::read_to_string("/proc/self/smaps").expect("read /proc/self/smaps");
        let mut inside = false;
        for line in smaps.lines() {
            let range = line.split_whitespace().next().unwrap_or("");
            if let Some((start, end)) = range.split_once('-')
                && let (Ok(start), Ok(end)) = (
                    usize::from_str_radix(start, 16),
                    usize::from_str_radix(end, 16),
                )
            {
                inside = (start..end).contains(&address);
            } else if inside && let Some(flags) = line.strip_prefix("VmFlags:") {
                return flags.to_string();
            }
        }
        panic!("no mapping holds {address:#x}");
    }

    #[test]
    fn a_large_block_is_marked_for_huge_pages() {
        let layout = Layout::from_size_align(COLUMN, 8).unwrap();
        // SAFETY: a non-zero layout; the block is freed below with the same layout.
        let ptr = unsafe { ColumnAllocator.alloc(layout) };
        assert!(!ptr.is_null());
        // The middle of an 8 MiB block is inside some 2 MiB-aligned page of it.
        let flags = vm_flags(ptr as usize + COLUMN / 2);
        unsafe { ColumnAllocator.dealloc(ptr, layout) };
        assert!(
            flags.split_whitespace().any(|f| f == "hg"),
            "VmFlags:{flags}"
        );
    }

    #[test]
    fn a_freed_column_is_reused_without_page_faults() {
        configure();
        // The system allocator itself: this checks glibc's thresholds, not the huge-page hint
        // (with huge pages a fresh block would also take few faults).
        let layout = Layout::from_size_align(COLUMN, 8).unwrap();
        let mut faults = Vec::new();
        for _ in 0..3 {
            // SAFETY: a non-zero layout; the block is freed below with the same layout.
            let ptr = unsafe { System.alloc(layout) };
            assert!(!ptr.is_null());
            let before = minor_faults();
            touch(ptr, COLUMN);
            faults.push(minor_faults() - before);
            unsafe { System.dealloc(ptr, layout) };
        }
        // The first block may be fresh (2048 pages); the next ones are the same memory again.
        assert!(
            faults[1..].iter().all(|&f| f < 64),
            "faults per 8 MiB write: {faults:?}"
        );
    }
}
